//! Window table functions: `TUMBLE` and `HOP` in `FROM`, in the
//! RisingWave form `TUMBLE(rel, ts, size [, offset])` /
//! `HOP(rel, ts, slide, size [, offset])` and the Flink form
//! `TABLE(TUMBLE(TABLE rel, DESCRIPTOR(ts), size [, offset]))`.
//!
//! They are rewritten, before planning, into plain relational SQL that both
//! DataFusion (ad-hoc `SELECT`) and the view lowering understand:
//!
//! - `TUMBLE` becomes a projection adding
//!   `window_start = date_bin(size, ts, origin)` and
//!   `window_end = window_start + size`;
//! - `HOP` becomes the `UNION ALL` of `size / slide` such projections, the
//!   `i`-th assigning each row to the window that starts `i` slides before
//!   the slide-aligned start of its own slot. Every row thus appears once in
//!   each of the `size / slide` windows that contain it.
//!
//! Windows are half-open, `[window_start, window_end)`: an event exactly at
//! `window_end` belongs to the next window. `origin` is the Unix epoch plus
//! the optional offset. A row whose time is NULL gets NULL window bounds.

use std::ops::ControlFlow;

use datafusion::arrow::datatypes::IntervalMonthDayNano;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, Statement, TableAlias, TableFactor, Value, VisitMut,
    VisitorMut,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::SqlError;

/// Most windows one `HOP` may assign a row to.
const MAX_HOP_WINDOWS: i64 = 1000;

