//! PostgreSQL's `format(formatstr, arg, …)`: `%s` (the argument as text,
//! NULL as nothing), `%I` (an identifier, quoted where it must be), `%L`
//! (a literal, quoted; NULL as `NULL`), `%%`, positions (`%2$s`) and
//! widths (`%-10s`, `%*s`), as in PostgreSQL (Metabase reads
//! `col_description` through `format('%I.%I', schema, table)::regclass`).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The widest field `format()` pads to (a value over it is refused rather
/// than allocated).
const MAX_WIDTH: usize = 1 << 24;

#[derive(Debug, PartialEq, Eq, Hash)]
struct Format {
    signature: Signature,
}

/// `format` as a function.
pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Format {
        signature: Signature::variadic_any(Volatility::Stable),
    })
}

/// An identifier as `quote_ident` writes it.
pub fn quote_ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// A literal as `quote_literal` writes it.
fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn invalid(message: String) -> DataFusionError {
    DataFusionError::External(Box::new(crate::sql::SqlError::InvalidParameterValue(
        message,
    )))
}

/// One row: the format string and the arguments as text (`None`: NULL).
fn format_row(fmt: &str, args: &[Option<String>]) -> DfResult<String> {
    let mut out = String::with_capacity(fmt.len());
    let mut chars = fmt.chars().peekable();
    let mut next_arg = 0usize;
    let arg = |i: usize| -> DfResult<Option<String>> {
        args.get(i)
            .cloned()
            .ok_or_else(|| invalid("too few arguments for format()".into()))
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // [position$][-][width | *[position$]]type
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let mut position = None;
        if !digits.is_empty() && chars.peek() == Some(&'$') {
            chars.next();
            let p: usize = digits
                .parse()
                .map_err(|_| invalid("invalid argument position in format()".into()))?;
            if p == 0 {
                return Err(invalid(
                    "format specifies argument 0, but arguments are numbered from 1".into(),
                ));
            }
            position = Some(p - 1);
            digits.clear();
        }
        let mut left = false;
        if digits.is_empty() && chars.peek() == Some(&'-') {
            left = true;
            chars.next();
        }
        let mut width: Option<i64> = None;
        if digits.is_empty() && chars.peek() == Some(&'*') {
            chars.next();
            let w = arg(next_arg)?;
            next_arg += 1;
            width = w.and_then(|w| w.parse().ok());
        } else {
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if !digits.is_empty() {
                width = digits.parse().ok();
            }
        }
        let Some(kind) = chars.next() else {
            return Err(invalid("unterminated format() type specifier".into()));
        };
        let i = position.unwrap_or(next_arg);
        next_arg = i + 1;
        let value = arg(i)?;
        let text = match kind {
            's' => value.unwrap_or_default(),
            'I' => match value {
                Some(v) => quote_ident(&v),
                None => {
                    return Err(DataFusionError::External(Box::new(
                        crate::sql::SqlError::NullValueNotAllowed(
                            "null values cannot be formatted as an SQL identifier".into(),
                        ),
                    )))
                }
            },
            'L' => match value {
                Some(v) => quote_literal(&v),
                None => "NULL".into(),
            },
            other => {
                return Err(invalid(format!(
                    "unrecognized format() type specifier \"{other}\""
                )))
            }
        };
        let (w, left) = match width {
            Some(w) if w < 0 => (w.unsigned_abs() as usize, true),
            Some(w) => (w as usize, left),
            None => (0, left),
        };
        if w > MAX_WIDTH {
            return Err(DataFusionError::External(Box::new(
                crate::sql::SqlError::LimitExceeded(format!(
                    "format() width {w} is over the most a value may take ({MAX_WIDTH})"
                )),
            )));
        }
        let pad = w.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.extend(std::iter::repeat_n(' ', pad));
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&text);
        }
    }
    Ok(out)
}

impl ScalarUDFImpl for Format {
    fn name(&self) -> &str {
        "format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(fmt) = arrays.first() else {
            return Err(DataFusionError::Plan(
                "function format() needs a format string".into(),
            ));
        };
        let texts: Vec<ArrayRef> = arrays
            .iter()
            .map(|a| datafusion::arrow::compute::cast(a, &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        let strings: Vec<&StringArray> = texts
            .iter()
            .map(|a| {
                a.as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("format(): text".into()))
            })
            .collect::<DfResult<_>>()?;
        let mut out = Vec::with_capacity(fmt.len());
        for r in 0..fmt.len() {
            if strings[0].is_null(r) {
                out.push(None);
                continue;
            }
            let values: Vec<Option<String>> = strings[1..]
                .iter()
                .map(|s| (!s.is_null(r)).then(|| s.value(r).to_string()))
                .collect();
            out.push(Some(format_row(strings[0].value(r), &values)?));
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(StringArray::from(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Option<&str>]) -> String {
        let args: Vec<Option<String>> = args.iter().map(|a| a.map(str::to_string)).collect();
        format_row(fmt, &args).unwrap()
    }

    #[test]
    fn as_postgres_formats() {
        assert_eq!(
            f("%I.%I", &[Some("public"), Some("My T")]),
            "public.\"My T\""
        );
        assert_eq!(f("%s|%L|%L", &[None, None, Some("it's")]), "|NULL|'it''s'");
        assert_eq!(f("%2$s %1$s %%", &[Some("a"), Some("b")]), "b a %");
        assert_eq!(
            f("[%5s][%-5s]", &[Some("ab"), Some("cd")]),
            "[   ab][cd   ]"
        );
        assert_eq!(f("%L", &[Some("a\\b")]), "E'a\\\\b'");
        assert!(format_row("%s %s", &[Some("x".into())]).is_err());
        assert!(format_row("%q", &[Some("x".into())]).is_err());
        assert!(format_row("%999999999999s", &[Some("x".into())]).is_err());
    }
}
