//! Databases: one server, several catalogs.
//!
//! Each database is an [`Engine`] of its own — its own store (a sled
//! directory), log, committer, catalog and views — so nothing of one is
//! visible from another, and dropping one deletes its directory. The
//! default database (`freshet`) lives in the data directory itself; the
//! others under `databases/<oid>/`. What a PostgreSQL cluster shares, the
//! default database keeps for all: the roles, and the list of databases (a
//! meta record of its store, written through its committer). The other
//! databases' engines read the roles from it and write role changes to it.
//!
//! A connection picks its database at start-up (the `database` parameter;
//! the user name when absent); [`Databases::connect`] hands it the engine
//! and a [`Ticket`] that counts it, so `DROP DATABASE` and `ALTER DATABASE
//! … RENAME` can refuse while others are connected, as PostgreSQL does.

pub mod catalog;
pub mod parse;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::engine::commit::Op;
use crate::engine::{Engine, EngineConfig, EngineError, Result};
use crate::store::Put;
pub use parse::{AlterDatabase, CreateDatabase, DropDatabase};

/// The database every data directory has; it holds the roles and the list
/// of databases, and cannot be dropped.
pub const DEFAULT: &str = "freshet";

/// The OID of the default database (PostgreSQL's `postgres` has 5).
pub const DEFAULT_OID: u32 = 5;

/// The meta record of the default database's store listing every database.
pub const META_DATABASES: &str = "databases";

/// Where the other databases' directories are, under the data directory.
pub const DIR: &str = "databases";

/// How long DROP/RENAME wait for other sessions of the database to end
/// (PostgreSQL waits 5 seconds too).
const WAIT_FOR_SESSIONS: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// 3D000
    #[error("database \"{0}\" does not exist")]
    Undefined(String),
    /// 42P04
    #[error("database \"{0}\" already exists")]
    Duplicate(String),
    /// 55006
    #[error("{message}")]
    InUse { message: String, detail: String },
    /// 42501
    #[error("{0}")]
    Denied(String),
    /// 55000
    #[error("database \"{0}\" is not currently accepting connections")]
    NotAccepting(String),
    /// 53300
    #[error("too many connections for database \"{0}\"")]
    TooManyConnections(String),
    /// 0A000
    #[error("{0}")]
    Unsupported(String),
    /// XX000: a database directory that cannot be made or opened.
    #[error("{0}")]
    Storage(String),
}

/// One database, as the list stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDef {
    pub name: String,
    pub oid: u32,
    pub owner: String,
    /// The directory under `databases/`; empty for the default database
    /// (the data directory itself).
    pub dir: String,
    /// -1: no limit.
    #[serde(default = "no_limit")]
    pub connection_limit: i32,
    #[serde(default = "yes")]
    pub allow_connections: bool,
}

fn no_limit() -> i32 {
    -1
}

fn yes() -> bool {
    true
}

impl DatabaseDef {
    fn default_database() -> DatabaseDef {
        DatabaseDef {
            name: DEFAULT.to_string(),
            oid: DEFAULT_OID,
            owner: crate::auth::BOOTSTRAP_ROLE.to_string(),
            dir: String::new(),
            connection_limit: -1,
            allow_connections: true,
        }
    }
}

/// Every database of a server: their definitions, their open engines and
/// the connections to each.
pub struct Databases {
    /// The default database's configuration; the others differ in
    /// `data_dir` and `database_oid`.
    base: EngineConfig,
    defs: RwLock<BTreeMap<String, DatabaseDef>>,
    /// The open engines of the databases other than the default, by OID.
    open: Mutex<HashMap<u32, Arc<Engine>>>,
    /// Connections per database OID.
    users: Arc<Mutex<HashMap<u32, usize>>>,
    /// Serializes CREATE/DROP/ALTER DATABASE and the opening of engines.
    changing: tokio::sync::Mutex<()>,
}

/// A connection's claim on its database: counted while it lives.
pub struct Ticket {
    users: Arc<Mutex<HashMap<u32, usize>>>,
    oid: u32,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut users = self.users.lock();
        if let Some(n) = users.get_mut(&self.oid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                users.remove(&self.oid);
            }
        }
    }
}

impl std::fmt::Debug for Databases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Databases")
            .field("defs", &*self.defs.read())
            .finish()
    }
}

