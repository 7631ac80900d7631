//! `ENCODE AVRO`: Avro binary datums to the JSON values the decoder maps
//! to columns.
//!
//! The writer's schema is given at CREATE time, inline
//! (`ENCODE AVRO (schema = '{…}')`) or as a file read then
//! (`schema.location = 'file:///…'`); it is kept in the catalog with the
//! relation, so a restart does not depend on the file. Each message is one
//! datum of that schema (optionally behind the 5-byte Confluent header:
//! `confluent_wire_format = true`). A datum becomes a JSON object whose
//! values are the text forms PostgreSQL reads for the column types:
//! timestamps as `2026-01-02 03:04:05.000006+00`, dates, times, decimals
//! exact (`-12.50`), bytes as `\x…`, enums as their symbol, nested records,
//! arrays and maps as JSON. The rest of decoding (PLAIN, UPSERT, DEBEZIUM,
//! `INCLUDE`, typing by the column's input function) is shared with JSON.

use std::collections::HashMap;

use apache_avro::schema::{Name, RecordSchema, ResolvedSchema};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::{Number, Value};

use super::decode::hex;
use super::spec::{Format, SourceSpec};
use super::ConnectorError;
use crate::catalog::RelationDef;

/// A parsed schema and the named types it defines.
#[derive(Debug)]
pub struct Codec {
    schema: Schema,
    names: HashMap<Name, Schema>,
    confluent: bool,
}

impl Codec {
    /// Parses `text` (an Avro schema in JSON).
    pub fn parse(text: &str, confluent: bool) -> Result<Codec, String> {
        let schema = Schema::parse_str(text).map_err(|e| format!("invalid Avro schema: {e}"))?;
        let names = ResolvedSchema::try_from(&schema)
            .map_err(|e| format!("invalid Avro schema: {e}"))?
            .get_names()
            .iter()
            .map(|(n, s)| (n.clone(), (*s).clone()))
            .collect();
        Ok(Codec {
            schema,
            names,
            confluent,
        })
    }

    /// The value schema of a source (`schema` in the ENCODE options).
    pub fn of_spec(spec: &SourceSpec) -> Result<Codec, String> {
        let text = spec
            .encode_options
            .get("schema")
            .ok_or("ENCODE AVRO needs a schema")?;
        Codec::parse(text, confluent(spec))
    }

    /// The key schema of a source (`key.schema`), if it has one.
    pub fn key_of_spec(spec: &SourceSpec) -> Result<Option<Codec>, String> {
        spec.encode_options
            .get("key.schema")
            .map(|text| Codec::parse(text, confluent(spec)))
            .transpose()
    }

