//! Catalog tables whose rows belong to the session that reads them:
//! `pg_cursors` (psycopg 3 asks it whether a server-side cursor is still
//! open before closing it). The session puts its open cursors in each
//! statement's configuration ([`OpenCursors`]); the table reads them there.

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
pub const TABLES: [&str; 1] = ["pg_cursors"];

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

/// `pg_cursors`.
pub struct PgCursors;

impl fmt::Debug for PgCursors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgCursors")
    }
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

#[async_trait]
impl TableProvider for PgCursors {
    fn schema(&self) -> SchemaRef {
        cursors_schema()
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
        let batch = RecordBatch::try_new(
            cursors_schema(),
            vec![
                texts(&|r| r.name.clone()),
                texts(&|r| r.statement.clone()),
                bools(&|r| r.holdable),
                bools(&|_| false),
                bools(&|_| false),
                Arc::new(created),
            ],
        )?;
        MemTable::try_new(cursors_schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}
