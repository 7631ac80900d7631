//! Schemas: `CREATE SCHEMA`, `DROP SCHEMA`, and who may use one.
//!
//! `public` is always there; the others are those `CREATE SCHEMA` made.
//! Their definitions (name and owner) are one catalog-level record, written
//! through the committer like roles are. A relation belongs to the schema
//! its catalog name starts with (see [`crate::sql::names`]).
//!
//! Privileges: `public` keeps its own (see `auth`). Another schema is its
//! owner's: only the owner and superusers create relations in it or use
//! the relations in it, as in PostgreSQL before any `GRANT … ON SCHEMA`
//! (which is not supported for schemas other than `public`).

pub mod catalog;
pub mod functions;

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::keywords::Keyword;
use serde::{Deserialize, Serialize};

use crate::auth::{AuthError, Privilege};
use crate::catalog::CatalogError;
use crate::engine::commit::Op;
use crate::engine::{Engine, EngineError, Result};
use crate::sql::names::{self, PUBLIC};
use crate::sql::parser::{expect_end, normalize_ident, parser, syntax, DropKind, DropStatement};
use crate::sql::SqlError;
use crate::store::Put;

/// The meta record holding every schema other than `public` (JSON).
pub const META_SCHEMAS: &str = "schemas";

/// A schema other than `public`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDef {
    pub name: String,
    pub owner: String,
    /// USAGE and CREATE granted to roles other than the owner.
    #[serde(default)]
    pub acl: crate::auth::Acl,
}

/// `CREATE SCHEMA [IF NOT EXISTS] name [AUTHORIZATION role]` or `CREATE
/// SCHEMA [IF NOT EXISTS] AUTHORIZATION role` (named after the role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSchema {
    pub name: String,
    pub owner: Option<String>,
    pub if_not_exists: bool,
}

/// `DROP SCHEMA [IF EXISTS] name [, …] [CASCADE | RESTRICT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropSchema {
    pub names: Vec<String>,
    pub if_exists: bool,
    pub cascade: bool,
}

/// Parses `CREATE SCHEMA …`.
pub fn parse_create(text: &str) -> Result<CreateSchema, SqlError> {
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::CREATE, Keyword::SCHEMA])
        .map_err(syntax)?;
    let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let mut name = None;
    if !p.parse_keyword(Keyword::AUTHORIZATION) {
        name = Some(normalize_ident(&p.parse_identifier().map_err(syntax)?));
        if !p.parse_keyword(Keyword::AUTHORIZATION) {
            return finish(p, name, None, if_not_exists);
        }
    }
    let owner = normalize_ident(&p.parse_identifier().map_err(syntax)?);
    finish(p, name, Some(owner), if_not_exists)
}

fn finish(
    mut p: datafusion::sql::sqlparser::parser::Parser<'static>,
    name: Option<String>,
    owner: Option<String>,
    if_not_exists: bool,
) -> Result<CreateSchema, SqlError> {
    if p.parse_keyword(Keyword::CREATE) || p.parse_keyword(Keyword::GRANT) {
        return Err(SqlError::Unsupported(
            "CREATE SCHEMA with schema elements is not supported; create the schema, then its objects"
                .into(),
        ));
    }
    expect_end(&mut p)?;
    let name = match (name, &owner) {
        (Some(n), _) => n,
        (None, Some(o)) => o.clone(),
        (None, None) => return Err(SqlError::Syntax("CREATE SCHEMA needs a name".into())),
    };
    names::check_schema_name(&name)?;
    Ok(CreateSchema {
        name,
        owner,
        if_not_exists,
    })
}

/// Parses `DROP SCHEMA …`.
pub fn parse_drop(text: &str) -> Result<DropSchema, SqlError> {
    let mut p = parser(text)?;
    p.expect_keywords(&[Keyword::DROP, Keyword::SCHEMA])
        .map_err(syntax)?;
    let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
    let names = p
        .parse_comma_separated(|p| p.parse_identifier())
        .map_err(syntax)?
        .iter()
        .map(normalize_ident)
        .collect();
    let cascade = p.parse_keyword(Keyword::CASCADE);
    if !cascade {
        let _ = p.parse_keyword(Keyword::RESTRICT);
    }
    expect_end(&mut p)?;
    Ok(DropSchema {
        names,
        if_exists,
        cascade,
    })
}

/// The schemas a search path names that exist, in order: `$user` is the
/// role's own schema when there is one; `pg_catalog` and the other system
/// schemas are skipped (their tables are found by their own names).
pub fn search_path(value: &str, role: &str, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in value.split(',') {
        let part = part.trim();
        let name = match part.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\"\"", "\""),
            None => part.to_ascii_lowercase(),
        };
        let name = if name == "$user" {
            role.to_string()
        } else {
            name
        };
        if name.is_empty() || names::SYSTEM_SCHEMAS.contains(&name.as_str()) {
            continue;
        }
        if (name == PUBLIC || exists(&name)) && !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

impl Engine {
    /// Whether a schema exists (`public` always does).
    pub fn schema_exists(&self, name: &str) -> bool {
        name == PUBLIC || self.catalog.read().schema(name).is_some()
    }