    /// One datum (the whole of `bytes`) as JSON.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value, String> {
        let mut body = bytes;
        if self.confluent {
            match body {
                [0, _, _, _, _, rest @ ..] => body = rest,
                _ => {
                    return Err(
                        "not in the Confluent wire format (magic byte 0 and a 4-byte schema id)"
                            .into(),
                    )
                }
            }
        }
        let mut reader = body;
        let value = apache_avro::from_avro_datum(&self.schema, &mut reader, None)
            .map_err(|e| format!("invalid Avro datum: {e}"))?;
        if !reader.is_empty() {
            return Err(format!(
                "invalid Avro datum: {} bytes left after the value (not written with this schema?)",
                reader.len()
            ));
        }
        Ok(self.json(&value, &self.schema))
    }

    fn named<'s>(&'s self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self
                .names
                .get(name)
                .or_else(|| {
                    self.names
                        .iter()
                        .find(|(n, _)| n.name == name.name)
                        .map(|(_, s)| s)
                })
                .unwrap_or(schema),
            s => s,
        }
    }

    /// `value` (of `schema`) as JSON, its scalars in PostgreSQL's text
    /// forms.
    fn json(&self, value: &Avro, schema: &Schema) -> Value {
        let schema = self.named(schema);
        match value {
            Avro::Null => Value::Null,
            Avro::Boolean(b) => Value::Bool(*b),
            Avro::Int(i) => Value::from(*i),
            Avro::Long(i) => Value::from(*i),
            // the shortest text that reads back as the same f32
            Avro::Float(f) => float(f.to_string(), f64::from(*f)),
            Avro::Double(f) => float(f.to_string(), *f),
            Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(hex(b)),
            Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
            Avro::Uuid(u) => Value::String(u.to_string()),
            Avro::Union(i, inner) => {
                let variant = match schema {
                    Schema::Union(u) => u.variants().get(*i as usize),
                    _ => None,
                };
                match variant {
                    Some(s) => self.json(inner, s),
                    None => self.json(inner, schema),
                }
            }
            Avro::Array(items) => {
                let item = match schema {
                    Schema::Array(a) => Some(a.items.as_ref()),
                    _ => None,
                };
                Value::Array(
                    items
                        .iter()
                        .map(|v| self.json(v, item.unwrap_or(&Schema::Null)))
                        .collect(),
                )
            }
            Avro::Map(m) => {
                let item = match schema {
                    Schema::Map(m) => Some(m.types.as_ref()),
                    _ => None,
                };
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), self.json(&m[k], item.unwrap_or(&Schema::Null))))
                        .collect(),
                )
            }
            Avro::Record(fields) => {
                let record = match schema {
                    Schema::Record(r) => Some(r),
                    _ => None,
                };
                Value::Object(
                    fields
                        .iter()
                        .enumerate()
                        .map(|(i, (name, v))| {
                            let s = record
                                .and_then(|r| r.fields.get(i))
                                .filter(|f| &f.name == name)
                                .map(|f| &f.schema);
                            (name.clone(), self.json(v, s.unwrap_or(&Schema::Null)))
                        })
                        .collect(),
                )
            }
            Avro::Decimal(d) => {
                let scale = match schema {
                    Schema::Decimal(ds) => ds.scale,
                    _ => 0,
                };
                match Vec::<u8>::try_from(d) {
                    Ok(bytes) => Value::String(decimal_text(&bytes, scale)),
                    Err(e) => Value::String(format!("invalid decimal: {e}")),
                }
            }
            Avro::BigDecimal(d) => Value::String(d.to_string()),
            Avro::Date(days) => Value::String(
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
                    .and_then(|e| e.checked_add_signed(chrono::Duration::days(i64::from(*days))))
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| format!("invalid date: {days} days")),
            ),
            Avro::TimeMillis(ms) => Value::String(time_text(i64::from(*ms) * 1000)),
            Avro::TimeMicros(us) => Value::String(time_text(*us)),
            Avro::TimestampMillis(t) => Value::String(stamp(t.checked_mul(1000), true)),
            Avro::TimestampMicros(t) => Value::String(stamp(Some(*t), true)),
            Avro::TimestampNanos(t) => Value::String(stamp(Some(t.div_euclid(1000)), true)),
            Avro::LocalTimestampMillis(t) => Value::String(stamp(t.checked_mul(1000), false)),
            Avro::LocalTimestampMicros(t) => Value::String(stamp(Some(*t), false)),
            Avro::LocalTimestampNanos(t) => Value::String(stamp(Some(t.div_euclid(1000)), false)),
            Avro::Duration(d) => {
                let ms = u32::from(d.millis());
                Value::String(format!(
                    "{} mons {} days {}.{:03} seconds",
                    u32::from(d.months()),
                    u32::from(d.days()),
                    ms / 1000,
                    ms % 1000
                ))
            }
        }
    }
}

fn confluent(spec: &SourceSpec) -> bool {
    spec.encode_options
        .get("confluent_wire_format")
        .and_then(|v| crate::ingest::coerce::parse_bool(v))
        .unwrap_or(false)
}

/// A float as a JSON number; NaN and the infinities (which JSON has not)
/// as PostgreSQL writes them.
fn float(text: String, f: f64) -> Value {
    if f.is_nan() {
        Value::String("NaN".into())
    } else if f.is_infinite() {
        Value::String(if f > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        text.parse::<Number>()
            .ok()
            .or_else(|| Number::from_f64(f))
            .map_or(Value::Null, Value::Number)
    }
}

/// Microseconds since the epoch as a timestamp's text (`+00` when the
/// value is an instant).
fn stamp(us: Option<i64>, zoned: bool) -> String {
    match us.and_then(chrono::DateTime::from_timestamp_micros) {
        Some(t) if zoned => t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => "invalid timestamp".into(),
    }
}

/// Microseconds after midnight as a time's text.
fn time_text(us: i64) -> String {
    let us = us.rem_euclid(86_400_000_000);
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        us / 3_600_000_000,
        us / 60_000_000 % 60,
        us / 1_000_000 % 60,
        us % 1_000_000
    )
}

