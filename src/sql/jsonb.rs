//! `jsonb` in expressions: the `::jsonb` cast, the operators `->`, `->>`,
//! `#>`, `#>>`, `@>`, `<@`, `?`, `?|`, `?&` and `jsonb_build_object`, as
//! PostgreSQL answers them.
//!
//! A `jsonb` value is text in PostgreSQL's canonical form
//! (`ingest::json::normalize`) in a `Utf8` column whose field says
//! `freshet.sql_type = jsonb`, as `jsonb` columns of tables are. The
//! operators are planned by an `ExprPlanner` (DataFusion refuses them
//! otherwise) into the functions of this module.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_err, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use serde_json::Value;

use crate::types::SQL_TYPE_KEY;

/// What each function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `::jsonb`
    Cast,
    /// `->`
    Get,
    /// `->>`
    GetText,
    /// `#>`
    Path,
    /// `#>>`
    PathText,
    /// `@>` (`<@` with the arguments swapped)
    Contains,
    /// `?`
    Exists,
    /// `?|`
    ExistsAny,
    /// `?&`
    ExistsAll,
    /// `jsonb_build_object(k, v, …)`
    BuildObject,
    /// `json_build_object(k, v, …)`: a `json` text, keys in the given order
    BuildJsonObject,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Cast => "jsonb_in",
            Op::Get => "jsonb_object_field",
            Op::GetText => "jsonb_object_field_text",
            Op::Path => "jsonb_extract_path",
            Op::PathText => "jsonb_extract_path_text",
            Op::Contains => "jsonb_contains",
            Op::Exists => "jsonb_exists",
            Op::ExistsAny => "jsonb_exists_any",
            Op::ExistsAll => "jsonb_exists_all",
            Op::BuildObject => "jsonb_build_object",
            Op::BuildJsonObject => "json_build_object",
        }
    }

    fn returns(self) -> Field {
        let name = self.name();
        match self {
            Op::Cast | Op::Get | Op::Path | Op::BuildObject => jsonb_field(name),
            Op::BuildJsonObject => Field::new(name, DataType::Utf8, true).with_metadata(
                HashMap::from([(SQL_TYPE_KEY.to_string(), "json".to_string())]),
            ),
            Op::GetText | Op::PathText => Field::new(name, DataType::Utf8, true),
            Op::Contains | Op::Exists | Op::ExistsAny | Op::ExistsAll => {
                Field::new(name, DataType::Boolean, true)
            }
        }
    }
}

/// A `jsonb` field.
pub fn jsonb_field(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true).with_metadata(HashMap::from([(
        SQL_TYPE_KEY.to_string(),
        "jsonb".to_string(),
    )]))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbFn {
    op: Op,
    signature: Signature,
}

fn udf(op: Op) -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonbFn {
        op,
        signature: match op {
            Op::Cast => Signature::any(1, Volatility::Immutable),
            Op::BuildObject | Op::BuildJsonObject => Signature::variadic_any(Volatility::Immutable),
            _ => Signature::any(2, Volatility::Immutable),
        },
    })
}

/// The functions to register in a session (the operators' too, so plans
/// that name them can be planned again).
pub fn functions() -> Vec<ScalarUDF> {
    [
        Op::Cast,
        Op::Get,
        Op::GetText,
        Op::Path,
        Op::PathText,
        Op::Contains,
        Op::Exists,
        Op::ExistsAny,
        Op::ExistsAll,
        Op::BuildObject,
        Op::BuildJsonObject,
    ]
    .into_iter()
    .map(udf)
    .collect()
}

/// `x::jsonb`.
pub fn cast(e: Expr) -> Expr {
    call(Op::Cast, vec![e])
}

fn call(op: Op, args: Vec<Expr>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf(op)), args))
}

