//! How deeply a statement nests, bounded from its tokens before it is
//! parsed, so that a statement too deep for the server's stacks is refused
//! with 54001 instead of overflowing one (parsing, planning, optimizing,
//! evaluating and even dropping a syntax tree all recurse on its depth).
//!
//! The bound: in each parenthesized group (and `CASE … END`, `[ … ]`), a
//! chain of `n` operators builds a tree `n` levels deep (`1 + 1 + … + 1`
//! nests to the left); a group adds its own level and its deepest inner
//! group. So `depth(group) = operators + 1 + max(depth(inner group))`, an
//! upper bound of the tree's depth. Commas separate items and add nothing:
//! a million-row `VALUES` is shallow.
//!
//! Postgres refuses `1 + 1 + … + 1` somewhere past 2 000 terms with 54001
//! (its stack limit); [`MAX_DEPTH`] is above that.

use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::SqlError;

/// The deepest statement parsed (its token bound, see the module
/// documentation): anything deeper could overflow a stack on the way.
pub const MAX_DEPTH: usize = 20_000;

/// The deepest expression planned, once `AND`/`OR`/`||` chains are
/// balanced: DataFusion's planning costs the square of an expression's
/// depth (Postgres refuses `1 + 1 + … + 1` past about 4 500 terms).
pub const MAX_PLANNED_DEPTH: usize = 1_000;

/// Refuses `text` when its nesting bound exceeds [`MAX_DEPTH`].
pub fn check(text: &str) -> Result<(), SqlError> {
    // a statement with fewer tokens than the limit cannot be too deep;
    // skip tokenizing short statements (the common case)
    if text.len() < MAX_DEPTH {
        return Ok(());
    }
    let tokens = match Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() {
        Ok(t) => t,
        // the parser reports the syntax error
        Err(_) => return Ok(()),
    };
    let depth = bound(&tokens);
    if depth > MAX_DEPTH {
        return Err(SqlError::TooComplex(format!(
            "statement too complex: it nests {depth} levels deep, more than the limit of {MAX_DEPTH}"
        )));
    }
    Ok(())
}

/// The nesting bound of a token stream (module documentation).
pub fn bound(tokens: &[Token]) -> usize {
    // per open group: (operators, deepest inner group)
    let mut groups: Vec<(usize, usize)> = vec![(0, 0)];
    for t in tokens {
        match t {
            Token::LParen | Token::LBracket => groups.push((0, 0)),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::CASE => {
                groups.push((0, 0))
            }
            Token::RParen | Token::RBracket => close(&mut groups),
            Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::END => {
                close(&mut groups)
            }
            t if is_operator(t) => {
                if let Some(g) = groups.last_mut() {
                    g.0 += 1;
                }
            }
            _ => {}
        }
    }
    // unbalanced groups: close them all
    while groups.len() > 1 {
        close(&mut groups);
    }
    groups.first().map_or(0, |(ops, inner)| ops + 1 + inner)
}

fn close(groups: &mut Vec<(usize, usize)>) {
    if groups.len() < 2 {
        return;
    }
    if let Some((ops, inner)) = groups.pop() {
        let d = ops + 1 + inner;
        if let Some(parent) = groups.last_mut() {
            parent.1 = parent.1.max(d);
        }
    }
}

fn is_operator(t: &Token) -> bool {
    match t {
        Token::Word(w) if w.quote_style.is_none() => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::IS
                | Keyword::LIKE
                | Keyword::ILIKE
                | Keyword::SIMILAR
                | Keyword::BETWEEN
                | Keyword::IN
                | Keyword::WHEN
                | Keyword::ELSE
                | Keyword::COLLATE
                | Keyword::AT
        ),
        Token::Word(_)
        | Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::Comma
        | Token::Whitespace(_)
        | Token::SemiColon
        | Token::Period
        | Token::LParen
        | Token::RParen
        | Token::LBracket
        | Token::RBracket
        | Token::Placeholder(_)
        | Token::EOF => false,
        // every other symbol is (part of) an operator or a cast
        _ => true,
    }
}

