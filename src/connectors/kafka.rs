//! `connector = 'kafka'`: every partition of one topic, through
//! librdkafka.
//!
//! The consumer is assigned its partitions by hand at the offsets stored
//! with the rows (no consumer group, nothing committed to the broker): the
//! position `{"partitions": {"0": next offset, …}}` lives in Freshet's own
//! batch, which is what makes ingestion exactly once. Without a stored
//! position, `scan.startup.mode` says where to begin: `earliest` (the
//! default), `latest`, or `timestamp` (`scan.startup.timestamp.millis`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use super::decode::Message;
use super::runner::{Chunk, Polled};
use super::spec::SourceSpec;
use super::ConnectorError;
use crate::catalog::RelationDef;

/// How long CREATE and a (re)start wait for the broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Reader {
    consumer: Arc<StreamConsumer>,
    topic: String,
    /// The next offset of each partition.
    next: BTreeMap<i32, i64>,
    /// No position was stored yet: the first poll stores the starting one.
    fresh: bool,
    /// Sum over partitions of (high watermark − next), when last asked.
    lag: Option<i64>,
    last_lag_check: std::time::Instant,
}

fn unreachable(servers: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Unreachable(format!("cannot reach Kafka at {servers}: {e}"))
}

impl Reader {
    pub async fn open(
        _def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let topic = spec.option("topic").unwrap_or_default().to_string();
        let servers = spec
            .option("properties.bootstrap.server")
            .unwrap_or_default()
            .to_string();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &servers)
            .set("group.id", "freshet")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("socket.timeout.ms", "10000");
        // `properties.*` pass through to librdkafka (security settings,
        // fetch sizes, …)
        for (k, v) in &spec.options {
            if let Some(p) = k.strip_prefix("properties.") {
                if p != "bootstrap.server" {
                    config.set(p, v);
                }
            }
        }
        let consumer: StreamConsumer = config
            .create()
            .map_err(|e| ConnectorError::InvalidOption(format!("Kafka client settings: {e}")))?;
        let consumer = Arc::new(consumer);
        let mode = spec
            .option("scan.startup.mode")
            .unwrap_or("earliest")
            .to_ascii_lowercase();
        let ts = spec.count("scan.startup.timestamp.millis", 0)? as i64;
        if mode == "timestamp" && spec.option("scan.startup.timestamp.millis").is_none() {
            return Err(ConnectorError::InvalidOption(
                "scan.startup.mode 'timestamp' needs scan.startup.timestamp.millis".into(),
            ));
        }
        let stored: BTreeMap<i32, i64> = position
            .as_ref()
            .and_then(|p| p.get("partitions"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let c = consumer.clone();
        let t = topic.clone();
        let s = servers.clone();
        // (librdkafka's metadata calls block: off the async threads)
        let (partitions, start) = tokio::task::spawn_blocking(move || {
            let md = c
                .fetch_metadata(Some(&t), CONNECT_TIMEOUT)
                .map_err(|e| unreachable(&s, e))?;
            let Some(tm) = md.topics().iter().find(|x| x.name() == t) else {
                return Err(ConnectorError::Unreachable(format!(
                    "Kafka topic \"{t}\" does not exist"
                )));
            };
            if let Some(e) = tm.error() {
                return Err(ConnectorError::Unreachable(format!(
                    "Kafka topic \"{t}\": {e:?}"
                )));
            }
            let parts: Vec<i32> = tm.partitions().iter().map(|p| p.id()).collect();
            if parts.is_empty() {
                return Err(ConnectorError::Unreachable(format!(
                    "Kafka topic \"{t}\" has no partitions"
                )));
            }
            let mut start: BTreeMap<i32, Offset> = BTreeMap::new();
            let mut by_time = TopicPartitionList::new();
            for &p in &parts {
                match stored.get(&p) {
                    Some(&o) => {
                        start.insert(p, Offset::Offset(o));
                    }
                    None => {
                        // (resolved to numbers now, and stored before any
                        // message: a restart never resolves them again)
                        let (low, high) = c
                            .fetch_watermarks(&t, p, CONNECT_TIMEOUT)
                            .map_err(|e| unreachable(&s, e))?;
                        match mode.as_str() {
                            "latest" => {
                                start.insert(p, Offset::Offset(high));
                            }
                            "timestamp" => {
                                by_time
                                    .add_partition_offset(&t, p, Offset::Offset(ts))
                                    .map_err(|e| unreachable(&s, e))?;
                                start.insert(p, Offset::Offset(high));
                            }
                            _ => {
                                start.insert(p, Offset::Offset(low));
                            }
                        }
                    }
                }
            }
            if by_time.count() > 0 {
                let found = c
                    .offsets_for_times(by_time, CONNECT_TIMEOUT)
                    .map_err(|e| unreachable(&s, e))?;
                for e in found.elements() {
                    // (no message at or after the time: from the end)
                    if let Offset::Offset(o) = e.offset() {
                        start.insert(e.partition(), Offset::Offset(o));
                    }
                }
            }
            Ok((parts, start))
        })
        .await
        .map_err(|e| ConnectorError::Unreachable(format!("Kafka set-up failed: {e}")))??;
        let mut assignment = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for p in &partitions {
            let o = start.get(p).copied().unwrap_or(Offset::Beginning);
            assignment
                .add_partition_offset(&topic, *p, o)
                .map_err(|e| unreachable(&servers, e))?;
            if let Offset::Offset(x) = o {
                next.insert(*p, x);
            }
        }
        consumer
            .assign(&assignment)
            .map_err(|e| unreachable(&servers, e))?;
        Ok(Reader {
            consumer,
            topic,
            next,
            fresh: position.is_none(),
            lag: None,
            last_lag_check: std::time::Instant::now() - Duration::from_secs(60),
        })
    }

    fn position(&self) -> Value {
        let parts: serde_json::Map<String, Value> = self
            .next
            .iter()
            .map(|(p, o)| (p.to_string(), Value::from(*o)))
            .collect();
        serde_json::json!({ "partitions": parts })
    }

    fn message(m: &rdkafka::message::BorrowedMessage<'_>) -> Message {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            x.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Message {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            partition: Some(m.partition().to_string()),
            subject: None,
            offset: Some(m.offset()),
            timestamp: m.timestamp().to_millis().map(|ms| ms * 1000),
            headers,
            position: format!("partition {} offset {}", m.partition(), m.offset()),
        }
    }
}

