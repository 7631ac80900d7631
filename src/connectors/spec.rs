//! What a `CREATE SOURCE` / `CREATE TABLE … WITH (connector = …)` says,
//! validated: the connector and its options, the message format and
//! encoding, and the columns `INCLUDE` adds.
//!
//! Everything is checked at CREATE time against the connector's list of
//! options: an unknown option, a value of the wrong kind or a format the
//! connector cannot carry is an error there, never a surprise later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ConnectorError;
use crate::types::SqlType;

/// `FORMAT …`: how messages map to changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Every message is one new row.
    Plain,
    /// Keyed by the table's primary key: a message replaces the row with
    /// its key; a message without a value (or a JSON `null`) deletes it.
    Upsert,
    /// Debezium change events: `before` / `after` / `op`.
    Debezium,
}

/// `ENCODE …`: how a message's bytes are values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encode {
    Json,
    Csv,
    Avro,
    /// The whole payload into the one `bytea` column.
    Bytes,
}

/// What an `INCLUDE` column carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncludeKind {
    Key,
    Partition,
    Offset,
    Timestamp,
    Header,
    /// The message's subject (NATS, MQTT topic).
    Subject,
}

impl IncludeKind {
    pub fn parse(s: &str) -> Option<IncludeKind> {
        Some(match s {
            "key" => IncludeKind::Key,
            "partition" => IncludeKind::Partition,
            "offset" => IncludeKind::Offset,
            "timestamp" => IncludeKind::Timestamp,
            "header" => IncludeKind::Header,
            "subject" => IncludeKind::Subject,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IncludeKind::Key => "key",
            IncludeKind::Partition => "partition",
            IncludeKind::Offset => "offset",
            IncludeKind::Timestamp => "timestamp",
            IncludeKind::Header => "header",
            IncludeKind::Subject => "subject",
        }
    }

    /// The column's type: the key and a named header as bytes, the
    /// partition and the subject as text (brokers name partitions differently), the
    /// offset as a number, the broker's timestamp with its time zone, all
    /// headers as jsonb.
    pub fn column_type(self, header: Option<&str>) -> SqlType {
        match self {
            IncludeKind::Key => SqlType::Bytea,
            IncludeKind::Partition | IncludeKind::Subject => SqlType::Text,
            IncludeKind::Offset => SqlType::Int8,
            IncludeKind::Timestamp => SqlType::Timestamptz,
            IncludeKind::Header if header.is_some() => SqlType::Bytea,
            IncludeKind::Header => SqlType::Jsonb,
        }
    }
}

/// One `INCLUDE kind ['header name'] [AS column]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Include {
    pub kind: IncludeKind,
    /// `INCLUDE header 'name'`: that one header.
    #[serde(default)]
    pub header: Option<String>,
    /// The column's name.
    pub column: String,
}

/// The connector part of a relation's definition (stored in the catalog).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    pub connector: String,
    /// Every `WITH` option but `connector`, keys lowercased.
    pub options: BTreeMap<String, String>,
    pub format: Format,
    pub encode: Encode,
    /// `ENCODE … (key = value)` options.
    #[serde(default)]
    pub encode_options: BTreeMap<String, String>,
    #[serde(default)]
    pub include: Vec<Include>,
    /// `ALTER SOURCE … PAUSE` (kept across restarts).
    #[serde(default)]
    pub paused: bool,
}

/// How a source treats a message it cannot decode or store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    /// The source stops (state `failed`) at the message, storing nothing
    /// of it; `ALTER SOURCE … RESUME` tries it again.
    Fail,
    /// The message is counted, kept in `source_errors`, and passed over.
    Skip,
    /// As `skip`, and the message's bytes are kept with the error.
    DeadLetter,
}

/// The kind of value an option takes.
#[derive(Debug, Clone, Copy)]
pub enum OptKind {
    Text,
    /// A non-negative integer.
    Count,
    Bool,
    /// One of the listed words.
    OneOf(&'static [&'static str]),
}

/// An option a connector accepts: its name (a trailing `*` matches any
/// suffix) and the kind of its value.
pub type OptDef = (&'static str, OptKind);

/// Options every connector accepts.
pub const COMMON_OPTIONS: &[OptDef] = &[
    (
        "error.policy",
        OptKind::OneOf(&["fail", "skip", "dead_letter"]),
    ),
    // rows per commit: bigger batches, fewer commits
    ("source.batch.rows", OptKind::Count),
];

/// A statement's raw connector clauses, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawSpec {
    pub options: BTreeMap<String, String>,
    pub format: Option<(String, String, BTreeMap<String, String>)>,
    pub include: Vec<(String, Option<String>, Option<String>)>,
}

