//! Property tests of the join operator against batch recomputation: random
//! inserts, deletes and updates on both sides (duplicate keys, NULL keys,
//! rows moving between keys); after every statement each join view equals
//! its query run by DataFusion in batch. The views also survive restarts.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::props::{exec, open, restart, rows};

/// (view, query): one join form each.
const VIEWS: &[(&str, &str)] = &[
    ("j_inner", "SELECT l.id AS lid, r.id AS rid, l.k, l.v, r.w FROM l JOIN r ON l.k = r.k"),
    ("j_left", "SELECT l.id AS lid, r.id AS rid, l.k, r.w FROM l LEFT JOIN r ON l.k = r.k"),
    ("j_right", "SELECT l.id AS lid, r.id AS rid, r.k, l.v FROM l RIGHT JOIN r ON l.k = r.k"),
    ("j_full", "SELECT l.id AS lid, r.id AS rid, l.k AS lk, r.k AS rk FROM l FULL OUTER JOIN r ON l.k = r.k"),
    ("j_left_residual", "SELECT l.id AS lid, r.id AS rid FROM l LEFT JOIN r ON l.k = r.k AND l.v < r.w"),
    ("j_full_residual", "SELECT l.id AS lid, r.id AS rid FROM l FULL JOIN r ON l.k = r.k AND l.v < r.w"),
    ("j_not_distinct", "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON l.k IS NOT DISTINCT FROM r.k"),
    ("j_expr", "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON l.k + 1 = r.k"),
    ("j_where", "SELECT l.id AS lid, r.id AS rid, l.v - r.w AS d FROM l, r WHERE l.k = r.k AND l.v > r.w"),
    ("j_semi", "SELECT id, k FROM l WHERE k IN (SELECT k FROM r WHERE w > 10)"),
    ("j_anti", "SELECT id, k FROM l WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.k = l.k)"),
    ("j_three", "SELECT l.id AS lid, r.id AS rid, m.id AS mid FROM l JOIN r ON l.k = r.k JOIN m ON r.k = m.k AND m.x <> l.v"),
    ("j_three_left", "SELECT l.id AS lid, r.id AS rid, m.id AS mid FROM l LEFT JOIN r ON l.k = r.k LEFT JOIN m ON l.k = m.k"),
    ("j_agg", "SELECT l.k, count(*) AS n, sum(r.w) AS s, max(l.v) AS mv FROM l JOIN r ON l.k = r.k GROUP BY l.k"),
    ("j_left_agg", "SELECT l.id, count(r.id) AS n FROM l LEFT JOIN r ON l.k = r.k GROUP BY l.id"),
    ("j_self", "SELECT a.id AS a, b.id AS b FROM l a JOIN l b ON a.k = b.k AND a.id < b.id"),
    ("j_text", "SELECT l.id AS lid, r.id AS rid FROM l JOIN r ON l.g = r.h"),
];

fn maybe_null(rng: &mut StdRng, v: String) -> String {
    if rng.random_bool(0.1) {
        "NULL".into()
    } else {
        v
    }
}

async fn random_statement(
    s: &mut freshet::engine::session::Session,
    rng: &mut StdRng,
    next: &mut i64,
) {
    let table = ["l", "r", "m"][rng.random_range(0..3)];
    let sql = match rng.random_range(0..10) {
        0..=4 => {
            let n = rng.random_range(1..4);
            let vals: Vec<String> = (0..n)
                .map(|_| {
                    *next += 1;
                    let k = rng.random_range(0..4).to_string();
                    let k = maybe_null(rng, k);
                    let v = rng.random_range(0..30).to_string();
                    let v = maybe_null(rng, v);
                    let g = format!("'{}'", ["a", "b", "c"][rng.random_range(0..3)]);
                    let g = maybe_null(rng, g);
                    format!("({next}, {k}, {v}, {g})")
                })
                .collect();
            format!("INSERT INTO {table} VALUES {}", vals.join(", "))
        }
        5 | 6 => format!(
            "DELETE FROM {table} WHERE id % 7 = {}",
            rng.random_range(0..7)
        ),
        7 => format!(
            "UPDATE {table} SET k = {} WHERE id % 5 = {}",
            rng.random_range(0..4),
            rng.random_range(0..5)
        ),
        8 => format!(
            "UPDATE {table} SET k = NULL WHERE id % 9 = {}",
            rng.random_range(0..9)
        ),
        _ => format!(
            "UPDATE {table} SET {} = {} WHERE id % 4 = {}",
            if table == "l" {
                "v"
            } else if table == "r" {
                "w"
            } else {
                "x"
            },
            rng.random_range(0..30),
            rng.random_range(0..4)
        ),
    };
    exec(s, &sql).await;
}

