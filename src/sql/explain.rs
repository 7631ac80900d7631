//! `EXPLAIN` and `EXPLAIN ANALYZE` in PostgreSQL's shape: one text column
//! named `QUERY PLAN`, one row per line of the (physical) plan, as psql,
//! pgAdmin and DBeaver expect. `EXPLAIN VERBOSE` keeps DataFusion's form:
//! every intermediate plan, by type.

use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

/// The plan types whose text is the answer.
const SHOWN: [&str; 2] = ["physical_plan", "Plan with Metrics"];

/// Whether the plan is an `EXPLAIN` answered in PostgreSQL's shape.
pub fn postgres_form(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Explain(e) => !e.verbose,
        LogicalPlan::Analyze(a) => !a.verbose,
        _ => false,
    }
}

/// `QUERY PLAN text`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "QUERY PLAN",
        DataType::Utf8,
        false,
    )]))
}

/// The lines of the plans DataFusion's explain output holds.
fn lines(batches: &[RecordBatch]) -> Result<RecordBatch, DataFusionError> {
    let mut out: Vec<String> = Vec::new();
    for b in batches {
        let text = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        };
        let (Some(kinds), Some(plans)) = (text("plan_type"), text("plan")) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if kinds.is_null(i) || !SHOWN.contains(&kinds.value(i)) || plans.is_null(i) {
                continue;
            }
            out.extend(
                plans
                    .value(i)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string),
            );
        }
    }
    Ok(RecordBatch::try_new(
        schema(),
        vec![Arc::new(StringArray::from(out))],
    )?)
}

/// The explain output, reshaped.
pub fn reshape(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let once = futures::stream::once(async move {
        let batches: Vec<RecordBatch> = stream.try_collect().await?;
        lines(&batches)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema(), once))
}
