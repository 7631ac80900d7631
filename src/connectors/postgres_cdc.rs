//! `connector = 'postgres-cdc'`: one table of a PostgreSQL database, by
//! logical replication with the `pgoutput` plugin.
//!
//! The connector makes (if missing) a publication for the table and a
//! logical replication slot, copies the table (the initial snapshot,
//! `op = 'r'`), then reads the slot's changes through
//! `pg_logical_slot_peek_binary_changes` and decodes pgoutput's messages
//! (relation, insert, update, delete, begin, commit). Each change becomes a
//! Debezium-shaped event for the Debezium decoder, so types and errors are
//! the same as `FORMAT DEBEZIUM`.
//!
//! Exactly once: the position stored with the rows is the commit LSN of
//! the last transaction stored; after our commit the slot is advanced to
//! it (`pg_replication_slot_advance`), so PostgreSQL may recycle the WAL.
//! After a crash between the two, the transactions at or before the stored
//! LSN are read again and skipped. The snapshot is taken after the slot
//! exists, so changes made during the copy are also in the slot: applied
//! as upserts and deletes by key, they converge to the table's state. A
//! snapshot interrupted by a crash is taken again whole (upserts again).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_postgres::{Client, NoTls};

use super::decode::Message;
use super::runner::{Chunk, Polled};
use super::spec::SourceSpec;
use super::ConnectorError;
use crate::catalog::RelationDef;

/// How long a poll waits between empty peeks.
const IDLE: Duration = Duration::from_millis(100);

pub struct Reader {
    client: Client,
    slot: String,
    publication: String,
    /// Commit LSN of the last transaction stored (0 before any).
    stored: u64,
    snapshot: Snapshot,
    /// The LSN to advance the slot to once the last batch is durable.
    advance: Option<u64>,
    /// pgoutput's relation messages: oid → column names.
    relations: HashMap<u32, Vec<String>>,
}

/// Where the initial copy of the table is.
enum Snapshot {
    /// To take, of this (quoted) table.
    Pending(String),
    /// Rows still to hand out.
    Taking(std::vec::IntoIter<Message>),
    /// Taken and stored (or a position was stored): streaming.
    Done,
}

