//! Turning input values into a column's type, a whole column at a time,
//! with errors that name the row and the column.
//!
//! Text (COPY fields, string literals in INSERT) is parsed with Postgres'
//! input rules where they differ from Arrow's casts (booleans, integers with
//! surrounding blanks, bytea hex, jsonb); everything else goes through
//! Arrow's cast kernels, checked so that no value silently becomes NULL.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, IntervalMonthDayNanoBuilder, StringArray,
    StringBuilder,
};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::IntervalMonthDayNano;
use datafusion::arrow::util::display::FormatOptions;

use crate::catalog::ColumnDef;
use crate::types::SqlType;

/// Why one value could not be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellError {
    /// Row index within the array given.
    pub row: usize,
    pub kind: CellErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellErrorKind {
    /// 22P02
    InvalidText,
    /// 22003
    OutOfRange,
    /// 22001
    TooLong,
    /// 23502
    NotNull,
    /// 22021: text that is not UTF-8, or holds NUL
    Encoding,
    /// 42804
    Datatype,
}

fn err(row: usize, kind: CellErrorKind, message: String) -> CellError {
    CellError { row, kind, message }
}

fn invalid(row: usize, ty: &SqlType, v: &str) -> CellError {
    err(
        row,
        CellErrorKind::InvalidText,
        format!("invalid input syntax for type {ty}: \"{v}\""),
    )
}

