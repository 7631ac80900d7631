//! No input crashes the process, and one client cannot starve the rest.
//! Deep and wide statements are answered or refused with 54001; the server
//! keeps serving.

use crate::harness::TestServer;

fn code(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Each shape that used to overflow a worker's stack and abort the server
/// (`1+1+…+1` of 2 000 terms, an `OR` chain of 2 000, `UNION ALL` of 700, a
/// view with a 1 900-term expression), and the same shapes far bigger: an
/// answer, or 54001, and the server still answers afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_statements_are_answered_or_refused() {
    let server = TestServer::start();
    let c = server.connect().await;
    c.batch_execute("CREATE TABLE tt (a INT); INSERT INTO tt VALUES (1), (2)")
        .await
        .unwrap();
    let plus = |n: usize, x: &str| vec![x; n].join(" + ");
    let ors = |n: usize| {
        (0..n)
            .map(|i| format!("a = {i}"))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let unions = |n: usize| {
        (0..n)
            .map(|i| format!("SELECT {i} AS v"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let nested = |n: usize| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
    // (statement, rows it answers, or None for 54001)
    let cases: Vec<(String, Option<usize>)> = vec![
        (format!("SELECT {}", plus(500, "1")), Some(1)),
        (format!("SELECT {}", plus(2_000, "1")), None),
        (format!("SELECT {}", plus(200_000, "1")), None),
        (format!("SELECT a FROM tt WHERE {}", ors(2_000)), Some(2)),
        (format!("SELECT a FROM tt WHERE {}", ors(9_000)), Some(2)),
        (unions(700), Some(700)),
        (unions(2_000), Some(2_000)),
        (nested(500), Some(1)),
        (nested(5_000), None),
        (nested(100_000), None),
        (format!("SELECT {}true", "NOT ".repeat(50_000)), None),
        (
            format!(
                "CREATE MATERIALIZED VIEW wide AS SELECT {} AS s FROM tt",
                plus(1_900, "a")
            ),
            None,
        ),
    ];
    for (sql, want) in &cases {
        let head: String = sql.chars().take(60).collect();
        match (c.simple_query(sql).await, want) {
            (Ok(msgs), Some(n)) => {
                let rows = msgs
                    .iter()
                    .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                    .count();
                assert_eq!(rows, *n, "{head}…");
            }
            (Err(e), None) => assert_eq!(code(&e), "54001", "{head}…: {e:?}"),
            (got, want) => panic!("{head}…: {got:?}, expected {want:?}"),
        }
        c.simple_query("SELECT 1")
            .await
            .expect("the server still answers");
    }
    // a view with a deep (allowed) expression is maintained on the committer
    c.batch_execute(&format!(
        "CREATE MATERIALIZED VIEW deep AS SELECT {} AS s FROM tt",
        plus(400, "a")
    ))
    .await
    .unwrap();
    c.batch_execute("INSERT INTO tt VALUES (3)").await.unwrap();
    let rows = c.query("SELECT s FROM deep ORDER BY s", &[]).await.unwrap();
    let got: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec![400, 800, 1200]);
}
