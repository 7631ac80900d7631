//! Kafka sources against a real Kafka-API broker (`tansu`, which `.ci/run`
//! installs): every message exactly once across `kill -9` of Freshet and a
//! restart of the broker, upserts and deletes into a keyed table, bad
//! messages under each error policy, INCLUDE columns, and CREATE's errors.
//!
//! The broker binary is `$FRESHET_TANSU`, else `~/.cache/tansu/bin/tansu`;
//! without one the tests say so loudly and pass.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::harness::{first_row as one, wait_for, TestServer};

fn tansu() -> Option<PathBuf> {
    let p = std::env::var_os("FRESHET_TANSU")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/tansu/bin/tansu"))
        })?;
    p.exists().then_some(p)
}

struct Broker {
    child: Option<Child>,
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Broker {
    fn start() -> Option<Broker> {
        let Some(bin) = tansu() else {
            eprintln!(
                "SKIPPED: no Kafka-API broker (tansu) found; set FRESHET_TANSU or run .ci/run, which installs it"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let mut b = Broker {
            child: None,
            bin,
            dir: tempfile::tempdir().expect("temp dir"),
            port,
        };
        b.spawn();
        Some(b)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.bin)
            .current_dir(self.dir.path())
            .args([
                "broker",
                "--storage-engine",
                "sqlite://t.db",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .create()
            .expect("admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let r = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .expect("create topic");
        for x in r {
            x.expect("topic created");
        }
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn send(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&str>,
    value: Option<&str>,
) {
    send_bytes(
        p,
        topic,
        partition,
        key.map(str::as_bytes),
        value.map(str::as_bytes),
    )
    .await
}

async fn send_bytes(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    // (the broker may be restarting: try again)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut r: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(partition);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(v) = value {
            r = r.payload(v);
        }
        r = r.headers(OwnedHeaders::new().insert(Header {
            key: "src",
            value: Some("test"),
        }));
        match p.send(r, Duration::from_secs(10)).await {
            Ok(_) => return,
            Err((e, _)) => {
                assert!(Instant::now() < deadline, "produce: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_exactly_once_across_crashes_and_broker_restart() {
    let Some(mut broker) = Broker::start() else {
        return;
    };
    broker.create_topic("bids", 2).await;
    let p = broker.producer();
    let mut sent = 0;
    for i in 0..300 {
        let v = format!("{{\"id\": {i}, \"price\": {}}}", i * 10);
        send(&p, "bids", i % 2, Some(&format!("k{i}")), Some(&v)).await;
        sent += 1;
    }
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(&format!(
        "CREATE SOURCE bids (id BIGINT, price BIGINT) \
           INCLUDE partition AS part INCLUDE offset AS off INCLUDE key AS k \
           INCLUDE timestamp AS ts INCLUDE header 'src' AS src \
         WITH (connector = 'kafka', topic = 'bids', properties.bootstrap.server = '{}') \
         FORMAT PLAIN ENCODE JSON; \
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(price) AS total FROM bids",
        broker.addr()
    ))
    .await
    .expect("create source");
    wait_for(&server, "SELECT count(*) FROM bids", "300").await;
    assert_eq!(
        one(&c, "SELECT part || '|' || off || '|' || encode(k, 'hex') || '|' || encode(src, 'hex') || '|' || (ts IS NOT NULL) FROM bids WHERE id = 3").await,
        "1|1|6b33|74657374|true"
    );
    drop(c);
    // produce while Freshet is killed, then restart the broker mid-stream
    let producer = {
        let p = p.clone();
        tokio::spawn(async move {
            for i in 300..900 {
                let v = format!("{{\"id\": {i}, \"price\": {}}}", i * 10);
                send(&p, "bids", i % 2, None, Some(&v)).await;
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
    producer.await.expect("producer");
    sent += 600;
    broker.restart();
    for i in 900..1000 {
        let v = format!("{{\"id\": {i}, \"price\": {}}}", i * 10);
        send(&p, "bids", i % 2, None, Some(&v)).await;
        sent += 1;
    }
    wait_for(&server, "SELECT count(*) FROM bids", &sent.to_string()).await;
    let c = server.connect().await;
    assert_eq!(one(&c, "SELECT count(DISTINCT id) FROM bids").await, "1000");
    assert_eq!(
        one(&c, "SELECT n || '|' || total FROM totals").await,
        one(&c, "SELECT count(*) || '|' || sum(price) FROM bids").await
    );
    // the offsets of each partition are consecutive from 0: none skipped, none twice
    for part in ["0", "1"] {
        assert_eq!(
            one(&c, &format!("SELECT min(off) || '|' || max(off) || '|' || count(*) FROM bids WHERE part = '{part}'")).await,
            "0|499|500"
        );
    }
    assert_eq!(
        one(
            &c,
            "SELECT state || '|' || position FROM freshet_catalog.source_status"
        )
        .await,
        "running|{\"partitions\":{\"0\":500,\"1\":500}}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_upserts_deletes_and_bad_messages() {
    let Some(broker) = Broker::start() else {
        return;
    };
    broker.create_topic("users", 1).await;
    broker.create_topic("events", 1).await;
    broker.create_topic("strict", 1).await;
    let p = broker.producer();
    let server = TestServer::start();
    let c = server.connect().await;
    // unreachable brokers and missing topics fail the CREATE
    let e = c
        .batch_execute(
            "CREATE SOURCE nope (id INT) WITH (connector = 'kafka', topic = 'x', \
             properties.bootstrap.server = '127.0.0.1:1', properties.socket.timeout.ms = '2000')",
        )
        .await
        .expect_err("unreachable broker");
    assert_eq!(e.code().map(|c| c.code()), Some("08001"), "{e}");
    let e = c
        .batch_execute(&format!(
            "CREATE SOURCE nope (id INT) WITH (connector = 'kafka', topic = 'missing', \
             properties.bootstrap.server = '{}')",
            broker.addr()
        ))
        .await
        .expect_err("missing topic");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("missing"), "{e:?}");
    assert_eq!(
        one(&c, "SELECT count(*) FROM pg_class WHERE relname = 'nope'").await,
        "0"
    );

    c.batch_execute(&format!(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, city TEXT) \
         WITH (connector = 'kafka', topic = 'users', properties.bootstrap.server = '{0}') \
         FORMAT UPSERT ENCODE JSON; \
         CREATE MATERIALIZED VIEW per_city AS SELECT city, count(*) AS n FROM users GROUP BY city; \
         CREATE SOURCE events (id INT NOT NULL, v INT) \
         WITH (connector = 'kafka', topic = 'events', properties.bootstrap.server = '{0}', \
               error.policy = 'dead_letter') FORMAT PLAIN ENCODE JSON; \
         CREATE SOURCE strict (id INT) \
         WITH (connector = 'kafka', topic = 'strict', properties.bootstrap.server = '{0}')",
        broker.addr()
    ))
    .await
    .expect("create");
    for (k, v) in [
        ("1", Some(r#"{"id": 1, "name": "ann", "city": "Paris"}"#)),
        ("2", Some(r#"{"id": 2, "name": "bob", "city": "Lyon"}"#)),
        ("3", Some(r#"{"id": 3, "name": "cy", "city": "Lyon"}"#)),
        ("1", Some(r#"{"id": 1, "name": "ann", "city": "Lyon"}"#)),
        ("2", None),
    ] {
        send(&p, "users", 0, Some(k), v).await;
    }
    wait_for(
        &server,
        "SELECT string_agg(id || ':' || city, ',' ORDER BY id) FROM users",
        "1:Lyon,3:Lyon",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT string_agg(city || ':' || n, ',') FROM per_city").await,
        "Lyon:2"
    );

    // bad messages: skipped and kept, the good ones stored
    for v in [
        r#"{"id": 1, "v": 10}"#,
        r#"{"id": "one"}"#,
        "not json",
        r#"{"v": 3}"#,
        r#"{"id": 4}"#,
    ] {
        send(&p, "events", 0, None, Some(v)).await;
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
        "3",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT position || '|' || encode(payload, 'hex') FROM freshet_catalog.source_errors WHERE seq = 1").await,
        "partition 0 offset 2|6e6f74206a736f6e"
    );
    let e = one(
        &c,
        "SELECT error FROM freshet_catalog.source_errors WHERE seq = 0",
    )
    .await;
    assert!(e.contains("column \"id\""), "{e}");

    // error.policy 'fail' stops at the bad message; RESUME retries it
    send(&p, "strict", 0, None, Some(r#"{"id": 1}"#)).await;
    send(&p, "strict", 0, None, Some(r#"{"id": "x"}"#)).await;
    wait_for(
        &server,
        "SELECT state FROM freshet_catalog.source_status WHERE source = 'strict'",
        "failed",
    )
    .await;
    let e = one(
        &c,
        "SELECT last_error FROM freshet_catalog.source_status WHERE source = 'strict'",
    )
    .await;
    assert!(
        e.contains("partition 0 offset 1") && e.contains("column \"id\""),
        "{e}"
    );
    assert_eq!(
        one(&c, "SELECT count(*) FROM strict WHERE id IS NULL").await,
        "0"
    );
    c.batch_execute("ALTER SOURCE strict RESUME")
        .await
        .expect("resume");
    wait_for(
        &server,
        "SELECT state FROM freshet_catalog.source_status WHERE source = 'strict'",
        "failed",
    )
    .await;

    // scan.startup.mode 'timestamp': from the first message at or after it
    broker.create_topic("timed", 1).await;
    for i in 0..3 {
        send(&p, "timed", 0, None, Some(&format!("{{\"id\": {i}}}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 3..5 {
        send(&p, "timed", 0, None, Some(&format!("{{\"id\": {i}}}"))).await;
    }
    c.batch_execute(&format!(
        "CREATE SOURCE timed (id INT) \
         WITH (connector = 'kafka', topic = 'timed', properties.bootstrap.server = '{}', \
               scan.startup.mode = 'timestamp', scan.startup.timestamp.millis = '{from}')",
        broker.addr()
    ))
    .await
    .expect("create timed");
    send(&p, "timed", 0, None, Some(r#"{"id": 5}"#)).await;
    wait_for(
        &server,
        "SELECT string_agg(id::text, ',' ORDER BY id) FROM timed",
        "3,4,5",
    )
    .await;
}

/// An Avro datum of `schema` from `(field, value)` pairs.
fn avro(schema: &apache_avro::Schema, fields: Vec<(&str, apache_avro::types::Value)>) -> Vec<u8> {
    let mut r = apache_avro::types::Record::new(schema).expect("a record schema");
    for (k, v) in fields {
        r.put(k, v);
    }
    apache_avro::to_avro_datum(schema, r).expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_avro_plain_upsert_and_debezium() {
    use apache_avro::types::Value as A;
    let Some(broker) = Broker::start() else {
        return;
    };
    for t in ["bids_avro", "framed", "users_avro", "orders_cdc"] {
        broker.create_topic(t, 1).await;
    }
    let p = broker.producer();
    let server = TestServer::start();
    let c = server.connect().await;

    // PLAIN: logical types to PostgreSQL's types; the schema from a file
    let bid_schema = r#"{"type": "record", "name": "Bid", "fields": [
        {"name": "auction", "type": "long"},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "date_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "channel", "type": ["null", "string"], "default": null},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["WEB", "APP"]}},
        {"name": "extra", "type": {"type": "map", "values": "long"}},
        {"name": "ignored", "type": "double"}]}"#;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bid.avsc");
    std::fs::write(&file, bid_schema).expect("write schema");
    c.batch_execute(&format!(
        "CREATE SOURCE bids (auction BIGINT, price NUMERIC(10,2), date_time TIMESTAMP, day DATE, \
                             channel TEXT, kind TEXT, extra JSONB) \
           INCLUDE offset AS off \
         WITH (connector = 'kafka', topic = 'bids_avro', properties.bootstrap.server = '{0}', \
               error.policy = 'skip') \
         FORMAT PLAIN ENCODE AVRO (schema.location = 'file://{1}'); \
         CREATE SOURCE framed (auction BIGINT, kind TEXT) \
         WITH (connector = 'kafka', topic = 'framed', properties.bootstrap.server = '{0}', \
               error.policy = 'skip') \
         FORMAT PLAIN ENCODE AVRO (schema = '{2}', confluent_wire_format = 'true'); \
         CREATE MATERIALIZED VIEW per_kind AS SELECT kind, sum(price) AS total FROM bids GROUP BY kind",
        broker.addr(),
        file.display(),
        bid_schema
    ))
    .await
    .expect("create avro sources");
    // the file is read at CREATE: the schema is kept inline
    std::fs::remove_file(&file).expect("remove schema");
    let schema = apache_avro::Schema::parse_str(bid_schema).expect("schema");
    let bid = |auction: i64, cents: i64, ms: i64, channel: Option<&str>, kind: u32| {
        avro(
            &schema,
            vec![
                ("auction", A::Long(auction)),
                (
                    "price",
                    A::Decimal(apache_avro::Decimal::from(cents.to_be_bytes())),
                ),
                ("date_time", A::TimestampMillis(ms)),
                ("day", A::Date(20_000)),
                (
                    "channel",
                    match channel {
                        Some(s) => A::Union(1, Box::new(A::String(s.into()))),
                        None => A::Union(0, Box::new(A::Null)),
                    },
                ),
                ("kind", A::Enum(kind, ["WEB", "APP"][kind as usize].into())),
                (
                    "extra",
                    A::Map([("n".to_string(), A::Long(auction))].into_iter().collect()),
                ),
                ("ignored", A::Double(f64::NAN)),
            ],
        )
    };
    let msgs = [
        bid(1, 1250, 1_700_000_000_123, Some("web"), 0),
        bid(2, -5, 1_700_000_001_000, None, 1),
        b"{\"auction\": 3}".to_vec(), // JSON is not Avro: skipped, kept
        bid(4, 100_000, 0, Some("app"), 0),
    ];
    for m in &msgs {
        send_bytes(&p, "bids_avro", 0, None, Some(m)).await;
    }
    wait_for(&server, "SELECT count(*) FROM bids", "3").await;
    assert_eq!(
        one(
            &c,
            "SELECT string_agg(concat_ws('|', auction, price, date_time, day, coalesce(channel, 'null'), kind, extra, off), ';' ORDER BY auction) FROM bids"
        )
        .await,
        "1|12.50|2023-11-14 22:13:20.123|2024-10-04|web|WEB|{\"n\": 1}|0;\
         2|-0.05|2023-11-14 22:13:21|2024-10-04|null|APP|{\"n\": 2}|1;\
         4|1000.00|1970-01-01 00:00:00|2024-10-04|app|WEB|{\"n\": 4}|3"
    );
    assert_eq!(
        one(
            &c,
            "SELECT string_agg(kind || '=' || total, ',' ORDER BY kind) FROM per_kind"
        )
        .await,
        "APP=-0.05,WEB=1012.50"
    );
    wait_for(
        &server,
        "SELECT count(*) FROM freshet_catalog.source_errors WHERE source = 'bids' AND error LIKE '%Avro%'",
        "1",
    )
    .await;
    let shown = one(&c, "SHOW CREATE SOURCE bids").await;
    assert!(
        shown.contains("ENCODE AVRO (schema = '{") && !shown.contains("schema.location"),
        "{shown}"
    );
    // the Confluent wire format: a magic byte and a schema id first
    let mut framed = vec![0, 0, 0, 0, 7];
    framed.extend_from_slice(&msgs[0]);
    send_bytes(&p, "framed", 0, None, Some(&framed)).await;
    send_bytes(&p, "framed", 0, None, Some(&msgs[1])).await; // no header: skipped
    wait_for(&server, "SELECT auction || kind FROM framed", "1WEB").await;
    wait_for(
        &server,
        "SELECT count(*) FROM freshet_catalog.source_errors WHERE source = 'framed' AND error LIKE '%Confluent%'",
        "1",
    )
    .await;

    // UPSERT: keys in Avro (key.schema), a message without a value deletes
    let user_schema = r#"{"type": "record", "name": "User", "fields": [
        {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
        {"name": "city", "type": "string"}]}"#;
    c.batch_execute(&format!(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT, city TEXT) \
         WITH (connector = 'kafka', topic = 'users_avro', properties.bootstrap.server = '{}') \
         FORMAT UPSERT ENCODE AVRO (schema = '{user_schema}', key.schema = '\"long\"'); \
         CREATE MATERIALIZED VIEW per_city AS SELECT city, count(*) AS n FROM users GROUP BY city",
        broker.addr()
    ))
    .await
    .expect("create upsert table");
    let us = apache_avro::Schema::parse_str(user_schema).expect("schema");
    let key_schema = apache_avro::Schema::parse_str("\"long\"").expect("key schema");
    let key = |id: i64| apache_avro::to_avro_datum(&key_schema, A::Long(id)).expect("key");
    let user = |id: i64, name: &str, city: &str| {
        avro(
            &us,
            vec![
                ("id", A::Long(id)),
                ("name", A::String(name.into())),
                ("city", A::String(city.into())),
            ],
        )
    };
    for (id, v) in [
        (1, Some(user(1, "ann", "Paris"))),
        (2, Some(user(2, "bob", "Lyon"))),
        (3, Some(user(3, "cy", "Lyon"))),
        (1, Some(user(1, "ann", "Lyon"))),
        (2, None),
    ] {
        send_bytes(&p, "users_avro", 0, Some(&key(id)), v.as_deref()).await;
    }
    wait_for(
        &server,
        "SELECT string_agg(id || ':' || name || ':' || city, ',' ORDER BY id) FROM users",
        "1:ann:Lyon,3:cy:Lyon",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT string_agg(city || ':' || n, ',') FROM per_city").await,
        "Lyon:2"
    );

    // DEBEZIUM over Avro: the envelope's before/after are unions with null
    let row = r#"{"type": "record", "name": "Value", "namespace": "shop.orders", "fields": [
        {"name": "id", "type": "int"}, {"name": "amount", "type": "long"}]}"#;
    let envelope = format!(
        r#"{{"type": "record", "name": "Envelope", "namespace": "shop.orders", "fields": [
        {{"name": "before", "type": ["null", {row}], "default": null}},
        {{"name": "after", "type": ["null", "Value"], "default": null}},
        {{"name": "op", "type": "string"}},
        {{"name": "ts_ms", "type": ["null", "long"], "default": null}}]}}"#
    );
    c.batch_execute(&format!(
        "CREATE TABLE orders (id INT PRIMARY KEY, amount BIGINT) \
         WITH (connector = 'kafka', topic = 'orders_cdc', properties.bootstrap.server = '{}') \
         FORMAT DEBEZIUM ENCODE AVRO (schema = '{envelope}'); \
         CREATE MATERIALIZED VIEW order_total AS SELECT count(*) AS n, sum(amount) AS total FROM orders",
        broker.addr()
    ))
    .await
    .expect("create debezium table");
    let env = apache_avro::Schema::parse_str(&envelope).expect("envelope");
    let val = |id: i32, amount: i64| {
        A::Union(
            1,
            Box::new(A::Record(vec![
                ("id".into(), A::Int(id)),
                ("amount".into(), A::Long(amount)),
            ])),
        )
    };
    let null = || A::Union(0, Box::new(A::Null));
    let event = |before: A, after: A, op: &str| {
        avro(
            &env,
            vec![
                ("before", before),
                ("after", after),
                ("op", A::String(op.into())),
                ("ts_ms", null()),
            ],
        )
    };
    for e in [
        event(null(), val(1, 10), "r"),
        event(null(), val(2, 20), "c"),
        event(null(), val(3, 30), "c"),
        event(val(1, 10), val(1, 15), "u"),
        event(val(2, 20), null(), "d"),
    ] {
        send_bytes(&p, "orders_cdc", 0, None, Some(&e)).await;
    }
    wait_for(
        &server,
        "SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders",
        "1:15,3:30",
    )
    .await;
    assert_eq!(
        one(&c, "SELECT n || '|' || total FROM order_total").await,
        "2|45"
    );
}
