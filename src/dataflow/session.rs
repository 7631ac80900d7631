//! SESSION windows: assigns each row to the session of its partition that
//! contains it — a maximal run of event times where consecutive times are
//! less than `gap` apart — and appends `window_start` (the session's first
//! event time) and `window_end` (its last event time plus the gap).
//!
//! Incremental: rows are kept per partition, ordered by event time. A delta
//! touches only the sessions around its event times: the operator finds the
//! region covering every session the change affects (before and after it),
//! retracts that region's rows with their old bounds and inserts them with
//! the new ones. An event that bridges two sessions merges them (both old
//! sessions' rows are retracted, the merged session's rows inserted); a
//! deletion can split one. Rows without an event time are dropped.
//!
//! With a watermark on the time column, a session whose end (last event
//! plus the gap) is at or below the watermark can no longer grow or merge:
//! its rows are forgotten, so the state holds only open sessions. The
//! output's `window_end` carries the input's watermark (a change only ever
//! touches sessions ending after it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};

use super::codec::{read_timed_rows, write_timed_rows, Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

/// One partition's rows by event time.
type Partition = super::TimedRows;

pub struct SessionWindow {
    input: SchemaRef,
    schema: SchemaRef,
    partition_cols: Vec<usize>,
    ts_col: usize,
    gap_us: i64,
    key_converter: RowConverter,
    row_converter: RowConverter,
    partitions: HashMap<Box<[u8]>, Partition>,
    /// When to look at a partition again for final sessions: (its last
    /// event time + gap) → partition keys.
    expiry: BTreeMap<i64, Vec<Box<[u8]>>>,
    watermark: Option<i64>,
    /// The input's time column has a watermark.
    closes: bool,
}

impl SessionWindow {
    /// `input` is the windowed relation's schema; the output adds
    /// `window_start` and `window_end` of the time column's type.
    pub fn new(
        input: SchemaRef,
        partition_cols: Vec<usize>,
        ts_col: usize,
        gap_us: i64,
    ) -> Result<SessionWindow> {
        if gap_us <= 0 {
            return Err(DataflowError::Eval("session gap must be positive".into()));
        }
        let ts_type = input.field(ts_col).data_type().clone();
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("window_start", ts_type.clone(), true));
        fields.push(Field::new("window_end", ts_type, true));
        let key_converter = RowConverter::new(
            partition_cols
                .iter()
                .map(|&i| SortField::new(input.field(i).data_type().clone()))
                .collect(),
        )?;
        let row_converter = super::row_converter(&input)?;
        Ok(SessionWindow {
            schema: Arc::new(Schema::new(fields)),
            input,
            partition_cols,
            ts_col,
            gap_us,
            key_converter,
            row_converter,
            partitions: HashMap::new(),
            expiry: BTreeMap::new(),
            watermark: None,
            closes: false,
        })
    }

    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Applies one input change and returns the output change.
    fn apply(&mut self, d: Option<&Delta>) -> Result<Option<Delta>> {
        let Some(d) = d else {
            return Ok(None);
        };
        let n = d.len();
        let keys: Vec<ArrayRef> = self
            .partition_cols
            .iter()
            .map(|&i| d.batch.column(i).clone())
            .collect();
        // Without PARTITION BY every row is in the one partition (empty key).
        let key_rows = if keys.is_empty() {
            None
        } else {
            Some(self.key_converter.convert_columns(&keys)?)
        };
        let rows = self.row_converter.convert_columns(d.batch.columns())?;
        let ts = cast(
            d.batch.column(self.ts_col),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        // The change, per partition: time → row → weight.
        let mut changes: HashMap<Box<[u8]>, Partition> = HashMap::new();
        for i in 0..n {
            let w = d.weights.value(i);
            if w == 0 || ts.is_null(i) {
                continue;
            }
            let key: Box<[u8]> = match &key_rows {
                Some(k) => k.row(i).as_ref().into(),
                None => Box::new([]),
            };
            let e = changes
                .entry(key)
                .or_default()
                .entry(ts.value(i))
                .or_default()
                .entry(rows.row(i).as_ref().into())
                .or_insert(0);
            *e += w;
        }
        let gap = self.gap_us;
        let mut out_rows: Vec<Box<[u8]>> = Vec::new();
        let mut out_bounds: Vec<(i64, i64)> = Vec::new();
        let mut out_weights: Vec<i64> = Vec::new();
        for (pkey, change) in changes {
            let counts: BTreeMap<i64, i64> = change
                .iter()
                .map(|(t, rows)| (*t, rows.values().sum()))
                .collect();
            let (Some(&lo), Some(&hi)) = (counts.keys().next(), counts.keys().next_back()) else {
                continue;
            };
            let part = self.partitions.get(&pkey);
            let old = Keys { part, extra: None };
            let new = Keys {
                part,
                extra: Some(&counts),
            };
            // Every session the change touches, before or after it.
            let (mut a, mut b) = (lo, hi);
            loop {
                let (a1, b1) = old.expand(a, b, gap);
                let (a2, b2) = new.expand(a1, b1, gap);
                if (a2, b2) == (a, b) {
                    break;
                }
                (a, b) = (a2, b2);
            }
            let old_sessions = old.sessions(a, b, gap);
            let new_sessions = new.sessions(a, b, gap);
            // Retract the region's rows with their old bounds.
            if let Some(p) = part {
                for (t, rows) in p.range(a..=b) {
                    if let Some((s, e)) = bounds_of(&old_sessions, *t) {
                        for (row, w) in rows {
                            out_rows.push(row.clone());
                            out_bounds.push((s, e + gap));
                            out_weights.push(-w);
                        }
                    }
                }
            }
            // Apply the change.
            let p = self.partitions.entry(pkey.clone()).or_default();
            for (t, rows) in change {
                let slot = p.entry(t).or_default();
                for (row, w) in rows {
                    let e = slot.entry(row.clone()).or_insert(0);
                    *e += w;
                    if *e == 0 {
                        slot.remove(&row);
                    }
                }
                if slot.is_empty() {
                    p.remove(&t);
                }
            }
            // Insert the region's rows with their new bounds.
            for (t, rows) in p.range(a..=b) {
                if let Some((s, e)) = bounds_of(&new_sessions, *t) {
                    for (row, w) in rows {
                        out_rows.push(row.clone());
                        out_bounds.push((s, e + gap));
                        out_weights.push(*w);
                    }
                }
            }
            if p.is_empty() {
                self.partitions.remove(&pkey);
            } else {
                self.watch(&pkey);
            }
        }
        if out_rows.is_empty() {
            return Ok(None);
        }
        let mut cols = super::decode_rows(&self.row_converter, &out_rows)?;
        let ts_type = self.input.field(self.ts_col).data_type().clone();
        let starts = TimestampMicrosecondArray::from_iter_values(out_bounds.iter().map(|b| b.0));
        let ends = TimestampMicrosecondArray::from_iter_values(out_bounds.iter().map(|b| b.1));
        cols.push(cast(&starts, &ts_type)?);
        cols.push(cast(&ends, &ts_type)?);
        Ok(Some(Delta::from_columns(&self.schema, cols, out_weights)?))
    }

    /// Registers when `key`'s partition may next hold a final session.
    fn watch(&mut self, key: &[u8]) {
        if !self.closes {
            return;
        }
        if let Some(last) = self.partitions.get(key).and_then(|p| p.keys().next_back()) {
            let at = last.saturating_add(self.gap_us);
            self.expiry.entry(at).or_default().push(key.into());
        }
    }

    /// Forgets the sessions that ended at or below the watermark.
    fn prune_final(&mut self) {
        let Some(wm) = self.watermark else {
            return;
        };
        let open = self.expiry.split_off(&wm.saturating_add(1));
        let due = std::mem::replace(&mut self.expiry, open);
        let gap = self.gap_us;
        for key in due.into_values().flatten() {
            let Some(p) = self.partitions.get_mut(&key) else {
                continue;
            };
            // the leading sessions whose end is at or below the watermark
            let mut cut: Option<i64> = None;
            let mut prev: Option<i64> = None;
            let mut all_final = true;
            for &t in p.keys() {
                if let Some(l) = prev {
                    if t - l >= gap {
                        // a session ended at l
                        if l.saturating_add(gap) <= wm {
                            cut = Some(l);
                        } else {
                            all_final = false;
                            break;
                        }
                    }
                }
                prev = Some(t);
            }
            if all_final && prev.is_some_and(|l| l.saturating_add(gap) <= wm) {
                cut = prev;
            }
            if let Some(c) = cut {
                let rest = p.split_off(&c.saturating_add(1));
                *p = rest;
            }
            // (a partition still holding rows was registered again when it
            // last changed, at its newest session's end)
            if p.is_empty() {
                self.partitions.remove(&key);
            }
        }
    }
}

/// Event times present in a partition, optionally with a pending change
/// (`extra`: time → change in row count) applied.
struct Keys<'a> {
    part: Option<&'a Partition>,
    extra: Option<&'a BTreeMap<i64, i64>>,
}

