//! DataFusion integration: catalog and table providers over the engine's
//! snapshots, the session template every connection starts from, and the
//! Postgres catalog (`pg_catalog`) that psql and drivers query.
//!
//! Consistency: a statement puts one [`DbSnapshot`] into its session config;
//! every scan in that statement reads that snapshot, so all relations are
//! seen at one logical time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::memory::MemorySourceConfig;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableProvider,
};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableProviderFilterPushDown, Volatility,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::{PgCatalogSchemaProvider, PgCatalogStaticTables};
use parking_lot::RwLock;

use super::data::{DbSnapshot, RelationData};
use super::Engine;
use crate::catalog::{RelationDef, OFFSET_COLUMN};
use crate::sql::rewrite::OFFSETS_SCHEMA;

pub const CATALOG_NAME: &str = "freshet";
pub const PUBLIC_SCHEMA: &str = "public";

/// System relations: `freshet_catalog.source_watermarks`.
pub const SYSTEM_SCHEMA: &str = "freshet_catalog";

/// The text `SELECT version()` returns. Drivers parse the leading
/// `PostgreSQL <major>.<minor>`.
pub fn version_string() -> String {
    format!(
        "PostgreSQL 15.20 (Freshet {}) on {}-unknown-linux-gnu, a streaming SQL database",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    )
}

/// The snapshot a statement reads: the one its session put in the config,
/// or (outside a statement) the latest.
fn statement_snapshot(state: &dyn Session, engine: &Weak<Engine>) -> Arc<DbSnapshot> {
    match state.config().get_extension::<DbSnapshot>() {
        Some(s) => s,
        None => match engine.upgrade() {
            Some(e) => e.snapshot(),
            None => Arc::new(DbSnapshot::default()),
        },
    }
}

/// Builds the session state every connection clones.
pub fn session_template(engine: &Arc<Engine>) -> Result<SessionState, DataFusionError> {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, PUBLIC_SCHEMA)
        .with_create_default_catalog_and_schema(false)
        // (PostgreSQL's information_schema: crate::catalog::information_schema)
        .with_information_schema(false)
        .with_target_partitions(2)
        .with_option_extension(crate::sql::subquery::PlannerOptions::default())
        .with_option_extension(crate::catalog::pg_functions::SessionSettings::default());
    // `2.5` is numeric, as in Postgres (not double precision)
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // `timestamptz` is a UTC instant (Arrow's timestamp with a zone), as
    // stored; sessions render it in their TimeZone
    config.options_mut().execution.time_zone = Some("+00:00".into());
    // DataFusion's logical nullability of a CASE can be finer than the
    // physical one (`CASE WHEN x AND s < NULL THEN NULL … END` never takes
    // its NULL branch): the planner then refused a DISTINCT or GROUP BY
    // over it with an internal error, though a nullable input is safe
    config
        .options_mut()
        .execution
        .skip_physical_aggregate_schema_check = true;
    // subqueries in every form Postgres answers (sql/subquery.rs)
    let mut builder = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_analyzer_rules(crate::sql::optimizer::analyzer_rules())
        .with_optimizer_rules(crate::sql::optimizer::optimizer_rules())
        .with_physical_optimizer_rules(crate::sql::optimizer::physical_optimizer_rules());
    // jsonb operators first (DataFusion's planners refuse them)
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(crate::sql::jsonb::JsonbOperators));
    let state = builder.build();
    let ctx = SessionContext::new_with_state(state);
    let catalog = Arc::new(FreshetCatalog {
        engine: Arc::downgrade(engine),
        extra: RwLock::new(HashMap::new()),
    });
    ctx.register_catalog(CATALOG_NAME, catalog.clone());
    datafusion_pg_catalog::setup_pg_catalog(&ctx, CATALOG_NAME, EmptyContextProvider)
        .map_err(|e| *e)?;
    // Replace the generic pg_catalog with one that hides the internal
    // schema and the `_offset` column.
    let info = FreshetCatalogInfo {
        list: ctx.state().catalog_list().clone(),
    };
    let statics = Arc::new(PgCatalogStaticTables::try_new()?);
    for f in crate::catalog::pg_functions::signature_functions(&statics) {
        ctx.register_udf(f);
    }
    let pg = PgCatalogSchemaProvider::try_new(info, statics, EmptyContextProvider)?;
    // ... and answers the role tables from the roles that exist
    let oids = engine.view_oids.clone();
    catalog.register_schema(
        "pg_catalog",
        Arc::new(crate::auth::catalog::PgCatalogWithRoles {
            inner: Arc::new(pg),
            engine: Arc::downgrade(engine),
            oids: oids.clone(),
        }),
    )?;
    ctx.register_udf(ScalarUDF::from(VersionUdf::new()));
    for f in crate::sql::functions::all() {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::database::catalog::current_database(Arc::downgrade(
        engine,
    )));
    ctx.register_udf(crate::database::catalog::pg_encoding_to_char());
    for f in crate::catalog::pg_sizes::functions(oids.clone(), Arc::downgrade(engine)) {
        ctx.register_udf(f);
    }
    for f in crate::catalog::pg_views::functions(oids, Arc::downgrade(engine)) {
        ctx.register_udf(f);
    }
    // `generate_series` in an expression, unnested (`sql::compat`)
    ctx.register_udf(
        datafusion::functions_nested::range::gen_series_udf()
            .as_ref()
            .clone()
            .with_aliases(["__series_list"]),
    );
    for f in crate::catalog::pg_keys::functions(Arc::downgrade(engine)) {
        ctx.register_udf(f);
    }
    for f in crate::catalog::pg_functions::functions() {
        ctx.register_udf(f);
    }
    ctx.register_udf(crate::sql::format::udf());
    for f in crate::sql::limits::bounded_functions() {
        ctx.register_udf(f);
    }
    ctx.register_udtf(
        "pg_show_all_settings",
        Arc::new(crate::catalog::pg_session::ShowAllSettings),
    );
    ctx.register_udtf(
        "session_window",
        Arc::new(SessionWindowFn {
            engine: Arc::downgrade(engine),
        }),
    );
    Ok(ctx.state())
}

