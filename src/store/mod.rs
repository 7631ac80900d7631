//! Durable storage: the only module that touches sled.
//!
//! The store knows keys and bytes: catalog records, log entries (Arrow IPC
//! with a CRC, see [`entry`]) and checkpoints. It never interprets rows.
//! All sled calls block; callers keep them off the async executor (the
//! engine's committer runs on its own thread, start-up runs before serving).

pub mod entry;
pub mod keys;

use std::path::Path;

pub use entry::{EncodedEntry, Entry, EntryKind};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O error: {0}")]
    Io(sled::Error),
    /// The disk holding the data directory is full (53100).
    #[error("could not write to the data directory: {0}")]
    DiskFull(String),
    #[error("data directory {path} is in use by another process (a running freshet server?)")]
    InUse { path: String },
    #[error("data directory {path} cannot be opened: {source}")]
    Open { path: String, source: sled::Error },
    #[error("corrupt log entry: {0}")]
    Corrupt(String),
    #[error("cannot encode log entry: {0}")]
    Encode(String),
    #[error("data directory has format version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Whether an I/O error means the disk is full.
fn is_disk_full(e: &sled::Error) -> bool {
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull
                || io.raw_os_error() == Some(28) // ENOSPC
                || io.raw_os_error() == Some(122) // EDQUOT
                || io.to_string().contains("No space left on device")
        }
        _ => false,
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        if is_disk_full(&e) {
            StoreError::DiskFull("no space left on device".into())
        } else {
            StoreError::Io(e)
        }
    }
}

/// A connector's stored position and the messages it skipped (sequence
/// number and record).
pub type SourceState = (Option<Vec<u8>>, Vec<(u64, Vec<u8>)>);

/// sled's segment size; fixed when a data directory is created.
pub const SEGMENT_SIZE: usize = 8 << 20;

/// One write to apply atomically with others.
#[derive(Debug)]
pub enum Put {
    Log {
        rel: u64,
        first_offset: u64,
        entry: EncodedEntry,
    },
    Catalog {
        id: u64,
        bytes: Vec<u8>,
    },
    DeleteCatalog {
        id: u64,
    },
    Meta {
        name: &'static str,
        bytes: Vec<u8>,
    },
    Checkpoint {
        name: String,
        bytes: Vec<u8>,
    },
    Role {
        name: String,
        bytes: Vec<u8>,
    },
    DeleteRole {
        name: String,
    },
    /// A connector's position after the rows of the same batch.
    Position {
        rel: u64,
        bytes: Vec<u8>,
    },
    /// A message a connector passed over (`seq` numbers them per source).
    SourceError {
        rel: u64,
        seq: u64,
        bytes: Vec<u8>,
    },
    DeleteSourceError {
        rel: u64,
        seq: u64,
    },
    /// A dropped relation's position and skipped messages.
    DeleteSourceState {
        rel: u64,
    },
}

