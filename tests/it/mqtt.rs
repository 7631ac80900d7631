//! MQTT sources against the machine's broker (Mosquitto on 127.0.0.1:1883,
//! or `$FRESHET_MQTT_HOST`/`$FRESHET_MQTT_PORT`): every QoS 1 message
//! exactly once across `kill -9` of Freshet while a producer keeps
//! publishing (the persistent session keeps what arrives meanwhile), bad
//! messages, DROP ending the session, and CREATE's errors. Topics are
//! random per run; without a broker the tests say so loudly and pass.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::harness::{first_row as one, wait_for, Daemon, TestServer};

fn host() -> String {
    std::env::var("FRESHET_MQTT_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

fn port() -> u16 {
    std::env::var("FRESHET_MQTT_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1883)
}

fn url() -> String {
    format!("tcp://{}:{}", host(), port())
}

/// A publisher; `None` (and a loud message) without a broker.
async fn publisher() -> Option<AsyncClient> {
    publisher_at(&host(), port()).await
}

async fn publisher_at(host: &str, port: u16) -> Option<AsyncClient> {
    let url = format!("tcp://{host}:{port}");
    let id = format!("freshet-test-{:x}", rand::random::<u64>());
    let mut options = MqttOptions::new(id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 1024);
    let connected = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if !connected {
        eprintln!("SKIPPED: no MQTT broker at {url}");
        return None;
    }
    // drive the connection in the background
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    Some(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_exactly_once_across_crashes() {
    let Some(p) = publisher().await else {
        return;
    };
    let topic = format!("freshet/{:x}/bids", rand::random::<u64>());
    let mut server = TestServer::start();
    let c = server.connect().await;
    // the session exists from CREATE on: what is published after it is
    // kept for the source even while it is not running
    c.batch_execute(&format!(
        "CREATE SOURCE bids (id BIGINT, price BIGINT) INCLUDE subject AS topic \
         WITH (connector = 'mqtt', url = '{}', topic = '{topic}', qos = 'at_least_once') \
         FORMAT PLAIN ENCODE JSON; \
         CREATE MATERIALIZED VIEW totals AS SELECT count(*) AS n, sum(price) AS total FROM bids",
        url()
    ))
    .await
    .expect("create source");
    publish_ids(&p, &topic, 0..300).await;
    wait_for(&server, "SELECT count(*) FROM bids", "300").await;
    assert_eq!(one(&c, "SELECT topic FROM bids WHERE id = 3").await, topic);
    drop(c);
    let producer = {
        let p = p.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for from in (300..900).step_by(100) {
                publish_ids(&p, &topic, from..from + 100).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart(true);
    producer.await.expect("producer");
    wait_for(&server, "SELECT count(*) FROM bids", "900").await;
    let c = server.connect().await;
    assert_eq!(
        one(
            &c,
            "SELECT count(DISTINCT id) || '|' || min(id) || '|' || max(id) FROM bids"
        )
        .await,
        "900|0|899"
    );
    assert_eq!(
        one(&c, "SELECT n || '|' || total FROM totals").await,
        one(&c, "SELECT count(*) || '|' || sum(price) FROM bids").await
    );
    // DROP ends the session
    c.batch_execute("DROP MATERIALIZED VIEW totals; DROP SOURCE bids")
        .await
        .expect("drop");
    let _ = p.disconnect().await;
}

async fn publish_ids(p: &AsyncClient, topic: &str, ids: std::ops::Range<i64>) {
    for i in ids {
        p.publish(
            topic.to_string(),
            QoS::AtLeastOnce,
            false,
            format!("{{\"id\": {i}, \"price\": {}}}", i * 10),
        )
        .await
        .expect("publish");
    }
}

/// A Mosquitto of the test's own (persistent, so that a restart keeps the
/// session), restarted while Freshet is down and while it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_exactly_once_across_broker_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let conf = dir.path().join("mosquitto.conf");
    // (run as root, Mosquitto drops to its own user, which must be able to
    // write its store here)
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\n",
            dir.path().display()
        ),
    )
    .expect("config");
    let Some(mut broker) = Daemon::start_on(
        "/usr/sbin/mosquitto",
        &["-c", &conf.to_string_lossy()],
        port,
    ) else {
        eprintln!("SKIPPED: no mosquitto binary at /usr/sbin/mosquitto");
        return;
    };
    let url = format!("tcp://127.0.0.1:{}", broker.port);
    let topic = "freshet/restarts";
    let mut server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(&format!(
        "CREATE SOURCE bids (id BIGINT, price BIGINT) \
         WITH (connector = 'mqtt', url = '{url}', topic = '{topic}') FORMAT PLAIN ENCODE JSON"
    ))
    .await
    .expect("create source");
    let p = publisher_at("127.0.0.1", broker.port)
        .await
        .expect("the test's broker");
    publish_ids(&p, topic, 0..200).await;
    wait_for(&server, "SELECT count(*) FROM bids", "200").await;
    drop(c);
    // Freshet down: the broker keeps the session's messages, across its
    // own restart too
    server.kill();
    publish_ids(&p, topic, 200..400).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = p.disconnect().await;
    broker.restart();
    let p = publisher_at("127.0.0.1", broker.port)
        .await
        .expect("the test's broker");
    publish_ids(&p, topic, 400..500).await;
    server.restart(true);
    wait_for(&server, "SELECT count(*) FROM bids", "500").await;
    // the broker restarts while Freshet reads: it reconnects to the session
    publish_ids(&p, topic, 500..700).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = p.disconnect().await;
    broker.restart();
    let p = publisher_at("127.0.0.1", broker.port)
        .await
        .expect("the test's broker");
    publish_ids(&p, topic, 700..800).await;
    wait_for(&server, "SELECT count(*) FROM bids", "800").await;
    let c = server.connect().await;
    assert_eq!(
        one(
            &c,
            "SELECT count(DISTINCT id) || '|' || min(id) || '|' || max(id) FROM bids"
        )
        .await,
        "800|0|799"
    );
    let _ = p.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_bad_messages_and_errors() {
    let Some(p) = publisher().await else {
        return;
    };
    let server = TestServer::start();
    let c = server.connect().await;
    for (sql, code) in [
        (
            "CREATE SOURCE nope (id INT) WITH (connector = 'mqtt', url = 'tcp://127.0.0.1:1', topic = 'x')",
            "08001",
        ),
        (
            "CREATE SOURCE nope (id INT) WITH (connector = 'mqtt', url = 'http://127.0.0.1', topic = 'x')",
            "22023",
        ),
        (
            "CREATE SOURCE nope (id INT) WITH (connector = 'mqtt', topic = 'x', qos = 'at_most_once')",
            "22023",
        ),
    ] {
        let e = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(e.code().map(|c| c.code()), Some(code), "{sql}: {e:?}");
    }
    let base = format!("freshet/{:x}", rand::random::<u64>());
    c.batch_execute(&format!(
        "CREATE SOURCE events (id INT NOT NULL, v INT) INCLUDE subject AS t \
         WITH (connector = 'mqtt', url = '{}', topic = '{base}/+', error.policy = 'skip') \
         FORMAT PLAIN ENCODE JSON",
        url()
    ))
    .await
    .expect("create");
    for (t, v) in [
        ("a", r#"{"id": 1, "v": 10}"#),
        ("b", r#"{"id": "one"}"#),
        ("a", "not json"),
        ("b", r#"{"id": 4}"#),
    ] {
        p.publish(format!("{base}/{t}"), QoS::AtLeastOnce, false, v)
            .await
            .expect("publish");
    }
    wait_for(
        &server,
        "SELECT string_agg(id || ':' || t, ',' ORDER BY id) FROM events",
        &format!("1:{base}/a,4:{base}/b"),
    )
    .await;
    wait_for(
        &server,
        "SELECT count(*) FROM freshet_catalog.source_errors WHERE source = 'events'",
        "2",
    )
    .await;
    c.batch_execute("DROP SOURCE events").await.expect("drop");
    let _ = p.disconnect().await;
}