/// The catalog `freshet`: `public` holds every source and table; the hidden
/// `__offsets` schema holds the same relations with `_offset`.
struct FreshetCatalog {
    engine: Weak<Engine>,
    extra: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl fmt::Debug for FreshetCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FreshetCatalog")
    }
}

impl CatalogProvider for FreshetCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![
            PUBLIC_SCHEMA.to_string(),
            SYSTEM_SCHEMA.to_string(),
            crate::catalog::information_schema::SCHEMA.to_string(),
        ];
        names.extend(self.extra.read().keys().cloned());
        if let Some(e) = self.engine.upgrade() {
            names.extend(e.schemas().into_iter().map(|s| s.name));
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            PUBLIC_SCHEMA => Some(Arc::new(RelationSchema {
                engine: self.engine.clone(),
                with_offset: false,
                schema: PUBLIC_SCHEMA.to_string(),
            })),
            OFFSETS_SCHEMA => Some(Arc::new(RelationSchema {
                engine: self.engine.clone(),
                with_offset: true,
                schema: OFFSETS_SCHEMA.to_string(),
            })),
            SYSTEM_SCHEMA => Some(Arc::new(SystemSchema {
                engine: self.engine.clone(),
            })),
            crate::catalog::information_schema::SCHEMA => Some(Arc::new(
                crate::catalog::information_schema::InformationSchema {
                    engine: self.engine.clone(),
                },
            )),
            other => {
                if let Some(s) = self.extra.read().get(other).cloned() {
                    return Some(s);
                }
                let engine = self.engine.upgrade()?;
                engine.schema_exists(other).then(|| {
                    Arc::new(RelationSchema {
                        engine: self.engine.clone(),
                        with_offset: false,
                        schema: other.to_string(),
                    }) as Arc<dyn SchemaProvider>
                })
            }
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        if name == PUBLIC_SCHEMA
            || name == OFFSETS_SCHEMA
            || name == SYSTEM_SCHEMA
            || name == crate::catalog::information_schema::SCHEMA
        {
            return Err(DataFusionError::Plan(format!("schema {name} is reserved")));
        }
        Ok(self.extra.write().insert(name.to_string(), schema))
    }
}

