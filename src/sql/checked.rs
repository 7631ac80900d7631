//! Integer arithmetic as in Postgres: `+`, `-`, `*` and unary minus on
//! `smallint`, `integer` and `bigint` fail with 22003 (`bigint out of
//! range`) instead of wrapping, and `sum(bigint)` is `numeric`
//! ([`SumAsNumeric`]), so it does not overflow at all.
//!
//! DataFusion's physical planner builds its arithmetic wrapping, with no
//! setting to change that, and folds constants with wrapping arithmetic
//! too. [`CheckedArithmetic`], an analyzer rule that runs after type
//! coercion (when both operands have their final, common type), replaces
//! integer arithmetic by functions that check; the rest of DataFusion
//! (constant folding included) then evaluates those, in ad-hoc queries and
//! in views alike.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult};
use datafusion::common::{DFSchema, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::expr::{AggregateFunction, BinaryExpr, Cast};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::analyzer::AnalyzerRule;

use super::SqlError;

/// The analyzer rule (module documentation).
#[derive(Debug, Default)]
pub struct CheckedArithmetic;

impl AnalyzerRule for CheckedArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        // (a changed aggregate type reaches the nodes above)
        super::optimizer::rewrite_expressions(plan, checked)
    }

    fn name(&self) -> &str {
        "freshet_checked_arithmetic"
    }
}

fn is_int(t: &DataType) -> bool {
    matches!(t, DataType::Int16 | DataType::Int32 | DataType::Int64)
}

/// The type of an expression whose integer arithmetic is already checked:
/// a checked operation knows its type, so a chain of them costs one step
/// per node, not its depth (`get_type` recurses into the whole subtree).
fn type_of(e: &Expr, schema: &DFSchema) -> Result<DataType> {
    if let Expr::ScalarFunction(f) = e {
        if let Some(op) = f.func.inner().downcast_ref::<CheckedOp>() {
            return Ok(op.ty.clone());
        }
    }
    e.get_type(schema)
}

fn checked(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply) =>
        {
            let (lt, rt) = (type_of(&left, schema), type_of(&right, schema));
            match (lt, rt) {
                (Ok(lt), Ok(rt)) if lt == rt && is_int(&lt) => Ok(Transformed::yes(
                    Arc::new(ScalarUDF::from(CheckedOp::new(op, lt))).call(vec![*left, *right]),
                )),
                _ => Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right,
                }))),
            }
        }
        Expr::Negative(inner) => match type_of(&inner, schema) {
            Ok(t) if is_int(&t) => Ok(Transformed::yes(
                Arc::new(ScalarUDF::from(CheckedOp::negate(t))).call(vec![*inner]),
            )),
            _ => Ok(Transformed::no(Expr::Negative(inner))),
        },
        other => Ok(Transformed::no(other)),
    }
}

/// `sum(bigint)` as `sum(CAST(x AS numeric))`, as Postgres types it (so it
/// does not overflow). An analyzer rule that runs *before* type coercion,
/// so that what uses the sum is coerced to its numeric type.
#[derive(Debug, Default)]
pub struct SumAsNumeric;

impl AnalyzerRule for SumAsNumeric {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::optimizer::rewrite_expressions(plan, numeric_sum)
    }

    fn name(&self) -> &str {
        "freshet_sum_as_numeric"
    }
}

fn is_bigint_sum(name: &str, args: &[Expr], schema: &DFSchema) -> bool {
    name.eq_ignore_ascii_case("sum")
        && args.len() == 1
        && matches!(args[0].get_type(schema), Ok(DataType::Int64))
}

fn to_numeric(mut args: Vec<Expr>) -> Vec<Expr> {
    let arg = args.remove(0);
    vec![Expr::Cast(Cast::new(
        Box::new(arg),
        DataType::Decimal128(38, 0),
    ))]
}

