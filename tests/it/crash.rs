//! SIGKILL during concurrent writes: after a restart every acknowledged row
//! is present exactly once, every statement is all-or-nothing, and offsets
//! are unique.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{sorted_rows, TestServer};

const ROWS_PER_STATEMENT: i64 = 5;

/// Each statement inserts ROWS_PER_STATEMENT rows tagged with its own id.
fn statement(stmt_id: i64) -> String {
    let rows: Vec<String> = (0..ROWS_PER_STATEMENT)
        .map(|k| format!("({stmt_id}, {k}, 'payload-{stmt_id}-{k}')"))
        .collect();
    format!("INSERT INTO events VALUES {}", rows.join(", "))
}

async fn writer(
    port: u16,
    worker: i64,
    acked: Arc<Mutex<HashSet<i64>>>,
    tried: Arc<Mutex<HashSet<i64>>>,
) {
    let conn = format!("host=127.0.0.1 port={port} user=freshet dbname=freshet");
    let Ok((client, connection)) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    for i in 0.. {
        let id = worker * 1_000_000 + i;
        tried.lock().unwrap().insert(id);
        match client.batch_execute(&statement(id)).await {
            Ok(()) => {
                acked.lock().unwrap().insert(id);
            }
            Err(_) => return,
        }
    }
}

async fn check(server: &TestServer, acked: &HashSet<i64>, tried: &HashSet<i64>) -> usize {
    let client = server.connect().await;
    let rows = client
        .query("SELECT stmt, k, _offset FROM events", &[])
        .await
        .expect("select after restart");
    let mut per_stmt: HashMap<i64, HashSet<i64>> = HashMap::new();
    let mut offsets = HashSet::new();
    for r in &rows {
        let stmt: i64 = r.get(0);
        let k: i64 = r.get(1);
        let off: i64 = r.get(2);
        assert!(offsets.insert(off), "offset {off} appears twice");
        assert!(
            per_stmt.entry(stmt).or_default().insert(k),
            "row ({stmt}, {k}) stored twice"
        );
    }
    for id in acked {
        let got = per_stmt.get(id).map(|s| s.len()).unwrap_or(0);
        assert_eq!(
            got as i64, ROWS_PER_STATEMENT,
            "acknowledged statement {id} has {got} rows after restart"
        );
    }
    for (id, ks) in &per_stmt {
        assert!(
            tried.contains(id),
            "statement {id} was never sent but is stored"
        );
        assert_eq!(
            ks.len() as i64,
            ROWS_PER_STATEMENT,
            "statement {id} is partially stored"
        );
    }
    rows.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_writes_loses_no_acknowledged_row() {
    let mut server = TestServer::start();
    server
        .connect()
        .await
        .batch_execute("CREATE SOURCE events (stmt BIGINT, k BIGINT, payload TEXT)")
        .await
        .expect("create source");
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let tried = Arc::new(Mutex::new(HashSet::new()));
    let mut total_acked = 0;
    for round in 0..3i64 {
        let mut handles = Vec::new();
        for w in 0..4 {
            handles.push(tokio::spawn(writer(
                server.port,
                round * 10 + w,
                acked.clone(),
                tried.clone(),
            )));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.kill();
        for h in handles {
            let _ = h.await;
        }
        server.restart(true);
        let a = acked.lock().unwrap().clone();
        let t = tried.lock().unwrap().clone();
        assert!(
            a.len() > total_acked,
            "round {round}: no write was acknowledged"
        );
        total_acked = a.len();
        let rows = check(&server, &a, &t).await;
        assert!(rows as i64 >= a.len() as i64 * ROWS_PER_STATEMENT);
    }
}

/// Plain views come back after a kill: their queries, column names and
/// what reads them (a view over a view, a materialized view over both).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_views_survive_sigkill() {
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id INT, a INT);
         INSERT INTO t VALUES (1, 1), (2, 2), (3, 3), (4, -1);
         CREATE VIEW pos (k, v) AS SELECT id, a FROM t WHERE a > 0;
         CREATE OR REPLACE VIEW pos (k, v) AS SELECT id, a, a * 10 AS tenfold FROM t WHERE a > 1;
         CREATE VIEW total AS SELECT sum(tenfold) AS s FROM pos;
         CREATE MATERIALIZED VIEW m AS SELECT s + 1 AS s1 FROM total;",
    )
    .await
    .unwrap();
    server.kill();
    server.restart(true);
    let c = server.connect().await;
    c.batch_execute("INSERT INTO t VALUES (5, 5)")
        .await
        .unwrap();
    let rows = c
        .query("SELECT k, v, tenfold FROM pos ORDER BY k", &[])
        .await
        .unwrap();
    let got: Vec<(i32, i32, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![(2, 2, 20), (3, 3, 30), (5, 5, 50)]);
    let s1: i64 = c.query_one("SELECT s1 FROM m", &[]).await.unwrap().get(0);
    assert_eq!(s1, 101);
    // what reads a view still holds it
    let err = c.batch_execute("DROP VIEW pos").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("2BP01"));
}