/// The relations of one schema (`public`, one of `CREATE SCHEMA`, or the
/// hidden `__offsets`, which holds every relation by its catalog name).
struct RelationSchema {
    engine: Weak<Engine>,
    with_offset: bool,
    schema: String,
}

impl RelationSchema {
    /// The catalog name of this schema's relation `name`.
    fn catalog_name(&self, name: &str) -> String {
        if self.with_offset {
            name.to_string()
        } else {
            crate::sql::names::qualified(&self.schema, name)
        }
    }
}

/// `freshet_catalog`: read-only relations describing the engine's state.
struct SystemSchema {
    engine: Weak<Engine>,
}

impl fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SystemSchema")
    }
}

const SOURCE_WATERMARKS: &str = "source_watermarks";
const VIEW_OPERATORS: &str = "view_operators";
const VIEW_WATERMARKS: &str = "view_watermarks";

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec![
            crate::connectors::catalog::SOURCE_ERRORS.to_string(),
            crate::connectors::catalog::SOURCE_STATUS.to_string(),
            SOURCE_WATERMARKS.to_string(),
            VIEW_OPERATORS.to_string(),
            VIEW_WATERMARKS.to_string(),
        ]
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(match name {
            SOURCE_WATERMARKS => Some(Arc::new(SourceWatermarksTable {
                engine: self.engine.clone(),
            })),
            VIEW_OPERATORS | VIEW_WATERMARKS => Some(Arc::new(ViewStatsTable {
                engine: self.engine.clone(),
                watermarks: name == VIEW_WATERMARKS,
            })),
            _ => crate::connectors::catalog::table(name, &self.engine),
        })
    }

    fn table_exist(&self, name: &str) -> bool {
        matches!(name, SOURCE_WATERMARKS | VIEW_OPERATORS | VIEW_WATERMARKS)
            || crate::connectors::catalog::table(name, &self.engine).is_some()
    }
}

/// `view_operators` (one row per operator of every view, with its state
/// size) or `view_watermarks` (one row per view that closes windows).
struct ViewStatsTable {
    engine: Weak<Engine>,
    watermarks: bool,
}

impl fmt::Debug for ViewStatsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ViewStatsTable")
    }
}

impl ViewStatsTable {
    fn table_schema(&self) -> SchemaRef {
        use datafusion::arrow::datatypes::TimeUnit;
        if self.watermarks {
            Arc::new(Schema::new(vec![
                Field::new("view", DataType::Utf8, false),
                Field::new("column", DataType::Utf8, true),
                Field::new(
                    "watermark",
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    true,
                ),
                Field::new("late_rows_dropped", DataType::Int64, false),
            ]))
        } else {
            Arc::new(Schema::new(vec![
                Field::new("view", DataType::Utf8, false),
                Field::new("operator_id", DataType::Int64, false),
                Field::new("operator", DataType::Utf8, false),
                Field::new("state_rows", DataType::Int64, false),
                Field::new("state_bytes", DataType::Int64, false),
                Field::new("error", DataType::Utf8, true),
            ]))
        }
    }
}

