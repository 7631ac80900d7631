//! AST rewrites that run before DataFusion plans a statement.
//!
//! `_offset` is a hidden column: it can be named, but `SELECT *` does not
//! return it (like Postgres' system columns). DataFusion has no hidden
//! columns, so a statement that names `_offset` reads each source or table
//! through a second schema whose tables carry the column, and each `*` over
//! such a table gets `EXCLUDE (_offset)`. Statements that never name
//! `_offset` are planned untouched.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    visit_expressions, ExcludeSelectItem, Expr, Ident, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableAlias, TableFactor, VisitMut,
    VisitorMut, WildcardAdditionalOptions,
};

use super::parser::{normalize_ident, object_name};
use super::SqlError;
use crate::catalog::OFFSET_COLUMN;

/// The schema whose tables expose `_offset`.
pub const OFFSETS_SCHEMA: &str = "__offsets";

/// Does the statement name the `_offset` column anywhere?
pub fn mentions_offset(stmt: &Statement) -> bool {
    let found = visit_expressions(stmt, |e| {
        let hit = match e {
            Expr::Identifier(id) => normalize_ident(id) == OFFSET_COLUMN,
            Expr::CompoundIdentifier(ids) => ids
                .last()
                .is_some_and(|id| normalize_ident(id) == OFFSET_COLUMN),
            _ => false,
        };
        if hit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    found.is_break()
}

/// Points every source or table in FROM clauses at [`OFFSETS_SCHEMA`] and
/// keeps `*` from returning `_offset`. `is_relation` says whether a name is a
/// source or table.
pub fn expose_offsets(
    stmt: &mut Statement,
    is_relation: &dyn Fn(&str) -> bool,
) -> Result<(), SqlError> {
    let mut ctes = HashSet::new();
    collect_ctes(stmt, &mut ctes);
    let mut v = OffsetVisitor {
        is_relation,
        ctes,
        error: None,
    };
    let _ = stmt.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn collect_ctes(stmt: &Statement, out: &mut HashSet<String>) {
    struct C<'a>(&'a mut HashSet<String>);
    impl datafusion::sql::sqlparser::ast::Visitor for C<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            if let Some(with) = &q.with {
                for cte in &with.cte_tables {
                    self.0.insert(normalize_ident(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(stmt, &mut C(out));
}

struct OffsetVisitor<'a> {
    is_relation: &'a dyn Fn(&str) -> bool,
    ctes: HashSet<String>,
    error: Option<SqlError>,
}

/// A FROM item: the name it is referred to by, and whether it is one of ours.
struct FromItem {
    qualifier: Option<String>,
    ours: bool,
}

impl VisitorMut for OffsetVisitor<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Err(e) = super::for_each_select(&mut query.body, &mut |s| self.fix_select(s)) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl OffsetVisitor<'_> {
    fn fix_factor(&self, f: &mut TableFactor, items: &mut Vec<FromItem>) {
        match f {
            TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } => {
                let n = match object_name(name) {
                    Ok(n) => n,
                    Err(_) => {
                        items.push(FromItem {
                            qualifier: None,
                            ours: false,
                        });
                        return;
                    }
                };
                if !self.ctes.contains(&n) && (self.is_relation)(&n) {
                    let qualifier = match alias {
                        Some(a) => normalize_ident(&a.name),
                        None => {
                            // (an unaliased `s.t` is referred to as `t`)
                            let bare = super::names::split(&n).1.to_string();
                            *alias = Some(TableAlias {
                                explicit: true,
                                name: Ident::with_quote('"', bare.clone()),
                                columns: vec![],
                                at: None,
                            });
                            bare
                        }
                    };
                    *name = ObjectName::from(vec![
                        Ident::with_quote('"', OFFSETS_SCHEMA),
                        Ident::with_quote('"', n),
                    ]);
                    items.push(FromItem {
                        qualifier: Some(qualifier),
                        ours: true,
                    });
                } else {
                    let qualifier = match alias {
                        Some(a) => Some(normalize_ident(&a.name)),
                        None => Some(n),
                    };
                    items.push(FromItem {
                        qualifier,
                        ours: false,
                    });
                }
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    items.push(FromItem {
                        qualifier: alias.as_ref().map(|a| normalize_ident(&a.name)),
                        ours: false,
                    });
                } else {
                    self.fix_factor(&mut table_with_joins.relation, items);
                    for j in &mut table_with_joins.joins {
                        self.fix_factor(&mut j.relation, items);
                    }
                }
            }
            TableFactor::Derived { alias, .. } | TableFactor::Function { alias, .. } => {
                items.push(FromItem {
                    qualifier: alias.as_ref().map(|a| normalize_ident(&a.name)),
                    ours: false,
                });
            }
            _ => items.push(FromItem {
                qualifier: None,
                ours: false,
            }),
        }
    }

    fn fix_select(&self, select: &mut Select) -> Result<(), SqlError> {
        let mut items = Vec::new();
        for twj in &mut select.from {
            self.fix_factor(&mut twj.relation, &mut items);
            for j in &mut twj.joins {
                self.fix_factor(&mut j.relation, &mut items);
            }
        }
        if !items.iter().any(|i| i.ours) {
            return Ok(());
        }
        let ours: Vec<&str> = items
            .iter()
            .filter(|i| i.ours)
            .filter_map(|i| i.qualifier.as_deref())
            .collect();
        let mut projection = Vec::with_capacity(select.projection.len());
        for item in select.projection.drain(..) {
            match item {
                SelectItem::Wildcard(opts) if items.len() == 1 => {
                    projection.push(SelectItem::Wildcard(exclude_offset(opts)));
                }
                SelectItem::Wildcard(opts) => {
                    let plain = opts.opt_exclude.is_none()
                        && opts.opt_except.is_none()
                        && opts.opt_replace.is_none()
                        && opts.opt_rename.is_none()
                        && opts.opt_ilike.is_none();
                    if !plain || items.iter().any(|i| i.qualifier.is_none()) {
                        return Err(SqlError::Unsupported(
                            "SELECT * over this FROM clause together with _offset; list the columns"
                                .into(),
                        ));
                    }
                    for i in &items {
                        let q = ObjectName::from(vec![Ident::with_quote(
                            '"',
                            i.qualifier.clone().unwrap_or_default(),
                        )]);
                        let o = if i.ours {
                            exclude_offset(WildcardAdditionalOptions::default())
                        } else {
                            WildcardAdditionalOptions::default()
                        };
                        projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(q),
                            o,
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    opts,
                ) if n
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|id| ours.contains(&normalize_ident(id).as_str())) =>
                {
                    projection.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(n),
                        exclude_offset(opts),
                    ));
                }
                other => projection.push(other),
            }
        }
        select.projection = projection;
        Ok(())
    }
}

