//! PostgreSQL's binary-string functions where DataFusion's differ or are
//! missing: `encode`/`decode` with `hex`, `base64` (padded, lines of 76
//! characters, as PostgreSQL writes it) and `escape`; `convert_from` and
//! `convert_to` between `bytea` and text in UTF8, SQL_ASCII or LATIN1.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BinaryArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::functions::same_shape;
use super::SqlError;

pub fn functions() -> Vec<ScalarUDF> {
    [
        Kind::Encode,
        Kind::Decode,
        Kind::ConvertFrom,
        Kind::ConvertTo,
    ]
    .into_iter()
    .map(|kind| {
        ScalarUDF::new_from_impl(BinaryFn {
            kind,
            signature: Signature::any(2, Volatility::Immutable),
        })
    })
    .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `encode(bytea, format) → text`
    Encode,
    /// `decode(text, format) → bytea`
    Decode,
    /// `convert_from(bytea, encoding) → text`
    ConvertFrom,
    /// `convert_to(text, encoding) → bytea`
    ConvertTo,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BinaryFn {
    kind: Kind,
    signature: Signature,
}

fn err(e: SqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn bad_value(m: String) -> DataFusionError {
    err(SqlError::InvalidParameterValue(m))
}

/// A character set `convert_from`/`convert_to` know.
#[derive(Clone, Copy, PartialEq)]
enum Charset {
    Utf8,
    SqlAscii,
    Latin1,
}

/// PostgreSQL's encoding names, compared as it compares them (case and
/// punctuation ignored).
fn charset(name: &str, role: &str) -> DfResult<Charset> {
    let key: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Ok(match key.as_str() {
        "utf8" | "unicode" => Charset::Utf8,
        "sqlascii" => Charset::SqlAscii,
        "latin1" | "iso88591" => Charset::Latin1,
        "latin2" | "latin3" | "latin4" | "latin5" | "latin6" | "latin7" | "latin8" | "latin9"
        | "latin10" | "win1250" | "win1251" | "win1252" | "win1253" | "win1254" | "win1255"
        | "win1256" | "win1257" | "win1258" | "win866" | "win874" | "koi8r" | "koi8u" | "eucjp"
        | "euccn" | "euckr" | "euctw" | "eucjis2004" | "sjis" | "big5" | "gbk" | "gb18030"
        | "uhc" | "johab" | "mulecinternal" | "iso88595" | "iso88596" | "iso88597" | "iso88598"
        | "shiftjis2004" => {
            return Err(err(SqlError::Unsupported(format!(
                "conversion between UTF8 and {} is not supported",
                name.to_uppercase()
            ))))
        }
        _ => {
            return Err(bad_value(format!(
                "invalid {role} encoding name \"{name}\""
            )))
        }
    })
}

/// PostgreSQL's `escape` format: NUL and bytes with the high bit as `\ooo`,
/// a backslash doubled, the rest as they are.
fn escape_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &x in b {
        if x == 0 || x >= 0x80 {
            s.push_str(&format!("\\{x:03o}"));
        } else if x == b'\\' {
            s.push_str("\\\\");
        } else {
            s.push(char::from(x));
        }
    }
    s
}

fn escape_decode(t: &str) -> DfResult<Vec<u8>> {
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let oct = b.get(i + 1..i + 4).filter(|d| {
                (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|c| (b'0'..=b'7').contains(c))
            });
            match oct {
                Some(d) => {
                    out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                    i += 4;
                }
                None => {
                    return Err(err(SqlError::InvalidText(
                        "invalid input syntax for type bytea".into(),
                    )))
                }
            }
        }
    }
    Ok(out)
}

fn hex_decode(t: &str) -> DfResult<Vec<u8>> {
    let digits: Vec<u8> = t
        .bytes()
        .filter(|c| !matches!(c, b' ' | b'\n' | b'\t' | b'\r'))
        .collect();
    let val = |c: u8| -> DfResult<u8> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| bad_value(format!("invalid hexadecimal digit: \"{}\"", c as char)))
    };
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        let hi = val(pair[0])?;
        let Some(&lo) = pair.get(1) else {
            return Err(bad_value(
                "invalid hexadecimal data: odd number of digits".into(),
            ));
        };
        out.push(hi * 16 + val(lo)?);
    }
    Ok(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 as PostgreSQL writes it: padded, a newline after every 76
/// characters.
fn base64_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 4 / 3 + b.len() / 57 + 4);
    let mut line = 0;
    for chunk in b.chunks(3) {
        if line == 76 {
            s.push('\n');
            line = 0;
        }
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(B64[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                s.push('=');
            }
        }
        line += 4;
    }
    s
}