/// The table's rows as Debezium read events (`op = 'r'`).
async fn snapshot_rows(client: &Client, table: &str) -> Result<Vec<Message>, ConnectorError> {
    let rows = client
        .simple_query(&format!("SELECT * FROM {table}"))
        .await
        .map_err(unreachable)?;
    let mut out = Vec::new();
    for r in rows {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = r {
            let mut after = Map::new();
            for (i, c) in row.columns().iter().enumerate() {
                after.insert(
                    c.name().to_string(),
                    row.get(i)
                        .map_or(Value::Null, |s| Value::String(s.to_string())),
                );
            }
            let n = out.len();
            out.push(Message {
                payload: Some(json!({"op": "r", "after": after}).to_string().into_bytes()),
                position: format!("snapshot row {}", n + 1),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

fn lsn_text(l: u64) -> String {
    format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff)
}

fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn quote(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

fn unreachable(e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unreachable(format!("PostgreSQL CDC: {e}"))
}

/// A slot or publication name from a relation: lowercase letters, digits
/// and `_`, at most 63 bytes.
/// A slot's or publication's name: the prefix, the relation's id and name,
/// and `suffix` (PostgreSQL's limit is 63 bytes).
pub fn object_name(prefix: &str, def: &RelationDef, suffix: &str) -> String {
    let base: String = def
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut n = format!("{prefix}_{}_{}", def.id, base);
    if suffix.is_empty() {
        // (the names of relations created before CREATE chose them)
        n.truncate(63);
        return n;
    }
    n.truncate(63 - suffix.len() - 1);
    format!("{n}_{suffix}")
}

/// Reads pgoutput's binary messages.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConnectorError> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| ConnectorError::Decode("truncated pgoutput message".into()))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ConnectorError> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, ConnectorError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32, ConnectorError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, ConnectorError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn string(&mut self) -> Result<String, ConnectorError> {
        let rest = &self.b[self.at.min(self.b.len())..];
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| ConnectorError::Decode("unterminated string in pgoutput".into()))?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
    /// TupleData: `None` for a column whose unchanged TOAST value was not
    /// sent.
    fn tuple(&mut self) -> Result<Vec<Option<Value>>, ConnectorError> {
        let n = self.i16()?.max(0) as usize;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.u8()? {
                b'n' => out.push(Some(Value::Null)),
                b'u' => out.push(None),
                b't' | b'b' => {
                    let len = self.u32()? as usize;
                    let v = self.take(len)?;
                    out.push(Some(Value::String(String::from_utf8_lossy(v).into_owned())));
                }
                k => {
                    return Err(ConnectorError::Decode(format!(
                        "unknown pgoutput column kind {k}"
                    )))
                }
            }
        }
        Ok(out)
    }
}

fn object(
    names: &[String],
    values: &[Option<Value>],
    old: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for (n, v) in names.iter().zip(values) {
        let v = match v {
            Some(v) => v.clone(),
            None => old.and_then(|o| o.get(n)).cloned().ok_or_else(|| {
                format!("column \"{n}\" is an unchanged TOAST value PostgreSQL did not send (ALTER TABLE … REPLICA IDENTITY FULL sends it)")
            })?,
        };
        m.insert(n.clone(), v);
    }
    Ok(m)
}

impl Reader {
    pub async fn open(
        def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let host = spec.option("hostname").unwrap_or("127.0.0.1");
        let port = spec.count("port", 5432)?;
        let user = spec.option("username").unwrap_or("postgres");
        let db = spec.option("database.name").unwrap_or("postgres");
        let (schema, table) = match (spec.option("schema.name"), spec.option("table.name")) {
            (Some(s), Some(t)) => (s.to_string(), t.to_string()),
            (None, Some(t)) => match t.split_once('.') {
                Some((s, t)) => (s.to_string(), t.to_string()),
                None => ("public".to_string(), t.to_string()),
            },
            _ => {
                return Err(ConnectorError::InvalidOption(
                    "postgres-cdc needs \"table.name\"".into(),
                ))
            }
        };
        let mut conf = tokio_postgres::Config::new();
        conf.host(host)
            .port(u16::try_from(port).unwrap_or(5432))
            .user(user)
            .dbname(db)
            .application_name("freshet-cdc")
            .connect_timeout(Duration::from_secs(10));
        if let Some(pw) = spec.option("password") {
            conf.password(pw);
        }
        let (client, conn) = conf.connect(NoTls).await.map_err(|e| {
            unreachable(format!(
                "cannot connect to {host}:{port}/{db} as {user}: {e}"
            ))
        })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let level: String = client
            .query_one("SHOW wal_level", &[])
            .await
            .map_err(unreachable)?
            .get(0);
        if level != "logical" {
            return Err(ConnectorError::Unreachable(format!(
                "PostgreSQL at {host}:{port} has wal_level = {level}; logical replication needs wal_level = logical (ALTER SYSTEM SET wal_level = logical, then restart it)"
            )));
        }
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&schema, &table],
            )
            .await
            .map_err(unreachable)?;
        if exists.is_none() {
            return Err(ConnectorError::Unreachable(format!(
                "PostgreSQL table {schema}.{table} does not exist in database {db}"
            )));
        }
        let qualified = format!("{}.{}", quote(&schema), quote(&table));
        let slot = spec
            .option("slot.name")
            .map(str::to_string)
            .unwrap_or_else(|| object_name("freshet", def, ""));
        let publication = spec
            .option("publication.name")
            .map(str::to_string)
            .unwrap_or_else(|| object_name("freshet", def, ""));
        let has_pub = client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&publication],
            )
            .await
            .map_err(unreachable)?
            .is_some();
        if !has_pub {
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {qualified}",
                    quote(&publication)
                ))
                .await
                .map_err(|e| {
                    unreachable(format!("cannot create publication {publication}: {e}"))
                })?;
        }
        let has_slot = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(unreachable)?
            .is_some();
        if !has_slot {
            client
                .query_one(
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .map_err(|e| unreachable(format!("cannot create replication slot {slot}: {e}")))?;
        }
        let stored = position
            .as_ref()
            .and_then(|p| p.get("lsn"))
            .and_then(Value::as_str)
            .and_then(parse_lsn);
        // no LSN stored: the snapshot (again, if a crash cut it short),
        // taken at the first poll (opening at CREATE only checks)
        let snapshot = match stored {
            Some(_) => Snapshot::Done,
            None => Snapshot::Pending(qualified),
        };
        Ok(Reader {
            client,
            slot,
            publication,
            stored: stored.unwrap_or(0),
            snapshot,
            advance: None,
            relations: HashMap::new(),
        })
    }

    /// Decodes the changes of complete transactions after `self.stored`.
    fn decode(
        &mut self,
        rows: &[(u64, Vec<u8>)],
    ) -> Result<(Vec<Message>, Option<u64>), ConnectorError> {
        let mut out = Vec::new();
        let mut txn: Vec<Message> = Vec::new();
        let mut last_commit = None;
        for (lsn, data) in rows {
            let mut c = Cursor { b: data, at: 0 };
            let kind = c.u8()?;
            match kind {
                b'B' => txn.clear(),
                b'C' => {
                    // (the slot skips a transaction whose commit record
                    // starts before its confirmed position: the position is
                    // the end of the commit record)
                    let _flags = c.u8()?;
                    let _commit = c.u64()?;
                    let end = c.u64()?;
                    if end > self.stored {
                        out.append(&mut txn);
                        last_commit = Some(end);
                    }
                    txn.clear();
                }
                b'R' => {
                    let oid = c.u32()?;
                    let _ns = c.string()?;
                    let _name = c.string()?;
                    let _identity = c.u8()?;
                    let n = c.i16()?.max(0);
                    let mut names = Vec::new();
                    for _ in 0..n {
                        let _flags = c.u8()?;
                        names.push(c.string()?);
                        let _type = c.u32()?;
                        let _typmod = c.u32()?;
                    }
                    self.relations.insert(oid, names);
                }
                b'I' | b'U' | b'D' => {
                    let oid = c.u32()?;
                    let names = self.relations.get(&oid).cloned().ok_or_else(|| {
                        ConnectorError::Decode(format!(
                            "pgoutput change for unknown relation {oid}"
                        ))
                    })?;
                    let position = format!("LSN {}", lsn_text(*lsn));
                    let mut old = None;
                    let mut new = None;
                    loop {
                        if c.at >= data.len() {
                            break;
                        }
                        match c.u8()? {
                            b'K' | b'O' => old = Some(c.tuple()?),
                            b'N' => new = Some(c.tuple()?),
                            k => {
                                return Err(ConnectorError::Decode(format!(
                                    "unknown pgoutput tuple tag {k}"
                                )))
                            }
                        }
                    }
                    let event = (|| -> Result<Value, String> {
                        let before = match &old {
                            Some(t) => Some(object(&names, t, None)?),
                            None => None,
                        };
                        Ok(match kind {
                            b'I' => {
                                json!({"op": "c", "after": object(&names, new.as_deref().unwrap_or_default(), None)?})
                            }
                            b'U' => {
                                json!({"op": "u", "before": before.clone(), "after": object(&names, new.as_deref().unwrap_or_default(), before.as_ref())?})
                            }
                            _ => json!({"op": "d", "before": before}),
                        })
                    })();
                    // (an event that cannot be built is a bad message: the
                    // error policy decides)
                    let payload = match event {
                        Ok(v) => v.to_string(),
                        Err(e) => json!({"op": "error", "error": e}).to_string(),
                    };
                    txn.push(Message {
                        payload: Some(payload.into_bytes()),
                        position,
                        ..Default::default()
                    });
                }
                b'T' => {
                    return Err(ConnectorError::Unsupported(
                        "TRUNCATE of a table read by postgres-cdc is not supported".into(),
                    ))
                }
                // type, origin, logical message: nothing to store
                _ => {}
            }
        }
        Ok((out, last_commit))
    }
}

