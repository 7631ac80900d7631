//! `CREATE INDEX` and `DROP INDEX`: the statements, and how the engine
//! adds an index to a relation's definition and its rows.
//!
//! An index is part of its relation's catalog record
//! ([`crate::catalog::IndexDef`]); creating or dropping one stores the new
//! record and changes the rows' indexes in one step of the committer
//! ([`crate::engine::commit::Op::SetIndexes`]), so every snapshot after it
//! has the index complete.

use std::sync::Arc;

use datafusion::sql::sqlparser::ast;

use crate::catalog::{CatalogError, IndexDef, RelationDef, RelationKind};
use crate::engine::commit::Op;
use crate::engine::{Engine, EngineError, Result};
use crate::sql::parser::{expect_end, normalize_ident, object_name, parser, syntax};
use crate::sql::SqlError;

/// Indexes a relation may have besides its primary key's (their OIDs are
/// derived from the relation's id and a slot below this).
pub const MAX_INDEXES: u32 = 31;

/// PostgreSQL's limit on identifiers.
const NAME_MAX: usize = 63;

/// `CREATE INDEX [CONCURRENTLY] [IF NOT EXISTS] [name] ON rel [USING btree |
/// hash] (column [, …])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateIndex {
    pub name: Option<String>,
    pub relation: String,
    pub columns: Vec<String>,
    pub if_not_exists: bool,
}

/// `DROP INDEX [CONCURRENTLY] [IF EXISTS] name [, …] [CASCADE | RESTRICT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropIndex {
    pub names: Vec<String>,
    pub if_exists: bool,
}

fn unsupported(what: &str) -> SqlError {
    SqlError::Unsupported(format!("{what} is not supported"))
}

/// Parses `CREATE [UNIQUE] INDEX …`; what Freshet cannot keep (unique,
/// partial and expression indexes, other access methods) is refused.
pub fn parse_create_index(text: &str) -> std::result::Result<CreateIndex, SqlError> {
    let mut p = parser(text)?;
    let stmt = p.parse_statement().map_err(syntax)?;
    expect_end(&mut p)?;
    let ast::Statement::CreateIndex(ci) = stmt else {
        return Err(SqlError::Syntax(
            "syntax error: expected CREATE INDEX".into(),
        ));
    };
    if ci.unique {
        return Err(unsupported(
            "CREATE UNIQUE INDEX (a table's PRIMARY KEY is its only unique constraint)",
        ));
    }
    match &ci.using {
        None | Some(ast::IndexType::BTree) | Some(ast::IndexType::Hash) => {}
        Some(other) => {
            return Err(unsupported(&format!(
                "access method \"{}\"",
                other.to_string().to_lowercase()
            )))
        }
    }
    if ci.predicate.is_some() {
        return Err(unsupported("a partial index (CREATE INDEX … WHERE)"));
    }
    if !ci.include.is_empty() {
        return Err(unsupported("CREATE INDEX … INCLUDE"));
    }
    let mut columns = Vec::with_capacity(ci.columns.len());
    for c in &ci.columns {
        match &c.column.expr {
            ast::Expr::Identifier(id) => columns.push(normalize_ident(id)),
            e => {
                return Err(unsupported(&format!(
                    "an index on an expression ({e}); index a column"
                )))
            }
        }
    }
    let name = match &ci.name {
        Some(n) => Some(index_name(n)?),
        None => None,
    };
    Ok(CreateIndex {
        name,
        relation: object_name(&ci.table_name)?,
        columns,
        if_not_exists: ci.if_not_exists,
    })
}

/// An index's name: indexes have one namespace across schemas, so a
/// schema before the name (`s.t_a_idx`) only says where the table is.
fn index_name(n: &ast::ObjectName) -> Result<String, SqlError> {
    match n.0.last().and_then(|p| p.as_ident()) {
        Some(id) if n.0.len() <= 3 => Ok(normalize_ident(id)),
        _ => Err(SqlError::Syntax(format!("invalid index name {n}"))),
    }
}

/// Parses `DROP INDEX …` (after the parser saw `DROP INDEX`).
pub fn parse_drop_index(text: &str) -> std::result::Result<DropIndex, SqlError> {
    use datafusion::sql::sqlparser::keywords::Keyword;
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::DROP, Keyword::INDEX])
        .map_err(syntax)?;
    let _ = p.parse_keyword(Keyword::CONCURRENTLY);
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = p
        .parse_comma_separated(|p| p.parse_object_name(false))
        .map_err(syntax)?
        .iter()
        .map(index_name)
        .collect::<Result<Vec<_>, _>>()?;
    if !p.parse_keyword(Keyword::CASCADE) {
        let _ = p.parse_keyword(Keyword::RESTRICT);
    }
    expect_end(&mut p)?;
    Ok(DropIndex { names, if_exists })
}

/// The name PostgreSQL chooses for an unnamed index: `table_col_…_idx`,
/// cut to 63 bytes, with a number added until it is free.
fn choose_name(rel: &RelationDef, columns: &[String], taken: impl Fn(&str) -> bool) -> String {
    let base = format!(
        "{}_{}",
        crate::sql::names::split(&rel.name).1,
        columns.join("_")
    );
    for n in 0.. {
        let suffix = if n == 0 {
            "_idx".to_string()
        } else {
            format!("_idx{n}")
        };
        let mut stem = base.clone();
        while stem.len() + suffix.len() > NAME_MAX {
            stem.pop();
        }
        let name = format!("{stem}{suffix}");
        if !taken(&name) {
            return name;
        }
    }
    unreachable!("the names are endless")
}