impl RawSpec {
    pub fn is_empty(&self) -> bool {
        self.options.is_empty() && self.format.is_none() && self.include.is_empty()
    }
}

fn unknown_option(connector: &str, key: &str) -> ConnectorError {
    ConnectorError::InvalidOption(format!(
        "unrecognized option \"{key}\" for connector '{connector}' (docs/sources.md lists its options)"
    ))
}

/// Checks one option's value against its definition.
fn check_value(key: &str, value: &str, kind: OptKind) -> Result<(), ConnectorError> {
    let bad = |what: &str| {
        ConnectorError::InvalidOption(format!(
            "invalid value for option \"{key}\": \"{value}\" ({what})"
        ))
    };
    match kind {
        OptKind::Text => Ok(()),
        OptKind::Count => value
            .trim()
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| bad("expected a non-negative integer")),
        OptKind::Bool => crate::ingest::coerce::parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| bad("expected true or false")),
        OptKind::OneOf(words) => {
            if words.iter().any(|w| w.eq_ignore_ascii_case(value.trim())) {
                Ok(())
            } else {
                Err(bad(&format!("expected one of {}", words.join(", "))))
            }
        }
    }
}

fn find_def<'a>(defs: &'a [OptDef], key: &str) -> Option<&'a OptDef> {
    defs.iter().find(|(name, _)| match name.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix) && key.len() > prefix.len(),
        None => *name == key,
    })
}

/// The kind and bounds of a PostgreSQL table storage parameter.
#[derive(Clone, Copy)]
enum Reloption {
    Int(i64, i64),
    Real(f64, f64),
    Bool,
    /// `vacuum_index_cleanup`: auto, or a boolean.
    AutoBool,
}

/// PostgreSQL 15's table storage parameters (`reloptions.c`), `toast.`
/// ones included (the `autovacuum_*` subset).
fn reloption(k: &str) -> Option<Reloption> {
    use Reloption::*;
    const MAX: i64 = i32::MAX as i64;
    let autovacuum = |k: &str| -> Option<Reloption> {
        Some(match k {
            "autovacuum_enabled" => Bool,
            "autovacuum_vacuum_threshold" => Int(0, MAX),
            "autovacuum_vacuum_insert_threshold" => Int(-1, MAX),
            "autovacuum_vacuum_cost_limit" => Int(1, 10_000),
            "autovacuum_freeze_min_age" | "autovacuum_multixact_freeze_min_age" => {
                Int(0, 1_000_000_000)
            }
            "autovacuum_freeze_max_age" => Int(100_000, 2_000_000_000),
            "autovacuum_multixact_freeze_max_age" => Int(10_000, 2_000_000_000),
            "autovacuum_freeze_table_age" | "autovacuum_multixact_freeze_table_age" => {
                Int(0, 2_000_000_000)
            }
            "autovacuum_vacuum_cost_delay"
            | "autovacuum_vacuum_scale_factor"
            | "autovacuum_vacuum_insert_scale_factor" => Real(0.0, 100.0),
            "log_autovacuum_min_duration" => Int(-1, MAX),
            "vacuum_truncate" => Bool,
            "vacuum_index_cleanup" => AutoBool,
            _ => return None,
        })
    };
    if let Some(t) = k.strip_prefix("toast.") {
        return autovacuum(t);
    }
    Some(match k {
        "fillfactor" => Int(10, 100),
        "toast_tuple_target" => Int(128, 8160),
        "parallel_workers" => Int(0, 1024),
        "user_catalog_table" => Bool,
        // (analyze options: not for TOAST tables)
        "autovacuum_analyze_threshold" => Int(0, MAX),
        "autovacuum_analyze_scale_factor" => Real(0.0, 100.0),
        _ => return autovacuum(k),
    })
}

/// Checks a PostgreSQL storage parameter's value as PostgreSQL does (same
/// messages); Freshet then ignores it.
fn check_reloption(k: &str, v: &str) -> Result<(), ConnectorError> {
    let bad = |m: String| Err(ConnectorError::InvalidOption(m));
    let Some(kind) = reloption(k) else {
        return bad(format!(
            "unrecognized parameter \"{k}\" (a relation without a connector takes only PostgreSQL's storage parameters)"
        ));
    };
    let v = v.trim();
    match kind {
        Reloption::Bool => match crate::ingest::coerce::parse_bool(v) {
            Some(_) => Ok(()),
            None => bad(format!("invalid value for boolean option \"{k}\": {v}")),
        },
        Reloption::AutoBool => {
            if v.eq_ignore_ascii_case("auto") || crate::ingest::coerce::parse_bool(v).is_some() {
                Ok(())
            } else {
                bad(format!("invalid value for enum option \"{k}\": {v}"))
            }
        }
        Reloption::Int(lo, hi) => match v.parse::<f64>().ok().filter(|f| f.is_finite()) {
            None => bad(format!("invalid value for integer option \"{k}\": {v}")),
            Some(f) if f.round() < lo as f64 || f.round() > hi as f64 => {
                bad(format!("value {v} out of bounds for option \"{k}\""))
            }
            Some(_) => Ok(()),
        },
        Reloption::Real(lo, hi) => match v.parse::<f64>().ok().filter(|f| f.is_finite()) {
            None => bad(format!(
                "invalid value for floating point option \"{k}\": {v}"
            )),
            Some(f) if f < lo || f > hi => {
                bad(format!("value {v} out of bounds for option \"{k}\""))
            }
            Some(_) => Ok(()),
        },
    }
}

