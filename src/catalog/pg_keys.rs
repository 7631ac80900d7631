//! Primary keys and indexes as clients read them: a `pg_index` row per
//! index (a primary key's, named `<table>_pkey` as PostgreSQL names it,
//! and those of `CREATE INDEX`), a `pg_constraint` row per primary key,
//! each index in `pg_class` (`relkind 'i'`), `relhasindex` on the
//! relation, and `pg_get_indexdef` / `pg_get_constraintdef` for them
//! (psql's `\d` and `\di`, SQLAlchemy's `get_pk_constraint`,
//! `get_indexes` and `Table(autoload_with=)`, JDBC's `getPrimaryKeys` and
//! `getIndexInfo`).
//!
//! A relation's OID is the one the generic `pg_catalog` gives it in
//! `pg_class`, read when these tables are scanned. Indexes and
//! constraints have OIDs derived from the relation's id (and an index's
//! slot), far above the range the generic catalog hands out
//! ([`index_oid`], [`constraint_oid`], [`index_rows`]), so the functions
//! find the relation again from the OID alone.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int16Array, Int16Builder, Int32Array, Int32Builder, ListBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session as CatalogSession, TableProvider};
use datafusion::datasource::{MemTable, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_pg_catalog::pg_catalog::oid_field::{kind, oid_field};

use super::{RelationDef, RelationKind};
use crate::engine::Engine;
use crate::sql::format::quote_ident;

/// The tables this module serves in place of the generic catalog's.
pub const TABLES: [&str; 3] = ["pg_index", "pg_constraint", "pg_indexes"];

/// Where the derived OIDs start: above any OID the generic catalog gives.
const BASE: i64 = 1_000_000_000;

/// `pg_am` OID of btree.
const BTREE: i32 = 403;

/// Where the OIDs of `CREATE INDEX` indexes start: relation `id`'s index
/// in slot `s` has `SECONDARY + 32·id + s`.
const SECONDARY: i64 = 1_500_000_000;

/// The OID of the index of a table's primary key.
pub fn index_oid(rel: &RelationDef) -> i32 {
    (BASE + 2 * rel.id as i64) as i32
}

/// One index of a relation as the catalog shows it.
#[derive(Debug, Clone)]
pub struct IndexRow {
    pub oid: i32,
    pub name: String,
    pub columns: Vec<usize>,
    pub primary: bool,
}

/// A relation's indexes: its primary key's, then those of `CREATE INDEX`.
pub fn index_rows(rel: &RelationDef) -> Vec<IndexRow> {
    let mut out = Vec::new();
    if has_key(rel) {
        out.push(IndexRow {
            oid: index_oid(rel),
            name: key_name(rel),
            columns: rel.primary_key.clone(),
            primary: true,
        });
    }
    out.extend(rel.indexes.iter().map(|ix| IndexRow {
        oid: (SECONDARY + 32 * rel.id as i64 + ix.slot as i64) as i32,
        name: ix.name.clone(),
        columns: ix.columns.clone(),
        primary: false,
    }));
    out
}

/// The OID of a table's primary-key constraint.
pub fn constraint_oid(rel: &RelationDef) -> i32 {
    (BASE + 2 * rel.id as i64 + 1) as i32
}

/// The index, or (`true`) the primary-key constraint, with this OID, and
/// its relation.
fn index_by_oid(engine: &Engine, oid: i64) -> Option<(Arc<RelationDef>, IndexRow, bool)> {
    if oid >= SECONDARY {
        let rel = engine.relation_by_id(((oid - SECONDARY) / 32) as u64)?;
        let row = index_rows(&rel).into_iter().find(|r| r.oid as i64 == oid)?;
        return Some((rel, row, false));
    }
    let n = oid.checked_sub(BASE).filter(|n| *n >= 0)?;
    let rel = engine.relation_by_id((n / 2) as u64)?;
    let row = index_rows(&rel).into_iter().find(|r| r.primary)?;
    Some((rel, row, n % 2 == 1))
}

fn has_key(rel: &RelationDef) -> bool {
    rel.kind == RelationKind::Table && !rel.primary_key.is_empty()
}

fn has_indexes(rel: &RelationDef) -> bool {
    has_key(rel) || !rel.indexes.is_empty()
}

/// The name PostgreSQL gives a table's primary key (and its index).
pub fn key_name(rel: &RelationDef) -> String {
    format!("{}_pkey", crate::sql::names::split(&rel.name).1)
}

fn column_name(rel: &RelationDef, i: usize) -> String {
    rel.schema()
        .fields()
        .get(i)
        .map(|f| quote_ident(f.name()))
        .unwrap_or_default()
}

fn index_columns(rel: &RelationDef, ix: &IndexRow) -> String {
    ix.columns
        .iter()
        .map(|&i| column_name(rel, i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `pg_get_indexdef` of an index.
fn index_def(rel: &RelationDef, ix: &IndexRow) -> String {
    format!(
        "CREATE {}INDEX {} ON {}.{} USING btree ({})",
        if ix.primary { "UNIQUE " } else { "" },
        quote_ident(&ix.name),
        quote_ident(crate::sql::names::split(&rel.name).0),
        quote_ident(crate::sql::names::split(&rel.name).1),
        index_columns(rel, ix)
    )
}

/// The generic `pg_class`'s rows, read to learn the OIDs it gives our
/// relations (this module and `pg_attribute` find their rows so).
pub(crate) async fn generic_pg_class(
    generic: &Arc<dyn SchemaProvider>,
    state: &dyn CatalogSession,
) -> DfResult<Vec<RecordBatch>> {
    match generic.table("pg_class").await? {
        Some(class) => {
            let plan = class.scan(state, None, &[], None).await?;
            datafusion::physical_plan::collect(plan, state.task_ctx()).await
        }
        None => Ok(vec![]),
    }
}

/// A one-batch table scanned with the caller's projection, filters and
/// limit (the catalog tables built at scan time).
pub(crate) async fn scan_batch(
    batch: RecordBatch,
    state: &dyn CatalogSession,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    MemTable::try_new(batch.schema(), vec![vec![batch]])?
        .scan(state, projection, filters, limit)
        .await
}

/// The generic catalog's namespaces: OID to name (to tell which schema a
/// `pg_class` row is in).
pub(crate) async fn generic_namespaces(
    generic: &Arc<dyn SchemaProvider>,
    state: &dyn CatalogSession,
) -> DfResult<Namespaces> {
    let mut out = HashMap::new();
    let Some(table) = generic.table("pg_namespace").await? else {
        return Ok(Namespaces(out));
    };
    let plan = table.scan(state, None, &[], None).await?;
    for b in datafusion::physical_plan::collect(plan, state.task_ctx()).await? {
        let col = |n: &str| b.schema().index_of(n).ok().map(|i| b.column(i).clone());
        let (Some(oids), Some(names)) = (col("oid"), col("nspname")) else {
            continue;
        };
        let (Some(oids), Some(names)) = (
            oids.as_any().downcast_ref::<Int32Array>(),
            names.as_any().downcast_ref::<StringArray>(),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if !oids.is_null(i) && !names.is_null(i) {
                out.insert(oids.value(i), names.value(i).to_string());
            }
        }
    }
    Ok(Namespaces(out))
}

/// Namespace OIDs to names, as the generic catalog numbers them.
#[derive(Debug, Default, Clone)]
pub struct Namespaces(HashMap<i32, String>);

impl Namespaces {
    /// The catalog name of each row of a `pg_class` batch that may be one
    /// of our relations (`None` for the system schemas' rows).
    pub fn catalog_names(&self, b: &RecordBatch) -> Vec<Option<String>> {
        let col = |n: &str| b.schema().index_of(n).ok().map(|i| b.column(i).clone());
        let (Some(names), Some(spaces)) = (col("relname"), col("relnamespace")) else {
            return vec![None; b.num_rows()];
        };
        let (Some(names), Some(spaces)) = (
            names.as_any().downcast_ref::<StringArray>(),
            spaces.as_any().downcast_ref::<Int32Array>(),
        ) else {
            return vec![None; b.num_rows()];
        };
        (0..b.num_rows())
            .map(|i| {
                if names.is_null(i) || spaces.is_null(i) || spaces.value(i) == 11 {
                    return None;
                }
                let schema = self
                    .0
                    .get(&spaces.value(i))
                    .map_or(crate::sql::names::PUBLIC, String::as_str);
                if crate::sql::names::SYSTEM_SCHEMAS.contains(&schema) {
                    return None;
                }
                Some(crate::sql::names::qualified(schema, names.value(i)))
            })
            .collect()
    }
}

/// Our relations, each with its OID and namespace's as `pg_class` batches
/// give them.
pub(crate) fn our_relations(
    batches: &[RecordBatch],
    spaces: &Namespaces,
    engine: &Engine,
) -> Vec<(Arc<RelationDef>, i32, i32)> {
    let mut out = Vec::new();
    for b in batches {
        let col = |n: &str| b.schema().index_of(n).ok().map(|i| b.column(i).clone());
        let (Some(oids), Some(ns)) = (col("oid"), col("relnamespace")) else {
            continue;
        };
        let (Some(oids), Some(ns)) = (
            oids.as_any().downcast_ref::<Int32Array>(),
            ns.as_any().downcast_ref::<Int32Array>(),
        ) else {
            continue;
        };
        for (i, name) in spaces.catalog_names(b).into_iter().enumerate() {
            if oids.is_null(i) {
                continue;
            }
            if let Some(rel) = name.and_then(|n| engine.relation(&n)) {
                out.push((rel, oids.value(i), ns.value(i)));
            }
        }
    }
    out
}

/// Our indexed relations' OIDs and namespace, by relation id.
fn table_oids(
    batches: &[RecordBatch],
    spaces: &Namespaces,
    engine: &Engine,
) -> HashMap<u64, (i32, i32)> {
    our_relations(batches, spaces, engine)
        .into_iter()
        .filter(|(r, _, _)| has_indexes(r))
        .map(|(r, oid, ns)| (r.id, (oid, ns)))
        .collect()
}

fn int2_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int16, true)))
}

