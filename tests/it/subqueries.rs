//! Subqueries in expressions (scalar, EXISTS, IN, NOT IN, ANY/ALL), in the
//! select list and in WHERE, correlated by `=`, `<` and `<>`, ad hoc and
//! inside materialized views that must follow later writes to both sides:
//! every answer compared with the local PostgreSQL.

use crate::harness::TestServer;
use crate::oracle::{compare, Case};

const SETUP: &[&str] = &[
    "CREATE TABLE t1 (a INT, b INT)",
    "CREATE TABLE t2 (x INT, y INT)",
    "INSERT INTO t1 VALUES (1, 0), (2, 2), (3, 5), (4, NULL), (5, 2)",
    "INSERT INTO t2 VALUES (14, 0), (3, 2), (4, 2), (NULL, 5)",
];

const QUERIES: &[&str] = &[
    // the select list, by each correlation and aggregate
    "SELECT a, b, (SELECT max(x) FROM t2 WHERE t2.y = t1.b) AS m FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y = t1.b) AS n FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(x) FROM t2 WHERE t2.y = t1.b) AS n FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b) AS n FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(x) FROM t2 WHERE t2.y <> t1.b) AS n FROM t1 ORDER BY a",
    "SELECT a, (SELECT sum(x) FROM t2 WHERE t2.y = t1.b) AS s FROM t1 ORDER BY a",
    "SELECT a, (SELECT sum(x) FROM t2 WHERE t2.y < t1.b) AS s FROM t1 ORDER BY a",
    "SELECT a, (SELECT min(x) FROM t2 WHERE t2.y <> t1.b) AS lo FROM t1 ORDER BY a",
    "SELECT a, (SELECT max(x) FROM t2 WHERE t2.y < t1.b) AS hi FROM t1 ORDER BY a",
    "SELECT a, (SELECT avg(x) FROM t2 WHERE t2.x > t1.a) AS mean FROM t1 ORDER BY a",
    // unnamed: the column is named after the subquery's column
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y = t1.b) FROM t1 ORDER BY a",
    // several correlations, two subqueries, expressions around them
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y = t1.b AND t2.x > t1.a) AS c, (SELECT sum(x) FROM t2 WHERE t2.y <> t1.b) AS s FROM t1 ORDER BY a",
    "SELECT a, coalesce((SELECT sum(x) FROM t2 WHERE t2.y < t1.b), 0) + a AS z FROM t1 ORDER BY a",
    "SELECT a, (SELECT max(x) + t1.a FROM t2 WHERE t2.y < t1.b) AS z FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y = t1.b) * 10 + (SELECT count(*) FROM t2 WHERE t2.y < t1.b) AS z FROM t1 ORDER BY a",
    "SELECT a, (SELECT count(*) FROM t1 x WHERE x.b < t1.b) AS below FROM t1 ORDER BY a",
    // not aggregated: one row or none is fine, more is 21000
    "SELECT a, (SELECT x FROM t2 WHERE t2.y = t1.b AND t2.x > 10) AS big FROM t1 ORDER BY a",
    "SELECT a, (SELECT x FROM t2 WHERE t2.y = t1.b) AS x FROM t1 ORDER BY a",
    "SELECT a, (SELECT x FROM t2 WHERE t2.y = t1.b) AS x FROM t1 WHERE b <> 2 ORDER BY a",
    "SELECT a, (SELECT x FROM t2) FROM t1 ORDER BY a",
    "SELECT a, (SELECT max(x) FROM t2) AS top, (SELECT x FROM t2 WHERE x > 10) AS big FROM t1 ORDER BY a",
    // the first row by an order
    "SELECT a, (SELECT x FROM t2 WHERE t2.y = t1.b ORDER BY x DESC LIMIT 1) AS v FROM t1 ORDER BY a",
    "SELECT a, (SELECT x + 1 FROM t2 WHERE t2.y < t1.b ORDER BY y DESC, x LIMIT 1) AS v FROM t1 ORDER BY a",
    "SELECT a, (SELECT x FROM t2 WHERE t2.y <= t1.b ORDER BY x NULLS FIRST LIMIT 1 OFFSET 1) AS v FROM t1 ORDER BY a",
    "SELECT a FROM t1 WHERE a < (SELECT x FROM t2 WHERE t2.y = t1.b ORDER BY x LIMIT 1) ORDER BY a",
    // WHERE
    "SELECT a FROM t1 WHERE b < (SELECT max(y) FROM t2 WHERE t2.x <> t1.a) ORDER BY a",
    "SELECT a FROM t1 WHERE (SELECT count(*) FROM t2 WHERE t2.y = t1.b) = 0 ORDER BY a",
    "SELECT a FROM t1 WHERE (SELECT count(*) FROM t2 WHERE t2.y < t1.b) >= 2 ORDER BY a",
    "SELECT a FROM t1 WHERE a > (SELECT min(x) FROM t2 WHERE t2.y = t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE a < (SELECT sum(x) FROM t2 WHERE t2.y <> t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE b = (SELECT max(y) FROM t2) ORDER BY a",
    // EXISTS, IN, NOT IN, ANY, ALL, with NULLs on both sides
    "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.y = t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.y = t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.y < t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.x <> t1.a) ORDER BY a",
    "SELECT a FROM t1 WHERE b IN (SELECT y FROM t2) ORDER BY a",
    "SELECT a FROM t1 WHERE b NOT IN (SELECT y FROM t2) ORDER BY a",
    "SELECT a FROM t1 WHERE b NOT IN (SELECT x FROM t2) ORDER BY a",
    "SELECT a FROM t1 WHERE b NOT IN (SELECT x FROM t2 WHERE x IS NOT NULL) ORDER BY a",
    "SELECT a FROM t1 WHERE a IN (SELECT x FROM t2 WHERE t2.y < t1.b) ORDER BY a",
    "SELECT a FROM t1 WHERE a = 1 OR b IN (SELECT y FROM t2) ORDER BY a",
    "SELECT a FROM t1 WHERE a = 1 OR EXISTS (SELECT 1 FROM t2 WHERE t2.x < t1.a) ORDER BY a",
    "SELECT a FROM t1 WHERE b > ALL (SELECT y FROM t2 WHERE y IS NOT NULL) ORDER BY a",
    "SELECT a FROM t1 WHERE b < ANY (SELECT y FROM t2) ORDER BY a",
    "SELECT a, b IN (SELECT y FROM t2) AS i, b NOT IN (SELECT x FROM t2) AS ni, EXISTS (SELECT 1 FROM t2 WHERE y < b) AS e FROM t1 ORDER BY a",
    "SELECT a, b = ANY (SELECT y FROM t2) AS eq_any, b > ALL (SELECT y FROM t2) AS gt_all, b <= ANY (SELECT x FROM t2) AS le_any FROM t1 ORDER BY a",
    "SELECT a, NULL::int IN (SELECT y FROM t2) AS n1, NULL::int IN (SELECT y FROM t2 WHERE false) AS n2 FROM t1 ORDER BY a",
    // nested: the inner subquery correlated to the middle one
    "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b AND x >= (SELECT min(x) FROM t2 z WHERE z.y = t2.y)) FROM t1 ORDER BY a",
    "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.y = t1.b AND t2.x = (SELECT max(x) FROM t2 z WHERE z.y = t2.y)) ORDER BY a",
];

