//! From a parsed `CREATE SOURCE` / `CREATE TABLE` to a catalog definition.

use std::collections::HashSet;

use super::parser::CreateRelation;
use super::SqlError;
use crate::catalog::{ColumnDef, RelationDef, WatermarkDef, OFFSET_COLUMN};
use crate::types::SqlType;

/// Validates the statement and builds the definition for relation `id`.
pub fn relation_def(c: &CreateRelation, id: u64, owner: &str) -> Result<RelationDef, SqlError> {
    if c.columns.is_empty() {
        return Err(SqlError::InvalidDefinition(format!(
            "\"{}\" must have at least one column",
            c.name
        )));
    }
    let mut seen = HashSet::new();
    let mut columns = Vec::with_capacity(c.columns.len());
    for col in &c.columns {
        if col.name == OFFSET_COLUMN {
            return Err(SqlError::DuplicateColumn(format!(
                "column name \"{OFFSET_COLUMN}\" conflicts with a system column name"
            )));
        }
        if !seen.insert(col.name.as_str()) {
            return Err(SqlError::DuplicateColumn(format!(
                "column \"{}\" specified more than once",
                col.name
            )));
        }
        let ty = SqlType::from_ast(&col.data_type)
            .map_err(|e| SqlError::Unsupported(format!("{e} (column \"{}\")", col.name)))?;
        columns.push(ColumnDef {
            name: col.name.clone(),
            ty,
            nullable: !col.not_null,
        });
    }
    let mut primary_key = Vec::with_capacity(c.primary_key.len());
    for k in &c.primary_key {
        let idx = columns
            .iter()
            .position(|col| &col.name == k)
            .ok_or_else(|| {
                SqlError::UndefinedColumn(format!("column \"{k}\" named in key does not exist"))
            })?;
        if primary_key.contains(&idx) {
            return Err(SqlError::DuplicateColumn(format!(
                "column \"{k}\" appears twice in primary key constraint"
            )));
        }
        // Key columns are implicitly NOT NULL, as in Postgres.
        columns[idx].nullable = false;
        primary_key.push(idx);
    }
    let watermark = match &c.watermark {
        None => None,
        Some((col, expr)) => {
            let cd = columns.iter().find(|cd| &cd.name == col).ok_or_else(|| {
                SqlError::UndefinedColumn(format!(
                    "column \"{col}\" named in WATERMARK FOR does not exist"
                ))
            })?;
            if !matches!(cd.ty, SqlType::Timestamp | SqlType::Timestamptz) {
                return Err(SqlError::DatatypeMismatch(format!(
                    "WATERMARK FOR column \"{col}\" must be a timestamp, not {}",
                    cd.ty
                )));
            }
            watermark_delay(col, expr)?;
            Some(WatermarkDef {
                column: col.clone(),
                expr: expr.clone(),
            })
        }
    };
    Ok(RelationDef {
        id,
        name: c.name.clone(),
        kind: c.kind,
        columns,
        primary_key,
        watermark,
        options: Default::default(),
        sql: c.sql.clone(),
        query: None,
        depends_on: vec![],
        view_schema: None,
        plan: None,
        owner: owner.to_string(),
        acl: Default::default(),
        comments: Default::default(),
        indexes: Vec::new(),
        source: None,
    })
}

/// The delay of a watermark expression, in microseconds: `col` (no delay)
/// or `col - INTERVAL '…'`. The watermark of a source is the largest event
/// time seen minus this delay, so it never moves backwards.
pub fn watermark_delay(column: &str, expr: &str) -> Result<i64, SqlError> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr};
    use datafusion::sql::sqlparser::parser::Parser;
    let parsed = Parser::new(&crate::sql::dialect::Postgres)
        .try_with_sql(expr)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::Syntax(format!("invalid WATERMARK expression {expr}: {e}")))?;
    let is_col =
        |e: &Expr| matches!(e, Expr::Identifier(i) if super::parser::normalize_ident(i) == column);
    match &parsed {
        e if is_col(e) => Ok(0),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_col(left) => super::window::positive_micros(right, "watermark delay"),
        _ => Err(SqlError::Unsupported(format!(
            "WATERMARK FOR {column} AS {expr}: the expression must be {column} or {column} - INTERVAL '...'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parser::{SqlParser, Statement};

    fn def(sql: &str) -> Result<RelationDef, SqlError> {
        match SqlParser::new().parse_one(sql).unwrap() {
            Statement::CreateRelation(c) => relation_def(&c, 1, "freshet"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_columns_become_not_null() {
        let d = def("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)").unwrap();
        assert_eq!(d.primary_key, vec![0]);
        assert!(!d.columns[0].nullable);
        assert!(d.columns[1].nullable);
    }

    #[test]
    fn rejects_bad_definitions() {
        assert!(matches!(
            def("CREATE TABLE t (a INT, a INT)"),
            Err(SqlError::DuplicateColumn(_))
        ));
        assert!(matches!(
            def("CREATE TABLE t (_offset INT)"),
            Err(SqlError::DuplicateColumn(_))
        ));
        assert!(matches!(
            def("CREATE TABLE t (a INT, PRIMARY KEY (b))"),
            Err(SqlError::UndefinedColumn(_))
        ));
        assert!(matches!(
            def("CREATE SOURCE s (a INT, WATERMARK FOR a AS a - 1)"),
            Err(SqlError::DatatypeMismatch(_))
        ));
        assert!(matches!(
            def("CREATE SOURCE s (a POINT)"),
            Err(SqlError::Unsupported(_))
        ));
    }
}