/// Marks a result column whose name repeats an earlier one (Postgres
/// allows that; DataFusion needs unique names): the column is named
/// `name` + this + its position, and the wire shows `name` only.
pub const REPEATED_NAME: char = '\u{E000}';

/// A result column's name as the client sees it.
pub fn display_name(name: &str) -> &str {
    name.split(REPEATED_NAME).next().unwrap_or(name)
}

/// Names result columns as Postgres does: an unaliased function call is
/// named after the function (`count`, not `count(*)`), a cast after what it
/// casts, `CASE` as `case`, any other expression `?column?`. Repeated names
/// (`SELECT 1, 2`, `SELECT a, a`) are kept for the client through
/// [`REPEATED_NAME`]. Only the statement's own result is renamed.
pub fn postgres_output_names(stmt: &mut Statement) {
    let Statement::Query(q) = stmt else {
        return;
    };
    cte_column_names(q);
    inner_output_names(q);
    output_names(q);
}

/// The columns of a `WITH` query or a subquery in `FROM` without a column
/// list are named as a result's are (`WITH t AS (SELECT 1, 0::bigint)`
/// gives `t` the columns `?column?` and `int8`), so a `SELECT *` over them
/// shows PostgreSQL's names and the outer query can refer to them by those.
fn inner_output_names(q: &mut Query) {
    use datafusion::sql::sqlparser::ast::{TableFactor, VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct V;
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &mut q.with {
                for cte in &mut with.cte_tables {
                    if cte.alias.columns.is_empty() {
                        output_names(&mut cte.query);
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Derived {
                subquery, alias, ..
            } = t
            {
                if alias.as_ref().is_none_or(|a| a.columns.is_empty()) {
                    output_names(subquery);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(q, &mut V);
}

/// A `WITH name (a, b, …) AS (SELECT …)` whose column list names its
/// columns: the names go onto the first `SELECT`'s items, so columns that
/// DataFusion would name alike (`SELECT 1, 1::bigint`: both `Int64(1)`)
/// stay apart, as the list keeps them in PostgreSQL (a recursive CTE's
/// anchor is often such constants). Every `WITH` of the statement.
fn cte_column_names(q: &mut Query) {
    use datafusion::sql::sqlparser::ast::{VisitMut, VisitorMut};
    use std::ops::ControlFlow;
    struct V;
    impl VisitorMut for V {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            let Some(with) = &mut q.with else {
                return ControlFlow::Continue(());
            };
            for cte in &mut with.cte_tables {
                let names: Vec<Ident> = cte.alias.columns.iter().map(|c| c.name.clone()).collect();
                if names.is_empty() {
                    continue;
                }
                let Some(select) = leftmost_select(cte.query.body.as_mut()) else {
                    continue;
                };
                let plain = select.projection.len() == names.len()
                    && select.projection.iter().all(|i| {
                        matches!(
                            i,
                            SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                        )
                    });
                if !plain {
                    continue;
                }
                let items = std::mem::take(&mut select.projection);
                select.projection = items
                    .into_iter()
                    .zip(&names)
                    .map(|(item, name)| match item {
                        // (an item's own alias stays: the body may refer
                        // to it, in ORDER BY)
                        SelectItem::UnnamedExpr(expr) => SelectItem::ExprWithAlias {
                            expr,
                            alias: name.clone(),
                        },
                        other => other,
                    })
                    .collect();
            }
            ControlFlow::Continue(())
        }
    }
    let _ = VisitMut::visit(q, &mut V);
}

/// The `SELECT` whose items name a query's columns: the first of a set
/// operation's, through parentheses.
fn leftmost_select(mut body: &mut SetExpr) -> Option<&mut datafusion::sql::sqlparser::ast::Select> {
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            SetExpr::Select(select) => return Some(select.as_mut()),
            _ => return None,
        }
    }
}

/// [`postgres_output_names`] for a query (also the query of an `INSERT …
/// SELECT`, whose names only need to be unique).
pub fn output_names(q: &mut Query) {
    let Some(select) = leftmost_select(q.body.as_mut()) else {
        return;
    };
    // a wildcard's columns are not seen here: a column named next to one
    // is kept apart from them
    let wildcard = select.projection.iter().any(|i| {
        matches!(
            i,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
        )
    });
    enum Named {
        Alias(Ident),
        Ours,
        Column,
    }
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let items = std::mem::take(&mut select.projection);
    select.projection = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (expr, name, how) = match item {
                SelectItem::ExprWithAlias { expr, alias } => {
                    (expr, normalize_ident(&alias), Named::Alias(alias))
                }
                SelectItem::UnnamedExpr(e) => match (pg_name(&e), &e) {
                    (Some(n), _) => (e, n, Named::Ours),
                    (None, Expr::Identifier(id)) => {
                        let n = normalize_ident(id);
                        (e, n, Named::Column)
                    }
                    (None, Expr::CompoundIdentifier(ids)) => {
                        let n = ids.last().map(normalize_ident).unwrap_or_default();
                        (e, n, Named::Column)
                    }
                    (None, _) => return SelectItem::UnnamedExpr(e),
                },
                other => return other,
            };
            let count = seen.entry(name.clone()).or_default();
            *count += 1;
            let repeated = *count > 1 || (wildcard && matches!(how, Named::Column));
            match how {
                _ if repeated => SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::with_quote('"', format!("{name}{REPEATED_NAME}{}", i + 1)),
                },
                Named::Alias(alias) => SelectItem::ExprWithAlias { expr, alias },
                Named::Ours => SelectItem::ExprWithAlias {
                    expr,
                    alias: Ident::with_quote('"', name),
                },
                Named::Column => SelectItem::UnnamedExpr(expr),
            }
        })
        .collect();
}

