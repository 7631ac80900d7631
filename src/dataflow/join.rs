//! ⋈: equi-joins — INNER, LEFT, RIGHT, FULL, and the semi and anti joins
//! DataFusion makes of `IN`/`EXISTS` subqueries — with an optional residual
//! predicate (the non-equi part of `ON`).
//!
//! Both inputs are kept in an [`Arrangement`]: rows by join key, each with
//! its multiplicity. A step computes the bilinear change
//! `ΔL ⋈ R + (L + ΔL) ⋈ ΔR` by probing the other side's arrangement with the
//! changed rows' keys only, so its cost is proportional to the change and
//! to the rows sharing its keys, never to the whole history.
//!
//! Outer, semi and anti joins also keep, per arranged row of the side whose
//! unmatched rows matter, its **match count**: the number of rows of the
//! other side it joins with (residual predicate included). A row is
//! NULL-padded (outer), kept (anti) or dropped (semi) while that count is
//! zero. A step recomputes the output only for the rows whose count or
//! multiplicity it changed: when a key's first match arrives, the padded
//! rows of that key are retracted; when its last match goes, they return.
//!
//! Keys are compared in Arrow's row encoding. A key with a NULL never
//! matches (SQL `=`), unless the join compares keys with
//! `IS NOT DISTINCT FROM`; such rows bypass the arrangements.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

/// Encoded keys and rows, shared (not copied) between the arrangements,
/// the step's candidate pairs and the retirement index.
type Bytes = Arc<[u8]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
    LeftSemi,
    LeftAnti,
    RightSemi,
    RightAnti,
}

