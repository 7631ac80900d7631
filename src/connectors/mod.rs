//! Event streams in: connectors read an upstream (a broker, a generator,
//! an HTTP request), turn its messages into rows, and hand rows and the
//! upstream position after them to the committer as one op
//! ([`crate::engine::commit::Ingest`]): both land in one sled batch, so a
//! restart resumes exactly after the last rows stored.
//!
//! - [`spec`]: the `WITH (connector = …) FORMAT … ENCODE … INCLUDE …`
//!   clauses, validated at CREATE time;
//! - [`decode`]: messages to rows (JSON, CSV, bytes; plain, upsert,
//!   Debezium);
//! - [`runner`]: one task per source: poll, decode, commit, acknowledge;
//!   pause, resume, stop; its status;
//! - one file per upstream ([`nexmark`], [`datagen`]) and [`http`] for
//!   pushed data.

pub mod avro;
pub mod catalog;
pub mod datagen;
pub mod decode;
pub mod http;
pub mod kafka;
pub mod mqtt;
pub mod nats;
pub mod nexmark;
pub mod pace;
pub mod postgres_cdc;
pub mod rabbitmq;
pub mod redelivery;
pub mod runner;
pub mod spec;

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::catalog::{ColumnDef, RelationDef};
use crate::engine::Engine;
use spec::{Encode, Format, IncludeKind, OptDef, OptKind, SourceSpec};

/// Errors of the connector layer; mapped to SQLSTATEs at the wire.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// An option that is unknown, missing or of the wrong kind (22023).
    #[error("{0}")]
    InvalidOption(String),
    /// A connector, format or option not implemented (0A000).
    #[error("{0}")]
    Unsupported(String),
    /// The upstream cannot be reached (08001).
    #[error("{0}")]
    Unreachable(String),
    /// A message that is not what the format says (22P02).
    #[error("{0}")]
    Decode(String),
    /// `ALTER SOURCE` on a relation without a connector (42809).
    #[error("{0}")]
    NotConnected(String),
}

impl ConnectorError {
    /// `what` cannot be reached, and why.
    pub fn unreachable(what: &str, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Unreachable(format!("{what}: {e}"))
    }
}

/// What one connector accepts.
pub struct ConnectorKind {
    pub name: &'static str,
    pub options: &'static [OptDef],
    pub required: &'static [&'static str],
    pub formats: &'static [Format],
    pub encodes: &'static [Encode],
    pub includes: &'static [IncludeKind],
    pub default_encode: Encode,
    /// The format without a FORMAT clause.
    pub default_format: Format,
    /// Whether it is implemented (the others are known names that CREATE
    /// refuses with 0A000).
    pub available: bool,
}

const PLAIN: &[Format] = &[Format::Plain];
const ALL_FORMATS: &[Format] = &[Format::Plain, Format::Upsert, Format::Debezium];
const MESSAGE_ENCODES: &[Encode] = &[Encode::Json, Encode::Csv, Encode::Avro, Encode::Bytes];

/// Every connector Freshet knows.
pub const CONNECTORS: &[ConnectorKind] = &[
    ConnectorKind {
        name: "nexmark",
        options: nexmark::OPTIONS,
        required: &[],
        formats: PLAIN,
        encodes: &[Encode::Json],
        includes: &[],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "datagen",
        options: datagen::OPTIONS,
        required: &[],
        formats: PLAIN,
        encodes: &[Encode::Json],
        includes: &[],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "kafka",
        options: &[
            ("topic", OptKind::Text),
            ("properties.*", OptKind::Text),
            (
                "scan.startup.mode",
                OptKind::OneOf(&["earliest", "latest", "timestamp"]),
            ),
            ("scan.startup.timestamp.millis", OptKind::Count),
        ],
        required: &["topic", "properties.bootstrap.server"],
        formats: ALL_FORMATS,
        encodes: MESSAGE_ENCODES,
        includes: &[
            IncludeKind::Key,
            IncludeKind::Partition,
            IncludeKind::Offset,
            IncludeKind::Timestamp,
            IncludeKind::Header,
        ],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "rabbitmq",
        options: &[("url", OptKind::Text), ("queue", OptKind::Text)],
        required: &["queue"],
        formats: ALL_FORMATS,
        encodes: MESSAGE_ENCODES,
        includes: &[
            IncludeKind::Key,
            IncludeKind::Subject,
            IncludeKind::Timestamp,
            IncludeKind::Header,
        ],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "nats",
        options: &[
            ("server_url", OptKind::Text),
            ("subject", OptKind::Text),
            ("stream", OptKind::Text),
            ("scan.startup.mode", OptKind::OneOf(&["earliest", "latest"])),
        ],
        required: &["subject"],
        formats: ALL_FORMATS,
        encodes: MESSAGE_ENCODES,
        includes: &[
            IncludeKind::Subject,
            IncludeKind::Offset,
            IncludeKind::Timestamp,
            IncludeKind::Header,
        ],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "mqtt",
        options: &[
            ("url", OptKind::Text),
            ("topic", OptKind::Text),
            ("qos", OptKind::OneOf(&["at_least_once", "exactly_once"])),
            ("client_prefix", OptKind::Text),
            ("client.id", OptKind::Text),
        ],
        required: &["topic"],
        formats: ALL_FORMATS,
        encodes: MESSAGE_ENCODES,
        includes: &[IncludeKind::Subject],
        default_encode: Encode::Json,
        default_format: Format::Plain,
        available: true,
    },
    ConnectorKind {
        name: "postgres-cdc",
        options: &[
            ("hostname", OptKind::Text),
            ("port", OptKind::Count),
            ("username", OptKind::Text),
            ("password", OptKind::Text),
            ("database.name", OptKind::Text),
            ("schema.name", OptKind::Text),
            ("table.name", OptKind::Text),
            ("slot.name", OptKind::Text),
            ("publication.name", OptKind::Text),
        ],
        required: &["hostname", "username", "database.name", "table.name"],
        formats: &[Format::Debezium],
        encodes: &[Encode::Json],
        includes: &[],
        default_encode: Encode::Json,
        default_format: Format::Debezium,
        available: true,
    },
];