impl Keys<'_> {
    fn count(&self, t: i64) -> i64 {
        let base: i64 = self
            .part
            .and_then(|p| p.get(&t))
            .map(|rows| rows.values().sum())
            .unwrap_or(0);
        base + self.extra.and_then(|e| e.get(&t)).copied().unwrap_or(0)
    }

    /// Present times in `(lo, hi)` exclusive, ascending.
    fn between(&self, lo: i64, hi: i64) -> Vec<i64> {
        if hi.saturating_sub(lo) <= 1 {
            return Vec::new();
        }
        let range = (lo.saturating_add(1))..hi;
        let mut ts: Vec<i64> = Vec::new();
        if let Some(p) = self.part {
            ts.extend(p.range(range.clone()).map(|(t, _)| *t));
        }
        if let Some(e) = self.extra {
            ts.extend(e.range(range).map(|(t, _)| *t));
        }
        ts.sort_unstable();
        ts.dedup();
        ts.retain(|&t| self.count(t) > 0);
        ts
    }

    /// Widens `[lo, hi]` to whole sessions: while a present time lies
    /// within `gap` before `lo` (or after `hi`), move to it.
    fn expand(&self, mut lo: i64, mut hi: i64, gap: i64) -> (i64, i64) {
        while let Some(&t) = self.between(lo.saturating_sub(gap), lo).first() {
            lo = t;
        }
        while let Some(&t) = self.between(hi, hi.saturating_add(gap)).last() {
            hi = t;
        }
        (lo, hi)
    }

    /// Sessions of the present times in `[lo, hi]`: (first, last) pairs.
    fn sessions(&self, lo: i64, hi: i64, gap: i64) -> Vec<(i64, i64)> {
        let mut ts = self.between(lo.saturating_sub(1), hi.saturating_add(1));
        ts.dedup();
        let mut out: Vec<(i64, i64)> = Vec::new();
        for t in ts {
            match out.last_mut() {
                Some((_, last)) if t - *last < gap => *last = t,
                _ => out.push((t, t)),
            }
        }
        out
    }
}

