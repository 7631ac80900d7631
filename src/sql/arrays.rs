//! Array functions as PostgreSQL answers them where DataFusion's differ:
//! `array_length(a, d)` and `cardinality(a)` are `integer` (DataFusion's
//! are `bigint`, unsigned for `array_length`, so `a[array_length(a, 1)]`
//! did not plan), and the length of an empty array, or of a dimension it
//! does not have, is NULL (DataFusion: 0).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The functions of this module.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(ArrayCount {
            signature: Signature::any(2, Volatility::Immutable),
            total: false,
        }),
        ScalarUDF::new_from_impl(ArrayCount {
            signature: Signature::any(1, Volatility::Immutable),
            total: true,
        }),
    ]
}

/// The length of each row's list (`None`: NULL), for any list type.
fn lengths(a: &ArrayRef) -> DfResult<Vec<Option<usize>>> {
    let len = |i: usize, f: &dyn Fn(usize) -> usize| (!a.is_null(i)).then(|| f(i));
    Ok(match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            (0..a.len())
                .map(|i| len(i, &|i| l.value_length(i) as usize))
                .collect()
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            (0..a.len())
                .map(|i| len(i, &|i| l.value_length(i) as usize))
                .collect()
        }
        DataType::FixedSizeList(_, n) => (0..a.len()).map(|i| len(i, &|_| *n as usize)).collect(),
        DataType::Null => vec![None; a.len()],
        other => {
            return Err(DataFusionError::Plan(format!(
                "function array_length(…) needs an array, not {other}"
            )))
        }
    })
}

/// The inner lists of each row's list, when it holds lists: the length of
/// its first one (PostgreSQL's arrays are rectangular).
fn inner_lengths(a: &ArrayRef) -> DfResult<Vec<Option<usize>>> {
    let (offsets, values): (Vec<(usize, usize)>, ArrayRef) = match a.data_type() {
        DataType::List(_) => {
            let l = a.as_list::<i32>();
            (
                (0..a.len())
                    .map(|i| (l.value_offsets()[i] as usize, l.value_length(i) as usize))
                    .collect(),
                l.values().clone(),
            )
        }
        DataType::LargeList(_) => {
            let l = a.as_list::<i64>();
            (
                (0..a.len())
                    .map(|i| (l.value_offsets()[i] as usize, l.value_length(i) as usize))
                    .collect(),
                l.values().clone(),
            )
        }
        _ => return Ok(vec![None; a.len()]),
    };
    if !matches!(
        values.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    ) {
        return Ok(vec![None; a.len()]);
    }
    let inner = lengths(&values)?;
    Ok((0..a.len())
        .map(|i| {
            let (start, n) = offsets[i];
            if a.is_null(i) || n == 0 {
                None
            } else {
                inner[start]
            }
        })
        .collect())
}

/// `array_length(a, d)` (`total` false) or `cardinality(a)` (`total`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ArrayCount {
    signature: Signature,
    total: bool,
}

impl ScalarUDFImpl for ArrayCount {
    fn name(&self) -> &str {
        if self.total {
            "cardinality"
        } else {
            "array_length"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let outer = lengths(&arrays[0])?;
        let inner = inner_lengths(&arrays[0])?;
        let out: Int32Array = (0..arrays[0].len())
            .map(|i| {
                let n = if self.total {
                    let n = outer[i]?;
                    inner[i].map_or(n, |m| n * m)
                } else {
                    let d = crate::catalog::pg_views::int_at(arrays[1].as_ref(), i)?;
                    let n = match d {
                        1 => outer[i]?,
                        2 => inner[i]?,
                        _ => return None,
                    };
                    // an empty array has no dimensions: NULL
                    if n == 0 {
                        return None;
                    }
                    n
                };
                i32::try_from(n).ok()
            })
            .collect();
        super::functions::same_shape(&args.args, Arc::new(out))
    }
}
