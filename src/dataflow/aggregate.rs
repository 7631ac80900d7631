//! γ: GROUP BY with retractable accumulators (also `SELECT DISTINCT`, which
//! is a grouping without aggregates).
//!
//! State is arranged by group key (Arrow's order-preserving row encoding).
//! A step touches only the groups its rows carry: for each it updates the
//! accumulators with the rows' weights, then emits a retraction of the
//! group's previous output row and an insertion of its new one (nothing if
//! the row did not change). `min`/`max` keep a multiset of values per group
//! so that deleting the current extreme brings the next one back; when the
//! input can only grow (append-only) they keep just the extreme.
//! Without GROUP BY there is exactly one group, present even when empty
//! (`count(*)` is 0 then), as in SQL.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float64Array, Int64Array, RecordBatch,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, SchemaRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::physical_expr::PhysicalExpr;

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    CountDistinct,
    BoolAnd,
    BoolOr,
    StringAgg,
    ArrayAgg,
    /// The value of the first row in the aggregate's order (`DISTINCT ON`
    /// plans to this).
    FirstValue,
    /// The value of the last row in the aggregate's order.
    LastValue,
}

impl AggKind {
    pub fn name(&self) -> &'static str {
        match self {
            AggKind::CountStar => "count(*)",
            AggKind::Count => "count",
            AggKind::Sum => "sum",
            AggKind::Avg => "avg",
            AggKind::Min => "min",
            AggKind::Max => "max",
            AggKind::CountDistinct => "count(DISTINCT)",
            AggKind::BoolAnd => "bool_and",
            AggKind::BoolOr => "bool_or",
            AggKind::StringAgg => "string_agg",
            AggKind::ArrayAgg => "array_agg",
            AggKind::FirstValue => "first_value",
            AggKind::LastValue => "last_value",
        }
    }
}

/// One aggregate of the GROUP BY.
pub struct AggSpec {
    pub kind: AggKind,
    /// The argument (none for `count(*)`).
    pub arg: Option<Arc<dyn PhysicalExpr>>,
    /// `string_agg`'s delimiter.
    pub delimiter: Option<String>,
    /// The aggregate's `ORDER BY` (`string_agg`, `array_agg`,
    /// `first_value`, `last_value`); values that tie on it are ordered by
    /// the value itself.
    pub order: Vec<super::topn::SortKey>,
    /// `FILTER (WHERE ...)`.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// The output column (type as the batch plan computes it).
    pub output: Field,
    /// Argument type (for the value encoders and sums).
    pub arg_type: DataType,
}

/// A sum kept exactly: integers and decimals in i128, floats in f64.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SumVal {
    I(i128),
    F(f64),
}

#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    Sum {
        sum: SumVal,
        n: i64,
    },
    /// Multiset of encoded values (min, max, string_agg, array_agg,
    /// first_value, last_value); with an `ORDER BY`, each entry encodes
    /// the order keys before the value, so the map is in that order.
    Values(BTreeMap<Box<[u8]>, i64>),
    /// Append-only min/max: the extreme so far.
    Extreme(Option<Box<[u8]>>),
    Distinct(HashMap<Box<[u8]>, i64>),
    Bools {
        t: i64,
        f: i64,
    },
}

/// One aggregate value of an output row. Integers and floats (the common
/// results: counts, sums, averages) stay unboxed, so computing, comparing
/// and emitting a group's row allocates nothing for them.
#[derive(Debug, Clone)]
enum Out {
    Null,
    I(i64),
    F(f64),
    S(ScalarValue),
}

impl PartialEq for Out {
    fn eq(&self, other: &Out) -> bool {
        match (self, other) {
            (Out::Null, Out::Null) => true,
            (Out::I(a), Out::I(b)) => a == b,
            (Out::F(a), Out::F(b)) => a.to_bits() == b.to_bits(),
            (Out::S(a), Out::S(b)) => a == b,
            _ => false,
        }
    }
}

impl Out {
    /// The value as a scalar of the output type `t` (so a column of
    /// values and NULLs is of one type: `string_agg` computes `Utf8`, its
    /// column is `LargeUtf8`).
    fn into_scalar(self, t: &DataType) -> Result<ScalarValue> {
        let v = match self {
            Out::Null => return Ok(ScalarValue::try_from(t)?),
            Out::I(v) => ScalarValue::Int64(Some(v)),
            Out::F(v) => ScalarValue::Float64(Some(v)),
            Out::S(v) => v,
        };
        Ok(if v.data_type() == *t {
            v
        } else {
            v.cast_to(t)?
        })
    }
}

