//! Materialized views in the committer: each view's circuit, its stored
//! contents (the integral of the circuit's output), and the deltas that flow
//! between relations and views during a commit.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::arrow::row::RowConverter;

use super::data::RelationData;
use super::error::{EngineError, Result};
use crate::catalog::RelationDef;
use crate::dataflow::circuit::SourceSpec;
use crate::dataflow::{Circuit, Delta};

/// The change of one relation (base or view) during a commit: user columns,
/// the offset of each row version (`_offset`; for a retraction, the offset
/// of the version it removes), and weights.
#[derive(Debug, Clone)]
pub struct RelDelta {
    pub rows: RecordBatch,
    pub offsets: Option<Int64Array>,
    pub weights: Int64Array,
}

impl RelDelta {
    /// The delta in the shape a circuit source wants.
    pub fn for_source(&self, spec: &SourceSpec) -> Result<Delta> {
        let batch = if spec.with_offset {
            let offsets = self
                .offsets
                .clone()
                .ok_or_else(|| EngineError::Internal(format!("{} has no offsets", spec.name)))?;
            let mut cols = self.rows.columns().to_vec();
            cols.push(Arc::new(offsets) as ArrayRef);
            RecordBatch::try_new(spec.schema.clone(), cols)?
        } else {
            self.rows.clone()
        };
        Delta::new(batch, self.weights.clone()).map_err(dataflow)
    }

    pub fn concat(parts: &[RelDelta]) -> Result<Option<RelDelta>> {
        let Some(first) = parts.first() else {
            return Ok(None);
        };
        if parts.len() == 1 {
            return Ok(Some(first.clone()));
        }
        let schema = first.rows.schema();
        let rows = concat_batches(&schema, parts.iter().map(|p| &p.rows))?;
        let ws: Vec<&dyn datafusion::arrow::array::Array> = parts
            .iter()
            .map(|p| &p.weights as &dyn datafusion::arrow::array::Array)
            .collect();
        let weights = datafusion::arrow::compute::concat(&ws)?
            .as_primitive::<Int64Type>()
            .clone();
        let offsets = if parts.iter().all(|p| p.offsets.is_some()) {
            let os: Vec<&dyn datafusion::arrow::array::Array> = parts
                .iter()
                .filter_map(|p| {
                    p.offsets
                        .as_ref()
                        .map(|o| o as &dyn datafusion::arrow::array::Array)
                })
                .collect();
            Some(
                datafusion::arrow::compute::concat(&os)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            )
        } else {
            None
        };
        Ok(Some(RelDelta {
            rows,
            offsets,
            weights,
        }))
    }

    /// All live rows of a relation, as insertions (for backfill).
    pub fn contents(data: &RelationData) -> Result<Option<RelDelta>> {
        let mut parts = Vec::new();
        for s in data.segments() {
            let b = s.visible()?;
            if b.num_rows() == 0 {
                continue;
            }
            let n = b.num_columns();
            let rows = b.project(&(0..n - 1).collect::<Vec<_>>())?;
            let offsets = b.column(n - 1).as_primitive::<Int64Type>().clone();
            parts.push(RelDelta {
                weights: Int64Array::from_value(1, rows.num_rows()),
                rows,
                offsets: Some(offsets),
            });
        }
        RelDelta::concat(&parts)
    }
}

/// An operator's error as the engine reports it: evaluation errors keep
/// what they are (an overflow stays an overflow), state corruption is
/// internal.
pub fn dataflow(e: crate::dataflow::DataflowError) -> EngineError {
    use crate::dataflow::DataflowError as D;
    use datafusion::error::DataFusionError;
    match e {
        D::DataFusion(d) => EngineError::DataFusion(d),
        D::Arrow(a) => EngineError::DataFusion(DataFusionError::ArrowError(Box::new(a), None)),
        D::Eval(m) => EngineError::DataFusion(DataFusionError::Execution(m)),
        D::State(m) => EngineError::Internal(format!("corrupt operator state: {m}")),
    }
}

/// The ids of a row's copies in a view (almost always one: no allocation
/// then).
#[derive(Debug)]
enum Ids {
    One(u64),
    Many(Vec<u64>),
}

impl Ids {
    fn push(&mut self, id: u64) {
        match self {
            Ids::One(first) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(v) => v.push(id),
        }
    }

    /// Takes one id; returns it and whether none are left.
    fn pop(&mut self) -> (Option<u64>, bool) {
        match self {
            Ids::One(id) => (Some(*id), true),
            Ids::Many(v) => {
                let id = v.pop();
                (id, v.is_empty())
            }
        }
    }
}

