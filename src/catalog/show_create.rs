//! `SHOW CREATE SOURCE | TABLE | MATERIALIZED VIEW | VIEW name`: the
//! statement that would create the relation as it is now (its current
//! name, columns and connector options, including the ones fixed at
//! CREATE such as a generator's base time).

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

use super::{RelationDef, RelationKind};
use crate::sql::format::quote_ident;

/// The result's columns (RisingWave's names).
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Name", DataType::Utf8, false),
        Field::new("Create Sql", DataType::Utf8, false),
    ]))
}

fn qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((s, n)) => format!("{}.{}", quote_ident(s), quote_ident(n)),
        None => quote_ident(name),
    }
}

/// The CREATE statement of `def`.
pub fn create_sql(def: &RelationDef) -> String {
    let name = qualified(&def.name);
    match def.kind {
        RelationKind::Source | RelationKind::Table => {
            let included = |c: &str| {
                def.source
                    .as_ref()
                    .is_some_and(|s| s.include.iter().any(|i| i.column == c))
            };
            let mut parts: Vec<String> = def
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| !included(&c.name))
                .map(|(i, c)| {
                    let mut s = format!("{} {}", quote_ident(&c.name), c.ty);
                    if def.primary_key == [i] {
                        s.push_str(" PRIMARY KEY");
                    } else if !c.nullable && !def.primary_key.contains(&i) {
                        s.push_str(" NOT NULL");
                    }
                    s
                })
                .collect();
            if def.primary_key.len() > 1 {
                let cols: Vec<String> = def
                    .primary_key
                    .iter()
                    .map(|&i| quote_ident(&def.columns[i].name))
                    .collect();
                parts.push(format!("PRIMARY KEY ({})", cols.join(", ")));
            }
            if let Some(w) = &def.watermark {
                parts.push(format!(
                    "WATERMARK FOR {} AS {}",
                    quote_ident(&w.column),
                    w.expr
                ));
            }
            let kind = if def.kind == RelationKind::Source {
                "SOURCE"
            } else {
                "TABLE"
            };
            let mut out = format!("CREATE {kind} {name} ({})", parts.join(", "));
            if let Some(spec) = &def.source {
                out.push_str(&spec.to_sql());
            }
            out
        }
        RelationKind::View | RelationKind::PlainView => {
            let kind = if def.kind == RelationKind::View {
                "MATERIALIZED VIEW"
            } else {
                "VIEW"
            };
            format!(
                "CREATE {kind} {name} AS {}",
                def.query.as_deref().unwrap_or_default()
            )
        }
    }
}

pub fn batch(def: &RelationDef) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![def.name.clone()])),
            Arc::new(StringArray::from(vec![create_sql(def)])),
        ],
    )
}