/// The name Postgres gives an unaliased expression; `None` for plain
/// column references (DataFusion already names those after the column).
fn pg_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        // `x::jsonb`, as `sql::compat` spells it
        Expr::Function(f) if f.name.to_string() == "jsonb_in" => match &f.args {
            datafusion::sql::sqlparser::ast::FunctionArguments::List(l) => match l.args.first() {
                Some(datafusion::sql::sqlparser::ast::FunctionArg::Unnamed(
                    datafusion::sql::sqlparser::ast::FunctionArgExpr::Expr(inner),
                )) => strong_name(inner).or_else(|| Some("jsonb".into())),
                _ => Some("jsonb".into()),
            },
            _ => Some("jsonb".into()),
        },
        Expr::Function(f) => f
            .name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|id| id.value.to_ascii_lowercase())
            // EXTRACT, as `sql::compat` spells it
            .map(|n| {
                if n == "pg_extract" {
                    "extract".into()
                } else {
                    n
                }
            }),
        Expr::Cast {
            expr, data_type, ..
        } => match expr.as_ref() {
            Expr::Identifier(id) => Some(normalize_ident(id)),
            Expr::CompoundIdentifier(ids) => ids.last().map(normalize_ident),
            // a name of its own wins; else (a constant, an operator, a
            // cast of a constant) the type's
            inner => Some(strong_name(inner).unwrap_or_else(|| type_column_name(data_type))),
        },
        Expr::TypedString(ts) => Some(type_column_name(&ts.data_type)),
        Expr::Interval(_) => Some("interval".to_string()),
        Expr::Nested(expr) => match expr.as_ref() {
            Expr::Identifier(id) => Some(normalize_ident(id)),
            Expr::CompoundIdentifier(ids) => ids.last().map(normalize_ident),
            inner => pg_name(inner),
        },
        // named after its ELSE when that has a name of its own (a column,
        // a function), as Postgres' FigureColname does
        Expr::Case { else_result, .. } => Some(
            else_result
                .as_deref()
                .and_then(strong_name)
                .unwrap_or_else(|| "case".to_string()),
        ),
        // a scalar subquery is named after its one output column
        Expr::Subquery(q) => Some(subquery_name(q).unwrap_or_else(|| "?column?".to_string())),
        Expr::Exists { .. } => Some("exists".to_string()),
        Expr::Array(_) => Some("array".to_string()),
        Expr::Extract { .. } => Some("extract".to_string()),
        _ => Some("?column?".to_string()),
    }
}