/// PostgreSQL's base64 decoding, step for step: whitespace skipped; `=`
/// only as the third or fourth character of a group, after which the
/// group's padding positions give no bytes; input must end on a whole
/// group.
fn base64_decode(t: &str) -> DfResult<Vec<u8>> {
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let (mut buf, mut pos, mut end) = (0u32, 0, 0);
    for c in t.chars() {
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        let b = if c == '=' {
            if end == 0 {
                end = match pos {
                    2 => 1,
                    3 => 2,
                    _ => {
                        return Err(bad_value(
                            "unexpected \"=\" while decoding base64 sequence".into(),
                        ))
                    }
                };
            }
            0
        } else {
            B64.iter()
                .position(|&x| char::from(x) == c)
                .ok_or_else(|| {
                    bad_value(format!(
                        "invalid symbol \"{c}\" found while decoding base64 sequence"
                    ))
                })? as u32
        };
        buf = (buf << 6) + b;
        pos += 1;
        if pos == 4 {
            out.push((buf >> 16) as u8);
            if end == 0 || end > 1 {
                out.push((buf >> 8) as u8);
            }
            if end == 0 || end > 2 {
                out.push(buf as u8);
            }
            buf = 0;
            pos = 0;
        }
    }
    if pos != 0 {
        return Err(bad_value("invalid base64 end sequence".into()));
    }
    Ok(out)
}

fn latin1_encode(s: &str) -> DfResult<Vec<u8>> {
    s.chars()
        .map(|c| {
            u8::try_from(u32::from(c)).map_err(|_| {
                let mut buf = [0u8; 4];
                let seq: Vec<String> = c
                    .encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("0x{b:02x}"))
                    .collect();
                err(SqlError::Untranslatable(format!(
                    "character with byte sequence {} in encoding \"UTF8\" has no equivalent in encoding \"LATIN1\"",
                    seq.join(" ")
                )))
            })
        })
        .collect()
}

fn utf8_checked(b: &[u8]) -> DfResult<String> {
    match std::str::from_utf8(b) {
        Ok(s) if !s.contains('\0') => Ok(s.to_string()),
        Ok(_) => Err(err(SqlError::InvalidEncoding(
            "invalid byte sequence for encoding \"UTF8\": 0x00".into(),
        ))),
        Err(e) => {
            let at = e.valid_up_to();
            // (as many bytes as the first one announces, as PostgreSQL
            // reports them)
            let len = match b[at] {
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                0xf0..=0xf7 => 4,
                _ => 1,
            };
            let end = (at + len).min(b.len());
            let seq: Vec<String> = b[at..end].iter().map(|x| format!("0x{x:02x}")).collect();
            Err(err(SqlError::InvalidEncoding(format!(
                "invalid byte sequence for encoding \"UTF8\": {}",
                seq.join(" ")
            ))))
        }
    }
}

impl BinaryFn {
    fn format(&self, name: &str) -> DfResult<&'static str> {
        match name.to_ascii_lowercase().as_str() {
            "hex" => Ok("hex"),
            "base64" => Ok("base64"),
            "escape" => Ok("escape"),
            _ => Err(bad_value(format!("unrecognized encoding: \"{name}\""))),
        }
    }

    /// One row: `Some` output bytes (text as UTF-8), or `None` for NULL.
    fn row(&self, value: &[u8], arg: &str) -> DfResult<Vec<u8>> {
        Ok(match self.kind {
            Kind::Encode => match self.format(arg)? {
                "hex" => value
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into_bytes(),
                "base64" => base64_encode(value).into_bytes(),
                _ => escape_encode(value).into_bytes(),
            },
            Kind::Decode => {
                let text = std::str::from_utf8(value).unwrap_or_default();
                match self.format(arg)? {
                    "hex" => hex_decode(text)?,
                    "base64" => base64_decode(text)?,
                    _ => escape_decode(text)?,
                }
            }
            Kind::ConvertFrom => match charset(arg, "source")? {
                Charset::Utf8 | Charset::SqlAscii => utf8_checked(value)?.into_bytes(),
                Charset::Latin1 => value
                    .iter()
                    .map(|&b| char::from(b))
                    .collect::<String>()
                    .into_bytes(),
            },
            Kind::ConvertTo => {
                let text = std::str::from_utf8(value).unwrap_or_default();
                match charset(arg, "destination")? {
                    Charset::Utf8 | Charset::SqlAscii => value.to_vec(),
                    Charset::Latin1 => latin1_encode(text)?,
                }
            }
        })
    }
}

