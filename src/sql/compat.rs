//! Postgres-compatibility rewrites, split by what they are allowed to change.
//!
//! `datafusion-pg-catalog` rewrites client SQL so that DataFusion can run
//! the introspection queries psql, drivers and BI tools send. Some of its
//! rewrites only change spelling (`pg_catalog.lower(x)` → `lower(x)`,
//! `OPERATOR(pg_catalog.~)` → `~`). Others change the answer to get a query
//! through at all: a correlated subquery in a select list becomes `NULL`, an
//! uncorrelated one gets `LIMIT 1`, whole known client queries are replaced
//! by canned empty results, `x = ANY('{…}')` becomes a membership test with
//! different NULL semantics, every `COLLATE` clause is dropped.
//!
//! Those lossy rewrites are acceptable for a query about the catalog itself
//! (its only reader is a client building a menu), never for a query over
//! user data, where they are silently wrong answers. So each statement is
//! classified first:
//!
//! * a **catalog statement** reads only `pg_catalog` / `information_schema`
//!   relations: it gets the full client-compatibility treatment;
//! * every other statement gets only the **faithful** rewrites, which never
//!   change a result: what DataFusion cannot plan faithfully fails with a
//!   clear error instead.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::sqlparser::ast::{
    Array, DataType, Expr, ObjectNamePart, Query, Statement, TableFactor, Value, ValueWithSpan,
    Visit, VisitMut, Visitor, VisitorMut,
};
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;
use datafusion_pg_catalog::sql::rules::{
    AliasDuplicatedProjectionRewrite, FixArrayLiteral, FixVersionColumnName,
    PrependUnqualifiedPgTableName, ResolveUnqualifiedIdentifier, RewriteArrayAnyAllOperation,
    RewritePgCatalogOperator, RewriteRegCastToSubquery, SqlStatementRewriteRule,
    StripCallableQualifier, StripCollate,
};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;

/// Both rewrite pipelines; see the module documentation.
pub struct Compat {
    /// The whole client-compatibility parser (canned answers, lossy rules).
    client: PostgresCompatibilityParser,
}

impl Default for Compat {
    fn default() -> Self {
        Compat::new()
    }
}

/// Rules that change spelling only, so a statement means what it means in
/// Postgres: applied to every statement, and to a view's stored query.
static FAITHFUL: std::sync::LazyLock<Vec<Arc<dyn SqlStatementRewriteRule>>> =
    std::sync::LazyLock::new(|| {
        let mut rules: Vec<Arc<dyn SqlStatementRewriteRule>> = vec![
            // Postgres resolves these names in pg_catalog first too.
            Arc::new(PrependUnqualifiedPgTableName),
            Arc::new(PrependSessionTables),
            // DataFusion has one flat function namespace.
            Arc::new(StripCallableQualifier),
            Arc::new(ExactArrayLiteral),
            Arc::new(SpecialRegisters),
            Arc::new(PostgresLiterals),
            Arc::new(StripByteOrderCollate),
            Arc::new(RewritePgCatalogOperator),
            Arc::new(RewriteRegCastToSubquery::new()),
            Arc::new(FixVersionColumnName),
        ];
        rules.extend(ours());
        rules
    });

/// Our rules of client SQL shapes, last in both pipelines.
fn ours() -> Vec<Arc<dyn SqlStatementRewriteRule>> {
    vec![
        Arc::new(ArraySubquery),
        Arc::new(SeriesFunctions),
        Arc::new(GenerateSubscripts),
        Arc::new(ExpandArray),
        Arc::new(CompositeField),
        Arc::new(RegtypeArray),
        Arc::new(RegclassOfText),
    ]
}

/// The client-compatibility rules for statements that read only the
/// catalog: those of `datafusion-pg-catalog`'s parser but for its
/// `RemoveSubqueryFromProjection`, which answers NULL for a correlated
/// subquery in a select list (Freshet plans those: `(SELECT count(*) FROM
/// pg_class k WHERE k.relname = t.name)` is a number), and ours for the
/// special registers, then ours.
static CATALOG: std::sync::LazyLock<Vec<Arc<dyn SqlStatementRewriteRule>>> =
    std::sync::LazyLock::new(|| {
        let mut rules: Vec<Arc<dyn SqlStatementRewriteRule>> = vec![
            Arc::new(AliasDuplicatedProjectionRewrite),
            Arc::new(ResolveUnqualifiedIdentifier),
            Arc::new(RewriteArrayAnyAllOperation),
            Arc::new(PrependUnqualifiedPgTableName),
            Arc::new(StripCallableQualifier),
            Arc::new(FixArrayLiteral),
            // (not the library's `CurrentUserVariableToSessionUserFunctionCall`:
            // it makes `current_user` `session_user`, which differs after
            // `SET ROLE`)
            Arc::new(SpecialRegisters),
            Arc::new(StripCollate),
            Arc::new(RewritePgCatalogOperator),
            Arc::new(RewriteRegCastToSubquery::new()),
            Arc::new(FixVersionColumnName),
            Arc::new(PrependSessionTables),
        ];
        rules.extend(ours());
        rules
    });

/// Client queries the catalog library replaces with a canned answer that
/// Freshet answers itself, by a fragment of each (whitespace removed):
/// Grafana's search-path test, which the library answers `''` (so every
/// table looked outside the search path) for want of `current_setting`.
const ANSWERED_HERE: [&str; 1] = ["'\"$user\"'THENuserELSEtrim(s[i])END"];

/// The faithful rewrites ([`FAITHFUL`]) of one statement.
pub fn faithful(s: Statement) -> Statement {
    apply(&FAITHFUL, s)
}

fn apply(rules: &[Arc<dyn SqlStatementRewriteRule>], mut s: Statement) -> Statement {
    for rule in rules {
        s = rule.rewrite(s);
    }
    s
}

impl Compat {
    pub fn new() -> Compat {
        Compat {
            client: PostgresCompatibilityParser::new(),
        }
    }