#[async_trait]
impl TableProvider for ViewStatsTable {
    fn schema(&self) -> SchemaRef {
        self.table_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use datafusion::arrow::array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the engine is shutting down".into()))?;
        let stats = engine
            .view_stats()
            .await
            .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let columns: Vec<ArrayRef> = if self.watermarks {
            // one row per watermarked output column (one row without a
            // column for a view whose output has none)
            let mut view: Vec<&str> = Vec::new();
            let mut column: Vec<Option<&str>> = Vec::new();
            let mut mark: Vec<Option<i64>> = Vec::new();
            let mut late: Vec<i64> = Vec::new();
            for s in &stats {
                let Some(w) = &s.watermark else {
                    continue;
                };
                if w.columns.is_empty() {
                    view.push(&s.view);
                    column.push(None);
                    mark.push(None);
                    late.push(w.late_rows as i64);
                }
                for (c, at) in &w.columns {
                    view.push(&s.view);
                    column.push(Some(c));
                    mark.push(Some(*at));
                    late.push(w.late_rows as i64);
                }
            }
            vec![
                Arc::new(StringArray::from(view)),
                Arc::new(StringArray::from(column)),
                Arc::new(TimestampMicrosecondArray::from(mark)),
                Arc::new(Int64Array::from(late)),
            ]
        } else {
            let mut view = Vec::new();
            let mut id = Vec::new();
            let mut op = Vec::new();
            let mut rows = Vec::new();
            let mut bytes = Vec::new();
            let mut err: Vec<Option<String>> = Vec::new();
            for s in &stats {
                for (i, (o, r, b)) in s.operators.iter().enumerate() {
                    view.push(s.view.clone());
                    id.push(i as i64);
                    op.push(o.clone());
                    rows.push(*r as i64);
                    bytes.push(*b as i64);
                    err.push(s.error.clone());
                }
            }
            vec![
                Arc::new(StringArray::from(view)),
                Arc::new(Int64Array::from(id)),
                Arc::new(StringArray::from(op)),
                Arc::new(Int64Array::from(rows)),
                Arc::new(Int64Array::from(bytes)),
                Arc::new(StringArray::from(err)),
            ]
        };
        let schema = self.table_schema();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            schema,
            projection.cloned(),
        )?)
    }
}

/// One row per source with a `WATERMARK FOR` clause.
struct SourceWatermarksTable {
    engine: Weak<Engine>,
}

impl fmt::Debug for SourceWatermarksTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SourceWatermarksTable")
    }
}

fn source_watermarks_schema() -> SchemaRef {
    use datafusion::arrow::datatypes::{IntervalUnit, TimeUnit};
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("time_column", DataType::Utf8, false),
        Field::new(
            "delay",
            DataType::Interval(IntervalUnit::MonthDayNano),
            false,
        ),
        Field::new(
            "watermark",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new(
            "max_event_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("late_rows", DataType::Int64, false),
    ]))
}

#[async_trait]
impl TableProvider for SourceWatermarksTable {
    fn schema(&self) -> SchemaRef {
        source_watermarks_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use datafusion::arrow::array::{
            ArrayRef, Int64Array, IntervalMonthDayNanoArray, TimestampMicrosecondArray,
        };
        use datafusion::arrow::datatypes::IntervalMonthDayNano;
        let snapshot = statement_snapshot(state, &self.engine);
        let w = &snapshot.watermarks;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                w.iter().map(|s| s.source.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                w.iter().map(|s| s.column.as_str()),
            )),
            Arc::new(IntervalMonthDayNanoArray::from_iter_values(w.iter().map(
                |s| IntervalMonthDayNano::new(0, 0, s.delay_us.saturating_mul(1000)),
            ))),
            Arc::new(TimestampMicrosecondArray::from_iter(
                w.iter().map(|s| s.watermark_us),
            )),
            Arc::new(TimestampMicrosecondArray::from_iter(
                w.iter().map(|s| s.max_event_us),
            )),
            Arc::new(Int64Array::from_iter_values(
                w.iter().map(|s| s.late_rows as i64),
            )),
        ];
        let batch = RecordBatch::try_new(source_watermarks_schema(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            source_watermarks_schema(),
            projection.cloned(),
        )?)
    }
}

impl fmt::Debug for RelationSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelationSchema(with_offset: {})", self.with_offset)
    }
}