/// The output column of one aggregate, from its values.
fn out_column(vals: Vec<Out>, t: &DataType) -> Result<ArrayRef> {
    let a: ArrayRef = if vals.iter().all(|v| matches!(v, Out::I(_) | Out::Null)) {
        Arc::new(
            vals.iter()
                .map(|v| match v {
                    Out::I(x) => Some(*x),
                    _ => None,
                })
                .collect::<Int64Array>(),
        )
    } else if vals.iter().all(|v| matches!(v, Out::F(_) | Out::Null)) {
        Arc::new(
            vals.iter()
                .map(|v| match v {
                    Out::F(x) => Some(*x),
                    _ => None,
                })
                .collect::<Float64Array>(),
        )
    } else {
        let scalars = vals
            .into_iter()
            .map(|v| v.into_scalar(t))
            .collect::<Result<Vec<_>>>()?;
        ScalarValue::iter_to_array(scalars)?
    };
    Ok(if a.data_type() == t { a } else { cast(&a, t)? })
}

/// A group's bookkeeping; its accumulators and last emitted values live in
/// the aggregate's flat `accs` and `outs`, at the group's slot (so a new
/// group allocates only its key).
struct Group {
    key: Arc<[u8]>,
    count: i64,
    /// Whether `outs` holds the output row last emitted for this group.
    emitted: bool,
    touched: bool,
}

/// Per-batch view of an aggregate's argument.
enum ArgCol {
    None,
    Valid(Option<BooleanArray>),
    Int(Int64Array),
    Float(Float64Array),
    Dec(Decimal128Array),
    /// Encoded (order keys and) values; the argument itself when its NULLs
    /// are not values (`min`, `string_agg`, `count(DISTINCT)`), none when
    /// they are (`array_agg`, `first_value`).
    Encoded(Rows, Option<ArrayRef>),
    Bool(BooleanArray),
}

pub struct Aggregate {
    group_exprs: Vec<Arc<dyn PhysicalExpr>>,
    key_converter: RowConverter,
    aggs: Vec<AggSpec>,
    value_converters: Vec<Option<RowConverter>>,
    append_only: bool,
    groups: super::FastMap<Arc<[u8]>, usize>,
    slots: Vec<Option<Group>>,
    /// Accumulators, `aggs.len()` per slot.
    accs: Vec<Acc>,
    /// Last emitted aggregate values, `aggs.len()` per slot.
    outs: Vec<Out>,
    free: Vec<usize>,
    schema: SchemaRef,
    started: bool,
    /// The group key column that carries a watermark (a window bound, for
    /// windowed aggregates): a group whose value there is below the
    /// watermark is final and its state is dropped.
    window_key: Option<usize>,
    /// Window key value (µs) → keys of the groups with that value.
    closes: BTreeMap<i64, Vec<Arc<[u8]>>>,
    /// The window key's watermark as of the end of the last step: groups
    /// below it are final.
    watermark: Option<i64>,
    /// The watermark that holds once this step's rows are in.
    next_watermark: Option<i64>,
    /// Rows dropped for belonging to a group already final.
    late_rows: u64,
}

/// Whether row `row` of an encoded argument is a value of the aggregate
/// (not a NULL it skips).
fn counts(skip_nulls_of: &Option<ArrayRef>, row: usize) -> bool {
    skip_nulls_of.as_ref().is_none_or(|a| a.is_valid(row))
}

fn is_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

impl Aggregate {
    /// `schema` is the output: group columns, then one column per aggregate.
    /// `append_only` says the input never retracts.
    pub fn new(
        group_exprs: Vec<Arc<dyn PhysicalExpr>>,
        group_types: Vec<DataType>,
        aggs: Vec<AggSpec>,
        input_schema: &datafusion::arrow::datatypes::Schema,
        schema: SchemaRef,
        append_only: bool,
    ) -> Result<Aggregate> {
        let key_converter =
            RowConverter::new(group_types.into_iter().map(SortField::new).collect())?;
        let mut value_converters = Vec::with_capacity(aggs.len());
        for a in &aggs {
            let needs = matches!(
                a.kind,
                AggKind::Min
                    | AggKind::Max
                    | AggKind::CountDistinct
                    | AggKind::StringAgg
                    | AggKind::ArrayAgg
                    | AggKind::FirstValue
                    | AggKind::LastValue
            );
            value_converters.push(if needs {
                // the order keys, then the value (the last column)
                let mut fields = Vec::with_capacity(a.order.len() + 1);
                for (e, opts) in &a.order {
                    let t = e.data_type(input_schema)?;
                    fields.push(SortField::new_with_options(t, *opts));
                }
                fields.push(SortField::new(a.arg_type.clone()));
                Some(RowConverter::new(fields)?)
            } else {
                None
            });
        }
        Ok(Aggregate {
            group_exprs,
            key_converter,
            aggs,
            value_converters,
            append_only,
            groups: super::FastMap::default(),
            slots: Vec::new(),
            accs: Vec::new(),
            outs: Vec::new(),
            free: Vec::new(),
            schema: super::relax(&schema),
            started: false,
            window_key: None,
            closes: BTreeMap::new(),
            watermark: None,
            next_watermark: None,
            late_rows: 0,
        })
    }

