//! Views that are not materialized: `CREATE [OR REPLACE] VIEW name [(columns)]
//! AS query`. The catalog keeps the query's text; the planned query (not yet
//! analyzed) is kept beside it, and every statement that reads the view
//! plans it in (DataFusion's `ViewTable`, inlined by the analyzer), so a
//! plain view costs nothing between reads and always answers from current
//! contents. A materialized view over a plain view is maintained over the
//! view's inputs.
//!
//! A plain view is planned when created, at start-up (in id order with the
//! materialized views, so what it reads is planned first), and again when a
//! view it reads is replaced. `OR REPLACE` keeps the view's id, owner and
//! grants; as in PostgreSQL the new query must keep the old columns (same
//! names and types, in order) and may add columns at the end. A view that a
//! materialized view reads cannot be replaced (the materialized view was
//! built from the old query).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast;

use super::{Output, Session};
use crate::catalog::{RelationDef, RelationKind};
use crate::engine::commit::Op;
use crate::engine::{Engine, EngineError, Result};
use crate::sql::parser::CreateView;
use crate::store::Put;

/// The option that keeps a plain view's column list (a JSON array).
const COLUMN_NAMES: &str = "column_names";

/// A planned plain view: its plan, its columns and what it reads.
struct Planned {
    plan: Arc<LogicalPlan>,
    schema: SchemaRef,
    depends_on: Vec<u64>,
}

impl Session {
    /// `CREATE [OR REPLACE] VIEW`.
    pub(super) async fn create_plain_view(&mut self, v: &CreateView) -> Result<Output> {
        let query = v.query.to_string();
        let planned = plan(self, &query, &v.columns).await?;
        self.check_create(&v.name)?;
        self.check_select_on(&planned.depends_on)?;
        let mut options = std::collections::BTreeMap::new();
        if !v.columns.is_empty() {
            options.insert(
                COLUMN_NAMES.to_string(),
                serde_json::to_string(&v.columns).unwrap_or_default(),
            );
        }
        let def = RelationDef {
            id: 0,
            name: v.name.clone(),
            kind: RelationKind::PlainView,
            columns: vec![],
            primary_key: vec![],
            watermark: None,
            options,
            sql: v.sql.clone(),
            query: Some(query),
            depends_on: planned.depends_on,
            view_schema: Some(planned.schema),
            plan: Some(planned.plan),
            owner: self.role.clone(),
            acl: Default::default(),
            comments: Default::default(),
            indexes: Vec::new(),
            source: None,
        };
        let engine = self.engine.clone();
        engine
            .define_plain_view(def, v.or_replace, v.if_not_exists, &self.role)
            .await?;
        self.adopt_new_relations();
        Ok(Output::Command {
            tag: "CREATE VIEW",
            rows: None,
        })
    }
}