#[async_trait]
impl SchemaProvider for RelationSchema {
    fn table_names(&self) -> Vec<String> {
        if self.with_offset {
            // hidden from listings
            return vec![];
        }
        match self.engine.upgrade() {
            Some(e) => e
                .relations()
                .iter()
                .filter_map(|r| {
                    let (schema, name) = crate::sql::names::split(&r.name);
                    (schema == self.schema).then(|| name.to_string())
                })
                .collect(),
            None => vec![],
        }
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(engine) = self.engine.upgrade() else {
            return Ok(None);
        };
        let Some(def) = engine.relation(&self.catalog_name(name)) else {
            return Ok(None);
        };
        if def.kind == crate::catalog::RelationKind::PlainView {
            // planned into the statement that reads it
            if self.with_offset {
                return Ok(None);
            }
            let plan = def.plan.as_ref().ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "view \"{name}\" does not plan (what it reads changed); \
                     CREATE OR REPLACE VIEW or DROP VIEW it"
                ))
            })?;
            return Ok(Some(Arc::new(datafusion::catalog::view::ViewTable::new(
                (**plan).clone(),
                def.query.clone(),
            ))));
        }
        Ok(Some(Arc::new(RelationTable::new(
            def,
            self.with_offset,
            self.engine.clone(),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.engine
            .upgrade()
            .is_some_and(|e| e.relation(&self.catalog_name(name)).is_some())
    }
}

/// A source or table, read from the statement's snapshot.
pub struct RelationTable {
    def: Arc<RelationDef>,
    schema: SchemaRef,
    with_offset: bool,
    engine: Weak<Engine>,
}

impl fmt::Debug for RelationTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelationTable({})", self.def.name)
    }
}

impl RelationTable {
    pub fn new(def: Arc<RelationDef>, with_offset: bool, engine: Weak<Engine>) -> RelationTable {
        let schema = if with_offset {
            def.schema_with_offset()
        } else {
            def.schema()
        };
        RelationTable {
            def,
            schema,
            with_offset,
            engine,
        }
    }
}

impl RelationTable {
    /// The rows an index finds for these filters, if one applies.
    fn index_scan(
        &self,
        data: &RelationData,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        if data.indexes().is_empty() || filters.is_empty() {
            return Ok(None);
        }
        let conds = crate::index::plan::conditions(filters, &self.schema);
        let Some(choice) = crate::index::plan::choose(data.indexes(), &conds, &self.schema)? else {
            return Ok(None);
        };
        let ix = &data.indexes()[choice.index];
        let mut offsets: Vec<u64> = choice.bounds.iter().flat_map(|b| ix.lookup(b)).collect();
        if choice.bounds.len() > 1 {
            offsets.sort_unstable();
            offsets.dedup();
        }
        let Some((rows, order)) = data.take(&offsets)? else {
            return Ok(None);
        };
        let batch = if self.with_offset {
            let mut cols = rows.columns().to_vec();
            cols.push(Arc::new(
                datafusion::arrow::array::Int64Array::from_iter_values(
                    order.iter().map(|o| *o as i64),
                ),
            ));
            RecordBatch::try_new(self.schema.clone(), cols)?
        } else {
            rows
        };
        let rows = batch.num_rows();
        let inner = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(Some(Arc::new(crate::index::scan::IndexScanExec {
            relation: self.def.name.clone(),
            index: ix.name().to_string(),
            condition: choice.describe,
            rows,
            inner,
        })))
    }
}

