//! Which index answers a scan's `WHERE` conditions, and over which runs.
//!
//! A condition is usable when it compares one column with constants:
//! `c = v`, `c IN (v, …)`, `c < v` (and `<=`, `>`, `>=`, with the column on
//! either side), `c BETWEEN a AND b`. The constant must convert exactly to
//! the column's type (`int_col = 1.5` is not `int_col = 2`). An index is
//! chosen by how much of it the conditions fix: equality on its first `k`
//! columns, then a range on the next one. The scan still applies every
//! condition to the rows the index yields (DataFusion keeps the filter
//! above the scan: pushdown is `Inexact`), so an index only narrows what is
//! read, never changes an answer.

use std::collections::HashMap;

use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};

use super::{KeyBounds, RowIndex};

/// At most this many point lookups from `IN` lists (their product over
/// the key's columns); beyond, fewer columns are used.
const MAX_POINTS: usize = 1024;

/// What the conditions say of one column.
#[derive(Debug, Clone, Default)]
pub struct ColumnCond {
    /// `c = v` or `c IN (…)`: the values it may take.
    pub eq: Option<Vec<ScalarValue>>,
    /// `c > v` (false) or `c >= v` (true).
    pub lower: Option<(ScalarValue, bool)>,
    pub upper: Option<(ScalarValue, bool)>,
}

/// An index chosen for a scan.
#[derive(Debug)]
pub struct Choice {
    /// Position among the relation's indexes.
    pub index: usize,
    pub bounds: Vec<KeyBounds>,
    /// The conditions used, for `EXPLAIN`.
    pub describe: String,
}

/// The column a condition's operand is: a plain column, or one cast to a
/// type that keeps its order and equality (a wider integer, another string
/// type).
fn column_of(e: &Expr, schema: &Schema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.index_of(&c.name).ok(),
        Expr::Cast(c) => {
            let i = column_of(&c.expr, schema)?;
            let from = schema.field(i).data_type();
            let to = &c.field.data_type();
            let widening = (from.is_integer() && to.is_integer() && width(to) >= width(from))
                || (is_text(from) && is_text(to));
            widening.then_some(i)
        }
        _ => None,
    }
}

fn width(t: &DataType) -> usize {
    t.primitive_width().unwrap_or(0)
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn literal(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// `v` as a value of type `ty`, if it converts without loss.
fn exact(v: &ScalarValue, ty: &DataType) -> Option<ScalarValue> {
    if v.is_null() {
        return None;
    }
    if &v.data_type() == ty {
        return Some(v.clone());
    }
    let c = v.cast_to(ty).ok()?;
    if c.is_null() {
        return None;
    }
    let back = c.cast_to(&v.data_type()).ok()?;
    (&back == v).then_some(c)
}

/// The column a filter constrains in a way an index can use, with the
/// constraint.
fn condition(e: &Expr, schema: &Schema) -> Option<(usize, ColumnCond)> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (col, v, op) = match (column_of(left, schema), literal(right)) {
                (Some(c), Some(v)) => (c, v, *op),
                _ => (column_of(right, schema)?, literal(left)?, op.swap()?),
            };
            let v = exact(v, schema.field(col).data_type())?;
            let cond = match op {
                Operator::Eq => ColumnCond {
                    eq: Some(vec![v]),
                    ..Default::default()
                },
                Operator::Lt => ColumnCond {
                    upper: Some((v, false)),
                    ..Default::default()
                },
                Operator::LtEq => ColumnCond {
                    upper: Some((v, true)),
                    ..Default::default()
                },
                Operator::Gt => ColumnCond {
                    lower: Some((v, false)),
                    ..Default::default()
                },
                Operator::GtEq => ColumnCond {
                    lower: Some((v, true)),
                    ..Default::default()
                },
                _ => return None,
            };
            Some((col, cond))
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) => {
            let col = column_of(expr, schema)?;
            let ty = schema.field(col).data_type();
            let lo = exact(literal(low)?, ty)?;
            let hi = exact(literal(high)?, ty)?;
            Some((
                col,
                ColumnCond {
                    lower: Some((lo, true)),
                    upper: Some((hi, true)),
                    ..Default::default()
                },
            ))
        }
        Expr::InList(l) if !l.negated => {
            let col = column_of(&l.expr, schema)?;
            let ty = schema.field(col).data_type();
            let mut vals = Vec::with_capacity(l.list.len());
            for item in &l.list {
                let v = literal(item)?;
                if v.is_null() {
                    // `c IN (1, NULL)` holds for c = 1 only
                    continue;
                }
                vals.push(exact(v, ty)?);
            }
            Some((
                col,
                ColumnCond {
                    eq: Some(vals),
                    ..Default::default()
                },
            ))
        }
        _ => None,
    }
}

/// Whether an index could use this filter (on one of `indexed` columns).
pub fn usable(filter: &Expr, schema: &Schema, indexed: &[usize]) -> bool {
    condition(filter, schema).is_some_and(|(c, _)| indexed.contains(&c))
}