impl Databases {
    /// The list as the default database's store holds it (`bytes`), for a
    /// server whose default database has configuration `base`.
    pub fn load(base: &EngineConfig, bytes: Option<Vec<u8>>) -> Result<Databases> {
        let mut defs = BTreeMap::new();
        if let Some(b) = bytes {
            let list: Vec<DatabaseDef> = serde_json::from_slice(&b).map_err(|e| {
                EngineError::Internal(format!("the list of databases does not decode: {e}"))
            })?;
            for d in list {
                defs.insert(d.name.clone(), d);
            }
        }
        if !defs.values().any(|d| d.oid == DEFAULT_OID) {
            let d = DatabaseDef::default_database();
            defs.insert(d.name.clone(), d);
        }
        Ok(Databases {
            base: base.clone(),
            defs: RwLock::new(defs),
            open: Mutex::new(HashMap::new()),
            users: Arc::new(Mutex::new(HashMap::new())),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    /// Every database, by name.
    pub fn list(&self) -> Vec<DatabaseDef> {
        self.defs.read().values().cloned().collect()
    }

    /// The database of OID `oid`.
    pub fn by_oid(&self, oid: u32) -> Option<DatabaseDef> {
        self.defs.read().values().find(|d| d.oid == oid).cloned()
    }

    pub fn get(&self, name: &str) -> Option<DatabaseDef> {
        self.defs.read().get(name).cloned()
    }

    /// Connections to the database of OID `oid`.
    pub fn users(&self, oid: u32) -> usize {
        self.users.lock().get(&oid).copied().unwrap_or(0)
    }

    /// The other databases' engines that are open.
    pub fn open_engines(&self) -> Vec<Arc<Engine>> {
        self.open.lock().values().cloned().collect()
    }

    fn config_of(&self, def: &DatabaseDef) -> EngineConfig {
        let mut c = self.base.clone();
        if !def.dir.is_empty() {
            c.data_dir = self.base.data_dir.join(DIR).join(&def.dir);
        }
        c.database_oid = def.oid;
        c
    }

    /// The engine of `def`, opened (and its views restored) if it is not
    /// yet. Call with `changing` held.
    async fn engine_of(&self, def: &DatabaseDef, home: &Arc<Engine>) -> Result<Arc<Engine>> {
        if def.dir.is_empty() {
            return Ok(home.clone());
        }
        if let Some(e) = self.open.lock().get(&def.oid) {
            return Ok(e.clone());
        }
        let config = self.config_of(def);
        let h = home.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::open_in(config, &h))
            .await
            .map_err(|e| EngineError::Internal(format!("opening a database failed: {e}")))??;
        engine.recover_views().await?;
        self.open.lock().insert(def.oid, engine.clone());
        Ok(engine)
    }

    /// Opens every database (at start-up, before serving) and deletes the
    /// directories no database owns (left by a CREATE or DROP that a crash
    /// interrupted).
    pub async fn open_all(&self, home: &Arc<Engine>) -> Result<()> {
        let _changing = self.changing.lock().await;
        let defs = self.list();
        let dir = self.base.data_dir.join(DIR);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if !defs.iter().any(|d| d.dir == name) {
                    tracing::info!(dir = %e.path().display(), "removing the directory of a database that no longer exists");
                    if let Err(err) = std::fs::remove_dir_all(e.path()) {
                        tracing::warn!(dir = %e.path().display(), error = %err, "cannot remove");
                    }
                }
            }
        }
        for d in defs.iter().filter(|d| !d.dir.is_empty()) {
            match self.engine_of(d, home).await {
                Ok(e) => {
                    let r = e.recovery();
                    tracing::info!(
                        database = %d.name,
                        relations = r.relations,
                        rows = r.rows,
                        millis = r.millis,
                        "database recovered"
                    );
                }
                Err(e) => {
                    tracing::error!(database = %d.name, error = %e, "cannot open database")
                }
            }
        }
        Ok(())
    }

