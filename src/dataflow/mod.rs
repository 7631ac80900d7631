//! Incremental operators over deltas (the Z-set model of DBSP).
//!
//! A [`Delta`] is a batch of rows, each with an integer weight: +1 is an
//! insertion, -1 a retraction, and a weight of *n* means the row *n* times.
//! Every operator maps input deltas to an output delta so that integrating
//! (summing) its outputs gives exactly what the same query computes in batch
//! over the integrated inputs. Work per step is proportional to the delta
//! and to the state of the keys it touches.
//!
//! This module knows nothing of tokio, sled, the SQL AST or the wall clock;
//! operators are built by `sql::lower` from DataFusion plans and driven by
//! the engine.

pub mod aggregate;
pub mod band;
pub mod circuit;
pub mod codec;
pub mod emit;
pub mod filter;
pub mod join;
pub mod over;
pub mod project;
pub mod session;
pub mod temporal;
pub mod topn;
pub mod union;
pub mod watermark;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

pub use circuit::Circuit;

#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    #[error("{0}")]
    Eval(String),
    #[error("corrupt operator state: {0}")]
    State(String),
}

pub type Result<T, E = DataflowError> = std::result::Result<T, E>;

/// Rows held by time (a close time, an expiry, an event time): time →
/// encoded row → multiplicity. The state of the windowed and temporal
/// operators.
pub type TimedRows = std::collections::BTreeMap<i64, std::collections::HashMap<Box<[u8]>, i64>>;

/// A row converter over every column of `schema`.
pub fn row_converter(
    schema: &SchemaRef,
) -> std::result::Result<datafusion::arrow::row::RowConverter, ArrowError> {
    datafusion::arrow::row::RowConverter::new(
        schema
            .fields()
            .iter()
            .map(|f| datafusion::arrow::row::SortField::new(f.data_type().clone()))
            .collect(),
    )
}

/// A batch's rows in a converter's row encoding: a batch of no columns
/// (a join side none of whose columns the query uses: `CROSS JOIN`, an
/// uncorrelated `EXISTS`) has rows too, each the empty encoding, where
/// Arrow's converter would give none.
pub struct EncodedRows(Option<datafusion::arrow::row::Rows>);

impl EncodedRows {
    pub fn new(
        converter: &datafusion::arrow::row::RowConverter,
        batch: &RecordBatch,
    ) -> std::result::Result<EncodedRows, ArrowError> {
        Ok(EncodedRows(if batch.num_columns() == 0 {
            None
        } else {
            Some(converter.convert_columns(batch.columns())?)
        }))
    }

    /// Row `i`'s encoding.
    pub fn row(&self, i: usize) -> &[u8] {
        match &self.0 {
            Some(rows) => rows.row(i).data(),
            None => &[],
        }
    }
}

/// Encoded rows back to columns.
pub fn decode_rows<R: AsRef<[u8]>>(
    converter: &datafusion::arrow::row::RowConverter,
    rows: &[R],
) -> Result<Vec<ArrayRef>> {
    let parser = converter.parser();
    Ok(converter.convert_rows(rows.iter().map(|r| parser.parse(r.as_ref())))?)
}

/// A hash map keyed by encoded rows, with [`FastHash`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastHash>;

/// A multiply-rotate hash (after rustc's FxHash) with a final mix and a
/// per-process random seed: several times faster than SipHash on the short
/// encoded keys the operators hash per row.
#[derive(Debug, Clone, Copy)]
pub struct FastHash {
    seed: u64,
}

impl Default for FastHash {
    fn default() -> FastHash {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        FastHash { seed }
    }
}

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher { h: self.seed }
    }
}

pub struct FastHasher {
    h: u64,
}

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.h = (self.h.rotate_left(5) ^ word).wrapping_mul(FX_K);
    }
}

impl std::hash::Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    #[inline]
    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // spread the high bits down: the table indexes by the low ones
        let h = self.h;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }
}

/// A change: rows and their weights.
#[derive(Debug, Clone)]
pub struct Delta {
    pub batch: RecordBatch,
    pub weights: Int64Array,
}

impl Delta {
    pub fn new(batch: RecordBatch, weights: Int64Array) -> Result<Delta> {
        if batch.num_rows() != weights.len() {
            return Err(DataflowError::Eval(format!(
                "delta has {} rows but {} weights",
                batch.num_rows(),
                weights.len()
            )));
        }
        Ok(Delta { batch, weights })
    }

    /// An operator's output: `columns` under `schema` (each cast to its
    /// field's type where it differs) with their weights.
    pub fn from_columns(
        schema: &SchemaRef,
        columns: Vec<ArrayRef>,
        weights: Vec<i64>,
    ) -> Result<Delta> {
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    datafusion::arrow::compute::cast(&c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(weights.len()));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        Delta::new(batch, Int64Array::from(weights))
    }

    /// Every row inserted once.
    pub fn insert(batch: RecordBatch) -> Delta {
        let weights = Int64Array::from_value(1, batch.num_rows());
        Delta { batch, weights }
    }

