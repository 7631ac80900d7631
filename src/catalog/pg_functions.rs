//! Catalog functions drivers call when they connect or reflect:
//! `to_regtype(text)` (psycopg 3's `TypeInfo.fetch`, SQLAlchemy with
//! psycopg 3) and `pg_get_serial_sequence(table, column)` (SQLAlchemy's
//! column reflection, pandas' `read_sql_table`), and
//! `current_setting(name [, missing_ok])` (SQLAlchemy's table reflection)
//! over the session's parameters ([`SessionSettings`]).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// PostgreSQL's built-in types by name (every spelling `to_regtype`
/// accepts): their OIDs and the OIDs of their array types.
const TYPES: &[(&[&str], i32, i32)] = &[
    (&["bool", "boolean"], 16, 1000),
    (&["bytea"], 17, 1001),
    (&["\"char\""], 18, 1002),
    (&["name"], 19, 1003),
    (&["int8", "bigint"], 20, 1016),
    (&["int2", "smallint"], 21, 1005),
    (&["int4", "integer", "int"], 23, 1007),
    (&["regproc"], 24, 1008),
    (&["text"], 25, 1009),
    (&["oid"], 26, 1028),
    (&["json"], 114, 199),
    (&["xml"], 142, 143),
    (&["cidr"], 650, 651),
    (&["float4", "real"], 700, 1021),
    (&["float8", "double precision"], 701, 1022),
    (&["unknown"], 705, 0),
    (&["money"], 790, 791),
    (&["macaddr"], 829, 1040),
    (&["inet"], 869, 1041),
    (&["bpchar", "character", "char"], 1042, 1014),
    (&["varchar", "character varying"], 1043, 1015),
    (&["date"], 1082, 1182),
    (&["time", "time without time zone"], 1083, 1183),
    (&["timestamp", "timestamp without time zone"], 1114, 1115),
    (&["timestamptz", "timestamp with time zone"], 1184, 1185),
    (&["interval"], 1186, 1187),
    (&["timetz", "time with time zone"], 1266, 1270),
    (&["bit"], 1560, 1561),
    (&["varbit", "bit varying"], 1562, 1563),
    (&["numeric", "decimal"], 1700, 1231),
    (&["regclass"], 2205, 2210),
    (&["regtype"], 2206, 2211),
    (&["record"], 2249, 2287),
    (&["void"], 2278, 0),
    (&["uuid"], 2950, 2951),
    (&["jsonb"], 3802, 3807),
    (&["int4range"], 3904, 3905),
    (&["numrange"], 3906, 3907),
    (&["tsrange"], 3908, 3909),
    (&["tstzrange"], 3910, 3911),
    (&["daterange"], 3912, 3913),
    (&["int8range"], 3926, 3927),
];

