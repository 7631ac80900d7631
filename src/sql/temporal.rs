//! Temporal filters: `WHERE ts > now() - INTERVAL 'd'` in a view.
//!
//! DataFusion would fold `now()` into a constant, so such conjuncts are
//! taken out of the query's `WHERE` before planning and lowered to the
//! incremental `TemporalFilter` operator placed right after the scan of the
//! relation (a `WHERE` conjunct on one relation's column may be applied
//! before anything else the query does).

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, SetExpr, Statement, TableFactor};

use super::SqlError;

/// `column > now() - interval` (or `>=`) on `relation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporalSpec {
    pub relation: String,
    pub column: String,
    pub interval_us: i64,
    pub inclusive: bool,
}

fn is_now(e: &Expr) -> bool {
    match e {
        Expr::Function(f) => {
            let n = f.name.to_string().to_ascii_lowercase();
            n == "now" || n == "current_timestamp"
        }
        Expr::Nested(e) => is_now(e),
        _ => false,
    }
}

/// `now()` or `now() - INTERVAL '…'`: the interval in microseconds.
fn now_minus(e: &Expr) -> Result<Option<i64>, SqlError> {
    match e {
        e if is_now(e) => Ok(Some(0)),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_now(left) => super::window::positive_micros(right, "interval").map(Some),
        Expr::Nested(e) => now_minus(e),
        _ => Ok(None),
    }
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(super::parser::normalize_ident(i)),
        Expr::CompoundIdentifier(p) => p.last().map(super::parser::normalize_ident),
        _ => None,
    }
}

/// A conjunct that is a temporal filter: (column, interval, inclusive).
fn temporal(e: &Expr) -> Result<Option<(String, i64, bool)>, SqlError> {
    let Expr::BinaryOp { left, op, right } = e else {
        return Ok(None);
    };
    let (col, bound, inclusive) = match op {
        BinaryOperator::Gt => (left, right, false),
        BinaryOperator::GtEq => (left, right, true),
        BinaryOperator::Lt => (right, left, false),
        BinaryOperator::LtEq => (right, left, true),
        _ => return Ok(None),
    };
    let (Some(c), Some(iv)) = (column_name(col), now_minus(bound)?) else {
        return Ok(None);
    };
    Ok(Some((c, iv, inclusive)))
}

/// Takes the temporal filters out of the top-level `WHERE` of a view's
/// query. Any other use of `now()` is left for the planner to refuse.
pub fn extract_temporal_filters(stmt: &mut Statement) -> Result<Vec<TemporalSpec>, SqlError> {
    let Statement::Query(q) = stmt else {
        return Ok(vec![]);
    };
    let SetExpr::Select(select) = q.body.as_mut() else {
        return Ok(vec![]);
    };
    let Some(selection) = select.selection.take() else {
        return Ok(vec![]);
    };
    let mut conjuncts = Vec::new();
    super::split_and(selection, &mut conjuncts);
    let mut found = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts {
        match temporal(&c)? {
            Some(t) => found.push(t),
            None => rest.push(c),
        }
    }
    select.selection = rest.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    if found.is_empty() {
        return Ok(vec![]);
    }
    let relation = match select.from.as_slice() {
        [t] if t.joins.is_empty() => match &t.relation {
            TableFactor::Table {
                name, args: None, ..
            } => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(super::parser::normalize_ident),
            _ => None,
        },
        _ => None,
    };
    let Some(relation) = relation else {
        return Err(SqlError::Unsupported(
            "now() in a materialized view is only supported as a temporal filter \
             (WHERE column > now() - INTERVAL '…') on a query that reads one relation"
                .into(),
        ));
    };
    Ok(found
        .into_iter()
        .map(|(column, interval_us, inclusive)| TemporalSpec {
            relation: relation.clone(),
            column,
            interval_us,
            inclusive,
        })
        .collect())
}