#[async_trait]
impl TableProvider for RelationTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        let indexed: Vec<usize> = self
            .def
            .index_specs()
            .into_iter()
            .flat_map(|s| s.columns)
            .collect();
        Ok(filters
            .iter()
            .map(|f| {
                if !indexed.is_empty() && crate::index::plan::usable(f, &self.schema, &indexed) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    fn table_type(&self) -> TableType {
        if self.def.is_base() {
            TableType::Base
        } else {
            TableType::View
        }
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let snapshot = statement_snapshot(state, &self.engine);
        if let Some(e) = snapshot.errors.get(&self.def.id) {
            return Err(DataFusionError::External(Box::new(
                crate::engine::EngineError::ViewFailed {
                    view: self.def.name.clone(),
                    cause: e.clone(),
                },
            )));
        }
        let data = snapshot.relation(self.def.id).ok_or_else(|| {
            DataFusionError::Plan(format!("relation \"{}\" does not exist", self.def.name))
        })?;
        if let Some(plan) = self.index_scan(data, projection, filters)? {
            return Ok(plan);
        }
        let user_cols: Vec<usize> = (0..self.def.schema().fields().len()).collect();
        let mut batches = Vec::with_capacity(data.segments().len());
        for s in data.segments() {
            let b = s.visible()?;
            if b.num_rows() == 0 {
                continue;
            }
            if self.with_offset {
                batches.push(b.clone());
            } else {
                batches.push(b.project(&user_cols)?);
            }
        }
        let parts = state
            .config()
            .target_partitions()
            .clamp(1, batches.len().max(1));
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); parts];
        for (i, b) in batches.into_iter().enumerate() {
            partitions[i % parts].push(b);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &partitions,
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

/// What `pg_catalog` lists: the `freshet` catalog without the internal
/// schema, and relations without `_offset`.
#[derive(Clone)]
struct FreshetCatalogInfo {
    list: Arc<dyn CatalogProviderList>,
}

impl fmt::Debug for FreshetCatalogInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FreshetCatalogInfo")
    }
}

#[async_trait]
impl CatalogInfo for FreshetCatalogInfo {
    async fn catalog_names(&self) -> DfResult<Vec<String>> {
        Ok(vec![CATALOG_NAME.to_string()])
    }

    async fn schema_names(&self, catalog_name: &str) -> DfResult<Option<Vec<String>>> {
        Ok(self.list.catalog(catalog_name).map(|c| {
            c.schema_names()
                .into_iter()
                .filter(|s| s != OFFSETS_SCHEMA)
                .collect()
        }))
    }

    async fn table_names(
        &self,
        catalog_name: &str,
        schema_name: &str,
    ) -> DfResult<Option<Vec<String>>> {
        if schema_name == OFFSETS_SCHEMA {
            return Ok(None);
        }
        Ok(self
            .list
            .catalog(catalog_name)
            .and_then(|c| c.schema(schema_name))
            .map(|s| s.table_names()))
    }

    async fn table_schema(
        &self,
        catalog_name: &str,
        schema_name: &str,
        table_name: &str,
    ) -> DfResult<Option<SchemaRef>> {
        let Some(schema) = self
            .list
            .catalog(catalog_name)
            .and_then(|c| c.schema(schema_name))
        else {
            return Ok(None);
        };
        let Some(t) = schema.table(table_name).await? else {
            return Ok(None);
        };
        let s = t.schema();
        let fields: Vec<Field> = s
            .fields()
            .iter()
            .filter(|f| f.name() != OFFSET_COLUMN)
            .map(|f| f.as_ref().clone())
            .collect();
        Ok(Some(Arc::new(Schema::new(fields))))
    }

    async fn table_type(
        &self,
        catalog_name: &str,
        schema_name: &str,
        table_name: &str,
    ) -> DfResult<Option<TableType>> {
        match self
            .list
            .catalog(catalog_name)
            .and_then(|c| c.schema(schema_name))
        {
            Some(s) => s.table_type(table_name).await,
            None => Ok(None),
        }
    }
}

/// `version()`, in the form drivers expect.
#[derive(Debug, PartialEq, Eq, Hash)]
struct VersionUdf {
    signature: Signature,
}

impl VersionUdf {
    fn new() -> VersionUdf {
        VersionUdf {
            signature: Signature::exact(vec![], Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for VersionUdf {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_string(),
        ))))
    }
}

/// A one-column text result (SHOW, SHOW SOURCES, ...).
pub fn text_batch(column: &str, values: Vec<String>) -> Result<RecordBatch, DataFusionError> {
    let schema = Arc::new(Schema::new(vec![Field::new(column, DataType::Utf8, true)]));
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(StringArray::from(values))],
    )?)
}

/// `session_window('relation', 'partition columns', 'time column', gap)`:
/// the table function behind `TABLE(SESSION(TABLE r PARTITION BY …,
/// DESCRIPTOR(ts), gap))`.
struct SessionWindowFn {
    engine: Weak<Engine>,
}

impl fmt::Debug for SessionWindowFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionWindowFn")
    }
}