fn numeric_sum(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    use datafusion::logical_expr::expr::{WindowFunction, WindowFunctionDefinition};
    match e {
        Expr::AggregateFunction(f) if is_bigint_sum(f.func.name(), &f.params.args, schema) => {
            let p = f.params;
            Ok(Transformed::yes(Expr::AggregateFunction(
                AggregateFunction::new_udf(
                    f.func,
                    to_numeric(p.args),
                    p.distinct,
                    p.filter,
                    p.order_by,
                    p.null_treatment,
                ),
            )))
        }
        Expr::WindowFunction(w)
            if matches!(&w.fun, WindowFunctionDefinition::AggregateUDF(f)
                if is_bigint_sum(f.name(), &w.params.args, schema)) =>
        {
            let WindowFunction { fun, mut params } = *w;
            params.args = to_numeric(params.args);
            Ok(Transformed::yes(Expr::WindowFunction(Box::new(
                WindowFunction { fun, params },
            ))))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// Integer literals typed as Postgres types them: `integer` when the value
/// fits, `bigint` otherwise (DataFusion makes every one `bigint`). Runs
/// before type coercion, which then widens them as Postgres does
/// (`int_col + 1` stays `integer`, `bigint_col + 1` is `bigint`,
/// `2147483647 + 1` overflows). `LIMIT`/`OFFSET` keep their `bigint`. A
/// `VALUES` column whose entries are all such literals (or NULL) is
/// `integer`, as in Postgres, except under an `INSERT`, whose `VALUES` the
/// target table types.
#[derive(Debug, Default)]
pub struct IntegerLiterals;

impl AnalyzerRule for IntegerLiterals {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let insert = matches!(plan, LogicalPlan::Dml(_));
        plan.transform_up_with_subqueries(|node| {
            if matches!(node, LogicalPlan::Limit(_)) {
                return Ok(Transformed::no(node));
            }
            if let LogicalPlan::RecursiveQuery(rq) = node {
                return retype_work_table(rq);
            }
            if let LogicalPlan::Values(v) = node {
                return if insert {
                    Ok(Transformed::no(LogicalPlan::Values(v)))
                } else {
                    integer_values(v)
                };
            }
            // a set operation's column types were fixed from its inputs'
            // literals when it was planned: derive them again (type
            // coercion then widens them as Postgres does)
            if let LogicalPlan::Union(u) = node {
                return Ok(Transformed::yes(LogicalPlan::Union(
                    datafusion::logical_expr::Union::try_new_with_loose_types(u.inputs)?,
                )));
            }
            super::optimizer::rewrite_node_expressions(node, |e, _| match e {
                Expr::Literal(datafusion::common::ScalarValue::Int64(Some(v)), meta)
                    if i32::try_from(v).is_ok() =>
                {
                    Ok(Transformed::yes(Expr::Literal(
                        datafusion::common::ScalarValue::Int32(Some(v as i32)),
                        meta,
                    )))
                }
                other => Ok(Transformed::no(other)),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "freshet_integer_literals"
    }
}

/// A recursive query whose anchor's column types may have changed (its
/// integer literals are `integer` now: `WITH RECURSIVE t(n) AS (SELECT 1
/// UNION ALL SELECT n + 1 FROM t …)`): the recursive term reads the work
/// table with the anchor's types, and the schemas above that read follow.
fn retype_work_table(
    rq: datafusion::logical_expr::RecursiveQuery,
) -> Result<Transformed<LogicalPlan>> {
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::catalog::cte_worktable::CteWorkTable;
    use datafusion::common::tree_node::TreeNode;
    use datafusion::datasource::{provider_as_source, source_as_provider};
    use datafusion::logical_expr::{RecursiveQuery, TableScanBuilder};
    let fields: Vec<Field> = rq
        .static_term
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let work = Arc::new(Schema::new(fields));
    let name = rq.name.clone();
    let recursive = Arc::unwrap_or_clone(rq.recursive_term)
        .transform_up(|n| {
            let LogicalPlan::TableScan(scan) = &n else {
                // the schemas above the work table follow its types
                return Ok(Transformed::yes(n.recompute_schema()?));
            };
            let is_work_table = scan.table_name.table() == name
                && source_as_provider(&scan.source).is_ok_and(|p| {
                    let any: &dyn std::any::Any = p.as_ref();
                    any.is::<CteWorkTable>()
                        && p.schema().fields().len() == work.fields().len()
                        && p.schema()
                            .fields()
                            .iter()
                            .zip(work.fields())
                            .any(|(a, b)| a.data_type() != b.data_type())
                });
            if !is_work_table {
                return Ok(Transformed::no(n));
            }
            let source = provider_as_source(Arc::new(CteWorkTable::new(&name, work.clone())));
            Ok(Transformed::yes(LogicalPlan::TableScan(
                TableScanBuilder::new(scan.table_name.clone(), source)
                    .with_projection(scan.projection.clone())
                    .with_filters(scan.filters.clone())
                    .with_fetch(scan.fetch)
                    .build()?,
            )))
        })?
        .data;
    Ok(Transformed::yes(LogicalPlan::RecursiveQuery(
        RecursiveQuery::try_new(name, rq.static_term, Arc::new(recursive), rq.is_distinct)?,
    )))
}

/// The operand types PostgreSQL's operator resolution picks where
/// DataFusion's coercion picks others, before type coercion (which then
/// casts the other side):
///
/// * `real` mixed with another number is widened to `double precision`:
///   `1 + 2.5::real`, `2.5::real * 1.5::float8` and `nullif(1, 2.5::real)`
///   are `double precision` there (it has no operators between `real` and
///   integer or numeric types and picks the `float8` ones), where
///   DataFusion would compute in `real`; but `nullif(2.5::real, 1)` stays
///   `real`;
/// * `nullif` of two integer types has the first one's type.
#[derive(Debug, Default)]
pub struct OperandTypes;

impl AnalyzerRule for OperandTypes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        super::optimizer::rewrite_expressions(plan, |e, schema| {
            let real = |e: &Expr| matches!(e.get_type(schema), Ok(DataType::Float32));
            let other_number = |e: &Expr| {
                e.get_type(schema).is_ok_and(|t| {
                    t != DataType::Float32
                        && (t.is_numeric() || matches!(t, DataType::Decimal128(..)))
                })
            };
            let widen = |e: Expr| {
                if real(&e) {
                    Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(e),
                        DataType::Float64,
                    ))
                } else {
                    e
                }
            };
            match e {
                Expr::BinaryExpr(b)
                    if matches!(
                        b.op,
                        Operator::Plus
                            | Operator::Minus
                            | Operator::Multiply
                            | Operator::Divide
                            | Operator::Modulo
                    ) && ((real(&b.left) && other_number(&b.right))
                        || (real(&b.right) && other_number(&b.left))) =>
                {
                    Ok(Transformed::yes(Expr::BinaryExpr(
                        datafusion::logical_expr::BinaryExpr::new(
                            Box::new(widen(*b.left)),
                            b.op,
                            Box::new(widen(*b.right)),
                        ),
                    )))
                }
                // `nullif(integer, bigint)` is `integer`: PostgreSQL has `=`
                // between integer types, so the first argument keeps its type
                Expr::ScalarFunction(f)
                    if f.name() == "nullif"
                        && f.args.len() == 2
                        && f.args
                            .iter()
                            .all(|a| a.get_type(schema).is_ok_and(|t| t.is_integer()))
                        && f.args[0].get_type(schema).ok() != f.args[1].get_type(schema).ok() =>
                {
                    let first = f.args[0].get_type(schema)?;
                    Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::Cast::new(
                            Box::new(Expr::ScalarFunction(f)),
                            first,
                        ),
                    )))
                }
                // `nullif(real, x)` is `real` (`=` between `real` and
                // the other type keeps the left side)
                Expr::ScalarFunction(f)
                    if f.name() == "nullif"
                        && f.args.len() == 2
                        && real(&f.args[0])
                        && other_number(&f.args[1]) =>
                {
                    Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::Cast::new(
                            Box::new(Expr::ScalarFunction(f)),
                            DataType::Float32,
                        ),
                    )))
                }
                Expr::ScalarFunction(f)
                    if f.name() == "nullif"
                        && f.args.len() == 2
                        && real(&f.args[1])
                        && other_number(&f.args[0]) =>
                {
                    let args = f.args.into_iter().map(widen).collect();
                    Ok(Transformed::yes(Expr::ScalarFunction(
                        datafusion::logical_expr::expr::ScalarFunction::new_udf(f.func, args),
                    )))
                }
                other => Ok(Transformed::no(other)),
            }
        })
    }

    fn name(&self) -> &str {
        "freshet_operand_types"
    }
}

