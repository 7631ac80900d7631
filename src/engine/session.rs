//! A client session: its settings, its DataFusion state, and the execution
//! of one statement at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::execution::context::SessionState;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast;

use super::error::{EngineError, Result};
use super::query::{session_template, text_batch};
use super::write::{self, CopyIn, WritePlan};
use super::Engine;
use crate::catalog::RelationKind;
use crate::sql::parser::{DropKind, Statement};
use crate::sql::rewrite::{expose_offsets, mentions_offset, postgres_output_names};
use crate::sql::SqlParser;

mod plain_view;
pub(crate) use plain_view::replan as replan_plain_view;

/// The view option recording `EMIT ON WINDOW CLOSE`.
pub const EMIT_OPTION: &str = "emit";
pub const EMIT_ON_CLOSE: &str = "on_window_close";

/// What a statement produced.
pub enum Output {
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// A command tag such as `CREATE SOURCE` or `INSERT 0 3`.
    Command {
        tag: &'static str,
        rows: Option<usize>,
    },
    /// `COPY ... FROM STDIN` waits for data.
    CopyIn(Box<CopyIn>),
    /// `COPY ... TO STDOUT`: rows to write out in `format`.
    CopyOut {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        format: crate::ingest::copy::CopyFormat,
    },
    /// A parameter was set; reportable ones are sent to the client.
    /// A parameter changed: `SET` or `RESET` (the tag).
    Set {
        name: String,
        value: String,
        tag: &'static str,
    },
    Begin,
    Commit,
    Rollback,
    /// Rows of a cursor (`FETCH`): as `Rows`, with the command tag `FETCH`.
    Fetched {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// The rows of a write's `RETURNING`: as `Rows`, with the write's
    /// command tag (`INSERT`, `UPDATE`, `DELETE`).
    Returned {
        tag: &'static str,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
}

/// An open cursor (`DECLARE`): its rows, read as `FETCH` asks.
pub struct Cursor {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    /// Rows read from the stream and not yet fetched.
    pending: std::collections::VecDeque<datafusion::arrow::array::RecordBatch>,
    /// `WITH HOLD`: stays open after its transaction block ends.
    hold: bool,
    /// The `DECLARE` statement and when it ran (`pg_cursors`).
    statement: String,
    created_us: i64,
}

impl Cursor {
    /// The next `count` rows (all that are left if `None`).
    async fn take(
        &mut self,
        count: Option<u64>,
    ) -> Result<Vec<datafusion::arrow::array::RecordBatch>> {
        use futures::StreamExt;
        let want = count.map(|n| n as usize);
        let mut out = Vec::new();
        let mut got = 0usize;
        loop {
            if want.is_some_and(|w| got >= w) {
                break;
            }
            let batch = match self.pending.pop_front() {
                Some(b) => b,
                None => match self.stream.next().await {
                    Some(b) => b?,
                    None => break,
                },
            };
            let n = batch.num_rows();
            match want {
                Some(w) if got + n > w => {
                    let k = w - got;
                    out.push(batch.slice(0, k));
                    self.pending.push_front(batch.slice(k, n - k));
                    got = w;
                }
                _ => {
                    got += n;
                    out.push(batch);
                }
            }
        }
        Ok(out)
    }
}

/// A statement ready to run, with what Describe reports.
pub struct Prepared {
    pub statement: Statement,
    pub kind: PreparedKind,
    /// Types of `$1..$n`; `None` where nothing constrains one.
    pub param_types: Vec<Option<DataType>>,
    /// Columns the statement returns (`None`: it returns no rows).
    pub schema: Option<SchemaRef>,
}

pub enum PreparedKind {
    /// Session statements, DDL and other non-planned statements.
    Direct,
    /// A query planned by DataFusion.
    Query(Box<LogicalPlan>),
    /// INSERT, UPDATE, DELETE, COPY FROM.
    Write(Box<WritePlan>),
    /// COPY TO STDOUT: a query and the format of its rows.
    CopyOut(Box<LogicalPlan>, crate::ingest::copy::CopyFormat),
}

/// Session parameters (`SET` / `SHOW`).
#[derive(Debug, Clone)]
pub struct Params {
    values: BTreeMap<String, String>,
}

/// Parameters reported to the client with ParameterStatus when they change.
pub const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "standard_conforming_strings",
    "integer_datetimes",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
];

const DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("DateStyle", "ISO, MDY"),
    ("default_table_access_method", "heap"),
    ("default_transaction_isolation", "repeatable read"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("IntervalStyle", "postgres"),
    ("is_superuser", "on"),
    ("max_identifier_length", "63"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version", "15.20"),
    ("server_version_num", "150020"),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("TimeZone", "UTC"),
    ("transaction_isolation", "repeatable read"),
    ("transaction_read_only", "off"),
];

impl Default for Params {
    fn default() -> Self {
        Params {
            values: DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl Params {
    /// The canonical spelling of a parameter name (Postgres names are
    /// case-insensitive; a few are reported in mixed case).
    fn canonical(name: &str) -> String {
        let lower = name.to_ascii_lowercase();
        DEFAULTS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| k.eq_ignore_ascii_case(&lower))
            .map(str::to_string)
            .unwrap_or(lower)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(&Params::canonical(name))
            .map(String::as_str)
    }

    /// Sets a parameter; returns its canonical name and new value.
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(String, String)> {
        let key = Params::canonical(name);
        let value = match value {
            Some(v) => v.to_string(),
            None => DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default(),
        };
        match key.as_str() {
            "client_encoding" => {
                let v = value.to_ascii_uppercase().replace(['-', '_'], "");
                if v != "UTF8" && v != "UNICODE" {
                    return Err(EngineError::InvalidParameterValue(format!(
                        "client_encoding \"{value}\" is not supported: only UTF8"
                    )));
                }
                self.values.insert(key.clone(), "UTF8".into());
                return Ok((key, "UTF8".into()));
            }
            "TimeZone" => {
                let canonical = match crate::pgtext::zone(&value) {
                    Ok(Some(z)) => z.name().to_string(),
                    Ok(None) => value.clone(),
                    Err(crate::pgtext::UnknownZone) => {
                        return Err(EngineError::InvalidParameterValue(format!(
                            "invalid value for parameter \"TimeZone\": \"{value}\""
                        )))
                    }
                };
                self.values.insert(key.clone(), canonical);
            }
            "statement_timeout" | "idle_in_transaction_session_timeout" => {
                let ms = parse_duration_ms(&value).ok_or_else(|| {
                    EngineError::InvalidParameterValue(format!(
                        "invalid value for parameter \"{key}\": \"{value}\""
                    ))
                })?;
                self.values.insert(key.clone(), show_duration_ms(ms));
            }
            "transaction_isolation" | "default_transaction_isolation" => {
                // One isolation level exists (snapshot isolation, which
                // Postgres calls repeatable read): the names drivers send
                // are accepted, and SHOW says what a block gets.
                let v = value.to_ascii_lowercase();
                if ![
                    "read uncommitted",
                    "read committed",
                    "repeatable read",
                    "serializable",
                ]
                .contains(&v.as_str())
                {
                    return Err(EngineError::InvalidParameterValue(format!(
                        "invalid value for parameter \"{key}\": \"{value}\""
                    )));
                }
                self.values.insert(key.clone(), "repeatable read".into());
            }
            "server_version"
            | "server_version_num"
            | "server_encoding"
            | "integer_datetimes"
            | "max_identifier_length"
            | "is_superuser"
            | "session_authorization" => {
                return Err(EngineError::InvalidParameterValue(format!(
                    "parameter \"{key}\" cannot be changed"
                )));
            }
            _ => {
                self.values.insert(key.clone(), value.clone());
            }
        }
        let v = self.values.get(&key).cloned().unwrap_or_default();
        Ok((key, v))
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    /// `idle_in_transaction_session_timeout`, when one is set.
    pub fn idle_in_transaction_timeout(&self) -> Option<std::time::Duration> {
        let ms = parse_duration_ms(self.get("idle_in_transaction_session_timeout")?)?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// `statement_timeout`, when one is set.
    pub fn statement_timeout(&self) -> Option<std::time::Duration> {
        let ms = parse_duration_ms(self.get("statement_timeout")?)?;
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }
}

/// A Postgres time setting in milliseconds: a number (milliseconds) or a
/// number with a unit (`us`, `ms`, `s`, `min`, `h`, `d`).
fn parse_duration_ms(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('\'');
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "us" => 0.001,
        "s" => 1_000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    let ms = (n * factor).round();
    (ms <= i32::MAX as f64).then_some(ms as u64)
}

/// How Postgres shows a time setting: the largest unit that divides it.
fn show_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

pub struct Session {
    engine: Arc<Engine>,
    state: SessionState,
    parser: Arc<SqlParser>,
    pub params: Params,
    /// The role that logged in (`session_user`).
    session_user: String,
    /// The role privileges are checked against (`current_user`; `SET
    /// ROLE` changes it).
    role: String,
    /// The open transaction block (`BEGIN`), if any: its snapshot, its
    /// uncommitted writes and its start time (`now()` inside it). Outside
    /// a block each statement is its own transaction.
    tx: parking_lot::Mutex<Option<crate::txn::Transaction>>,
    /// `PREPARE`d statements, by name.
    named: HashMap<String, Arc<Prepared>>,
    /// Open cursors, by name (behind a lock only so the session stays
    /// `Sync`: a cursor's stream is not).
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
}

impl Session {
    /// A session of the bootstrap superuser; a connection calls
    /// [`Session::login`] once its client is authenticated.
    pub fn new(engine: Arc<Engine>, template: &SessionState, parser: Arc<SqlParser>) -> Session {
        let mut s = Session {
            engine,
            state: template.clone(),
            parser,
            params: Params::default(),
            session_user: crate::auth::BOOTSTRAP_ROLE.to_string(),
            role: crate::auth::BOOTSTRAP_ROLE.to_string(),
            tx: parking_lot::Mutex::new(None),
            named: HashMap::new(),
            cursors: tokio::sync::Mutex::new(HashMap::new()),
        };
        s.bind_role();
        s
    }

    /// The session is `user`'s from now on.
    /// Sets (`None`: resets) a run-time parameter, as `SET` does; returns
    /// its canonical name and new value.
    pub fn set_parameter(&mut self, name: &str, value: Option<&str>) -> Result<(String, String)> {
        let (name, value) = self.params.set(name, value)?;
        if name == "search_path" {
            self.bind_path();
        }
        Ok((name, value))
    }

    pub fn login(&mut self, user: &str) {
        self.session_user = user.to_string();
        self.role = user.to_string();
        self.bind_role();
    }

    /// The role privileges are checked against.
    pub fn user(&self) -> &str {
        &self.role
    }

    /// Binds `current_user`, `has_table_privilege`, … and the reported
    /// `is_superuser` / `session_authorization` to the current role.
    fn bind_role(&mut self) {
        for f in crate::auth::catalog::session_functions(
            &self.role,
            &self.session_user,
            Arc::downgrade(&self.engine),
        ) {
            let _ =
                datafusion::execution::FunctionRegistry::register_udf(&mut self.state, Arc::new(f));
        }
        self.bind_path();
        let superuser = self.engine.access().roles.is_superuser(&self.role);
        self.params.values.insert(
            "is_superuser".into(),
            if superuser { "on" } else { "off" }.into(),
        );
        self.params
            .values
            .insert("session_authorization".into(), self.session_user.clone());
    }

    /// Binds `current_schema()`, `current_schemas()` and
    /// `pg_table_is_visible()` to the session's search path and role.
    fn bind_path(&mut self) {
        let path = self
            .params
            .values
            .get("search_path")
            .cloned()
            .unwrap_or_default();
        for f in crate::schema::functions::bound(&path, &self.role, Arc::downgrade(&self.engine)) {
            let _ =
                datafusion::execution::FunctionRegistry::register_udf(&mut self.state, Arc::new(f));
        }
    }

    /// Fails with 42501 unless the current role may read every relation
    /// `plan` scans.
    fn check_reads(&self, plan: &LogicalPlan, except: Option<&str>) -> Result<()> {
        let reads = crate::auth::enforce::relations_read(plan);
        let access = self.engine.access();
        if let Some(t) = reads.superuser_only.iter().next() {
            if !access.roles.is_superuser(&self.role) {
                return Err(crate::auth::AuthError::PermissionDenied(format!(
                    "permission denied for table {t}"
                ))
                .into());
            }
        }
        for n in &reads.relations {
            self.engine
                .check_schema_usage(&self.role, crate::sql::names::split(n).0)?;
        }
        crate::auth::enforce::check_reads(
            &access.roles,
            &self.role,
            reads
                .relations
                .iter()
                .filter(|n| Some(n.as_str()) != except),
            |n| self.engine.relation(n),
        )?;
        Ok(())
    }

    /// Fails with 42501 unless the current role may run the write.
    fn check_write(&self, statement: &Statement, plan: &WritePlan) -> Result<()> {
        let (rel, privileges, reads) = plan.access();
        self.engine
            .check_schema_usage(&self.role, crate::sql::names::split(&rel.name).0)?;
        let access = self.engine.access();
        for p in privileges {
            crate::auth::check(&access.roles, &self.role, rel, p)?;
        }
        if let Some(reads) = reads {
            let target_read = match statement {
                Statement::Sql(ast) => crate::auth::enforce::reads_target(ast),
                _ => false,
            };
            let except = (!target_read).then_some(rel.name.as_str());
            self.check_reads(reads, except)?;
        }
        Ok(())
    }

    /// Fails with 42501 unless the current role may create relation
    /// `name` (a catalog name) in its schema.
    fn check_create(&self, name: &str) -> Result<()> {
        let (schema, _) = crate::sql::names::split(name);
        if schema != crate::sql::names::PUBLIC {
            self.engine.check_schema_of(name)?;
            return self.engine.check_schema_create(&self.role, schema);
        }
        let access = self.engine.access();
        if crate::auth::manage::may_create(&access.roles, &access.schema_acl, &self.role) {
            Ok(())
        } else {
            Err(crate::auth::AuthError::PermissionDenied(
                "permission denied for schema public".into(),
            )
            .into())
        }
    }

    /// Fails with 42501 unless the current role is a superuser.
    fn check_superuser(&self, what: &str) -> Result<()> {
        crate::auth::check_superuser(&self.engine.access().roles, &self.role, what)?;
        Ok(())
    }

    /// A stand-alone session (tests, tools): builds its own template.
    pub fn standalone(engine: Arc<Engine>) -> Result<Session> {
        let template = session_template(&engine)?;
        Ok(Session::new(engine, &template, Arc::new(SqlParser::new())))
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn parser(&self) -> &SqlParser {
        &self.parser
    }

    /// The state for one statement: the session's settings plus the
    /// snapshot every scan of the statement reads.
    /// The role may read every relation of `ids` (what a view reads).
    fn check_select_on(&self, ids: &[u64]) -> Result<()> {
        let access = self.engine.access();
        for rel in self.engine.relations() {
            if ids.contains(&rel.id) {
                crate::auth::check(
                    &access.roles,
                    &self.role,
                    &rel,
                    crate::auth::Privilege::Select,
                )?;
            }
        }
        Ok(())
    }

    /// The columns of an open cursor.
    pub async fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors
            .lock()
            .await
            .get(name)
            .map(|c| c.schema.clone())
    }

    pub(crate) fn statement_state(&self) -> SessionState {
        let mut state = self.state.clone();
        let mut tx = self.tx.lock();
        let snapshot = match tx.as_mut() {
            Some(t) => t.snapshot(|| self.engine.snapshot()),
            None => self.engine.snapshot(),
        };
        state.config_mut().set_extension(snapshot);
        state.config_mut().options_mut().extensions.insert(
            crate::catalog::pg_functions::SessionSettings(self.params.clone()),
        );
        // (a statement runs while no cursor is being read: the lock is free)
        if let Ok(cursors) = self.cursors.try_lock() {
            let rows = cursors
                .iter()
                .map(|(name, c)| crate::catalog::pg_session::CursorRow {
                    name: name.clone(),
                    statement: c.statement.clone(),
                    holdable: c.hold,
                    created_us: c.created_us,
                })
                .collect();
            state
                .config_mut()
                .set_extension(Arc::new(crate::catalog::pg_session::OpenCursors(rows)));
        }
        // `now()` is the start of the transaction: of the open block, or
        // of this statement
        state.mark_start_execution();
        if let Some(t) = tx.as_ref() {
            state.execution_props_mut().query_execution_start_time = Some(t.start);
        }
        state
    }

    /// Writes rows: committed now, or, inside a transaction block, staged
    /// in the block until it commits.
    pub(crate) async fn write(&self, op: super::commit::Op) -> Result<super::commit::Outcome> {
        let op = {
            let mut tx = self.tx.lock();
            match tx.as_mut() {
                Some(t) => return t.stage(&self.engine, op),
                None => op,
            }
        };
        self.engine.commit(op).await
    }

    /// The block's state as the wire reports it: `I` idle, `T` in a block,
    /// `E` in a failed block.
    pub fn block_status(&self) -> char {
        match self.tx.lock().as_ref() {
            None => 'I',
            Some(t) if t.is_failed() => 'E',
            Some(_) => 'T',
        }
    }

    /// DDL inside a block takes effect at once: the relations it created
    /// become visible to the block.
    fn adopt_new_relations(&self) {
        if let Some(t) = self.tx.lock().as_mut() {
            t.adopt_new_relations(&self.engine.snapshot());
        }
    }

    /// `TRUNCATE`: every live row of each table retracted, all tables in
    /// one commit (or in the open block). Sources keep their history.
    async fn truncate(&self, names: &[String]) -> Result<()> {
        let mut rels = Vec::new();
        for name in names {
            let rel = self.engine.relation(name).ok_or_else(|| {
                EngineError::from(crate::catalog::CatalogError::NotFound(name.clone()))
            })?;
            match rel.kind {
                RelationKind::Table => {}
                RelationKind::Source => {
                    return Err(EngineError::WrongObjectType(format!(
                        "cannot truncate source \"{name}\": a source's log is append-only; \
                         old events leave it by retention, not by TRUNCATE"
                    )))
                }
                RelationKind::View | RelationKind::PlainView => {
                    return Err(EngineError::WrongObjectType(format!(
                        "cannot truncate {} \"{name}\"",
                        rel.kind.as_str()
                    )))
                }
            }
            crate::auth::check(
                &self.engine.access().roles,
                &self.role,
                &rel,
                crate::auth::Privilege::Delete,
            )?;
            if !rels
                .iter()
                .any(|r: &Arc<crate::catalog::RelationDef>| r.id == rel.id)
            {
                rels.push(rel);
            }
        }
        // (locks in id order: two TRUNCATEs never wait on each other)
        rels.sort_by_key(|r| r.id);
        let locks: Vec<_> = rels.iter().map(|r| self.engine.table_lock(r.id)).collect();
        let mut guards = Vec::with_capacity(locks.len());
        for l in &locks {
            guards.push(l.lock().await);
        }
        let snapshot = match self.tx.lock().as_mut() {
            Some(t) => t.snapshot(|| self.engine.snapshot()),
            None => self.engine.snapshot(),
        };
        let mut ops = Vec::new();
        for rel in &rels {
            let Some(data) = snapshot.relation(rel.id) else {
                continue;
            };
            let user = rel.columns.len();
            let mut retract = Vec::with_capacity(data.live_rows());
            for seg in data.segments() {
                let b = seg.visible()?;
                let offsets = datafusion::arrow::array::AsArray::as_primitive::<
                    datafusion::arrow::datatypes::Int64Type,
                >(b.column(user));
                retract.extend(offsets.values().iter().map(|o| *o as u64));
            }
            if !retract.is_empty() {
                ops.push(super::commit::Op::Change {
                    rel: rel.id,
                    retract,
                    insert: None,
                    on_conflict: super::commit::OnConflict::Error,
                });
            }
        }
        let in_block = self.in_block();
        if in_block || ops.len() <= 1 {
            for op in ops {
                self.write(op).await?;
            }
            return Ok(());
        }
        // several tables outside a block: one transaction of their own
        let mut t = crate::txn::Transaction::new(chrono::Utc::now());
        for op in ops {
            t.stage(&self.engine, op)?;
        }
        if let Some(op) = t.into_op()? {
            self.engine.commit(op).await?;
        }
        Ok(())
    }

    /// The values of `a, b, …` (constant expressions), in order.
    async fn evaluate_row(&self, exprs: &str) -> Result<Vec<ScalarValue>> {
        let stmt = self.parse_one(&format!("SELECT {exprs}"))?;
        let prepared = Box::pin(self.prepare(stmt)).await?;
        let PreparedKind::Query(plan) = &prepared.kind else {
            return Err(EngineError::SyntaxError("EXECUTE needs values".into()));
        };
        let state = self.statement_state();
        let physical = state.create_physical_plan(plan).await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        let b = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .ok_or_else(|| EngineError::Internal("values produced no row".into()))?;
        (0..b.num_columns())
            .map(|i| Ok(ScalarValue::try_from_array(b.column(i), 0)?))
            .collect()
    }

    /// Runs `f` on the open block; `what` can only be used in one (25P01).
    fn with_block(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut crate::txn::Transaction) -> Result<()>,
    ) -> Result<()> {
        let mut tx = self.tx.lock();
        f(tx.as_mut().ok_or(crate::txn::TxnError::NoBlock(what))?)
    }

    /// Whether a transaction block is open.
    pub fn in_block(&self) -> bool {
        self.tx.lock().is_some()
    }

    /// A statement of the open block failed: the block is aborted until
    /// ROLLBACK (25P02 for everything else), as in Postgres.
    pub fn fail_block(&self) {
        if let Some(t) = self.tx.lock().as_mut() {
            t.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// The open block's failure flag, for rows that fail while they
    /// stream after the statement returned.
    pub fn block_failure(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.tx.lock().as_ref().map(|t| t.failed.clone())
    }

    /// Fails with 25P02 if the open block is aborted and the statement
    /// does not end it.
    fn check_block(&self, stmt: &Statement) -> Result<()> {
        let failed = self.tx.lock().as_ref().is_some_and(|t| t.is_failed());
        if failed
            && !matches!(
                stmt,
                Statement::Commit | Statement::Rollback | Statement::RollbackTo(_)
            )
        {
            return Err(crate::txn::TxnError::Aborted.into());
        }
        Ok(())
    }

    /// Parses SQL text into statements.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        let scope = self.name_scope();
        Ok(crate::sql::names::with_scope(&scope, || {
            self.parser.parse(sql)
        })?)
    }

    /// What this session's unqualified names resolve against: the schemas
    /// of its `search_path` that exist.
    pub fn name_scope(&self) -> crate::sql::names::NameScope {
        let engine = Arc::downgrade(&self.engine);
        crate::sql::names::NameScope {
            database: self.engine.database_name(),
            path: self.search_path(),
            exists: Arc::new(move |n: &str| {
                engine.upgrade().is_some_and(|e| e.relation(n).is_some())
            }),
        }
    }

    /// The schemas of `search_path` that exist, in order.
    pub fn search_path(&self) -> Vec<String> {
        let path = self
            .params
            .values
            .get("search_path")
            .map(String::as_str)
            .unwrap_or("public");
        crate::schema::search_path(path, &self.role, |s| self.engine.schema_exists(s))
    }

    /// Parses one statement's text (see `sql::parser::split_statements`);
    /// a long one is parsed as blocking work, so the thread's other
    /// connections move elsewhere meanwhile.
    pub fn parse_one(&self, text: &str) -> Result<Statement> {
        let scope = self.name_scope();
        let parse = || crate::sql::names::with_scope(&scope, || self.parser.parse_one(text));
        if text.len() > super::exec::HEAVY_BYTES {
            super::exec::heavy(|| Ok(parse()?))
        } else {
            Ok(parse()?)
        }
    }

    /// Runs SQL text statement by statement, stopping at the first error
    /// (simple query protocol).
    pub async fn run(&mut self, sql: &str) -> Result<Vec<Output>> {
        let mut out = Vec::new();
        for stmt in self.parse(sql)? {
            let p = self.prepare(stmt).await?;
            out.push(self.execute(&p, &[]).await?);
        }
        Ok(out)
    }

    /// Plans a statement: parameter types, result columns.
    pub async fn prepare(&self, statement: Statement) -> Result<Prepared> {
        self.check_block(&statement)?;
        let (kind, param_types, schema) = match &statement {
            Statement::InsertLiterals(lit) => {
                let plan = write::plan_literals(self, lit)?;
                let schema = plan.output_schema();
                (PreparedKind::Write(Box::new(plan)), vec![], schema)
            }
            Statement::Sql(ast) => match ast.as_ref() {
                ast::Statement::Copy { to: true, .. } => {
                    let Some((query, format)) = write::copy_out_query(ast)? else {
                        return Err(EngineError::Internal("COPY TO without a query".into()));
                    };
                    let plan = self
                        .plan_query(&ast::Statement::Query(Box::new(query)))
                        .await?;
                    let params = param_types(&plan)?;
                    (PreparedKind::CopyOut(Box::new(plan), format), params, None)
                }
                ast::Statement::Insert(_)
                | ast::Statement::Update(_)
                | ast::Statement::Delete(_)
                | ast::Statement::Copy { .. } => {
                    let plan = write::plan(self, ast).await?;
                    let params = plan.param_types();
                    let schema = plan.output_schema();
                    (PreparedKind::Write(Box::new(plan)), params, schema)
                }
                _ => {
                    let plan = self.plan_query(ast).await?;
                    let params = param_types(&plan)?;
                    let schema = Some(if crate::sql::explain::postgres_form(&plan) {
                        crate::sql::explain::schema()
                    } else {
                        self.result_schema(&plan)
                    });
                    (PreparedKind::Query(Box::new(plan)), params, schema)
                }
            },
            Statement::ShowRelations(_) => (
                PreparedKind::Direct,
                vec![],
                Some(text_batch("name", vec![])?.schema()),
            ),
            Statement::ShowVariable(name) => (
                PreparedKind::Direct,
                vec![],
                Some(text_batch(name, vec![])?.schema()),
            ),
            Statement::ShowAll => (PreparedKind::Direct, vec![], Some(show_all_schema())),
            Statement::ShowCreate { .. } => (
                PreparedKind::Direct,
                vec![],
                Some(crate::catalog::show_create::schema()),
            ),
            Statement::ExecutePrepared { name, .. } => (
                PreparedKind::Direct,
                vec![],
                self.named.get(name).and_then(|p| p.schema.clone()),
            ),
            Statement::Fetch {
                name, skip: false, ..
            } => (
                PreparedKind::Direct,
                vec![],
                self.cursors
                    .lock()
                    .await
                    .get(name)
                    .map(|c| c.schema.clone()),
            ),
            Statement::CreateView(v) if v.explain => (
                PreparedKind::Direct,
                vec![],
                Some(text_batch("plan", vec![])?.schema()),
            ),
            _ => (PreparedKind::Direct, vec![], None),
        };
        Ok(Prepared {
            statement,
            kind,
            param_types,
            schema,
        })
    }

    /// The columns a query returns as its execution will: the analyzer's
    /// rules can change types (`sum(bigint)` is numeric), so a statement is
    /// described by its analyzed plan. (A plan whose parameters are not
    /// typed yet may not analyze; its columns are then the planned ones.)
    pub(crate) fn result_schema(&self, plan: &LogicalPlan) -> SchemaRef {
        let analyzed = self.state.analyzer().execute_and_check(
            plan.clone(),
            self.state.config_options(),
            |_, _| {},
        );
        match analyzed {
            Ok(p) => Arc::new(p.schema().as_arrow().clone()),
            Err(_) => Arc::new(plan.schema().as_arrow().clone()),
        }
    }

    /// Plans a query (SELECT, VALUES, EXPLAIN, ...) with DataFusion.
    pub(crate) async fn plan_query(&self, ast: &ast::Statement) -> Result<LogicalPlan> {
        self.plan_query_in(ast, &self.state).await
    }

    /// The session's planning state (its settings, no snapshot).
    pub(crate) fn state_template(&self) -> &SessionState {
        &self.state
    }

    /// Plans a query with `state` (the session's, or one that resolves
    /// more names).
    pub(crate) async fn plan_query_in(
        &self,
        ast: &ast::Statement,
        state: &SessionState,
    ) -> Result<LogicalPlan> {
        let mut ast = ast.clone();
        crate::sql::expand_relations(&mut ast)?;
        postgres_output_names(&mut ast);
        if mentions_offset(&ast) {
            let engine = &self.engine;
            expose_offsets(&mut ast, &|n| engine.relation(n).is_some())?;
        }
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(ast)))
            .await?;
        match &plan {
            LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_) => Err(EngineError::Unsupported(format!(
                "statement is not supported: {}",
                plan.display()
            ))),
            _ => Ok(plan),
        }
    }

    /// Plans a view's query and lowers it to a circuit; returns the circuit
    /// and the view's schema.
    pub async fn plan_view(
        &self,
        query: &ast::Query,
    ) -> Result<(
        crate::dataflow::Circuit,
        datafusion::arrow::datatypes::SchemaRef,
    )> {
        let (circuit, schema, _) = self.plan_view_emitting(query, false).await?;
        Ok((circuit, schema))
    }

    /// Plans a view; `emit_on_close` asks for EMIT ON WINDOW CLOSE.
    /// Also returns the ids of every relation the query reads, including
    /// those the optimizer found it need not scan (`WHERE false`): the view
    /// depends on them all.
    pub async fn plan_view_emitting(
        &self,
        query: &ast::Query,
        emit_on_close: bool,
    ) -> Result<(
        crate::dataflow::Circuit,
        datafusion::arrow::datatypes::SchemaRef,
        Vec<u64>,
    )> {
        let mut stmt = ast::Statement::Query(Box::new(query.clone()));
        crate::sql::expand_relations(&mut stmt)?;
        let temporal = crate::sql::temporal::extract_temporal_filters(&mut stmt)?;
        postgres_output_names(&mut stmt);
        let engine = &self.engine;
        if mentions_offset(&stmt) {
            expose_offsets(&mut stmt, &|n| {
                engine.relation(n).is_some_and(|r| r.is_base())
            })?;
        }
        // A circuit runs no subquery per row: every subquery becomes a join.
        let mut state = self.state.clone();
        let options = state.config_mut().options_mut();
        options
            .optimizer
            .enable_physical_uncorrelated_scalar_subquery = false;
        if let Some(o) = options
            .extensions
            .get_mut::<crate::sql::subquery::PlannerOptions>()
        {
            o.incremental = true;
        }
        let stmt_read = stmt.clone();
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?;
        crate::sql::lower::check_deterministic(&plan)?;
        let optimized = state.optimize(&plan)?;
        let resolve = |t: &datafusion::common::TableReference,
                       src: &Arc<dyn datafusion::logical_expr::TableSource>| {
            if let Some(sw) = datafusion::datasource::source_as_provider(src)
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<super::query::SessionWindowTable>()
                        .map(|t| (t.def.clone(), t.spec.clone()))
                })
            {
                let (def, spec) = sw;
                return Some(crate::sql::lower::ScanTarget {
                    id: def.id,
                    name: def.name.clone(),
                    append_only: false,
                    watermark: watermark_of(&def),
                    session: Some(spec),
                });
            }
            crate::sql::names::of_reference(t)
                .and_then(|n| engine.relation(&n))
                .map(|r| crate::sql::lower::ScanTarget {
                    id: r.id,
                    name: r.name.clone(),
                    append_only: r.kind == RelationKind::Source,
                    watermark: watermark_of(&r),
                    session: None,
                })
        };
        let circuit = crate::sql::lower::lower(&optimized, &resolve, emit_on_close, &temporal)?;
        let mut reads: Vec<u64> = circuit.sources.iter().map(|s| s.relation).collect();
        for v in plain_view::views_read(engine, &stmt_read) {
            if !reads.contains(&v) {
                reads.push(v);
            }
        }
        plan.apply_with_subqueries(|p| {
            if let LogicalPlan::TableScan(t) = p {
                if let Some(target) = resolve(&t.table_name, &t.source) {
                    if !reads.contains(&target.id) {
                        reads.push(target.id);
                    }
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        let schema = crate::dataflow::relax(&Arc::new(optimized.schema().as_arrow().clone()));
        distinct_column_names(&schema)?;
        Ok((circuit, schema, reads))
    }

    /// Runs a prepared statement with parameter values.
    pub async fn execute(&mut self, p: &Prepared, params: &[ScalarValue]) -> Result<Output> {
        match &p.kind {
            PreparedKind::Query(plan) => {
                self.check_reads(plan, None)?;
                let state = self.statement_state();
                let plan = bind(plan, params)?;
                let explain = crate::sql::explain::postgres_form(&plan);
                let (schema, stream) = self
                    .engine
                    .queries()
                    .run(state, plan, super::exec::deadline())
                    .await?;
                if explain {
                    return Ok(Output::Rows {
                        schema: crate::sql::explain::schema(),
                        stream: crate::sql::explain::reshape(stream),
                    });
                }
                Ok(Output::Rows { schema, stream })
            }
            PreparedKind::Write(plan) => {
                self.check_write(&p.statement, plan)?;
                write::execute(self, plan, params).await
            }
            PreparedKind::CopyOut(plan, format) => {
                self.check_reads(plan, None)?;
                let state = self.statement_state();
                let plan = bind(plan, params)?;
                let (schema, stream) = self
                    .engine
                    .queries()
                    .run(state, plan, super::exec::deadline())
                    .await?;
                Ok(Output::CopyOut {
                    schema,
                    stream,
                    format: format.clone(),
                })
            }
            PreparedKind::Direct => self.execute_direct(&p.statement).await,
        }
    }

    async fn execute_direct(&mut self, stmt: &Statement) -> Result<Output> {
        let creating = self.creation(stmt);
        let out = self.execute_direct_inner(stmt).await?;
        if let Some(c) = creating {
            self.record_creation(c);
        }
        Ok(out)
    }

    /// What a `CREATE` is about to make, if it makes something new (a
    /// block's `ROLLBACK` drops it again).
    fn creation(&self, stmt: &Statement) -> Option<Creation> {
        if !self.in_block() {
            return None;
        }
        let relation = |name: &str, kind: DropKind| {
            self.engine
                .relation(name)
                .is_none()
                .then(|| Creation::Relation(name.to_string(), kind))
        };
        match stmt {
            Statement::CreateRelation(c) => relation(
                &c.name,
                match c.kind {
                    RelationKind::Source => DropKind::Source,
                    RelationKind::Table => DropKind::Table,
                    RelationKind::View => DropKind::MaterializedView,
                    RelationKind::PlainView => DropKind::View,
                },
            ),
            Statement::CreateView(v) if !v.explain => relation(
                &v.name,
                if v.plain {
                    DropKind::View
                } else {
                    DropKind::MaterializedView
                },
            ),
            Statement::CreateSchema(c) => {
                (!self.engine.schema_exists(&c.name)).then(|| Creation::Schema(c.name.clone()))
            }
            Statement::CreateIndex(ci) => {
                let before = self
                    .engine
                    .relation(&ci.relation)?
                    .indexes
                    .iter()
                    .map(|i| i.name.clone())
                    .collect();
                Some(Creation::Indexes(ci.relation.clone(), before))
            }
            _ => None,
        }
    }

    /// Records in the open block what a `CREATE` made.
    fn record_creation(&self, c: Creation) {
        let undo: Vec<crate::txn::Undo> = match c {
            Creation::Relation(name, kind) => {
                if self.engine.relation(&name).is_none() {
                    return;
                }
                vec![crate::txn::Undo::Drop(crate::sql::parser::DropStatement {
                    kind,
                    names: vec![name],
                    if_exists: true,
                    cascade: true,
                })]
            }
            Creation::Schema(name) => {
                if !self.engine.schema_exists(&name) {
                    return;
                }
                vec![crate::txn::Undo::DropSchema(name)]
            }
            Creation::Indexes(relation, before) => match self.engine.relation(&relation) {
                Some(r) => r
                    .indexes
                    .iter()
                    .filter(|i| !before.contains(&i.name))
                    .map(|i| crate::txn::Undo::DropIndex(i.name.clone()))
                    .collect(),
                None => return,
            },
        };
        if let Some(t) = self.tx.lock().as_mut() {
            for u in undo {
                t.created(u);
            }
        }
    }

    /// Ends an open block as `ROLLBACK` does (also when the client has
    /// gone): its writes are discarded and what it created is dropped.
    pub async fn end(&mut self) {
        let undo = self
            .tx
            .lock()
            .take()
            .map(|mut t| t.take_undo())
            .unwrap_or_default();
        self.undo(undo).await;
    }

    /// Drops what a block created (its `ROLLBACK`), last first. A failure
    /// (someone dropped it already) is logged and the rest goes on.
    async fn undo(&self, undo: Vec<crate::txn::Undo>) {
        for u in undo {
            let r = match &u {
                crate::txn::Undo::Drop(d) => self.engine.drop_relations(d, &self.role).await,
                // (what the block created in the schema was dropped before:
                // undos run newest first)
                crate::txn::Undo::DropSchema(name) => {
                    self.engine
                        .drop_schemas(
                            &crate::schema::DropSchema {
                                names: vec![name.clone()],
                                if_exists: true,
                                cascade: true,
                            },
                            &self.role,
                        )
                        .await
                }
                crate::txn::Undo::DropIndex(name) => {
                    self.engine
                        .drop_indexes(
                            &crate::index::ddl::DropIndex {
                                names: vec![name.clone()],
                                if_exists: true,
                            },
                            &self.role,
                        )
                        .await
                }
            };
            if let Err(e) = r {
                tracing::warn!(undo = ?u, error = %e, "could not undo what a rolled-back block created");
            }
        }
    }

    async fn execute_direct_inner(&mut self, stmt: &Statement) -> Result<Output> {
        match stmt {
            Statement::CreateView(v) if v.plain => self.create_plain_view(v).await,
            Statement::CreateView(v) => {
                let (circuit, schema, depends_on) =
                    self.plan_view_emitting(&v.query, v.emit_on_close).await?;
                if v.explain {
                    let lines: Vec<String> =
                        circuit.explain().lines().map(str::to_string).collect();
                    return rows(text_batch("plan", lines)?);
                }
                self.check_create(&v.name)?;
                self.check_select_on(&depends_on)?;
                let def = crate::catalog::RelationDef {
                    id: 0,
                    name: v.name.clone(),
                    kind: RelationKind::View,
                    columns: vec![],
                    primary_key: vec![],
                    watermark: None,
                    options: if v.emit_on_close {
                        [(EMIT_OPTION.to_string(), EMIT_ON_CLOSE.to_string())].into()
                    } else {
                        Default::default()
                    },
                    sql: v.sql.clone(),
                    query: Some(v.query.to_string()),
                    depends_on,
                    view_schema: Some(schema),
                    plan: None,
                    owner: self.role.clone(),
                    acl: Default::default(),
                    comments: Default::default(),
                    indexes: Vec::new(),
                    source: None,
                };
                self.engine
                    .create_view(def, circuit, v.if_not_exists)
                    .await?;
                self.adopt_new_relations();
                Ok(Output::Command {
                    tag: "CREATE MATERIALIZED VIEW",
                    rows: None,
                })
            }
            Statement::CreateRelation(c) => {
                self.check_create(&c.name)?;
                self.engine.create_relation(c, &self.role).await?;
                self.adopt_new_relations();
                Ok(Output::Command {
                    tag: match c.kind {
                        RelationKind::Source => "CREATE SOURCE",
                        RelationKind::Table => "CREATE TABLE",
                        RelationKind::View => "CREATE MATERIALIZED VIEW",
                        RelationKind::PlainView => "CREATE VIEW",
                    },
                    rows: None,
                })
            }
            Statement::Drop(d) => {
                self.engine.drop_relations(d, &self.role).await?;
                Ok(Output::Command {
                    tag: match d.kind {
                        DropKind::Source => "DROP SOURCE",
                        DropKind::Table => "DROP TABLE",
                        DropKind::MaterializedView => "DROP MATERIALIZED VIEW",
                        DropKind::View => "DROP VIEW",
                    },
                    rows: None,
                })
            }
            Statement::ShowRelations(kind) => {
                let names: Vec<String> = self
                    .engine
                    .relations()
                    .iter()
                    .filter(|r| r.kind == *kind)
                    .map(|r| r.name.clone())
                    .collect();
                rows(text_batch("name", names)?)
            }
            Statement::ShowCreate { kind, name } => {
                let def = self
                    .engine
                    .relation(name)
                    .ok_or_else(|| crate::catalog::CatalogError::NotFound(name.clone()))?;
                // (a materialized view answers SHOW CREATE VIEW too)
                let fits = def.kind == *kind
                    || (*kind == RelationKind::PlainView && def.kind == RelationKind::View);
                if !fits {
                    return Err(EngineError::WrongObjectType(format!(
                        "\"{}\" is not a {}",
                        def.name,
                        kind.as_str()
                    )));
                }
                self.check_select_on(&[def.id])?;
                rows(crate::catalog::show_create::batch(&def)?)
            }
            Statement::ShowVariable(name) => {
                let v = self.params.get(name).map(str::to_string).ok_or_else(|| {
                    EngineError::UndefinedObject(format!(
                        "unrecognized configuration parameter \"{name}\""
                    ))
                })?;
                rows(text_batch(name, vec![v])?)
            }
            Statement::ShowAll => {
                let (names, values): (Vec<String>, Vec<String>) = self
                    .params
                    .all()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .unzip();
                let batch = datafusion::arrow::array::RecordBatch::try_new(
                    show_all_schema(),
                    vec![
                        Arc::new(datafusion::arrow::array::StringArray::from(names)),
                        Arc::new(datafusion::arrow::array::StringArray::from(values)),
                    ],
                )?;
                rows(batch)
            }
            Statement::Set { name, value } if name.eq_ignore_ascii_case("freshet.clock") => {
                self.check_superuser("set freshet.clock")?;
                let text = value.as_deref().unwrap_or_default();
                let t = parse_clock(text).ok_or_else(|| {
                    EngineError::InvalidParameterValue(format!(
                        "invalid value for freshet.clock: \"{text}\" (expected a timestamp)"
                    ))
                })?;
                self.engine.set_clock(t).await?;
                Ok(Output::Command {
                    tag: "SET",
                    rows: None,
                })
            }
            Statement::Set { name, value } => {
                let (name, value) = self.set_parameter(name, value.as_deref())?;
                Ok(Output::Set {
                    name,
                    value,
                    tag: "SET",
                })
            }
            Statement::Reset(name) => match name {
                Some(n) => {
                    let (name, value) = self.set_parameter(n, None)?;
                    Ok(Output::Set {
                        name,
                        value,
                        tag: "RESET",
                    })
                }
                None => {
                    self.params = Params::default();
                    self.bind_role();
                    Ok(Output::Command {
                        tag: "RESET",
                        rows: None,
                    })
                }
            },
            Statement::Begin => {
                let mut tx = self.tx.lock();
                if tx.is_none() {
                    *tx = Some(crate::txn::Transaction::new(chrono::Utc::now()));
                }
                Ok(Output::Begin)
            }
            Statement::Commit => {
                self.cursors.lock().await.retain(|_, c| c.hold);
                let tx = self.tx.lock().take();
                match tx {
                    // a failed block can only roll back
                    Some(mut t) if t.is_failed() => {
                        let undo = t.take_undo();
                        self.undo(undo).await;
                        Ok(Output::Rollback)
                    }
                    Some(t) => {
                        if let Some(op) = t.into_op()? {
                            self.engine.commit(op).await?;
                        }
                        Ok(Output::Commit)
                    }
                    None => Ok(Output::Commit),
                }
            }
            Statement::Rollback => {
                self.end().await;
                self.cursors.lock().await.retain(|_, c| c.hold);
                Ok(Output::Rollback)
            }
            Statement::PrepareAs { name, body } => {
                if self.named.contains_key(name) {
                    return Err(EngineError::DuplicateObject(format!(
                        "prepared statement \"{name}\" already exists"
                    )));
                }
                let prepared = Box::pin(self.prepare((**body).clone())).await?;
                self.named.insert(name.clone(), Arc::new(prepared));
                Ok(Output::Command {
                    tag: "PREPARE",
                    rows: None,
                })
            }
            Statement::ExecutePrepared { name, args } => {
                let prepared = self.named.get(name).cloned().ok_or_else(|| {
                    EngineError::UndefinedPreparedStatement(format!(
                        "prepared statement \"{name}\" does not exist"
                    ))
                })?;
                let mut params = match args {
                    Some(a) => self.evaluate_row(a).await?,
                    None => vec![],
                };
                if params.len() != prepared.param_types.len() {
                    return Err(EngineError::SyntaxError(format!(
                        "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                        prepared.param_types.len(),
                        params.len()
                    )));
                }
                for (v, t) in params.iter_mut().zip(&prepared.param_types) {
                    if let Some(t) = t {
                        *v = v.cast_to(t)?;
                    }
                }
                Box::pin(self.execute(&prepared, &params)).await
            }
            Statement::Deallocate(name) => {
                match name {
                    None => self.named.clear(),
                    Some(n) => {
                        if self.named.remove(n).is_none() {
                            return Err(EngineError::UndefinedPreparedStatement(format!(
                                "prepared statement \"{n}\" does not exist"
                            )));
                        }
                    }
                }
                Ok(Output::Command {
                    tag: "DEALLOCATE",
                    rows: None,
                })
            }
            Statement::Declare { name, hold, query } => {
                if !*hold && !self.in_block() {
                    return Err(crate::txn::TxnError::NoBlock("DECLARE CURSOR").into());
                }
                if self.cursors.lock().await.contains_key(name) {
                    return Err(EngineError::DuplicateObject(format!(
                        "cursor \"{name}\" already exists"
                    )));
                }
                let prepared = Box::pin(self.prepare((**query).clone())).await?;
                let Output::Rows { schema, stream } =
                    Box::pin(self.execute(&prepared, &[])).await?
                else {
                    return Err(EngineError::Internal(
                        "a cursor's query returned no rows".into(),
                    ));
                };
                let statement = format!(
                    "DECLARE {name} CURSOR {}FOR {}",
                    if *hold { "WITH HOLD " } else { "" },
                    match &**query {
                        Statement::Sql(q) => q.to_string(),
                        _ => "…".to_string(),
                    }
                );
                self.cursors.lock().await.insert(
                    name.clone(),
                    Cursor {
                        schema,
                        stream,
                        pending: Default::default(),
                        hold: *hold,
                        statement,
                        created_us: chrono::Utc::now().timestamp_micros(),
                    },
                );
                Ok(Output::Command {
                    tag: "DECLARE CURSOR",
                    rows: None,
                })
            }
            Statement::Fetch { name, count, skip } => {
                let mut cursors = self.cursors.lock().await;
                let cursor = cursors.get_mut(name).ok_or_else(|| {
                    EngineError::UndefinedCursor(format!("cursor \"{name}\" does not exist"))
                })?;
                let batches = cursor.take(*count).await?;
                if *skip {
                    let n = batches.iter().map(|b| b.num_rows()).sum();
                    return Ok(Output::Command {
                        tag: "MOVE",
                        rows: Some(n),
                    });
                }
                let schema = cursor.schema.clone();
                let stream: SendableRecordBatchStream = Box::pin(
                    datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                        schema.clone(),
                        futures::stream::iter(batches.into_iter().map(Ok)),
                    ),
                );
                Ok(Output::Fetched { schema, stream })
            }
            Statement::Close(name) => {
                let mut cursors = self.cursors.lock().await;
                match name {
                    None => cursors.clear(),
                    Some(n) => {
                        if cursors.remove(n).is_none() {
                            return Err(EngineError::UndefinedCursor(format!(
                                "cursor \"{n}\" does not exist"
                            )));
                        }
                    }
                }
                Ok(Output::Command {
                    tag: "CLOSE CURSOR",
                    rows: None,
                })
            }
            Statement::Truncate(names) => {
                self.truncate(names).await?;
                Ok(Output::Command {
                    tag: "TRUNCATE TABLE",
                    rows: None,
                })
            }
            Statement::Savepoint(name) => {
                self.with_block("SAVEPOINT", |t| t.savepoint(name))?;
                Ok(Output::Command {
                    tag: "SAVEPOINT",
                    rows: None,
                })
            }
            Statement::Release(name) => {
                self.with_block("RELEASE SAVEPOINT", |t| t.release(name))?;
                Ok(Output::Command {
                    tag: "RELEASE",
                    rows: None,
                })
            }
            Statement::RollbackTo(name) => {
                let mut undo = Vec::new();
                self.with_block("ROLLBACK TO SAVEPOINT", |t| {
                    undo = t.rollback_to(name)?;
                    Ok(())
                })?;
                self.undo(undo).await;
                Ok(Output::Command {
                    tag: "ROLLBACK",
                    rows: None,
                })
            }
            Statement::Flush => Ok(Output::Command {
                tag: "FLUSH",
                rows: None,
            }),
            Statement::Checkpoint => {
                self.check_superuser("do CHECKPOINT")?;
                self.engine.checkpoint().await?;
                Ok(Output::Command {
                    tag: "CHECKPOINT",
                    rows: None,
                })
            }
            Statement::RecomputeView { name, tag } => {
                self.engine.recompute_view(name, &self.role).await?;
                Ok(Output::Command { tag, rows: None })
            }
            Statement::Maintenance { tag, tables } => {
                if *tag == "VACUUM" && self.in_block() {
                    return Err(crate::txn::TxnError::InBlock("VACUUM").into());
                }
                for t in tables {
                    if self.engine.relation(t).is_none() {
                        return Err(crate::catalog::CatalogError::NotFound(t.clone()).into());
                    }
                }
                Ok(Output::Command { tag, rows: None })
            }
            Statement::CreateIndex(ci) => {
                let engine = self.engine.clone();
                engine.create_index(ci, &self.role).await?;
                Ok(Output::Command {
                    tag: "CREATE INDEX",
                    rows: None,
                })
            }
            Statement::PauseSource { kind, name, paused } => {
                crate::connectors::set_paused(&self.engine, *kind, name, *paused, &self.role)
                    .await?;
                Ok(Output::Command {
                    tag: match kind {
                        RelationKind::Table => "ALTER TABLE",
                        _ => "ALTER SOURCE",
                    },
                    rows: None,
                })
            }
            Statement::Rename(r) => {
                self.engine.rename_relation(r, &self.role).await?;
                Ok(Output::Command {
                    tag: match r.kind {
                        RelationKind::Source => "ALTER SOURCE",
                        RelationKind::Table => "ALTER TABLE",
                        RelationKind::View => "ALTER MATERIALIZED VIEW",
                        RelationKind::PlainView => "ALTER VIEW",
                    },
                    rows: None,
                })
            }
            Statement::CreateDatabase(c) => {
                if self.in_block() {
                    return Err(crate::txn::TxnError::InBlock("CREATE DATABASE").into());
                }
                self.engine.create_database(c, &self.role).await?;
                Ok(Output::Command {
                    tag: "CREATE DATABASE",
                    rows: None,
                })
            }
            Statement::DropDatabase(d) => {
                if self.in_block() {
                    return Err(crate::txn::TxnError::InBlock("DROP DATABASE").into());
                }
                self.engine.drop_database(d, &self.role).await?;
                Ok(Output::Command {
                    tag: "DROP DATABASE",
                    rows: None,
                })
            }
            Statement::AlterDatabase(a) => {
                self.engine.alter_database(a, &self.role).await?;
                Ok(Output::Command {
                    tag: "ALTER DATABASE",
                    rows: None,
                })
            }
            Statement::CreateSchema(c) => {
                self.engine.create_schema(c, &self.role).await?;
                Ok(Output::Command {
                    tag: "CREATE SCHEMA",
                    rows: None,
                })
            }
            Statement::DropSchema(d) => {
                self.engine.drop_schemas(d, &self.role).await?;
                Ok(Output::Command {
                    tag: "DROP SCHEMA",
                    rows: None,
                })
            }
            Statement::DropIndex(di) => {
                let engine = self.engine.clone();
                engine.drop_indexes(di, &self.role).await?;
                Ok(Output::Command {
                    tag: "DROP INDEX",
                    rows: None,
                })
            }
            Statement::AlterTable(a) => {
                // (the new shape is a new relation: the block's rows for the
                // old one could not follow it)
                if let Some(rel) = self.engine.relation(&a.name) {
                    if self.tx.lock().as_ref().is_some_and(|t| t.wrote(rel.id)) {
                        return Err(EngineError::Unsupported(format!(
                            "ALTER TABLE {} after writing to it in the same transaction block; commit the writes first",
                            rel.name
                        )));
                    }
                }
                let engine = self.engine.clone();
                engine.alter_table(a, &self.role).await?;
                self.adopt_new_relations();
                Ok(Output::Command {
                    tag: "ALTER TABLE",
                    rows: None,
                })
            }
            Statement::Comment(on) => {
                let engine = self.engine.clone();
                engine.comment(on, &self.role).await?;
                Ok(Output::Command {
                    tag: "COMMENT",
                    rows: None,
                })
            }
            Statement::Discard(tag) => {
                if tag == "DISCARD" {
                    self.named.clear();
                    self.cursors.lock().await.clear();
                }
                Ok(Output::Command {
                    tag: match tag.as_str() {
                        "SET" => "SET",
                        _ => "DISCARD ALL",
                    },
                    rows: None,
                })
            }
            Statement::Access(a) => {
                let tag = a.tag();
                let mut a = a.clone();
                a.resolve_current_user(&self.role);
                self.engine.run_access(&self.role, &a).await?;
                // the current role's own attributes may have changed
                self.bind_role();
                Ok(Output::Command { tag, rows: None })
            }
            Statement::SetRole { role, reset } => {
                let target = match role.as_deref() {
                    None => self.session_user.clone(),
                    Some(crate::sql::access::CURRENT_USER) => self.role.clone(),
                    Some(t) => t.to_string(),
                };
                let access = self.engine.access();
                if access.roles.get(&target).is_none() {
                    return Err(crate::auth::AuthError::UndefinedRole(target).into());
                }
                // without role membership, only a superuser session may
                // act as another role
                if target != self.session_user && !access.roles.is_superuser(&self.session_user) {
                    return Err(crate::auth::AuthError::PermissionDenied(format!(
                        "permission denied to set role \"{target}\""
                    ))
                    .into());
                }
                self.role = target;
                self.bind_role();
                Ok(Output::Command {
                    tag: if *reset { "RESET" } else { "SET" },
                    rows: None,
                })
            }
            Statement::Sql(_) | Statement::InsertLiterals(_) => Err(EngineError::Internal(
                "planned statement executed directly".into(),
            )),
        }
    }
}

fn rows(batch: datafusion::arrow::array::RecordBatch) -> Result<Output> {
    let schema = batch.schema();
    let stream: SendableRecordBatchStream = Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema.clone(),
            futures::stream::iter(vec![Ok(batch)]),
        ),
    );
    Ok(Output::Rows { schema, stream })
}

fn show_all_schema() -> SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("setting", DataType::Utf8, false),
    ]))
}

