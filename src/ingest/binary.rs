//! `COPY … FROM STDIN (FORMAT binary)`: PostgreSQL's binary copy format
//! (the `PGCOPY` signature, a flags word and a header extension; then per
//! row a field count and each field as a length, -1 for NULL, and the value
//! in the type's binary send form; a field count of -1 ends the data).
//!
//! Each value is turned into the text PostgreSQL would print for it, and
//! the row goes on through the same typed parsing as text COPY, so checks,
//! limits and error messages are the same.

use chrono::{Duration, NaiveDate};

use crate::types::SqlType;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Where the reader is in the stream.
#[derive(Debug, Default)]
pub struct BinaryReader {
    header_done: bool,
    pub ended: bool,
}

/// One step of reading.
pub enum Step {
    /// A whole row: its fields, `None` for NULL.
    Row(Vec<Option<Vec<u8>>>),
    /// More bytes are needed.
    More,
    /// The data has ended (trailer).
    End,
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl BinaryReader {
    /// Reads the next item from the front of `buf`, returning how many
    /// bytes it used. Malformed input is an error message.
    pub fn next(&mut self, buf: &[u8]) -> Result<(Step, usize), String> {
        let mut at = 0;
        if !self.header_done {
            if buf.len() < SIGNATURE.len() + 8 {
                return Ok((Step::More, 0));
            }
            if &buf[..SIGNATURE.len()] != SIGNATURE {
                return Err("COPY file signature not recognized".into());
            }
            at = SIGNATURE.len();
            let flags = be_i32(&buf[at..]);
            if flags & (1 << 16) != 0 {
                return Err("COPY file has OIDs, which are not supported".into());
            }
            let ext = be_i32(&buf[at + 4..]);
            if ext < 0 {
                return Err("invalid COPY file header (missing length)".into());
            }
            let end = at + 8 + ext as usize;
            if buf.len() < end {
                return Ok((Step::More, 0));
            }
            at = end;
            self.header_done = true;
        }
        if buf.len() < at + 2 {
            return Ok((Step::More, at));
        }
        let count = be_i16(&buf[at..]);
        if count == -1 {
            self.ended = true;
            return Ok((Step::End, at + 2));
        }
        if count < 0 {
            return Err(format!("row field count is {count}"));
        }
        let mut p = at + 2;
        let mut fields = Vec::with_capacity(count as usize);
        for _ in 0..count {
            if buf.len() < p + 4 {
                return Ok((Step::More, at));
            }
            let len = be_i32(&buf[p..]);
            p += 4;
            if len == -1 {
                fields.push(None);
                continue;
            }
            if len < 0 {
                return Err(format!("invalid field size {len}"));
            }
            let len = len as usize;
            if buf.len() < p + len {
                return Ok((Step::More, at));
            }
            fields.push(Some(buf[p..p + len].to_vec()));
            p += len;
        }
        Ok((Step::Row(fields), p))
    }
}

fn size(v: &[u8], n: usize, ty: &SqlType) -> Result<(), String> {
    if v.len() == n {
        Ok(())
    } else {
        Err(format!(
            "incorrect binary data format: {} bytes for a value of type {ty}",
            v.len()
        ))
    }
}

/// The day PostgreSQL counts dates and timestamps from.
fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
}

