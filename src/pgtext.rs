//! Postgres' text output for the types whose Arrow rendering differs:
//! timestamps (fractional seconds only when non-zero, `+00` for
//! timestamptz), floats (shortest round-trip form, exponent outside
//! Postgres' range, `Infinity`/`NaN`) and intervals (`1 day 02:00:00`).
//!
//! Columns sent in text format with one of these types are rendered here
//! into strings before the row encoder sees them.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::arrow::error::ArrowError;

/// Whether a column of this type is rendered here in text format.
pub fn needs_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(_, _)
            | DataType::Float32
            | DataType::Float64
            | DataType::Interval(IntervalUnit::MonthDayNano)
    )
}

/// How a column is prepared for the row encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Render {
    /// Postgres text output, as a string.
    PgText,
    /// Binary jsonb: a version byte (1) followed by the text.
    JsonbBinary,
    /// Binary interval: microseconds (i64), days (i32), months (i32).
    IntervalBinary,
    /// Binary numeric from a Decimal128, exact at every precision.
    NumericBinary,
}

/// Replaces the listed columns by their rendering (timestamptz in
/// `zone`, the session's TimeZone).
pub fn render(
    batch: &RecordBatch,
    columns_to_render: &[(usize, Render)],
    zone: Option<chrono_tz::Tz>,
) -> Result<RecordBatch, ArrowError> {
    if columns_to_render.is_empty() {
        return Ok(batch.clone());
    }
    let mut columns = batch.columns().to_vec();
    let mut fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for &(i, how) in columns_to_render {
        match how {
            Render::PgText => {
                columns[i] = render_array_in(&columns[i], zone)?;
                fields[i] = fields[i].clone().with_data_type(DataType::Utf8);
            }
            Render::JsonbBinary => {
                columns[i] = jsonb_binary(columns[i].as_string::<i32>());
                fields[i] = fields[i].clone().with_data_type(DataType::Binary);
            }
            Render::IntervalBinary => {
                columns[i] = interval_binary(columns[i].as_primitive::<IntervalMonthDayNanoType>());
                fields[i] = fields[i].clone().with_data_type(DataType::Binary);
            }
            Render::NumericBinary => {
                let scale = match columns[i].data_type() {
                    DataType::Decimal128(_, s) => *s,
                    other => {
                        return Err(ArrowError::InvalidArgumentError(format!(
                            "binary numeric from {other}"
                        )))
                    }
                };
                columns[i] = numeric_binary(
                    columns[i].as_primitive::<datafusion::arrow::datatypes::Decimal128Type>(),
                    scale,
                );
                fields[i] = fields[i].clone().with_data_type(DataType::Binary);
            }
        }
    }
    RecordBatch::try_new(
        Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
        columns,
    )
}

fn jsonb_binary(text: &datafusion::arrow::array::StringArray) -> ArrayRef {
    let mut b = datafusion::arrow::array::BinaryBuilder::with_capacity(
        text.len(),
        text.value_data().len() + text.len(),
    );
    let mut buf = Vec::new();
    for v in text.iter() {
        match v {
            None => b.append_null(),
            Some(s) => {
                buf.clear();
                buf.push(1u8);
                buf.extend_from_slice(s.as_bytes());
                b.append_value(&buf);
            }
        }
    }
    Arc::new(b.finish())
}

fn interval_binary(a: &datafusion::arrow::array::IntervalMonthDayNanoArray) -> ArrayRef {
    let mut b = datafusion::arrow::array::BinaryBuilder::with_capacity(a.len(), a.len() * 16);
    for v in a.iter() {
        match v {
            None => b.append_null(),
            Some(v) => {
                let mut buf = [0u8; 16];
                buf[0..8].copy_from_slice(&v.nanoseconds.div_euclid(1000).to_be_bytes());
                buf[8..12].copy_from_slice(&v.days.to_be_bytes());
                buf[12..16].copy_from_slice(&v.months.to_be_bytes());
                b.append_value(buf);
            }
        }
    }
    Arc::new(b.finish())
}

fn numeric_binary(a: &datafusion::arrow::array::Decimal128Array, scale: i8) -> ArrayRef {
    let mut b = datafusion::arrow::array::BinaryBuilder::with_capacity(a.len(), a.len() * 16);
    let mut buf = Vec::with_capacity(64);
    for v in a.iter() {
        match v {
            None => b.append_null(),
            Some(v) => {
                buf.clear();
                numeric_wire(v, scale, &mut buf);
                b.append_value(&buf);
            }
        }
    }
    Arc::new(b.finish())
}

