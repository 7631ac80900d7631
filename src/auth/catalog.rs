//! What clients read about roles and privileges: `pg_roles`, `pg_authid`,
//! `pg_user`, `pg_shadow`, `pg_auth_members` (served in place of the
//! generic `pg_catalog`'s), and the functions `current_user`,
//! `session_user`, `has_table_privilege`, `has_schema_privilege` and
//! `pg_get_userbyid`, bound to one session's role.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBuilder, Int32Array, ListBuilder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion_pg_catalog::pg_catalog::oid_field::{kind, oid_field};

use super::{Access, AuthError, Privilege, RoleDef, PUBLIC};
use crate::engine::Engine;

/// The role tables this module serves.
pub const TABLES: [&str; 5] = [
    "pg_roles",
    "pg_authid",
    "pg_user",
    "pg_shadow",
    "pg_auth_members",
];

/// Tables only a superuser may read (they hold the password verifiers).
pub const SUPERUSER_TABLES: [&str; 2] = ["pg_authid", "pg_shadow"];

const MASKED: &str = "********";

fn timestamptz() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn nulls_list(n: usize) -> ArrayRef {
    let mut b = ListBuilder::new(StringBuilder::new());
    for _ in 0..n {
        b.append(false);
    }
    Arc::new(b.finish())
}

fn bools(roles: &[&RoleDef], f: impl Fn(&RoleDef) -> bool) -> ArrayRef {
    Arc::new(BooleanArray::from(
        roles.iter().map(|r| f(r)).collect::<Vec<_>>(),
    ))
}

fn texts(roles: &[&RoleDef], f: impl Fn(&RoleDef) -> Option<String>) -> ArrayRef {
    Arc::new(StringArray::from(
        roles.iter().map(|r| f(r)).collect::<Vec<_>>(),
    ))
}

fn oids(roles: &[&RoleDef]) -> ArrayRef {
    Arc::new(Int32Array::from(
        roles.iter().map(|r| r.oid as i32).collect::<Vec<_>>(),
    ))
}

fn no_time(n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![None; n]).with_timezone("+00:00"))
}

