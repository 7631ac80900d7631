//! Subqueries in expressions, planned so that every form Postgres answers
//! gets the same answer here, in ad-hoc queries and in materialized views.
//!
//! DataFusion decorrelates the common shapes itself: `EXISTS` / `IN` as
//! conjuncts of a `WHERE` become semi and anti joins, a correlated scalar
//! aggregate whose correlation is an equality becomes a left join on the
//! correlated columns. Two rules here cover the rest:
//!
//! 1. [`SubqueryForms`] (an analyzer rule, before DataFusion's checks) puts
//!    subqueries into forms the decorrelation understands:
//!    * a scalar subquery that can return several rows (`(SELECT x FROM t
//!      WHERE t.k = o.k)`) becomes two aggregates combined on the outer row,
//!      `__subquery_value((SELECT count(*) …), (SELECT max(x) …))`: `x`, or
//!      NULL over no rows, or `21000` for an outer row that meets several,
//!      as in Postgres;
//!    * `EXISTS (S)` where a semi join cannot take it (in a select list, under
//!      `OR`, ...) becomes `(SELECT count(*) > 0 FROM S)`, and `x IN (S)`,
//!      `x op ANY (S)`, `x op ALL (S)` the three-valued combination of such
//!      counts (see [`quantified_as_counts`]); in a materialized view also
//!      `NOT IN` in `WHERE`, whose null-aware anti join has no incremental
//!      form;
//!    * a subquery in an aggregate's argument, `FILTER` or `ORDER BY`
//!      (`sum((SELECT …))`, `count(*) FILTER (WHERE x IN (SELECT …))`) is
//!      computed by a projection under the aggregate, where the forms above
//!      and the decorrelation apply, and the aggregate reads its column;
//!    * a subquery that reads a query more than one level out is refused
//!      (`0A000`).
//! 2. [`DecorrelateByDomain`] (an optimizer rule, right after DataFusion's own)
//!    takes each correlated scalar aggregate DataFusion left in place (a
//!    correlation by `<`, `<>`, or by an expression) and joins it by the
//!    *domain* of the outer values it reads, the general unnesting of
//!    Neumann and Kemper ("Unnesting Arbitrary Queries", BTW 2015):
//!
//!    ```text
//!    O  ⟕[O.c IS NOT DISTINCT FROM D.c]  γ[D.c; agg FILTER (matched)]( D ⟕[P(i, D.c)] I )
//!    where D = DISTINCT O.c
//!    ```
//!
//!    Every outer value is in `D`, so each outer row meets exactly one group;
//!    the left join from `D` keeps the values no inner row matches, and the
//!    `FILTER` keeps their aggregates those of empty input (`count` 0, `sum`
//!    NULL), which is the count bug handled for every aggregate at once.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, ExprSchema, Result, Spans};
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::expr::{
    AggregateFunction, Exists, InSubquery, SetComparison, SetQuantifier,
};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    binary_expr, lit, when, ColumnarValue, Expr, Filter, JoinType, LogicalPlan, LogicalPlanBuilder,
    Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;
use datafusion::optimizer::decorrelate::PullUpCorrelatedExpr;
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::SqlError;

/// The Postgres message for a scalar subquery that returned several rows.
pub const TOO_MANY_ROWS: &str = "more than one row returned by a subquery used as an expression";

// ---------------------------------------------------------------------------
// __subquery_value(n, v)

/// `__subquery_value(n, v)`: `v` where `n <= 1`, else the cardinality
/// error. `n` counts the rows a scalar subquery produced, `v` is their
/// `max` (so the value itself when there is one row, NULL when none).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SubqueryValueUdf {
    signature: Signature,
}