/// The `bigint` columns of a `VALUES` list whose entries are all integer
/// literals that fit an `integer` (or NULL) made `integer`.
fn integer_values(v: datafusion::logical_expr::Values) -> Result<Transformed<LogicalPlan>> {
    use datafusion::common::ScalarValue;
    let fits = |e: &Expr| matches!(e, Expr::Literal(ScalarValue::Int64(Some(x)), _) if i32::try_from(*x).is_ok());
    let null = |e: &Expr| matches!(e, Expr::Literal(x, _) if x.is_null());
    let narrow: Vec<bool> = (0..v.schema.fields().len())
        .map(|c| {
            v.schema.field(c).data_type() == &DataType::Int64
                && v.values.iter().any(|r| fits(&r[c]))
                && v.values.iter().all(|r| fits(&r[c]) || null(&r[c]))
        })
        .collect();
    if !narrow.contains(&true) {
        return Ok(Transformed::no(LogicalPlan::Values(v)));
    }
    let values = v
        .values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .zip(&narrow)
                .map(|(e, n)| match e {
                    Expr::Literal(ScalarValue::Int64(x), meta) if *n => Expr::Literal(
                        ScalarValue::Int32(x.and_then(|x| i32::try_from(x).ok())),
                        meta,
                    ),
                    Expr::Literal(_, meta) if *n => Expr::Literal(ScalarValue::Int32(None), meta),
                    other => other,
                })
                .collect()
        })
        .collect();
    let fields = v
        .schema
        .iter()
        .zip(&narrow)
        .map(|((q, f), n)| {
            let f = if *n {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Int32))
            } else {
                Arc::clone(f)
            };
            (q.cloned(), f)
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, v.schema.metadata().clone())?;
    Ok(Transformed::yes(LogicalPlan::Values(
        datafusion::logical_expr::Values {
            schema: Arc::new(schema),
            values,
        },
    )))
}