/// One of [`TABLES`], as of now.
pub fn table_batch(name: &str, access: &Access) -> Option<RecordBatch> {
    let roles: Vec<&RoleDef> = access.roles.iter().collect();
    let n = roles.len();
    let f = |name: &str, t: DataType| Field::new(name, t, true);
    let (fields, columns): (Vec<Field>, Vec<ArrayRef>) = match name {
        "pg_roles" | "pg_authid" => {
            let authid = name == "pg_authid";
            let password = |r: &RoleDef| match (&r.password, authid) {
                (None, _) => None,
                (Some(p), true) => Some(p.clone()),
                (Some(_), false) => Some(MASKED.to_string()),
            };
            let mut cols: Vec<(Field, ArrayRef)> = vec![
                (
                    f("rolname", DataType::Utf8),
                    texts(&roles, |r| Some(r.name.clone())),
                ),
                (
                    f("rolsuper", DataType::Boolean),
                    bools(&roles, |r| r.superuser),
                ),
                (f("rolinherit", DataType::Boolean), bools(&roles, |_| true)),
                (
                    f("rolcreaterole", DataType::Boolean),
                    bools(&roles, |r| r.create_role),
                ),
                (
                    f("rolcreatedb", DataType::Boolean),
                    bools(&roles, |r| r.create_db),
                ),
                (
                    f("rolcanlogin", DataType::Boolean),
                    bools(&roles, |r| r.login),
                ),
                (
                    f("rolreplication", DataType::Boolean),
                    bools(&roles, |_| false),
                ),
            ];
            let connlimit: ArrayRef = Arc::new(Int32Array::from(vec![-1; n]));
            if authid {
                cols.insert(0, (oid_field("oid", kind::OID, false), oids(&roles)));
                cols.push((
                    f("rolbypassrls", DataType::Boolean),
                    bools(&roles, |_| false),
                ));
                cols.push((f("rolconnlimit", DataType::Int32), connlimit));
                cols.push((f("rolpassword", DataType::Utf8), texts(&roles, password)));
                cols.push((f("rolvaliduntil", timestamptz()), no_time(n)));
            } else {
                cols.push((f("rolconnlimit", DataType::Int32), connlimit));
                cols.push((f("rolpassword", DataType::Utf8), texts(&roles, password)));
                cols.push((f("rolvaliduntil", timestamptz()), no_time(n)));
                cols.push((
                    f("rolbypassrls", DataType::Boolean),
                    bools(&roles, |_| false),
                ));
                cols.push((f("rolconfig", text_list()), nulls_list(n)));
                cols.push((oid_field("oid", kind::OID, false), oids(&roles)));
            }
            cols.into_iter().unzip()
        }
        "pg_user" | "pg_shadow" => {
            let shadow = name == "pg_shadow";
            let users: Vec<&RoleDef> = roles.iter().copied().filter(|r| r.login).collect();
            let m = users.len();
            let password = |r: &RoleDef| match (&r.password, shadow) {
                (None, _) => None,
                (Some(p), true) => Some(p.clone()),
                (Some(_), false) => Some(MASKED.to_string()),
            };
            vec![
                (
                    f("usename", DataType::Utf8),
                    texts(&users, |r| Some(r.name.clone())),
                ),
                (oid_field("usesysid", kind::OID, false), oids(&users)),
                (
                    f("usecreatedb", DataType::Boolean),
                    bools(&users, |r| r.create_db),
                ),
                (
                    f("usesuper", DataType::Boolean),
                    bools(&users, |r| r.superuser),
                ),
                (f("userepl", DataType::Boolean), bools(&users, |_| false)),
                (
                    f("usebypassrls", DataType::Boolean),
                    bools(&users, |_| false),
                ),
                (f("passwd", DataType::Utf8), texts(&users, password)),
                (f("valuntil", timestamptz()), no_time(m)),
                (f("useconfig", text_list()), nulls_list(m)),
            ]
            .into_iter()
            .unzip()
        }
        // role membership does not exist yet: no rows
        "pg_auth_members" => vec![
            (
                oid_field("roleid", kind::OID, false),
                Arc::new(Int32Array::from(Vec::<i32>::new())) as ArrayRef,
            ),
            (
                oid_field("member", kind::OID, false),
                Arc::new(Int32Array::from(Vec::<i32>::new())),
            ),
            (
                oid_field("grantor", kind::OID, false),
                Arc::new(Int32Array::from(Vec::<i32>::new())),
            ),
            (
                f("admin_option", DataType::Boolean),
                Arc::new(BooleanArray::from(Vec::<bool>::new())),
            ),
        ]
        .into_iter()
        .unzip(),
        _ => return None,
    };
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

/// `pg_catalog` with the role tables answered from the roles that exist.
pub struct PgCatalogWithRoles {
    pub inner: Arc<dyn SchemaProvider>,
    pub engine: Weak<Engine>,
    /// Where `pg_class` reads leave relations' OIDs for `pg_get_viewdef`.
    pub oids: crate::catalog::pg_views::ViewOids,
}

impl fmt::Debug for PgCatalogWithRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgCatalogWithRoles")
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogWithRoles {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        for t in TABLES
            .iter()
            .chain(&crate::catalog::pg_views::TABLES)
            .chain(&crate::catalog::pg_session::TABLES)
            .chain(&crate::catalog::pg_keys::TABLES)
        {
            if !names.iter().any(|n| n == t) {
                names.push(t.to_string());
            }
        }
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        if TABLES.contains(&name) {
            let Some(engine) = self.engine.upgrade() else {
                return Ok(None);
            };
            let Some(batch) = table_batch(name, &engine.access()) else {
                return Ok(None);
            };
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
            return Ok(Some(Arc::new(table)));
        }
        if name == "pg_class" {
            return self.pg_class().await;
        }
        if name == "pg_namespace" {
            let Some(inner) = self.inner.table("pg_namespace").await? else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(crate::schema::catalog::PgNamespace {
                inner,
                engine: self.engine.clone(),
            })));
        }
        if name == "pg_database" {
            let Some(engine) = self.engine.upgrade() else {
                return Ok(None);
            };
            let batch = crate::database::catalog::pg_database(&engine)?;
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
            return Ok(Some(Arc::new(table)));
        }
        if name == "pg_attribute" {
            let Some(inner) = self.inner.table("pg_attribute").await? else {
                return Ok(None);
            };
            return Ok(Some(Arc::new(
                crate::catalog::pg_attribute::TypedPgAttribute {
                    inner,
                    generic: self.inner.clone(),
                    engine: self.engine.clone(),
                },
            )));
        }
        if let Some(t) = crate::catalog::pg_keys::table(name, &self.inner, &self.engine) {
            return Ok(Some(t));
        }
        if let Some(t) = crate::catalog::pg_session::table(name) {
            return Ok(Some(t));
        }
        if crate::catalog::pg_views::TABLES.contains(&name) {
            let Some(engine) = self.engine.upgrade() else {
                return Ok(None);
            };
            let Some(batch) = crate::catalog::pg_views::table_batch(name, &engine) else {
                return Ok(None);
            };
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
            return Ok(Some(Arc::new(table)));
        }
        self.inner.table(name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
            || crate::catalog::pg_views::TABLES.contains(&name)
            || crate::catalog::pg_session::TABLES.contains(&name)
            || crate::catalog::pg_keys::TABLES.contains(&name)
            || self.inner.table_exist(name)
    }
}

