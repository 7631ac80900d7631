//! `freshet_catalog.source_status` (one row per connector) and
//! `freshet_catalog.source_errors` (the messages sources passed over).

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::engine::Engine;

pub const SOURCE_STATUS: &str = "source_status";
pub const SOURCE_ERRORS: &str = "source_errors";

/// The table named `name`, if it is one of these.
pub fn table(name: &str, engine: &Weak<Engine>) -> Option<Arc<dyn TableProvider>> {
    let errors = match name {
        SOURCE_STATUS => false,
        SOURCE_ERRORS => true,
        _ => return None,
    };
    Some(Arc::new(ConnectorTable {
        engine: engine.clone(),
        errors,
    }))
}

struct ConnectorTable {
    engine: Weak<Engine>,
    errors: bool,
}

impl fmt::Debug for ConnectorTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectorTable")
    }
}

fn tstz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

impl ConnectorTable {
    fn table_schema(&self) -> SchemaRef {
        if self.errors {
            Arc::new(Schema::new(vec![
                Field::new("source", DataType::Utf8, false),
                Field::new("seq", DataType::Int64, false),
                Field::new("position", DataType::Utf8, true),
                Field::new("error", DataType::Utf8, false),
                Field::new("payload", DataType::Binary, true),
                Field::new("at", tstz(), false),
            ]))
        } else {
            Arc::new(Schema::new(vec![
                Field::new("source", DataType::Utf8, false),
                Field::new("connector", DataType::Utf8, false),
                Field::new("state", DataType::Utf8, false),
                Field::new("position", DataType::Utf8, true),
                Field::new("lag", DataType::Int64, true),
                Field::new("rows", DataType::Int64, false),
                Field::new("messages", DataType::Int64, false),
                Field::new("bytes", DataType::Int64, false),
                Field::new("commits", DataType::Int64, false),
                Field::new("errors", DataType::Int64, false),
                Field::new("last_error", DataType::Utf8, true),
                Field::new("last_commit", tstz(), true),
            ]))
        }
    }
}

#[async_trait]
impl TableProvider for ConnectorTable {
    fn schema(&self) -> SchemaRef {
        self.table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use std::sync::atomic::Ordering::Relaxed;
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the engine is shutting down".into()))?;
        let statuses = engine.connectors().statuses();
        let name = |rel: u64| {
            engine
                .relation_by_id(rel)
                .map(|d| d.name.clone())
                .unwrap_or_else(|| format!("#{rel}"))
        };
        let columns: Vec<ArrayRef> = if self.errors {
            let (mut src, mut seq, mut pos, mut err, mut payload, mut at) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            for s in &statuses {
                let n = name(s.rel);
                for k in s.skipped() {
                    src.push(n.clone());
                    seq.push(k.seq as i64);
                    pos.push(Some(k.position));
                    err.push(k.error);
                    payload.push(k.payload);
                    at.push(k.at);
                }
            }
            vec![
                Arc::new(StringArray::from(src)),
                Arc::new(Int64Array::from(seq)),
                Arc::new(StringArray::from(pos)),
                Arc::new(StringArray::from(err)),
                Arc::new(BinaryArray::from_iter(payload)),
                Arc::new(TimestampMicrosecondArray::from(at).with_timezone("+00:00")),
            ]
        } else {
            let mut src = vec![];
            let mut connector = vec![];
            let mut state = vec![];
            let mut position = vec![];
            let mut lag = vec![];
            let (mut rows, mut messages, mut bytes, mut commits, mut errors) =
                (vec![], vec![], vec![], vec![], vec![]);
            let mut last_error = vec![];
            let mut last_commit = vec![];
            for s in &statuses {
                src.push(name(s.rel));
                connector.push(s.connector.clone());
                state.push(s.state().as_str());
                position.push(s.position());
                lag.push(s.lag());
                rows.push(s.rows.load(Relaxed) as i64);
                messages.push(s.messages.load(Relaxed) as i64);
                bytes.push(s.bytes.load(Relaxed) as i64);
                commits.push(s.commits.load(Relaxed) as i64);
                errors.push(s.errors.load(Relaxed) as i64);
                last_error.push(s.last_error());
                last_commit.push(s.last_commit());
            }
            vec![
                Arc::new(StringArray::from(src)),
                Arc::new(StringArray::from(connector)),
                Arc::new(StringArray::from(state)),
                Arc::new(StringArray::from(position)),
                Arc::new(Int64Array::from(lag)),
                Arc::new(Int64Array::from(rows)),
                Arc::new(Int64Array::from(messages)),
                Arc::new(Int64Array::from(bytes)),
                Arc::new(Int64Array::from(commits)),
                Arc::new(Int64Array::from(errors)),
                Arc::new(StringArray::from(last_error)),
                Arc::new(TimestampMicrosecondArray::from(last_commit).with_timezone("+00:00")),
            ]
        };
        let schema = self.table_schema();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}