/// Checked `+`, `-`, `*` (two arguments) or negation (one) on one integer
/// type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CheckedOp {
    /// `None` for negation.
    op: Option<Operator>,
    /// The integer type operated on (and returned).
    ty: DataType,
    name: &'static str,
    signature: Signature,
}

impl CheckedOp {
    fn new(op: Operator, ty: DataType) -> CheckedOp {
        CheckedOp {
            ty,
            name: match op {
                Operator::Plus => "__checked_add",
                Operator::Minus => "__checked_sub",
                _ => "__checked_mul",
            },
            op: Some(op),
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    fn negate(ty: DataType) -> CheckedOp {
        CheckedOp {
            ty,
            op: None,
            name: "__checked_neg",
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// Postgres' name for an integer type, for "… out of range".
fn pg_name(t: &DataType) -> &'static str {
    match t {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        _ => "bigint",
    }
}

impl ScalarUDFImpl for CheckedOp {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }

    /// Strict, as Postgres folds it: a NULL argument makes the result NULL
    /// without evaluating the other one (`NULL * (b * b)` never overflows).
    fn simplify(
        &self,
        args: Vec<Expr>,
        _info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        use datafusion::logical_expr::simplify::ExprSimplifyResult;
        if args
            .iter()
            .any(|a| matches!(a, Expr::Literal(v, _) if v.is_null()))
        {
            let null = datafusion::common::ScalarValue::try_from(&self.ty)?;
            return Ok(ExprSimplifyResult::Simplified(Expr::Literal(null, None)));
        }
        Ok(ExprSimplifyResult::Original(args))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::compute::kernels::numeric;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let t = arrays[0].data_type().clone();
        let out: std::result::Result<ArrayRef, ArrowError> = match (self.op, arrays.as_slice()) {
            (Some(Operator::Plus), [a, b]) => numeric::add(a, b),
            (Some(Operator::Minus), [a, b]) => numeric::sub(a, b),
            (Some(Operator::Multiply), [a, b]) => numeric::mul(a, b),
            (None, [a]) => numeric::neg(a),
            _ => {
                return Err(DataFusionError::Internal(format!(
                    "{} called with {} arguments",
                    self.name,
                    arrays.len()
                )))
            }
        };
        let out = out.map_err(|e| match e {
            ArrowError::ArithmeticOverflow(_) => DataFusionError::External(Box::new(
                SqlError::OutOfRange(format!("{} out of range", pg_name(&t))),
            )),
            other => DataFusionError::ArrowError(Box::new(other), None),
        })?;
        super::functions::same_shape(&args.args, out)
    }
}
