//! `pg_namespace` as clients read it: the generic table with each
//! schema's owner in `nspowner` and its grants in `nspacl` (a text array of
//! PostgreSQL's `grantee=UC/owner` items, NULL while only the owner has
//! any), so psql's `\dn+` shows them.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, ListBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::auth::Privilege;
use crate::engine::Engine;

pub struct PgNamespace {
    pub inner: Arc<dyn TableProvider>,
    pub engine: Weak<Engine>,
}

impl fmt::Debug for PgNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgNamespace")
    }
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

/// The generic schema with `nspacl` as a text array.
fn schema_of(inner: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = inner
        .fields()
        .iter()
        .map(|f| {
            if f.name() == "nspacl" {
                Field::new("nspacl", text_list(), true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// PostgreSQL's `aclitem` text of one grantee's privileges.
fn item(grantee: &str, privileges: &[Privilege], grantor: &str) -> String {
    let mut letters = String::new();
    if privileges.contains(&Privilege::Usage) {
        letters.push('U');
    }
    if privileges.contains(&Privilege::Create) {
        letters.push('C');
    }
    let who = if grantee == crate::auth::PUBLIC {
        ""
    } else {
        grantee
    };
    format!("{who}={letters}/{grantor}")
}

#[async_trait]
impl TableProvider for PgNamespace {
    fn schema(&self) -> SchemaRef {
        schema_of(&self.inner.schema())
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let schema = self.schema();
        let engine = self.engine.upgrade();
        let (schemas, access) = match &engine {
            Some(e) => (e.schemas(), Some(e.access())),
            None => (Vec::new(), None),
        };
        let role_oid = |name: &str| {
            access
                .as_ref()
                .and_then(|a| a.roles.get(name).map(|r| r.oid as i32))
                .unwrap_or(10)
        };
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let inner = b.schema();
            let names = inner
                .index_of("nspname")
                .ok()
                .and_then(|i| b.column(i).as_string_opt::<i32>().cloned());
            let mut cols: Vec<ArrayRef> = Vec::with_capacity(b.num_columns());
            for (i, f) in inner.fields().iter().enumerate() {
                let def = |row: usize| {
                    let n = names.as_ref().filter(|n| !n.is_null(row))?.value(row);
                    schemas.iter().find(|s| s.name == n)
                };
                match f.name().as_str() {
                    "nspowner" => {
                        let old = b
                            .column(i)
                            .as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>();
                        let owners: Int32Array = (0..b.num_rows())
                            .map(|r| match def(r) {
                                Some(d) => Some(role_oid(&d.owner)),
                                None => old.and_then(|o| (!o.is_null(r)).then(|| o.value(r))),
                            })
                            .collect();
                        cols.push(Arc::new(owners));
                    }
                    "nspacl" => {
                        let mut list = ListBuilder::new(StringBuilder::new());
                        for r in 0..b.num_rows() {
                            match def(r).filter(|d| !d.acl.0.is_empty()) {
                                Some(d) => {
                                    list.values().append_value(item(
                                        &d.owner,
                                        &[Privilege::Usage, Privilege::Create],
                                        &d.owner,
                                    ));
                                    for grantee in d.acl.0.keys() {
                                        list.values().append_value(item(
                                            grantee,
                                            &d.acl.granted(grantee),
                                            &d.owner,
                                        ));
                                    }
                                    list.append(true);
                                }
                                None => list.append(false),
                            }
                        }
                        cols.push(Arc::new(list.finish()));
                    }
                    _ => cols.push(b.column(i).clone()),
                }
            }
            out.push(RecordBatch::try_new(schema.clone(), cols)?);
        }
        MemTable::try_new(schema, vec![out])?
            .scan(state, projection, filters, limit)
            .await
    }
}