    /// The schemas other than `public`, by name.
    pub fn schemas(&self) -> Vec<SchemaDef> {
        self.catalog.read().schemas().cloned().collect()
    }

    /// Fails with 3F000 unless the schema of catalog name `relation` exists.
    pub fn check_schema_of(&self, relation: &str) -> Result<()> {
        let (schema, _) = names::split(relation);
        if self.schema_exists(schema) {
            Ok(())
        } else {
            Err(SqlError::UndefinedSchema(schema.to_string()).into())
        }
    }

    /// Fails with 42501 unless `role` may use schema `schema` (its owner,
    /// superusers and roles granted USAGE; everyone for `public`).
    pub fn check_schema_usage(&self, role: &str, schema: &str) -> Result<()> {
        self.check_schema_privilege(role, schema, Privilege::Usage)
    }

    /// Fails with 42501 unless `role` may create relations in schema
    /// `schema` (not `public`: its owner, superusers and roles granted
    /// CREATE).
    pub fn check_schema_create(&self, role: &str, schema: &str) -> Result<()> {
        self.check_schema_privilege(role, schema, Privilege::Create)
    }

    /// Whether `role` holds `privilege` (USAGE or CREATE) on schema
    /// `schema`, not `public`, as owner, superuser or grantee.
    pub fn has_schema_privilege(&self, role: &str, schema: &str, privilege: Privilege) -> bool {
        if self.access().roles.is_superuser(role) {
            return true;
        }
        match self.catalog.read().schema(schema) {
            Some(s) => s.owner == role || s.acl.has(role, privilege),
            None => false,
        }
    }

    fn check_schema_privilege(&self, role: &str, schema: &str, privilege: Privilege) -> Result<()> {
        if schema == PUBLIC
            || self.catalog.read().schema(schema).is_none()
            || self.has_schema_privilege(role, schema, privilege)
        {
            return Ok(());
        }
        Err(AuthError::PermissionDenied(format!("permission denied for schema {schema}")).into())
    }

    /// `GRANT | REVOKE {USAGE | CREATE | ALL} ON SCHEMA s, … TO | FROM
    /// roles` for schemas other than `public`: by each schema's owner or a
    /// superuser.
    pub async fn grant_on_schemas(
        &self,
        schemas: &[String],
        privileges: &[Privilege],
        to: &[String],
        grant: bool,
        actor: &str,
    ) -> Result<()> {
        let access = self.access();
        for who in to {
            if who != crate::auth::PUBLIC && access.roles.get(who).is_none() {
                return Err(AuthError::UndefinedRole(who.clone()).into());
            }
        }
        let _ddl = self.ddl_lock.lock().await;
        let mut all = self.schemas();
        for name in schemas {
            let Some(s) = all.iter_mut().find(|s| &s.name == name) else {
                return Err(SqlError::UndefinedSchema(name.clone()).into());
            };
            if s.owner != actor && !access.roles.is_superuser(actor) {
                return Err(AuthError::PermissionDenied(format!(
                    "permission denied for schema {name}"
                ))
                .into());
            }
            for who in to {
                for p in privileges {
                    if grant {
                        s.acl.grant(who, *p);
                    } else {
                        s.acl.revoke(who, *p);
                    }
                }
            }
        }
        self.store_schemas(all).await
    }

    /// The schemas whose privileges name `role` (DROP ROLE refuses while
    /// there is any).
    pub fn schemas_granting(&self, role: &str) -> Vec<String> {
        self.schemas()
            .into_iter()
            .filter(|s| s.acl.0.contains_key(role))
            .map(|s| format!("privileges for schema {}", s.name))
            .collect()
    }

    /// `CREATE SCHEMA`: only superusers (the database's owner) may. Returns
    /// false if it existed and `IF NOT EXISTS` was given.
    pub async fn create_schema(&self, c: &CreateSchema, actor: &str) -> Result<bool> {
        let access = self.access();
        if !access.roles.is_superuser(actor) {
            return Err(AuthError::PermissionDenied(format!(
                "permission denied for database {}",
                self.database_name()
            ))
            .into());
        }
        let owner = c.owner.clone().unwrap_or_else(|| actor.to_string());
        if access.roles.get(&owner).is_none() {
            return Err(AuthError::UndefinedRole(owner).into());
        }
        let _ddl = self.ddl_lock.lock().await;
        if self.schema_exists(&c.name) {
            if c.if_not_exists {
                return Ok(false);
            }
            return Err(CatalogError::SchemaExists(c.name.clone()).into());
        }
        let mut all = self.schemas();
        all.push(SchemaDef {
            name: c.name.clone(),
            owner,
            acl: Default::default(),
        });
        self.store_schemas(all).await?;
        Ok(true)
    }