    /// A connection to database `name` by a role that is (or is not) a
    /// superuser: its engine and the ticket that counts it.
    pub async fn connect(
        &self,
        name: &str,
        superuser: bool,
        home: &Arc<Engine>,
    ) -> Result<(Arc<Engine>, Ticket)> {
        let def = self
            .get(name)
            .ok_or_else(|| DatabaseError::Undefined(name.to_string()))?;
        let engine = if def.dir.is_empty() {
            home.clone()
        } else {
            let open = self.open.lock().get(&def.oid).cloned();
            match open {
                Some(e) => e,
                None => {
                    let _changing = self.changing.lock().await;
                    self.engine_of(&def, home).await?
                }
            }
        };
        // (under the list's lock: a DROP that removes it waits or sees us)
        let defs = self.defs.read();
        let Some(def) = defs.values().find(|d| d.oid == def.oid) else {
            return Err(DatabaseError::Undefined(name.to_string()).into());
        };
        if !def.allow_connections {
            return Err(DatabaseError::NotAccepting(def.name.clone()).into());
        }
        let mut users = self.users.lock();
        let n = users.entry(def.oid).or_insert(0);
        if def.connection_limit >= 0 && !superuser && *n >= def.connection_limit as usize {
            return Err(DatabaseError::TooManyConnections(def.name.clone()).into());
        }
        *n += 1;
        Ok((
            engine,
            Ticket {
                users: self.users.clone(),
                oid: def.oid,
            },
        ))
    }

    /// Takes every other database's engine out of the open ones (the
    /// server is stopping: the default database's engine shuts them down).
    pub fn take_open(&self) -> Vec<Arc<Engine>> {
        self.open.lock().drain().map(|(_, e)| e).collect()
    }

    /// Writes the list through the default database's committer.
    async fn store(&self, home: &Engine, defs: &BTreeMap<String, DatabaseDef>) -> Result<()> {
        let list: Vec<&DatabaseDef> = defs.values().collect();
        let bytes = serde_json::to_vec(&list)
            .map_err(|e| EngineError::Internal(format!("cannot encode the databases: {e}")))?;
        home.commit(Op::Records {
            puts: vec![Put::Meta {
                name: META_DATABASES,
                bytes,
            }],
        })
        .await
        .map(|_| ())
    }

