//! psql's own catalog queries (`\dt`, `\d`, `\d NAME`) against Freshet.
//! Skipped, loudly, where psql is not installed.

use std::process::Command;

use crate::harness::TestServer;

fn psql(server: &TestServer, commands: &[&str]) -> Option<String> {
    let mut cmd = Command::new("psql");
    cmd.args([
        "-X",
        "-h",
        "127.0.0.1",
        "-p",
        &server.port.to_string(),
        "-U",
        "freshet",
        "-d",
        "freshet",
        "-v",
        "ON_ERROR_STOP=1",
    ]);
    for c in commands {
        cmd.arg("-c").arg(c);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(_) => {
            eprintln!("SKIPPED: psql is not installed; the \\d tests did not run");
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "psql failed: {stderr}\n{stdout}");
    Some(stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describe_commands() {
    let server = TestServer::start();
    server
        .connect()
        .await
        .batch_execute(
            "CREATE SOURCE bids (auction BIGINT, price BIGINT NOT NULL, channel TEXT, date_time TIMESTAMP);
             CREATE TABLE auctions (id BIGINT PRIMARY KEY, seller BIGINT, category INT);
             CREATE MATERIALIZED VIEW per_seller AS
               SELECT seller, count(*) AS n FROM auctions GROUP BY seller;",
        )
        .await
        .unwrap();
    let Some(out) = psql(&server, &["\\dt"]) else {
        return;
    };
    assert!(out.contains("auctions") && out.contains("bids"), "{out}");
    let out = psql(&server, &["\\d"]).unwrap_or_default();
    assert!(out.contains("auctions") && out.contains("bids"), "{out}");
    let out = psql(&server, &["\\d bids"]).unwrap_or_default();
    for want in [
        "auction",
        "bigint",
        "price",
        "not null",
        "channel",
        "text",
        "date_time",
        "timestamp without time zone",
    ] {
        assert!(out.contains(want), "\\d bids lacks {want}:\n{out}");
    }
    assert!(
        !out.contains("_offset"),
        "\\d shows the hidden column:\n{out}"
    );
    let out = psql(&server, &["\\d auctions"]).unwrap_or_default();
    assert!(out.contains("seller") && out.contains("integer"), "{out}");
    // the key under Indexes, as PostgreSQL prints it
    assert!(
        out.contains("\"auctions_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );
    // \d+ (storage columns; its toast-options ARRAY over an outer row) and
    // \dt+ (sizes)
    let out = psql(&server, &["\\d+ auctions"]).unwrap_or_default();
    assert!(out.contains("Storage") && out.contains("seller"), "{out}");
    let out = psql(&server, &["\\dt+"]).unwrap_or_default();
    assert!(out.contains("Size") && out.contains("auctions"), "{out}");
    let out = psql(&server, &["\\df abs"]).unwrap_or_default();
    assert!(out.contains("double precision"), "{out}");
    let out = psql(&server, &["\\d"]).unwrap_or_default();
    assert!(
        out.contains("per_seller"),
        "\\d does not list the view:\n{out}"
    );
    let out = psql(&server, &["\\d per_seller"]).unwrap_or_default();
    assert!(out.contains("seller") && out.contains("n"), "{out}");
}

/// `\dv`, `\dm`, `\sv`, `\du`: plain and materialized views apart, a view's
/// query, the roles (their memberships are an `ARRAY(subquery)`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_view_and_role_commands() {
    let server = TestServer::start();
    server
        .connect()
        .await
        .batch_execute(
            "CREATE TABLE t (id BIGINT, v INT);
             CREATE VIEW big AS SELECT id, v FROM t WHERE v > 10;
             CREATE MATERIALIZED VIEW total AS SELECT sum(v) AS s FROM t;
             CREATE ROLE reader LOGIN;
             CREATE ROLE readers;",
        )
        .await
        .unwrap();
    let Some(out) = psql(&server, &["\\dv"]) else {
        return;
    };
    assert!(
        out.contains("big") && !out.contains("total"),
        "\\dv:\n{out}"
    );
    let out = psql(&server, &["\\dm"]).unwrap_or_default();
    assert!(
        out.contains("total") && out.contains("materialized view") && !out.contains("big"),
        "\\dm:\n{out}"
    );
    let out = psql(&server, &["\\sv big"]).unwrap_or_default();
    assert!(
        out.contains("CREATE OR REPLACE VIEW public.big AS") && out.contains("WHERE v > 10"),
        "\\sv:\n{out}"
    );
    let out = psql(&server, &["\\du"]).unwrap_or_default();
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("reader "))
        .unwrap_or_default();
    // (roles are not members of roles here: the list is empty)
    assert!(line.contains("{}"), "\\du:\n{out}");
    assert!(
        out.contains("readers") && out.contains("Cannot login"),
        "\\du:\n{out}"
    );
}

/// `\dn`, `\dt s.*`, `\d s.t` and `\dt` under a search path: schemas apart,
/// the same name in two of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_schema_commands() {
    let server = TestServer::start();
    server
        .connect()
        .await
        .batch_execute(
            "CREATE SCHEMA sales;
             CREATE TABLE sales.orders (id BIGINT PRIMARY KEY, amount INT);
             CREATE TABLE orders (id BIGINT, note TEXT);
             CREATE MATERIALIZED VIEW sales.totals AS SELECT sum(amount) AS s FROM sales.orders;",
        )
        .await
        .unwrap();
    let Some(out) = psql(&server, &["\\dn"]) else {
        return;
    };
    assert!(out.contains("sales") && out.contains("public"), "{out}");
    let out = psql(&server, &["\\dt sales.*"]).unwrap_or_default();
    assert!(
        out.contains("sales  | orders") && !out.contains("public"),
        "{out}"
    );
    let out = psql(&server, &["\\d sales.orders"]).unwrap_or_default();
    assert!(
        out.contains("Table \"sales.orders\"") && out.contains("amount") && !out.contains("note"),
        "{out}"
    );
    assert!(
        out.contains("\"orders_pkey\" PRIMARY KEY, btree (id)"),
        "{out}"
    );
    // the default path shows public's orders only; with sales first, its
    let out = psql(&server, &["\\dt"]).unwrap_or_default();
    assert!(
        out.contains("public | orders") && !out.contains("sales"),
        "{out}"
    );
    let out = psql(
        &server,
        &["SET search_path = sales, public", "\\dt", "\\dm"],
    )
    .unwrap_or_default();
    assert!(
        out.contains("sales  | orders") && !out.contains("public | orders"),
        "{out}"
    );
    assert!(out.contains("totals"), "{out}");
    // \l+ (its size column asks pg_has_role)
    let out = psql(&server, &["\\l+"]).unwrap_or_default();
    assert!(out.contains("freshet") && out.contains("Size"), "{out}");
    // \dn+: owners and grants of each schema
    let out = psql(
        &server,
        &[
            "CREATE ROLE reader",
            "CREATE ROLE mart_owner",
            "CREATE SCHEMA mart AUTHORIZATION mart_owner",
            "GRANT USAGE ON SCHEMA sales TO reader",
            "\\dn+",
        ],
    )
    .unwrap_or_default();
    assert!(
        out.contains("freshet=UC/freshet")
            && out.contains("reader=U/freshet")
            && out.contains(" mart            | mart_owner |"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_databases_and_connect() {
    let server = TestServer::start();
    let Some(out) = psql(&server, &["CREATE DATABASE shop", "\\l"]) else {
        return;
    };
    assert!(
        out.contains(" shop    | freshet | UTF8     | C       | C")
            && out.contains(" freshet | freshet | UTF8"),
        "{out}"
    );
    // \c switches database: what is made there stays there
    let out = psql(
        &server,
        &[
            "\\c shop",
            "CREATE TABLE items (id INT PRIMARY KEY)",
            "SELECT current_database()",
            "\\dt",
        ],
    )
    .unwrap_or_default();
    assert!(
        out.contains("You are now connected to database \"shop\"")
            && out.contains("\n shop\n")
            && out.contains("public | items | table"),
        "{out}"
    );
    let out = psql(&server, &["\\dt"]).unwrap_or_default();
    assert!(!out.contains("items"), "{out}");
    let out = psql(&server, &["DROP DATABASE shop", "\\l"]).unwrap_or_default();
    assert!(!out.contains("shop"), "{out}");
}
