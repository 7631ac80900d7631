//! Date and time arithmetic as in Postgres, where DataFusion answers
//! differently:
//!
//! * `date ± interval` is a `timestamp` in Postgres; DataFusion keeps a
//!   `date` and drops the time of day (`date '2020-01-01' + interval '2
//!   hours'` was `2020-01-01`). The date is cast to a timestamp first.
//! * `timestamp − timestamp` is an `interval` in Postgres, its days split
//!   off (`21 days 23:59:59`); DataFusion gives a duration (shown as
//!   `527:59:59`), which does not compare with intervals. The difference
//!   becomes an interval of days and time of day, as Postgres' `timestamp_mi`
//!   computes it.
//!
//! * A `date` compared with a `timestamp` is the timestamp of its midnight
//!   (`d < date '1994-01-01' + interval '1' year`); DataFusion fails.
//! * Intervals compare by their length as Postgres counts it (a month is 30
//!   days, a day 24 hours: `interval '1 day' < interval '25 hours'`);
//!   DataFusion compares months, then days, then nanoseconds.
//!
//! An analyzer rule after type coercion ([`PostgresDatetime`]), so the
//! operands have their final types; it runs in ad-hoc queries and views
//! alike. A second one ([`IntervalOrder`]) gives intervals the same order
//! and equality where rows are sorted and grouped: `ORDER BY` sorts by the
//! length (`25:00:00` after `1 day`), and `GROUP BY` / `DISTINCT` put
//! intervals of one length in one group (`1 day` and `24:00:00`), showing
//! one of them, as Postgres does.

use std::sync::Arc;

