//! Every SQL example in the documentation runs as written, with the output
//! it shows.
//!
//! The ```` ```sql ```` blocks of `README.md` and `docs/*.md` run in order,
//! one server per file (started with `--manual-clock`, so the clock example
//! runs), every statement of every block. A statement followed by comment
//! lines in psql's aligned form (`--  a | b`, then one line per row) must
//! answer those columns and rows, in that order. Grammar synopses are
//! ```` ```text ```` blocks and are not run.

use std::path::{Path, PathBuf};

use tokio_postgres::SimpleQueryMessage;

use super::harness::TestServer;

/// One statement of an example and the output shown after it, if any.
struct Step {
    sql: String,
    line: usize,
    /// column names, then rows (cells trimmed; an empty cell is NULL or
    /// the empty string)
    shown: Option<(Vec<String>, Vec<Vec<String>>)>,
}

fn cells(line: &str) -> Vec<String> {
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// The code of a line: what precedes a `--` comment outside quotes.
fn code(line: &str) -> &str {
    let mut quoted = false;
    let b = line.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'\'' => quoted = !quoted,
            b'-' if !quoted && b.get(i + 1) == Some(&b'-') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The `sql` blocks of a Markdown file as steps, with the line each starts on.
fn steps(text: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut in_sql = false;
    let mut current = String::new();
    let mut start = 0;
    // output lines shown after the last statement
    let mut shown: Vec<String> = Vec::new();
    let flush_shown = |out: &mut Vec<Step>, shown: &mut Vec<String>| {
        if let (Some(last), false) = (out.last_mut(), shown.is_empty()) {
            let header = cells(&shown[0]);
            let rows = shown[1..].iter().map(|l| cells(l)).collect();
            last.shown = Some((header, rows));
        }
        shown.clear();
    };
    for (n, line) in text.lines().enumerate() {
        if !in_sql {
            in_sql = line.trim_end() == "```sql";
            continue;
        }
        if line.trim_end() == "```" {
            flush_shown(&mut out, &mut shown);
            in_sql = false;
            continue;
        }
        let c = code(line).trim();
        if c.is_empty() {
            // a comment line: output when it is table-shaped and follows a
            // statement
            let comment = line.trim_start().trim_start_matches("--");
            if current.is_empty() && comment.contains('|') {
                shown.push(comment.to_string());
            }
            continue;
        }
        flush_shown(&mut out, &mut shown);
        if current.is_empty() {
            start = n + 1;
        }
        current.push_str(code(line));
        current.push('\n');
        if c.ends_with(';') {
            out.push(Step {
                sql: std::mem::take(&mut current),
                line: start,
                shown: None,
            });
        }
    }
    out
}

fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        let mut docs: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_examples_run_as_shown() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in documents() {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let steps = steps(&text);
        if steps.is_empty() {
            continue;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        let name = name.unwrap_or_default();
        let server = TestServer::start_with_args(&["--manual-clock"]);
        let client = server.connect().await;
        for s in &steps {
            ran += 1;
            let messages = match client.simple_query(&s.sql).await {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!("{name}:{}: {}\n  {e:?}", s.line, s.sql.trim()));
                    continue;
                }
            };
            let Some((columns, rows)) = &s.shown else {
                continue;
            };
            let mut got_columns = Vec::new();
            let mut got_rows = Vec::new();
            for m in messages {
                match m {
                    SimpleQueryMessage::RowDescription(d) => {
                        got_columns = d.iter().map(|c| c.name().to_string()).collect();
                    }
                    SimpleQueryMessage::Row(r) => got_rows.push(
                        (0..r.len())
                            .map(|i| r.get(i).unwrap_or("").to_string())
                            .collect::<Vec<_>>(),
                    ),
                    _ => {}
                }
            }
            if &got_columns != columns || &got_rows != rows {
                failures.push(format!(
                    "{name}:{}: {}\n  shown: {columns:?} {rows:?}\n  got:   {got_columns:?} {got_rows:?}",
                    s.line,
                    s.sql.trim()
                ));
            }
        }
    }
    assert!(ran > 0, "no SQL examples found");
    assert!(
        failures.is_empty(),
        "{} documented examples do not run as shown:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn examples_are_split_into_statements_and_outputs() {
    let md = "text\n```sql\nCREATE SOURCE s (a INT); -- a source\nSELECT a,\n  'x--y' AS b FROM s;\n--  a | b\n--  1 | x--y\nSELECT 1;\n```\n```text\nNOT RUN;\n```\n";
    let s = steps(md);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].sql, "CREATE SOURCE s (a INT); \n");
    assert_eq!(s[1].line, 4);
    let (cols, rows) = s[1].shown.as_ref().expect("output");
    assert_eq!(cols, &["a", "b"]);
    assert_eq!(rows, &[vec!["1".to_string(), "x--y".to_string()]]);
    assert!(s[2].shown.is_none());
}