    /// Parses one statement's text (it may hold several; the caller checks).
    pub fn parse(&self, text: &str) -> Result<Vec<Statement>, ParserError> {
        let owned;
        let text = if text.contains("regproc") || text.contains("regtype") {
            owned = regproc_literals(text);
            owned.as_str()
        } else {
            text
        };
        let plain = Parser::new(&crate::sql::dialect::Postgres)
            .with_recursion_limit(super::depth::MAX_DEPTH)
            .try_with_sql(text)?
            .parse_statements()?;
        if !plain.is_empty() && plain.iter().all(reads_only_catalog) {
            // A client query the library answers with a canned replacement
            // (its parse differs from its rules alone) keeps that answer;
            // any other gets the rules of [`CATALOG`].
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            if ANSWERED_HERE.iter().any(|f| compact.contains(f)) {
                return Ok(plain.into_iter().map(|s| apply(&CATALOG, s)).collect());
            }
            let client = self.client.parse(text)?;
            // (compared with the library's own parse of the text, in its
            // dialect: ours parses some words, `user`, differently)
            let theirs = Parser::new(&datafusion::sql::sqlparser::dialect::PostgreSqlDialect {})
                .with_recursion_limit(super::depth::MAX_DEPTH)
                .try_with_sql(text)?
                .parse_statements()?;
            // (as text: the token-level reparse may build another tree for
            // the same text, `user` as a function or a keyword)
            let replaced = client.len() != theirs.len()
                || client
                    .iter()
                    .zip(theirs)
                    .any(|(c, p)| c.to_string() != self.client.rewrite(p).to_string());
            let statements = if replaced { client } else { plain };
            return Ok(statements.into_iter().map(|s| apply(&CATALOG, s)).collect());
        }
        Ok(plain.into_iter().map(|s| self.rewrite(s)).collect())
    }

    /// The faithful rewrites, for a statement built elsewhere.
    pub fn rewrite(&self, s: Statement) -> Statement {
        faithful(s)
    }
}

