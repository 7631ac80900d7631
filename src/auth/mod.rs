//! Roles, passwords and privileges.
//!
//! * A role ([`RoleDef`]) is stored as Postgres stores it: attributes and a
//!   SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:
//!   <ServerKey>`), never the password. [`scram`] runs the server side of
//!   the exchange against that verifier.
//! * A relation has an owner and an access list ([`Acl`]): role → the
//!   privileges granted (`PUBLIC` for everyone). A superuser may do
//!   anything; the owner may do anything with what it owns; anyone else
//!   needs a grant. [`allowed`] is the one check.
//! * [`tls`] loads the server's certificate and key.

pub mod catalog;
pub mod enforce;
pub mod manage;
pub mod scram;
pub mod tls;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The role created with a new data directory: a superuser that can log
/// in (with trust authentication, or once it has a password).
pub const BOOTSTRAP_ROLE: &str = "freshet";

/// The pseudo-role every role belongs to.
pub const PUBLIC: &str = "public";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDef {
    pub name: String,
    #[serde(default)]
    pub superuser: bool,
    #[serde(default)]
    pub login: bool,
    #[serde(default)]
    pub create_role: bool,
    #[serde(default)]
    pub create_db: bool,
    /// The SCRAM-SHA-256 verifier, if the role has a password.
    #[serde(default)]
    pub password: Option<String>,
    /// A stable number for `pg_roles.oid`.
    #[serde(default)]
    pub oid: u32,
}

impl RoleDef {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(b: &[u8]) -> Result<RoleDef, AuthError> {
        serde_json::from_slice(b).map_err(|e| AuthError::Corrupt(e.to_string()))
    }
}

/// The first oid given to a role created by SQL (as in Postgres, below
/// it are the bootstrap objects; the bootstrap superuser is 10).
pub const FIRST_ROLE_OID: u32 = 16384;

impl RoleDef {
    /// The role a new data directory starts with.
    pub fn bootstrap() -> RoleDef {
        RoleDef {
            name: BOOTSTRAP_ROLE.to_string(),
            superuser: true,
            login: true,
            create_role: true,
            create_db: true,
            password: None,
            oid: 10,
        }
    }

    /// The stored verifier, if the role has a password.
    pub fn verifier(&self) -> Option<scram::Verifier> {
        self.password.as_deref().and_then(scram::Verifier::parse)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("corrupt role record: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Tls(String),
    /// 42501
    #[error("{0}")]
    PermissionDenied(String),
    /// 42704
    #[error("role \"{0}\" does not exist")]
    UndefinedRole(String),
    /// 42710
    #[error("role \"{0}\" already exists")]
    DuplicateRole(String),
    /// 2BP01, with the objects in the detail
    #[error("role \"{role}\" cannot be dropped because some objects depend on it")]
    RoleInUse { role: String, detail: String },
    /// 55006
    #[error("{0}")]
    ObjectInUse(String),
    /// 22023
    #[error("{0}")]
    InvalidParameter(String),
    /// 3F000
    #[error("schema \"{0}\" does not exist")]
    UndefinedSchema(String),
    /// 0A000
    #[error("{0}")]
    Unsupported(String),
}

/// Every role, by name.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    by_name: BTreeMap<String, RoleDef>,
}

impl Roles {
    pub fn new(roles: impl IntoIterator<Item = RoleDef>) -> Roles {
        Roles {
            by_name: roles.into_iter().map(|r| (r.name.clone(), r)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&RoleDef> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &RoleDef> {
        self.by_name.values()
    }

    pub fn is_superuser(&self, name: &str) -> bool {
        self.get(name).is_some_and(|r| r.superuser)
    }

    /// An oid no role has.
    pub fn next_oid(&self) -> u32 {
        self.by_name
            .values()
            .map(|r| r.oid + 1)
            .max()
            .unwrap_or(0)
            .max(FIRST_ROLE_OID)
    }

    pub fn put(&mut self, role: RoleDef) {
        self.by_name.insert(role.name.clone(), role);
    }

    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }
}

/// Everything access control reads: the roles and the privileges on
/// schema `public` (the privileges on relations live in their catalog
/// records).
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub roles: std::sync::Arc<Roles>,
    pub schema_acl: Acl,
}

/// Role attributes a `CREATE ROLE` or `ALTER ROLE` sets (`None`: not
/// mentioned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleOptions {
    pub superuser: Option<bool>,
    pub login: Option<bool>,
    pub create_role: Option<bool>,
    pub create_db: Option<bool>,
    /// `PASSWORD 'x'` (`Some(Some)`), `PASSWORD NULL` (`Some(None)`).
    pub password: Option<Option<String>>,
}

/// What a `GRANT` or `REVOKE` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantTarget {
    /// `ON [TABLE] a, b`
    Relations(Vec<String>),
    /// `ON ALL TABLES IN SCHEMA public`: every relation there is now.
    AllInSchema,
}