impl JoinKind {
    fn name(&self) -> &'static str {
        match self {
            JoinKind::Inner => "Inner",
            JoinKind::Left => "Left",
            JoinKind::Right => "Right",
            JoinKind::Full => "Full",
            JoinKind::LeftSemi => "LeftSemi",
            JoinKind::LeftAnti => "LeftAnti",
            JoinKind::RightSemi => "RightSemi",
            JoinKind::RightAnti => "RightAnti",
        }
    }

    /// Whether the left (right) side's rows need match counts.
    fn tracks(&self, side: Side) -> bool {
        match side {
            Side::Left => matches!(
                self,
                JoinKind::Left | JoinKind::Full | JoinKind::LeftSemi | JoinKind::LeftAnti
            ),
            Side::Right => matches!(
                self,
                JoinKind::Right | JoinKind::Full | JoinKind::RightSemi | JoinKind::RightAnti
            ),
        }
    }

    /// Whether matched pairs are output (both sides' columns).
    fn pairs(&self) -> bool {
        matches!(
            self,
            JoinKind::Inner | JoinKind::Left | JoinKind::Right | JoinKind::Full
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// A time bound that retires arranged rows (interval and window joins):
/// from a conjunct `bound <= expiry` of the join condition, where `bound`
/// reads the other side and `expiry` this side. Once the other side's
/// watermark puts every future `bound` above a row's `expiry` (at or above
/// with `strict`, for `<`), the row can match no future row and leaves the
/// arrangement. The other side's changes, retractions included, all
/// respect its column watermark. A retired row must also never change
/// again itself: either its side is append-only, or `own` (an expression of
/// this side monotone in one of its watermarked columns) is below its own
/// watermark too.
///
/// Rules come from conjuncts `bound <= expiry` of the residual predicate
/// (interval joins) and from equi-join keys that carry watermarks on both
/// sides (window joins: `a.window_start = b.window_start`).
pub struct Retire {
    pub side: Side,
    /// Over this side's columns.
    pub expiry: Arc<dyn PhysicalExpr>,
    /// Over the other side's columns; monotone in one watermarked column.
    pub bound: Arc<dyn PhysicalExpr>,
    /// For a side that retracts: over this side's columns.
    pub own: Option<Arc<dyn PhysicalExpr>>,
    pub strict: bool,
}

impl Retire {
    /// The watermark under which this rule retires rows, if there is one.
    fn watermark(&self, inputs: &[&[Option<i64>]]) -> Option<i64> {
        let (mine, other) = match self.side {
            Side::Left => (inputs.first(), inputs.get(1)),
            Side::Right => (inputs.get(1), inputs.first()),
        };
        let w = super::watermark::derive(&self.bound, other?)?;
        match &self.own {
            None => Some(w),
            Some(own) => super::watermark::derive(own, mine?).map(|o| o.min(w)),
        }
    }
}

/// One retirement rule's rows by expiry time, and its watermarks.
#[derive(Default)]
struct RetireState {
    by_time: std::collections::BTreeMap<i64, Vec<(Bytes, Bytes)>>,
    watermark: Option<i64>,
    next: Option<i64>,
}

/// One arranged row: its multiplicity and (where tracked) its match count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub count: i64,
    pub matches: i64,
}

/// The rows arranged under one key.
pub type KeyRows = super::FastMap<Bytes, Entry>;

/// Entries of rows (key, row) as they were before a step.
type Touched = HashMap<(Bytes, Bytes), Entry>;

/// Rows of one side passed through unmatched (NULL keys), with weights.
type Only = (Vec<Bytes>, Vec<i64>);

/// A multiset of rows indexed by key: key → encoded row → entry. The unit
/// of join state (and where spilling would go: callers only use these
/// methods).
#[derive(Default)]
pub struct Arrangement {
    map: super::FastMap<Bytes, KeyRows>,
    rows: u64,
    bytes: u64,
}

impl Arrangement {
    pub fn rows_of(&self, key: &[u8]) -> Option<&KeyRows> {
        self.map.get(key)
    }

    pub fn entry(&self, key: &[u8], row: &[u8]) -> Entry {
        self.map
            .get(key)
            .and_then(|m| m.get(row))
            .copied()
            .unwrap_or_default()
    }

    /// Adds to a row's multiplicity and match count; a row whose
    /// multiplicity reaches zero is forgotten.
    pub fn update(&mut self, key: &Bytes, row: &Bytes, count: i64, matches: i64) -> Result<()> {
        let rows = match self.map.get_mut(&**key) {
            Some(r) => r,
            None => {
                self.bytes += key.len() as u64 + 48;
                self.map.entry(key.clone()).or_default()
            }
        };
        let e = match rows.get_mut(&**row) {
            Some(e) => e,
            None => {
                self.rows += 1;
                self.bytes += row.len() as u64 + 40;
                rows.entry(row.clone()).or_default()
            }
        };
        e.count += count;
        e.matches += matches;
        if e.count < 0 {
            return Err(DataflowError::Eval(
                "a join input retracted a row it never inserted".into(),
            ));
        }
        if e.count == 0 {
            rows.remove(&**row);
            self.rows -= 1;
            self.bytes = self.bytes.saturating_sub(row.len() as u64 + 40);
            if rows.is_empty() {
                self.map.remove(&**key);
                self.bytes = self.bytes.saturating_sub(key.len() as u64 + 48);
            }
        }
        Ok(())
    }

    /// Forgets a row, all its copies.
    pub fn remove(&mut self, key: &[u8], row: &[u8]) {
        let Some(rows) = self.map.get_mut(key) else {
            return;
        };
        if rows.remove(row).is_some() {
            self.rows -= 1;
            self.bytes = self.bytes.saturating_sub(row.len() as u64 + 40);
        }
        if rows.is_empty() {
            self.map.remove(key);
            self.bytes = self.bytes.saturating_sub(key.len() as u64 + 48);
        }
    }

    pub fn size(&self) -> StateSize {
        StateSize {
            rows: self.rows,
            bytes: self.bytes,
        }
    }

    fn checkpoint(&self, w: &mut Writer) {
        w.u64(self.map.len() as u64);
        for (k, rows) in &self.map {
            w.bytes(k);
            w.u64(rows.len() as u64);
            for (r, e) in rows {
                w.bytes(r);
                w.i64(e.count);
                w.i64(e.matches);
            }
        }
    }

    fn restore(r: &mut Reader) -> Result<Arrangement> {
        let mut a = Arrangement::default();
        for _ in 0..r.u64()? {
            let k: Bytes = r.bytes()?.into();
            for _ in 0..r.u64()? {
                let row: Bytes = r.bytes()?.into();
                let count = r.i64()?;
                let matches = r.i64()?;
                a.update(&k, &row, count, matches)?;
            }
        }
        Ok(a)
    }
}

/// A changed input row, consolidated: key (`None`: a NULL key that matches
/// nothing), encoded row, weight.
struct Change {
    key: Option<Bytes>,
    row: Bytes,
    w: i64,
    /// The row's (first) index in the input batch.
    at: usize,
}

/// A candidate pair: rows of both sides with one key, and the weight the
/// pair contributes. `phase` 1 is ΔL ⋈ R, 2 is (L + ΔL) ⋈ ΔR.
struct Pair {
    key: Bytes,
    l: Bytes,
    r: Bytes,
    /// ΔL's weight (phase 1) or the left row's new multiplicity (phase 2).
    wl: i64,
    /// The right row's multiplicity (phase 1) or ΔR's weight (phase 2).
    wr: i64,
    phase: u8,
}

pub struct Join {
    kind: JoinKind,
    left_keys: Vec<Arc<dyn PhysicalExpr>>,
    right_keys: Vec<Arc<dyn PhysicalExpr>>,
    key_types: Vec<DataType>,
    nulls_equal: bool,
    /// Residual predicate over the left columns followed by the right ones.
    filter: Option<Arc<dyn PhysicalExpr>>,
    left_schema: SchemaRef,
    right_schema: SchemaRef,
    /// Left then right columns, all nullable (what `filter` reads).
    pair_schema: SchemaRef,
    schema: SchemaRef,
    key_converter: Option<RowConverter>,
    left_rows: RowConverter,
    right_rows: RowConverter,
    left: Arrangement,
    right: Arrangement,
    retire: Vec<Retire>,
    retiring: Vec<RetireState>,
    /// A time index narrowing the probes of ASOF joins.
    band: Option<super::band::Band>,
}

impl Join {
    /// Adds time bounds that retire rows (see [`Retire`]).
    pub fn with_retire(mut self, retire: Vec<Retire>) -> Join {
        self.retiring = retire.iter().map(|_| RetireState::default()).collect();
        self.retire = retire;
        self
    }

    /// Probes through a time index (see [`super::band`]).
    pub fn with_band(mut self, band: super::band::Band) -> Join {
        self.band = Some(band);
        self
    }

    /// One phase of the bilinear step for `side`'s changes: their
    /// candidate pairs against the other side as it stands, the entries
    /// they had before (where unmatched rows are tracked), and then the
    /// changes applied to `side`'s arrangement and time index. Rows with a
    /// NULL key go to `only`.
    fn phase(
        &mut self,
        side: Side,
        changes: &[Change],
        band_times: &[super::band::Times; 3],
        pairs: &mut Vec<Pair>,
        only: &mut Only,
        touched: &mut Touched,
    ) -> Result<()> {
        let track = self.kind.tracks(side);
        let unmatched_shown = !matches!(self.kind, JoinKind::LeftSemi | JoinKind::RightSemi);
        for c in changes {
            let Some(k) = &c.key else {
                if track && unmatched_shown {
                    only.0.push(c.row.clone());
                    only.1.push(c.w);
                }
                continue;
            };
            self.probe(side, k, c, band_times, pairs);
            if track {
                let old = self.arrangement(side).entry(k, &c.row);
                touched.entry((k.clone(), c.row.clone())).or_insert(old);
            }
        }
        let arr = match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        };
        for c in changes {
            if let Some(k) = &c.key {
                arr.update(k, &c.row, c.w, 0)?;
            }
        }
        let times = match side {
            Side::Left => &band_times[0],
            Side::Right => &band_times[1],
        };
        self.index_band(side, changes, times);
        Ok(())
    }

    fn arrangement(&self, side: Side) -> &Arrangement {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    /// The candidate pairs of a changed row of `side` (under key `k`) with
    /// the other side's rows of that key — through the time index when
    /// there is one. Phase 1 (a left change) probes the right arrangement
    /// before ΔR; phase 2 (a right change) the left one after ΔL.
    fn probe(
        &self,
        side: Side,
        k: &Bytes,
        c: &Change,
        band_times: &[super::band::Times; 3],
        pairs: &mut Vec<Pair>,
    ) {
        let (other, phase) = match side {
            Side::Left => (&self.right, 1),
            Side::Right => (&self.left, 2),
        };
        let Some(rows) = other.rows_of(k) else {
            return;
        };
        let mut push = |o: &Bytes, e: &Entry| {
            let (l, r, wl, wr) = match side {
                Side::Left => (c.row.clone(), o.clone(), c.w, e.count),
                Side::Right => (o.clone(), c.row.clone(), e.count, c.w),
            };
            pairs.push(Pair {
                key: k.clone(),
                l,
                r,
                wl,
                wr,
                phase,
            });
        };
        let Some(band) = &self.band else {
            rows.iter().for_each(|(o, e)| push(o, e));
            return;
        };
        let candidates = match (side, &band_times[0], &band_times[1]) {
            (Side::Left, t, _) => match t.get(c.at) {
                Some(Some(t)) => band.right_candidates(k, t),
                _ => Vec::new(),
            },
            (Side::Right, _, lo) => match lo.get(c.at) {
                Some(Some(lo)) => {
                    let hi = band_times[2].get(c.at).and_then(|h| h.as_deref());
                    band.left_candidates(k, lo, hi)
                }
                _ => Vec::new(),
            },
        };
        for o in candidates {
            if let Some(e) = rows.get(o) {
                push(o, e);
            }
        }
    }

    /// Records in the time index whether each changed row is still arranged.
    fn index_band(&mut self, side: Side, changes: &[Change], times: &super::band::Times) {
        let Some(band) = &mut self.band else { return };
        let arr = match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        };
        for c in changes {
            if let (Some(k), Some(t)) = (&c.key, &times[c.at]) {
                let present = arr.entry(k, &c.row).count > 0;
                band.set(side == Side::Left, k, &c.row, t, present);
            }
        }
    }

    /// Rebuilds the time index from the arrangements (after a restore).
    fn rebuild_band(&mut self) -> Result<()> {
        let Some(band) = &mut self.band else {
            return Ok(());
        };
        band.clear();
        for (left, arr, conv, schema) in [
            (true, &self.left, &self.left_rows, &self.left_schema),
            (false, &self.right, &self.right_rows, &self.right_schema),
        ] {
            let ids: Vec<(&Bytes, &Bytes)> = arr
                .map
                .iter()
                .flat_map(|(k, rows)| rows.keys().map(move |r| (k, r)))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let rows: Vec<&Bytes> = ids.iter().map(|(_, r)| *r).collect();
            let cols = super::decode_rows(conv, &rows)?;
            let batch = RecordBatch::try_new(super::relax(schema), cols)?;
            let e = if left {
                &band.left_time
            } else {
                &band.right_lo
            };
            let times = band.times(&e.clone(), &batch)?;
            for ((k, r), t) in ids.into_iter().zip(times) {
                if let Some(t) = t {
                    band.set(left, k, r, &t, true);
                }
            }
        }
        Ok(())
    }

    /// Indexes the new rows of `side` by their expiry under each rule.
    fn index_expiry(&mut self, side: Side, d: &Delta, changes: &[Change]) -> Result<()> {
        for (rule, st) in self.retire.iter().zip(self.retiring.iter_mut()) {
            if rule.side != side {
                continue;
            }
            let v = rule.expiry.evaluate(&d.batch)?.into_array(d.len())?;
            let t = super::watermark::micros(&v)?;
            for c in changes.iter().filter(|c| c.w > 0) {
                let Some(k) = &c.key else { continue };
                if t.is_valid(c.at) {
                    st.by_time
                        .entry(t.value(c.at))
                        .or_default()
                        .push((k.clone(), c.row.clone()));
                }
            }
        }
        Ok(())
    }

    /// Drops the rows the watermarks have retired.
    fn retire_rows(&mut self) -> Result<()> {
        for (rule, st) in self.retire.iter().zip(self.retiring.iter_mut()) {
            if st.next > st.watermark {
                st.watermark = st.next;
            }
            let Some(wm) = st.watermark else { continue };
            let keep_from = if rule.strict {
                wm.saturating_add(1)
            } else {
                wm
            };
            if st
                .by_time
                .first_key_value()
                .is_none_or(|(t, _)| *t >= keep_from)
            {
                continue;
            }
            let rest = st.by_time.split_off(&keep_from);
            let gone = std::mem::replace(&mut st.by_time, rest);
            let arr = match rule.side {
                Side::Left => &mut self.left,
                Side::Right => &mut self.right,
            };
            for (k, r) in gone.into_values().flatten() {
                arr.remove(&k, &r);
            }
        }
        Ok(())
    }
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: JoinKind,
        left_keys: Vec<Arc<dyn PhysicalExpr>>,
        right_keys: Vec<Arc<dyn PhysicalExpr>>,
        key_types: Vec<DataType>,
        nulls_equal: bool,
        filter: Option<Arc<dyn PhysicalExpr>>,
        left_schema: SchemaRef,
        right_schema: SchemaRef,
        schema: SchemaRef,
    ) -> Result<Join> {
        if left_keys.len() != right_keys.len() || left_keys.len() != key_types.len() {
            return Err(DataflowError::Eval("join keys do not pair up".into()));
        }
        let key_converter = if key_types.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                key_types.iter().cloned().map(SortField::new).collect(),
            )?)
        };
        let mut fields: Vec<datafusion::arrow::datatypes::Field> = Vec::new();
        for f in left_schema.fields().iter().chain(right_schema.fields()) {
            fields.push(f.as_ref().clone().with_nullable(true));
        }
        let pair_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        Ok(Join {
            kind,
            left_keys,
            right_keys,
            key_types,
            nulls_equal,
            filter,
            left_rows: super::row_converter(&left_schema)?,
            right_rows: super::row_converter(&right_schema)?,
            left_schema,
            right_schema,
            pair_schema,
            schema: super::relax(&schema),
            key_converter,
            left: Arrangement::default(),
            right: Arrangement::default(),
            retire: Vec::new(),
            retiring: Vec::new(),
            band: None,
        })
    }

    /// A delta's rows, consolidated, with their keys.
    fn changes(&self, side: Side, d: &Delta) -> Result<Vec<Change>> {
        let n = d.len();
        let (exprs, conv) = match side {
            Side::Left => (&self.left_keys, &self.left_rows),
            Side::Right => (&self.right_keys, &self.right_rows),
        };
        let rows = super::EncodedRows::new(conv, &d.batch)?;
        let keys = match &self.key_converter {
            None => None,
            Some(kc) => {
                let cols: Vec<ArrayRef> = exprs
                    .iter()
                    .zip(&self.key_types)
                    .map(|(e, t)| {
                        let a = e.evaluate(&d.batch)?.into_array(n)?;
                        Ok(if a.data_type() == t { a } else { cast(&a, t)? })
                    })
                    .collect::<Result<_>>()?;
                let null_key: Vec<bool> =
                    (0..n).map(|i| cols.iter().any(|c| c.is_null(i))).collect();
                Some((kc.convert_columns(&cols)?, null_key))
            }
        };
        let key_of = |i: usize| -> Option<&[u8]> {
            match &keys {
                None => Some(&[]),
                Some((k, nulls)) => {
                    if nulls[i] && !self.nulls_equal {
                        None
                    } else {
                        Some(k.row(i).data())
                    }
                }
            }
        };
        // Only match counts need each distinct row once; otherwise a delta
        // that only inserts needs no consolidation (the arrangements count
        // copies).
        let untracked = !self.kind.tracks(Side::Left) && !self.kind.tracks(Side::Right);
        if untracked && d.weights.values().iter().all(|w| *w > 0) {
            return Ok((0..n)
                .map(|i| Change {
                    key: key_of(i).map(Into::into),
                    row: rows.row(i).into(),
                    w: d.weights.value(i),
                    at: i,
                })
                .collect());
        }
        // (key, row) → net weight, and each (key, row) with its first index
        type Id<'a> = (Option<&'a [u8]>, &'a [u8]);
        let mut net: super::FastMap<Id, i64> =
            super::FastMap::with_capacity_and_hasher(n, Default::default());
        let mut order: Vec<(Id, usize)> = Vec::new();
        for (i, &w) in d.weights.values().iter().enumerate() {
            if w == 0 {
                continue;
            }
            let id = (key_of(i), rows.row(i));
            let e = net.entry(id).or_insert_with(|| {
                order.push((id, i));
                0
            });
            *e += w;
        }
        Ok(order
            .into_iter()
            .filter_map(|(id, at)| {
                let w = net[&id];
                (w != 0).then(|| Change {
                    key: id.0.map(Into::into),
                    row: id.1.into(),
                    w,
                    at,
                })
            })
            .collect())
    }

    /// Which candidate pairs satisfy the residual predicate.
    /// With a residual predicate, also the decoded candidates (so the
    /// output need not decode them again).
    fn passing(&self, pairs: &[Pair]) -> Result<(Vec<bool>, Option<RecordBatch>)> {
        let Some(f) = &self.filter else {
            return Ok((vec![true; pairs.len()], None));
        };
        if pairs.is_empty() {
            return Ok((Vec::new(), None));
        }
        let batch = self.pair_batch(pairs.iter().map(|p| (&p.l, &p.r)))?;
        let v = f.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = super::null_as_false(v.as_boolean());
        Ok((mask.values().iter().collect(), Some(batch)))
    }

    /// Left columns then right columns of the given pairs.
    fn pair_batch<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a Bytes, &'a Bytes)>,
    ) -> Result<RecordBatch> {
        let mut ls: Vec<&Bytes> = Vec::new();
        let mut rs: Vec<&Bytes> = Vec::new();
        for (l, r) in pairs {
            ls.push(l);
            rs.push(r);
        }
        let n = ls.len();
        let lp = self.left_rows.parser();
        let rp = self.right_rows.parser();
        let mut cols = self
            .left_rows
            .convert_rows(ls.iter().map(|r| lp.parse(r)))?;
        cols.extend(
            self.right_rows
                .convert_rows(rs.iter().map(|r| rp.parse(r)))?,
        );
        Ok(RecordBatch::try_new_with_options(
            self.pair_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// Rows of one side alone: NULL-padded on the other side (outer joins)
    /// or just that side's columns (semi and anti joins).
    fn one_side(&self, side: Side, rows: &[Bytes]) -> Result<Vec<ArrayRef>> {
        let n = rows.len();
        let (conv, other) = match side {
            Side::Left => (&self.left_rows, &self.right_schema),
            Side::Right => (&self.right_rows, &self.left_schema),
        };
        let own = super::decode_rows(conv, rows)?;
        if !self.kind.pairs() {
            return Ok(own);
        }
        let nulls: Vec<ArrayRef> = other
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), n))
            .collect();
        Ok(match side {
            Side::Left => own.into_iter().chain(nulls).collect(),
            Side::Right => nulls.into_iter().chain(own).collect(),
        })
    }

    /// The output change of the rows whose multiplicity or match count
    /// changed: `touched` maps each to its entry before the step.
    fn unmatched_output(
        &self,
        side: Side,
        touched: &Touched,
        rows: &mut Vec<Bytes>,
        weights: &mut Vec<i64>,
    ) {
        let arr = self.arrangement(side);
        let semi = matches!(self.kind, JoinKind::LeftSemi | JoinKind::RightSemi);
        let shown = |e: Entry| -> i64 {
            let matched = e.matches > 0;
            if e.count > 0 && matched == semi {
                e.count
            } else {
                0
            }
        };
        for ((k, r), old) in touched {
            let new = arr.entry(k, r);
            let w = shown(new) - shown(*old);
            if w != 0 {
                rows.push(r.clone());
                weights.push(w);
            }
        }
    }
}

