//! Storage faults: a full disk, a failed write.
//!
//! * Before a group of writes is staged, the committer checks the free
//!   space of the data directory's file system: a write that would leave
//!   less than `--min-free-disk` is refused with 53100 before anything of
//!   it is applied, so the working state stays what is on disk and the
//!   next write succeeds as soon as space is back.
//! * A write can still fail for real (another process filled the disk
//!   since the check, an I/O error). sled then refuses every later
//!   operation of that handle, and the committer's working state may be
//!   ahead of the disk, so the committer stops accepting writes (53100 for
//!   a full disk, XX000 otherwise). The engine's storage watcher then tries,
//!   every half second, to reopen the data directory (once there is space),
//!   reload every relation from its log and restore the views from their
//!   checkpoint and the log tail, exactly as a restart would; writes resume
//!   when that succeeds. Nothing acknowledged is lost on the way: what was
//!   acknowledged was flushed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::commit::{Committer, Op, RelWork};
use super::error::{EngineError, Result};
use super::Engine;
use crate::store::StoreError;

/// Why the committer stopped accepting writes.
#[derive(Debug, Clone)]
pub struct StorageFault {
    pub message: String,
    pub disk_full: bool,
}

impl StorageFault {
    pub fn from_store(e: &StoreError) -> StorageFault {
        StorageFault {
            message: e.to_string(),
            disk_full: matches!(e, StoreError::DiskFull(_)),
        }
    }

    /// The error a write gets while the fault lasts.
    pub fn refusal(&self) -> EngineError {
        if self.disk_full {
            EngineError::Store(StoreError::DiskFull(
                "no space left on device; writes resume by themselves once space is freed".into(),
            ))
        } else {
            EngineError::Internal(format!(
                "writes are disabled after a storage failure ({}); they resume once the data directory can be reopened",
                self.message
            ))
        }
    }
}

/// The bytes an op will write (an upper estimate), or `None` for ops that
/// write nothing or free space (drops always pass, even on a full disk).
pub(crate) fn write_estimate(op: &Op) -> Option<u64> {
    match op {
        Op::Append { entries, .. } => {
            Some(entries.iter().map(|e| e.bytes.len() as u64).sum::<u64>() + 4096)
        }
        Op::Ingest(i) => Some(
            match &i.rows {
                super::commit::IngestRows::None => 0,
                super::commit::IngestRows::Append { entries, .. } => {
                    entries.iter().map(|e| e.bytes.len() as u64).sum::<u64>()
                }
                super::commit::IngestRows::Upsert { rows, deletes } => {
                    rows.as_ref()
                        .map(|b| b.get_array_memory_size() as u64)
                        .unwrap_or(0)
                        + deletes.len() as u64 * 16
                }
            } + i.errors.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
                + 4096,
        ),
        Op::Change {
            retract, insert, ..
        } => Some(
            insert
                .as_ref()
                .map(|b| b.get_array_memory_size() as u64)
                .unwrap_or(0)
                + retract.len() as u64 * 16
                + 4096,
        ),
        Op::Transaction { changes } => Some(
            changes
                .iter()
                .map(|c| {
                    c.insert
                        .iter()
                        .map(|b| b.get_array_memory_size() as u64)
                        .sum::<u64>()
                        + c.retract.len() as u64 * 16
                })
                .sum::<u64>()
                + 4096,
        ),
        Op::CreateRelation { .. }
        | Op::CreateView { .. }
        | Op::Records { .. }
        | Op::Redefine { .. } => Some(64 << 10),
        // (a copy of the table's rows; the old log is freed after)
        Op::AlterTable { .. } => Some(1 << 20),
        _ => None,
    }
}

/// The free space left for writes in one group, counted down as they are
/// staged.
pub(crate) struct SpaceBudget {
    available: Option<u64>,
    min_free: u64,
}

impl SpaceBudget {
    pub fn new(c: &Committer) -> SpaceBudget {
        SpaceBudget {
            available: c.store.available_bytes(),
            min_free: c.min_free_disk,
        }
    }

    /// Takes room for `bytes` (sled may write them twice: log and segment
    /// rewrite), or says why there is none.
    pub fn take(&mut self, bytes: u64) -> Result<()> {
        let Some(avail) = self.available.as_mut() else {
            return Ok(());
        };
        let need = bytes.saturating_mul(2);
        if *avail < need.saturating_add(self.min_free) {
            return Err(EngineError::Store(StoreError::DiskFull(format!(
                "no space left on device: {} MB free, this write needs about {} MB more than the {} MB kept free (--min-free-disk); nothing was written",
                *avail >> 20,
                (need >> 20).max(1),
                self.min_free >> 20
            ))));
        }
        *avail -= need;
        Ok(())
    }
}

impl Committer {
    /// Stops accepting writes after `e` (the store is unusable or behind
    /// the working state).
    pub(crate) fn fail(&mut self, e: &StoreError) {
        tracing::error!(error = %e, "storage failure; refusing writes until the data directory can be reopened");
        self.failed = Some(StorageFault::from_store(e));
        self.storage_failed.store(true, Ordering::SeqCst);
    }

    /// After a failure: reopens the data directory and reloads every base
    /// relation from its log, dropping the working state (views come back
    /// with the `RestoreViews` that follows). Fails, leaving the committer
    /// as it was, while there is still no room.
    pub(crate) fn reopen(&mut self) -> Result<()> {
        if let Some(avail) = self.store.available_bytes() {
            if avail < self.min_free_disk {
                return Err(EngineError::Store(StoreError::DiskFull(format!(
                    "still only {} MB free",
                    avail >> 20
                ))));
            }
        }
        self.store.reopen()?;
        let mut relations = std::collections::HashMap::new();
        for (id, bytes) in self.store.catalog()? {
            let def = Arc::new(crate::catalog::RelationDef::from_bytes(&bytes)?);
            if def.is_base() {
                let (work, _, _) = RelWork::load(def, &self.store)?;
                relations.insert(id, work);
            }
        }
        self.relations = relations;
        self.views.clear();
        self.broken.clear();
        self.recovering = true;
        tracing::info!("data directory reopened; restoring views");
        Ok(())
    }

    /// Called when `RestoreViews` has run: after a reopen, writes resume.
    pub(crate) fn recovered(&mut self) {
        if self.recovering {
            self.recovering = false;
            self.failed = None;
            self.storage_failed.store(false, Ordering::SeqCst);
            tracing::info!("storage recovered; accepting writes again");
        }
    }
}

/// Watches for a storage failure and recovers from it: reopen, then
/// restore the views as at start-up.
pub(crate) fn watch(engine: Weak<Engine>, failed: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if !failed.load(Ordering::SeqCst) {
                if engine.strong_count() == 0 {
                    return;
                }
                continue;
            }
            let Some(e) = engine.upgrade() else { return };
            match e.commit(Op::Reopen).await {
                Ok(_) => {
                    if let Err(err) = e.recover_views().await {
                        tracing::warn!(error = %err, "views could not be restored after reopening the data directory");
                    }
                }
                Err(EngineError::ShuttingDown) => return,
                Err(err) => tracing::debug!(error = %err, "data directory not reopened yet"),
            }
        }
    });
}
