//! Transaction blocks: `BEGIN … COMMIT` as one atomic unit.
//!
//! A block reads one snapshot (taken by its first statement) plus its own
//! writes, and writes nothing to the log until `COMMIT`:
//!
//! * Each relation the block writes gets a private working copy
//!   ([`RelWork::private`]): the snapshot's rows (shared, copy-on-write)
//!   with the block's changes applied by the same code the committer uses
//!   (keys, `ON CONFLICT`, retractions). New rows get provisional offsets
//!   from [`PROVISIONAL`] up, above every committed offset.
//! * Reads see [`Transaction::snapshot`]: the block's snapshot with the
//!   private copies in place of the relations written. Materialized views
//!   show the snapshot, not the block's own uncommitted writes.
//! * `COMMIT` sends the net change per relation (committed rows retracted,
//!   rows added) as one [`Op::Transaction`](crate::engine::commit::Op): the
//!   committer checks the whole of it first (a row retracted here that
//!   another transaction changed since the snapshot fails the commit with
//!   40001; a key another transaction inserted meanwhile, with 23505),
//!   then writes it in one log batch. A crash never leaves half of it.
//! * `ROLLBACK` drops the copies; savepoints are copies of the copies.
//!
//! This is snapshot isolation with first-committer-wins on rows (what
//! PostgreSQL calls REPEATABLE READ), whatever level the client asks for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::Int64Type;

use crate::catalog::RelationKind;
use crate::engine::commit::{Op, Outcome, RelWork, TxChange};
use crate::engine::data::DbSnapshot;
use crate::engine::error::{EngineError, Result};
use crate::store::{entry, EntryKind};

/// The first offset of rows a block inserts; their real offsets are given
/// at commit.
pub const PROVISIONAL: u64 = 1 << 62;

