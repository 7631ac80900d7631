//! What clients read about views and descriptions: `pg_class.relkind` (`m`
//! for a materialized view, `v` for a plain one), `pg_matviews`, `pg_views`
//! and `pg_get_viewdef` (psql's `\dm`, `\dv`, `\sv`, `\d+`; SQLAlchemy's
//! `get_materialized_view_names`, `get_view_definition`), and the
//! `COMMENT ON` texts through `obj_description` and `col_description`
//! (psql's `\dt+`, `\d+`).
//!
//! Relation OIDs are given by the generic `pg_catalog` each time `pg_class`
//! is read; [`ViewOids`] remembers the last mapping from OIDs to names so
//! `pg_get_viewdef(c.oid)` finds the view (the `pg_class` of the same
//! statement is read before the function runs).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use parking_lot::RwLock;

use super::{RelationDef, RelationKind};
use crate::engine::Engine;

/// The tables this module serves in place of the generic catalog's.
pub const TABLES: [&str; 2] = ["pg_matviews", "pg_views"];

/// OIDs of relations as the last `pg_class` read gave them, to names.
#[derive(Debug, Default, Clone)]
pub struct ViewOids(Arc<RwLock<HashMap<i64, String>>>);

impl ViewOids {
    /// Remembers the OIDs and names of one `pg_class` batch.
    pub fn remember(&self, oids: &dyn Array, names: &StringArray) {
        let mut m = self.0.write();
        for i in 0..names.len() {
            if let (Some(oid), false) = (int_at(oids, i), names.is_null(i)) {
                m.insert(oid, names.value(i).to_string());
            }
        }
    }

    pub(crate) fn name(&self, oid: i64) -> Option<String> {
        self.0.read().get(&oid).cloned()
    }
}

/// The integer at row `i` of an argument (an OID, a column number, a size):
/// any integer type, or a numeric or float truncated; `None` for NULL or
/// anything else. Shared by the catalog's functions.
pub(crate) fn int_at(a: &dyn Array, i: usize) -> Option<i64> {
    match ScalarValue::try_from_array(a, i).ok()? {
        ScalarValue::Int16(Some(x)) => Some(x.into()),
        ScalarValue::Int32(Some(x)) => Some(x.into()),
        ScalarValue::Int64(Some(x)) => Some(x),
        ScalarValue::UInt32(Some(x)) => Some(x.into()),
        ScalarValue::UInt64(Some(x)) => i64::try_from(x).ok(),
        ScalarValue::Decimal128(Some(x), _, s) => {
            i64::try_from(x / 10i128.pow(u32::try_from(s).unwrap_or(0))).ok()
        }
        ScalarValue::Float64(Some(x)) => Some(x as i64),
        _ => None,
    }
}

/// A view's definition as `pg_get_viewdef` and the view tables give it.
pub fn definition(def: &RelationDef) -> Option<String> {
    def.query.as_ref().map(|q| format!(" {q};"))
}

/// The catalog name a relation's name as text means (`t`, `public.t`,
/// `s.t`, `"My T"`); the search path is not consulted.
pub fn regclass_name(text: &str) -> Option<String> {
    let parts = crate::catalog::pg_functions::name_parts(text)?;
    match parts.as_slice() {
        [n] => Some(n.clone()),
        [s, n] | [_, s, n] => Some(crate::sql::names::qualified(s, n)),
        _ => None,
    }
}

/// `relkind` of our materialized views: `m`.
pub fn relkind(rel: Option<&RelationDef>, given: &str) -> String {
    match rel.map(|d| d.kind) {
        Some(RelationKind::View) => "m".into(),
        Some(RelationKind::PlainView) => "v".into(),
        _ => given.to_string(),
    }
}

