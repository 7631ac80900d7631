//! Which relations a statement touches, and the check that the running
//! role may touch them. Reading needs SELECT on every source, table and
//! materialized view the plan scans (a view is read through its own
//! privileges, as in Postgres: its inputs are not checked again); the
//! catalogs (`pg_catalog`, `information_schema`, `freshet_catalog`) are
//! readable by everyone.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast;

use super::{check, AuthError, Privilege, Roles};
use crate::catalog::RelationDef;
use crate::engine::query::SessionWindowTable;

/// What a plan reads, for the privilege check.
#[derive(Debug, Default)]
pub struct Reads {
    /// The sources, tables and views of ours it scans, by name.
    pub relations: BTreeSet<String>,
    /// The catalog tables only a superuser may read (`pg_authid`, …).
    pub superuser_only: BTreeSet<String>,
}

/// What `plan` scans, subqueries included.
pub fn relations_read(plan: &LogicalPlan) -> Reads {
    let mut out = Reads::default();
    let _ = plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(t) = p {
            let session_window = datafusion::datasource::source_as_provider(&t.source)
                .ok()
                .and_then(|p| {
                    p.downcast_ref::<SessionWindowTable>()
                        .map(|s| s.def.name.clone())
                });
            let table = t.table_name.table();
            if let Some(name) = session_window {
                out.relations.insert(name);
            } else if let Some(name) = crate::sql::names::of_reference(&t.table_name) {
                out.relations.insert(name);
            } else if t.table_name.schema() == Some("pg_catalog")
                && super::catalog::SUPERUSER_TABLES.contains(&table)
            {
                out.superuser_only.insert(table.to_string());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Fails with 42501 unless `user` may read every relation of ours named
/// in `names` (names that are not relations of ours are skipped: they are
/// catalogs, or the planner has already refused them).
pub fn check_reads<'a>(
    roles: &Roles,
    user: &str,
    names: impl IntoIterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<Arc<RelationDef>>,
) -> Result<(), AuthError> {
    for n in names {
        if let Some(rel) = lookup(n) {
            check(roles, user, &rel, Privilege::Select)?;
        }
    }
    Ok(())
}

/// Whether an UPDATE or DELETE reads its target's rows (a WHERE, or a SET
/// value that names a column): Postgres then also requires SELECT on it.
pub fn reads_target(stmt: &ast::Statement) -> bool {
    match stmt {
        ast::Statement::Update(u) => {
            u.selection.is_some() || u.assignments.iter().any(|a| names_column(&a.value))
        }
        ast::Statement::Delete(d) => d.selection.is_some(),
        _ => false,
    }
}

fn names_column(e: &ast::Expr) -> bool {
    ast::visit_expressions(e, |x| {
        if matches!(
            x,
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
        ) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}
