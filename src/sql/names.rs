//! Relation names, schemas and the search path.
//!
//! A relation's catalog name carries its schema: bare in `public` (the
//! schema every data directory has, and the only one before `CREATE
//! SCHEMA`), `schema.name` in any other. Neither a schema's nor a
//! relation's name may hold a `.`, so the split is unambiguous.
//!
//! Unqualified names are resolved while a statement is parsed, against the
//! session's search path: a reference names the relation of the first
//! schema on the path that holds one (`public` when none does, so the
//! error names what was asked for); a new relation goes into the first
//! schema of the path that exists. The parser learns the path and the
//! catalog through a [`NameScope`] set for the duration of one parse; the
//! statements it returns hold resolved names only, so a view's stored query
//! keeps naming what it named when it was created.

use std::cell::RefCell;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Ident, ObjectName, ObjectNamePart, Query, VisitMut, VisitorMut,
};

use super::parser::normalize_ident;
use super::SqlError;

/// The schema every data directory has.
pub const PUBLIC: &str = "public";

/// Schemas that are the system's: never created, dropped or written.
pub const SYSTEM_SCHEMAS: [&str; 4] = [
    "pg_catalog",
    "information_schema",
    "freshet_catalog",
    "__offsets",
];

/// The catalog name of relation `name` in `schema`.
pub fn qualified(schema: &str, name: &str) -> String {
    if schema == PUBLIC {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// The schema and the relation name of a catalog name.
pub fn split(name: &str) -> (&str, &str) {
    match name.split_once('.') {
        Some((schema, rel)) => (schema, rel),
        None => (PUBLIC, name),
    }
}

/// Fails unless `name` may name a new schema: `pg_…` and the system's are
/// reserved (42939), a `.` would make catalog names ambiguous (0A000).
pub fn check_schema_name(name: &str) -> Result<(), SqlError> {
    if name.starts_with("pg_") || SYSTEM_SCHEMAS.contains(&name) || name == PUBLIC {
        return Err(SqlError::ReservedName(format!(
            "unacceptable schema name \"{name}\""
        )));
    }
    check_no_dot(name, "schema")
}

/// Fails if a relation's or schema's name holds a `.`.
pub fn check_no_dot(name: &str, what: &str) -> Result<(), SqlError> {
    if name.contains('.') {
        return Err(SqlError::Unsupported(format!(
            "a {what} name containing \".\" (\"{name}\")"
        )));
    }
    Ok(())
}

/// What a parse resolves unqualified names against.
#[derive(Clone)]
pub struct NameScope {
    /// The schemas of the session's search path that exist, in order
    /// (`$user` already replaced by the role's schema, if there is one).
    pub path: Vec<String>,
    /// Whether a relation of this catalog name exists.
    pub exists: std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// The session's database: the one a three-part name may name.
    pub database: String,
}

thread_local! {
    static SCOPE: RefCell<Option<NameScope>> = const { RefCell::new(None) };
}

/// Runs `f` (a parse) with `scope` as the one unqualified names resolve
/// against.
pub fn with_scope<T>(scope: &NameScope, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<NameScope>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let old = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = old);
        }
    }
    let old = SCOPE.with(|s| s.borrow_mut().replace(scope.clone()));
    let _reset = Reset(old);
    f()
}

/// The path and an existence test of the current scope (`None` outside a
/// scope: everything is in `public`).
fn lookup<T>(f: impl FnOnce(&[String], &dyn Fn(&str) -> bool) -> T) -> Option<T> {
    let scope = SCOPE.with(|s| s.borrow().clone())?;
    Some(f(&scope.path, scope.exists.as_ref()))
}

/// The catalog name an unqualified reference to `name` means.
pub fn resolve(name: &str) -> String {
    lookup(|path, exists| {
        path.iter()
            .map(|s| qualified(s, name))
            .find(|q| exists(q))
            .unwrap_or_else(|| name.to_string())
    })
    .unwrap_or_else(|| name.to_string())
}