async fn check_all(s: &mut freshet::engine::session::Session, step: &str) {
    for (name, query) in VIEWS {
        let got = rows(s, &format!("SELECT * FROM {name}")).await;
        let want = rows(s, query).await;
        assert_eq!(got, want, "view {name} differs from its query after {step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_equal_batch_recomputation_after_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE TABLE l (id BIGINT PRIMARY KEY, k INT, v BIGINT, g TEXT)",
    )
    .await;
    exec(
        &mut s,
        "CREATE TABLE r (id BIGINT PRIMARY KEY, k INT, w BIGINT, h TEXT)",
    )
    .await;
    exec(
        &mut s,
        "CREATE TABLE m (id BIGINT PRIMARY KEY, k INT, x BIGINT, t TEXT)",
    )
    .await;
    let mut rng = StdRng::seed_from_u64(0x3014);
    let mut next = 0i64;
    for _ in 0..10 {
        random_statement(&mut s, &mut rng, &mut next).await;
    }
    for (name, query) in VIEWS {
        exec(
            &mut s,
            &format!("CREATE MATERIALIZED VIEW {name} AS {query}"),
        )
        .await;
    }
    check_all(&mut s, "backfill").await;
    for i in 0..150 {
        random_statement(&mut s, &mut rng, &mut next).await;
        check_all(&mut s, &format!("step {i}")).await;
    }
    let (engine, mut s) = restart(engine, s, dir.path()).await;
    check_all(&mut s, "restart").await;
    for i in 0..30 {
        random_statement(&mut s, &mut rng, &mut next).await;
        check_all(&mut s, &format!("step {i} after restart")).await;
    }
    drop(s);
    drop(engine);
    let (_engine, mut s) = open(dir.path()).await;
    check_all(&mut s, "second restart").await;
}

/// An interval join over two endless streams with watermarks: rows that no
/// future row of the other side can match leave the arrangements, so the
/// reported state stays flat while the view stays equal to its query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_join_state_stays_bounded() {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
    use freshet::dataflow::Delta;

    let dir = tempfile::tempdir().unwrap();
    let (_engine, mut s) = open(dir.path()).await;
    exec(
        &mut s,
        "CREATE SOURCE orders (id BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 minute')",
    )
    .await;
    exec(
        &mut s,
        "CREATE SOURCE ships (order_id BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1 minute')",
    )
    .await;
    let q = freshet::sql::parser::parse_query(
        "SELECT o.id, s.ts FROM orders o JOIN ships s \
         ON o.id = s.order_id AND s.ts BETWEEN o.ts AND o.ts + INTERVAL '4 hours'",
    )
    .unwrap();
    let (mut circuit, _) = s.plan_view(&q).await.unwrap();
    assert!(
        circuit.explain().contains("retired below the watermark"),
        "{}",
        circuit.explain()
    );
    let base = 1_767_225_600_000_000i64;
    let step_us = 600_000_000i64; // 10 minutes
    let per_step = 100i64;
    let mut sizes = Vec::new();
    let mut matched = 0i64;
    for step in 0..300i64 {
        let t = base + step * step_us;
        let ids: Vec<i64> = (0..per_step).map(|i| step * per_step + i).collect();
        let orders = RecordBatch::try_new(
            circuit
                .sources
                .iter()
                .find(|x| x.name == "orders")
                .unwrap()
                .schema
                .clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())) as ArrayRef,
                Arc::new(TimestampMicrosecondArray::from(vec![t; per_step as usize])),
            ],
        )
        .unwrap();
        // ships for the orders of 2 hours ago (within the 4 hours) and of
        // 5 hours ago (too late to match)
        let shipped: Vec<i64> = ids
            .iter()
            .map(|i| i - 12 * per_step)
            .chain(ids.iter().map(|i| i - 30 * per_step))
            .collect();
        let ships = RecordBatch::try_new(
            circuit
                .sources
                .iter()
                .find(|x| x.name == "ships")
                .unwrap()
                .schema
                .clone(),
            vec![
                Arc::new(Int64Array::from(shipped)) as ArrayRef,
                Arc::new(TimestampMicrosecondArray::from(vec![
                    t;
                    2 * per_step as usize
                ])),
            ],
        )
        .unwrap();
        let inputs: Vec<Option<Delta>> = circuit
            .sources
            .iter()
            .map(|src| match src.name.as_str() {
                "orders" => Some(Delta::insert(orders.clone())),
                _ => Some(Delta::insert(ships.clone())),
            })
            .collect();
        if let Some(out) = circuit.step(&inputs).unwrap() {
            matched += out.weights.values().iter().sum::<i64>();
        }
        sizes.push(
            circuit
                .state_sizes()
                .iter()
                .map(|(_, s)| s.rows)
                .sum::<u64>(),
        );
    }
    // every order from step 12 on matched exactly one ship
    assert_eq!(matched, (300 - 12) * per_step);
    let early = *sizes[40..60].iter().max().unwrap();
    let late = *sizes[280..].iter().max().unwrap();
    assert!(
        late <= early + early / 4,
        "join state grew from {early} to {late} rows"
    );
    // 300 steps of 300 rows went in; what is held is about 4 hours' worth
    assert!(late < 30 * 3 * per_step as u64, "{late} rows of state");
}

