//! `connector = 'datagen'`: rows of generated values, per column, with
//! RisingWave's option names:
//!
//! - `fields.<col>.kind = 'sequence'` (`start`, `end`: the source ends
//!   after `end`) or `'random'` (`min`, `max`; `length` for text;
//!   `max_past` for timestamps, e.g. `'1h'`; `seed`);
//! - `datagen.rows.per.second` (default 10; 0: as fast as possible).
//!
//! Row `n`'s values are a function of `n` and the seeds, so the position
//! is the next row number and a restart regenerates what it had not
//! stored.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use serde_json::Value;

use super::pace::{mix, Pacer};
use super::runner::{Chunk, Polled};
use super::spec::{OptDef, OptKind, SourceSpec};
use super::ConnectorError;
use crate::catalog::{ColumnDef, RelationDef};
use crate::types::SqlType;

pub const OPTIONS: &[OptDef] = &[
    ("datagen.rows.per.second", OptKind::Count),
    ("datagen.split.num", OptKind::Count),
    ("datagen.base.time", OptKind::Count),
    ("fields.*", OptKind::Text),
];

const FIELD_KEYS: &[&str] = &[
    "kind", "start", "end", "min", "max", "length", "seed", "max_past",
];

#[derive(Debug, Clone)]
enum Gen {
    Sequence {
        start: i64,
        end: Option<i64>,
    },
    Random {
        min: f64,
        max: f64,
        length: usize,
        seed: u64,
        max_past_us: i64,
    },
}

fn field_option<'a>(spec: &'a SourceSpec, col: &str, key: &str) -> Option<&'a str> {
    spec.option(&format!("fields.{col}.{key}"))
}

fn number(spec: &SourceSpec, col: &str, key: &str) -> Result<Option<f64>, ConnectorError> {
    match field_option(spec, col, key) {
        None => Ok(None),
        Some(v) => v.trim().parse::<f64>().map(Some).map_err(|_| {
            ConnectorError::InvalidOption(format!(
                "invalid value for option \"fields.{col}.{key}\": \"{v}\" (expected a number)"
            ))
        }),
    }
}

/// `'10s'`, `'5m'`, `'1h'`, `'2d'`, or seconds.
fn duration_us(v: &str) -> Option<i64> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.trim().parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1e6,
        "ms" => 1e3,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        "d" => 86400e6,
        _ => return None,
    };
    Some((n * mult) as i64)
}

fn generators(def: &RelationDef, spec: &SourceSpec) -> Result<Vec<Gen>, ConnectorError> {
    for key in spec.options.keys().filter(|k| k.starts_with("fields.")) {
        let rest = &key["fields.".len()..];
        let Some((col, what)) = rest.rsplit_once('.') else {
            return Err(ConnectorError::InvalidOption(format!(
                "unrecognized option \"{key}\" (expected fields.<column>.<kind|start|end|min|max|length|seed|max_past>)"
            )));
        };
        if !def.columns.iter().any(|c| c.name == col) {
            return Err(ConnectorError::InvalidOption(format!(
                "option \"{key}\" names column \"{col}\", which does not exist"
            )));
        }
        if !FIELD_KEYS.contains(&what) {
            return Err(ConnectorError::InvalidOption(format!(
                "unrecognized option \"{key}\" (expected one of {})",
                FIELD_KEYS.join(", ")
            )));
        }
    }
    def.columns
        .iter()
        .enumerate()
        .map(|(i, c)| generator(spec, c, i))
        .collect()
}

fn generator(spec: &SourceSpec, c: &ColumnDef, i: usize) -> Result<Gen, ConnectorError> {
    let name = &c.name;
    let kind = field_option(spec, name, "kind").map(str::to_ascii_lowercase);
    let numeric = matches!(
        c.ty,
        SqlType::Int2
            | SqlType::Int4
            | SqlType::Int8
            | SqlType::Float4
            | SqlType::Float8
            | SqlType::Numeric { .. }
    );
    let supported = numeric
        || matches!(
            c.ty,
            SqlType::Text
                | SqlType::Varchar { .. }
                | SqlType::Bool
                | SqlType::Timestamp
                | SqlType::Timestamptz
        );
    if !supported {
        return Err(ConnectorError::Unsupported(format!(
            "datagen cannot generate column \"{name}\" of type {}",
            c.ty
        )));
    }
    match kind.as_deref() {
        Some("sequence") => {
            if !numeric {
                return Err(ConnectorError::InvalidOption(format!(
                    "fields.{name}.kind 'sequence' needs a numeric column"
                )));
            }
            let start = number(spec, name, "start")?.unwrap_or(1.0) as i64;
            let end = number(spec, name, "end")?.map(|e| e as i64);
            if end.is_some_and(|e| e < start) {
                return Err(ConnectorError::InvalidOption(format!(
                    "fields.{name}.end is before fields.{name}.start"
                )));
            }
            Ok(Gen::Sequence { start, end })
        }
        None | Some("random") => {
            let min = number(spec, name, "min")?.unwrap_or(0.0);
            let max = number(spec, name, "max")?.unwrap_or(if numeric { 32767.0 } else { 0.0 });
            if max < min {
                return Err(ConnectorError::InvalidOption(format!(
                    "fields.{name}.max is below fields.{name}.min"
                )));
            }
            let max_past_us = match field_option(spec, name, "max_past") {
                None => 86_400_000_000,
                Some(v) => duration_us(v).ok_or_else(|| {
                    ConnectorError::InvalidOption(format!(
                        "invalid value for option \"fields.{name}.max_past\": \"{v}\" (expected a duration such as '1h')"
                    ))
                })?,
            };
            Ok(Gen::Random {
                min,
                max,
                length: number(spec, name, "length")?.unwrap_or(10.0).clamp(0.0, 1e6) as usize,
                seed: number(spec, name, "seed")?.map(|s| s as u64).unwrap_or(i as u64 + 1),
                max_past_us,
            })
        }
        Some(other) => Err(ConnectorError::InvalidOption(format!(
            "invalid value for option \"fields.{name}.kind\": \"{other}\" (expected sequence or random)"
        ))),
    }
}

