//! OVER window functions (`lag`, `lead`, `row_number`, `rank`,
//! `dense_rank`, `ntile`, `sum`/`count`/`min`/`max`/`avg` and
//! `first_value`/`last_value`/`nth_value` over running, whole-partition
//! or sliding `ROWS` frames), maintained per partition.
//!
//! Every row is kept in its partition in order (sort key in Arrow's
//! order-preserving row encoding, then the row itself, so ties are broken
//! the same way every time), each copy with the values it was last output
//! with and the running state behind them (position, rank, accumulators).
//! A step recomputes only from the first changed position of each touched
//! partition:
//!
//! - back by the largest `lead` offset (those rows look ahead into the
//!   change), and to the start of the peer group when a RANGE frame
//!   includes peers;
//! - forward to the end of the partition when a function is cumulative
//!   (row numbers, ranks and running aggregates of every later row move),
//!   or only past the last change by the largest `lag` offset otherwise.
//!
//! A sliding frame `ROWS BETWEEN a PRECEDING AND b FOLLOWING` reads `a`
//! copies behind and `b` ahead, as a `lag` and a `lead` by those offsets
//! do, and is computed over them: O(a + b) per recomputed row. A function
//! of the whole partition (`ntile`, a value of a frame that ends with the
//! partition) recomputes the whole partition a change touches.
//!
//! Rows whose values did not change emit nothing. Appending in order (the
//! common case of a stream ordered by event time) therefore costs
//! O(log n + offsets) per row, not O(partition).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::row::RowConverter;
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Reader, Writer};
use super::topn::{PartitionOrder, SortKey};
use super::{DataflowError, Delta, Operator, Result, StateSize};

/// The aggregate of a window aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