/// A view's stored contents: a multiset of rows, kept as a relation whose
/// row versions get internal ids, with an index from row to ids so that a
/// retraction finds a copy to remove.
pub struct ViewState {
    pub data: Arc<RelationData>,
    converter: RowConverter,
    index: crate::dataflow::FastMap<Box<[u8]>, Ids>,
    next_id: u64,
    /// The view's circuit never retracts: no index is kept.
    append_only: bool,
}

impl ViewState {
    pub fn new(def: &RelationDef, append_only: bool) -> Result<ViewState> {
        let converter = crate::dataflow::row_converter(&def.schema())?;
        Ok(ViewState {
            data: Arc::new(RelationData::with_indexes(
                def.schema_with_offset(),
                def.index_specs(),
            )?),
            converter,
            index: crate::dataflow::FastMap::default(),
            next_id: 0,
            append_only,
        })
    }

    pub fn rows(&self) -> usize {
        self.data.live_rows()
    }

    /// Keeps exactly these indexes on the view's rows (new ones are built).
    pub fn set_indexes(&mut self, specs: Vec<crate::index::IndexSpec>) -> Result<()> {
        let mut data = (*self.data).clone();
        data.set_indexes(specs)?;
        self.data = Arc::new(data);
        Ok(())
    }

    /// Integrates an output delta of the view's circuit.
    pub fn apply(&mut self, d: &Delta) -> Result<()> {
        if d.is_empty() {
            return Ok(());
        }
        let schema: SchemaRef = self.data.schema().clone();
        let user = Arc::new(schema.project(&(0..schema.fields().len() - 1).collect::<Vec<_>>())?);
        if self.append_only {
            if d.weights.values().iter().any(|w| *w != 1) {
                return Err(EngineError::Internal(
                    "an append-only view received a retraction".into(),
                ));
            }
            let batch = RecordBatch::try_new(user, d.batch.columns().to_vec())?;
            let first = self.next_id;
            self.next_id += batch.num_rows() as u64;
            Arc::make_mut(&mut self.data).append(&batch, first)?;
            return Ok(());
        }
        let rows = self.converter.convert_columns(d.batch.columns())?;
        // Consolidate first: a delta may insert a row and retract it again.
        let mut net: crate::dataflow::FastMap<&[u8], (usize, i64)> =
            crate::dataflow::FastMap::with_capacity_and_hasher(d.len(), Default::default());
        for (i, &w) in d.weights.values().iter().enumerate() {
            let e = net.entry(rows.row(i).data()).or_insert((i, 0));
            e.1 += w;
        }
        let mut net: Vec<(usize, i64)> = net.into_values().filter(|(_, w)| *w != 0).collect();
        net.sort_unstable();
        let mut retract = Vec::new();
        let mut insert_idx: Vec<u32> = Vec::new();
        let mut inserted_keys: Vec<usize> = Vec::new();
        for (i, w) in net {
            let key = rows.row(i);
            if w < 0 {
                // one probe: take the row's ids out, put back what is left
                let mut ids = self.index.remove(key.as_ref()).ok_or_else(|| {
                    EngineError::Internal("view retracted a row it does not hold".into())
                })?;
                let mut empty = false;
                for _ in 0..(-w) {
                    if empty {
                        return Err(EngineError::Internal(
                            "view retracted a row more often than it holds it".into(),
                        ));
                    }
                    let (id, none_left) = ids.pop();
                    let id = id.ok_or_else(|| {
                        EngineError::Internal(
                            "view retracted a row more often than it holds it".into(),
                        )
                    })?;
                    retract.push(id);
                    empty = none_left;
                }
                if !empty {
                    self.index.insert(key.as_ref().into(), ids);
                }
            } else {
                for _ in 0..w {
                    insert_idx.push(i as u32);
                    inserted_keys.push(i);
                }
            }
        }
        let data = Arc::make_mut(&mut self.data);
        if !retract.is_empty() {
            data.retract(&retract)?;
        }
        if !insert_idx.is_empty() {
            let taken = take_record_batch(&d.batch, &UInt32Array::from(insert_idx))?;
            let taken = RecordBatch::try_new(user, taken.columns().to_vec())?;
            let first = self.next_id;
            for (k, &i) in inserted_keys.iter().enumerate() {
                let id = first + k as u64;
                match self.index.entry(rows.row(i).as_ref().into()) {
                    std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(id),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(Ids::One(id));
                    }
                }
            }
            self.next_id += inserted_keys.len() as u64;
            data.append(&taken, first)?;
        }
        Ok(())
    }

    /// The view's rows (for checkpoints).
    pub fn contents(&self) -> Result<Vec<RecordBatch>> {
        let n = self.data.schema().fields().len();
        let cols: Vec<usize> = (0..n - 1).collect();
        let mut out = Vec::new();
        for s in self.data.segments() {
            let b = s.visible()?;
            if b.num_rows() > 0 {
                out.push(b.project(&cols)?);
            }
        }
        Ok(out)
    }
}

