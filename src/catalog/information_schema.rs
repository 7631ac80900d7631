//! `information_schema` as PostgreSQL defines it (BI tools and ORMs read
//! its `tables` and `columns`): `schemata`, `tables`, `columns`, `views`,
//! `table_constraints` and `key_column_usage`, over the relations of the
//! `public` schema. As in PostgreSQL, materialized views are not listed
//! (they are in `pg_class` and `pg_matviews`), columns are numbered from
//! 1 and typed with SQL's names (`integer`, `character varying`, …).
//!
//! Each table is built when it is scanned, from the catalog of that moment.

use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use pgwire::api::Type;

use super::{RelationDef, RelationKind};
use crate::engine::Engine;
use crate::types::SqlType;

pub const SCHEMA: &str = "information_schema";

/// A column of one of these tables: text, or an integer.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
}

use Kind::{Int, Text};

const SCHEMATA: &[(&str, Kind)] = &[
    ("catalog_name", Text),
    ("schema_name", Text),
    ("schema_owner", Text),
    ("default_character_set_catalog", Text),
    ("default_character_set_schema", Text),
    ("default_character_set_name", Text),
    ("sql_path", Text),
];

const TABLES: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("table_type", Text),
    ("self_referencing_column_name", Text),
    ("reference_generation", Text),
    ("user_defined_type_catalog", Text),
    ("user_defined_type_schema", Text),
    ("user_defined_type_name", Text),
    ("is_insertable_into", Text),
    ("is_typed", Text),
    ("commit_action", Text),
];

const COLUMNS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int),
    ("column_default", Text),
    ("is_nullable", Text),
    ("data_type", Text),
    ("character_maximum_length", Int),
    ("character_octet_length", Int),
    ("numeric_precision", Int),
    ("numeric_precision_radix", Int),
    ("numeric_scale", Int),
    ("datetime_precision", Int),
    ("interval_type", Text),
    ("interval_precision", Int),
    ("character_set_catalog", Text),
    ("character_set_schema", Text),
    ("character_set_name", Text),
    ("collation_catalog", Text),
    ("collation_schema", Text),
    ("collation_name", Text),
    ("domain_catalog", Text),
    ("domain_schema", Text),
    ("domain_name", Text),
    ("udt_catalog", Text),
    ("udt_schema", Text),
    ("udt_name", Text),
    ("scope_catalog", Text),
    ("scope_schema", Text),
    ("scope_name", Text),
    ("maximum_cardinality", Int),
    ("dtd_identifier", Text),
    ("is_self_referencing", Text),
    ("is_identity", Text),
    ("identity_generation", Text),
    ("identity_start", Text),
    ("identity_increment", Text),
    ("identity_maximum", Text),
    ("identity_minimum", Text),
    ("identity_cycle", Text),
    ("is_generated", Text),
    ("generation_expression", Text),
    ("is_updatable", Text),
];

const VIEWS: &[(&str, Kind)] = &[
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("view_definition", Text),
    ("check_option", Text),
    ("is_updatable", Text),
    ("is_insertable_into", Text),
    ("is_trigger_updatable", Text),
    ("is_trigger_deletable", Text),
    ("is_trigger_insertable_into", Text),
];

const TABLE_CONSTRAINTS: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("constraint_type", Text),
    ("is_deferrable", Text),
    ("initially_deferred", Text),
    ("enforced", Text),
    ("nulls_distinct", Text),
];

const KEY_COLUMN_USAGE: &[(&str, Kind)] = &[
    ("constraint_catalog", Text),
    ("constraint_schema", Text),
    ("constraint_name", Text),
    ("table_catalog", Text),
    ("table_schema", Text),
    ("table_name", Text),
    ("column_name", Text),
    ("ordinal_position", Int),
    ("position_in_unique_constraint", Int),
];

/// The tables and their columns.
const ALL: &[(&str, &[(&str, Kind)])] = &[
    ("schemata", SCHEMATA),
    ("tables", TABLES),
    ("columns", COLUMNS),
    ("views", VIEWS),
    ("table_constraints", TABLE_CONSTRAINTS),
    ("key_column_usage", KEY_COLUMN_USAGE),
];

fn schema_of(columns: &[(&str, Kind)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, k)| match k {
                Text => Field::new(*n, DataType::Utf8, true),
                Int => Field::new(*n, DataType::Int32, true),
            })
            .collect::<Vec<_>>(),
    ))
}

/// One row: a value per column, as text (integers parsed back).
type Row = Vec<Option<String>>;

fn batch(columns: &[(&str, Kind)], rows: &[Row]) -> DfResult<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, k))| -> ArrayRef {
            match k {
                Text => Arc::new(StringArray::from(
                    rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
                )),
                Int => Arc::new(Int32Array::from(
                    rows.iter()
                        .map(|r| r[i].as_deref().and_then(|v| v.parse().ok()))
                        .collect::<Vec<_>>(),
                )),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema_of(columns), arrays)?)
}

