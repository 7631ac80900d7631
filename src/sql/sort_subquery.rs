//! Subqueries in `ORDER BY`. DataFusion evaluates subqueries in
//! projections, filters and aggregates only, and refused a sort key that
//! holds one (Grafana's table list orders by `CASE WHEN schema IN (SELECT
//! …) THEN 0 ELSE 1 END`). Such a key is computed by a projection under the
//! sort, which then orders by that column, and a projection above it drops
//! the column again: the subquery is then planned as any projection's is.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, Sort, SortExpr};
use datafusion::optimizer::analyzer::AnalyzerRule;

#[derive(Debug, Default)]
pub struct SortSubqueries;

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_)
        ))
    })
    .unwrap_or(false)
}

impl AnalyzerRule for SortSubqueries {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Sort(sort) = node else {
                return Ok(Transformed::no(node));
            };
            if !sort.expr.iter().any(|s| has_subquery(&s.expr)) {
                return Ok(Transformed::no(LogicalPlan::Sort(sort)));
            }
            let Sort { expr, input, fetch } = sort;
            let columns: Vec<Expr> = input
                .schema()
                .columns()
                .into_iter()
                .map(Expr::Column)
                .collect();
            let mut keys = Vec::new();
            let mut order = Vec::with_capacity(expr.len());
            for (k, s) in expr.into_iter().enumerate() {
                if has_subquery(&s.expr) {
                    let name = format!("__freshet_sort_key_{k}");
                    keys.push(s.expr.alias(&name));
                    order.push(SortExpr {
                        expr: Expr::Column(Column::from_name(name)),
                        asc: s.asc,
                        nulls_first: s.nulls_first,
                    });
                } else {
                    order.push(s);
                }
            }
            // The keys read the relation under the select list when there
            // is one (a correlated key may name a column the list leaves
            // out: `SELECT a … ORDER BY (SELECT … WHERE y = t.b)`); else,
            // or when a key names the list's own columns, its output.
            let under_list = match input.as_ref() {
                LogicalPlan::Projection(p) => {
                    let mut exprs = p.expr.clone();
                    exprs.extend(keys.iter().cloned());
                    Projection::try_new(exprs, p.input.clone()).ok()
                }
                _ => None,
            };
            let keyed = match under_list {
                Some(p) => p,
                None => {
                    let mut exprs = columns.clone();
                    exprs.extend(keys);
                    Projection::try_new(exprs, input)?
                }
            };
            let sorted = LogicalPlan::Sort(Sort {
                expr: order,
                input: Arc::new(LogicalPlan::Projection(keyed)),
                fetch,
            });
            Ok(Transformed::yes(LogicalPlan::Projection(
                Projection::try_new(columns, Arc::new(sorted))?,
            )))
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_sort_subqueries"
    }
}