/// A value in its type's binary form as PostgreSQL's text for it.
pub fn to_text(v: &[u8], ty: &SqlType) -> Result<String, String> {
    Ok(match ty {
        SqlType::Bool => {
            size(v, 1, ty)?;
            if v[0] != 0 { "t" } else { "f" }.to_string()
        }
        SqlType::Int2 => {
            size(v, 2, ty)?;
            be_i16(v).to_string()
        }
        SqlType::Int4 => {
            size(v, 4, ty)?;
            be_i32(v).to_string()
        }
        SqlType::Int8 => {
            size(v, 8, ty)?;
            be_i64(v).to_string()
        }
        SqlType::Float4 => {
            size(v, 4, ty)?;
            float_text(f64::from(f32::from_bits(be_i32(v) as u32)))
        }
        SqlType::Float8 => {
            size(v, 8, ty)?;
            float_text(f64::from_bits(be_i64(v) as u64))
        }
        SqlType::Numeric { .. } => numeric_text(v)?,
        SqlType::Text | SqlType::Varchar { .. } => std::str::from_utf8(v)
            .map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?
            .to_string(),
        SqlType::Jsonb => match v.split_first() {
            Some((1, text)) => std::str::from_utf8(text)
                .map_err(|_| "invalid byte sequence for encoding \"UTF8\"".to_string())?
                .to_string(),
            _ => return Err("unsupported jsonb version number".into()),
        },
        SqlType::Bytea => {
            let mut s = String::with_capacity(2 + 2 * v.len());
            s.push_str("\\x");
            for b in v {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
        SqlType::Date => {
            size(v, 4, ty)?;
            let d = epoch()
                .checked_add_signed(Duration::days(i64::from(be_i32(v))))
                .ok_or("date out of range")?;
            d.format("%Y-%m-%d").to_string()
        }
        SqlType::Timestamp | SqlType::Timestamptz => {
            size(v, 8, ty)?;
            let t = epoch()
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .checked_add_signed(Duration::microseconds(be_i64(v)))
                .ok_or("timestamp out of range")?;
            let mut s = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
            if matches!(ty, SqlType::Timestamptz) {
                s.push_str("+00");
            }
            s
        }
        SqlType::Interval => {
            size(v, 16, ty)?;
            let us = be_i64(v);
            let days = be_i32(&v[8..]);
            let months = be_i32(&v[12..]);
            let sign = if us < 0 { "-" } else { "" };
            let a = us.unsigned_abs();
            format!(
                "{months} mons {days} days {sign}{:02}:{:02}:{:02}.{:06}",
                a / 3_600_000_000,
                a / 60_000_000 % 60,
                a / 1_000_000 % 60,
                a % 1_000_000
            )
        }
    })
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{f:?}")
    }
}

/// PostgreSQL's binary numeric (digit count, weight, sign, display scale,
/// base-10000 digits) as decimal text.
fn numeric_text(v: &[u8]) -> Result<String, String> {
    if v.len() < 8 {
        return Err("invalid numeric binary data".into());
    }
    let ndigits = be_i16(v);
    let weight = i32::from(be_i16(&v[2..]));
    let sign = be_i16(&v[4..]) as u16;
    let dscale = be_i16(&v[6..]);
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return Err("invalid sign in external \"numeric\" value".into()),
    }
    if ndigits < 0 || dscale < 0 || v.len() != 8 + 2 * ndigits as usize {
        return Err("invalid numeric binary data".into());
    }
    let digits: Vec<i32> = (0..ndigits as usize)
        .map(|i| i32::from(be_i16(&v[8 + 2 * i..])))
        .collect();
    if digits.iter().any(|d| !(0..10000).contains(d)) {
        return Err("invalid digit in external \"numeric\" value".into());
    }
    // integer part: digit groups of weights weight..=0
    let mut int = String::new();
    for w in (0..=weight).rev() {
        let i = (weight - w) as usize;
        let d = digits.get(i).copied().unwrap_or(0);
        if int.is_empty() {
            if d != 0 {
                int = d.to_string();
            }
        } else {
            int.push_str(&format!("{d:04}"));
        }
    }
    if int.is_empty() {
        int.push('0');
    }
    let mut frac = String::new();
    let mut w = -1;
    while (frac.len() as i32) < i32::from(dscale) {
        let i = weight - w;
        let d = if i >= 0 {
            digits.get(i as usize).copied().unwrap_or(0)
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
        w -= 1;
    }
    frac.truncate(dscale as usize);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int);
    if !frac.is_empty() {
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [ndigits, weight, sign as i16, dscale] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_as_postgres_sends_them() {
        // 12345.678 = 1|2345|6780, weight 1, scale 3
        assert_eq!(
            numeric_text(&numeric(3, 1, 0, 3, &[1, 2345, 6780])).unwrap(),
            "12345.678"
        );
        // -0.0012 = 12 at weight -1, scale 4
        assert_eq!(
            numeric_text(&numeric(1, -1, 0x4000, 4, &[12])).unwrap(),
            "-0.0012"
        );
        // 10000 = 1 at weight 1, no digits for the zero group
        assert_eq!(numeric_text(&numeric(1, 1, 0, 0, &[1])).unwrap(), "10000");
        assert_eq!(numeric_text(&numeric(0, 0, 0, 2, &[])).unwrap(), "0.00");
        assert_eq!(numeric_text(&numeric(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
    }

    #[test]
    fn times_and_intervals() {
        let ts = (86_400_000_000i64 + 1_500_000).to_be_bytes();
        assert_eq!(
            to_text(&ts, &SqlType::Timestamp).unwrap(),
            "2000-01-02 00:00:01.500000"
        );
        assert_eq!(
            to_text(&(-1i32).to_be_bytes(), &SqlType::Date).unwrap(),
            "1999-12-31"
        );
        let mut iv = (-3_600_000_000i64).to_be_bytes().to_vec();
        iv.extend_from_slice(&2i32.to_be_bytes());
        iv.extend_from_slice(&1i32.to_be_bytes());
        assert_eq!(
            to_text(&iv, &SqlType::Interval).unwrap(),
            "1 mons 2 days -01:00:00.000000"
        );
    }

    #[test]
    fn rows_arrive_in_pieces() {
        let mut data = SIGNATURE.to_vec();
        data.extend_from_slice(&0i32.to_be_bytes());
        data.extend_from_slice(&0i32.to_be_bytes());
        data.extend_from_slice(&2i16.to_be_bytes());
        data.extend_from_slice(&4i32.to_be_bytes());
        data.extend_from_slice(&7i32.to_be_bytes());
        data.extend_from_slice(&(-1i32).to_be_bytes());
        data.extend_from_slice(&(-1i16).to_be_bytes());
        let mut r = BinaryReader::default();
        let (step, used) = r.next(&data[..20]).unwrap();
        assert!(matches!(step, Step::More));
        let rest = &data[used..];
        let (step, used2) = r.next(rest).unwrap();
        let Step::Row(fields) = step else {
            panic!("expected a row")
        };
        assert_eq!(fields, vec![Some(7i32.to_be_bytes().to_vec()), None]);
        let (step, _) = r.next(&rest[used2..]).unwrap();
        assert!(matches!(step, Step::End));
    }
}
