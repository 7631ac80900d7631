//! Property tests of the incremental operators against batch recomputation.
//!
//! Each view exercises one operator (or a combination). Random statements
//! insert rows (with duplicates and NULLs), delete rows inserted earlier and
//! update them; after every statement each view's contents must equal the
//! result of its defining query run by DataFusion in batch over the same
//! tables. The views also survive a restart (checkpoint + log tail).

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use freshet::engine::session::{Output, Session};
use freshet::{Engine, EngineConfig};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// (view name, defining query, operator under test)
const VIEWS: &[(&str, &str)] = &[
    ("p_filter", "SELECT k, g, v FROM t WHERE v > 20 AND g <> 'b'"),
    ("p_project", "SELECT k + 1 AS k1, upper(g) AS ug, v * 2 AS v2, CASE WHEN b THEN 'yes' ELSE 'no' END AS yn, CAST(v AS DOUBLE PRECISION) / 4 AS q FROM t"),
    ("p_count", "SELECT g, count(*) AS n, count(v) AS nv FROM t GROUP BY g"),
    ("p_sum_avg", "SELECT k, sum(v) AS s, avg(v) AS a, sum(f) AS sf FROM t GROUP BY k"),
    ("p_min_max", "SELECT g, min(v) AS lo, max(v) AS hi, min(g) AS mg FROM t GROUP BY g"),
    ("p_distinct_count", "SELECT k, count(DISTINCT g) AS dg FROM t GROUP BY k"),
    ("p_bool", "SELECT g, bool_and(b) AS ba, bool_or(b) AS bo FROM t GROUP BY g"),
    ("p_string_agg", "SELECT k, string_agg(g, ',' ORDER BY g) AS gs FROM t GROUP BY k"),
    ("p_having", "SELECT g, sum(v) AS s FROM t GROUP BY g HAVING count(*) > 2"),
    ("p_global", "SELECT count(*) AS n, sum(v) AS s, max(v) AS m, min(f) AS mf FROM t"),
    ("p_distinct", "SELECT DISTINCT g, b FROM t"),
    ("p_union_all", "SELECT k, v FROM t WHERE v < 30 UNION ALL SELECT w, w + 100 FROM u"),
    ("p_union", "SELECT g FROM t UNION SELECT h FROM u"),
    ("p_intersect_all", "SELECT g FROM t INTERSECT ALL SELECT h FROM u"),
    ("p_except_all", "SELECT k, g FROM t EXCEPT ALL SELECT w, h FROM u"),
    ("p_subquery", "SELECT g, n FROM (SELECT g, count(*) AS n FROM t GROUP BY g) x WHERE n >= 2"),
    ("p_cte", "WITH big AS (SELECT k, v FROM t WHERE v >= 10) SELECT k, max(v) AS m FROM big GROUP BY k"),
    ("p_filter_agg", "SELECT k, count(*) FILTER (WHERE b) AS nb FROM t GROUP BY k"),
    ("p_array_agg", "SELECT g, array_agg(k ORDER BY k) AS ks FROM t WHERE k IS NOT NULL GROUP BY g"),
    ("p_ordered_agg", "SELECT k, array_agg(v ORDER BY f DESC NULLS LAST, v, g, b) AS vs, string_agg(g, ',' ORDER BY v DESC, g, f, b) AS gs FROM t GROUP BY k"),
    ("p_distinct_on", "SELECT DISTINCT ON (g) g, k, v, f FROM t ORDER BY g, v DESC, k, f, b"),
    ("p_distinct_on_last", "SELECT DISTINCT ON (k, b) k, b, g, f FROM t ORDER BY k, b, f NULLS FIRST, g DESC, v"),
    ("p_grouping_sets", "SELECT g, k, sum(v) AS s, count(*) AS n, grouping(g, k) AS gk FROM t GROUP BY GROUPING SETS ((g), (k), (g, k), ())"),
    ("p_rollup", "SELECT k, b, max(v) AS m, min(g) AS mg FROM t GROUP BY ROLLUP (k, b)"),
    ("p_cube", "SELECT g, b, count(v) AS n, array_agg(v ORDER BY v, k, f) AS vs FROM t GROUP BY CUBE (g, b)"),
    ("p_mixed_sets", "SELECT k, g, count(*) AS n FROM t GROUP BY k, ROLLUP (g)"),
    ("p_top_n", "SELECT k, g, v FROM t ORDER BY v DESC, k, g LIMIT 3"),
    ("p_top_per_group", "SELECT * FROM (SELECT k, g, v, row_number() OVER (PARTITION BY g ORDER BY v DESC, k) AS rn FROM t) x WHERE rn <= 2"),
    ("p_first_per_group", "SELECT k, v FROM (SELECT k, v, row_number() OVER (PARTITION BY k ORDER BY v) AS rn FROM t) x WHERE rn = 1"),
    ("p_top_n_offset", "SELECT g, v FROM t WHERE v IS NOT NULL ORDER BY v, g LIMIT 4 OFFSET 2"),
    ("p_lag_lead", "SELECT k, g, v, f, b, lag(v) OVER (PARTITION BY g ORDER BY v, k, f, b) AS pv, lead(v, 2, -1) OVER (PARTITION BY g ORDER BY v, k, f, b) AS nv FROM t"),
    ("p_running", "SELECT g, v, sum(v) OVER (PARTITION BY g ORDER BY v) AS rs, count(*) OVER (PARTITION BY g ORDER BY v) AS rc, min(f) OVER (PARTITION BY g ORDER BY v DESC) AS rm FROM t"),
    ("p_rows_frame", "SELECT k, v, f, b, g, row_number() OVER (PARTITION BY k ORDER BY v, f, b, g) AS rn, sum(f) OVER (PARTITION BY k ORDER BY v, f, b, g ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS rs, avg(v) OVER (PARTITION BY k ORDER BY v, f, b, g ROWS UNBOUNDED PRECEDING) AS ra, max(v) OVER (PARTITION BY k ORDER BY v, f, b, g ROWS UNBOUNDED PRECEDING) AS rx FROM t"),
    ("p_sliding", "SELECT k, g, v, f, b, sum(v) OVER (PARTITION BY g ORDER BY v, k, f, b ROWS BETWEEN 2 PRECEDING AND 1 FOLLOWING) AS s, min(f) OVER (PARTITION BY g ORDER BY v, k, f, b ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING) AS mf, count(*) OVER (PARTITION BY g ORDER BY v, k, f, b ROWS BETWEEN 3 PRECEDING AND 1 PRECEDING) AS c, max(k) OVER (PARTITION BY g ORDER BY v, k, f, b ROWS BETWEEN 1 FOLLOWING AND 2 FOLLOWING) AS mk FROM t"),
    ("p_value_fns", "SELECT k, g, v, f, b, first_value(v) OVER (PARTITION BY k ORDER BY v, g, f, b) AS fv, last_value(g) OVER (PARTITION BY k ORDER BY v, g, f, b) AS lv, nth_value(f, 2) OVER (PARTITION BY k ORDER BY v, g, f, b ROWS UNBOUNDED PRECEDING) AS n2, nth_value(v, 3) OVER (PARTITION BY k ORDER BY v, g, f, b) AS n3, ntile(3) OVER (PARTITION BY k ORDER BY v, g, f, b) AS t FROM t"),
    ("p_value_sliding", "SELECT k, g, v, f, b, first_value(g) OVER (PARTITION BY b ORDER BY v, k, g, f ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS fg, last_value(v) OVER (PARTITION BY b ORDER BY v, k, g, f ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS lv, nth_value(k, 2) OVER (PARTITION BY b ORDER BY v, k, g, f ROWS BETWEEN 1 PRECEDING AND 2 FOLLOWING) AS nk, last_value(f) OVER (PARTITION BY b ORDER BY v, k, g, f ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lf FROM t"),
    ("p_rank", "SELECT g, v, rank() OVER (PARTITION BY g ORDER BY v DESC) AS r, dense_rank() OVER (PARTITION BY g ORDER BY v DESC) AS dr FROM t"),
    ("p_rank_top", "SELECT * FROM (SELECT k, g, v, rank() OVER (PARTITION BY g ORDER BY v DESC) AS r FROM t) x WHERE r <= 2"),
    ("p_dense_top", "SELECT * FROM (SELECT k, g, v, dense_rank() OVER (PARTITION BY k ORDER BY v) AS r FROM t) x WHERE r <= 3"),
    ("p_whole", "SELECT g, v, sum(v) OVER (PARTITION BY g) AS total, max(v) OVER () AS top, count(*) OVER (PARTITION BY g ORDER BY v RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS n FROM t"),
    ("p_over_agg", "SELECT g, n, lag(n) OVER (ORDER BY g) AS pn, sum(n) OVER (ORDER BY g) AS cn FROM (SELECT g, count(*) AS n FROM t GROUP BY g) x"),
    // subqueries: joins by the correlated columns or by their domain
    ("p_scalar_eq", "SELECT k, g, (SELECT count(*) FROM u WHERE u.h = t.g) AS n, (SELECT max(w) FROM u WHERE u.h = t.g) AS mw FROM t"),
    ("p_scalar_theta", "SELECT w, h, (SELECT sum(v) FROM t WHERE t.k < u.w) AS s, (SELECT count(g) FROM t WHERE t.k <> u.w) AS n FROM u"),
    ("p_where_scalar", "SELECT k, g, v FROM t WHERE v > (SELECT avg(v) FROM t o WHERE o.g = t.g)"),
    ("p_exists_theta", "SELECT w, h FROM u WHERE EXISTS (SELECT 1 FROM t WHERE t.k > u.w AND t.b)"),
    ("p_not_in", "SELECT w FROM u WHERE w NOT IN (SELECT k FROM t)"),
    ("p_in_flag", "SELECT w, w IN (SELECT k FROM t WHERE v > 20) AS i, h = ANY (SELECT g FROM t) AS a FROM u"),
    ("p_first", "SELECT w, (SELECT v FROM t WHERE t.k = u.w ORDER BY v DESC LIMIT 1) AS top, (SELECT g FROM t WHERE t.k < u.w ORDER BY g LIMIT 1) AS g1 FROM u"),
    ("p_agg_subquery", "SELECT g, sum((SELECT count(*) FROM u WHERE u.h = t.g)) AS n, count(*) FILTER (WHERE k IN (SELECT w FROM u)) AS nk, max(v) FILTER (WHERE EXISTS (SELECT 1 FROM u WHERE u.w > t.k)) AS mv FROM t GROUP BY g"),
    ("p_uncorrelated", "SELECT w, (SELECT max(v) FROM t) AS mx FROM u"),
    ("p_tumble", "SELECT window_start, window_end, count(*) AS n, sum(x) AS s, max(x) AS m FROM TUMBLE(e, ts, INTERVAL '10 seconds') GROUP BY window_start, window_end"),
    ("p_hop", "SELECT id, window_start, count(*) AS n FROM HOP(e, ts, INTERVAL '5 seconds', INTERVAL '15 seconds') WHERE x > 3 GROUP BY id, window_start"),
    ("p_session", "SELECT id, window_start, window_end, count(*) AS n, sum(x) AS s FROM TABLE(SESSION(TABLE e PARTITION BY id, DESCRIPTOR(ts), INTERVAL '4' SECOND)) GROUP BY id, window_start, window_end"),
    ("p_session_all", "SELECT window_start, window_end, max(x) AS m FROM TABLE(SESSION(TABLE e, DESCRIPTOR(ts), INTERVAL '2' SECOND)) GROUP BY window_start, window_end"),
    ("p_tumble_flink", "SELECT window_start, min(x) AS lo FROM TABLE(TUMBLE(TABLE e, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '2' SECOND)) GROUP BY window_start"),
];