/// A two's-complement big-endian unscaled value with `scale` digits after
/// the point, exactly (`-1250`, scale 2: `-12.50`).
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    // magnitude, big-endian
    let mut mag: Vec<u8> = if negative {
        let mut v: Vec<u8> = bytes.iter().map(|b| !b).collect();
        for b in v.iter_mut().rev() {
            let (s, carry) = b.overflowing_add(1);
            *b = s;
            if !carry {
                break;
            }
        }
        v
    } else {
        bytes.to_vec()
    };
    // repeated division by 10
    let mut digits = Vec::new();
    while mag.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let (int, frac) = digits.split_at(digits.len() - scale);
    let mut s = String::with_capacity(digits.len() + 2);
    if negative {
        s.push('-');
    }
    s.push_str(std::str::from_utf8(int).unwrap_or("0"));
    if scale > 0 {
        s.push('.');
        s.push_str(std::str::from_utf8(frac).unwrap_or("0"));
    }
    s
}

/// The record a relation's columns are read from: the top-level record,
/// or for DEBEZIUM the record of its `after` field.
fn row_record(codec: &Codec, format: Format) -> Result<&RecordSchema, String> {
    let Schema::Record(top) = codec.named(&codec.schema) else {
        return Err("the Avro schema must be a record".into());
    };
    if format != Format::Debezium {
        return Ok(top);
    }
    for f in ["op", "after", "before"] {
        if !top.lookup.contains_key(f) {
            return Err(format!(
                "FORMAT DEBEZIUM needs a Debezium envelope: the Avro record has no field \"{f}\""
            ));
        }
    }
    let after = &top.fields[top.lookup["after"]].schema;
    let mut s = codec.named(after);
    if let Schema::Union(u) = s {
        s = u
            .variants()
            .iter()
            .map(|v| codec.named(v))
            .find(|v| matches!(v, Schema::Record(_)))
            .unwrap_or(s);
    }
    match s {
        Schema::Record(r) => Ok(r),
        _ => Err("the Debezium envelope's \"after\" is not a record".into()),
    }
}

