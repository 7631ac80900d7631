//! PostgreSQL CDC against the machine's PostgreSQL (127.0.0.1:5432, with
//! `wal_level = logical`, which `.ci/run` sets): the snapshot, then
//! inserts, updates (also of the key) and deletes, across a `kill -9` of
//! Freshet; DROP removes the replication slot. Skipped loudly without a
//! suitable server.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::harness::{first_row as text, TestServer};

async fn pg(db: &str) -> Option<Client> {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={db} connect_timeout=5"),
        NoTls,
    )
    .await
    .ok()?;
    tokio::spawn(conn);
    Some(c)
}

const CONTENT: &str =
    "SELECT coalesce(string_agg(id || ':' || item || ':' || qty, ',' ORDER BY id), '') FROM orders";

/// Waits until Freshet's `orders` holds what PostgreSQL's does.
async fn converge(server: &TestServer, upstream: &Client) {
    let want = text(upstream, CONTENT).await;
    let c = server.connect().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = text(&c, CONTENT).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cdc_snapshot_changes_and_restart() {
    let Some(admin) = pg("postgres").await else {
        eprintln!("SKIPPED: no PostgreSQL on 127.0.0.1:5432 for the CDC test");
        return;
    };
    if text(&admin, "SHOW wal_level").await != "logical" {
        eprintln!("SKIPPED: PostgreSQL's wal_level is not logical (.ci/run sets it)");
        return;
    }
    let db = format!("fcdc_{}", std::process::id());
    let slot = format!("{db}_slot");
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .expect("create database");
    let up = pg(&db).await.expect("connect");
    up.batch_execute(
        "CREATE TABLE orders (id INT PRIMARY KEY, item TEXT NOT NULL, qty INT, at TIMESTAMPTZ DEFAULT now()); \
         INSERT INTO orders (id, item, qty) VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'fig', 1)",
    )
    .await
    .expect("upstream table");

    let mut server = TestServer::start();
    let c = server.connect().await;
    // a table the connector cannot read is an error at CREATE
    let e = c
        .batch_execute(&format!(
            "CREATE TABLE nope (id INT PRIMARY KEY) WITH (connector = 'postgres-cdc', \
             hostname = '127.0.0.1', port = '5432', username = 'postgres', \
             database.name = '{db}', table.name = 'public.missing')"
        ))
        .await
        .expect_err("missing upstream table");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("public.missing does not exist"), "{e:?}");
    c.batch_execute(&format!(
        "CREATE TABLE orders (id INT PRIMARY KEY, item TEXT, qty INT, at TIMESTAMPTZ) \
         WITH (connector = 'postgres-cdc', hostname = '127.0.0.1', port = '5432', \
               username = 'postgres', database.name = '{db}', table.name = 'public.orders', \
               slot.name = '{slot}'); \
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(qty) AS q FROM orders"
    ))
    .await
    .expect("create cdc table");
    converge(&server, &up).await;

    up.batch_execute(
        "INSERT INTO orders (id, item, qty) VALUES (4, 'kiwi', 7); \
         UPDATE orders SET qty = qty + 10 WHERE id = 1; \
         UPDATE orders SET id = 20 WHERE id = 2; \
         DELETE FROM orders WHERE id = 3; \
         BEGIN; INSERT INTO orders (id, item, qty) VALUES (5, 'lime', 2); UPDATE orders SET item = 'lemon' WHERE id = 5; COMMIT",
    )
    .await
    .expect("changes");
    converge(&server, &up).await;

    // changes while Freshet is down, and during its restart
    drop(c);
    server.kill();
    up.batch_execute(
        "INSERT INTO orders (id, item, qty) SELECT g, 'bulk', g FROM generate_series(100, 600) g; \
         DELETE FROM orders WHERE id BETWEEN 100 AND 150",
    )
    .await
    .expect("changes while down");
    server.restart(true);
    up.batch_execute("UPDATE orders SET qty = 0 WHERE id BETWEEN 500 AND 600")
        .await
        .expect("changes after restart");
    converge(&server, &up).await;
    let c = server.connect().await;
    assert_eq!(
        text(&c, "SELECT n || '|' || q FROM totals").await,
        text(&up, "SELECT count(*) || '|' || sum(qty) FROM orders").await
    );
    assert_eq!(
        text(
            &c,
            "SELECT state FROM freshet_catalog.source_status WHERE source = 'orders'"
        )
        .await,
        "running"
    );

    // DROP releases the slot
    c.batch_execute("DROP MATERIALIZED VIEW totals; DROP TABLE orders")
        .await
        .expect("drop");
    let deadline = Instant::now() + Duration::from_secs(30);
    while text(
        &admin,
        &format!("SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"),
    )
    .await
        != "0"
    {
        assert!(
            Instant::now() < deadline,
            "the replication slot was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(up);
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await;
}