/// `$1..$n` types in order.
pub(crate) fn param_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types()?;
    let mut out: Vec<(usize, Option<DataType>)> = Vec::with_capacity(types.len());
    for (id, t) in types {
        let n: usize = id
            .trim_start_matches('$')
            .parse()
            .map_err(|_| EngineError::SyntaxError(format!("invalid parameter {id}")))?;
        out.push((n, t));
    }
    out.sort_by_key(|(n, _)| *n);
    let max = out.last().map(|(n, _)| *n).unwrap_or(0);
    let mut v = vec![None; max];
    for (n, t) in out {
        if n >= 1 {
            v[n - 1] = t;
        }
    }
    Ok(v)
}

/// Substitutes parameter values into a plan.
pub(crate) fn bind(plan: &LogicalPlan, params: &[ScalarValue]) -> Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan.clone());
    }
    let values = ParamValues::List(params.iter().cloned().map(Into::into).collect());
    Ok(plan.clone().replace_params_with_values(&values)?)
}

/// A `SET freshet.clock` value: a timestamp (UTC), in microseconds.
fn parse_clock(text: &str) -> Option<i64> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text.trim(), f).ok())
    .map(|t| t.and_utc().timestamp_micros())
}

/// A relation's `WATERMARK FOR` column and delay, for lowering.
fn watermark_of(def: &crate::catalog::RelationDef) -> Option<(String, i64)> {
    def.watermark.as_ref().and_then(|w| {
        crate::sql::ddl::watermark_delay(&w.column, &w.expr)
            .ok()
            .map(|d| (w.column.clone(), d))
    })
}

/// A view is a relation: its columns need distinct names (as in Postgres).
fn distinct_column_names(schema: &SchemaRef) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    if let Some(f) = schema.fields().iter().find(|f| {
        let name = crate::sql::rewrite::display_name(f.name());
        name.len() != f.name().len() || !seen.insert(name)
    }) {
        return Err(crate::sql::SqlError::DuplicateColumn(format!(
            "column \"{}\" specified more than once; give the view's columns distinct names",
            crate::sql::rewrite::display_name(f.name())
        ))
        .into());
    }
    Ok(())
}

/// Something a `CREATE` in a transaction block is about to make.
enum Creation {
    Relation(String, DropKind),
    /// The relation and the names of its indexes before.
    Indexes(String, std::collections::HashSet<String>),
    Schema(String),
}