/// Postgres' binary numeric for `v × 10^-scale`: ndigits, weight, sign and
/// dscale (each 16 bits), then the base-10000 digits, leading and trailing
/// zero digits left out.
pub fn numeric_wire(v: i128, scale: i8, out: &mut Vec<u8>) {
    let negative = v < 0;
    let abs = v.unsigned_abs();
    // a negative scale (rare) multiplies: render as an integer
    let (digits, scale) = if scale < 0 {
        (
            format!("{abs}{}", "0".repeat(scale.unsigned_abs() as usize)),
            0usize,
        )
    } else {
        (abs.to_string(), scale as usize)
    };
    let (int, frac) = if digits.len() > scale {
        let cut = digits.len() - scale;
        (digits[..cut].to_string(), digits[cut..].to_string())
    } else {
        (
            "".to_string(),
            format!("{}{digits}", "0".repeat(scale - digits.len())),
        )
    };
    // integer part: groups of four from the right
    let mut groups: Vec<i16> = Vec::new();
    let pad = (4 - int.len() % 4) % 4;
    let int = format!("{}{int}", "0".repeat(pad));
    for c in int.as_bytes().chunks(4) {
        groups.push(std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0));
    }
    let int_groups = groups.len() as i16;
    // fraction: groups of four from the left
    let pad = (4 - frac.len() % 4) % 4;
    let frac = format!("{frac}{}", "0".repeat(pad));
    for c in frac.as_bytes().chunks(4) {
        groups.push(std::str::from_utf8(c).unwrap_or("0").parse().unwrap_or(0));
    }
    let mut weight = int_groups - 1;
    let lead = groups.iter().take_while(|g| **g == 0).count();
    let groups = &groups[lead..];
    weight -= lead as i16;
    let trail = groups.iter().rev().take_while(|g| **g == 0).count();
    let groups = &groups[..groups.len() - trail];
    if groups.is_empty() {
        weight = 0;
    }
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

pub fn render_array(a: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    render_array_in(a, None)
}

/// A `TimeZone` the tz database does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownZone;

/// A session's `TimeZone`: `None` for UTC (and its aliases), or a named
/// zone of the tz database (`Europe/Berlin`, any case). `Err` if unknown.
pub fn zone(name: &str) -> Result<Option<chrono_tz::Tz>, UnknownZone> {
    let n = name.trim();
    if [
        "utc",
        "gmt",
        "z",
        "zulu",
        "etc/utc",
        "etc/gmt",
        "universal",
        "etc/universal",
    ]
    .iter()
    .any(|u| n.eq_ignore_ascii_case(u))
    {
        return Ok(None);
    }
    match n.parse::<chrono_tz::Tz>() {
        Ok(z) => Ok(Some(z)),
        Err(_) => chrono_tz::TZ_VARIANTS
            .iter()
            .find(|z| z.name().eq_ignore_ascii_case(n))
            .map(|z| Some(*z))
            .ok_or(UnknownZone),
    }
}

/// [`render_array`], with timestamptz values shown in `zone` (UTC if
/// `None`) and that zone's offset, as Postgres shows them.
pub fn render_array_in(a: &ArrayRef, zone: Option<chrono_tz::Tz>) -> Result<ArrayRef, ArrowError> {
    let n = a.len();
    let mut b = StringBuilder::with_capacity(n, n * 20);
    macro_rules! each {
        ($arr:expr, $f:expr) => {{
            let arr = $arr;
            for i in 0..n {
                if arr.is_null(i) {
                    b.append_null();
                } else {
                    b.append_value($f(arr.value(i)));
                }
            }
        }};
    }
    match a.data_type() {
        DataType::Timestamp(unit, tz) => {
            let with_tz = tz.is_some();
            let timestamp_text = |us: i64, _: bool| match (with_tz, zone) {
                (true, Some(z)) => timestamptz_text(us, z),
                _ => timestamp_text(us, with_tz),
            };
            let tz = with_tz;
            match unit {
                TimeUnit::Second => each!(a.as_primitive::<TimestampSecondType>(), |v: i64| {
                    timestamp_text(v.saturating_mul(1_000_000), tz)
                }),
                TimeUnit::Millisecond => {
                    each!(a.as_primitive::<TimestampMillisecondType>(), |v: i64| {
                        timestamp_text(v.saturating_mul(1000), tz)
                    })
                }
                TimeUnit::Microsecond => {
                    each!(a.as_primitive::<TimestampMicrosecondType>(), |v: i64| {
                        timestamp_text(v, tz)
                    })
                }
                TimeUnit::Nanosecond => {
                    each!(a.as_primitive::<TimestampNanosecondType>(), |v: i64| {
                        timestamp_text(v.div_euclid(1000), tz)
                    })
                }
            }
        }
        DataType::Float32 => each!(a.as_primitive::<Float32Type>(), |v: f32| float4_text(v)),
        DataType::Float64 => each!(a.as_primitive::<Float64Type>(), |v: f64| float8_text(v)),
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            each!(
                a.as_primitive::<IntervalMonthDayNanoType>(),
                |v: datafusion::arrow::datatypes::IntervalMonthDayNano| {
                    interval_text(v.months, v.days, v.nanoseconds.div_euclid(1000))
                }
            )
        }
        DataType::List(_) => {
            let list = a.as_list::<i32>();
            let elements = element_texts(list.values(), zone)?;
            let nested = matches!(list.values().data_type(), DataType::List(_));
            for i in 0..n {
                if list.is_null(i) {
                    b.append_null();
                    continue;
                }
                let (start, end) = (
                    list.value_offsets()[i] as usize,
                    list.value_offsets()[i + 1] as usize,
                );
                let parts: Vec<String> = (start..end)
                    .map(|j| match elements[j].as_deref() {
                        None => "NULL".to_string(),
                        Some(t) if nested => t.to_string(),
                        Some(t) => array_element(t),
                    })
                    .collect();
                b.append_value(format!("{{{}}}", parts.join(",")));
            }
        }
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "no Postgres text rendering for {other}"
            )))
        }
    }
    Ok(Arc::new(b.finish()))
}

