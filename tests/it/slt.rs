//! Runs every `sql-tests/*.slt` file against a real server over the wire,
//! once with the simple query protocol and once with the extended one
//! (Parse/Bind/Describe/Execute, results in binary format).
//!
//! A line `# freshet: restart` in a file stops the server cleanly and starts
//! it again on the same data directory; `# freshet: crash` kills it with
//! SIGKILL first. Everything after runs against the restarted server.
//! A line `# freshet: manual-clock` starts the server with `--manual-clock`
//! (views with `now()` then follow `SET freshet.clock`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::harness::TestServer;
use freshet::server::text;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Simple,
    Extended,
}

pub struct Pg {
    client: Client,
    mode: Mode,
}

impl Pg {
    pub async fn connect(conn: &str, mode: Mode) -> Result<Pg, PgError> {
        let (client, connection) = tokio_postgres::connect(conn, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Pg { client, mode })
    }
}

/// A client error whose text includes the server's message and SQLSTATE,
/// so `statement error <regex>` can match it.
#[derive(Debug)]
pub struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => write!(
                f,
                "{}: {} ({})",
                db.severity(),
                db.message(),
                db.code().code()
            ),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for PgError {}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError(e)
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Pg {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Self::Error> {
        match self.mode {
            Mode::Simple => {
                let msgs = self.client.simple_query(sql).await?;
                let mut rows = Vec::new();
                let mut columns = None;
                let mut count = 0;
                for m in msgs {
                    match m {
                        SimpleQueryMessage::Row(r) => {
                            let mut row = Vec::with_capacity(r.len());
                            for i in 0..r.len() {
                                row.push(cell(r.get(i).map(str::to_string)));
                            }
                            rows.push(row);
                        }
                        SimpleQueryMessage::RowDescription(d) => columns = Some(d.len()),
                        SimpleQueryMessage::CommandComplete(n) => count = n,
                        _ => {}
                    }
                }
                match columns {
                    Some(n) => Ok(DBOutput::Rows {
                        types: vec![DefaultColumnType::Any; n],
                        rows,
                    }),
                    None => Ok(DBOutput::StatementComplete(count)),
                }
            }
            Mode::Extended => {
                let stmt = self.client.prepare(sql).await?;
                if stmt.columns().is_empty() {
                    let n = self.client.execute(&stmt, &[]).await?;
                    return Ok(DBOutput::StatementComplete(n));
                }
                let result = self.client.query(&stmt, &[]).await?;
                let mut rows = Vec::with_capacity(result.len());
                for r in &result {
                    let mut row = Vec::with_capacity(r.len());
                    for (i, col) in r.columns().iter().enumerate() {
                        let raw: Raw = r.try_get(i).map_err(PgError)?;
                        row.push(cell(raw.0.map(|b| decode_binary(col.type_(), &b))));
                    }
                    rows.push(row);
                }
                Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Any; stmt.columns().len()],
                    rows,
                })
            }
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "freshet"
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.0.code().map(|c| c.code().to_string())
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await;
    }
}

fn cell(v: Option<String>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(s) if s.is_empty() => "(empty)".to_string(),
        Some(s) => s,
    }
}

/// Any value, as the raw bytes of its binary encoding.
struct Raw(Option<Vec<u8>>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw.to_vec())))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Renders a binary-format value the way Postgres renders it in text
/// format, so both protocol modes expect the same results.
pub fn decode_binary(ty: &Type, b: &[u8]) -> String {
    let be = |n: usize| -> Vec<u8> { b.get(..n).map(|s| s.to_vec()).unwrap_or_default() };
    match *ty {
        Type::BOOL => if b.first() == Some(&1) { "t" } else { "f" }.to_string(),
        Type::INT2 => i16::from_be_bytes(be(2).try_into().unwrap_or_default()).to_string(),
        Type::INT4 | Type::OID => {
            i32::from_be_bytes(be(4).try_into().unwrap_or_default()).to_string()
        }
        Type::INT8 => i64::from_be_bytes(be(8).try_into().unwrap_or_default()).to_string(),
        Type::FLOAT4 => text::float4_text(f32::from_be_bytes(be(4).try_into().unwrap_or_default())),
        Type::FLOAT8 => text::float8_text(f64::from_be_bytes(be(8).try_into().unwrap_or_default())),
        Type::NUMERIC => numeric_text(b),
        Type::BYTEA => {
            let mut s = String::from("\\x");
            for x in b {
                s.push_str(&format!("{x:02x}"));
            }
            s
        }
        Type::DATE => {
            let days = i32::from_be_bytes(be(4).try_into().unwrap_or_default());
            let d = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default()
                + chrono::Duration::days(days as i64);
            d.format("%Y-%m-%d").to_string()
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            // Postgres counts from 2000-01-01; Freshet's renderer from 1970.
            const EPOCH_2000_US: i64 = 946_684_800_000_000;
            let us = i64::from_be_bytes(be(8).try_into().unwrap_or_default());
            text::timestamp_text(us + EPOCH_2000_US, *ty == Type::TIMESTAMPTZ)
        }
        Type::INTERVAL => {
            let us = i64::from_be_bytes(be(8).try_into().unwrap_or_default());
            let days = i32::from_be_bytes(
                b.get(8..12)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or_default(),
            );
            let months = i32::from_be_bytes(
                b.get(12..16)
                    .and_then(|s| s.try_into().ok())
                    .unwrap_or_default(),
            );
            text::interval_text(months, days, us)
        }
        Type::JSONB => String::from_utf8_lossy(b.get(1..).unwrap_or_default()).to_string(),
        ref t if matches!(t.kind(), tokio_postgres::types::Kind::Array(_)) => array_text(t, b),
        _ => String::from_utf8_lossy(b).to_string(),
    }
}

