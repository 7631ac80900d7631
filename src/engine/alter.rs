//! `ALTER TABLE`: columns added, dropped or renamed, `SET` / `DROP NOT
//! NULL`, the table renamed.
//!
//! A table's log holds its rows in the shape they were written, so a new
//! shape is a new relation: the committer copies the table's live rows into
//! the new shape under a new id, stores the new definition, the rows and the
//! removal of the old definition in one atomic batch, and drops the old log
//! afterwards (as `DROP TABLE` does). The work is proportional to the
//! table's live rows, like PostgreSQL's table rewrites; rows get new
//! `_offset`s. Views read relations by id and keep their query's text, so
//! a table that views read cannot be altered (2BP01) until they are
//! dropped.

use std::sync::Arc;

use super::commit::Op;
use super::{Engine, EngineError, Result};
use crate::catalog::{ColumnDef, RelationDef, RelationKind, OFFSET_COLUMN};
use crate::ingest::coerce::CellErrorKind;
use crate::sql::parser::{AlterAction, AlterTable};
use crate::sql::SqlError;
use crate::types::SqlType;

/// The table's new shape: its columns, each with the old column it takes
/// its values from (`None`: a new column, NULL in every row).
pub struct NewShape {
    pub def: RelationDef,
    pub sources: Vec<Option<usize>>,
}

/// Applies `actions` to `old`, checking each as PostgreSQL does.
pub fn reshape(old: &RelationDef, actions: &[AlterAction]) -> Result<NewShape> {
    let mut def = old.clone();
    let mut sources: Vec<Option<usize>> = (0..old.columns.len()).map(Some).collect();
    // key columns by name while columns move
    let mut key: Vec<String> = old
        .primary_key
        .iter()
        .map(|&i| old.columns[i].name.clone())
        .collect();
    // indexes' columns by name too (an index goes with any of its
    // columns, as in PostgreSQL)
    let mut indexes: Vec<(crate::catalog::IndexDef, Vec<String>)> = old
        .indexes
        .iter()
        .map(|ix| {
            let cols = ix
                .columns
                .iter()
                .map(|&i| old.columns[i].name.clone())
                .collect();
            (ix.clone(), cols)
        })
        .collect();
    let missing = |name: &str, def: &RelationDef| {
        EngineError::UndefinedColumn(format!(
            "column \"{name}\" of relation \"{}\" does not exist",
            def.name
        ))
    };
    for action in actions {
        match action {
            AlterAction::AddColumn {
                column,
                if_not_exists,
            } => {
                if def.column_index(&column.name).is_some() || column.name == OFFSET_COLUMN {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::DuplicateColumn(format!(
                        "column \"{}\" of relation \"{}\" already exists",
                        column.name, def.name
                    ))
                    .into());
                }
                let ty = SqlType::from_ast(&column.data_type).map_err(|e| {
                    SqlError::Unsupported(format!("{e} (column \"{}\")", column.name))
                })?;
                def.columns.push(ColumnDef {
                    name: column.name.clone(),
                    ty,
                    nullable: !column.not_null,
                });
                sources.push(None);
            }
            AlterAction::DropColumn { name, if_exists } => {
                let Some(i) = def.column_index(name) else {
                    if *if_exists {
                        continue;
                    }
                    return Err(missing(name, &def));
                };
                if def.columns.len() == 1 {
                    // (PostgreSQL allows a table without columns; we do not)
                    return Err(EngineError::InvalidTableDefinition(format!(
                        "cannot drop column \"{name}\": \"{}\" must keep at least one column",
                        def.name
                    )));
                }
                // the key goes with any of its columns, as in PostgreSQL
                if key.contains(name) {
                    key.clear();
                }
                indexes.retain(|(_, cols)| !cols.contains(name));
                def.columns.remove(i);
                sources.remove(i);
                def.comments.remove(name);
            }
            AlterAction::RenameColumn { from, to } => {
                let Some(i) = def.column_index(from) else {
                    return Err(missing(from, &def));
                };
                if def.column_index(to).is_some() || to == OFFSET_COLUMN {
                    return Err(SqlError::DuplicateColumn(format!(
                        "column \"{to}\" of relation \"{}\" already exists",
                        def.name
                    ))
                    .into());
                }
                def.columns[i].name = to.clone();
                for k in key
                    .iter_mut()
                    .chain(indexes.iter_mut().flat_map(|(_, cols)| cols.iter_mut()))
                    .filter(|k| *k == from)
                {
                    *k = to.clone();
                }
                if let Some(c) = def.comments.remove(from) {
                    def.comments.insert(to.clone(), c);
                }
            }
            // (the new name is in the table's schema)
            AlterAction::RenameTo(name) => {
                def.name = crate::sql::names::qualified(crate::sql::names::split(&def.name).0, name)
            }
            AlterAction::AddPrimaryKey(columns) => {
                if !key.is_empty() {
                    return Err(EngineError::InvalidTableDefinition(format!(
                        "multiple primary keys for table \"{}\" are not allowed",
                        def.name
                    )));
                }
                for c in columns {
                    let Some(i) = def.column_index(c) else {
                        return Err(missing(c, &def));
                    };
                    if key.contains(c) {
                        return Err(SqlError::DuplicateColumn(format!(
                            "column \"{c}\" appears twice in primary key constraint"
                        ))
                        .into());
                    }
                    // key columns are NOT NULL (rows holding NULL fail)
                    def.columns[i].nullable = false;
                    key.push(c.clone());
                }
            }
            AlterAction::NotNull { column, not_null } => {
                let Some(i) = def.column_index(column) else {
                    return Err(missing(column, &def));
                };
                if !*not_null && key.contains(column) {
                    return Err(EngineError::InvalidTableDefinition(format!(
                        "column \"{column}\" is in a primary key"
                    )));
                }
                def.columns[i].nullable = !*not_null;
            }
        }
    }
    def.primary_key = key
        .iter()
        .map(|k| def.column_index(k).ok_or_else(|| missing(k, &def)))
        .collect::<Result<_>>()?;
    def.indexes = indexes
        .into_iter()
        .map(|(mut ix, cols)| {
            ix.columns = cols
                .iter()
                .map(|c| def.column_index(c).ok_or_else(|| missing(c, &def)))
                .collect::<Result<_>>()?;
            Ok(ix)
        })
        .collect::<Result<_>>()?;
    def.sql = create_sql(&def);
    Ok(NewShape { def, sources })
}

