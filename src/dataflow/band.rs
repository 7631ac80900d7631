//! A time index beside a join's arrangements, for joins whose residual
//! matches a left time against right validity intervals — the form ASOF
//! joins are planned in (`sql::asof`): `r.lo <= l.t AND (r.hi IS NULL OR
//! l.t < r.hi)`, or the strict `r.lo < l.t AND (r.hi IS NULL OR l.t <=
//! r.hi)`, where `[lo, hi)` runs from a right row's time to the next right
//! row's of the same key.
//!
//! Without it every probe walks all rows of its key, so a trade costs the
//! whole quote history of its symbol. With it:
//!
//! - a changed right row `[lo, hi]` probes only the left rows of its key
//!   with `lo <= t <= hi`;
//! - a changed left row at `t` probes only the right rows of its key whose
//!   `lo` equals `t` or is the greatest below `t`. The intervals of a
//!   consistent right side (the integrated output of `lead`) are disjoint
//!   and consecutive, so no other right row can contain `t`.
//!
//! Candidates are a superset of the matches; the join's residual predicate
//! still decides each pair.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::{FastMap, Result};

type Bytes = Arc<[u8]>;
/// key → time → rows at that time
type ByTime = FastMap<Bytes, BTreeMap<Box<[u8]>, HashSet<Bytes>>>;

/// Times of a batch's rows in an order-preserving encoding (`None`: NULL).
pub type Times = Vec<Option<Box<[u8]>>>;

pub struct Band {
    /// the left row's time
    pub left_time: Arc<dyn PhysicalExpr>,
    /// the right row's interval
    pub right_lo: Arc<dyn PhysicalExpr>,
    pub right_hi: Arc<dyn PhysicalExpr>,
    time_type: DataType,
    converter: RowConverter,
    left: ByTime,
    right: ByTime,
}

impl Band {
    pub fn new(
        left_time: Arc<dyn PhysicalExpr>,
        right_lo: Arc<dyn PhysicalExpr>,
        right_hi: Arc<dyn PhysicalExpr>,
        time_type: DataType,
    ) -> Result<Band> {
        Ok(Band {
            converter: RowConverter::new(vec![SortField::new(time_type.clone())])?,
            left_time,
            right_lo,
            right_hi,
            time_type,
            left: ByTime::default(),
            right: ByTime::default(),
        })
    }

    /// `e` evaluated over `batch`, encoded per row.
    pub fn times(&self, e: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<Times> {
        let n = batch.num_rows();
        let a: ArrayRef = e.evaluate(batch)?.into_array(n)?;
        let a = if a.data_type() == &self.time_type {
            a
        } else {
            cast(&a, &self.time_type)?
        };
        let rows = self.converter.convert_columns(std::slice::from_ref(&a))?;
        Ok((0..n)
            .map(|i| (!a.is_null(i)).then(|| rows.row(i).data().into()))
            .collect())
    }

    /// Records whether a row is arranged (`present`) at `time`.
    pub fn set(&mut self, left: bool, key: &Bytes, row: &Bytes, time: &[u8], present: bool) {
        let index = if left {
            &mut self.left
        } else {
            &mut self.right
        };
        if present {
            index
                .entry(key.clone())
                .or_default()
                .entry(time.into())
                .or_default()
                .insert(row.clone());
            return;
        }
        let Some(times) = index.get_mut(key) else {
            return;
        };
        if let Some(rows) = times.get_mut(time) {
            rows.remove(row);
            if rows.is_empty() {
                times.remove(time);
            }
        }
        if times.is_empty() {
            index.remove(key);
        }
    }

    /// Right rows of `key` that may cover a left row at `t`.
    pub fn right_candidates<'a>(&'a self, key: &[u8], t: &[u8]) -> Vec<&'a Bytes> {
        let mut out = Vec::new();
        let Some(times) = self.right.get(key) else {
            return out;
        };
        let mut below_taken = false;
        for (lo, rows) in times
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(t)))
            .rev()
        {
            out.extend(rows.iter());
            if &**lo < t {
                below_taken = true;
            }
            if below_taken {
                break;
            }
        }
        out
    }

    /// Left rows of `key` whose time may lie in `[lo, hi]` (`hi` NULL: no
    /// upper end).
    pub fn left_candidates<'a>(
        &'a self,
        key: &[u8],
        lo: &[u8],
        hi: Option<&[u8]>,
    ) -> Vec<&'a Bytes> {
        let Some(times) = self.left.get(key) else {
            return Vec::new();
        };
        let upper = match hi {
            Some(h) if h < lo => return Vec::new(),
            Some(h) => Bound::Included(h),
            None => Bound::Unbounded,
        };
        times
            .range::<[u8], _>((Bound::Included(lo), upper))
            .flat_map(|(_, rows)| rows.iter())
            .collect()
    }

    /// Approximate bytes held (the rows themselves are shared with the
    /// arrangements).
    pub fn bytes(&self) -> u64 {
        [&self.left, &self.right]
            .iter()
            .flat_map(|m| m.values())
            .flat_map(|times| times.iter())
            .map(|(t, rows)| t.len() as u64 + 48 + 16 * rows.len() as u64)
            .sum()
    }

    pub fn clear(&mut self) {
        self.left.clear();
        self.right.clear();
    }
}
