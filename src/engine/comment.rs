//! `COMMENT ON`: a description of a relation or of one of its columns,
//! kept in the relation's catalog record (stored through the committer as
//! catalog-only records, like grants) and read by `obj_description` and
//! `col_description` (`crate::catalog::pg_views`).

use std::sync::Arc;

use super::commit::Op;
use super::{Engine, EngineError, Result};
use crate::catalog::RelationKind;
use crate::sql::parser::CommentOn;
use crate::store::Put;

impl Engine {
    /// Sets or (with no text) removes a comment; only the owner may.
    pub async fn comment(self: &Arc<Self>, on: &CommentOn, actor: &str) -> Result<()> {
        let _ddl = self.ddl_lock.lock().await;
        let def = self
            .relation(&on.relation)
            .ok_or_else(|| crate::catalog::CatalogError::NotFound(on.relation.clone()))?;
        if let Some(kind) = on.kind {
            // (a source is commented on as a table too)
            let fits = def.kind == kind
                || (kind == RelationKind::Table && def.kind == RelationKind::Source);
            if !fits {
                return Err(EngineError::WrongObjectType(format!(
                    "\"{}\" is not a {}",
                    def.name,
                    kind.as_str()
                )));
            }
        }
        let key = match &on.column {
            Some(c) => {
                if !def.schema().fields().iter().any(|f| f.name() == c) {
                    return Err(EngineError::UndefinedColumn(format!(
                        "column \"{c}\" of relation \"{}\" does not exist",
                        def.name
                    )));
                }
                c.clone()
            }
            None => String::new(),
        };
        crate::auth::check_owner(&self.access().roles, actor, &def)?;
        let mut d = (*def).clone();
        match on.text.as_ref().filter(|t| !t.is_empty()) {
            Some(t) => {
                d.comments.insert(key, t.clone());
            }
            None => {
                d.comments.remove(&key);
            }
        }
        self.commit(Op::Records {
            puts: vec![Put::Catalog {
                id: d.id,
                bytes: d.to_bytes(),
            }],
        })
        .await?;
        self.swap_definition(d)
    }
}
