//! The coordinator. It owns the store, the catalog, the committer thread and
//! the published snapshot, and it is the one place that fixes the commit
//! order: log -> flush -> in-memory state -> snapshot -> acknowledgement.

pub mod alter;
pub mod checkpoint;
pub mod comment;
pub mod commit;
pub mod data;
pub mod error;
pub mod exec;
pub mod query;
pub mod rename;
pub mod returning;
pub mod roles;
pub mod session;
pub mod storage;
pub mod view;
pub mod watermark;
pub mod write;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio::sync::oneshot;

use crate::catalog::{Catalog, RelationDef};
use crate::store::{keys, Store};
use commit::{Committer, Op, Outcome, RelWork, Request};
use data::DbSnapshot;
pub use error::{EngineError, Result};

tokio::task_local! {
    /// When the running statement's `statement_timeout` passes. A write
    /// not yet handed to the committer by then is not sent (once sent, it
    /// commits, and the statement reports it).
    pub static DEADLINE: Option<std::time::Instant>;
}

/// Fails with 57014 if the running statement's deadline has passed.
pub fn check_deadline() -> Result<()> {
    match DEADLINE.try_with(|d| *d) {
        Ok(Some(d)) if std::time::Instant::now() >= d => Err(EngineError::StatementTimeout),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// sled page-cache size in bytes.
    pub cache_bytes: u64,
    /// How often view state is checkpointed (when it changed).
    pub checkpoint_every: std::time::Duration,
    /// Views with `now()` follow a clock set with `SET freshet.clock`
    /// instead of the wall clock (for tests and replays).
    pub manual_clock: bool,
    /// Memory one query may use (`--max-statement-memory`); `None`: no
    /// limit.
    pub max_statement_memory: Option<usize>,
    /// Free bytes a write must leave on the data directory's file system
    /// (`--min-free-disk`); a write that would not is refused with 53100.
    pub min_free_disk: u64,
    /// The database this engine holds ([`crate::database`]).
    pub database_oid: u32,
}

/// The clock that views with `now()` follow.
#[derive(Debug, Clone)]
pub enum Clock {
    Wall,
    /// Microseconds since the Unix epoch, set by `SET freshet.clock`.
    Manual(Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    pub fn now_us(&self) -> i64 {
        match self {
            Clock::Wall => chrono::Utc::now().timestamp_micros(),
            Clock::Manual(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    pub fn is_wall(&self) -> bool {
        matches!(self, Clock::Wall)
    }
}

/// The default `--min-free-disk`: 64 MiB.
pub const DEFAULT_MIN_FREE_DISK: u64 = 64 << 20;

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> EngineConfig {
        EngineConfig {
            data_dir: data_dir.into(),
            cache_bytes: 256 << 20,
            checkpoint_every: std::time::Duration::from_secs(30),
            manual_clock: false,
            max_statement_memory: None,
            min_free_disk: DEFAULT_MIN_FREE_DISK,
            database_oid: crate::database::DEFAULT_OID,
        }
    }
}

/// What start-up found on disk.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    pub relations: usize,
    pub log_entries: usize,
    pub rows: u64,
    pub swept_logs: usize,
    pub millis: u128,
}

pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) catalog: RwLock<Catalog>,
    snapshot: Arc<RwLock<Arc<DbSnapshot>>>,
    commit_tx: Mutex<Option<Sender<Request>>>,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// Serializes DDL statements.
    pub(crate) ddl_lock: tokio::sync::Mutex<()>,
    /// Serializes read-modify-write statements (UPDATE, DELETE, upserts) per table.
    table_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    recovery: RecoveryReport,
    clock: Clock,
    /// Where queries run (off the serving threads).
    queries: exec::SharedRuntime,
    /// Roles and the privileges on schema `public`.
    access: RwLock<Arc<crate::auth::Access>>,
    /// The OIDs `pg_class` gave our relations, to their catalog names.
    pub(crate) view_oids: crate::catalog::pg_views::ViewOids,
    /// Set by the committer while a storage failure lasts.
    storage_failed: Arc<std::sync::atomic::AtomicBool>,
    /// Whether the storage watcher runs.
    watching: std::sync::atomic::AtomicBool,
    /// The default database's engine, for another database's: it keeps
    /// the roles (`None` for the default database itself).
    pub(crate) home: Option<std::sync::Weak<Engine>>,
    /// Every database of the server (shared by their engines).
    pub(crate) databases: Arc<crate::database::Databases>,
    /// The connectors feeding this database's sources and tables.
    pub(crate) connectors: crate::connectors::Registry,
}

impl Engine {
    /// Opens the data directory, replays every log, and starts the
    /// committer. Blocking: call before serving, or from a blocking thread.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>> {
        Self::open_with(config, None)
    }

    /// Opens another database of the server whose default database is
    /// `home`'s: it shares `home`'s roles, list of databases and query
    /// threads.
    pub fn open_in(config: EngineConfig, home: &Arc<Engine>) -> Result<Arc<Engine>> {
        Self::open_with(config, Some(home))
    }

    fn open_with(config: EngineConfig, home: Option<&Arc<Engine>>) -> Result<Arc<Engine>> {
        let started = Instant::now();
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Internal(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let store = Store::open(&config.data_dir, config.cache_bytes)?;
        let access = roles::load(&store, home.is_none())?;
        let databases = match home {
            Some(h) => h.databases.clone(),
            None => Arc::new(crate::database::Databases::load(
                &config,
                store.meta(crate::database::META_DATABASES)?,
            )?),
        };
        let mut next_id = match store.meta(keys::META_NEXT_RELATION_ID)? {
            Some(b) if b.len() == 8 => {
                u64::from_be_bytes(b.as_slice().try_into().unwrap_or([0; 8]))
            }
            _ => 1,
        };
        let mut catalog = Catalog::new(1);
        let mut relations = HashMap::new();
        let mut report = RecoveryReport::default();
        for (id, bytes) in store.catalog()? {
            let def = RelationDef::from_bytes(&bytes)?;
            if def.id != id {
                return Err(EngineError::Internal(format!(
                    "catalog record {id} holds relation {}",
                    def.id
                )));
            }
            next_id = next_id.max(id + 1);
            let def = catalog.insert(def)?;
            if !def.is_base() {
                // Views are planned again and restored by `recover_views`.
                continue;
            }
            let (work, entries, rows) = RelWork::load(def.clone(), &store)?;
            report.log_entries += entries;
            report.rows += rows;
            relations.insert(id, work);
        }
        // Logs whose catalog record is gone (a drop interrupted by a crash).
        for rel in store.logged_relations()? {
            if !relations.contains_key(&rel) {
                store.drop_log(rel)?;
                report.swept_logs += 1;
            }
        }
        while catalog.next_id() < next_id {
            catalog.allocate_id();
        }
        catalog.set_schemas(crate::schema::load(
            store.meta(crate::schema::META_SCHEMAS)?,
        )?);
        report.relations = catalog.relations().count();
        let snapshot = Arc::new(RwLock::new(Arc::new(DbSnapshot::default())));
        let clock = if config.manual_clock {
            Clock::Manual(Arc::new(std::sync::atomic::AtomicI64::new(0)))
        } else {
            Clock::Wall
        };
        if store
            .available_bytes()
            .is_some_and(|a| a < config.min_free_disk)
        {
            tracing::warn!(
                data_dir = %config.data_dir.display(),
                min_free_bytes = config.min_free_disk,
                "the disk is full: writes are refused (53100) until space is freed"
            );
        }
        let storage_failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut committer = Committer {
            store,
            relations,
            views: Default::default(),
            last_checkpoint: Instant::now(),
            dirty: false,
            checkpoint_every: config.checkpoint_every,
            snapshot: snapshot.clone(),
            version: 0,
            failed: None,
            storage_failed: storage_failed.clone(),
            recovering: false,
            min_free_disk: config.min_free_disk,
            clock: clock.clone(),
            broken: Default::default(),
            checkpoint_now: false,
        };
        committer.publish();
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("freshet-committer".into())
            .stack_size(crate::STACK_BYTES)
            .spawn(move || committer.run(rx))
            .map_err(|e| EngineError::Internal(format!("cannot start committer: {e}")))?;
        report.millis = started.elapsed().as_millis();
        let queries = match home {
            Some(h) => h.queries.clone(),
            None => Arc::new(exec::QueryRuntime::new(config.max_statement_memory)?),
        };
        Ok(Arc::new(Engine {
            config,
            catalog: RwLock::new(catalog),
            snapshot,
            commit_tx: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            ddl_lock: tokio::sync::Mutex::new(()),
            table_locks: Mutex::new(HashMap::new()),
            recovery: report,
            clock,
            queries,
            access: RwLock::new(Arc::new(access)),
            view_oids: Default::default(),
            storage_failed,
            watching: std::sync::atomic::AtomicBool::new(false),
            home: home.map(Arc::downgrade),
            databases,
            connectors: Default::default(),
        }))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The runtime queries execute on.
    pub fn queries(&self) -> &exec::SharedRuntime {
        &self.queries
    }

    /// The latest published snapshot: every acknowledged write, nothing else.
    pub fn snapshot(&self) -> Arc<DbSnapshot> {
        self.snapshot.read().clone()
    }

    pub fn relation(&self, name: &str) -> Option<Arc<RelationDef>> {
        self.catalog.read().get(name).cloned()
    }

    pub fn relation_by_id(&self, id: u64) -> Option<Arc<RelationDef>> {
        self.catalog.read().by_id(id).cloned()
    }

    pub fn relations(&self) -> Vec<Arc<RelationDef>> {
        self.catalog.read().relations().cloned().collect()
    }

    /// Sets the manual clock (`SET freshet.clock`); it never moves back.
    pub async fn set_clock(&self, now_us: i64) -> Result<()> {
        let Clock::Manual(t) = &self.clock else {
            return Err(EngineError::Unsupported(
                "freshet.clock can only be set when the server runs with --manual-clock".into(),
            ));
        };
        t.fetch_max(now_us, std::sync::atomic::Ordering::SeqCst);
        self.commit(Op::Tick).await.map(|_| ())
    }

    /// Every view's operators, state sizes and watermark.
    pub async fn view_stats(&self) -> Result<Vec<commit::ViewStat>> {
        let (reply, rx) = oneshot::channel();
        self.commit(Op::ViewStats { reply }).await?;
        rx.await.map_err(|_| EngineError::ShuttingDown)
    }

    /// Writes the views' checkpoint now (`CHECKPOINT`).
    pub async fn checkpoint(&self) -> Result<()> {
        self.commit(Op::Checkpoint).await.map(|_| ())
    }

    /// Sends an op to the committer and waits until it is durable.
    pub(crate) async fn commit(&self, op: Op) -> Result<Outcome> {
        check_deadline()?;
        let (reply, rx) = oneshot::channel();
        {
            let tx = self.commit_tx.lock();
            let tx = tx.as_ref().ok_or(EngineError::ShuttingDown)?;
            tx.send(Request { op, reply })
                .map_err(|_| EngineError::ShuttingDown)?;
        }
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    pub(crate) fn table_lock(&self, rel: u64) -> Arc<tokio::sync::Mutex<()>> {
        self.table_locks
            .lock()
            .entry(rel)
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
            .clone()
    }

    /// Plans every view of the catalog again (in id order, so a view's
    /// inputs are known before it) and hands them to the committer, which
    /// restores them from the last checkpoint plus the log tail, or
    /// backfills them. A view that cannot be planned or restored comes back
    /// in an error state; it never stops the start. Call once after `open`,
    /// before serving.
    pub async fn recover_views(self: &Arc<Self>) -> Result<()> {
        if !self
            .watching
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            storage::watch(Arc::downgrade(self), self.storage_failed.clone());
        }
        let mut views: Vec<Arc<RelationDef>> = self
            .relations()
            .into_iter()
            .filter(|r| !r.is_base())
            .collect();
        views.sort_by_key(|v| v.id);
        self.connectors.bind(self);
        if views.is_empty() {
            // (a session's template is costly to build: not for nothing)
            self.commit(Op::RestoreViews { views: Vec::new() }).await?;
            self.connectors.start_all();
            return Ok(());
        }
        let session = session::Session::standalone(self.clone())?;
        let mut planned = Vec::with_capacity(views.len());
        for def in views {
            if def.kind == crate::catalog::RelationKind::PlainView {
                // planned into what reads it; one that no longer plans
                // answers with why when read
                match session::replan_plain_view(&session, &def).await {
                    Ok(d) => self.swap_definition(d)?,
                    Err(e) => {
                        tracing::warn!(view = %def.name, error = %e, "view does not plan")
                    }
                }
                continue;
            }
            match self.plan_stored_view(&session, &def).await {
                Ok((d, circuit)) => planned.push((d, Ok(Box::new(circuit)))),
                Err(e) => planned.push((def, Err(e))),
            }
        }
        self.commit(Op::RestoreViews { views: planned }).await?;
        self.connectors.start_all();
        Ok(())
    }

    /// Plans a view from its stored query; the catalog entry gets the
    /// planned schema.
    async fn plan_stored_view(
        &self,
        session: &session::Session,
        def: &Arc<RelationDef>,
    ) -> Result<(Arc<RelationDef>, crate::dataflow::Circuit)> {
        let query = def.query.clone().unwrap_or_default();
        let stmt = crate::sql::parser::parse_query(&query).map_err(|e| {
            EngineError::Internal(format!(
                "stored query of view \"{}\" does not parse: {e}",
                def.name
            ))
        })?;
        let emit_on_close = def.options.get(session::EMIT_OPTION).map(String::as_str)
            == Some(session::EMIT_ON_CLOSE);
        let (circuit, schema, _) = session.plan_view_emitting(&stmt, emit_on_close).await?;
        let mut d = (**def).clone();
        d.view_schema = Some(schema);
        let d = Arc::new(d);
        {
            let mut cat = self.catalog.write();
            cat.remove(&d.name);
            cat.insert((*d).clone())?;
        }
        Ok((d, circuit))
    }

    /// `ALTER MATERIALIZED VIEW name RECOMPUTE` (`REFRESH MATERIALIZED
    /// VIEW`): plans the view and every view that reads it again and
    /// rebuilds them from their inputs' current contents, clearing an error
    /// state whose cause is gone.
    pub async fn recompute_view(self: &Arc<Self>, name: &str, actor: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let def = self
            .relation(name)
            .ok_or_else(|| crate::catalog::CatalogError::NotFound(name.to_string()))?;
        crate::auth::check_owner(&self.access().roles, actor, &def)?;
        if def.is_base() {
            return Err(EngineError::WrongObjectType(format!(
                "\"{name}\" is not a materialized view"
            )));
        }
        let mut defs = vec![def.clone()];
        defs.extend(self.catalog.read().dependents(def.id));
        defs.sort_by_key(|d| d.id);
        let session = session::Session::standalone(self.clone())?;
        let mut views = Vec::with_capacity(defs.len());
        for d in &defs {
            match self.plan_stored_view(&session, d).await {
                Ok((d, circuit)) => views.push((d, Ok(Box::new(circuit)))),
                // a dependent that no longer plans goes into an error state
                // (its rows would no longer follow the view it reads)
                Err(e) if d.id != def.id => views.push((d.clone(), Err(e))),
                Err(e) => return Err(e),
            }
        }
        self.commit(Op::RebuildViews { views }).await?;
        Ok(())
    }

    /// Creates a materialized view (already planned): the committer
    /// backfills it from its inputs at this point of the commit order.
    /// Returns false if it existed and `if_not_exists` was given.
    pub async fn create_view(
        &self,
        mut def: RelationDef,
        circuit: crate::dataflow::Circuit,
        if_not_exists: bool,
    ) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        self.check_schema_of(&def.name)?;
        if self.catalog.read().get(&def.name).is_some() {
            if if_not_exists {
                return Ok(false);
            }
            return Err(crate::catalog::CatalogError::AlreadyExists(def.name).into());
        }
        // an input dropped while the view was planned
        for dep in &def.depends_on {
            if self.catalog.read().by_id(*dep).is_none() {
                return Err(EngineError::SerializationFailure(
                    "a relation the view reads was dropped concurrently".into(),
                ));
            }
        }
        def.id = self.catalog.read().next_id();
        let def = Arc::new(def);
        self.commit(Op::CreateView {
            def: def.clone(),
            circuit: Box::new(circuit),
        })
        .await?;
        let mut cat = self.catalog.write();
        cat.allocate_id();
        cat.insert((*def).clone())?;
        Ok(true)
    }

    /// Creates a source or table. Returns false if it existed and
    /// `if_not_exists` was given.
    pub async fn create_relation(
        &self,
        create: &crate::sql::parser::CreateRelation,
        owner: &str,
    ) -> Result<bool> {
        let exists = |engine: &Engine| -> Result<bool> {
            engine.check_schema_of(&create.name)?;
            if engine.catalog.read().get(&create.name).is_some() {
                if create.if_not_exists {
                    return Ok(true);
                }
                return Err(
                    crate::catalog::CatalogError::AlreadyExists(create.name.clone()).into(),
                );
            }
            Ok(false)
        };
        if exists(self)? {
            return Ok(false);
        }
        let mut def = crate::sql::ddl::relation_def(create, self.catalog.read().next_id(), owner)?;
        crate::connectors::prepare(&mut def, &create.connector)?;
        if let Some(spec) = &def.source {
            // An upstream that cannot be reached is an error now, not
            // later. (Checked before taking the DDL lock: a broker that
            // takes its time does not hold up everyone else's DDL.)
            crate::connectors::runner::open(&def, spec, None).await?;
        }
        let _ddl = self.ddl_lock.lock().await;
        // (what the check may have set up upstream, a replication slot, is
        // released if the relation is not created after all)
        let created = async {
            if exists(self)? {
                return Ok(false);
            }
            def.id = self.catalog.read().next_id();
            self.commit(Op::CreateRelation {
                def: Box::new(def.clone()),
            })
            .await?;
            Ok(true)
        }
        .await;
        match created {
            Ok(true) => {}
            other => {
                self.connectors.abandoned(&def, &create.connector);
                return other;
            }
        }
        {
            let mut cat = self.catalog.write();
            cat.allocate_id();
            cat.insert(def.clone())?;
        }
        self.connectors.start(&def);
        Ok(true)
    }

    /// Drops relations. Missing ones are an error unless `if_exists`.
    pub async fn drop_relations(
        &self,
        d: &crate::sql::parser::DropStatement,
        actor: &str,
    ) -> Result<()> {
        use crate::catalog::RelationKind;
        use crate::sql::parser::DropKind;
        let _ddl = self.ddl_lock.lock().await;
        let mut victims = Vec::new();
        for name in &d.names {
            let def = self.catalog.read().get(name).cloned();
            match def {
                None if d.if_exists => continue,
                None => {
                    return Err(crate::catalog::CatalogError::NotFound(name.clone()).into());
                }
                Some(def) => {
                    let expected = match d.kind {
                        DropKind::Source => RelationKind::Source,
                        DropKind::Table => RelationKind::Table,
                        DropKind::MaterializedView => RelationKind::View,
                        // (DROP VIEW also drops a materialized view)
                        DropKind::View if def.kind == RelationKind::View => RelationKind::View,
                        DropKind::View => RelationKind::PlainView,
                    };
                    if def.kind != expected {
                        return Err(EngineError::WrongObjectType(format!(
                            "\"{name}\" is not a {}; use DROP {}",
                            expected.as_str(),
                            def.kind.as_str().to_ascii_uppercase()
                        )));
                    }
                    crate::auth::check_owner(&self.access().roles, actor, &def)?;
                    let dependents = self.catalog.read().dependents(def.id);
                    // (dependents dropped by the same statement are fine)
                    let outside: Vec<&Arc<RelationDef>> = dependents
                        .iter()
                        .filter(|v| !d.names.contains(&v.name))
                        .collect();
                    if !outside.is_empty() && !d.cascade {
                        let names: Vec<String> = outside
                            .iter()
                            .map(|v| format!("{} {}", v.kind.as_str(), v.name))
                            .collect();
                        return Err(EngineError::DependentObjects(format!(
                            "cannot drop {} {} because other objects depend on it: {} (use DROP ... CASCADE to drop them too)",
                            def.kind.as_str(),
                            def.name,
                            names.join(", ")
                        )));
                    }
                    // dependents first, newest first
                    for v in dependents.into_iter().rev() {
                        if !victims.iter().any(|x: &Arc<RelationDef>| x.id == v.id) {
                            victims.push(v);
                        }
                    }
                    if !victims.iter().any(|x| x.id == def.id) {
                        victims.push(def);
                    }
                }
            }
        }
        for def in victims {
            // (the consumer stops first: nothing of it commits after)
            self.connectors.stop(def.id);
            self.commit(Op::DropRelation { id: def.id }).await?;
            self.connectors.dropped(&def);
            self.catalog.write().remove(&def.name);
            self.table_locks.lock().remove(&def.id);
        }
        Ok(())
    }

    /// Appends Arrow batches to a source or table, atomically and durably
    /// (the path connectors use).
    pub async fn append(
        &self,
        name: &str,
        batches: Vec<datafusion::arrow::array::RecordBatch>,
    ) -> Result<commit::Outcome> {
        write::append_batches(self, name, batches).await
    }

    /// Stores a relation's new definition that changes nothing of its
    /// rows (the caller holds the DDL lock).
    pub(crate) async fn redefine(&self, def: RelationDef) -> Result<()> {
        self.commit(Op::Redefine {
            def: Box::new(def.clone()),
        })
        .await?;
        let mut cat = self.catalog.write();
        cat.remove(&def.name);
        cat.insert(def)?;
        Ok(())
    }

    /// A connector's batch, committed with its upstream position.
    pub(crate) async fn ingest(&self, op: commit::Ingest) -> Result<commit::Outcome> {
        self.commit(Op::Ingest(Box::new(op))).await
    }

    /// A connector's stored position and skipped messages.
    pub(crate) async fn source_state(&self, rel: u64) -> Result<commit::SourceState> {
        let (reply, rx) = oneshot::channel();
        self.commit(Op::SourceState { rel, reply }).await?;
        rx.await.map_err(|_| EngineError::ShuttingDown)?
    }

    /// The connectors of this database.
    pub fn connectors(&self) -> &crate::connectors::Registry {
        &self.connectors
    }

    /// Stops accepting writes, lets queued ones finish, flushes storage.
    pub async fn shutdown(&self) {
        self.connectors.stop_all();
        if self.home.is_none() {
            for e in self.databases.take_open() {
                Box::pin(e.shutdown()).await;
            }
        }
        let sent = {
            let tx = self.commit_tx.lock().take();
            tx.map(|tx| {
                let (reply, rx) = oneshot::channel();
                let ok = tx
                    .send(Request {
                        op: Op::Shutdown,
                        reply,
                    })
                    .is_ok();
                (ok, rx)
            })
        };
        if let Some((true, rx)) = sent {
            let _ = rx.await;
        }
        let handle = self.committer.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Drop for Engine {
    /// Stops the committer (it flushes on its way out) and waits for it, so
    /// the data directory is closed when the engine is gone.
    fn drop(&mut self) {
        self.commit_tx.lock().take();
        if let Some(h) = self.committer.lock().take() {
            let _ = h.join();
        }
    }
}