/// ASOF joins against an independent model: after every random insert,
/// delete and update of trades and quotes, the views equal both their query
/// run in batch and the latest-quote-at-or-before rule computed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asof_joins_follow_every_quote() {
    use std::collections::BTreeMap;

    let dir = tempfile::tempdir().unwrap();
    let (mut engine, mut s) = open(dir.path()).await;
    exec(&mut s, "CREATE TABLE trades (id INT, sym TEXT, ts INT)").await;
    exec(&mut s, "CREATE TABLE quotes (sym TEXT, ts INT, price INT)").await;
    const ASOF: &[(&str, &str)] = &[
        ("a_left", "SELECT t.id, t.sym, t.ts, q.ts AS qts, q.price FROM trades t ASOF LEFT JOIN quotes q ON t.sym = q.sym AND t.ts >= q.ts"),
        ("a_strict", "SELECT t.id, q.ts AS qts, q.price FROM trades t ASOF JOIN quotes q ON q.sym = t.sym AND q.ts < t.ts"),
        ("a_star", "SELECT * FROM trades t ASOF LEFT JOIN (SELECT sym AS qsym, ts AS qts, price FROM quotes) q ON t.sym = q.qsym AND t.ts >= q.qts"),
    ];
    for (name, q) in ASOF {
        exec(&mut s, &format!("CREATE MATERIALIZED VIEW {name} AS {q}")).await;
    }
    let mut rng = StdRng::seed_from_u64(0xA50F);
    // model: trades (id → (sym, ts)) and quotes ((sym, ts) → price)
    let mut trades: Vec<(i64, Option<&str>, Option<i64>)> = Vec::new();
    let mut quotes: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    let syms = ["a", "b", "c"];
    let lit = |v: Option<String>| v.unwrap_or_else(|| "NULL".into());
    for step in 0..150 {
        let sql = match rng.random_range(0..10) {
            0..=3 => {
                let id = step;
                let sym = (!rng.random_bool(0.1)).then(|| syms[rng.random_range(0..3)]);
                let ts = (!rng.random_bool(0.1)).then(|| rng.random_range(0..100));
                trades.push((id, sym, ts));
                format!(
                    "INSERT INTO trades VALUES ({id}, {}, {})",
                    lit(sym.map(|s| format!("'{s}'"))),
                    lit(ts.map(|t| t.to_string()))
                )
            }
            4..=6 => {
                let sym = syms[rng.random_range(0..3)];
                let ts = rng.random_range(0..100);
                if quotes.contains_key(&(sym, ts)) {
                    continue;
                }
                let price = rng.random_range(1..1000);
                quotes.insert((sym, ts), price);
                format!("INSERT INTO quotes VALUES ('{sym}', {ts}, {price})")
            }
            7 => {
                let Some((&(sym, ts), _)) =
                    quotes.iter().nth(rng.random_range(0..quotes.len().max(1)))
                else {
                    continue;
                };
                quotes.remove(&(sym, ts));
                format!("DELETE FROM quotes WHERE sym = '{sym}' AND ts = {ts}")
            }
            8 => {
                let sym = syms[rng.random_range(0..3)];
                for ((s2, _), p) in quotes.iter_mut() {
                    if *s2 == sym {
                        *p += 1;
                    }
                }
                format!("UPDATE quotes SET price = price + 1 WHERE sym = '{sym}'")
            }
            _ => {
                let Some(&(id, _, _)) = trades.get(rng.random_range(0..trades.len().max(1))) else {
                    continue;
                };
                trades.retain(|t| t.0 != id);
                format!("DELETE FROM trades WHERE id = {id}")
            }
        };
        exec(&mut s, &sql).await;
        let matched = |sym: Option<&str>, ts: Option<i64>, strict: bool| {
            let (sym, ts) = (sym?, ts?);
            quotes
                .range((sym, i64::MIN)..=(sym, if strict { ts - 1 } else { ts }))
                .next_back()
                .map(|(&(_, qts), &p)| (qts, p))
        };
        let cell = |v: Option<String>| v.unwrap_or_default();
        let mut left: Vec<String> = Vec::new();
        let mut star: Vec<String> = Vec::new();
        let mut strict: Vec<String> = Vec::new();
        for &(id, sym, ts) in &trades {
            let m = matched(sym, ts, false);
            let base = format!(
                "{id}|{}|{}",
                cell(sym.map(String::from)),
                cell(ts.map(|t| t.to_string()))
            );
            left.push(format!(
                "{base}|{}|{}",
                cell(m.map(|m| m.0.to_string())),
                cell(m.map(|m| m.1.to_string()))
            ));
            star.push(format!(
                "{base}|{}|{}|{}",
                cell(m.map(|_| sym.unwrap_or_default().to_string())),
                cell(m.map(|m| m.0.to_string())),
                cell(m.map(|m| m.1.to_string()))
            ));
            if let Some((qts, p)) = matched(sym, ts, true) {
                strict.push(format!("{id}|{qts}|{p}"));
            }
        }
        for v in [&mut left, &mut star, &mut strict] {
            v.sort();
        }
        let want = [("a_left", left), ("a_strict", strict), ("a_star", star)];
        for (name, expected) in want {
            let got = rows(&mut s, &format!("SELECT * FROM {name}")).await;
            assert_eq!(got, expected, "view {name} after step {step}: {sql}");
            let query = ASOF.iter().find(|(n, _)| *n == name).unwrap().1;
            assert_eq!(
                rows(&mut s, query).await,
                expected,
                "batch {name} after step {step}"
            );
        }
        if step == 100 {
            // a restart restores the views from their checkpoint
            (engine, s) = restart(engine, s, dir.path()).await;
        }
    }
}
