//! Temporal filter: `ts > now() - INTERVAL 'd'` (or `>=`) in a view. A row
//! is in the output while the clock is before its expiry (`ts + d`); when
//! the clock passes it, the row is retracted. The clock is the engine's
//! (`Operator::set_now`), so rows leave a view as time passes, without
//! writes.
//!
//! State: the rows currently passing, indexed by expiry, so advancing the
//! clock touches only the rows that expire.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::row::RowConverter;

use super::codec::{read_timed_rows, write_timed_rows, Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize, TimedRows};

pub struct TemporalFilter {
    schema: SchemaRef,
    converter: RowConverter,
    column: usize,
    interval_us: i64,
    /// `>=` instead of `>`: a row is still in at exactly its expiry.
    inclusive: bool,
    /// Expiry → encoded row → weight.
    live: TimedRows,
    now: Option<i64>,
}

impl TemporalFilter {
    pub fn new(
        schema: SchemaRef,
        column: usize,
        interval_us: i64,
        inclusive: bool,
    ) -> Result<TemporalFilter> {
        let converter = super::row_converter(&schema)?;
        Ok(TemporalFilter {
            schema,
            converter,
            column,
            interval_us,
            inclusive,
            live: TimedRows::new(),
            now: None,
        })
    }

    fn expired(&self, expiry: i64) -> bool {
        match self.now {
            None => false,
            Some(now) if self.inclusive => expiry < now,
            Some(now) => expiry <= now,
        }
    }

    fn decode(&self, rows: &[Box<[u8]>], weights: Vec<i64>) -> Result<Option<Delta>> {
        if rows.is_empty() {
            return Ok(None);
        }
        let cols = super::decode_rows(&self.converter, rows)?;
        Ok(Some(Delta::from_columns(&self.schema, cols, weights)?))
    }
}

impl Operator for TemporalFilter {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        let mut out_rows: Vec<Box<[u8]>> = Vec::new();
        let mut out_w: Vec<i64> = Vec::new();
        // Rows the clock has passed leave.
        if let Some(now) = self.now {
            let cut = if self.inclusive {
                now
            } else {
                now.saturating_add(1)
            };
            let keep = self.live.split_off(&cut);
            let gone = std::mem::replace(&mut self.live, keep);
            for rows in gone.into_values() {
                for (row, w) in rows {
                    out_rows.push(row);
                    out_w.push(-w);
                }
            }
        }
        if let Some(d) = inputs.first().copied().flatten().filter(|d| !d.is_empty()) {
            let rows = self.converter.convert_columns(d.batch.columns())?;
            let ts = cast(
                d.batch.column(self.column),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            for (i, &w) in d.weights.values().iter().enumerate() {
                if w == 0 || ts.is_null(i) {
                    continue;
                }
                let expiry = ts.value(i).saturating_add(self.interval_us);
                if self.expired(expiry) {
                    continue;
                }
                let row: Box<[u8]> = rows.row(i).as_ref().into();
                let slot = self.live.entry(expiry).or_default();
                let e = slot.entry(row.clone()).or_insert(0);
                *e += w;
                if *e == 0 {
                    slot.remove(&row);
                    if slot.is_empty() {
                        self.live.remove(&expiry);
                    }
                }
                out_rows.push(row);
                out_w.push(w);
            }
        }
        self.decode(&out_rows, out_w)
    }

    fn set_now(&mut self, now_us: i64) {
        self.now = Some(self.now.map_or(now_us, |n| n.max(now_us)));
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        format!(
            "TemporalFilter: {} {} now() - {} µs",
            self.schema.field(self.column).name(),
            if self.inclusive { ">=" } else { ">" },
            self.interval_us
        )
    }

    fn state_size(&self) -> StateSize {
        let mut s = StateSize::default();
        for rows in self.live.values() {
            for r in rows.keys() {
                s.rows += 1;
                s.bytes += r.len() as u64 + 16;
            }
        }
        s
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        match self.now {
            Some(n) => {
                w.u8(1);
                w.i64(n);
            }
            None => w.u8(0),
        }
        write_timed_rows(&mut w, &self.live);
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.live.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        self.now = match r.u8()? {
            0 => None,
            _ => Some(r.i64()?),
        };
        self.live = read_timed_rows(&mut r)?;
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in temporal filter state".into(),
            ));
        }
        Ok(())
    }
}