fn oid_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
}

/// A list column: one list per row, `None` for NULL.
fn int2_lists(rows: &[Option<Vec<i16>>]) -> ArrayRef {
    let mut b = ListBuilder::new(Int16Builder::new());
    for r in rows {
        match r {
            Some(v) => {
                for x in v {
                    b.values().append_value(*x);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

fn oid_lists(rows: &[Option<Vec<i32>>]) -> ArrayRef {
    let mut b = ListBuilder::new(Int32Builder::new());
    for r in rows {
        match r {
            Some(v) => {
                for x in v {
                    b.values().append_value(*x);
                }
                b.append(true);
            }
            None => b.append(false),
        }
    }
    Arc::new(b.finish())
}

fn schema_of(table: &str) -> SchemaRef {
    let b = |n: &str| Field::new(n, DataType::Boolean, false);
    let t = |n: &str| Field::new(n, DataType::Utf8, true);
    let fields = if table == "pg_indexes" {
        vec![
            t("schemaname"),
            t("tablename"),
            t("indexname"),
            t("tablespace"),
            t("indexdef"),
        ]
    } else if table == "pg_index" {
        vec![
            oid_field("indexrelid", kind::OID, false),
            oid_field("indrelid", kind::OID, false),
            Field::new("indnatts", DataType::Int16, false),
            Field::new("indnkeyatts", DataType::Int16, false),
            b("indisunique"),
            b("indnullsnotdistinct"),
            b("indisprimary"),
            b("indisexclusion"),
            b("indimmediate"),
            b("indisclustered"),
            b("indisvalid"),
            b("indcheckxmin"),
            b("indisready"),
            b("indislive"),
            b("indisreplident"),
            Field::new("indkey", int2_list(), false),
            Field::new("indcollation", oid_list(), false),
            Field::new("indclass", oid_list(), false),
            Field::new("indoption", int2_list(), false),
            t("indexprs"),
            t("indpred"),
        ]
    } else {
        vec![
            oid_field("oid", kind::OID, false),
            Field::new("conname", DataType::Utf8, false),
            oid_field("connamespace", kind::OID, false),
            Field::new("contype", DataType::Utf8, false),
            b("condeferrable"),
            b("condeferred"),
            b("convalidated"),
            oid_field("conrelid", kind::OID, false),
            oid_field("contypid", kind::OID, false),
            oid_field("conindid", kind::OID, false),
            oid_field("conparentid", kind::OID, false),
            oid_field("confrelid", kind::OID, false),
            Field::new("confupdtype", DataType::Utf8, false),
            Field::new("confdeltype", DataType::Utf8, false),
            Field::new("confmatchtype", DataType::Utf8, false),
            b("conislocal"),
            Field::new("coninhcount", DataType::Int16, false),
            b("connoinherit"),
            Field::new("conkey", int2_list(), true),
            Field::new("confkey", int2_list(), true),
            Field::new("conpfeqop", oid_list(), true),
            Field::new("conppeqop", oid_list(), true),
            Field::new("conffeqop", oid_list(), true),
            Field::new("confdelsetcols", int2_list(), true),
            Field::new("conexclop", oid_list(), true),
            t("conbin"),
        ]
    };
    Arc::new(Schema::new(fields))
}

/// An index, its relation, the relation's OID and its namespace's.
type Entry = (Arc<RelationDef>, IndexRow, i32, i32);

/// The rows of `pg_index` (every index) or `pg_constraint` (primary keys).
fn table_batch(table: &str, entries: &[Entry]) -> DfResult<RecordBatch> {
    let entries: Vec<&Entry> = entries
        .iter()
        .filter(|e| table != "pg_constraint" || e.1.primary)
        .collect();
    let n = entries.len();
    let schema = schema_of(table);
    let keys: Vec<Option<Vec<i16>>> = entries
        .iter()
        .map(|(_, ix, _, _)| Some(ix.columns.iter().map(|&i| i as i16 + 1).collect()))
        .collect();
    let bools = |v: bool| -> ArrayRef { Arc::new(BooleanArray::from(vec![v; n])) };
    let flags = |f: &dyn Fn(&IndexRow) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from_iter(
            entries.iter().map(|(_, ix, _, _)| Some(f(ix))),
        ))
    };
    let oids = |f: &dyn Fn(&Entry) -> i32| -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(entries.iter().map(|e| f(e))))
    };
    let chars = |c: &str| -> ArrayRef { Arc::new(StringArray::from(vec![c; n])) };
    let columns: Vec<ArrayRef> = if table == "pg_indexes" {
        vec![
            Arc::new(StringArray::from_iter_values(
                entries
                    .iter()
                    .map(|(r, _, _, _)| crate::sql::names::split(&r.name).0),
            )),
            Arc::new(StringArray::from_iter_values(
                entries
                    .iter()
                    .map(|(r, _, _, _)| crate::sql::names::split(&r.name).1),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|(_, ix, _, _)| ix.name.clone()),
            )),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|(r, ix, _, _)| index_def(r, ix)),
            )),
        ]
    } else if table == "pg_index" {
        let natts: ArrayRef = Arc::new(Int16Array::from_iter_values(
            entries.iter().map(|(_, ix, _, _)| ix.columns.len() as i16),
        ));
        let zeros = |v: i32| -> Vec<Option<Vec<i32>>> {
            entries
                .iter()
                .map(|(_, ix, _, _)| Some(vec![v; ix.columns.len()]))
                .collect()
        };
        vec![
            oids(&|(_, ix, _, _)| ix.oid),
            oids(&|(_, _, t, _)| *t),
            natts.clone(),
            natts,
            flags(&|ix| ix.primary),
            bools(false),
            flags(&|ix| ix.primary),
            bools(false),
            bools(true),
            bools(false),
            bools(true),
            bools(false),
            bools(true),
            bools(true),
            bools(false),
            int2_lists(&keys),
            oid_lists(&zeros(0)),
            oid_lists(&zeros(0)),
            int2_lists(
                &entries
                    .iter()
                    .map(|(_, ix, _, _)| Some(vec![0; ix.columns.len()]))
                    .collect::<Vec<_>>(),
            ),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
        ]
    } else {
        let none_i2: Vec<Option<Vec<i16>>> = vec![None; n];
        let none_oid: Vec<Option<Vec<i32>>> = vec![None; n];
        vec![
            oids(&|(r, _, _, _)| constraint_oid(r)),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|(_, ix, _, _)| ix.name.clone()),
            )),
            oids(&|(_, _, _, ns)| *ns),
            chars("p"),
            bools(false),
            bools(false),
            bools(true),
            oids(&|(_, _, t, _)| *t),
            oids(&|_| 0),
            oids(&|(_, ix, _, _)| ix.oid),
            oids(&|_| 0),
            oids(&|_| 0),
            chars(" "),
            chars(" "),
            chars(" "),
            bools(true),
            Arc::new(Int16Array::from(vec![0i16; n])),
            bools(true),
            int2_lists(&keys),
            int2_lists(&none_i2),
            oid_lists(&none_oid),
            oid_lists(&none_oid),
            oid_lists(&none_oid),
            int2_lists(&none_i2),
            oid_lists(&none_oid),
            Arc::new(StringArray::from(vec![None::<&str>; n])),
        ]
    };
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `pg_index` or `pg_constraint`, built when scanned.
pub struct KeysTable {
    pub table: &'static str,
    /// The generic `pg_catalog` (for `pg_class`'s OIDs).
    pub generic: Arc<dyn SchemaProvider>,
    pub engine: Weak<Engine>,
}