/// The catalog name a new relation called `name` (unqualified) gets: in
/// the first schema of the path; 3F000 if the path names none that exists.
pub fn create_in(name: &str) -> Result<String, SqlError> {
    check_no_dot(name, "relation")?;
    match lookup(|path, _| path.first().cloned()) {
        None => Ok(name.to_string()),
        Some(Some(schema)) => Ok(qualified(&schema, name)),
        Some(None) => Err(SqlError::NoSchema(
            "no schema has been selected to create in".into(),
        )),
    }
}

/// Whether `name` is the database of the current scope (outside a scope:
/// the default database).
fn is_current_database(name: &str) -> bool {
    SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .map(|scope| scope.database == name)
            .unwrap_or(name == crate::database::DEFAULT)
    })
}

/// The parts of an object name, normalized.
fn parts(name: &ObjectName) -> Result<Vec<String>, SqlError> {
    name.0
        .iter()
        .map(|p| match p.as_ident() {
            Some(id) => Ok(normalize_ident(id)),
            None => Err(SqlError::Syntax(format!("invalid name {name}"))),
        })
        .collect()
}

/// The catalog name of a (possibly qualified) relation name: `db.schema.name`
/// only in this database.
fn catalog_name(name: &ObjectName, new: bool) -> Result<String, SqlError> {
    let parts = parts(name)?;
    match parts.as_slice() {
        [n] if new => create_in(n),
        [n] => Ok(resolve(n)),
        [s, n] => {
            if new {
                check_no_dot(n, "relation")?;
            }
            Ok(qualified(s, n))
        }
        [c, s, n] if is_current_database(c) => Ok(qualified(s, n)),
        [_, ..] if parts.len() == 3 => Err(SqlError::Unsupported(format!(
            "cross-database references are not implemented: \"{name}\""
        ))),
        _ => Err(SqlError::Syntax(format!(
            "improper qualified name (too many dotted names): {name}"
        ))),
    }
}

/// The catalog name of a reference to an existing relation.
pub fn existing(name: &ObjectName) -> Result<String, SqlError> {
    catalog_name(name, false)
}

/// The catalog name of a relation being created.
pub fn new_relation(name: &ObjectName) -> Result<String, SqlError> {
    catalog_name(name, true)
}

/// The catalog name a planned scan's table reference stands for, if it is
/// one of the database's relations (not a system table): `t` and
/// `public.t` are `t`, `s.t` is `s.t`, the hidden `__offsets` schema holds
/// catalog names as they are.
pub fn of_reference(r: &datafusion::common::TableReference) -> Option<String> {
    match r.schema() {
        None | Some(PUBLIC) | Some("__offsets") => Some(r.table().to_string()),
        Some(s) if SYSTEM_SCHEMAS.contains(&s) => None,
        Some(s) => Some(qualified(s, r.table())),
    }
}

/// An object name for a catalog name, as DataFusion resolves it.
pub fn object_name_of(catalog: &str) -> ObjectName {
    let (schema, name) = split(catalog);
    if schema == PUBLIC {
        ObjectName::from(vec![Ident::with_quote('"', name)])
    } else {
        ObjectName::from(vec![
            Ident::with_quote('"', schema),
            Ident::with_quote('"', name),
        ])
    }
}