    /// The window key of each row (µs), for aggregates with one.
    fn close_times(&self, keys: &[ArrayRef]) -> Result<Option<TimestampMicrosecondArray>> {
        let Some(idx) = self.window_key else {
            return Ok(None);
        };
        let col = keys
            .get(idx)
            .ok_or_else(|| DataflowError::Eval("window column is not a group key".into()))?;
        Ok(Some(super::watermark::micros(col)?))
    }

    /// The watermarks of the group keys, from the input's.
    fn key_watermarks(&self, inputs: &[&[Option<i64>]]) -> Vec<Option<i64>> {
        let input = inputs.first().copied().unwrap_or(&[]);
        self.group_exprs
            .iter()
            .map(|e| super::watermark::derive(e, input))
            .collect()
    }

    /// Forgets the groups whose window key is below the watermark.
    fn prune_closed(&mut self) {
        if self.next_watermark > self.watermark {
            self.watermark = self.next_watermark;
        }
        let Some(wm) = self.watermark else {
            return;
        };
        let open = self.closes.split_off(&wm);
        let closed = std::mem::replace(&mut self.closes, open);
        for key in closed.into_values().flatten() {
            if let Some(s) = self.groups.remove(&*key) {
                self.release(s);
            }
        }
    }

    /// Rebuilds the close-time index from the group keys (after restore).
    fn rebuild_closes(&mut self) -> Result<()> {
        self.closes.clear();
        if self.window_key.is_none() || self.groups.is_empty() {
            return Ok(());
        }
        let parser = self.key_converter.parser();
        let keys: Vec<&Arc<[u8]>> = self.groups.keys().collect();
        let rows: Vec<_> = keys.iter().map(|k| parser.parse(k)).collect();
        let cols = self.key_converter.convert_rows(rows)?;
        if let Some(times) = self.close_times(&cols)? {
            for (k, t) in keys.into_iter().zip(times.iter()) {
                if let Some(t) = t {
                    self.closes.entry(t).or_default().push(k.clone());
                }
            }
        }
        Ok(())
    }

    fn global(&self) -> bool {
        self.group_exprs.is_empty()
    }

    fn new_acc(&self, i: usize) -> Acc {
        let a = &self.aggs[i];
        {
            match a.kind {
                AggKind::CountStar | AggKind::Count => Acc::Count(0),
                AggKind::Sum | AggKind::Avg => Acc::Sum {
                    sum: if matches!(a.arg_type, DataType::Float32 | DataType::Float64) {
                        SumVal::F(0.0)
                    } else {
                        SumVal::I(0)
                    },
                    n: 0,
                },
                AggKind::Min | AggKind::Max | AggKind::FirstValue | AggKind::LastValue
                    if self.append_only =>
                {
                    Acc::Extreme(None)
                }
                AggKind::Min
                | AggKind::Max
                | AggKind::StringAgg
                | AggKind::ArrayAgg
                | AggKind::FirstValue
                | AggKind::LastValue => Acc::Values(BTreeMap::new()),
                AggKind::CountDistinct => Acc::Distinct(HashMap::new()),
                AggKind::BoolAnd | AggKind::BoolOr => Acc::Bools { t: 0, f: 0 },
            }
        }
    }

    /// Places a group in a slot (reused or new), with fresh accumulators.
    fn place(&mut self, g: Group) -> usize {
        let n = self.aggs.len();
        match self.free.pop() {
            Some(s) => {
                for i in 0..n {
                    self.accs[s * n + i] = self.new_acc(i);
                }
                self.slots[s] = Some(g);
                s
            }
            None => {
                for i in 0..n {
                    let acc = self.new_acc(i);
                    self.accs.push(acc);
                    self.outs.push(Out::Null);
                }
                self.slots.push(Some(g));
                self.slots.len() - 1
            }
        }
    }

    /// Frees a slot (its accumulators are dropped now, not at reuse).
    fn release(&mut self, s: usize) {
        let n = self.aggs.len();
        self.slots[s] = None;
        for i in 0..n {
            self.accs[s * n + i] = Acc::Count(0);
            self.outs[s * n + i] = Out::Null;
        }
        self.free.push(s);
    }

