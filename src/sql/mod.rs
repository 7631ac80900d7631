//! SQL front end: parsing (Postgres dialect plus Freshet's grammar), DDL
//! validation, and the AST rewrites that run before DataFusion plans a
//! statement. No I/O happens here.

pub mod asof;
pub mod ddl;
pub mod lower;
pub mod parser;
pub mod rewrite;
pub mod temporal;

pub use parser::{SqlParser, Statement};

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
