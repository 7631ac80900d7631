//! Windows with EMIT ON WINDOW CLOSE, in process: the view equals the batch
//! query restricted to closed windows over the rows that were not late, it
//! never retracts, and the state of a windowed aggregate over an endless
//! stream stays proportional to the open windows.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use freshet::dataflow::Delta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::props::{exec, open, rows};

const DELAY_US: i64 = 3_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_on_close_equals_batch_over_closed_windows_and_never_retracts() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE SOURCE ev (id BIGINT, k BIGINT, x BIGINT, ts TIMESTAMP,
                           WATERMARK FOR ts AS ts - INTERVAL '3 seconds')",
    )
    .await;
    let views = [
        (
            "w_tumble",
            "SELECT k, window_start, window_end, count(*) AS n, sum(x) AS s, max(x) AS m FROM TUMBLE(ev, ts, INTERVAL '5 seconds') GROUP BY k, window_start, window_end",
            5_000_000i64,
        ),
        (
            "w_hop",
            "SELECT window_start, count(*) AS n, min(x) AS lo FROM HOP(ev, ts, INTERVAL '2 seconds', INTERVAL '6 seconds') WHERE x > 2 GROUP BY window_start",
            6_000_000,
        ),
    ];
    for (name, q, _) in &views {
        exec(
            &mut s,
            &format!("CREATE MATERIALIZED VIEW {name} AS {q} EMIT ON WINDOW CLOSE"),
        )
        .await;
    }
    let base = 1_767_225_600_000_000i64; // 2026-01-01 00:00:00
    let mut rng = StdRng::seed_from_u64(0xE0_C0);
    let mut clock = base;
    let mut max_seen: Option<i64> = None;
    let mut late: Vec<i64> = Vec::new();
    let mut previous: Vec<HashSet<String>> = vec![HashSet::new(); views.len()];
    let mut next_id = 0i64;
    for step in 0..80 {
        clock += rng.random_range(0..1_500_000);
        let n = rng.random_range(1..6);
        let wm_before = max_seen.map(|m| m - DELAY_US);
        let mut vals = Vec::new();
        for _ in 0..n {
            // mostly near the clock, sometimes far behind (late)
            let t = if rng.random_bool(0.15) {
                clock - rng.random_range(0..10_000_000)
            } else {
                clock - rng.random_range(0..2_000_000)
            };
            if wm_before.is_some_and(|w| t < w) {
                late.push(next_id);
            }
            max_seen = Some(max_seen.map_or(t, |m| m.max(t)));
            let ts = chrono::DateTime::from_timestamp_micros(t)
                .unwrap()
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.6f");
            vals.push(format!(
                "({next_id}, {}, {}, '{ts}')",
                rng.random_range(0..3),
                rng.random_range(0..10)
            ));
            next_id += 1;
        }
        exec(
            &mut s,
            &format!("INSERT INTO ev VALUES {}", vals.join(", ")),
        )
        .await;
        let wm = max_seen.unwrap() - DELAY_US;
        let wm_sql = chrono::DateTime::from_timestamp_micros(wm)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.6f");
        let not_late = if late.is_empty() {
            "TRUE".to_string()
        } else {
            format!(
                "id NOT IN ({})",
                late.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for (i, (name, q, size_us)) in views.iter().enumerate() {
            let got = rows(&mut s, &format!("SELECT * FROM {name}")).await;
            // the batch query over the rows that were not late, restricted
            // to windows the watermark has closed
            let size_s = size_us / 1_000_000;
            let batch = format!(
                "SELECT * FROM ({}) q WHERE window_start + INTERVAL '{size_s} seconds' <= TIMESTAMP '{wm_sql}'",
                q.replace(
                    "GROUP BY",
                    &format!("AND {not_late} GROUP BY")
                )
                .replace("FROM TUMBLE(ev, ts, INTERVAL '5 seconds') AND", "FROM TUMBLE(ev, ts, INTERVAL '5 seconds') WHERE")
            );
            let want = rows(&mut s, &batch).await;
            assert_eq!(got, want, "step {step}: {name} differs from {batch}");
            let now: HashSet<String> = got.into_iter().collect();
            assert!(
                previous[i].is_subset(&now),
                "step {step}: {name} retracted a row it had emitted"
            );
            previous[i] = now;
        }
    }
    assert!(!late.is_empty(), "the test produced no late rows");
    assert!(
        previous.iter().all(|p| p.len() > 5),
        "too few windows closed to mean anything"
    );
    let counted = rows(
        &mut s,
        "SELECT late_rows FROM freshet_catalog.source_watermarks",
    )
    .await;
    assert_eq!(counted, vec![late.len().to_string()]);
}

/// Feeds `windows` one-second windows of events through a view's circuit
/// and returns the total state rows after each window.
async fn state_over_time(emit_on_close: bool, windows: i64) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE SOURCE bids (auction BIGINT, price BIGINT, date_time TIMESTAMP,
                             WATERMARK FOR date_time AS date_time - INTERVAL '2 seconds')",
    )
    .await;
    let q = freshet::sql::parser::parse_query(
        "SELECT auction, window_start, count(*) AS n, max(price) AS top \
         FROM TUMBLE(bids, date_time, INTERVAL '1 second') GROUP BY auction, window_start",
    )
    .unwrap();
    let (mut circuit, _) = s.plan_view_emitting(&q, emit_on_close).await.unwrap();
    let schema = circuit.sources[0].schema.clone();
    let base = 1_767_225_600_000_000i64;
    let mut sizes = Vec::new();
    let mut rng = StdRng::seed_from_u64(7);
    for w in 0..windows {
        let n = 200;
        let ts: Vec<i64> = (0..n)
            .map(|i| base + w * 1_000_000 + i * 5_000 - rng.random_range(0..500_000))
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|_| rng.random_range(0..50)),
            )),
            Arc::new(Int64Array::from_iter_values((0..n).map(|i| i * 3))),
            Arc::new(TimestampMicrosecondArray::from(ts)),
        ];
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        circuit.step(&[Some(Delta::insert(batch))]).unwrap();
        sizes.push(circuit.state_sizes().iter().map(|(_, s)| s.rows).sum());
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_windows_leave_no_state() {
    let closing = state_over_time(true, 400).await;
    let growing = state_over_time(false, 400).await;
    let early = *closing[20..40].iter().max().unwrap();
    let late = *closing[380..].iter().max().unwrap();
    assert!(
        late <= early + early / 4,
        "EMIT ON WINDOW CLOSE state grew from {early} to {late} rows: {:?}",
        &closing[..10]
    );
    // the same aggregate without it keeps every window
    assert!(
        growing[399] > 5 * growing[39],
        "continuous state did not grow: {} -> {}",
        growing[39],
        growing[399]
    );
    let distinct: BTreeSet<u64> = closing[20..].iter().copied().collect();
    assert!(distinct.len() > 1, "state sizes never change: {distinct:?}");
}
