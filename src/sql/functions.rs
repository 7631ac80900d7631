//! Postgres functions DataFusion does not have.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::SQL_TYPE_KEY;

/// The functions of this module, to register in a session.
pub fn all() -> Vec<ScalarUDF> {
    let mut fs = super::jsonb::functions();
    fs.extend(super::bytea::functions());
    fs.extend(super::arrays::functions());
    fs.extend([
        ScalarUDF::new_from_impl(PgTypeof {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        super::extract::udf(),
        ScalarUDF::new_from_impl(ClockTimestamp {
            signature: Signature::nullary(Volatility::Volatile),
        }),
    ]);
    // everything is in a schema of the search path (psql's \df, \dT, …)
    fs.extend(
        [
            "pg_function_is_visible",
            "pg_type_is_visible",
            "pg_operator_is_visible",
            "pg_collation_is_visible",
            "pg_conversion_is_visible",
            "pg_opclass_is_visible",
            "pg_opfamily_is_visible",
            "pg_statistics_obj_is_visible",
            "pg_ts_config_is_visible",
            "pg_ts_dict_is_visible",
            "pg_ts_parser_is_visible",
            "pg_ts_template_is_visible",
        ]
        .into_iter()
        .map(|name| {
            ScalarUDF::new_from_impl(Visible {
                name,
                signature: Signature::any(1, Volatility::Stable),
            })
        }),
    );
    fs
}

/// A function's result in the shape of its arguments: a scalar when every
/// argument was one (so a call on constants folds to a constant), else the
/// array.
pub fn same_shape(args: &[ColumnarValue], out: ArrayRef) -> DfResult<ColumnarValue> {
    if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
    } else {
        Ok(ColumnarValue::Array(out))
    }
}

/// The name Postgres gives the type a value of this field has.
pub fn pg_type_name(f: &Field) -> String {
    match f.metadata().get(SQL_TYPE_KEY).map(String::as_str) {
        Some("jsonb") => return "jsonb".into(),
        Some("json") => return "json".into(),
        Some("varchar") if f.data_type() == &DataType::Utf8 => return "character varying".into(),
        _ => {}
    }
    type_name(f.data_type())
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "unknown".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::FixedSizeBinary(_) => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _) => format!("{}[]", pg_type_name(f)),
        DataType::Struct(_) => "record".into(),
        DataType::Dictionary(_, v) => type_name(v),
        other => other.to_string(),
    }
}

/// `pg_typeof(any)`: the name of its argument's type.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = match args.arg_fields.first() {
            Some(f) => pg_type_name(f),
            None => "unknown".into(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// `pg_*_is_visible(oid)`: true (NULL for NULL): Freshet's objects are all
/// in schemas of the search path.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Visible {
    name: &'static str,
    signature: Signature,
}

impl ScalarUDFImpl for Visible {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(a) = arrays.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
        };
        let out: datafusion::arrow::array::BooleanArray = (0..a.len())
            .map(|i| (!a.is_null(i)).then_some(true))
            .collect();
        same_shape(&args.args, std::sync::Arc::new(out))
    }
}

/// `clock_timestamp()`: the time now, changing within a statement (unlike
/// `now()`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ClockTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for ClockTimestamp {
    fn name(&self) -> &str {
        "clock_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("+00:00".into()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows.max(1);
        let values: Vec<i64> = (0..n)
            .map(|_| chrono::Utc::now().timestamp_micros())
            .collect();
        let a = datafusion::arrow::array::TimestampMicrosecondArray::from(values)
            .with_timezone("+00:00");
        if args.number_rows == 0 || args.args.is_empty() && args.number_rows == 1 {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&a, 0)?));
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(a)))
    }
}

/// The cast of a timestamp, interval, float or array to text, in Postgres'
/// text form (Arrow's cast writes `2020-01-01T12:00:00`, `1 days 2 hours`,
/// `[1, 2]`).
pub fn pg_text(e: datafusion::logical_expr::Expr) -> datafusion::logical_expr::Expr {
    ScalarUDF::new_from_impl(PgText {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![e])
}

/// Whether `pg_text` renders values of this type (where a cast to text
/// would differ from Postgres).
pub fn pg_text_renders(t: &DataType) -> bool {
    // (an array's text is `{1,2}`; Arrow's cast writes `[1, 2]`)
    crate::pgtext::needs_text(t) || matches!(t, DataType::List(_))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgText {
    signature: Signature,
}

impl ScalarUDFImpl for PgText {
    fn name(&self) -> &str {
        "pg_text"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(a) = arrays.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        let out = crate::pgtext::render_array(a)?;
        same_shape(&args.args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        use datafusion::arrow::datatypes::TimeUnit;
        let n = |t: DataType| pg_type_name(&Field::new("x", t, true));
        assert_eq!(n(DataType::Int32), "integer");
        assert_eq!(n(DataType::Float64), "double precision");
        assert_eq!(n(DataType::Decimal128(38, 10)), "numeric");
        assert_eq!(
            n(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("+00".into())
            )),
            "timestamp with time zone"
        );
        assert_eq!(
            n(DataType::List(std::sync::Arc::new(Field::new(
                "item",
                DataType::Int64,
                true
            )))),
            "bigint[]"
        );
    }
}
