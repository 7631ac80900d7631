//! A circuit: the operator graph of one materialized view, in topological
//! order, fed by the deltas of the relations it reads.

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMicrosecondType};

use super::codec::{Reader, Writer};
use super::{DataflowError, Delta, Operator, Result, StateSize};

/// Where a node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The circuit's `i`-th source (a relation read by the view).
    Source(usize),
    /// The output of an earlier node.
    Node(usize),
}

/// A relation the circuit reads.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Relation id.
    pub relation: u64,
    pub name: String,
    /// Whether the source's batches carry the trailing `_offset` column.
    pub with_offset: bool,
    pub schema: SchemaRef,
}

pub struct Node {
    pub op: Box<dyn Operator>,
    pub inputs: Vec<Input>,
}

/// Event time for circuits that close windows: the source whose watermark
/// drives the circuit, its event-time column and watermark delay.
#[derive(Debug, Clone)]
pub struct EventTime {
    pub source: usize,
    pub column: usize,
    pub delay_us: i64,
    /// Largest event time seen (checkpointed with the circuit).
    pub max_event_us: Option<i64>,
    /// Rows dropped for arriving behind the watermark.
    pub late_rows: u64,
}

impl EventTime {
    pub fn watermark_us(&self) -> Option<i64> {
        self.max_event_us.map(|m| m.saturating_sub(self.delay_us))
    }

    /// Drops the rows of `d` behind the watermark (and rows without an
    /// event time), then advances the watermark past the rest.
    fn admit(&mut self, d: &Delta) -> Result<Delta> {
        let ts = cast(
            d.batch.column(self.column),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let wm = self.watermark_us();
        let keep: BooleanArray = ts
            .iter()
            .map(|t| {
                Some(
                    matches!((t, wm), (Some(t), Some(w)) if t >= w)
                        || (t.is_some() && wm.is_none()),
                )
            })
            .collect();
        self.late_rows += ts
            .iter()
            .flatten()
            .filter(|&t| wm.is_some_and(|w| t < w))
            .count() as u64;
        if let Some(m) = datafusion::arrow::compute::max(ts) {
            self.max_event_us = Some(self.max_event_us.map_or(m, |x| x.max(m)));
        }
        if keep.true_count() == d.len() {
            Ok(d.clone())
        } else {
            d.filter(&keep)
        }
    }
}

pub struct Circuit {
    pub sources: Vec<SourceSpec>,
    pub nodes: Vec<Node>,
    /// The output only ever inserts (its inputs only insert and no operator
    /// on the way retracts), so its consumer needs no retraction index.
    pub append_only: bool,
    /// Set for circuits that close windows (EMIT ON WINDOW CLOSE).
    pub event_time: Option<EventTime>,
    /// The circuit has operators that depend on the clock.
    pub uses_clock: bool,
    now: Option<i64>,
    clock_moved: bool,
    started: bool,
}

impl Circuit {
    pub fn new(sources: Vec<SourceSpec>, nodes: Vec<Node>, append_only: bool) -> Result<Circuit> {
        if nodes.is_empty() {
            return Err(DataflowError::Eval(
                "a circuit needs at least one operator".into(),
            ));
        }
        for (k, n) in nodes.iter().enumerate() {
            for i in &n.inputs {
                let ok = match i {
                    Input::Source(s) => *s < sources.len(),
                    Input::Node(j) => *j < k,
                };
                if !ok {
                    return Err(DataflowError::Eval(format!(
                        "node {k} has an invalid input {i:?}"
                    )));
                }
            }
        }
        Ok(Circuit {
            sources,
            nodes,
            append_only,
            event_time: None,
            uses_clock: false,
            now: None,
            clock_moved: false,
            started: false,
        })
    }

    pub fn schema(&self) -> SchemaRef {
        // `new` guarantees at least one node.
        self.nodes[self.nodes.len() - 1].op.schema()
    }

