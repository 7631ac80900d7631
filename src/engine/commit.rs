//! The committer: the one place that fixes the order of writes.
//!
//! Every write and every DDL statement becomes a [`Request`] sent to a single
//! thread. The thread takes whatever requests are waiting (a *group*), and
//! for each one, in order:
//!
//! 1. validates it against the working state (primary keys, rows still live)
//!    and assigns log offsets;
//! 2. stages its log entries (or catalog records) into one sled batch and
//!    applies its effect to the working state.
//!
//! Then it writes the batch, flushes once for the whole group (group
//! commit), publishes a new snapshot, and only then answers the requests.
//! A request is therefore acknowledged only when it is durable, and a reader
//! never sees a write that is not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, Int64Builder, RecordBatch};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, interleave};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::data::{DbSnapshot, RelationData};
use super::error::{EngineError, Result};
use super::view::{RelDelta, ViewState, ViewWork};
use crate::catalog::{RelationDef, RelationKind};
use crate::dataflow::Circuit;
use crate::store::{self, entry, EncodedEntry, EntryKind, Put, Store};

/// Name of the weight column in change entries (+1 insert, -1 retraction).
pub const WEIGHT_COLUMN: &str = "_weight";
/// Name of the column that names the offset a retraction removes.
pub const REF_COLUMN: &str = "_ref";

/// What to do when an inserted row's key already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnConflict {
    Error,
    DoNothing,
    /// Replace the listed columns of the existing row with the new values.
    Update(Vec<usize>),
}

#[derive(Debug)]
pub enum Op {
    /// Rows for a source, or plain inserts into a table. `entries` are the
    /// batches already encoded as log entries (encoding happens on the
    /// caller's thread, not here).
    Append {
        rel: u64,
        batches: Vec<RecordBatch>,
        entries: Vec<EncodedEntry>,
    },
    /// Table changes: retract live rows by offset, insert new rows.
    Change {
        rel: u64,
        retract: Vec<u64>,
        insert: Option<RecordBatch>,
        on_conflict: OnConflict,
    },
    CreateRelation {
        def: Box<RelationDef>,
    },
    DropRelation {
        id: u64,
    },
    /// `CREATE INDEX` / `DROP INDEX`: the relation's definition with its
    /// new list of indexes; those added are built from its live rows.
    SetIndexes {
        def: Box<RelationDef>,
    },
    /// A relation's new definition that changes nothing of its rows or
    /// state (`RENAME TO`): the record is stored, and the committer's copy
    /// replaced.
    Redefine {
        def: Box<RelationDef>,
    },
    /// `ALTER TABLE`: the live rows of table `old` copied into the shape of
    /// `def` (a new id), column `i` from old column `sources[i]` (`None`:
    /// NULL); the old table is dropped in the same batch.
    AlterTable {
        old: u64,
        def: Box<RelationDef>,
        sources: Vec<Option<usize>>,
    },
    /// Creates a materialized view and backfills it from its inputs'
    /// current contents.
    CreateView {
        def: Arc<RelationDef>,
        circuit: Box<Circuit>,
    },
    /// At start-up: the views of the catalog, planned again (or why they
    /// could not be); restored from the last checkpoint and the log tail,
    /// or backfilled.
    RestoreViews {
        views: Vec<(Arc<RelationDef>, PlannedView)>,
    },
    /// `ALTER MATERIALIZED VIEW … RECOMPUTE`: these views (one and its
    /// dependents, in id order), planned again, replace the ones there and
    /// are backfilled from their inputs' current contents.
    RebuildViews {
        views: Vec<(Arc<RelationDef>, PlannedView)>,
    },
    /// Moves clock-driven views to the current time (after a manual clock
    /// was set).
    Tick,
    /// Reports every view's operators, state sizes and watermark.
    ViewStats {
        reply: oneshot::Sender<Vec<ViewStat>>,
    },
    /// Catalog-level records to store atomically with nothing else to do:
    /// roles, and relations' owners and grants.
    Records {
        puts: Vec<Put>,
    },
    /// A transaction block's writes, committed as one unit: validated
    /// together before any is applied (every retracted row still live, no
    /// inserted key live unless its row is retracted too), then staged into
    /// the group's one batch.
    Transaction {
        changes: Vec<TxChange>,
    },
    /// A connector's batch: its rows, the upstream position after them
    /// and the messages it passed over, staged into one batch (what makes
    /// ingestion exactly once).
    Ingest(Box<Ingest>),
    /// A connector's stored position and the messages it passed over.
    SourceState {
        rel: u64,
        reply: oneshot::Sender<Result<SourceState>>,
    },
    /// Write the views' checkpoint after this group.
    Checkpoint,
    /// After a storage failure: reopen the data directory and reload the
    /// relations (a `RestoreViews` follows).
    Reopen,
    /// Flush and stop.
    Shutdown,
}

/// A transaction's net change to one relation: committed rows it
/// retracts (by offset) and the rows it adds, in order. For a source only
/// `insert`, as encoded log entries.
#[derive(Debug)]
pub struct TxChange {
    pub rel: u64,
    pub retract: Vec<u64>,
    pub insert: Vec<RecordBatch>,
    pub entries: Vec<EncodedEntry>,
}

/// A connector's position and skipped messages, as stored.
pub use crate::store::SourceState;

/// The rows of a connector's batch.
#[derive(Debug)]
pub enum IngestRows {
    None,
    /// Rows appended (a source, or a table without a primary key), already
    /// encoded as log entries.
    Append {
        batches: Vec<RecordBatch>,
        entries: Vec<EncodedEntry>,
    },
    /// A table with a primary key: each row replaces the live row with its
    /// key (if any); each key of `deletes` (its values, of the key columns'
    /// types) retracts the live row with that key (if any). The connector
    /// leaves at most one change per key.
    Upsert {
        rows: Option<RecordBatch>,
        deletes: Vec<Vec<datafusion::common::ScalarValue>>,
    },
}

#[derive(Debug)]
pub struct Ingest {
    pub rel: u64,
    pub rows: IngestRows,
    pub position: Option<Vec<u8>>,
    /// Messages passed over: sequence number and record.
    pub errors: Vec<(u64, Vec<u8>)>,
    /// Older skipped messages to forget (retention).
    pub forget: Vec<u64>,
}

/// One view's maintenance state, for `freshet_catalog`.
#[derive(Debug, Clone)]
pub struct ViewStat {
    pub view: String,
    /// (operator, state rows, state bytes), in operator order.
    pub operators: Vec<(String, u64, u64)>,
    /// For views that read a source with a watermark: the output's columns
    /// with a watermark (name, watermark as of the last step), and the late
    /// rows the view dropped.
    pub watermark: Option<ViewWatermarks>,
    pub error: Option<String>,
}

