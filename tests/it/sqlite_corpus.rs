//! SQLite's sqllogictest corpus, run as a differential test: every statement
//! and query of a `.test` file on Freshet and on a throwaway schema of the
//! local PostgreSQL, compared as PostgreSQL renders them (the expected
//! results written in the files are SQLite's and are not used; the
//! `skipif`/`onlyif` lines are honoured for `postgresql`).
//!
//! `cargo test` runs the sample in `sql-tests/sqlite/` (see its README);
//! `FRESHET_SQLITE_CORPUS=<dir>` runs every `.test` file below `<dir>`
//! instead (the whole corpus: `test/select1-5.test`, `test/random/…`,
//! `test/evidence`), and `FRESHET_SQLITE_FILTER=<text>` keeps only the
//! files whose path contains the text. It prints
//! `differential sqlite <file>: E equal, R refused, D different` per file
//! and in total, and fails on any D. Skipped, loudly, without PostgreSQL.

use std::path::{Path, PathBuf};

use crate::differential::{
    answer, differs_only_in_numeric_scale, first_difference, fresh_schema, judge, Answer, Verdict,
};
use crate::harness::TestServer;
use crate::oracle::postgres;

/// How SQLite's format says a query's rows are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sort {
    /// as returned (the query orders them)
    None,
    /// rows sorted
    Rows,
    /// all values sorted, whatever their row
    Values,
}

#[derive(Debug, PartialEq)]
enum Record {
    Statement {
        sql: String,
        line: usize,
    },
    Query {
        sql: String,
        sort: Sort,
        line: usize,
    },
}

/// The records of a file that apply to PostgreSQL, in order; stops at a
/// `halt` that applies.
fn records(text: &str) -> Vec<Record> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut skip = false;
    while i < lines.len() {
        let line = lines[i].trim_end();
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = i + 1;
        i += 1;
        match words.first().copied() {
            None => {}
            Some(w) if w.starts_with('#') => {}
            Some("skipif") => skip |= words.get(1) == Some(&"postgresql"),
            Some("onlyif") => skip |= words.get(1) != Some(&"postgresql"),
            Some("halt") => {
                if !skip {
                    break;
                }
                skip = false;
            }
            Some("hash-threshold") => {}
            Some(kind @ ("statement" | "query")) => {
                let mut sql = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() && lines[i] != "----" {
                    sql.push(lines[i]);
                    i += 1;
                }
                // the expected results, up to the blank line
                if i < lines.len() && lines[i] == "----" {
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        i += 1;
                    }
                }
                let sql = sql.join("\n");
                if !skip {
                    out.push(if kind == "statement" {
                        Record::Statement { sql, line: start }
                    } else {
                        let sort = match words.get(2).copied() {
                            Some("rowsort") => Sort::Rows,
                            Some("valuesort") => Sort::Values,
                            _ => Sort::None,
                        };
                        Record::Query {
                            sql,
                            sort,
                            line: start,
                        }
                    });
                }
                skip = false;
            }
            Some(_) => skip = false,
        }
    }
    out
}

/// The relation a `CREATE TABLE|VIEW` statement creates.
fn created(sql: &str) -> Option<String> {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == '(')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let at = words.iter().position(|w| w == "table" || w == "view")?;
    (words.first().map(String::as_str) == Some("create"))
        .then(|| words.get(at + 1).cloned())
        .flatten()
}

fn words(sql: &str) -> impl Iterator<Item = String> + '_ {
    sql.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Whether the statement names one of `relations`.
fn mentions(sql: &str, relations: &[String]) -> bool {
    words(sql).any(|w| relations.contains(&w))
}

/// The relation an `INSERT INTO|UPDATE|DELETE FROM` statement writes.
fn written(sql: &str) -> Option<String> {
    let w: Vec<String> = words(sql).collect();
    match w.first().map(String::as_str) {
        Some("insert" | "delete") => w.get(2).cloned(),
        Some("update") => w.get(1).cloned(),
        _ => None,
    }
}

/// The known difference of `docs/sql.md`: `avg` of integers is `double
/// precision`, PostgreSQL's `numeric`; otherwise the same answer.
fn avg_of_integers(sql: &str, pg: &Answer, fr: &Answer) -> bool {
    let (
        Answer::Rows {
            columns: pc,
            rows: pr,
        },
        Answer::Rows {
            columns: fc,
            rows: frr,
        },
    ) = (pg, fr)
    else {
        return false;
    };
    let same_value = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => {
            a == b
                || matches!((a.parse::<f64>(), b.parse::<f64>()),
                    (Ok(x), Ok(y)) if (x - y).abs() <= 1e-9 * x.abs().max(1.0))
        }
        _ => a == b,
    };
    words(sql).any(|w| w == "avg")
        && pc.len() == fc.len()
        && pc
            .iter()
            .zip(fc)
            .all(|(p, f)| p.0 == f.0 && (p.1 == f.1 || (p.1 == 1700 && f.1 == 701)))
        && pr.len() == frr.len()
        && pr
            .iter()
            .zip(frr)
            .all(|(a, b)| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y)))
}

/// An answer as SQLite's sort mode compares it.
fn sorted(a: Answer, sort: Sort) -> Answer {
    match (a, sort) {
        (Answer::Rows { columns, mut rows }, Sort::Rows) => {
            rows.sort();
            Answer::Rows { columns, rows }
        }
        (Answer::Rows { columns, rows }, Sort::Values) => {
            let mut values: Vec<Option<String>> = rows.into_iter().flatten().collect();
            values.sort();
            Answer::Rows {
                columns,
                rows: values.into_iter().map(|v| vec![v]).collect(),
            }
        }
        (a, _) => a,
    }
}

