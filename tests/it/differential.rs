//! The differential test: the same statements on Freshet and on the local
//! PostgreSQL (a throwaway schema), compared as PostgreSQL renders them —
//! column names, the type OIDs of RowDescription, text forms, row order
//! where the query orders, and the SQLSTATE class of errors.
//!
//! The corpus is `sql-tests/differential/*.sql`: statements separated by a
//! `;` at the end of a line, `--` comments ignored. Each statement ends as
//!
//! * **E** (equal): same columns, types and rows, or both failed with the
//!   same SQLSTATE class;
//! * **R** (refused): Freshet refused it with 0A000 (not supported, the
//!   message naming the construct) where PostgreSQL answered;
//! * **D** (different): anything else — a wrong answer.
//!
//! It prints `differential: E equal, R refused, D different` per file and
//! in total. `sql-tests/differential/known-differences.txt` lists the
//! statements still known to differ (each with why); the test fails on a
//! difference not in that list, and on a listed one that has become equal
//! (so the list only shrinks). Skipped, loudly, without PostgreSQL.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::TestServer;
use crate::oracle::postgres;

/// What one side answered.
#[derive(Debug, PartialEq)]
enum Answer {
    Rows {
        columns: Vec<(String, u32)>,
        rows: Vec<Vec<Option<String>>>,
    },
    Done,
    Error {
        code: String,
        message: String,
    },
}

fn error(e: &tokio_postgres::Error) -> Answer {
    match e.as_db_error() {
        Some(d) => Answer::Error {
            code: d.code().code().to_string(),
            message: d.message().to_string(),
        },
        None => Answer::Error {
            code: "08000".into(),
            message: e.to_string(),
        },
    }
}

fn is_query(sql: &str) -> bool {
    let w = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(
        w.as_str(),
        "SELECT" | "VALUES" | "WITH" | "TABLE" | "SHOW" | ""
    ) || sql.trim_start().starts_with('(')
}

/// Whether the statement's own result is ordered (a top-level ORDER BY).
fn ordered(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let mut depth = 0i32;
    let b = upper.as_bytes();
    let mut last_top = None;
    for i in 0..b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b'O' if depth == 0 && upper[i..].starts_with("ORDER BY") => last_top = Some(i),
            _ => {}
        }
    }
    last_top.is_some()
}

async fn answer(c: &Client, sql: &str) -> Answer {
    if !is_query(sql) {
        return match c.batch_execute(sql).await {
            Ok(()) => Answer::Done,
            Err(e) => error(&e),
        };
    }
    let columns = match c.prepare(sql).await {
        Ok(st) => st
            .columns()
            .iter()
            .map(|col| (col.name().to_string(), col.type_().oid()))
            .collect(),
        Err(e) => return error(&e),
    };
    let messages = match c.simple_query(sql).await {
        Ok(m) => m,
        Err(e) => return error(&e),
    };
    let mut rows: Vec<Vec<Option<String>>> = messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    if !ordered(sql) {
        rows.sort();
    }
    Answer::Rows { columns, rows }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Equal,
    Refused,
    Different,
}

fn judge(pg: &Answer, fr: &Answer) -> Verdict {
    match (pg, fr) {
        (a, b) if a == b => Verdict::Equal,
        (Answer::Error { code: a, .. }, Answer::Error { code: b, .. }) if a[..2] == b[..2] => {
            Verdict::Equal
        }
        (Answer::Error { .. }, Answer::Error { .. }) => Verdict::Different,
        (_, Answer::Error { code, .. }) if code == "0A000" => Verdict::Refused,
        _ => Verdict::Different,
    }
}

/// The statements of a corpus file.
fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("--") || (t.is_empty() && cur.trim().is_empty()) {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if t.ends_with(';') {
            let s = cur.trim().trim_end_matches(';').trim().to_string();
            if !s.is_empty() {
                out.push(s);
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(a: &Answer) -> String {
    match a {
        Answer::Rows { columns, rows } => {
            let rows: Vec<String> = rows
                .iter()
                .take(8)
                .map(|r| {
                    r.iter()
                        .map(|v| v.clone().unwrap_or_else(|| "NULL".into()))
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            format!(
                "columns {columns:?}, {} rows: {}",
                rows.len(),
                rows.join("; ")
            )
        }
        Answer::Done => "ok".into(),
        Answer::Error { code, message } => format!("{code} {message}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_postgres() {
    let Some(pg) = postgres("differential_against_postgres").await else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql-tests/differential");
    let known: BTreeSet<String> = std::fs::read_to_string(dir.join("known-differences.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| one_line(l.split(" -- ").next().unwrap_or(l)))
        .collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let (mut e_all, mut r_all, mut d_all) = (0, 0, 0);
    let mut unexpected = Vec::new();
    let mut now_equal = Vec::new();
    let mut refused = Vec::new();
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let schema = format!("differential_{name}_{}", std::process::id());
        pg.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"
        ))
        .await
        .unwrap();
        let server = TestServer::start();
        let fr = server.connect().await;
        let (mut e, mut r, mut d) = (0, 0, 0);
        for sql in statements(&std::fs::read_to_string(&file).unwrap()) {
            let want = answer(&pg, &sql).await;
            let got = answer(&fr, &sql).await;
            let key = one_line(&sql);
            match judge(&want, &got) {
                Verdict::Equal => {
                    e += 1;
                    if known.contains(&key) {
                        now_equal.push(key);
                    }
                }
                Verdict::Refused => {
                    r += 1;
                    refused.push(format!("{name}: {key}\n    freshet:  {}", show(&got)));
                }
                Verdict::Different => {
                    d += 1;
                    if !known.contains(&key) {
                        unexpected.push(format!(
                            "{name}: {key}\n    postgres: {}\n    freshet:  {}",
                            show(&want),
                            show(&got)
                        ));
                    }
                }
            }
        }
        eprintln!("differential {name}: {e} equal, {r} refused, {d} different");
        (e_all, r_all, d_all) = (e_all + e, r_all + r, d_all + d);
        pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
    eprintln!("differential: {e_all} equal, {r_all} refused, {d_all} different");
    for r in &refused {
        eprintln!("refused: {r}");
    }
    assert!(
        unexpected.is_empty(),
        "{} statements answer differently from PostgreSQL:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        now_equal.is_empty(),
        "these known differences are gone; remove them from known-differences.txt:\n{}",
        now_equal.join("\n")
    );
}

#[test]
fn corpus_parsing() {
    assert_eq!(
        statements("-- c\nSELECT 1;\nSELECT\n  2;\n\nVALUES (3)"),
        vec!["SELECT 1", "SELECT\n  2", "VALUES (3)"]
    );
    assert!(ordered("SELECT a FROM t ORDER BY a"));
    assert!(!ordered("SELECT (SELECT a FROM t ORDER BY a LIMIT 1)"));
    assert!(is_query("  (SELECT 1) UNION (SELECT 2)"));
    assert!(!is_query("INSERT INTO t VALUES (1)"));
}
