//! Watermarks through the operator graph.
//!
//! A source with `WATERMARK FOR ts AS ts - delay` has a watermark: the
//! largest event time seen so far minus the delay. Inside a circuit,
//! watermarks are attached to *columns*: a column watermark `W` on column
//! `c` of a node's output promises that no later change (insertion or
//! retraction) of that output has a value below `W` in `c`. Each operator
//! derives its output's column watermarks from its inputs'
//! ([`Operator::output_watermarks`](super::Operator::output_watermarks)):
//!
//! - a projection carries a watermark through an expression that does not
//!   decrease as its one input column grows (the column itself, `date_bin`,
//!   `date_trunc`, `+`/`-` a constant, a cast between timestamp types),
//!   evaluating the expression at the input watermark;
//! - a filter passes its input's watermarks on; a union takes, per column,
//!   the least of its inputs' (none if one input has none);
//! - an aggregate derives its group-key columns like a projection; a group
//!   whose key is below the key's watermark is final, so its state is
//!   dropped;
//! - a session window holds each session until the watermark passes its end
//!   plus the gap.
//!
//! Which rows are late is decided at the circuit's input, row by row in log
//! order ([`EventTime::admit`]): a row is late when its event time is below
//! the watermark as it stood after all the rows before it. The decision
//! depends only on the log, not on how rows were batched, so a view built
//! later (backfill) or restored after a crash drops exactly the same rows.
//! Only circuits with operators that hold state by the watermark drop late
//! rows; other views see every row.

use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType};
use datafusion::logical_expr::Operator as BinOp;
use datafusion::physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal, TryCastExpr};
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};

use super::{Delta, Result};

/// One watermark per column of a node's output (µs for timestamp columns;
/// `None`: the column has none).
pub type Watermarks = Vec<Option<i64>>;

const MICROS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// A column's values as µs timestamps.
pub fn micros(col: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    Ok(cast(col, &MICROS)?
        .as_primitive::<TimestampMicrosecondType>()
        .clone())
}

/// The per-row late test: walks `ts` in order, with `max` the largest event
/// time before the first row; a row is late when its time is below
/// `max - delay` as it stands before that row. Rows without an event time
/// are never late. Returns the mask of rows to keep (`None`: all of them)
/// and the number of late rows; `max` is advanced past every row.
pub fn admit_rows(
    ts: &TimestampMicrosecondArray,
    max: &mut Option<i64>,
    delay_us: i64,
) -> (Option<BooleanArray>, u64) {
    let mut late = 0u64;
    let mut keep: Option<Vec<bool>> = None;
    for i in 0..ts.len() {
        if ts.is_null(i) {
            continue;
        }
        let t = ts.value(i);
        match *max {
            Some(m) if t < m.saturating_sub(delay_us) => {
                late += 1;
                keep.get_or_insert_with(|| vec![true; ts.len()])[i] = false;
            }
            Some(m) if m >= t => {}
            _ => *max = Some(t),
        }
    }
    (keep.map(BooleanArray::from), late)
}

/// Event time of one source the circuit reads: its event-time column, the
/// watermark delay, and what the circuit has seen of it (checkpointed with
/// the circuit).
#[derive(Debug, Clone)]
pub struct EventTime {
    /// The circuit source.
    pub source: usize,
    pub column: usize,
    pub delay_us: i64,
    /// Largest event time seen.
    pub max_event_us: Option<i64>,
    /// Rows dropped for arriving behind the watermark.
    pub late_rows: u64,
}

impl EventTime {
    pub fn new(source: usize, column: usize, delay_us: i64) -> EventTime {
        EventTime {
            source,
            column,
            delay_us,
            max_event_us: None,
            late_rows: 0,
        }
    }

    pub fn watermark_us(&self) -> Option<i64> {
        self.max_event_us.map(|m| m.saturating_sub(self.delay_us))
    }

    /// Advances the watermark past the rows of `d`; with `drop_late`, also
    /// drops (and counts) the rows that are late.
    pub fn admit(&mut self, d: &Delta, drop_late: bool) -> Result<Delta> {
        let ts = micros(d.batch.column(self.column))?;
        if !drop_late {
            if let Some(m) = datafusion::arrow::compute::max(&ts) {
                self.max_event_us = Some(self.max_event_us.map_or(m, |x| x.max(m)));
            }
            return Ok(d.clone());
        }
        let (keep, late) = admit_rows(&ts, &mut self.max_event_us, self.delay_us);
        self.late_rows += late;
        match keep {
            None => Ok(d.clone()),
            Some(mask) => d.filter(&mask),
        }
    }
}