const VIEWS: &[(&str, &str)] = &[
    ("sq_eq_max", "SELECT a, b, (SELECT max(x) FROM t2 WHERE t2.y = t1.b) AS m FROM t1"),
    ("sq_eq_count", "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y = t1.b) AS n, (SELECT count(x) FROM t2 WHERE t2.y = t1.b) AS nx FROM t1"),
    ("sq_lt_count", "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b) AS n FROM t1"),
    ("sq_ne_sum_min", "SELECT a, (SELECT sum(x) FROM t2 WHERE t2.y <> t1.b) AS s, (SELECT min(x) FROM t2 WHERE t2.y <> t1.b) AS lo FROM t1"),
    ("sq_uncorrelated", "SELECT a, (SELECT max(x) FROM t2) AS top, (SELECT count(*) FROM t2) AS n FROM t1"),
    ("sq_first", "SELECT a, (SELECT x FROM t2 WHERE t2.y = t1.b ORDER BY x DESC NULLS LAST LIMIT 1) AS v, (SELECT x FROM t2 WHERE t2.y < t1.b ORDER BY y DESC, x LIMIT 1) AS w FROM t1"),
    ("sq_where_lt", "SELECT a FROM t1 WHERE b < (SELECT max(y) FROM t2 WHERE t2.x <> t1.a)"),
    ("sq_where_none", "SELECT a FROM t1 WHERE (SELECT count(*) FROM t2 WHERE t2.y = t1.b) = 0"),
    ("sq_exists", "SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE t2.y = t1.b)"),
    ("sq_not_exists_lt", "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE t2.y < t1.b)"),
    ("sq_in", "SELECT a FROM t1 WHERE b IN (SELECT y FROM t2)"),
    ("sq_not_in", "SELECT a FROM t1 WHERE b NOT IN (SELECT x FROM t2)"),
    ("sq_in_select", "SELECT a, b IN (SELECT y FROM t2) AS i, b NOT IN (SELECT x FROM t2) AS ni, EXISTS (SELECT 1 FROM t2 WHERE y < b) AS e FROM t1"),
    ("sq_any_all", "SELECT a, b = ANY (SELECT y FROM t2) AS eq_any, b > ALL (SELECT y FROM t2) AS gt_all FROM t1"),
];

