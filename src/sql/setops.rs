//! `INTERSECT ALL` and `EXCEPT ALL` with PostgreSQL's multiplicities: a row
//! that is `m` times on the left and `n` times on the right is `min(m, n)`
//! times in the intersection and `max(m - n, 0)` times in the difference.
//!
//! DataFusion plans both as a semi (anti) join of the two sides on every
//! column, which keeps all `m` copies of a left row the right side has (or
//! none of them). This rule numbers the copies of each distinct row on
//! both sides, `row_number() OVER (PARTITION BY every column)`, and joins on
//! the row and its number: copy `i` of a row is in the intersection when
//! the right side has an `i`-th copy too (`i ≤ min(m, n)`), in the
//! difference when it has not (`n < i ≤ m`). In a materialized view the
//! numbering is an OVER operator whose partitions are the copies of one
//! row, so a change costs work in proportion to that row's copies.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{Column, NullEquality, Result};
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    Expr, ExprFunctionExt, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

/// The analyzer rule (first of all: it must see the joins as the SQL
/// planner builds them).
#[derive(Debug, Default)]
pub struct SetOperationsAll;

impl AnalyzerRule for SetOperationsAll {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Join(j) if is_all_form(&j) => Ok(Transformed::yes(with_copies(j)?)),
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_set_operations_all"
    }
}

/// The join the SQL planner builds for `INTERSECT ALL` / `EXCEPT ALL`: a
/// semi / anti join on every column pair with NULLs equal and no filter.
/// (For `INTERSECT` / `EXCEPT` it joins a `DISTINCT` of the left side,
/// which is right as it is; subqueries are not joins yet when this runs.)
fn is_all_form(j: &Join) -> bool {
    matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti)
        && j.null_equality == NullEquality::NullEqualsNull
        && j.filter.is_none()
        && !j.null_aware
        && !matches!(j.left.as_ref(), LogicalPlan::Distinct(_))
        && j.on.len() == j.left.schema().fields().len()
        && j.on.len() == j.right.schema().fields().len()
}

/// `side` with a column numbering the copies of each of its rows.
fn numbered(side: Arc<LogicalPlan>, name: &str) -> Result<LogicalPlan> {
    let columns: Vec<Expr> = side
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let number = row_number().partition_by(columns).build()?.alias(name);
    LogicalPlanBuilder::from(Arc::unwrap_or_clone(side))
        .window(vec![number])?
        .build()
}

fn with_copies(j: Join) -> Result<LogicalPlan> {
    const LEFT: &str = "__freshet_copy_left";
    const RIGHT: &str = "__freshet_copy_right";
    let out: Vec<Expr> = j
        .left
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    let left = numbered(j.left, LEFT)?;
    let right = numbered(j.right, RIGHT)?;
    let mut on = j.on;
    on.push((
        Expr::Column(Column::new_unqualified(LEFT)),
        Expr::Column(Column::new_unqualified(RIGHT)),
    ));
    let join = Join::try_new(
        Arc::new(left),
        Arc::new(right),
        on,
        None,
        j.join_type,
        j.join_constraint,
        NullEquality::NullEqualsNull,
        false,
    )?;
    Ok(LogicalPlan::Projection(Projection::try_new(
        out,
        Arc::new(LogicalPlan::Join(join)),
    )?))
}