/// Whether `e` never decreases as its one input column grows (all its other
/// leaves constant); returns that column.
fn monotone_column(e: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    let any: &dyn PhysicalExpr = e.as_ref();
    if let Some(c) = any.downcast_ref::<Column>() {
        return Some(c.index());
    }
    if let Some(b) = any.downcast_ref::<BinaryExpr>() {
        let constant = |x: &Arc<dyn PhysicalExpr>| x.is::<Literal>();
        return match b.op() {
            BinOp::Plus if constant(b.left()) => monotone_column(b.right()),
            BinOp::Plus | BinOp::Minus if constant(b.right()) => monotone_column(b.left()),
            _ => None,
        };
    }
    let to_time = |t: &DataType| matches!(t, DataType::Timestamp(_, _) | DataType::Date32);
    if let Some(c) = any.downcast_ref::<CastExpr>() {
        return to_time(c.cast_type())
            .then(|| monotone_column(c.expr()))
            .flatten();
    }
    if let Some(c) = any.downcast_ref::<TryCastExpr>() {
        return to_time(c.cast_type())
            .then(|| monotone_column(c.expr()))
            .flatten();
    }
    if let Some(f) = any.downcast_ref::<ScalarFunctionExpr>() {
        let args = f.args();
        let constant = |x: &Arc<dyn PhysicalExpr>| x.is::<Literal>();
        return match f.name() {
            // date_bin(stride, ts [, origin]) and date_trunc(unit, ts)
            "date_bin" | "date_trunc"
                if args.len() >= 2 && constant(&args[0]) && args.iter().skip(2).all(constant) =>
            {
                monotone_column(&args[1])
            }
            _ => None,
        };
    }
    None
}

/// The watermark of `e`'s result, given the watermarks of the columns it
/// reads: defined when `e` is monotone in one column that has a watermark,
/// by evaluating `e` at that watermark.
pub fn derive(e: &Arc<dyn PhysicalExpr>, wms: &[Option<i64>]) -> Option<i64> {
    let col = monotone_column(e)?;
    let wm = (*wms.get(col)?)?;
    // Only column `col` is read: the others are placeholders.
    let columns: Vec<ArrayRef> = (0..wms.len())
        .map(|i| {
            if i == col {
                Arc::new(TimestampMicrosecondArray::from(vec![wm])) as ArrayRef
            } else {
                new_null_array(&DataType::Null, 1)
            }
        })
        .collect();
    let fields: Vec<Field> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .ok()?;
    let out = e.evaluate(&batch).ok()?.into_array(1).ok()?;
    if !matches!(
        out.data_type(),
        DataType::Timestamp(_, _) | DataType::Date32
    ) {
        return None;
    }
    let out = micros(&out).ok()?;
    out.is_valid(0).then(|| out.value(0))
}

/// Per column, the least of the inputs' watermarks (none where an input has
/// none): what a union of the inputs can promise.
pub fn least(inputs: &[&[Option<i64>]], width: usize) -> Watermarks {
    (0..width)
        .map(|c| {
            inputs
                .iter()
                .map(|w| w.get(c).copied().flatten())
                .try_fold(i64::MAX, |acc, w| w.map(|w| acc.min(w)))
        })
        .map(|w| if inputs.is_empty() { None } else { w })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_rows_follow_log_order_not_batching() {
        let ts: Vec<Option<i64>> = vec![Some(100), Some(50), Some(200), Some(95), None, Some(96)];
        let all = TimestampMicrosecondArray::from(ts.clone());
        let mut max = None;
        let (keep, late) = admit_rows(&all, &mut max, 100);
        // 95 is late after 200 (watermark 100); 50 is not (watermark 0)
        assert_eq!(late, 2);
        let keep = keep.unwrap();
        let kept: Vec<bool> = keep.iter().map(|b| b.unwrap()).collect();
        assert_eq!(kept, vec![true, true, true, false, true, false]);
        // the same rows one at a time: the same decisions
        let mut max = None;
        let mut one_by_one = Vec::new();
        for t in ts {
            let (k, _) = admit_rows(&TimestampMicrosecondArray::from(vec![t]), &mut max, 100);
            one_by_one.push(k.is_none());
        }
        assert_eq!(one_by_one, kept);
    }

    #[test]
    fn least_needs_every_input() {
        let a = [Some(5), None, Some(1)];
        let b = [Some(3), Some(4), None];
        assert_eq!(least(&[&a, &b], 3), vec![Some(3), None, None]);
        assert_eq!(least(&[&a], 3), vec![Some(5), None, Some(1)]);
    }
}