/// A view's output watermark: its columns that carry one, with the value
/// (µs) as of the last step, and the late rows the view dropped.
#[derive(Debug, Clone)]
pub struct ViewWatermarks {
    pub columns: Vec<(String, i64)>,
    pub late_rows: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Rows inserted (for DELETE/UPDATE: rows retracted).
    pub inserted: usize,
    pub retracted: usize,
    /// Offset of the first row written.
    pub first_offset: u64,
    /// The rows a change staged in a transaction inserted (after `ON
    /// CONFLICT` dropped or merged some): what `RETURNING` shows.
    pub inserted_rows: Option<RecordBatch>,
}

/// A view's circuit, or why its query could not be planned again.
pub type PlannedView = std::result::Result<Box<Circuit>, EngineError>;

pub struct Request {
    pub op: Op,
    pub reply: oneshot::Sender<Result<Outcome>>,
}

/// A relation as the committer sees it.
pub(crate) struct RelWork {
    pub def: Arc<RelationDef>,
    pub data: Arc<RelationData>,
    pub next_offset: u64,
    /// For sources with a `WATERMARK FOR` clause.
    pub watermark: Option<super::watermark::WatermarkTrack>,
}

/// Formats `Key (a, b)=(1, x)` for messages.
fn describe_key(def: &RelationDef, batch: &RecordBatch, row: usize) -> String {
    let names: Vec<&str> = def
        .primary_key
        .iter()
        .map(|&i| def.columns[i].name.as_str())
        .collect();
    let vals: Vec<String> = def
        .primary_key
        .iter()
        .map(|&i| {
            datafusion::arrow::util::display::array_value_to_string(batch.column(i), row)
                .unwrap_or_default()
        })
        .collect();
    format!("Key ({})=({})", names.join(", "), vals.join(", "))
}

impl RelWork {
    /// A base relation as its log on disk has it; with the number of log
    /// entries and rows read.
    pub fn load(def: Arc<RelationDef>, store: &Store) -> Result<(RelWork, usize, u64)> {
        let id = def.id;
        let mut work = RelWork::new(def, 0)?;
        let (mut entries, mut rows) = (0, 0);
        for item in store.scan_log(id, 0) {
            let (first, entry) = item?;
            work.replay(first, &entry)?;
            entries += 1;
            rows += entry.batch.num_rows() as u64;
        }
        Ok((work, entries, rows))
    }

    pub fn new(def: Arc<RelationDef>, next_offset: u64) -> Result<RelWork> {
        Ok(RelWork {
            data: Arc::new(RelationData::with_indexes(
                def.schema_with_offset(),
                def.index_specs(),
            )?),
            watermark: super::watermark::WatermarkTrack::for_relation(&def),
            def,
            next_offset,
        })
    }

    /// Applies inserted rows at `first_offset` (used by commits and replay).
    pub fn apply_insert(&mut self, batch: &RecordBatch, first_offset: u64) -> Result<()> {
        if let Some(w) = &mut self.watermark {
            w.observe(batch)?;
        }
        Arc::make_mut(&mut self.data).append(batch, first_offset)?;
        self.next_offset = self.next_offset.max(first_offset + batch.num_rows() as u64);
        Ok(())
    }

    /// Applies retractions of live rows (used by commits and replay).
    pub fn apply_retract(&mut self, offsets: &[u64]) -> Result<()> {
        Arc::make_mut(&mut self.data).retract(offsets)?;
        Ok(())
    }

    /// The change a log entry makes, as a delta (for views).
    pub fn entry_delta(&self, first_offset: u64, e: &store::Entry) -> Result<RelDelta> {
        let n = e.batch.num_rows();
        let user = self.def.columns.len();
        let rows = e.batch.project(&(0..user).collect::<Vec<_>>())?;
        match e.kind {
            EntryKind::Append => Ok(RelDelta {
                rows,
                offsets: Some(Int64Array::from_iter_values(
                    (first_offset as i64)..(first_offset + n as u64) as i64,
                )),
                weights: Int64Array::from_value(1, n),
            }),
            EntryKind::Change => {
                let weights = e.batch.column(user).as_primitive::<Int64Type>().clone();
                let refs = e.batch.column(user + 1).as_primitive::<Int64Type>();
                let offsets = (0..n)
                    .map(|i| {
                        if refs.is_valid(i) {
                            refs.value(i)
                        } else {
                            (first_offset + i as u64) as i64
                        }
                    })
                    .collect::<Int64Array>();
                Ok(RelDelta {
                    rows,
                    offsets: Some(offsets),
                    weights,
                })
            }
        }
    }

    /// Replays one log entry.
    pub fn replay(&mut self, first_offset: u64, e: &store::Entry) -> Result<()> {
        let n = e.batch.num_rows();
        match e.kind {
            EntryKind::Append => {
                self.apply_insert(&e.batch, first_offset)?;
            }
            EntryKind::Change => {
                let user = self.def.columns.len();
                let corrupt = |m: &str| {
                    EngineError::Store(store::StoreError::Corrupt(format!(
                        "relation {} offset {first_offset}: {m}",
                        self.def.name
                    )))
                };
                if e.batch.num_columns() != user + 2 {
                    return Err(corrupt("change entry has the wrong number of columns"));
                }
                let weights = e.batch.column(user).as_primitive::<Int64Type>();
                let refs = e.batch.column(user + 1).as_primitive::<Int64Type>();
                let n_retract = weights.values().iter().take_while(|&&w| w < 0).count();
                if weights.values()[n_retract..].iter().any(|&w| w != 1) {
                    return Err(corrupt("retractions must precede insertions"));
                }
                let user_batch = e.batch.project(&(0..user).collect::<Vec<_>>())?;
                if n_retract > 0 {
                    let offsets: Vec<u64> = (0..n_retract).map(|i| refs.value(i) as u64).collect();
                    self.apply_retract(&offsets)?;
                }
                if n_retract < n {
                    self.apply_insert(
                        &user_batch.slice(n_retract, n - n_retract),
                        first_offset + n_retract as u64,
                    )?;
                }
            }
        }
        self.next_offset = self.next_offset.max(first_offset + n as u64);
        Ok(())
    }
}

