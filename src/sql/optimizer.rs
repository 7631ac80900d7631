//! The analyzer's and the logical optimizer's rules: DataFusion's, with
//! ours put where they must run.
//!
//! * [`DecorrelateByDomain`](super::subquery::DecorrelateByDomain) right
//!   after DataFusion's `scalar_subquery_to_join`: it must see subqueries as
//!   that rule does, before filters are pushed into them (a pushed filter can
//!   name an inner column by the outer relation's name, which the lifted,
//!   unmarked predicates could no longer tell apart).
//! * [`NullSafeKeys`] right after `extract_equijoin_predicate`, which turns
//!   `a.k IS NOT DISTINCT FROM b.k` into a join key with "NULL equals NULL"
//!   for the whole join. Later rules (`eliminate_cross_join`, that one again)
//!   add other equalities to the same join's keys, and they then inherit
//!   it: `SELECT … FROM a JOIN b ON a.k IS NOT DISTINCT FROM b.k WHERE a.x =
//!   b.y` returned the rows whose `x` and `y` are both NULL. So a null-safe
//!   key becomes two keys that are never NULL — `a.k IS NULL = b.k IS NULL`
//!   and `coalesce(a.k, v) = coalesce(b.k, v)` for a fixed value `v` of the
//!   type — which mean the same, and the join compares NULL as `=` does.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, NullEquality, Result, ScalarValue};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{Expr, ExprSchemable, Join, LogicalPlan};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::subquery::DecorrelateByDomain;

/// One node's step of a rule that rewrites expressions: every expression
/// of `node` rewritten bottom-up by `rewrite` (which sees the schema of the
/// node's inputs), each keeping its output name; then the node's schema is
/// recomputed, also where only an input changed (a set operation or join
/// above a rewritten projection takes its new types).
pub fn rewrite_node_expressions(
    node: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
    let preserver = NamePreserver::new(&node);
    let t = node.map_expressions(|e| {
        let saved = preserver.save(&e);
        Ok(e.transform_up(|e| rewrite(e, &schema))?
            .update_data(|e| saved.restore(e)))
    })?;
    Ok(Transformed::new_transformed(
        t.data.recompute_schema()?,
        t.transformed,
    ))
}

/// [`rewrite_node_expressions`] on every node of `plan`, subqueries
/// included, from the leaves up: the whole pass of such a rule.
pub fn rewrite_expressions(
    plan: LogicalPlan,
    rewrite: impl Fn(Expr, &DFSchema) -> Result<Transformed<Expr>>,
) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| rewrite_node_expressions(node, &rewrite))
        .data()
}

/// DataFusion's analyzer rules with ours: `sum(bigint)` as numeric before
/// type coercion (what uses the sum is then coerced to numeric); after it
/// the subquery forms and checked integer arithmetic, which need the final
/// types.
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    let at = rules
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    rules.insert(at, Arc::new(super::checked::SumAsNumeric));
    rules.insert(0, Arc::new(super::setops::SetOperationsAll));
    rules.insert(at, Arc::new(super::checked::IntegerLiterals));
    let coercion = rules
        .iter()
        .position(|r| r.name() == "type_coercion")
        .unwrap_or(0);
    rules.insert(coercion, Arc::new(super::checked::OperandTypes));
    rules.push(Arc::new(super::subquery::SubqueryForms));
    rules.push(Arc::new(super::checked::CheckedArithmetic));
    rules.push(Arc::new(super::datetime::PostgresDatetime));
    rules.push(Arc::new(super::datetime::IntervalOrder));
    // (first: what it builds is then coerced and planned as any projection)
    rules.insert(0, Arc::new(super::sort_subquery::SortSubqueries));
    rules
}

/// DataFusion's optimizer rules with ours in their places (module
/// documentation).
pub fn optimizer_rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Optimizer::new().rules;
    let after = |rules: &[Arc<dyn OptimizerRule + Send + Sync>], name: &str| {
        rules
            .iter()
            .position(|r| r.name() == name)
            .map_or(rules.len(), |i| i + 1)
    };
    let at = after(&rules, "scalar_subquery_to_join");
    rules.insert(at, Arc::new(DecorrelateByDomain));
    let at = after(&rules, "extract_equijoin_predicate");
    rules.insert(at, Arc::new(NullSafeKeys));
    rules
}

