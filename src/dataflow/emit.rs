//! EMIT ON WINDOW CLOSE: holds a windowed view's changing rows until they
//! are final — their value in a column with a watermark (a window bound) is
//! below that column's watermark — then emits them once, as insertions, and
//! forgets them. The output never retracts (it is append-only), and the
//! state holds only rows of windows still open.

use datafusion::arrow::array::{Array, Int64Array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::RowConverter;

use super::codec::{read_timed_rows, write_timed_rows, Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize, TimedRows};

pub struct EmitOnClose {
    schema: SchemaRef,
    converter: RowConverter,
    /// The column whose watermark closes rows (a window bound).
    column: usize,
    /// Window bound (µs) → encoded row → weight.
    pending: TimedRows,
    watermark: Option<i64>,
}

impl EmitOnClose {
    pub fn new(schema: SchemaRef, column: usize) -> Result<EmitOnClose> {
        let converter = super::row_converter(&schema)?;
        Ok(EmitOnClose {
            schema,
            converter,
            column,
            pending: TimedRows::new(),
            watermark: None,
        })
    }
}

impl Operator for EmitOnClose {
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>> {
        if let Some(d) = inputs.first().copied().flatten().filter(|d| !d.is_empty()) {
            let rows = self.converter.convert_columns(d.batch.columns())?;
            let bound = super::watermark::micros(d.batch.column(self.column))?;
            for (i, &w) in d.weights.values().iter().enumerate() {
                // A row without a window (NULL event time) never closes.
                if w == 0 || !bound.is_valid(i) {
                    continue;
                }
                let window = self.pending.entry(bound.value(i)).or_default();
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
        let open = self.pending.split_off(&wm);
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

    fn output_watermarks(&self, inputs: &[&[Option<i64>]]) -> super::watermark::Watermarks {
        inputs.first().map(|w| w.to_vec()).unwrap_or_default()
    }

    fn plan_watermarks(&mut self, _inputs: &[&[Option<i64>]]) -> bool {
        true
    }

    fn set_watermarks(&mut self, inputs: &[&[Option<i64>]]) {
        if let Some(Some(wm)) = inputs.first().and_then(|w| w.get(self.column)) {
            self.watermark = Some(self.watermark.map_or(*wm, |w| w.max(*wm)));
        }
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> String {
        format!(
            "EmitOnWindowClose: rows final below the watermark of {}",
            self.schema.field(self.column).name()
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