/// Resolves every unqualified relation a statement's syntax tree reads or
/// writes against the scope (names of its `WITH` queries excepted): one
/// that the path finds outside `public` becomes `schema.name`. A
/// three-part name loses its database part when that is the session's
/// database; another database's is refused (0A000), as in PostgreSQL.
pub fn qualify<V: VisitMut>(tree: &mut V) -> Result<(), SqlError> {
    struct Ctes(std::collections::HashSet<String>);
    impl VisitorMut for Ctes {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if let Some(w) = &q.with {
                for cte in &w.cte_tables {
                    self.0.insert(normalize_ident(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let only_public = lookup(|path, _| path.iter().all(|s| s == PUBLIC)).unwrap_or(true);
    let mut ctes = Ctes(Default::default());
    if !only_public {
        let _ = tree.visit(&mut ctes);
    }
    struct Q {
        ctes: std::collections::HashSet<String>,
        only_public: bool,
    }
    impl Q {
        fn fix(&self, name: &mut ObjectName) -> Result<(), SqlError> {
            if let [ObjectNamePart::Identifier(c), ObjectNamePart::Identifier(s), ObjectNamePart::Identifier(t)] =
                name.0.as_slice()
            {
                let db = normalize_ident(c);
                if !is_current_database(&db) {
                    return Err(SqlError::Unsupported(format!(
                        "cross-database references are not implemented: \"{name}\""
                    )));
                }
                *name = ObjectName::from(vec![s.clone(), t.clone()]);
                return Ok(());
            }
            let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
                return Ok(());
            };
            if self.only_public {
                return Ok(());
            }
            let n = normalize_ident(id);
            if self.ctes.contains(&n) {
                return Ok(());
            }
            let resolved = resolve(&n);
            if resolved != n {
                *name = object_name_of(&resolved);
            }
            Ok(())
        }
    }
    impl VisitorMut for Q {
        type Break = SqlError;
        fn pre_visit_relation(&mut self, name: &mut ObjectName) -> ControlFlow<SqlError> {
            match self.fix(name) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => ControlFlow::Break(e),
            }
        }
        fn pre_visit_statement(&mut self, s: &mut ast::Statement) -> ControlFlow<SqlError> {
            if let ast::Statement::Copy {
                source: ast::CopySource::Table { table_name, .. },
                ..
            } = s
            {
                if let Err(e) = self.fix(table_name) {
                    return ControlFlow::Break(e);
                }
            }
            ControlFlow::Continue(())
        }
    }
    match tree.visit(&mut Q {
        ctes: ctes.0,
        only_public,
    }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_qualify() {
        assert_eq!(split("t"), (PUBLIC, "t"));
        assert_eq!(split("s.t"), ("s", "t"));
        assert_eq!(qualified(PUBLIC, "t"), "t");
        assert_eq!(qualified("s", "t"), "s.t");
        assert!(check_schema_name("pg_x").is_err());
        assert!(check_schema_name("a.b").is_err());
        assert!(check_schema_name("sales").is_ok());
    }

    #[test]
    fn the_path_decides() {
        let exists = std::sync::Arc::new(|n: &str| ["s.t", "u", "s.v", "v"].contains(&n));
        let scope = NameScope {
            path: vec!["s".into(), PUBLIC.into()],
            exists: exists.clone(),
            database: "shop".into(),
        };
        with_scope(&scope, || {
            assert_eq!(resolve("t"), "s.t");
            assert_eq!(resolve("u"), "u");
            assert_eq!(resolve("v"), "s.v");
            assert_eq!(resolve("nothing"), "nothing");
            assert_eq!(create_in("n").unwrap(), "s.n");
            assert_eq!(
                existing(&ObjectName::from(vec![
                    datafusion::sql::sqlparser::ast::Ident::new("shop"),
                    datafusion::sql::sqlparser::ast::Ident::new("s"),
                    datafusion::sql::sqlparser::ast::Ident::new("t"),
                ]))
                .unwrap(),
                "s.t"
            );
            assert!(existing(&ObjectName::from(vec![
                datafusion::sql::sqlparser::ast::Ident::new("freshet"),
                datafusion::sql::sqlparser::ast::Ident::new("s"),
                datafusion::sql::sqlparser::ast::Ident::new("t"),
            ]))
            .is_err());
        });
        // outside a scope: public
        assert_eq!(resolve("t"), "t");
        assert_eq!(create_in("n").unwrap(), "n");
        let none = NameScope {
            path: vec![],
            exists,
            database: "shop".into(),
        };
        with_scope(&none, || assert!(create_in("n").is_err()));
    }
}
