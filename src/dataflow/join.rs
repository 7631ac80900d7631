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
    new_null_array, Array, ArrayRef, AsArray, Int64Array, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

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
enum Side {
    Left,
    Right,
}

/// One arranged row: its multiplicity and (where tracked) its match count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub count: i64,
    pub matches: i64,
}

/// The rows arranged under one key.
pub type KeyRows = super::FastMap<Box<[u8]>, Entry>;

/// Entries of rows (key, row) as they were before a step.
type Touched = HashMap<(Box<[u8]>, Box<[u8]>), Entry>;

/// A multiset of rows indexed by key: key → encoded row → entry. The unit
/// of join state (and where spilling would go: callers only use these
/// methods).
#[derive(Default)]
pub struct Arrangement {
    map: super::FastMap<Box<[u8]>, KeyRows>,
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
    pub fn update(&mut self, key: &[u8], row: &[u8], count: i64, matches: i64) -> Result<()> {
        let rows = match self.map.get_mut(key) {
            Some(r) => r,
            None => {
                self.bytes += key.len() as u64 + 48;
                self.map.entry(key.into()).or_default()
            }
        };
        let e = match rows.get_mut(row) {
            Some(e) => e,
            None => {
                self.rows += 1;
                self.bytes += row.len() as u64 + 40;
                rows.entry(row.into()).or_default()
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
            rows.remove(row);
            self.rows -= 1;
            self.bytes = self.bytes.saturating_sub(row.len() as u64 + 40);
            if rows.is_empty() {
                self.map.remove(key);
                self.bytes = self.bytes.saturating_sub(key.len() as u64 + 48);
            }
        }
        Ok(())
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
            let k: Box<[u8]> = r.bytes()?.into();
            for _ in 0..r.u64()? {
                let row: Box<[u8]> = r.bytes()?.into();
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
    key: Option<Box<[u8]>>,
    row: Box<[u8]>,
    w: i64,
}

/// A candidate pair: rows of both sides with one key, and the weight the
/// pair contributes. `phase` 1 is ΔL ⋈ R, 2 is (L + ΔL) ⋈ ΔR.
struct Pair {
    key: Box<[u8]>,
    l: Box<[u8]>,
    r: Box<[u8]>,
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
}

impl Join {
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
        })
    }

    /// A delta's rows, consolidated, with their keys.
    fn changes(&self, side: Side, d: &Delta) -> Result<Vec<Change>> {
        let n = d.len();
        let (exprs, conv) = match side {
            Side::Left => (&self.left_keys, &self.left_rows),
            Side::Right => (&self.right_keys, &self.right_rows),
        };
        let rows = conv.convert_columns(d.batch.columns())?;
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
        let mut net: super::FastMap<(Option<&[u8]>, &[u8]), i64> = super::FastMap::default();
        let mut order: Vec<(Option<&[u8]>, &[u8])> = Vec::new();
        for (i, &w) in d.weights.values().iter().enumerate() {
            if w == 0 {
                continue;
            }
            let key: Option<&[u8]> = match &keys {
                None => Some(&[]),
                Some((k, nulls)) => {
                    if nulls[i] && !self.nulls_equal {
                        None
                    } else {
                        Some(k.row(i).data())
                    }
                }
            };
            let id = (key, rows.row(i).data());
            let e = net.entry(id).or_insert_with(|| {
                order.push(id);
                0
            });
            *e += w;
        }
        Ok(order
            .into_iter()
            .filter_map(|id| {
                let w = net[&id];
                (w != 0).then(|| Change {
                    key: id.0.map(Into::into),
                    row: id.1.into(),
                    w,
                })
            })
            .collect())
    }

    /// Which candidate pairs satisfy the residual predicate.
    fn passing(&self, pairs: &[Pair]) -> Result<Vec<bool>> {
        let Some(f) = &self.filter else {
            return Ok(vec![true; pairs.len()]);
        };
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.pair_batch(pairs.iter().map(|p| (&p.l, &p.r)))?;
        let v = f.evaluate(&batch)?.into_array(batch.num_rows())?;
        let mask = super::null_as_false(v.as_boolean());
        Ok(mask.values().iter().collect())
    }

