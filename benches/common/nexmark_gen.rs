//! A deterministic generator of Nexmark-shaped bid events (the proportions
//! of the Nexmark benchmark: hot auctions and bidders, four channels,
//! increasing event time), as Arrow batches of the `bid` source schema.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// As Nexmark sources are declared for streaming engines: event time with
/// a watermark 4 seconds behind the newest bid.
pub const BID_DDL: &str = "CREATE SOURCE bid (auction BIGINT, bidder BIGINT, price BIGINT, \
     channel TEXT, url TEXT, date_time TIMESTAMP, extra TEXT, \
     WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds')";

pub fn bid_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new(
            "date_time",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

/// xorshift: reproducible without a seed file.
pub struct Gen {
    state: u64,
    /// When set, auctions are drawn uniformly from this many ids instead
    /// of Nexmark's hot/cold split.
    pub uniform_auctions: Option<u64>,
    /// Event index; event time advances 1 ms per event from 2026-01-01.
    pub next_event: u64,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            state: seed | 1,
            uniform_auctions: None,
            next_event: 0,
        }
    }

    fn rand(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// `n` bids as one batch.
    pub fn bids(&mut self, n: usize) -> RecordBatch {
        const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
        const BASE_US: i64 = 1_767_225_600_000_000; // 2026-01-01 00:00:00 UTC
        let mut auction = Int64Builder::with_capacity(n);
        let mut bidder = Int64Builder::with_capacity(n);
        let mut price = Int64Builder::with_capacity(n);
        let mut channel = StringBuilder::with_capacity(n, n * 8);
        let mut url = StringBuilder::with_capacity(n, n * 48);
        let mut date_time = TimestampMicrosecondBuilder::with_capacity(n);
        let mut extra = StringBuilder::with_capacity(n, n * 16);
        for _ in 0..n {
            let r = self.rand();
            // Nexmark: 90% of bids go to "hot" auctions and bidders.
            let a = match self.uniform_auctions {
                Some(n) => 1000 + (r >> 8) % n.max(1),
                None if r % 100 < 90 => 1000 + (r >> 8) % 100,
                None => 1000 + (r >> 8) % 10_000,
            };
            let b = if (r >> 24) % 100 < 90 {
                2000 + (r >> 32) % 100
            } else {
                2000 + (r >> 32) % 100_000
            };
            let ch = CHANNELS[((r >> 40) % 4) as usize];
            auction.append_value(a as i64);
            bidder.append_value(b as i64);
            price.append_value((100 + self.rand() % 10_000_000) as i64);
            channel.append_value(ch);
            url.append_value(format!(
                "https://www.nexmark.com/{ch}/item.htm?query=1&id={a}"
            ));
            date_time.append_value(BASE_US + self.next_event as i64 * 1000);
            extra.append_value("");
            self.next_event += 1;
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(auction.finish()),
            Arc::new(bidder.finish()),
            Arc::new(price.finish()),
            Arc::new(channel.finish()),
            Arc::new(url.finish()),
            Arc::new(date_time.finish()),
            Arc::new(extra.finish()),
        ];
        RecordBatch::try_new(bid_schema(), columns).expect("bid batch")
    }
}