pub(crate) struct Committer {
    pub store: Store,
    pub relations: HashMap<u64, RelWork>,
    /// Materialized views, in id order (a view only reads older relations,
    /// so id order is a topological order).
    pub views: BTreeMap<u64, ViewWork>,
    /// When the view checkpoint was last written, and whether anything
    /// changed since.
    pub last_checkpoint: std::time::Instant,
    pub dirty: bool,
    pub checkpoint_every: std::time::Duration,
    pub snapshot: Arc<RwLock<Arc<DbSnapshot>>>,
    pub version: u64,
    /// The clock views with `now()` follow.
    pub clock: super::Clock,
    /// Set after a storage failure: the working state may be ahead of disk,
    /// so no further write is accepted until the store is reopened.
    pub failed: Option<super::storage::StorageFault>,
    /// Shared with the engine's storage watcher: set while `failed` is.
    pub storage_failed: Arc<std::sync::atomic::AtomicBool>,
    /// The store was reopened after a failure; the next `RestoreViews`
    /// ends the failure.
    pub recovering: bool,
    /// Free bytes a write must leave on the data directory's disk.
    pub min_free_disk: u64,
    /// Views whose query could not be planned at start-up, with the reason:
    /// they have no circuit; reading one reports the reason, `RECOMPUTE`
    /// plans it again, `DROP` removes it.
    pub broken: BTreeMap<u64, (Arc<RelationDef>, super::error::Failure)>,
    /// `CHECKPOINT` asked for one after the current group.
    pub checkpoint_now: bool,
}