    /// Left columns then right columns of the given pairs.
    fn pair_batch<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a Box<[u8]>, &'a Box<[u8]>)>,
    ) -> Result<RecordBatch> {
        let mut ls: Vec<&Box<[u8]>> = Vec::new();
        let mut rs: Vec<&Box<[u8]>> = Vec::new();
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
    fn one_side(&self, side: Side, rows: &[Box<[u8]>]) -> Result<Vec<ArrayRef>> {
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
        rows: &mut Vec<Box<[u8]>>,
        weights: &mut Vec<i64>,
    ) {
        let arr = match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        };
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
            return Ok(None);
        }
        let dl = match dl {
            Some(d) => self.changes(Side::Left, d)?,
            None => Vec::new(),
        };
        let dr = match dr {
            Some(d) => self.changes(Side::Right, d)?,
            None => Vec::new(),
        };
        let track_l = self.kind.tracks(Side::Left);
        let track_r = self.kind.tracks(Side::Right);
        // rows of one side that never match (NULL keys): straight through
        let mut only_l: (Vec<Box<[u8]>>, Vec<i64>) = Default::default();
        let mut only_r: (Vec<Box<[u8]>>, Vec<i64>) = Default::default();
        let unmatched_shown = !matches!(self.kind, JoinKind::LeftSemi | JoinKind::RightSemi);
        // entries before the step of the rows whose output may change
        let mut touched_l: Touched = HashMap::new();
        let mut touched_r: Touched = HashMap::new();
        let mut pairs: Vec<Pair> = Vec::new();
        // phase 1: ΔL ⋈ R
        for c in &dl {
            let Some(k) = &c.key else {
                if track_l && unmatched_shown {
                    only_l.0.push(c.row.clone());
                    only_l.1.push(c.w);
                }
                continue;
            };
            if let Some(rs) = self.right.rows_of(k) {
                for (r, e) in rs {
                    pairs.push(Pair {
                        key: k.clone(),
                        l: c.row.clone(),
                        r: r.clone(),
                        wl: c.w,
                        wr: e.count,
                        phase: 1,
                    });
                }
            }
            if track_l {
                let old = self.left.entry(k, &c.row);
                touched_l.entry((k.clone(), c.row.clone())).or_insert(old);
            }
        }
        for c in &dl {
            if let Some(k) = &c.key {
                self.left.update(k, &c.row, c.w, 0)?;
            }
        }
        // phase 2: (L + ΔL) ⋈ ΔR
        for c in &dr {
            let Some(k) = &c.key else {
                if track_r && unmatched_shown {
                    only_r.0.push(c.row.clone());
                    only_r.1.push(c.w);
                }
                continue;
            };
            if let Some(ls) = self.left.rows_of(k) {
                for (l, e) in ls {
                    pairs.push(Pair {
                        key: k.clone(),
                        l: l.clone(),
                        r: c.row.clone(),
                        wl: e.count,
                        wr: c.w,
                        phase: 2,
                    });
                }
            }
            if track_r {
                let old = self.right.entry(k, &c.row);
                touched_r.entry((k.clone(), c.row.clone())).or_insert(old);
            }
        }
        for c in &dr {
            if let Some(k) = &c.key {
                self.right.update(k, &c.row, c.w, 0)?;
            }
        }
        let pass = self.passing(&pairs)?;
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
            let b = self.pair_batch(out_pairs.iter().map(|&i| (&pairs[i].l, &pairs[i].r)))?;
            parts.push((b.columns().to_vec(), out_pair_w));
        }
        if !only_l.0.is_empty() {
            parts.push((self.one_side(Side::Left, &only_l.0)?, only_l.1));
        }
        if !only_r.0.is_empty() {
            parts.push((self.one_side(Side::Right, &only_r.0)?, only_r.1));
        }
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
        let n = weights.len();
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(Some(Delta::new(batch, Int64Array::from(weights))?))
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
        format!(
            "Join: {} on [{}]{}",
            self.kind.name(),
            on.join(", "),
            match &self.filter {
                Some(f) => format!(" filter {f}"),
                None => String::new(),
            }
        )
    }

    fn state_size(&self) -> StateSize {
        let (l, r) = (self.left.size(), self.right.size());
        StateSize {
            rows: l.rows + r.rows,
            bytes: l.bytes + r.bytes,
        }
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        self.left.checkpoint(&mut w);
        self.right.checkpoint(&mut w);
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            self.left = Arrangement::default();
            self.right = Arrangement::default();
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        self.left = Arrangement::restore(&mut r)?;
        self.right = Arrangement::restore(&mut r)?;
        if !r.done() {
            return Err(DataflowError::State("trailing bytes in join state".into()));
        }
        Ok(())
    }

    fn preserves_append_only(&self) -> bool {
        // inner joins of append-only inputs only insert; outer, semi and
        // anti joins retract when matches arrive
        self.kind == JoinKind::Inner
    }
}