/// At CREATE: every option names a column, every column can be generated.
pub fn check(def: &mut RelationDef, spec: &SourceSpec) -> Result<(), ConnectorError> {
    generators(def, spec).map(|_| ())
}

/// Fixes the time random timestamps count back from.
pub fn base_time(spec: &mut SourceSpec) {
    spec.options
        .entry("datagen.base.time".into())
        .or_insert_with(|| chrono::Utc::now().timestamp_millis().to_string());
}

pub struct Reader {
    gens: Vec<Gen>,
    def: Arc<RelationDef>,
    next: u64,
    /// Rows in all (the smallest sequence's length), if bounded.
    end: Option<u64>,
    base_us: i64,
    pacer: Pacer,
}

impl Reader {
    pub fn open(
        def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let gens = generators(def, spec)?;
        let end = gens
            .iter()
            .filter_map(|g| match g {
                Gen::Sequence {
                    start,
                    end: Some(e),
                } => Some((e - start + 1) as u64),
                _ => None,
            })
            .min();
        let next = position
            .as_ref()
            .and_then(|p| p.get("next"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(Reader {
            gens,
            def: Arc::new(def.clone()),
            next,
            end,
            base_us: spec.count("datagen.base.time", 1_767_225_600_000)? as i64 * 1000,
            pacer: Pacer::new(
                next,
                spec.count("datagen.rows.per.second", 10)?,
                1_000_000_000,
            ),
        })
    }

    fn value(&self, g: &Gen, col: &ColumnDef, n: u64) -> String {
        match g {
            Gen::Sequence { start, .. } => (start + n as i64).to_string(),
            Gen::Random {
                min,
                max,
                length,
                seed,
                max_past_us,
            } => {
                let r = mix(seed.wrapping_mul(0x1000_0000_01b3) ^ mix(n));
                let unit = (r >> 11) as f64 / (1u64 << 53) as f64;
                match col.ty {
                    SqlType::Bool => (r & 1 == 1).to_string(),
                    SqlType::Text | SqlType::Varchar { .. } => {
                        const ALPHA: &[u8] =
                            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                        let mut s = String::with_capacity(*length);
                        let mut x = r;
                        for _ in 0..*length {
                            x = mix(x);
                            s.push(ALPHA[(x % ALPHA.len() as u64) as usize] as char);
                        }
                        s
                    }
                    SqlType::Timestamp | SqlType::Timestamptz => {
                        let us = self.base_us - (unit * *max_past_us as f64) as i64;
                        chrono::DateTime::from_timestamp_micros(us)
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                            .unwrap_or_default()
                    }
                    SqlType::Float4 | SqlType::Float8 | SqlType::Numeric { .. } => {
                        format!("{}", min + unit * (max - min))
                    }
                    _ => {
                        let span = (max.floor() - min.ceil()) as u64 + 1;
                        (min.ceil() as i64 + (r % span.max(1)) as i64).to_string()
                    }
                }
            }
        }
    }

    fn generate(&self, from: u64, to: u64) -> Result<RecordBatch, ConnectorError> {
        let n = (to - from) as usize;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.gens.len());
        for (g, col) in self.gens.iter().zip(&self.def.columns) {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            for row in from..to {
                b.append_value(self.value(g, col, row));
            }
            let arr = crate::ingest::coerce::from_text(&b.finish(), col).map_err(|e| {
                ConnectorError::Decode(format!("column \"{}\": {}", col.name, e.message))
            })?;
            arrays.push(arr);
        }
        RecordBatch::try_new(self.def.schema(), arrays)
            .map_err(|e| ConnectorError::Decode(e.to_string()))
    }
}

#[async_trait::async_trait]
impl super::runner::Reader for Reader {
    async fn poll(&mut self, max: usize) -> Result<Option<Polled>, ConnectorError> {
        let end = self.end.unwrap_or(u64::MAX);
        if self.next >= end {
            return Ok(None);
        }
        let to = end
            .min(self.next.saturating_add(max as u64))
            .min(self.pacer.due(self.next).await);
        let batch = self.generate(self.next, to)?;
        self.next = to;
        Ok(Some(Polled {
            chunk: Chunk::Rows(batch),
            position: serde_json::json!({ "next": to }),
        }))
    }

    fn lag(&self) -> Option<i64> {
        self.end.map(|e| (e - self.next) as i64)
    }
}