/// Errors of transaction control.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    Aborted,
    #[error("savepoint \"{0}\" does not exist")]
    NoSavepoint(String),
    #[error("{0} can only be used in transaction blocks")]
    NoBlock(&'static str),
    #[error("{0} cannot run inside a transaction block")]
    InBlock(&'static str),
}

/// One relation a block has written.
struct TxRel {
    work: RelWork,
    /// Committed offsets the block retracted.
    retracted: Vec<u64>,
}

impl TxRel {
    fn try_clone(&self) -> Result<TxRel> {
        Ok(TxRel {
            work: self.work.try_clone()?,
            retracted: self.retracted.clone(),
        })
    }
}

struct Savepoint {
    name: String,
    rels: BTreeMap<u64, TxRel>,
    /// How much DDL the block had run when the savepoint was set.
    undo_len: usize,
}

/// What undoes a `CREATE` a block ran (DDL takes effect at once; `ROLLBACK`
/// and `ROLLBACK TO` drop what the block created after the point they go
/// back to).
#[derive(Debug, Clone)]
pub enum Undo {
    Drop(crate::sql::parser::DropStatement),
    DropIndex(String),
    DropSchema(String),
}

/// An open transaction block.
pub struct Transaction {
    /// When the block began: `now()` inside it.
    pub start: chrono::DateTime<chrono::Utc>,
    /// Taken by the block's first statement.
    snapshot: Option<Arc<DbSnapshot>>,
    rels: BTreeMap<u64, TxRel>,
    savepoints: Vec<Savepoint>,
    /// The objects the block created, in order.
    undo: Vec<Undo>,
    /// A statement failed: everything but ROLLBACK fails until the end.
    /// Shared, so a statement whose rows fail while they stream to the
    /// client (after it returned) can mark it too.
    pub failed: Arc<AtomicBool>,
}

impl Transaction {
    pub fn new(start: chrono::DateTime<chrono::Utc>) -> Transaction {
        Transaction {
            start,
            snapshot: None,
            rels: BTreeMap::new(),
            savepoints: Vec::new(),
            undo: Vec::new(),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a statement of the block failed.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// The snapshot the block's statements read: its own, with the
    /// relations it wrote as it wrote them. `latest` is the committed
    /// snapshot, taken if the block has none yet.
    pub fn snapshot(&mut self, latest: impl FnOnce() -> Arc<DbSnapshot>) -> Arc<DbSnapshot> {
        let base = self.snapshot.get_or_insert_with(latest).clone();
        if self.rels.is_empty() {
            return base;
        }
        let mut s = (*base).clone();
        for (id, r) in &self.rels {
            s.relations.insert(*id, r.work.data.clone());
        }
        Arc::new(s)
    }

    /// Relations created after the block's snapshot (by DDL inside the
    /// block, which takes effect at once) become visible to it.
    /// Whether the block has written to relation `id`.
    pub fn wrote(&self, id: u64) -> bool {
        self.rels.contains_key(&id)
    }

    pub fn adopt_new_relations(&mut self, latest: &DbSnapshot) {
        if let Some(s) = &mut self.snapshot {
            if latest
                .relations
                .keys()
                .any(|k| !s.relations.contains_key(k))
            {
                let mut merged = (**s).clone();
                for (k, v) in &latest.relations {
                    merged.relations.entry(*k).or_insert_with(|| v.clone());
                }
                *s = Arc::new(merged);
            }
        }
    }

    fn rel(&mut self, engine: &crate::engine::Engine, id: u64) -> Result<&mut TxRel> {
        if !self.rels.contains_key(&id) {
            let def = engine.relation_by_id(id).ok_or_else(|| {
                EngineError::Catalog(crate::catalog::CatalogError::NotFound(format!(
                    "with id {id} (dropped concurrently)"
                )))
            })?;
            let snapshot = self.snapshot.get_or_insert_with(|| engine.snapshot());
            let data = match snapshot.relation(id) {
                Some(d) => d.clone(),
                None => engine.snapshot().relation(id).cloned().ok_or_else(|| {
                    EngineError::Internal(format!("no rows of relation {id} in the snapshot"))
                })?,
            };
            self.rels.insert(
                id,
                TxRel {
                    work: RelWork::private(def, data, PROVISIONAL),
                    retracted: Vec::new(),
                },
            );
        }
        self.rels
            .get_mut(&id)
            .ok_or_else(|| EngineError::Internal("transaction relation vanished".into()))
    }

    /// Applies a write to the block's private state (an `Append` or a
    /// `Change`), as the committer would apply it to the committed one.
    pub fn stage(&mut self, engine: &crate::engine::Engine, op: Op) -> Result<Outcome> {
        match op {
            Op::Append { rel, batches, .. } => {
                let r = self.rel(engine, rel)?;
                r.work.check_append(&batches)?;
                let mut out = Outcome {
                    first_offset: r.work.next_offset,
                    ..Outcome::default()
                };
                for b in &batches {
                    let at = r.work.next_offset;
                    r.work.apply_insert(b, at)?;
                    out.inserted += b.num_rows();
                }
                Ok(out)
            }
            Op::Change {
                rel,
                retract,
                insert,
                on_conflict,
            } => {
                let r = self.rel(engine, rel)?;
                let applied = r.work.change(retract, insert, &on_conflict)?;
                r.retracted
                    .extend(applied.retract.iter().filter(|o| **o < PROVISIONAL));
                Ok(Outcome {
                    inserted: applied.insert.num_rows(),
                    retracted: applied.old_rows.num_rows(),
                    first_offset: applied.first,
                    inserted_rows: Some(applied.insert),
                })
            }
            _ => Err(EngineError::Internal(
                "only row changes are staged in a transaction block".into(),
            )),
        }
    }

    pub fn savepoint(&mut self, name: &str) -> Result<()> {
        let rels = self.copy_rels()?;
        self.savepoints.push(Savepoint {
            name: name.to_string(),
            rels,
            undo_len: self.undo.len(),
        });
        Ok(())
    }

    fn copy_rels(&self) -> Result<BTreeMap<u64, TxRel>> {
        self.rels
            .iter()
            .map(|(k, v)| Ok((*k, v.try_clone()?)))
            .collect()
    }

    fn find(&self, name: &str) -> Result<usize> {
        self.savepoints
            .iter()
            .rposition(|s| s.name == name)
            .ok_or_else(|| TxnError::NoSavepoint(name.to_string()).into())
    }

    /// `RELEASE name`: forgets the savepoint and those after it.
    pub fn release(&mut self, name: &str) -> Result<()> {
        let at = self.find(name)?;
        self.savepoints.truncate(at);
        Ok(())
    }

    /// `ROLLBACK TO name`: the state as the savepoint saw it; the savepoint
    /// stays, those after it go; the block is no longer failed.
    pub fn rollback_to(&mut self, name: &str) -> Result<Vec<Undo>> {
        let at = self.find(name)?;
        self.savepoints.truncate(at + 1);
        let saved = &self.savepoints[at];
        let mut undo = self.undo.split_off(saved.undo_len.min(self.undo.len()));
        undo.reverse();
        let rels = saved
            .rels
            .iter()
            .map(|(k, v)| Ok((*k, v.try_clone()?)))
            .collect::<Result<_>>()?;
        self.rels = rels;
        self.failed.store(false, Ordering::SeqCst);
        Ok(undo)
    }

    /// Records an object the block created.
    pub fn created(&mut self, u: Undo) {
        self.undo.push(u);
    }

    /// What undoes every `CREATE` of the block, last first (its `ROLLBACK`).
    pub fn take_undo(&mut self) -> Vec<Undo> {
        let mut undo = std::mem::take(&mut self.undo);
        undo.reverse();
        undo
    }

    /// The op that commits the block: its net change per relation.
    pub fn into_op(self) -> Result<Option<Op>> {
        let mut changes = Vec::new();
        for (id, r) in self.rels {
            let user = r.work.def.columns.len();
            let mut insert = Vec::new();
            for seg in r.work.data.segments() {
                let b = seg.visible()?;
                let offsets = b.column(user).as_primitive::<Int64Type>();
                if offsets.is_empty() || (offsets.value(offsets.len() - 1) as u64) < PROVISIONAL {
                    continue;
                }
                let mine: BooleanArray = offsets
                    .iter()
                    .map(|o| o.map(|o| o as u64 >= PROVISIONAL))
                    .collect();
                let rows = filter_record_batch(b, &mine)?;
                insert.push(rows.project(&(0..user).collect::<Vec<_>>())?);
            }
            if insert.is_empty() && r.retracted.is_empty() {
                continue;
            }
            let entries = if r.work.def.kind == RelationKind::Source {
                let chunks: Vec<RecordBatch> = insert.iter().flat_map(entry::chunks).collect();
                let entries = chunks
                    .iter()
                    .map(|b| entry::encode(EntryKind::Append, b))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                insert = chunks;
                entries
            } else {
                Vec::new()
            };
            changes.push(TxChange {
                rel: id,
                retract: r.retracted,
                insert,
                entries,
            });
        }
        Ok((!changes.is_empty()).then_some(Op::Transaction { changes }))
    }
}