/// How long [`Store::open`] waits for the directory's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    dir: std::path::PathBuf,
    cache_bytes: u64,
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Large segments: log entries of up to segment_size/4 stay in the
            // log instead of becoming one blob file each, and the periodic
            // page-table snapshot has fewer segments to describe.
            .segment_size(SEGMENT_SIZE)
            .mode(sled::Mode::HighThroughput);
        // The directory's lock outlives a closing handle for a moment (a
        // restart in the same process, a reopen after a failed write): wait
        // a little for it before saying another process holds it.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let opened = loop {
            match config.open() {
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        let db = opened.map_err(|source| {
                let path = dir.display().to_string();
                if is_disk_full(&source) {
                    StoreError::DiskFull(format!(
                        "no space left on device for data directory {path}: free space there, then start again"
                    ))
                } else if source.to_string().contains("could not acquire lock") {
                    StoreError::InUse { path }
                } else {
                    StoreError::Open { path, source }
                }
            })?;
        let store = Store {
            db,
            dir: dir.to_path_buf(),
            cache_bytes,
        };
        store.check_version()?;
        Ok(store)
    }

    /// Closes the database and opens it again: after a failed write sled
    /// refuses every operation of the handle that saw it; a new handle
    /// reads what was durable.
    pub fn reopen(&mut self) -> Result<()> {
        let cache_bytes = self.cache_bytes;
        // sled closes its files when the last handle goes; hold a small
        // in-memory database meanwhile
        let placeholder = sled::Config::new().temporary(true).open()?;
        drop(std::mem::replace(&mut self.db, placeholder));
        // its flusher thread may hold the directory lock for a moment
        let mut last = None;
        for _ in 0..250 {
            match Store::open(&self.dir, cache_bytes) {
                Ok(s) => {
                    *self = s;
                    return Ok(());
                }
                Err(e @ StoreError::InUse { .. }) => {
                    last = Some(e);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::InUse {
            path: self.dir.display().to_string(),
        }))
    }

    fn check_version(&self) -> Result<()> {
        let key = keys::meta(keys::META_FORMAT_VERSION);
        match self.db.get(&key)? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt("format version key has wrong length".into())
                })?);
                if found != keys::FORMAT_VERSION {
                    return Err(StoreError::Version {
                        found,
                        expected: keys::FORMAT_VERSION,
                    });
                }
            }
            None => {
                self.db.insert(key, &keys::FORMAT_VERSION.to_be_bytes())?;
                self.db.flush()?;
            }
        }
        Ok(())
    }

    /// Applies all puts in one atomic sled batch. Not durable until [`Store::flush`].
    pub fn apply(&self, puts: Vec<Put>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for p in puts {
            match p {
                Put::Log {
                    rel,
                    first_offset,
                    entry,
                } => batch.insert(&keys::log(rel, first_offset), entry.bytes),
                Put::Catalog { id, bytes } => batch.insert(&keys::catalog(id), bytes),
                Put::DeleteCatalog { id } => batch.remove(&keys::catalog(id)),
                Put::Meta { name, bytes } => batch.insert(keys::meta(name), bytes),
                Put::Checkpoint { name, bytes } => batch.insert(keys::checkpoint(&name), bytes),
                Put::Role { name, bytes } => batch.insert(keys::role(&name), bytes),
                Put::DeleteRole { name } => batch.remove(keys::role(&name)),
                Put::Position { rel, bytes } => batch.insert(&keys::position(rel), bytes),
                Put::SourceError { rel, seq, bytes } => {
                    batch.insert(&keys::source_error(rel, seq), bytes)
                }
                Put::DeleteSourceError { rel, seq } => batch.remove(&keys::source_error(rel, seq)),
                Put::DeleteSourceState { rel } => {
                    batch.remove(&keys::position(rel));
                    for kv in self.db.scan_prefix(keys::source_error_prefix(rel)) {
                        let (k, _) = kv?;
                        batch.remove(k);
                    }
                }
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Makes everything applied so far durable.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(keys::meta(name))?.map(|v| v.to_vec()))
    }

    /// A connector's stored position and the messages it skipped (by
    /// sequence number, oldest first).
    pub fn source_state(&self, rel: u64) -> Result<SourceState> {
        let position = self.db.get(keys::position(rel))?.map(|v| v.to_vec());
        let mut errors = Vec::new();
        for kv in self.db.scan_prefix(keys::source_error_prefix(rel)) {
            let (k, v) = kv?;
            let mut seq = [0u8; 8];
            if k.len() == 17 {
                seq.copy_from_slice(&k[9..17]);
                errors.push((u64::from_be_bytes(seq), v.to_vec()));
            }
        }
        Ok((position, errors))
    }

    pub fn checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(keys::checkpoint(name))?.map(|v| v.to_vec()))
    }

    /// All catalog records, in id order.
    pub fn catalog(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix(keys::catalog_prefix()) {
            let (k, v) = kv?;
            let id = keys::parse_catalog(&k)
                .ok_or_else(|| StoreError::Corrupt(format!("bad catalog key {k:?}")))?;
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }

    /// All role records, in name order.
    pub fn roles(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for kv in self.db.scan_prefix([keys::TAG_ROLE]) {
            let (_, v) = kv?;
            out.push(v.to_vec());
        }
        Ok(out)
    }

    /// The log of one relation from `from_offset` on, entry by entry, each
    /// checked against its CRC.
    pub fn scan_log(
        &self,
        rel: u64,
        from_offset: u64,
    ) -> impl Iterator<Item = Result<(u64, Entry)>> + '_ {
        let start = keys::log(rel, 0);
        let end = keys::log(rel, u64::MAX);
        self.db
            .range(start..=end)
            .map(move |kv| {
                let (k, v) = kv?;
                let (_, first) = keys::parse_log(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad log key {k:?}")))?;
                Ok((first, v))
            })
            .filter_map(move |r| match r {
                Ok((first, v)) => {
                    // An entry that started before `from_offset` may still hold
                    // rows at or after it; callers slice. Skip only wholly
                    // older entries, using the header alone.
                    let what = || format!("relation {rel} offset {first}");
                    match entry::peek(&v, &what) {
                        Ok((_, rows)) if first + rows as u64 <= from_offset => None,
                        Ok(_) => Some(entry::decode(&v, &what).map(|e| (first, e))),
                        Err(e) => Some(Err(e)),
                    }
                }
                Err(e) => Some(Err(e)),
            })
    }

    /// The next unused offset of a relation's log (0 if empty).
    pub fn next_offset(&self, rel: u64) -> Result<u64> {
        match self.db.scan_prefix(keys::log_prefix(rel)).next_back() {
            None => Ok(0),
            Some(kv) => {
                let (k, v) = kv?;
                let (_, first) = keys::parse_log(&k)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad log key {k:?}")))?;
                let (_, rows) = entry::peek(&v, &|| format!("relation {rel} offset {first}"))?;
                Ok(first + rows as u64)
            }
        }
    }

    /// Deletes a relation's whole log. Used after the catalog entry is gone.
    pub fn drop_log(&self, rel: u64) -> Result<()> {
        let mut batch = sled::Batch::default();
        for kv in self.db.scan_prefix(keys::log_prefix(rel)) {
            let (k, _) = kv?;
            batch.remove(k);
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }

    /// Relation ids that have log entries (used to sweep logs of dropped relations).
    pub fn logged_relations(&self) -> Result<Vec<u64>> {
        let mut out: Vec<u64> = Vec::new();
        let mut from = keys::log(0, 0).to_vec();
        loop {
            let next = self
                .db
                .range(from.clone()..)
                .next()
                .transpose()?
                .and_then(|(k, _)| keys::parse_log(&k));
            match next {
                Some((rel, _)) => {
                    out.push(rel);
                    match rel.checked_add(1) {
                        Some(n) => from = keys::log(n, 0).to_vec(),
                        None => break,
                    }
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Bytes free for this process on the data directory's file system
    /// (`None` if the file system cannot tell).
    pub fn available_bytes(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Bytes on disk, as sled reports them.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    fn batch(vals: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vals.to_vec()))]).unwrap()
    }

    #[test]
    fn log_survives_reopen_and_scans_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(s.next_offset(7).unwrap(), 0);
            let e1 = entry::encode(EntryKind::Append, &batch(&[1, 2, 3])).unwrap();
            let e2 = entry::encode(EntryKind::Append, &batch(&[4])).unwrap();
            s.apply(vec![
                Put::Log {
                    rel: 7,
                    first_offset: 0,
                    entry: e1,
                },
                Put::Log {
                    rel: 7,
                    first_offset: 3,
                    entry: e2,
                },
            ])
            .unwrap();
            s.flush().unwrap();
        }
        // sled's background flusher may hold the directory lock for a
        // moment after the store is dropped
        let mut reopened = Store::open(dir.path(), 1 << 20);
        for _ in 0..100 {
            if reopened.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            reopened = Store::open(dir.path(), 1 << 20);
        }
        let s = reopened.unwrap();
        assert_eq!(s.next_offset(7).unwrap(), 4);
        assert_eq!(s.logged_relations().unwrap(), vec![7]);
        let from3: Vec<u64> = s.scan_log(7, 3).map(|r| r.unwrap().0).collect();
        assert_eq!(from3, vec![3]);
        let all: Vec<u64> = s.scan_log(7, 0).map(|r| r.unwrap().0).collect();
        assert_eq!(all, vec![0, 3]);
        s.drop_log(7).unwrap();
        assert_eq!(s.next_offset(7).unwrap(), 0);
    }
}