/// DataFusion's physical optimizer rules without the (pre-optimization)
/// `FilterPushdown`: it pushed a filter above a RIGHT JOIN into the
/// preserved side with a column of the other side bound to one of the same
/// name (`WHERE p OR 2 BETWEEN r.y AND l.id` read `r.id`), keeping rows
/// PostgreSQL drops. Filters are already pushed where they belong by the
/// logical optimizer; scans are of memory, so nothing is lost.
pub fn physical_optimizer_rules(
) -> Vec<Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>> {
    datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new()
        .rules
        .into_iter()
        .filter(|r| r.name() != "FilterPushdown")
        .collect()
}

/// Null-equal join keys as pairs of keys that are never NULL (module
/// documentation).
#[derive(Debug, Default)]
pub struct NullSafeKeys;

impl OptimizerRule for NullSafeKeys {
    fn name(&self) -> &str {
        "freshet_null_safe_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Join(join) = plan else {
            return Ok(Transformed::no(plan));
        };
        let constant = |e: &Expr| matches!(e, Expr::Literal(..));
        if join.on.iter().any(|(l, r)| constant(l) || constant(r)) {
            return Ok(Transformed::yes(LogicalPlan::Join(
                constant_keys_as_filter(join),
            )));
        }
        if join.null_equality != NullEquality::NullEqualsNull || join.on.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Join(join)));
        }
        let (ls, rs) = (join.left.schema(), join.right.schema());
        let mut on = Vec::with_capacity(join.on.len() * 2);
        for (l, r) in &join.on {
            // a side that is never NULL: equal is then the same as not
            // distinct
            if !l.nullable(ls).unwrap_or(true) || !r.nullable(rs).unwrap_or(true) {
                on.push((l.clone(), r.clone()));
                continue;
            }
            match (fill(l, ls), fill(r, rs)) {
                (Some(fl), Some(fr)) => {
                    on.push((l.clone().is_null(), r.clone().is_null()));
                    on.push((fl, fr));
                }
                // a type without a value to fill in: leave the join as it is
                _ => return Ok(Transformed::no(LogicalPlan::Join(join))),
            }
        }
        Ok(Transformed::yes(LogicalPlan::Join(Join {
            on,
            null_equality: NullEquality::NullEqualsNothing,
            ..join
        })))
    }
}

/// A join key pair with a constant side (`false = r.k IS NULL`, once the
/// simplifier knew `l.k` is never NULL) as a condition of the join's
/// filter: `eliminate_cross_join` drops such a pair from the keys, and
/// the condition with it.
fn constant_keys_as_filter(mut join: Join) -> Join {
    let constant = |e: &Expr| matches!(e, Expr::Literal(..));
    let (constant_pairs, keys): (Vec<_>, Vec<_>) = std::mem::take(&mut join.on)
        .into_iter()
        .partition(|(l, r)| constant(l) || constant(r));
    join.on = keys;
    let conditions = constant_pairs.into_iter().map(|(l, r)| {
        if join.null_equality == NullEquality::NullEqualsNull {
            Expr::BinaryExpr(datafusion::logical_expr::BinaryExpr::new(
                Box::new(l),
                datafusion::logical_expr::Operator::IsNotDistinctFrom,
                Box::new(r),
            ))
        } else {
            l.eq(r)
        }
    });
    join.filter = conditions
        .chain(join.filter.take())
        .reduce(datafusion::logical_expr::Expr::and);
    join
}

/// `coalesce(e, v)` for a fixed non-NULL `v` of `e`'s type.
fn fill(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let t = e.get_type(schema).ok()?;
    let v = ScalarValue::new_default(&t).ok().filter(|v| !v.is_null())?;
    Some(datafusion::functions::core::expr_fn::coalesce(vec![
        e.clone(),
        Expr::Literal(v, None),
    ]))
}
