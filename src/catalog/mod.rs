//! Sources, tables (and later views): ids, names, schemas, definitions.
//!
//! The catalog is plain data. The engine persists each definition through
//! the store the moment the DDL succeeds, and rebuilds this structure from the
//! store at start-up.

pub mod information_schema;
pub mod pg_attribute;
pub mod pg_functions;
pub mod pg_keys;
pub mod pg_session;
pub mod pg_sizes;
pub mod pg_views;
pub mod show_create;

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::types::SqlType;

/// Name of the hidden column that carries each row's log offset.
pub const OFFSET_COLUMN: &str = "_offset";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// Append-only event stream.
    Source,
    /// Mutable relation: INSERT, UPDATE, DELETE; optional primary key.
    Table,
    /// Materialized view: a query kept up to date incrementally.
    View,
    /// A view that is not materialized: its query is planned into every
    /// statement that reads it.
    PlainView,
}

impl RelationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            RelationKind::Source => "source",
            RelationKind::Table => "table",
            RelationKind::View => "materialized view",
            RelationKind::PlainView => "view",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDef {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkDef {
    pub column: String,
    /// The SQL expression as written, e.g. `date_time - INTERVAL '4 seconds'`.
    pub expr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationDef {
    pub id: u64,
    pub name: String,
    pub kind: RelationKind,
    pub columns: Vec<ColumnDef>,
    /// Indices into `columns`.
    #[serde(default)]
    pub primary_key: Vec<usize>,
    #[serde(default)]
    pub watermark: Option<WatermarkDef>,
    /// `WITH (key = value, ...)` options, kept for connectors.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// The statement as the user wrote it (for `SHOW CREATE` and docs).
    #[serde(default)]
    pub sql: String,
    /// For views: the query (re-planned at start-up).
    #[serde(default)]
    pub query: Option<String>,
    /// For views: the relations the view reads.
    #[serde(default)]
    pub depends_on: Vec<u64>,
    /// For views: the output schema, known once the query is planned.
    #[serde(skip)]
    pub view_schema: Option<SchemaRef>,
    /// For plain views: the planned (not yet analyzed) query, planned
    /// again at start-up and when a view it reads is replaced.
    #[serde(skip)]
    pub plan: Option<Arc<datafusion::logical_expr::LogicalPlan>>,
    /// The role that created it (or was given it).
    #[serde(default = "bootstrap_owner")]
    pub owner: String,
    /// Privileges granted to other roles.
    #[serde(default)]
    pub acl: crate::auth::Acl,
    /// `COMMENT ON`: the relation's (key `""`) and its columns' (by name).
    #[serde(default)]
    pub comments: BTreeMap<String, String>,
    /// `CREATE INDEX`: secondary indexes (the primary key's is implied).
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    /// For sources and tables fed by a connector: which, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::connectors::spec::SourceSpec>,
}

/// A secondary index on a table, source or materialized view: an ordered
/// map from the values of `columns` to the rows holding them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    pub name: String,
    /// Indices into the relation's columns, in key order.
    pub columns: Vec<usize>,
    /// Small number, unique within the relation, from which the index's
    /// OID is derived (see `pg_keys::index_oid`).
    pub slot: u32,
}

fn bootstrap_owner() -> String {
    crate::auth::BOOTSTRAP_ROLE.to_string()
}

impl RelationDef {
    /// The user-visible schema (no hidden columns).
    pub fn schema(&self) -> SchemaRef {
        if let Some(s) = &self.view_schema {
            return s.clone();
        }
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.ty.field(&c.name, c.nullable))
                .collect::<Vec<Field>>(),
        ))
    }

    /// The schema with the `_offset` column appended.
    pub fn schema_with_offset(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// Sources and tables: relations that are written directly and logged.
    pub fn is_base(&self) -> bool {
        matches!(self.kind, RelationKind::Source | RelationKind::Table)
    }

    /// Every index the relation's rows are kept in: the primary key's
    /// (unique) first, then those of `CREATE INDEX`.
    pub fn index_specs(&self) -> Vec<crate::index::IndexSpec> {
        let mut out = Vec::with_capacity(self.indexes.len() + 1);
        if !self.primary_key.is_empty() {
            out.push(crate::index::IndexSpec {
                name: pg_keys::key_name(self),
                columns: self.primary_key.clone(),
                unique: true,
            });
        }
        out.extend(self.indexes.iter().map(|i| crate::index::IndexSpec {
            name: i.name.clone(),
            columns: i.columns.clone(),
            unique: false,
        }));
        out
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain owned data to a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<RelationDef, CatalogError> {
        serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("relation \"{0}\" already exists")]
    AlreadyExists(String),
    #[error("relation \"{0}\" does not exist")]
    NotFound(String),
    #[error("index \"{0}\" does not exist")]
    IndexNotFound(String),
    #[error("schema \"{0}\" already exists")]
    SchemaExists(String),
    #[error("\"{name}\" is a {actual}, not a {expected}")]
    WrongKind {
        name: String,
        actual: &'static str,
        expected: &'static str,
    },
    #[error("corrupt catalog record: {0}")]
    Corrupt(String),
}

/// The in-memory catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_name: BTreeMap<String, Arc<RelationDef>>,
    next_id: u64,
    /// The schemas other than `public`.
    schemas: BTreeMap<String, crate::schema::SchemaDef>,
}

impl Catalog {
    pub fn new(next_id: u64) -> Catalog {
        Catalog {
            by_name: BTreeMap::new(),
            next_id,
            schemas: BTreeMap::new(),
        }
    }

    pub fn schema(&self, name: &str) -> Option<&crate::schema::SchemaDef> {
        self.schemas.get(name)
    }

    pub fn schemas(&self) -> impl Iterator<Item = &crate::schema::SchemaDef> {
        self.schemas.values()
    }

    pub fn set_schemas(&mut self, schemas: BTreeMap<String, crate::schema::SchemaDef>) {
        self.schemas = schemas;
    }

    pub fn get(&self, name: &str) -> Option<&Arc<RelationDef>> {
        self.by_name.get(name)
    }

    pub fn by_id(&self, id: u64) -> Option<&Arc<RelationDef>> {
        self.by_name.values().find(|r| r.id == id)
    }

    pub fn relations(&self) -> impl Iterator<Item = &Arc<RelationDef>> {
        self.by_name.values()
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Reserves the next relation id.
    pub fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn insert(&mut self, def: RelationDef) -> Result<Arc<RelationDef>, CatalogError> {
        if self.by_name.contains_key(&def.name) {
            return Err(CatalogError::AlreadyExists(def.name));
        }
        if def.id >= self.next_id {
            self.next_id = def.id + 1;
        }
        let def = Arc::new(def);
        self.by_name.insert(def.name.clone(), def.clone());
        Ok(def)
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<RelationDef>> {
        self.by_name.remove(name)
    }

    /// Views that read `id`, directly or through other views, dependents
    /// after what they depend on.
    pub fn dependents(&self, id: u64) -> Vec<Arc<RelationDef>> {
        let mut out: Vec<Arc<RelationDef>> = Vec::new();
        let mut frontier = vec![id];
        while let Some(x) = frontier.pop() {
            for r in self.by_name.values() {
                if r.depends_on.contains(&x) && !out.iter().any(|o| o.id == r.id) {
                    out.push(r.clone());
                    frontier.push(r.id);
                }
            }
        }
        out.sort_by_key(|r| r.id);
        out
    }
}