impl ScalarUDFImpl for JsonbFn {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.op.returns().data_type().clone())
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(self.op.returns()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(n.max(1)))
            .collect::<Result<_>>()?;
        let rows = if scalar { 1 } else { n };
        let documents: Vec<bool> = args
            .arg_fields
            .iter()
            .map(|f| f.metadata().get(SQL_TYPE_KEY).map(String::as_str) == Some("jsonb"))
            .collect();
        let out = evaluate(self.op, &arrays, rows, &documents)?;
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// A cell as text (strings as they are, other types as Arrow shows them).
fn cell(a: &ArrayRef, i: usize) -> Result<Option<String>> {
    if a.data_type() == &DataType::Null || a.is_null(i) {
        return Ok(None);
    }
    match a.data_type() {
        DataType::Utf8 => Ok(Some(a.as_string::<i32>().value(i).to_string())),
        DataType::LargeUtf8 => Ok(Some(a.as_string::<i64>().value(i).to_string())),
        DataType::Utf8View => Ok(Some(a.as_string_view().value(i).to_string())),
        _ => Ok(Some(
            datafusion::arrow::util::display::array_value_to_string(a, i)?,
        )),
    }
}

/// A cell as a JSON document.
fn document(a: &ArrayRef, i: usize) -> Result<Option<Value>> {
    match cell(a, i)? {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .or_else(|e| exec_err!("invalid input syntax for type json: {e}")),
    }
}

/// A key or an array index, as the right side of `->` gives it.
enum Step {
    Key(String),
    Index(i64),
}

/// `a` with integer steps as `bigint` (cast once per batch, not per row).
fn steps(a: &ArrayRef) -> Result<ArrayRef> {
    if a.data_type().is_integer() && a.data_type() != &DataType::Int64 {
        Ok(datafusion::arrow::compute::cast(a, &DataType::Int64)?)
    } else {
        Ok(Arc::clone(a))
    }
}

fn step(a: &ArrayRef, i: usize) -> Result<Option<Step>> {
    if a.data_type() == &DataType::Null || a.is_null(i) {
        return Ok(None);
    }
    if a.data_type() == &DataType::Int64 {
        return Ok(Some(Step::Index(
            a.as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(i),
        )));
    }
    Ok(cell(a, i)?.map(Step::Key))
}

fn get<'a>(v: &'a Value, s: &Step) -> Option<&'a Value> {
    match (v, s) {
        (Value::Object(m), Step::Key(k)) => m.get(k),
        (Value::Array(items), Step::Index(i)) => {
            let len = items.len() as i64;
            let at = if *i < 0 { len + i } else { *i };
            usize::try_from(at).ok().and_then(|at| items.get(at))
        }
        // a path step into an array is a number written as text
        (Value::Array(_), Step::Key(k)) => {
            k.parse::<i64>().ok().and_then(|i| get(v, &Step::Index(i)))
        }
        _ => None,
    }
}

/// A text array (`'{a,b}'` or `ARRAY['a','b']`) as its elements.
fn text_array(a: &ArrayRef, i: usize) -> Result<Option<Vec<String>>> {
    if a.data_type() == &DataType::Null || a.is_null(i) {
        return Ok(None);
    }
    if let DataType::List(_) = a.data_type() {
        let items = a.as_list::<i32>().value(i);
        return (0..items.len())
            .map(|j| cell(&items, j).map(|c| c.unwrap_or_default()))
            .collect::<Result<Vec<_>>>()
            .map(Some);
    }
    let Some(t) = cell(a, i)? else {
        return Ok(None);
    };
    let t = t.trim();
    let Some(inner) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
        return exec_err!("malformed array literal: \"{t}\"");
    };
    if inner.trim().is_empty() {
        return Ok(Some(vec![]));
    }
    Ok(Some(
        inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect(),
    ))
}

/// The text `->>` gives: strings without quotes, JSON null as NULL.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(canonical(other)),
    }
}

fn canonical(v: &Value) -> String {
    crate::ingest::json::canonical(v)
}

