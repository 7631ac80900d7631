//! CREATE / DROP / ALTER DATABASE: separate catalogs in one server, shared
//! roles, connections per database, and what survives a restart or a crash.

use crate::harness::{row_texts, TestServer};

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_are_separate_catalogs() {
    let mut server = TestServer::start();
    let main = server.connect().await;
    main.batch_execute(
        "CREATE DATABASE shop;
         CREATE TABLE t (a INT PRIMARY KEY, src TEXT);
         INSERT INTO t VALUES (1, 'freshet');",
    )
    .await
    .unwrap();
    let shop = server.connect_as("shop", "freshet").await.unwrap();
    // the same name, another relation
    shop.batch_execute(
        "CREATE TABLE t (a INT PRIMARY KEY, src TEXT);
         INSERT INTO t VALUES (2, 'shop'), (3, 'shop');
         CREATE MATERIALIZED VIEW n AS SELECT count(*) AS n FROM t;
         INSERT INTO t VALUES (4, 'shop');",
    )
    .await
    .unwrap();
    let q = |sql: &'static str| sql;
    assert_eq!(
        row_texts(shop.simple_query(q("SELECT n FROM n")).await.unwrap()),
        vec!["3"]
    );
    assert_eq!(
        row_texts(main.simple_query("SELECT a FROM t").await.unwrap()),
        vec!["1"]
    );
    let e = main.simple_query("SELECT * FROM n").await.unwrap_err();
    assert_eq!(code(&e), "42P01");
    assert_eq!(
        row_texts(
            shop.simple_query("SELECT current_database(), current_catalog")
                .await
                .unwrap()
        ),
        vec!["shop|shop"]
    );
    assert_eq!(
        row_texts(
            shop.simple_query(
                "SELECT table_catalog FROM information_schema.tables WHERE table_name = 't'"
            )
            .await
            .unwrap()
        ),
        vec!["shop"]
    );
    // a three-part name: this database's, or refused
    assert_eq!(
        row_texts(
            shop.simple_query("SELECT count(*) FROM shop.public.t")
                .await
                .unwrap()
        ),
        vec!["3"]
    );
    let e = shop
        .simple_query("SELECT * FROM freshet.public.t")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "0A000");
    // pg_database lists both
    assert_eq!(
        row_texts(
            main.simple_query("SELECT datname FROM pg_database ORDER BY datname")
                .await
                .unwrap()
        ),
        vec!["freshet", "shop"]
    );

    // roles are the server's: made in one database, seen in the other
    shop.batch_execute("CREATE ROLE alice LOGIN; ALTER TABLE t OWNER TO alice")
        .await
        .unwrap();
    let alice = server.connect_as("freshet", "alice").await.unwrap();
    drop(alice);
    let e = main.simple_query("DROP ROLE alice").await.unwrap_err();
    assert_eq!(code(&e), "2BP01");
    assert!(
        e.as_db_error()
            .and_then(|d| d.detail())
            .is_some_and(|d| d.contains("1 object in database shop")),
        "{e:?}"
    );

    // no such database: FATAL 3D000 at start-up
    let e = server.connect_as("nope", "freshet").await.err().unwrap();
    assert_eq!(code(&e), "3D000");

    // survives a crash: the list, each database's data and views
    drop(shop);
    drop(main);
    server.restart(true);
    let shop = server.connect_as("shop", "freshet").await.unwrap();
    assert_eq!(
        row_texts(shop.simple_query("SELECT n FROM n").await.unwrap()),
        vec!["3"]
    );
    shop.batch_execute("INSERT INTO t VALUES (5, 'shop')")
        .await
        .unwrap();
    assert_eq!(
        row_texts(shop.simple_query("SELECT n FROM n").await.unwrap()),
        vec!["4"]
    );
    let main = server.connect().await;
    assert_eq!(
        row_texts(main.simple_query("SELECT a FROM t").await.unwrap()),
        vec!["1"]
    );

    // DROP DATABASE: not the open one, not while others use it
    let e = shop.simple_query("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(code(&e), "55006");
    let e = main.simple_query("DROP DATABASE shop").await.unwrap_err();
    assert_eq!(code(&e), "55006");
    assert!(
        e.as_db_error()
            .and_then(|d| d.detail())
            .is_some_and(|d| d.contains("1 other session")),
        "{e:?}"
    );
    drop(shop);
    // (the session ends as the client goes; DROP waits for it)
    main.batch_execute("DROP DATABASE shop").await.unwrap();
    let dirs = std::fs::read_dir(server.dir.join("databases"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0, "the dropped database's directory is gone");
    let e = server.connect_as("shop", "freshet").await.err().unwrap();
    assert_eq!(code(&e), "3D000");
    main.batch_execute("DROP DATABASE IF EXISTS shop; DROP ROLE alice")
        .await
        .unwrap();
    // a new database of the same name starts empty
    main.batch_execute("CREATE DATABASE shop").await.unwrap();
    let shop = server.connect_as("shop", "freshet").await.unwrap();
    let e = shop.simple_query("SELECT * FROM t").await.unwrap_err();
    assert_eq!(code(&e), "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_statements_check_and_refuse() {
    let server = TestServer::start();
    let main = server.connect().await;
    for (sql, want) in [
        ("CREATE DATABASE freshet", "42P04"),
        ("BEGIN; CREATE DATABASE x", "25001"),
        ("ROLLBACK", ""),
        ("CREATE DATABASE x ENCODING 'LATIN1'", "0A000"),
        ("CREATE DATABASE x TEMPLATE freshet", "0A000"),
        ("CREATE DATABASE x LOCALE 'de_DE.UTF-8'", "0A000"),
        ("DROP DATABASE nope", "3D000"),
        ("DROP DATABASE IF EXISTS nope", ""),
        ("DROP DATABASE freshet", "55006"),
        ("ALTER DATABASE freshet RENAME TO f2", "55006"),
        ("CREATE DATABASE a WITH OWNER = freshet TEMPLATE = template0 ENCODING = 'UTF8' LC_COLLATE = 'C' CONNECTION LIMIT = 1", ""),
        ("CREATE DATABASE a", "42P04"),
        ("ALTER DATABASE a RENAME TO b", ""),
        ("CREATE ROLE bob LOGIN", ""),
        ("CREATE ROLE carol LOGIN CREATEDB", ""),
    ] {
        let r = main.batch_execute(sql).await;
        match (want, r) {
            ("", Ok(())) => {}
            ("", Err(e)) => panic!("{sql}: {e:?}"),
            (w, Ok(())) => panic!("{sql}: succeeded, expected {w}"),
            (w, Err(e)) => assert_eq!(code(&e), w, "{sql}: {e:?}"),
        }
    }
    // the connection limit (superusers are exempt)
    let b1 = server.connect_as("b", "bob").await.unwrap();
    let e = server.connect_as("b", "bob").await.err().unwrap();
    assert_eq!(code(&e), "53300");
    let _su = server.connect_as("b", "freshet").await.unwrap();
    drop(b1);
    // privileges: CREATEDB to create; owner or superuser to drop
    let bob = server.connect_as("freshet", "bob").await.unwrap();
    let e = bob.simple_query("CREATE DATABASE mine").await.unwrap_err();
    assert_eq!(code(&e), "42501");
    let carol = server.connect_as("freshet", "carol").await.unwrap();
    carol.batch_execute("CREATE DATABASE mine").await.unwrap();
    let e = bob.simple_query("DROP DATABASE mine").await.unwrap_err();
    assert_eq!(code(&e), "42501");
    assert_eq!(
        row_texts(
            main.simple_query(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mine'"
            )
            .await
            .unwrap()
        ),
        vec!["carol"]
    );
    let e = main.simple_query("DROP ROLE carol").await.unwrap_err();
    assert_eq!(code(&e), "2BP01");
    carol.batch_execute("DROP DATABASE mine").await.unwrap();
    main.batch_execute("DROP ROLE carol").await.unwrap();
    // ALLOW_CONNECTIONS false
    main.batch_execute("ALTER DATABASE b ALLOW_CONNECTIONS false")
        .await
        .unwrap();
    let e = server.connect_as("b", "freshet").await.err().unwrap();
    assert_eq!(code(&e), "55000");
}

/// Run-time parameters of the start-up packet (libpq's `options`,
/// `PGOPTIONS`, `PGTZ`, `application_name`; JDBC's `currentSchema`) are set
/// for the session, as in PostgreSQL; a bad one ends the start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_parameters_are_settings() {
    let server = TestServer::start();
    let main = server.connect().await;
    main.batch_execute(
        "CREATE SCHEMA sales; CREATE TABLE sales.t (a INT); INSERT INTO sales.t VALUES (7)",
    )
    .await
    .unwrap();
    let conf = format!(
        "host=127.0.0.1 port={} user=freshet dbname=freshet application_name=app1 \
         options='-c search_path=sales,public -c TimeZone=Asia/Tokyo --statement-timeout=5s'",
        server.port
    );
    let (c, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    assert_eq!(
        row_texts(
            c.simple_query(
                "SELECT a, current_setting('search_path'), current_setting('TimeZone'), \
                 current_setting('statement_timeout'), current_setting('application_name') FROM t"
            )
            .await
            .unwrap()
        ),
        vec!["7|sales,public|Asia/Tokyo|5s|app1"]
    );
    assert_eq!(
        row_texts(
            c.simple_query("SELECT TIMESTAMPTZ '2020-01-01 00:00:00+00'")
                .await
                .unwrap()
        ),
        vec!["2020-01-01 09:00:00+09"]
    );
    let conf = format!(
        "host=127.0.0.1 port={} user=freshet dbname=freshet options='-c TimeZone=Nowhere/Special'",
        server.port
    );
    let e = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&e), "22023");
}
