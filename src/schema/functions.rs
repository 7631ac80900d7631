//! The search path's functions, bound to a session: `current_schema()`,
//! `current_schemas(bool)` and `pg_table_is_visible(oid)`. They read the
//! session's `search_path` as it was when bound (a `SET search_path` binds
//! them again) and the schemas as they are when called.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, ListBuilder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::catalog::pg_views::int_at;
use crate::engine::Engine;
use crate::sql::names;

/// What the functions are bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Path {
    search_path: String,
    role: String,
}

impl Path {
    /// The schemas of the path that exist now.
    fn schemas(&self, engine: &Engine) -> Vec<String> {
        super::search_path(&self.search_path, &self.role, |s| engine.schema_exists(s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Which {
    CurrentSchema,
    CurrentSchemas,
    TableIsVisible,
}

#[derive(Debug)]
struct PathFunction {
    which: Which,
    path: Path,
    engine: Weak<Engine>,
    signature: Signature,
}

impl PartialEq for PathFunction {
    fn eq(&self, o: &Self) -> bool {
        self.which == o.which && self.path == o.path
    }
}

impl Eq for PathFunction {}

impl std::hash::Hash for PathFunction {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.which.hash(h);
        self.path.hash(h);
    }
}

fn text_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

impl ScalarUDFImpl for PathFunction {
    fn name(&self) -> &str {
        match self.which {
            Which::CurrentSchema => "current_schema",
            Which::CurrentSchemas => "current_schemas",
            Which::TableIsVisible => "pg_table_is_visible",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.which {
            Which::CurrentSchema => DataType::Utf8,
            Which::CurrentSchemas => text_list(),
            Which::TableIsVisible => DataType::Boolean,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let engine = self.engine.upgrade().ok_or_else(|| {
            datafusion::error::DataFusionError::Internal("the server is shutting down".into())
        })?;
        let path = self.path.schemas(&engine);
        let rows = args.number_rows;
        let out: ArrayRef = match self.which {
            Which::CurrentSchema => {
                let mut b = StringBuilder::new();
                for _ in 0..rows.max(1) {
                    b.append_option(path.first());
                }
                Arc::new(b.finish())
            }
            Which::CurrentSchemas => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let implicit = arrays[0].as_any().downcast_ref::<BooleanArray>();
                let mut b = ListBuilder::new(StringBuilder::new());
                for i in 0..arrays[0].len() {
                    match implicit {
                        Some(f) if f.is_null(i) => b.append_null(),
                        Some(f) => {
                            if f.value(i) {
                                b.values().append_value("pg_catalog");
                            }
                            for s in &path {
                                b.values().append_value(s);
                            }
                            b.append(true);
                        }
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
            Which::TableIsVisible => {
                let arrays = ColumnarValue::values_to_arrays(&args.args)?;
                let visible = |oid: i64| -> bool {
                    let Some(name) = engine.view_oids.name(oid) else {
                        // the system's tables: pg_catalog is always searched
                        return true;
                    };
                    let (schema, bare) = names::split(&name);
                    // the first schema of the path holding the name wins
                    path.iter()
                        .find(|s| engine.relation(&names::qualified(s, bare)).is_some())
                        .is_some_and(|s| s == schema)
                };
                let out: BooleanArray = (0..arrays[0].len())
                    .map(|i| int_at(arrays[0].as_ref(), i).map(visible))
                    .collect();
                Arc::new(out)
            }
        };
        crate::sql::functions::same_shape(&args.args, out)
    }
}

/// The functions bound to a session's `search_path` and role.
pub fn bound(search_path: &str, role: &str, engine: Weak<Engine>) -> Vec<ScalarUDF> {
    let path = Path {
        search_path: search_path.to_string(),
        role: role.to_string(),
    };
    [
        (Which::CurrentSchema, Signature::nullary(Volatility::Stable)),
        (
            Which::CurrentSchemas,
            Signature::exact(vec![DataType::Boolean], Volatility::Stable),
        ),
        (Which::TableIsVisible, Signature::any(1, Volatility::Stable)),
    ]
    .into_iter()
    .map(|(which, signature)| {
        ScalarUDF::new_from_impl(PathFunction {
            which,
            path: path.clone(),
            engine: engine.clone(),
            signature,
        })
    })
    .collect()
}
