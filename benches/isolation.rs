//! One client cannot starve the rest: the latency of single-row INSERTs on
//! one connection while another connection runs something heavy, against a
//! real `freshet` server (release build).
//!
//! ```text
//! cargo bench --bench isolation                 # every scenario, 3 runs of 10 s each
//! cargo bench --bench isolation -- --seconds 5 --runs 5 cross_join repeat
//! ```
//!
//! Scenarios: `idle` (nothing else runs), `cross_join` (a cross join of two
//! 100 000-row sources, over and over), `repeat` (`repeat('x', 1e9)` over
//! and over), `many_statements` (one message of 100 000 `SELECT 1;`),
//! `big_values` (one INSERT of 1 000 000 literal rows). Prints, per
//! scenario, the median over the runs of the inserts' p50, p99 and max.

#[path = "common/server.rs"]
mod server;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::SinkExt;
use tokio_postgres::{Client, NoTls};

async fn connect(port: u16) -> Client {
    let (c, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=freshet dbname=freshet"),
        NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

async fn load(c: &Client, table: &str, rows: usize) {
    c.batch_execute(&format!("CREATE SOURCE {table} (a BIGINT, b TEXT)"))
        .await
        .unwrap();
    let sink = c
        .copy_in(&format!("COPY {table} FROM STDIN"))
        .await
        .unwrap();
    let mut sink = Box::pin(sink);
    let mut buf = String::new();
    for i in 0..rows {
        buf.push_str(&format!("{i}\trow {i}\n"));
        if buf.len() > 1 << 20 {
            sink.send(Bytes::from(std::mem::take(&mut buf)))
                .await
                .unwrap();
        }
    }
    sink.send(Bytes::from(buf)).await.unwrap();
    sink.as_mut().finish().await.unwrap();
}

/// The heavy work of a scenario, repeated until `until`.
async fn heavy(port: u16, scenario: &str, until: Instant) {
    let c = connect(port).await;
    c.batch_execute("SET statement_timeout = '30s'")
        .await
        .unwrap();
    let many = "SELECT 1;".repeat(100_000);
    let values = {
        let mut s = String::from("INSERT INTO sink VALUES ");
        for i in 0..1_000_000 {
            if i > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("({i}, 'value {i}')"));
        }
        s
    };
    while Instant::now() < until {
        let r = match scenario {
            "cross_join" => c
                .simple_query("SELECT count(*) FROM big x, big y WHERE x.a + y.a < 0")
                .await
                .map(|_| ()),
            "repeat" => c
                .simple_query("SELECT length(repeat('x', 1000000000))")
                .await
                .map(|_| ()),
            "many_statements" => c.batch_execute(&many).await,
            "big_values" => c.batch_execute(&values).await,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            }
        };
        if let Err(e) = r {
            // a statement timeout is fine: it ran for 30 s
            if e.code().map(|c| c.code()) != Some("57014") {
                panic!("{scenario}: {e:?}");
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(scenario: &str, seconds: u64) -> (Duration, Duration, Duration, usize) {
    let server = server::start_server();
    let c = connect(server.port).await;
    load(&c, "big", 100_000).await;
    c.batch_execute("CREATE TABLE sink (a BIGINT, b TEXT); CREATE TABLE pings (n BIGINT)")
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(seconds);
    let port = server.port;
    let sc = scenario.to_string();
    let load_task = tokio::spawn(async move { heavy(port, &sc, until).await });
    // give the heavy work a head start
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut lat = Vec::new();
    let mut n = 0i64;
    while Instant::now() < until {
        let t = Instant::now();
        c.execute("INSERT INTO pings VALUES ($1)", &[&n])
            .await
            .unwrap();
        lat.push(t.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    load_task.abort();
    lat.sort();
    (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        *lat.last().unwrap(),
        lat.len(),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 10;
    let mut runs = 3;
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--bench" => {}
            s if !s.starts_with('-') => chosen.push(s.to_string()),
            _ => {}
        }
    }
    let all = [
        "idle",
        "cross_join",
        "repeat",
        "many_statements",
        "big_values",
    ];
    let scenarios: Vec<&str> = if chosen.is_empty() {
        all.to_vec()
    } else {
        all.iter()
            .copied()
            .filter(|s| chosen.iter().any(|c| c == s))
            .collect()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("scenario          inserts  p50       p99       max       (median of {runs} runs of {seconds} s)");
    for s in scenarios {
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut max = Vec::new();
        let mut count = 0;
        for _ in 0..runs {
            let (a, b, c, n) = rt.block_on(run(s, seconds));
            p50.push(a);
            p99.push(b);
            max.push(c);
            count = n;
        }
        println!(
            "{s:<17} {count:>7}  {:>7.2}ms {:>7.2}ms {:>7.2}ms",
            median(p50).as_secs_f64() * 1e3,
            median(p99).as_secs_f64() * 1e3,
            median(max).as_secs_f64() * 1e3
        );
    }
}