/// The text of each element of an array's values, as PostgreSQL prints
/// the element type (`None` for NULL).
fn element_texts(
    values: &ArrayRef,
    zone: Option<chrono_tz::Tz>,
) -> Result<Vec<Option<String>>, ArrowError> {
    let text = match values.data_type() {
        t if needs_text(t) || matches!(t, DataType::List(_)) => render_array_in(values, zone)?,
        DataType::Boolean => {
            let bools = values.as_boolean();
            return Ok((0..bools.len())
                .map(|i| {
                    (!bools.is_null(i)).then(|| if bools.value(i) { "t" } else { "f" }.to_string())
                })
                .collect());
        }
        _ => datafusion::arrow::compute::cast(values, &DataType::Utf8)?,
    };
    let text = text.as_string::<i32>();
    Ok((0..text.len())
        .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
        .collect())
}

/// An element of an array's text form: quoted where PostgreSQL quotes it
/// (empty, `NULL`, or holding a brace, comma, quote, backslash or space).
fn array_element(t: &str) -> String {
    let quote = t.is_empty()
        || t.eq_ignore_ascii_case("null")
        || t.chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !quote {
        return t.to_string();
    }
    let mut out = String::with_capacity(t.len() + 2);
    out.push('"');
    for c in t.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Microseconds since the Unix epoch, as Postgres prints a timestamp.
pub fn timestamp_text(us: i64, with_tz: bool) -> String {
    let Some(t) = utc(us) else {
        return us.to_string();
    };
    let mut s = local_text(t.naive_utc(), us);
    if with_tz {
        s.push_str("+00");
    }
    s
}

/// The instant `us` (microseconds since the epoch), to the second.
fn utc(us: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(us.div_euclid(1_000_000), 0)
}

/// A wall-clock time with the fraction of second `us` carries, as
/// Postgres prints it (fractional digits only when non-zero).
fn local_text(t: chrono::NaiveDateTime, us: i64) -> String {
    let frac = us.rem_euclid(1_000_000);
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    if frac != 0 {
        s.push('.');
        s.push_str(format!("{frac:06}").trim_end_matches('0'));
    }
    s
}

/// Microseconds since the Unix epoch, as Postgres prints a timestamptz
/// in a session whose TimeZone is `zone`: local time, then the offset
/// (`-05`, `+05:30`).
pub fn timestamptz_text(us: i64, zone: chrono_tz::Tz) -> String {
    use chrono::Offset;
    let Some(utc) = utc(us) else {
        return us.to_string();
    };
    let local = utc.with_timezone(&zone);
    let offset = local.offset().fix().local_minus_utc();
    let mut s = local_text(local.naive_local(), us);
    let sign = if offset < 0 { '-' } else { '+' };
    let o = offset.abs();
    s.push_str(&format!("{sign}{:02}", o / 3600));
    if o % 3600 != 0 {
        s.push_str(&format!(":{:02}", (o % 3600) / 60));
        if o % 60 != 0 {
            s.push_str(&format!(":{:02}", o % 60));
        }
    }
    s
}

fn exponent_form(mantissa_exp: String) -> String {
    // Rust prints `1e20` / `1.5e-5`; Postgres prints `1e+20` / `1.5e-05`.
    match mantissa_exp.split_once('e') {
        Some((m, x)) => {
            let x: i32 = x.parse().unwrap_or(0);
            format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs())
        }
        None => mantissa_exp,
    }
}