impl fmt::Debug for KeysTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeysTable({})", self.table)
    }
}

/// The table named `name` if this module serves it.
pub fn table(
    name: &str,
    generic: &Arc<dyn SchemaProvider>,
    engine: &Weak<Engine>,
) -> Option<Arc<dyn TableProvider>> {
    let table = TABLES.iter().find(|t| **t == name)?;
    Some(Arc::new(KeysTable {
        table,
        generic: generic.clone(),
        engine: engine.clone(),
    }))
}

#[async_trait]
impl TableProvider for KeysTable {
    fn schema(&self) -> SchemaRef {
        schema_of(self.table)
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
        let mut entries: Vec<Entry> = Vec::new();
        if let Some(engine) = self.engine.upgrade() {
            if engine.relations().iter().any(|r| has_indexes(r)) {
                let classes = generic_pg_class(&self.generic, state).await?;
                let spaces = generic_namespaces(&self.generic, state).await?;
                let mut rels: Vec<_> = our_relations(&classes, &spaces, &engine)
                    .into_iter()
                    .filter(|(r, _, _)| has_indexes(r))
                    .collect();
                rels.sort_by_key(|(r, _, _)| r.id);
                for (r, oid, ns) in rels {
                    for ix in index_rows(&r) {
                        entries.push((r.clone(), ix, oid, ns));
                    }
                }
            }
        }
        scan_batch(
            table_batch(self.table, &entries)?,
            state,
            projection,
            filters,
            limit,
        )
        .await
    }
}