/// PostgreSQL's `@>`.
fn contains(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => y
            .iter()
            .all(|(k, v)| x.get(k).is_some_and(|w| contains(w, v))),
        (Value::Array(x), Value::Array(y)) => y.iter().all(|v| {
            x.iter().any(|w| match (w, v) {
                (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
                    contains(w, v)
                }
                _ => w == v,
            })
        }),
        // an array contains a scalar it holds
        (Value::Array(x), s) if !s.is_array() && !s.is_object() => x.contains(s),
        (x, y) => x == y,
    }
}

fn has_key(v: &Value, k: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(k),
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(k)),
        Value::String(s) => s == k,
        _ => false,
    }
}

fn evaluate(op: Op, args: &[ArrayRef], rows: usize, documents: &[bool]) -> Result<ArrayRef> {
    let arg = |j: usize| -> Result<&ArrayRef> {
        match args.get(j) {
            Some(a) => Ok(a),
            None => exec_err!("{} needs more arguments", op.name()),
        }
    };
    match op {
        Op::Contains | Op::Exists | Op::ExistsAny | Op::ExistsAll => {
            let mut b = BooleanBuilder::with_capacity(rows);
            for i in 0..rows {
                let Some(doc) = document(arg(0)?, i)? else {
                    b.append_null();
                    continue;
                };
                let r = match op {
                    Op::Contains => document(arg(1)?, i)?.map(|d| contains(&doc, &d)),
                    Op::Exists => cell(arg(1)?, i)?.map(|k| has_key(&doc, &k)),
                    Op::ExistsAny => {
                        text_array(arg(1)?, i)?.map(|ks| ks.iter().any(|k| has_key(&doc, k)))
                    }
                    _ => text_array(arg(1)?, i)?.map(|ks| ks.iter().all(|k| has_key(&doc, k))),
                };
                b.append_option(r);
            }
            Ok(Arc::new(b.finish()))
        }
        _ => {
            let keys = match op {
                Op::Get | Op::GetText => steps(arg(1)?)?,
                _ => Arc::clone(arg(0)?),
            };
            let mut b = StringBuilder::with_capacity(rows, rows * 16);
            for i in 0..rows {
                let out = match op {
                    Op::Cast => {
                        match cell(arg(0)?, i)? {
                            None => None,
                            Some(t) => Some(crate::ingest::json::normalize(&t).or_else(|e| {
                                exec_err!("invalid input syntax for type json: {e}")
                            })?),
                        }
                    }
                    Op::BuildObject => Some(build_object(args, i, documents)?),
                    Op::BuildJsonObject => Some(build_json_object(args, i, documents)?),
                    Op::Get | Op::GetText => {
                        let (Some(doc), Some(s)) = (document(arg(0)?, i)?, step(&keys, i)?) else {
                            b.append_null();
                            continue;
                        };
                        get(&doc, &s).and_then(|v| {
                            if op == Op::Get {
                                Some(canonical(v))
                            } else {
                                as_text(v)
                            }
                        })
                    }
                    _ => {
                        let (Some(doc), Some(path)) =
                            (document(arg(0)?, i)?, text_array(arg(1)?, i)?)
                        else {
                            b.append_null();
                            continue;
                        };
                        let mut at = Some(&doc);
                        for k in &path {
                            at = at.and_then(|v| get(v, &Step::Key(k.clone())));
                        }
                        at.and_then(|v| {
                            if op == Op::Path {
                                Some(canonical(v))
                            } else {
                                as_text(v)
                            }
                        })
                    }
                };
                b.append_option(out);
            }
            Ok(Arc::new(b.finish()))
        }
    }
}

