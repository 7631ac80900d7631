//! Catalog tables whose rows come from sessions: `pg_cursors`, the open
//! cursors of the session that reads it (psycopg 3 asks it whether a
//! server-side cursor is still open before closing it; the session puts
//! them in each statement's configuration, [`OpenCursors`]), and
//! `pg_stat_activity`, one row per connection of the server with what it
//! runs ([`Activity`], shared by the server, which keeps it up to date, and
//! every session, through the session template's configuration), and
//! `pg_settings` (also `pg_show_all_settings()`), the reading session's
//! parameters as `SHOW ALL` gives them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// The tables this module serves.
pub const TABLES: [&str; 3] = ["pg_cursors", "pg_stat_activity", "pg_settings"];

/// One connection as `pg_stat_activity` shows it.
#[derive(Debug, Clone, Default)]
pub struct Backend {
    pub pid: i32,
    pub database: String,
    pub datid: u32,
    pub user: String,
    pub application_name: String,
    pub client_addr: String,
    pub client_port: i32,
    /// Microseconds since the epoch.
    pub backend_start: i64,
    pub xact_start: Option<i64>,
    pub query_start: Option<i64>,
    pub state_change: Option<i64>,
    /// `active`, `idle`, `idle in transaction`, `idle in transaction
    /// (aborted)`.
    pub state: String,
    /// The running statement, or the last one.
    pub query: String,
}

/// The server's connections, by an id of the server's choosing.
#[derive(Debug, Default)]
pub struct Activity(parking_lot::Mutex<std::collections::BTreeMap<u64, Backend>>);

impl Activity {
    /// Adds or changes a connection's row.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Backend)) {
        f(self.0.lock().entry(id).or_default())
    }

    pub fn remove(&self, id: u64) {
        self.0.lock().remove(&id);
    }

    fn rows(&self) -> Vec<Backend> {
        self.0.lock().values().cloned().collect()
    }
}

/// Now, in microseconds since the epoch.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// One open cursor of a session.
#[derive(Debug, Clone)]
pub struct CursorRow {
    pub name: String,
    /// The `DECLARE` statement that opened it.
    pub statement: String,
    pub holdable: bool,
    /// When it was declared, in microseconds since the epoch.
    pub created_us: i64,
}

/// The open cursors of the statement's session.
#[derive(Debug, Default)]
pub struct OpenCursors(pub Vec<CursorRow>);

/// The table `name` serves (one of [`TABLES`]).
pub fn table(name: &str) -> Option<Arc<dyn TableProvider>> {
    let (schema, batch): (fn() -> SchemaRef, Builder) = match name {
        "pg_cursors" => (cursors_schema, cursors_batch),
        "pg_stat_activity" => (activity_schema, activity_batch),
        "pg_settings" => (settings_schema, settings_batch),
        _ => return None,
    };
    Some(Arc::new(SessionTable {
        name: name.to_string(),
        schema,
        batch,
    }))
}

/// Builds a table's one batch from the reading statement's session.
type Builder = fn(&dyn Session) -> DfResult<RecordBatch>;

/// A catalog table whose rows are built when a statement reads it.
struct SessionTable {
    name: String,
    schema: fn() -> SchemaRef,
    batch: Builder,
}

impl fmt::Debug for SessionTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionTable({})", self.name)
    }
}

#[async_trait]
impl TableProvider for SessionTable {
    fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = (self.batch)(state)?;
        MemTable::try_new(batch.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
}

fn activity_schema() -> SchemaRef {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Arc::new(Schema::new(vec![
        f("datid", DataType::Int32),
        f("datname", DataType::Utf8),
        f("pid", DataType::Int32),
        f("leader_pid", DataType::Int32),
        f("usesysid", DataType::Int32),
        f("usename", DataType::Utf8),
        f("application_name", DataType::Utf8),
        f("client_addr", DataType::Utf8),
        f("client_hostname", DataType::Utf8),
        f("client_port", DataType::Int32),
        f("backend_start", timestamptz()),
        f("xact_start", timestamptz()),
        f("query_start", timestamptz()),
        f("state_change", timestamptz()),
        f("wait_event_type", DataType::Utf8),
        f("wait_event", DataType::Utf8),
        f("state", DataType::Utf8),
        f("backend_xid", DataType::Utf8),
        f("backend_xmin", DataType::Utf8),
        f("query_id", DataType::Int64),
        f("query", DataType::Utf8),
        f("backend_type", DataType::Utf8),
    ]))
}

/// The rows of `pg_stat_activity`.
fn activity_batch(state: &dyn Session) -> DfResult<RecordBatch> {
    use datafusion::arrow::array::{Int32Array, Int64Array};
    let rows = state
        .config()
        .get_extension::<Activity>()
        .map(|a| a.rows())
        .unwrap_or_default();
    let n = rows.len();
    let text = |f: &dyn Fn(&Backend) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let int = |f: &dyn Fn(&Backend) -> Option<i32>| -> ArrayRef {
        Arc::new(Int32Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let time = |f: &dyn Fn(&Backend) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(rows.iter().map(f).collect::<Vec<_>>())
                .with_timezone("+00:00"),
        )
    };
    let nothing = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; n])) };
    Ok(RecordBatch::try_new(
        activity_schema(),
        vec![
            int(&|b| Some(b.datid as i32)),
            text(&|b| Some(b.database.clone())),
            int(&|b| Some(b.pid)),
            int(&|_| None),
            int(&|_| None),
            text(&|b| Some(b.user.clone())),
            text(&|b| Some(b.application_name.clone())),
            text(&|b| Some(b.client_addr.clone())),
            nothing(),
            int(&|b| Some(b.client_port)),
            time(&|b| Some(b.backend_start)),
            time(&|b| b.xact_start),
            time(&|b| b.query_start),
            time(&|b| b.state_change),
            nothing(),
            nothing(),
            text(&|b| Some(b.state.clone())),
            nothing(),
            nothing(),
            Arc::new(Int64Array::from(vec![None::<i64>; n])),
            text(&|b| Some(b.query.clone())),
            text(&|_| Some("client backend".into())),
        ],
    )?)
}