/// Which rows an aggregate sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default with
    /// ORDER BY): every row up to the current one and its peers.
    Peers,
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`.
    Rows,
    /// The whole partition.
    Whole,
    /// `ROWS BETWEEN` two offsets from the current row (negative:
    /// preceding): the rows from `start` to `end`, none when `start > end`.
    Sliding { start: i64, end: i64 },
}

/// Which row of its frame a value function reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    First,
    Last,
    /// The n-th row (from 1); NULL when the frame is shorter.
    Nth(usize),
}

/// One window function. `arg` indexes the operator's argument expressions.
#[derive(Debug, Clone)]
pub enum WinFn {
    RowNumber,
    Rank,
    DenseRank,
    /// `lag(arg, offset, default)`; a negative offset looks ahead.
    Lag {
        arg: usize,
        offset: i64,
        default: ScalarValue,
    },
    Agg {
        kind: AggKind,
        arg: usize,
        frame: Frame,
    },
    /// `first_value`, `last_value`, `nth_value`.
    Value {
        pick: Pick,
        arg: usize,
        frame: Frame,
    },
    /// `ntile(n)`: the bucket, 1 to n, of n as equal as can be.
    Ntile(u64),
}

/// A running accumulator: a sum / extreme and a count of non-NULL values.
#[derive(Debug, Clone, PartialEq)]
struct Acc {
    value: ScalarValue,
    count: i64,
}

/// One copy of a row: what it was output with and the running state at it.
#[derive(Debug, Clone, PartialEq)]
struct Cell {
    pos: i64,
    rank: i64,
    dense: i64,
    accs: Vec<Acc>,
    outs: Vec<ScalarValue>,
}

struct Slot {
    count: i64,
    args: Vec<ScalarValue>,
    cells: Vec<Cell>,
}

type Id = (Box<[u8]>, Box<[u8]>);
type Part = BTreeMap<Id, Slot>;

pub struct Over {
    keys: PartitionOrder,
    /// argument expressions and the type each is cast to
    args: Vec<(Arc<dyn PhysicalExpr>, DataType)>,
    funcs: Vec<WinFn>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    row_converter: RowConverter,
    parts: HashMap<Box<[u8]>, Part>,
    /// copies a `lag` reads behind / a `lead` reads ahead
    max_lag: usize,
    max_lead: usize,
    /// some function's value depends on every earlier row
    cumulative: bool,
    /// some aggregate includes peers
    peers: bool,
    /// some function sees the whole partition
    whole: bool,
    /// copies from the start of the partition a value function reads
    head: usize,
    /// the type of each function's accumulator value (Int64 where there
    /// is none), and a converter over output values then accumulator
    /// values, for checkpoints
    acc_types: Vec<DataType>,
    cell_converter: RowConverter,
    /// Forgetting rows the watermark has made final, where possible.
    prune: Option<Prune>,
}

/// Rows of a partition below the watermark of the first ORDER BY column
/// can neither change nor gain a row before them (a column watermark
/// covers retractions too), so all but the last few are dropped: the
/// `keep` copies a recomputation may start from (`lead` offset), read
/// behind it (`lag` offset) and seed its running state from (one more),
/// completed to whole peer groups, plus one more group where a frame
/// includes peers.
struct Prune {
    /// the input column of the first ORDER BY key (ascending, NULLS LAST)
    column: usize,
    data_type: DataType,
    /// that column alone, in the sort key's encoding
    converter: RowConverter,
    keep: usize,
    active: bool,
    watermark: Option<i64>,
}

impl Over {
    /// `schema` is the input schema followed by one column per function.
    pub fn new(
        partition: Vec<Arc<dyn PhysicalExpr>>,
        order: Vec<SortKey>,
        args: Vec<(Arc<dyn PhysicalExpr>, DataType)>,
        funcs: Vec<WinFn>,
        input_schema: SchemaRef,
        schema: SchemaRef,
    ) -> Result<Over> {
        let prune = match order.first() {
            Some((e, o)) if !o.descending && !o.nulls_first => {
                let any: &dyn PhysicalExpr = e.as_ref();
                match any.downcast_ref::<datafusion::physical_expr::expressions::Column>() {
                    Some(c) => {
                        let data_type = input_schema.field(c.index()).data_type().clone();
                        Some(Prune {
                            column: c.index(),
                            converter: RowConverter::new(vec![
                                datafusion::arrow::row::SortField::new_with_options(
                                    data_type.clone(),
                                    *o,
                                ),
                            ])?,
                            data_type,
                            keep: 1,
                            active: false,
                            watermark: None,
                        })
                    }
                    None => None,
                }
            }
            _ => None,
        };
        let keys = PartitionOrder::new(partition, order, input_schema.as_ref())?;
        let (mut max_lag, mut max_lead) = (0usize, 0usize);
        let (mut cumulative, mut peers, mut whole) = (false, false, false);
        let mut head = 0usize;
        let offset = |n: i64| usize::try_from(n.max(0)).unwrap_or(usize::MAX);
        for f in &funcs {
            let frame = match f {
                WinFn::Agg { frame, .. } | WinFn::Value { frame, .. } => Some(*frame),
                _ => None,
            };
            match frame {
                Some(Frame::Sliding { start, end }) => {
                    max_lag = max_lag.max(offset(start.saturating_neg()));
                    max_lead = max_lead.max(offset(end));
                    continue;
                }
                Some(frame) => {
                    cumulative = true;
                    peers |= frame == Frame::Peers;
                    whole |= frame == Frame::Whole;
                }
                None => {}
            }
            match f {
                WinFn::Lag { offset, .. } => {
                    let o = usize::try_from(offset.unsigned_abs()).unwrap_or(usize::MAX);
                    if *offset >= 0 {
                        max_lag = max_lag.max(o);
                    } else {
                        max_lead = max_lead.max(o);
                    }
                }
                WinFn::RowNumber | WinFn::Rank | WinFn::DenseRank => cumulative = true,
                WinFn::Agg { .. } => {}
                WinFn::Value { pick, .. } => {
                    head = head.max(match pick {
                        Pick::First => 1,
                        Pick::Nth(n) => *n,
                        Pick::Last => 0,
                    })
                }
                WinFn::Ntile(_) => {
                    cumulative = true;
                    whole = true;
                }
            }
        }
        let n_in = input_schema.fields().len();
        if schema.fields().len() != n_in + funcs.len() {
            return Err(DataflowError::Eval(format!(
                "window output has {} columns, expected {}",
                schema.fields().len(),
                n_in + funcs.len()
            )));
        }
        let n_in = input_schema.fields().len();
        let acc_types: Vec<DataType> = funcs
            .iter()
            .enumerate()
            .map(|(i, f)| match f {
                WinFn::Agg {
                    kind: AggKind::Avg, ..
                } => DataType::Float64,
                WinFn::Agg {
                    kind: AggKind::Sum | AggKind::Min | AggKind::Max,
                    ..
                } => schema.field(n_in + i).data_type().clone(),
                _ => DataType::Int64,
            })
            .collect();
        let cell_converter = RowConverter::new(
            (0..funcs.len())
                .map(|i| schema.field(n_in + i).data_type().clone())
                .chain(acc_types.iter().cloned())
                .map(datafusion::arrow::row::SortField::new)
                .collect(),
        )?;
        let keep = max_lag.saturating_add(max_lead).saturating_add(1);
        Ok(Over {
            keys,
            acc_types,
            cell_converter,
            prune: prune
                .filter(|_| !whole && head == 0)
                .map(|p| Prune { keep, ..p }),
            args,
            funcs,
            row_converter: super::row_converter(&input_schema)?,
            input_schema,
            schema: super::relax(&schema),
            parts: HashMap::new(),
            max_lag,
            max_lead,
            cumulative,
            peers,
            whole,
            head,
        })
    }

    /// The watermark in the first ORDER BY column's encoding, when rows
    /// below it are to be dropped (see [`Prune`]).
    fn prune_bound(&self) -> Result<Option<Box<[u8]>>> {
        let Some(p) = &self.prune else {
            return Ok(None);
        };
        let (true, Some(w)) = (p.active, p.watermark) else {
            return Ok(None);
        };
        let at: ArrayRef = Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(
            vec![w],
        ));
        let at = cast(&at, &p.data_type)?;
        Ok(Some(
            p.converter.convert_columns(&[at])?.row(0).as_ref().into(),
        ))
    }

    /// Drops a partition's rows below `bound` but the last `keep` copies,
    /// their peer group, and one more group where a frame includes peers.
    fn prune_part(&self, part: &mut Part, bound: &[u8]) {
        let keep = self.prune.as_ref().map_or(usize::MAX, |p| p.keep);
        // the slots below the watermark, from the front (a key whose first
        // column equals it is longer than `bound`, so not below)
        let below: Vec<(&Id, i64)> = part
            .iter()
            .take_while(|(k, _)| *k.0 < *bound)
            .map(|(k, s)| (k, s.count))
            .collect();
        let mut cut = below.len();
        let mut kept = 0usize;
        while cut > 0 && kept < keep {
            cut -= 1;
            kept += usize::try_from(below[cut].1).unwrap_or(0);
        }
        let group_start = |mut c: usize| {
            while c > 0 && below[c - 1].0 .0 == below[c].0 .0 {
                c -= 1;
            }
            c
        };
        cut = group_start(cut);
        if self.peers && cut > 0 {
            cut = group_start(cut - 1);
        }
        if cut > 0 {
            let first_kept = below[cut].0.clone();
            *part = part.split_off(&first_kept);
        }
    }

    /// Partition keys, sort keys, encoded rows and argument values of a batch.
    fn encode(&self, batch: &RecordBatch) -> Result<Encoded> {
        let n = batch.num_rows();
        let eval = |e: &Arc<dyn PhysicalExpr>| -> Result<ArrayRef> {
            Ok(e.evaluate(batch)?.into_array(n)?)
        };
        let (parts, keys) = self.keys.keys(batch)?;
        let rows = super::EncodedRows::new(&self.row_converter, batch)?;
        let mut args: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(self.args.len()); n];
        for (e, t) in &self.args {
            let a = eval(e)?;
            let a = if a.data_type() == t { a } else { cast(&a, t)? };
            for (i, out) in args.iter_mut().enumerate() {
                out.push(ScalarValue::try_from_array(&a, i)?);
            }
        }
        Ok(Encoded {
            ids: keys
                .into_iter()
                .enumerate()
                .map(|(i, k)| (k, rows.row(i).as_ref().into()))
                .collect(),
            parts,
            args,
        })
    }

    /// The first key to recompute in `part` when `first` is the first
    /// changed one: back by the largest lead offset, and to the start of
    /// the peer group when an aggregate includes peers.
    fn start(&self, part: &Part, first: &Id) -> Option<Id> {
        if self.whole {
            return part.keys().next().cloned();
        }
        let mut start: Option<&Id> = part.range(first..).next().map(|(k, _)| k);
        let mut back = self.max_lead;
        for (k, s) in part.range(..first).rev() {
            if back == 0 {
                // peers of the first change, or of where the walk starts
                let same_group = k.0 == first.0 || start.is_some_and(|st| st.0 == k.0);
                if !(self.peers && same_group) {
                    break;
                }
            }
            back = back.saturating_sub(usize::try_from(s.count).unwrap_or(0));
            start = Some(k);
        }
        start.cloned()
    }

    /// Recomputes `part` from `start` and appends the output changes.
    /// `last` is the last changed key (the walk may stop past it when no
    /// function is cumulative).
    fn recompute(&self, part: &mut Part, start: &Id, last: &Id, out: &mut Output) -> Result<()> {
        // the state before `start`: the last copy of the slot before it
        let before = part.range(..start).next_back();
        let (mut pos, mut rank, mut dense, mut accs) =
            match before.and_then(|(_, s)| s.cells.last()) {
                Some(c) => (c.pos, c.rank, c.dense, c.accs.clone()),
                None => (0, 0, 0, self.empty_accs()),
            };
        let mut prev_key: Option<&[u8]> = before.map(|(k, _)| &k.0[..]);
        // argument values of the copies before `start` a lag reads
        let mut behind: Vec<&[ScalarValue]> = Vec::new();
        if self.max_lag > 0 {
            'outer: for (_, s) in part.range(..start).rev() {
                for _ in 0..s.count {
                    if behind.len() >= self.max_lag {
                        break 'outer;
                    }
                    behind.push(&s.args);
                }
            }
            behind.reverse();
        }
        // the slots to recompute
        let mut keys: Vec<(&Id, &Slot)> = Vec::new();
        let mut after_last = 0usize;
        for (k, s) in part.range(start..) {
            if !self.cumulative && k > last {
                if after_last >= self.max_lag {
                    break;
                }
                after_last += usize::try_from(s.count).unwrap_or(0);
            }
            keys.push((k, s));
        }
        // argument values a lead reads ahead of them
        let mut ahead: Vec<&[ScalarValue]> = Vec::new();
        if self.max_lead > 0 {
            if let Some((end, _)) = keys.last() {
                'outer2: for (_, s) in
                    part.range::<Id, _>((Bound::Excluded(*end), Bound::Unbounded))
                {
                    for _ in 0..s.count {
                        if ahead.len() >= self.max_lead {
                            break 'outer2;
                        }
                        ahead.push(&s.args);
                    }
                }
            }
        }
        // the copies in order: (slot index, args)
        let mut seq: Vec<&[ScalarValue]> = behind;
        let first_new = seq.len();
        let mut owner: Vec<usize> = Vec::new();
        for (i, (_, s)) in keys.iter().enumerate() {
            for _ in 0..s.count {
                seq.push(&s.args);
                owner.push(i);
            }
        }
        seq.extend(ahead);
        // the partition's first copies, size and last copy, for functions
        // that read them
        let head: Vec<&[ScalarValue]> = part
            .values()
            .flat_map(|s| std::iter::repeat_n(&s.args[..], usize::try_from(s.count).unwrap_or(0)))
            .take(self.head)
            .collect();
        let (total, tail) = if self.whole {
            (
                part.values().map(|s| s.count).sum::<i64>(),
                part.values().next_back().map(|s| &s.args[..]),
            )
        } else {
            (0, None)
        };
        // whole-partition totals
        let totals = if self.whole {
            let mut t = self.empty_accs();
            for s in part.values() {
                for _ in 0..s.count {
                    self.fold(&mut t, &s.args, |f| f == Frame::Whole)?;
                }
            }
            Some(t)
        } else {
            None
        };
        let mut new_cells: Vec<Vec<Cell>> = vec![Vec::new(); keys.len()];
        let mut j = 0usize;
        while j < owner.len() {
            // one peer group: copies with the same sort key
            let key: &[u8] = &keys[owner[j]].0 .0;
            let mut end = j;
            while end < owner.len() && *keys[owner[end]].0 .0 == *key {
                end += 1;
            }
            let new_group = prev_key != Some(key);
            // the position of the group's last copy and its index in `seq`
            let group_end_pos = pos + (end - j) as i64;
            let group_last = first_new + end - 1;
            // peer aggregates see the whole group
            let mut group_accs = accs.clone();
            if self.peers {
                for c in j..end {
                    self.fold(&mut group_accs, seq[first_new + c], |f| f == Frame::Peers)?;
                }
            }
            for c in j..end {
                pos += 1;
                if new_group && c == j {
                    rank = pos;
                    dense += 1;
                }
                let args = seq[first_new + c];
                self.fold(&mut accs, args, |f| f == Frame::Rows)?;
                if self.peers {
                    for (a, (g, f)) in accs.iter_mut().zip(group_accs.iter().zip(&self.funcs)) {
                        if matches!(
                            f,
                            WinFn::Agg {
                                frame: Frame::Peers,
                                ..
                            }
                        ) {
                            *a = g.clone();
                        }
                    }
                }
                let i = first_new + c;
                let outs = self
                    .funcs
                    .iter()
                    .enumerate()
                    .map(|(fi, f)| {
                        Ok(match f {
                            WinFn::RowNumber => ScalarValue::UInt64(Some(pos as u64)),
                            WinFn::Rank => ScalarValue::UInt64(Some(rank as u64)),
                            WinFn::DenseRank => ScalarValue::UInt64(Some(dense as u64)),
                            WinFn::Lag {
                                arg,
                                offset,
                                default,
                            } => {
                                let at = i as i64 - offset;
                                if at >= 0 && (at as usize) < seq.len() {
                                    seq[at as usize][*arg].clone()
                                } else {
                                    default.clone()
                                }
                            }
                            WinFn::Agg {
                                kind,
                                arg,
                                frame: Frame::Sliding { start, end },
                            } => {
                                let mut a = self.empty_acc(fi);
                                if let Some((lo, hi)) = window(i, *start, *end, seq.len()) {
                                    for row in &seq[lo..=hi] {
                                        fold_value(*kind, &mut a, &row[*arg])?;
                                    }
                                }
                                finish(*kind, &a)?
                            }
                            WinFn::Value {
                                pick,
                                arg,
                                frame: Frame::Sliding { start, end },
                            } => match window(i, *start, *end, seq.len()) {
                                None => ScalarValue::Null,
                                Some((lo, hi)) => {
                                    let at = match pick {
                                        Pick::First => Some(lo),
                                        Pick::Last => Some(hi),
                                        Pick::Nth(n) => Some(lo + n - 1).filter(|&at| at <= hi),
                                    };
                                    at.map_or(ScalarValue::Null, |at| seq[at][*arg].clone())
                                }
                            },
                            WinFn::Value { pick, arg, frame } => {
                                // a frame from the start of the partition
                                let len = match frame {
                                    Frame::Rows => pos,
                                    Frame::Peers => group_end_pos,
                                    _ => total,
                                };
                                let row = match pick {
                                    Pick::First => head.first().copied(),
                                    Pick::Nth(n) if (*n as i64) <= len => head.get(n - 1).copied(),
                                    Pick::Nth(_) => None,
                                    Pick::Last => match frame {
                                        Frame::Rows => Some(args),
                                        Frame::Peers => Some(seq[group_last]),
                                        _ => tail,
                                    },
                                };
                                row.map_or(ScalarValue::Null, |r| r[*arg].clone())
                            }
                            WinFn::Ntile(n) => ScalarValue::UInt64(Some(ntile(pos, total, *n))),
                            WinFn::Agg { kind, frame, .. } => {
                                let a = match frame {
                                    Frame::Whole => totals.as_ref().map(|t| &t[fi]),
                                    _ => Some(&accs[fi]),
                                };
                                a.map(|a| finish(*kind, a))
                                    .transpose()?
                                    .unwrap_or(ScalarValue::Null)
                            }
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                new_cells[owner[c]].push(Cell {
                    pos,
                    rank,
                    dense,
                    accs: accs.clone(),
                    outs,
                });
            }
            prev_key = Some(key);
            j = end;
        }
        let n = keys.len();
        // emit the differences and store the new cells (the same slots, in
        // the same order)
        for ((k, slot), cells) in part.range_mut(start..).take(n).zip(new_cells) {
            for (c, cell) in cells.iter().enumerate() {
                match slot.cells.get(c) {
                    Some(old) if old.outs == cell.outs => {}
                    Some(old) => {
                        out.push(&k.1, &old.outs, -1);
                        out.push(&k.1, &cell.outs, 1);
                    }
                    None => out.push(&k.1, &cell.outs, 1),
                }
            }
            for old in slot.cells.iter().skip(cells.len()) {
                out.push(&k.1, &old.outs, -1);
            }
            slot.cells = cells;
        }
        Ok(())
    }

    /// The output delta: input rows with their function values.
    fn output(
        &self,
        rows: Vec<Box<[u8]>>,
        values: Vec<Vec<ScalarValue>>,
        weights: Vec<i64>,
    ) -> Result<Option<Delta>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let mut cols = super::decode_rows(&self.row_converter, &rows)?;
        let n_in = cols.len();
        for i in 0..self.funcs.len() {
            let t = self.schema.field(n_in + i).data_type();
            cols.push(values_array(values.iter().map(|v| &v[i]), t)?);
        }
        Ok(Some(Delta::from_columns(&self.schema, cols, weights)?))
    }

    /// A fresh accumulator of function `i`.
    fn empty_acc(&self, i: usize) -> Acc {
        Acc {
            value: self
                .acc_types
                .get(i)
                .and_then(|t| ScalarValue::try_from(t).ok())
                .unwrap_or(ScalarValue::Null),
            count: 0,
        }
    }

    /// No accumulators without aggregates (then nothing allocates).
    fn empty_accs(&self) -> Vec<Acc> {
        if !self.funcs.iter().any(|f| matches!(f, WinFn::Agg { .. })) {
            return Vec::new();
        }
        self.acc_types
            .iter()
            .map(|t| Acc {
                value: ScalarValue::try_from(t).unwrap_or(ScalarValue::Null),
                count: 0,
            })
            .collect()
    }

    /// Adds one row's arguments to the accumulators of the aggregates whose
    /// frame `which` accepts.
    fn fold(
        &self,
        accs: &mut [Acc],
        args: &[ScalarValue],
        which: impl Fn(Frame) -> bool,
    ) -> Result<()> {
        for (a, f) in accs.iter_mut().zip(&self.funcs) {
            let WinFn::Agg { kind, arg, frame } = f else {
                continue;
            };
            if !which(*frame) {
                continue;
            }
            fold_value(*kind, a, &args[*arg])?;
        }
        Ok(())
    }
}

/// Adds one value to an accumulator (NULLs are skipped).
fn fold_value(kind: AggKind, a: &mut Acc, v: &ScalarValue) -> Result<()> {
    if v.is_null() {
        return Ok(());
    }
    a.count += 1;
    let better = match kind {
        AggKind::Count => return Ok(()),
        _ if a.value.is_null() => true,
        AggKind::Sum | AggKind::Avg => {
            a.value = add(&a.value, v)?;
            return Ok(());
        }
        AggKind::Min => v < &a.value,
        AggKind::Max => v > &a.value,
    };
    if better {
        a.value = v.clone();
    }
    Ok(())
}

/// The indexes in `0..len` of the frame `start..=end` around index `i`,
/// none when it is empty.
fn window(i: usize, start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let i = i as i64;
    let lo = i.saturating_add(start).max(0);
    let hi = i.saturating_add(end).min(len as i64 - 1);
    (lo <= hi).then_some((lo as usize, hi as usize))
}

/// The `ntile(n)` bucket of the `pos`-th of `total` rows: the first
/// `total % n` buckets hold one row more than the others.
fn ntile(pos: i64, total: i64, n: u64) -> u64 {
    let (pos, total) = (pos.max(1) as u64, total.max(1) as u64);
    let (q, r) = (total / n, total % n);
    if q == 0 {
        return pos;
    }
    let big = r * (q + 1);
    if pos <= big {
        (pos - 1) / (q + 1) + 1
    } else {
        r + (pos - 1 - big) / q + 1
    }
}

struct Encoded {
    ids: Vec<Id>,
    parts: Vec<Box<[u8]>>,
    args: Vec<Vec<ScalarValue>>,
}

/// Output rows: (encoded input row, function values) and weights.
#[derive(Default)]
struct Output {
    rows: Vec<Box<[u8]>>,
    values: Vec<Vec<ScalarValue>>,
    weights: Vec<i64>,
}

impl Output {
    fn push(&mut self, row: &[u8], values: &[ScalarValue], w: i64) {
        self.rows.push(row.into());
        self.values.push(values.to_vec());
        self.weights.push(w);
    }
}

/// Values of one type as an array of `t` (untyped NULLs as NULLs of `t`).
fn values_array<'a>(
    values: impl Iterator<Item = &'a ScalarValue>,
    t: &DataType,
) -> Result<ArrayRef> {
    let vals: Vec<&ScalarValue> = values.collect();
    let arr = match vals.iter().find(|v| !v.is_null()) {
        None => datafusion::arrow::array::new_null_array(t, vals.len()),
        Some(v) => {
            let null = ScalarValue::try_from(v.data_type())?;
            ScalarValue::iter_to_array(vals.into_iter().map(|v| {
                if v.is_null() {
                    null.clone()
                } else {
                    v.clone()
                }
            }))?
        }
    };
    Ok(if arr.data_type() == t {
        arr
    } else {
        cast(&arr, t)?
    })
}

fn add(a: &ScalarValue, b: &ScalarValue) -> Result<ScalarValue> {
    Ok(match (a, b) {
        (ScalarValue::Int64(Some(x)), ScalarValue::Int64(Some(y))) => {
            ScalarValue::Int64(Some(x.checked_add(*y).ok_or_else(|| {
                DataflowError::Eval("bigint out of range in a window sum".into())
            })?))
        }
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
            ScalarValue::Float64(Some(x + y))
        }
        _ => a.add_checked(b)?,
    })
}

fn finish(kind: AggKind, a: &Acc) -> Result<ScalarValue> {
    Ok(match kind {
        AggKind::Count => ScalarValue::Int64(Some(a.count)),
        AggKind::Avg => match &a.value {
            ScalarValue::Float64(Some(s)) if a.count > 0 => {
                ScalarValue::Float64(Some(s / a.count as f64))
            }
            _ => ScalarValue::Float64(None),
        },
        _ => a.value.clone(),
    })
}

impl Operator for Over {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let Some(d) = inputs.first().copied().flatten().filter(|d| !d.is_empty()) else {
            return Ok(None);
        };
        let Encoded { ids, parts, args } = self.encode(&d.batch)?;
        // partition → (first, last) changed key, as indexes into `ids`
        let mut touched: HashMap<&[u8], (usize, usize)> = HashMap::new();
        let mut out = Output::default();
        for (i, (a, &w)) in args.into_iter().zip(d.weights.values()).enumerate() {
            if w == 0 {
                continue;
            }
            let (id, p) = (&ids[i], &parts[i]);
            if !self.parts.contains_key(p) {
                self.parts.insert(p.clone(), Part::new());
            }
            let part = self
                .parts
                .get_mut(p)
                .ok_or_else(|| DataflowError::Eval("window partition vanished".into()))?;
            let count = match part.get_mut(id) {
                Some(slot) => {
                    slot.count += w;
                    slot.count
                }
                None => {
                    part.insert(
                        id.clone(),
                        Slot {
                            count: w,
                            args: a,
                            cells: Vec::new(),
                        },
                    );
                    w
                }
            };
            if count < 0 {
                return Err(DataflowError::Eval(
                    "window input retracted a row it never inserted".into(),
                ));
            }
            if count == 0 {
                if let Some(s) = part.remove(id) {
                    for c in &s.cells {
                        out.push(&id.1, &c.outs, -1);
                    }
                }
            }
            match touched.get_mut(&p[..]) {
                Some((first, last)) => {
                    if *id < ids[*first] {
                        *first = i;
                    } else if *id > ids[*last] {
                        *last = i;
                    }
                }
                None => {
                    touched.insert(&p[..], (i, i));
                }
            }
        }
        let mut touched: Vec<_> = touched.into_iter().collect();
        touched.sort_unstable_by(|a, b| a.0.cmp(b.0));
        // only touched partitions are pruned: a sweep of all of them would
        // cost every partition ever seen, each step
        let bound = self.prune_bound()?;
        for (p, (first, last)) in touched {
            let Some(held) = self.parts.get_mut(p) else {
                continue;
            };
            let mut part = std::mem::take(held);
            if let Some(start) = self.start(&part, &ids[first]) {
                self.recompute(&mut part, &start, &ids[last], &mut out)?;
            }
            if let Some(b) = &bound {
                self.prune_part(&mut part, b);
            }
            if part.is_empty() {
                self.parts.remove(p);
            } else if let Some(held) = self.parts.get_mut(p) {
                *held = part;
            }
        }
        if out.weights.iter().all(|w| *w > 0) {
            return self.output(out.rows, out.values, out.weights);
        }
        // a row retracted and inserted with the same values cancels
        let mut net: HashMap<(Box<[u8]>, Vec<ScalarValue>), i64> = HashMap::new();
        let mut order = Vec::new();
        for ((r, v), w) in out.rows.into_iter().zip(out.values).zip(out.weights) {
            let k = (r, v);
            match net.get_mut(&k) {
                Some(n) => *n += w,
                None => {
                    order.push(k.clone());
                    net.insert(k, w);
                }
            }
        }
        let mut rows = Vec::new();
        let mut values = Vec::new();
        let mut weights = Vec::new();
        for k in order {
            let w = net[&k];
            if w == 0 {
                continue;
            }
            let (r, v) = k;
            rows.push(r);
            values.push(v);
            weights.push(w);
        }
        self.output(rows, values, weights)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        let (part, order) = self.keys.text();
        let n_in = self.input_schema.fields().len();
        let names: Vec<String> = (0..self.funcs.len())
            .map(|i| self.schema.field(n_in + i).name().clone())
            .collect();
        format!(
            "Over: [{}]{}{}",
            names.join(", "),
            if part.is_empty() {
                String::new()
            } else {
                format!(" partition by [{part}]")
            },
            if order.is_empty() {
                String::new()
            } else {
                format!(" order by [{order}]")
            },
        )
    }

    fn state_size(&self) -> StateSize {
        let mut s = StateSize::default();
        for part in self.parts.values() {
            for ((k, r), slot) in part {
                s.rows += 1;
                s.bytes += (k.len() + r.len()) as u64
                    + 48
                    + slot.args.iter().map(|a| a.size() as u64).sum::<u64>()
                    + slot
                        .cells
                        .iter()
                        .map(|c| {
                            40 + c.outs.iter().map(|v| v.size() as u64).sum::<u64>()
                                + c.accs
                                    .iter()
                                    .map(|a| a.value.size() as u64 + 8)
                                    .sum::<u64>()
                        })
                        .sum::<u64>();
            }
        }
        s
    }

    /// Only the rows are written; arguments and values are recomputed on
    /// restore.
    /// Rows, multiplicities and every copy's cell (output values and
    /// running state): rows pruned by the watermark are gone, so the
    /// cells cannot be recomputed from the rows kept.
    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        let rows: usize = self.parts.values().map(BTreeMap::len).sum();
        w.u64(rows as u64);
        let mut cells: Vec<&Cell> = Vec::new();
        for part in self.parts.values() {
            for ((_, r), slot) in part {
                w.bytes(r);
                w.i64(slot.count);
                w.u64(slot.cells.len() as u64);
                for c in &slot.cells {
                    w.i64(c.pos);
                    w.i64(c.rank);
                    w.i64(c.dense);
                    w.u64(c.accs.len() as u64);
                    for a in &c.accs {
                        w.i64(a.count);
                    }
                    cells.push(c);
                }
            }
        }
        // the cells' values, column by column, in one row encoding
        w.u64(cells.len() as u64);
        if !cells.is_empty() {
            let n_in = self.input_schema.fields().len();
            let mut cols = Vec::with_capacity(2 * self.funcs.len());
            for f in 0..self.funcs.len() {
                let t = self.schema.field(n_in + f).data_type();
                cols.push(values_array(cells.iter().map(|c| &c.outs[f]), t)?);
            }
            for (f, t) in self.acc_types.iter().enumerate() {
                let null = ScalarValue::try_from(t)?;
                cols.push(values_array(
                    cells
                        .iter()
                        .map(|c| c.accs.get(f).map_or(&null, |a| &a.value)),
                    t,
                )?);
            }
            let encoded = self.cell_converter.convert_columns(&cols)?;
            for i in 0..cells.len() {
                w.bytes(encoded.row(i).as_ref());
            }
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.parts.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        let n = r.u64()?;
        let mut rows: Vec<&[u8]> = Vec::new();
        let mut counts = Vec::new();
        // per slot: (pos, rank, dense, acc counts) of each copy
        type Shape = (i64, i64, i64, Vec<i64>);
        let mut shapes: Vec<Vec<Shape>> = Vec::new();
        for _ in 0..n {
            rows.push(r.bytes()?);
            counts.push(r.i64()?);
            let mut copies = Vec::new();
            for _ in 0..r.u64()? {
                let (pos, rank, dense) = (r.i64()?, r.i64()?, r.i64()?);
                let accs = (0..r.u64()?).map(|_| r.i64()).collect::<Result<Vec<_>>>()?;
                copies.push((pos, rank, dense, accs));
            }
            shapes.push(copies);
        }
        let n_cells = r.u64()?;
        let cell_rows = (0..n_cells)
            .map(|_| r.bytes())
            .collect::<Result<Vec<_>>>()?;
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in window state".into(),
            ));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let values = if cell_rows.is_empty() {
            Vec::new()
        } else {
            super::decode_rows(&self.cell_converter, &cell_rows)?
        };
        let cols = super::decode_rows(&self.row_converter, &rows)?;
        let batch = RecordBatch::try_new(self.input_schema.clone(), cols)?;
        let Encoded { ids, parts, args } = self.encode(&batch)?;
        let nf = self.funcs.len();
        let mut next_cell = 0usize;
        for ((((id, p), a), count), copies) in
            ids.into_iter().zip(parts).zip(args).zip(counts).zip(shapes)
        {
            let mut cells = Vec::with_capacity(copies.len());
            for (pos, rank, dense, acc_counts) in copies {
                let i = next_cell;
                next_cell += 1;
                let value = |c: usize| -> Result<ScalarValue> {
                    let col = values.get(c).ok_or_else(|| {
                        DataflowError::State("window state has too few cell values".into())
                    })?;
                    Ok(ScalarValue::try_from_array(col, i)?)
                };
                let outs = (0..nf).map(value).collect::<Result<Vec<_>>>()?;
                let accs = acc_counts
                    .into_iter()
                    .enumerate()
                    .map(|(f, count)| {
                        Ok(Acc {
                            value: value(nf + f)?,
                            count,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                cells.push(Cell {
                    pos,
                    rank,
                    dense,
                    accs,
                    outs,
                });
            }
            self.parts.entry(p).or_default().insert(
                id,
                Slot {
                    count,
                    args: a,
                    cells,
                },
            );
        }
        Ok(())
    }

    fn plan_watermarks(&mut self, inputs: &[&[Option<i64>]]) -> bool {
        let Some(p) = &mut self.prune else {
            return false;
        };
        let input = inputs.first().copied().unwrap_or(&[]);
        p.active = input.get(p.column).copied().flatten().is_some();
        p.active
    }

    fn set_watermarks(&mut self, inputs: &[&[Option<i64>]]) {
        let Some(p) = &mut self.prune else { return };
        let input = inputs.first().copied().unwrap_or(&[]);
        if let Some(w) = input.get(p.column).copied().flatten() {
            p.watermark = Some(p.watermark.map_or(w, |x| x.max(w)));
        }
    }

    fn preserves_append_only(&self) -> bool {
        false
    }
}