/// A row from named values; the columns not named are NULL.
fn row(columns: &[(&str, Kind)], values: &[(&str, Option<String>)]) -> Row {
    columns
        .iter()
        .map(|(n, _)| {
            values
                .iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| v.clone())
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn n(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// The relations `information_schema` lists: tables, sources (as base
/// tables) and plain views, in name order.
fn listed(engine: &Engine) -> Vec<Arc<RelationDef>> {
    let mut rels: Vec<_> = engine
        .relations()
        .into_iter()
        .filter(|r| r.kind != RelationKind::View)
        .collect();
    rels.sort_by(|a, b| a.name.cmp(&b.name));
    rels
}

/// What `columns` says about a type: SQL's name, the `udt_name`, and the
/// numeric, character and datetime facets.
struct TypeFacts {
    data_type: String,
    udt_name: String,
    char_max: Option<u32>,
    precision: Option<(u32, u32, Option<i32>)>,
    datetime_precision: Option<u32>,
}

fn type_facts(declared: Option<&SqlType>, field: &Field) -> TypeFacts {
    let ty = crate::types::pg_type_of(field).unwrap_or(Type::TEXT);
    let udt_name = ty.name().to_string();
    let data_type = match udt_name.as_str() {
        "bool" => "boolean",
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        u if u.starts_with('_') => "ARRAY",
        u @ ("numeric" | "text" | "bytea" | "date" | "interval" | "json" | "jsonb" | "name"
        | "oid" | "char" | "uuid") => u,
        _ => "USER-DEFINED",
    }
    .to_string();
    let precision = match field.data_type() {
        DataType::Int16 => Some((16, 2, Some(0))),
        DataType::Int32 => Some((32, 2, Some(0))),
        DataType::Int64 => Some((64, 2, Some(0))),
        DataType::Float32 => Some((24, 2, None)),
        DataType::Float64 => Some((53, 2, None)),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            Some((u32::from(*p), 10, Some(i32::from(*s))))
        }
        _ => None,
    };
    let datetime_precision = match data_type.as_str() {
        "date" => Some(0),
        "timestamp without time zone"
        | "timestamp with time zone"
        | "time without time zone"
        | "interval" => Some(6),
        _ => None,
    };
    let char_max = match declared {
        Some(SqlType::Varchar { max_len }) => *max_len,
        _ => None,
    };
    TypeFacts {
        data_type,
        udt_name,
        char_max,
        precision,
        datetime_precision,
    }
}

/// A relation's schema, as the catalog shows it.
fn schema_name_of(r: &RelationDef) -> &str {
    crate::sql::names::split(&r.name).0
}

/// A relation's name within its schema.
fn name_of(r: &RelationDef) -> &str {
    crate::sql::names::split(&r.name).1
}

fn table_rows(name: &str, engine: &Engine) -> Vec<Row> {
    let rels = listed(engine);
    let db = engine.database_name();
    match name {
        "schemata" => ["information_schema", "pg_catalog", "public"]
            .iter()
            .map(|sch| (sch.to_string(), crate::auth::BOOTSTRAP_ROLE.to_string()))
            .chain(engine.schemas().into_iter().map(|d| (d.name, d.owner)))
            .map(|(sch, owner)| {
                row(
                    SCHEMATA,
                    &[
                        ("catalog_name", s(&db)),
                        ("schema_name", s(&sch)),
                        ("schema_owner", s(&owner)),
                    ],
                )
            })
            .collect(),
        "tables" => rels
            .iter()
            .map(|r| {
                let view = r.kind == RelationKind::PlainView;
                row(
                    TABLES,
                    &[
                        ("table_catalog", s(&db)),
                        ("table_schema", s(schema_name_of(r))),
                        ("table_name", s(name_of(r))),
                        ("table_type", s(if view { "VIEW" } else { "BASE TABLE" })),
                        ("is_insertable_into", s(if view { "NO" } else { "YES" })),
                        ("is_typed", s("NO")),
                    ],
                )
            })
            .collect(),
        "columns" => {
            let mut out = Vec::new();
            for r in &rels {
                let view = r.kind == RelationKind::PlainView;
                let fields = r.schema();
                for (i, f) in fields.fields().iter().enumerate() {
                    let declared = (!view).then(|| r.columns.get(i).map(|c| &c.ty)).flatten();
                    let t = type_facts(declared, f);
                    let (precision, radix, scale) = match t.precision {
                        Some((p, r, s)) => (n(p), n(r), s.map(|s| s.to_string())),
                        None => (None, None, None),
                    };
                    out.push(row(
                        COLUMNS,
                        &[
                            ("table_catalog", s(&db)),
                            ("table_schema", s(schema_name_of(r))),
                            ("table_name", s(name_of(r))),
                            ("column_name", s(f.name())),
                            ("ordinal_position", n(i + 1)),
                            // (a view's columns are nullable, as PostgreSQL says)
                            (
                                "is_nullable",
                                s(if f.is_nullable() || view { "YES" } else { "NO" }),
                            ),
                            ("data_type", Some(t.data_type.clone())),
                            (
                                "character_maximum_length",
                                t.char_max.map(|m| m.to_string()),
                            ),
                            (
                                "character_octet_length",
                                match t.data_type.as_str() {
                                    "text" | "character varying" | "character" => {
                                        n(t.char_max.map_or(1_073_741_824, |m| m * 4))
                                    }
                                    _ => None,
                                },
                            ),
                            ("numeric_precision", precision),
                            ("numeric_precision_radix", radix),
                            ("numeric_scale", scale),
                            (
                                "datetime_precision",
                                t.datetime_precision.map(|p| p.to_string()),
                            ),
                            ("udt_catalog", s(&db)),
                            ("udt_schema", s("pg_catalog")),
                            ("udt_name", Some(t.udt_name.clone())),
                            ("dtd_identifier", n(i + 1)),
                            ("is_self_referencing", s("NO")),
                            ("is_identity", s("NO")),
                            ("identity_cycle", s("NO")),
                            ("is_generated", s("NEVER")),
                            ("is_updatable", s(if view { "NO" } else { "YES" })),
                        ],
                    ));
                }
            }
            out
        }
        "views" => rels
            .iter()
            .filter(|r| r.kind == RelationKind::PlainView)
            .map(|r| {
                row(
                    VIEWS,
                    &[
                        ("table_catalog", s(&db)),
                        ("table_schema", s(schema_name_of(r))),
                        ("table_name", s(name_of(r))),
                        ("view_definition", super::pg_views::definition(r)),
                        ("check_option", s("NONE")),
                        ("is_updatable", s("NO")),
                        ("is_insertable_into", s("NO")),
                        ("is_trigger_updatable", s("NO")),
                        ("is_trigger_deletable", s("NO")),
                        ("is_trigger_insertable_into", s("NO")),
                    ],
                )
            })
            .collect(),
        "table_constraints" => rels
            .iter()
            .filter(|r| r.kind == RelationKind::Table && !r.primary_key.is_empty())
            .map(|r| {
                row(
                    TABLE_CONSTRAINTS,
                    &[
                        ("constraint_catalog", s(&db)),
                        ("constraint_schema", s(schema_name_of(r))),
                        ("constraint_name", Some(super::pg_keys::key_name(r))),
                        ("table_catalog", s(&db)),
                        ("table_schema", s(schema_name_of(r))),
                        ("table_name", s(name_of(r))),
                        ("constraint_type", s("PRIMARY KEY")),
                        ("is_deferrable", s("NO")),
                        ("initially_deferred", s("NO")),
                        ("enforced", s("YES")),
                    ],
                )
            })
            .collect(),
        "key_column_usage" => rels
            .iter()
            .filter(|r| r.kind == RelationKind::Table)
            .flat_map(|r| {
                let db = &db;
                r.primary_key.iter().enumerate().map(move |(k, &c)| {
                    row(
                        KEY_COLUMN_USAGE,
                        &[
                            ("constraint_catalog", s(db)),
                            ("constraint_schema", s(schema_name_of(r))),
                            ("constraint_name", Some(super::pg_keys::key_name(r))),
                            ("table_catalog", s(db)),
                            ("table_schema", s(schema_name_of(r))),
                            ("table_name", s(name_of(r))),
                            ("column_name", s(&r.columns[c].name)),
                            ("ordinal_position", n(k + 1)),
                        ],
                    )
                })
            })
            .collect(),
        _ => vec![],
    }
}

/// The `information_schema` schema.
pub struct InformationSchema {
    pub engine: Weak<Engine>,
}

impl fmt::Debug for InformationSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InformationSchema")
    }
}

#[async_trait]
impl SchemaProvider for InformationSchema {
    fn table_names(&self) -> Vec<String> {
        ALL.iter().map(|(n, _)| n.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, columns)| -> Arc<dyn TableProvider> {
                Arc::new(InfoTable {
                    name: n,
                    columns,
                    engine: self.engine.clone(),
                })
            }))
    }

    fn table_exist(&self, name: &str) -> bool {
        ALL.iter().any(|(n, _)| *n == name)
    }
}

struct InfoTable {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    engine: Weak<Engine>,
}

impl fmt::Debug for InfoTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "information_schema.{}", self.name)
    }
}

#[async_trait]
impl TableProvider for InfoTable {
    fn schema(&self) -> SchemaRef {
        schema_of(self.columns)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn CatalogSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let rows = match self.engine.upgrade() {
            Some(engine) => table_rows(self.name, &engine),
            None => vec![],
        };
        super::pg_keys::scan_batch(
            batch(self.columns, &rows)?,
            state,
            projection,
            filters,
            limit,
        )
        .await
    }
}
