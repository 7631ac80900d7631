//! Constructs DataFusion plans with an answer different from PostgreSQL's,
//! refused with 0A000 before planning (a clear error, never a different
//! answer).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Query, SetExpr, SetOperator, SetQuantifier, Statement, Visit, Visitor,
};

use super::SqlError;

/// `INTERSECT ALL` and `EXCEPT ALL`: DataFusion keeps every matching row of
/// the left side instead of the minimum (difference) of the two counts.
fn set_operation(body: &SetExpr) -> Option<&'static str> {
    match body {
        SetExpr::SetOperation {
            op,
            set_quantifier,
            left,
            right,
        } => {
            let all = matches!(set_quantifier, SetQuantifier::All);
            match op {
                SetOperator::Intersect if all => Some("INTERSECT ALL"),
                SetOperator::Except | SetOperator::Minus if all => Some("EXCEPT ALL"),
                _ => set_operation(left).or_else(|| set_operation(right)),
            }
        }
        SetExpr::Query(q) => set_operation(&q.body),
        _ => None,
    }
}

/// Refuses `stmt` if it holds a construct listed in this module.
pub fn check(stmt: &Statement) -> Result<(), SqlError> {
    struct V;
    impl Visitor for V {
        type Break = &'static str;
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<&'static str> {
            match set_operation(&q.body) {
                Some(what) => ControlFlow::Break(what),
                None => ControlFlow::Continue(()),
            }
        }
    }
    match stmt.visit(&mut V) {
        ControlFlow::Break(what) => Err(SqlError::Unsupported(format!(
            "{what} is not supported (use INTERSECT or EXCEPT, which remove duplicates)"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::parser::Parser;

    fn refused(sql: &str) -> bool {
        let st = Parser::new(&super::super::dialect::Postgres)
            .try_with_sql(sql)
            .unwrap()
            .parse_statement()
            .unwrap();
        check(&st).is_err()
    }

    #[test]
    fn all_set_operations_that_keep_duplicates_wrongly_are_refused() {
        assert!(refused("SELECT 1 INTERSECT ALL SELECT 1"));
        assert!(refused("SELECT 1 EXCEPT ALL SELECT 1"));
        assert!(refused(
            "SELECT * FROM (SELECT 1 UNION (SELECT 2 EXCEPT ALL SELECT 2)) s"
        ));
        assert!(!refused("SELECT 1 UNION ALL SELECT 1"));
        assert!(!refused("SELECT 1 INTERSECT SELECT 1"));
        assert!(!refused("SELECT 1 EXCEPT SELECT 1"));
    }
}