    /// Waits (up to [`WAIT_FOR_SESSIONS`]) until no session uses database
    /// `oid`, then applies `change` to the list under its lock.
    async fn when_unused(
        &self,
        def: &DatabaseDef,
        change: impl Fn(&mut BTreeMap<String, DatabaseDef>),
    ) -> Result<BTreeMap<String, DatabaseDef>> {
        let until = std::time::Instant::now() + WAIT_FOR_SESSIONS;
        loop {
            {
                let mut defs = self.defs.write();
                let n = self.users(def.oid);
                if n == 0 {
                    let before = defs.clone();
                    change(&mut defs);
                    return Ok(before);
                }
                if std::time::Instant::now() >= until {
                    return Err(DatabaseError::InUse {
                        message: format!(
                            "database \"{}\" is being accessed by other users",
                            def.name
                        ),
                        detail: if n == 1 {
                            "There is 1 other session using the database.".into()
                        } else {
                            format!("There are {n} other sessions using the database.")
                        },
                    }
                    .into());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn denied(m: impl Into<String>) -> EngineError {
    DatabaseError::Denied(m.into()).into()
}

impl Engine {
    /// The engine of the default database: this one, or the one this
    /// engine takes its roles from.
    pub fn home(self: &Arc<Self>) -> Result<Arc<Engine>> {
        match &self.home {
            None => Ok(self.clone()),
            Some(h) => h.upgrade().ok_or(EngineError::ShuttingDown),
        }
    }

    /// The databases of this server.
    pub fn databases(&self) -> &Arc<Databases> {
        &self.databases
    }

    /// This engine's database's name (it changes with ALTER DATABASE …
    /// RENAME TO).
    pub fn database_name(&self) -> String {
        self.databases
            .by_oid(self.config.database_oid)
            .map(|d| d.name)
            .unwrap_or_else(|| DEFAULT.to_string())
    }

    pub fn database_oid(&self) -> u32 {
        self.config.database_oid
    }

    /// The open engine of the database of OID `oid`, if there is one.
    pub fn database_engine(self: &Arc<Self>, oid: u32) -> Option<Arc<Engine>> {
        if oid == self.database_oid() {
            return Some(self.clone());
        }
        let home = self.home().ok()?;
        if home.database_oid() == oid {
            return Some(home);
        }
        self.databases.open.lock().get(&oid).cloned()
    }

    /// `CREATE DATABASE`: a new, empty database owned by the actor (or by
    /// `OWNER`). Superusers and roles with CREATEDB may.
    pub async fn create_database(self: &Arc<Self>, c: &CreateDatabase, actor: &str) -> Result<()> {
        let home = self.home()?;
        let dbs = self.databases.clone();
        let _changing = dbs.changing.lock().await;
        let access = self.access();
        let me = access
            .roles
            .get(actor)
            .ok_or_else(|| crate::auth::AuthError::UndefinedRole(actor.to_string()))?;
        if !(me.superuser || me.create_db) {
            return Err(denied("permission denied to create database"));
        }
        let owner = c.owner.clone().unwrap_or_else(|| actor.to_string());
        if access.roles.get(&owner).is_none() {
            return Err(crate::auth::AuthError::UndefinedRole(owner).into());
        }
        if owner != actor && !me.superuser {
            return Err(denied(format!("must be able to SET ROLE \"{owner}\"")));
        }
        if dbs.get(&c.name).is_some() {
            if c.if_not_exists {
                return Ok(());
            }
            return Err(DatabaseError::Duplicate(c.name.clone()).into());
        }
        let oid = dbs
            .defs
            .read()
            .values()
            .map(|d| d.oid)
            .max()
            .unwrap_or(DEFAULT_OID)
            .max(16383)
            + 1;
        let def = DatabaseDef {
            name: c.name.clone(),
            oid,
            owner,
            dir: oid.to_string(),
            connection_limit: c.connection_limit.unwrap_or(-1),
            allow_connections: c.allow_connections.unwrap_or(true),
        };
        // the directory first: a crash before the list names it leaves a
        // directory the next start removes
        let path = dbs.config_of(&def).data_dir;
        if path.exists() {
            remove_dir(path.clone()).await?;
        }
        let engine = dbs.engine_of(&def, &home).await?;
        let mut next = dbs.defs.read().clone();
        next.insert(def.name.clone(), def.clone());
        if let Err(e) = dbs.store(&home, &next).await {
            dbs.open.lock().remove(&oid);
            engine.shutdown().await;
            drop(engine);
            let _ = remove_dir(path).await;
            return Err(e);
        }
        *dbs.defs.write() = next;
        Ok(())
    }

    /// `DROP DATABASE`: by its owner or a superuser, not the database the
    /// session is in, not while others are connected to it (waiting up to
    /// five seconds for them to leave, as PostgreSQL does).
    pub async fn drop_database(self: &Arc<Self>, d: &DropDatabase, actor: &str) -> Result<()> {
        let home = self.home()?;
        let dbs = self.databases.clone();
        let _changing = dbs.changing.lock().await;
        let Some(def) = dbs.get(&d.name) else {
            if d.if_exists {
                return Ok(());
            }
            return Err(DatabaseError::Undefined(d.name.clone()).into());
        };
        if def.oid == self.database_oid() {
            return Err(DatabaseError::InUse {
                message: "cannot drop the currently open database".into(),
                detail: String::new(),
            }
            .into());
        }
        self.check_database_owner(&def, actor)?;
        if def.dir.is_empty() {
            return Err(DatabaseError::Unsupported(format!(
                "cannot drop database \"{}\": it is the default database, which holds the roles and the list of databases",
                def.name
            ))
            .into());
        }
        let before = dbs
            .when_unused(&def, |defs| {
                defs.remove(&def.name);
            })
            .await
            .map_err(|e| force_hint(e, d.force))?;
        let next = dbs.defs.read().clone();
        if let Err(e) = dbs.store(&home, &next).await {
            *dbs.defs.write() = before;
            return Err(e);
        }
        let engine = dbs.open.lock().remove(&def.oid);
        if let Some(e) = engine {
            e.shutdown().await;
        }
        let path = dbs.config_of(&def).data_dir;
        if let Err(e) = remove_dir(path).await {
            // (the next start removes it)
            tracing::warn!(database = %def.name, error = %e, "cannot remove the directory of a dropped database");
        }
        Ok(())
    }

    /// `ALTER DATABASE … RENAME TO | OWNER TO | CONNECTION LIMIT |
    /// ALLOW_CONNECTIONS`.
    pub async fn alter_database(self: &Arc<Self>, a: &AlterDatabase, actor: &str) -> Result<()> {
        let home = self.home()?;
        let dbs = self.databases.clone();
        let _changing = dbs.changing.lock().await;
        let name = match a {
            AlterDatabase::Rename { name, .. }
            | AlterDatabase::Owner { name, .. }
            | AlterDatabase::Options { name, .. } => name,
        };
        let def = dbs
            .get(name)
            .ok_or_else(|| DatabaseError::Undefined(name.clone()))?;
        self.check_database_owner(&def, actor)?;
        let access = self.access();
        let before = match a {
            AlterDatabase::Rename { to, .. } => {
                if def.oid == self.database_oid() {
                    return Err(DatabaseError::InUse {
                        message: "current database cannot be renamed".into(),
                        detail: String::new(),
                    }
                    .into());
                }
                if dbs.get(to).is_some() {
                    return Err(DatabaseError::Duplicate(to.clone()).into());
                }
                let me = access.roles.get(actor);
                if !me.is_some_and(|r| r.superuser || r.create_db) {
                    return Err(denied("permission denied to rename database"));
                }
                dbs.when_unused(&def, |defs| {
                    if let Some(mut d) = defs.remove(&def.name) {
                        d.name = to.clone();
                        defs.insert(d.name.clone(), d);
                    }
                })
                .await?
            }
            AlterDatabase::Owner { to, .. } => {
                if access.roles.get(to).is_none() {
                    return Err(crate::auth::AuthError::UndefinedRole(to.clone()).into());
                }
                let me = access.roles.get(actor);
                if !me.is_some_and(|r| r.superuser) && to != actor {
                    return Err(denied(format!("must be able to SET ROLE \"{to}\"")));
                }
                let mut defs = dbs.defs.write();
                let before = defs.clone();
                if let Some(d) = defs.get_mut(&def.name) {
                    d.owner = to.clone();
                }
                before
            }
            AlterDatabase::Options {
                connection_limit,
                allow_connections,
                ..
            } => {
                let mut defs = dbs.defs.write();
                let before = defs.clone();
                if let Some(d) = defs.get_mut(&def.name) {
                    if let Some(l) = connection_limit {
                        d.connection_limit = *l;
                    }
                    if let Some(a) = allow_connections {
                        d.allow_connections = *a;
                    }
                }
                before
            }
        };
        let next = dbs.defs.read().clone();
        if let Err(e) = dbs.store(&home, &next).await {
            *dbs.defs.write() = before;
            return Err(e);
        }
        Ok(())
    }

    fn check_database_owner(&self, def: &DatabaseDef, actor: &str) -> Result<()> {
        let access = self.access();
        let superuser = access.roles.get(actor).is_some_and(|r| r.superuser);
        if !superuser && def.owner != actor {
            return Err(denied(format!("must be owner of database {}", def.name)));
        }
        Ok(())
    }

    /// What role `role` owns or holds privileges on in the other databases
    /// (DROP ROLE refuses while there is any), one line per database.
    pub fn role_objects_elsewhere(&self, role: &str) -> Vec<String> {
        let mut out = Vec::new();
        let dbs = self.databases.list();
        for d in &dbs {
            if d.owner == role {
                out.push(format!("owner of database {}", d.name));
            }
        }
        let mut engines = self.databases.open_engines();
        if let Some(home) = self.home.as_ref().and_then(|h| h.upgrade()) {
            engines.push(home);
        }
        for e in engines {
            if e.database_oid() == self.database_oid() {
                continue;
            }
            let n = e
                .relations()
                .iter()
                .filter(|r| r.owner == role || r.acl.0.contains_key(role))
                .count();
            if n > 0 {
                let name = e.database_name();
                out.push(if n == 1 {
                    format!("1 object in database {name}")
                } else {
                    format!("{n} objects in database {name}")
                });
            }
        }
        out
    }
}

fn force_hint(e: EngineError, force: bool) -> EngineError {
    match e {
        EngineError::Database(DatabaseError::InUse { message, detail }) if force => {
            DatabaseError::InUse {
                message,
                detail: format!(
                    "{detail} WITH (FORCE) does not end other sessions in Freshet: close them first."
                ),
            }
            .into()
        }
        e => e,
    }
}

async fn remove_dir(path: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DatabaseError::Storage(format!(
            "cannot remove {}: {e}",
            path.display()
        ))),
    })
    .await
    .map_err(|e| EngineError::Internal(format!("removing a directory failed: {e}")))?
    .map_err(Into::into)
}