/// The name an expression gives a CASE whose ELSE it is: only a name of
/// its own (Postgres' "strong" names), not `?column?` or a type's name.
fn strong_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) => Some(normalize_ident(id)),
        Expr::CompoundIdentifier(ids) => ids.last().map(normalize_ident),
        Expr::Nested(inner) => strong_name(inner),
        Expr::Cast { expr, .. } => strong_name(expr),
        Expr::Case { else_result, .. } => else_result.as_deref().and_then(strong_name),
        Expr::Function(_) | Expr::Exists { .. } | Expr::Array(_) => pg_name(e),
        Expr::Subquery(q) => subquery_name(q),
        _ => None,
    }
}

/// The name Postgres gives a cast of a constant: its type's internal name
/// (`'1'::int` is `int4`, `'x'::timestamp` is `timestamp`).
fn type_column_name(t: &datafusion::sql::sqlparser::ast::DataType) -> String {
    use datafusion::sql::sqlparser::ast::DataType as T;
    match t {
        T::Int(_) | T::Integer(_) | T::Int4(_) => "int4".into(),
        T::BigInt(_) | T::Int8(_) => "int8".into(),
        T::SmallInt(_) | T::Int2(_) => "int2".into(),
        T::Real | T::Float4 => "float4".into(),
        T::DoublePrecision | T::Float8 | T::Double(_) => "float8".into(),
        T::Float(_) => "float8".into(),
        T::Bool | T::Boolean => "bool".into(),
        T::Numeric(_) | T::Decimal(_) | T::Dec(_) => "numeric".into(),
        T::Varchar(_) | T::CharacterVarying(_) => "varchar".into(),
        T::Char(_) | T::Character(_) => "bpchar".into(),
        T::Timestamp(_, tz) => match tz {
            datafusion::sql::sqlparser::ast::TimezoneInfo::WithTimeZone
            | datafusion::sql::sqlparser::ast::TimezoneInfo::Tz => "timestamptz".into(),
            _ => "timestamp".into(),
        },
        T::Interval { .. } => "interval".into(),
        T::JSONB => "jsonb".into(),
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// The name Postgres gives the first column of `q` (`None`: `?column?`).
fn subquery_name(q: &Query) -> Option<String> {
    let mut body = q.body.as_ref();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_ref(),
            SetExpr::Query(inner) => body = inner.body.as_ref(),
            _ => break,
        }
    }
    let SetExpr::Select(select) = body else {
        return None;
    };
    match select.projection.first()? {
        SelectItem::ExprWithAlias { alias, .. } => Some(normalize_ident(alias)),
        SelectItem::UnnamedExpr(Expr::Identifier(id)) => Some(normalize_ident(id)),
        SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => ids.last().map(normalize_ident),
        SelectItem::UnnamedExpr(e) => pg_name(e).filter(|n| n != "?column?"),
        _ => None,
    }
}