/// Plans a view's query: `column_names` rename its first columns.
async fn plan(session: &Session, query: &str, column_names: &[String]) -> Result<Planned> {
    let q = crate::sql::parser::parse_query(query)?;
    let stmt = ast::Statement::Query(q);
    let plan = session.plan_query(&stmt).await?;
    let fields = plan.schema().fields().len();
    if column_names.len() > fields {
        return Err(EngineError::SyntaxError(
            "CREATE VIEW specifies more column names than columns".into(),
        ));
    }
    let plan = if column_names.is_empty() {
        plan
    } else {
        let exprs: Vec<_> = plan
            .schema()
            .columns()
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let e = datafusion::logical_expr::Expr::Column(c.clone());
                match column_names.get(i) {
                    Some(name) => e.alias(name),
                    None => e.alias(c.name),
                }
            })
            .collect();
        LogicalPlanBuilder::from(plan).project(exprs)?.build()?
    };
    let schema = session.result_schema(&plan);
    super::distinct_column_names(&schema)?;
    let engine = &session.engine;
    // (the SQL planner puts the plans of the views read in place of their
    // names: those are found in the statement)
    let mut depends_on = views_read(engine, &stmt);
    plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(t) = p {
            if let Some(rel) =
                crate::sql::names::of_reference(&t.table_name).and_then(|n| engine.relation(&n))
            {
                if !depends_on.contains(&rel.id) {
                    depends_on.push(rel.id);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(Planned {
        plan: Arc::new(plan),
        schema,
        depends_on,
    })
}

/// The plain views a statement names.
pub(super) fn views_read(engine: &Engine, stmt: &ast::Statement) -> Vec<u64> {
    let mut ids = Vec::new();
    let _ = ast::visit_relations(stmt, |name| {
        if let Some(rel) = crate::sql::names::existing(name)
            .ok()
            .and_then(|n| engine.relation(&n))
        {
            if rel.kind == RelationKind::PlainView && !ids.contains(&rel.id) {
                ids.push(rel.id);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    ids
}

/// `def` planned again from its stored query (at start-up, and when a view
/// it reads is replaced).
pub(crate) async fn replan(session: &Session, def: &RelationDef) -> Result<RelationDef> {
    let names: Vec<String> = def
        .options
        .get(COLUMN_NAMES)
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let planned = plan(session, def.query.as_deref().unwrap_or_default(), &names).await?;
    let mut d = def.clone();
    d.plan = Some(planned.plan);
    d.view_schema = Some(planned.schema);
    d.depends_on = planned.depends_on;
    Ok(d)
}

/// Whether `new` may replace `old`: every old column is still there, in
/// its place, with its type.
fn check_replacement(old: &RelationDef, new: &RelationDef) -> Result<()> {
    let (o, n) = (old.schema(), new.schema());
    for (i, f) in o.fields().iter().enumerate() {
        let Some(g) = n.fields().get(i) else {
            return Err(EngineError::InvalidTableDefinition(
                "cannot drop columns from view".into(),
            ));
        };
        if g.name() != f.name() {
            return Err(EngineError::InvalidTableDefinition(format!(
                "cannot change name of view column \"{}\" to \"{}\"",
                f.name(),
                g.name()
            )));
        }
        if g.data_type() != f.data_type() {
            return Err(EngineError::InvalidTableDefinition(format!(
                "cannot change data type of view column \"{}\"",
                f.name()
            )));
        }
    }
    Ok(())
}

impl Engine {
    /// Stores a plain view, or replaces one (module documentation).
    /// Returns false if it existed and `if_not_exists` was given.
    pub(crate) async fn define_plain_view(
        self: &Arc<Self>,
        mut def: RelationDef,
        or_replace: bool,
        if_not_exists: bool,
        actor: &str,
    ) -> Result<bool> {
        let _ddl = self.ddl_lock.lock().await;
        self.check_schema_of(&def.name)?;
        let existing = self.catalog.read().get(&def.name).cloned();
        for dep in &def.depends_on {
            if self.catalog.read().by_id(*dep).is_none() {
                return Err(EngineError::SerializationFailure(
                    "a relation the view reads was dropped concurrently".into(),
                ));
            }
        }
        let Some(old) = existing else {
            def.id = self.catalog.read().next_id();
            let puts = vec![
                Put::Catalog {
                    id: def.id,
                    bytes: def.to_bytes(),
                },
                Put::Meta {
                    name: crate::store::keys::META_NEXT_RELATION_ID,
                    bytes: (def.id + 1).to_be_bytes().to_vec(),
                },
            ];
            self.commit(Op::Records { puts }).await?;
            let mut cat = self.catalog.write();
            cat.allocate_id();
            cat.insert(def)?;
            return Ok(true);
        };
        if !or_replace {
            if if_not_exists {
                return Ok(false);
            }
            return Err(crate::catalog::CatalogError::AlreadyExists(def.name).into());
        }
        if old.kind != RelationKind::PlainView {
            return Err(EngineError::WrongObjectType(format!(
                "\"{}\" is not a view",
                def.name
            )));
        }
        crate::auth::check_owner(&self.access().roles, actor, &old)?;
        check_replacement(&old, &def)?;
        if def.depends_on.contains(&old.id) {
            return Err(EngineError::InvalidTableDefinition(format!(
                "infinite recursion: view \"{}\" would read itself",
                def.name
            )));
        }
        let dependents = self.catalog.read().dependents(old.id);
        if let Some(m) = dependents.iter().find(|d| d.kind == RelationKind::View) {
            return Err(EngineError::DependentObjects(format!(
                "cannot replace view {} because materialized view {} reads it \
                 (drop the materialized view first)",
                def.name, m.name
            )));
        }
        if dependents.iter().any(|d| def.depends_on.contains(&d.id)) {
            return Err(EngineError::InvalidTableDefinition(format!(
                "infinite recursion: view \"{}\" would read a view that reads it",
                def.name
            )));
        }
        def.id = old.id;
        def.owner = old.owner.clone();
        def.acl = old.acl.clone();
        self.replace_definitions(vec![def]).await?;
        // the plain views that read it see its new query
        let session = Session::standalone(self.clone())?;
        let mut replanned = Vec::with_capacity(dependents.len());
        for d in &dependents {
            let fresh = self.catalog.read().by_id(d.id).cloned();
            if let Some(fresh) = fresh {
                replanned.push(replan(&session, &fresh).await?);
                self.swap_definition(replanned[replanned.len() - 1].clone())?;
            }
        }
        if !replanned.is_empty() {
            self.replace_definitions(replanned).await?;
        }
        Ok(true)
    }

    /// Stores new definitions of existing relations (same ids) and puts
    /// them in the catalog.
    async fn replace_definitions(&self, defs: Vec<RelationDef>) -> Result<()> {
        let puts = defs
            .iter()
            .map(|d| Put::Catalog {
                id: d.id,
                bytes: d.to_bytes(),
            })
            .collect();
        self.commit(Op::Records { puts }).await?;
        for d in defs {
            self.swap_definition(d)?;
        }
        Ok(())
    }

    /// Puts `def` in the catalog in place of the entry of its name.
    pub(crate) fn swap_definition(&self, def: RelationDef) -> Result<()> {
        let mut cat = self.catalog.write();
        cat.remove(&def.name);
        cat.insert(def)?;
        Ok(())
    }
}
