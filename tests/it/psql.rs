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
    let out = psql(&server, &["\\d"]).unwrap_or_default();
    assert!(
        out.contains("per_seller"),
        "\\d does not list the view:\n{out}"
    );
    let out = psql(&server, &["\\d per_seller"]).unwrap_or_default();
    assert!(out.contains("seller") && out.contains("n"), "{out}");
}
