//! Sizes, as psql's `\dt+`, `\l+` and monitoring tools ask for them:
//! `pg_table_size`, `pg_relation_size`, `pg_total_relation_size`,
//! `pg_indexes_size`, `pg_database_size` and `pg_size_pretty`.
//!
//! A relation's size is the memory its rows take (the rows of a source or
//! table, the contents of a materialized view); its log on disk is not
//! counted. Primary-key indexes live with the committer and are reported as
//! 0 bytes. Relations are found by the OIDs the last `pg_class` read gave
//! them (`pg_views::ViewOids`).

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::pg_views::{int_at, ViewOids};
use crate::engine::Engine;

/// `pg_size_pretty(bytes)`: PostgreSQL's rounding and units (bytes below
/// 10 kB, then kB, MB, GB, TB, PB, each below 20 480 of its unit).
pub fn size_pretty(size: i64) -> String {
    const LIMIT: i64 = 10 * 1024;
    const LIMIT2: i64 = LIMIT * 2 - 1;
    let half_rounded = |x: i64| (x + if x < 0 { -1 } else { 1 }) / 2;
    if size.abs() < LIMIT {
        return format!("{size} bytes");
    }
    // one extra bit for rounding
    let mut size = size >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if size.abs() < LIMIT2 {
            return format!("{} {unit}", half_rounded(size));
        }
        size >>= 10;
    }
    format!("{} PB", half_rounded(size))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Which {
    Pretty,
    Table,
    Relation,
    Total,
    Indexes,
    Database,
}

#[derive(Debug)]
struct SizeFn {
    which: Which,
    signature: Signature,
    oids: ViewOids,
    engine: Weak<Engine>,
}

impl PartialEq for SizeFn {
    fn eq(&self, o: &Self) -> bool {
        self.which == o.which
    }
}
impl Eq for SizeFn {}
impl std::hash::Hash for SizeFn {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.which.hash(h)
    }
}

impl ScalarUDFImpl for SizeFn {
    fn name(&self) -> &str {
        match self.which {
            Which::Pretty => "pg_size_pretty",
            Which::Table => "pg_table_size",
            Which::Relation => "pg_relation_size",
            Which::Total => "pg_total_relation_size",
            Which::Indexes => "pg_indexes_size",
            Which::Database => "pg_database_size",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(match self.which {
            Which::Pretty => DataType::Utf8,
            _ => DataType::Int64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = &arrays[0];
        let rows = input.len();
        if self.which == Which::Pretty {
            let out: StringArray = (0..rows)
                .map(|i| int_at(input.as_ref(), i).map(size_pretty))
                .collect();
            return crate::sql::functions::same_shape(&args.args, Arc::new(out));
        }
        let engine = self
            .engine
            .upgrade()
            .ok_or_else(|| DataFusionError::Internal("the server is shutting down".into()))?;
        let snapshot = engine.snapshot();
        let size_of = |name: &str| -> Option<i64> {
            let rel = engine.relation(name)?;
            Some(
                snapshot
                    .relation(rel.id)
                    .map_or(0, |d| d.memory_bytes() as i64),
            )
        };
        let out: Int64Array = (0..rows)
            .map(|i| -> DfResult<Option<i64>> {
                if input.is_null(i) {
                    return Ok(None);
                }
                if self.which == Which::Database {
                    return database_size(&engine, input.as_ref(), i);
                }
                let Some(oid) = int_at(input.as_ref(), i) else {
                    return Ok(None);
                };
                let name = self.oids.name(oid);
                Ok(match (self.which, name) {
                    (Which::Indexes, Some(_)) => Some(0),
                    (_, Some(n)) => Some(size_of(&n).unwrap_or(0)),
                    // an index, or a catalog table: nothing of ours
                    (_, None) => Some(0),
                })
            })
            .collect::<DfResult<_>>()?;
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `pg_database_size(name | oid)`: the bytes every relation of that
/// database holds; 3D000 for a name no database has, NULL for such an OID.
fn database_size(engine: &Arc<Engine>, input: &dyn Array, i: usize) -> DfResult<Option<i64>> {
    use datafusion::scalar::ScalarValue;
    let oid = match ScalarValue::try_from_array(input, i)? {
        ScalarValue::Utf8(Some(n))
        | ScalarValue::Utf8View(Some(n))
        | ScalarValue::LargeUtf8(Some(n)) => match engine.databases().get(&n) {
            Some(d) => d.oid,
            None => {
                return Err(DataFusionError::External(Box::new(
                    crate::engine::EngineError::from(crate::database::DatabaseError::Undefined(n)),
                )))
            }
        },
        _ => match int_at(input, i).and_then(|o| u32::try_from(o).ok()) {
            Some(o) => o,
            None => return Ok(None),
        },
    };
    let Some(e) = engine.database_engine(oid) else {
        return Ok(None);
    };
    let snapshot = e.snapshot();
    Ok(Some(
        e.relations()
            .iter()
            .filter_map(|r| snapshot.relation(r.id))
            .map(|d| d.memory_bytes() as i64)
            .sum(),
    ))
}

/// The functions of this module.
pub fn functions(oids: ViewOids, engine: Weak<Engine>) -> Vec<ScalarUDF> {
    [
        Which::Pretty,
        Which::Table,
        Which::Relation,
        Which::Total,
        Which::Indexes,
        Which::Database,
    ]
    .into_iter()
    .map(|which| {
        ScalarUDF::new_from_impl(SizeFn {
            which,
            signature: Signature::variadic_any(Volatility::Volatile),
            oids: oids.clone(),
            engine: engine.clone(),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::size_pretty;

    #[test]
    fn sizes_as_postgres_shows_them() {
        // (the values PostgreSQL 15 gives for these)
        assert_eq!(size_pretty(0), "0 bytes");
        assert_eq!(size_pretty(10239), "10239 bytes");
        assert_eq!(size_pretty(10240), "10 kB");
        assert_eq!(size_pretty(1_000_000), "977 kB");
        assert_eq!(size_pretty(20_970_496), "20 MB");
        assert_eq!(size_pretty(123_456_789_012), "115 GB");
        assert_eq!(size_pretty(-20_000), "-20 kB");
        assert_eq!(size_pretty(i64::MAX), "8192 PB");
    }
}
