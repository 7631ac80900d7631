//! Scalar functions whose result size the arguments choose: `repeat`,
//! `lpad`, `rpad`. Postgres refuses a result over its value limit (1 GB)
//! with 54000 `requested length too large`; DataFusion would try to
//! allocate it (`repeat('x', 2000000000)` is 2 GB in one call). These
//! wrappers check the requested length first and otherwise are the
//! DataFusion functions.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

use super::SqlError;

/// The largest text value, as in Postgres.
pub const MAX_VALUE_BYTES: i64 = (1 << 30) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Check {
    /// `repeat(s, n)`: `len(s) * n` bytes
    Repeat,
    /// `lpad(s, n, …)` / `rpad`: `n` characters of up to 4 bytes
    Pad,
}

/// A DataFusion function with its result size checked first.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Bounded {
    inner: Arc<ScalarUDF>,
    check: Check,
}

/// `repeat`, `lpad` and `rpad`, bounded.
pub fn bounded_functions() -> Vec<ScalarUDF> {
    use datafusion::functions::{string, unicode};
    vec![
        ScalarUDF::from(Bounded {
            inner: string::repeat(),
            check: Check::Repeat,
        }),
        ScalarUDF::from(Bounded {
            inner: unicode::lpad(),
            check: Check::Pad,
        }),
        ScalarUDF::from(Bounded {
            inner: unicode::rpad(),
            check: Check::Pad,
        }),
    ]
}

fn too_large() -> DataFusionError {
    DataFusionError::External(Box::new(SqlError::LimitExceeded(
        "requested length too large".into(),
    )))
}

/// The second argument as bigints, one per row (or one for a scalar).
fn counts(v: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let a = v.to_array(rows)?;
    let a = datafusion::arrow::compute::cast(&a, &DataType::Int64)?;
    let a = a.as_primitive::<Int64Type>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect())
}

/// Byte lengths of the first argument, one per row.
fn lengths(v: &ColumnarValue, rows: usize) -> Result<Vec<Option<i64>>> {
    let a = v.to_array(rows)?;
    let a = datafusion::arrow::compute::cast(&a, &DataType::LargeUtf8)?;
    let a = a.as_string::<i64>();
    Ok((0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).len() as i64))
        .collect())
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() >= 2 {
            let rows = args.number_rows.max(1);
            let n = counts(&args.args[1], rows)?;
            match self.check {
                Check::Repeat => {
                    let len = lengths(&args.args[0], rows)?;
                    let over = len
                        .iter()
                        .cycle()
                        .zip(n.iter())
                        .take(rows.max(n.len()))
                        .any(|(l, n)| match (l, n) {
                            (Some(l), Some(n)) => l.saturating_mul((*n).max(0)) > MAX_VALUE_BYTES,
                            _ => false,
                        });
                    if over {
                        return Err(too_large());
                    }
                }
                Check::Pad => {
                    if n.iter().flatten().any(|n| *n > MAX_VALUE_BYTES / 4) {
                        return Err(too_large());
                    }
                }
            }
        }
        self.inner.invoke_with_args(args)
    }
}