/// Parses a column of text into the column's type. NULL stays NULL.
pub fn from_text(texts: &StringArray, col: &ColumnDef) -> Result<ArrayRef, CellError> {
    let ty = &col.ty;
    let n = texts.len();
    let out: ArrayRef = match ty {
        SqlType::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(parse_bool(s).ok_or_else(|| invalid(i, ty, s))?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Int2 => {
            let mut b = Int16Builder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => {
                        let x = parse_int(s, i, ty)?;
                        b.append_value(i16::try_from(x).map_err(|_| out_of_range(i, ty, s))?)
                    }
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Int4 => {
            let mut b = Int32Builder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => {
                        let x = parse_int(s, i, ty)?;
                        b.append_value(i32::try_from(x).map_err(|_| out_of_range(i, ty, s))?)
                    }
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Int8 => {
            let mut b = Int64Builder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(parse_int(s, i, ty)?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Float4 => {
            let mut b = Float32Builder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => {
                        b.append_value(parse_float(s).ok_or_else(|| invalid(i, ty, s))? as f32)
                    }
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Float8 => {
            let mut b = Float64Builder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(parse_float(s).ok_or_else(|| invalid(i, ty, s))?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Text => Arc::new(texts.clone()),
        SqlType::Varchar { max_len } => {
            if let Some(max) = max_len {
                check_length(texts, *max as usize, ty)?;
            }
            Arc::new(texts.clone())
        }
        SqlType::Jsonb => {
            let mut b = StringBuilder::with_capacity(n, texts.value_data().len());
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(crate::ingest::json::normalize(s).map_err(|e| {
                        err(
                            i,
                            CellErrorKind::InvalidText,
                            format!("invalid input syntax for type json: {e}"),
                        )
                    })?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Bytea => {
            let mut b = BinaryBuilder::with_capacity(n, texts.value_data().len());
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(parse_bytea(s).ok_or_else(|| invalid(i, ty, s))?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Interval => {
            let mut b = IntervalMonthDayNanoBuilder::with_capacity(n);
            for (i, v) in texts.iter().enumerate() {
                match v {
                    None => b.append_null(),
                    Some(s) => b.append_value(parse_interval(s).ok_or_else(|| invalid(i, ty, s))?),
                }
            }
            Arc::new(b.finish())
        }
        SqlType::Numeric { .. } | SqlType::Date | SqlType::Timestamp | SqlType::Timestamptz => {
            let padded = texts.iter().flatten().any(|v| v.trim().len() != v.len());
            let timestamp = matches!(ty, SqlType::Timestamp | SqlType::Timestamptz);
            let short = timestamp && texts.iter().flatten().any(|v| with_seconds(v).is_some());
            let arr: ArrayRef = if short {
                // Postgres reads `2026-01-01 10:00` as 10:00:00
                Arc::new(
                    texts
                        .iter()
                        .map(|v| v.map(|v| with_seconds(v).unwrap_or_else(|| v.trim().to_string())))
                        .collect::<StringArray>(),
                )
            } else if padded {
                Arc::new(trim_all(texts))
            } else {
                Arc::new(texts.clone())
            };
            cast_checked(&arr, col).map_err(|mut e| {
                if e.kind == CellErrorKind::Datatype {
                    e.kind = CellErrorKind::InvalidText;
                    let v = texts.value(e.row);
                    e.message = match ty {
                        SqlType::Numeric { .. } if looks_numeric(v) => {
                            e.kind = CellErrorKind::OutOfRange;
                            format!("numeric field overflow for type {ty}: \"{v}\"")
                        }
                        _ => format!("invalid input syntax for type {ty}: \"{v}\""),
                    };
                }
                e
            })?
        }
    };
    Ok(out)
}

fn looks_numeric(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
}

/// A timestamp whose time of day has no seconds (`2026-01-01 10:00`,
/// `2026-01-01T10:00+02`), with `:00` seconds added; `None` otherwise.
pub fn with_seconds(v: &str) -> Option<String> {
    let v = v.trim();
    let b = v.as_bytes();
    // the date, then ' ' or 'T'
    let sep = b.iter().position(|&c| c == b' ' || c == b'T')?;
    if sep < 8 || !b[..sep].iter().all(|c| c.is_ascii_digit() || *c == b'-') {
        return None;
    }
    let time = &b[sep + 1..];
    let hours = time.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&hours) || time.get(hours) != Some(&b':') {
        return None;
    }
    let rest = &time[hours + 1..];
    let minutes = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if minutes != 2 || matches!(rest.get(2), Some(b':' | b'.')) {
        return None;
    }
    if matches!(rest.get(2), Some(c) if c.is_ascii_digit()) {
        return None;
    }
    let at = sep + 1 + hours + 1 + 2;
    Some(format!("{}:00{}", &v[..at], &v[at..]))
}

fn trim_all(texts: &StringArray) -> StringArray {
    texts.iter().map(|v| v.map(str::trim)).collect()
}

fn check_length(texts: &StringArray, max: usize, ty: &SqlType) -> Result<(), CellError> {
    for (i, v) in texts.iter().enumerate() {
        if let Some(s) = v {
            if s.len() > max && s.chars().count() > max {
                return Err(err(
                    i,
                    CellErrorKind::TooLong,
                    format!("value too long for type {ty}"),
                ));
            }
        }
    }
    Ok(())
}

fn out_of_range(row: usize, ty: &SqlType, v: &str) -> CellError {
    err(
        row,
        CellErrorKind::OutOfRange,
        format!("value \"{}\" is out of range for type {ty}", v.trim()),
    )
}

fn parse_int(s: &str, row: usize, ty: &SqlType) -> Result<i64, CellError> {
    let t = s.trim();
    match t.parse::<i64>() {
        Ok(v) => Ok(v),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                Err(out_of_range(row, ty, s))
            }
            _ => Err(invalid(row, ty, s)),
        },
    }
}

fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => t.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

/// Postgres boolean input: true/false, yes/no, on/off, 1/0 and unique prefixes.
pub fn parse_bool(s: &str) -> Option<bool> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.as_str();
    if t.is_empty() {
        return None;
    }
    if "true".starts_with(t) || "yes".starts_with(t) || t == "on" || t == "1" {
        return Some(true);
    }
    if "false".starts_with(t) || "no".starts_with(t) || t == "off" || t == "of" || t == "0" {
        return Some(false);
    }
    None
}

/// Postgres bytea input: `\x` hex, or the escape format (`\\`, `\ooo`).
pub fn parse_bytea(s: &str) -> Option<Vec<u8>> {
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return None;
        }
        return digits
            .chunks(2)
            .map(|p| {
                let hi = (p[0] as char).to_digit(16)?;
                let lo = (p[1] as char).to_digit(16)?;
                Some((hi * 16 + lo) as u8)
            })
            .collect();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if i + 1 < b.len() && b[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
            } else if i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (b[i + 1] - b'0') as u32 * 64
                    + (b[i + 2] - b'0') as u32 * 8
                    + (b[i + 3] - b'0') as u32;
                out.push(u8::try_from(v).ok()?);
                i += 4;
            } else {
                return None;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Postgres interval input: `1 year 2 mons 3 days 04:05:06.5`, `2 hours`,
/// `-00:00:04`, `@ 1 day ago`, with fractional amounts carried down
/// (a month is 30 days, a day 24 hours, as in Postgres).
pub fn parse_interval(s: &str) -> Option<IntervalMonthDayNano> {
    const US_PER_DAY: f64 = 86_400_000_000.0;
    let mut t = s.trim().to_ascii_lowercase();
    if let Some(rest) = t.strip_prefix('@') {
        t = rest.trim().to_string();
    }
    let mut ago = false;
    if let Some(rest) = t.strip_suffix("ago") {
        ago = true;
        t = rest.trim().to_string();
    }
    if t.is_empty() {
        return None;
    }
    let (mut months, mut days, mut us) = (0f64, 0f64, 0f64);
    let tokens: Vec<&str> = t.split_whitespace().collect();
    let mut i = 0;
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            let (neg, body) = match tok.strip_prefix('-') {
                Some(b) => (true, b),
                None => (false, tok.strip_prefix('+').unwrap_or(tok)),
            };
            let parts: Vec<&str> = body.split(':').collect();
            if parts.len() < 2 || parts.len() > 3 {
                return None;
            }
            let h: f64 = parts[0].parse().ok()?;
            let m: f64 = parts[1].parse().ok()?;
            let sec: f64 = match parts.get(2) {
                Some(p) => p.parse().ok()?,
                None => 0.0,
            };
            if !(0.0..60.0).contains(&m) || !(0.0..60.0).contains(&sec) {
                return None;
            }
            let v = (h * 3600.0 + m * 60.0 + sec) * 1e6;
            us += if neg { -v } else { v };
            i += 1;
            continue;
        }
        // A number, optionally glued to its unit (`10s`), then the unit.
        let split = tok
            .find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(tok.len());
        let (num, glued) = tok.split_at(split);
        let n: f64 = num.parse().ok()?;
        let unit = if glued.is_empty() {
            i += 1;
            *tokens.get(i)?
        } else {
            glued
        };
        match unit.trim_end_matches(',') {
            "millennium" | "millennia" | "millenniums" => months += n * 12000.0,
            "century" | "centuries" => months += n * 1200.0,
            "decade" | "decades" => months += n * 120.0,
            "y" | "yr" | "yrs" | "year" | "years" => months += n * 12.0,
            "mon" | "mons" | "month" | "months" => months += n,
            "w" | "week" | "weeks" => days += n * 7.0,
            "d" | "day" | "days" => days += n,
            "h" | "hr" | "hrs" | "hour" | "hours" => us += n * 3_600e6,
            "m" | "min" | "mins" | "minute" | "minutes" => us += n * 60e6,
            "s" | "sec" | "secs" | "second" | "seconds" => us += n * 1e6,
            "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => us += n * 1e3,
            "us" | "usec" | "usecs" | "microsecond" | "microseconds" => us += n,
            _ => return None,
        }
        i += 1;
    }
    // Carry fractions down: months -> days -> microseconds.
    let whole_months = months.trunc();
    days += (months - whole_months) * 30.0;
    let whole_days = days.trunc();
    us += (days - whole_days) * US_PER_DAY;
    let sign = if ago { -1.0 } else { 1.0 };
    let m = (whole_months * sign) as i64;
    let d = (whole_days * sign) as i64;
    let micros = (us * sign).round();
    if m.abs() > i32::MAX as i64 || d.abs() > i32::MAX as i64 || micros.abs() > 9.2e15 {
        return None;
    }
    Some(IntervalMonthDayNano::new(
        m as i32,
        d as i32,
        (micros as i64).checked_mul(1000)?,
    ))
}

/// Casts any array to the column's type; a value the cast cannot represent
/// is an error naming its row, never a silent NULL.
pub fn cast_checked(arr: &ArrayRef, col: &ColumnDef) -> Result<ArrayRef, CellError> {
    let target = col.ty.to_arrow();
    if arr.data_type() == &target {
        return Ok(arr.clone());
    }
    let opts = CastOptions {
        safe: true,
        format_options: FormatOptions::default(),
    };
    let out = cast_with_options(arr, &target, &opts).map_err(|e| {
        err(
            0,
            CellErrorKind::Datatype,
            format!(
                "column \"{}\" is of type {} but expression is of type {}: {e}",
                col.name,
                col.ty,
                arr.data_type()
            ),
        )
    })?;
    if out.null_count() != arr.null_count() {
        for i in 0..arr.len() {
            if arr.is_valid(i) && out.is_null(i) {
                let shown = datafusion::arrow::util::display::array_value_to_string(arr, i)
                    .unwrap_or_default();
                let kind = if matches!(
                    arr.data_type(),
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
                ) {
                    CellErrorKind::Datatype
                } else {
                    CellErrorKind::OutOfRange
                };
                let message = match kind {
                    CellErrorKind::OutOfRange => {
                        format!("value {shown} is out of range for type {}", col.ty)
                    }
                    _ => format!("invalid input syntax for type {}: \"{shown}\"", col.ty),
                };
                return Err(err(i, kind, message));
            }
        }
    }
    Ok(out)
}

/// Converts any array to the column's type: text is parsed with Postgres'
/// input rules, other types are cast; then NOT NULL is checked.
pub fn to_column(arr: &ArrayRef, col: &ColumnDef) -> Result<ArrayRef, CellError> {
    let out = match arr.data_type() {
        DataType::Utf8 if col.ty.to_arrow() != DataType::Utf8 || needs_text_check(&col.ty) => {
            from_text(arr.as_string::<i32>(), col)?
        }
        DataType::Utf8View | DataType::LargeUtf8 => {
            let s = cast_with_options(arr, &DataType::Utf8, &CastOptions::default())
                .map_err(|e| err(0, CellErrorKind::Datatype, e.to_string()))?;
            from_text(s.as_string::<i32>(), col)?
        }
        DataType::Null => datafusion::arrow::array::new_null_array(&col.ty.to_arrow(), arr.len()),
        _ => {
            let c = cast_checked(arr, col)?;
            if let (SqlType::Varchar { max_len: Some(max) }, DataType::Utf8) =
                (&col.ty, c.data_type())
            {
                check_length(c.as_string::<i32>(), *max as usize, &col.ty)?;
            }
            c
        }
    };
    if let Some(texts) = out.as_string_opt::<i32>() {
        // text holds no NUL, as in Postgres (a value can get one from an
        // escape such as E'\x00')
        if texts.value_data().contains(&0) {
            let row = (0..texts.len())
                .find(|&i| texts.is_valid(i) && texts.value(i).contains('\0'))
                .unwrap_or(0);
            return Err(err(
                row,
                CellErrorKind::Encoding,
                "invalid byte sequence for encoding \"UTF8\": 0x00".into(),
            ));
        }
    }
    if !col.nullable && out.null_count() > 0 {
        let row = (0..out.len()).find(|&i| out.is_null(i)).unwrap_or(0);
        return Err(err(
            row,
            CellErrorKind::NotNull,
            format!(
                "null value in column \"{}\" violates not-null constraint",
                col.name
            ),
        ));
    }
    Ok(out)
}

fn needs_text_check(ty: &SqlType) -> bool {
    matches!(ty, SqlType::Varchar { max_len: Some(_) } | SqlType::Jsonb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, TimestampMicrosecondArray};

    fn col(ty: SqlType) -> ColumnDef {
        ColumnDef {
            name: "c".into(),
            ty,
            nullable: true,
        }
    }

    fn texts(v: &[Option<&str>]) -> StringArray {
        v.iter().copied().collect()
    }

    #[test]
    fn integers_with_blanks_and_errors() {
        let a = from_text(
            &texts(&[Some(" 12 "), None, Some("-3")]),
            &col(SqlType::Int8),
        )
        .unwrap();
        assert_eq!(
            a.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
            &Int64Array::from(vec![Some(12), None, Some(-3)])
        );
        let e = from_text(&texts(&[Some("1"), Some("x1")]), &col(SqlType::Int4)).unwrap_err();
        assert_eq!((e.row, e.kind), (1, CellErrorKind::InvalidText));
        let e = from_text(&texts(&[Some("40000")]), &col(SqlType::Int2)).unwrap_err();
        assert_eq!(e.kind, CellErrorKind::OutOfRange);
    }

    #[test]
    fn booleans_and_bytea() {
        assert_eq!(parse_bool("t"), Some(true));
        assert_eq!(parse_bool(" OFF "), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_bytea("\\x0aff"), Some(vec![10, 255]));
        assert_eq!(parse_bytea("a\\\\b\\001"), Some(vec![b'a', b'\\', b'b', 1]));
        assert_eq!(parse_bytea("\\x0"), None);
    }

    #[test]
    fn timestamps_without_seconds_read_as_postgres_does() {
        assert_eq!(
            with_seconds("2026-01-01 10:00").as_deref(),
            Some("2026-01-01 10:00:00")
        );
        assert_eq!(
            with_seconds(" 2026-01-01T9:05+02 ").as_deref(),
            Some("2026-01-01T9:05:00+02")
        );
        assert_eq!(with_seconds("2026-01-01 10:00:30"), None);
        assert_eq!(with_seconds("2026-01-01 10:00.5"), None);
        assert_eq!(with_seconds("2026-01-01"), None);
        let out = from_text(
            &texts(&[Some("2026-01-01 10:00"), Some("2026-01-01 10:00:01")]),
            &col(SqlType::Timestamp),
        )
        .unwrap();
        let ts = out
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(ts.value(1) - ts.value(0), 1_000_000);
    }

    #[test]
    fn timestamps_parse_and_bad_ones_name_the_row() {
        let a = from_text(
            &texts(&[Some("2026-01-01 10:00:00"), Some("2026-01-01T10:00:01.5")]),
            &col(SqlType::Timestamp),
        )
        .unwrap();
        let t = a
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(t.value(1) - t.value(0), 1_500_000);
        let e = from_text(
            &texts(&[Some("2026-01-01"), Some("yesterday-ish")]),
            &col(SqlType::Timestamp),
        )
        .unwrap_err();
        assert_eq!(e.row, 1);
        assert_eq!(e.kind, CellErrorKind::InvalidText);
    }

    #[test]
    fn numeric_overflow_and_not_null() {
        let e = from_text(
            &texts(&[Some("1.5"), Some("123456")]),
            &col(SqlType::Numeric {
                precision: 4,
                scale: 1,
            }),
        )
        .unwrap_err();
        assert_eq!((e.row, e.kind), (1, CellErrorKind::OutOfRange));
        let mut c = col(SqlType::Int8);
        c.nullable = false;
        let arr: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        let e = to_column(&arr, &c).unwrap_err();
        assert_eq!((e.row, e.kind), (1, CellErrorKind::NotNull));
    }

    #[test]
    fn intervals_like_postgres() {
        let iv = |m, d, us: i64| Some(IntervalMonthDayNano::new(m, d, us * 1000));
        assert_eq!(parse_interval("1 day 2 hours"), iv(0, 1, 7_200_000_000));
        assert_eq!(parse_interval("00:00:04"), iv(0, 0, 4_000_000));
        assert_eq!(parse_interval("-00:00:04.5"), iv(0, 0, -4_500_000));
        assert_eq!(
            parse_interval("1 year 2 mons 3 days 04:05:06"),
            iv(14, 3, 14_706_000_000)
        );
        assert_eq!(parse_interval("4 seconds"), iv(0, 0, 4_000_000));
        assert_eq!(parse_interval("10s"), iv(0, 0, 10_000_000));
        assert_eq!(parse_interval("@ 1 day ago"), iv(0, -1, 0));
        assert_eq!(parse_interval("1.5 days"), iv(0, 1, 43_200_000_000));
        assert_eq!(parse_interval("soon"), None);
        assert_eq!(parse_interval(""), None);
    }

    #[test]
    fn varchar_length_is_enforced() {
        let e = from_text(
            &texts(&[Some("ab"), Some("abcd")]),
            &col(SqlType::Varchar { max_len: Some(3) }),
        )
        .unwrap_err();
        assert_eq!((e.row, e.kind), (1, CellErrorKind::TooLong));
    }
}