/// Refuses a statement whose expressions nest more than
/// [`MAX_PLANNED_DEPTH`] levels (run after [`balance`]). The walk stops at
/// the limit, so its own recursion is bounded.
pub fn check_planned(stmt: &datafusion::sql::sqlparser::ast::Statement) -> Result<(), SqlError> {
    use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};
    use std::ops::ControlFlow;
    struct V {
        depth: usize,
    }
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.depth += 1;
            if self.depth > MAX_PLANNED_DEPTH {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut v = V { depth: 0 };
    match stmt.visit(&mut v) {
        ControlFlow::Break(()) => Err(SqlError::TooComplex(format!(
            "statement too complex: an expression nests more than {MAX_PLANNED_DEPTH} levels deep"
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Rebuilds every chain of `AND`s, of `OR`s and of `||` as a balanced tree:
/// `a OR b OR c OR d` parses as `((a OR b) OR c) OR d`, a tree as deep as
/// the chain is long, and DataFusion's planning costs the square of that
/// depth (typing an expression retypes its whole subtree). The operators
/// are associative, so the answer is the same; a chain of 10 000 is then
/// 14 levels deep.
pub fn balance(stmt: &mut datafusion::sql::sqlparser::ast::Statement) {
    balance_unions(stmt);
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct V;
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let op = match e {
                Expr::BinaryOp { op, .. }
                    if matches!(
                        op,
                        BinaryOperator::And | BinaryOperator::Or | BinaryOperator::StringConcat
                    ) =>
                {
                    op.clone()
                }
                _ => return ControlFlow::Continue(()),
            };
            // the operands, left to right, without recursion
            let mut operands = Vec::new();
            let mut pending = vec![std::mem::replace(
                e,
                Expr::value(datafusion::sql::sqlparser::ast::Value::Null),
            )];
            while let Some(x) = pending.pop() {
                match x {
                    Expr::BinaryOp { left, op: o, right } if o == op => {
                        pending.push(*right);
                        pending.push(*left);
                    }
                    other => operands.push(other),
                }
            }
            if operands.len() < 8 {
                *e = rebuild(operands, &op);
            } else {
                *e = balanced(operands, &op);
            }
            ControlFlow::Continue(())
        }
    }
    /// Left-deep again (a short chain keeps its shape).
    fn rebuild(operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
        let mut it = operands.into_iter();
        let first = it
            .next()
            .unwrap_or(Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
        it.fold(first, |acc, x| Expr::BinaryOp {
            left: Box::new(acc),
            op: op.clone(),
            right: Box::new(x),
        })
    }
    fn balanced(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
        if operands.len() <= 1 {
            return operands
                .pop()
                .unwrap_or(Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
        }
        let right = operands.split_off(operands.len() / 2);
        Expr::BinaryOp {
            left: Box::new(balanced(operands, op)),
            op: op.clone(),
            right: Box::new(balanced(right, op)),
        }
    }
    let _ = VisitMut::visit(stmt, &mut V);
}

/// Rebuilds chains of `UNION` (or of `UNION ALL`) in every query as balanced
/// trees, for the same reason as [`balance`]: `q1 UNION ALL q2 UNION ALL …`
/// nests to the left, and planning costs the square of the depth. The
/// leftmost query stays leftmost (it names the columns).
pub fn balance_unions(stmt: &mut datafusion::sql::sqlparser::ast::Statement) {
    use datafusion::sql::sqlparser::ast::{Query, SetExpr, SetOperator, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct V;
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let (op, quantifier) = match q.body.as_ref() {
                SetExpr::SetOperation {
                    op: SetOperator::Union,
                    set_quantifier,
                    ..
                } => (SetOperator::Union, *set_quantifier),
                _ => return ControlFlow::Continue(()),
            };
            let mut operands = Vec::new();
            let empty = || {
                SetExpr::Values(datafusion::sql::sqlparser::ast::Values {
                    explicit_row: false,
                    value_keyword: false,
                    rows: vec![],
                })
            };
            let mut pending = vec![std::mem::replace(q.body.as_mut(), empty())];
            while let Some(x) = pending.pop() {
                match x {
                    SetExpr::SetOperation {
                        op: SetOperator::Union,
                        set_quantifier,
                        left,
                        right,
                    } if set_quantifier == quantifier => {
                        pending.push(*right);
                        pending.push(*left);
                    }
                    other => operands.push(other),
                }
            }
            fn build(
                mut operands: Vec<SetExpr>,
                op: &SetOperator,
                quantifier: datafusion::sql::sqlparser::ast::SetQuantifier,
            ) -> SetExpr {
                if operands.len() == 1 {
                    return operands.remove(0);
                }
                let right = operands.split_off(operands.len() / 2);
                SetExpr::SetOperation {
                    op: *op,
                    set_quantifier: quantifier,
                    left: Box::new(build(operands, op, quantifier)),
                    right: Box::new(build(right, op, quantifier)),
                }
            }
            *q.body = build(operands, &op, quantifier);
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(stmt, &mut V);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(sql: &str) -> usize {
        bound(
            &Tokenizer::new(&PostgreSqlDialect {}, sql)
                .tokenize()
                .unwrap(),
        )
    }

    #[test]
    fn bounds() {
        assert_eq!(depth("SELECT 1"), 1);
        assert!(depth("SELECT 1 + 1 + 1") >= 3);
        assert!(depth("SELECT ((((1))))") >= 5);
        let chain = format!("SELECT {}", vec!["1"; 3000].join("+"));
        assert!(depth(&chain) >= 2999);
        assert!(check(&chain).is_ok());
        let chain = format!("SELECT {}", vec!["1"; 25_000].join("+"));
        assert!(matches!(check(&chain), Err(SqlError::TooComplex(_))));
        // wide, not deep
        let values = format!(
            "INSERT INTO t VALUES {}",
            vec!["(1, 'a', 2.5)"; 20_000].join(", ")
        );
        assert!(depth(&values) < 10, "{}", depth(&values));
        assert!(check(&values).is_ok());
        let list = format!("SELECT 1 WHERE a IN ({})", vec!["1"; 20_000].join(","));
        assert!(check(&list).is_ok());
    }
}