impl Default for SubqueryValueUdf {
    fn default() -> Self {
        SubqueryValueUdf {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

pub fn subquery_value_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::from(SubqueryValueUdf::default()))
}

impl ScalarUDFImpl for SubqueryValueUdf {
    fn name(&self) -> &str {
        "__subquery_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[1].clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Array, Int64Array};
        let [n, v] = <[ColumnarValue; 2]>::try_from(args.args).map_err(|_| {
            DataFusionError::Internal("__subquery_value takes two arguments".into())
        })?;
        let too_many =
            || DataFusionError::External(Box::new(SqlError::Cardinality(TOO_MANY_ROWS.into())));
        match n {
            ColumnarValue::Scalar(s) => {
                if let datafusion::common::ScalarValue::Int64(Some(n)) = s {
                    if n > 1 {
                        return Err(too_many());
                    }
                }
            }
            ColumnarValue::Array(a) => {
                let counts = a.as_any().downcast_ref::<Int64Array>().ok_or_else(|| {
                    DataFusionError::Internal("__subquery_value: a count is bigint".into())
                })?;
                if (0..counts.len()).any(|i| counts.is_valid(i) && counts.value(i) > 1) {
                    return Err(too_many());
                }
            }
        }
        Ok(v)
    }
}

// ---------------------------------------------------------------------------
// 1. SubqueryForms

/// Freshet's planner options (`freshet.*` in DataFusion's config).
#[derive(Debug, Clone, Default)]
pub struct PlannerOptions {
    /// The plan is a materialized view's: every subquery must become a join
    /// (a circuit cannot run a subquery per row, nor DataFusion's null-aware
    /// anti join).
    pub incremental: bool,
}

impl datafusion::common::config::ConfigExtension for PlannerOptions {
    const PREFIX: &'static str = "freshet";
}

impl datafusion::common::config::ExtensionOptions for PlannerOptions {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::common::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "incremental" => {
                self.incremental = value.parse().map_err(|_| {
                    DataFusionError::Configuration(format!("freshet.incremental: {value}"))
                })?;
                Ok(())
            }
            other => Err(DataFusionError::Configuration(format!(
                "unknown option freshet.{other}"
            ))),
        }
    }

    fn entries(&self) -> Vec<datafusion::common::config::ConfigEntry> {
        vec![datafusion::common::config::ConfigEntry {
            key: "freshet.incremental".into(),
            value: Some(self.incremental.to_string()),
            description: "plan for an incremental circuit",
        }]
    }
}

/// The analyzer rule of step 1 (module documentation).
#[derive(Debug, Default)]
pub struct SubqueryForms;

impl AnalyzerRule for SubqueryForms {
    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let incremental = config
            .extensions
            .get::<PlannerOptions>()
            .is_some_and(|o| o.incremental);
        plan.transform_up_with_subqueries(|n| forms_in_node(n, incremental))
            .data()
    }

    fn name(&self) -> &str {
        "freshet_subquery_forms"
    }
}

fn forms_in_node(node: LogicalPlan, incremental: bool) -> Result<Transformed<LogicalPlan>> {
    if !node_has_subquery(&node) {
        return Ok(Transformed::no(node));
    }
    check_one_level(&node)?;
    match node {
        LogicalPlan::Aggregate(a) if a.aggr_expr.iter().any(has_subquery) => {
            aggregate_arguments_below(a, incremental)
        }
        // EXISTS / IN as a conjunct of WHERE: DataFusion's semi and anti
        // joins take those (but NOT IN in a view: its null-aware anti join
        // has no incremental form, the counts do); anything else is
        // rewritten.
        LogicalPlan::Filter(f) => {
            let schema = Arc::clone(f.input.schema());
            let mut changed = false;
            let mut parts = Vec::new();
            for c in split_conjunction(&f.predicate) {
                let t = match c {
                    Expr::Exists(_) => c.clone().transform_up(scalar_form)?,
                    // DataFusion's null-aware anti join applies the NULL
                    // rule to the whole subquery, not to the rows a
                    // correlation selects: a correlated NOT IN is counted;
                    // so is one of anything but a column (`NULL NOT IN
                    // (…)` lost its filter, answering every row, and so did
                    // `coalesce(10, o.id) NOT IN (…)`, which the optimizer
                    // folds to a constant after this rule)
                    Expr::InSubquery(i)
                        if !i.negated
                            || (!incremental
                                && i.subquery.outer_ref_columns.is_empty()
                                && is_column(&i.expr)) =>
                    {
                        c.clone().transform_up(scalar_form)?
                    }
                    Expr::SetComparison(s) => {
                        Transformed::yes(set_comparison_as_exists(s.clone(), &schema)?)
                    }
                    _ => c.clone().transform_up(|e| any_form(e, &schema))?,
                };
                changed |= t.transformed;
                parts.push(t.data);
            }
            if !changed {
                return Ok(Transformed::no(LogicalPlan::Filter(f)));
            }
            let predicate = conjunction(parts).unwrap_or_else(|| lit(true));
            Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                predicate, f.input,
            )?)))
        }
        other => super::optimizer::rewrite_node_expressions(other, any_form),
    }
}

/// A column, possibly cast.
fn is_column(e: &Expr) -> bool {
    match e {
        Expr::Column(_) => true,
        Expr::Cast(c) => is_column(&c.expr),
        Expr::TryCast(c) => is_column(&c.expr),
        _ => false,
    }
}

/// Every subquery in `node` reads only columns of `node`'s own inputs: a
/// reference to a query further out is refused (DataFusion would take it
/// for one to the nearest query and fail, or worse).
fn check_one_level(node: &LogicalPlan) -> Result<()> {
    let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
    node.apply_expressions(|e| {
        e.apply(|e| {
            let sq = match e {
                Expr::ScalarSubquery(sq) => sq,
                Expr::Exists(x) => &x.subquery,
                Expr::InSubquery(x) => &x.subquery,
                Expr::SetComparison(x) => &x.subquery,
                _ => return Ok(TreeNodeRecursion::Continue),
            };
            for r in &sq.outer_ref_columns {
                if let Expr::OuterReferenceColumn(_, c) = r {
                    if !schema.has_column(c) {
                        return Err(DataFusionError::NotImplemented(format!(
                            "a subquery that refers to {c} of a query more than one level out is not supported"
                        )));
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })
    })
    .map(|_| ())
}

fn has_subquery(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::SetComparison(_)
        ))
    })
    .unwrap_or(false)
}