impl ScalarUDFImpl for BinaryFn {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Encode => "encode",
            Kind::Decode => "decode",
            Kind::ConvertFrom => "convert_from",
            Kind::ConvertTo => "convert_to",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(match self.kind {
            Kind::Encode | Kind::ConvertFrom => DataType::Utf8,
            Kind::Decode | Kind::ConvertTo => DataType::Binary,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [value, arg] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(format!(
                "{} takes two arguments",
                self.name()
            )));
        };
        // the value as bytes (text as its UTF-8), the second argument as text
        let value = match self.kind {
            Kind::Encode | Kind::ConvertFrom => cast(value, &DataType::Binary)?,
            Kind::Decode | Kind::ConvertTo => {
                cast(&cast(value, &DataType::Utf8)?, &DataType::Binary)?
            }
        };
        let arg = cast(arg, &DataType::Utf8)?;
        let value = value
            .as_any()
            .downcast_ref::<BinaryArray>()
            .ok_or_else(|| DataFusionError::Internal("binary cast".into()))?;
        let arg = arg
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("text cast".into()))?;
        let mut rows: Vec<Option<Vec<u8>>> = Vec::with_capacity(value.len());
        for i in 0..value.len() {
            rows.push(if value.is_null(i) || arg.is_null(i) {
                None
            } else {
                Some(self.row(value.value(i), arg.value(i))?)
            });
        }
        let out: ArrayRef = match self.kind {
            Kind::Encode | Kind::ConvertFrom => Arc::new(
                rows.into_iter()
                    .map(|r| r.map(|b| String::from_utf8(b).unwrap_or_default()))
                    .collect::<StringArray>(),
            ),
            Kind::Decode | Kind::ConvertTo => {
                Arc::new(rows.iter().map(|r| r.as_deref()).collect::<BinaryArray>())
            }
        };
        if out.is_empty() {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from(
                out.data_type(),
            )?));
        }
        same_shape(&args.args, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trip() {
        let b = [b'a', 0, b'\\', 0xff, b'\n', b'z'];
        let e = escape_encode(&b);
        assert_eq!(e, "a\\000\\\\\\377\nz");
        assert_eq!(escape_decode(&e).expect("decode"), b);
        assert!(escape_decode("\\x").is_err());
    }

    #[test]
    fn base64_as_postgres_writes_it() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b"abc"), "YWJj");
        let long = base64_encode(&[7u8; 60]);
        assert_eq!(long.find('\n'), Some(76));
        assert_eq!(base64_decode(&long).expect("decode"), vec![7u8; 60]);
        assert_eq!(base64_decode("YQ==").expect("decode"), b"a");
        assert_eq!(base64_decode("YWI=").expect("decode"), b"ab");
        assert!(base64_decode("Y").is_err());
        assert!(base64_decode("Y$==").is_err());
        // (as PostgreSQL: padding may end a group mid-string)
        assert_eq!(base64_decode("YQ==YQ==").expect("decode"), b"aa");
        assert!(base64_decode("=YQ=").is_err());
    }

    #[test]
    fn hex_and_charsets() {
        assert_eq!(hex_decode("01 ab").expect("hex"), [1, 0xab]);
        assert!(hex_decode("abc").is_err());
        assert!(hex_decode("zz").is_err());
        assert!(utf8_checked(&[0x61, 0xff]).is_err());
        assert_eq!(latin1_encode("é").expect("latin1"), [0xe9]);
        assert!(latin1_encode("€").is_err());
        assert!(charset("Utf-8", "source").is_ok());
        assert!(charset("nope", "source").is_err());
    }
}