/// What the filters (ANDed) say of each column.
pub fn conditions(filters: &[Expr], schema: &Schema) -> HashMap<usize, ColumnCond> {
    let mut out: HashMap<usize, ColumnCond> = HashMap::new();
    let mut conjuncts = Vec::new();
    for f in filters {
        split_and(f, &mut conjuncts);
    }
    for f in conjuncts {
        let Some((col, c)) = condition(f, schema) else {
            continue;
        };
        let e = out.entry(col).or_default();
        if let Some(vals) = c.eq {
            // two equalities: the values both allow
            e.eq = Some(match e.eq.take() {
                None => vals,
                Some(old) => old.into_iter().filter(|v| vals.contains(v)).collect(),
            });
        }
        if let Some(lo) = c.lower {
            e.lower = Some(match e.lower.take() {
                Some(old) if tighter_lower(&old, &lo) => old,
                _ => lo,
            });
        }
        if let Some(hi) = c.upper {
            e.upper = Some(match e.upper.take() {
                Some(old) if tighter_upper(&old, &hi) => old,
                _ => hi,
            });
        }
    }
    out
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            split_and(left, out);
            split_and(right, out);
        }
        _ => out.push(e),
    }
}

fn tighter_lower(a: &(ScalarValue, bool), b: &(ScalarValue, bool)) -> bool {
    match a.0.partial_cmp(&b.0) {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Equal) => !a.1,
        _ => false,
    }
}

fn tighter_upper(a: &(ScalarValue, bool), b: &(ScalarValue, bool)) -> bool {
    match a.0.partial_cmp(&b.0) {
        Some(std::cmp::Ordering::Less) => true,
        Some(std::cmp::Ordering::Equal) => !a.1,
        _ => false,
    }
}

/// The index that fixes most of its key, and the runs to read; `None` when
/// no index helps.
pub fn choose(
    indexes: &[RowIndex],
    conds: &HashMap<usize, ColumnCond>,
    schema: &Schema,
) -> Result<Option<Choice>, ArrowError> {
    // (equality columns, a range after them, unique) per usable index
    let mut best: Option<(usize, usize, bool)> = None;
    let mut best_score = (0, false, false);
    for (i, ix) in indexes.iter().enumerate() {
        let cols = &ix.spec().columns;
        let mut k = 0;
        let mut points = 1usize;
        while k < cols.len() {
            match conds.get(&cols[k]).and_then(|c| c.eq.as_ref()) {
                Some(vals) if points.saturating_mul(vals.len().max(1)) <= MAX_POINTS => {
                    points *= vals.len().max(1);
                    k += 1;
                }
                _ => break,
            }
        }
        let range = k < cols.len()
            && conds
                .get(&cols[k])
                .is_some_and(|c| c.lower.is_some() || c.upper.is_some());
        let score = (k, range, ix.spec().unique && k == cols.len());
        if (k > 0 || range) && score > best_score {
            best_score = score;
            best = Some((i, k, range));
        }
    }
    let Some((index, k, range)) = best else {
        return Ok(None);
    };
    let ix = &indexes[index];
    let cols = &ix.spec().columns;
    // every combination of the equality columns' values
    let mut combos: Vec<Vec<ScalarValue>> = vec![vec![]];
    let mut describe = Vec::new();
    for &c in &cols[..k] {
        let vals = conds.get(&c).and_then(|c| c.eq.clone()).unwrap_or_default();
        describe.push(match vals.as_slice() {
            [v] => format!("{} = {v}", schema.field(c).name()),
            _ => format!(
                "{} IN ({})",
                schema.field(c).name(),
                vals.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
        combos = combos
            .into_iter()
            .flat_map(|prefix| {
                vals.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(v.clone());
                    p
                })
            })
            .collect();
    }
    let range_cond = range
        .then(|| conds.get(&cols[k]).cloned())
        .flatten()
        .unwrap_or_default();
    if range {
        let name = schema.field(cols[k]).name();
        if let Some((v, inc)) = &range_cond.lower {
            describe.push(format!("{name} {} {v}", if *inc { ">=" } else { ">" }));
        }
        if let Some((v, inc)) = &range_cond.upper {
            describe.push(format!("{name} {} {v}", if *inc { "<=" } else { "<" }));
        }
    }
    let mut bounds = Vec::with_capacity(combos.len());
    for prefix in combos {
        let with = |v: &ScalarValue| -> Result<Box<[u8]>, ArrowError> {
            let mut vals = prefix.clone();
            vals.push(v.clone());
            ix.encode_prefix(&vals)
        };
        let mut b = KeyBounds {
            prefix: ix.encode_prefix(&prefix)?,
            ..Default::default()
        };
        if range {
            b.lower = match &range_cond.lower {
                Some((v, inc)) => Some((with(v)?, *inc)),
                None => {
                    // NULLs sort first and satisfy no comparison
                    let ty = ix.column_type(k).cloned().unwrap_or(DataType::Null);
                    let null = ScalarValue::try_from(&ty)
                        .map_err(|e| ArrowError::ComputeError(e.to_string()))?;
                    Some((with(&null)?, false))
                }
            };
            b.upper = match &range_cond.upper {
                Some((v, inc)) => Some((with(v)?, *inc)),
                None => None,
            };
        }
        bounds.push(b);
    }
    Ok(Some(Choice {
        index,
        bounds,
        describe: describe.join(" AND "),
    }))
}
