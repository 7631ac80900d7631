//! ASOF joins: `l ASOF [LEFT] JOIN r ON l.k = r.k AND l.ts >= r.ts` pairs
//! each row of `l` with the row of `r` of the same key whose time is the
//! latest at or before its own (`>`: strictly before); `LEFT` keeps rows
//! without one, NULL-padded.
//!
//! The parser does not know the syntax, so it is handled in two steps:
//!
//! 1. [`normalize_asof`], on tokens: `ASOF [LEFT] JOIN rel` becomes
//!    `[LEFT] JOIN __freshet_asof(rel)`, which parses;
//! 2. [`expand_asof_joins`], on the AST: the marked join becomes a plain
//!    join against `r` extended with the time of the next row of the same
//!    key, `lead(r.ts) OVER (PARTITION BY r.k ORDER BY r.ts)`, on
//!    `r.ts <= l.ts AND (next IS NULL OR l.ts < next)`: each `r` row covers
//!    `[r.ts, next)`, so a left row matches at most one of them.
//!
//! Both DataFusion (ad-hoc SELECT) and the view lowering plan the result.
//! In a view the `lead` is the incremental OVER operator: a new quote
//! shortens the interval of the one before it, which retracts the trades
//! it no longer covers and re-points them to the new one. Right rows with
//! the same key and time cover an empty interval except the last in the
//! operator's order, so a tie still yields one match.

use std::borrow::Cow;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, Ident, JoinConstraint, JoinOperator,
    ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, Statement, TableFactor,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::parser::normalize_ident;
use super::rewrite::exclude_column;
use super::SqlError;

/// The table function name marking an ASOF join between the two steps.
const MARKER: &str = "__freshet_asof";
/// Prefix of the hidden column holding the next right row's time.
pub(crate) const NEXT: &str = "__asof_next_";

fn unsupported(what: &str) -> SqlError {
    SqlError::Unsupported(format!("{what} is not supported"))
}

