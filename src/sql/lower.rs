//! Lowering: from DataFusion's optimized logical plan to a circuit of
//! incremental operators. A plan node without an incremental operator is
//! refused with a message naming it — never recomputed in full.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{ScalarValue, TableReference};
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, Volatility};
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_expr::{create_physical_expr, PhysicalExpr};

use super::SqlError;
use crate::dataflow::aggregate::{AggKind, AggSpec, Aggregate};
use crate::dataflow::circuit::{Input, Node, SourceSpec};
use crate::dataflow::filter::Filter;
use crate::dataflow::project::Project;
use crate::dataflow::union::Union;
use crate::dataflow::{Circuit, Operator};

/// What lowering needs to know about a relation a plan scans.
#[derive(Debug, Clone)]
pub struct ScanTarget {
    pub id: u64,
    pub name: String,
    /// Sources only ever grow; tables and views also retract.
    pub append_only: bool,
    /// A source's `WATERMARK FOR` column and delay.
    pub watermark: Option<(String, i64)>,
    /// Set when the scan is a SESSION window over the relation.
    pub session: Option<SessionScan>,
}

/// A SESSION window over a relation: partition columns, time column, gap.
#[derive(Debug, Clone)]
pub struct SessionScan {
    pub partition: Vec<usize>,
    pub ts: usize,
    pub gap_us: i64,
}

/// Maps a scan to the relation it reads.
pub type Resolver<'a> = dyn Fn(&TableReference, &Arc<dyn datafusion::logical_expr::TableSource>) -> Option<ScanTarget>
    + 'a;

/// A window's partition expressions and sort keys.
type WindowKeys = (
    Vec<Arc<dyn PhysicalExpr>>,
    Vec<crate::dataflow::topn::SortKey>,
);

fn unsupported(what: impl Into<String>) -> SqlError {
    SqlError::Unsupported(format!(
        "{} is not supported in materialized views yet",
        what.into()
    ))
}

/// Refuses plans whose result depends on when they run (`now()`,
/// `random()`): a view must be a function of its inputs.
pub fn check_deterministic(plan: &LogicalPlan) -> Result<(), SqlError> {
    let mut bad: Option<String> = None;
    let _ = plan.apply_with_subqueries(|p| {
        let _ = p.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    if f.func.signature().volatility != Volatility::Immutable {
                        bad = Some(format!("{}()", f.func.name()));
                        return Ok(TreeNodeRecursion::Stop);
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })
        });
        Ok(if bad.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    match bad {
        Some(f) if f == "now()" || f == "current_timestamp()" => {
            Err(SqlError::Unsupported(format!(
                "{f} in a materialized view is only supported as a temporal filter \
             (WHERE column > now() - INTERVAL '…') on a query that reads one relation"
            )))
        }
        Some(f) => Err(SqlError::Unsupported(format!(
            "{f} is not supported in materialized views: its value depends on when it runs"
        ))),
        None => Ok(()),
    }
}

/// Lowers an optimized plan. `resolve` maps a scanned table to its relation;
/// `emit_on_close` asks for EMIT ON WINDOW CLOSE.
pub fn lower(
    plan: &LogicalPlan,
    resolve: &Resolver,
    emit_on_close: bool,
    temporal: &[super::temporal::TemporalSpec],
) -> Result<Circuit, SqlError> {
    let mut l = Lowerer {
        temporal,
        uses_clock: false,
        resolve,
        props: ExecutionProps::new(),
        sources: Vec::new(),
        source_ids: HashMap::new(),
        nodes: Vec::new(),
        event_times: Vec::new(),
    };
    let (out, append_only) = l.lower(plan)?;
    if !temporal.is_empty() && !l.uses_clock {
        return Err(SqlError::Plan(
            "a temporal filter did not find the relation it filters".into(),
        ));
    }
    let uses_clock = l.uses_clock;
    if emit_on_close {
        let mut c = l.finish_emit_on_close(out)?;
        c.uses_clock = uses_clock;
        return Ok(c);
    }
    // A view that is just a scan still needs one operator.
    if let Input::Source(_) = out {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let exprs = (0..schema.fields().len())
            .map(|i| {
                Arc::new(datafusion::physical_expr::expressions::Column::new(
                    schema.field(i).name(),
                    i,
                )) as Arc<dyn PhysicalExpr>
            })
            .collect();
        l.push(Box::new(Project::new(exprs, schema)), vec![out]);
    }
    let mut c = Circuit::new(l.sources, l.nodes, append_only && !uses_clock)
        .map_err(|e| SqlError::Plan(e.to_string()))?;
    c.set_event_times(l.event_times);
    c.uses_clock = uses_clock;
    Ok(c)
}

struct Lowerer<'a> {
    resolve: &'a Resolver<'a>,
    props: ExecutionProps,
    sources: Vec<SourceSpec>,
    source_ids: HashMap<(u64, bool), usize>,
    nodes: Vec<Node>,
    temporal: &'a [super::temporal::TemporalSpec],
    uses_clock: bool,
    /// The sources read that declare a watermark.
    event_times: Vec<crate::dataflow::watermark::EventTime>,
}

