//! EMIT ON WINDOW CLOSE: holds a windowed view's changing rows until the
//! watermark passes the close time of their window, then emits each
//! window's final rows once, as insertions, and forgets them. The output
//! never retracts (it is append-only), and the state holds only rows of
//! windows still open.

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::row::RowConverter;

use super::codec::{read_timed_rows, write_timed_rows, Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize, TimedRows};

pub struct EmitOnClose {
    schema: SchemaRef,
    converter: RowConverter,
    /// Output column holding a window bound, and what to add to it to get
    /// the window's close time.
    column: usize,
    add_us: i64,
    /// Close time → encoded row → weight.
    pending: TimedRows,
    watermark: Option<i64>,
}

impl EmitOnClose {
    pub fn new(schema: SchemaRef, column: usize, add_us: i64) -> Result<EmitOnClose> {
        let converter = super::row_converter(&schema)?;
        Ok(EmitOnClose {
            schema,
            converter,
            column,
            add_us,
            pending: TimedRows::new(),
            watermark: None,
        })
    }
}

impl Operator for EmitOnClose {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        if let Some(d) = inputs.first().copied().flatten().filter(|d| !d.is_empty()) {
            let rows = self.converter.convert_columns(d.batch.columns())?;
            let bound = cast(
                d.batch.column(self.column),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?;
            let bound = bound.as_primitive::<TimestampMicrosecondType>();
            for (i, &w) in d.weights.values().iter().enumerate() {
                // A row without a window (NULL event time) never closes.
                if w == 0 || !bound.is_valid(i) {
                    continue;
                }
                let close = bound.value(i).saturating_add(self.add_us);
                let window = self.pending.entry(close).or_default();
                let e = window.entry(rows.row(i).as_ref().into()).or_insert(0);
                *e += w;
                if *e == 0 {
                    window.remove(rows.row(i).as_ref());
                }
            }
        }
        let Some(wm) = self.watermark else {
            return Ok(None);
        };
        let open = self.pending.split_off(&(wm.saturating_add(1)));
        let closed = std::mem::replace(&mut self.pending, open);
        let mut out = Vec::new();
        for (_, rows) in closed {
            for (row, w) in rows {
                if w < 0 {
                    return Err(DataflowError::Eval(
                        "a closed window retracted a row it never emitted".into(),
                    ));
                }
                for _ in 0..w {
                    out.push(row.clone());
                }
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        out.sort();
        let cols = super::decode_rows(&self.converter, &out)?;
        let batch = datafusion::arrow::array::RecordBatch::try_new(self.schema.clone(), cols)?;
        let n = batch.num_rows();
        Ok(Some(Delta::new(batch, Int64Array::from_value(1, n))?))
    }

    fn set_watermark(&mut self, watermark_us: i64) {
        self.watermark = Some(self.watermark.map_or(watermark_us, |w| w.max(watermark_us)));
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        format!(
            "EmitOnWindowClose: {}{}",
            self.schema.field(self.column).name(),
            if self.add_us > 0 {
                format!(" + {} µs", self.add_us)
            } else {
                String::new()
            }
        )
    }

    fn state_size(&self) -> StateSize {
        let mut s = StateSize::default();
        for rows in self.pending.values() {
            for k in rows.keys() {
                s.rows += 1;
                s.bytes += k.len() as u64 + 16;
            }
        }
        s
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        write_timed_rows(&mut w, &self.pending);
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        self.pending = read_timed_rows(&mut r)?;
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in window state".into(),
            ));
        }
        Ok(())
    }
}