fn bounds_of(sessions: &[(i64, i64)], t: i64) -> Option<(i64, i64)> {
    let i = sessions.partition_point(|(s, _)| *s <= t);
    i.checked_sub(1).map(|i| sessions[i])
}

impl Operator for SessionWindow {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let out = self.apply(inputs.first().copied().flatten().filter(|d| !d.is_empty()));
        self.prune_final();
        out
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        let mut out = vec![None; self.schema.fields().len()];
        if let Some(w) = inputs.first().and_then(|w| w.get(self.ts_col)) {
            out[self.input.fields().len() + 1] = *w;
        }
        out
    }

    fn plan_watermarks(&mut self, inputs: &[&[Option<i64>]]) -> bool {
        self.closes = inputs
            .first()
            .and_then(|w| w.get(self.ts_col))
            .is_some_and(|w| w.is_some());
        self.closes
    }

    fn set_watermarks(&mut self, inputs: &[&[Option<i64>]]) {
        if let Some(Some(wm)) = inputs.first().and_then(|w| w.get(self.ts_col)) {
            self.watermark = Some(self.watermark.map_or(*wm, |w| w.max(*wm)));
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        let parts: Vec<&str> = self
            .partition_cols
            .iter()
            .map(|&i| self.input.field(i).name().as_str())
            .collect();
        format!(
            "SessionWindow: partition by [{}], time {}, gap {} µs",
            parts.join(", "),
            self.input.field(self.ts_col).name(),
            self.gap_us
        )
    }

    fn state_size(&self) -> StateSize {
        let mut s = StateSize::default();
        for (k, p) in &self.partitions {
            s.bytes += k.len() as u64;
            for rows in p.values() {
                for r in rows.keys() {
                    s.rows += 1;
                    s.bytes += r.len() as u64 + 24;
                }
            }
        }
        s
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        w.u64(self.partitions.len() as u64);
        for (k, p) in &self.partitions {
            w.bytes(k);
            write_timed_rows(&mut w, p);
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.partitions.clear();
        self.expiry.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        for _ in 0..r.u64()? {
            let k: Box<[u8]> = r.bytes()?.into();
            let p = read_timed_rows(&mut r)?;
            self.partitions.insert(k, p);
        }
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in session window state".into(),
            ));
        }
        let keys: Vec<Box<[u8]>> = self.partitions.keys().cloned().collect();
        for k in keys {
            self.watch(&k);
        }
        Ok(())
    }
}
