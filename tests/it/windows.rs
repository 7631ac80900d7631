//! Windows with EMIT ON WINDOW CLOSE, in process: the view equals the batch
//! query restricted to closed windows over the rows that were not late, it
//! never retracts, and the state of a windowed aggregate over an endless
//! stream stays proportional to the open windows (with or without EMIT ON
//! WINDOW CLOSE).

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use freshet::dataflow::Delta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::props::{exec, open, restart, rows};

const DELAY_US: i64 = 3_000_000;

/// Windowed views over a source with a watermark and late rows, with and
/// without EMIT ON WINDOW CLOSE. After every step each view equals the same
/// query run in batch over the rows that were not late (kept in a second
/// source, `ev_ok`); with EMIT ON WINDOW CLOSE, restricted to the windows the
/// watermark has made final, and nothing once emitted is ever retracted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windowed_views_equal_batch_over_rows_not_late() {
    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE SOURCE ev (id BIGINT, k BIGINT, x BIGINT, ts TIMESTAMP,
                           WATERMARK FOR ts AS ts - INTERVAL '3 seconds')",
    )
    .await;
    exec(
        &mut s,
        "CREATE SOURCE ev_ok (id BIGINT, k BIGINT, x BIGINT, ts TIMESTAMP)",
    )
    .await;
    let tumble = "SELECT k, window_start, window_end, count(*) AS n, sum(x) AS s, max(x) AS m FROM TUMBLE({src}, ts, INTERVAL '5 seconds') GROUP BY k, window_start, window_end";
    let hop = "SELECT window_start, count(*) AS n, min(x) AS lo FROM HOP({src}, ts, INTERVAL '2 seconds', INTERVAL '6 seconds') WHERE x > 2 GROUP BY window_start";
    let session = "SELECT k, window_start, window_end, count(*) AS n, sum(x) AS s FROM TABLE(SESSION(TABLE {src} PARTITION BY k, DESCRIPTOR(ts), INTERVAL '2' SECOND)) GROUP BY k, window_start, window_end";
    // (view, query, EMIT ON WINDOW CLOSE, which rows are final at watermark {wm})
    let views = [
        ("w_tumble", tumble, true, "window_end <= {wm}"),
        (
            "w_hop",
            hop,
            true,
            "window_start + INTERVAL '6 seconds' <= {wm}",
        ),
        // a session is final once the watermark is past its end
        ("w_session", session, true, "window_end < {wm}"),
        ("c_tumble", tumble, false, ""),
        ("c_hop", hop, false, ""),
        ("c_session", session, false, ""),
    ];
    for (name, q, eowc, _) in &views {
        exec(
            &mut s,
            &format!(
                "CREATE MATERIALIZED VIEW {name} AS {}{}",
                q.replace("{src}", "ev"),
                if *eowc { " EMIT ON WINDOW CLOSE" } else { "" }
            ),
        )
        .await;
    }
    let base = 1_767_225_600_000_000i64; // 2026-01-01 00:00:00
    let mut rng = StdRng::seed_from_u64(0xE0_C0);
    let mut clock = base;
    let mut max_seen: Option<i64> = None;
    let mut late = 0usize;
    let mut previous: Vec<HashSet<String>> = vec![HashSet::new(); views.len()];
    let mut next_id = 0i64;
    let stamp = |t: i64| {
        chrono::DateTime::from_timestamp_micros(t)
            .unwrap()
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    };
    for step in 0..80 {
        clock += rng.random_range(0..1_500_000);
        let n = rng.random_range(1..6);
        let mut vals = Vec::new();
        let mut ok_vals = Vec::new();
        for _ in 0..n {
            // mostly near the clock, sometimes far behind (late)
            let t = if rng.random_bool(0.15) {
                clock - rng.random_range(0..10_000_000)
            } else {
                clock - rng.random_range(0..2_000_000)
            };
            let row = format!(
                "({next_id}, {}, {}, '{}')",
                rng.random_range(0..3),
                rng.random_range(0..10),
                stamp(t)
            );
            // late: behind the watermark as it stands after the rows before
            // it (in log order, even within one statement)
            if max_seen.is_some_and(|m| t < m - DELAY_US) {
                late += 1;
            } else {
                ok_vals.push(row.clone());
            }
            vals.push(row);
            max_seen = Some(max_seen.map_or(t, |m| m.max(t)));
            next_id += 1;
        }
        exec(
            &mut s,
            &format!("INSERT INTO ev VALUES {}", vals.join(", ")),
        )
        .await;
        if !ok_vals.is_empty() {
            exec(
                &mut s,
                &format!("INSERT INTO ev_ok VALUES {}", ok_vals.join(", ")),
            )
            .await;
        }
        let wm = format!("TIMESTAMP '{}'", stamp(max_seen.unwrap() - DELAY_US));
        for (i, (name, q, eowc, final_rows)) in views.iter().enumerate() {
            let got = rows(&mut s, &format!("SELECT * FROM {name}")).await;
            let batch = if *eowc {
                format!(
                    "SELECT * FROM ({}) q WHERE {}",
                    q.replace("{src}", "ev_ok"),
                    final_rows.replace("{wm}", &wm)
                )
            } else {
                q.replace("{src}", "ev_ok")
            };
            let want = rows(&mut s, &batch).await;
            assert_eq!(got, want, "step {step}: {name} differs from {batch}");
            if *eowc {
                let now: HashSet<String> = got.into_iter().collect();
                assert!(
                    previous[i].is_subset(&now),
                    "step {step}: {name} retracted a row it had emitted"
                );
                previous[i] = now;
            }
        }
    }
    assert!(late > 0, "the test produced no late rows");
    assert!(
        previous.iter().take(3).all(|p| p.len() > 5),
        "too few windows closed to mean anything"
    );
    let counted = rows(
        &mut s,
        "SELECT late_rows FROM freshet_catalog.source_watermarks WHERE source = 'ev'",
    )
    .await;
    assert_eq!(counted, vec![late.to_string()]);
    // every view that closes windows dropped exactly those rows
    let dropped = rows(
        &mut s,
        "SELECT DISTINCT late_rows_dropped FROM freshet_catalog.view_watermarks",
    )
    .await;
    assert_eq!(dropped, vec![late.to_string()]);
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
    let (mut circuit, _, _) = s.plan_view_emitting(&q, emit_on_close).await.unwrap();
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
    for emit_on_close in [true, false] {
        let sizes = state_over_time(emit_on_close, 400).await;
        let early = *sizes[20..40].iter().max().unwrap();
        let late = *sizes[380..].iter().max().unwrap();
        assert!(
            late <= early + early / 4,
            "state grew from {early} to {late} rows (EMIT ON WINDOW CLOSE: {emit_on_close}): {:?}",
            &sizes[..10]
        );
        // 400 windows of up to 50 groups each were seen (20 000 groups);
        // what is held is a few open windows' worth
        assert!(late < 10 * 50, "{late} rows of state");
        let distinct: BTreeSet<u64> = sizes[20..].iter().copied().collect();
        assert!(distinct.len() > 1, "state sizes never change: {distinct:?}");
    }
}

