//! `INSERT | UPDATE | DELETE … RETURNING items`: the items are planned as
//! `SELECT items FROM "__returning".<relation> AS <alias>` over a table
//! with the relation's columns, and evaluated over the rows the statement
//! wrote (inserted, new or deleted) before they commit, so an error in an
//! item fails the whole statement.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::{self, SelectItem};

use super::error::{EngineError, Result};
use super::session::{bind, Session};
use crate::catalog::RelationDef;

/// The schema the written rows are read from.
const RETURNING_SCHEMA: &str = "__returning";

/// A planned RETURNING list.
pub struct Returning {
    plan: LogicalPlan,
    /// The result's columns.
    pub schema: SchemaRef,
    rel_schema: SchemaRef,
}

impl Returning {
    /// Plans `items` over the rows of `rel`, known in them as `alias` (or
    /// the relation's name).
    pub async fn plan(
        session: &Session,
        rel: &RelationDef,
        alias: Option<&ast::Ident>,
        items: &[SelectItem],
    ) -> Result<Returning> {
        let rel_schema = rel.schema();
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let alias = match alias {
            Some(a) => a.to_string(),
            None => quote(&rel.name),
        };
        let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {}.{} AS {alias}",
            items.join(", "),
            quote(RETURNING_SCHEMA),
            quote(&rel.name)
        );
        let stmt = session.parse_one(&sql)?;
        let crate::sql::parser::Statement::Sql(ast) = stmt else {
            return Err(EngineError::Internal("RETURNING: not a query".into()));
        };
        let rows = MemorySchemaProvider::new();
        rows.register_table(
            rel.name.clone(),
            Arc::new(MemTable::try_new(rel_schema.clone(), vec![vec![]])?),
        )?;
        let state = session.state_template();
        let catalogs = Arc::new(WithSchema {
            inner: state.catalog_list().clone(),
            catalog: state.config_options().catalog.default_catalog.clone(),
            schema: Arc::new(rows),
        });
        let state = SessionStateBuilder::new_from_existing(state.clone())
            .with_catalog_list(catalogs)
            .build();
        let plan = session.plan_query_in(&ast, &state).await?;
        let schema = session.result_schema(&plan);
        Ok(Returning {
            plan,
            schema,
            rel_schema,
        })
    }

    /// The items' values over `rows` (rows of the relation).
    pub async fn evaluate(
        &self,
        session: &Session,
        rows: Vec<RecordBatch>,
        params: &[ScalarValue],
    ) -> Result<Vec<RecordBatch>> {
        let table: Arc<dyn datafusion::catalog::TableProvider> =
            Arc::new(MemTable::try_new(self.rel_schema.clone(), vec![rows])?);
        let plan = self
            .plan
            .clone()
            .transform_up_with_subqueries(|p| match p {
                LogicalPlan::TableScan(mut t)
                    if t.table_name.schema() == Some(RETURNING_SCHEMA) =>
                {
                    t.source = provider_as_source(table.clone());
                    Ok(Transformed::yes(LogicalPlan::TableScan(t)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let plan = bind(&plan, params)?;
        let state = session.statement_state();
        let physical = state.create_physical_plan(&plan).await?;
        Ok(datafusion::physical_plan::collect(physical, state.task_ctx()).await?)
    }
}

/// The session's catalogs, with one more schema in the default catalog.
struct WithSchema {
    inner: Arc<dyn CatalogProviderList>,
    catalog: String,
    schema: Arc<dyn SchemaProvider>,
}

impl fmt::Debug for WithSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WithSchema")
    }
}

impl CatalogProviderList for WithSchema {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let inner = self.inner.catalog(name)?;
        if name != self.catalog {
            return Some(inner);
        }
        Some(Arc::new(CatalogWithSchema {
            inner,
            schema: self.schema.clone(),
        }))
    }
}

struct CatalogWithSchema {
    inner: Arc<dyn CatalogProvider>,
    schema: Arc<dyn SchemaProvider>,
}

impl fmt::Debug for CatalogWithSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CatalogWithSchema")
    }
}

impl CatalogProvider for CatalogWithSchema {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.inner.schema_names();
        names.push(RETURNING_SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == RETURNING_SCHEMA {
            Some(self.schema.clone())
        } else {
            self.inner.schema(name)
        }
    }

    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot create schema {name} while planning RETURNING"
        )))
    }
}