impl datafusion::catalog::TableFunctionImpl for SessionWindowFn {
    fn call_with_args(
        &self,
        args: datafusion::catalog::TableFunctionArgs,
    ) -> DfResult<Arc<dyn TableProvider>> {
        let bad = |m: String| DataFusionError::Plan(format!("SESSION: {m}"));
        let exprs = args.exprs();
        if exprs.len() != 4 {
            return Err(bad(
                "expected a relation, partition columns, a time column and a gap".into(),
            ));
        }
        let text = |e: &Expr| match e {
            Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Ok(s.clone()),
            other => Err(bad(format!("expected a name, found {other}"))),
        };
        let (rel, parts, ts) = (text(&exprs[0])?, text(&exprs[1])?, text(&exprs[2])?);
        let gap_us = match &exprs[3] {
            Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
                v.days as i64 * 86_400_000_000 + v.nanoseconds / 1000
            }
            Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
                v.days as i64 * 86_400_000_000 + v.milliseconds as i64 * 1000
            }
            other => {
                return Err(bad(format!(
                    "the gap must be a constant interval of fixed length, found {other}"
                )))
            }
        };
        if gap_us <= 0 {
            return Err(bad("the gap must be positive".into()));
        }
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| bad("the engine is shutting down".into()))?;
        let def = engine
            .relation(&rel)
            .ok_or_else(|| DataFusionError::Plan(format!("relation \"{rel}\" does not exist")))?;
        let schema = def.schema();
        let col = |name: &str| {
            schema
                .index_of(name)
                .map_err(|_| bad(format!("column \"{name}\" does not exist in \"{rel}\"")))
        };
        let ts = col(&ts)?;
        if !matches!(schema.field(ts).data_type(), DataType::Timestamp(_, _)) {
            return Err(bad(format!(
                "the time column \"{}\" must be a timestamp",
                schema.field(ts).name()
            )));
        }
        let partition = parts
            .split(',')
            .filter(|p| !p.is_empty())
            .map(col)
            .collect::<DfResult<Vec<_>>>()?;
        let op =
            crate::dataflow::session::SessionWindow::new(schema, partition.clone(), ts, gap_us)
                .map_err(|e| bad(e.to_string()))?;
        Ok(Arc::new(SessionWindowTable {
            schema: op.output_schema(),
            spec: crate::sql::lower::SessionScan {
                partition,
                ts,
                gap_us,
            },
            def,
            engine: self.engine.clone(),
        }))
    }
}

/// A relation's rows with their sessions (batch form; views lower it to
/// the incremental `SessionWindow` operator).
pub struct SessionWindowTable {
    pub def: Arc<RelationDef>,
    pub spec: crate::sql::lower::SessionScan,
    schema: SchemaRef,
    engine: Weak<Engine>,
}

impl fmt::Debug for SessionWindowTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionWindowTable({})", self.def.name)
    }
}

#[async_trait]
impl TableProvider for SessionWindowTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        use crate::dataflow::Operator as _;
        let snapshot = statement_snapshot(state, &self.engine);
        let data = snapshot.relation(self.def.id).ok_or_else(|| {
            DataFusionError::Plan(format!("relation \"{}\" does not exist", self.def.name))
        })?;
        let user_schema = self.def.schema();
        let user_cols: Vec<usize> = (0..user_schema.fields().len()).collect();
        let mut parts = Vec::new();
        for seg in data.segments() {
            parts.push(seg.visible()?.project(&user_cols)?);
        }
        let all = datafusion::arrow::compute::concat_batches(&user_schema, &parts)?;
        let mut op = crate::dataflow::session::SessionWindow::new(
            user_schema,
            self.spec.partition.clone(),
            self.spec.ts,
            self.spec.gap_us,
        )
        .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        let batch = match op
            .step(&[Some(&crate::dataflow::Delta::insert(all))])
            .map_err(|e| DataFusionError::Execution(e.to_string()))?
        {
            Some(d) => d.batch,
            None => RecordBatch::new_empty(self.schema.clone()),
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}