/// OVER over an endless stream: rows behind the watermark of the ORDER BY
/// column leave the operator (all but the few a `lag` or the running state
/// still needs), while the view keeps equal to its query, across a
/// restart from the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_state_stays_bounded_by_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE SOURCE ticks (sym INT, ts TIMESTAMP, px BIGINT,
                              WATERMARK FOR ts AS ts - INTERVAL '5 seconds')",
    )
    .await;
    let query = "SELECT sym, ts, px, px - lag(px, 2) OVER w AS d, row_number() OVER w AS n, \
                 sum(px) OVER w AS total, max(px) OVER w AS top, lead(px) OVER w AS nx \
                 FROM ticks WINDOW w AS (PARTITION BY sym ORDER BY ts)";
    exec(
        &mut s,
        &format!("CREATE MATERIALIZED VIEW moves AS {query}"),
    )
    .await;
    // the same events on a 250 ms grid (many ties), with a price that
    // depends on symbol and time only, so tied rows are identical and no
    // function's answer depends on how ties are broken: peer groups are
    // kept whole when rows are dropped
    exec(
        &mut s,
        "CREATE SOURCE coarse (sym INT, ts TIMESTAMP, px BIGINT,
                               WATERMARK FOR ts AS ts - INTERVAL '5 seconds')",
    )
    .await;
    let peers = "SELECT sym, ts, px, rank() OVER w AS r, dense_rank() OVER w AS dr, \
                 sum(px) OVER w AS total, count(*) OVER w AS n, lead(ts) OVER w AS next_ts \
                 FROM coarse WINDOW w AS (PARTITION BY sym ORDER BY ts)";
    exec(
        &mut s,
        &format!("CREATE MATERIALIZED VIEW ranks AS {peers}"),
    )
    .await;
    let mut rng = StdRng::seed_from_u64(11);
    let mut max_us = 0i64;
    let mut max_coarse = 0i64;
    let mut engine = engine;
    let mut sizes = Vec::new();
    for step in 0..240i64 {
        // 8 events a second over 4 symbols, up to 5 s out of order but
        // never late: many land just above the watermark, so changes reach
        // back to the rows kept below it
        let mut coarse: Vec<String> = Vec::new();
        let vals: Vec<String> = (0..8)
            .map(|i| {
                let ms = step * 1000 + i * 125 - rng.random_range(0..5000).min(step * 1000);
                // distinct times: ties would make row numbers depend on
                // the tie-break, which SQL leaves open
                let us = (ms * 1000 + (step * 8 + i) % 1000).max(max_us - 4_999_000);
                max_us = max_us.max(us);
                let (sym, px) = (rng.random_range(0..4), rng.random_range(0..1000));
                // on the grid, rounded up so it is not late either
                let grid = 250_000;
                let c = (ms * 1000).max(max_coarse - 4_999_000).div_euclid(grid) * grid;
                let c = if c < max_coarse - 4_999_000 {
                    c + grid
                } else {
                    c
                };
                max_coarse = max_coarse.max(c);
                let cpx = sym * 10 + (c / grid) % 7;
                coarse.push(format!(
                    "({sym}, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{c} microseconds', {cpx})"
                ));
                format!(
                    "({sym}, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL '{us} microseconds', {px})"
                )
            })
            .collect();
        exec(
            &mut s,
            &format!("INSERT INTO coarse VALUES {}", coarse.join(", ")),
        )
        .await;
        exec(
            &mut s,
            &format!("INSERT INTO ticks VALUES {}", vals.join(", ")),
        )
        .await;
        if step % 40 == 39 {
            assert_eq!(
                rows(&mut s, "SELECT * FROM moves").await,
                rows(&mut s, query).await,
                "moves differs from its query after step {step}"
            );
            assert_eq!(
                rows(&mut s, "SELECT * FROM ranks").await,
                rows(&mut s, peers).await,
                "ranks differs from its query after step {step}"
            );
        }
        if step == 120 {
            (engine, s) = restart(engine, s, dir.path()).await;
        }
        let held = rows(
            &mut s,
            "SELECT state_rows FROM freshet_catalog.view_operators WHERE view = 'moves' AND operator LIKE 'Over%'",
        )
        .await;
        sizes.push(held[0].parse::<u64>().unwrap());
    }
    // 1 920 rows went in; a few seconds of them per symbol are held
    let last = *sizes.last().unwrap();
    assert!(
        last < 120,
        "the OVER operator holds {last} rows: {:?}",
        &sizes[200..]
    );
    assert!(sizes[20..].iter().max().unwrap() < &150, "{sizes:?}");
    let held = rows(
        &mut s,
        "SELECT state_rows FROM freshet_catalog.view_operators WHERE view = 'ranks' AND operator LIKE 'Over%'",
    )
    .await;
    let held: u64 = held[0].parse().unwrap();
    assert!(
        held < 200,
        "the peers view's OVER operator holds {held} rows"
    );
    let late = rows(
        &mut s,
        "SELECT late_rows FROM freshet_catalog.source_watermarks ORDER BY source",
    )
    .await;
    assert_eq!(late, vec!["0", "0"], "the test means to send no late rows");
}