/// The statements about roles and privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessStatement {
    CreateRole {
        name: String,
        if_not_exists: bool,
        options: RoleOptions,
    },
    AlterRole {
        name: String,
        options: RoleOptions,
    },
    RenameRole {
        name: String,
        to: String,
    },
    DropRole {
        names: Vec<String>,
        if_exists: bool,
    },
    Grant {
        privileges: Vec<Privilege>,
        on: GrantTarget,
        to: Vec<String>,
    },
    Revoke {
        privileges: Vec<Privilege>,
        on: GrantTarget,
        from: Vec<String>,
    },
    /// `ALTER {TABLE|SOURCE|MATERIALIZED VIEW} name OWNER TO role`
    AlterOwner {
        kind: crate::catalog::RelationKind,
        name: String,
        owner: String,
    },
    /// `REASSIGN OWNED BY a TO b`
    ReassignOwned {
        from: Vec<String>,
        to: String,
    },
    /// `GRANT|REVOKE {CREATE|USAGE} ON SCHEMA s, … TO|FROM …` (`create`,
    /// `usage`: named; on `public`, USAGE is everyone's already)
    GrantSchema {
        schemas: Vec<String>,
        create: bool,
        usage: bool,
        to: Vec<String>,
        grant: bool,
    },
}

impl AccessStatement {
    /// Replaces `CURRENT_USER` (as the parser marks it) by `role`.
    pub fn resolve_current_user(&mut self, role: &str) {
        let fix = |n: &mut String| {
            if n == crate::sql::access::CURRENT_USER {
                *n = role.to_string();
            }
        };
        match self {
            AccessStatement::CreateRole { name, .. } | AccessStatement::AlterRole { name, .. } => {
                fix(name)
            }
            AccessStatement::RenameRole { name, to } => {
                fix(name);
                fix(to);
            }
            AccessStatement::DropRole { names, .. } => names.iter_mut().for_each(fix),
            AccessStatement::Grant { to, .. } | AccessStatement::Revoke { from: to, .. } => {
                to.iter_mut().for_each(fix)
            }
            AccessStatement::AlterOwner { owner, .. } => fix(owner),
            AccessStatement::ReassignOwned { from, to } => {
                from.iter_mut().for_each(fix);
                fix(to);
            }
            AccessStatement::GrantSchema { to, .. } => to.iter_mut().for_each(fix),
        }
    }