/// `'schema.name'::regproc` as the text `'name'`: the catalog's `regproc`
/// columns (`pg_type.typinput`, …) hold function names, so pgJDBC's
/// `typinput = 'pg_catalog.array_in'::regproc` compares names, and the
/// literal shows as PostgreSQL shows a `regproc` (`array_in`). And
/// `'type name'::regtype` (not cast further) as `to_regtype('type name')`,
/// the type's OID for every spelling PostgreSQL reads (`integer`, `int4`,
/// `character varying`). Only a quoted literal directly cast is changed.
fn regproc_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(q) = rest.find('\'') {
        // the literal's end ('' is a quote inside it)
        let body_start = q + 1;
        let mut end = None;
        let bytes = rest.as_bytes();
        let mut i = body_start;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                end = Some(i);
                break;
            }
            i += 1;
        }
        let Some(end) = end else {
            break;
        };
        let after = &rest[end + 1..];
        // (`get`: a slice that would cut a character is no match)
        let cast = [
            ("::pg_catalog.regproc", false),
            ("::regproc", false),
            ("::pg_catalog.regtype", true),
            ("::regtype", true),
        ]
        .iter()
        .find(|(c, regtype)| {
            after
                .get(..c.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(c))
                && !after[c.len()..].starts_with(|ch: char| {
                    ch.is_ascii_alphanumeric()
                        || ch == '_'
                        || (*regtype && (ch == ':' || ch == '['))
                })
        })
        .map(|(c, regtype)| (c.len(), *regtype));
        out.push_str(&rest[..q]);
        match cast {
            Some((len, true)) => {
                // a type name: its OID, as `to_regtype` reads every spelling
                out.push_str("to_regtype(");
                out.push_str(&rest[q..end + 1]);
                out.push(')');
                rest = &after[len..];
            }
            Some((len, false)) => {
                let name = &rest[body_start..end];
                let name = name.split('(').next().unwrap_or(name);
                let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
                out.push('\'');
                out.push_str(name);
                out.push('\'');
                rest = &after[len..];
            }
            None => {
                out.push_str(&rest[q..end + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// True when `s` reads at least one catalog relation and nothing else
/// (table functions such as `generate_series` and the statement's own CTEs
/// aside).
pub fn reads_only_catalog(s: &Statement) -> bool {
    if !matches!(s, Statement::Query(_)) {
        return false;
    }
    struct Walk {
        ctes: HashSet<String>,
        catalog: usize,
        other: usize,
    }
    impl Visitor for Walk {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for c in &with.cte_tables {
                    self.ctes.insert(c.alias.name.value.to_ascii_lowercase());
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table { name, args, .. } = t {
                if args.is_some() {
                    return ControlFlow::Continue(());
                }
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .map(|p| match p {
                        ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
                        other => other.to_string(),
                    })
                    .collect();
                let is_catalog = match parts.as_slice() {
                    [schema, _] | [_, schema, _] => {
                        schema == "pg_catalog" || schema == "information_schema"
                    }
                    [one] if self.ctes.contains(one) => return ControlFlow::Continue(()),
                    [one] => PG_CATALOG_TABLES.contains(&one.as_str()),
                    _ => false,
                };
                if is_catalog {
                    self.catalog += 1;
                } else {
                    self.other += 1;
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut w = Walk {
        ctes: HashSet::new(),
        catalog: 0,
        other: 0,
    };
    let _ = s.visit(&mut w);
    w.catalog > 0 && w.other == 0
}

/// `COLLATE "C"` (and its synonyms): the byte order every comparison here
/// already uses, so the clause can go. Any other collation is left for
/// DataFusion to refuse: dropping it would change an ORDER BY's answer.
/// `current_catalog` → `current_database()`, a bare `current_schema` →
/// `current_schema()`, `user` → `current_user`. (`current_user` stays itself: it differs from
/// `session_user` after `SET ROLE`; both are functions of the session.)
#[derive(Debug)]
struct SpecialRegisters;

impl SqlStatementRewriteRule for SpecialRegisters {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::FunctionArguments;
        fn call(name: &str) -> Expr {
            call_named(name, vec![])
        }
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                match e {
                    Expr::Identifier(id)
                        if id.quote_style.is_none()
                            && id.value.eq_ignore_ascii_case("current_schema") =>
                    {
                        *e = call("current_schema");
                    }
                    Expr::Function(f)
                        if matches!(f.args, FunctionArguments::None)
                            && f.name.to_string().eq_ignore_ascii_case("current_catalog") =>
                    {
                        *e = call("current_database");
                    }
                    // `user` is `current_user` (the same function, under
                    // the name whose plans are known to hold: a `CASE …
                    // THEN user …` inside an `IN` subquery was found to
                    // match nothing)
                    Expr::Function(f)
                        if matches!(f.args, FunctionArguments::None)
                            && f.name.to_string().eq_ignore_ascii_case("user") =>
                    {
                        f.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![
                            datafusion::sql::sqlparser::ast::Ident::new("current_user"),
                        ]);
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// The catalog tables sessions fill (`crate::catalog::pg_session`:
/// `pg_stat_activity`, `pg_cursors`) and those of keys and indexes
/// (`pg_indexes`, …) unqualified are `pg_catalog`'s, as
/// Postgres resolves them (the generic rule knows only its own tables).
#[derive(Debug)]
struct PrependSessionTables;

impl SqlStatementRewriteRule for PrependSessionTables {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{Ident, ObjectName, ObjectNamePart, TableFactor};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table { name, args, .. } = t {
                    let ours = args.is_none()
                        && name.0.len() == 1
                        && name.0[0].as_ident().is_some_and(|i| {
                            crate::catalog::pg_session::TABLES
                                .iter()
                                .chain(&crate::catalog::pg_keys::TABLES)
                                .any(|t| t.eq_ignore_ascii_case(&i.value))
                        });
                    if ours {
                        *name = ObjectName(vec![
                            ObjectNamePart::Identifier(Ident::new("pg_catalog")),
                            name.0[0].clone(),
                        ]);
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// `ARRAY(subquery)` (psql's `\du`, `\d+`; DataFusion has no such
/// constructor) as `COALESCE((SELECT array_agg(e ORDER BY …) FROM …),
/// make_array())`: the subquery's ORDER BY moves into the aggregate, and no
/// rows give an empty array, as in Postgres. A subquery that is not a plain
/// one-column SELECT (LIMIT, DISTINCT, GROUP BY, a set operation) is read as
/// a derived table, its order then not kept.
#[derive(Debug)]
struct ArraySubquery;

impl SqlStatementRewriteRule for ArraySubquery {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{FunctionArguments, Ident};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            // an unaliased ARRAY(…) in a select list is named `array`
            fn pre_visit_query(
                &mut self,
                q: &mut datafusion::sql::sqlparser::ast::Query,
            ) -> ControlFlow<()> {
                name_select_items(q, |e| {
                    matches!(e, Expr::Function(f)
                        if f.name.to_string().eq_ignore_ascii_case("array")
                            && matches!(f.args, FunctionArguments::Subquery(_)))
                    .then(|| Ident::new("array"))
                });
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Function(f) = e {
                    if f.name.to_string().eq_ignore_ascii_case("array") {
                        if let FunctionArguments::Subquery(q) = &f.args {
                            if let Some(r) = array_of(q) {
                                *e = r;
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// The `ARRAY(q)` replacement (see [`ArraySubquery`]), or `None` to leave
/// it for the planner to refuse.
fn array_of(q: &datafusion::sql::sqlparser::ast::Query) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{OrderByKind, SelectItem, SetExpr};
    let parse = |sql: &str| {
        Parser::new(&crate::sql::dialect::Postgres)
            .try_with_sql(sql)
            .ok()?
            .parse_expr()
            .ok()
    };
    let plain = match q.body.as_ref() {
        SetExpr::Select(sel)
            if sel.projection.len() == 1
                && sel.distinct.is_none()
                && sel.having.is_none()
                && matches!(&sel.group_by, datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(g, _) if g.is_empty())
                && q.limit_clause.is_none()
                && q.fetch.is_none() =>
        {
            match &sel.projection[0] {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    Some(e.clone())
                }
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(r) = plain.as_ref().and_then(|v| transform_of_unnest(q, v)) {
        return Some(r);
    }
    let Some(value) = plain else {
        return parse(&format!(
            "COALESCE((SELECT array_agg(__array.__v) FROM ({q}) AS __array(__v)), make_array())"
        ));
    };
    let mut order = Vec::new();
    if let Some(o) = &q.order_by {
        let OrderByKind::Expressions(items) = &o.kind else {
            return None;
        };
        for item in items {
            // `ORDER BY 1` is the value itself
            let by = match &item.expr {
                Expr::Value(v) if v.to_string() == "1" => value.clone(),
                other => other.clone(),
            };
            let mut item = item.clone();
            item.expr = by;
            order.push(item.to_string());
        }
    }
    let aggregate = if order.is_empty() {
        format!("array_agg({value})")
    } else {
        format!("array_agg({value} ORDER BY {})", order.join(", "))
    };
    let mut inner = q.clone();
    inner.order_by = None;
    if let SetExpr::Select(sel) = inner.body.as_mut() {
        sel.projection = vec![SelectItem::UnnamedExpr(parse(&aggregate)?)];
    }
    parse(&format!("COALESCE(({inner}), make_array())"))
}

/// `generate_series` as PostgreSQL has it: a set-returning function.
///
/// * In `FROM`, DataFusion's table function names its column `value` and
///   makes it `bigint`; PostgreSQL names it after the function, or after
///   the table alias (`generate_series(1, 3) AS s` has a column `s`), and
///   over integers it is `integer`. The call becomes `(SELECT value AS
///   name FROM generate_series(…) AS __series) AS alias`, cast to integer
///   when every argument is an integer constant that fits one.
/// * In an expression, DataFusion's scalar `generate_series` gives one
///   array; PostgreSQL gives a row per value. The call becomes
///   `unnest(__series_list(…))` (the same function under another name, so
///   a second pass leaves it alone), named `generate_series` in a select
///   list. A table alias of `unnest(a)` without column names names its
///   column too, as in PostgreSQL.
/// * A function that returns one value, in `FROM` (see [`SCALAR_IN_FROM`]),
///   is `(SELECT f(…) AS alias) AS alias`: one row, as in PostgreSQL.
#[derive(Debug)]
struct SeriesFunctions;

/// The integer constant `e` is, if it is one.
fn int_constant(e: &Expr) -> Option<i64> {
    use datafusion::sql::sqlparser::ast::{UnaryOperator, Value};
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => int_constant(expr).map(|n| -n),
        Expr::Nested(inner) => int_constant(inner),
        _ => None,
    }
}

/// Functions that return one value (here: arrays and settings) and that
/// tools call in FROM, where PostgreSQL makes them a one-row table whose
/// column is named by the alias (Grafana reads `FROM
/// string_to_array(current_setting('search_path'), ',') s`).
const SCALAR_IN_FROM: [&str; 6] = [
    "string_to_array",
    "regexp_split_to_array",
    "current_schemas",
    "current_setting",
    "parse_ident",
    "current_database",
];

fn is_scalar_in_from(name: &datafusion::sql::sqlparser::ast::ObjectName) -> bool {
    name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
        SCALAR_IN_FROM
            .iter()
            .any(|f| i.value.eq_ignore_ascii_case(f))
    })
}

fn is_series(name: &datafusion::sql::sqlparser::ast::ObjectName) -> bool {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_series"))
}

/// Whether every argument is an integer constant that fits an `integer`.
fn int4_arguments(args: &[datafusion::sql::sqlparser::ast::FunctionArg]) -> bool {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
    !args.is_empty()
        && args.iter().all(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                int_constant(e).is_some_and(|n| i32::try_from(n).is_ok())
            }
            _ => false,
        })
}

impl SqlStatementRewriteRule for SeriesFunctions {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{
            FunctionArguments, Ident, ObjectName, Query, TableAlias, TableAliasColumnDef,
            TableFactor,
        };
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
                name_select_items(q, |e| {
                    matches!(e, Expr::Function(f) if is_series(&f.name))
                        .then(|| Ident::new("generate_series"))
                });
                ControlFlow::Continue(())
            }

            fn post_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
                match t {
                    TableFactor::Table {
                        name,
                        args: Some(args),
                        alias,
                        ..
                    } if is_series(name)
                        && alias.as_ref().is_none_or(|a| a.name.value != "__series") =>
                    {
                        let column = alias
                            .as_ref()
                            .map(|a| match a.columns.first() {
                                Some(c) => c.name.clone(),
                                None => a.name.clone(),
                            })
                            .unwrap_or_else(|| Ident::new("generate_series"));
                        let value = if int4_arguments(&args.args) {
                            "CAST(value AS INTEGER)"
                        } else {
                            "value"
                        };
                        let call = args
                            .args
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = format!(
                            "(SELECT {value} AS {column} FROM generate_series({call}) AS __series)"
                        );
                        let Some(subquery) = Parser::new(&crate::sql::dialect::Postgres)
                            .try_with_sql(&sql)
                            .ok()
                            .and_then(|mut p| p.parse_query().ok())
                        else {
                            return ControlFlow::Continue(());
                        };
                        let alias = alias.clone().unwrap_or(TableAlias {
                            explicit: true,
                            name: Ident::new("generate_series"),
                            columns: vec![],
                            at: None,
                        });
                        *t = TableFactor::Derived {
                            lateral: false,
                            subquery,
                            alias: Some(alias),
                            sample: None,
                        };
                    }
                    TableFactor::Table {
                        name,
                        args: Some(args),
                        alias,
                        ..
                    } if is_scalar_in_from(name) => {
                        let function = name
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .map(|i| Ident::new(i.value.to_lowercase()))
                            .unwrap_or_else(|| Ident::new("f"));
                        let column = alias
                            .as_ref()
                            .map(|a| match a.columns.first() {
                                Some(c) => c.name.clone(),
                                None => a.name.clone(),
                            })
                            .unwrap_or_else(|| function.clone());
                        let call = args
                            .args
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        let sql = format!("(SELECT {name}({call}) AS {column})");
                        let Some(subquery) = Parser::new(&crate::sql::dialect::Postgres)
                            .try_with_sql(&sql)
                            .ok()
                            .and_then(|mut p| p.parse_query().ok())
                        else {
                            return ControlFlow::Continue(());
                        };
                        let alias = alias.clone().unwrap_or(TableAlias {
                            explicit: true,
                            name: function,
                            columns: vec![],
                            at: None,
                        });
                        *t = TableFactor::Derived {
                            lateral: false,
                            subquery,
                            alias: Some(alias),
                            sample: None,
                        };
                    }
                    TableFactor::UNNEST {
                        alias: Some(a),
                        array_exprs,
                        with_offset: false,
                        ..
                    } if a.columns.is_empty() && array_exprs.len() == 1 => {
                        a.columns = vec![TableAliasColumnDef {
                            name: a.name.clone(),
                            data_type: None,
                        }];
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }

            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let Expr::Function(f) = e else {
                    return ControlFlow::Continue(());
                };
                if !is_series(&f.name) {
                    return ControlFlow::Continue(());
                }
                let int4 = match &f.args {
                    FunctionArguments::List(l) => int4_arguments(&l.args),
                    _ => false,
                };
                let mut list = f.clone();
                list.name = ObjectName::from(vec![Ident::new("__series_list")]);
                let unnested = call_named("unnest", vec![Expr::Function(list)]);
                *e = if int4 {
                    Expr::Cast {
                        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                        expr: Box::new(unnested),
                        data_type: datafusion::sql::sqlparser::ast::DataType::Integer(None),
                        array: false,
                        format: None,
                    }
                } else {
                    unnested
                };
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// `generate_subscripts(a, d)` (SQLAlchemy's key reflection zips it with
/// `unnest(a)`; DataFusion has no such function) as `unnest(generate_series(1,
/// array_length(a, d)))`: the subscripts of a 1-based array, none for an
/// empty or NULL one.
#[derive(Debug)]
struct GenerateSubscripts;

impl SqlStatementRewriteRule for GenerateSubscripts {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let Expr::Function(f) = e else {
                    return ControlFlow::Continue(());
                };
                let named = f
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("generate_subscripts"));
                let FunctionArguments::List(list) = &f.args else {
                    return ControlFlow::Continue(());
                };
                let args: Vec<Expr> = list
                    .args
                    .iter()
                    .filter_map(|a| match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => Some(x.clone()),
                        _ => None,
                    })
                    .collect();
                if named && args.len() == 2 && list.args.len() == 2 {
                    let length = Expr::Cast {
                        kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                        expr: Box::new(call_named("array_length", args)),
                        data_type: datafusion::sql::sqlparser::ast::DataType::BigInt(None),
                        array: false,
                        format: None,
                    };
                    let one = Expr::value(datafusion::sql::sqlparser::ast::Value::Number(
                        "1".into(),
                        false,
                    ));
                    *e = call_named(
                        "unnest",
                        vec![call_named("__series_list", vec![one, length])],
                    );
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// `information_schema._pg_expandarray(a)` (pgJDBC's `getPrimaryKeys`,
/// `getIndexInfo`: a set of `(x, n)` records, each element and its
/// subscript) as `unnest(pg_expandarray_list(a))`, a list of such structs
/// unnested (`sql::functions`).
#[derive(Debug)]
struct ExpandArray;

impl SqlStatementRewriteRule for ExpandArray {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let Expr::Function(f) = e else {
                    return ControlFlow::Continue(());
                };
                let named = f
                    .name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| i.value.eq_ignore_ascii_case("_pg_expandarray"));
                let FunctionArguments::List(list) = &f.args else {
                    return ControlFlow::Continue(());
                };
                if let (true, [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))]) =
                    (named, list.args.as_slice())
                {
                    *e = call_named(
                        "unnest",
                        vec![call_named("pg_expandarray_list", vec![a.clone()])],
                    );
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// A relation's name computed at run time cast to `regclass`
/// (`format('%I.%I', schema, name)::regclass`, Metabase's) or passed to
/// `to_regclass(text)`, as the OID `pg_class` gives the relation: a
/// subquery over `pg_class` and `pg_namespace` matching the name's parts
/// (`__relation_part`: an unqualified name is `public`'s). A name that
/// matches nothing is NULL (PostgreSQL's cast fails with 42P01 there;
/// `to_regclass` is NULL as here). Constant names are resolved by the
/// generic catalog's rule before this one.
#[derive(Debug)]
struct RegclassOfText;

fn is_regclass(t: &DataType) -> bool {
    match t {
        DataType::Regclass => true,
        DataType::Custom(name, _) => name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("regclass")),
        _ => false,
    }
}

impl SqlStatementRewriteRule for RegclassOfText {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let name = match e {
                    Expr::Cast {
                        expr, data_type, ..
                    } if is_regclass(data_type) && computes_text(expr) => expr.to_string(),
                    Expr::Function(f)
                        if f.name
                            .0
                            .last()
                            .and_then(|p| p.as_ident())
                            .is_some_and(|i| i.value.eq_ignore_ascii_case("to_regclass")) =>
                    {
                        match &f.args {
                            FunctionArguments::List(l) => match l.args.as_slice() {
                                [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] => x.to_string(),
                                _ => return ControlFlow::Continue(()),
                            },
                            _ => return ControlFlow::Continue(()),
                        }
                    }
                    _ => return ControlFlow::Continue(()),
                };
                // (the name appears twice below: a name that is itself
                // long, a nest of such casts, is left to fail rather than
                // doubled at every level)
                if name.len() > 4096 {
                    return ControlFlow::Continue(());
                }
                let sql = format!(
                    "(SELECT __rc.oid FROM pg_catalog.pg_class __rc \
                     JOIN pg_catalog.pg_namespace __rn ON __rn.oid = __rc.relnamespace \
                     WHERE __rc.relname = __relation_part({name}, 2) \
                     AND __rn.nspname = __relation_part({name}, 1))"
                );
                if let Some(q) = Parser::new(&crate::sql::dialect::Postgres)
                    .try_with_sql(&sql)
                    .ok()
                    .and_then(|mut p| p.parse_expr().ok())
                {
                    *e = q;
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// Whether a `regclass` cast's operand computes a name (a function call,
/// a concatenation): a column or a number cast so is an OID already
/// (`a.attrelid::regclass`, SQLAlchemy's), and a string constant the generic
/// rule resolves.
fn computes_text(e: &Expr) -> bool {
    match e {
        // (only functions that build names: a cast of another function's
        // result, `pg_get_serial_sequence(…)::regclass` in SQLAlchemy's
        // reflection, would become a subquery correlated two levels out)
        Expr::Function(f) => f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
            ["format", "concat", "concat_ws"].contains(&i.value.to_lowercase().as_str())
        }),
        Expr::BinaryOp {
            op: datafusion::sql::sqlparser::ast::BinaryOperator::StringConcat,
            ..
        } => true,
        Expr::Nested(inner) => computes_text(inner),
        _ => false,
    }
}

/// `x::regtype[]` as `pg_regtype_array(x)`: an array of type OIDs as the
/// types' names; and `x::regtype::text` as `pg_regtype_name(x)`, the type's
/// name (a `regtype` is an OID here, which would show as digits)
/// (`catalog::pg_functions`).
#[derive(Debug)]
struct RegtypeArray;

impl SqlStatementRewriteRule for RegtypeArray {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::DataType as T;
        fn regtype(t: &T) -> bool {
            matches!(t, T::Custom(n, _) if n.0.last().and_then(|p| p.as_ident())
                .is_some_and(|i| i.value.eq_ignore_ascii_case("regtype")))
        }
        struct V;
        impl VisitorMut for V {
            type Break = ();
            // an unaliased `col::regtype::text` keeps the column's name
            fn pre_visit_query(
                &mut self,
                q: &mut datafusion::sql::sqlparser::ast::Query,
            ) -> ControlFlow<()> {
                name_select_items(q, |e| {
                    let Expr::Cast {
                        expr: inner,
                        data_type: outer,
                        ..
                    } = e
                    else {
                        return None;
                    };
                    let column = match inner.as_ref() {
                        Expr::Cast {
                            expr: x,
                            data_type: t,
                            ..
                        } if regtype(t) && matches!(outer, T::Text | T::Varchar(_)) => x.as_ref(),
                        x if matches!(outer, T::Array(
                            datafusion::sql::sqlparser::ast::ArrayElemTypeDef::SquareBracket(t, _)
                        ) if regtype(t)) =>
                        {
                            x
                        }
                        _ => return None,
                    };
                    match column {
                        Expr::Identifier(id) => Some(id.clone()),
                        Expr::CompoundIdentifier(ids) => ids.last().cloned(),
                        _ => None,
                    }
                });
                ControlFlow::Continue(())
            }

            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Cast {
                    expr, data_type, ..
                } = e
                {
                    let array_of_regtype = match data_type {
                        T::Array(
                            datafusion::sql::sqlparser::ast::ArrayElemTypeDef::SquareBracket(
                                inner,
                                _,
                            ),
                        ) => regtype(inner),
                        _ => false,
                    };
                    if array_of_regtype {
                        *e = call_named("pg_regtype_array", vec![(**expr).clone()]);
                        return ControlFlow::Continue(());
                    }
                    let to_text = matches!(
                        data_type,
                        T::Text | T::Varchar(_) | T::CharacterVarying(_) | T::String(_)
                    );
                    if let (
                        true,
                        Expr::Cast {
                            expr: inner,
                            data_type: inner_type,
                            ..
                        },
                    ) = (to_text, expr.as_ref())
                    {
                        if regtype(inner_type) {
                            *e = call_named("pg_regtype_name", vec![(**inner).clone()]);
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// A composite's field, `(expr).name`, as DataFusion's `expr['name']`
/// (DataFusion reads `.name` after an expression only for string keys).
#[derive(Debug)]
struct CompositeField;

impl SqlStatementRewriteRule for CompositeField {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::{AccessExpr, Subscript, Value};
        struct V;
        impl VisitorMut for V {
            type Break = ();
            // an unaliased `(expr).name` in a select list is named `name`
            fn pre_visit_query(
                &mut self,
                q: &mut datafusion::sql::sqlparser::ast::Query,
            ) -> ControlFlow<()> {
                name_select_items(q, |e| match e {
                    Expr::CompoundFieldAccess { root, access_chain } => {
                        match (root.as_ref(), access_chain.last()) {
                            (Expr::Nested(_), Some(AccessExpr::Dot(Expr::Identifier(id)))) => {
                                Some(id.clone())
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                });
                ControlFlow::Continue(())
            }
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::CompoundFieldAccess { root, access_chain } = e {
                    if matches!(root.as_ref(), Expr::Nested(_)) {
                        for a in access_chain.iter_mut() {
                            if let AccessExpr::Dot(Expr::Identifier(id)) = a {
                                let name = crate::sql::parser::normalize_ident(id);
                                *a = AccessExpr::Subscript(Subscript::Index {
                                    index: Expr::value(Value::SingleQuotedString(name)),
                                });
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// `ARRAY(SELECT f(x) FROM unnest(a) x)` (psql's `\\d+` builds `toast.`
/// options so, from an outer row's array) as `COALESCE(array_transform(a,
/// x -> f(x)), make_array())`: no subquery, so no correlated unnest, which
/// DataFusion cannot plan. Only for that exact shape, with `a` a column of
/// the outer row and `f` naming the element unqualified. (DataFusion's
/// lambdas can mistype the element when the array's type was coerced, as
/// across a UNION: such a query fails with 42601 rather than answer.)
fn transform_of_unnest(q: &datafusion::sql::sqlparser::ast::Query, value: &Expr) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{
        LambdaFunction, LambdaFunctionParameter, LambdaSyntax, OneOrManyWithParens, SetExpr,
        TableFactor,
    };
    if q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || q.with.is_some() {
        return None;
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let [from] = sel.from.as_slice() else {
        return None;
    };
    if !from.joins.is_empty() || sel.selection.is_some() {
        return None;
    }
    let (alias, array) = match &from.relation {
        TableFactor::UNNEST {
            alias: Some(alias),
            array_exprs,
            with_offset: false,
            with_ordinality: false,
            ..
        } => match array_exprs.as_slice() {
            [a] => (alias, a.clone()),
            _ => return None,
        },
        // `pg_catalog.unnest(a) x`, read as a table function
        TableFactor::Table {
            name,
            args: Some(args),
            alias: Some(alias),
            ..
        } if name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .is_some_and(|i| i.value.eq_ignore_ascii_case("unnest")) =>
        {
            use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr};
            match args.args.as_slice() {
                [FunctionArg::Unnamed(FunctionArgExpr::Expr(a))] => (alias, a.clone()),
                _ => return None,
            }
        }
        _ => return None,
    };
    // only an outer row's column (the one case a subquery cannot plan: a
    // correlated unnest); anything else keeps the subquery
    if !matches!(array, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
        return None;
    }
    let param = match alias.columns.as_slice() {
        [] => alias.name.clone(),
        [c] => c.name.clone(),
        _ => return None,
    };
    // every reference to the element is the bare name
    let qualified = datafusion::sql::sqlparser::ast::visit_expressions(value, |e| match e {
        Expr::CompoundIdentifier(ids)
            if ids
                .first()
                .is_some_and(|i| i.value.eq_ignore_ascii_case(&alias.name.value)) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    if qualified.is_break() {
        return None;
    }
    let lambda = Expr::Lambda(LambdaFunction {
        params: OneOrManyWithParens::One(LambdaFunctionParameter {
            name: param,
            data_type: None,
        }),
        body: Box::new(value.clone()),
        syntax: LambdaSyntax::Arrow,
    });
    Some(call_named(
        "coalesce",
        vec![
            call_named("array_transform", vec![array, lambda]),
            call_named("make_array", vec![]),
        ],
    ))
}

/// Gives the unaliased select items of `q` that `name_of` names that name:
/// a rule that rewrites an expression into another shape keeps the column
/// name PostgreSQL gives the original (`generate_series`, `array`, …).
fn name_select_items(
    q: &mut datafusion::sql::sqlparser::ast::Query,
    name_of: impl Fn(&Expr) -> Option<datafusion::sql::sqlparser::ast::Ident>,
) {
    use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
    if let SetExpr::Select(sel) = q.body.as_mut() {
        for item in sel.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(e) = item {
                if let Some(alias) = name_of(e) {
                    *item = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias,
                    };
                }
            }
        }
    }
}

/// A call of the function `name` with these arguments.
fn call_named(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{
        Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
        ObjectName,
    };
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        args: FunctionArguments::List(FunctionArgumentList {
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            duplicate_treatment: None,
            clauses: vec![],
        }),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// String literals of timestamps, dates, intervals and bytea read with
/// Postgres' input rules where DataFusion's differ: a time without seconds
/// (`'2020-04-15 12:02'`), intervals in every Postgres form (`'21 days
/// 23:59:59'`, `'1 year 2 mons'`, `'@ 1 day ago'`), and bytea's `\x` hex
/// and escape formats (DataFusion would take the text's own bytes). A
/// literal that does not read is left for DataFusion to refuse.
#[derive(Debug)]
struct PostgresLiterals;

impl SqlStatementRewriteRule for PostgresLiterals {
    fn rewrite(&self, mut s: Statement) -> Statement {
        use datafusion::sql::sqlparser::ast::DataType as T;
        fn text(e: &Expr) -> Option<&str> {
            match e {
                Expr::Value(ValueWithSpan {
                    value: Value::SingleQuotedString(s),
                    ..
                }) => Some(s),
                _ => None,
            }
        }
        fn string(s: String) -> Expr {
            Expr::Value(Value::SingleQuotedString(s).into())
        }
        /// The canonical form of a literal of type `t`, if it needs one.
        fn canonical(t: &T, v: &str) -> Option<Expr> {
            match t {
                T::Timestamp(..) | T::Datetime(_) => {
                    crate::ingest::coerce::with_seconds(v).map(string)
                }
                T::Interval { .. } => interval(v).map(string),
                T::Bytea => crate::ingest::coerce::parse_bytea(v).map(|b| {
                    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    Expr::Value(Value::HexStringLiteral(hex).into())
                }),
                _ => None,
            }
        }
        /// An interval as DataFusion reads it, exactly.
        fn interval(v: &str) -> Option<String> {
            // (in units both DataFusion and Postgres read, zero parts left
            // out; an interval's resolution is the microsecond)
            let lower = v.to_ascii_lowercase();
            let plain = !lower.contains([':', '@'])
                && !lower.contains("ago")
                && !lower.split_whitespace().any(|w| w == "mon" || w == "mons");
            if plain {
                // DataFusion reads `2 hours`, `1 day 3 minutes` as Postgres does
                return None;
            }
            let iv = crate::ingest::coerce::parse_interval(v)?;
            let us = iv.nanoseconds / 1000;
            let mut parts = Vec::new();
            if iv.months != 0 {
                parts.push(format!("{} months", iv.months));
            }
            if iv.days != 0 {
                parts.push(format!("{} days", iv.days));
            }
            if us != 0 || parts.is_empty() {
                parts.push(format!("{us} microseconds"));
            }
            Some(parts.join(" "))
        }
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                let replacement = match e {
                    // `::jsonb` (sql/jsonb.rs)
                    Expr::Cast {
                        expr,
                        data_type: T::JSONB,
                        ..
                    } => Some(call_named("jsonb_in", vec![(**expr).clone()])),
                    Expr::Cast {
                        expr, data_type, ..
                    } => text(expr)
                        .and_then(|v| canonical(data_type, v))
                        .map(|lit| Expr::Cast {
                            kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                            expr: Box::new(lit),
                            data_type: data_type.clone(),
                            array: false,
                            format: None,
                        }),
                    Expr::TypedString(ts) => match &ts.value.value {
                        Value::SingleQuotedString(v) => {
                            canonical(&ts.data_type, v).map(|lit| match lit {
                                Expr::Value(v) if !matches!(ts.data_type, T::Bytea) => {
                                    Expr::TypedString(
                                        datafusion::sql::sqlparser::ast::TypedString {
                                            value: v,
                                            ..ts.clone()
                                        },
                                    )
                                }
                                other => Expr::Cast {
                                    kind: datafusion::sql::sqlparser::ast::CastKind::DoubleColon,
                                    expr: Box::new(other),
                                    data_type: ts.data_type.clone(),
                                    array: false,
                                    format: None,
                                },
                            })
                        }
                        _ => None,
                    },
                    // EXTRACT answers an exact numeric (sql/extract.rs)
                    Expr::Extract { field, expr, .. } => {
                        let name = match field {
                            datafusion::sql::sqlparser::ast::DateTimeField::Custom(id) => {
                                id.value.clone()
                            }
                            other => other.to_string(),
                        };
                        Some(call_named(
                            "pg_extract",
                            vec![string(name), (**expr).clone()],
                        ))
                    }
                    Expr::Interval(iv) if iv.leading_field.is_none() && iv.last_field.is_none() => {
                        text(&iv.value).and_then(interval).map(|canon| {
                            let mut iv = iv.clone();
                            iv.value = Box::new(string(canon));
                            Expr::Interval(iv)
                        })
                    }
                    _ => None,
                };
                if let Some(r) = replacement {
                    *e = r;
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

#[derive(Debug)]
struct StripByteOrderCollate;

impl SqlStatementRewriteRule for StripByteOrderCollate {
    fn rewrite(&self, mut s: Statement) -> Statement {
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Collate { expr, collation } = e {
                    let name = collation
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(|id| id.value.to_ascii_lowercase());
                    if matches!(
                        name.as_deref(),
                        Some("c" | "posix" | "default" | "ucs_basic")
                    ) {
                        *e = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// The first `COLLATE` clause left in `s` (one naming a collation other
/// than the byte order), for a clear error.
pub fn remaining_collation(s: &Statement) -> Option<String> {
    struct V(Option<String>);
    impl Visitor for V {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Collate { collation, .. } = e {
                self.0 = Some(collation.to_string());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut v = V(None);
    let _ = s.visit(&mut v);
    v.0
}

/// `'{1,2,NULL}'::int[]` → `CAST(ARRAY['1', '2', NULL] AS int[])`: each
/// element keeps its own input conversion, quoted elements (`"a,b"`,
/// backslash escapes) and `NULL` are read as Postgres reads them. A literal
/// this cannot read exactly (nested arrays, bounds decoration) is left
/// alone, and the cast then fails with a clear error.
#[derive(Debug)]
struct ExactArrayLiteral;

impl SqlStatementRewriteRule for ExactArrayLiteral {
    fn rewrite(&self, mut s: Statement) -> Statement {
        struct V;
        impl VisitorMut for V {
            type Break = ();
            fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::Cast {
                    expr, data_type, ..
                } = e
                {
                    if !matches!(data_type, DataType::Array(_)) {
                        return ControlFlow::Continue(());
                    }
                    if let Expr::Value(ValueWithSpan {
                        value: Value::SingleQuotedString(text),
                        ..
                    }) = expr.as_ref()
                    {
                        if let Some(items) = parse_array_literal(text) {
                            let elem = items
                                .into_iter()
                                .map(|i| match i {
                                    Some(v) => Expr::value(Value::SingleQuotedString(v)),
                                    None => Expr::value(Value::Null),
                                })
                                .collect();
                            **expr = Expr::Array(Array { elem, named: true });
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let _ = VisitMut::visit(&mut s, &mut V);
        s
    }
}

/// The elements of a one-dimensional Postgres array literal (`None` for an
/// unquoted `NULL`), or `None` when the text is not one.
pub fn parse_array_literal(text: &str) -> Option<Vec<Option<String>>> {
    let inner = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = Vec::new();
    if inner.trim().is_empty() {
        return Some(out);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let mut quoted = false;
        match chars.peek() {
            Some('"') => {
                quoted = true;
                chars.next();
                loop {
                    match chars.next()? {
                        '\\' => item.push(chars.next()?),
                        '"' => break,
                        c => item.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some('{') | None => return None,
            _ => {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' => break,
                        '{' | '}' | '"' => return None,
                        '\\' => {
                            chars.next();
                            item.push(chars.next()?);
                        }
                        c => {
                            item.push(c);
                            chars.next();
                        }
                    }
                }
                let trimmed = item.trim_end().len();
                item.truncate(trimmed);
                if item.is_empty() {
                    return None;
                }
            }
        }
        if !quoted && item.eq_ignore_ascii_case("null") {
            out.push(None);
        } else {
            out.push(Some(item));
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        Compat::new().parse(sql).unwrap().remove(0)
    }

    #[test]
    fn reg_literals() {
        assert_eq!(
            regproc_literals("SELECT typinput = 'pg_catalog.array_in'::regproc"),
            "SELECT typinput = 'array_in'"
        );
        assert_eq!(
            regproc_literals("SELECT 'integer'::regtype, 'x'::regtype::text, 'y'::regtypes"),
            "SELECT to_regtype('integer'), 'x'::regtype::text, 'y'::regtypes"
        );
        // a multi-byte character right after a literal is no cast
        assert_eq!(
            regproc_literals("SELECT 'a'ééééééééééééééé, 'b'::regproc"),
            "SELECT 'a'ééééééééééééééé, 'b'"
        );
        assert_eq!(
            regproc_literals("SELECT 'it''s'::regproc"),
            "SELECT 'it''s'"
        );
    }

    #[test]
    fn user_subqueries_are_kept() {
        let s = one("SELECT a, (SELECT max(x) FROM t2 WHERE t2.y = t1.b) AS m FROM t1");
        assert!(s
            .to_string()
            .contains("SELECT max(x) FROM t2 WHERE t2.y = t1.b"));
        let s = one("SELECT a, (SELECT x FROM t2) FROM t1");
        assert!(!s.to_string().contains("LIMIT"), "{s}");
    }

    #[test]
    fn catalog_statements_get_client_rewrites() {
        // a correlated subquery in a catalog query is planned, not answered
        // NULL (the client library's lossy rule is not applied)
        let s = one(
            "SELECT c.relname, (SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.oid = c.relnamespace) FROM pg_catalog.pg_class c",
        );
        assert!(!s.to_string().contains("NULL"), "{s}");
        assert!(s.to_string().contains("SELECT n.nspname"), "{s}");
        // the client rules still apply: `'x'::regclass` is resolved
        let s = one("SELECT oid FROM pg_catalog.pg_class WHERE oid = 'pg_class'::regclass");
        assert!(!s.to_string().to_lowercase().contains("::regclass"), "{s}");
        assert!(reads_only_catalog(&one("SELECT * FROM pg_class")));
        assert!(reads_only_catalog(&one(
            "WITH x AS (SELECT oid FROM pg_type) SELECT * FROM x, generate_series(1, 2)"
        )));
        assert!(!reads_only_catalog(&one(
            "SELECT * FROM pg_class c JOIN t1 ON t1.a = c.oid"
        )));
        assert!(!reads_only_catalog(&one("SELECT 1")));
        assert!(!reads_only_catalog(&one("SELECT * FROM pg_compat_test")));
    }

    #[test]
    fn collate_only_byte_order() {
        let s = one("SELECT a FROM t ORDER BY a COLLATE \"C\"");
        assert!(!s.to_string().contains("COLLATE"), "{s}");
        let s = one("SELECT a FROM t ORDER BY a COLLATE \"en_US\"");
        assert!(s.to_string().contains("COLLATE"), "{s}");
    }

    #[test]
    fn array_literals() {
        assert_eq!(
            parse_array_literal(r#"{1, 2 ,NULL,"NULL","a,b","x\"y"}"#),
            Some(vec![
                Some("1".into()),
                Some("2".into()),
                None,
                Some("NULL".into()),
                Some("a,b".into()),
                Some("x\"y".into())
            ])
        );
        assert_eq!(parse_array_literal("{}"), Some(vec![]));
        assert_eq!(parse_array_literal("{{1,2},{3,4}}"), None);
        assert_eq!(parse_array_literal("{1,,2}"), None);
        assert_eq!(parse_array_literal("[1:2]={1,2}"), None);
        let s = one("SELECT '{1,NULL}'::int[]");
        assert_eq!(s.to_string(), "SELECT ARRAY['1', NULL]::INT[]");
    }
}
