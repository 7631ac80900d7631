//! End-to-end write benchmarks through the Postgres wire protocol against a
//! real `freshet` server (release build), every write durable before it is
//! acknowledged.
//!
//! ```text
//! cargo bench --bench wire                      # 1 M-row COPY (without and with views) and 5 000 single-row INSERTs, 3 runs each
//! cargo bench --bench wire -- --rows 200000 --inserts 2000 --runs 5
//! cargo bench --bench wire -- --only lookup      # point lookups by key and by an indexed column vs a scan
//! ```
//!
//! Prints the median of the runs. Data generation is not timed.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::NoTls;

#[path = "common/server.rs"]
mod server;
use server::start_server;

/// Nexmark-shaped bids: hot auctions, four channels, increasing event time.
fn bids_csv(rows: usize) -> Vec<Bytes> {
    const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
    let mut chunks = Vec::new();
    let mut buf = String::with_capacity(1 << 20);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let base = 1_767_225_600i64; // 2026-01-01 00:00:00 UTC
    for i in 0..rows {
        let r = next();
        let auction = 1000 + if r % 100 < 90 { r % 100 } else { r % 100_000 };
        let bidder = 1000 + (next() % 100_000);
        let price = 100 + (next() % 1_000_000);
        let channel = CHANNELS[(r >> 20) as usize % 4];
        let secs = base + (i / 1000) as i64;
        let t = chrono::DateTime::from_timestamp(secs, ((i % 1000) * 1_000_000) as u32)
            .expect("valid time")
            .naive_utc();
        let _ = writeln!(
            buf,
            "{auction},{bidder},{price},{channel},https://www.nexmark.com/{channel}/item.htm?query=1&id={auction},{},{}",
            t.format("%Y-%m-%d %H:%M:%S%.3f"),
            &"abcdefghijklmnopqrstuvwxyz0123456789"[..(r % 30) as usize]
        );
        if buf.len() >= (1 << 20) {
            chunks.push(Bytes::from(std::mem::take(&mut buf)));
        }
    }
    if !buf.is_empty() {
        chunks.push(Bytes::from(buf));
    }
    chunks
}

const BIDS: &str = "(auction BIGINT, bidder BIGINT, price BIGINT, channel TEXT, url TEXT, date_time TIMESTAMP, extra TEXT)";

async fn connect(port: u16) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=freshet dbname=freshet"),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn copy_run(
    client: &tokio_postgres::Client,
    table: &str,
    chunks: &[Bytes],
    with_views: bool,
) -> (u64, Duration) {
    client
        .batch_execute(&format!("CREATE SOURCE {table} {BIDS}"))
        .await
        .expect("create source");
    if with_views {
        // Nexmark q1 (projection) and a GROUP BY auction count/max view,
        // maintained by the same commit that makes the COPY durable.
        client
            .batch_execute(&format!(
                "CREATE MATERIALIZED VIEW {table}_q1 AS \
                   SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM {table}; \
                 CREATE MATERIALIZED VIEW {table}_agg AS \
                   SELECT auction, count(*) AS n, max(price) AS top FROM {table} GROUP BY auction"
            ))
            .await
            .expect("create views");
    }
    let start = Instant::now();
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN WITH (FORMAT csv)"))
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    for c in chunks {
        sink.send(c.clone()).await.expect("copy data");
    }
    let n = sink.as_mut().finish().await.expect("copy done");
    (n, start.elapsed())
}