fn exclude_offset(opts: WildcardAdditionalOptions) -> WildcardAdditionalOptions {
    exclude_column(opts, OFFSET_COLUMN)
}

/// Adds `column` to a wildcard's EXCLUDE list.
pub(crate) fn exclude_column(
    mut opts: WildcardAdditionalOptions,
    column: &str,
) -> WildcardAdditionalOptions {
    let off = ObjectName::from(vec![Ident::new(column)]);
    opts.opt_exclude = Some(match opts.opt_exclude.take() {
        None => ExcludeSelectItem::Single(off),
        Some(ExcludeSelectItem::Single(x)) => ExcludeSelectItem::Multiple(vec![x, off]),
        Some(ExcludeSelectItem::Multiple(mut v)) => {
            v.push(off);
            ExcludeSelectItem::Multiple(v)
        }
    });
    opts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::{SqlParser, Statement as S};

    fn rewrite(sql: &str) -> String {
        let S::Sql(mut st) = SqlParser::new().parse_one(sql).unwrap() else {
            panic!()
        };
        if mentions_offset(&st) {
            expose_offsets(&mut st, &|n| n == "bids" || n == "auctions").unwrap();
        }
        st.to_string()
    }

    #[test]
    fn untouched_without_offset() {
        assert_eq!(rewrite("SELECT * FROM bids"), "SELECT * FROM bids");
    }

    #[test]
    fn single_table() {
        assert_eq!(
            rewrite("SELECT _offset, * FROM bids ORDER BY _offset"),
            "SELECT _offset, * EXCLUDE _offset FROM \"__offsets\".\"bids\" AS \"bids\" ORDER BY _offset"
        );
    }

    #[test]
    fn join_expands_star_per_table() {
        assert_eq!(
            rewrite("SELECT b._offset, * FROM bids b JOIN auctions a ON a.id = b.auction"),
            "SELECT b._offset, \"b\".* EXCLUDE _offset, \"a\".* EXCLUDE _offset FROM \"__offsets\".\"bids\" b JOIN \"__offsets\".\"auctions\" a ON a.id = b.auction"
        );
    }

    #[test]
    fn output_names_follow_postgres() {
        let name = |sql: &str| {
            let S::Sql(mut st) = SqlParser::new().parse_one(sql).unwrap() else {
                panic!()
            };
            postgres_output_names(&mut st);
            st.to_string()
        };
        assert_eq!(
            name("SELECT a, count(*), max(b.price), 1 + 2, CAST(x AS INT) FROM t"),
            "SELECT a, count(*) AS \"count\", max(b.price) AS \"max\", 1 + 2 AS \"?column?\", CAST(x AS INT) AS \"x\" FROM t"
        );
        // repeated names stay repeated for the client, unique inside
        assert_eq!(
            name("SELECT count(a), count(b), a, a FROM t"),
            "SELECT count(a) AS \"count\", count(b) AS \"count\u{e000}2\", a, a AS \"a\u{e000}4\" FROM t"
        );
        assert_eq!(display_name("count\u{e000}2"), "count");
        // a column next to a wildcard is kept apart from the wildcard's
        assert_eq!(
            name("SELECT _offset, * FROM bids"),
            "SELECT _offset AS \"_offset\u{e000}1\", * FROM bids"
        );
    }

    #[test]
    fn cte_names_shadow_relations() {
        assert_eq!(
            rewrite("WITH bids AS (SELECT 1 AS _offset) SELECT _offset FROM bids"),
            "WITH bids AS (SELECT 1 AS _offset) SELECT _offset FROM bids"
        );
    }
}