/// An altered table keeps its new shape, its rows and its key through
/// kill -9, and views can be created over it after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_tables_survive_sigkill() {
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY, a TEXT, b INT);
         INSERT INTO t VALUES (1, 'x', 10), (2, 'y', 20), (3, 'z', 30);
         DELETE FROM t WHERE id = 3;
         ALTER TABLE t ADD COLUMN c INT;
         ALTER TABLE t DROP COLUMN b;
         ALTER TABLE t RENAME COLUMN a TO name;
         ALTER TABLE t RENAME TO people;
         UPDATE people SET c = id * 100;",
    )
    .await
    .unwrap();
    server.kill();
    server.restart(true);
    let c = server.connect().await;
    let rows = c
        .query("SELECT id, name, c FROM people ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i32, String, i32)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![(1, "x".into(), 100), (2, "y".into(), 200)]);
    // the key holds
    let err = c
        .batch_execute("INSERT INTO people VALUES (1, 'again', 0)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
    // the old name is gone
    let err = c.batch_execute("SELECT * FROM t").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42P01"));
    c.batch_execute(
        "INSERT INTO people VALUES (3, 'w', 300);
         CREATE MATERIALIZED VIEW total AS SELECT sum(c) AS s FROM people;",
    )
    .await
    .unwrap();
    let s: i64 = c
        .query_one("SELECT s FROM total", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(s, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_updates_survive_sigkill() {
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE counters (id BIGINT PRIMARY KEY, n BIGINT);
         INSERT INTO counters VALUES (1, 0), (2, 0), (3, 0);",
    )
    .await
    .unwrap();
    let mut expected = [0i64; 3];
    for i in 0..60 {
        let id = (i % 3) as usize;
        c.execute(
            "UPDATE counters SET n = n + 1 WHERE id = $1",
            &[&((id + 1) as i64)],
        )
        .await
        .unwrap();
        expected[id] += 1;
    }
    c.batch_execute("DELETE FROM counters WHERE id = 3; INSERT INTO counters VALUES (4, 40)")
        .await
        .unwrap();
    server.restart(true);
    let c = server.connect().await;
    let rows = c
        .query("SELECT id, n FROM counters ORDER BY id", &[])
        .await
        .unwrap();
    let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(1, expected[0]), (2, expected[1]), (4, 40)]);
    // The key index is rebuilt too: a duplicate is still refused.
    let err = c
        .batch_execute("INSERT INTO counters VALUES (1, 0)")
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("23505"));
}

/// Views under SIGKILL: writers insert into a source and update a table
/// while views (grouped, global, DISTINCT, view over a view) are maintained
/// and checkpointed every 200 ms; after each crash and restart every view
/// equals its defining query run in batch over the restored relations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_their_query_after_sigkill() {
    const VIEWS: &[(&str, &str)] = &[
        (
            "per_k",
            "SELECT k, count(*) AS n, sum(stmt) AS s, max(stmt) AS mx, min(payload) AS first FROM events GROUP BY k",
        ),
        (
            "totals",
            "SELECT count(*) AS n, count(DISTINCT stmt) AS stmts, avg(k) AS mean FROM events",
        ),
        (
            "by_group",
            "SELECT grp, sum(n) AS total, min(n) AS lo, max(n) AS hi, count(*) AS c FROM counters GROUP BY grp",
        ),
        ("busy_k", "SELECT k, n FROM per_k WHERE n % 2 = 0"),
        ("groups", "SELECT DISTINCT grp FROM counters WHERE n > 3"),
    ];
    let mut server = TestServer::start_with_args(&["--checkpoint-interval", "0.2"]);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE SOURCE events (stmt BIGINT, k BIGINT, payload TEXT);
         CREATE TABLE counters (id BIGINT PRIMARY KEY, grp BIGINT, n BIGINT);
         INSERT INTO counters SELECT value, value % 4, 0 FROM generate_series(1, 40) AS g(value);",
    )
    .await
    .unwrap();
    for (name, q) in VIEWS {
        c.batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {q}"))
            .await
            .unwrap();
    }
    drop(c);

    for round in 0..3i64 {
        let mut handles = Vec::new();
        for w in 0..2 {
            let acked = Arc::new(Mutex::new(HashSet::new()));
            let tried = Arc::new(Mutex::new(HashSet::new()));
            handles.push(tokio::spawn(writer(
                server.port,
                100 + round * 10 + w,
                acked,
                tried,
            )));
        }
        let conn = server.conn_string();
        handles.push(tokio::spawn(async move {
            let Ok((client, connection)) =
                tokio_postgres::connect(&conn, tokio_postgres::NoTls).await
            else {
                return;
            };
            tokio::spawn(async move {
                let _ = connection.await;
            });
            for i in 0i64.. {
                let sql = format!(
                    "UPDATE counters SET n = n + 1, grp = (grp + {}) % 5 WHERE id % 7 = {}",
                    i % 2,
                    i % 7
                );
                if client.batch_execute(&sql).await.is_err() {
                    return;
                }
            }
        }));
        tokio::time::sleep(Duration::from_millis(500 + 250 * round as u64)).await;
        server.kill();
        for h in handles {
            let _ = h.await;
        }
        server.restart(true);
        let c = server.connect().await;
        let n = sorted_rows(&c, "SELECT count(*) FROM events").await;
        assert_ne!(
            n,
            vec!["0".to_string()],
            "round {round}: nothing was written"
        );
        for (name, q) in VIEWS {
            let view = sorted_rows(&c, &format!("SELECT * FROM {name}")).await;
            let batch = sorted_rows(&c, q).await;
            assert_eq!(
                view, batch,
                "round {round}: view {name} differs from its query after a crash"
            );
        }
    }
}