fn test_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            test_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "test") {
            out.push(p);
        }
    }
}

#[derive(Default)]
struct Tally {
    equal: usize,
    refused: usize,
    different: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_corpus_matches_postgres() {
    let Some(pg) = postgres("sqlite_corpus_matches_postgres").await else {
        return;
    };
    let root = match std::env::var("FRESHET_SQLITE_CORPUS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql-tests/sqlite"),
    };
    let mut files = Vec::new();
    test_files(&root, &mut files);
    if let Ok(filter) = std::env::var("FRESHET_SQLITE_FILTER") {
        files.retain(|f| f.to_string_lossy().contains(&filter));
    }
    files.sort();
    assert!(!files.is_empty(), "no .test files under {}", root.display());
    let mut total = Tally::default();
    let mut different = Vec::new();
    let mut refused = std::collections::BTreeMap::<String, usize>::new();
    let mut scale_only = 0;
    let mut avg_only = 0;
    for file in &files {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .to_string();
        let text = std::fs::read_to_string(file).unwrap();
        let schema = fresh_schema(&pg, "differential_sqlite").await;
        let server = TestServer::start();
        let fr = server.connect().await;
        let mut t = Tally::default();
        // relations whose CREATE Freshet refused: what later fails only
        // because they are missing counts as refused too
        let mut missing: Vec<String> = Vec::new();
        for record in records(&text) {
            let (sql, sort, line) = match &record {
                Record::Statement { sql, line } => (sql, None, *line),
                Record::Query { sql, sort, line } => (sql, Some(*sort), *line),
            };
            let (want, got) = (answer(&pg, sql).await, answer(&fr, sql).await);
            let (want, got) = match sort {
                Some(s) => (sorted(want, s), sorted(got, s)),
                None => (want, got),
            };
            let verdict = match (&want, &got) {
                (Answer::Done, Answer::Error { code, .. }) if code == "0A000" => {
                    missing.extend(created(sql));
                    Verdict::Refused
                }
                // reads or writes a relation missing or incomplete because of
                // a refused statement: a write's target is incomplete too
                _ if want != got && mentions(sql, &missing) => {
                    missing.extend(written(sql));
                    Verdict::Refused
                }
                _ => judge(&want, &got),
            };
            match verdict {
                Verdict::Equal => t.equal += 1,
                Verdict::Refused => {
                    t.refused += 1;
                    if let Answer::Error { message, .. } = &got {
                        *refused.entry(message.clone()).or_default() += 1;
                    }
                }
                Verdict::Different => {
                    t.different += 1;
                    if differs_only_in_numeric_scale(&want, &got) {
                        scale_only += 1;
                    }
                    if avg_of_integers(sql, &want, &got) {
                        avg_only += 1;
                        continue;
                    }
                    different.push(format!(
                        "{name}:{line}: {}\n{}",
                        sql.split_whitespace().collect::<Vec<_>>().join(" "),
                        first_difference(&want, &got)
                    ));
                }
            }
        }
        eprintln!(
            "differential sqlite {name}: {} equal, {} refused, {} different",
            t.equal, t.refused, t.different
        );
        total.equal += t.equal;
        total.refused += t.refused;
        total.different += t.different;
        pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
    eprintln!(
        "differential sqlite: {} equal, {} refused, {} different ({scale_only} of them only \
         in the scale numeric values show, {avg_only} only in avg of integers being double \
         precision, a known difference)",
        total.equal, total.refused, total.different
    );
    for (message, count) in &refused {
        eprintln!("refused ×{count}: {message}");
    }
    assert!(
        different.is_empty(),
        "{} statements of the SQLite corpus answer differently from PostgreSQL:\n{}",
        different.len(),
        different
            .iter()
            .take(200)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn sqlite_format_parsing() {
    assert_eq!(
        created("CREATE TABLE t4(x INTEGER UNIQUE)"),
        Some("t4".into())
    );
    assert_eq!(created("INSERT INTO t4 VALUES (1)"), None);
    assert_eq!(
        written("INSERT INTO t5 SELECT * FROM t4"),
        Some("t5".into())
    );
    assert!(mentions("SELECT 1 IN t5", &["t5".into()]));
    assert!(!mentions("SELECT 1 IN t55", &["t5".into()]));
    let text = "hash-threshold 8\n\nstatement ok\nCREATE TABLE t(a INTEGER)\n\n\
                skipif postgresql # no\nquery I rowsort\nSELECT 1\n----\n1\n\n\
                onlyif mysql\nquery I nosort\nSELECT 2 DIV 1\n----\n2\n\n\
                query II valuesort label-1\nSELECT a,\n a FROM t\n----\n\n\
                onlyif mssql\nhalt\n\nquery I nosort\nSELECT 3\n\nonlyif postgresql\nhalt\n\n\
                query I nosort\nSELECT 4\n";
    assert_eq!(
        records(text),
        vec![
            Record::Statement {
                sql: "CREATE TABLE t(a INTEGER)".into(),
                line: 3
            },
            Record::Query {
                sql: "SELECT a,\n a FROM t".into(),
                sort: Sort::Values,
                line: 18
            },
            Record::Query {
                sql: "SELECT 3".into(),
                sort: Sort::None,
                line: 26
            },
        ]
    );
}