/// A view as the committer keeps it.
pub struct ViewWork {
    pub def: Arc<RelationDef>,
    pub circuit: Circuit,
    pub state: ViewState,
    /// Set when maintaining the view failed; the view is then frozen and
    /// reading it reports the error.
    pub error: Option<super::error::Failure>,
}

impl ViewWork {
    /// The output's watermarked columns and the late rows dropped, for
    /// views that read a source with a watermark.
    pub fn view_watermarks(&self) -> Option<super::commit::ViewWatermarks> {
        if self.circuit.event_times.is_empty() {
            return None;
        }
        let schema = self.circuit.schema();
        let columns = self
            .circuit
            .output_watermarks()
            .into_iter()
            .zip(schema.fields())
            .filter_map(|(w, f)| w.map(|w| (f.name().clone(), w)))
            .collect();
        Some(super::commit::ViewWatermarks {
            columns,
            late_rows: self.circuit.late_rows(),
        })
    }

    /// Feeds one step of input changes; returns the view's own change.
    pub fn step(&mut self, changed: &HashMap<u64, RelDelta>) -> Option<RelDelta> {
        if self.error.is_some() {
            return None;
        }
        let mut any = false;
        let mut inputs = Vec::with_capacity(self.circuit.sources.len());
        for spec in &self.circuit.sources {
            match changed.get(&spec.relation) {
                Some(d) => match d.for_source(spec) {
                    Ok(x) => {
                        any = true;
                        inputs.push(Some(x));
                    }
                    Err(e) => {
                        self.fail(e);
                        return None;
                    }
                },
                None => inputs.push(None),
            }
        }
        if !any {
            return None;
        }
        self.run(&inputs)
    }

    /// Advances the view's clock; for views whose operators depend on it,
    /// runs a step (rows whose time has passed leave) and returns the
    /// view's change.
    pub fn tick(&mut self, now_us: i64) -> Option<RelDelta> {
        if self.error.is_some() || !self.circuit.uses_clock {
            return None;
        }
        self.circuit.set_now(now_us);
        let inputs = vec![None; self.circuit.sources.len()];
        self.run(&inputs)
    }

    /// Runs the circuit's first step over the inputs' current contents.
    pub fn backfill(&mut self, contents: &HashMap<u64, RelDelta>) -> Result<Option<RelDelta>> {
        let mut inputs = Vec::with_capacity(self.circuit.sources.len());
        for spec in &self.circuit.sources {
            inputs.push(match contents.get(&spec.relation) {
                Some(d) => Some(d.for_source(spec)?),
                None => None,
            });
        }
        let out = guarded_step(&mut self.circuit, &inputs).map_err(dataflow)?;
        match out {
            Some(d) => {
                self.state.apply(&d)?;
                Ok(Some(RelDelta {
                    rows: d.batch,
                    offsets: None,
                    weights: d.weights,
                }))
            }
            None => Ok(None),
        }
    }

    fn run(&mut self, inputs: &[Option<Delta>]) -> Option<RelDelta> {
        // An operator bug must not take the committer down with it: a panic
        // freezes this view, as an error does.
        let stepped = guarded_step(&mut self.circuit, inputs);
        let result = stepped.map_err(dataflow).and_then(|out| match out {
            Some(d) => {
                self.state.apply(&d)?;
                Ok(Some(d))
            }
            None => Ok(None),
        });
        match result {
            Ok(Some(d)) => Some(RelDelta {
                rows: d.batch,
                offsets: None,
                weights: d.weights,
            }),
            Ok(None) => None,
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    pub(crate) fn fail(&mut self, e: EngineError) {
        tracing::error!(view = %self.def.name, error = %e, "materialized view failed; it is frozen until recomputed or dropped");
        self.error = Some(Arc::new(e));
    }
}

/// Steps a circuit, turning a panic in an operator into an error: an
/// operator bug fails its view (or the view's creation), never the server.
fn guarded_step(
    circuit: &mut crate::dataflow::Circuit,
    inputs: &[Option<Delta>],
) -> Result<Option<Delta>, crate::dataflow::DataflowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| circuit.step(inputs))).unwrap_or_else(
        |p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "operator panicked".into());
            Err(crate::dataflow::DataflowError::Eval(format!(
                "internal error: {msg}"
            )))
        },
    )
}