impl Lowerer<'_> {
    /// The circuit source reading `target` (one per relation and shape).
    fn source_index(
        &mut self,
        target: &ScanTarget,
        with_offset: bool,
        schema: &datafusion::arrow::datatypes::SchemaRef,
    ) -> usize {
        if let Some(i) = self.source_ids.get(&(target.id, with_offset)) {
            return *i;
        }
        self.sources.push(SourceSpec {
            relation: target.id,
            name: target.name.clone(),
            with_offset,
            schema: schema.clone(),
        });
        let i = self.sources.len() - 1;
        self.source_ids.insert((target.id, with_offset), i);
        if let Some((col, delay)) = &target.watermark {
            if let Ok(column) = schema.index_of(col) {
                self.event_times
                    .push(crate::dataflow::watermark::EventTime::new(
                        i, column, *delay,
                    ));
            }
        }
        i
    }

    /// A SESSION window: the relation's rows through the incremental
    /// session operator, then the scan's projection.
    fn lower_session(
        &mut self,
        s: &datafusion::logical_expr::TableScan,
        target: &ScanTarget,
        sess: &SessionScan,
    ) -> Result<(Input, bool), SqlError> {
        let full = Arc::new(s.source.schema().as_ref().clone());
        // the relation's own columns: all but the two window bounds
        let n = full.fields().len().saturating_sub(2);
        let rel_schema = Arc::new(
            full.project(&(0..n).collect::<Vec<_>>())
                .map_err(|e| SqlError::Plan(e.to_string()))?,
        );
        let idx = self.source_index(target, false, &rel_schema);
        let op = crate::dataflow::session::SessionWindow::new(
            rel_schema,
            sess.partition.clone(),
            sess.ts,
            sess.gap_us,
        )
        .map_err(|e| SqlError::Plan(e.to_string()))?;
        let out_schema = op.output_schema();
        let node = self.push(Box::new(op), vec![Input::Source(idx)]);
        match &s.projection {
            Some(p) if *p != (0..out_schema.fields().len()).collect::<Vec<_>>() => {
                let exprs = p
                    .iter()
                    .map(|&i| {
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            out_schema.field(i).name(),
                            i,
                        )) as Arc<dyn PhysicalExpr>
                    })
                    .collect();
                let schema = Arc::new(s.projected_schema.as_arrow().clone());
                Ok((
                    self.push(Box::new(Project::new(exprs, schema)), vec![node]),
                    false,
                ))
            }
            _ => Ok((node, false)),
        }
    }

    /// Appends EMIT ON WINDOW CLOSE to the circuit: the output's rows are
    /// held until the watermark of one of its columns (preferably
    /// `window_end`, then `window_start`) makes them final.
    fn finish_emit_on_close(self, out: Input) -> Result<Circuit, SqlError> {
        let refuse = || {
            SqlError::Unsupported(
                "EMIT ON WINDOW CLOSE needs a column of the view's output that carries a \
                 watermark: window_start or window_end of a window over a source with \
                 WATERMARK FOR its time column"
                    .into(),
            )
        };
        let Input::Node(last) = out else {
            return Err(refuse());
        };
        let schema = self.nodes[last].op.schema();
        let mut c = Circuit::new(self.sources, self.nodes, false)
            .map_err(|e| SqlError::Plan(e.to_string()))?;
        let marked = c.set_event_times(self.event_times.clone());
        let name_of = |i: usize| schema.field(i).name().as_str();
        let column = (0..marked.len())
            .filter(|&i| marked[i])
            .min_by_key(|&i| match name_of(i) {
                "window_end" => 0,
                "window_start" => 1,
                _ => 2,
            })
            .ok_or_else(refuse)?;
        let op = crate::dataflow::emit::EmitOnClose::new(schema, column)
            .map_err(|e| SqlError::Plan(e.to_string()))?;
        c.nodes.push(Node {
            op: Box::new(op),
            inputs: vec![Input::Node(last)],
        });
        c.append_only = true;
        c.set_event_times(self.event_times);
        Ok(c)
    }

    fn push(&mut self, op: Box<dyn Operator>, inputs: Vec<Input>) -> Input {
        self.nodes.push(Node { op, inputs });
        Input::Node(self.nodes.len() - 1)
    }

    fn physical(
        &self,
        e: &Expr,
        input: &datafusion::common::DFSchema,
    ) -> Result<Arc<dyn PhysicalExpr>, SqlError> {
        let mut subquery = false;
        let _ = e.apply(|x| {
            if matches!(
                x,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ) {
                subquery = true;
                return Ok(TreeNodeRecursion::Stop);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if subquery {
            return Err(unsupported("a subquery in an expression"));
        }
        create_physical_expr(
            e,
            input,
            &self.props,
            &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext::default(
            ),
        )
        .map_err(|e| SqlError::Plan(e.to_string()))
    }

    /// Returns the node producing the plan's rows, and whether those rows
    /// are append-only.
    fn lower(&mut self, plan: &LogicalPlan) -> Result<(Input, bool), SqlError> {
        match plan {
            LogicalPlan::TableScan(s) => {
                if s.fetch.is_some() {
                    return Err(unsupported("LIMIT"));
                }
                // (filters pushed into a scan are only those an index could
                // use, reported `Inexact`: the Filter above still applies
                // them, so the circuit ignores them here)
                let target = (self.resolve)(&s.table_name, &s.source)
                    .ok_or_else(|| unsupported(format!("reading {}", s.table_name)))?;
                if let Some(sess) = &target.session {
                    return self.lower_session(s, &target, sess);
                }
                let with_offset = s.table_name.schema() == Some(super::rewrite::OFFSETS_SCHEMA);
                let full_schema = Arc::new(s.source.schema().as_ref().clone());
                let idx = self.source_index(&target, with_offset, &full_schema);
                let mut input = Input::Source(idx);
                let mut append_only = target.append_only;
                for t in self.temporal.iter().filter(|t| t.relation == target.name) {
                    let column = full_schema.index_of(&t.column).map_err(|_| {
                        SqlError::UndefinedColumn(format!(
                            "column \"{}\" does not exist in \"{}\"",
                            t.column, t.relation
                        ))
                    })?;
                    if !matches!(
                        full_schema.field(column).data_type(),
                        datafusion::arrow::datatypes::DataType::Timestamp(_, _)
                    ) {
                        return Err(SqlError::DatatypeMismatch(format!(
                            "a temporal filter needs a timestamp column, and \"{}\" is not one",
                            t.column
                        )));
                    }
                    let op = crate::dataflow::temporal::TemporalFilter::new(
                        full_schema.clone(),
                        column,
                        t.interval_us,
                        t.inclusive,
                    )
                    .map_err(|e| SqlError::Plan(e.to_string()))?;
                    input = self.push(Box::new(op), vec![input]);
                    append_only = false;
                    self.uses_clock = true;
                }
                match &s.projection {
                    Some(p) if *p != (0..full_schema.fields().len()).collect::<Vec<_>>() => {
                        let exprs = p
                            .iter()
                            .map(|&i| {
                                Arc::new(datafusion::physical_expr::expressions::Column::new(
                                    full_schema.field(i).name(),
                                    i,
                                )) as Arc<dyn PhysicalExpr>
                            })
                            .collect();
                        let schema = Arc::new(s.projected_schema.as_arrow().clone());
                        let node = self.push(Box::new(Project::new(exprs, schema)), vec![input]);
                        Ok((node, append_only))
                    }
                    _ => Ok((input, append_only)),
                }
            }
            LogicalPlan::Projection(p) => {
                let (input, ao) = self.lower(&p.input)?;
                Ok((self.project(p, input)?, ao))
            }
            LogicalPlan::Filter(f) => {
                if let LogicalPlan::Window(w) = f.input.as_ref() {
                    if let Some(top) = self.lower_row_number_top_n(w, &f.predicate)? {
                        return Ok((top, false));
                    }
                }
                // the same with the window's unused columns projected away
                // in between: the predicate read through the projection
                if let LogicalPlan::Projection(p) = f.input.as_ref() {
                    if let LogicalPlan::Window(w) = p.input.as_ref() {
                        let pred = f
                            .predicate
                            .clone()
                            .transform(|e| {
                                use datafusion::common::tree_node::Transformed;
                                Ok(match &e {
                                    Expr::Column(c) => match p.schema.index_of_column(c) {
                                        Ok(i) => Transformed::yes(p.expr[i].clone().unalias()),
                                        Err(_) => Transformed::no(e),
                                    },
                                    _ => Transformed::no(e),
                                })
                            })
                            .map_err(|e| SqlError::Plan(e.to_string()))?
                            .data;
                        if let Some(top) = self.lower_row_number_top_n(w, &pred)? {
                            return Ok((self.project(p, top)?, false));
                        }
                    }
                }
                let (input, ao) = self.lower(&f.input)?;
                let pred = self.physical(&f.predicate, f.input.schema())?;
                let schema = Arc::new(f.input.schema().as_arrow().clone());
                Ok((
                    self.push(Box::new(Filter::new(pred, schema)), vec![input]),
                    ao,
                ))
            }
            LogicalPlan::SubqueryAlias(a) => self.lower(&a.input),
            LogicalPlan::Sort(s) if s.fetch.is_none() => {
                // A view is a set; its order is given by the SELECT that reads it.
                self.lower(&s.input)
            }
            LogicalPlan::Union(u) => {
                let mut inputs = Vec::with_capacity(u.inputs.len());
                let mut ao = true;
                for i in &u.inputs {
                    let (n, a) = self.lower(i)?;
                    inputs.push(n);
                    ao &= a;
                }
                let schema = Arc::new(u.schema.as_arrow().clone());
                Ok((
                    self.push(Box::new(Union::new(inputs.len(), schema)), inputs),
                    ao,
                ))
            }
            LogicalPlan::Aggregate(a)
                if a.group_expr
                    .iter()
                    .any(|g| matches!(g, Expr::GroupingSet(_))) =>
            {
                self.lower_grouping_sets(a)
            }
            LogicalPlan::Aggregate(a) => {
                let (input, ao) = self.lower(&a.input)?;
                let in_schema = a.input.schema();
                let arrow_in = in_schema.as_arrow();
                let mut group_exprs = Vec::with_capacity(a.group_expr.len());
                let mut group_types = Vec::with_capacity(a.group_expr.len());
                for g in &a.group_expr {
                    let pe = self.physical(g, in_schema)?;
                    group_types.push(
                        pe.data_type(arrow_in)
                            .map_err(|e| SqlError::Plan(e.to_string()))?,
                    );
                    group_exprs.push(pe);
                }
                let mut aggs = Vec::with_capacity(a.aggr_expr.len());
                for (j, e) in a.aggr_expr.iter().enumerate() {
                    let output = a.schema.field(a.group_expr.len() + j).as_ref().clone();
                    aggs.push(self.agg_spec(e, in_schema, output)?);
                }
                let schema = Arc::new(a.schema.as_arrow().clone());
                let op = Aggregate::new(group_exprs, group_types, aggs, arrow_in, schema, ao)
                    .map_err(|e| SqlError::Plan(e.to_string()))?;
                Ok((self.push(Box::new(op), vec![input]), false))
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let (node, ao) = self.lower(input)?;
                let schema = Arc::new(input.schema().as_arrow().clone());
                let group_exprs: Vec<Arc<dyn PhysicalExpr>> = (0..schema.fields().len())
                    .map(|i| {
                        Arc::new(datafusion::physical_expr::expressions::Column::new(
                            schema.field(i).name(),
                            i,
                        )) as Arc<dyn PhysicalExpr>
                    })
                    .collect();
                let types = schema
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect();
                let op = Aggregate::new(group_exprs, types, vec![], &schema, schema.clone(), ao)
                    .map_err(|e| SqlError::Plan(e.to_string()))?;
                Ok((self.push(Box::new(op), vec![node]), false))
            }
            LogicalPlan::Distinct(Distinct::On(_)) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::Join(j) => self.lower_join(j),
            LogicalPlan::Sort(s) => {
                // ORDER BY … LIMIT n (the optimizer folds the limit in)
                let fetch = s.fetch.unwrap_or(usize::MAX);
                self.lower_top_n(s, 0, fetch)
            }
            LogicalPlan::Limit(l) => {
                use datafusion::logical_expr::{FetchType, SkipType};
                let skip = match l.get_skip_type() {
                    Ok(SkipType::Literal(k)) => k,
                    _ => return Err(unsupported("an OFFSET that is not a constant")),
                };
                let fetch = match l.get_fetch_type() {
                    Ok(FetchType::Literal(Some(n))) => n,
                    Ok(FetchType::Literal(None)) => usize::MAX,
                    _ => return Err(unsupported("a LIMIT that is not a constant")),
                };
                match l.input.as_ref() {
                    LogicalPlan::Sort(s) => self.lower_top_n(s, skip, fetch),
                    _ => Err(unsupported(
                        "LIMIT / OFFSET without ORDER BY (which rows is not defined)",
                    )),
                }
            }
            LogicalPlan::Window(w) => Ok((self.lower_window(w)?, false)),
            LogicalPlan::Values(_) => Err(unsupported("VALUES")),
            // a relation that never has a row (a WHERE the optimizer found
            // always false): the sum of no inputs
            LogicalPlan::EmptyRelation(e) if !e.produce_one_row => {
                let schema = Arc::new(e.schema.as_arrow().clone());
                let op = crate::dataflow::union::Union::new(0, schema);
                Ok((self.push(Box::new(op), vec![]), true))
            }
            LogicalPlan::EmptyRelation(_) => Err(unsupported("a SELECT without FROM")),
            LogicalPlan::Unnest(_) => Err(unsupported("UNNEST")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("WITH RECURSIVE")),
            LogicalPlan::Subquery(_) => Err(unsupported("a subquery in an expression")),
            other => Err(unsupported(format!("the plan node {}", other.display()))),
        }
    }

    /// `row_number() OVER (PARTITION BY p ORDER BY o) <= n` (or `< n`) over
    /// a window with that one function: a top-N per partition that outputs
    /// each row with its row number. `None` when the plan is not of that
    /// shape.
    fn lower_row_number_top_n(
        &mut self,
        w: &datafusion::logical_expr::Window,
        predicate: &Expr,
    ) -> Result<Option<Input>, SqlError> {
        use datafusion::logical_expr::{BinaryExpr, Operator as Op};
        let [wexpr] = w.window_expr.as_slice() else {
            return Ok(None);
        };
        let inner = match wexpr {
            Expr::Alias(a) => a.expr.as_ref(),
            e => e,
        };
        let Expr::WindowFunction(wf) = inner else {
            return Ok(None);
        };
        use crate::dataflow::topn::Numbering;
        let numbering = match wf.fun.name() {
            "row_number" => Numbering::RowNumber,
            "rank" => Numbering::Rank,
            "dense_rank" => Numbering::DenseRank,
            _ => return Ok(None),
        };
        if wf.params.order_by.is_empty() {
            return Ok(None);
        }
        // the window column's name in the Window node's output
        let n_in = w.input.schema().fields().len();
        let (qualifier, field) = w.schema.qualified_field(n_in);
        let column = datafusion::common::Column::new(qualifier.cloned(), field.name());
        let is_rn = |e: &Expr| match e {
            Expr::Column(c) => *c == column,
            Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Column(c) if *c == column),
            _ => false,
        };
        let limit = |e: &Expr| -> Option<i64> {
            match e {
                Expr::Literal(v, _) => v
                    .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                    .ok()
                    .and_then(|v| match v {
                        datafusion::common::ScalarValue::Int64(Some(n)) => Some(n),
                        _ => None,
                    }),
                _ => None,
            }
        };
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
            return Ok(None);
        };
        let fetch = match (is_rn(left), *op, is_rn(right)) {
            (true, Op::LtEq, false) => limit(right),
            (true, Op::Lt, false) => limit(right).map(|n| n - 1),
            (false, Op::GtEq, true) => limit(left),
            (false, Op::Gt, true) => limit(left).map(|n| n - 1),
            (true, Op::Eq, false) if limit(right) == Some(1) => Some(1),
            _ => None,
        };
        let Some(fetch) = fetch else {
            return Ok(None);
        };
        let fetch = usize::try_from(fetch.max(0)).unwrap_or(0);
        let (input, _) = self.lower(&w.input)?;
        let in_schema = w.input.schema();
        let (partition, order) =
            self.partition_order(&wf.params.partition_by, &wf.params.order_by, in_schema)?;
        let op = crate::dataflow::topn::TopN::new(
            partition,
            order,
            0,
            fetch,
            Arc::new(in_schema.as_arrow().clone()),
        )
        .map_err(|e| SqlError::Plan(e.to_string()))?
        .numbered(numbering, Arc::new(w.schema.as_arrow().clone()));
        Ok(Some(self.push(Box::new(op), vec![input])))
    }

    /// A window node: its functions share one PARTITION BY / ORDER BY.
    fn lower_window(&mut self, w: &datafusion::logical_expr::Window) -> Result<Input, SqlError> {
        use crate::dataflow::over::{AggKind as WinAgg, Over, Pick, WinFn};
        let in_schema = w.input.schema();
        let n_in = in_schema.fields().len();
        let mut spec: Option<(&[Expr], &[datafusion::logical_expr::SortExpr])> = None;
        let mut args: Vec<(Arc<dyn PhysicalExpr>, DataType)> = Vec::new();
        let mut funcs = Vec::with_capacity(w.window_expr.len());
        for (i, e) in w.window_expr.iter().enumerate() {
            let inner = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(wf) = inner else {
                return Err(unsupported(format!("the window expression {e}")));
            };
            let p = &wf.params;
            match spec {
                None => spec = Some((&p.partition_by, &p.order_by)),
                Some((part, order))
                    if part == p.partition_by.as_slice() && order == p.order_by.as_slice() => {}
                Some(_) => {
                    return Err(unsupported(
                        "window functions with different PARTITION BY / ORDER BY in one node",
                    ))
                }
            }
            let name = wf.fun.name().to_ascii_lowercase();
            if p.filter.is_some() {
                return Err(unsupported(format!("{name}(...) FILTER in a window")));
            }
            if p.distinct {
                return Err(unsupported(format!("{name}(DISTINCT ...) OVER")));
            }
            if matches!(
                p.null_treatment,
                Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
            ) {
                return Err(unsupported(format!("{name}(...) IGNORE NULLS")));
            }
            let out_type = w.schema.field(n_in + i).data_type().clone();
            let mut arg = |e: &Expr, t: DataType| -> Result<usize, SqlError> {
                args.push((self.physical(e, in_schema)?, t));
                Ok(args.len() - 1)
            };
            let literal = |e: &Expr| -> Option<ScalarValue> {
                match e {
                    Expr::Literal(v, _) => Some(v.clone()),
                    Expr::Cast(c) => match c.expr.as_ref() {
                        Expr::Literal(v, _) => v.cast_to(c.field.data_type()).ok(),
                        _ => None,
                    },
                    Expr::Negative(n) => match n.as_ref() {
                        Expr::Literal(v, _) => v.arithmetic_negate().ok(),
                        _ => None,
                    },
                    _ => None,
                }
            };
            let f = match name.as_str() {
                "row_number" => WinFn::RowNumber,
                "rank" => WinFn::Rank,
                "dense_rank" => WinFn::DenseRank,
                "lag" | "lead" => {
                    let Some(value) = p.args.first() else {
                        return Err(unsupported(format!("{name}() without an argument")));
                    };
                    let offset = match p.args.get(1) {
                        None => 1,
                        Some(o) => {
                            match literal(o).and_then(|v| v.cast_to(&DataType::Int64).ok()) {
                                Some(ScalarValue::Int64(Some(n))) => n,
                                _ => {
                                    return Err(unsupported(format!(
                                        "a {name} offset that is not a constant"
                                    )))
                                }
                            }
                        }
                    };
                    let default = match p.args.get(2) {
                        None => ScalarValue::try_from(&out_type)
                            .map_err(|e| SqlError::Plan(e.to_string()))?,
                        Some(d) => match literal(d).and_then(|v| v.cast_to(&out_type).ok()) {
                            Some(v) => v,
                            None => {
                                return Err(unsupported(format!(
                                    "a {name} default that is not a constant"
                                )))
                            }
                        },
                    };
                    let offset = if name == "lag" {
                        offset
                    } else {
                        offset.checked_neg().unwrap_or(i64::MAX)
                    };
                    WinFn::Lag {
                        arg: arg(value, out_type.clone())?,
                        offset,
                        default,
                    }
                }
                "sum" | "count" | "min" | "max" | "avg" => {
                    let kind = match name.as_str() {
                        "sum" => WinAgg::Sum,
                        "count" => WinAgg::Count,
                        "min" => WinAgg::Min,
                        "max" => WinAgg::Max,
                        _ => WinAgg::Avg,
                    };
                    let frame = frame_of(p)?;
                    let value = match p.args.as_slice() {
                        [] => Expr::Literal(ScalarValue::Int64(Some(1)), None),
                        [v] => v.clone(),
                        _ => return Err(unsupported(format!("{name}() over several arguments"))),
                    };
                    let t = match kind {
                        WinAgg::Count => self
                            .physical(&value, in_schema)?
                            .data_type(in_schema.as_arrow())
                            .map_err(|e| SqlError::Plan(e.to_string()))?,
                        WinAgg::Avg if out_type != DataType::Float64 => {
                            return Err(unsupported(format!("avg(...) OVER returning {out_type}")))
                        }
                        _ => out_type.clone(),
                    };
                    WinFn::Agg {
                        kind,
                        arg: arg(&value, t)?,
                        frame,
                    }
                }
                "first_value" | "last_value" | "nth_value" => {
                    let pick = match name.as_str() {
                        "first_value" => Pick::First,
                        "last_value" => Pick::Last,
                        _ => match p
                            .args
                            .get(1)
                            .and_then(literal)
                            .and_then(|v| v.cast_to(&DataType::Int64).ok())
                        {
                            Some(ScalarValue::Int64(Some(n))) if n > 0 => {
                                Pick::Nth(usize::try_from(n).unwrap_or(usize::MAX))
                            }
                            _ => {
                                return Err(unsupported(
                                    "an nth_value position that is not a positive constant",
                                ))
                            }
                        },
                    };
                    let Some(value) = p.args.first() else {
                        return Err(unsupported(format!("{name}() without an argument")));
                    };
                    WinFn::Value {
                        pick,
                        arg: arg(value, out_type.clone())?,
                        frame: frame_of(p)?,
                    }
                }
                "ntile" => match p
                    .args
                    .first()
                    .and_then(literal)
                    .and_then(|v| v.cast_to(&DataType::Int64).ok())
                {
                    Some(ScalarValue::Int64(Some(n))) if n > 0 => WinFn::Ntile(n as u64),
                    _ => {
                        return Err(unsupported(
                            "an ntile bucket count that is not a positive constant",
                        ))
                    }
                },
                other => return Err(unsupported(format!("the window function {other}"))),
            };
            funcs.push(f);
        }
        let (partition_by, order_by) = spec.unwrap_or((&[], &[]));
        let (partition, order) = self.partition_order(partition_by, order_by, in_schema)?;
        let (input, _) = self.lower(&w.input)?;
        let op = Over::new(
            partition,
            order,
            args,
            funcs,
            Arc::new(in_schema.as_arrow().clone()),
            Arc::new(w.schema.as_arrow().clone()),
        )
        .map_err(|e| SqlError::Plan(e.to_string()))?;
        Ok(self.push(Box::new(op), vec![input]))
    }

    /// A projection over the lowered `input`.
    fn project(
        &mut self,
        p: &datafusion::logical_expr::Projection,
        input: Input,
    ) -> Result<Input, SqlError> {
        let exprs = p
            .expr
            .iter()
            .map(|e| self.physical(e, p.input.schema()))
            .collect::<Result<Vec<_>, _>>()?;
        let schema = Arc::new(p.schema.as_arrow().clone());
        Ok(self.push(Box::new(Project::new(exprs, schema)), vec![input]))
    }

    /// `GROUP BY GROUPING SETS / ROLLUP / CUBE` as the union of one
    /// grouping per set over the same input, each padded to the full
    /// output: NULL for the columns its set leaves out and the set's
    /// `__grouping_id` (the value DataFusion gives it: a bit per grouping
    /// column, set where the column is left out, the last column in the
    /// lowest bit; a repeated set's ordinal above those bits).
    fn lower_grouping_sets(
        &mut self,
        a: &datafusion::logical_expr::Aggregate,
    ) -> Result<(Input, bool), SqlError> {
        use datafusion::logical_expr::GroupingSet;
        use datafusion::physical_expr::expressions::{Column, Literal};
        let [Expr::GroupingSet(gs)] = a.group_expr.as_slice() else {
            return Err(unsupported(
                "GROUPING SETS together with other GROUP BY keys",
            ));
        };
        let all = gs.distinct_expr();
        let n = all.len();
        let sets: Vec<Vec<&Expr>> = match gs {
            GroupingSet::GroupingSets(sets) => sets.iter().map(|s| s.iter().collect()).collect(),
            GroupingSet::Rollup(exprs) => (0..=exprs.len())
                .rev()
                .map(|i| exprs[..i].iter().collect())
                .collect(),
            GroupingSet::Cube(exprs) => (0..1usize << exprs.len())
                .map(|m| {
                    exprs
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| m & (1 << i) != 0)
                        .map(|(_, e)| e)
                        .collect()
                })
                .collect(),
        };
        if n > 63 {
            return Err(unsupported("GROUPING SETS over more than 63 columns"));
        }
        let (input, ao) = self.lower(&a.input)?;
        let in_schema = a.input.schema();
        let arrow_in = in_schema.as_arrow();
        let out_schema = a.schema.as_arrow();
        let id_type = out_schema.field(n).data_type().clone();
        let mut seen: HashMap<u64, u64> = HashMap::new();
        let mut branches = Vec::with_capacity(sets.len());
        for set in &sets {
            // the set's columns, in the order of all grouping columns
            let members: Vec<usize> = (0..n).filter(|&i| set.contains(&all[i])).collect();
            let mut group_exprs = Vec::with_capacity(members.len());
            let mut group_types = Vec::with_capacity(members.len());
            let mut fields = Vec::with_capacity(members.len() + a.aggr_expr.len());
            for &i in &members {
                let pe = self.physical(all[i], in_schema)?;
                group_types.push(
                    pe.data_type(arrow_in)
                        .map_err(|e| SqlError::Plan(e.to_string()))?,
                );
                group_exprs.push(pe);
                fields.push(out_schema.field(i).clone());
            }
            let mut aggs = Vec::with_capacity(a.aggr_expr.len());
            for (j, e) in a.aggr_expr.iter().enumerate() {
                let output = out_schema.field(n + 1 + j).clone();
                fields.push(output.clone());
                aggs.push(self.agg_spec(e, in_schema, output)?);
            }
            let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
            let op = Aggregate::new(group_exprs, group_types, aggs, arrow_in, schema.clone(), ao)
                .map_err(|e| SqlError::Plan(e.to_string()))?;
            let grouped = self.push(Box::new(op), vec![input]);
            let left_out =
                (0..n).fold(0u64, |acc, i| (acc << 1) | u64::from(!members.contains(&i)));
            let ordinal = seen.entry(left_out).or_insert(0);
            let id = left_out | (*ordinal << n);
            *ordinal += 1;
            let mut exprs: Vec<Arc<dyn PhysicalExpr>> =
                Vec::with_capacity(out_schema.fields().len());
            for i in 0..n {
                let f = out_schema.field(i);
                exprs.push(match members.iter().position(|&m| m == i) {
                    Some(k) => Arc::new(Column::new(f.name(), k)),
                    None => Arc::new(Literal::new(
                        ScalarValue::try_from(f.data_type())
                            .map_err(|e| SqlError::Plan(e.to_string()))?,
                    )),
                });
            }
            let id = ScalarValue::UInt64(Some(id))
                .cast_to(&id_type)
                .map_err(|e| SqlError::Plan(e.to_string()))?;
            exprs.push(Arc::new(Literal::new(id)));
            for j in 0..a.aggr_expr.len() {
                let f = out_schema.field(n + 1 + j);
                exprs.push(Arc::new(Column::new(f.name(), members.len() + j)));
            }
            let out = Arc::new(out_schema.clone());
            branches.push(self.push(Box::new(Project::new(exprs, out)), vec![grouped]));
        }
        let out = Arc::new(out_schema.clone());
        Ok((
            self.push(Box::new(Union::new(branches.len(), out)), branches),
            false,
        ))
    }

    /// A window's PARTITION BY and ORDER BY as physical expressions.
    fn partition_order(
        &self,
        partition_by: &[Expr],
        order_by: &[datafusion::logical_expr::SortExpr],
        input: &datafusion::common::DFSchema,
    ) -> Result<WindowKeys, SqlError> {
        let partition = partition_by
            .iter()
            .map(|e| self.physical(e, input))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((partition, self.sort_keys(order_by, input)?))
    }

    /// ORDER BY expressions as physical expressions with their directions.
    fn sort_keys(
        &self,
        exprs: &[datafusion::logical_expr::SortExpr],
        input: &datafusion::common::DFSchema,
    ) -> Result<Vec<crate::dataflow::topn::SortKey>, SqlError> {
        exprs
            .iter()
            .map(|e| {
                Ok((
                    self.physical(&e.expr, input)?,
                    datafusion::arrow::compute::SortOptions {
                        descending: !e.asc,
                        nulls_first: e.nulls_first,
                    },
                ))
            })
            .collect()
    }

    /// `ORDER BY … LIMIT n OFFSET k` as a top-N operator.
    fn lower_top_n(
        &mut self,
        s: &datafusion::logical_expr::Sort,
        skip: usize,
        fetch: usize,
    ) -> Result<(Input, bool), SqlError> {
        if fetch == usize::MAX {
            return Err(unsupported("OFFSET without LIMIT"));
        }
        let (input, _) = self.lower(&s.input)?;
        let in_schema = s.input.schema();
        let order = self.sort_keys(&s.expr, in_schema)?;
        let op = crate::dataflow::topn::TopN::new(
            vec![],
            order,
            skip,
            fetch,
            Arc::new(in_schema.as_arrow().clone()),
        )
        .map_err(|e| SqlError::Plan(e.to_string()))?;
        Ok((self.push(Box::new(op), vec![input]), false))
    }

    /// An equi-join (inner, outer, semi, anti) with its residual predicate.
    fn lower_join(
        &mut self,
        j: &datafusion::logical_expr::Join,
    ) -> Result<(Input, bool), SqlError> {
        use crate::dataflow::join::{Join, JoinKind};
        use datafusion::common::{JoinType, NullEquality};
        if j.null_aware {
            return Err(unsupported("NOT IN (subquery)"));
        }
        let kind = match j.join_type {
            JoinType::Inner => JoinKind::Inner,
            JoinType::Left => JoinKind::Left,
            JoinType::Right => JoinKind::Right,
            JoinType::Full => JoinKind::Full,
            JoinType::LeftSemi => JoinKind::LeftSemi,
            JoinType::LeftAnti => JoinKind::LeftAnti,
            JoinType::RightSemi => JoinKind::RightSemi,
            JoinType::RightAnti => JoinKind::RightAnti,
            other => return Err(unsupported(format!("a {other} join"))),
        };
        let (left, left_ao) = self.lower(&j.left)?;
        let (right, right_ao) = self.lower(&j.right)?;
        let left_schema = j.left.schema();
        let right_schema = j.right.schema();
        let mut left_keys = Vec::with_capacity(j.on.len());
        let mut right_keys = Vec::with_capacity(j.on.len());
        let mut key_types = Vec::with_capacity(j.on.len());
        for (a, b) in &j.on {
            let pa = self.physical(a, left_schema)?;
            let pb = self.physical(b, right_schema)?;
            key_types.push(
                pa.data_type(left_schema.as_arrow())
                    .map_err(|e| SqlError::Plan(e.to_string()))?,
            );
            left_keys.push(pa);
            right_keys.push(pb);
        }
        let filter = match &j.filter {
            Some(f) => {
                let both = left_schema
                    .join(right_schema)
                    .map_err(|e| SqlError::Plan(e.to_string()))?;
                Some(self.physical(f, &both)?)
            }
            None => None,
        };
        let mut retire = match &j.filter {
            Some(f) => self.time_bounds(f, left_schema, right_schema, left_ao, right_ao)?,
            None => Vec::new(),
        };
        // window joins: equal keys with watermarks on both sides
        for (a, b) in &j.on {
            let (la, rb) = (
                self.physical(a, left_schema)?,
                self.physical(b, right_schema)?,
            );
            retire.push(crate::dataflow::join::Retire {
                side: crate::dataflow::join::Side::Left,
                expiry: la.clone(),
                bound: rb.clone(),
                own: (!left_ao).then(|| la.clone()),
                strict: false,
            });
            retire.push(crate::dataflow::join::Retire {
                side: crate::dataflow::join::Side::Right,
                expiry: rb.clone(),
                bound: la,
                own: (!right_ao).then_some(rb),
                strict: false,
            });
        }
        let band = match kind {
            JoinKind::Inner | JoinKind::Left => self.asof_band(j)?,
            _ => None,
        };
        if band.is_some() {
            // the intervals' ends move as right rows arrive: nothing retires
            retire.clear();
        }
        let op = Join::new(
            kind,
            left_keys,
            right_keys,
            key_types,
            j.null_equality == NullEquality::NullEqualsNull,
            filter,
            Arc::new(left_schema.as_arrow().clone()),
            Arc::new(right_schema.as_arrow().clone()),
            Arc::new(j.schema.as_arrow().clone()),
        )
        .map_err(|e| SqlError::Plan(e.to_string()))?
        .with_retire(retire);
        let op = match band {
            Some(b) => op.with_band(b),
            None => op,
        };
        let append_only = left_ao && right_ao && kind == JoinKind::Inner;
        Ok((self.push(Box::new(op), vec![left, right]), append_only))
    }

    /// The time index of an ASOF join as `sql::asof` plans it: a residual
    /// of exactly `r.lo <= l.t AND (r.next IS NULL OR l.t < r.next)` (or
    /// the strict `<` / `<=` pair), with `next` the rewrite's hidden
    /// column. `None` for any other join, which then probes whole keys.
    fn asof_band(
        &self,
        j: &datafusion::logical_expr::Join,
    ) -> Result<Option<crate::dataflow::band::Band>, SqlError> {
        use datafusion::logical_expr::{BinaryExpr, Operator as Op};
        let Some(filter) = &j.filter else {
            return Ok(None);
        };
        let conjuncts = datafusion::logical_expr::utils::split_conjunction(filter);
        let [a, b] = conjuncts.as_slice() else {
            return Ok(None);
        };
        let (lo_cmp, hi_part) = match (a, b) {
            (Expr::BinaryExpr(x), Expr::BinaryExpr(y)) if y.op == Op::Or => (x, y),
            (Expr::BinaryExpr(y), Expr::BinaryExpr(x)) if y.op == Op::Or => (x, y),
            _ => return Ok(None),
        };
        // (next IS NULL) OR (t <op> next)
        let (
            Expr::IsNull(next),
            Expr::BinaryExpr(BinaryExpr {
                left: t,
                op: hi_op,
                right: next2,
            }),
        ) = (hi_part.left.as_ref(), hi_part.right.as_ref())
        else {
            return Ok(None);
        };
        let Expr::Column(next_col) = next.as_ref() else {
            return Ok(None);
        };
        if !next_col.name.starts_with(crate::sql::asof::NEXT) || next2.as_ref() != next.as_ref() {
            return Ok(None);
        }
        // lo <op> t, the same t, with matching strictness
        if !matches!((lo_cmp.op, *hi_op), (Op::LtEq, Op::Lt) | (Op::Lt, Op::LtEq)) {
            return Ok(None);
        }
        if lo_cmp.right.as_ref() != t.as_ref() {
            return Ok(None);
        }
        let (left_schema, right_schema) = (j.left.schema(), j.right.schema());
        let (Ok(lt), Ok(lo), Ok(hi)) = (
            self.physical(t, left_schema),
            self.physical(&lo_cmp.left, right_schema),
            self.physical(next, right_schema),
        ) else {
            return Ok(None);
        };
        let types = (
            lt.data_type(left_schema.as_arrow()),
            lo.data_type(right_schema.as_arrow()),
            hi.data_type(right_schema.as_arrow()),
        );
        let (Ok(tt), Ok(lot), Ok(hit)) = types else {
            return Ok(None);
        };
        if tt != lot || tt != hit {
            return Ok(None);
        }
        crate::dataflow::band::Band::new(lt, lo, hi, tt)
            .map(Some)
            .map_err(|e| SqlError::Plan(e.to_string()))
    }

    /// The conjuncts `lo <= hi` (or `<`, `>=`, `>`, `BETWEEN`) of a join's
    /// residual predicate that compare an expression of one side with one
    /// of the other: each lets the rows of the `hi` side retire once the
    /// `lo` side's watermark passes them (see `dataflow::join::Retire`);
    /// rows of a side that retracts must also be below their own
    /// watermark.
    fn time_bounds(
        &self,
        filter: &Expr,
        left: &datafusion::common::DFSchema,
        right: &datafusion::common::DFSchema,
        left_ao: bool,
        right_ao: bool,
    ) -> Result<Vec<crate::dataflow::join::Retire>, SqlError> {
        use crate::dataflow::join::{Retire, Side};
        use datafusion::logical_expr::{Between, BinaryExpr, Operator as Op};
        let side_of = |e: &Expr| -> Option<Side> {
            let cols = e.column_refs();
            if cols.is_empty() {
                None
            } else if cols.iter().all(|c| left.has_column(c)) {
                Some(Side::Left)
            } else if cols.iter().all(|c| right.has_column(c)) {
                Some(Side::Right)
            } else {
                None
            }
        };
        // (lo, hi, strict): lo <= hi, or lo < hi
        let mut pairs: Vec<(&Expr, &Expr, bool)> = Vec::new();
        for c in datafusion::logical_expr::utils::split_conjunction(filter) {
            match c {
                Expr::BinaryExpr(BinaryExpr {
                    left: a,
                    op,
                    right: b,
                }) => match op {
                    Op::LtEq => pairs.push((a, b, false)),
                    Op::Lt => pairs.push((a, b, true)),
                    Op::GtEq => pairs.push((b, a, false)),
                    Op::Gt => pairs.push((b, a, true)),
                    _ => {}
                },
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) => {
                    pairs.push((low, expr, false));
                    pairs.push((expr, high, false));
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (lo, hi, strict) in pairs {
            let (Some(lo_side), Some(hi_side)) = (side_of(lo), side_of(hi)) else {
                continue;
            };
            if lo_side == hi_side {
                continue;
            }
            let (hi_schema, lo_schema, append_only) = match hi_side {
                Side::Left => (left, right, left_ao),
                Side::Right => (right, left, right_ao),
            };
            let expiry = self.physical(hi, hi_schema)?;
            out.push(Retire {
                side: hi_side,
                own: (!append_only).then(|| expiry.clone()),
                expiry,
                bound: self.physical(lo, lo_schema)?,
                strict,
            });
        }
        Ok(out)
    }

    fn agg_spec(
        &self,
        e: &Expr,
        input: &datafusion::common::DFSchema,
        output: datafusion::arrow::datatypes::Field,
    ) -> Result<AggSpec, SqlError> {
        let e = match e {
            Expr::Alias(a) => a.expr.as_ref(),
            other => other,
        };
        let Expr::AggregateFunction(f) = e else {
            return Err(unsupported(format!("the aggregate expression {e}")));
        };
        let name = f.func.name().to_ascii_lowercase();
        let p = &f.params;
        let filter = match &p.filter {
            Some(x) => Some(self.physical(x, input)?),
            None => None,
        };
        let arg0 = p.args.first();
        let is_literal = matches!(arg0, Some(Expr::Literal(v, _)) if !v.is_null());
        let kind = match (name.as_str(), p.distinct) {
            ("count", false) if p.args.is_empty() || is_literal => AggKind::CountStar,
            ("count", false) => AggKind::Count,
            ("count", true) => AggKind::CountDistinct,
            ("sum", false) => AggKind::Sum,
            ("avg" | "mean", false) => AggKind::Avg,
            ("min", _) => AggKind::Min,
            ("max", _) => AggKind::Max,
            ("bool_and", _) => AggKind::BoolAnd,
            ("bool_or", _) => AggKind::BoolOr,
            ("string_agg", false) => AggKind::StringAgg,
            ("array_agg", false) => AggKind::ArrayAgg,
            ("first_value", false) => AggKind::FirstValue,
            ("last_value", false) => AggKind::LastValue,
            (n, true) => return Err(unsupported(format!("{n}(DISTINCT ...)"))),
            (n, false) => return Err(unsupported(format!("the aggregate function {n}"))),
        };
        if kind == AggKind::CountDistinct && p.args.len() != 1 {
            return Err(unsupported("count(DISTINCT) over several columns"));
        }
        if p.null_treatment == Some(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls) {
            return Err(unsupported(format!("{name}(...) IGNORE NULLS")));
        }
        // Values are kept in the aggregate's ORDER BY (then by value, which
        // is also the order without one: PostgreSQL leaves it unspecified).
        let mut order = match kind {
            AggKind::StringAgg | AggKind::ArrayAgg | AggKind::FirstValue | AggKind::LastValue => {
                self.sort_keys(&p.order_by, input)?
            }
            // the order does not change the others' results
            _ => vec![],
        };
        if matches!(kind, AggKind::FirstValue | AggKind::LastValue) {
            // Rows that tie on the ORDER BY are ordered by the whole row, so
            // every first_value of one DISTINCT ON takes the same row.
            for (i, f) in input.fields().iter().enumerate() {
                let col: Arc<dyn PhysicalExpr> = Arc::new(
                    datafusion::physical_expr::expressions::Column::new(f.name(), i),
                );
                order.push((col, datafusion::arrow::compute::SortOptions::default()));
            }
        }
        let arg = match kind {
            AggKind::CountStar => None,
            _ => match arg0 {
                Some(a) => Some(self.physical(a, input)?),
                None => return Err(unsupported(format!("{name}() without an argument"))),
            },
        };
        let arg_type = match &arg {
            Some(a) => a
                .data_type(input.as_arrow())
                .map_err(|e| SqlError::Plan(e.to_string()))?,
            None => datafusion::arrow::datatypes::DataType::Null,
        };
        let delimiter = if kind == AggKind::StringAgg {
            match p.args.get(1) {
                Some(Expr::Literal(v, _)) => match v {
                    datafusion::common::ScalarValue::Utf8(s)
                    | datafusion::common::ScalarValue::Utf8View(s)
                    | datafusion::common::ScalarValue::LargeUtf8(s) => s.clone(),
                    _ => return Err(unsupported("a non-text string_agg delimiter")),
                },
                _ => return Err(unsupported("a string_agg delimiter that is not a constant")),
            }
        } else {
            None
        };
        Ok(AggSpec {
            kind,
            arg,
            delimiter,
            order,
            filter,
            output,
            arg_type,
        })
    }
}

/// The frame of a window function, where Freshet maintains it: from the
/// partition's start to the current row (with or without its peers), the
/// whole partition, or `ROWS BETWEEN` two offsets from the current row.
fn frame_of(
    p: &datafusion::logical_expr::expr::WindowFunctionParams,
) -> Result<crate::dataflow::over::Frame, SqlError> {
    use crate::dataflow::over::Frame;
    use datafusion::logical_expr::{WindowFrameBound as B, WindowFrameUnits as U};
    let frame = &p.window_frame;
    // a bound as an offset from the current row (None: unbounded)
    let offset = |b: &B| -> Option<i64> {
        let n = |v: &ScalarValue| match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) => Some(n),
            _ => None,
        };
        match b {
            B::CurrentRow => Some(0),
            B::Preceding(v) => n(v).map(|n| -n),
            B::Following(v) => n(v),
        }
    };
    Ok(match (&frame.units, &frame.start_bound, &frame.end_bound) {
        (_, s, B::Following(e)) if s.is_unbounded() && e.is_null() => Frame::Whole,
        (U::Range | U::Groups, _, _) if p.order_by.is_empty() => Frame::Whole,
        (U::Rows, s, B::CurrentRow) if s.is_unbounded() => Frame::Rows,
        (U::Range | U::Groups, s, B::CurrentRow) if s.is_unbounded() => Frame::Peers,
        (U::Rows, s, e) if !s.is_unbounded() && !e.is_unbounded() && !p.order_by.is_empty() => {
            match (offset(s), offset(e)) {
                (Some(start), Some(end)) => Frame::Sliding { start, end },
                _ => return Err(unsupported(format!("the window frame {frame}"))),
            }
        }
        _ => {
            return Err(unsupported(format!(
                "the window frame {frame} (frames from UNBOUNDED PRECEDING to CURRENT ROW, the whole partition, and ROWS BETWEEN offsets from the current row with an ORDER BY are supported)"
            )))
        }
    })
}