#[async_trait::async_trait]
impl super::runner::Next for Reader {
    async fn next_message(&mut self) -> Result<Option<Message>, ConnectorError> {
        let m = self.consumer.recv().await.map_err(|e| {
            ConnectorError::Unreachable(format!("Kafka topic \"{}\": {e}", self.topic))
        })?;
        self.next.insert(m.partition(), m.offset() + 1);
        Ok(Some(Self::message(&m)))
    }
}

#[async_trait::async_trait]
impl super::runner::Reader for Reader {
    async fn poll(&mut self, max: usize) -> Result<Option<Polled>, ConnectorError> {
        if std::mem::take(&mut self.fresh) {
            return Ok(Some(Polled {
                chunk: Chunk::Messages(vec![]),
                position: self.position(),
            }));
        }
        let out = super::runner::gather(self, max).await?;
        Ok(Some(Polled {
            chunk: Chunk::Messages(out),
            position: self.position(),
        }))
    }

    async fn committed(&mut self) -> Result<(), ConnectorError> {
        // the lag, from the partitions' high watermarks, every few seconds
        if self.last_lag_check.elapsed() >= Duration::from_secs(2) {
            self.last_lag_check = std::time::Instant::now();
            let c = self.consumer.clone();
            let topic = self.topic.clone();
            let next = self.next.clone();
            let parts: Vec<i32> = next.keys().copied().collect();
            self.lag = tokio::task::spawn_blocking(move || {
                let mut lag = 0i64;
                for p in parts {
                    let (_, high) = c.fetch_watermarks(&topic, p, Duration::from_secs(2)).ok()?;
                    lag += (high - next.get(&p).copied().unwrap_or(0)).max(0);
                }
                Some(lag)
            })
            .await
            .ok()
            .flatten();
        }
        Ok(())
    }

    fn lag(&self) -> Option<i64> {
        self.lag
    }
}