impl PgCatalogWithRoles {
    /// The generic `pg_class`, with each relation's real owner in
    /// `relowner` (psql's `\dt` shows it through `pg_get_userbyid`).
    async fn pg_class(&self) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(inner) = self.inner.table("pg_class").await? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(OwnedPgClass {
            inner,
            generic: self.inner.clone(),
            engine: self.engine.clone(),
            oids: self.oids.clone(),
        })))
    }
}

/// `pg_class` whose `relowner` is filled in at scan time (building the
/// generic table reads the catalog, which holds this table too: the
/// patch must not run when only the schema is asked for).
struct OwnedPgClass {
    inner: Arc<dyn TableProvider>,
    /// The generic catalog (for `pg_namespace`).
    generic: Arc<dyn SchemaProvider>,
    engine: Weak<Engine>,
    oids: crate::catalog::pg_views::ViewOids,
}

impl fmt::Debug for OwnedPgClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedPgClass")
    }
}

#[async_trait]
impl TableProvider for OwnedPgClass {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        with_option_columns(&self.inner.schema())
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let plan = self.inner.scan(state, None, &[], None).await?;
        let batches = datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let patched = match self.engine.upgrade() {
            Some(engine) => {
                let spaces =
                    crate::catalog::pg_keys::generic_namespaces(&self.generic, state).await?;
                batches
                    .into_iter()
                    .map(|b| {
                        crate::catalog::pg_keys::with_key_indexes(
                            with_owners(b, &spaces, &engine, &self.oids)?,
                            &spaces,
                            &engine,
                        )
                    })
                    .collect::<DfResult<Vec<_>>>()?
            }
            None => batches,
        };
        let schema = with_option_columns(&self.inner.schema());
        let patched = patched
            .into_iter()
            .map(|b| {
                let mut cols = b.columns().to_vec();
                cols.push(nulls_list(b.num_rows()));
                cols.push(nulls_list(b.num_rows()));
                RecordBatch::try_new(schema.clone(), cols)
            })
            .collect::<Result<Vec<_>, _>>()?;
        MemTable::try_new(schema, vec![patched])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The generic `pg_class` with the text-array columns it lacks and psql
/// reads (`\d+`, `\sv`): `relacl` and `reloptions`, NULL as for a
/// relation without grants recorded there or storage options.
fn with_option_columns(
    inner: &datafusion::arrow::datatypes::SchemaRef,
) -> datafusion::arrow::datatypes::SchemaRef {
    let mut fields: Vec<Field> = inner.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("relacl", text_list(), true));
    fields.push(Field::new("reloptions", text_list(), true));
    Arc::new(Schema::new(fields))
}

