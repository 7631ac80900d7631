//! The databases in the catalog: `pg_database` and `current_database()`.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Schema};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{create_udf, ColumnarValue, ScalarUDF, Volatility};
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::oid_field::{kind, oid_field};

use crate::engine::Engine;

/// `pg_database`: one row per database, with PostgreSQL 15's columns (the
/// encoding is UTF8 and the locale C: text compares bytewise).
pub fn pg_database(engine: &Engine) -> DfResult<RecordBatch> {
    let dbs = engine.databases().list();
    let access = engine.access();
    let owner_oid = |o: &str| access.roles.get(o).map(|r| r.oid as i32).unwrap_or(10);
    let n = dbs.len();
    let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    let int = |v: i32| -> ArrayRef { Arc::new(Int32Array::from(vec![v; n])) };
    let null_text = || -> ArrayRef { Arc::new(StringArray::from(vec![None::<&str>; n])) };
    let f = |name: &str, t: DataType, nullable: bool| Field::new(name, t, nullable);
    let schema = Arc::new(Schema::new(vec![
        oid_field("oid", kind::OID, false),
        f("datname", DataType::Utf8, false),
        oid_field("datdba", kind::OID, false),
        f("encoding", DataType::Int32, false),
        f("datlocprovider", DataType::Utf8, false),
        f("datistemplate", DataType::Boolean, false),
        f("datallowconn", DataType::Boolean, false),
        f("datconnlimit", DataType::Int32, false),
        f("datlastsysoid", DataType::Int32, false),
        f("datfrozenxid", DataType::Int32, false),
        f("datminmxid", DataType::Int32, false),
        oid_field("dattablespace", kind::OID, false),
        f("datcollate", DataType::Utf8, false),
        f("datctype", DataType::Utf8, false),
        f("daticulocale", DataType::Utf8, true),
        f("daticurules", DataType::Utf8, true),
        f("datcollversion", DataType::Utf8, true),
        f(
            "datacl",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(
            dbs.iter().map(|d| d.oid as i32).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            dbs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            dbs.iter().map(|d| owner_oid(&d.owner)).collect::<Vec<_>>(),
        )),
        int(6),
        text("c"),
        Arc::new(BooleanArray::from(vec![false; n])),
        Arc::new(BooleanArray::from(
            dbs.iter().map(|d| d.allow_connections).collect::<Vec<_>>(),
        )),
        Arc::new(Int32Array::from(
            dbs.iter().map(|d| d.connection_limit).collect::<Vec<_>>(),
        )),
        int(16383),
        int(1),
        int(1),
        int(1663),
        text("C"),
        text("C"),
        null_text(),
        null_text(),
        null_text(),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..n).map(|_| None::<Vec<Option<i32>>>),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `current_database()`: the session's database (its name as of now: the
/// database of a connected session cannot be renamed).
pub fn current_database(engine: Weak<Engine>) -> ScalarUDF {
    create_udf(
        "current_database",
        vec![],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            let name = engine
                .upgrade()
                .map(|e| e.database_name())
                .unwrap_or_else(|| super::DEFAULT.to_string());
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
        }),
    )
}

/// `pg_encoding_to_char(int)`: an encoding's name as PostgreSQL spells it
/// (`UTF8`); an unknown number gives the empty string.
pub fn pg_encoding_to_char() -> ScalarUDF {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;
    create_udf(
        "pg_encoding_to_char",
        // (an int4 column and an integer literal alike)
        vec![DataType::Int64],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let args = ColumnarValue::values_to_arrays(args)?;
            let codes = datafusion::arrow::compute::cast(&args[0], &DataType::Int64)?;
            let codes = codes.as_primitive::<Int64Type>();
            let names: StringArray = (0..codes.len())
                .map(|i| {
                    (!codes.is_null(i)).then(|| match codes.value(i) {
                        0 => "SQL_ASCII",
                        6 => "UTF8",
                        8 => "LATIN1",
                        _ => "",
                    })
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(names)))
        }),
    )
}