fn cursors_schema() -> SchemaRef {
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    Arc::new(Schema::new(vec![
        f("name", DataType::Utf8),
        f("statement", DataType::Utf8),
        f("is_holdable", DataType::Boolean),
        f("is_binary", DataType::Boolean),
        f("is_scrollable", DataType::Boolean),
        f(
            "creation_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00"))),
        ),
    ]))
}

/// The rows of `pg_cursors`.
fn cursors_batch(state: &dyn Session) -> DfResult<RecordBatch> {
    let open = state
        .config()
        .get_extension::<OpenCursors>()
        .unwrap_or_default();
    let rows = &open.0;
    let texts = |f: &dyn Fn(&CursorRow) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
        ))
    };
    let bools = |f: &dyn Fn(&CursorRow) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| Some(f(r))).collect::<Vec<_>>(),
        ))
    };
    let created = TimestampMicrosecondArray::from(
        rows.iter().map(|r| Some(r.created_us)).collect::<Vec<_>>(),
    )
    .with_timezone("+00:00");
    Ok(RecordBatch::try_new(
        cursors_schema(),
        vec![
            texts(&|r| r.name.clone()),
            texts(&|r| r.statement.clone()),
            bools(&|r| r.holdable),
            bools(&|_| false),
            bools(&|_| false),
            Arc::new(created),
        ],
    )?)
}

fn settings_schema() -> SchemaRef {
    let t = |n: &str| Field::new(n, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        t("setting"),
        t("unit"),
        t("category"),
        t("short_desc"),
        t("extra_desc"),
        t("context"),
        t("vartype"),
        t("source"),
        t("min_val"),
        t("max_val"),
        Field::new(
            "enumvals",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        t("boot_val"),
        t("reset_val"),
        t("sourcefile"),
        Field::new("sourceline", DataType::Int32, true),
        Field::new("pending_restart", DataType::Boolean, false),
    ]))
}

/// A parameter's type as `pg_settings.vartype` names it.
fn vartype(value: &str) -> &'static str {
    if matches!(value, "on" | "off") {
        "bool"
    } else if value.parse::<i64>().is_ok() {
        "integer"
    } else {
        "string"
    }
}

/// The rows of `pg_settings`: the reading session's parameters.
fn settings_batch(state: &dyn Session) -> DfResult<RecordBatch> {
    use datafusion::arrow::array::{Int32Array, ListArray};
    let params = state
        .config()
        .options()
        .extensions
        .get::<super::pg_functions::SessionSettings>()
        .cloned()
        .unwrap_or_default();
    let rows: Vec<(String, String)> = params
        .0
        .all()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let n = rows.len();
    let text = |f: &dyn Fn(&(String, String)) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let nothing = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; n])) };
    let enumvals = ListArray::new_null(Arc::new(Field::new("item", DataType::Utf8, true)), n);
    Ok(RecordBatch::try_new(
        settings_schema(),
        vec![
            text(&|(k, _)| Some(k.clone())),
            text(&|(_, v)| Some(v.clone())),
            nothing(),
            text(&|_| Some("Client Connection Defaults".into())),
            nothing(),
            nothing(),
            text(&|_| Some("user".into())),
            text(&|(_, v)| Some(vartype(v).into())),
            text(&|_| Some("session".into())),
            nothing(),
            nothing(),
            Arc::new(enumvals),
            text(&|(_, v)| Some(v.clone())),
            text(&|(_, v)| Some(v.clone())),
            nothing(),
            Arc::new(Int32Array::from(vec![None::<i32>; n])),
            Arc::new(BooleanArray::from(vec![false; n])),
        ],
    )?)
}

/// `pg_show_all_settings()`: the rows of `pg_settings` (pgAdmin reads it
/// when it connects).
#[derive(Debug)]
pub struct ShowAllSettings;

impl datafusion::catalog::TableFunctionImpl for ShowAllSettings {
    fn call(&self, _args: &[Expr]) -> DfResult<Arc<dyn TableProvider>> {
        table("pg_settings").ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("pg_settings is not served".into())
        })
    }
}
