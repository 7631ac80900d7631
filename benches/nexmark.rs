//! Nexmark queries as incremental views, in process.
//!
//! ```text
//! cargo bench --bench nexmark                       # every query, 1 M events, 3 runs
//! cargo bench --bench nexmark -- q1 agg --events 2000000 --runs 5
//! cargo bench --bench nexmark -- scaling            # cost of 10 k events after 10 k vs 1 M of history
//! cargo bench --bench nexmark -- q3 q4 q7 q8        # joins over person, auction and bid
//! ```
//!
//! For each query: the events are generated first (not timed) as Arrow
//! batches of 10 000 bids (q3, q4, q7, q8: 10 000 events of the three
//! streams in Nexmark's proportions, all three fed at each step); then the view's circuit is fed every batch and
//! its stored contents kept up to date, on one thread. One line per query:
//! `nexmark q1: <R> events/s, <R/cores> events/s/core, <N> events, <C> cores, <V> rows in the view`
//! (the median of the runs). `scaling` goes through the engine's commit
//! path (log, flush, view maintenance) instead.

#[path = "common/nexmark_gen.rs"]
mod gen;

use std::time::Instant;

use freshet::catalog::{RelationDef, RelationKind};
use freshet::dataflow::Delta;
use freshet::engine::session::Session;
use freshet::engine::view::ViewState;
use freshet::{Engine, EngineConfig};

const QUERIES: &[(&str, &str)] = &[
    // q1: currency conversion (projection)
    (
        "q1",
        "SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid",
    ),
    // q2: selection
    (
        "q2",
        "SELECT auction, price FROM bid WHERE auction % 123 = 0",
    ),
    // GROUP BY auction with count and max
    (
        "agg",
        "SELECT auction, count(*) AS n, max(price) AS top FROM bid GROUP BY auction",
    ),
    // q5, the windowed count per auction (HOP 10 s every 2 s); the "hottest
    // auction per window" step needs joins
    (
        "q5",
        "SELECT auction, window_start, count(*) AS num FROM HOP(bid, date_time, INTERVAL '2 seconds', INTERVAL '10 seconds') GROUP BY auction, window_start",
    ),
    // q7, the aggregate half: highest price per 10 s tumbling window
    (
        "q7_agg",
        "SELECT window_start, window_end, max(price) AS maxprice FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_start, window_end",
    ),
    // OVER: each bid's step from the auction's previous bid
    (
        "over_lag",
        "SELECT auction, date_time, price - lag(price) OVER (PARTITION BY auction ORDER BY date_time) AS step FROM bid",
    ),
    // ASOF: each bid with the auction's bid before it (a self ASOF join)
    (
        "asof",
        "SELECT b.auction, b.price, p.price AS prev FROM bid b ASOF JOIN bid p ON b.auction = p.auction AND b.date_time > p.date_time",
    ),
    // the same written by hand as the join ASOF is planned as: without the
    // time index every probe walks the whole auction (run only when named)
    (
        "asof_unindexed",
        "SELECT b.auction, b.price, p.price AS prev FROM bid b JOIN ( \
           SELECT bid.*, lead(date_time) OVER (PARTITION BY auction ORDER BY date_time) AS nxt FROM bid) p \
         ON b.auction = p.auction AND p.date_time < b.date_time AND (p.nxt IS NULL OR b.date_time <= p.nxt)",
    ),
];

/// Queries run only when named on the command line.
const NAMED_ONLY: &[&str] = &["asof_unindexed"];

const BATCH: usize = 10_000;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn run_query(session: &Session, sql: &str, batches: &[Delta]) -> (f64, usize) {
    let (mut circuit, mut state) = plan(session, sql).await;
    let events: usize = batches.iter().map(|b| b.len()).sum();
    let start = Instant::now();
    // the first step runs every operator once (global aggregates emit)
    for b in batches {
        if let Some(out) = circuit.step(&[Some(b.clone())]).expect("step") {
            state.apply(&out).expect("apply");
        }
    }
    let took = start.elapsed();
    (events as f64 / took.as_secs_f64(), state.rows())
}