/// `relowner` of our relations set to their owner's oid; the catalog's own
/// relations belong to the bootstrap superuser (oid 10), as in Postgres.
/// Views get their `relkind`, and the OIDs are remembered in `oids`.
fn with_owners(
    b: RecordBatch,
    spaces: &crate::catalog::pg_keys::Namespaces,
    engine: &Engine,
    oids: &crate::catalog::pg_views::ViewOids,
) -> DfResult<RecordBatch> {
    let schema = b.schema();
    let Ok(owner_i) = schema.index_of("relowner") else {
        return Ok(b);
    };
    let Some(owners) = b.column(owner_i).as_any().downcast_ref::<Int32Array>() else {
        return Ok(b);
    };
    // (our relations by their catalog names; NULL for the system's)
    let names = StringArray::from(spaces.catalog_names(&b));
    let rels: Vec<Option<Arc<crate::catalog::RelationDef>>> = (0..b.num_rows())
        .map(|i| {
            (!names.is_null(i))
                .then(|| engine.relation(names.value(i)))
                .flatten()
        })
        .collect();
    let access = engine.access();
    let patched: Int32Array = (0..b.num_rows())
        .map(|i| {
            let ours = rels[i]
                .as_ref()
                .and_then(|d| access.roles.get(&d.owner).map(|r| r.oid as i32));
            let given = (!owners.is_null(i))
                .then(|| owners.value(i))
                .filter(|o| *o != 0);
            Some(ours.or(given).unwrap_or(10))
        })
        .collect();
    let mut cols = b.columns().to_vec();
    cols[owner_i] = Arc::new(patched);
    if let Ok(oid_i) = schema.index_of("oid") {
        oids.remember(b.column(oid_i).as_ref(), &names);
    }
    if let Ok(kind_i) = schema.index_of("relkind") {
        if let Some(kinds) = b.column(kind_i).as_any().downcast_ref::<StringArray>() {
            let patched: StringArray = (0..b.num_rows())
                .map(|i| {
                    (!kinds.is_null(i)).then(|| {
                        crate::catalog::pg_views::relkind(rels[i].as_deref(), kinds.value(i))
                    })
                })
                .collect();
            cols[kind_i] = Arc::new(patched);
        }
    }
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// `current_user` and its synonyms: the session's role.
#[derive(Debug, PartialEq, Eq, Hash)]
struct UserName {
    name: &'static str,
    user: String,
    signature: Signature,
}

impl ScalarUDFImpl for UserName {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.user.clone(),
        ))))
    }
}

/// Which privilege check a [`HasPrivilege`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum On {
    Table,
    Schema,
    /// `pg_has_role`: membership (there is none in Freshet: a role is
    /// only itself; superusers have every role).
    Role,
}

/// `has_table_privilege([user,] table, privileges)` and
/// `has_schema_privilege([user,] schema, privileges)`, true to what is
/// enforced.
struct HasPrivilege {
    on: On,
    user: String,
    engine: Weak<Engine>,
    signature: Signature,
}

impl fmt::Debug for HasPrivilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HasPrivilege({:?})", self.on)
    }
}

impl PartialEq for HasPrivilege {
    fn eq(&self, o: &Self) -> bool {
        self.on == o.on && self.user == o.user
    }
}
impl Eq for HasPrivilege {}
impl std::hash::Hash for HasPrivilege {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.on.hash(h);
        self.user.hash(h);
    }
}

fn external(e: impl Into<crate::engine::EngineError>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

/// `'SELECT, insert WITH GRANT OPTION'` → the privileges, and whether the
/// grant option was asked for.
fn privilege_list(text: &str, on: On) -> Result<Vec<(Option<Privilege>, bool)>, AuthError> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let item = item.trim().to_ascii_uppercase();
        let (name, grant_option) = match item.strip_suffix("WITH GRANT OPTION") {
            Some(n) => (n.trim().to_string(), true),
            None => (item.clone(), false),
        };
        let p = match (on, name.as_str()) {
            (On::Table, "SELECT" | "INSERT" | "UPDATE" | "DELETE") => Privilege::parse(&name),
            // valid in Postgres; only owners have them here
            (On::Table, "TRUNCATE" | "REFERENCES" | "TRIGGER") => None,
            (On::Schema, "CREATE") => Some(Privilege::Create),
            (On::Schema, "USAGE") => Some(Privilege::Select),
            (On::Role, "USAGE" | "MEMBER" | "SET") => Some(Privilege::Select),
            _ => {
                return Err(AuthError::InvalidParameter(format!(
                    "unrecognized privilege type: \"{}\"",
                    item.trim().to_ascii_lowercase()
                )))
            }
        };
        out.push((p, grant_option));
    }
    Ok(out)
}

/// `'public.x'`, `'"X"'`, `'x'` → `x`; `None` for a catalog table.
fn relation_name(text: &str) -> (Option<String>, String) {
    let parts: Vec<String> = text
        .split('.')
        .map(|p| {
            let p = p.trim();
            match p.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
                Some(q) => q.replace("\"\"", "\""),
                None => p.to_ascii_lowercase(),
            }
        })
        .collect();
    match parts.as_slice() {
        [s, n] => (Some(s.clone()), n.clone()),
        [.., s, n] => (Some(s.clone()), n.clone()),
        [n] => (None, n.clone()),
        [] => (None, String::new()),
    }
}

