//! Connectors through the real server: a generator killed mid-stream
//! resumes exactly where its last commit left it; HTTP ingest stores a
//! request whole or not at all, answers only once durable, and checks
//! roles and passwords like the SQL port.

use std::io::{Read, Write};
use std::time::Duration;

use crate::harness::{first_row as one, row_texts, wait_for, TestServer};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// kill -9 while a paced generator is half way: after the restart the
/// source resumes from the position stored with the last rows, so every
/// event is there exactly once (each bid has its own event time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_resumes_exactly_once_after_sigkill() {
    let mut server = TestServer::start();
    let c = server.connect().await;
    // 50,000 events at 20,000 per second: 2.5 s of input
    c.batch_execute(
        "CREATE SOURCE bid (auction BIGINT, price BIGINT, date_time TIMESTAMP) \
         WITH (connector = 'nexmark', nexmark.event.num = 50000, \
               nexmark.min.event.gap.in.ns = 50000, nexmark.max.chunk.size = 500); \
         CREATE MATERIALIZED VIEW n AS SELECT count(*) AS n, sum(price) AS total FROM bid",
    )
    .await
    .expect("create");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before: i64 = one(&c, "SELECT count(*) FROM bid").await.parse().unwrap();
    assert!(before > 0, "nothing ingested before the kill");
    drop(c);
    server.restart(true);
    // 50,000 events hold 46,000 bids
    wait_for(&server, "SELECT count(*) FROM bid", "46000").await;
    let c = server.connect().await;
    assert_eq!(
        one(&c, "SELECT count(DISTINCT date_time) FROM bid").await,
        "46000",
        "an event was stored twice"
    );
    assert_eq!(
        one(&c, "SELECT n || '|' || total FROM n").await,
        one(&c, "SELECT count(*) || '|' || sum(price) FROM bid").await
    );
    assert_eq!(
        one(
            &c,
            "SELECT state || '|' || position FROM freshet_catalog.source_status"
        )
        .await,
        "finished|{\"next\":50000}"
    );
    // a paused source stays paused across a restart
    c.batch_execute("ALTER SOURCE bid PAUSE")
        .await
        .expect("pause");
    drop(c);
    server.restart(false);
    wait_for(
        &server,
        "SELECT state FROM freshet_catalog.source_status",
        "paused",
    )
    .await;
}

