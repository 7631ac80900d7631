//! Running the statements about roles and privileges: who may do what
//! (as Postgres 15 rules it), and the records that change.
//!
//! [`plan`] is pure: given the roles and relations as they are and the
//! role running the statement, it returns the change to store, or why the
//! statement is refused. The engine stores the change atomically.

use std::sync::Arc;

use super::{
    AccessStatement, Acl, AuthError, GrantTarget, Privilege, RoleDef, RoleOptions, Roles,
    BOOTSTRAP_ROLE, PUBLIC,
};
use crate::catalog::RelationDef;

/// The records one statement changes.
#[derive(Debug, Clone, Default)]
pub struct AccessChange {
    /// Roles created or altered.
    pub roles: Vec<RoleDef>,
    /// Roles dropped (or renamed away from).
    pub dropped_roles: Vec<String>,
    /// Relations whose owner or access list changed.
    pub relations: Vec<RelationDef>,
    /// The privileges on schema `public`, if they changed.
    pub schema_acl: Option<Acl>,
}

/// Why a statement names a relation that is not there (42P01), kept apart
/// from [`AuthError`] so that it keeps its own SQLSTATE.
#[derive(Debug)]
pub enum Refusal {
    Auth(AuthError),
    NoRelation(String),
    WrongKind(String),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Refusal::Auth(e)
    }
}

/// A password as the statement gave it, turned into what is stored: a
/// SCRAM verifier given as such is kept, anything else is hashed. Run
/// before [`plan`] (hashing takes a few milliseconds).
pub fn prepare_password(options: &mut RoleOptions) -> Result<(), AuthError> {
    if let Some(Some(pw)) = &options.password {
        let stored = if super::scram::Verifier::parse(pw).is_some() {
            Some(pw.clone())
        } else if pw.len() == 35 && pw.starts_with("md5") {
            return Err(AuthError::Unsupported(
                "MD5 password hashes are not supported; give the password itself or a SCRAM-SHA-256 verifier".into(),
            ));
        } else if pw.is_empty() {
            // Postgres: "empty string is not a valid password, clearing password"
            None
        } else {
            Some(super::scram::Verifier::new(pw).to_string())
        };
        options.password = Some(stored);
    }
    Ok(())
}

fn denied(msg: impl Into<String>) -> Refusal {
    Refusal::Auth(AuthError::PermissionDenied(msg.into()))
}

fn reserved(name: &str) -> Result<(), Refusal> {
    if name == PUBLIC || name == "none" {
        return Err(
            AuthError::InvalidParameter(format!("role name \"{name}\" is reserved")).into(),
        );
    }
    if name.starts_with("pg_") {
        return Err(AuthError::InvalidParameter(format!(
            "role name \"{name}\" is reserved (role names starting with \"pg_\" are reserved)"
        ))
        .into());
    }
    Ok(())
}

fn apply_options(role: &mut RoleDef, o: &RoleOptions) {
    if let Some(v) = o.superuser {
        role.superuser = v;
    }
    if let Some(v) = o.login {
        role.login = v;
    }
    if let Some(v) = o.create_role {
        role.create_role = v;
    }
    if let Some(v) = o.create_db {
        role.create_db = v;
    }
    if let Some(p) = &o.password {
        role.password = p.clone();
    }
}

fn existing<'a>(roles: &'a Roles, name: &str) -> Result<&'a RoleDef, Refusal> {
    roles
        .get(name)
        .ok_or_else(|| AuthError::UndefinedRole(name.to_string()).into())
}

/// The relations a GRANT or REVOKE is about; only their owner (or a
/// superuser) may change who can use them.
fn targets(
    on: &GrantTarget,
    relations: &[Arc<RelationDef>],
    actor: &RoleDef,
) -> Result<Vec<RelationDef>, Refusal> {
    let picked: Vec<&Arc<RelationDef>> = match on {
        GrantTarget::AllInSchema => relations.iter().collect(),
        GrantTarget::Relations(names) => {
            let mut out = Vec::new();
            for n in names {
                match relations.iter().find(|r| &r.name == n) {
                    Some(r) => out.push(r),
                    None => return Err(Refusal::NoRelation(n.clone())),
                }
            }
            out
        }
    };
    picked
        .into_iter()
        .map(|r| {
            if actor.superuser || actor.name == r.owner {
                Ok((**r).clone())
            } else {
                Err(denied(format!(
                    "permission denied for {} {}",
                    r.kind.as_str(),
                    r.name
                )))
            }
        })
        .collect()
}