impl Committer {
    /// The table `old` in the shape of `def` (see [`Op::AlterTable`]), and
    /// what stores it: the new definition and rows, the old definition's
    /// removal. Nothing changes here; the caller swaps the tables.
    fn altered(
        &self,
        old: u64,
        def: RelationDef,
        sources: &[Option<usize>],
    ) -> Result<(RelWork, Vec<Put>)> {
        let r = self.relations.get(&old).ok_or_else(|| {
            EngineError::Internal(format!("ALTER TABLE: relation {old} is not loaded"))
        })?;
        let schema = def.schema();
        let mut batches = Vec::new();
        for seg in r.data.segments() {
            let b = seg.visible()?;
            let n = b.num_rows();
            if n == 0 {
                continue;
            }
            let columns: Vec<ArrayRef> = sources
                .iter()
                .zip(&def.columns)
                .map(|(src, c)| match src {
                    Some(j) => b.column(*j).clone(),
                    None => datafusion::arrow::array::new_null_array(&c.ty.to_arrow(), n),
                })
                .collect();
            // a column that became NOT NULL must hold no NULL
            if let Some(i) = (0..columns.len())
                .find(|&i| !def.columns[i].nullable && columns[i].null_count() > 0)
            {
                return Err(super::alter::contains_nulls(&def, i));
            }
            batches.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        let id = def.id;
        let def = Arc::new(def);
        let mut work = RelWork::new(def.clone(), 0)?;
        let mut puts = vec![
            Put::Catalog {
                id,
                bytes: def.to_bytes(),
            },
            Put::Meta {
                name: store::keys::META_NEXT_RELATION_ID,
                bytes: (id + 1).to_be_bytes().to_vec(),
            },
            Put::DeleteCatalog { id: old },
        ];
        let mut at = 0u64;
        for b in batches.iter().flat_map(entry::chunks) {
            // a key added over rows that repeat it
            if let Some(k) = work.data.primary() {
                let mut seen = HashSet::new();
                for (i, key) in k.keys(&b)?.into_iter().enumerate() {
                    if k.first(&key).is_some() || !seen.insert(key) {
                        return Err(EngineError::UniqueViolation(format!(
                            "could not create unique index \"{}\": {} is duplicated",
                            crate::catalog::pg_keys::key_name(&def),
                            describe_key(&def, &b, i)
                        )));
                    }
                }
            }
            let entry = entry::encode(EntryKind::Append, &b)?;
            puts.push(Put::Log {
                rel: id,
                first_offset: at,
                entry,
            });
            work.apply_insert(&b, at)?;
            at += b.num_rows() as u64;
        }
        Ok((work, puts))
    }

    pub fn publish(&mut self) {
        self.version += 1;
        let mut relations: HashMap<u64, Arc<RelationData>> = self
            .relations
            .iter()
            .map(|(id, r)| (*id, r.data.clone()))
            .collect();
        let mut errors = HashMap::new();
        for (id, v) in &self.views {
            relations.insert(*id, v.state.data.clone());
            if let Some(e) = &v.error {
                errors.insert(*id, e.clone());
            }
        }
        for (id, (_, e)) in &self.broken {
            errors.insert(*id, e.clone());
        }
        let mut watermarks: Vec<_> = self
            .relations
            .values()
            .filter_map(|r| r.watermark.as_ref().map(|w| w.status(&r.def)))
            .collect();
        watermarks.sort_by(|a, b| a.source.cmp(&b.source));
        let snap = DbSnapshot {
            version: self.version,
            relations,
            errors,
            watermarks: Arc::new(watermarks),
        };
        *self.snapshot.write() = Arc::new(snap);
    }

    /// The committer thread's loop.
    pub fn run(mut self, rx: Receiver<Request>) {
        const MAX_GROUP: usize = 1024;
        let mut shutdown = false;
        while !shutdown {
            let first = match rx.recv_timeout(std::time::Duration::from_millis(250)) {
                Ok(r) => r,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // Time passes without writes: rows leave views with now().
                    if self.failed.is_none() && self.clock.is_wall() && self.tick() {
                        self.publish();
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => break,
                }
            }
            let mut puts = Vec::new();
            let mut replies = Vec::with_capacity(group.len());
            let mut drops = Vec::new();
            let mut budget = group
                .iter()
                .any(|r| super::storage::write_estimate(&r.op).is_some())
                .then(|| super::storage::SpaceBudget::new(&self));
            for req in group {
                if matches!(req.op, Op::Shutdown) {
                    shutdown = true;
                    replies.push((req.reply, Ok(Outcome::default())));
                    continue;
                }
                if let Some(f) = &self.failed {
                    let r = match req.op {
                        Op::Reopen => self.reopen().map(|_| Outcome::default()),
                        Op::RestoreViews { .. } | Op::ViewStats { .. } => {
                            self.stage(req.op, &mut puts)
                        }
                        _ => Err(f.refusal()),
                    };
                    let _ = req.reply.send(r);
                    continue;
                }
                if let (Some(b), Some(bytes)) =
                    (budget.as_mut(), super::storage::write_estimate(&req.op))
                {
                    if let Err(e) = b.take(bytes) {
                        let _ = req.reply.send(Err(e));
                        continue;
                    }
                }
                if let Op::DropRelation { id } = &req.op {
                    drops.push(*id);
                }
                let altered = match &req.op {
                    Op::AlterTable { old, .. } => Some(*old),
                    _ => None,
                };
                let r = self.stage(req.op, &mut puts);
                // (the old log goes only once the new table is stored)
                if let (Some(old), Ok(_)) = (altered, &r) {
                    drops.push(old);
                }
                replies.push((req.reply, r));
            }
            let durable = if puts.is_empty() {
                if shutdown && self.failed.is_none() {
                    self.store.flush()
                } else {
                    Ok(())
                }
            } else {
                self.store.apply(puts).and_then(|_| self.store.flush())
            };
            match durable {
                Ok(()) => {
                    // (while a storage failure lasts the working state may
                    // hold writes that are not durable: nothing is published)
                    if self.failed.is_none() {
                        self.publish();
                    }
                    // `CHECKPOINT` answers once the checkpoint is written
                    let asked = std::mem::take(&mut self.checkpoint_now);
                    if asked {
                        self.checkpoint_if_dirty();
                    }
                    for (reply, r) in replies {
                        let _ = reply.send(r);
                    }
                    let due = self.last_checkpoint.elapsed() >= self.checkpoint_every;
                    if due || shutdown {
                        self.checkpoint_if_dirty();
                    }
                    for id in drops {
                        if let Err(e) = self.store.drop_log(id) {
                            tracing::warn!(relation = id, error = %e, "could not delete the log of a dropped relation; it is swept at the next start");
                        }
                    }
                }
                Err(e) => {
                    self.fail(&e);
                    let fault = super::storage::StorageFault::from_store(&e);
                    for (reply, r) in replies {
                        let _ = reply.send(r.and(Err(if fault.disk_full {
                            EngineError::Store(crate::store::StoreError::DiskFull(
                                "no space left on device: the write was not made durable; writes resume by themselves once space is freed".into(),
                            ))
                        } else {
                            EngineError::Internal(format!(
                                "could not make the write durable: {e}"
                            ))
                        })));
                    }
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "final flush failed");
        }
    }

    /// Feeds a base relation's change through every view, in id order;
    /// views read the changes of the relations (and views) before them.
    fn propagate(&mut self, rel: u64, d: RelDelta) {
        if self.views.is_empty() {
            return;
        }
        let now = self.clock.now_us();
        let mut changed: HashMap<u64, RelDelta> = HashMap::new();
        changed.insert(rel, d);
        let mut failed = self.failed_views();
        for (id, v) in self.views.iter_mut() {
            if v.circuit.uses_clock {
                v.circuit.set_now(now);
            }
            if fails_with_input(v, &failed) {
                if let Some(e) = &v.error {
                    failed.insert(*id, e.clone());
                }
                continue;
            }
            if let Some(out) = v.step(&changed) {
                changed.insert(*id, out);
            }
            if let Some(e) = &v.error {
                failed.insert(*id, e.clone());
            }
        }
        self.dirty = true;
    }

    /// The views in an error state (or not planned).
    fn failed_views(&self) -> HashMap<u64, super::error::Failure> {
        self.views
            .iter()
            .filter_map(|(id, v)| v.error.clone().map(|e| (*id, e)))
            .chain(self.broken.iter().map(|(id, (_, e))| (*id, e.clone())))
            .collect()
    }

    /// Moves every clock-driven view to the current time, and their
    /// changes through the views that read them. Returns whether anything
    /// changed.
    fn tick(&mut self) -> bool {
        if !self.views.values().any(|v| v.circuit.uses_clock) {
            return false;
        }
        let now = self.clock.now_us();
        let mut changed: HashMap<u64, RelDelta> = HashMap::new();
        let mut failed = self.failed_views();
        for (id, v) in self.views.iter_mut() {
            if fails_with_input(v, &failed) {
                if let Some(e) = &v.error {
                    failed.insert(*id, e.clone());
                }
                continue;
            }
            let mut out = v.tick(now);
            if !changed.is_empty() {
                if let Some(d) = v.step(&changed) {
                    out = match out {
                        Some(a) => RelDelta::concat(&[a, d]).ok().flatten(),
                        None => Some(d),
                    };
                }
            }
            if let Some(o) = out {
                changed.insert(*id, o);
            }
            if let Some(e) = &v.error {
                failed.insert(*id, e.clone());
            }
        }
        if changed.is_empty() {
            return false;
        }
        self.dirty = true;
        true
    }

    /// Current contents of the relations a circuit reads.
    fn contents_of(&self, circuit: &Circuit) -> Result<HashMap<u64, RelDelta>> {
        let mut out = HashMap::new();
        for spec in &circuit.sources {
            if out.contains_key(&spec.relation) {
                continue;
            }
            let d = if let Some(r) = self.relations.get(&spec.relation) {
                RelDelta::contents(&r.data)?
            } else if let Some(v) = self.views.get(&spec.relation) {
                if let Some(e) = &v.error {
                    return Err(EngineError::ViewFailed {
                        view: v.def.name.clone(),
                        cause: e.clone(),
                    });
                }
                RelDelta::contents(&v.state.data)?.map(|mut d| {
                    d.offsets = None;
                    d
                })
            } else if let Some((def, e)) = self.broken.get(&spec.relation) {
                return Err(EngineError::ViewFailed {
                    view: def.name.clone(),
                    cause: e.clone(),
                });
            } else {
                return Err(EngineError::Catalog(
                    crate::catalog::CatalogError::NotFound(spec.name.clone()),
                ));
            };
            if let Some(d) = d {
                out.insert(spec.relation, d);
            }
        }
        Ok(out)
    }

    fn checkpoint_if_dirty(&mut self) {
        if self.dirty && !self.views.is_empty() && self.failed.is_none() {
            let room = self
                .store
                .available_bytes()
                .is_none_or(|a| a >= self.min_free_disk.saturating_mul(2));
            if !room {
                tracing::warn!("little free disk space: view checkpoint skipped; restart will replay more of the log");
                return;
            }
            if let Err(e) = self.checkpoint_views() {
                tracing::warn!(error = %e, "view checkpoint failed; restart will replay more of the log");
                // a failed write leaves sled unusable
                if let EngineError::Store(s) = &e {
                    self.fail(s);
                }
            }
        }
    }

    /// Writes every view's state with the log offsets it reflects, in one
    /// atomic batch. Called between commit groups.
    pub fn checkpoint_views(&mut self) -> Result<()> {
        let bytes = super::checkpoint::encode(self)?;
        self.store.apply(vec![Put::Checkpoint {
            name: super::checkpoint::KEY.to_string(),
            bytes,
        }])?;
        self.store.flush()?;
        self.dirty = false;
        self.last_checkpoint = std::time::Instant::now();
        Ok(())
    }

    /// Restores the views at start-up. A view that cannot be restored never
    /// stops the start: it is rebuilt from the log, and if that fails too it
    /// comes back in its error state (readers see the error; `RECOMPUTE`
    /// and `DROP` work on it).
    fn restore_views(&mut self, views: Vec<(Arc<RelationDef>, PlannedView)>) -> Result<Outcome> {
        let checkpoint = match self.store.checkpoint(super::checkpoint::KEY) {
            Ok(Some(b)) => match super::checkpoint::decode(&b) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "the view checkpoint cannot be read: rebuilding every view from the log");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "the view checkpoint cannot be read: rebuilding every view from the log");
                None
            }
        };
        // A view is rebuilt from the log when it has no usable checkpoint,
        // or when a view it reads is rebuilt (its checkpointed state
        // reflects that input's old output).
        let mut rebuilt: HashSet<u64> = HashSet::new();
        let mut pending = Vec::new();
        let mut restored = 0;
        for (def, planned) in views {
            let mut circuit = match planned {
                Ok(c) => *c,
                Err(e) => {
                    tracing::error!(view = %def.name, error = %e, "materialized view cannot be planned again; it is in an error state until recomputed or dropped");
                    rebuilt.insert(def.id);
                    self.broken.insert(def.id, (def, Arc::new(e)));
                    continue;
                }
            };
            let reads_rebuilt = def.depends_on.iter().any(|d| rebuilt.contains(d));
            let saved = checkpoint
                .as_ref()
                .and_then(|c| c.views.get(&def.id))
                .filter(|s| s.error.is_none() && !reads_rebuilt)
                .filter(|s| {
                    let ok = Circuit::can_restore(&s.circuit);
                    if !ok {
                        tracing::warn!(view = %def.name, "checkpoint in an older format: rebuilding the view from the log");
                    }
                    ok
                });
            let restored_view = saved.and_then(|saved| {
                let mut state = ViewState::new(&def, circuit.append_only).ok()?;
                let r = (|| -> Result<()> {
                    circuit
                        .restore(&saved.circuit)
                        .map_err(super::view::dataflow)?;
                    for b in &saved.contents {
                        let b = RecordBatch::try_new(
                            crate::dataflow::relax(&def.schema()),
                            b.columns().to_vec(),
                        )?;
                        state.apply(&crate::dataflow::Delta::insert(b))?;
                    }
                    Ok(())
                })();
                match r {
                    Ok(()) => Some(state),
                    Err(e) => {
                        tracing::warn!(view = %def.name, error = %e, "view checkpoint cannot be restored: rebuilding the view from the log");
                        None
                    }
                }
            });
            match restored_view {
                Some(state) => {
                    self.views.insert(
                        def.id,
                        ViewWork {
                            def,
                            circuit,
                            state,
                            error: None,
                        },
                    );
                    restored += 1;
                }
                None => {
                    rebuilt.insert(def.id);
                    // (a fresh circuit: a failed restore may have left state)
                    pending.push((def, circuit));
                }
            }
        }
        // Replay the log tail (what the checkpoint does not reflect) through
        // the restored views.
        if let Some(c) = &checkpoint {
            if restored > 0 {
                let ids: Vec<u64> = self.relations.keys().copied().collect();
                for id in ids {
                    let from = c.offsets.get(&id).copied().unwrap_or(0);
                    let r = &self.relations[&id];
                    if r.next_offset <= from {
                        continue;
                    }
                    let mut parts = Vec::new();
                    for item in self.store.scan_log(id, from) {
                        let (first, entry) = item?;
                        parts.push(r.entry_delta(first, &entry)?);
                    }
                    if let Some(d) = RelDelta::concat(&parts)? {
                        self.propagate(id, d);
                    }
                }
            }
        }
        self.rebuild(pending);
        self.dirty = true;
        self.publish();
        Ok(Outcome::default())
    }

    /// Backfills views (in id order) from their inputs' current contents,
    /// replacing what was there; a view whose backfill fails is kept in an
    /// error state.
    fn rebuild(&mut self, views: Vec<(Arc<RelationDef>, Circuit)>) {
        for (def, circuit) in views {
            self.broken.remove(&def.id);
            self.views.remove(&def.id);
            let state = match ViewState::new(&def, circuit.append_only) {
                Ok(s) => s,
                Err(e) => {
                    self.broken.insert(def.id, (def, Arc::new(e)));
                    continue;
                }
            };
            let mut view = ViewWork {
                state,
                def,
                circuit,
                error: None,
            };
            match self.contents_of(&view.circuit) {
                Ok(contents) => {
                    view.circuit.set_now(self.clock.now_us());
                    if let Err(e) = view.backfill(&contents) {
                        view.error = Some(Arc::new(e));
                    }
                }
                Err(e) => view.error = Some(Arc::new(e)),
            }
            if let Some(e) = &view.error {
                tracing::error!(view = %view.def.name, error = %e, "materialized view is in an error state");
            }
            self.views.insert(view.def.id, view);
        }
        self.dirty = true;
    }

    fn rel(&mut self, id: u64) -> Result<&mut RelWork> {
        self.relations.get_mut(&id).ok_or_else(|| {
            EngineError::Catalog(crate::catalog::CatalogError::NotFound(format!(
                "with id {id} (dropped concurrently)"
            )))
        })
    }

    /// Validates one op, stages its puts, applies it to the working state.
    fn stage(&mut self, op: Op, puts: &mut Vec<Put>) -> Result<Outcome> {
        match op {
            Op::Append {
                rel,
                batches,
                entries,
            } => {
                let r = self.rel(rel)?;
                // Uniqueness against live rows and within the statement.
                r.check_append(&batches)?;
                let first = r.next_offset;
                let mut offset = first;
                let mut rows = 0;
                let mut parts = Vec::with_capacity(batches.len());
                for (b, e) in batches.iter().zip(entries) {
                    let n = e.rows;
                    puts.push(Put::Log {
                        rel,
                        first_offset: offset,
                        entry: e,
                    });
                    r.apply_insert(b, offset)?;
                    parts.push(RelDelta {
                        rows: b.clone(),
                        offsets: Some(Int64Array::from_iter_values(
                            (offset as i64)..(offset + n as u64) as i64,
                        )),
                        weights: Int64Array::from_value(1, n),
                    });
                    offset += n as u64;
                    rows += n;
                }
                r.next_offset = offset;
                if let Some(d) = RelDelta::concat(&parts)? {
                    self.propagate(rel, d);
                }
                Ok(Outcome {
                    inserted: rows,
                    retracted: 0,
                    first_offset: first,
                    inserted_rows: None,
                })
            }
            Op::Change {
                rel,
                retract,
                insert,
                on_conflict,
            } => self.stage_change(rel, retract, insert, on_conflict, puts),
            Op::Transaction { changes } => {
                for c in &changes {
                    self.rel(c.rel)?.check_net(&c.retract, &c.insert)?;
                }
                let mut out = Outcome::default();
                for c in changes {
                    let o = if self.rel(c.rel)?.def.kind == RelationKind::Source {
                        self.stage(
                            Op::Append {
                                rel: c.rel,
                                batches: c.insert,
                                entries: c.entries,
                            },
                            puts,
                        )?
                    } else {
                        let schema = self.rel(c.rel)?.def.schema();
                        let insert = concat_batches(&schema, &c.insert)?;
                        self.stage_change(c.rel, c.retract, Some(insert), OnConflict::Error, puts)?
                    };
                    out.inserted += o.inserted;
                    out.retracted += o.retracted;
                }
                Ok(out)
            }
            Op::CreateRelation { def } => {
                let id = def.id;
                let bytes = def.to_bytes();
                let def = Arc::new(*def);
                let next_id = id + 1;
                puts.push(Put::Catalog { id, bytes });
                puts.push(Put::Meta {
                    name: store::keys::META_NEXT_RELATION_ID,
                    bytes: next_id.to_be_bytes().to_vec(),
                });
                self.relations.insert(id, RelWork::new(def, 0)?);
                Ok(Outcome::default())
            }
            Op::AlterTable { old, def, sources } => {
                let (work, mut new_puts) = self.altered(old, *def, &sources)?;
                puts.append(&mut new_puts);
                self.relations.remove(&old);
                self.relations.insert(work.def.id, work);
                Ok(Outcome::default())
            }
            Op::SetIndexes { def } => {
                let id = def.id;
                let bytes = def.to_bytes();
                let def = Arc::new(*def);
                let specs = def.index_specs();
                if let Some(work) = self.relations.get_mut(&id) {
                    let mut data = (*work.data).clone();
                    data.set_indexes(specs)?;
                    work.data = Arc::new(data);
                    work.def = def;
                } else if let Some(view) = self.views.get_mut(&id) {
                    view.state.set_indexes(specs)?;
                    view.def = def;
                } else {
                    return Err(EngineError::Catalog(
                        crate::catalog::CatalogError::NotFound(def.name.clone()),
                    ));
                }
                puts.push(Put::Catalog { id, bytes });
                Ok(Outcome::default())
            }
            Op::Redefine { def } => {
                let id = def.id;
                let bytes = def.to_bytes();
                let def = Arc::new(*def);
                if let Some(work) = self.relations.get_mut(&id) {
                    work.def = def;
                } else if let Some(view) = self.views.get_mut(&id) {
                    view.def = def;
                }
                puts.push(Put::Catalog { id, bytes });
                Ok(Outcome::default())
            }
            Op::DropRelation { id } => {
                puts.push(Put::DeleteCatalog { id });
                puts.push(Put::DeleteSourceState { rel: id });
                self.relations.remove(&id);
                self.views.remove(&id);
                self.broken.remove(&id);
                self.dirty = true;
                Ok(Outcome::default())
            }
            Op::CreateView { def, circuit } => {
                let id = def.id;
                let mut view = ViewWork {
                    state: ViewState::new(&def, circuit.append_only)?,
                    def: def.clone(),
                    circuit: *circuit,
                    error: None,
                };
                let contents = self.contents_of(&view.circuit)?;
                view.circuit.set_now(self.clock.now_us());
                view.backfill(&contents)?;
                let rows = view.state.rows();
                puts.push(Put::Catalog {
                    id,
                    bytes: def.to_bytes(),
                });
                puts.push(Put::Meta {
                    name: store::keys::META_NEXT_RELATION_ID,
                    bytes: (id + 1).to_be_bytes().to_vec(),
                });
                self.views.insert(id, view);
                self.dirty = true;
                Ok(Outcome {
                    inserted: rows,
                    retracted: 0,
                    first_offset: 0,
                    inserted_rows: None,
                })
            }
            Op::RestoreViews { views } => {
                let r = self.restore_views(views);
                self.recovered();
                r
            }
            Op::Reopen => Ok(Outcome::default()),
            Op::RebuildViews { views } => {
                let mut planned = Vec::with_capacity(views.len());
                for (def, p) in views {
                    match p {
                        Ok(c) => planned.push((def, *c)),
                        Err(e) => {
                            self.views.remove(&def.id);
                            self.broken.insert(def.id, (def, Arc::new(e)));
                        }
                    }
                }
                self.rebuild(planned);
                Ok(Outcome::default())
            }
            Op::ViewStats { reply } => {
                let broken = self.broken.values().map(|(def, e)| ViewStat {
                    view: def.name.clone(),
                    operators: vec![],
                    watermark: None,
                    error: Some(e.to_string()),
                });
                let stats = self
                    .views
                    .values()
                    .map(|v| ViewStat {
                        view: v.def.name.clone(),
                        operators: v
                            .circuit
                            .state_sizes()
                            .into_iter()
                            .map(|(op, s)| (op, s.rows, s.bytes))
                            .collect(),
                        watermark: v.view_watermarks(),
                        error: v.error.as_ref().map(|e| e.to_string()),
                    })
                    .chain(broken)
                    .collect();
                let _ = reply.send(stats);
                Ok(Outcome::default())
            }
            Op::Tick => {
                self.tick();
                Ok(Outcome::default())
            }
            Op::Checkpoint => {
                self.checkpoint_now = true;
                Ok(Outcome::default())
            }
            Op::Ingest(i) => self.stage_ingest(*i, puts),
            Op::SourceState { rel, reply } => {
                let _ = reply.send(self.store.source_state(rel).map_err(Into::into));
                Ok(Outcome::default())
            }
            Op::Records { puts: records } => {
                puts.extend(records);
                Ok(Outcome::default())
            }
            Op::Shutdown => Ok(Outcome::default()),
        }
    }

    fn stage_ingest(&mut self, i: Ingest, puts: &mut Vec<Put>) -> Result<Outcome> {
        let rel = i.rel;
        let out = match i.rows {
            IngestRows::None => {
                self.rel(rel)?;
                Outcome::default()
            }
            IngestRows::Append { batches, entries } => self.stage(
                Op::Append {
                    rel,
                    batches,
                    entries,
                },
                puts,
            )?,
            IngestRows::Upsert { rows, deletes } => {
                let r = self.rel(rel)?;
                let mut retract = Vec::new();
                if !deletes.is_empty() {
                    let k = r.data.primary().ok_or_else(|| {
                        EngineError::Internal(format!("\"{}\" has no primary key", r.def.name))
                    })?;
                    for key in &deletes {
                        if let Some(live) = k.first(&k.encode_prefix(key)?) {
                            retract.push(live);
                        }
                    }
                }
                let values: Vec<usize> = (0..r.def.columns.len())
                    .filter(|c| !r.def.primary_key.contains(c))
                    .collect();
                self.stage_change(rel, retract, rows, OnConflict::Update(values), puts)?
            }
        };
        if let Some(bytes) = i.position {
            puts.push(Put::Position { rel, bytes });
        }
        for (seq, bytes) in i.errors {
            puts.push(Put::SourceError { rel, seq, bytes });
        }
        for seq in i.forget {
            puts.push(Put::DeleteSourceError { rel, seq });
        }
        Ok(out)
    }

    fn stage_change(
        &mut self,
        rel: u64,
        retract: Vec<u64>,
        insert: Option<RecordBatch>,
        on_conflict: OnConflict,
        puts: &mut Vec<Put>,
    ) -> Result<Outcome> {
        let r = self.rel(rel)?;
        let user_schema = r.def.schema();
        let Applied {
            old_rows,
            retract,
            insert,
            first,
        } = r.change(retract, insert, &on_conflict)?;
        let (n_retract, n_insert) = (old_rows.num_rows(), insert.num_rows());
        if n_retract + n_insert == 0 {
            return Ok(Outcome {
                first_offset: first,
                ..Outcome::default()
            });
        }
        // Retractions, then insertions, in entries of bounded size.
        let mut at = first;
        let empty = RecordBatch::new_empty(user_schema.clone());
        let log = |batch: &RecordBatch, at: &mut u64, puts: &mut Vec<Put>| -> Result<()> {
            puts.push(Put::Log {
                rel,
                first_offset: *at,
                entry: entry::encode(EntryKind::Change, batch)?,
            });
            *at += batch.num_rows() as u64;
            Ok(())
        };
        for (rows, refs) in entry::chunks(&old_rows).into_iter().scan(0usize, |k, b| {
            let start = *k;
            *k += b.num_rows();
            Some((b, &retract[start..*k]))
        }) {
            if rows.num_rows() > 0 {
                let batch = change_batch(&user_schema, &rows, refs, &empty)?;
                log(&batch, &mut at, puts)?;
            }
        }
        for rows in entry::chunks(&insert) {
            if rows.num_rows() > 0 {
                let batch = change_batch(&user_schema, &empty, &[], &rows)?;
                log(&batch, &mut at, puts)?;
            }
        }
        let delta = RelDelta {
            rows: concat_batches(&user_schema, [&old_rows, &insert])?,
            offsets: Some(
                retract
                    .iter()
                    .map(|o| *o as i64)
                    .chain((0..n_insert).map(|i| (first + (n_retract + i) as u64) as i64))
                    .collect(),
            ),
            weights: Int64Array::from_iter_values(
                std::iter::repeat_n(-1, n_retract).chain(std::iter::repeat_n(1, n_insert)),
            ),
        };
        self.propagate(rel, delta);
        Ok(Outcome {
            inserted: n_insert,
            retracted: n_retract,
            first_offset: first,
            inserted_rows: None,
        })
    }
}