    /// The command tag Postgres answers with.
    pub fn tag(&self) -> &'static str {
        use crate::catalog::RelationKind;
        match self {
            AccessStatement::CreateRole { .. } => "CREATE ROLE",
            AccessStatement::AlterRole { .. } | AccessStatement::RenameRole { .. } => "ALTER ROLE",
            AccessStatement::DropRole { .. } => "DROP ROLE",
            AccessStatement::Grant { .. } => "GRANT",
            AccessStatement::Revoke { .. } => "REVOKE",
            AccessStatement::AlterOwner { kind, .. } => match kind {
                RelationKind::Source => "ALTER SOURCE",
                RelationKind::Table => "ALTER TABLE",
                RelationKind::View => "ALTER MATERIALIZED VIEW",
                RelationKind::PlainView => "ALTER VIEW",
            },
            AccessStatement::ReassignOwned { .. } => "REASSIGN OWNED",
            AccessStatement::GrantSchema { grant: true, .. } => "GRANT",
            AccessStatement::GrantSchema { grant: false, .. } => "REVOKE",
        }
    }
}

/// A privilege on a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    /// On schema `public`: create relations there.
    Create,
    /// On schema `public`: look up what is in it (everyone has it).
    Usage,
}

impl Privilege {
    /// What `ALL` grants on a relation.
    pub const ALL: [Privilege; 4] = [
        Privilege::Select,
        Privilege::Insert,
        Privilege::Update,
        Privilege::Delete,
    ];

    fn bit(self) -> u8 {
        match self {
            Privilege::Select => 1,
            Privilege::Insert => 2,
            Privilege::Update => 4,
            Privilege::Delete => 8,
            Privilege::Create => 16,
            Privilege::Usage => 32,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Create => "CREATE",
            Privilege::Usage => "USAGE",
        }
    }

    /// The letter `aclitem` uses (`r` read, `a` append, `w` write, `d`).
    pub fn acl_letter(self) -> char {
        match self {
            Privilege::Select => 'r',
            Privilege::Insert => 'a',
            Privilege::Update => 'w',
            Privilege::Delete => 'd',
            Privilege::Create => 'C',
            Privilege::Usage => 'U',
        }
    }

    pub fn parse(name: &str) -> Option<Privilege> {
        match name.to_ascii_uppercase().as_str() {
            "SELECT" => Some(Privilege::Select),
            "INSERT" => Some(Privilege::Insert),
            "UPDATE" => Some(Privilege::Update),
            "DELETE" => Some(Privilege::Delete),
            "CREATE" => Some(Privilege::Create),
            "USAGE" => Some(Privilege::Usage),
            _ => None,
        }
    }
}

/// Role → privileges granted on one relation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl(pub BTreeMap<String, u8>);

impl Acl {
    pub fn grant(&mut self, role: &str, p: Privilege) {
        *self.0.entry(role.to_string()).or_insert(0) |= p.bit();
    }

    pub fn revoke(&mut self, role: &str, p: Privilege) {
        if let Some(bits) = self.0.get_mut(role) {
            *bits &= !p.bit();
            if *bits == 0 {
                self.0.remove(role);
            }
        }
    }

    pub fn has(&self, role: &str, p: Privilege) -> bool {
        [role, PUBLIC]
            .iter()
            .any(|r| self.0.get(*r).is_some_and(|b| b & p.bit() != 0))
    }

    /// The privileges granted to `role` itself (not through PUBLIC).
    pub fn granted(&self, role: &str) -> Vec<Privilege> {
        let bits = self.0.get(role).copied().unwrap_or(0);
        [
            Privilege::Select,
            Privilege::Insert,
            Privilege::Update,
            Privilege::Delete,
            Privilege::Create,
            Privilege::Usage,
        ]
        .into_iter()
        .filter(|p| bits & p.bit() != 0)
        .collect()
    }
}

/// Fails with 42501 unless `user` may use `p` on `rel`.
pub fn check(
    roles: &Roles,
    user: &str,
    rel: &crate::catalog::RelationDef,
    p: Privilege,
) -> Result<(), AuthError> {
    let ok = match roles.get(user) {
        Some(r) => allowed(r, &rel.owner, &rel.acl, p),
        None => rel.acl.has(PUBLIC, p),
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied(format!(
            "permission denied for {} {}",
            rel.kind.as_str(),
            rel.name
        )))
    }
}

