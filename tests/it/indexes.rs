//! Indexes never change an answer: the same random writes go to a table
//! with indexes and to one without, and after every step random lookups
//! (equality, IN, ranges, BETWEEN, over integers, text and NULLs, with
//! constants of other types) answer the same on both, through the wire,
//! in and out of transaction blocks. Reading the index is checked too
//! (EXPLAIN names it), so the comparison is not between two scans.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{row_texts, sorted_rows, TestServer};

const COLUMNS: &str = "id INT PRIMARY KEY, a INT, s TEXT, n BIGINT";

fn value_a(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => "NULL".into(),
        _ => rng.random_range(-3..12).to_string(),
    }
}

fn value_s(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => "NULL".into(),
        1 => "''".into(),
        _ => format!("'k{}'", rng.random_range(0..6)),
    }
}

/// A constant for column `a` as a user might write it: an integer, a
/// decimal (exact or not), a string, one out of `int`'s range.
fn constant_a(rng: &mut StdRng) -> String {
    let v = rng.random_range(-3..12);
    match rng.random_range(0..8) {
        0 => format!("{v}.0"),
        1 => format!("{v}.5"),
        2 => format!("'{v}'"),
        3 => "3000000000".into(),
        4 => format!("{v}::bigint"),
        _ => v.to_string(),
    }
}

/// A random condition that an index might answer.
fn condition(rng: &mut StdRng) -> String {
    let cmp = ["=", "<", "<=", ">", ">="][rng.random_range(0..5)];
    match rng.random_range(0..11) {
        0 => format!("a {cmp} {}", constant_a(rng)),
        1 => format!("{} {cmp} a", constant_a(rng)),
        2 => format!(
            "a IN ({}, {}, {})",
            constant_a(rng),
            constant_a(rng),
            if rng.random_bool(0.3) {
                "NULL".to_string()
            } else {
                constant_a(rng)
            }
        ),
        3 => {
            let lo = rng.random_range(-3..12);
            format!("a BETWEEN {lo} AND {}", lo + rng.random_range(-1..5))
        }
        4 => format!("s {cmp} {}", value_s(rng)),
        5 => format!("s = {} AND a {cmp} {}", value_s(rng), constant_a(rng)),
        6 => format!(
            "s IN ({}, {}) AND a = {}",
            value_s(rng),
            value_s(rng),
            constant_a(rng)
        ),
        7 => format!("id {cmp} {}", rng.random_range(0..60)),
        8 => format!(
            "id > {} AND id < {} AND a = {}",
            rng.random_range(0..30),
            rng.random_range(20..60),
            constant_a(rng)
        ),
        9 => format!("a = {} AND a = {}", constant_a(rng), constant_a(rng)),
        _ => format!("a > {} AND a <= {}", constant_a(rng), constant_a(rng)),
    }
}

/// One random write, as SQL over table `{t}`.
fn write(rng: &mut StdRng, next_id: &mut i32) -> String {
    match rng.random_range(0..5) {
        0 | 1 => {
            let rows: Vec<String> = (0..rng.random_range(1..6))
                .map(|_| {
                    *next_id += 1;
                    format!(
                        "({}, {}, {}, {})",
                        *next_id,
                        value_a(rng),
                        value_s(rng),
                        rng.random_range(0..1000)
                    )
                })
                .collect();
            format!("INSERT INTO {{t}} VALUES {}", rows.join(", "))
        }
        2 => format!(
            "UPDATE {{t}} SET a = {}, s = {} WHERE {}",
            value_a(rng),
            value_s(rng),
            condition(rng)
        ),
        3 => format!("UPDATE {{t}} SET a = a + 1 WHERE {}", condition(rng)),
        _ => format!("DELETE FROM {{t}} WHERE {}", condition(rng)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_lookups_answer_as_scans() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(&format!(
        "CREATE TABLE ti ({COLUMNS}); CREATE TABLE tn ({COLUMNS}); \
         CREATE INDEX ti_a ON ti (a); CREATE INDEX ti_s_a ON ti (s, a);"
    ))
    .await
    .unwrap();
    let mut rng = StdRng::seed_from_u64(0x1de5);
    let mut next_id = 0;
    let mut used = 0;
    for step in 0..120 {
        let block = rng.random_bool(0.2);
        let sql = write(&mut rng, &mut next_id);
        let rollback = block && rng.random_bool(0.5);
        for t in ["ti", "tn"] {
            let stmt = sql.replace("{t}", t);
            let wrapped = if block {
                format!(
                    "BEGIN; {stmt}; {}",
                    if rollback { "ROLLBACK" } else { "COMMIT" }
                )
            } else {
                stmt.clone()
            };
            c.batch_execute(&wrapped)
                .await
                .unwrap_or_else(|e| panic!("step {step}: {wrapped}: {e}"));
        }
        for _ in 0..4 {
            let cond = condition(&mut rng);
            let q = |t: &str| format!("SELECT id, a, s, n FROM {t} WHERE {cond}");
            let with = sorted_rows(&c, &q("ti")).await;
            let without = sorted_rows(&c, &q("tn")).await;
            assert_eq!(with, without, "step {step}: WHERE {cond}");
            let plan = row_texts(
                c.simple_query(&format!("EXPLAIN {}", q("ti")))
                    .await
                    .unwrap(),
            );
            if plan.iter().any(|l| l.contains("IndexScan")) {
                used += 1;
            }
        }
        // inside a block, over the block's own writes
        if step % 10 == 0 {
            let cond = condition(&mut rng);
            let extra = write(&mut rng, &mut next_id);
            let mut answers = Vec::new();
            for t in ["ti", "tn"] {
                c.batch_execute(&format!("BEGIN; {}", extra.replace("{t}", t)))
                    .await
                    .unwrap();
                answers
                    .push(sorted_rows(&c, &format!("SELECT id, a, s FROM {t} WHERE {cond}")).await);
                c.batch_execute("ROLLBACK").await.unwrap();
            }
            assert_eq!(
                answers[0], answers[1],
                "step {step}: in a block: {extra}; WHERE {cond}"
            );
        }
    }
    assert!(used > 200, "the index answered only {used} of 480 lookups");
}