/// Writes after the views exist, to both sides of every subquery.
const MORE: &[&str] = &[
    "INSERT INTO t2 VALUES (1, 5), (20, 0)",
    "INSERT INTO t2 VALUES (NULL, NULL)",
    "DELETE FROM t2 WHERE x = 3",
    "INSERT INTO t1 VALUES (6, 2), (7, NULL), (8, 9)",
    "UPDATE t2 SET x = 7 WHERE x IS NULL AND y = 5",
    "DELETE FROM t2 WHERE x IS NULL",
    "UPDATE t1 SET b = 0 WHERE a = 3",
    "DELETE FROM t2 WHERE y = 2",
    "DELETE FROM t1 WHERE a = 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subqueries_match_postgres() {
    compare(
        "subqueries",
        &Case {
            setup: SETUP,
            queries: QUERIES,
            views: VIEWS,
            more: MORE,
        },
    )
    .await;
}

/// The plan of a correlated scalar subquery is a join, never a constant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_subquery_as_a_join() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute(SETUP[0]).await.unwrap();
    c.batch_execute(SETUP[1]).await.unwrap();
    for (q, join) in [
        (
            "SELECT a, b, (SELECT max(x) FROM t2 WHERE t2.y = t1.b) AS m FROM t1 ORDER BY a",
            "Left Join: t1.b = ",
        ),
        (
            "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b) FROM t1",
            "Left Join: t1.b IS NULL = ",
        ),
    ] {
        // (VERBOSE: DataFusion's plans by type; the optimized logical one)
        let rows = c
            .simple_query(&format!("EXPLAIN VERBOSE {q}"))
            .await
            .unwrap();
        let plan: String = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0) == Some("logical_plan") => {
                    r.get(1).map(str::to_string)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(plan.contains(join), "{q}: no join in\n{plan}");
        assert!(!plan.contains("NULL AS"), "{q}: a constant in\n{plan}");
        assert!(
            !plan.contains("ScalarSubquery"),
            "{q}: left as a subquery\n{plan}"
        );
    }
}

/// What is not planned yet fails with 0A000 and names the construct; it is
/// never answered differently from PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_subqueries_fail_clearly() {
    let server = TestServer::start();
    let c = server.connect().await;
    for s in SETUP {
        c.batch_execute(s).await.unwrap();
    }
    for (q, says) in [
        (
            "SELECT a, (SELECT count(*) FROM t2 WHERE t2.y < t1.b AND x > (SELECT min(y) FROM t2 z WHERE z.x = t1.a)) FROM t1",
            "more than one level out",
        ),
        (
            "SELECT a, (SELECT sum(x) FROM t2 WHERE t2.y < t1.b HAVING count(*) > 1) FROM t1",
            "HAVING",
        ),
        (
            "SELECT a, (SELECT x FROM t2 WHERE t2.y < t1.b ORDER BY x LIMIT 2) FROM t1",
            "LIMIT",
        ),
    ] {
        let e = c.simple_query(q).await.expect_err(q);
        let db = e.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "0A000", "{q}: {}", db.message());
        assert!(db.message().contains(says), "{q}: {}", db.message());
        let view = format!("CREATE MATERIALIZED VIEW v AS {q}");
        let e = c.simple_query(&view).await.expect_err(&view);
        assert_eq!(e.code().map(|c| c.code()), Some("0A000"), "{view}: {e:?}");
    }
}

