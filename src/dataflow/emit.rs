//! EMIT ON WINDOW CLOSE: holds a windowed view's changing rows until the
//! watermark passes the close time of their window, then emits each
//! window's final rows once, as insertions, and forgets them. The output
//! never retracts (it is append-only), and the state holds only rows of
//! windows still open.

use std::collections::{BTreeMap, HashMap};

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::row::{RowConverter, SortField};

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

pub struct EmitOnClose {
    schema: SchemaRef,
    converter: RowConverter,
    /// Output column holding a window bound, and what to add to it to get
    /// the window's close time.
    column: usize,
    add_us: i64,
    /// Close time → encoded row → weight.
    pending: BTreeMap<i64, HashMap<Box<[u8]>, i64>>,
    watermark: Option<i64>,
}

impl EmitOnClose {
    pub fn new(schema: SchemaRef, column: usize, add_us: i64) -> Result<EmitOnClose> {
        let converter = RowConverter::new(
            schema
                .fields()
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(EmitOnClose {
            schema,
            converter,
            column,
            add_us,
            pending: BTreeMap::new(),
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
        let parser = self.converter.parser();
        let cols = self
            .converter
            .convert_rows(out.iter().map(|r| parser.parse(r)))?;
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
        w.u64(self.pending.len() as u64);
        for (close, rows) in &self.pending {
            w.i64(*close);
            w.u64(rows.len() as u64);
            for (row, n) in rows {
                w.bytes(row);
                w.i64(*n);
            }
        }
        Ok(w.buf)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.clear();
        if bytes.is_empty() {
            return Ok(());
        }
        let mut r = Reader::new(bytes);
        for _ in 0..r.u64()? {
            let close = r.i64()?;
            let mut rows = HashMap::new();
            for _ in 0..r.u64()? {
                let row: Box<[u8]> = r.bytes()?.into();
                rows.insert(row, r.i64()?);
            }
            self.pending.insert(close, rows);
        }
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in window state".into(),
            ));
        }
        Ok(())
    }
}
