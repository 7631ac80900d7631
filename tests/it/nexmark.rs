//! Nexmark q3, q4, q7 and q8 as materialized views over generated person,
//! auction and bid streams (the benchmark's generator), fed through the
//! engine's write path step by step; after every few steps each view must
//! equal the same SQL run in batch.

#[allow(dead_code)]
#[path = "../../benches/common/nexmark_gen.rs"]
mod gen;

use crate::props::{exec, open, rows};

const VIEWS: &[(&str, &str)] = &[
    (
        "q3",
        "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id \
         WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')",
    ),
    (
        "q4",
        "SELECT q.category, avg(q.final) AS avg_final FROM ( \
           SELECT max(b.price) AS final, a.category FROM auction a, bid b \
           WHERE a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires \
           GROUP BY a.id, a.category) q \
         GROUP BY q.category",
    ),
    (
        "q7",
        "SELECT b.auction, b.price, b.bidder, b.date_time FROM bid b JOIN ( \
           SELECT max(price) AS maxprice, window_end AS date_time \
           FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_end) b1 \
         ON b.price = b1.maxprice \
         WHERE b.date_time BETWEEN b1.date_time - INTERVAL '10 seconds' AND b1.date_time",
    ),
    // a windowed aggregate over the join's output: the join passes the
    // bids' watermark on, so closed windows' groups are dropped
    (
        "q7_counts",
        "SELECT date_bin(INTERVAL '10 seconds', j.date_time, TIMESTAMP '1970-01-01') AS w, \
         count(*) AS n, max(j.price) AS top FROM ( \
           SELECT b.auction, b.price, b.bidder, b.date_time FROM bid b JOIN ( \
             SELECT max(price) AS maxprice, window_end AS date_time \
             FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_end) b1 \
           ON b.price = b1.maxprice \
           WHERE b.date_time BETWEEN b1.date_time - INTERVAL '10 seconds' AND b1.date_time) j \
         GROUP BY 1",
    ),
    (
        "q8",
        "SELECT p.id, p.name, p.starttime FROM ( \
           SELECT id, name, window_start AS starttime, window_end AS endtime \
           FROM TUMBLE(person, date_time, INTERVAL '10 seconds') \
           GROUP BY id, name, window_start, window_end) p \
         JOIN ( \
           SELECT seller, window_start AS starttime, window_end AS endtime \
           FROM TUMBLE(auction, date_time, INTERVAL '10 seconds') \
           GROUP BY seller, window_start, window_end) a \
         ON p.id = a.seller AND p.starttime = a.starttime AND p.endtime = a.endtime",
    ),
];

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
    for (name, q) in VIEWS {
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
        for (i, (name, q)) in VIEWS.iter().enumerate() {
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
