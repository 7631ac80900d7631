//! Ingestion: decoding, HTTP, Kafka end to end.
//!
//! ```text
//! cargo bench --bench ingest                  # all parts, 3 runs each
//! cargo bench --bench ingest -- decode --runs 5
//! cargo bench --bench ingest -- http kafka --events 1000000
//! ```
//!
//! - `decode`: Nexmark bids as JSON messages decoded into typed rows of
//!   the bid source, in process on one thread: events/s/core.
//! - `http`: a release server with `--http-listen`; NDJSON bodies of
//!   10 000 bids POSTed one after another; rows/s until the last is durable.
//! - `kafka` (needs a tansu broker: `$FRESHET_TANSU` or
//!   `~/.cache/tansu/bin/tansu`): a backlog of JSON bids produced first,
//!   then a Kafka source with the q5 view created: events/s until the view
//!   has counted them all (drained with bounded memory: one batch in
//!   flight); then freshness, from a message's produce acknowledgement to
//!   the view showing it, at 2 000 messages/s: p50/p99.
//!
//! - `backlog` (needs `/usr/sbin/nats-server`; one run): a NATS JetStream
//!   backlog of `--events` small JSON events (three bigint fields) on a
//!   NATS server of the bench's own, then a NATS source and a GROUP BY view
//!   created: events/s to drain it, the server's resident memory sampled
//!   while draining (its peak, and at the end), against a second server
//!   given the same rows by `COPY`: what the history itself takes in memory
//!   (kept there until history moves to disk), so that the difference is
//!   what ingesting from a broker adds.
//!
//! Each figure is the median of the runs.

#[allow(dead_code)]
#[path = "common/nexmark_gen.rs"]
mod gen;
#[path = "common/server.rs"]
mod server;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, TimestampMicrosecondType};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `n` bids as JSON lines.
fn bid_lines(n: usize, seed: u64) -> Vec<String> {
    let mut g = gen::Gen::new(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let b = g.bids(10_000.min(n - out.len()));
        let auction = b.column(0).as_primitive::<Int64Type>();
        let bidder = b.column(1).as_primitive::<Int64Type>();
        let price = b.column(2).as_primitive::<Int64Type>();
        let channel = b.column(3).as_string::<i32>();
        let url = b.column(4).as_string::<i32>();
        let ts = b.column(5).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let t = chrono::DateTime::from_timestamp_micros(ts.value(i))
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
                .unwrap_or_default();
            out.push(format!(
                "{{\"auction\": {}, \"bidder\": {}, \"price\": {}, \"channel\": \"{}\", \"url\": \"{}\", \"date_time\": \"{t}\", \"extra\": \"\"}}",
                auction.value(i),
                bidder.value(i),
                price.value(i),
                channel.value(i),
                url.value(i)
            ));
        }
    }
    out
}

const BID_SOURCE: &str = "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, \
     channel TEXT, url TEXT, date_time TIMESTAMP, extra TEXT, \
     WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds')";

const Q5: &str = "CREATE MATERIALIZED VIEW q5 AS SELECT auction, window_start, count(*) AS num \
     FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY auction, window_start";

fn decode(events: usize, runs: usize) {
    use freshet::connectors::decode::{decode, Message};
    use freshet::connectors::spec::{validate, RawSpec};
    let parser = freshet::sql::parser::SqlParser::new();
    let Ok(freshet::sql::parser::Statement::CreateRelation(c)) = parser.parse_one(BID_SOURCE)
    else {
        panic!("bid DDL")
    };
    let mut def = freshet::sql::ddl::relation_def(&c, 1, "freshet").expect("def");
    let raw = RawSpec {
        options: [("connector".to_string(), "nexmark".to_string())].into(),
        format: Some(("plain".into(), "json".into(), Default::default())),
        include: vec![],
    };
    let spec = validate(&raw, false, false).expect("spec").expect("spec");
    def.source = Some(spec.clone());
    let lines = bid_lines(events, 42);
    let messages: Vec<Message> = lines
        .iter()
        .map(|l| Message {
            payload: Some(l.as_bytes().to_vec()),
            ..Default::default()
        })
        .collect();
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut rows = 0;
        for chunk in messages.chunks(8192) {
            let d = decode(&def, &spec, chunk);
            assert!(d.bad.is_empty());
            rows += d.rows.map_or(0, |b| b.num_rows());
        }
        assert_eq!(rows, events);
        rates.push(events as f64 / t.elapsed().as_secs_f64());
    }
    println!(
        "ingest decode: {:.0} JSON events/s/core (median of {runs}, {events} events, 1 thread)",
        median(rates)
    );
}