    /// The group's slot, and whether the group is new.
    fn slot_for(&mut self, key: &[u8]) -> (usize, bool) {
        if let Some(&s) = self.groups.get(key) {
            return (s, false);
        }
        let key: Arc<[u8]> = key.into();
        let s = self.place(Group {
            key: key.clone(),
            count: 0,
            emitted: false,
            touched: false,
        });
        self.groups.insert(key, s);
        (s, true)
    }

    fn arg_col(&self, i: usize, batch: &RecordBatch) -> Result<ArgCol> {
        let a = &self.aggs[i];
        let Some(e) = &a.arg else {
            return Ok(ArgCol::None);
        };
        let v = e.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(match a.kind {
            AggKind::CountStar => ArgCol::None,
            AggKind::Count => ArgCol::Valid(
                v.logical_nulls()
                    .map(|n| BooleanArray::new(n.into_inner(), None)),
            ),
            AggKind::Sum | AggKind::Avg => match v.data_type() {
                t if is_int(t) => ArgCol::Int(
                    cast(&v, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .clone(),
                ),
                DataType::Float32 | DataType::Float64 => ArgCol::Float(
                    cast(&v, &DataType::Float64)?
                        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
                        .clone(),
                ),
                DataType::Decimal128(_, _) => ArgCol::Dec(
                    v.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                        .clone(),
                ),
                other => {
                    return Err(DataflowError::Eval(format!(
                        "{} over {other} is not supported",
                        a.kind.name()
                    )))
                }
            },
            AggKind::BoolAnd | AggKind::BoolOr => ArgCol::Bool(v.as_boolean().clone()),
            _ => {
                let conv = self.value_converters[i]
                    .as_ref()
                    .ok_or_else(|| DataflowError::Eval("missing value encoder".into()))?;
                let mut cols = Vec::with_capacity(a.order.len() + 1);
                for (e, _) in &a.order {
                    cols.push(e.evaluate(batch)?.into_array(batch.num_rows())?);
                }
                cols.push(v.clone());
                let rows = conv.convert_columns(&cols)?;
                let nulls_are_values = matches!(
                    a.kind,
                    AggKind::ArrayAgg | AggKind::FirstValue | AggKind::LastValue
                );
                ArgCol::Encoded(rows, (!nulls_are_values).then_some(v))
            }
        })
    }

    /// The aggregate values of a group, into `out` (cleared first).
    fn values(&self, accs: &[Acc], out: &mut Vec<Out>) -> Result<()> {
        out.clear();
        for (i, (a, acc)) in self.aggs.iter().zip(accs).enumerate() {
            let t = a.output.data_type();
            let v = match (a.kind, acc) {
                (AggKind::CountStar | AggKind::Count, Acc::Count(n)) => Out::I(*n),
                (AggKind::Sum, Acc::Sum { sum, n }) => {
                    if *n == 0 {
                        Out::Null
                    } else {
                        match (sum, &a.arg_type) {
                            (SumVal::F(f), _) => Out::F(*f),
                            (SumVal::I(x), DataType::Decimal128(_, s)) => {
                                let (p, _) = match t {
                                    DataType::Decimal128(p, s) => (*p, *s),
                                    _ => (38, *s),
                                };
                                Out::S(ScalarValue::Decimal128(Some(*x), p, *s))
                            }
                            (SumVal::I(x), _) => match i64::try_from(*x) {
                                Ok(v) => Out::I(v),
                                Err(_) => {
                                    return Err(DataflowError::Eval(format!("sum overflows {t}")))
                                }
                            },
                        }
                    }
                }
                (AggKind::Avg, Acc::Sum { sum, n }) => {
                    if *n == 0 {
                        Out::Null
                    } else {
                        match (sum, &a.arg_type, t) {
                            (
                                SumVal::I(x),
                                DataType::Decimal128(_, s_in),
                                DataType::Decimal128(p, s_out),
                            ) => {
                                let shift = (*s_out as i32 - *s_in as i32).max(0) as u32;
                                let scaled = x
                                    .checked_mul(10i128.pow(shift))
                                    .ok_or_else(|| DataflowError::Eval("avg overflows".into()))?;
                                Out::S(ScalarValue::Decimal128(
                                    Some(scaled / *n as i128),
                                    *p,
                                    *s_out,
                                ))
                            }
                            (SumVal::I(x), _, _) => Out::F(*x as f64 / *n as f64),
                            (SumVal::F(f), _, _) => Out::F(*f / *n as f64),
                        }
                    }
                }
                (
                    AggKind::Min | AggKind::Max | AggKind::FirstValue | AggKind::LastValue,
                    Acc::Extreme(v),
                ) => match v {
                    None => Out::Null,
                    Some(b) => self.decode_one(i, b)?,
                },
                (AggKind::Min | AggKind::FirstValue, Acc::Values(m)) => match m.keys().next() {
                    None => Out::Null,
                    Some(b) => self.decode_one(i, b)?,
                },
                (AggKind::Max | AggKind::LastValue, Acc::Values(m)) => match m.keys().next_back() {
                    None => Out::Null,
                    Some(b) => self.decode_one(i, b)?,
                },
                (AggKind::CountDistinct, Acc::Distinct(m)) => Out::I(m.len() as i64),
                (AggKind::BoolAnd, Acc::Bools { t: tr, f }) => {
                    if tr + f == 0 {
                        Out::Null
                    } else {
                        Out::S(ScalarValue::Boolean(Some(*f == 0)))
                    }
                }
                (AggKind::BoolOr, Acc::Bools { t: tr, f }) => {
                    if tr + f == 0 {
                        Out::Null
                    } else {
                        Out::S(ScalarValue::Boolean(Some(*tr > 0)))
                    }
                }
                (AggKind::StringAgg, Acc::Values(m)) => {
                    if m.is_empty() {
                        Out::Null
                    } else {
                        let vals = self.decode_many(i, m)?;
                        let strings = cast(&vals, &DataType::Utf8)?;
                        let s = strings.as_string::<i32>();
                        let parts: Vec<&str> = s.iter().flatten().collect();
                        Out::S(ScalarValue::Utf8(Some(
                            parts.join(a.delimiter.as_deref().unwrap_or("")),
                        )))
                    }
                }
                (AggKind::ArrayAgg, Acc::Values(m)) => {
                    if m.is_empty() {
                        Out::Null
                    } else {
                        let vals = self.decode_many(i, m)?;
                        Out::S(ScalarValue::List(Arc::new(
                            datafusion::common::utils::SingleRowListArrayBuilder::new(vals)
                                .with_nullable(true)
                                .build_list_array(),
                        )))
                    }
                }
                (k, _) => {
                    return Err(DataflowError::State(format!(
                        "accumulator does not match {}",
                        k.name()
                    )))
                }
            };
            out.push(v);
        }
        Ok(())
    }

    fn decode_one(&self, i: usize, bytes: &[u8]) -> Result<Out> {
        let conv = self.value_converters[i]
            .as_ref()
            .ok_or_else(|| DataflowError::Eval("missing value encoder".into()))?;
        let parser = conv.parser();
        let cols = conv.convert_rows(std::iter::once(parser.parse(bytes)))?;
        let col = cols
            .last()
            .ok_or_else(|| DataflowError::Eval("empty value encoding".into()))?;
        Ok(match col.data_type() {
            _ if col.is_null(0) => Out::Null,
            DataType::Int64 => Out::I(col.as_primitive::<Int64Type>().value(0)),
            _ => Out::S(ScalarValue::try_from_array(col, 0)?),
        })
    }

    /// All values of a multiset, each repeated by its multiplicity.
    fn decode_many(&self, i: usize, m: &BTreeMap<Box<[u8]>, i64>) -> Result<ArrayRef> {
        let conv = self.value_converters[i]
            .as_ref()
            .ok_or_else(|| DataflowError::Eval("missing value encoder".into()))?;
        let parser = conv.parser();
        let rows = m
            .iter()
            .flat_map(|(k, n)| std::iter::repeat_n(k, (*n).max(0) as usize))
            .map(|k| parser.parse(k));
        let mut cols = conv.convert_rows(rows)?;
        cols.pop()
            .ok_or_else(|| DataflowError::Eval("empty value encoding".into()))
    }

    fn update(acc: &mut Acc, col: &ArgCol, row: usize, w: i64, filtered: bool) -> Result<()> {
        if filtered {
            return Ok(());
        }
        match (acc, col) {
            (Acc::Count(n), ArgCol::None) => *n += w,
            (Acc::Count(n), ArgCol::Valid(valid)) => {
                if valid.as_ref().is_none_or(|v| v.value(row)) {
                    *n += w
                }
            }
            (Acc::Sum { sum, n }, col) => {
                let add = match col {
                    ArgCol::Int(a) if a.is_valid(row) => {
                        Some(SumVal::I(a.value(row) as i128 * w as i128))
                    }
                    ArgCol::Dec(a) if a.is_valid(row) => Some(SumVal::I(a.value(row) * w as i128)),
                    ArgCol::Float(a) if a.is_valid(row) => Some(SumVal::F(a.value(row) * w as f64)),
                    _ => None,
                };
                if let Some(add) = add {
                    *sum = match (*sum, add) {
                        (SumVal::I(x), SumVal::I(y)) => SumVal::I(
                            x.checked_add(y)
                                .ok_or_else(|| DataflowError::Eval("sum overflows".into()))?,
                        ),
                        (SumVal::F(x), SumVal::F(y)) => SumVal::F(x + y),
                        (SumVal::I(x), SumVal::F(y)) => SumVal::F(x as f64 + y),
                        (SumVal::F(x), SumVal::I(y)) => SumVal::F(x + y as f64),
                    };
                    *n += w;
                }
            }
            (Acc::Values(m), ArgCol::Encoded(rows, arr)) => {
                if counts(arr, row) {
                    let k = rows.row(row);
                    let e = m.entry(k.as_ref().into()).or_insert(0);
                    *e += w;
                    if *e == 0 {
                        m.remove(k.as_ref());
                    }
                }
            }
            (Acc::Distinct(m), ArgCol::Encoded(rows, arr)) => {
                if counts(arr, row) {
                    let k = rows.row(row);
                    let e = m.entry(k.as_ref().into()).or_insert(0);
                    *e += w;
                    if *e == 0 {
                        m.remove(k.as_ref());
                    }
                }
            }
            (Acc::Bools { t, f }, ArgCol::Bool(b)) => {
                if b.is_valid(row) {
                    if b.value(row) {
                        *t += w
                    } else {
                        *f += w
                    }
                }
            }
            (Acc::Extreme(_), ArgCol::Encoded(..)) => {
                // handled by `update_extreme`, which knows min from max
            }
            _ => {
                return Err(DataflowError::State(
                    "accumulator does not match its input".into(),
                ))
            }
        }
        Ok(())
    }

    /// Builds the output delta for the touched groups: per group whose row
    /// changed, a retraction of the old row and an insertion of the new.
    fn emit(&mut self, touched: Vec<usize>) -> Result<Option<Delta>> {
        let n_aggs = self.aggs.len();
        // output rows: keys in one buffer, values column by column
        let mut key_buf: Vec<u8> = Vec::new();
        let mut key_ends: Vec<usize> = Vec::new();
        let mut cols: Vec<Vec<Out>> = vec![Vec::new(); n_aggs];
        let mut weights: Vec<i64> = Vec::new();
        let mut scratch: Vec<Out> = Vec::with_capacity(n_aggs);
        let global = self.global();
        for s in touched {
            let Some(g) = self.slots[s].as_mut() else {
                continue;
            };
            if g.count < 0 {
                return Err(DataflowError::Eval(
                    "a group has a negative count: more rows retracted than inserted".into(),
                ));
            }
            g.touched = false;
            let live = g.count > 0 || global;
            let emitted = g.emitted;
            let key = g.key.clone();
            let range = s * n_aggs..(s + 1) * n_aggs;
            if live {
                self.values(&self.accs[range.clone()], &mut scratch)?;
            }
            let old = &self.outs[range.clone()];
            let changed = match (live, emitted) {
                (true, true) => scratch.as_slice() != old,
                (false, false) => false,
                _ => true,
            };
            if changed {
                if emitted {
                    key_buf.extend_from_slice(&key);
                    key_ends.push(key_buf.len());
                    for (c, v) in cols.iter_mut().zip(old) {
                        c.push(v.clone());
                    }
                    weights.push(-1);
                }
                if live {
                    key_buf.extend_from_slice(&key);
                    key_ends.push(key_buf.len());
                    for (c, v) in cols.iter_mut().zip(&scratch) {
                        c.push(v.clone());
                    }
                    weights.push(1);
                    self.outs[range].clone_from_slice(&scratch);
                }
                if let Some(g) = self.slots[s].as_mut() {
                    g.emitted = live;
                }
            }
            if !live {
                self.groups.remove(&*key);
                self.release(s);
            }
        }
        if weights.is_empty() {
            return Ok(None);
        }
        let mut columns: Vec<ArrayRef> = if global {
            vec![]
        } else {
            let parser = self.key_converter.parser();
            let mut start = 0;
            let rows = key_ends.iter().map(|&end| {
                let r = parser.parse(&key_buf[start..end]);
                start = end;
                r
            });
            self.key_converter.convert_rows(rows)?
        };
        let n_keys = columns.len();
        for (j, vals) in cols.into_iter().enumerate() {
            columns.push(out_column(vals, self.schema.field(n_keys + j).data_type())?);
        }
        Ok(Some(Delta::from_columns(&self.schema, columns, weights)?))
    }
}

impl Operator for Aggregate {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let mut touched = Vec::new();
        if !self.started {
            self.started = true;
            if self.global() {
                let (s, _) = self.slot_for(&[]);
                touched.push(s);
                if let Some(g) = self.slots[s].as_mut() {
                    g.touched = true;
                }
            }
        }
        let delta = inputs.first().copied().flatten().filter(|d| !d.is_empty());
        if let Some(d) = delta {
            let n = d.len();
            let keys: Vec<ArrayRef> = self
                .group_exprs
                .iter()
                .map(|e| e.evaluate(&d.batch).and_then(|v| v.into_array(n)))
                .collect::<Result<_, _>>()?;
            let key_rows = if keys.is_empty() {
                None
            } else {
                Some(self.key_converter.convert_columns(&keys)?)
            };
            let closes = self.close_times(&keys)?;
            let args: Vec<ArgCol> = (0..self.aggs.len())
                .map(|i| self.arg_col(i, &d.batch))
                .collect::<Result<_>>()?;
            let filters: Vec<Option<BooleanArray>> = self
                .aggs
                .iter()
                .map(|a| match &a.filter {
                    None => Ok(None),
                    Some(f) => {
                        let v = f.evaluate(&d.batch)?.into_array(n)?;
                        Ok(Some(super::null_as_false(v.as_boolean())))
                    }
                })
                .collect::<Result<_>>()?;
            let kinds: Vec<AggKind> = self.aggs.iter().map(|a| a.kind).collect();
            let weights = d.weights.values();
            for row in 0..n {
                let w = weights[row];
                if w == 0 {
                    continue;
                }
                let close = closes
                    .as_ref()
                    .filter(|times| times.is_valid(row))
                    .map(|times| times.value(row));
                if let (Some(t), Some(wm)) = (close, self.watermark) {
                    if t < wm {
                        // its group is final (and forgotten)
                        self.late_rows += 1;
                        continue;
                    }
                }
                let (s, new) = match &key_rows {
                    Some(r) => self.slot_for(r.row(row).as_ref()),
                    None => self.slot_for(&[]),
                };
                if let (true, Some(t)) = (new, close) {
                    let key = self.slots[s].as_ref().map(|g| g.key.clone());
                    if let Some(key) = key {
                        self.closes.entry(t).or_default().push(key);
                    }
                }
                let Some(g) = self.slots[s].as_mut() else {
                    continue;
                };
                if !g.touched {
                    g.touched = true;
                    touched.push(s);
                }
                g.count += w;
                let n_aggs = kinds.len();
                for (k, acc) in self.accs[s * n_aggs..(s + 1) * n_aggs]
                    .iter_mut()
                    .enumerate()
                {
                    let filtered = filters[k].as_ref().is_some_and(|f| !f.value(row));
                    if let (Acc::Extreme(cur), ArgCol::Encoded(rows, arr)) = (&mut *acc, &args[k]) {
                        if filtered || !counts(arr, row) {
                            continue;
                        }
                        if w < 0 {
                            return Err(DataflowError::Eval(
                                "append-only aggregate received a retraction".into(),
                            ));
                        }
                        let v = rows.row(row);
                        let better = match cur {
                            None => true,
                            Some(c) => match kinds[k] {
                                AggKind::Min | AggKind::FirstValue => v.as_ref() < c.as_ref(),
                                _ => v.as_ref() > c.as_ref(),
                            },
                        };
                        if better {
                            *cur = Some(v.as_ref().into());
                        }
                        continue;
                    }
                    Aggregate::update(acc, &args[k], row, w, filtered)?;
                }
            }
        }
        let out = self.emit(touched)?;
        self.prune_closed();
        Ok(out)
    }

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        let mut out = self.key_watermarks(inputs);
        out.resize(self.schema.fields().len(), None);
        out
    }

    fn late_rows(&self) -> u64 {
        self.late_rows
    }

    fn plan_watermarks(&mut self, inputs: &[&[Option<i64>]]) -> bool {
        self.window_key = self.key_watermarks(inputs).iter().position(|w| w.is_some());
        self.window_key.is_some()
    }

    fn set_watermarks(&mut self, inputs: &[&[Option<i64>]]) {
        let Some(k) = self.window_key else {
            return;
        };
        let input = inputs.first().copied().unwrap_or(&[]);
        if let Some(wm) = super::watermark::derive(&self.group_exprs[k], input) {
            self.next_watermark = Some(self.next_watermark.map_or(wm, |w| w.max(wm)));
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        let keys: Vec<String> = self.group_exprs.iter().map(|e| e.to_string()).collect();
        let aggs: Vec<String> = self
            .aggs
            .iter()
            .map(|a| match &a.arg {
                Some(e) => format!("{}({e})", a.kind.name()),
                None => a.kind.name().to_string(),
            })
            .collect();
        format!(
            "Aggregate: group by [{}], aggregates [{}]{}",
            keys.join(", "),
            aggs.join(", "),
            if self.append_only {
                " (append-only input)"
            } else {
                ""
            }
        )
    }

    fn state_size(&self) -> StateSize {
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let n = self.aggs.len();
        for (s, g) in self.slots.iter().enumerate() {
            let Some(g) = g else { continue };
            rows += 1;
            bytes += g.key.len() as u64 + 48;
            for a in &self.accs[s * n..(s + 1) * n] {
                bytes += match a {
                    Acc::Values(m) => m.keys().map(|k| k.len() as u64 + 40).sum(),
                    Acc::Distinct(m) => m.keys().map(|k| k.len() as u64 + 32).sum(),
                    Acc::Extreme(Some(k)) => k.len() as u64,
                    _ => 24,
                };
            }
        }
        StateSize { rows, bytes }
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        w.u8(self.started as u8);
        let n_aggs = self.aggs.len();
        let groups: Vec<(usize, &Group)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(s, g)| g.as_ref().map(|g| (s, g)))
            .collect();
        w.u64(groups.len() as u64);
        for (s, g) in groups {
            w.bytes(&g.key);
            w.i64(g.count);
            for a in &self.accs[s * n_aggs..(s + 1) * n_aggs] {
                match a {
                    Acc::Count(n) => {
                        w.u8(0);
                        w.i64(*n);
                    }
                    Acc::Sum { sum, n } => {
                        match sum {
                            SumVal::I(x) => {
                                w.u8(1);
                                w.i128(*x);
                            }
                            SumVal::F(f) => {
                                w.u8(2);
                                w.f64(*f);
                            }
                        }
                        w.i64(*n);
                    }
                    Acc::Values(m) => {
                        w.u8(3);
                        write_counts(&mut w, m.len(), m.iter());
                    }
                    Acc::Distinct(m) => {
                        w.u8(4);
                        write_counts(&mut w, m.len(), m.iter());
                    }
                    Acc::Extreme(v) => {
                        w.u8(5);
                        match v {
                            Some(b) => {
                                w.u8(1);
                                w.bytes(b);
                            }
                            None => w.u8(0),
                        }
                    }
                    Acc::Bools { t, f } => {
                        w.u8(6);
                        w.i64(*t);
                        w.i64(*f);
                    }
                }
            }
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.groups.clear();
        self.slots.clear();
        self.accs.clear();
        self.outs.clear();
        self.free.clear();
        let mut r = Reader::new(bytes);
        self.started = r.u8()? != 0;
        let n = r.u64()?;
        for _ in 0..n {
            let key: Arc<[u8]> = r.bytes()?.into();
            let count = r.i64()?;
            let mut accs = Vec::with_capacity(self.aggs.len());
            for _ in 0..self.aggs.len() {
                let acc = match r.u8()? {
                    0 => Acc::Count(r.i64()?),
                    1 => {
                        let sum = SumVal::I(r.i128()?);
                        Acc::Sum { sum, n: r.i64()? }
                    }
                    2 => {
                        let sum = SumVal::F(r.f64()?);
                        Acc::Sum { sum, n: r.i64()? }
                    }
                    3 => {
                        let m = r.u64()?;
                        let mut map = BTreeMap::new();
                        for _ in 0..m {
                            let k: Box<[u8]> = r.bytes()?.into();
                            map.insert(k, r.i64()?);
                        }
                        Acc::Values(map)
                    }
                    4 => {
                        let m = r.u64()?;
                        let mut map = HashMap::new();
                        for _ in 0..m {
                            let k: Box<[u8]> = r.bytes()?.into();
                            map.insert(k, r.i64()?);
                        }
                        Acc::Distinct(map)
                    }
                    5 => match r.u8()? {
                        1 => Acc::Extreme(Some(r.bytes()?.into())),
                        _ => Acc::Extreme(None),
                    },
                    6 => {
                        let t = r.i64()?;
                        Acc::Bools { t, f: r.i64()? }
                    }
                    t => return Err(DataflowError::State(format!("unknown accumulator tag {t}"))),
                };
                accs.push(acc);
            }
            let emitted = count > 0 || self.global();
            let mut vals = Vec::with_capacity(self.aggs.len());
            if emitted {
                self.values(&accs, &mut vals)?;
            } else {
                vals.resize(self.aggs.len(), Out::Null);
            }
            self.slots.push(Some(Group {
                key: key.clone(),
                count,
                emitted,
                touched: false,
            }));
            self.accs.extend(accs);
            self.outs.extend(vals);
            self.groups.insert(key, self.slots.len() - 1);
        }
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in aggregate state".into(),
            ));
        }
        self.rebuild_closes()
    }

    fn preserves_append_only(&self) -> bool {
        false
    }
}

fn write_counts<'a>(
    w: &mut Writer,
    len: usize,
    entries: impl Iterator<Item = (&'a Box<[u8]>, &'a i64)>,
) {
    w.u64(len as u64);
    for (k, n) in entries {
        w.bytes(k);
        w.i64(*n);
    }
}