/// Queries over the three Nexmark streams (person, auction, bid), fed
/// together in their Nexmark proportions.
pub const STREAM_QUERIES: &[(&str, &str)] = &[
    // q3: local item suggestion (table-table join with filters)
    (
        "q3",
        "SELECT p.name, p.city, p.state, a.id FROM auction a JOIN person p ON a.seller = p.id \
         WHERE a.category = 10 AND (p.state = 'or' OR p.state = 'id' OR p.state = 'ca')",
    ),
    // q4: average closing price per category (join + nested aggregation)
    (
        "q4",
        "SELECT q.category, avg(q.final) AS avg_final FROM ( \
           SELECT max(b.price) AS final, a.category FROM auction a, bid b \
           WHERE a.id = b.auction AND b.date_time BETWEEN a.date_time AND a.expires \
           GROUP BY a.id, a.category) q \
         GROUP BY q.category",
    ),
    // q7: the highest bid of each 10 s window, joined back to the bids
    (
        "q7",
        "SELECT b.auction, b.price, b.bidder, b.date_time FROM bid b JOIN ( \
           SELECT max(price) AS maxprice, window_end AS date_time \
           FROM TUMBLE(bid, date_time, INTERVAL '10 seconds') GROUP BY window_end) b1 \
         ON b.price = b1.maxprice \
         WHERE b.date_time BETWEEN b1.date_time - INTERVAL '10 seconds' AND b1.date_time",
    ),
    // q8: persons who opened an auction in the 10 s window they joined
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

/// The three Nexmark streams in their proportions (per 50 events: 1 person,
/// 3 auctions, 46 bids), sharing one event clock (1 ms per event). Auctions
/// are sold by recent persons and last 10–60 s; bids go to recent auctions
/// (90 % to the 100 newest), so joins on ids and time bounds find matches.
pub struct Streams {
    gen: Gen,
    next_person: i64,
    next_auction: i64,
}

pub const PERSON_DDL: &str = "CREATE SOURCE person (id BIGINT, name TEXT, email_address TEXT, \
     credit_card TEXT, city TEXT, state TEXT, date_time TIMESTAMP, extra TEXT, \
     WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds')";

pub const AUCTION_DDL: &str =
    "CREATE SOURCE auction (id BIGINT, item_name TEXT, description TEXT, \
     initial_bid BIGINT, reserve BIGINT, date_time TIMESTAMP, expires TIMESTAMP, seller BIGINT, \
     category BIGINT, extra TEXT, \
     WATERMARK FOR date_time AS date_time - INTERVAL '4 seconds')";

/// One step of the three streams.
pub struct StreamBatch {
    pub person: RecordBatch,
    pub auction: RecordBatch,
    pub bid: RecordBatch,
}

impl StreamBatch {
    pub fn len(&self) -> usize {
        self.person.num_rows() + self.auction.num_rows() + self.bid.num_rows()
    }
}

impl Streams {
    pub fn new(seed: u64) -> Streams {
        Streams {
            gen: Gen::new(seed),
            next_person: 1000,
            next_auction: 1000,
        }
    }

    /// The next `n` events of all three streams.
    pub fn batch(&mut self, n: usize) -> StreamBatch {
        const BASE_US: i64 = 1_767_225_600_000_000;
        const STATES: [&str; 6] = ["or", "id", "ca", "wa", "az", "tx"];
        const CITIES: [&str; 6] = [
            "portland", "boise", "fresno", "seattle", "phoenix", "austin",
        ];
        let mut p_id = Int64Builder::new();
        let mut p_name = StringBuilder::new();
        let mut p_email = StringBuilder::new();
        let mut p_card = StringBuilder::new();
        let mut p_city = StringBuilder::new();
        let mut p_state = StringBuilder::new();
        let mut p_time = TimestampMicrosecondBuilder::new();
        let mut p_extra = StringBuilder::new();
        let mut a_id = Int64Builder::new();
        let mut a_item = StringBuilder::new();
        let mut a_desc = StringBuilder::new();
        let mut a_initial = Int64Builder::new();
        let mut a_reserve = Int64Builder::new();
        let mut a_time = TimestampMicrosecondBuilder::new();
        let mut a_expires = TimestampMicrosecondBuilder::new();
        let mut a_seller = Int64Builder::new();
        let mut a_category = Int64Builder::new();
        let mut a_extra = StringBuilder::new();
        let mut bid_auction: Vec<i64> = Vec::new();
        let mut bid_time: Vec<i64> = Vec::new();
        for _ in 0..n {
            let e = self.gen.next_event;
            let t = BASE_US + e as i64 * 1000;
            let r = self.gen.rand();
            match e % 50 {
                0 => {
                    let id = self.next_person;
                    self.next_person += 1;
                    let s = (r % 6) as usize;
                    p_id.append_value(id);
                    p_name.append_value(format!("person{id}"));
                    p_email.append_value(format!("p{id}@example.com"));
                    p_card.append_value("4000 0000 0000 0000");
                    p_city.append_value(CITIES[s]);
                    p_state.append_value(STATES[s]);
                    p_time.append_value(t);
                    p_extra.append_value("");
                    self.gen.next_event += 1;
                }
                1..=3 => {
                    let id = self.next_auction;
                    self.next_auction += 1;
                    // sold by one of the 50 newest persons
                    let seller = (self.next_person - 1 - (r % 50) as i64).max(1000);
                    a_id.append_value(id);
                    a_item.append_value(format!("item{id}"));
                    a_desc.append_value("");
                    a_initial.append_value((100 + r % 1000) as i64);
                    a_reserve.append_value((1000 + r % 10_000) as i64);
                    a_time.append_value(t);
                    a_expires.append_value(t + (10_000_000 + (r >> 8) % 50_000_000) as i64);
                    a_seller.append_value(seller);
                    a_category.append_value(10 + ((r >> 16) % 5) as i64);
                    a_extra.append_value("");
                    self.gen.next_event += 1;
                }
                _ => {
                    // a bid on a recent auction
                    let back = if r % 100 < 90 {
                        (r >> 8) % 100
                    } else {
                        (r >> 8) % 10_000
                    };
                    let auction = (self.next_auction - 1 - back as i64).max(1000);
                    bid_auction.push(auction);
                    bid_time.push(t);
                    self.gen.next_event += 1;
                }
            }
        }
        let person = RecordBatch::try_new(
            person_schema(),
            vec![
                Arc::new(p_id.finish()),
                Arc::new(p_name.finish()),
                Arc::new(p_email.finish()),
                Arc::new(p_card.finish()),
                Arc::new(p_city.finish()),
                Arc::new(p_state.finish()),
                Arc::new(p_time.finish()),
                Arc::new(p_extra.finish()),
            ],
        )
        .expect("person batch");
        let auction = RecordBatch::try_new(
            auction_schema(),
            vec![
                Arc::new(a_id.finish()),
                Arc::new(a_item.finish()),
                Arc::new(a_desc.finish()),
                Arc::new(a_initial.finish()),
                Arc::new(a_reserve.finish()),
                Arc::new(a_time.finish()),
                Arc::new(a_expires.finish()),
                Arc::new(a_seller.finish()),
                Arc::new(a_category.finish()),
                Arc::new(a_extra.finish()),
            ],
        )
        .expect("auction batch");
        // the other bid columns as `bids` makes them, re-pointed at live
        // auctions and placed at their own event times
        let saved = self.gen.next_event;
        self.gen.uniform_auctions = None;
        let generated = self.gen.bids(bid_auction.len());
        self.gen.next_event = saved;
        let mut cols = generated.columns().to_vec();
        cols[0] = Arc::new(datafusion::arrow::array::Int64Array::from(bid_auction));
        cols[5] = Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(
            bid_time,
        ));
        let bid = RecordBatch::try_new(bid_schema(), cols).expect("bids");
        StreamBatch {
            person,
            auction,
            bid,
        }
    }
}

pub fn person_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("email_address", DataType::Utf8, true),
        Field::new("credit_card", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("date_time", ts, true),
        Field::new("extra", DataType::Utf8, true),
    ]))
}

pub fn auction_schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("item_name", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initial_bid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        Field::new("date_time", ts.clone(), true),
        Field::new("expires", ts, true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("extra", DataType::Utf8, true),
    ]))
}