/// CREATE time: the schema from `schema` or `schema.location` (read now
/// and kept inline), parsed, and every payload column a field of it.
pub fn prepare(def: &RelationDef, spec: &mut SourceSpec) -> Result<(), ConnectorError> {
    let opts = &mut spec.encode_options;
    if opts.contains_key("schema.registry") {
        return Err(ConnectorError::Unsupported(
            "ENCODE AVRO (schema.registry = …) is not supported: give the schema inline (schema = '…') or as a file (schema.location = 'file://…')".into(),
        ));
    }
    match (opts.contains_key("schema"), opts.remove("schema.location")) {
        (true, Some(_)) => {
            return Err(ConnectorError::InvalidOption(
                "ENCODE AVRO takes schema or schema.location, not both".into(),
            ))
        }
        (false, None) => {
            return Err(ConnectorError::InvalidOption(
                "ENCODE AVRO needs the writer's schema: (schema = '{…}') or (schema.location = 'file:///…')".into(),
            ))
        }
        (true, None) => {}
        (false, Some(location)) => {
            let path = location.strip_prefix("file://").unwrap_or(&location);
            if location.contains("://") && !location.starts_with("file://") {
                return Err(ConnectorError::Unsupported(format!(
                    "schema.location '{location}': only file:// locations are supported"
                )));
            }
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConnectorError::InvalidOption(format!(
                    "cannot read the Avro schema at '{location}': {e}"
                ))
            })?;
            opts.insert("schema".into(), text);
        }
    }
    let codec = Codec::of_spec(spec).map_err(ConnectorError::InvalidOption)?;
    Codec::key_of_spec(spec)
        .map_err(|e| ConnectorError::InvalidOption(format!("key.schema: {e}")))?;
    let record = row_record(&codec, spec.format).map_err(ConnectorError::InvalidOption)?;
    for col in super::data_columns(def, spec) {
        let found = record
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&col.name));
        if !found {
            return Err(ConnectorError::InvalidOption(format!(
                "column \"{}\" is not a field of the Avro record {} (its fields: {})",
                col.name,
                record.name.name,
                record
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "Bid", "namespace": "nexmark",
      "fields": [
        {"name": "auction", "type": "long"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "channel", "type": ["null", "string"]},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "ratio", "type": "float"},
        {"name": "raw", "type": "bytes"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "next", "type": ["null", "Kind"]}
      ]}"#;

    fn datum(codec: &Codec) -> Vec<u8> {
        let mut r = Record::new(&codec.schema).expect("record schema");
        r.put("auction", Avro::Long(7));
        r.put(
            "price",
            Avro::Decimal(apache_avro::Decimal::from((-1250i64).to_be_bytes())),
        );
        r.put("ts", Avro::TimestampMicros(1_700_000_000_000_006));
        r.put("day", Avro::Date(19_000));
        r.put(
            "channel",
            Avro::Union(1, Box::new(Avro::String("web".into()))),
        );
        r.put("kind", Avro::Enum(1, "B".into()));
        r.put("ratio", Avro::Float(0.1));
        r.put("raw", Avro::Bytes(vec![1, 0xab]));
        r.put("tags", Avro::Array(vec![Avro::String("x".into())]));
        r.put("next", Avro::Union(1, Box::new(Avro::Enum(0, "A".into()))));
        apache_avro::to_avro_datum(&codec.schema, r).expect("encode")
    }

    #[test]
    fn a_record_becomes_text_forms() {
        let codec = Codec::parse(SCHEMA, false).expect("schema");
        let v = codec.decode(&datum(&codec)).expect("decode");
        assert_eq!(v["auction"], Value::from(7));
        assert_eq!(v["price"], Value::from("-12.50"));
        assert_eq!(v["ts"], Value::from("2023-11-14 22:13:20.000006+00"));
        assert_eq!(v["day"], Value::from("2022-01-08"));
        assert_eq!(v["channel"], Value::from("web"));
        assert_eq!(v["kind"], Value::from("B"));
        assert_eq!(v["ratio"].to_string(), "0.1");
        assert_eq!(v["raw"], Value::from("\\x01ab"));
        assert_eq!(v["tags"], serde_json::json!(["x"]));
        assert_eq!(v["next"], Value::from("A"));
    }

    #[test]
    fn framing_and_trailing_bytes() {
        let plain = Codec::parse(SCHEMA, false).expect("schema");
        let confluent = Codec::parse(SCHEMA, true).expect("schema");
        let body = datum(&plain);
        let mut framed = vec![0, 0, 0, 0, 42];
        framed.extend_from_slice(&body);
        assert_eq!(
            confluent.decode(&framed).expect("framed"),
            plain.decode(&body).expect("plain")
        );
        assert!(confluent.decode(&body[..3]).is_err());
        let mut long = body.clone();
        long.push(0);
        let e = plain.decode(&long).expect_err("trailing byte");
        assert!(e.contains("1 bytes left"), "{e}");
        assert!(plain.decode(&body[..body.len() - 1]).is_err());
    }

    #[test]
    fn decimals_exactly() {
        let t = |v: i128, scale| decimal_text(&v.to_be_bytes(), scale);
        assert_eq!(t(0, 0), "0");
        assert_eq!(t(0, 2), "0.00");
        assert_eq!(t(5, 3), "0.005");
        assert_eq!(t(-5, 1), "-0.5");
        assert_eq!(t(123456789, 4), "12345.6789");
        assert_eq!(
            t(-170141183460469231731687303715884105728, 0),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(decimal_text(&[0xff], 0), "-1");
        assert_eq!(decimal_text(&[0x00, 0xff], 0), "255");
        assert_eq!(decimal_text(&[], 2), "0.00");
    }

    #[test]
    fn times_and_floats() {
        assert_eq!(time_text(3_723_000_004), "01:02:03.000004");
        assert_eq!(stamp(Some(-1), false), "1969-12-31 23:59:59.999999");
        assert_eq!(float("NaN".into(), f64::NAN), Value::from("NaN"));
        assert_eq!(
            float("-inf".into(), f64::NEG_INFINITY),
            Value::from("-Infinity")
        );
    }
}
