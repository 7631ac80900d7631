//! Nexmark q3, q4, q7 and q8 as materialized views over generated person,
//! auction and bid streams (the benchmark's generator), fed through the
//! engine's write path step by step; after every few steps each view must
//! equal the same SQL run in batch.

#[allow(dead_code)]
#[path = "../../benches/common/nexmark_gen.rs"]
mod gen;

use crate::props::{exec, open, rows};

/// A windowed aggregate over q7's join: the join passes the bids'
/// watermark on, so closed windows' groups are dropped.
const Q7_COUNTS: &str =
    "SELECT date_bin(INTERVAL '10 seconds', j.date_time, TIMESTAMP '1970-01-01') AS w, \
     count(*) AS n, max(j.price) AS top FROM ( \
       SELECT b.auction, b.price, b.bidder, b.date_time FROM bid b JOIN ( \
         SELECT max(price) AS maxprice, window_end AS date_time \
         FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_end) b1 \
       ON b.price = b1.maxprice \
       WHERE b.date_time BETWEEN b1.date_time - INTERVAL '10 seconds' AND b1.date_time) j \
     GROUP BY 1";

/// The benchmark's join queries, and Q7_COUNTS.
fn views() -> Vec<(&'static str, &'static str)> {
    let mut v = gen::STREAM_QUERIES.to_vec();
    v.push(("q7_counts", Q7_COUNTS));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_join_views_equal_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut s) = open(dir.path()).await;
    for ddl in [gen::PERSON_DDL, gen::AUCTION_DDL, gen::BID_DDL] {
        exec(&mut s, ddl).await;
    }
    let mut streams = gen::Streams::new(11);
    // some history before the views exist (backfill), then steps
    let first = streams.batch(4000);
    engine.append("person", vec![first.person]).await.unwrap();
    engine.append("auction", vec![first.auction]).await.unwrap();
    engine.append("bid", vec![first.bid]).await.unwrap();
    for (name, q) in views() {
        exec(&mut s, &format!("CREATE MATERIALIZED VIEW {name} AS {q}")).await;
    }
    let mut nonempty = [false; 5];
    for step in 0..30 {
        let b = streams.batch(2000);
        engine.append("person", vec![b.person]).await.unwrap();
        engine.append("auction", vec![b.auction]).await.unwrap();
        engine.append("bid", vec![b.bid]).await.unwrap();
        if step % 5 != 4 {
            continue;
        }
        for (i, (name, q)) in views().iter().enumerate() {
            let got = rows(&mut s, &format!("SELECT * FROM {name}")).await;
            let want = rows(&mut s, q).await;
            assert_eq!(got, want, "step {step}: {name} differs from its query");
            nonempty[i] |= !got.is_empty();
        }
    }
    assert_eq!(nonempty, [true; 5], "every query produced rows");
    let marks = rows(
        &mut s,
        "SELECT column FROM freshet_catalog.view_watermarks WHERE view = 'q7_counts'",
    )
    .await;
    assert_eq!(
        marks,
        ["w"],
        "the windowed aggregate over the join has a watermark"
    );
    // the joins bounded by time (q4, q7: interval; q8: window) hold a few
    // seconds of their inputs, not the 64 000 events seen
    let state = rows(
        &mut s,
        "SELECT view, state_rows FROM freshet_catalog.view_operators \
         WHERE operator LIKE 'Join%retired%' ORDER BY view",
    )
    .await;
    eprintln!("join state: {state:?}");
    let mut views: Vec<&str> = state.iter().filter_map(|r| r.split('|').next()).collect();
    views.sort_unstable();
    assert_eq!(views, ["q4", "q7", "q7_counts", "q8"], "{state:?}");
    for r in &state {
        let n: u64 = r.rsplit('|').next().unwrap().parse().unwrap();
        assert!(n < 25_000, "{r}: join state not bounded");
    }
}