impl HasPrivilege {
    fn check(&self, engine: &Engine, user: &str, object: &str, privs: &str) -> DfResult<bool> {
        let access = engine.access();
        let role = if user == PUBLIC {
            None
        } else {
            Some(
                access
                    .roles
                    .get(user)
                    .ok_or_else(|| external(AuthError::UndefinedRole(user.to_string())))?,
            )
        };
        let superuser = role.is_some_and(|r| r.superuser);
        let wanted = privilege_list(privs, self.on).map_err(external)?;
        match self.on {
            On::Table => {
                let (schema, name) = relation_name(object);
                let rel = match schema.as_deref() {
                    None => engine.relation(&name),
                    Some(s) if crate::sql::names::SYSTEM_SCHEMAS.contains(&s) => None,
                    Some(s) => engine.relation(&crate::sql::names::qualified(s, &name)),
                };
                let Some(rel) = rel else {
                    let catalog = matches!(
                        schema.as_deref(),
                        Some("pg_catalog" | "information_schema" | "freshet_catalog")
                    ) || (schema.is_none() && TABLES.contains(&name.as_str()));
                    if catalog {
                        // catalog tables: everyone reads them, nobody writes
                        return Ok(wanted.iter().any(|(p, g)| {
                            *p == Some(Privilege::Select)
                                && !g
                                && (superuser || !SUPERUSER_TABLES.contains(&name.as_str()))
                        }) || superuser);
                    }
                    return Err(external(crate::catalog::CatalogError::NotFound(
                        object.to_string(),
                    )));
                };
                let owner = superuser || role.is_some_and(|r| r.name == rel.owner);
                Ok(wanted.iter().any(|(p, grant_option)| match p {
                    _ if owner => true,
                    _ if *grant_option => false,
                    Some(p) => rel.acl.has(user, *p),
                    None => false,
                }))
            }
            On::Role => {
                let (_, name) = relation_name(object);
                // (a role by name, or by OID)
                let target = name
                    .parse::<u32>()
                    .ok()
                    .and_then(|oid| access.roles.iter().find(|r| r.oid == oid))
                    .or_else(|| access.roles.get(&name))
                    .map(|r| r.name.clone());
                let Some(target) = target else {
                    // PostgreSQL's predefined roles (pg_read_all_stats, …):
                    // nobody is a member here
                    if name.starts_with("pg_") {
                        return Ok(superuser);
                    }
                    return Err(external(AuthError::UndefinedRole(name)));
                };
                Ok(wanted
                    .iter()
                    .any(|(_, grant_option)| superuser || (target == user && !grant_option)))
            }
            On::Schema => {
                let (_, name) = relation_name(object);
                let known = matches!(
                    name.as_str(),
                    "public" | "pg_catalog" | "information_schema" | "freshet_catalog"
                );
                // (a schema of CREATE SCHEMA: its owner's and its grantees')
                let def = engine.schemas().into_iter().find(|s| s.name == name);
                if !known && def.is_none() {
                    return Err(external(AuthError::UndefinedSchema(name)));
                }
                Ok(wanted.iter().any(|(p, grant_option)| match p {
                    _ if superuser => true,
                    _ if *grant_option => false,
                    _ if def.is_some() => def.as_ref().is_some_and(|d| {
                        let asked = match p {
                            Some(Privilege::Create) => Privilege::Create,
                            _ => Privilege::Usage,
                        };
                        d.owner == user || d.acl.has(user, asked)
                    }),
                    Some(Privilege::Create) => {
                        name == "public" && access.schema_acl.has(user, Privilege::Create)
                    }
                    // USAGE: every schema, everyone
                    _ => true,
                }))
            }
        }
    }
}

fn strings(v: &ColumnarValue, n: usize) -> DfResult<Vec<Option<String>>> {
    let a = v.to_array(n)?;
    let a = datafusion::arrow::compute::cast(&a, &DataType::Utf8)?;
    let s = a
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| DataFusionError::Internal("expected text".into()))?;
    Ok((0..n)
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect())
}

impl ScalarUDFImpl for HasPrivilege {
    fn name(&self) -> &str {
        match self.on {
            On::Table => "has_table_privilege",
            On::Schema => "has_schema_privilege",
            On::Role => "pg_has_role",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let Some(engine) = self.engine.upgrade() else {
            return Err(DataFusionError::Execution("shutting down".into()));
        };
        let cols: Vec<Vec<Option<String>>> = args
            .args
            .iter()
            .map(|a| strings(a, n))
            .collect::<DfResult<_>>()?;
        let mut out = BooleanBuilder::with_capacity(n);
        for i in 0..n {
            let (user, object, privs) = match cols.as_slice() {
                [o, p] => (Some(self.user.clone()), o[i].clone(), p[i].clone()),
                [u, o, p] => (u[i].clone(), o[i].clone(), p[i].clone()),
                _ => return Err(DataFusionError::Internal("wrong argument count".into())),
            };
            match (user, object, privs) {
                (Some(u), Some(o), Some(p)) => out.append_value(self.check(&engine, &u, &o, &p)?),
                _ => out.append_null(),
            }
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(out.finish()))
    }
}

/// `pg_get_userbyid(oid)`: the role's name (`unknown (OID=n)` as in
/// Postgres for an oid no role has).
struct UserById {
    engine: Weak<Engine>,
    signature: Signature,
}

impl fmt::Debug for UserById {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserById")
    }
}
impl PartialEq for UserById {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for UserById {}
impl std::hash::Hash for UserById {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        "pg_get_userbyid".hash(h);
    }
}