/// `pg_class` with a row for each primary key's index after the rows of
/// `batch` (a `pg_class` batch), and `relhasindex` set on keyed tables.
pub fn with_key_indexes(
    batch: RecordBatch,
    spaces: &Namespaces,
    engine: &Engine,
) -> DfResult<RecordBatch> {
    let schema = batch.schema();
    let oids = table_oids(std::slice::from_ref(&batch), spaces, engine);
    if oids.is_empty() {
        return Ok(batch);
    }
    // the table rows, each copied for its index then changed
    let mut rows = Vec::new();
    let mut rels = Vec::new();
    for (i, name) in spaces.catalog_names(&batch).into_iter().enumerate() {
        if let Some(rel) = name.and_then(|n| engine.relation(&n)) {
            if oids.contains_key(&rel.id) {
                for ix in index_rows(&rel) {
                    rows.push(i as u32);
                    rels.push(ix);
                }
            }
        }
    }
    let take = datafusion::arrow::array::UInt32Array::from(rows.clone());
    let mut extra: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| datafusion::arrow::compute::take(c, &take, None))
        .collect::<Result<_, _>>()?;
    let mut table_cols = batch.columns().to_vec();
    for (i, f) in schema.fields().iter().enumerate() {
        let n = rels.len();
        let set: Option<ArrayRef> = match (f.name().as_str(), f.data_type()) {
            ("oid", DataType::Int32) => Some(Arc::new(Int32Array::from_iter_values(
                rels.iter().map(|ix| ix.oid),
            ))),
            ("relname", DataType::Utf8) => Some(Arc::new(StringArray::from_iter_values(
                rels.iter().map(|ix| ix.name.clone()),
            ))),
            ("relkind", DataType::Utf8) => Some(Arc::new(StringArray::from(vec!["i"; n]))),
            ("relam", DataType::Int32) => Some(Arc::new(Int32Array::from(vec![BTREE; n]))),
            ("reltype", DataType::Int32) => Some(Arc::new(Int32Array::from(vec![0; n]))),
            ("relnatts", DataType::Int16) => Some(Arc::new(Int16Array::from_iter_values(
                rels.iter().map(|ix| ix.columns.len() as i16),
            ))),
            ("relhasindex", DataType::Boolean) => {
                // the table has one; the index has none
                let mut has = vec![None; batch.num_rows()];
                for &r in &rows {
                    has[r as usize] = Some(true);
                }
                let old = table_cols[i].as_any().downcast_ref::<BooleanArray>();
                if let Some(old) = old {
                    let patched: BooleanArray = (0..batch.num_rows())
                        .map(|k| has[k].or((!old.is_null(k)).then(|| old.value(k))))
                        .collect();
                    table_cols[i] = Arc::new(patched);
                }
                Some(Arc::new(BooleanArray::from(vec![false; n])))
            }
            _ => None,
        };
        if let Some(a) = set {
            extra[i] = a;
        }
    }
    let table = RecordBatch::try_new(schema.clone(), table_cols)?;
    let extra = RecordBatch::try_new(schema.clone(), extra)?;
    Ok(datafusion::arrow::compute::concat_batches(
        &schema,
        &[table, extra],
    )?)
}

