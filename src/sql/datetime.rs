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
//! alike.

use std::sync::Arc;

use datafusion::arrow::array::{Array, DurationMicrosecondArray, IntervalMonthDayNanoArray};
use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano, IntervalUnit, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::{BinaryExpr, Cast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
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

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
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
    // a timestamp, interval or float cast to text reads as Postgres
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
            let key = |e: Expr| Arc::new(ScalarUDF::from(IntervalKey::new())).call(vec![e]);
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(key(*left)),
                op,
                Box::new(key(*right)),
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