fn post(port: u16, path: &str, body: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

async fn sql(port: u16) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=freshet dbname=freshet"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    c
}

async fn count(c: &tokio_postgres::Client, q: &str) -> i64 {
    c.query_one(q, &[]).await.expect("query").get(0)
}

async fn http(events: usize, runs: usize) {
    let lines = bid_lines(events, 7);
    let bodies: Vec<Vec<u8>> = lines
        .chunks(10_000)
        .map(|c| (c.join("\n") + "\n").into_bytes())
        .collect();
    let mut rates = Vec::new();
    for _ in 0..runs {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let s = server::start_server_with(&["--http-listen", &format!("127.0.0.1:{port}")]);
        let c = sql(s.port).await;
        c.batch_execute(BID_SOURCE).await.expect("source");
        let t = Instant::now();
        for b in &bodies {
            post(port, "/v1/sources/bid", b);
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(count(&c, "SELECT count(*) FROM bid").await, events as i64);
        rates.push(events as f64 / secs);
    }
    println!(
        "ingest http: {:.0} NDJSON rows/s durable (median of {runs}, {events} rows in bodies of 10 000)",
        median(rates)
    );
}

async fn kafka(events: usize, runs: usize) {
    // librdkafka's defaults (500 ms, 1 MiB), or as the environment says:
    // tansu answers a fetch only when its wait is over, so the wait bounds
    // both throughput and freshness against it
    let wait = std::env::var("FRESHET_BENCH_FETCH_WAIT_MS").unwrap_or_else(|_| "500".into());
    let fetch_bytes =
        std::env::var("FRESHET_BENCH_FETCH_BYTES").unwrap_or_else(|_| "1048576".into());
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    let bin = std::env::var_os("FRESHET_TANSU")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/tansu/bin/tansu"))
        })
        .filter(|p| p.exists());
    let Some(bin) = bin else {
        println!("ingest kafka: SKIPPED (no tansu broker; see the bench's header)");
        return;
    };
    let lines = bid_lines(events, 9);
    let mut rates = Vec::new();
    let mut fresh = Vec::new();
    let mut peaks = Vec::new();
    let mut per_core = Vec::new();
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("dir");
        let bport = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let url = format!("tcp://127.0.0.1:{bport}");
        let mut broker = std::process::Command::new(&bin)
            .current_dir(dir.path())
            .args([
                "broker",
                "--storage-engine",
                "sqlite://t.db",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tansu");
        while std::net::TcpStream::connect(("127.0.0.1", bport)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let addr = format!("127.0.0.1:{bport}");
        let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
            ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .create()
                .expect("admin");
        admin
            .create_topics(
                [&rdkafka::admin::NewTopic::new(
                    "bids",
                    1,
                    rdkafka::admin::TopicReplication::Fixed(1),
                )],
                &rdkafka::admin::AdminOptions::new(),
            )
            .await
            .expect("topic");
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        let t = Instant::now();
        for l in &lines {
            loop {
                match p.send_result(FutureRecord::<(), str>::to("bids").payload(l)) {
                    Ok(_) => break,
                    Err(_) => p.poll(Duration::from_millis(1)),
                }
            }
        }
        p.flush(Duration::from_secs(120)).expect("flush");
        eprintln!(
            "run {run}: produced {events} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let s = server::start_server();
        let c = sql(s.port).await;
        c.batch_execute(&format!(
            "{BID_SOURCE} WITH (connector = 'kafka', topic = 'bids', properties.bootstrap.server = '{addr}', \
             properties.fetch.wait.max.ms = '{wait}', properties.fetch.message.max.bytes = '{fetch_bytes}') \
             FORMAT PLAIN ENCODE JSON; {Q5}"
        ))
        .await
        .expect("create");
        let t = Instant::now();
        let cpu0 = s.cpu_seconds();
        loop {
            let n = count(&c, "SELECT coalesce(sum(num), 0)::bigint FROM q5").await;
            if n >= events as i64 * 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        rates.push(events as f64 / t.elapsed().as_secs_f64());
        if let (Some(a), Some(b)) = (cpu0, s.cpu_seconds()) {
            per_core.push(events as f64 / (b - a).max(0.01));
        }
        if let Some(kib) = s.peak_rss_kib() {
            peaks.push(kib as f64 / 1024.0);
        }
        // freshness at a steady rate: one marker every 0.5 ms
        c.batch_execute("CREATE MATERIALIZED VIEW newest AS SELECT max(bidder) AS b FROM bid WHERE auction = -1")
            .await
            .expect("view");
        for i in 0..400i64 {
            let v = format!("{{\"auction\": -1, \"bidder\": {i}, \"price\": 0, \"date_time\": \"2030-01-01 00:00:00\"}}");
            p.send(
                FutureRecord::<(), str>::to("bids").payload(&v),
                Duration::from_secs(10),
            )
            .await
            .expect("send");
            let acked = Instant::now();
            loop {
                let b: Option<i64> = c
                    .query_one("SELECT b FROM newest", &[])
                    .await
                    .expect("q")
                    .get(0);
                if b == Some(i) {
                    break;
                }
            }
            fresh.push(acked.elapsed().as_secs_f64() * 1000.0);
        }
        let _ = broker.kill();
        let _ = broker.wait();
    }
    fresh.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ingest kafka (fetch.wait.max.ms {wait}, fetch.message.max.bytes {fetch_bytes}): {:.0} JSON events/s end to end into the q5 view (median of {runs}, backlog of {events}), {:.0} events per second of the server's CPU time; server peak RSS {:.0} MiB while draining; freshness p50 {:.1} ms, p99 {:.1} ms",
        median(rates),
        if per_core.is_empty() { f64::NAN } else { median(per_core) },
        if peaks.is_empty() { f64::NAN } else { median(peaks) },
        fresh[fresh.len() / 2],
        fresh[fresh.len() * 99 / 100]
    );
}

async fn backlog(events: usize) {
    use async_nats::jetstream;
    let dir = tempfile::tempdir().expect("dir");
    let nport = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let nats = std::process::Command::new("/usr/sbin/nats-server")
        .args(["-a", "127.0.0.1", "-p", &nport.to_string(), "-js", "-sd"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut nats) = nats else {
        println!("ingest backlog: SKIPPED (no /usr/sbin/nats-server)");
        return;
    };
    while std::net::TcpStream::connect(("127.0.0.1", nport)).is_err() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("nats://127.0.0.1:{nport}");
    let client = async_nats::connect(&url).await.expect("nats");
    let js = jetstream::new(client);
    js.create_stream(jetstream::stream::Config {
        name: "backlog".into(),
        subjects: vec!["backlog.>".into()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let line = |i: usize| {
        format!(
            "{{\"id\": {i}, \"auction\": {}, \"price\": {}}}",
            i % 1000,
            i % 977
        )
    };
    let t = Instant::now();
    let mut acks = std::collections::VecDeque::new();
    for i in 0..events {
        let ack = js
            .publish("backlog.bids", line(i).into())
            .await
            .expect("publish");
        acks.push_back(ack);
        if acks.len() >= 20_000 {
            for a in acks.drain(..10_000) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
    eprintln!(
        "backlog: published {events} in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let create = "CREATE MATERIALIZED VIEW per_auction AS SELECT auction, count(*) AS n, sum(price) AS total FROM bl GROUP BY auction";
    let drained = |c: tokio_postgres::Client| async move {
        count(&c, "SELECT coalesce(sum(n), 0)::bigint FROM per_auction").await
    };
    // from the broker
    let s = server::start_server();
    let c = sql(s.port).await;
    let rss0 = s.rss_kib().unwrap_or(0);
    let t = Instant::now();
    c.batch_execute(&format!(
        "CREATE SOURCE bl (id BIGINT, auction BIGINT, price BIGINT) \
         WITH (connector = 'nats', server_url = '{url}', subject = 'backlog.>'); {create}"
    ))
    .await
    .expect("create");
    eprintln!(
        "backlog: CREATE SOURCE (which opens a consumer) took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut samples = Vec::new();
    let mut first_row = None;
    loop {
        samples.push((t.elapsed().as_secs_f64(), s.rss_kib().unwrap_or(0)));
        let n = drained(sql(s.port).await).await;
        if n > 0 && first_row.is_none() {
            first_row = Some(t.elapsed().as_secs_f64());
        }
        if n >= events as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let secs = t.elapsed().as_secs_f64();
    let end = s.rss_kib().unwrap_or(0);
    let peak = s.peak_rss_kib().unwrap_or(0);
    for (at, kib) in samples.iter().step_by((samples.len() / 10).max(1)) {
        eprintln!("backlog: at {at:.1} s resident {} MiB", kib / 1024);
    }
    let first_row = first_row.unwrap_or(secs);
    drop(s);
    let _ = nats.kill();
    let _ = nats.wait();
    // the same rows by COPY
    let s = server::start_server();
    let c = sql(s.port).await;
    c.batch_execute(&format!(
        "CREATE SOURCE bl (id BIGINT, auction BIGINT, price BIGINT); {create}"
    ))
    .await
    .expect("create");
    {
        use futures::SinkExt;
        let sink = c
            .copy_in::<_, bytes::Bytes>("COPY bl FROM STDIN")
            .await
            .expect("copy");
        let mut sink = std::pin::pin!(sink);
        for chunk in (0..events).collect::<Vec<_>>().chunks(100_000) {
            let mut buf = String::with_capacity(chunk.len() * 24);
            for &i in chunk {
                buf.push_str(&format!("{i}\t{}\t{}\n", i % 1000, i % 977));
            }
            sink.send(bytes::Bytes::from(buf)).await.expect("copy data");
        }
        sink.as_mut().finish().await.expect("copy end");
    }
    let copied = s.rss_kib().unwrap_or(0);
    let copy_peak = s.peak_rss_kib().unwrap_or(0);
    println!(
        "ingest backlog: {events} NATS messages drained in {secs:.1} s, the first row after {first_row:.1} s ({:.0} events/s from then); server resident {} MiB at start, {} MiB peak, {} MiB at the end; the same rows by COPY: {} MiB at the end, {} MiB peak",
        events as f64 / (secs - first_row).max(0.001),
        rss0 / 1024,
        peak / 1024,
        end / 1024,
        copied / 1024,
        copy_peak / 1024
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut runs = 3;
    let mut events = 1_000_000;
    let mut parts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--events" => events = it.next().and_then(|v| v.parse().ok()).expect("--events N"),
            p => parts.push(p.to_string()),
        }
    }
    let all = parts.is_empty();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if all || parts.iter().any(|p| p == "decode") {
        decode(events, runs);
    }
    if all || parts.iter().any(|p| p == "http") {
        rt.block_on(http(events, runs));
    }
    if all || parts.iter().any(|p| p == "kafka") {
        rt.block_on(kafka(events, runs));
    }
    if parts.iter().any(|p| p == "backlog") {
        rt.block_on(backlog(events));
    }
}
