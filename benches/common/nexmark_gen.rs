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
