//! The extended query protocol with typed parameters and binary results,
//! row limits, and session parameters.

use chrono::NaiveDateTime;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_with_typed_parameters() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE m (id BIGINT PRIMARY KEY, small SMALLINT, i INT, f REAL, d DOUBLE PRECISION,
                         ok BOOLEAN, name TEXT, at TIMESTAMP, day DATE, raw BYTEA)",
    )
    .await
    .unwrap();
    let insert = c
        .prepare("INSERT INTO m VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .await
        .unwrap();
    let at =
        NaiveDateTime::parse_from_str("2026-01-01 10:00:00.25", "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let day = at.date();
    for id in 0..3i64 {
        let n = c
            .execute(
                &insert,
                &[
                    &id,
                    &(id as i16),
                    &(id as i32 * 10),
                    &(1.5f32),
                    &(0.25f64),
                    &(id % 2 == 0),
                    &format!("name {id}"),
                    &at,
                    &day,
                    &vec![1u8, 2, id as u8],
                ],
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let rows = c
        .query(
            "SELECT id, small, i, f, d, ok, name, at, day, raw FROM m WHERE id >= $1 ORDER BY id",
            &[&1i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.get::<_, i64>(0), 1);
    assert_eq!(r.get::<_, i16>(1), 1);
    assert_eq!(r.get::<_, i32>(2), 10);
    assert_eq!(r.get::<_, f32>(3), 1.5);
    assert_eq!(r.get::<_, f64>(4), 0.25);
    assert!(!r.get::<_, bool>(5));
    assert_eq!(r.get::<_, String>(6), "name 1");
    assert_eq!(r.get::<_, NaiveDateTime>(7), at);
    assert_eq!(r.get::<_, chrono::NaiveDate>(8), day);
    assert_eq!(r.get::<_, Vec<u8>>(9), vec![1, 2, 1]);

    // a parameter of the wrong shape fails cleanly and the session goes on
    let e = c
        .execute("UPDATE m SET name = 'x' WHERE id = $1", &[&"not a number"])
        .await;
    assert!(e.is_err());
    let n = c
        .execute("UPDATE m SET name = 'x' WHERE id = $1", &[&2i64])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = c
        .execute("DELETE FROM m WHERE id < $1", &[&2i64])
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_row_limits() {
    let server = TestServer::start();
    let mut c = server.connect().await;
    c.batch_execute(
        "CREATE SOURCE n (v BIGINT); INSERT INTO n SELECT * FROM generate_series(1, 100)",
    )
    .await
    .unwrap();
    let tx = c.transaction().await.unwrap();
    let stmt = tx.prepare("SELECT v FROM n ORDER BY v").await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    let first = tx.query_portal(&portal, 30).await.unwrap();
    assert_eq!(first.len(), 30);
    assert_eq!(first[0].get::<_, i64>(0), 1);
    let second = tx.query_portal(&portal, 30).await.unwrap();
    assert_eq!(second[0].get::<_, i64>(0), 31);
    let rest = tx.query_portal(&portal, 0).await.unwrap();
    assert_eq!(rest.len(), 40);
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_parameters() {
    let server = TestServer::start();
    let c = server.connect().await;
    for (set, show, want) in [
        ("SET extra_float_digits = 3", "SHOW extra_float_digits", "3"),
        (
            "SET application_name TO 'tests'",
            "SHOW application_name",
            "tests",
        ),
        ("SET TIME ZONE 'UTC'", "SHOW TimeZone", "UTC"),
        ("SET search_path = public", "SHOW search_path", "public"),
        ("SET DateStyle = 'ISO, MDY'", "SHOW datestyle", "ISO, MDY"),
        (
            "SET standard_conforming_strings = on",
            "SHOW standard_conforming_strings",
            "on",
        ),
        (
            "SET client_encoding = 'UTF8'",
            "SHOW client_encoding",
            "UTF8",
        ),
    ] {
        c.batch_execute(set).await.unwrap();
        let rows = c.simple_query(show).await.unwrap();
        let v = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(v.as_deref(), Some(want), "{show}");
    }
    c.batch_execute("BEGIN; SELECT 1; COMMIT; BEGIN; ROLLBACK")
        .await
        .unwrap();
    let v: String = c.query_one("SELECT version()", &[]).await.unwrap().get(0);
    assert!(v.starts_with("PostgreSQL "), "{v}");
}

/// Describe of a statement without a result (INSERT without RETURNING,
/// SET) answers ParameterDescription then NoData, as PostgreSQL does; a
/// query answers a RowDescription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_of_a_write_is_no_data() {
    use crate::raw::{msg, Raw};
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE d (a INT, b TEXT)")
        .await
        .unwrap();
    let mut r = Raw::connect(server.port).await;
    let describe = |sql: &str| {
        let mut m = msg(b'P', format!("\0{sql}\0\0\0").as_bytes());
        m.extend(msg(b'D', b"S\0"));
        m.extend(msg(b'S', b""));
        m
    };
    let kinds = |msgs: &[(u8, Vec<u8>)]| msgs.iter().map(|(t, _)| *t as char).collect::<String>();
    r.send(&describe("INSERT INTO d VALUES ($1, $2)")).await;
    assert_eq!(kinds(&r.until_ready().await), "1tnZ");
    r.send(&describe("SET TimeZone = 'UTC'")).await;
    assert_eq!(kinds(&r.until_ready().await), "1tnZ");
    r.send(&describe("SELECT a FROM d WHERE b = $1")).await;
    assert_eq!(kinds(&r.until_ready().await), "1tTZ");
}

/// ReadyForQuery carries the transaction status: I, T, E; a failed COMMIT
/// ends the block; ROLLBACK TO resumes a failed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_for_query_reports_the_block() {
    use crate::raw::{msg, Raw};
    let server = TestServer::start();
    let mut r = Raw::connect(server.port).await;
    let mut status = async |sql: &str| {
        r.send(&msg(b'Q', format!("{sql}\0").as_bytes())).await;
        let msgs = r.until_ready().await;
        msgs.last().map(|(_, b)| b[0] as char).unwrap_or('?')
    };
    assert_eq!(status("CREATE TABLE k (id INT PRIMARY KEY)").await, 'I');
    assert_eq!(status("BEGIN").await, 'T');
    assert_eq!(status("SAVEPOINT s").await, 'T');
    assert_eq!(status("SELECT 1/0").await, 'E');
    assert_eq!(status("SELECT 1").await, 'E');
    assert_eq!(status("ROLLBACK TO s").await, 'T');
    assert_eq!(status("INSERT INTO k VALUES (1)").await, 'T');
    assert_eq!(status("COMMIT").await, 'I');
    // a COMMIT that fails (a concurrent insert of the same key) still ends it
    assert_eq!(status("BEGIN; INSERT INTO k VALUES (2)").await, 'T');
    let other = server.connect().await;
    other
        .batch_execute("INSERT INTO k VALUES (2)")
        .await
        .unwrap();
    assert_eq!(status("COMMIT").await, 'I');
    assert_eq!(status("SELECT 1").await, 'I');
}

/// `COPY … TO STDOUT` in text and CSV, of a table, some columns or a
/// query, with the values as a query shows them (checked against
/// PostgreSQL 15's output of the same statements).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_to_stdout() {
    use futures::TryStreamExt;
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(
        "CREATE TABLE ct (id INT, name TEXT, t TIMESTAMP, f FLOAT8, b BOOL, j JSONB, n NUMERIC(10,2));
         INSERT INTO ct VALUES (1, 'a,b', '2020-01-01 12:00:00', 1.5, true, '{\"a\": 1}', 1.50),
           (2, E'tab\\there\\nnl\\\\bs', NULL, 1e20, false, NULL, NULL),
           (3, '', '2020-01-01 00:00:00.25', NULL, NULL, '[1, \"x,y\"]', -3)",
    )
    .await
    .unwrap();
    let copy = async |sql: &str| -> String {
        let stream = c.copy_out(sql).await.unwrap();
        let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
        String::from_utf8(chunks.concat()).unwrap()
    };
    assert_eq!(
        copy("COPY ct TO STDOUT").await,
        "1\ta,b\t2020-01-01 12:00:00\t1.5\tt\t{\"a\": 1}\t1.50\n\
         2\ttab\\there\\nnl\\\\bs\t\\N\t1e+20\tf\t\\N\t\\N\n\
         3\t\t2020-01-01 00:00:00.25\t\\N\t\\N\t[1, \"x,y\"]\t-3.00\n"
    );
    assert_eq!(
        copy("COPY ct (id, name) TO STDOUT WITH (FORMAT csv, HEADER)").await,
        "id,name\n1,\"a,b\"\n2,\"tab\there\nnl\\bs\"\n3,\"\"\n"
    );
    assert_eq!(
        copy("COPY (SELECT id, n FROM ct WHERE id > 1 ORDER BY id) TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'NULL')").await,
        "2;NULL\n3;-3.00\n"
    );
    assert_eq!(
        copy("COPY (SELECT id FROM ct WHERE false) TO STDOUT (FORMAT csv, HEADER)").await,
        "id\n"
    );
    let e = c.copy_out("COPY ct TO '/tmp/x'").await.err().unwrap();
    assert_eq!(e.code().map(|s| s.code()), Some("0A000"));
}

/// `pg_stat_activity`: one row per connection, the running statement of
/// the one asking, an open block's state and start, the client's
/// application name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_activity_lists_connections() {
    let server = TestServer::start();
    let watcher = server.connect().await;
    let (other, conn) = tokio_postgres::connect(
        &format!("{} application_name=worker", server.conn_string()),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    other.batch_execute("BEGIN").await.unwrap();
    other.query("SELECT 41 + 1", &[]).await.unwrap();
    let rows = watcher
        .query(
            "SELECT application_name, state, query, xact_start IS NOT NULL, pid > 0, usename, datname \
             FROM pg_stat_activity ORDER BY state",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, String, bool, bool, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].1, "active");
    assert!(got[0].2.contains("FROM pg_stat_activity"), "{got:?}");
    assert_eq!(
        (
            got[1].0.as_str(),
            got[1].1.as_str(),
            got[1].2.as_str(),
            got[1].3,
            got[1].4
        ),
        ("worker", "idle in transaction", "SELECT 41 + 1", true, true),
        "{got:?}"
    );
    assert_eq!(
        (got[1].5.as_str(), got[1].6.as_str()),
        ("freshet", "freshet")
    );
    other.batch_execute("COMMIT").await.unwrap();
    drop(other);
    // a closed connection leaves the list
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let n: i64 = watcher
        .query_one("SELECT count(*) FROM pg_stat_activity", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

/// A block whose client goes away rolls back: what it created is dropped
/// again (and its rows were never committed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_clients_block_drops_what_it_created() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute("BEGIN; CREATE TABLE left_open (id INT); INSERT INTO left_open VALUES (1); CREATE INDEX ON left_open (id)")
        .await
        .unwrap();
    drop(c);
    let c = server.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let gone = c.simple_query("SELECT * FROM left_open").await.is_err();
        if gone {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the table of a vanished block is still there"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // and the name is free again
    c.batch_execute("CREATE TABLE left_open (id INT)")
        .await
        .unwrap();
}