/// Rewrites every `TUMBLE`/`HOP` table function of a statement.
pub fn expand_window_functions(stmt: &mut Statement) -> Result<(), SqlError> {
    match stmt.visit(&mut WindowVisitor) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct WindowVisitor;

impl VisitorMut for WindowVisitor {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::Table {
            name, alias, args, ..
        } = f
        else {
            return ControlFlow::Continue(());
        };
        let Some(args) = args else {
            return ControlFlow::Continue(());
        };
        let fname = name.to_string().to_ascii_lowercase();
        let kind = match fname.as_str() {
            "tumble" => Kind::Tumble,
            "hop" => Kind::Hop,
            "session" => {
                return ControlFlow::Break(SqlError::Unsupported(
                    "SESSION windows are not supported yet".into(),
                ))
            }
            _ => return ControlFlow::Continue(()),
        };
        let exprs: Result<Vec<&Expr>, SqlError> = args
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                other => Err(SqlError::Syntax(format!(
                    "{}: unexpected argument {other}",
                    fname.to_uppercase()
                ))),
            })
            .collect();
        let exprs = match exprs {
            Ok(e) => e,
            Err(e) => return ControlFlow::Break(e),
        };
        match window_subquery(kind, &exprs, alias.as_ref()) {
            Ok(derived) => {
                *f = derived;
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tumble,
    Hop,
}

fn window_subquery(
    kind: Kind,
    args: &[&Expr],
    alias: Option<&TableAlias>,
) -> Result<TableFactor, SqlError> {
    let (usage, want) = match kind {
        Kind::Tumble => ("TUMBLE(relation, time_column, size [, offset])", 3),
        Kind::Hop => ("HOP(relation, time_column, slide, size [, offset])", 4),
    };
    if args.len() != want && args.len() != want + 1 {
        return Err(SqlError::Syntax(format!(
            "wrong number of arguments: expected {usage}"
        )));
    }
    let rel = match args[0] {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => args[0].to_string(),
        other => {
            return Err(SqlError::Syntax(format!(
                "the first argument of {usage} must name a relation, found {other}"
            )))
        }
    };
    let ts = match args[1] {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => args[1].to_string(),
        other => {
            return Err(SqlError::Syntax(format!(
                "the second argument of {usage} must name a timestamp column, found {other}"
            )))
        }
    };
    let offset = args.get(want).map(|e| e.to_string());
    let origin = match &offset {
        Some(o) => format!("TIMESTAMP '1970-01-01 00:00:00' + {o}"),
        None => "TIMESTAMP '1970-01-01 00:00:00'".to_string(),
    };
    // Shifts are durations, not intervals: timestamp ± duration is plain
    // integer arithmetic over the batch, where ± interval goes through
    // calendar arithmetic row by row.
    let duration = |us: i64| format!("arrow_cast({us}, 'Duration(Microsecond)')");
    let sql = match kind {
        Kind::Tumble => {
            let size = args[2];
            let size_d = duration(positive_micros(size, "window size")?);
            format!(
                "SELECT *, date_bin({size}, {ts}, {origin}) AS window_start, \
                 date_bin({size}, {ts}, {origin}) + {size_d} AS window_end FROM {rel}"
            )
        }
        Kind::Hop => {
            let (slide, size) = (args[2], args[3]);
            let slide_us = positive_micros(slide, "slide")?;
            let size_us = positive_micros(size, "window size")?;
            if size_us % slide_us != 0 {
                return Err(SqlError::Unsupported(format!(
                    "HOP with a window size ({size}) that is not a multiple of the slide ({slide})"
                )));
            }
            let n = size_us / slide_us;
            if n > MAX_HOP_WINDOWS {
                return Err(SqlError::Unsupported(format!(
                    "HOP assigning each row to {n} windows (at most {MAX_HOP_WINDOWS})"
                )));
            }
            let size_d = duration(size_us);
            (0..n)
                .map(|i| {
                    let start = if i == 0 {
                        format!("date_bin({slide}, {ts}, {origin})")
                    } else {
                        format!(
                            "date_bin({slide}, {ts}, {origin}) - {}",
                            duration(i * slide_us)
                        )
                    };
                    format!(
                        "SELECT *, {start} AS window_start, {start} + {size_d} AS window_end FROM {rel}"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ")
        }
    };
    let query = super::parser::parse_query(&sql)?;
    let alias = alias.cloned().or_else(|| {
        // Keep the relation's own name usable as a qualifier.
        let last = match args[0] {
            Expr::Identifier(i) => Some(i.clone()),
            Expr::CompoundIdentifier(parts) => parts.last().cloned(),
            _ => None,
        };
        last.map(|name| TableAlias {
            explicit: true,
            name,
            columns: vec![],
            at: None,
        })
    });
    Ok(TableFactor::Derived {
        lateral: false,
        subquery: query,
        alias,
        sample: None,
    })
}

/// A constant, positive interval of fixed length (no months), in
/// microseconds.
pub(crate) fn positive_micros(e: &Expr, what: &str) -> Result<i64, SqlError> {
    let bad = || {
        SqlError::Syntax(format!(
            "the {what} must be a constant positive interval such as INTERVAL '10 seconds', found {e}"
        ))
    };
    let Expr::Interval(iv) = e else {
        return Err(bad());
    };
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.clone(),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    let text = match &iv.leading_field {
        Some(unit) if iv.last_field.is_none() => format!("{text} {unit}"),
        Some(_) => return Err(bad()),
        None => text,
    };
    let v: IntervalMonthDayNano = crate::ingest::coerce::parse_interval(&text).ok_or_else(bad)?;
    if v.months != 0 {
        return Err(SqlError::Unsupported(format!(
            "a {what} in months or years ({e}): windows must have a fixed length"
        )));
    }
    let us = v.days as i64 * 86_400_000_000 + v.nanoseconds / 1000;
    if us <= 0 {
        return Err(bad());
    }
    Ok(us)
}

/// Rewrites the Flink form `TABLE(TUMBLE(TABLE rel, DESCRIPTOR(ts), …))`
/// into the RisingWave form `TUMBLE(rel, ts, …)`, token by token, so the
/// parser sees one syntax. Text without `DESCRIPTOR` is returned unchanged.
pub fn normalize_flink_windows(text: &str) -> Result<std::borrow::Cow<'_, str>, SqlError> {
    if !text.to_ascii_lowercase().contains("descriptor") {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let Some(spanned) = super::parser::tokens_with_ranges(text) else {
        // Let the parser report the error.
        return Ok(std::borrow::Cow::Borrowed(text));
    };
    let (tokens, ranges): (Vec<Token>, Vec<std::ops::Range<usize>>) = spanned.into_iter().unzip();
    let mut remove = vec![false; tokens.len()];
    let mut replace: Vec<(usize, String)> = Vec::new();
    let next = |from: usize| -> Option<usize> {
        (from..tokens.len()).find(|&j| !matches!(tokens[j], Token::Whitespace(_)))
    };
    let is_kw = |i: Option<usize>, k: Keyword| matches!(i.map(|i| &tokens[i]), Some(Token::Word(w)) if w.keyword == k);
    let is_word = |i: Option<usize>, s: &str| matches!(i.map(|i| &tokens[i]), Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(s));
    let is_tok = |i: Option<usize>, t: &Token| i.map(|i| &tokens[i]) == Some(t);
    // Index of the `)` closing the `(` at `open`.
    let closing = |open: usize| -> Option<usize> {
        let mut depth = 0usize;
        for (j, t) in tokens.iter().enumerate().skip(open) {
            match t {
                Token::LParen => depth += 1,
                Token::RParen => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                _ => {}
            }
        }
        None
    };
    for i in 0..tokens.len() {
        if !is_kw(Some(i), Keyword::TABLE) {
            continue;
        }
        let lp = next(i + 1);
        if !is_tok(lp, &Token::LParen) {
            continue;
        }
        let func = next(lp.map_or(i, |p| p + 1));
        let is_session = is_word(func, "session");
        if !(is_word(func, "tumble") || is_word(func, "hop") || is_session) {
            continue;
        }
        let (Some(lp), Some(func)) = (lp, func) else {
            continue;
        };
        if is_session {
            let Some(close) = closing(lp) else { continue };
            let call = session_call(&tokens[func + 1..close]).ok_or_else(|| {
                SqlError::Syntax(
                    "expected TABLE(SESSION(TABLE relation [PARTITION BY column, ...], DESCRIPTOR(time_column), gap)))"
                        .into(),
                )
            })?;
            for r in remove.iter_mut().take(close + 1).skip(i) {
                *r = true;
            }
            replace.push((i, call));
            continue;
        }
        let inner_lp = next(func + 1);
        if !is_tok(inner_lp, &Token::LParen) {
            continue;
        }
        let Some(inner_lp) = inner_lp else { continue };
        let table_kw = next(inner_lp + 1);
        if !is_kw(table_kw, Keyword::TABLE) {
            continue;
        }
        let Some(close) = closing(lp) else { continue };
        let Some(inner_close) = closing(inner_lp) else {
            continue;
        };
        // outer `TABLE (` … `)`
        remove[i] = true;
        remove[lp] = true;
        remove[close] = true;
        // inner `TABLE`
        if let Some(t) = table_kw {
            remove[t] = true;
        }
        // `DESCRIPTOR ( col )` → `col`
        let mut j = inner_lp + 1;
        while j < inner_close {
            if is_word(Some(j), "descriptor") {
                let p = next(j + 1);
                if let (true, Some(p)) = (is_tok(p, &Token::LParen), p) {
                    if let Some(c) = closing(p) {
                        remove[j] = true;
                        remove[p] = true;
                        remove[c] = true;
                        j = c;
                    }
                }
            }
            j += 1;
        }
    }
    let mut out = String::with_capacity(text.len());
    for i in 0..tokens.len() {
        if let Some((_, call)) = replace.iter().find(|(at, _)| *at == i) {
            out.push_str(call);
        }
        if !remove[i] {
            out.push_str(&text[ranges[i].clone()]);
        }
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// `(TABLE rel [PARTITION BY a, b], DESCRIPTOR(ts), gap)` (the tokens of the
/// SESSION call's parentheses) as `session_window('rel', 'a,b', 'ts', gap)`.
fn session_call(tokens: &[Token]) -> Option<String> {
    let toks: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let word = |t: &Token| match t {
        Token::Word(w) => Some(match w.quote_style {
            Some(_) => w.value.clone(),
            None => w.value.to_ascii_lowercase(),
        }),
        _ => None,
    };
    let is_kw = |t: &Token, k: &str| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(k));
    // ( TABLE rel
    if toks.len() < 4 || toks[0] != &Token::LParen || !is_kw(toks[1], "table") {
        return None;
    }
    let rel = word(toks[2])?;
    let mut i = 3;
    let mut parts = Vec::new();
    if is_kw(toks[i], "partition") {
        if !is_kw(toks.get(i + 1)?, "by") {
            return None;
        }
        i += 2;
        loop {
            parts.push(word(toks.get(i)?)?);
            i += 1;
            if toks.get(i)? != &&Token::Comma {
                return None;
            }
            i += 1;
            if is_kw(toks.get(i)?, "descriptor") {
                break;
            }
        }
    } else {
        if toks[i] != &Token::Comma {
            return None;
        }
        i += 1;
    }
    // DESCRIPTOR ( ts ) ,
    if !is_kw(toks.get(i)?, "descriptor") || toks.get(i + 1)? != &&Token::LParen {
        return None;
    }
    let ts = word(toks.get(i + 2)?)?;
    if toks.get(i + 3)? != &&Token::RParen || toks.get(i + 4)? != &&Token::Comma {
        return None;
    }
    // gap ... )
    let rest = &toks[i + 5..];
    let (last, gap) = rest.split_last()?;
    if *last != &Token::RParen || gap.is_empty() {
        return None;
    }
    let gap: Vec<String> = gap.iter().map(|t| t.to_string()).collect();
    Some(format!(
        "session_window('{rel}', '{}', '{ts}', {})",
        parts.join(","),
        gap.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> String {
        let q = super::super::parser::parse_query(&normalize_flink_windows(sql).unwrap()).unwrap();
        let mut st = Statement::Query(q);
        expand_window_functions(&mut st).unwrap();
        st.to_string()
    }

    #[test]
    fn tumble_adds_window_bounds() {
        let s = rewrite("SELECT window_start, count(*) FROM TUMBLE(bids, date_time, INTERVAL '10 seconds') GROUP BY 1");
        assert!(s.contains("date_bin(INTERVAL '10 seconds', date_time, TIMESTAMP '1970-01-01 00:00:00') AS window_start"), "{s}");
        assert!(s.contains("AS window_end FROM bids) AS bids"), "{s}");
    }

    #[test]
    fn flink_rewrite_copies_other_text_verbatim() {
        let text =
            "SELECT 'it''s' AS s FROM TABLE(TUMBLE(TABLE e, DESCRIPTOR(ts), INTERVAL '1' MINUTE))";
        let got = normalize_flink_windows(text).unwrap();
        assert_eq!(
            got,
            "SELECT 'it''s' AS s FROM TUMBLE( e, ts, INTERVAL '1' MINUTE)"
        );
    }

    #[test]
    fn flink_form_is_the_same() {
        let a = rewrite("SELECT * FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND)");
        let b = rewrite(
            "SELECT * FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(date_time), INTERVAL '10' SECOND))",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn hop_is_a_union_of_shifted_windows() {
        let s = rewrite(
            "SELECT * FROM HOP(bids, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') h",
        );
        assert_eq!(s.matches("UNION ALL").count(), 4, "{s}");
        assert!(
            s.contains("arrow_cast(8000000, 'Duration(Microsecond)')"),
            "{s}"
        );
        assert!(s.ends_with(") h"), "{s}");
    }

    #[test]
    fn bad_arguments_are_errors() {
        for sql in [
            "SELECT * FROM TUMBLE(bids, date_time)",
            "SELECT * FROM TUMBLE(bids, date_time, 10)",
            "SELECT * FROM TUMBLE(bids, date_time, INTERVAL '1 month')",
            "SELECT * FROM HOP(bids, date_time, INTERVAL '3 seconds', INTERVAL '10 seconds')",
            "SELECT * FROM TUMBLE(bids, date_time, INTERVAL '-1 second')",
        ] {
            let q = super::super::parser::parse_query(sql).unwrap();
            let mut st = Statement::Query(q);
            assert!(expand_window_functions(&mut st).is_err(), "{sql}");
        }
        assert_eq!(
            normalize_flink_windows(
                "SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '30' SECOND)) s"
            )
            .unwrap(),
            "SELECT * FROM session_window('bids', 'bidder', 'date_time', INTERVAL '30' SECOND) s"
        );
        assert!(normalize_flink_windows(
            "SELECT * FROM TABLE(SESSION(TABLE bids PARTITION BY, DESCRIPTOR(date_time), INTERVAL '30' SECOND))"
        )
        .is_err());
    }
}