pub fn kind(name: &str) -> Option<&'static ConnectorKind> {
    CONNECTORS.iter().find(|c| c.name == name)
}

/// Validates a CREATE statement's connector clauses and completes the
/// definition: the spec, and one column per `INCLUDE`.
pub fn prepare(def: &mut RelationDef, raw: &spec::RawSpec) -> Result<(), ConnectorError> {
    let table = def.kind == crate::catalog::RelationKind::Table;
    let Some(mut spec) = spec::validate(raw, table, !def.primary_key.is_empty())? else {
        return Ok(());
    };
    let kind = kind(&spec.connector).ok_or_else(|| {
        ConnectorError::InvalidOption(format!("unknown connector '{}'", spec.connector))
    })?;
    if !kind.available {
        return Err(ConnectorError::Unsupported(format!(
            "connector '{}' is not supported yet (available: {})",
            spec.connector,
            CONNECTORS
                .iter()
                .filter(|c| c.available)
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for inc in &spec.include {
        if def.columns.iter().any(|c| c.name == inc.column) {
            return Err(ConnectorError::InvalidOption(format!(
                "INCLUDE {} AS {}: column \"{}\" already exists",
                inc.kind.as_str(),
                inc.column,
                inc.column
            )));
        }
        def.columns.push(ColumnDef {
            name: inc.column.clone(),
            ty: inc.kind.column_type(inc.header.as_deref()),
            nullable: true,
        });
    }
    match spec.connector.as_str() {
        "nexmark" => {
            nexmark::check(def, &spec)?;
            nexmark::base_time(&mut spec);
        }
        "datagen" => {
            datagen::check(def, &spec)?;
            datagen::base_time(&mut spec);
        }
        // What the source holds upstream is named once, here, and kept
        // with the definition: unique to this relation of this database of
        // this server, so that another database's relation with the same
        // name and id (or another server on the same upstream) never
        // shares a session or a replication slot with it.
        "mqtt" => {
            let id = format!(
                "{}-{}-{}",
                spec.option("client_prefix").unwrap_or("freshet"),
                def.name,
                unique_suffix()
            );
            spec.options.entry("client.id".into()).or_insert(id);
        }
        "postgres-cdc" => {
            let name = postgres_cdc::object_name("freshet", def, &unique_suffix());
            for k in ["slot.name", "publication.name"] {
                spec.options.entry(k.into()).or_insert_with(|| name.clone());
            }
        }
        _ => {}
    }
    if spec.encode == Encode::Avro {
        avro::prepare(def, &mut spec)?;
    }
    if spec.encode == Encode::Bytes {
        let data: Vec<&ColumnDef> = data_columns(def, &spec);
        if data.len() != 1 || data[0].ty != crate::types::SqlType::Bytea {
            return Err(ConnectorError::InvalidOption(
                "ENCODE BYTES needs exactly one column (besides INCLUDE columns), of type bytea"
                    .into(),
            ));
        }
    }
    def.source = Some(spec);
    Ok(())
}

/// Eight hex digits that differ between any two calls (a hash of the
/// time, the process and a counter).
fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let h = redelivery::fnv(&[
        &t.to_le_bytes(),
        &std::process::id().to_le_bytes(),
        &n.to_le_bytes(),
    ]);
    format!("{:08x}", h as u32)
}

/// `ALTER SOURCE | TABLE name PAUSE | RESUME` (kept across restarts).
/// RESUME also restarts a source stopped at a bad message.
pub async fn set_paused(
    engine: &Engine,
    kind: crate::catalog::RelationKind,
    name: &str,
    paused: bool,
    actor: &str,
) -> Result<(), crate::engine::EngineError> {
    let _ddl = engine.ddl_lock.lock().await;
    let def = engine
        .relation(name)
        .ok_or_else(|| crate::catalog::CatalogError::NotFound(name.to_string()))?;
    if def.kind != kind {
        return Err(crate::engine::EngineError::WrongObjectType(format!(
            "\"{}\" is not a {}",
            def.name,
            kind.as_str()
        )));
    }
    crate::auth::check_owner(&engine.access().roles, actor, &def)?;
    let Some(spec) = &def.source else {
        return Err(ConnectorError::NotConnected(format!(
            "{} \"{}\" has no connector to {}",
            def.kind.as_str(),
            def.name,
            if paused { "pause" } else { "resume" }
        ))
        .into());
    };
    if spec.paused != paused {
        let mut new = (*def).clone();
        if let Some(s) = new.source.as_mut() {
            s.paused = paused;
        }
        engine.redefine(new).await?;
    }
    engine.connectors.set_paused(def.id, paused);
    Ok(())
}

/// The columns a message's payload fills (not the `INCLUDE` ones).
pub fn data_columns<'a>(def: &'a RelationDef, spec: &SourceSpec) -> Vec<&'a ColumnDef> {
    def.columns
        .iter()
        .filter(|c| !spec.include.iter().any(|i| i.column == c.name))
        .collect()
}

/// The running connectors of one database.
#[derive(Default)]
pub struct Registry {
    engine: std::sync::OnceLock<Weak<Engine>>,
    running: Mutex<HashMap<u64, runner::Handle>>,
}

impl Registry {
    pub fn bind(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    /// Starts the consumer of every connector relation not yet running.
    pub fn start_all(&self) {
        let Some(engine) = self.engine.get().and_then(Weak::upgrade) else {
            return;
        };
        for def in engine.relations() {
            if def.source.is_some() {
                self.start(&def);
            }
        }
    }

    /// Starts `def`'s consumer (if it has a connector and none runs).
    pub fn start(&self, def: &RelationDef) {
        let Some(spec) = &def.source else { return };
        let Some(weak) = self.engine.get() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut running = self.running.lock();
        if running.contains_key(&def.id) {
            return;
        }
        let h = runner::spawn(&rt, weak.clone(), def.clone(), spec.clone());
        running.insert(def.id, h);
    }

    /// Stops `id`'s consumer (DROP): it is aborted; what it had not
    /// committed is read again by nobody (the position goes with it).
    pub fn stop(&self, id: u64) {
        if let Some(h) = self.running.lock().remove(&id) {
            h.stop();
        }
    }

    /// A CREATE that checked its upstream and then did not create `def`
    /// (`raw` as the statement gave it): what the check set up upstream
    /// is released, if CREATE named it (a slot or session the statement
    /// named may be someone else's).
    pub fn abandoned(&self, def: &RelationDef, raw: &spec::RawSpec) {
        let named_by_create = match def.source.as_ref().map(|s| s.connector.as_str()) {
            Some("postgres-cdc") => !raw.options.contains_key("slot.name"),
            Some("mqtt") => !raw.options.contains_key("client.id"),
            _ => false,
        };
        if named_by_create {
            self.dropped(def);
        }
    }

    /// After `def` is dropped: release what the connector holds upstream
    /// (a PostgreSQL replication slot, an MQTT session), in the background.
    pub fn dropped(&self, def: &RelationDef) {
        let Some(spec) = def.source.clone() else {
            return;
        };
        let def = def.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match spec.connector.as_str() {
            "postgres-cdc" => {
                rt.spawn(async move { postgres_cdc::drop_upstream(&def, &spec).await });
            }
            "mqtt" => {
                rt.spawn(async move { mqtt::drop_upstream(&def, &spec).await });
            }
            _ => {}
        }
    }

    /// Stops every consumer (shutdown).
    pub fn stop_all(&self) {
        for (_, h) in self.running.lock().drain() {
            h.stop();
        }
    }

    pub fn set_paused(&self, id: u64, paused: bool) {
        if let Some(h) = self.running.lock().get(&id) {
            h.set_paused(paused);
        }
    }

    /// Every running connector's status.
    pub fn statuses(&self) -> Vec<Arc<runner::Status>> {
        let mut v: Vec<_> = self
            .running
            .lock()
            .values()
            .map(|h| h.status.clone())
            .collect();
        v.sort_by_key(|s| s.rel);
        v
    }

    pub fn status(&self, id: u64) -> Option<Arc<runner::Status>> {
        self.running.lock().get(&id).map(|h| h.status.clone())
    }
}