pub fn float8_text(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e15).contains(&a) {
        return exponent_form(format!("{v:e}"));
    }
    format!("{v}")
}

pub fn float4_text(v: f32) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e6).contains(&a) {
        return exponent_form(format!("{v:e}"));
    }
    format!("{v}")
}

fn plural(n: i64, unit: &str) -> String {
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// An interval in Postgres' default (`postgres`) IntervalStyle.
pub fn interval_text(months: i32, days: i32, us: i64) -> String {
    // as Postgres' EncodeInterval: a positive field after a negative one
    // gets a `+`
    let mut parts = Vec::new();
    let mut before_negative = false;
    let (y, m) = (months / 12, months % 12);
    for (v, unit) in [(y as i64, "year"), (m as i64, "mon"), (days as i64, "day")] {
        if v != 0 {
            let sign = if before_negative && v > 0 { "+" } else { "" };
            parts.push(format!("{sign}{}", plural(v, unit)));
            before_negative = v < 0;
        }
    }
    if us != 0 || parts.is_empty() {
        let neg = us < 0;
        let a = us.unsigned_abs();
        let (h, rem) = (a / 3_600_000_000, a % 3_600_000_000);
        let (mi, rem) = (rem / 60_000_000, rem % 60_000_000);
        let (s, frac) = (rem / 1_000_000, rem % 1_000_000);
        let sign = if neg {
            "-"
        } else if before_negative {
            "+"
        } else {
            ""
        };
        let mut t = format!("{sign}{h:02}:{mi:02}:{s:02}");
        if frac != 0 {
            t.push('.');
            t.push_str(format!("{frac:06}").trim_end_matches('0'));
        }
        parts.push(t);
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_postgres() {
        assert_eq!(float8_text(0.1), "0.1");
        assert_eq!(float8_text(1.0), "1");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(0.00001), "1e-05");
        assert_eq!(float8_text(-2.5e-7), "-2.5e-07");
        assert_eq!(float8_text(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(float4_text(1000000.0), "1e+06");
        assert_eq!(float4_text(1.5), "1.5");
    }

    #[test]
    fn timestamps_and_intervals_like_postgres() {
        assert_eq!(timestamp_text(0, false), "1970-01-01 00:00:00");
        assert_eq!(timestamp_text(1_500_000, true), "1970-01-01 00:00:01.5+00");
        assert_eq!(timestamp_text(-1, false), "1969-12-31 23:59:59.999999");
        assert_eq!(interval_text(0, 0, 0), "00:00:00");
        assert_eq!(
            interval_text(14, 3, 3_723_500_000),
            "1 year 2 mons 3 days 01:02:03.5"
        );
        assert_eq!(interval_text(0, 1, 0), "1 day");
        assert_eq!(interval_text(0, 0, -4_000_000), "-00:00:04");
    }
}

#[cfg(test)]
mod numeric_tests {
    use super::numeric_wire;

    fn wire(v: i128, scale: i8) -> (i16, i16, u16, u16, Vec<i16>) {
        let mut b = Vec::new();
        numeric_wire(v, scale, &mut b);
        let rd = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
        let n = rd(0) as usize;
        (
            rd(0),
            rd(2),
            rd(4) as u16,
            rd(6) as u16,
            (0..n).map(|k| rd(8 + 2 * k)).collect(),
        )
    }

    #[test]
    fn numeric_wire_matches_postgres() {
        // (what Postgres sends for the same values)
        assert_eq!(wire(15, 1), (2, 0, 0, 1, vec![1, 5000]));
        assert_eq!(wire(1, 4), (1, -1, 0, 4, vec![1]));
        assert_eq!(wire(1, 5), (1, -2, 0, 5, vec![1000]));
        assert_eq!(wire(12345678, 0), (2, 1, 0, 0, vec![1234, 5678]));
        assert_eq!(wire(10000, 0), (1, 1, 0, 0, vec![1]));
        assert_eq!(wire(0, 2), (0, 0, 0, 2, vec![]));
        assert_eq!(wire(-125, 2), (2, 0, 0x4000, 2, vec![1, 2500]));
        assert_eq!(
            wire(18446744073709551614, 0),
            (5, 4, 0, 0, vec![1844, 6744, 737, 955, 1614])
        );
        assert_eq!(wire(i128::MAX, 0).4.len(), 10);
    }
}