/// An aggregate whose arguments, `FILTER`s or `ORDER BY`s hold subqueries:
/// each such expression becomes a column of a projection under it (which
/// keeps every input column), in the forms of this rule, and the aggregate
/// reads that column; the aggregate's output names stay as they were.
fn aggregate_arguments_below(
    a: datafusion::logical_expr::Aggregate,
    incremental: bool,
) -> Result<Transformed<LogicalPlan>> {
    let input_schema = Arc::clone(a.input.schema());
    let mut exprs: Vec<Expr> = input_schema
        .iter()
        .map(|(q, f)| Expr::Column(Column::new(q.cloned(), f.name())))
        .collect();
    let mut n = 0usize;
    let mut column_for = |e: Expr, exprs: &mut Vec<Expr>| -> Expr {
        if !has_subquery(&e) {
            return e;
        }
        n += 1;
        let name = format!("__freshet_aggregate_input_{n}");
        exprs.push(e.alias(name.clone()));
        Expr::Column(Column::new_unqualified(name))
    };
    let preserver = NamePreserver::new_for_projection();
    let mut aggr_expr = Vec::with_capacity(a.aggr_expr.len());
    for e in a.aggr_expr {
        let saved = preserver.save(&e);
        let e = e
            .transform_up(|e| match e {
                Expr::AggregateFunction(mut f) => {
                    let p = &mut f.params;
                    p.args = std::mem::take(&mut p.args)
                        .into_iter()
                        .map(|x| column_for(x, &mut exprs))
                        .collect();
                    p.filter = p
                        .filter
                        .take()
                        .map(|x| Box::new(column_for(*x, &mut exprs)));
                    for o in p.order_by.iter_mut() {
                        let x = std::mem::replace(&mut o.expr, lit(true));
                        o.expr = column_for(x, &mut exprs);
                    }
                    Ok(Transformed::yes(Expr::AggregateFunction(f)))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        aggr_expr.push(saved.restore(e));
    }
    let projection = datafusion::logical_expr::Projection::try_new(exprs, a.input)?;
    let projection = forms_in_node(LogicalPlan::Projection(projection), incremental)?.data;
    Ok(Transformed::yes(LogicalPlan::Aggregate(
        datafusion::logical_expr::Aggregate::try_new(
            Arc::new(projection),
            a.group_expr,
            aggr_expr,
        )?,
    )))
}

fn node_has_subquery(node: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = node.apply_expressions(|e| {
        found |= e
            .exists(|e| {
                Ok(matches!(
                    e,
                    Expr::ScalarSubquery(_)
                        | Expr::Exists(_)
                        | Expr::InSubquery(_)
                        | Expr::SetComparison(_)
                ))
            })
            .unwrap_or(false);
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Every rewrite of step 1 on one expression node.
fn any_form(e: Expr, outer: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::Exists(Exists { subquery, negated }) => {
            let e = exists_as_count(subquery)?;
            Ok(Transformed::yes(if negated { !e } else { e }))
        }
        Expr::InSubquery(InSubquery {
            expr,
            subquery,
            negated,
        }) => match quantified_as_counts(
            *expr.clone(),
            subquery.clone(),
            Operator::Eq,
            SetQuantifier::Any,
            outer,
        )? {
            Some(e) => Ok(Transformed::yes(if negated { !e } else { e })),
            None => Ok(Transformed::no(Expr::InSubquery(InSubquery {
                expr,
                subquery,
                negated,
            }))),
        },
        Expr::SetComparison(s) => {
            match quantified_as_counts(
                *s.expr.clone(),
                s.subquery.clone(),
                s.op,
                s.quantifier,
                outer,
            )? {
                Some(e) => Ok(Transformed::yes(e)),
                None => Ok(Transformed::no(Expr::SetComparison(s))),
            }
        }
        other => scalar_form(other),
    }
}

/// `x op ANY (S)` / `x op ALL (S)` where only truth matters (a conjunct of
/// WHERE): `EXISTS (S WHERE x op y)` / `NOT EXISTS (S WHERE (x op y) IS NOT
/// TRUE)`, a semi or anti join.
fn set_comparison_as_exists(s: SetComparison, outer: &DFSchema) -> Result<Expr> {
    let x = to_outer(*s.expr, outer)?;
    let y = first_column(&s.subquery.subquery);
    let cmp = binary_expr(x, s.op, y);
    let (pred, negated) = match s.quantifier {
        SetQuantifier::Any => (cmp, false),
        SetQuantifier::All => (cmp.is_not_true(), true),
    };
    let plan = LogicalPlanBuilder::from(s.subquery.subquery.as_ref().clone())
        .filter(pred)?
        .build()?;
    Ok(Expr::Exists(Exists {
        subquery: subquery_of(plan, &s.subquery),
        negated,
    }))
}

/// A scalar subquery that can return more rows than one becomes two
/// aggregates of its rows, combined on the outer row:
/// `__subquery_value((SELECT count(*) FROM S), (SELECT max(v) FROM S))`. The
/// count is checked where the value is used, so only an outer row that
/// actually meets several rows fails (as in Postgres, which evaluates the
/// subquery only for the rows that reach it).
fn scalar_form(e: Expr) -> Result<Transformed<Expr>> {
    let Expr::ScalarSubquery(sq) = e else {
        return Ok(Transformed::no(e));
    };
    if at_most_one_row(&sq.subquery) {
        return Ok(Transformed::no(Expr::ScalarSubquery(sq)));
    }
    let plan = sq.subquery.as_ref();
    let value = first_column(plan);
    // (an internal name: the subquery's own column name may clash with the
    // correlated column a decorrelation adds to the grouping)
    let built = LogicalPlanBuilder::from(plan.clone())
        .aggregate(Vec::<Expr>::new(), vec![max(value).alias("__value")])
        .and_then(|b| b.build());
    match built {
        Ok(values) => {
            let rows = LogicalPlanBuilder::from(plan.clone())
                .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("__rows")])?
                .build()?;
            Ok(Transformed::yes(subquery_value_udf().call(vec![
                Expr::ScalarSubquery(subquery_of(rows, &sq)),
                Expr::ScalarSubquery(subquery_of(values, &sq)),
            ])))
        }
        // no max() for this type: leave the subquery as it is (an
        // uncorrelated one still runs with its own row check)
        Err(_) if sq.outer_ref_columns.is_empty() => Ok(Transformed::no(Expr::ScalarSubquery(sq))),
        Err(e) => Err(DataFusionError::NotImplemented(format!(
            "a correlated scalar subquery of this type without an aggregate ({e})"
        ))),
    }
}

/// True for plans that return at most one row by construction.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    if plan.max_rows().is_some_and(|n| n <= 1) {
        return true;
    }
    match plan {
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::SubqueryAlias(a) => at_most_one_row(&a.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        _ => false,
    }
}

/// `plan` as a subquery of the same query `like` belongs to, listing the
/// outer columns it reads.
fn subquery_of(plan: LogicalPlan, like: &Subquery) -> Subquery {
    let mut outer = plan.all_out_ref_exprs();
    for r in &like.outer_ref_columns {
        if !outer.contains(r) {
            outer.push(r.clone());
        }
    }
    Subquery {
        subquery: Arc::new(plan),
        outer_ref_columns: outer,
        spans: Spans::new(),
    }
}

/// `EXISTS (S)` as `(SELECT count(*) > 0 FROM S)`.
fn exists_as_count(sq: Subquery) -> Result<Expr> {
    let plan = LogicalPlanBuilder::from(sq.subquery.as_ref().clone())
        .aggregate(Vec::<Expr>::new(), vec![count(lit(1)).alias("__rows")])?
        .project(vec![Expr::Column(Column::from_name("__rows"))
            .gt(lit(0i64))
            .alias("exists")])?
        .build()?;
    Ok(Expr::ScalarSubquery(subquery_of(plan, &sq)))
}

/// The first output column of a subquery's plan.
fn first_column(plan: &LogicalPlan) -> Expr {
    let (q, f) = plan.schema().qualified_field(0);
    Expr::Column(Column::from((q, f)))
}

/// `x` as seen from inside a subquery: its columns become outer references.
fn to_outer(x: Expr, outer: &DFSchema) -> Result<Expr> {
    x.transform_up(|e| match e {
        Expr::Column(c) => {
            let field = outer.field_from_column(&c)?;
            Ok(Transformed::yes(Expr::OuterReferenceColumn(
                Arc::clone(field),
                c,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .data()
}

/// `x op ANY (S)` (`x IN (S)` is `x = ANY (S)`) and `x op ALL (S)` with
/// Postgres' three-valued answer, from counts that each decorrelate on
/// their own — the first by `x op y` itself, an equi-join for `=`:
///
/// ```text
/// ANY: CASE WHEN EXISTS (S WHERE x op y)                THEN true
///           WHEN x IS NULL THEN CASE WHEN EXISTS (S)    THEN NULL ELSE false END
///           WHEN EXISTS (S WHERE y IS NULL)             THEN NULL
///           ELSE false END
/// ALL: CASE WHEN EXISTS (S WHERE (x op y) IS FALSE)     THEN false
///           WHEN x IS NULL THEN CASE WHEN EXISTS (S)    THEN NULL ELSE true END
///           WHEN EXISTS (S WHERE y IS NULL)             THEN NULL
///           ELSE true END
/// ```
///
/// `None` when `x` itself reads an enclosing query (two levels of
/// correlation): the expression is then left to DataFusion.
fn quantified_as_counts(
    x: Expr,
    sq: Subquery,
    op: Operator,
    quantifier: SetQuantifier,
    outer: &DFSchema,
) -> Result<Option<Expr>> {
    if x.contains_outer() {
        return Ok(None);
    }
    let plan = sq.subquery.as_ref();
    let y = first_column(plan);
    let cmp = binary_expr(to_outer(x.clone(), outer)?, op, y.clone());
    let filtered = |p: Expr| -> Result<Expr> {
        let plan = LogicalPlanBuilder::from(plan.clone()).filter(p)?.build()?;
        exists_as_count(subquery_of(plan, &sq))
    };
    let null = Expr::Literal(datafusion::common::ScalarValue::Boolean(None), None);
    let (decided, decides, otherwise) = match quantifier {
        SetQuantifier::Any => (filtered(cmp)?, true, false),
        SetQuantifier::All => (filtered(cmp.is_false())?, false, true),
    };
    let any_row = exists_as_count(sq.clone())?;
    let null_row = filtered(y.is_null())?;
    let e = when(decided, lit(decides))
        .when(
            x.is_null(),
            when(any_row, null.clone()).otherwise(lit(otherwise))?,
        )
        .when(null_row, null)
        .otherwise(lit(otherwise))?;
    Ok(Some(e))
}

// ---------------------------------------------------------------------------
// 2. DecorrelateByDomain

/// The optimizer rule of step 2 (module documentation).
#[derive(Debug, Default)]
pub struct DecorrelateByDomain;

impl OptimizerRule for DecorrelateByDomain {
    fn name(&self) -> &str {
        "freshet_decorrelate_by_domain"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        match plan {
            LogicalPlan::Projection(p) if p.expr.iter().any(has_correlated_scalar) => {
                let preserver = NamePreserver::new_for_projection();
                let mut input = p.input.as_ref().clone();
                let mut exprs = Vec::with_capacity(p.expr.len());
                for e in &p.expr {
                    let saved = preserver.save(e);
                    let (next, e) = unnest_in(input, e.clone(), config)?;
                    input = next;
                    exprs.push(saved.restore(e));
                }
                Ok(Transformed::yes(
                    LogicalPlanBuilder::from(input).project(exprs)?.build()?,
                ))
            }
            LogicalPlan::Filter(f) if has_correlated_scalar(&f.predicate) => {
                let columns: Vec<Expr> = f
                    .input
                    .schema()
                    .columns()
                    .into_iter()
                    .map(Expr::Column)
                    .collect();
                let (input, predicate) = unnest_in(f.input.as_ref().clone(), f.predicate, config)?;
                Ok(Transformed::yes(
                    LogicalPlanBuilder::from(input)
                        .filter(predicate)?
                        .project(columns)?
                        .build()?,
                ))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

fn has_correlated_scalar(e: &Expr) -> bool {
    e.exists(|e| Ok(matches!(e, Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty())))
        .unwrap_or(false)
}

/// Replaces every correlated scalar subquery of `e` (outermost first) by a
/// column of a domain join added to `input`.
fn unnest_in(
    input: LogicalPlan,
    e: Expr,
    config: &dyn OptimizerConfig,
) -> Result<(LogicalPlan, Expr)> {
    let mut input = Some(input);
    let mut failure = None;
    let e = e
        .transform_down(|e| match e {
            Expr::ScalarSubquery(sq) if !sq.outer_ref_columns.is_empty() => {
                let Some(current) = input.take() else {
                    return Ok(Transformed::no(Expr::ScalarSubquery(sq)));
                };
                match join_by_domain(current.clone(), &sq, config) {
                    Ok((joined, value)) => {
                        input = Some(joined);
                        Ok(Transformed::new(value, true, TreeNodeRecursion::Jump))
                    }
                    Err(err) => {
                        input = Some(current);
                        failure = Some(err);
                        Ok(Transformed::new(
                            Expr::ScalarSubquery(sq),
                            false,
                            TreeNodeRecursion::Stop,
                        ))
                    }
                }
            }
            other => Ok(Transformed::no(other)),
        })?
        .data;
    if let Some(err) = failure {
        return Err(err);
    }
    let input =
        input.ok_or_else(|| DataFusionError::Internal("domain join lost its input".into()))?;
    Ok((input, e))
}

fn unsupported(what: &str) -> DataFusionError {
    DataFusionError::NotImplemented(format!("a correlated subquery {what} is not supported"))
}

/// What a correlated scalar subquery computes over its input `R`, the part
/// below which the correlated predicates sit.
enum Shape<'a> {
    /// `[Projection]* → Aggregate (no GROUP BY) → R`
    Aggregate(&'a datafusion::logical_expr::Aggregate),
    /// `[Projection]* → Limit 1 → [Projection]* → Sort → R`: the first row
    /// by an order (`between` are the projections under the limit).
    First {
        skip: usize,
        between: Vec<Vec<Expr>>,
        sort: &'a datafusion::logical_expr::Sort,
    },
}

/// Takes a correlated subquery apart: its projections above the shape
/// (outermost first), the shape, and `R`.
fn shape_of(sq: &Subquery) -> Result<(Vec<Vec<Expr>>, Shape<'_>, &LogicalPlan)> {
    let mut projections: Vec<Vec<Expr>> = Vec::new();
    let mut plan = sq.subquery.as_ref();
    loop {
        match plan {
            LogicalPlan::Projection(p) => {
                projections.push(p.expr.clone());
                plan = &p.input;
            }
            LogicalPlan::SubqueryAlias(a) => plan = &a.input,
            LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => {
                return Ok((projections, Shape::Aggregate(a), &a.input))
            }
            LogicalPlan::Aggregate(_) => return Err(unsupported("with GROUP BY")),
            LogicalPlan::Filter(_) => return Err(unsupported("with HAVING")),
            LogicalPlan::Limit(l) => {
                let (skip, fetch) = match (l.get_skip_type()?, l.get_fetch_type()?) {
                    (
                        datafusion::logical_expr::SkipType::Literal(s),
                        datafusion::logical_expr::FetchType::Literal(Some(f)),
                    ) => (s, f),
                    _ => return Err(unsupported("with a LIMIT that is not a constant")),
                };
                if fetch != 1 {
                    return Err(unsupported("with a LIMIT other than 1"));
                }
                let mut between = Vec::new();
                let mut below = l.input.as_ref();
                while let LogicalPlan::Projection(p) = below {
                    between.push(p.expr.clone());
                    below = &p.input;
                }
                return match below {
                    LogicalPlan::Sort(sort) if sort.fetch.is_none() => Ok((
                        projections,
                        Shape::First {
                            skip,
                            between,
                            sort,
                        },
                        &sort.input,
                    )),
                    _ => Err(unsupported("with LIMIT but no ORDER BY")),
                };
            }
            other => {
                return Err(unsupported(&format!(
                    "over {}",
                    other
                        .display()
                        .to_string()
                        .split(':')
                        .next()
                        .unwrap_or("this plan")
                )))
            }
        }
    }
}

/// The outer columns a correlated subquery reads, as a domain: `D =
/// DISTINCT outer.c…` under a fresh alias, and the mapping of the
/// subquery's references to them.
struct Domain {
    alias: String,
    outer_cols: Vec<Column>,
    /// The schema of `R` once its correlated predicates are lifted.
    inner_schema: datafusion::common::DFSchemaRef,
}

impl Domain {
    fn name(&self, i: usize) -> String {
        format!("{}_d{i}", self.alias)
    }

    fn column(&self, i: usize) -> Expr {
        Expr::Column(Column::new(Some(self.alias.clone()), self.name(i)))
    }

    fn columns(&self) -> Vec<Expr> {
        (0..self.outer_cols.len()).map(|i| self.column(i)).collect()
    }

    /// `e` with outer references (marked, or plain columns the inner
    /// schema does not have: the lifted predicates lost their marking)
    /// replaced by the domain's columns.
    fn map(&self, e: Expr) -> Result<Expr> {
        let position = |c: &Column| self.outer_cols.iter().position(|o| o == c);
        e.transform_up(|e| match e {
            Expr::OuterReferenceColumn(_, c) => match position(&c) {
                Some(i) => Ok(Transformed::yes(self.column(i))),
                None => Err(DataFusionError::Internal(format!(
                    "outer column {c} is not in the subquery's list"
                ))),
            },
            Expr::Column(c) if !self.inner_schema.has_column(&c) => match position(&c) {
                Some(i) => Ok(Transformed::yes(self.column(i))),
                None => Ok(Transformed::no(Expr::Column(c))),
            },
            other => Ok(Transformed::no(other)),
        })
        .data()
    }

    fn map_all(&self, es: Vec<Expr>) -> Result<Vec<Expr>> {
        es.into_iter().map(|e| self.map(e)).collect()
    }
}

/// `D ⟕[P(R, D)] (R + matched marker)` for the subquery's input `r`: the
/// domain, and the join as a builder, with the marker's column.
fn domain_join(
    outer: &LogicalPlan,
    sq: &Subquery,
    r: &LogicalPlan,
    config: &dyn OptimizerConfig,
) -> Result<(Domain, LogicalPlanBuilder, Expr)> {
    // Lift the correlated predicates out of R.
    // Projections on top of R that read outer columns (`SELECT o.x = 'a'
    // FROM r WHERE …`) are applied above the join, where the domain's
    // columns stand for the outer ones.
    let mut r = r;
    let mut lifted = Vec::new();
    while let LogicalPlan::Projection(p) = r {
        if !p.expr.iter().any(|e| e.contains_outer()) {
            break;
        }
        lifted.push((p.expr.clone(), Arc::clone(&p.schema)));
        r = p.input.as_ref();
    }
    let mut pull = PullUpCorrelatedExpr::new();
    let inner = r.clone().rewrite(&mut pull)?.data;
    if !pull.can_pull_up || inner.contains_outer_reference() || plan_has_outer(&inner) {
        return Err(unsupported(
            "in this position (under LIMIT, ORDER BY, a window or an outer join)",
        ));
    }
    let mut outer_cols: BTreeSet<Column> = BTreeSet::new();
    for r in &sq.outer_ref_columns {
        if let Expr::OuterReferenceColumn(_, c) = r {
            outer_cols.insert(c.clone());
        }
    }
    let outer_cols: Vec<Column> = outer_cols.into_iter().collect();
    if outer_cols.is_empty() {
        return Err(unsupported("whose correlation could not be resolved"));
    }
    if let Some(c) = outer_cols.iter().find(|c| !outer.schema().has_column(c)) {
        return Err(unsupported(&format!(
            "that refers to {c} of a query more than one level out"
        )));
    }
    let d = Domain {
        alias: config.alias_generator().next("__domain_sq"),
        outer_cols,
        inner_schema: Arc::clone(inner.schema()),
    };
    let domain = LogicalPlanBuilder::from(outer.clone())
        .project(
            d.outer_cols
                .iter()
                .enumerate()
                .map(|(i, c)| Expr::Column(c.clone()).alias(d.name(i))),
        )?
        .distinct()?
        .alias(d.alias.clone())?
        .build()?;
    let mark = format!("{}_matched", d.alias);
    let mut inner_exprs: Vec<Expr> = inner
        .schema()
        .columns()
        .into_iter()
        .map(Expr::Column)
        .collect();
    inner_exprs.push(lit(true).alias(mark.clone()));
    let marked = LogicalPlanBuilder::from(inner)
        .project(inner_exprs)?
        .build()?;
    let on = d.map_all(pull.join_filters.clone())?;
    // The lifted predicates lost their outer marking: never let an inner
    // column pass for an outer one (that would be a wrong answer).
    let mapped: usize = on.iter().map(|e| count_columns_of(e, &d.alias)).sum();
    if mapped > count_outer_refs(r) {
        return Err(unsupported("whose correlation is ambiguous"));
    }
    let mut joined = LogicalPlanBuilder::from(domain).join_on(marked, JoinType::Left, on)?;
    let matched = Expr::Column(Column::from_name(mark.clone())).is_not_null();
    // (innermost first; a value of no row of R is NULL, as R's would be)
    for (exprs, schema) in lifted.into_iter().rev() {
        let mut out = d.columns();
        for (e, (q, f)) in exprs.into_iter().zip(schema.iter()) {
            let e = match e {
                Expr::Alias(a) => *a.expr,
                e => e,
            };
            let guarded = datafusion::logical_expr::when(matched.clone(), d.map(e)?).end()?;
            out.push(guarded.alias_qualified(q.cloned(), f.name()));
        }
        out.push(Expr::Column(Column::from_name(mark.clone())));
        joined = joined.project(out)?;
    }
    Ok((d, joined, matched))
}

/// Builds `outer ⟕ A` for one correlated scalar subquery (module
/// documentation) and returns it with the column that holds the value.
fn join_by_domain(
    outer: LogicalPlan,
    sq: &Subquery,
    config: &dyn OptimizerConfig,
) -> Result<(LogicalPlan, Expr)> {
    let (projections, shape, r) = shape_of(sq)?;
    let (d, joined, matched) = domain_join(&outer, sq, r, config)?;
    let groups = d.columns();
    let mut b = match shape {
        // γ[D; agg FILTER (matched)]: unmatched domain values aggregate no rows
        Shape::Aggregate(aggregate) => {
            let mut aggs = Vec::with_capacity(aggregate.aggr_expr.len());
            for e in &aggregate.aggr_expr {
                aggs.push(filtered_aggregate(e, &d, &matched)?);
            }
            joined.aggregate(groups.clone(), aggs)?
        }
        // the first row of each domain value by the order; an unmatched
        // value's one NULL-padded row is its first
        Shape::First {
            skip,
            between,
            sort,
        } => {
            use datafusion::logical_expr::ExprFunctionExt;
            let rn = format!("{}_rn", d.alias);
            let order = sort
                .expr
                .iter()
                .map(|s| {
                    Ok(datafusion::logical_expr::SortExpr {
                        expr: d.map(s.expr.clone())?,
                        asc: s.asc,
                        nulls_first: s.nulls_first,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let number = datafusion::functions_window::expr_fn::row_number()
                .partition_by(groups.clone())
                .order_by(order)
                .build()?
                .alias(rn.clone());
            let rn = Expr::Column(Column::from_name(rn));
            let keep = if skip == 0 {
                rn.lt_eq(lit(1u64))
            } else {
                rn.clone()
                    .gt(lit(skip as u64))
                    .and(rn.lt_eq(lit(skip as u64 + 1)))
            };
            let mut b = joined.window(vec![number])?.filter(keep)?;
            for exprs in between.into_iter().rev() {
                let mut exprs = d.map_all(exprs)?;
                exprs.extend(groups.iter().cloned());
                b = b.project(exprs)?;
            }
            b
        }
    };
    // the subquery's own projections above, keeping D
    let value = format!("{}_value", d.alias);
    let levels = projections.len();
    for (k, exprs) in projections.into_iter().rev().enumerate() {
        let mut exprs = d.map_all(exprs)?;
        if k + 1 == levels {
            exprs.truncate(1);
            exprs[0] = exprs[0].clone().alias(value.clone());
        }
        exprs.extend(groups.iter().cloned());
        b = b.project(exprs)?;
    }
    if levels == 0 {
        let first = b.schema().qualified_field(0);
        let first = if first.0.is_some_and(|q| q.table() == d.alias) {
            b.schema().qualified_field(groups.len())
        } else {
            first
        };
        let mut exprs = vec![Expr::Column(Column::from(first)).alias(value.clone())];
        exprs.extend(groups.iter().cloned());
        b = b.project(exprs)?;
    }
    let result_alias = format!("{}_r", d.alias);
    let result = b.alias(result_alias.clone())?.build()?;
    // O ⟕ A ON O.c IS NOT DISTINCT FROM A.c — as a condition, not as
    // null-equal keys: DataFusion adds equalities pushed into a join later
    // to its keys with the join's null equality (`NULL = NULL` would hold);
    // from a condition it makes null-equal keys only when nothing else is
    // a key.
    let on = d
        .outer_cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            binary_expr(
                Expr::Column(c.clone()),
                Operator::IsNotDistinctFrom,
                Expr::Column(Column::new(Some(result_alias.clone()), d.name(i))),
            )
        })
        .collect::<Vec<_>>();
    let joined = LogicalPlanBuilder::from(outer)
        .join_on(result, JoinType::Left, on)?
        .build()?;
    Ok((joined, Expr::Column(Column::new(Some(result_alias), value))))
}

/// One aggregate of the subquery, over the domain join: outer references
/// mapped to the domain, and `FILTER (WHERE matched)` so that a domain value
/// no inner row matches aggregates no rows.
fn filtered_aggregate(e: &Expr, d: &Domain, matched: &Expr) -> Result<Expr> {
    let name = e.schema_name().to_string();
    let f = match e {
        Expr::AggregateFunction(f) => f,
        Expr::Alias(a) => match a.expr.as_ref() {
            Expr::AggregateFunction(f) => f,
            other => {
                return Err(unsupported(&format!(
                    "with the aggregate expression {other}"
                )))
            }
        },
        other => {
            return Err(unsupported(&format!(
                "with the aggregate expression {other}"
            )))
        }
    };
    let params = f.params.clone();
    let filter = match params.filter {
        Some(f) => d.map(*f)?.and(matched.clone()),
        None => matched.clone(),
    };
    let order_by = params
        .order_by
        .into_iter()
        .map(|mut s| {
            s.expr = d.map(s.expr)?;
            Ok(s)
        })
        .collect::<Result<Vec<_>>>()?;
    let f = AggregateFunction::new_udf(
        Arc::clone(&f.func),
        d.map_all(params.args)?,
        params.distinct,
        Some(Box::new(filter)),
        order_by,
        params.null_treatment,
    );
    Ok(Expr::AggregateFunction(f).alias(name))
}

/// Outer references in the expressions of `plan`'s nodes (not inside
/// nested subqueries, which have their own).
fn count_outer_refs(plan: &LogicalPlan) -> usize {
    let mut n = 0;
    let _ = plan.apply(|p| {
        let _ = p.apply_expressions(|e| {
            let _ = e.apply(|e| {
                if matches!(e, Expr::OuterReferenceColumn(..)) {
                    n += 1;
                }
                Ok(TreeNodeRecursion::Continue)
            });
            Ok(TreeNodeRecursion::Continue)
        });
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

/// Occurrences of columns of relation `alias` in `e`.
fn count_columns_of(e: &Expr, alias: &str) -> usize {
    let mut n = 0;
    let _ = e.apply(|e| {
        if let Expr::Column(c) = e {
            if c.relation.as_ref().is_some_and(|r| r.table() == alias) {
                n += 1;
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    n
}

fn plan_has_outer(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|p| {
        found |= p.contains_outer_reference();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}