/// Rewrites `ASOF [LEFT | INNER] JOIN rel` into `[LEFT | INNER] JOIN
/// __freshet_asof(rel)`, token by token. Text without an ASOF join is
/// returned unchanged.
pub fn normalize_asof(text: &str) -> Result<Cow<'_, str>, SqlError> {
    if !text.to_ascii_lowercase().contains("asof") {
        return Ok(Cow::Borrowed(text));
    }
    let Some(spanned) = super::parser::tokens_with_ranges(text) else {
        return Ok(Cow::Borrowed(text));
    };
    let (tokens, ranges): (Vec<Token>, Vec<std::ops::Range<usize>>) = spanned.into_iter().unzip();
    let sig: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i], Token::Whitespace(_)))
        .collect();
    let word = |s: usize| -> Option<String> {
        match sig.get(s).map(|&i| &tokens[i]) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    };
    // (first token, last token, replacement)
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut s = 0;
    while s < sig.len() {
        if word(s).as_deref() != Some("ASOF") {
            s += 1;
            continue;
        }
        let mut j = s + 1;
        let kind = match word(j).as_deref() {
            Some("JOIN") => "",
            Some("INNER") => {
                j += 1;
                "INNER "
            }
            Some("LEFT") => {
                j += 1;
                if word(j).as_deref() == Some("OUTER") {
                    j += 1;
                }
                "LEFT "
            }
            Some(w @ ("RIGHT" | "FULL" | "CROSS" | "SEMI" | "ANTI")) => {
                return Err(unsupported(&format!("ASOF {w} JOIN")));
            }
            _ => {
                s += 1;
                continue;
            }
        };
        if word(j).as_deref() != Some("JOIN") {
            s += 1;
            continue;
        }
        // the relation: a (qualified) name or a parenthesized subquery
        let first = j + 1;
        let mut last = first;
        match sig.get(first).map(|&i| &tokens[i]) {
            Some(Token::LParen) => {
                let mut depth = 0usize;
                for (k, &i) in sig.iter().enumerate().skip(first) {
                    match tokens[i] {
                        Token::LParen => depth += 1,
                        Token::RParen => {
                            depth -= 1;
                            if depth == 0 {
                                last = k;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            Some(Token::Word(_)) => {
                while matches!(sig.get(last + 1).map(|&i| &tokens[i]), Some(Token::Period))
                    && matches!(sig.get(last + 2).map(|&i| &tokens[i]), Some(Token::Word(_)))
                {
                    last += 2;
                }
            }
            _ => {
                return Err(SqlError::Syntax(
                    "expected a relation after ASOF JOIN".into(),
                ))
            }
        }
        let rel = &text[ranges[sig[first]].start..ranges[sig[last]].end];
        edits.push((sig[s], sig[last], format!("{kind}JOIN {MARKER}({rel})")));
        s = last + 1;
    }
    if edits.is_empty() {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut at = 0;
    for (from, to, with) in edits {
        out.push_str(&text[at..ranges[from].start]);
        out.push_str(&with);
        at = ranges[to].end;
    }
    out.push_str(&text[at..]);
    Ok(Cow::Owned(out))
}

/// Rewrites every marked ASOF join of a statement into its plain form.
pub fn expand_asof_joins(stmt: &mut Statement) -> Result<(), SqlError> {
    let mut v = AsofVisitor { next: 0 };
    match stmt.visit(&mut v) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct AsofVisitor {
    /// ASOF joins rewritten so far: names the hidden columns uniquely
    next: usize,
}

impl VisitorMut for AsofVisitor {
    type Break = SqlError;

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<SqlError> {
        match super::for_each_select(&mut q.body, &mut |s| self.select(s)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}

impl AsofVisitor {
    fn select(&mut self, select: &mut Select) -> Result<(), SqlError> {
        let mut hidden: Vec<(String, String)> = Vec::new();
        for twj in &mut select.from {
            for j in &mut twj.joins {
                let TableFactor::Table {
                    name,
                    alias,
                    args: Some(args),
                    ..
                } = &j.relation
                else {
                    continue;
                };
                if !name.to_string().eq_ignore_ascii_case(MARKER) {
                    continue;
                }
                let [FunctionArg::Unnamed(FunctionArgExpr::Expr(rel))] = args.args.as_slice()
                else {
                    return Err(SqlError::Syntax(
                        "expected a relation after ASOF JOIN".into(),
                    ));
                };
                let (rel_sql, default_alias) = match rel {
                    Expr::Identifier(id) => (id.to_string(), Some(id.clone())),
                    Expr::CompoundIdentifier(ids) => (
                        ObjectName::from(ids.clone()).to_string(),
                        ids.last().cloned(),
                    ),
                    Expr::Subquery(q) => (format!("({q})"), None),
                    other => {
                        return Err(SqlError::Syntax(format!(
                            "expected a relation after ASOF JOIN, found {other}"
                        )))
                    }
                };
                let alias: Ident = match alias {
                    Some(a) if !a.columns.is_empty() => {
                        return Err(unsupported("a column list in an ASOF JOIN alias"))
                    }
                    Some(a) => a.name.clone(),
                    None => default_alias.ok_or_else(|| {
                        SqlError::Syntax("a subquery in ASOF JOIN needs an alias".into())
                    })?,
                };
                let (left_join, constraint) = match &j.join_operator {
                    JoinOperator::Join(c) | JoinOperator::Inner(c) => (false, c),
                    JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (true, c),
                    _ => return Err(unsupported("this kind of ASOF JOIN")),
                };
                let JoinConstraint::On(on) = constraint else {
                    return Err(SqlError::Syntax(
                        "ASOF JOIN needs ON with its equalities and one inequality".into(),
                    ));
                };
                let cond = Condition::split(on, &normalize_ident(&alias))?;
                self.next += 1;
                let next = format!("{NEXT}{}", self.next);
                let (relation, on) = cond.rewrite(&rel_sql, &alias, &next)?;
                j.relation = relation;
                j.join_operator = if left_join {
                    JoinOperator::LeftOuter(JoinConstraint::On(on))
                } else {
                    JoinOperator::Inner(JoinConstraint::On(on))
                };
                hidden.push((normalize_ident(&alias), next));
            }
        }
        if hidden.is_empty() {
            return Ok(());
        }
        for item in &mut select.projection {
            match item {
                SelectItem::Wildcard(opts) => {
                    for (_, next) in &hidden {
                        *opts = exclude_column(std::mem::take(opts), next);
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    opts,
                ) => {
                    let q = n.0.last().and_then(|p| p.as_ident()).map(normalize_ident);
                    for (a, next) in &hidden {
                        if q.as_deref() == Some(a.as_str()) {
                            *opts = exclude_column(std::mem::take(opts), next);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// An ASOF condition: `left = right` pairs and `left >= right` (or `>`).
struct Condition {
    eqs: Vec<(Expr, Expr)>,
    left_ts: Expr,
    right_ts: Expr,
    strict: bool,
}

impl Condition {
    /// Splits the ON clause; `alias` names the right relation.
    fn split(on: &Expr, alias: &str) -> Result<Condition, SqlError> {
        let mut conjuncts = Vec::new();
        super::split_and(on.clone(), &mut conjuncts);
        let mut eqs = Vec::new();
        let mut ineq: Option<(Expr, Expr, bool)> = None;
        let shape = || {
            SqlError::Unsupported(format!(
                "ASOF JOIN ON supports equalities and one inequality between the two sides, each side naming columns of one relation; found {on}"
            ))
        };
        for c in &conjuncts {
            let Expr::BinaryOp { left, op, right } = c else {
                return Err(shape());
            };
            let (l_right, r_right) = (side(left, alias), side(right, alias));
            // orient as (expression of the left, expression of the right)
            let (l, r, flipped) = match (l_right, r_right) {
                (Side::Left, Side::Right) => (left.as_ref(), right.as_ref(), false),
                (Side::Right, Side::Left) => (right.as_ref(), left.as_ref(), true),
                _ => return Err(shape()),
            };
            let op = match (op, flipped) {
                (BinaryOperator::Eq, _) => {
                    eqs.push((l.clone(), r.clone()));
                    continue;
                }
                (BinaryOperator::GtEq, false) | (BinaryOperator::LtEq, true) => false,
                (BinaryOperator::Gt, false) | (BinaryOperator::Lt, true) => true,
                (BinaryOperator::LtEq | BinaryOperator::Lt, false)
                | (BinaryOperator::GtEq | BinaryOperator::Gt, true) => return Err(unsupported(
                    "ASOF JOIN matching the next right row (left <= right); write left >= right",
                )),
                _ => return Err(shape()),
            };
            if ineq.is_some() {
                return Err(SqlError::Unsupported(
                    "ASOF JOIN with more than one inequality is not supported".into(),
                ));
            }
            ineq = Some((l.clone(), r.clone(), op));
        }
        let Some((left_ts, right_ts, strict)) = ineq else {
            return Err(SqlError::Syntax(
                "ASOF JOIN needs an inequality: left.time >= right.time".into(),
            ));
        };
        Ok(Condition {
            eqs,
            left_ts,
            right_ts,
            strict,
        })
    }

    /// The right relation extended with the next time, and the join's ON.
    fn rewrite(
        &self,
        rel: &str,
        alias: &Ident,
        next: &str,
    ) -> Result<(TableFactor, Expr), SqlError> {
        let r = &self.right_ts;
        let l = &self.left_ts;
        let partition = if self.eqs.is_empty() {
            String::new()
        } else {
            let keys: Vec<String> = self.eqs.iter().map(|(_, r)| r.to_string()).collect();
            format!("PARTITION BY {} ", keys.join(", "))
        };
        let derived = format!(
            "(SELECT {alias}.*, lead({r}) OVER ({partition}ORDER BY {r}) AS {next} \
             FROM {rel} AS {alias} WHERE {r} IS NOT NULL) AS {alias}"
        );
        let mut on: Vec<String> = self.eqs.iter().map(|(a, b)| format!("{a} = {b}")).collect();
        let (lo, hi) = if self.strict {
            ("<", "<=")
        } else {
            ("<=", "<")
        };
        on.push(format!("{r} {lo} {l}"));
        on.push(format!(
            "({alias}.{next} IS NULL OR {l} {hi} {alias}.{next})"
        ));
        let on = on.join(" AND ");
        let parse = |sql: &str| {
            Parser::new(&crate::sql::dialect::Postgres)
                .try_with_sql(sql)
                .map_err(|e| SqlError::Plan(format!("ASOF JOIN rewrite: {e}")))
        };
        let relation = parse(&derived)?
            .parse_table_factor()
            .map_err(|e| SqlError::Plan(format!("ASOF JOIN rewrite: {e}")))?;
        let on = parse(&on)?
            .parse_expr()
            .map_err(|e| SqlError::Plan(format!("ASOF JOIN rewrite: {e}")))?;
        Ok((relation, on))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
    Both,
}

/// Which side of the join an expression reads: columns qualified with the
/// right relation's alias are the right's; every other column the left's.
fn side(e: &Expr, alias: &str) -> Side {
    use datafusion::sql::sqlparser::ast::Visit;
    use datafusion::sql::sqlparser::ast::Visitor;
    struct Sides<'a> {
        alias: &'a str,
        left: bool,
        right: bool,
    }
    impl Visitor for Sides<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match e {
                Expr::CompoundIdentifier(ids) if ids.len() >= 2 => {
                    if normalize_ident(&ids[ids.len() - 2]) == self.alias {
                        self.right = true;
                    } else {
                        self.left = true;
                    }
                }
                Expr::Identifier(_) => self.left = true,
                _ => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = Sides {
        alias,
        left: false,
        right: false,
    };
    let _ = e.visit(&mut s);
    match (s.left, s.right) {
        (_, false) => Side::Left,
        (false, true) => Side::Right,
        (true, true) => Side::Both,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(sql: &str) -> String {
        let text = normalize_asof(sql).unwrap();
        let mut stmt = Parser::new(&crate::sql::dialect::Postgres)
            .try_with_sql(&text)
            .unwrap()
            .parse_statement()
            .unwrap();
        expand_asof_joins(&mut stmt).unwrap();
        stmt.to_string()
    }

    #[test]
    fn asof_left_join_becomes_an_interval_join() {
        let got = expand(
            "SELECT * FROM trades t ASOF LEFT JOIN quotes q ON t.sym = q.sym AND t.ts >= q.ts",
        );
        assert_eq!(
            got,
            "SELECT * EXCLUDE __asof_next_1 FROM trades t LEFT OUTER JOIN \
             (SELECT q.*, lead(q.ts) OVER (PARTITION BY q.sym ORDER BY q.ts) AS __asof_next_1 \
             FROM quotes AS q WHERE q.ts IS NOT NULL) AS q \
             ON t.sym = q.sym AND q.ts <= t.ts AND (q.__asof_next_1 IS NULL OR t.ts < q.__asof_next_1)"
        );
    }

    #[test]
    fn untouched_text_is_copied_verbatim() {
        let got = expand(
            "SELECT 'it''s' AS s, q.p FROM t ASOF JOIN q ON t.k = q.k AND t.ts >= q.ts -- asof",
        );
        assert!(got.starts_with("SELECT 'it''s' AS s"), "{got}");
    }

    #[test]
    fn strict_and_flipped() {
        let got = expand("SELECT t.x, q.p FROM t ASOF JOIN q ON q.ts < t.ts");
        assert!(
            got.contains("JOIN (SELECT q.*, lead(q.ts) OVER (ORDER BY q.ts)"),
            "{got}"
        );
        assert!(
            got.contains("q.ts < t.ts AND (q.__asof_next_1 IS NULL OR t.ts <= q.__asof_next_1)"),
            "{got}"
        );
    }

    #[test]
    fn refusals_name_the_construct() {
        let err = |sql: &str| {
            let text = match normalize_asof(sql) {
                Ok(t) => t.into_owned(),
                Err(e) => return e.to_string(),
            };
            let mut stmt = Parser::new(&crate::sql::dialect::Postgres)
                .try_with_sql(&text)
                .unwrap()
                .parse_statement()
                .unwrap();
            expand_asof_joins(&mut stmt).unwrap_err().to_string()
        };
        assert!(
            err("SELECT * FROM t ASOF RIGHT JOIN q ON t.ts >= q.ts").contains("ASOF RIGHT JOIN")
        );
        assert!(err("SELECT * FROM t ASOF JOIN q ON t.k = q.k").contains("inequality"));
        assert!(err("SELECT * FROM t ASOF JOIN q ON t.ts <= q.ts").contains("next right row"));
        assert!(
            err("SELECT * FROM t ASOF JOIN q ON t.ts >= q.ts OR t.k = 1").contains("equalities")
        );
    }
}