/// Like `run_query`, over the three streams: each step feeds every source
/// the circuit reads its part of the batch.
async fn run_stream_query(
    session: &Session,
    sql: &str,
    steps: &[gen::StreamBatch],
) -> (f64, usize) {
    let (mut circuit, mut state) = plan(session, sql).await;
    let events: usize = steps.iter().map(|b| b.len()).sum();
    let names: Vec<String> = circuit.sources.iter().map(|s| s.name.clone()).collect();
    let inputs: Vec<Vec<Option<Delta>>> = steps
        .iter()
        .map(|b| {
            names
                .iter()
                .map(|n| match n.as_str() {
                    "person" => Some(Delta::insert(b.person.clone())),
                    "auction" => Some(Delta::insert(b.auction.clone())),
                    "bid" => Some(Delta::insert(b.bid.clone())),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    for step in &inputs {
        if let Some(out) = circuit.step(step).expect("step") {
            state.apply(&out).expect("apply");
        }
    }
    let took = start.elapsed();
    (events as f64 / took.as_secs_f64(), state.rows())
}

async fn scaling(runs: usize) {
    // time to ingest 10 k events through the commit path into a source with
    // a grouped aggregate over 1 000 auctions, after `history` events
    let mut results = Vec::new();
    for history in [10_000usize, 1_000_000] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let dir = tempfile::tempdir().expect("temp dir");
            let engine = Engine::open(EngineConfig::new(dir.path())).expect("engine");
            let mut s = Session::standalone(engine.clone()).expect("session");
            s.run(gen::BID_DDL).await.expect("create source");
            if std::env::var("FRESHET_SCALING_NO_VIEW").is_err() {
                s.run("CREATE MATERIALIZED VIEW agg AS SELECT auction, count(*) AS n, max(price) AS top FROM bid GROUP BY auction")
                    .await
                    .expect("create view");
            }
            // A fixed key space that both histories cover, so the probe
            // touches the same groups either way and only history differs.
            let mut g = gen::Gen::new(7);
            g.uniform_auctions = Some(1000);
            for _ in 0..history / BATCH {
                engine
                    .append("bid", vec![g.bids(BATCH)])
                    .await
                    .expect("history");
            }
            // let the storage's background flushing of the history finish
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let probe: Vec<_> = (0..10).map(|_| g.bids(1_000)).collect();
            let start = Instant::now();
            let mut each = Vec::new();
            for b in probe {
                let t = Instant::now();
                engine.append("bid", vec![b]).await.expect("append");
                each.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.push(start.elapsed().as_secs_f64() * 1e3);
            if std::env::var("FRESHET_SCALING_VERBOSE").is_ok() {
                println!("  commits after {history}: {each:.2?} ms");
            }
            drop(s);
            engine.shutdown().await;
        }
        let m = median(times);
        println!("nexmark scaling: 10000 events (10 commits of 1000) after {history} events of history: {m:.1} ms (median of {runs})");
        results.push(m);
    }
    println!(
        "nexmark scaling: ratio {:.2} (after 1000000 / after 10000)",
        results[1] / results[0]
    );
    scaling_operators(runs).await;
}

/// The same probe without the disk: only the view's operators and stored
/// contents, so the ratio shows the dataflow's own cost per change.
async fn scaling_operators(runs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(EngineConfig::new(dir.path())).expect("engine");
    let mut session = Session::standalone(engine.clone()).expect("session");
    session.run(gen::BID_DDL).await.expect("create source");
    let sql = "SELECT auction, count(*) AS n, max(price) AS top FROM bid GROUP BY auction";
    let mut results = Vec::new();
    for history in [10_000usize, 1_000_000] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let (mut circuit, mut state) = plan(&session, sql).await;
            let mut g = gen::Gen::new(7);
            g.uniform_auctions = Some(1000);
            for _ in 0..history / BATCH {
                let b = Delta::insert(g.bids(BATCH));
                if let Some(out) = circuit.step(&[Some(b)]).expect("step") {
                    state.apply(&out).expect("apply");
                }
            }
            let probe: Vec<_> = (0..10).map(|_| Delta::insert(g.bids(1_000))).collect();
            let start = Instant::now();
            for b in probe {
                if let Some(out) = circuit.step(&[Some(b)]).expect("step") {
                    state.apply(&out).expect("apply");
                }
            }
            times.push(start.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(state.rows());
        }
        let m = median(times);
        println!("nexmark scaling (operators only): 10000 events (10 steps of 1000) after {history} events of history: {m:.2} ms (median of {runs})");
        results.push(m);
    }
    println!(
        "nexmark scaling (operators only): ratio {:.2} (after 1000000 / after 10000)",
        results[1] / results[0]
    );
    drop(session);
    engine.shutdown().await;
}

/// A view's circuit, planned as CREATE MATERIALIZED VIEW plans it, and
/// its empty stored contents.
async fn plan(session: &Session, sql: &str) -> (freshet::dataflow::Circuit, ViewState) {
    let query = freshet::sql::parser::parse_query(sql).expect("query parses");
    let (circuit, schema) = session.plan_view(&query).await.expect("plan view");
    let def = RelationDef {
        view_schema: Some(schema),
        plan: None,
        ..bench_view_def()
    };
    let state = ViewState::new(&def, circuit.append_only).expect("view state");
    (circuit, state)
}

fn bench_view_def() -> RelationDef {
    RelationDef {
        id: 0,
        name: "bench_view".into(),
        kind: RelationKind::View,
        columns: vec![],
        primary_key: vec![],
        watermark: None,
        options: Default::default(),
        sql: String::new(),
        query: None,
        depends_on: vec![],
        view_schema: None,
        plan: None,
        owner: "freshet".into(),
        acl: Default::default(),
        comments: Default::default(),
        indexes: Vec::new(),
        source: None,
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let events = arg(&args, "--events", 1_000_000);
    let runs = arg(&args, "--runs", 3).max(1);
    let mut wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| {
            QUERIES
                .iter()
                .chain(gen::STREAM_QUERIES)
                .any(|(n, _)| n == a)
                || *a == "scaling"
        })
        .collect();
    if wanted.is_empty() {
        wanted = QUERIES
            .iter()
            .chain(gen::STREAM_QUERIES)
            .map(|(n, _)| *n)
            .filter(|n| !NAMED_ONLY.contains(n))
            .collect();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(EngineConfig::new(dir.path())).expect("engine");
        let mut session = Session::standalone(engine.clone()).expect("session");
        session.run(gen::BID_DDL).await.expect("create source");
        session.run(gen::PERSON_DDL).await.expect("create source");
        session.run(gen::AUCTION_DDL).await.expect("create source");
        let mut g = gen::Gen::new(42);
        let batches: Vec<Delta> = (0..events.div_ceil(BATCH))
            .map(|_| Delta::insert(g.bids(BATCH)))
            .collect();
        let n: usize = batches.iter().map(|b| b.len()).sum();
        let mut streams: Vec<gen::StreamBatch> = Vec::new();
        for name in &wanted {
            if *name == "scaling" {
                scaling(runs).await;
                continue;
            }
            let mut rates = Vec::new();
            let mut rows = 0;
            if let Some((_, sql)) = QUERIES.iter().find(|(q, _)| q == name) {
                for _ in 0..runs {
                    let (r, n) = run_query(&session, sql, &batches).await;
                    rates.push(r);
                    rows = n;
                }
            } else if let Some((_, sql)) = gen::STREAM_QUERIES.iter().find(|(q, _)| q == name) {
                if streams.is_empty() {
                    let mut st = gen::Streams::new(42);
                    streams = (0..events.div_ceil(BATCH)).map(|_| st.batch(BATCH)).collect();
                }
                for _ in 0..runs {
                    let (r, n) = run_stream_query(&session, sql, &streams).await;
                    rates.push(r);
                    rows = n;
                }
            } else {
                continue;
            }
            let r = median(rates);
            // the circuit runs on one thread
            let cores = 1;
            println!(
                "nexmark {name}: {r:.0} events/s, {:.0} events/s/core, {n} events, {cores} cores, {rows} rows in the view",
                r / cores as f64
            );
        }
        drop(session);
        engine.shutdown().await;
    });
}
