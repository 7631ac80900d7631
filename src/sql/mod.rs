//! SQL front end: parsing (Postgres dialect plus Freshet's grammar), DDL
//! validation, and the AST rewrites that run before DataFusion plans a
//! statement. No I/O happens here.

pub mod access;
pub mod arrays;
pub mod asof;
pub mod bytea;
pub mod checked;
pub mod compat;
pub mod datetime;
pub mod ddl;
pub mod depth;
pub mod dialect;
pub mod explain;
pub mod extract;
pub mod format;
pub mod functions;
pub mod jsonb;
pub mod limits;
pub mod lower;
pub mod names;
pub mod optimizer;
pub mod parser;
pub mod rewrite;
pub mod setops;
pub mod sort_subquery;
pub mod subquery;
pub mod temporal;
pub mod values;

pub use parser::{SqlParser, Statement};

use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr, Select, SetExpr};

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    InvalidDefinition(String),
    #[error("{0}")]
    DuplicateColumn(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("{0}")]
    DatatypeMismatch(String),
    /// A scalar subquery returned more than one row.
    #[error("{0}")]
    Cardinality(String),
    /// A value outside its type's range (integer overflow).
    #[error("{0}")]
    OutOfRange(String),
    /// A statement nested more deeply than the server handles (54001).
    #[error("{0}")]
    TooComplex(String),
    /// A value over a size limit (54000).
    #[error("{0}")]
    LimitExceeded(String),
    /// Text that is not valid UTF-8 or holds NUL (22021).
    #[error("{0}")]
    InvalidEncoding(String),
    /// A privilege that does not apply to the object (0LP01).
    #[error("{0}")]
    InvalidGrant(String),
    /// A schema that does not exist (3F000).
    #[error("schema \"{0}\" does not exist")]
    UndefinedSchema(String),
    /// No schema to create in, or another 3F000 in its own words.
    #[error("{0}")]
    NoSchema(String),
    /// A name reserved for the system (42939).
    #[error("{0}")]
    ReservedName(String),
    /// A function argument out of its domain (22023).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// A NULL where the function needs a value (22004).
    #[error("{0}")]
    NullValueNotAllowed(String),
    /// Text a type's input function does not read (22P02).
    #[error("{0}")]
    InvalidText(String),
    /// A character the target encoding has not (22P05).
    #[error("{0}")]
    Untranslatable(String),
    /// An internal planning failure (not the user's SQL).
    #[error("{0}")]
    Plan(String),
}
pub mod window;

/// The rewrites of relations in FROM that run before planning, for ad-hoc
/// queries and views alike: window table functions (`TUMBLE`, `HOP`) and
/// ASOF joins.
pub fn expand_relations(
    stmt: &mut datafusion::sql::sqlparser::ast::Statement,
) -> Result<(), SqlError> {
    window::expand_window_functions(stmt)?;
    asof::expand_asof_joins(stmt)
}

/// The conjuncts of `e` (`a AND (b AND c)` → `a`, `b`, `c`).
pub(crate) fn split_and(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner)
            if matches!(
                *inner,
                Expr::BinaryOp {
                    op: BinaryOperator::And,
                    ..
                }
            ) =>
        {
            split_and(*inner, out)
        }
        other => out.push(other),
    }
}

/// Applies `f` to each SELECT of a query body, through set operations
/// (not into subqueries: a visitor reaches those as queries of their own).
pub(crate) fn for_each_select(
    body: &mut SetExpr,
    f: &mut dyn FnMut(&mut Select) -> Result<(), SqlError>,
) -> Result<(), SqlError> {
    match body {
        SetExpr::Select(s) => f(s),
        SetExpr::SetOperation { left, right, .. } => {
            for_each_select(left, f)?;
            for_each_select(right, f)
        }
        _ => Ok(()),
    }
}
