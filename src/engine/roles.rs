//! Roles, privileges and ownership, as the engine stores them: the
//! decisions are `auth::manage`'s; here they are made durable (one sled
//! batch per statement, through the committer) and then published.

use std::sync::Arc;

use super::commit::Op;
use super::error::{EngineError, Result};
use super::Engine;
use crate::auth::manage::{self, Refusal};
use crate::auth::{Access, AccessStatement, Acl, AuthError, RoleDef, Roles};
use crate::catalog::CatalogError;
use crate::store::{keys, Put, Store};

/// The roles and the privileges on schema `public` as stored; a data
/// directory without roles gets the bootstrap superuser (written now).
/// Another database than the default (`with_roles` false) keeps no roles:
/// it reads the default database's.
pub(super) fn load(store: &Store, with_roles: bool) -> Result<Access> {
    let mut roles = Vec::new();
    if with_roles {
        for bytes in store.roles()? {
            roles.push(RoleDef::from_bytes(&bytes)?);
        }
    }
    if roles.is_empty() && with_roles {
        let boot = RoleDef::bootstrap();
        store.apply(vec![Put::Role {
            name: boot.name.clone(),
            bytes: boot.to_bytes(),
        }])?;
        store.flush()?;
        roles.push(boot);
    }
    let schema_acl = match store.meta(keys::META_SCHEMA_ACL)? {
        Some(b) => serde_json::from_slice::<Acl>(&b)
            .map_err(|e| AuthError::Corrupt(format!("schema privileges: {e}")))?,
        None => Acl::default(),
    };
    Ok(Access {
        roles: Arc::new(Roles::new(roles)),
        schema_acl,
    })
}

fn refusal(r: Refusal) -> EngineError {
    match r {
        Refusal::Auth(a) => EngineError::Auth(a),
        Refusal::NoRelation(n) => CatalogError::NotFound(n).into(),
        Refusal::WrongKind(m) => EngineError::WrongObjectType(m),
    }
}

impl Engine {
    /// The roles and schema privileges as of the last statement that
    /// changed them.
    pub fn access(&self) -> Arc<Access> {
        let own = self.access.read().clone();
        let Some(home) = self.home.as_ref().and_then(|h| h.upgrade()) else {
            return own;
        };
        // the roles are the default database's; the rest is this one's
        let roles = home.access().roles.clone();
        if Arc::ptr_eq(&own.roles, &roles) {
            return own;
        }
        let next = Arc::new(Access {
            roles,
            schema_acl: own.schema_acl.clone(),
        });
        *self.access.write() = next.clone();
        next
    }

    /// Runs a statement about roles or privileges for role `actor`.
    pub async fn run_access(&self, actor: &str, stmt: &AccessStatement) -> Result<()> {
        let mut stmt = stmt.clone();
        if let AccessStatement::CreateRole { options, .. }
        | AccessStatement::AlterRole { options, .. } = &mut stmt
        {
            // hashing takes a few milliseconds of CPU: not on a serving thread
            let mut o = options.clone();
            let o =
                tokio::task::spawn_blocking(move || manage::prepare_password(&mut o).map(|_| o))
                    .await
                    .map_err(|e| {
                        EngineError::Internal(format!("password hashing failed: {e}"))
                    })??;
            *options = o;
        }
        if let AccessStatement::GrantSchema {
            schemas,
            create,
            usage,
            to,
            grant,
        } = &stmt
        {
            let others: Vec<String> = schemas
                .iter()
                .filter(|s| s.as_str() != crate::sql::names::PUBLIC)
                .cloned()
                .collect();
            if !others.is_empty() {
                let mut privileges = Vec::new();
                if *usage {
                    privileges.push(crate::auth::Privilege::Usage);
                }
                if *create {
                    privileges.push(crate::auth::Privilege::Create);
                }
                self.grant_on_schemas(&others, &privileges, to, *grant, actor)
                    .await?;
            }
        }
        let home = match &self.home {
            Some(h) => Some(h.upgrade().ok_or(EngineError::ShuttingDown)?),
            None => None,
        };
        let _ddl = self.ddl_lock.lock().await;
        // roles are the default database's: its DDL lock orders role changes
        // made from every database
        let _home_ddl = match &home {
            Some(h) => Some(h.ddl_lock.lock().await),
            None => None,
        };
        let access = self.access();
        let relations = self.relations();
        let change = manage::plan(&access.roles, &relations, &access.schema_acl, actor, &stmt)
            .map_err(refusal)?;
        for name in &change.dropped_roles {
            let mut elsewhere = self.schemas_granting(name);
            elsewhere.extend(self.role_objects_elsewhere(name));
            if !elsewhere.is_empty() {
                return Err(AuthError::RoleInUse {
                    role: name.clone(),
                    detail: elsewhere.join("\n"),
                }
                .into());
            }
        }
        let mut role_puts = Vec::new();
        for name in &change.dropped_roles {
            role_puts.push(Put::DeleteRole { name: name.clone() });
        }
        for r in &change.roles {
            role_puts.push(Put::Role {
                name: r.name.clone(),
                bytes: r.to_bytes(),
            });
        }
        let mut puts = Vec::new();
        for d in &change.relations {
            puts.push(Put::Catalog {
                id: d.id,
                bytes: d.to_bytes(),
            });
        }
        if let Some(acl) = &change.schema_acl {
            puts.push(Put::Meta {
                name: keys::META_SCHEMA_ACL,
                bytes: serde_json::to_vec(acl).unwrap_or_default(),
            });
        }
        match &home {
            Some(h) if !role_puts.is_empty() => {
                h.commit(Op::Records { puts: role_puts }).await?;
            }
            _ => puts.extend(role_puts),
        }
        if !puts.is_empty() {
            self.commit(Op::Records { puts }).await?;
        }
        let mut roles = (*access.roles).clone();
        for name in &change.dropped_roles {
            roles.remove(name);
        }
        for r in change.roles {
            roles.put(r);
        }
        let roles = Arc::new(roles);
        if let Some(h) = &home {
            let theirs = h.access.read().schema_acl.clone();
            *h.access.write() = Arc::new(Access {
                roles: roles.clone(),
                schema_acl: theirs,
            });
        }
        *self.access.write() = Arc::new(Access {
            roles,
            schema_acl: change
                .schema_acl
                .unwrap_or_else(|| access.schema_acl.clone()),
        });
        let mut cat = self.catalog.write();
        for d in change.relations {
            cat.remove(&d.name);
            cat.insert(d)?;
        }
        Ok(())
    }
}

impl Engine {
    /// Gives the bootstrap superuser `password` if it has none yet (the
    /// first start with `--auth scram`); a password set since by ALTER
    /// ROLE is kept.
    pub async fn set_bootstrap_password(&self, password: &str) -> Result<()> {
        let boot = crate::auth::BOOTSTRAP_ROLE;
        if self
            .access()
            .roles
            .get(boot)
            .is_some_and(|r| r.password.is_some())
        {
            return Ok(());
        }
        let stmt = AccessStatement::AlterRole {
            name: boot.to_string(),
            options: crate::auth::RoleOptions {
                password: Some(Some(password.to_string())),
                ..Default::default()
            },
        };
        self.run_access(boot, &stmt).await
    }
}