/// A `CREATE TABLE` for the new shape (the definition's statement text).
fn create_sql(def: &RelationDef) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut items: Vec<String> = def
        .columns
        .iter()
        .map(|c| {
            let null = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {}{null}", quote(&c.name), c.ty)
        })
        .collect();
    if !def.primary_key.is_empty() {
        let key: Vec<String> = def
            .primary_key
            .iter()
            .map(|&i| quote(&def.columns[i].name))
            .collect();
        items.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!("CREATE TABLE {} ({})", quote(&def.name), items.join(", "))
}

/// The error for a column that gains NOT NULL while rows hold NULL in it.
pub fn contains_nulls(def: &RelationDef, column: usize) -> EngineError {
    EngineError::Value {
        kind: CellErrorKind::NotNull,
        message: format!(
            "column \"{}\" of relation \"{}\" contains null values",
            def.columns[column].name, def.name
        ),
    }
}

impl Engine {
    /// Runs an `ALTER TABLE`; only the owner may.
    pub async fn alter_table(self: &Arc<Self>, a: &AlterTable, actor: &str) -> Result<()> {
        // a rename alone copies nothing
        if let [AlterAction::RenameTo(new_name)] = a.actions.as_slice() {
            return self
                .rename_relation(
                    &super::rename::Rename {
                        kind: RelationKind::Table,
                        name: a.name.clone(),
                        new_name: new_name.clone(),
                        if_exists: a.if_exists,
                    },
                    actor,
                )
                .await;
        }
        let _ddl = self.ddl_lock.lock().await;
        let Some(old) = self.relation(&a.name) else {
            if a.if_exists {
                return Ok(());
            }
            return Err(crate::catalog::CatalogError::NotFound(a.name.clone()).into());
        };
        match old.kind {
            RelationKind::Table if old.source.is_some() => {
                return Err(EngineError::Unsupported(format!(
                    "ALTER TABLE of table \"{}\", which a connector feeds: its columns are the messages' shape; create a new table",
                    old.name
                )))
            }
            RelationKind::Table => {}
            RelationKind::Source => {
                return Err(EngineError::Unsupported(format!(
                    "ALTER TABLE of source \"{}\": a source's history keeps the shape it was written in",
                    old.name
                )))
            }
            RelationKind::View | RelationKind::PlainView => {
                return Err(EngineError::WrongObjectType(format!(
                    "\"{}\" is not a table",
                    old.name
                )))
            }
        }
        crate::auth::check_owner(&self.access().roles, actor, &old)?;
        let dependents = self.catalog.read().dependents(old.id);
        if !dependents.is_empty() {
            let names: Vec<String> = dependents
                .iter()
                .map(|v| format!("{} {}", v.kind.as_str(), v.name))
                .collect();
            return Err(EngineError::DependentObjects(format!(
                "cannot alter table {} because other objects depend on it: {} (drop them first, and create them again after)",
                old.name,
                names.join(", ")
            )));
        }
        let mut shape = reshape(&old, &a.actions)?;
        if shape.def.name != old.name && self.relation(&shape.def.name).is_some() {
            return Err(crate::catalog::CatalogError::AlreadyExists(shape.def.name.clone()).into());
        }
        let id = self.catalog.read().next_id();
        shape.def.id = id;
        // no write to the table meanwhile
        let lock = self.table_lock(old.id);
        let _guard = lock.lock().await;
        self.commit(Op::AlterTable {
            old: old.id,
            def: Box::new(shape.def.clone()),
            sources: shape.sources,
        })
        .await?;
        let mut cat = self.catalog.write();
        cat.allocate_id();
        cat.remove(&old.name);
        cat.insert(shape.def)?;
        Ok(())
    }
}
