//! `pg_attribute` with our columns' declared types: the generic catalog
//! types a column by its Arrow type alone, so a `varchar(10)` or `jsonb`
//! column (Utf8) read as `text` and a `numeric(10,2)` lost its typmod
//! (psql's `\d`, `format_type(atttypid, atttypmod)`, pgcli, JDBC's
//! `getColumns`). Patched when scanned: a relation's rows are found by the
//! OID the generic `pg_class` gives it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Int16Array, Int32Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::{RelationDef, RelationKind};
use crate::engine::Engine;
use crate::types::{SqlType, DEFAULT_NUMERIC};

/// A column's type OID and typmod as PostgreSQL records them, where they
/// differ from what its Arrow type alone says.
fn declared(def: &RelationDef, column: usize) -> Option<(i32, i32)> {
    let numeric = |p: u8, s: i8| {
        if (p, s) == DEFAULT_NUMERIC {
            // (an unconstrained NUMERIC)
            (1700, -1)
        } else {
            (1700, ((i32::from(p) << 16) | i32::from(s as u8)) + 4)
        }
    };
    if def.kind == RelationKind::Table || def.kind == RelationKind::Source {
        let c = def.columns.get(column)?;
        return match &c.ty {
            SqlType::Varchar { max_len: Some(n) } => Some((1043, *n as i32 + 4)),
            SqlType::Varchar { max_len: None } => Some((1043, -1)),
            SqlType::Jsonb => Some((3802, -1)),
            SqlType::Numeric { precision, scale } => Some(numeric(*precision, *scale)),
            _ => None,
        };
    }
    let schema = def.schema();
    let f: &Field = schema.fields().get(column)?;
    match f.data_type() {
        DataType::Decimal128(p, s) => Some(numeric(*p, *s)),
        DataType::Utf8 => match crate::types::pg_type_of(f)?.oid() {
            25 => None,
            oid => Some((oid as i32, -1)),
        },
        _ => None,
    }
}

/// `batch` (a `pg_attribute` batch) with our columns' declared types.
fn with_declared_types(
    batch: RecordBatch,
    rels: &HashMap<i32, Arc<RelationDef>>,
) -> DfResult<RecordBatch> {
    let schema = batch.schema();
    let idx = |n: &str| schema.index_of(n).ok();
    let (Some(rel_i), Some(num_i), Some(typ_i), Some(mod_i)) = (
        idx("attrelid"),
        idx("attnum"),
        idx("atttypid"),
        idx("atttypmod"),
    ) else {
        return Ok(batch);
    };
    let relids = batch.column(rel_i).as_any().downcast_ref::<Int32Array>();
    let nums = batch.column(num_i).as_any().downcast_ref::<Int16Array>();
    let types = batch.column(typ_i).as_any().downcast_ref::<Int32Array>();
    let mods = batch.column(mod_i).as_any().downcast_ref::<Int32Array>();
    let (Some(relids), Some(nums), Some(types), Some(mods)) = (relids, nums, types, mods) else {
        return Ok(batch);
    };
    let mut new_types: Vec<Option<i32>> = types.iter().collect();
    let mut new_mods: Vec<Option<i32>> = mods.iter().collect();
    let mut changed = false;
    for i in 0..batch.num_rows() {
        if relids.is_null(i) || nums.is_null(i) || nums.value(i) < 1 {
            continue;
        }
        let Some(rel) = rels.get(&relids.value(i)) else {
            continue;
        };
        if let Some((t, m)) = declared(rel, nums.value(i) as usize - 1) {
            new_types[i] = Some(t);
            new_mods[i] = Some(m);
            changed = true;
        }
    }
    if !changed {
        return Ok(batch);
    }
    let mut cols = batch.columns().to_vec();
    cols[typ_i] = Arc::new(Int32Array::from(new_types));
    cols[mod_i] = Arc::new(Int32Array::from(new_mods));
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// The patched `pg_attribute`.
pub struct TypedPgAttribute {
    pub inner: Arc<dyn TableProvider>,
    /// The generic `pg_catalog` (for `pg_class`'s OIDs).
    pub generic: Arc<dyn SchemaProvider>,
    pub engine: Weak<Engine>,
}

impl fmt::Debug for TypedPgAttribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TypedPgAttribute")
    }
}

#[async_trait]
impl TableProvider for TypedPgAttribute {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, None, &[], None).await?;
        let mut batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        if let Some(engine) = self.engine.upgrade() {
            let classes = super::pg_keys::generic_pg_class(&self.generic, state).await?;
            let spaces = super::pg_keys::generic_namespaces(&self.generic, state).await?;
            let rels: HashMap<i32, Arc<RelationDef>> =
                super::pg_keys::our_relations(&classes, &spaces, &engine)
                    .into_iter()
                    .map(|(r, oid, _)| (oid, r))
                    .collect();
            batches = batches
                .into_iter()
                .map(|b| with_declared_types(b, &rels))
                .collect::<DfResult<_>>()?;
        }
        MemTable::try_new(self.inner.schema(), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}