impl ScalarUDFImpl for UserById {
    fn name(&self) -> &str {
        "pg_get_userbyid"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let access = self.engine.upgrade().map(|e| e.access());
        let a = args.args[0].to_array(n)?;
        let a = datafusion::arrow::compute::cast(&a, &DataType::Int64)?;
        let ids = a
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .ok_or_else(|| DataFusionError::Internal("expected an oid".into()))?;
        let mut out = StringBuilder::new();
        for i in 0..n {
            if ids.is_null(i) {
                out.append_null();
                continue;
            }
            let oid = ids.value(i);
            // relations made before roles existed list owner 0: the
            // bootstrap role
            let name = access.as_ref().and_then(|a| {
                a.roles
                    .iter()
                    .find(|r| i64::from(r.oid) == oid || (oid == 0 && r.oid == 10))
                    .map(|r| r.name.clone())
            });
            out.append_value(name.unwrap_or_else(|| format!("unknown (OID={oid})")));
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(out.finish()))
    }
}

/// The functions that answer for one session's role.
pub fn session_functions(user: &str, session_user: &str, engine: Weak<Engine>) -> Vec<ScalarUDF> {
    let mut out: Vec<ScalarUDF> = ["current_user", "session_user", "current_role", "user"]
        .into_iter()
        .map(|name| {
            ScalarUDF::new_from_impl(UserName {
                name,
                user: if name == "session_user" {
                    session_user
                } else {
                    user
                }
                .to_string(),
                signature: Signature::exact(vec![], Volatility::Stable),
            })
        })
        .collect();
    let two_or_three = || {
        Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Utf8, DataType::Utf8]),
            ],
            Volatility::Stable,
        )
    };
    for on in [On::Table, On::Schema, On::Role] {
        out.push(ScalarUDF::new_from_impl(HasPrivilege {
            on,
            user: user.to_string(),
            engine: engine.clone(),
            signature: two_or_three(),
        }));
    }
    out.push(ScalarUDF::new_from_impl(UserById {
        engine,
        signature: Signature::uniform(
            1,
            vec![DataType::Int32, DataType::Int64, DataType::UInt32],
            Volatility::Stable,
        ),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_privilege_lists() {
        assert_eq!(
            relation_name("public.\"My T\""),
            (Some("public".into()), "My T".into())
        );
        assert_eq!(relation_name("T"), (None, "t".into()));
        let l = privilege_list("select, INSERT with grant option", On::Table).unwrap();
        assert_eq!(
            l,
            vec![
                (Some(Privilege::Select), false),
                (Some(Privilege::Insert), true)
            ]
        );
        assert!(privilege_list("frob", On::Table).is_err());
        assert!(privilege_list("create", On::Table).is_err());
    }

    #[test]
    fn role_tables_mask_passwords_outside_pg_authid() {
        let mut a = Access::default();
        let mut r = RoleDef::bootstrap();
        r.password = Some("SCRAM-SHA-256$4096:AA==$AA==:AA==".into());
        std::sync::Arc::make_mut(&mut a.roles).put(r);
        let roles = table_batch("pg_roles", &a).unwrap();
        let authid = table_batch("pg_authid", &a).unwrap();
        let col = |b: &RecordBatch, n: &str| {
            datafusion::arrow::util::display::array_value_to_string(
                b.column(b.schema().index_of(n).unwrap()),
                0,
            )
            .unwrap()
        };
        assert_eq!(col(&roles, "rolpassword"), MASKED);
        assert!(col(&authid, "rolpassword").starts_with("SCRAM-SHA-256$"));
        assert_eq!(col(&roles, "oid"), "10");
        assert_eq!(table_batch("pg_auth_members", &a).unwrap().num_rows(), 0);
    }
}