/// Validates a statement's connector clauses into a spec (`None`: no
/// connector). `table` says whether it is a `CREATE TABLE`;
/// `primary_key` whether the relation has one.
pub fn validate(
    raw: &RawSpec,
    table: bool,
    primary_key: bool,
) -> Result<Option<SourceSpec>, ConnectorError> {
    let mut options = raw.options.clone();
    let Some(connector) = options.remove("connector") else {
        if raw.format.is_some() || !raw.include.is_empty() {
            return Err(ConnectorError::InvalidOption(
                "FORMAT, ENCODE and INCLUDE need a connector: WITH (connector = '…')".into(),
            ));
        }
        // PostgreSQL's storage parameters tune its heap, which Freshet
        // does not have: accepted (dumps carry them) and without effect
        for (k, v) in &options {
            if !table {
                return Err(ConnectorError::InvalidOption(format!(
                    "unrecognized parameter \"{k}\" (a relation without a connector takes only PostgreSQL's storage parameters)"
                )));
            }
            check_reloption(k, v)?;
        }
        return Ok(None);
    };
    let connector = connector.trim().to_ascii_lowercase();
    let kind = super::kind(&connector).ok_or_else(|| {
        ConnectorError::InvalidOption(format!(
            "unknown connector '{connector}' (known: {})",
            super::CONNECTORS
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    for (k, v) in &options {
        let def = find_def(kind.options, k)
            .or_else(|| find_def(COMMON_OPTIONS, k))
            .ok_or_else(|| unknown_option(&connector, k))?;
        check_value(k, v, def.1)?;
    }
    for required in kind.required {
        if !options.contains_key(*required) {
            return Err(ConnectorError::InvalidOption(format!(
                "connector '{connector}' needs option \"{required}\""
            )));
        }
    }
    let (format, encode, encode_options) = match &raw.format {
        None => (kind.default_format, kind.default_encode, BTreeMap::new()),
        Some((f, e, eo)) => {
            let format = match f.as_str() {
                "plain" => Format::Plain,
                "upsert" => Format::Upsert,
                "debezium" => Format::Debezium,
                other => {
                    return Err(ConnectorError::InvalidOption(format!(
                        "unknown FORMAT {other} (expected PLAIN, UPSERT or DEBEZIUM)"
                    )))
                }
            };
            let encode = match e.as_str() {
                "json" => Encode::Json,
                "csv" => Encode::Csv,
                "avro" => Encode::Avro,
                "bytes" => Encode::Bytes,
                other => {
                    return Err(ConnectorError::InvalidOption(format!(
                        "unknown ENCODE {other} (expected JSON, CSV, AVRO or BYTES)"
                    )))
                }
            };
            (format, encode, eo.clone())
        }
    };
    if !kind.encodes.contains(&encode) {
        return Err(ConnectorError::InvalidOption(format!(
            "connector '{connector}' does not take ENCODE {}",
            encode_name(encode)
        )));
    }
    for (k, v) in &encode_options {
        let def: &[OptDef] = match encode {
            Encode::Csv => &[
                ("delimiter", OptKind::Text),
                ("without_header", OptKind::Bool),
            ],
            Encode::Avro => &[
                ("schema", OptKind::Text),
                ("schema.location", OptKind::Text),
                ("schema.registry", OptKind::Text),
                ("key.schema", OptKind::Text),
                ("confluent_wire_format", OptKind::Bool),
            ],
            _ => &[],
        };
        let d = find_def(def, k).ok_or_else(|| {
            ConnectorError::InvalidOption(format!(
                "unrecognized ENCODE {} option \"{k}\"",
                encode_name(encode)
            ))
        })?;
        check_value(k, v, d.1)?;
        if k == "delimiter" && v.chars().count() != 1 {
            return Err(ConnectorError::InvalidOption(
                "the CSV delimiter must be a single character".into(),
            ));
        }
    }
    match format {
        Format::Plain => {}
        Format::Upsert | Format::Debezium => {
            if !table || !primary_key {
                return Err(ConnectorError::InvalidOption(format!(
                    "FORMAT {} needs a table with a primary key: CREATE TABLE … (…, PRIMARY KEY (…))",
                    format_name(format)
                )));
            }
            if !matches!(encode, Encode::Json | Encode::Avro) {
                return Err(ConnectorError::Unsupported(format!(
                    "FORMAT {} is supported with ENCODE JSON or AVRO only",
                    format_name(format)
                )));
            }
        }
    }
    if !kind.formats.contains(&format) {
        return Err(ConnectorError::InvalidOption(format!(
            "connector '{connector}' does not take FORMAT {}",
            format_name(format)
        )));
    }
    let mut include = Vec::new();
    for (what, header, alias) in &raw.include {
        let k = IncludeKind::parse(what).ok_or_else(|| {
            ConnectorError::InvalidOption(format!(
                "unknown INCLUDE {what} (expected key, partition, offset, timestamp, header or subject)"
            ))
        })?;
        if !kind.includes.contains(&k) {
            return Err(ConnectorError::InvalidOption(format!(
                "connector '{connector}' cannot INCLUDE {}",
                k.as_str()
            )));
        }
        if header.is_some() && k != IncludeKind::Header {
            return Err(ConnectorError::InvalidOption(format!(
                "INCLUDE {} takes no name",
                k.as_str()
            )));
        }
        let column = match alias {
            Some(a) => a.clone(),
            None => format!(
                "_rw_{connector}_{}{}",
                k.as_str(),
                header.as_ref().map(|h| format!("_{h}")).unwrap_or_default()
            )
            .replace('-', "_"),
        };
        include.push(Include {
            kind: k,
            header: header.clone(),
            column,
        });
    }
    let spec = SourceSpec {
        connector,
        options,
        format,
        encode,
        encode_options,
        include,
        paused: false,
    };
    spec.error_policy()?;
    Ok(Some(spec))
}

pub fn format_name(f: Format) -> &'static str {
    match f {
        Format::Plain => "PLAIN",
        Format::Upsert => "UPSERT",
        Format::Debezium => "DEBEZIUM",
    }
}

pub fn encode_name(e: Encode) -> &'static str {
    match e {
        Encode::Json => "JSON",
        Encode::Csv => "CSV",
        Encode::Avro => "AVRO",
        Encode::Bytes => "BYTES",
    }
}

impl SourceSpec {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }

    /// An integer option, or `default`.
    pub fn count(&self, key: &str, default: u64) -> Result<u64, ConnectorError> {
        match self.option(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                ConnectorError::InvalidOption(format!(
                    "invalid value for option \"{key}\": \"{v}\" (expected a non-negative integer)"
                ))
            }),
        }
    }

    pub fn error_policy(&self) -> Result<ErrorPolicy, ConnectorError> {
        Ok(
            match self
                .option("error.policy")
                .map(|s| s.trim().to_ascii_lowercase())
            {
                None => ErrorPolicy::Fail,
                Some(s) if s == "fail" => ErrorPolicy::Fail,
                Some(s) if s == "skip" => ErrorPolicy::Skip,
                Some(s) if s == "dead_letter" => ErrorPolicy::DeadLetter,
                Some(s) => {
                    return Err(ConnectorError::InvalidOption(format!(
                        "invalid value for option \"error.policy\": \"{s}\""
                    )))
                }
            },
        )
    }

    /// The clauses as they would be written again (`SHOW CREATE`).
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        if !self.include.is_empty() {
            for i in &self.include {
                out.push_str(" INCLUDE ");
                out.push_str(i.kind.as_str());
                if let Some(h) = &i.header {
                    out.push_str(&format!(" '{}'", h.replace('\'', "''")));
                }
                out.push_str(&format!(
                    " AS {}",
                    crate::sql::format::quote_ident(&i.column)
                ));
            }
        }
        out.push_str(&format!(
            " WITH (connector = '{}'",
            self.connector.replace('\'', "''")
        ));
        for (k, v) in &self.options {
            out.push_str(&format!(", {k} = '{}'", v.replace('\'', "''")));
        }
        out.push_str(&format!(
            ") FORMAT {} ENCODE {}",
            format_name(self.format),
            encode_name(self.encode)
        ));
        if !self.encode_options.is_empty() {
            let opts: Vec<String> = self
                .encode_options
                .iter()
                .map(|(k, v)| format!("{k} = '{}'", v.replace('\'', "''")))
                .collect();
            out.push_str(&format!(" ({})", opts.join(", ")));
        }
        out
    }
}