fn grantees(roles: &Roles, names: &[String]) -> Result<(), Refusal> {
    for n in names {
        if n != PUBLIC {
            existing(roles, n)?;
        }
    }
    Ok(())
}

/// What `stmt`, run by `actor`, changes. `schema_acl` is the current
/// access list of schema `public`.
pub fn plan(
    roles: &Roles,
    relations: &[Arc<RelationDef>],
    schema_acl: &Acl,
    actor: &str,
    stmt: &AccessStatement,
) -> Result<AccessChange, Refusal> {
    let me = existing(roles, actor)?.clone();
    let mut change = AccessChange::default();
    match stmt {
        AccessStatement::CreateRole {
            name,
            if_not_exists,
            options,
        } => {
            if !(me.superuser || me.create_role) {
                return Err(denied("permission denied to create role"));
            }
            if options.superuser == Some(true) && !me.superuser {
                return Err(denied("must be superuser to create superusers"));
            }
            reserved(name)?;
            if roles.get(name).is_some() {
                if *if_not_exists {
                    return Ok(change);
                }
                return Err(AuthError::DuplicateRole(name.clone()).into());
            }
            let mut role = RoleDef {
                name: name.clone(),
                superuser: false,
                login: false,
                create_role: false,
                create_db: false,
                password: None,
                oid: roles.next_oid(),
            };
            apply_options(&mut role, options);
            change.roles.push(role);
        }
        AccessStatement::AlterRole { name, options } => {
            let target = existing(roles, name)?;
            let only_password = RoleOptions {
                password: options.password.clone(),
                ..Default::default()
            } == *options;
            if !me.superuser {
                if target.superuser || options.superuser.is_some() {
                    return Err(denied(
                        "must be superuser to alter superuser roles or change superuser attribute",
                    ));
                }
                let own_password = target.name == me.name && only_password;
                if !own_password && !me.create_role {
                    return Err(denied("permission denied"));
                }
            }
            if target.name == BOOTSTRAP_ROLE && options.superuser == Some(false) {
                return Err(denied(format!(
                    "role \"{BOOTSTRAP_ROLE}\" must stay a superuser: it is the bootstrap role"
                )));
            }
            let mut role = target.clone();
            apply_options(&mut role, options);
            change.roles.push(role);
        }
        AccessStatement::RenameRole { name, to } => {
            let target = existing(roles, name)?;
            if name == actor {
                return Err(AuthError::Unsupported("session user cannot be renamed".into()).into());
            }
            if name == BOOTSTRAP_ROLE {
                return Err(denied(format!(
                    "role \"{BOOTSTRAP_ROLE}\" cannot be renamed: it is the bootstrap role"
                )));
            }
            if target.superuser && !me.superuser {
                return Err(denied("must be superuser to rename superusers"));
            }
            if !(me.superuser || me.create_role) {
                return Err(denied("permission denied to rename role"));
            }
            reserved(to)?;
            if roles.get(to).is_some() {
                return Err(AuthError::DuplicateRole(to.clone()).into());
            }
            let mut role = target.clone();
            role.name = to.clone();
            change.roles.push(role);
            change.dropped_roles.push(name.clone());
            // owners and grants name roles: follow the new name
            for r in relations {
                if r.owner == *name || r.acl.0.contains_key(name) {
                    let mut d = (**r).clone();
                    if d.owner == *name {
                        d.owner = to.clone();
                    }
                    if let Some(bits) = d.acl.0.remove(name) {
                        d.acl.0.insert(to.clone(), bits);
                    }
                    change.relations.push(d);
                }
            }
            if let Some(bits) = schema_acl.0.get(name) {
                let mut acl = schema_acl.clone();
                acl.0.remove(name);
                acl.0.insert(to.clone(), *bits);
                change.schema_acl = Some(acl);
            }
        }
        AccessStatement::DropRole { names, if_exists } => {
            for name in names {
                let Some(target) = roles.get(name) else {
                    if *if_exists {
                        continue;
                    }
                    return Err(AuthError::UndefinedRole(name.clone()).into());
                };
                if name == actor {
                    return Err(
                        AuthError::ObjectInUse("current user cannot be dropped".into()).into(),
                    );
                }
                if name == BOOTSTRAP_ROLE {
                    return Err(AuthError::RoleInUse {
                        role: name.clone(),
                        detail: "it is the bootstrap role".into(),
                    }
                    .into());
                }
                if target.superuser && !me.superuser {
                    return Err(denied("must be superuser to drop superusers"));
                }
                if !(me.superuser || me.create_role) {
                    return Err(denied("permission denied to drop role"));
                }
                let mut detail = Vec::new();
                for r in relations {
                    if r.owner == *name {
                        detail.push(format!("owner of {} {}", r.kind.as_str(), r.name));
                    }
                }
                for r in relations {
                    if r.acl.0.contains_key(name) {
                        detail.push(format!("privileges for {} {}", r.kind.as_str(), r.name));
                    }
                }
                if schema_acl.0.contains_key(name) {
                    detail.push("privileges for schema public".into());
                }
                if !detail.is_empty() {
                    return Err(AuthError::RoleInUse {
                        role: name.clone(),
                        detail: detail.join("\n"),
                    }
                    .into());
                }
                change.dropped_roles.push(name.clone());
            }
        }
        AccessStatement::Grant { privileges, on, to }
        | AccessStatement::Revoke {
            privileges,
            on,
            from: to,
        } => {
            let grant = matches!(stmt, AccessStatement::Grant { .. });
            grantees(roles, to)?;
            for mut d in targets(on, relations, &me)? {
                for who in to {
                    for p in privileges {
                        if grant {
                            d.acl.grant(who, *p);
                        } else {
                            d.acl.revoke(who, *p);
                        }
                    }
                }
                change.relations.push(d);
            }
        }
        AccessStatement::AlterOwner { kind, name, owner } => {
            let rel = relations
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| Refusal::NoRelation(name.clone()))?;
            if rel.kind != *kind {
                return Err(Refusal::WrongKind(format!(
                    "\"{name}\" is not a {}",
                    kind.as_str()
                )));
            }
            existing(roles, owner)?;
            if !(me.superuser || me.name == rel.owner) {
                return Err(denied(format!(
                    "must be owner of {} {}",
                    rel.kind.as_str(),
                    rel.name
                )));
            }
            if !me.superuser && *owner != me.name {
                return Err(denied(format!("must be able to SET ROLE \"{owner}\"")));
            }
            let mut d = (**rel).clone();
            d.owner = owner.clone();
            change.relations.push(d);
        }
        AccessStatement::ReassignOwned { from, to } => {
            existing(roles, to)?;
            for f in from {
                existing(roles, f)?;
            }
            if !me.superuser {
                return Err(denied(
                    "permission denied to reassign objects (only a superuser may)",
                ));
            }
            for r in relations {
                if from.contains(&r.owner) {
                    let mut d = (**r).clone();
                    d.owner = to.clone();
                    change.relations.push(d);
                }
            }
        }
        AccessStatement::GrantSchema {
            schemas,
            create,
            to,
            grant,
            ..
        } => {
            // (the other schemas' privileges are the schema module's)
            if !schemas.iter().any(|s| s == PUBLIC) {
                return Ok(change);
            }
            if !me.superuser {
                return Err(denied("permission denied for schema public"));
            }
            grantees(roles, to)?;
            let mut acl = schema_acl.clone();
            if *create {
                for who in to {
                    if *grant {
                        acl.grant(who, Privilege::Create);
                    } else {
                        acl.revoke(who, Privilege::Create);
                    }
                }
            }
            change.schema_acl = Some(acl);
        }
    }
    Ok(change)
}

/// Whether `user` may create relations in schema `public`: superusers,
/// and roles granted CREATE on it (directly or through PUBLIC).
pub fn may_create(roles: &Roles, schema_acl: &Acl, user: &str) -> bool {
    roles.is_superuser(user) || schema_acl.has(user, Privilege::Create)
}