use datafusion::arrow::array::{Array, DurationMicrosecondArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{DFSchema, Result};
use datafusion::functions_aggregate::expr_fn::{first_value, last_value};
use datafusion::logical_expr::expr::{BinaryExpr, Cast};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Distinct, Expr, ExprSchemable, LogicalPlan, Operator, Projection,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Sort, SortExpr, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// The analyzer rule (module documentation).
#[derive(Debug, Default)]
pub struct PostgresDatetime;

impl AnalyzerRule for PostgresDatetime {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::optimizer::rewrite_expressions(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_postgres_datetime"
    }
}

fn is_interval(t: &DataType) -> bool {
    matches!(t, DataType::Interval(_))
}

fn as_timestamp(e: Expr) -> Expr {
    Expr::Cast(Cast::new(
        Box::new(e),
        DataType::Timestamp(TimeUnit::Microsecond, None),
    ))
}

/// A text literal cast to `date` or `timestamp` (type coercion's cast of
/// `ts > '2020-04-15 12:02'`), read by the column types' own input, which
/// takes every form PostgreSQL takes (Arrow's cast wants the seconds); the
/// cast stays where the text is not a date or timestamp, and fails as
/// before.
fn text_literal_as_datetime(e: &Expr) -> Option<Expr> {
    use datafusion::common::ScalarValue;
    let Expr::Cast(Cast { expr, field }) = e else {
        return None;
    };
    let ty = match field.data_type() {
        DataType::Timestamp(_, None) => crate::types::SqlType::Timestamp,
        DataType::Date32 => crate::types::SqlType::Date,
        _ => return None,
    };
    let Expr::Literal(
        ScalarValue::Utf8(Some(text))
        | ScalarValue::Utf8View(Some(text))
        | ScalarValue::LargeUtf8(Some(text)),
        _,
    ) = expr.as_ref()
    else {
        return None;
    };
    let col = crate::catalog::ColumnDef {
        name: String::new(),
        ty,
        nullable: true,
    };
    let texts = datafusion::arrow::array::StringArray::from(vec![text.as_str()]);
    let array = crate::ingest::coerce::from_text(&texts, &col).ok()?;
    let array = datafusion::arrow::compute::cast(&array, field.data_type()).ok()?;
    let value = ScalarValue::try_from_array(&array, 0).ok()?;
    Some(Expr::Literal(value, None))
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if let Some(literal) = text_literal_as_datetime(&e) {
        return Ok(Transformed::yes(literal));
    }
    // type coercion cast a `timestamp − timestamp` to another duration unit
    // before it became an interval (`ts_us + (ts_us - ts_ns)`): the
    // interval needs no cast, and cannot take one
    let e = match e {
        Expr::Cast(Cast { expr, field })
            if matches!(field.data_type(), DataType::Duration(_))
                && matches!(expr.get_type(schema), Ok(DataType::Interval(_))) =>
        {
            return Ok(Transformed::yes(*expr))
        }
        other => other,
    };
    // a timestamp, interval, float or array cast to text reads as Postgres
    // prints it
    let e = match e {
        Expr::Cast(Cast { expr, field })
            if matches!(
                field.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) && expr
                .get_type(schema)
                .is_ok_and(|t| super::functions::pg_text_renders(&t)) =>
        {
            let text = super::functions::pg_text(*expr);
            return Ok(Transformed::yes(if field.data_type() == &DataType::Utf8 {
                text
            } else {
                Expr::Cast(Cast::new(Box::new(text), field.data_type().clone()))
            }));
        }
        other => other,
    };
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return Ok(Transformed::no(e));
    };
    let comparison = matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
            | Operator::IsDistinctFrom
            | Operator::IsNotDistinctFrom
    );
    if !comparison && !matches!(op, Operator::Plus | Operator::Minus) {
        return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        })));
    }
    let (lt, rt) = match (left.get_type(schema), right.get_type(schema)) {
        (Ok(l), Ok(r)) => (l, r),
        _ => {
            return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                left,
                op,
                right,
            })))
        }
    };
    match (&lt, &rt) {
        (l, r) if comparison && is_interval(l) && is_interval(r) => {
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(interval_key_of(*left)),
                op,
                Box::new(interval_key_of(*right)),
            ))))
        }
        // a date compared with a timestamp (`d < date '…' + interval '3'
        // month`, which became a timestamp above) is the timestamp at its
        // midnight, as Postgres compares them
        (DataType::Date32, t @ DataType::Timestamp(..)) if comparison => {
            let left = Expr::Cast(Cast::new(left, t.clone()));
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(left),
                op,
                right,
            ))))
        }
        (t @ DataType::Timestamp(..), DataType::Date32) if comparison => {
            let right = Expr::Cast(Cast::new(right, t.clone()));
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                left,
                op,
                Box::new(right),
            ))))
        }
        _ if comparison => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        }))),
        (DataType::Date32, r) if is_interval(r) => Ok(Transformed::yes(Expr::BinaryExpr(
            BinaryExpr::new(Box::new(as_timestamp(*left)), op, right),
        ))),
        (l, DataType::Date32) if is_interval(l) && op == Operator::Plus => Ok(Transformed::yes(
            Expr::BinaryExpr(BinaryExpr::new(left, op, Box::new(as_timestamp(*right)))),
        )),
        (DataType::Timestamp(_, a), DataType::Timestamp(_, b))
            if op == Operator::Minus && a.is_some() == b.is_some() =>
        {
            let diff = Expr::BinaryExpr(BinaryExpr::new(left, op, right));
            Ok(Transformed::yes(
                Arc::new(ScalarUDF::from(DaysAndTime::new())).call(vec![diff]),
            ))
        }
        _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
            left,
            op,
            right,
        }))),
    }
}

/// Sorting and grouping by intervals as Postgres does (module
/// documentation): a sort key that is an interval sorts by
/// [`interval_key`]; an aggregate that groups by intervals groups by their
/// keys and shows the first of each group's intervals (all have the same
/// length); `min`, `max` and `count(DISTINCT)` of intervals compare their
/// lengths; and a `DISTINCT` over intervals is such an aggregate.
#[derive(Debug, Default)]
pub struct IntervalOrder;

impl AnalyzerRule for IntervalOrder {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(interval_order).data()
    }

    fn name(&self) -> &str {
        "freshet_interval_order"
    }
}

