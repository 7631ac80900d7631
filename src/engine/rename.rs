//! `ALTER SOURCE | VIEW | MATERIALIZED VIEW | TABLE name RENAME TO new`:
//! a new name for the same relation. Only the catalog record changes (the
//! log, the rows, the indexes and a view's state are the relation's by id),
//! in one step of the committer, which keeps its own copy of definitions.

use datafusion::sql::sqlparser::keywords::Keyword;

use super::commit::Op;
use super::{Engine, EngineError, Result};
use crate::catalog::{CatalogError, RelationKind};
use crate::sql::names;
use crate::sql::parser::{expect_end, normalize_ident, object_name, parser, syntax};
use crate::sql::SqlError;
use crate::store::Put;

/// `ALTER … [IF EXISTS] name RENAME TO new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// What the statement says the relation is.
    pub kind: RelationKind,
    pub name: String,
    /// The new name, without a schema (the relation keeps its own).
    pub new_name: String,
    pub if_exists: bool,
}

/// Whether `ALTER …` text renames a relation (rather than recomputing it,
/// changing its owner, …).
pub fn is_rename(words: &[String]) -> bool {
    words.windows(2).any(|w| w[0] == "rename" && w[1] == "to")
}

/// Parses `ALTER {SOURCE | VIEW | MATERIALIZED VIEW} … RENAME TO new`.
pub fn parse(text: &str) -> Result<Rename, SqlError> {
    let mut p = parser(text)?;
    p.expect_keyword_is(Keyword::ALTER).map_err(syntax)?;
    let kind = if p.parse_keyword(Keyword::SOURCE) {
        RelationKind::Source
    } else if p.parse_keywords(&[Keyword::MATERIALIZED, Keyword::VIEW]) {
        RelationKind::View
    } else if p.parse_keyword(Keyword::VIEW) {
        RelationKind::PlainView
    } else if p.parse_keyword(Keyword::TABLE) {
        RelationKind::Table
    } else {
        let t = p.peek_token().token;
        return Err(SqlError::Unsupported(format!("ALTER {t} is not supported")));
    };
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let name = object_name(&p.parse_object_name(false).map_err(syntax)?)?;
    p.expect_keywords(&[Keyword::RENAME, Keyword::TO])
        .map_err(syntax)?;
    let new_name = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    if p.peek_token().token == datafusion::sql::sqlparser::tokenizer::Token::Period {
        return Err(SqlError::Syntax(
            "syntax error at or near \".\": RENAME TO takes a name without a schema".into(),
        ));
    }
    expect_end(&mut p)?;
    names::check_no_dot(&new_name, "relation")?;
    Ok(Rename {
        kind,
        name,
        new_name,
        if_exists,
    })
}

impl Engine {
    /// Renames a relation; only its owner may, and not while views read it
    /// (their stored queries name it).
    pub async fn rename_relation(&self, r: &Rename, actor: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let Some(old) = self.relation(&r.name) else {
            if r.if_exists {
                return Ok(());
            }
            return Err(CatalogError::NotFound(r.name.clone()).into());
        };
        if old.kind != r.kind {
            return Err(EngineError::WrongObjectType(format!(
                "\"{}\" is not a {}; use ALTER {}",
                old.name,
                r.kind.as_str(),
                old.kind.as_str().to_ascii_uppercase()
            )));
        }
        crate::auth::check_owner(&self.access().roles, actor, &old)?;
        let dependents = self.catalog.read().dependents(old.id);
        if !dependents.is_empty() {
            let list: Vec<String> = dependents
                .iter()
                .map(|v| format!("{} {}", v.kind.as_str(), v.name))
                .collect();
            return Err(EngineError::DependentObjects(format!(
                "cannot rename {} {} because other objects depend on it: {} (their queries name it; drop them first, and create them again after)",
                old.kind.as_str(),
                old.name,
                list.join(", ")
            )));
        }
        let new = names::qualified(names::split(&old.name).0, &r.new_name);
        if new == old.name {
            return Ok(());
        }
        if self.relation(&new).is_some() || self.index_owner(&new).is_some() {
            return Err(CatalogError::AlreadyExists(new).into());
        }
        let mut def = (*old).clone();
        def.name = new;
        if def.kind == RelationKind::PlainView {
            // (a plain view has no state in the committer)
            self.commit(Op::Records {
                puts: vec![Put::Catalog {
                    id: def.id,
                    bytes: def.to_bytes(),
                }],
            })
            .await?;
        } else {
            self.commit(Op::Redefine {
                def: Box::new(def.clone()),
            })
            .await?;
        }
        let mut cat = self.catalog.write();
        cat.remove(&old.name);
        cat.insert(def)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let r = parse("ALTER MATERIALIZED VIEW IF EXISTS v RENAME TO W").unwrap();
        assert_eq!(
            r,
            Rename {
                kind: RelationKind::View,
                name: "v".into(),
                new_name: "w".into(),
                if_exists: true
            }
        );
        let r = parse("alter source s.bids rename to \"Bids\"").unwrap();
        assert_eq!((r.name.as_str(), r.new_name.as_str()), ("s.bids", "Bids"));
        assert!(parse("ALTER VIEW v RENAME TO s.w").is_err());
        assert!(parse("ALTER VIEW v RENAME TO w extra").is_err());
    }
}