    /// `DROP SCHEMA`: the owner or a superuser; a schema that holds
    /// relations only with `CASCADE` (which drops them, and the views that
    /// read them wherever they are).
    pub async fn drop_schemas(&self, d: &DropSchema, actor: &str) -> Result<()> {
        let superuser = self.access().roles.is_superuser(actor);
        let mut victims = Vec::new();
        for name in &d.names {
            if name == PUBLIC || names::SYSTEM_SCHEMAS.contains(&name.as_str()) {
                return Err(EngineError::DependentObjects(format!(
                    "cannot drop schema {name} because the system requires it"
                )));
            }
            let Some(def) = self.catalog.read().schema(name).cloned() else {
                if d.if_exists {
                    continue;
                }
                return Err(SqlError::UndefinedSchema(name.clone()).into());
            };
            if !superuser && def.owner != actor {
                return Err(
                    AuthError::PermissionDenied(format!("must be owner of schema {name}")).into(),
                );
            }
            let inside: Vec<String> = self
                .relations()
                .iter()
                .filter(|r| names::split(&r.name).0 == name)
                .map(|r| r.name.clone())
                .collect();
            if !inside.is_empty() && !d.cascade {
                return Err(EngineError::DependentObjects(format!(
                    "cannot drop schema {name} because other objects depend on it: {} (use DROP ... CASCADE to drop them too)",
                    inside.join(", ")
                )));
            }
            victims.push((name.clone(), inside));
        }
        for (name, inside) in victims {
            // views first (they may read the schema's tables), each with
            // what reads it
            let mut rels: Vec<_> = inside.iter().filter_map(|n| self.relation(n)).collect();
            rels.sort_by_key(|r| std::cmp::Reverse(r.id));
            for rel in rels {
                let kind = match rel.kind {
                    crate::catalog::RelationKind::Source => DropKind::Source,
                    crate::catalog::RelationKind::Table => DropKind::Table,
                    crate::catalog::RelationKind::View => DropKind::MaterializedView,
                    crate::catalog::RelationKind::PlainView => DropKind::View,
                };
                self.drop_relations(
                    &DropStatement {
                        kind,
                        names: vec![rel.name.clone()],
                        if_exists: true,
                        cascade: true,
                    },
                    actor,
                )
                .await?;
            }
            let _ddl = self.ddl_lock.lock().await;
            let all = self
                .schemas()
                .into_iter()
                .filter(|s| s.name != name)
                .collect();
            self.store_schemas(all).await?;
        }
        Ok(())
    }

    /// Stores the schema list durably, then publishes it (the caller holds
    /// the DDL lock).
    async fn store_schemas(&self, all: Vec<SchemaDef>) -> Result<()> {
        let bytes = serde_json::to_vec(&all).unwrap_or_default();
        self.commit(Op::Records {
            puts: vec![Put::Meta {
                name: META_SCHEMAS,
                bytes,
            }],
        })
        .await?;
        self.catalog
            .write()
            .set_schemas(all.into_iter().map(|s| (s.name.clone(), s)).collect());
        Ok(())
    }
}

/// The stored schema list.
pub fn load(bytes: Option<Vec<u8>>) -> Result<BTreeMap<String, SchemaDef>, CatalogError> {
    let Some(bytes) = bytes else {
        return Ok(BTreeMap::new());
    };
    let all: Vec<SchemaDef> = serde_json::from_slice(&bytes)
        .map_err(|e| CatalogError::Corrupt(format!("schemas: {e}")))?;
    Ok(all.into_iter().map(|s| (s.name.clone(), s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements() {
        let c = parse_create("CREATE SCHEMA IF NOT EXISTS Sales").unwrap();
        assert_eq!(
            c,
            CreateSchema {
                name: "sales".into(),
                owner: None,
                if_not_exists: true
            }
        );
        let c = parse_create("create schema authorization bob").unwrap();
        assert_eq!((c.name.as_str(), c.owner.as_deref()), ("bob", Some("bob")));
        let c = parse_create("CREATE SCHEMA s AUTHORIZATION bob;").unwrap();
        assert_eq!((c.name.as_str(), c.owner.as_deref()), ("s", Some("bob")));
        assert!(matches!(
            parse_create("CREATE SCHEMA pg_x"),
            Err(SqlError::ReservedName(_))
        ));
        assert!(matches!(
            parse_create("CREATE SCHEMA s CREATE TABLE t (a int)"),
            Err(SqlError::Unsupported(_))
        ));
        let d = parse_drop("DROP SCHEMA IF EXISTS a, \"B\" CASCADE").unwrap();
        assert_eq!(d.names, vec!["a".to_string(), "B".to_string()]);
        assert!(d.if_exists && d.cascade);
    }

    #[test]
    fn paths() {
        let exists = |s: &str| s == "a" || s == "bob";
        assert_eq!(
            search_path("\"$user\", public", "bob", exists),
            vec!["bob".to_string(), "public".to_string()]
        );
        assert_eq!(
            search_path("\"$user\", public", "alice", exists),
            vec!["public".to_string()]
        );
        assert_eq!(
            search_path("pg_catalog, A, missing, public, a", "x", exists),
            vec!["a".to_string(), "public".to_string()]
        );
        assert!(search_path("missing", "x", exists).is_empty());
    }
}