async fn insert_run(client: &tokio_postgres::Client, table: &str, n: usize) -> Vec<Duration> {
    client
        .batch_execute(&format!("CREATE SOURCE {table} {BIDS}"))
        .await
        .expect("create source");
    let stmt = client
        .prepare(&format!(
            "INSERT INTO {table} VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .await
        .expect("prepare");
    let t = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("time");
    let mut lat = Vec::with_capacity(n);
    for i in 0..n as i64 {
        let start = Instant::now();
        client
            .execute(
                &stmt,
                &[
                    &(1000 + i % 100),
                    &i,
                    &(100 + i),
                    &"Google",
                    &"https://www.nexmark.com/",
                    &t,
                    &"",
                ],
            )
            .await
            .expect("insert");
        lat.push(start.elapsed());
    }
    lat
}

/// Latencies of `n` runs of a one-parameter prepared statement, the
/// parameter drawn from `0..range`; with the rows each returned.
async fn lookup_run(
    client: &tokio_postgres::Client,
    sql: &str,
    n: usize,
    range: i32,
) -> (Vec<Duration>, u64) {
    let stmt = client.prepare(sql).await.expect("prepare");
    let mut seed: u32 = 0x2545_F491;
    let mut lat = Vec::with_capacity(n);
    let mut rows = 0;
    for _ in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let key = (seed % range as u32) as i32;
        let start = Instant::now();
        rows += client.query(&stmt, &[&key]).await.expect("lookup").len() as u64;
        lat.push(start.elapsed());
    }
    lat.sort();
    (lat, rows)
}

/// A table of `rows` accounts (`id` the key, `grp` one of 10 000 groups),
/// then lookups: by key, by `grp` scanned, by `grp` through an index, and
/// updates by key.
async fn lookups(client: &tokio_postgres::Client, rows: usize, n: usize, runs: usize) {
    client
        .batch_execute("CREATE TABLE accounts (id INT PRIMARY KEY, grp INT, bal BIGINT)")
        .await
        .expect("create table");
    let mut buf = String::new();
    let sink = client
        .copy_in("COPY accounts FROM STDIN")
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    for i in 0..rows {
        let _ = writeln!(buf, "{i}\t{}\t0", (i * 7919) % 10_000);
        if buf.len() >= 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut buf)))
                .await
                .expect("copy data");
        }
    }
    sink.send(Bytes::from(buf)).await.expect("copy data");
    sink.as_mut().finish().await.expect("copy done");
    let range = rows as i32;
    let cases: [(&str, &str, usize, i32); 4] = [
        (
            "by primary key",
            "SELECT bal FROM accounts WHERE id = $1",
            n,
            range,
        ),
        (
            "by grp, scanned",
            "SELECT id FROM accounts WHERE grp = $1",
            (n / 20).max(5),
            10_000,
        ),
        (
            "by grp, indexed",
            "SELECT id FROM accounts WHERE grp = $1",
            n,
            10_000,
        ),
        (
            "update by primary key",
            "UPDATE accounts SET bal = bal + 1 WHERE id = $1",
            n,
            range,
        ),
    ];
    for (label, sql, count, range) in cases {
        if label == "by grp, indexed" {
            client
                .batch_execute("CREATE INDEX accounts_grp ON accounts (grp)")
                .await
                .expect("create index");
        }
        let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
        for r in 0..runs {
            let (lat, found) = lookup_run(client, sql, count, range).await;
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            println!(
                "lookup {label} run {r}: {count} statements, {found} rows, p50 {:.3} ms, p99 {:.3} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
            p50s.push(p50.as_secs_f64() * 1e3);
            p99s.push(p99.as_secs_f64() * 1e3);
        }
        println!(
            "wire lookup {label}: p50 {:.3} ms, p99 {:.3} ms (median of {runs} runs, {rows} rows)",
            median(p50s),
            median(p99s)
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows = arg(&args, "--rows", 1_000_000);
    let inserts = arg(&args, "--inserts", 5_000);
    let runs = arg(&args, "--runs", 3).max(1);
    let lookups_n = arg(&args, "--lookups", 2_000);
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let phase = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let server = start_server();
        let client = connect(server.port).await;
        if phase("lookup") {
            lookups(&client, rows, lookups_n, runs).await;
        }
        let chunks = if phase("copy") {
            bids_csv(rows)
        } else {
            vec![]
        };
        let mb: usize = chunks.iter().map(|c| c.len()).sum::<usize>() / (1 << 20);
        for (label, with_views) in [("copy", false), ("copy with q1+agg views", true)] {
            if !phase("copy") {
                break;
            }
            let mut rates = Vec::new();
            for r in 0..runs {
                let table = format!("bids_{}_{r}", if with_views { "v" } else { "plain" });
                let (n, took) = copy_run(&client, &table, &chunks, with_views).await;
                assert_eq!(n as usize, rows);
                let rate = n as f64 / took.as_secs_f64();
                println!(
                    "{label} run {r}: {n} rows ({mb} MiB CSV) in {:.2} s = {:.0} rows/s",
                    took.as_secs_f64(),
                    rate
                );
                rates.push(rate);
            }
            println!(
                "wire {label}: {:.0} rows/s (median of {runs}), {rows} rows per run",
                median(rates)
            );
            if with_views {
                // the views are up to date the moment COPY is acknowledged
                let table = format!("bids_v_{}", runs - 1);
                let n: i64 = client
                    .query_one(&format!("SELECT sum(n)::BIGINT FROM {table}_agg"), &[])
                    .await
                    .expect("read view")
                    .get(0);
                assert_eq!(n as usize, rows);
            }
        }

        if !phase("insert") {
            return;
        }
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for r in 0..runs {
            let mut lat = insert_run(&client, &format!("insert_bids_{r}"), inserts).await;
            lat.sort();
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            println!(
                "insert run {r}: {inserts} single-row INSERTs, p50 {:.3} ms, p99 {:.3} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
            p50s.push(p50.as_secs_f64() * 1e3);
            p99s.push(p99.as_secs_f64() * 1e3);
        }
        println!(
            "wire insert: p50 {:.3} ms, p99 {:.3} ms (median of {runs} runs of {inserts})",
            median(p50s),
            median(p99s)
        );
    });
}