impl Operator for Join {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let dl = inputs.first().copied().flatten().filter(|d| !d.is_empty());
        let dr = inputs.get(1).copied().flatten().filter(|d| !d.is_empty());
        if dl.is_none() && dr.is_none() {
            self.retire_rows()?;
            return Ok(None);
        }
        let (dl_batch, dr_batch) = (dl, dr);
        let dl = match dl_batch {
            Some(d) => self.changes(Side::Left, d)?,
            None => Vec::new(),
        };
        let dr = match dr_batch {
            Some(d) => self.changes(Side::Right, d)?,
            None => Vec::new(),
        };
        // the time index: left times, right interval ends, per batch row
        let mut band_times: [super::band::Times; 3] = Default::default();
        if let Some(band) = &self.band {
            if let Some(d) = dl_batch {
                band_times[0] = band.times(&band.left_time, &d.batch)?;
            }
            if let Some(d) = dr_batch {
                band_times[1] = band.times(&band.right_lo, &d.batch)?;
                band_times[2] = band.times(&band.right_hi, &d.batch)?;
            }
        }
        if !self.retire.is_empty() {
            if let Some(d) = dl_batch {
                self.index_expiry(Side::Left, d, &dl)?;
            }
            if let Some(d) = dr_batch {
                self.index_expiry(Side::Right, d, &dr)?;
            }
        }
        let track_l = self.kind.tracks(Side::Left);
        let track_r = self.kind.tracks(Side::Right);
        // rows of one side that never match (NULL keys): straight through
        let mut only_l: Only = Default::default();
        let mut only_r: Only = Default::default();
        // entries before the step of the rows whose output may change
        let mut touched_l: Touched = HashMap::new();
        let mut touched_r: Touched = HashMap::new();
        let mut pairs: Vec<Pair> = Vec::new();
        // phase 1: ΔL ⋈ R, then phase 2: (L + ΔL) ⋈ ΔR
        self.phase(
            Side::Left,
            &dl,
            &band_times,
            &mut pairs,
            &mut only_l,
            &mut touched_l,
        )?;
        self.phase(
            Side::Right,
            &dr,
            &band_times,
            &mut pairs,
            &mut only_r,
            &mut touched_r,
        )?;
        let (pass, decoded) = self.passing(&pairs)?;
        // matched pairs, and the match counts they change
        let mut out_pairs: Vec<usize> = Vec::new();
        let mut out_pair_w: Vec<i64> = Vec::new();
        for (i, p) in pairs.iter().enumerate() {
            if !pass[i] {
                continue;
            }
            let w = p.wl * p.wr;
            if self.kind.pairs() && w != 0 {
                out_pairs.push(i);
                out_pair_w.push(w);
            }
            if track_l {
                // a left row's count: Σ multiplicities of matching right rows
                let id = (p.key.clone(), p.l.clone());
                let dm = match p.phase {
                    // only a new left row learns its matches in R here
                    1 => {
                        let old = touched_l.get(&id).copied().unwrap_or_default();
                        if old.count == 0 {
                            p.wr
                        } else {
                            0
                        }
                    }
                    _ => p.wr,
                };
                if dm != 0 {
                    let now = self.left.entry(&p.key, &p.l);
                    touched_l.entry(id).or_insert(now);
                    self.left.update(&p.key, &p.l, 0, dm)?;
                }
            }
            if track_r {
                let id = (p.key.clone(), p.r.clone());
                let dm = match p.phase {
                    1 => p.wl,
                    // only a new right row learns its matches in L here
                    _ => {
                        let old = touched_r.get(&id).copied().unwrap_or_default();
                        if old.count == 0 {
                            p.wl
                        } else {
                            0
                        }
                    }
                };
                if dm != 0 {
                    let now = self.right.entry(&p.key, &p.r);
                    touched_r.entry(id).or_insert(now);
                    self.right.update(&p.key, &p.r, 0, dm)?;
                }
            }
        }
        if track_l {
            self.unmatched_output(Side::Left, &touched_l, &mut only_l.0, &mut only_l.1);
        }
        if track_r {
            self.unmatched_output(Side::Right, &touched_r, &mut only_r.0, &mut only_r.1);
        }
        // assemble: pairs, then left-only rows, then right-only rows
        let mut parts: Vec<(Vec<ArrayRef>, Vec<i64>)> = Vec::new();
        if !out_pairs.is_empty() {
            let b = match decoded {
                // the candidates already decoded: keep the output ones
                Some(all) => {
                    let mut keep = vec![false; pairs.len()];
                    for &i in &out_pairs {
                        keep[i] = true;
                    }
                    datafusion::arrow::compute::filter_record_batch(
                        &all,
                        &datafusion::arrow::array::BooleanArray::from(keep),
                    )?
                }
                None => self.pair_batch(out_pairs.iter().map(|&i| (&pairs[i].l, &pairs[i].r)))?,
            };
            parts.push((b.columns().to_vec(), out_pair_w));
        }
        if !only_l.0.is_empty() {
            parts.push((self.one_side(Side::Left, &only_l.0)?, only_l.1));
        }
        if !only_r.0.is_empty() {
            parts.push((self.one_side(Side::Right, &only_r.0)?, only_r.1));
        }
        self.retire_rows()?;
        if parts.is_empty() {
            return Ok(None);
        }
        let width = self.schema.fields().len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(width);
        for (c, f) in self.schema.fields().iter().enumerate() {
            let pieces: Vec<ArrayRef> = parts
                .iter()
                .map(|(cols, _)| {
                    let a = &cols[c];
                    if a.data_type() == f.data_type() {
                        Ok(a.clone())
                    } else {
                        cast(a, f.data_type())
                    }
                })
                .collect::<Result<_, _>>()?;
            let refs: Vec<&dyn Array> = pieces.iter().map(|a| a.as_ref()).collect();
            columns.push(concat(&refs)?);
        }
        let weights: Vec<i64> = parts.into_iter().flat_map(|(_, w)| w).collect();
        Ok(Some(Delta::from_columns(&self.schema, columns, weights)?))
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        let on: Vec<String> = self
            .left_keys
            .iter()
            .zip(&self.right_keys)
            .map(|(l, r)| {
                format!(
                    "{l} {} {r}",
                    if self.nulls_equal {
                        "IS NOT DISTINCT FROM"
                    } else {
                        "="
                    }
                )
            })
            .collect();
        let retire: Vec<String> = self
            .retire
            .iter()
            .map(|r| {
                format!(
                    "{} {} retired below the watermark of {}",
                    match r.side {
                        Side::Left => "left",
                        Side::Right => "right",
                    },
                    r.expiry,
                    r.bound
                )
            })
            .collect();
        format!(
            "Join: {}{} on [{}]{}{}",
            self.kind.name(),
            if self.band.is_some() {
                " (ASOF, time-indexed)"
            } else {
                ""
            },
            on.join(", "),
            match &self.filter {
                Some(f) => format!(" filter {f}"),
                None => String::new(),
            },
            if retire.is_empty() {
                String::new()
            } else {
                format!(" ({})", retire.join("; "))
            }
        )
    }

    fn state_size(&self) -> StateSize {
        let (l, r) = (self.left.size(), self.right.size());
        let index: u64 = self
            .retiring
            .iter()
            .flat_map(|st| st.by_time.values().flatten())
            .map(|(k, r)| k.len() as u64 + r.len() as u64 + 16)
            .sum::<u64>()
            + self.band.as_ref().map_or(0, |b| b.bytes());
        StateSize {
            rows: l.rows + r.rows,
            bytes: l.bytes + r.bytes + index,
        }
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        // An inner join's output row pairs a changed row of one side with a
        // row the other side still holds. A column `c` of side S carries a
        // watermark when S retires rows by `c` itself: future changes of S
        // are at or above S's own watermark on `c`, and the rows S still
        // holds are at or above the retirement watermark. Outer, semi and
        // anti joins can retract old rows: no watermark.
        let mut out = vec![None; self.schema.fields().len()];
        if self.kind != JoinKind::Inner {
            return out;
        }
        let left_width = self.left_schema.fields().len();
        for rule in &self.retire {
            let Some(col) = rule
                .expiry
                .downcast_ref::<datafusion::physical_expr::expressions::Column>()
            else {
                continue;
            };
            let (own, offset) = match rule.side {
                Side::Left => (inputs.first(), 0),
                Side::Right => (inputs.get(1), left_width),
            };
            let own = own.and_then(|w| w.get(col.index()).copied().flatten());
            if let (Some(own), Some(retired)) = (own, rule.watermark(inputs)) {
                if let Some(slot) = out.get_mut(offset + col.index()) {
                    *slot = Some(own.min(retired));
                }
            }
        }
        out
    }

    fn plan_watermarks(&mut self, inputs: &[&[Option<i64>]]) -> bool {
        // keep, per side, the first rule the watermarks support
        let mut seen = (false, false);
        let rules = std::mem::take(&mut self.retire);
        for r in rules {
            let taken = match r.side {
                Side::Left => &mut seen.0,
                Side::Right => &mut seen.1,
            };
            if !*taken && r.watermark(inputs).is_some() {
                *taken = true;
                self.retire.push(r);
            }
        }
        self.retiring = self.retire.iter().map(|_| RetireState::default()).collect();
        !self.retire.is_empty()
    }

    fn set_watermarks(&mut self, inputs: &[&[Option<i64>]]) {
        for (rule, st) in self.retire.iter().zip(self.retiring.iter_mut()) {
            if let Some(wm) = rule.watermark(inputs) {
                st.next = Some(st.next.map_or(wm, |n| n.max(wm)));
            }
        }
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        self.left.checkpoint(&mut w);
        self.right.checkpoint(&mut w);
        w.u32(self.retiring.len() as u32);
        for st in &self.retiring {
            w.u64(st.by_time.len() as u64);
            for (t, rows) in &st.by_time {
                w.i64(*t);
                w.u64(rows.len() as u64);
                for (k, r) in rows {
                    w.bytes(k);
                    w.bytes(r);
                }
            }
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            self.left = Arrangement::default();
            self.right = Arrangement::default();
            self.retiring = self.retire.iter().map(|_| RetireState::default()).collect();
            if let Some(b) = &mut self.band {
                b.clear();
            }
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        self.left = Arrangement::restore(&mut r)?;
        self.right = Arrangement::restore(&mut r)?;
        let n = r.u32()? as usize;
        if n != self.retire.len() {
            return Err(DataflowError::State(format!(
                "join checkpoint has {n} time bounds, the view plans {}",
                self.retire.len()
            )));
        }
        for st in &mut self.retiring {
            *st = RetireState::default();
            for _ in 0..r.u64()? {
                let t = r.i64()?;
                let rows = (0..r.u64()?)
                    .map(|_| Ok((r.bytes()?.into(), r.bytes()?.into())))
                    .collect::<Result<Vec<_>>>()?;
                st.by_time.insert(t, rows);
            }
        }
        if !r.done() {
            return Err(DataflowError::State("trailing bytes in join state".into()));
        }
        self.rebuild_band()
    }

    fn preserves_append_only(&self) -> bool {
        // inner joins of append-only inputs only insert; outer, semi and
        // anti joins retract when matches arrive
        self.kind == JoinKind::Inner
    }
}