/// A seeded generator of subqueries over `t1`/`t2`: every correlation
/// operator, aggregate and position, compared with PostgreSQL.
fn random_queries(n: usize, seed: u64, for_views: bool) -> Vec<String> {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pick = |xs: &[&'static str]| xs[rng.random_range(0..xs.len())];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let ops = ["=", "<", "<>", ">=", ">"];
        let mut corr = format!(
            "t2.{} {} t1.{}",
            pick(&["x", "y"]),
            pick(&ops),
            pick(&["a", "b"])
        );
        match pick(&["one", "one", "two", "filtered", "expr"]) {
            "two" => corr.push_str(&format!(
                " AND t2.{} {} t1.{}",
                pick(&["x", "y"]),
                pick(&ops),
                pick(&["a", "b"])
            )),
            "filtered" => corr.push_str(&format!(" AND t2.x {} 3", pick(&ops))),
            "expr" => corr = format!("t2.y + 1 {} t1.b * 2", pick(&ops)),
            _ => {}
        }
        let agg = pick(&[
            "count(*)",
            "count(x)",
            "sum(x)",
            "min(y)",
            "max(x)",
            "avg(y)",
            "sum(x + y)",
        ]);
        let shapes: &[&str] = if for_views {
            // (a view over a subquery that meets two rows is in an error state)
            &["agg", "agg", "agg", "first"]
        } else {
            &["agg", "agg", "agg", "first", "plain"]
        };
        let scalar = match pick(shapes) {
            "first" => format!(
                "(SELECT x FROM t2 WHERE {corr} ORDER BY x {} NULLS LAST, y LIMIT 1)",
                pick(&["ASC", "DESC"])
            ),
            "plain" => format!("(SELECT x FROM t2 WHERE {corr} AND t2.x > 10)"),
            _ => format!("(SELECT {agg} FROM t2 WHERE {corr})"),
        };
        let q = match pick(&[
            "select", "select", "where", "exists", "not_exists", "in", "not_in", "flags",
        ]) {
            "select" => format!("SELECT a, b, {scalar} AS s FROM t1 ORDER BY a"),
            "where" => format!(
                "SELECT a FROM t1 WHERE {} {} {scalar} ORDER BY a",
                pick(&["a", "b", "a + b"]),
                pick(&ops)
            ),
            "exists" => format!("SELECT a FROM t1 WHERE EXISTS (SELECT 1 FROM t2 WHERE {corr}) ORDER BY a"),
            "not_exists" => format!(
                "SELECT a FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t2 WHERE {corr}) ORDER BY a"
            ),
            "in" => format!(
                "SELECT a FROM t1 WHERE {} IN (SELECT {} FROM t2 WHERE {corr}) ORDER BY a",
                pick(&["a", "b"]),
                pick(&["x", "y"])
            ),
            "not_in" => format!(
                "SELECT a FROM t1 WHERE {} NOT IN (SELECT {} FROM t2{}) ORDER BY a",
                pick(&["a", "b"]),
                pick(&["x", "y"]),
                if pick(&["corr", "all"]) == "corr" {
                    format!(" WHERE {corr}")
                } else {
                    String::new()
                }
            ),
            _ => format!(
                "SELECT a, b IN (SELECT y FROM t2 WHERE {corr}) AS i, a NOT IN (SELECT x FROM t2 WHERE {corr}) AS ni, EXISTS (SELECT 1 FROM t2 WHERE {corr}) AS e FROM t1 ORDER BY a"
            ),
        };
        out.push(if for_views {
            q.trim_end_matches(" ORDER BY a").to_string()
        } else {
            q
        });
    }
    out
}

/// Random writes to both sides of the subqueries.
fn random_writes(n: usize, seed: u64) -> Vec<String> {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let v = |rng: &mut StdRng| {
        if rng.random_bool(0.15) {
            "NULL".to_string()
        } else {
            rng.random_range(0..8).to_string()
        }
    };
    (0..n)
        .map(|i| match rng.random_range(0..6) {
            0 => format!("INSERT INTO t1 VALUES ({}, {})", 100 + i, v(&mut rng)),
            1 | 2 => format!("INSERT INTO t2 VALUES ({}, {})", v(&mut rng), v(&mut rng)),
            3 => format!("DELETE FROM t2 WHERE x = {}", v(&mut rng)),
            4 => format!(
                "UPDATE t2 SET y = {} WHERE x = {}",
                v(&mut rng),
                v(&mut rng)
            ),
            _ => format!(
                "UPDATE t1 SET b = {} WHERE a % 3 = {}",
                v(&mut rng),
                rng.random_range(0..3)
            ),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_subqueries_match_postgres() {
    // FRESHET_SUBQUERY_SEED / FRESHET_SUBQUERY_QUERIES run other or more
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let seed = env("FRESHET_SUBQUERY_SEED").unwrap_or(0x005A_B917);
    let n = env("FRESHET_SUBQUERY_QUERIES").unwrap_or(300) as usize;
    let queries = random_queries(n, seed, false);
    let queries: Vec<&str> = queries.iter().map(String::as_str).collect();
    let views = random_queries(n / 15, seed + 1, true);
    let names: Vec<String> = (0..views.len()).map(|i| format!("rv{i}")).collect();
    let views: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(views.iter().map(String::as_str))
        .collect();
    let writes = random_writes(12, seed + 2);
    let writes: Vec<&str> = writes.iter().map(String::as_str).collect();
    compare(
        "random_subqueries",
        &Case {
            setup: &[
                "CREATE TABLE t1 (a INT, b INT)",
                "CREATE TABLE t2 (x INT, y INT)",
                "INSERT INTO t1 VALUES (1, 0), (2, 2), (3, 5), (4, NULL), (5, 2), (6, 7), (7, 1)",
                "INSERT INTO t2 VALUES (14, 0), (3, 2), (4, 2), (NULL, 5), (2, NULL), (6, 1), (6, 1), (11, 7), (0, 3)",
            ],
            queries: &queries,
            views: &views,
            more: &writes,
        },
    )
    .await;
}