#[async_trait::async_trait]
impl super::runner::Reader for Reader {
    async fn poll(&mut self, max: usize) -> Result<Option<Polled>, ConnectorError> {
        if let Snapshot::Pending(table) = &self.snapshot {
            let rows = snapshot_rows(&self.client, table).await?;
            self.snapshot = Snapshot::Taking(rows.into_iter());
        }
        if let Snapshot::Taking(it) = &mut self.snapshot {
            let batch: Vec<Message> = it.by_ref().take(max).collect();
            if !batch.is_empty() {
                return Ok(Some(Polled {
                    chunk: Chunk::Messages(batch),
                    position: json!({ "snapshot": true }),
                }));
            }
            self.snapshot = Snapshot::Done;
            // the snapshot is stored: from now on, the slot's changes
            // after the slot's own start
            return Ok(Some(Polled {
                chunk: Chunk::Messages(vec![]),
                position: json!({ "lsn": lsn_text(self.stored) }),
            }));
        }
        loop {
            let rows = self
                .client
                .query(
                    "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)",
                    &[&self.slot, &(max as i32), &self.publication],
                )
                .await
                .map_err(|e| unreachable(format!("reading slot {}: {e}", self.slot)))?;
            let rows: Vec<(u64, Vec<u8>)> = rows
                .iter()
                .map(|r| {
                    let l: String = r.get(0);
                    (parse_lsn(&l).unwrap_or(0), r.get::<_, Vec<u8>>(1))
                })
                .collect();
            let (messages, commit) = self.decode(&rows)?;
            match commit {
                Some(c) => {
                    self.stored = c;
                    self.advance = Some(c);
                    return Ok(Some(Polled {
                        chunk: Chunk::Messages(messages),
                        position: json!({ "lsn": lsn_text(c) }),
                    }));
                }
                None => {
                    // only transactions stored before (a crash between our
                    // commit and the slot's advance): move the slot on
                    if let Some(l) = rows.iter().map(|(l, _)| *l).max() {
                        if self.stored > 0 && l <= self.stored {
                            self.advance = Some(self.stored);
                            self.committed_inner().await?;
                        }
                    }
                    tokio::time::sleep(IDLE).await;
                }
            }
        }
    }