/// The rows of `pg_matviews` or `pg_views`.
pub fn table_batch(name: &str, engine: &Engine) -> Option<RecordBatch> {
    let kind = match name {
        "pg_matviews" => RelationKind::View,
        "pg_views" => RelationKind::PlainView,
        _ => return None,
    };
    let mut views: Vec<Arc<RelationDef>> = engine
        .relations()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    let text = |f: &dyn Fn(&RelationDef) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            views.iter().map(|v| f(v)).collect::<Vec<_>>(),
        ))
    };
    let schema_name = text(&|v| Some(crate::sql::names::split(&v.name).0.to_string()));
    let view_name = text(&|v| Some(crate::sql::names::split(&v.name).1.to_string()));
    let owner = text(&|v| Some(v.owner.clone()));
    let definition = text(&|v| definition(v));
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    let (fields, columns) = if kind == RelationKind::View {
        let yes: ArrayRef = Arc::new(BooleanArray::from(vec![true; views.len()]));
        let no: ArrayRef = Arc::new(BooleanArray::from(vec![false; views.len()]));
        (
            vec![
                f("schemaname", DataType::Utf8),
                f("matviewname", DataType::Utf8),
                f("matviewowner", DataType::Utf8),
                f("tablespace", DataType::Utf8),
                f("hasindexes", DataType::Boolean),
                f("ispopulated", DataType::Boolean),
                f("definition", DataType::Utf8),
            ],
            vec![
                schema_name,
                view_name,
                owner,
                text(&|_| None),
                no,
                yes,
                definition,
            ],
        )
    } else {
        (
            vec![
                f("schemaname", DataType::Utf8),
                f("viewname", DataType::Utf8),
                f("viewowner", DataType::Utf8),
                f("definition", DataType::Utf8),
            ],
            vec![schema_name, view_name, owner, definition],
        )
    };
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).ok()
}

/// `pg_get_viewdef(view [, pretty])`, the view an OID or a name.
#[derive(Debug)]
struct ViewDef {
    signature: Signature,
    oids: ViewOids,
    engine: Weak<Engine>,
}

impl PartialEq for ViewDef {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for ViewDef {}
impl std::hash::Hash for ViewDef {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        "pg_get_viewdef".hash(h)
    }
}

impl ScalarUDFImpl for ViewDef {
    fn name(&self) -> &str {
        "pg_get_viewdef"
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
        let arrays = ColumnarValue::values_to_arrays(&args.args[..1])?;
        let views = &arrays[0];
        let out: StringArray = (0..views.len())
            .map(|i| {
                let name = match views.data_type() {
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
                        ScalarValue::try_from_array(views, i)
                            .ok()
                            .and_then(|v| v.try_as_str().flatten().map(str::to_string))
                            .and_then(|n| regclass_name(&n))
                    }
                    _ => int_at(views, i).and_then(|o| self.oids.name(o)),
                };
                name.and_then(|n| engine.relation(&n))
                    .filter(|d| !d.is_base())
                    .and_then(|d| definition(&d))
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `obj_description(oid [, catalog])` and `col_description(oid, attnum)`:
/// the `COMMENT ON` text of a relation or of its `attnum`-th column (from
/// 1), NULL where there is none.
#[derive(Debug)]
struct Description {
    signature: Signature,
    column: bool,
    oids: ViewOids,
    engine: Weak<Engine>,
}

impl PartialEq for Description {
    fn eq(&self, o: &Self) -> bool {
        self.column == o.column
    }
}
impl Eq for Description {}
impl std::hash::Hash for Description {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.column.hash(h)
    }
}

impl ScalarUDFImpl for Description {
    fn name(&self) -> &str {
        if self.column {
            "col_description"
        } else {
            "obj_description"
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
        let n = arrays[0].len();
        let out: StringArray = (0..n)
            .map(|i| {
                let def = int_at(&arrays[0], i)
                    .and_then(|o| self.oids.name(o))
                    .and_then(|name| engine.relation(&name))?;
                let key = if self.column {
                    let attnum = int_at(&arrays[1], i)?;
                    let schema = def.schema();
                    let f = schema.fields().get(usize::try_from(attnum - 1).ok()?)?;
                    f.name().clone()
                } else {
                    String::new()
                };
                def.comments.get(&key).cloned()
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `pg_get_viewdef`, `obj_description` and `col_description`, reading
/// `oids`.
pub fn functions(oids: ViewOids, engine: Weak<Engine>) -> Vec<ScalarUDF> {
    let description = |column: bool| {
        ScalarUDF::new_from_impl(Description {
            signature: Signature::one_of(
                if column {
                    vec![TypeSignature::Any(2)]
                } else {
                    vec![TypeSignature::Any(1), TypeSignature::Any(2)]
                },
                Volatility::Stable,
            ),
            column,
            oids: oids.clone(),
            engine: engine.clone(),
        })
    };
    vec![
        ScalarUDF::new_from_impl(ViewDef {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(2)],
                Volatility::Stable,
            ),
            oids: oids.clone(),
            engine: engine.clone(),
        }),
        description(false),
        description(true),
    ]
}
