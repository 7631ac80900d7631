//! PostgreSQL as a correctness oracle: the same tables and queries run on
//! Freshet and on the local PostgreSQL (127.0.0.1:5432), and the answers must
//! agree. Numbers are compared by value (DataFusion and Postgres choose
//! different result types for, e.g., `avg`), everything else as text.
//! Skipped, loudly, where PostgreSQL is not reachable.

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::harness::TestServer;

const SETUP: &[&str] = &[
    "CREATE TABLE person (id BIGINT PRIMARY KEY, name TEXT, city TEXT, state TEXT, born DATE)",
    "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, channel TEXT, at TIMESTAMP)",
    "INSERT INTO person VALUES (1, 'Ann', 'Portland', 'or', '1980-01-02'), (2, 'Bo', 'Boise', 'id', '1990-05-06'),
        (3, 'Cy', 'Austin', 'tx', NULL), (4, 'Di', NULL, 'ca', '2001-12-31')",
    "INSERT INTO bid VALUES (1, 1, 100, 'web', '2026-01-01 10:00:00'), (1, 2, 150, 'app', '2026-01-01 10:00:05'),
        (2, 3, 90, 'web', '2026-01-01 10:01:00'), (2, 1, 95, NULL, '2026-01-01 10:02:00'),
        (3, 4, 1000, 'web', '2026-01-01 11:00:00'), (3, 2, NULL, 'app', '2026-01-01 11:30:00')",
    "UPDATE bid SET price = price + 1 WHERE channel = 'app'",
    "DELETE FROM person WHERE id = 3",
];

const QUERIES: &[&str] = &[
    "SELECT id, name, city, state, born FROM person ORDER BY id",
    "SELECT auction, count(*), count(price), sum(price), min(price), max(price), avg(price) FROM bid GROUP BY auction ORDER BY auction",
    "SELECT channel, count(*) FROM bid GROUP BY channel ORDER BY channel NULLS FIRST",
    "SELECT p.name, b.auction, b.price FROM bid b JOIN person p ON p.id = b.bidder WHERE b.price > 95 ORDER BY b.price",
    "SELECT p.name, count(b.auction) FROM person p LEFT JOIN bid b ON b.bidder = p.id GROUP BY p.name ORDER BY p.name",
    "SELECT auction, price, rank() OVER (PARTITION BY auction ORDER BY price DESC NULLS LAST) FROM bid ORDER BY auction, price DESC NULLS LAST",
    "SELECT auction, sum(price) OVER (ORDER BY at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM bid ORDER BY at",
    "WITH top AS (SELECT auction, max(price) AS m FROM bid GROUP BY auction) SELECT auction FROM top WHERE m > 100 ORDER BY auction",
    "SELECT name FROM person WHERE id IN (SELECT bidder FROM bid WHERE price >= 100) ORDER BY name",
    "SELECT upper(name), length(city), coalesce(city, '?'), state || '-' || name FROM person ORDER BY id",
    "SELECT CASE WHEN price IS NULL THEN 'none' WHEN price > 100 THEN 'high' ELSE 'low' END, count(*) FROM bid GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('hour', at), count(*) FROM bid GROUP BY 1 ORDER BY 1",
    "SELECT extract(year FROM born), name FROM person WHERE born IS NOT NULL ORDER BY born",
    "SELECT auction FROM bid UNION SELECT id FROM person ORDER BY 1",
    "SELECT DISTINCT channel FROM bid WHERE channel IS NOT NULL ORDER BY 1",
    "SELECT price / 2, price % 7, -price FROM bid WHERE price IS NOT NULL ORDER BY price",
    "SELECT count(*) FROM bid WHERE at BETWEEN '2026-01-01 10:00:00' AND '2026-01-01 10:30:00'",
    "SELECT name FROM person ORDER BY name DESC LIMIT 2 OFFSET 1",
];

/// Materialized views created after SETUP and compared after MORE: (name,
/// query). Both sides are read ordered by every column.
const VIEWS: &[(&str, &str)] = &[
    ("v_lag", "SELECT auction, bidder, price, lag(price) OVER (PARTITION BY auction ORDER BY at) AS prev, lead(price, 1, 0) OVER (PARTITION BY auction ORDER BY at) AS nxt FROM bid"),
    ("v_running", "SELECT auction, at, sum(price) OVER (PARTITION BY auction ORDER BY at) AS s, count(*) OVER (PARTITION BY auction ORDER BY at) AS n, avg(price) OVER (PARTITION BY auction) AS a FROM bid"),
    ("v_numbers", "SELECT bidder, at, row_number() OVER (PARTITION BY bidder ORDER BY at) AS rn, rank() OVER (ORDER BY price DESC NULLS LAST) AS r, dense_rank() OVER (ORDER BY channel NULLS LAST) AS d FROM bid"),
    ("v_best", "SELECT * FROM (SELECT auction, bidder, price, rank() OVER (PARTITION BY auction ORDER BY price DESC NULLS LAST) AS r FROM bid) t WHERE r <= 1"),
    ("v_top2", "SELECT auction, price FROM bid WHERE price IS NOT NULL ORDER BY price DESC, auction LIMIT 2"),
    ("v_outer", "SELECT p.name, b.auction, b.price FROM person p LEFT JOIN bid b ON b.bidder = p.id"),
];

/// Writes after the views exist: their changes must reach the views.
const MORE: &[&str] = &[
    "INSERT INTO bid VALUES (1, 3, 120, 'web', '2026-01-01 10:00:02'), (4, 1, 7, NULL, '2026-01-01 12:00:00')",
    "UPDATE bid SET price = 2000 WHERE auction = 2 AND bidder = 3",
    "DELETE FROM bid WHERE auction = 3 AND bidder = 4",
    "INSERT INTO person VALUES (5, 'Ed', 'Reno', 'nv', NULL)",
    "INSERT INTO bid VALUES (2, 5, 95, 'app', '2026-01-01 10:01:30')",
];