/// Views over views, created after the ones above.
const STACKED: &[(&str, &str)] = &[
    ("p_on_view", "SELECT g FROM p_count WHERE n >= 3"),
    (
        "p_on_view_agg",
        "SELECT count(*) AS groups, sum(n) AS rows FROM p_count",
    ),
];

pub(crate) async fn rows(s: &mut Session, sql: &str) -> Vec<String> {
    let out = s.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut result = Vec::new();
    for o in out {
        if let Output::Rows { mut stream, .. } = o {
            while let Some(b) = stream.next().await {
                let b: RecordBatch = b.unwrap_or_else(|e| panic!("{sql}: {e}"));
                for i in 0..b.num_rows() {
                    let cells: Vec<String> = b
                        .columns()
                        .iter()
                        .map(|c| {
                            let v = array_value_to_string(c, i).unwrap_or_default();
                            // floats summed in a different order differ in the last bits
                            match v.parse::<f64>() {
                                Ok(f) if v.contains('.') || v.contains('e') => format!("{:.6}", f),
                                _ => v,
                            }
                        })
                        .collect();
                    result.push(cells.join("|"));
                }
            }
        }
    }
    result.sort();
    result
}

pub(crate) async fn exec(s: &mut Session, sql: &str) {
    s.run(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn value(rng: &mut StdRng) -> String {
    let k = if rng.random_bool(0.1) {
        "NULL".to_string()
    } else {
        rng.random_range(0..5).to_string()
    };
    let g = if rng.random_bool(0.1) {
        "NULL".to_string()
    } else {
        format!("'{}'", ["a", "b", "c", "d"][rng.random_range(0..4)])
    };
    let v = if rng.random_bool(0.1) {
        "NULL".to_string()
    } else {
        rng.random_range(0..50).to_string()
    };
    let f = if rng.random_bool(0.1) {
        "NULL".to_string()
    } else {
        format!("{}.5", rng.random_range(0..10))
    };
    let b = ["true", "false", "NULL"][rng.random_range(0..3)];
    format!("({k}, {g}, {v}, {f}, {b})")
}

/// A row of `e`: event times spread over a minute, some NULL, some on a
/// window edge.
fn event(rng: &mut StdRng) -> String {
    let ts = match rng.random_range(0..10) {
        0 => "NULL".to_string(),
        1 => format!("'2026-01-01 00:00:{:02}'", rng.random_range(0..6) * 10),
        _ => format!(
            "'2026-01-01 00:00:{:02}.{:03}'",
            rng.random_range(0..60),
            rng.random_range(0..1000)
        ),
    };
    format!(
        "({}, {ts}, {})",
        rng.random_range(0..4),
        rng.random_range(0..10)
    )
}

async fn random_statement(s: &mut Session, rng: &mut StdRng) {
    let sql = match rng.random_range(0..13) {
        10 => {
            let n = rng.random_range(1..5);
            let vals: Vec<String> = (0..n).map(|_| event(rng)).collect();
            format!("INSERT INTO e VALUES {}", vals.join(", "))
        }
        11 => format!(
            "UPDATE e SET ts = ts + INTERVAL '3 seconds' WHERE id = {}",
            rng.random_range(0..4)
        ),
        12 => format!("DELETE FROM e WHERE x = {}", rng.random_range(0..10)),
        0..=4 => {
            // inserts, often repeating a row
            let n = rng.random_range(1..6);
            let mut vals: Vec<String> = (0..n).map(|_| value(rng)).collect();
            if rng.random_bool(0.3) {
                let dup = vals[0].clone();
                vals.push(dup);
            }
            format!("INSERT INTO t VALUES {}", vals.join(", "))
        }
        5 => format!(
            "INSERT INTO u VALUES ({}, '{}')",
            rng.random_range(0..5),
            ["a", "b", "e"][rng.random_range(0..3)]
        ),
        6 => format!("DELETE FROM t WHERE k = {}", rng.random_range(0..5)),
        7 => format!(
            "DELETE FROM t WHERE v < {} AND g = 'a'",
            rng.random_range(0..50)
        ),
        8 => format!(
            "UPDATE t SET v = v + 7, b = NOT b WHERE g = '{}'",
            ["a", "b", "c", "d"][rng.random_range(0..4)]
        ),
        _ => format!("DELETE FROM u WHERE w = {}", rng.random_range(0..5)),
    };
    exec(s, &sql).await;
}

async fn check_all(s: &mut Session, step: &str) {
    eprintln!("checking after {step}");
    for (name, query) in VIEWS.iter().chain(STACKED) {
        let got = rows(s, &format!("SELECT * FROM {name}")).await;
        let want = rows(s, query).await;
        assert_eq!(got, want, "view {name} differs from its query after {step}");
    }
}

pub(crate) async fn open(dir: &std::path::Path) -> (Arc<Engine>, Session) {
    let engine = Engine::open(EngineConfig::new(dir)).expect("open engine");
    engine.recover_views().await.expect("recover views");
    let s = Session::standalone(engine.clone()).expect("session");
    (engine, s)
}

/// Shuts the engine down cleanly (views checkpoint) and opens it again on
/// the same directory.
pub(crate) async fn restart(
    engine: Arc<Engine>,
    s: Session,
    dir: &std::path::Path,
) -> (Arc<Engine>, Session) {
    engine.shutdown().await;
    drop(s);
    drop(engine);
    open(dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_equal_batch_recomputation_after_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE TABLE t (k INT, g TEXT, v BIGINT, f DOUBLE PRECISION, b BOOLEAN)",
    )
    .await;
    exec(&mut s, "CREATE TABLE u (w INT, h TEXT)").await;
    exec(&mut s, "CREATE TABLE e (id INT, ts TIMESTAMP, x BIGINT)").await;
    let mut rng = StdRng::seed_from_u64(0x0F2E_54E7);
    // some history before the views exist: they must backfill it
    for _ in 0..15 {
        random_statement(&mut s, &mut rng).await;
    }
    for (name, query) in VIEWS.iter().chain(STACKED) {
        exec(
            &mut s,
            &format!("CREATE MATERIALIZED VIEW {name} AS {query}"),
        )
        .await;
    }
    check_all(&mut s, "backfill").await;
    for i in 0..120 {
        random_statement(&mut s, &mut rng).await;
        check_all(&mut s, &format!("step {i}")).await;
    }
    // Restart: views come back from the checkpoint (taken at shutdown) ...
    let (engine, mut s) = restart(engine, s, dir.path()).await;
    check_all(&mut s, "restart").await;
    for i in 0..40 {
        random_statement(&mut s, &mut rng).await;
        check_all(&mut s, &format!("step {i} after restart")).await;
    }
    // ... and without a shutdown checkpoint the log tail is replayed.
    drop(s);
    drop(engine);
    let (_engine, mut s) = open(dir.path()).await;
    check_all(&mut s, "second restart").await;
}