/// The pairs of `jsonb_build_object(k1, v1, …)` / `json_build_object`:
/// numbers and booleans as themselves, `jsonb` values as documents,
/// everything else as strings.
fn object_pairs(args: &[ArrayRef], i: usize, documents: &[bool]) -> Result<Vec<(String, Value)>> {
    if !args.len().is_multiple_of(2) {
        return exec_err!("argument list must have even number of elements");
    }
    let mut pairs = Vec::with_capacity(args.len() / 2);
    for (n, pair) in args.chunks(2).enumerate() {
        let Some(k) = cell(&pair[0], i)? else {
            return exec_err!("argument {}: key must not be null", 2 * n + 1);
        };
        let v = &pair[1];
        let value = if v.data_type() == &DataType::Null || v.is_null(i) {
            Value::Null
        } else if documents.get(2 * n + 1) == Some(&true) {
            let text = cell(v, i)?.unwrap_or_default();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        } else {
            match v.data_type() {
                t if t.is_numeric() => {
                    let text = cell(v, i)?.unwrap_or_default();
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                }
                DataType::Boolean => Value::Bool(v.as_boolean().value(i)),
                _ => Value::String(cell(v, i)?.unwrap_or_default()),
            }
        };
        pairs.push((k, value));
    }
    Ok(pairs)
}

/// `jsonb_build_object(k1, v1, …)` (see [`object_pairs`]).
fn build_object(args: &[ArrayRef], i: usize, documents: &[bool]) -> Result<String> {
    let m: serde_json::Map<String, Value> = object_pairs(args, i, documents)?.into_iter().collect();
    Ok(canonical(&Value::Object(m)))
}

/// `json_build_object(k1, v1, …)`: as Postgres writes a `json` object,
/// `{"k" : v, "k2" : v2}`, keys in order, repeated keys kept.
fn build_json_object(args: &[ArrayRef], i: usize, documents: &[bool]) -> Result<String> {
    let pairs: Vec<String> = object_pairs(args, i, documents)?
        .into_iter()
        .map(|(k, v)| format!("{} : {}", Value::String(k), canonical(&v)))
        .collect();
    Ok(format!("{{{}}}", pairs.join(", ")))
}

/// Plans the jsonb operators.
#[derive(Debug)]
pub struct JsonbOperators;

impl ExprPlanner for JsonbOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        _schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let (f, args) = match &op {
            BinaryOperator::Arrow => (Op::Get, vec![left, right]),
            BinaryOperator::LongArrow => (Op::GetText, vec![left, right]),
            BinaryOperator::HashArrow => (Op::Path, vec![left, right]),
            BinaryOperator::HashLongArrow => (Op::PathText, vec![left, right]),
            BinaryOperator::AtArrow => (Op::Contains, vec![left, right]),
            BinaryOperator::ArrowAt => (Op::Contains, vec![right, left]),
            BinaryOperator::Question => (Op::Exists, vec![left, right]),
            BinaryOperator::QuestionPipe => (Op::ExistsAny, vec![left, right]),
            BinaryOperator::QuestionAnd => (Op::ExistsAll, vec![left, right]),
            _ => return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right })),
        };
        Ok(PlannerResult::Planned(call(f, args)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn containment() {
        assert!(contains(&j(r#"{"a":1,"b":[1,2]}"#), &j(r#"{"b":[2]}"#)));
        assert!(!contains(&j(r#"{"a":1}"#), &j(r#"{"a":2}"#)));
        assert!(contains(&j("[1,2,[3]]"), &j("[[3],1]")));
        assert!(contains(&j("[1,2]"), &j("1")));
        assert!(!contains(&j("1"), &j("[1]")));
    }

    #[test]
    fn steps() {
        let d = j(r#"{"a":{"b":[10,20]}}"#);
        let a = get(&d, &Step::Key("a".into())).unwrap();
        let arr = get(a, &Step::Key("b".into())).unwrap();
        assert_eq!(get(arr, &Step::Index(-1)), Some(&j("20")));
        assert_eq!(get(arr, &Step::Key("0".into())), Some(&j("10")));
        assert_eq!(get(arr, &Step::Index(5)), None);
        assert!(has_key(&j(r#"["x","y"]"#), "y"));
    }
}
