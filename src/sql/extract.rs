//! `EXTRACT(field FROM value)` as PostgreSQL answers it: an exact
//! `numeric` (`extract(epoch FROM ts)` is `1658233882.070000`, not the
//! double DataFusion's `date_part` gives), of timestamps, timestamptz (in
//! UTC), dates and intervals. `sql::compat` turns the syntax into a call of
//! `pg_extract('field', value)`.

use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::{exec_err, not_impl_err, plan_err, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgExtract {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgExtract {
    signature: Signature,
}

/// What a value is read as.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Timestamp,
    Date,
    Interval,
}

fn kind(t: &DataType) -> Option<Kind> {
    match t {
        DataType::Timestamp(..) => Some(Kind::Timestamp),
        DataType::Date32 | DataType::Date64 => Some(Kind::Date),
        DataType::Interval(IntervalUnit::MonthDayNano) => Some(Kind::Interval),
        _ => None,
    }
}

/// The scale of the answer for a field of a kind of value.
fn scale(field: &str, kind: Kind) -> Result<i8> {
    let time_field = matches!(
        field,
        "hour" | "minute" | "second" | "milliseconds" | "microseconds"
    );
    if kind == Kind::Date && time_field {
        return not_impl_err!("unit \"{field}\" not supported for type date");
    }
    Ok(match field {
        "epoch" if kind == Kind::Date => 0,
        "epoch" | "second" => 6,
        "milliseconds" => 3,
        "microseconds" | "minute" | "hour" | "day" | "month" | "year" | "quarter" | "dow"
        | "isodow" | "doy" | "week" | "isoyear" | "decade" | "century" | "millennium" => 0,
        other => return not_impl_err!("EXTRACT({other} FROM …) is not supported"),
    })
}

fn field_name(args: &[Option<&ScalarValue>]) -> Result<String> {
    match args.first() {
        Some(Some(ScalarValue::Utf8(Some(f)))) => Ok(normalize(f)),
        _ => plan_err!("pg_extract needs a constant field name"),
    }
}

/// Postgres' spellings of a field, as one name.
fn normalize(f: &str) -> String {
    let f = f.to_ascii_lowercase();
    match f.as_str() {
        "millisecond" => "milliseconds".into(),
        "microsecond" => "microseconds".into(),
        "millenium" | "millenniums" => "millennium".into(),
        "years" => "year".into(),
        "months" | "mon" | "mons" => "month".into(),
        "days" => "day".into(),
        "hours" => "hour".into(),
        "minutes" => "minute".into(),
        "seconds" => "second".into(),
        _ => f,
    }
}

impl ScalarUDFImpl for PgExtract {
    fn name(&self) -> &str {
        "pg_extract"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(38, 6))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let field = field_name(args.scalar_arguments)?;
        let Some(k) = args.arg_fields.get(1).and_then(|f| kind(f.data_type())) else {
            return not_impl_err!(
                "EXTRACT from {} is not supported",
                args.arg_fields
                    .get(1)
                    .map(|f| f.data_type().to_string())
                    .unwrap_or_default()
            );
        };
        Ok(Arc::new(Field::new(
            self.name(),
            DataType::Decimal128(38, scale(&field, k)?),
            true,
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Decimal128(_, s) = args.return_field.data_type() else {
            return exec_err!("pg_extract: unexpected return type");
        };
        let s = *s;
        let field = match args.args.first() {
            Some(ColumnarValue::Scalar(ScalarValue::Utf8(Some(f)))) => normalize(f),
            _ => return exec_err!("pg_extract needs a constant field name"),
        };
        let Some(value) = args.args.get(1) else {
            return exec_err!("pg_extract needs a value");
        };
        let scalar = matches!(value, ColumnarValue::Scalar(_));
        let a = value.to_array(args.number_rows)?;
        let out = extract(&field, &a, s)?;
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn extract(field: &str, a: &ArrayRef, s: i8) -> Result<ArrayRef> {
    let mut b = Decimal128Builder::with_capacity(a.len());
    match a.data_type() {
        DataType::Timestamp(unit, _) => {
            let per_us = |v: i64| match unit {
                TimeUnit::Second => v.saturating_mul(1_000_000),
                TimeUnit::Millisecond => v.saturating_mul(1000),
                TimeUnit::Microsecond => v,
                TimeUnit::Nanosecond => v.div_euclid(1000),
            };
            let ts = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
            let ts = ts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for v in ts.iter() {
                b.append_option(v.map(|v| of_timestamp(field, per_us(v))).transpose()?);
            }
        }
        DataType::Date32 | DataType::Date64 => {
            let us = datafusion::arrow::compute::cast(
                a,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?;
            let us = datafusion::arrow::compute::cast(&us, &DataType::Int64)?;
            for v in us
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .iter()
            {
                b.append_option(
                    v.map(|v| {
                        if field == "epoch" {
                            Ok(i128::from(v.div_euclid(1_000_000)))
                        } else {
                            of_timestamp(field, v)
                        }
                    })
                    .transpose()?,
                );
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            for v in a.as_primitive::<IntervalMonthDayNanoType>().iter() {
                b.append_option(
                    v.map(|iv| of_interval(field, iv.months, iv.days, iv.nanoseconds / 1000))
                        .transpose()?,
                );
            }
        }
        other => return not_impl_err!("EXTRACT from {other} is not supported"),
    }
    Ok(Arc::new(b.finish().with_precision_and_scale(38, s)?))
}

/// A field of a timestamp (µs since the epoch, read as UTC), scaled.
fn of_timestamp(field: &str, us: i64) -> Result<i128> {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let Some(t): Option<NaiveDateTime> = DateTime::from_timestamp(secs, 0).map(|t| t.naive_utc())
    else {
        return exec_err!("timestamp out of range");
    };
    let year = i128::from(t.year());
    let sec_us = i128::from(t.second()) * 1_000_000 + i128::from(frac);
    Ok(match field {
        "epoch" => i128::from(us),
        // (seconds and milliseconds: the same microseconds, at scale 6 and 3)
        "second" | "milliseconds" | "microseconds" => sec_us,
        "minute" => t.minute().into(),
        "hour" => t.hour().into(),
        "day" => t.day().into(),
        "month" => t.month().into(),
        "year" => year,
        "quarter" => ((t.month() - 1) / 3 + 1).into(),
        "dow" => t.weekday().num_days_from_sunday().into(),
        "isodow" => t.weekday().number_from_monday().into(),
        "doy" => t.ordinal().into(),
        "week" => t.iso_week().week().into(),
        "isoyear" => t.iso_week().year().into(),
        "decade" => year.div_euclid(10),
        "century" => {
            if year > 0 {
                (year + 99) / 100
            } else {
                -((99 - (year - 1)) / 100)
            }
        }
        "millennium" => {
            if year > 0 {
                (year + 999) / 1000
            } else {
                -((999 - (year - 1)) / 1000)
            }
        }
        other => return not_impl_err!("EXTRACT({other} FROM …) is not supported"),
    })
}

/// A field of an interval, scaled; `epoch` counts a year as 365.25 days
/// and a month as 30, as Postgres does.
fn of_interval(field: &str, months: i32, days: i32, us: i64) -> Result<i128> {
    let (months, days, us) = (i128::from(months), i128::from(days), i128::from(us));
    const DAY: i128 = 86_400_000_000;
    Ok(match field {
        "epoch" => {
            // 365.25 days a year: in quarter days, exact
            let years_us = (months / 12) * 36525 * DAY / 100;
            years_us + (months % 12) * 30 * DAY + days * DAY + us
        }
        "second" | "milliseconds" | "microseconds" => us % 60_000_000,
        "minute" => (us / 60_000_000) % 60,
        "hour" => us / 3_600_000_000,
        "day" => days,
        "month" => months % 12,
        "year" => months / 12,
        "quarter" => (months % 12) / 3 + 1,
        "decade" => months / 120,
        "century" => months / 1200,
        "millennium" => months / 12000,
        other => return not_impl_err!("unit \"{other}\" not supported for type interval"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        // 2022-07-19 12:31:22.07 UTC
        let us = 1_658_233_882_070_000;
        assert_eq!(of_timestamp("epoch", us).unwrap(), 1_658_233_882_070_000);
        assert_eq!(of_timestamp("second", us).unwrap(), 22_070_000);
        assert_eq!(of_timestamp("dow", us).unwrap(), 2);
        assert_eq!(of_timestamp("century", us).unwrap(), 21);
        // 1 year 2 mons 3 days 04:05:06.5 → 37015506.500000 s
        let us = (4 * 3600 + 5 * 60 + 6) * 1_000_000 + 500_000;
        assert_eq!(of_interval("epoch", 14, 3, us).unwrap(), 37_015_506_500_000);
        assert_eq!(of_interval("month", 14, 0, 0).unwrap(), 2);
        assert!(scale("hour", Kind::Date).is_err());
    }
}