fn interval_key_of(e: Expr) -> Expr {
    Arc::new(ScalarUDF::from(IntervalKey::new())).call(vec![e])
}

fn is_interval_expr(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| is_interval(&t))
}

fn interval_order(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match node {
        LogicalPlan::Sort(Sort { expr, input, fetch })
            if expr
                .iter()
                .any(|s| is_interval_expr(&s.expr, input.schema())) =>
        {
            let expr = expr
                .into_iter()
                .map(|s| {
                    if is_interval_expr(&s.expr, input.schema()) {
                        SortExpr {
                            expr: interval_key_of(s.expr),
                            ..s
                        }
                    } else {
                        s
                    }
                })
                .collect();
            Ok(Transformed::yes(LogicalPlan::Sort(Sort {
                expr,
                input,
                fetch,
            })))
        }
        LogicalPlan::Distinct(Distinct::All(input))
            if input
                .schema()
                .fields()
                .iter()
                .any(|f| is_interval(f.data_type())) =>
        {
            let group = input.schema().columns().into_iter().map(Expr::Column);
            let aggregate = Aggregate::try_new(input, group.collect(), vec![])?;
            Ok(Transformed::yes(group_by_length(aggregate)?))
        }
        LogicalPlan::Aggregate(a) => {
            let schema = a.input.schema().clone();
            let mut changed = false;
            let aggr_expr = a
                .aggr_expr
                .iter()
                .map(|e| {
                    let t = interval_aggregate(e.clone(), &schema)?;
                    changed |= t.transformed;
                    Ok(t.data)
                })
                .collect::<Result<Vec<_>>>()?;
            let regroup = !a
                .group_expr
                .iter()
                .any(|g| matches!(g, Expr::GroupingSet(_)))
                && a.group_expr.iter().any(|g| is_interval_expr(g, &schema));
            if !changed && !regroup {
                return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
            }
            let a = if changed {
                Aggregate::try_new(a.input, a.group_expr, aggr_expr)?
            } else {
                a
            };
            Ok(Transformed::yes(if regroup {
                group_by_length(a)?
            } else {
                LogicalPlan::Aggregate(a)
            }))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// An aggregate of intervals that orders or compares them, in Postgres'
/// order: `min`/`max` as the first interval by length, `count(DISTINCT)`
/// over the lengths. It keeps its name.
fn interval_aggregate(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    if let Expr::Alias(a) = e {
        let inner = interval_aggregate(*a.expr, schema)?;
        let inner = inner.update_data(|e| match e {
            Expr::Alias(named) => *named.expr,
            e => e,
        });
        return Ok(inner.update_data(|e| e.alias_qualified(a.relation, a.name)));
    }
    let Expr::AggregateFunction(f) = &e else {
        return Ok(Transformed::no(e));
    };
    let name = f.func.name().to_ascii_lowercase();
    let p = &f.params;
    let [arg] = p.args.as_slice() else {
        return Ok(Transformed::no(e));
    };
    if !is_interval_expr(arg, schema) {
        return Ok(Transformed::no(e));
    }
    let original = e.schema_name().to_string();
    let rewritten = match name.as_str() {
        "min" | "max" => {
            // the last in order, NULLs first: of intervals of one length,
            // Postgres' interval_larger/interval_smaller keep the later
            let order = interval_key_of(arg.clone()).sort(name == "max", true);
            let first = last_value(arg.clone(), vec![order]);
            match (first, &p.filter) {
                (Expr::AggregateFunction(mut g), Some(filter)) => {
                    g.params.filter = Some(filter.clone());
                    Expr::AggregateFunction(g)
                }
                (first, _) => first,
            }
        }
        "count" if p.distinct => {
            let mut f = f.clone();
            f.params.args = vec![interval_key_of(arg.clone())];
            Expr::AggregateFunction(f)
        }
        _ => return Ok(Transformed::no(e)),
    };
    Ok(Transformed::yes(rewritten.alias(original)))
}

/// `a` grouping by the keys of its interval group expressions, with a
/// projection that gives its original schema back.
fn group_by_length(a: Aggregate) -> Result<LogicalPlan> {
    let Aggregate {
        input,
        group_expr,
        mut aggr_expr,
        schema,
        ..
    } = a;
    let mut groups = Vec::with_capacity(group_expr.len());
    for (i, g) in group_expr.into_iter().enumerate() {
        if is_interval_expr(&g, input.schema()) {
            let (qualifier, field) = schema.qualified_field(i);
            groups.push(interval_key_of(g.clone()).alias(format!("__interval_group_{i}")));
            aggr_expr
                .push(first_value(g, vec![]).alias_qualified(qualifier.cloned(), field.name()));
        } else {
            groups.push(g);
        }
    }
    let regrouped = Aggregate::try_new(input, groups, aggr_expr)?;
    let columns = schema.columns().into_iter().map(Expr::Column).collect();
    Ok(LogicalPlan::Projection(Projection::try_new(
        columns,
        Arc::new(LogicalPlan::Aggregate(regrouped)),
    )?))
}

const US_PER_DAY: i64 = 86_400_000_000;

/// An interval's place in Postgres' order: a month counts 30 days, a day
/// 24 hours (`interval '1 day' = interval '24 hours'`, `< '25 hours'`),
/// in nanoseconds.
pub fn interval_key(v: IntervalMonthDayNano) -> i128 {
    const NS_PER_DAY: i128 = 86_400_000_000_000;
    (v.months as i128 * 30 + v.days as i128) * NS_PER_DAY + v.nanoseconds as i128
}

/// Compares intervals as Postgres does (see [`interval_key`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntervalKey {
    signature: Signature,
}

impl IntervalKey {
    fn new() -> IntervalKey {
        IntervalKey {
            signature: Signature::exact(
                vec![DataType::Interval(IntervalUnit::MonthDayNano)],
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for IntervalKey {
    fn name(&self) -> &str {
        "__interval_order"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, 0))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let iv = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::Interval(IntervalUnit::MonthDayNano),
        )?;
        let iv = iv
            .as_any()
            .downcast_ref::<IntervalMonthDayNanoArray>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal("not an interval".into())
            })?;
        let out: datafusion::arrow::array::Decimal128Array =
            iv.iter().map(|v| v.map(interval_key)).collect();
        super::functions::same_shape(&args.args, Arc::new(out.with_precision_and_scale(38, 0)?))
    }
}

/// A duration as Postgres' `timestamp − timestamp` interval: whole days,
/// and the rest as time of day, both with the duration's sign.
pub fn days_and_time(us: i64) -> IntervalMonthDayNano {
    let days = us / US_PER_DAY;
    let rest = us % US_PER_DAY;
    IntervalMonthDayNano::new(0, days as i32, rest.saturating_mul(1000))
}

/// `timestamp − timestamp` as an interval (module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DaysAndTime {
    signature: Signature,
}

impl DaysAndTime {
    fn new() -> DaysAndTime {
        DaysAndTime {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DaysAndTime {
    fn name(&self) -> &str {
        "__timestamp_difference"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Interval(IntervalUnit::MonthDayNano))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let us = datafusion::arrow::compute::cast(
            &arrays[0],
            &DataType::Duration(TimeUnit::Microsecond),
        )?;
        let us = us
            .as_any()
            .downcast_ref::<DurationMicrosecondArray>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "timestamp difference is not a duration".into(),
                )
            })?;
        let out: IntervalMonthDayNanoArray = us.iter().map(|v| v.map(days_and_time)).collect();
        super::functions::same_shape(&args.args, Arc::new(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_split_days_as_postgres() {
        // 21 days 23:59:59
        let us = (21 * 86_400 + 86_399) * 1_000_000;
        assert_eq!(
            days_and_time(us),
            IntervalMonthDayNano::new(0, 21, 86_399_000_000_000)
        );
        // -1 days -00:00:01
        assert_eq!(
            days_and_time(-(86_401 * 1_000_000)),
            IntervalMonthDayNano::new(0, -1, -1_000_000_000)
        );
    }
}
