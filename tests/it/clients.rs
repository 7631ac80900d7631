//! The Python drivers (psycopg2, psycopg 3, SQLAlchemy 2 with both) against
//! a fresh server: `tests/clients/python_clients.py` runs their checks and
//! fails on any that is not a listed gap. Skipped, loudly, where python3 or
//! a driver is not installed (`.ci/run` installs them with pip).

use std::process::Command;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_drivers() {
    let server = TestServer::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python_clients.py"
    );
    let port = server.port.to_string();
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(port).output())
            .await
            .unwrap();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: python3 is not installed; the Python driver checks did not run");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.code() == Some(2) {
        eprintln!(
            "SKIPPED: a Python driver is missing ({}); \
             pip install psycopg2-binary 'psycopg[binary]' sqlalchemy",
            stdout.trim()
        );
        return;
    }
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "Python driver checks failed:\n{stdout}\n{stderr}"
    );
}

/// pgbench: `pgbench -i` (its tables, a client-side `COPY … WITH (FREEZE
/// on)`, `VACUUM`, `ALTER TABLE … ADD PRIMARY KEY`), then its TPC-B-like
/// script from 4 clients. Snapshot isolation fails a transaction that
/// updates a row another committed first (40001); pgbench retries those
/// (`--max-tries`), and none may fail for good. Skipped, loudly, where
/// pgbench is not installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_initializes_and_runs() {
    let server = TestServer::start();
    let port = server.port.to_string();
    let run = move |args: Vec<&'static str>, port: String| {
        tokio::task::spawn_blocking(move || {
            Command::new("pgbench")
                .args(["-h", "127.0.0.1", "-p", &port, "-U", "freshet"])
                .args(args)
                .arg("freshet")
                .output()
        })
    };
    let init = match run(vec!["-i", "-s", "1"], port.clone()).await.unwrap() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: pgbench is not installed (Debian: postgresql-client)");
            return;
        }
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(init.status.success(), "pgbench -i failed:\n{}", text(&init));
    let c = server.connect().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM pgbench_accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 100_000);
    let key: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE conname = 'pgbench_accounts_pkey'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, 1);
    let bench = run(
        vec!["-c", "4", "-j", "2", "-T", "3", "--max-tries=1000"],
        port,
    )
    .await
    .unwrap()
    .unwrap();
    let out = text(&bench);
    eprintln!("{out}");
    assert!(bench.status.success(), "pgbench failed:\n{out}");
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no `{prefix}` in pgbench's report:\n{out}"))
    };
    assert!(
        line("number of failed transactions:").starts_with("0 "),
        "{out}"
    );
    let done: u64 = line("number of transactions actually processed:")
        .parse()
        .unwrap();
    assert!(done > 0, "{out}");
    // the balances moved together: every transaction added its delta to
    // one account, one teller and one branch, and logged it in history
    let sums = c
        .query_one(
            "SELECT (SELECT sum(abalance) FROM pgbench_accounts),
                    (SELECT sum(tbalance) FROM pgbench_tellers),
                    (SELECT sum(bbalance) FROM pgbench_branches),
                    (SELECT sum(delta) FROM pgbench_history),
                    (SELECT count(*) FROM pgbench_history)",
            &[],
        )
        .await
        .unwrap();
    let (a, t, b, h): (i64, i64, i64, i64) = (sums.get(0), sums.get(1), sums.get(2), sums.get(3));
    assert_eq!((a, t, b), (h, h, h), "balances disagree with the history");
    let logged: i64 = sums.get(4);
    assert_eq!(logged as u64, done);
}

/// pgJDBC (`tests/clients/JdbcClient.java`, run as a single-file program):
/// batches, rollback, `fetchSize` streaming, generated keys, and the
/// `DatabaseMetaData` calls tools make. Fails on any check that is not a
/// listed gap; skipped, loudly, where Java or the driver is missing (Debian:
/// `default-jdk-headless`, `libpostgresql-jdbc-java`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdbc_driver() {
    let jar = "/usr/share/java/postgresql.jar";
    if !std::path::Path::new(jar).exists() {
        eprintln!("SKIPPED: pgJDBC is not installed ({jar}; Debian: libpostgresql-jdbc-java)");
        return;
    }
    let server = TestServer::start();
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/JdbcClient.java");
    let port = server.port.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("java")
            .args(["-cp", jar, source, &port])
            .output()
    })
    .await
    .unwrap();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: java is not installed (Debian: default-jdk-headless)");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "JDBC checks failed:\n{stdout}\n{stderr}"
    );
}

/// node-postgres (`tests/clients/node/client.js`; `npm install` in that
/// directory installs the pinned `pg`): types, parameters, transactions,
/// RETURNING, SQLSTATEs, prepared statements. Skipped, loudly, where node
/// or the driver is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres() {
    let server = TestServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node/client.js");
    let port = server.port.to_string();
    let out =
        tokio::task::spawn_blocking(move || Command::new("node").arg(script).arg(port).output())
            .await
            .unwrap();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: node is not installed; the node-postgres checks did not run");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.code() == Some(2) {
        eprintln!(
            "SKIPPED: node-postgres is missing ({}); npm install --prefix tests/clients/node",
            stdout.trim()
        );
        return;
    }
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "node-postgres checks failed:\n{stdout}\n{stderr}"
    );
}

/// The catalog SQL client tools send (`tests/clients/catalog_queries.sql`,
/// copied from their sources): every block must run without an error on a
/// server that holds a table with a key, a view and a materialized view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_queries_of_tools() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE pc_table (id INT PRIMARY KEY, name VARCHAR(20), doc JSONB);
         CREATE INDEX ON pc_table (name);
         CREATE VIEW pc_view AS SELECT id, name FROM pc_table;
         CREATE MATERIALIZED VIEW pc_matview AS SELECT count(*) AS n FROM pc_table;",
    )
    .await
    .unwrap();
    let text = include_str!("../clients/catalog_queries.sql");
    let mut failures = Vec::new();
    let mut ran = 0;
    for block in text.split("-- query: ").skip(1) {
        let (name, sql) = block.split_once('\n').unwrap();
        ran += 1;
        // `-- expect: a|b` lines: the rows the tool must get, in order
        let expected: Vec<&str> = sql
            .lines()
            .filter_map(|l| l.strip_prefix("-- expect: "))
            .collect();
        // `-- differs: a|b`: PostgreSQL's answer, which Freshet does not
        // give yet
        let differs: Vec<&str> = sql
            .lines()
            .filter_map(|l| l.strip_prefix("-- differs: "))
            .collect();
        // `-- fails: CODE`: a known failure, with its SQLSTATE
        let fails = sql.lines().find_map(|l| l.strip_prefix("-- fails: "));
        match c.simple_query(sql).await {
            Err(e) => match fails {
                Some(code) if e.code().map(|c| c.code()) == Some(code) => {}
                _ => failures.push(format!("{name}: {e:?}")),
            },
            Ok(_) if fails.is_some() => failures.push(format!(
                "{name}: now answers: replace `-- fails:` with the rows PostgreSQL gives"
            )),
            Ok(rows) => {
                let got = super::harness::row_texts(rows);
                if !expected.is_empty() && got != expected {
                    failures.push(format!("{name}: got {got:?}, expected {expected:?}"));
                }
                if !differs.is_empty() && got == differs {
                    failures.push(format!(
                        "{name}: now answers as PostgreSQL: mark it `-- expect:`"
                    ));
                }
            }
        }
    }
    assert!(ran >= 10, "only {ran} queries read");
    assert!(
        failures.is_empty(),
        "{} of {ran} catalog queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