/// The OID of the type a name spells (`integer`, `int4`, `pg_catalog.int4`,
/// `varchar(10)`, `integer[]`, `_int4`), or `None` as `to_regtype` answers
/// NULL.
pub fn type_oid(name: &str) -> Option<i32> {
    let mut n = name.trim().to_ascii_lowercase();
    if let Some(rest) = n.strip_prefix("pg_catalog.") {
        n = rest.to_string();
    }
    let mut array = false;
    while let Some(rest) = n.trim_end().strip_suffix("[]") {
        n = rest.to_string();
        array = true;
    }
    // type modifiers do not change the type
    if let Some(open) = n.find('(') {
        let close = n.rfind(')')?;
        n = format!("{}{}", &n[..open], &n[close + 1..]);
    }
    let n = n.split_whitespace().collect::<Vec<_>>().join(" ");
    let (n, array) = match n.strip_prefix('_') {
        Some(element) if !array => (element.to_string(), true),
        _ => (n, array),
    };
    // (`"char"` quoted is its own type; `char` is `character`)
    let n = if n == "\"char\"" {
        n.as_str()
    } else {
        n.trim_matches('"')
    };
    let (_, oid, array_oid) = TYPES.iter().find(|(names, _, _)| names.contains(&n))?;
    match array {
        true if *array_oid != 0 => Some(*array_oid),
        true => None,
        false => Some(*oid),
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ToRegtype {
    signature: Signature,
}

impl ScalarUDFImpl for ToRegtype {
    fn name(&self) -> &str {
        "to_regtype"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = &arrays[0];
        let out: Int32Array = (0..names.len())
            .map(|i| {
                ScalarValue::try_from_array(names, i)
                    .ok()
                    .and_then(|v| v.try_as_str().flatten().and_then(type_oid))
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `pg_get_serial_sequence(table, column)`: no column here draws from a
/// sequence, so NULL, as PostgreSQL answers for such a column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SerialSequence {
    signature: Signature,
}

impl ScalarUDFImpl for SerialSequence {
    fn name(&self) -> &str {
        "pg_get_serial_sequence"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let out = StringArray::from(vec![None::<&str>; n]);
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// The functions of this module.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(SharedDescription {
            signature: Signature::any(2, Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(ExpandArrayList {
            signature: Signature::any(1, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(CurrentSetting {
            signature: Signature::one_of(
                vec![
                    TypeSignature::String(1),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }),
        ScalarUDF::new_from_impl(ToRegtype {
            signature: Signature::string(1, Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(SerialSequence {
            signature: Signature::string(2, Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(GetExpr {
            signature: Signature::variadic_any(Volatility::Stable),
        }),
        ScalarUDF::new_from_impl(RelationPart {
            signature: Signature::any(2, Volatility::Immutable),
        }),
        ScalarUDF::new_from_impl(SetConfig {
            signature: Signature::any(3, Volatility::Volatile),
        }),
    ]
}

/// `set_config(name, value, is_local)`: the value, when it is the
/// parameter's value already (pgAdmin sets `bytea_output` to `hex` as it
/// connects); changing a parameter this way is refused (0A000: a function
/// cannot change the session here; `SET` does).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SetConfig {
    signature: Signature,
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let params = args
            .config_options
            .extensions
            .get::<SessionSettings>()
            .cloned()
            .unwrap_or_default();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| -> DfResult<ArrayRef> {
            Ok(datafusion::arrow::compute::cast(
                &arrays[i],
                &DataType::Utf8,
            )?)
        };
        let (names, values) = (text(0)?, text(1)?);
        let (Some(names), Some(values)) = (
            names.as_any().downcast_ref::<StringArray>(),
            values.as_any().downcast_ref::<StringArray>(),
        ) else {
            return Err(datafusion::error::DataFusionError::Internal(
                "set_config".into(),
            ));
        };
        let mut out = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            if names.is_null(i) {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::sql::SqlError::NullValueNotAllowed("SET requires parameter name".into()),
                )));
            }
            let name = names.value(i);
            let value = (!values.is_null(i)).then(|| values.value(i));
            let Some(current) = params.0.get(name) else {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::engine::EngineError::UndefinedObject(format!(
                        "unrecognized configuration parameter \"{name}\""
                    )),
                )));
            };
            if value.is_some_and(|v| v.eq_ignore_ascii_case(current)) {
                out.push(Some(current.to_string()));
            } else {
                return Err(datafusion::error::DataFusionError::External(Box::new(
                    crate::sql::SqlError::Unsupported(format!(
                        "set_config() changing \"{name}\" is not supported; use SET {name} = …"
                    )),
                )));
            }
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(StringArray::from(out)))
    }
}

/// The parts of a relation name as PostgreSQL reads one (`parse_ident`:
/// `.`-separated, unquoted parts lower-cased, quoted ones kept); `None` for
/// a malformed name.
pub(crate) fn name_parts(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != '.') {
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            part = part.trim().to_string();
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// `__relation_part(name, 1 | 2)`: the schema (`public` when the name has
/// none) or the relation of a relation name (`sql::compat::RegclassOfText`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct RelationPart {
    signature: Signature,
}

impl ScalarUDFImpl for RelationPart {
    fn name(&self) -> &str {
        "__relation_part"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("names".into()))?;
        let out: StringArray = (0..names.len())
            .map(|i| {
                if names.is_null(i) {
                    return None;
                }
                let part = super::pg_views::int_at(arrays[1].as_ref(), i)?;
                let parts = name_parts(names.value(i))?;
                let (schema, name) = match parts.as_slice() {
                    [n] => ("public".to_string(), n.clone()),
                    [s, n] | [_, s, n] => (s.clone(), n.clone()),
                    _ => return None,
                };
                Some(if part == 1 { schema } else { name })
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `pg_get_expr(expr, relation [, pretty])`: the expression's text. The
/// catalog keeps no stored expressions (`adbin`, `indpred`, `relpartbound`
/// are NULL), so it is NULL for NULL, as in PostgreSQL (Metabase keeps the
/// indexes whose `pg_get_expr(indpred, indrelid) IS NULL`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct GetExpr {
    signature: Signature,
}

impl ScalarUDFImpl for GetExpr {
    fn name(&self) -> &str {
        "pg_get_expr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let Some(expr) = arrays.first() else {
            return Err(datafusion::error::DataFusionError::Plan(
                "function pg_get_expr() needs an expression".into(),
            ));
        };
        let text = datafusion::arrow::compute::cast(expr, &DataType::Utf8)?;
        crate::sql::functions::same_shape(&args.args, text)
    }
}

/// `pg_expandarray_list(array)`: each element with its subscript, as a
/// list of `{x, n}` structs; `unnest` of it is `information_schema.
/// _pg_expandarray(array)` (see `sql::compat::ExpandArray`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArrayList {
    signature: Signature,
}

fn expanded_type(element: &DataType) -> DataType {
    let fields = datafusion::arrow::datatypes::Fields::from(vec![
        datafusion::arrow::datatypes::Field::new("x", element.clone(), true),
        datafusion::arrow::datatypes::Field::new("n", DataType::Int32, false),
    ]);
    DataType::List(Arc::new(
        datafusion::arrow::datatypes::Field::new_list_field(DataType::Struct(fields), true),
    ))
}

impl ScalarUDFImpl for ExpandArrayList {
    fn name(&self) -> &str {
        "pg_expandarray_list"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args.first() {
            Some(DataType::List(f) | DataType::LargeList(f)) => Ok(expanded_type(f.data_type())),
            Some(DataType::Null) => Ok(expanded_type(&DataType::Null)),
            other => Err(datafusion::error::DataFusionError::Plan(format!(
                "_pg_expandarray takes an array, not {other:?}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{AsArray, ListArray, StructArray};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let out_type = self.return_type(&[arrays[0].data_type().clone()])?;
        let DataType::List(out_field) = &out_type else {
            return Err(datafusion::error::DataFusionError::Internal("list".into()));
        };
        let DataType::Struct(fields) = out_field.data_type() else {
            return Err(datafusion::error::DataFusionError::Internal(
                "struct".into(),
            ));
        };
        let input = match arrays[0].data_type() {
            DataType::List(_) => arrays[0].clone(),
            DataType::Null => {
                let out = datafusion::arrow::array::new_null_array(&out_type, arrays[0].len());
                return crate::sql::functions::same_shape(&args.args, out);
            }
            _ => datafusion::arrow::compute::cast(
                &arrays[0],
                &DataType::List(Arc::new(
                    datafusion::arrow::datatypes::Field::new_list_field(
                        fields[0].data_type().clone(),
                        true,
                    ),
                )),
            )?,
        };
        let list = input.as_list::<i32>();
        let offsets = list.value_offsets();
        let values = list.values().clone();
        // each element's subscript within its row, from 1
        let mut n = vec![0i32; values.len()];
        for w in offsets.windows(2) {
            for (k, j) in (w[0] as usize..w[1] as usize).enumerate() {
                n[j] = k as i32 + 1;
            }
        }
        let structs = StructArray::try_new(
            fields.clone(),
            vec![values, Arc::new(Int32Array::from(n))],
            None,
        )?;
        let out = ListArray::try_new(
            out_field.clone(),
            list.offsets().clone(),
            Arc::new(structs),
            list.nulls().cloned(),
        )?;
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// A type's name as `format_type` gives it (`integer`, `character
/// varying`, `integer[]`, `"char"`), from its `pg_type.typname`.
fn sql_type_name(typname: &str, names: &HashMap<i32, String>, elem: Option<i32>) -> String {
    if let Some(e) = elem.and_then(|e| names.get(&e)) {
        if typname.starts_with('_') {
            return format!("{}[]", sql_type_name(e, names, None));
        }
    }
    match typname {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "float4" => "real",
        "float8" => "double precision",
        "bool" => "boolean",
        "varchar" => "character varying",
        "bpchar" => "character",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        "varbit" => "bit varying",
        "char" => "\"char\"",
        "any" => "\"any\"",
        other => other,
    }
    .to_string()
}

/// A list as the static catalog stores it: `['a', 'b']`, `[1, 2]`, `{a,b}`
/// or `1 2`.
fn stored_list(text: &str) -> Vec<String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .or_else(|| t.strip_prefix('{').and_then(|t| t.strip_suffix('}')));
    let parts: Vec<&str> = match inner {
        Some(i) => i.split(',').collect(),
        None => t.split_whitespace().collect(),
    };
    parts
        .into_iter()
        .map(|p| p.trim().trim_matches('\'').trim_matches('"').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Each function's result and arguments as `pg_get_function_result` and
/// `pg_get_function_arguments` print them, by `pg_proc.oid`.
/// The catalog's types by OID, named as `format_type` and `regtype`
/// output name them.
#[derive(Debug, Default)]
pub struct TypeNames {
    names: HashMap<i32, String>,
    elems: HashMap<i32, i32>,
}

impl TypeNames {
    pub fn new(statics: &datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables) -> TypeNames {
        use datafusion::arrow::array::AsArray;
        let mut t = TypeNames::default();
        for b in statics.pg_type.data() {
            let column = |n: &str| b.schema().index_of(n).ok().map(|i| b.column(i).clone());
            let (Some(oid), Some(name)) = (column("oid"), column("typname")) else {
                continue;
            };
            let (Some(oid), Some(name)) = (
                oid.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>(),
                name.as_string_opt::<i32>(),
            ) else {
                continue;
            };
            let elem = column("typelem");
            let elem = elem
                .as_ref()
                .and_then(|e| e.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>());
            for i in 0..b.num_rows() {
                if oid.is_null(i) || name.is_null(i) {
                    continue;
                }
                t.names.insert(oid.value(i), name.value(i).to_string());
                if let Some(e) = elem.filter(|e| !e.is_null(i) && e.value(i) != 0) {
                    t.elems.insert(oid.value(i), e.value(i));
                }
            }
        }
        t
    }

    /// The type's name (its OID in digits if it is unknown, as PostgreSQL
    /// shows a `regtype` without a type).
    pub fn name(&self, oid: i32) -> String {
        self.names
            .get(&oid)
            .map(|n| sql_type_name(n, &self.names, self.elems.get(&oid).copied()))
            .unwrap_or_else(|| oid.to_string())
    }
}

fn signatures(
    statics: &datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables,
    types: &TypeNames,
) -> HashMap<i64, (String, String)> {
    use datafusion::arrow::array::AsArray;
    let mut out = HashMap::new();
    let column = |b: &datafusion::arrow::array::RecordBatch, n: &str| {
        b.schema().index_of(n).ok().map(|i| b.column(i).clone())
    };
    let type_name = |oid: i32| types.name(oid);
    for b in statics.pg_proc.data() {
        let text = |n: &str| column(b, n);
        let (Some(oid), Some(ret), Some(set), Some(args)) = (
            column(b, "oid"),
            column(b, "prorettype"),
            column(b, "proretset"),
            text("proargtypes"),
        ) else {
            continue;
        };
        let (Some(oid), Some(ret), Some(set), Some(args)) = (
            oid.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>(),
            ret.as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>(),
            set.as_boolean_opt(),
            args.as_string_opt::<i32>(),
        ) else {
            continue;
        };
        let names_col = text("proargnames");
        let modes_col = text("proargmodes");
        let all_col = text("proallargtypes");
        let get = |c: &Option<ArrayRef>, i: usize| -> Vec<String> {
            c.as_ref()
                .and_then(|a| a.as_string_opt::<i32>())
                .filter(|a| !a.is_null(i))
                .map(|a| stored_list(a.value(i)))
                .unwrap_or_default()
        };
        for i in 0..b.num_rows() {
            if oid.is_null(i) || ret.is_null(i) {
                continue;
            }
            let arg_names = get(&names_col, i);
            let modes = get(&modes_col, i);
            let all: Vec<i32> = {
                let a = get(&all_col, i);
                if a.is_empty() {
                    if args.is_null(i) {
                        vec![]
                    } else {
                        stored_list(args.value(i))
                            .iter()
                            .filter_map(|t| t.parse().ok())
                            .collect()
                    }
                } else {
                    a.iter().filter_map(|t| t.parse().ok()).collect()
                }
            };
            let mut shown = Vec::new();
            let mut table = Vec::new();
            for (k, t) in all.iter().enumerate() {
                let mode = modes.get(k).map(String::as_str).unwrap_or("i");
                let name = arg_names.get(k).filter(|n| !n.is_empty());
                let named = |prefix: &str| match name {
                    Some(n) => format!("{prefix}{n} {}", type_name(*t)),
                    None => format!("{prefix}{}", type_name(*t)),
                };
                match mode {
                    "t" => table.push(named("")),
                    "o" => shown.push(named("OUT ")),
                    "b" => shown.push(named("INOUT ")),
                    "v" => shown.push(named("VARIADIC ")),
                    _ => shown.push(named("")),
                }
            }
            let result = if !table.is_empty() {
                format!("TABLE({})", table.join(", "))
            } else if set.value(i) {
                format!("SETOF {}", type_name(ret.value(i)))
            } else {
                type_name(ret.value(i))
            };
            out.insert(i64::from(oid.value(i)), (result, shown.join(", ")));
        }
    }
    out
}

/// `pg_get_function_result(oid)` (`arguments` false) or
/// `pg_get_function_arguments(oid)`: NULL for an unknown OID.
#[derive(Debug)]
struct FunctionSignature {
    signature: Signature,
    arguments: bool,
    defs: Arc<HashMap<i64, (String, String)>>,
}

impl PartialEq for FunctionSignature {
    fn eq(&self, o: &Self) -> bool {
        self.arguments == o.arguments
    }
}
impl Eq for FunctionSignature {}
impl std::hash::Hash for FunctionSignature {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.arguments.hash(h)
    }
}

impl ScalarUDFImpl for FunctionSignature {
    fn name(&self) -> &str {
        if self.arguments {
            "pg_get_function_arguments"
        } else {
            "pg_get_function_result"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = &arrays[0];
        let out: StringArray = (0..oids.len())
            .map(|i| {
                let oid = match ScalarValue::try_from_array(oids, i).ok()? {
                    ScalarValue::Int32(Some(x)) => i64::from(x),
                    ScalarValue::Int64(Some(x)) => x,
                    ScalarValue::UInt32(Some(x)) => i64::from(x),
                    _ => return None,
                };
                self.defs.get(&oid).map(|(result, arguments)| {
                    if self.arguments {
                        arguments.clone()
                    } else {
                        result.clone()
                    }
                })
            })
            .collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}

/// `pg_get_function_result` and `pg_get_function_arguments` over the
/// catalog's functions (psql's `\\df`, pgJDBC's `getFunctions`), and
/// `pg_regtype_array` (`x::regtype[]`, see `sql::compat`).
pub fn signature_functions(
    statics: &datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables,
) -> Vec<ScalarUDF> {
    let types = Arc::new(TypeNames::new(statics));
    let defs = Arc::new(signatures(statics, &types));
    let mut out: Vec<ScalarUDF> = [false, true]
        .into_iter()
        .map(|arguments| {
            ScalarUDF::new_from_impl(FunctionSignature {
                signature: Signature::any(1, Volatility::Stable),
                arguments,
                defs: defs.clone(),
            })
        })
        .collect();
    out.push(ScalarUDF::new_from_impl(RegtypeArray {
        signature: Signature::any(1, Volatility::Stable),
        types: types.clone(),
        scalar: false,
    }));
    out.push(ScalarUDF::new_from_impl(RegtypeArray {
        signature: Signature::any(1, Volatility::Stable),
        types,
        scalar: true,
    }));
    out
}

/// `pg_regtype_array(oids)`: an array of type OIDs (a list, or the
/// catalog's stored text such as `[1034, 26]` or `700 701`) as the types'
/// names, which is how a `regtype[]` shows (pgcli's function listing casts
/// `proallargtypes::regtype[]`).
/// With `scalar`, `pg_regtype_name(oid)`: one type's name.
#[derive(Debug)]
struct RegtypeArray {
    signature: Signature,
    types: Arc<TypeNames>,
    scalar: bool,
}

impl PartialEq for RegtypeArray {
    fn eq(&self, o: &Self) -> bool {
        self.scalar == o.scalar
    }
}
impl Eq for RegtypeArray {}
impl std::hash::Hash for RegtypeArray {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.scalar.hash(h)
    }
}

impl ScalarUDFImpl for RegtypeArray {
    fn name(&self) -> &str {
        if self.scalar {
            "pg_regtype_name"
        } else {
            "pg_regtype_array"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        if self.scalar {
            return Ok(DataType::Utf8);
        }
        Ok(DataType::List(Arc::new(
            datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true),
        )))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{ListBuilder, StringBuilder};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = &arrays[0];
        if self.scalar {
            let out: StringArray = (0..input.len())
                .map(|i| match ScalarValue::try_from_array(input, i).ok()? {
                    ScalarValue::Int32(Some(x)) => Some(self.types.name(x)),
                    ScalarValue::Int64(Some(x)) => {
                        i32::try_from(x).ok().map(|x| self.types.name(x))
                    }
                    ScalarValue::UInt32(Some(x)) => {
                        i32::try_from(x).ok().map(|x| self.types.name(x))
                    }
                    ScalarValue::Utf8(Some(t)) => Some(t),
                    _ => None,
                })
                .collect();
            return crate::sql::functions::same_shape(&args.args, Arc::new(out));
        }
        let mut b = ListBuilder::new(StringBuilder::new());
        for i in 0..input.len() {
            let oids: Option<Vec<i32>> = match ScalarValue::try_from_array(input, i)? {
                ScalarValue::Utf8(Some(t))
                | ScalarValue::LargeUtf8(Some(t))
                | ScalarValue::Utf8View(Some(t)) => Some(
                    stored_list(&t)
                        .iter()
                        .filter_map(|x| x.parse().ok())
                        .collect(),
                ),
                ScalarValue::List(l) if !l.is_null(0) => {
                    let v = datafusion::arrow::compute::cast(&l.value(0), &DataType::Int32)?;
                    let v = v.as_any().downcast_ref::<Int32Array>().ok_or_else(|| {
                        datafusion::error::DataFusionError::Internal("oids".into())
                    })?;
                    Some(v.iter().flatten().collect())
                }
                _ => None,
            };
            match oids {
                Some(oids) => {
                    for o in oids {
                        b.values().append_value(self.types.name(o));
                    }
                    b.append(true);
                }
                None => b.append(false),
            }
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(b.finish()))
    }
}

/// The session's parameters, as `SHOW` gives them, for the statement's
/// functions: set on each statement's config by the session.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings(pub crate::engine::session::Params);

impl datafusion::common::config::ConfigExtension for SessionSettings {
    const PREFIX: &'static str = "freshet_session";
}

impl datafusion::common::config::ExtensionOptions for SessionSettings {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn cloned(&self) -> Box<dyn datafusion::common::config::ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> DfResult<()> {
        Err(datafusion::error::DataFusionError::Configuration(format!(
            "{key} is set with SET, not through the planner's options"
        )))
    }

    fn entries(&self) -> Vec<datafusion::common::config::ConfigEntry> {
        vec![]
    }
}

/// `current_setting(name [, missing_ok])`: a session parameter's value as
/// `SHOW` gives it; an unknown name fails with 42704 unless `missing_ok`
/// (then NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let params = args
            .config_options
            .extensions
            .get::<SessionSettings>()
            .cloned()
            .unwrap_or_default();
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| datafusion::error::DataFusionError::Internal("names".into()))?;
        let missing_ok = arrays
            .get(1)
            .and_then(|a| a.as_any().downcast_ref::<BooleanArray>().cloned());
        let mut out = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            if names.is_null(i) {
                out.push(None);
                continue;
            }
            let name = names.value(i);
            match params.0.get(name) {
                Some(v) => out.push(Some(v.to_string())),
                None if missing_ok
                    .as_ref()
                    .is_some_and(|m| !m.is_null(i) && m.value(i)) =>
                {
                    out.push(None)
                }
                None => {
                    return Err(datafusion::error::DataFusionError::External(Box::new(
                        crate::engine::EngineError::UndefinedObject(format!(
                            "unrecognized configuration parameter \"{name}\""
                        )),
                    )))
                }
            }
        }
        crate::sql::functions::same_shape(&args.args, Arc::new(StringArray::from(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::type_oid;

    #[test]
    fn type_names_as_postgres_spells_them() {
        assert_eq!(type_oid("integer"), Some(23));
        assert_eq!(type_oid("pg_catalog.int4"), Some(23));
        assert_eq!(type_oid("character varying(10)"), Some(1043));
        assert_eq!(type_oid("numeric(10, 2)"), Some(1700));
        assert_eq!(type_oid("integer[]"), Some(1007));
        assert_eq!(type_oid("_text"), Some(1009));
        assert_eq!(type_oid("timestamp with time zone"), Some(1184));
        assert_eq!(type_oid("Double  Precision"), Some(701));
        assert_eq!(type_oid("\"char\""), Some(18));
        assert_eq!(type_oid("char"), Some(1042));
        assert_eq!(type_oid("hstore"), None);
        assert_eq!(type_oid("void[]"), None);
    }
}

/// `shobj_description(oid, catalog)`: the comment on a shared object (a
/// database, a role). Freshet keeps none (`COMMENT ON DATABASE | ROLE` is
/// not supported), so NULL, as PostgreSQL answers for an uncommented one.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SharedDescription {
    signature: Signature,
}

impl ScalarUDFImpl for SharedDescription {
    fn name(&self) -> &str {
        "shobj_description"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let out: StringArray = (0..n.max(1)).map(|_| None::<&str>).collect();
        crate::sql::functions::same_shape(&args.args, Arc::new(out))
    }
}