/// `pg_get_indexdef(oid [, column, pretty])` and
/// `pg_get_constraintdef(oid [, pretty])` for primary keys; NULL for other
/// OIDs.
#[derive(Debug)]
struct KeyDef {
    signature: Signature,
    constraint: bool,
    engine: Weak<Engine>,
}

impl PartialEq for KeyDef {
    fn eq(&self, o: &Self) -> bool {
        self.constraint == o.constraint
    }
}
impl Eq for KeyDef {}
impl std::hash::Hash for KeyDef {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.constraint.hash(h)
    }
}

impl ScalarUDFImpl for KeyDef {
    fn name(&self) -> &str {
        if self.constraint {
            "pg_get_constraintdef"
        } else {
            "pg_get_indexdef"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| DataFusionError::Internal("the server is shutting down".into()))?;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = arrays.first().map_or(0, |a| a.len());
        let out: StringArray = (0..rows)
            .map(|i| {
                let oid = super::pg_views::int_at(arrays[0].as_ref(), i)?;
                let (rel, ix, is_constraint) = index_by_oid(&engine, oid)?;
                if is_constraint != self.constraint {
                    return None;
                }
                if self.constraint {
                    return Some(format!("PRIMARY KEY ({})", index_columns(&rel, &ix)));
                }
                // a column number: that key column's name
                let column = match arrays.get(1) {
                    Some(a) if matches!(a.data_type(), DataType::Boolean) => 0,
                    Some(a) => super::pg_views::int_at(a.as_ref(), i).unwrap_or(0),
                    None => 0,
                };
                if column == 0 {
                    return Some(index_def(&rel, &ix));
                }
                let k = usize::try_from(column - 1).ok()?;
                let c = *ix.columns.get(k)?;
                Some(column_name(&rel, c))
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// The functions of this module.
pub fn functions(engine: Weak<Engine>) -> Vec<ScalarUDF> {
    [false, true]
        .into_iter()
        .map(|constraint| {
            ScalarUDF::new_from_impl(KeyDef {
                signature: Signature::variadic_any(Volatility::Stable),
                constraint,
                engine: engine.clone(),
            })
        })
        .collect()
}