/// A minimal HTTP/1.1 client: the status and the body.
fn post(
    port: u16,
    path: &str,
    content_type: &str,
    body: &[u8],
    auth: Option<&str>,
) -> (u16, String) {
    use base64::Engine as _;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect HTTP");
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(a)
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    // (a refused body may be answered before it is all sent)
    let _ = s.write_all(body);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_is_atomic_and_durable() {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let mut server =
        TestServer::start_with_args(&["--http-listen", &addr, "--http-max-body", "4096"]);
    let c = server.connect().await;
    c.batch_execute(
        "CREATE SOURCE ev (id INT NOT NULL, at TIMESTAMPTZ, doc JSONB); \
         CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, city TEXT); \
         CREATE MATERIALIZED VIEW per_city AS SELECT city, count(*) AS n FROM users GROUP BY city",
    )
    .await
    .expect("create");

    let (status, body) = post(
        http,
        "/v1/sources/ev",
        "application/x-ndjson",
        b"{\"id\": 1, \"at\": \"2026-01-01 10:00:00+02\", \"doc\": {\"b\": 1, \"a\": [1, 2]}}\n\n{\"id\": 2}\n",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"first_offset\":0") && body.contains("\"last_offset\":1"),
        "{body}"
    );

    // a bad value: 400 naming the line and the column, nothing stored
    let (status, body) = post(
        http,
        "/v1/sources/ev",
        "application/x-ndjson",
        b"{\"id\": 3}\n{\"id\": \"three\"}\n",
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("line 2") && body.contains("column \\\"id\\\"") && body.contains("\"row\":2"),
        "{body}"
    );
    let (status, body) = post(
        http,
        "/v1/sources/ev",
        "application/x-ndjson",
        b"{\"at\": null}\n",
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not-null"), "{body}");
    let (status, body) = post(
        http,
        "/v1/sources/ev",
        "application/x-ndjson",
        b"[1]\n",
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expected a JSON object"), "{body}");
    assert_eq!(one(&c, "SELECT count(*) FROM ev").await, "2");

    // a JSON array; CSV with a header into a keyed table: the last row per key wins
    let (status, body) = post(
        http,
        "/v1/sources/ev",
        "application/json",
        b"[{\"id\": 4}, {\"id\": 5}]",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        http,
        "/v1/sources/users?header=true",
        "text/csv",
        b"id,name,city\n1,ann,\"Paris, FR\"\n2,bob,Lyon\n1,anne,Lyon\n",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(
        http,
        "/v1/sources/users",
        "text/csv",
        b"2,bobby,Nice\n",
        None,
    );
    assert_eq!(status, 200);
    let c = server.connect().await;
    assert_eq!(
        row_texts(
            c.simple_query("SELECT city, n FROM per_city ORDER BY city")
                .await
                .unwrap()
        ),
        vec!["Lyon|1", "Nice|1"]
    );

    // errors of the request itself
    assert_eq!(
        post(http, "/v1/sources/nope", "application/json", b"{}", None).0,
        404
    );
    assert_eq!(
        post(
            http,
            "/v1/sources/per_city",
            "application/json",
            b"{}",
            None
        )
        .0,
        400
    );
    assert_eq!(
        post(http, "/v1/sources/ev", "text/plain", b"x", None).0,
        415
    );
    let big = vec![b' '; 5000];
    assert_eq!(
        post(http, "/v1/sources/ev", "application/json", &big, None).0,
        413
    );

    // acknowledged means durable: a kill -9 right after keeps every row
    let (status, _) = post(
        http,
        "/v1/sources/ev",
        "application/json",
        b"{\"id\": 6}",
        None,
    );
    assert_eq!(status, 200);
    drop(c);
    server.restart(true);
    let c = server.connect().await;
    assert_eq!(
        one(&c, "SELECT string_agg(id::text, ',' ORDER BY id) FROM ev").await,
        "1,2,4,5,6"
    );
    assert_eq!(
        one(&c, "SELECT doc::text FROM ev WHERE id = 1").await,
        "{\"a\": [1, 2], \"b\": 1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_ingest_checks_passwords_and_privileges() {
    let http = free_port();
    let addr = format!("127.0.0.1:{http}");
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), "su secret\n").unwrap();
    let server = TestServer::start_with_args(&[
        "--auth",
        "scram",
        "--superuser-password-file",
        pw.path().to_str().unwrap(),
        "--http-listen",
        &addr,
    ]);
    let conf = format!(
        "host=127.0.0.1 port={} user=freshet dbname=freshet password='su secret'",
        server.port
    );
    let (c, conn) = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c.batch_execute(
        "CREATE SOURCE ev (id INT); CREATE ROLE app LOGIN PASSWORD 'apppw'; \
         CREATE ROLE reader LOGIN PASSWORD 'readpw'; GRANT INSERT ON ev TO app",
    )
    .await
    .expect("setup");
    let body = b"{\"id\": 1}";
    assert_eq!(
        post(http, "/v1/sources/ev", "application/json", body, None).0,
        401
    );
    assert_eq!(
        post(
            http,
            "/v1/sources/ev",
            "application/json",
            body,
            Some("app:wrong")
        )
        .0,
        401
    );
    assert_eq!(
        post(
            http,
            "/v1/sources/ev",
            "application/json",
            body,
            Some("reader:readpw")
        )
        .0,
        403
    );
    let (status, out) = post(
        http,
        "/v1/sources/ev",
        "application/json",
        body,
        Some("app:apppw"),
    );
    assert_eq!(status, 200, "{out}");
    assert_eq!(one(&c, "SELECT count(*) FROM ev").await, "1");
}