/// A one-dimensional binary array, rendered as `{a,b}`.
fn array_text(ty: &Type, b: &[u8]) -> String {
    let tokio_postgres::types::Kind::Array(elem) = ty.kind() else {
        return String::new();
    };
    let rd = |i: usize| -> i32 {
        b.get(i..i + 4)
            .and_then(|s| s.try_into().ok())
            .map(i32::from_be_bytes)
            .unwrap_or_default()
    };
    let ndim = rd(0);
    if ndim == 0 {
        return "{}".into();
    }
    let len = rd(12) as usize;
    let mut pos = 20;
    let mut parts = Vec::with_capacity(len);
    for _ in 0..len {
        let n = rd(pos);
        pos += 4;
        if n < 0 {
            parts.push("NULL".to_string());
            continue;
        }
        let v = decode_binary(elem, b.get(pos..pos + n as usize).unwrap_or_default());
        pos += n as usize;
        let quote = v.is_empty()
            || v.eq_ignore_ascii_case("null")
            || v.contains([',', '{', '}', '"', ' ', '\\']);
        parts.push(if quote {
            format!("\"{}\"", v.replace('"', "\\\""))
        } else {
            v
        });
    }
    format!("{{{}}}", parts.join(","))
}

/// Postgres binary numeric: ndigits, weight, sign, dscale, base-10000 digits.
fn numeric_text(b: &[u8]) -> String {
    let rd = |i: usize| -> i16 {
        b.get(i..i + 2)
            .and_then(|s| s.try_into().ok())
            .map(i16::from_be_bytes)
            .unwrap_or_default()
    };
    let ndigits = rd(0) as usize;
    let weight = rd(2) as i32;
    let sign = rd(4) as u16;
    let dscale = rd(6) as usize;
    if sign == 0xC000 {
        return "NaN".into();
    }
    let digits: Vec<i16> = (0..ndigits).map(|i| rd(8 + 2 * i)).collect();
    let mut int_part = String::new();
    for i in 0..=weight.max(0) {
        let d = if weight >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        };
        if i > weight {
            break;
        }
        if int_part.is_empty() {
            int_part = d.to_string();
        } else {
            int_part.push_str(&format!("{d:04}"));
        }
    }
    if int_part.is_empty() {
        int_part = "0".into();
    }
    let mut frac = String::new();
    let mut i = weight + 1;
    while frac.len() < dscale {
        let d = if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        };
        frac.push_str(&format!("{d:04}"));
        i += 1;
    }
    frac.truncate(dscale);
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    s.push_str(&int_part);
    if dscale > 0 {
        s.push('.');
        s.push_str(&frac);
    }
    s
}

pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("sql-tests directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    // FRESHET_SLT=name runs only files whose name contains it.
    if let Ok(only) = std::env::var("FRESHET_SLT") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    files
}

/// Runs one file; returns the failures as text.
async fn run_file(path: &Path, mode: Mode) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut server = if text.lines().any(|l| l.trim() == "# freshet: manual-clock") {
        TestServer::start_with_args(&["--manual-clock"])
    } else {
        TestServer::start()
    };
    let mut segment = String::new();
    let mut segments: Vec<(String, Option<bool>)> = Vec::new();
    for line in text.lines() {
        match line.trim() {
            "# freshet: restart" => segments.push((std::mem::take(&mut segment), Some(false))),
            "# freshet: crash" => segments.push((std::mem::take(&mut segment), Some(true))),
            _ => {
                segment.push_str(line);
                segment.push('\n');
            }
        }
    }
    segments.push((segment, None));
    for (script, then) in segments {
        let conn = server.conn_string();
        let mut runner = sqllogictest::Runner::new(move || {
            let conn = conn.clone();
            async move { Pg::connect(&conn, mode).await }
        });
        runner.add_label("freshet");
        runner.add_label(match mode {
            Mode::Simple => "simple",
            Mode::Extended => "extended",
        });
        runner
            .run_script_with_name_async(&script, name.clone())
            .await
            .map_err(|e| format!("{name} ({mode:?}): {}", e.display(false)))?;
        if let Some(crash) = then {
            server.restart(crash);
        }
    }
    Ok(())
}

async fn run_all(mode: Mode) {
    let mut failures = Vec::new();
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    for f in &files {
        if let Err(e) = run_file(f, mode).await {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} sqllogictest files failed in {mode:?} mode:\n\n{}",
            failures.len(),
            files.len(),
            failures.join("\n\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_simple_protocol() {
    run_all(Mode::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_extended_protocol() {
    run_all(Mode::Extended).await;
}

#[test]
fn binary_numeric_decoding() {
    // 12345.678 with dscale 3: digits [1, 2345, 6780], weight 1
    let mut b = vec![];
    for v in [3i16, 1, 0, 3, 1, 2345, 6780] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(numeric_text(&b), "12345.678");
}