    async fn committed(&mut self) -> Result<(), ConnectorError> {
        self.committed_inner().await
    }
}

impl Reader {
    async fn committed_inner(&mut self) -> Result<(), ConnectorError> {
        if let Some(l) = self.advance.take() {
            self.client
                .query_one(
                    "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)::text",
                    &[&self.slot, &lsn_text(l)],
                )
                .await
                .map_err(|e| unreachable(format!("advancing slot {}: {e}", self.slot)))?;
        }
        Ok(())
    }
}

/// After `DROP`: removes the replication slot (which would otherwise keep
/// PostgreSQL's WAL forever) and the publication, when the connector named
/// them itself. Best effort: a failure is logged.
pub async fn drop_upstream(def: &RelationDef, spec: &SourceSpec) {
    let r = async {
        let mut conf = tokio_postgres::Config::new();
        conf.host(spec.option("hostname").unwrap_or("127.0.0.1"))
            .port(u16::try_from(spec.count("port", 5432)?).unwrap_or(5432))
            .user(spec.option("username").unwrap_or("postgres"))
            .dbname(spec.option("database.name").unwrap_or("postgres"))
            .connect_timeout(Duration::from_secs(10));
        if let Some(pw) = spec.option("password") {
            conf.password(pw);
        }
        let (client, conn) = conf.connect(NoTls).await.map_err(unreachable)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let slot = spec
            .option("slot.name")
            .map(str::to_string)
            .unwrap_or_else(|| object_name("freshet", def, ""));
        // (the consumer's last peek may still hold the slot for a moment)
        for attempt in 0..20 {
            match client
                .query_opt(
                    "SELECT pg_drop_replication_slot(slot_name)::text FROM pg_replication_slots WHERE slot_name = $1",
                    &[&slot],
                )
                .await
            {
                Ok(_) => break,
                Err(e) if attempt == 19 => return Err(unreachable(e)),
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
        // the publication only if Freshet named it (CREATE names it, as it
        // names the slot, when the statement does not): a user's may serve
        // others
        let publication = spec
            .option("publication.name")
            .map(str::to_string)
            .unwrap_or_else(|| object_name("freshet", def, ""));
        if publication == slot && publication.starts_with("freshet_") {
            client
                .batch_execute(&format!(
                    "DROP PUBLICATION IF EXISTS {}",
                    quote(&publication)
                ))
                .await
                .map_err(unreachable)?;
        }
        Ok::<_, ConnectorError>(())
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(relation = %def.name, error = %e, "could not remove the replication slot of a dropped postgres-cdc relation");
    }
}
