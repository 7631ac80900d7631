//! A circuit: the operator graph of one materialized view, in topological
//! order, fed by the deltas of the relations it reads.

use datafusion::arrow::datatypes::SchemaRef;

use super::codec::{Reader, Writer};
use super::watermark::Watermarks;
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

pub use super::watermark::EventTime;

pub struct Circuit {
    pub sources: Vec<SourceSpec>,
    pub nodes: Vec<Node>,
    /// The output only ever inserts (its inputs only insert and no operator
    /// on the way retracts), so its consumer needs no retraction index.
    pub append_only: bool,
    /// The sources read that have a watermark.
    pub event_times: Vec<EventTime>,
    /// Some operator holds state by the watermark: late rows are dropped at
    /// the input.
    pub drop_late: bool,
    /// Current column watermarks of every node's output.
    watermarks: Vec<Watermarks>,
    /// The watermarks must be passed to the operators before the next step.
    watermarks_moved: bool,
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
            event_times: Vec::new(),
            drop_late: false,
            watermarks: Vec::new(),
            watermarks_moved: true,
            uses_clock: false,
            now: None,
            clock_moved: false,
            started: false,
        })
    }

    /// Declares the sources' event times and plans the watermarks through
    /// the graph: which output columns carry one, and whether late rows must
    /// be dropped. Returns the output's watermarked columns.
    pub fn set_event_times(&mut self, event_times: Vec<EventTime>) -> Vec<bool> {
        self.event_times = event_times;
        let sources = self.source_watermarks(|_| Some(0));
        let mut outs: Vec<Watermarks> = Vec::with_capacity(self.nodes.len());
        let mut uses = false;
        for node in &mut self.nodes {
            let ins = node_inputs(&node.inputs, &sources, &outs);
            uses |= node.op.plan_watermarks(&ins);
            let out = node.op.output_watermarks(&ins);
            outs.push(out);
        }
        self.drop_late = uses;
        self.watermarks_moved = true;
        outs.last()
            .map(|w| w.iter().map(|x| x.is_some()).collect())
            .unwrap_or_default()
    }

    /// Per source, per column: the watermark `value` gives each event time.
    fn source_watermarks(&self, value: impl Fn(&EventTime) -> Option<i64>) -> Vec<Watermarks> {
        let mut out: Vec<Watermarks> = self
            .sources
            .iter()
            .map(|s| vec![None; s.schema.fields().len()])
            .collect();
        for et in &self.event_times {
            if let Some(c) = out.get_mut(et.source).and_then(|s| s.get_mut(et.column)) {
                *c = value(et);
            }
        }
        out
    }

    /// Passes the current watermarks through the graph to every operator.
    fn propagate_watermarks(&mut self) {
        let sources = self.source_watermarks(|et| et.watermark_us());
        let mut outs: Vec<Watermarks> = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            let ins = node_inputs(&node.inputs, &sources, &outs);
            node.op.set_watermarks(&ins);
            let out = node.op.output_watermarks(&ins);
            outs.push(out);
        }
        self.watermarks = outs;
    }

    /// The output's column watermarks (µs), as of the last step.
    pub fn output_watermarks(&self) -> Watermarks {
        self.watermarks.last().cloned().unwrap_or_default()
    }

    /// Rows dropped as late: at the input, and by operators.
    pub fn late_rows(&self) -> u64 {
        self.event_times.iter().map(|e| e.late_rows).sum::<u64>()
            + self.nodes.iter().map(|n| n.op.late_rows()).sum::<u64>()
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
        let mut advanced = std::mem::take(&mut self.watermarks_moved);
        if !self.event_times.is_empty() {
            admitted = deltas.to_vec();
            for et in &mut self.event_times {
                if let Some(Some(d)) = admitted.get(et.source) {
                    let before = et.watermark_us();
                    let d = et.admit(d, self.drop_late)?;
                    advanced |= et.watermark_us() != before;
                    admitted[et.source] = Some(d);
                }
            }
            deltas = &admitted;
            if advanced {
                self.propagate_watermarks();
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
        w.u8(FORMAT);
        w.u8(self.started as u8);
        w.u32(self.nodes.len() as u32);
        for n in &self.nodes {
            w.bytes(&n.op.checkpoint()?);
        }
        w.u32(self.event_times.len() as u32);
        for et in &self.event_times {
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

    /// Whether `bytes` is a checkpoint in this version's format (an older
    /// one is not restored: the view is rebuilt from the log instead).
    pub fn can_restore(bytes: &[u8]) -> bool {
        bytes.first() == Some(&FORMAT)
    }

    pub fn restore(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes);
        if r.u8()? != FORMAT {
            return Err(DataflowError::State(
                "the checkpoint was written in an older format".into(),
            ));
        }
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
        let n = r.u32()? as usize;
        if n != self.event_times.len() {
            return Err(DataflowError::State(format!(
                "checkpoint has {n} event-time sources, the view plans {}",
                self.event_times.len()
            )));
        }
        for et in &mut self.event_times {
            et.max_event_us = match r.u8()? {
                0 => None,
                _ => Some(r.i64()?),
            };
            et.late_rows = r.u64()?;
        }
        self.watermarks_moved = true;
        if !r.done() {
            return Err(DataflowError::State(
                "trailing bytes in circuit state".into(),
            ));
        }
        Ok(())
    }
}

/// Checkpoint format of a circuit (the first byte).
const FORMAT: u8 = 2;

/// The watermarks of a node's inputs.
fn node_inputs<'a>(
    inputs: &[Input],
    sources: &'a [Watermarks],
    nodes: &'a [Watermarks],
) -> Vec<&'a [Option<i64>]> {
    inputs
        .iter()
        .map(|i| match i {
            Input::Source(s) => sources.get(*s).map(|w| w.as_slice()).unwrap_or(&[]),
            Input::Node(k) => nodes.get(*k).map(|w| w.as_slice()).unwrap_or(&[]),
        })
        .collect()
}

impl std::fmt::Debug for Circuit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Circuit")
            .field("sources", &self.sources)
            .field("nodes", &self.nodes.len())
            .finish()
    }
}