    pub fn empty(schema: SchemaRef) -> Delta {
        Delta {
            batch: RecordBatch::new_empty(schema),
            weights: Int64Array::from(Vec::<i64>::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.num_rows() == 0
    }

    pub fn schema(&self) -> SchemaRef {
        self.batch.schema()
    }

    /// Keeps the rows where `mask` is true.
    pub fn filter(&self, mask: &datafusion::arrow::array::BooleanArray) -> Result<Delta> {
        let batch = filter_record_batch(&self.batch, mask)?;
        let w = datafusion::arrow::compute::filter(&self.weights, mask)?;
        let weights = w
            .as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .ok_or_else(|| DataflowError::Eval("weights are not Int64".into()))?;
        Ok(Delta { batch, weights })
    }

    /// The same rows with the weights negated.
    pub fn negate(&self) -> Delta {
        let weights: Int64Array = self.weights.iter().map(|w| w.map(|w| -w)).collect();
        Delta {
            batch: self.batch.clone(),
            weights,
        }
    }

    /// Concatenates deltas of one schema.
    pub fn concat(schema: &SchemaRef, parts: &[Delta]) -> Result<Delta> {
        let batches: Vec<&RecordBatch> = parts.iter().map(|d| &d.batch).collect();
        let batch = concat_batches(schema, batches)?;
        let ws: Vec<&dyn Array> = parts.iter().map(|d| &d.weights as &dyn Array).collect();
        let weights = if ws.is_empty() {
            Int64Array::from(Vec::<i64>::new())
        } else {
            let a: ArrayRef = datafusion::arrow::compute::concat(&ws)?;
            a.as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| DataflowError::Eval("weights are not Int64".into()))?
        };
        Ok(Delta { batch, weights })
    }

    /// Re-labels the columns with `schema` (same types, new names/nullability).
    pub fn with_schema(&self, schema: SchemaRef) -> Result<Delta> {
        let columns = self
            .batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c.clone())
                } else {
                    datafusion::arrow::compute::cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<ArrayRef>, ArrowError>>()?;
        let options = datafusion::arrow::array::RecordBatchOptions::new()
            .with_row_count(Some(self.batch.num_rows()));
        let batch = RecordBatch::try_new_with_options(relax(&schema), columns, &options)?;
        Ok(Delta {
            batch,
            weights: self.weights.clone(),
        })
    }
}

/// A predicate's result as a filter mask: NULL counts as false, as in SQL.
pub fn null_as_false(
    mask: &datafusion::arrow::array::BooleanArray,
) -> datafusion::arrow::array::BooleanArray {
    if mask.null_count() > 0 {
        datafusion::arrow::compute::prep_null_mask_filter(mask)
    } else {
        mask.clone()
    }
}

/// The schema with every field nullable: incremental outputs may carry NULLs
/// where a batch plan proves there are none (e.g. retractions of outer rows).
pub fn relax(schema: &SchemaRef) -> SchemaRef {
    if schema.fields().iter().all(|f| f.is_nullable()) {
        return schema.clone();
    }
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// How big an operator's state is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateSize {
    pub rows: u64,
    pub bytes: u64,
}

/// An incremental operator.
pub trait Operator: Send + Sync {
    /// Processes the input deltas of one step (one per input port; `None`
    /// where that input did not change) and returns the output delta.
    fn step(&mut self, inputs: &[Option<&Delta>]) -> Result<Option<Delta>>;

    /// The output schema.
    fn schema(&self) -> SchemaRef;

    /// One line for `EXPLAIN CREATE MATERIALIZED VIEW`.
    fn explain(&self) -> String;

    fn state_size(&self) -> StateSize {
        StateSize::default()
    }

    /// The column watermarks of the output, given the inputs' (one slice
    /// per input port, one entry per column): see [`watermark`]. The default
    /// promises nothing.
    fn output_watermarks(&self, _inputs: &[&[Option<i64>]]) -> watermark::Watermarks {
        vec![None; self.schema().fields().len()]
    }

    /// Called once when the circuit is planned, with the columns that will
    /// carry watermarks (placeholder values): returns whether the operator
    /// holds state by the watermark (and so needs late rows dropped).
    fn plan_watermarks(&mut self, _inputs: &[&[Option<i64>]]) -> bool {
        false
    }

    /// The inputs' column watermarks, set before each step of a circuit
    /// with event time. Operators that hold state by time close and drop
    /// what the watermarks make final.
    fn set_watermarks(&mut self, _inputs: &[&[Option<i64>]]) {}

    /// Rows the operator dropped for arriving after their state was final.
    fn late_rows(&self) -> u64 {
        0
    }

    /// The engine's clock, for operators that depend on `now()`; set before
    /// every step of a circuit that has such operators.
    fn set_now(&mut self, _now_us: i64) {}

    /// Serializes the operator's state (empty for stateless operators).
    fn checkpoint(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    /// Restores state written by [`Operator::checkpoint`].
    fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            Ok(())
        } else {
            Err(DataflowError::State(format!(
                "{} has no state but {} bytes were given",
                self.explain(),
                bytes.len()
            )))
        }
    }

    /// Whether the output only ever inserts (never retracts) when the inputs
    /// only insert.
    fn preserves_append_only(&self) -> bool {
        true
    }
}