    /// One step: `deltas[i]` is the change of source `i` (`None`: no change).
    /// The first step runs every operator, so that aggregates without GROUP
    /// BY emit their row for the empty input.
    pub fn step(&mut self, deltas: &[Option<Delta>]) -> Result<Option<Delta>> {
        let first = !self.started;
        self.started = true;
        let mut admitted;
        let mut deltas = deltas;
        let mut advanced = false;
        if let Some(et) = &mut self.event_time {
            if let Some(Some(d)) = deltas.get(et.source) {
                let before = et.watermark_us();
                admitted = deltas.to_vec();
                admitted[et.source] = Some(et.admit(d)?);
                deltas = &admitted;
                advanced = et.watermark_us() != before;
            }
            if let Some(wm) = et.watermark_us() {
                for node in &mut self.nodes {
                    node.op.set_watermark(wm);
                }
            }
        }
        advanced |= self.clock_moved;
        self.clock_moved = false;
        let mut outs: Vec<Option<Delta>> = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            let ins: Vec<Option<&Delta>> = node
                .inputs
                .iter()
                .map(|i| match i {
                    Input::Source(s) => deltas.get(*s).and_then(|d| d.as_ref()),
                    Input::Node(k) => outs.get(*k).and_then(|d| d.as_ref()),
                })
                .collect();
            let out = if first || advanced || ins.iter().any(|d| d.is_some()) {
                node.op.step(&ins)?
            } else {
                None
            };
            outs.push(out);
        }
        Ok(outs.pop().flatten())
    }

    /// Advances the clock for operators that depend on it; the next step
    /// runs them even without input.
    pub fn set_now(&mut self, now_us: i64) {
        if !self.uses_clock || self.now.is_some_and(|n| n >= now_us) {
            return;
        }
        self.now = Some(now_us);
        self.clock_moved = true;
        for node in &mut self.nodes {
            node.op.set_now(now_us);
        }
    }

    /// The operator tree, output first, for EXPLAIN.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.explain_node(self.nodes.len() - 1, 0, &mut out);
        out
    }

    fn explain_node(&self, k: usize, depth: usize, out: &mut String) {
        let n = &self.nodes[k];
        out.push_str(&"  ".repeat(depth));
        out.push_str(&n.op.explain());
        let size = n.op.state_size();
        if size.rows > 0 {
            out.push_str(&format!(" [state: {} rows]", size.rows));
        }
        out.push('\n');
        for i in &n.inputs {
            match i {
                Input::Node(j) => self.explain_node(*j, depth + 1, out),
                Input::Source(s) => {
                    let src = &self.sources[*s];
                    out.push_str(&"  ".repeat(depth + 1));
                    out.push_str(&format!("Source: {}\n", src.name));
                }
            }
        }
    }

    /// State size per operator, in node order.
    pub fn state_sizes(&self) -> Vec<(String, StateSize)> {
        self.nodes
            .iter()
            .map(|n| (n.op.explain(), n.op.state_size()))
            .collect()
    }

    pub fn checkpoint(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        w.u8(self.started as u8);
        w.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            w.bytes(&n.op.checkpoint()?);
        }
        if let Some(et) = &self.event_time {
            match et.max_event_us {
                Some(m) => {
                    w.u8(1);
                    w.i64(m);
                }
                None => w.u8(0),
            }
            w.u64(et.late_rows);
        }
        Ok(w.buf)
    }

    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes);
        self.started = r.u8()? != 0;
        let n = r.u32()? as usize;
        if n != self.nodes.len() {
            return Err(DataflowError::State(format!(
                "checkpoint has {n} operators, the view plans to {}",
                self.nodes.len()
            )));
        }
        for node in &mut self.nodes {
            node.op.restore(r.bytes()?)?;
        }
        if let Some(et) = &mut self.event_time {
            et.max_event_us = match r.u8()? {
                0 => None,
                _ => Some(r.i64()?),
            };
            et.late_rows = r.u64()?;
        }
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in circuit state".into(),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit")
            .field("sources", &self.sources)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}
