//! One task per connector relation: poll the upstream, decode, commit the
//! rows with the position after them, acknowledge upstream, repeat.
//!
//! Back-pressure is structural: the task awaits each commit before it
//! polls again, so at most one batch per source is in memory and ingestion
//! never outruns the committer (a slow view slows the commit, which slows
//! the poll). Pausing drops the upstream reader; resuming opens a new one
//! at the stored position, as a restart does.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;

use super::decode::{self, Message};
use super::spec::{ErrorPolicy, Format, SourceSpec};
use super::ConnectorError;
use crate::catalog::RelationDef;
use crate::engine::commit::{Ingest, IngestRows};
use crate::engine::Engine;

/// What a reader returns: messages to decode, or rows already typed (the
/// generators), and the upstream position after them.
pub enum Chunk {
    Messages(Vec<Message>),
    Rows(RecordBatch),
}

pub struct Polled {
    pub chunk: Chunk,
    /// Stored with the rows; given back to `open` after a restart.
    pub position: Value,
}

/// An upstream reader, opened at a stored position.
#[async_trait::async_trait]
pub trait Reader: Send {
    /// The next messages (at most `max`), waiting for some; `None` when
    /// the upstream has ended (a bounded generator).
    async fn poll(&mut self, max: usize) -> Result<Option<Polled>, ConnectorError>;
    /// The last polled batch is durable: acknowledge it upstream.
    async fn committed(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
    /// Messages the upstream holds beyond the position, where it says.
    fn lag(&self) -> Option<i64> {
        None
    }
}

/// How long a poll gathers more messages after the first one.
pub const LINGER: Duration = Duration::from_millis(20);
/// How long CREATE and a (re)start wait for a broker.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker's deliveries one at a time, for [`gather`].
#[async_trait::async_trait]
pub trait Next: Send {
    /// Waits for the next delivery: its message, or `None` when it is not
    /// to be stored (a redelivery of one stored already).
    async fn next_message(&mut self) -> Result<Option<Message>, ConnectorError>;
    /// How many deliveries the batch `out` covers (stored or not).
    fn gathered(&self, out: &[Message]) -> usize {
        out.len()
    }
}

/// A batch of at most `max` deliveries: waits for the first (the caller's
/// select notices pause and stop meanwhile), then takes what arrives
/// within [`LINGER`].
pub async fn gather<N: Next + ?Sized>(
    n: &mut N,
    max: usize,
) -> Result<Vec<Message>, ConnectorError> {
    let mut out = Vec::new();
    while n.gathered(&out) == 0 {
        out.extend(n.next_message().await?);
    }
    let deadline = tokio::time::Instant::now() + LINGER;
    while n.gathered(&out) < max {
        match tokio::time::timeout_at(deadline, n.next_message()).await {
            Err(_) => break,
            Ok(m) => out.extend(m?),
        }
    }
    Ok(out)
}

/// Opens the reader of `def` at `position` (`None`: where the options
/// say to start).
pub async fn open(
    def: &RelationDef,
    spec: &SourceSpec,
    position: Option<Value>,
) -> Result<Box<dyn Reader>, ConnectorError> {
    match spec.connector.as_str() {
        "nexmark" => Ok(Box::new(super::nexmark::Reader::open(def, spec, position)?)),
        "datagen" => Ok(Box::new(super::datagen::Reader::open(def, spec, position)?)),
        "postgres-cdc" => Ok(Box::new(
            super::postgres_cdc::Reader::open(def, spec, position).await?,
        )),
        "kafka" => Ok(Box::new(
            super::kafka::Reader::open(def, spec, position).await?,
        )),
        "nats" => Ok(Box::new(
            super::nats::Reader::open(def, spec, position).await?,
        )),
        "mqtt" => Ok(Box::new(
            super::mqtt::Reader::open(def, spec, position).await?,
        )),
        "rabbitmq" => Ok(Box::new(
            super::rabbitmq::Reader::open(def, spec, position).await?,
        )),
        other => Err(ConnectorError::Unsupported(format!(
            "connector '{other}' is not supported yet"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Running,
    Paused,
    /// Stopped at a message it could not store (`error.policy = 'fail'`)
    /// until `ALTER SOURCE … RESUME`.
    Failed,
    /// The upstream failed; trying again.
    Retrying,
    /// A bounded upstream has ended.
    Finished,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Paused => "paused",
            State::Failed => "failed",
            State::Retrying => "retrying",
            State::Finished => "finished",
        }
    }
}

/// A message passed over, as kept in `freshet_catalog.source_errors`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    #[serde(skip)]
    pub seq: u64,
    pub position: String,
    pub error: String,
    /// The message's bytes (`error.policy = 'dead_letter'`).
    #[serde(default)]
    pub payload: Option<Vec<u8>>,
    /// Microseconds since the epoch.
    pub at: i64,
}

/// How many skipped messages a source keeps.
pub const KEEP_SKIPPED: usize = 1000;

/// A running connector's counters, for `freshet_catalog.source_status`.
pub struct Status {
    pub rel: u64,
    pub connector: String,
    state: Mutex<State>,
    pub rows: AtomicU64,
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
    pub errors: AtomicU64,
    pub commits: AtomicU64,
    last_error: Mutex<Option<String>>,
    position: Mutex<Option<Value>>,
    lag: Mutex<Option<i64>>,
    skipped: Mutex<VecDeque<Skipped>>,
    next_seq: AtomicU64,
    /// Microseconds since the epoch of the last commit.
    last_commit: Mutex<Option<i64>>,
}

impl Status {
    fn new(rel: u64, connector: &str) -> Status {
        Status {
            rel,
            connector: connector.to_string(),
            state: Mutex::new(State::Starting),
            rows: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            last_error: Mutex::new(None),
            position: Mutex::new(None),
            lag: Mutex::new(None),
            skipped: Mutex::new(VecDeque::new()),
            next_seq: AtomicU64::new(0),
            last_commit: Mutex::new(None),
        }
    }

    pub fn state(&self) -> State {
        *self.state.lock()
    }

    fn set(&self, s: State) {
        *self.state.lock() = s;
    }

    fn error(&self, s: State, e: &str) {
        *self.state.lock() = s;
        *self.last_error.lock() = Some(e.to_string());
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn position(&self) -> Option<String> {
        self.position.lock().as_ref().map(Value::to_string)
    }

    pub fn lag(&self) -> Option<i64> {
        *self.lag.lock()
    }

    pub fn last_commit(&self) -> Option<i64> {
        *self.last_commit.lock()
    }

    pub fn skipped(&self) -> Vec<Skipped> {
        self.skipped.lock().iter().cloned().collect()
    }
}

/// A running connector: its status and controls.
pub struct Handle {
    pub status: Arc<Status>,
    /// (paused, resume count): RESUME after a failure bumps the count.
    control: watch::Sender<(bool, u64)>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    pub fn stop(self) {
        self.task.abort();
    }

    pub fn set_paused(&self, paused: bool) {
        // (the state says so at once, not when the task next looks)
        self.status.set(if paused {
            State::Paused
        } else {
            State::Starting
        });
        self.control.send_modify(|(p, n)| {
            *p = paused;
            *n += 1;
        });
    }
}

pub fn spawn(
    rt: &tokio::runtime::Handle,
    engine: Weak<Engine>,
    def: RelationDef,
    spec: SourceSpec,
) -> Handle {
    let status = Arc::new(Status::new(def.id, &spec.connector));
    let (control, rx) = watch::channel((spec.paused, 0));
    let task = rt.spawn(run(engine, def, spec, status.clone(), rx));
    Handle {
        status,
        control,
        task,
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Waits `d`, or less if the controls change.
async fn pause_for(d: Duration, control: &mut watch::Receiver<(bool, u64)>) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = control.changed() => {}
    }
}

async fn run(
    engine: Weak<Engine>,
    def: RelationDef,
    spec: SourceSpec,
    status: Arc<Status>,
    mut control: watch::Receiver<(bool, u64)>,
) {
    let policy = spec.error_policy().unwrap_or(ErrorPolicy::Fail);
    let max_rows = spec
        .count("source.batch.rows", 8192)
        .unwrap_or(8192)
        .clamp(1, 1 << 20) as usize;
    let mut backoff = Duration::from_millis(100);
    let mut loaded = false;
    'outer: loop {
        while control.borrow_and_update().0 {
            status.set(State::Paused);
            if control.changed().await.is_err() {
                return;
            }
        }
        let Some(e) = engine.upgrade() else { return };
        let stored = e.source_state(def.id).await;
        drop(e);
        let position = match stored {
            Ok((position, skipped)) => {
                if !loaded {
                    loaded = true;
                    let mut kept = status.skipped.lock();
                    for (seq, bytes) in skipped {
                        if let Ok(mut s) = serde_json::from_slice::<Skipped>(&bytes) {
                            s.seq = seq;
                            kept.push_back(s);
                        }
                    }
                    let next = kept.back().map_or(0, |s| s.seq + 1);
                    status.next_seq.store(next, Ordering::SeqCst);
                    status.errors.store(kept.len() as u64, Ordering::Relaxed);
                }
                position.and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            }
            Err(err) => {
                status.error(State::Retrying, &err.to_string());
                pause_for(backoff, &mut control).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        *status.position.lock() = position.clone();
        let mut reader = match open(&def, &spec, position).await {
            Ok(r) => r,
            Err(err) => {
                status.error(State::Retrying, &err.to_string());
                pause_for(backoff, &mut control).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        status.set(State::Running);
        *status.lag.lock() = reader.lag();
        loop {
            let polled = tokio::select! {
                r = reader.poll(max_rows) => r,
                _ = control.changed() => continue 'outer,
            };
            let polled = match polled {
                Ok(Some(p)) => p,
                Ok(None) => {
                    status.set(State::Finished);
                    // (a RESUME reopens it: a generator whose count was
                    // raised, say)
                    if control.changed().await.is_err() {
                        return;
                    }
                    continue 'outer;
                }
                Err(err) => {
                    status.error(State::Retrying, &err.to_string());
                    pause_for(backoff, &mut control).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue 'outer;
                }
            };
            let Some(e) = engine.upgrade() else { return };
            let Some(current) = e.relation_by_id(def.id) else {
                return; // dropped
            };
            let (rows, deletes, bad, messages, bytes, payloads) = match polled.chunk {
                Chunk::Rows(b) => {
                    let n = b.num_rows() as u64;
                    let size = b.get_array_memory_size() as u64;
                    (Some(b), vec![], vec![], n, size, vec![])
                }
                Chunk::Messages(ms) => {
                    let d = decode::decode(&current, &spec, &ms);
                    let bytes: usize = ms.iter().map(Message::bytes).sum();
                    let payloads: Vec<(String, Option<Vec<u8>>)> = d
                        .bad
                        .iter()
                        .map(|b| {
                            let m = &ms[b.index];
                            (m.position.clone(), m.payload.clone())
                        })
                        .collect();
                    (
                        d.rows,
                        d.deletes,
                        d.bad,
                        ms.len() as u64,
                        bytes as u64,
                        payloads,
                    )
                }
            };
            if !bad.is_empty() && policy == ErrorPolicy::Fail {
                let (pos, _) = &payloads[0];
                let msg = format!(
                    "message at {pos} cannot be stored: {} (error.policy 'skip' passes over such messages)",
                    bad[0].error
                );
                status.error(State::Failed, &msg);
                tracing::warn!(source = %current.name, error = %msg, "source stopped");
                if control.changed().await.is_err() {
                    return;
                }
                continue 'outer;
            }
            let mut errors = Vec::new();
            let mut forget = Vec::new();
            let mut skipped = Vec::new();
            for (b, (pos, payload)) in bad.iter().zip(payloads) {
                let seq = status.next_seq.fetch_add(1, Ordering::SeqCst);
                let s = Skipped {
                    seq,
                    position: pos,
                    error: b.error.clone(),
                    payload: (policy == ErrorPolicy::DeadLetter)
                        .then_some(payload)
                        .flatten(),
                    at: now_us(),
                };
                if let Ok(bytes) = serde_json::to_vec(&s) {
                    errors.push((seq, bytes));
                }
                skipped.push(s);
            }
            {
                let kept = status.skipped.lock();
                let over = (kept.len() + skipped.len()).saturating_sub(KEEP_SKIPPED);
                forget.extend(kept.iter().take(over).map(|s| s.seq));
            }
            let ingest_rows = match ingest_rows(&current, &spec, rows, deletes) {
                Ok(r) => r,
                Err(err) => {
                    status.error(State::Failed, &err.to_string());
                    if control.changed().await.is_err() {
                        return;
                    }
                    continue 'outer;
                }
            };
            let n_rows = match &ingest_rows {
                IngestRows::None => 0,
                IngestRows::Append { batches, .. } => batches.iter().map(|b| b.num_rows()).sum(),
                IngestRows::Upsert { rows, deletes } => {
                    rows.as_ref().map_or(0, |b| b.num_rows()) + deletes.len()
                }
            } as u64;
            let op = Ingest {
                rel: def.id,
                rows: ingest_rows,
                position: serde_json::to_vec(&polled.position).ok(),
                errors,
                forget,
            };
            if let Err(err) = e.ingest(op).await {
                status.error(State::Retrying, &err.to_string());
                drop(e);
                pause_for(backoff, &mut control).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue 'outer;
            }
            drop(e);
            backoff = Duration::from_millis(100);
            status.rows.fetch_add(n_rows, Ordering::Relaxed);
            status.messages.fetch_add(messages, Ordering::Relaxed);
            status.bytes.fetch_add(bytes, Ordering::Relaxed);
            status.commits.fetch_add(1, Ordering::Relaxed);
            status
                .errors
                .fetch_add(skipped.len() as u64, Ordering::Relaxed);
            {
                let mut kept = status.skipped.lock();
                kept.extend(skipped);
                while kept.len() > KEEP_SKIPPED {
                    kept.pop_front();
                }
            }
            *status.position.lock() = Some(polled.position);
            *status.last_commit.lock() = Some(now_us());
            if let Err(err) = reader.committed().await {
                status.error(State::Retrying, &err.to_string());
                continue 'outer;
            }
            *status.lag.lock() = reader.lag();
            if status.state() != State::Running && !control.borrow().0 {
                status.set(State::Running);
            }
        }
    }
}

/// The committer's form of a decoded batch: appended to a source or a
/// table without a key; upserted (and deleted by key) into a keyed table.
pub fn ingest_rows(
    def: &RelationDef,
    spec: &SourceSpec,
    rows: Option<RecordBatch>,
    deletes: Vec<Vec<datafusion::common::ScalarValue>>,
) -> Result<IngestRows, crate::engine::EngineError> {
    let keyed = def.kind == crate::catalog::RelationKind::Table && !def.primary_key.is_empty();
    if keyed || spec.format != Format::Plain {
        if rows.is_none() && deletes.is_empty() {
            return Ok(IngestRows::None);
        }
        return Ok(IngestRows::Upsert { rows, deletes });
    }
    match rows {
        None => Ok(IngestRows::None),
        Some(b) => match crate::engine::write::append_parts(vec![b])? {
            None => Ok(IngestRows::None),
            Some((batches, entries)) => Ok(IngestRows::Append { batches, entries }),
        },
    }
}