/// Runs each statement on PostgreSQL and on Freshet.
async fn on_both(pg: &Client, fr: &Client, statements: &[&str]) {
    for s in statements {
        pg.batch_execute(s)
            .await
            .unwrap_or_else(|e| panic!("postgres: {s}: {e:?}"));
        fr.batch_execute(s)
            .await
            .unwrap_or_else(|e| panic!("freshet: {s}: {e:?}"));
    }
}

/// A query's rows as text, or its SQLSTATE.
type Answer = Result<Vec<Vec<Option<String>>>, String>;

async fn rows(c: &Client, sql: &str) -> Answer {
    let msgs = c.simple_query(sql).await.map_err(|e| match e.code() {
        Some(code) => code.code().to_string(),
        None => format!("{e:?}"),
    })?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect())
}

fn same(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => {
            if x == y {
                return true;
            }
            match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
                _ => false,
            }
        }
        (None, None) => true,
        _ => false,
    }
}

/// Compares one query's answers; `None` when they agree (same rows, or
/// errors with the same SQLSTATE).
fn disagreement(q: &str, want: &Answer, got: &Answer) -> Option<String> {
    let ok = match (want, got) {
        (Ok(w), Ok(g)) => {
            g.len() == w.len()
                && g.iter()
                    .zip(w)
                    .all(|(g, w)| g.len() == w.len() && g.iter().zip(w).all(|(a, b)| same(a, b)))
        }
        (Err(w), Err(g)) => w == g,
        _ => false,
    };
    (!ok).then(|| format!("{q}\n  postgres: {want:?}\n  freshet:  {got:?}"))
}

/// One comparison: tables and rows (`setup`), ad-hoc `queries`, and
/// materialized `views` created after the setup and checked after it and
/// after each statement of `more` (writes their changes must follow).
pub(crate) struct Case<'a> {
    pub setup: &'a [&'a str],
    pub queries: &'a [&'a str],
    pub views: &'a [(&'a str, &'a str)],
    pub more: &'a [&'a str],
}

/// PostgreSQL on 127.0.0.1:5432, or `None` (and a loud message) when it is
/// not running.
pub(crate) async fn postgres(test: &str) -> Option<Client> {
    match tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        NoTls,
    )
    .await
    {
        Ok((c, conn)) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Some(c)
        }
        Err(e) => {
            eprintln!("SKIPPED {test}: PostgreSQL is not reachable on 127.0.0.1:5432 ({e}); the oracle comparison did not run");
            None
        }
    }
}

/// Runs `case` on a fresh Freshet and in a fresh schema of PostgreSQL and
/// panics with every disagreement.
pub(crate) async fn compare(test: &str, case: &Case<'_>) {
    let Some(pg) = postgres(test).await else {
        return;
    };
    let schema = format!("freshet_{test}_{}", std::process::id());
    pg.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path = {schema}"))
        .await
        .unwrap();
    let server = TestServer::start();
    let fr = server.connect().await;
    on_both(&pg, &fr, case.setup).await;
    let mut mismatches = Vec::new();
    let mut checked = 0;
    let queries = |when: &'static str| {
        let (pg, fr) = (&pg, &fr);
        async move {
            let mut out = Vec::new();
            for q in case.queries {
                let want = rows(pg, q).await;
                let got = rows(fr, q).await;
                out.extend(disagreement(q, &want, &got).map(|m| format!("{when}: {m}")));
            }
            out
        }
    };
    mismatches.extend(queries("after the setup").await);
    checked += case.queries.len();
    for (name, q) in case.views {
        fr.batch_execute(&format!("CREATE MATERIALIZED VIEW {name} AS {q}"))
            .await
            .unwrap_or_else(|e| panic!("freshet: {name}: {e:?}"));
    }
    // every column, NULLs last on both sides
    let mut view_checks = Vec::new();
    for (name, q) in case.views {
        let n = pg
            .prepare(&format!("SELECT * FROM ({q}) t"))
            .await
            .map_or(1, |s| s.columns().len());
        let order: Vec<String> = (1..=n).map(|i| format!("{i} NULLS LAST")).collect();
        let order = order.join(", ");
        view_checks.push((
            format!("SELECT * FROM ({q}) t ORDER BY {order}"),
            format!("SELECT * FROM {name} ORDER BY {order}"),
        ));
    }
    let mut steps: Vec<Option<&str>> = vec![None];
    steps.extend(case.more.iter().map(|s| Some(*s)));
    for step in steps {
        if let Some(s) = step {
            on_both(&pg, &fr, &[s]).await;
        }
        for (pq, fq) in &view_checks {
            let want = rows(&pg, pq).await;
            let got = rows(&fr, fq).await;
            checked += 1;
            if let Some(m) = disagreement(fq, &want, &got) {
                mismatches.push(format!(
                    "after {}: {m}",
                    step.unwrap_or("the views' creation")
                ));
            }
        }
    }
    if !case.more.is_empty() {
        mismatches.extend(queries("after the later writes").await);
        checked += case.queries.len();
    }
    let _ = pg
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
    assert!(
        mismatches.is_empty(),
        "{} of {checked} answers disagree with PostgreSQL:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_postgres() {
    compare(
        "oracle",
        &Case {
            setup: SETUP,
            queries: QUERIES,
            views: VIEWS,
            more: MORE,
        },
    )
    .await;
}