/// Fails with 42501 unless `user` owns `rel` or is a superuser (to drop,
/// alter or recompute it).
pub fn check_owner(
    roles: &Roles,
    user: &str,
    rel: &crate::catalog::RelationDef,
) -> Result<(), AuthError> {
    if roles.is_superuser(user) || rel.owner == user {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied(format!(
            "must be owner of {} {}",
            rel.kind.as_str(),
            rel.name
        )))
    }
}

/// Fails with 42501 unless `user` is a superuser; `what` completes "must
/// be superuser to …".
pub fn check_superuser(roles: &Roles, user: &str, what: &str) -> Result<(), AuthError> {
    if roles.is_superuser(user) {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied(format!(
            "must be superuser to {what}"
        )))
    }
}

/// Whether `role` may use `p` on a relation owned by `owner` with `acl`.
pub fn allowed(role: &RoleDef, owner: &str, acl: &Acl, p: Privilege) -> bool {
    role.superuser || role.name == owner || acl.has(&role.name, p)
}

/// One `aclitem`: `grantee=letters/grantor`, letters in Postgres' order.
fn acl_item(who: &str, acl: &Acl, owner: &str) -> String {
    let role = if who.is_empty() { PUBLIC } else { who };
    let granted = acl.granted(role);
    let letters: String = [
        Privilege::Insert,
        Privilege::Select,
        Privilege::Update,
        Privilege::Delete,
    ]
    .into_iter()
    .filter(|p| granted.contains(p))
    .map(Privilege::acl_letter)
    .collect();
    format!("{who}={letters}/{owner}")
}

/// Postgres' `aclitem[]` text for a relation: the owner's full rights,
/// then every grant (`=r/owner` is PUBLIC).
pub fn acl_text(owner: &str, acl: &Acl) -> String {
    let mut items = vec![format!("{owner}=arwd/{owner}")];
    for (role, _) in acl.0.iter() {
        if role == owner {
            continue;
        }
        if role == PUBLIC {
            continue;
        }
        items.push(acl_item(role, acl, owner));
    }
    if acl.0.contains_key(PUBLIC) {
        items.push(acl_item("", acl, owner));
    }
    format!("{{{}}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, superuser: bool) -> RoleDef {
        RoleDef {
            name: name.into(),
            superuser,
            login: true,
            create_role: false,
            create_db: false,
            password: None,
            oid: 1,
        }
    }

    #[test]
    fn who_may_do_what() {
        let mut acl = Acl::default();
        acl.grant("bi", Privilege::Select);
        let (alice, bi, bob) = (role("alice", false), role("bi", false), role("bob", false));
        assert!(allowed(&alice, "alice", &acl, Privilege::Delete));
        assert!(allowed(&bi, "alice", &acl, Privilege::Select));
        assert!(!allowed(&bi, "alice", &acl, Privilege::Insert));
        assert!(!allowed(&bob, "alice", &acl, Privilege::Select));
        assert!(allowed(
            &role("root", true),
            "alice",
            &acl,
            Privilege::Delete
        ));
        acl.grant(PUBLIC, Privilege::Select);
        assert!(allowed(&bob, "alice", &acl, Privilege::Select));
        acl.revoke(PUBLIC, Privilege::Select);
        acl.revoke("bi", Privilege::Select);
        assert!(!allowed(&bi, "alice", &acl, Privilege::Select));
        assert!(acl.0.is_empty());
    }

    #[test]
    fn acl_text_as_postgres() {
        let mut acl = Acl::default();
        acl.grant("bi", Privilege::Select);
        acl.grant(PUBLIC, Privilege::Select);
        acl.grant("etl", Privilege::Insert);
        acl.grant("etl", Privilege::Select);
        assert_eq!(
            acl_text("alice", &acl),
            "{alice=arwd/alice,bi=r/alice,etl=ar/alice,=r/alice}"
        );
    }
}
