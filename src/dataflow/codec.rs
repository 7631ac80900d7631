//! A small binary codec for operator checkpoints: length-prefixed bytes and
//! little-endian integers. Readers fail with an error on truncated input,
//! never panic.

use super::{DataflowError, Result, TimedRows};

/// Writes rows held by time (see [`TimedRows`]).
pub fn write_timed_rows(w: &mut Writer, rows: &TimedRows) {
    w.u64(rows.len() as u64);
    for (t, at) in rows {
        w.i64(*t);
        w.u64(at.len() as u64);
        for (row, n) in at {
            w.bytes(row);
            w.i64(*n);
        }
    }
}

/// Reads what [`write_timed_rows`] wrote.
pub fn read_timed_rows(r: &mut Reader) -> Result<TimedRows> {
    let mut out = TimedRows::new();
    for _ in 0..r.u64()? {
        let t = r.i64()?;
        let mut at = std::collections::HashMap::new();
        for _ in 0..r.u64()? {
            let row: Box<[u8]> = r.bytes()?.into();
            at.insert(row, r.i64()?);
        }
        out.insert(t, at);
    }
    Ok(out)
}

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i128(&mut self, v: i128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DataflowError::State("truncated operator state".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self) -> Result<i64> {
        Ok(self.u64()? as i64)
    }
    pub fn i128(&mut self) -> Result<i128> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Ok(i128::from_le_bytes(a))
    }
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.u64()?))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = Writer::default();
        w.u8(7);
        w.i64(-5);
        w.i128(1 << 100);
        w.f64(0.5);
        w.bytes(b"key");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.i128().unwrap(), 1 << 100);
        assert_eq!(r.f64().unwrap(), 0.5);
        assert_eq!(r.bytes().unwrap(), b"key");
        assert!(r.done());
        let mut short = Reader::new(&w.buf[..10]);
        assert!(short.u8().is_ok());
        assert!(short.i128().is_err());
    }
}