impl Engine {
    /// The relation holding the index (or primary key) named `name`.
    pub fn index_owner(&self, name: &str) -> Option<(Arc<RelationDef>, Option<usize>)> {
        self.relations().into_iter().find_map(|r| {
            if let Some(i) = r.indexes.iter().position(|ix| ix.name == name) {
                return Some((r, Some(i)));
            }
            let is_key = !r.primary_key.is_empty() && crate::catalog::pg_keys::key_name(&r) == name;
            is_key.then_some((r, None))
        })
    }

    fn name_taken(&self, name: &str) -> bool {
        self.relation(name).is_some() || self.index_owner(name).is_some()
    }

    /// `CREATE INDEX`: built over the relation's live rows, then kept with
    /// every change. Only the relation's owner may.
    pub async fn create_index(self: &Arc<Self>, ci: &CreateIndex, actor: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let def = self
            .relation(&ci.relation)
            .ok_or_else(|| CatalogError::NotFound(ci.relation.clone()))?;
        if def.kind == RelationKind::PlainView {
            return Err(EngineError::WrongObjectType(format!(
                "cannot create index on relation \"{}\": it is a view (indexes are kept on tables, sources and materialized views)",
                def.name
            )));
        }
        crate::auth::check_owner(&self.access().roles, actor, &def)?;
        let schema = def.schema();
        let mut columns = Vec::with_capacity(ci.columns.len());
        for c in &ci.columns {
            let Some((i, f)) = schema.column_with_name(c) else {
                return Err(EngineError::UndefinedColumn(format!(
                    "column \"{c}\" does not exist"
                )));
            };
            if !super::indexable(f.data_type()) {
                let ty = match def.columns.get(i) {
                    Some(c) => c.ty.to_string(),
                    None => crate::types::pg_type_of(f)
                        .map(|t| t.name().to_string())
                        .unwrap_or_else(|| f.data_type().to_string()),
                };
                return Err(EngineError::Unsupported(format!(
                    "an index on column \"{c}\" of type {ty} is not supported"
                )));
            }
            columns.push(i);
        }
        let name = match &ci.name {
            Some(n) => {
                if self.name_taken(n) {
                    if ci.if_not_exists {
                        return Ok(());
                    }
                    return Err(CatalogError::AlreadyExists(n.clone()).into());
                }
                n.clone()
            }
            None => choose_name(&def, &ci.columns, |n| self.name_taken(n)),
        };
        let slot = (1..=MAX_INDEXES)
            .find(|s| !def.indexes.iter().any(|ix| ix.slot == *s))
            .ok_or_else(|| {
                EngineError::Sql(SqlError::LimitExceeded(format!(
                    "relation \"{}\" already has {MAX_INDEXES} indexes, the most it can have",
                    def.name
                )))
            })?;
        let mut d = (*def).clone();
        d.indexes.push(IndexDef {
            name,
            columns,
            slot,
        });
        self.commit(Op::SetIndexes {
            def: Box::new(d.clone()),
        })
        .await?;
        self.swap_definition(d)
    }

    /// `DROP INDEX`: every name first checked, then each index removed.
    pub async fn drop_indexes(self: &Arc<Self>, di: &DropIndex, actor: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let mut found = Vec::new();
        for n in &di.names {
            match self.index_owner(n) {
                Some((rel, Some(_))) => {
                    crate::auth::check_owner(&self.access().roles, actor, &rel)?;
                    found.push(n.clone());
                }
                Some((rel, None)) => {
                    return Err(EngineError::DependentObjects(format!(
                        "cannot drop index {n} because constraint {n} on table {} requires it",
                        rel.name
                    )))
                }
                None if di.if_exists => {}
                None => return Err(EngineError::Catalog(CatalogError::IndexNotFound(n.clone()))),
            }
        }
        for n in found {
            let Some((rel, Some(i))) = self.index_owner(&n) else {
                continue;
            };
            let mut d = (*rel).clone();
            d.indexes.remove(i);
            self.commit(Op::SetIndexes {
                def: Box::new(d.clone()),
            })
            .await?;
            self.swap_definition(d)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let ci = parse_create_index("CREATE INDEX IF NOT EXISTS i ON public.T USING btree (A, b)")
            .unwrap();
        assert_eq!(
            ci,
            CreateIndex {
                name: Some("i".into()),
                relation: "t".into(),
                columns: vec!["a".into(), "b".into()],
                if_not_exists: true,
            }
        );
        assert_eq!(
            parse_create_index("CREATE INDEX ON t (a)").unwrap().name,
            None
        );
        for bad in [
            "CREATE UNIQUE INDEX i ON t (a)",
            "CREATE INDEX i ON t USING gin (a)",
            "CREATE INDEX i ON t (lower(a))",
            "CREATE INDEX i ON t (a) WHERE a > 0",
        ] {
            assert!(
                matches!(parse_create_index(bad), Err(SqlError::Unsupported(_))),
                "{bad}"
            );
        }
        let di = parse_drop_index("DROP INDEX IF EXISTS a, b CASCADE").unwrap();
        assert_eq!(di.names, vec!["a".to_string(), "b".to_string()]);
        assert!(di.if_exists);
    }
}