/// What [`RelWork::change`] did: the retracted rows and their offsets (in
/// the same order), the inserted rows, and the offset the change starts at
/// (retractions first, then insertions).
pub(crate) struct Applied {
    pub old_rows: RecordBatch,
    pub retract: Vec<u64>,
    pub insert: RecordBatch,
    pub first: u64,
}

impl RelWork {
    /// Validates a table change against this working state and applies it:
    /// inserted rows whose key is live conflict (an error, skipped, or
    /// merged into an update of the live row, as `on_conflict` says); the
    /// retracted offsets must be live rows (else a concurrent change took
    /// them: a serialization failure). Nothing changes when it fails.
    pub(crate) fn change(
        &mut self,
        mut retract: Vec<u64>,
        insert: Option<RecordBatch>,
        on_conflict: &OnConflict,
    ) -> Result<Applied> {
        let r = self;
        if r.def.kind != RelationKind::Table {
            return Err(EngineError::WrongObjectType(format!(
                "\"{}\" is a source; sources are append-only",
                r.def.name
            )));
        }
        let user_schema = r.def.schema();
        let mut insert = insert.unwrap_or_else(|| RecordBatch::new_empty(user_schema.clone()));
        // Upserts: rows whose key is live become retract + insert.
        if let Some(k) = r.data.primary() {
            let retracting: HashSet<u64> = retract.iter().copied().collect();
            let keys = k.keys(&insert)?;
            let mut keep = Vec::with_capacity(keys.len());
            let mut seen: HashSet<&[u8]> = HashSet::new();
            let mut merges: Vec<(usize, u64)> = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                if !seen.insert(key.as_ref()) {
                    match on_conflict {
                        OnConflict::DoNothing => {
                            keep.push(false);
                            continue;
                        }
                        OnConflict::Update(_) => {
                            return Err(EngineError::CardinalityViolation(
                                "ON CONFLICT DO UPDATE command cannot affect row a second time"
                                    .into(),
                            ))
                        }
                        OnConflict::Error => {
                            return Err(EngineError::UniqueViolation(format!(
                                "duplicate key value violates unique constraint \"{}_pkey\": {} already exists",
                                r.def.name,
                                describe_key(&r.def, &insert, i)
                            )))
                        }
                    }
                }
                match k.first(key) {
                    Some(live) if !retracting.contains(&live) => match on_conflict {
                        OnConflict::Error => {
                            return Err(EngineError::UniqueViolation(format!(
                                "duplicate key value violates unique constraint \"{}_pkey\": {} already exists",
                                r.def.name,
                                describe_key(&r.def, &insert, i)
                            )))
                        }
                        OnConflict::DoNothing => keep.push(false),
                        OnConflict::Update(_) => {
                            keep.push(true);
                            merges.push((i, live));
                        }
                    },
                    _ => keep.push(true),
                }
            }
            if let OnConflict::Update(cols) = on_conflict {
                if !merges.is_empty() {
                    insert = merge_updates(&r.data, &insert, &merges, cols)?;
                    retract.extend(merges.iter().map(|(_, live)| *live));
                }
            }
            if keep.iter().any(|k| !k) {
                insert = filter_record_batch(
                    &insert,
                    &datafusion::arrow::array::BooleanArray::from(keep),
                )?;
            }
        }
        let (old_rows, retract) = if retract.is_empty() {
            (RecordBatch::new_empty(user_schema.clone()), retract)
        } else {
            let unique: HashSet<u64> = retract.iter().copied().collect();
            if unique.len() != retract.len() {
                retract = unique.into_iter().collect();
            }
            match r.data.take(&retract)? {
                Some((rows, order)) => (rows, order),
                None => {
                    return Err(EngineError::SerializationFailure(
                        "could not serialize access due to concurrent update".into(),
                    ))
                }
            }
        };
        let (n_retract, n_insert) = (old_rows.num_rows(), insert.num_rows());
        let first = r.next_offset;
        if n_retract > 0 {
            r.apply_retract(&retract)?;
        }
        if n_insert > 0 {
            r.apply_insert(&insert, first + n_retract as u64)?;
        }
        r.next_offset = first + (n_retract + n_insert) as u64;
        Ok(Applied {
            old_rows,
            retract,
            insert,
            first,
        })
    }

    /// Whether a transaction's net change still applies here, without
    /// changing anything: every retracted offset a live row (else another
    /// transaction changed it since: a serialization failure), and no
    /// inserted key live unless the row holding it is retracted too.
    pub(crate) fn check_net(&self, retract: &[u64], insert: &[RecordBatch]) -> Result<()> {
        if retract.iter().any(|o| self.data.locate(*o).is_none()) {
            return Err(EngineError::SerializationFailure(
                "could not serialize access due to concurrent update".into(),
            ));
        }
        let Some(k) = self.data.primary() else {
            return Ok(());
        };
        let retracting: HashSet<u64> = retract.iter().copied().collect();
        let mut seen: HashSet<Box<[u8]>> = HashSet::new();
        for b in insert {
            for (i, key) in k.keys(b)?.into_iter().enumerate() {
                let live = k.first(&key).is_some_and(|o| !retracting.contains(&o));
                if live || !seen.insert(key) {
                    return Err(EngineError::UniqueViolation(format!(
                        "duplicate key value violates unique constraint \"{}_pkey\": {} already exists",
                        self.def.name,
                        describe_key(&self.def, b, i)
                    )));
                }
            }
        }
        Ok(())
    }

    /// A private working copy of a relation's rows as `data` has them,
    /// for a transaction block: offsets of new rows start at
    /// `next_offset`; its indexes are the snapshot's (shared until
    /// changed).
    pub(crate) fn private(
        def: Arc<RelationDef>,
        data: Arc<RelationData>,
        next_offset: u64,
    ) -> RelWork {
        RelWork {
            def,
            data,
            next_offset,
            watermark: None,
        }
    }

    /// A copy of this private working state (a savepoint).
    pub(crate) fn try_clone(&self) -> Result<RelWork> {
        Ok(RelWork {
            def: self.def.clone(),
            data: self.data.clone(),
            next_offset: self.next_offset,
            watermark: None,
        })
    }

    /// Fails with a unique violation if an appended row's key is live or
    /// repeats within the batches.
    pub(crate) fn check_append(&self, batches: &[RecordBatch]) -> Result<()> {
        let Some(k) = self.data.primary() else {
            return Ok(());
        };
        let mut seen: HashSet<Box<[u8]>> = HashSet::new();
        for b in batches {
            for (i, key) in k.keys(b)?.into_iter().enumerate() {
                if k.first(&key).is_some() || !seen.insert(key) {
                    return Err(EngineError::UniqueViolation(format!(
                        "duplicate key value violates unique constraint \"{}_pkey\": {} already exists",
                        self.def.name,
                        describe_key(&self.def, b, i)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// For `ON CONFLICT DO UPDATE SET c = EXCLUDED.c`: rows that hit a live key
/// take the existing row's values except for the updated columns.
/// A view that reads a view in an error state goes into one too: its rows
/// would no longer follow its input. True when `v` is (now) failed.
fn fails_with_input(v: &mut ViewWork, failed: &HashMap<u64, super::error::Failure>) -> bool {
    if v.error.is_some() {
        return true;
    }
    let input = v
        .circuit
        .sources
        .iter()
        .find_map(|s| failed.get(&s.relation).map(|e| (s.name.clone(), e.clone())));
    if let Some((view, cause)) = input {
        v.fail(EngineError::ViewFailed { view, cause });
        return true;
    }
    false
}

fn merge_updates(
    data: &RelationData,
    insert: &RecordBatch,
    merges: &[(usize, u64)],
    cols: &[usize],
) -> Result<RecordBatch> {
    let offsets: Vec<u64> = merges.iter().map(|(_, o)| *o).collect();
    let Some((old, order)) = data.take(&offsets)? else {
        return Err(EngineError::SerializationFailure(
            "could not serialize access due to concurrent update".into(),
        ));
    };
    let pos_of_offset: HashMap<u64, usize> =
        order.iter().enumerate().map(|(i, o)| (*o, i)).collect();
    // For each insert row: (0, row) = take from insert, (1, row) = from old.
    let mut from_old: Vec<Option<usize>> = vec![None; insert.num_rows()];
    for (row, live) in merges {
        from_old[*row] = pos_of_offset.get(live).copied();
    }
    let mut columns = Vec::with_capacity(insert.num_columns());
    for c in 0..insert.num_columns() {
        if cols.contains(&c) {
            columns.push(insert.column(c).clone());
            continue;
        }
        let idx: Vec<(usize, usize)> = from_old
            .iter()
            .enumerate()
            .map(|(i, o)| match o {
                Some(j) => (1, *j),
                None => (0, i),
            })
            .collect();
        let arrays: [&dyn Array; 2] = [insert.column(c).as_ref(), old.column(c).as_ref()];
        columns.push(interleave(&arrays, &idx)?);
    }
    Ok(RecordBatch::try_new(insert.schema(), columns)?)
}

/// The schema of change entries: user columns, `_weight`, `_ref`.
pub fn change_schema(user: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = user.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(WEIGHT_COLUMN, DataType::Int64, false));
    fields.push(Field::new(REF_COLUMN, DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

/// Retractions (old rows, weight -1, ref = their offset) then insertions.
fn change_batch(
    user: &SchemaRef,
    old_rows: &RecordBatch,
    retract: &[u64],
    insert: &RecordBatch,
) -> Result<RecordBatch> {
    let n_r = old_rows.num_rows();
    let n_i = insert.num_rows();
    let rows = concat_batches(user, [old_rows, insert])?;
    let weights: ArrayRef = Arc::new(Int64Array::from_iter_values(
        std::iter::repeat_n(-1, n_r).chain(std::iter::repeat_n(1, n_i)),
    ));
    let mut refs = Int64Builder::with_capacity(n_r + n_i);
    for o in retract {
        refs.append_value(*o as i64);
    }
    refs.append_nulls(n_i);
    let mut columns = rows.columns().to_vec();
    columns.push(weights);
    columns.push(Arc::new(refs.finish()));
    Ok(RecordBatch::try_new(change_schema(user), columns)?)
}
