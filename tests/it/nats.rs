//! NATS JetStream sources: every message exactly once across `kill -9` of
//! Freshet and a restart of the NATS server while a producer keeps
//! publishing (a server of the test's own, `/usr/sbin/nats-server`), and,
//! against the machine's NATS server (127.0.0.1:4222 with JetStream, or
//! `$FRESHET_NATS_URL`), INCLUDE columns, upserts into a keyed table, bad messages,
//! `scan.startup.mode = 'latest'`, and CREATE's errors. Each test makes
//! streams of its own (random names) and deletes them at the end; without
//! a server the tests say so loudly and pass.

use std::time::Duration;

use async_nats::jetstream::{self, stream::Config};

use crate::harness::{first_row as one, wait_for, Daemon, TestServer};

fn url() -> String {
    std::env::var("FRESHET_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A stream of our own on the server (a failed test leaves it behind).
struct Stream {
    js: jetstream::Context,
    name: String,
    /// The stream's subjects: `<prefix>.>`.
    prefix: String,
}

impl Stream {
    async fn create(url: &str) -> Option<Stream> {
        let client = match async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(3))
            .connect(url)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("SKIPPED: no NATS server at {url} ({e})");
                return None;
            }
        };
        let js = jetstream::new(client);
        let tag: u64 = rand::random();
        let name = format!("FRESHET_{tag:x}");
        let prefix = format!("ft{tag:x}");
        if let Err(e) = js
            .create_stream(Config {
                name: name.clone(),
                subjects: vec![format!("{prefix}.>")],
                ..Default::default()
            })
            .await
        {
            eprintln!("SKIPPED: NATS at {url} has no JetStream ({e})");
            return None;
        }
        Some(Stream { js, name, prefix })
    }

    fn subject(&self, s: &str) -> String {
        format!("{}.{s}", self.prefix)
    }

    async fn delete(self) {
        self.js
            .delete_stream(&self.name)
            .await
            .expect("delete stream");
    }

    async fn publish(&self, subject: &str, payload: &str) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("src", "test");
        self.js
            .publish_with_headers(self.subject(subject), headers, payload.to_string().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_exactly_once_across_crashes_and_server_restart() {
    // a NATS server of this test's own, to restart it mid-stream
    let dir = tempfile::tempdir().expect("dir");
    let store = dir.path().to_string_lossy().to_string();
    let Some(mut nats) = Daemon::start(
        "/usr/sbin/nats-server",
        &["-a", "127.0.0.1", "-p", "{port}", "-js", "-sd", &store],
    ) else {
        eprintln!("SKIPPED: no nats-server binary at /usr/sbin/nats-server");
        return;
    };
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let Some(stream) = Stream::create(&url).await else {
        return;
    };
    for i in 0..300 {
        let part = if i % 2 == 0 { "even" } else { "odd" };
        stream
            .publish(
                &format!("bids.{part}"),
                &format!("{{\"id\": {i}, \"price\": {}}}", i * 10),
            )
            .await;
    }
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(&format!(
        "CREATE SOURCE bids (id BIGINT, price BIGINT) \
           INCLUDE subject AS subj INCLUDE offset AS seq INCLUDE timestamp AS ts \
           INCLUDE header 'src' AS src \
         WITH (connector = 'nats', server_url = '{url}', subject = '{}') \
         FORMAT PLAIN ENCODE JSON; \
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(price) AS total FROM bids",
        stream.subject("bids.>")
    ))
    .await
    .expect("create source");
    wait_for(&server, "SELECT count(*) FROM bids", "300").await;
    assert_eq!(
        one(
            &c,
            "SELECT subj || '|' || seq || '|' || encode(src, 'hex') || '|' || \
             (ts > now() - interval '10 minutes') FROM bids WHERE id = 3"
        )
        .await,
        format!("{}|4|74657374|true", stream.subject("bids.odd"))
    );
    drop(c);
    // publish while Freshet is killed twice
    let producer = {
        let js = stream.js.clone();
        let subject = stream.subject("bids.late");
        tokio::spawn(async move {
            for i in 300..900 {
                // (the server may be restarting: try again)
                let body = format!("{{\"id\": {i}, \"price\": {}}}", i * 10);
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let stored = match js.publish(subject.clone(), body.clone().into()).await {
                        Ok(ack) => ack.await.is_ok(),
                        Err(_) => false,
                    };
                    if stored {
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "publish {i}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart(true);
    nats.restart();
    producer.await.expect("producer");
    wait_for(&server, "SELECT count(*) FROM bids", "900").await;
    let c = server.connect().await;
    // the stream sequences are consecutive from 1: none skipped, none twice
    assert_eq!(
        one(
            &c,
            "SELECT count(DISTINCT id) || '|' || min(seq) || '|' || max(seq) || '|' || count(DISTINCT seq) FROM bids"
        )
        .await,
        "900|1|900|900"
    );
    assert_eq!(
        one(&c, "SELECT n || '|' || total FROM totals").await,
        one(&c, "SELECT count(*) || '|' || sum(price) FROM bids").await
    );
    assert_eq!(
        one(
            &c,
            "SELECT state || '|' || position || '|' || coalesce(lag::text, 'null') FROM freshet_catalog.source_status"
        )
        .await,
        "running|{\"sequence\":901}|0"
    );
    stream.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_upserts_bad_messages_latest_and_errors() {
    let Some(stream) = Stream::create(&url()).await else {
        return;
    };
    let server = TestServer::start();
    let c = server.connect().await;
    // unreachable servers, subjects no stream holds, unknown options: the
    // CREATE fails and nothing is created
    for (sql, code) in [
        (
            "CREATE SOURCE nope (id INT) WITH (connector = 'nats', server_url = 'nats://127.0.0.1:1', subject = 'x')".to_string(),
            "08001",
        ),
        (
            format!(
                "CREATE SOURCE nope (id INT) WITH (connector = 'nats', server_url = '{}', subject = 'no.stream.{}')",
                url(),
                stream.prefix
            ),
            "08001",
        ),
        (
            format!(
                "CREATE SOURCE nope (id INT) WITH (connector = 'nats', server_url = '{}', subject = '{}', consumer.durable_name = 'd')",
                url(),
                stream.subject("x")
            ),
            "22023",
        ),
    ] {
        let e = c.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(e.code().map(|c| c.code()), Some(code), "{sql}: {e:?}");
    }
    assert_eq!(
        one(&c, "SELECT count(*) FROM pg_class WHERE relname = 'nope'").await,
        "0"
    );

    // messages published before a 'latest' source are not read
    stream.publish("late", r#"{"id": 1}"#).await;
    c.batch_execute(&format!(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, city TEXT) \
         WITH (connector = 'nats', server_url = '{0}', subject = '{1}', stream = '{2}') \
         FORMAT UPSERT ENCODE JSON; \
         CREATE MATERIALIZED VIEW per_city AS SELECT city, count(*) AS n FROM users GROUP BY city; \
         CREATE SOURCE events (id INT NOT NULL, v INT) \
         WITH (connector = 'nats', server_url = '{0}', subject = '{3}', error.policy = 'skip') \
         FORMAT PLAIN ENCODE JSON; \
         CREATE SOURCE late (id INT) \
         WITH (connector = 'nats', server_url = '{0}', subject = '{4}', scan.startup.mode = 'latest')",
        url(),
        stream.subject("users"),
        stream.name,
        stream.subject("events"),
        stream.subject("late"),
    ))
    .await
    .expect("create");
    for v in [
        r#"{"id": 1, "name": "ann", "city": "Paris"}"#,
        r#"{"id": 2, "name": "bob", "city": "Lyon"}"#,
        r#"{"id": 3, "name": "cy", "city": "Lyon"}"#,
        r#"{"id": 1, "name": "ann", "city": "Lyon"}"#,
    ] {
        stream.publish("users", v).await;
    }
    wait_for(
        &server,
        "SELECT string_agg(id || ':' || city, ',' ORDER BY id) FROM users",
        "1:Lyon,2:Lyon,3:Lyon",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT string_agg(city || ':' || n, ',') FROM per_city").await,
        "Lyon:3"
    );

    for v in [
        r#"{"id": 1, "v": 10}"#,
        r#"{"id": "one"}"#,
        "",
        r#"{"id": 4}"#,
    ] {
        stream.publish("events", v).await;
    }
    wait_for(
        &server,
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM events",
        "1,4",
    )
    .await;
    wait_for(
        &server,
        "SELECT count(*) FROM freshet_catalog.source_errors WHERE source = 'events'",
        "2",
    )
    .await;
    let e = one(
        &c,
        "SELECT position || '|' || error FROM freshet_catalog.source_errors WHERE source = 'events' ORDER BY seq LIMIT 1",
    )
    .await;
    assert!(
        e.contains(&format!("stream {} sequence", stream.name)) && e.contains("column \"id\""),
        "{e}"
    );

    stream.publish("late", r#"{"id": 2}"#).await;
    wait_for(&server, "SELECT string_agg(id::text, ',') FROM late", "2").await;
    stream.delete().await;
}
