//! `connector = 'rabbitmq'`: one queue (classic or quorum) through lapin,
//! acknowledged after our commit.
//!
//! A queue has no position to resume from: a message leaves it when it is
//! acknowledged, and a message delivered but not acknowledged before a
//! crash is delivered again, flagged `redelivered`. Acknowledging only
//! after the commit loses nothing; what remains is the crash between our
//! commit and the broker receiving the acknowledgement, which would store
//! the last batch twice. So the position stored with each batch is the
//! identity of every message it covers (the `message_id` property, or a
//! hash of the body, exchange, routing key, timestamp and headers but the
//! broker's `x-` ones when the publisher set none). After a restart, a *redelivered* message whose identity is in
//! that set was stored already: it is acknowledged with the next batch and
//! not stored again. Requeued messages come back before new ones, so the
//! set is forgotten at the first message delivered for the first time.
//!
//! Stream queues (`x-queue-type = stream`) need an offset argument and are
//! refused (0A000) at their first message.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;

use super::decode::Message;
use super::redelivery::{fnv, of_id, Identity, InDoubt};
use super::runner::{Chunk, Polled, CONNECT_TIMEOUT};
use super::spec::SourceSpec;
use super::ConnectorError;
use crate::catalog::RelationDef;

pub const DEFAULT_URL: &str = "amqp://127.0.0.1:5672/%2f";

pub struct Reader {
    _connection: Connection,
    channel: Channel,
    consumer: Consumer,
    queue: String,
    in_doubt: InDoubt,
    /// Identities of the messages the current batch covers.
    batch: Vec<Identity>,
    /// The delivery tag to acknowledge (with all before it) once the
    /// current batch is durable.
    ack: Option<u64>,
    /// Messages ready in the queue, when last asked.
    lag: Option<i64>,
    last_lag_check: std::time::Instant,
}

fn value_bytes(v: &AMQPValue) -> Vec<u8> {
    match v {
        AMQPValue::LongString(s) => s.as_bytes().to_vec(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes().to_vec(),
        AMQPValue::ByteArray(b) => b.as_slice().to_vec(),
        AMQPValue::Boolean(b) => b.to_string().into_bytes(),
        AMQPValue::ShortShortInt(i) => i.to_string().into_bytes(),
        AMQPValue::ShortShortUInt(i) => i.to_string().into_bytes(),
        AMQPValue::ShortInt(i) => i.to_string().into_bytes(),
        AMQPValue::ShortUInt(i) => i.to_string().into_bytes(),
        AMQPValue::LongInt(i) => i.to_string().into_bytes(),
        AMQPValue::LongUInt(i) => i.to_string().into_bytes(),
        AMQPValue::LongLongInt(i) => i.to_string().into_bytes(),
        AMQPValue::Timestamp(t) => t.to_string().into_bytes(),
        AMQPValue::Float(f) => f.to_string().into_bytes(),
        AMQPValue::Double(f) => f.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

impl Reader {
    pub async fn open(
        def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let url = spec.option("url").unwrap_or(DEFAULT_URL).to_string();
        let queue = spec.option("queue").unwrap_or_default().to_string();
        let prefetch = spec.count("source.batch.rows", 8192)?.clamp(1, 65_535) as u16;
        // (named, so that the broker's operators see whose it is)
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("freshet {} {queue}", def.name).into());
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&url, properties))
                .await
                .map_err(|_| {
                    ConnectorError::unreachable(
                        &format!("cannot reach RabbitMQ at {url}"),
                        "timed out",
                    )
                })?
                .map_err(|e| {
                    ConnectorError::unreachable(&format!("cannot reach RabbitMQ at {url}"), e)
                })?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| ConnectorError::unreachable(&format!("RabbitMQ at {url}"), e))?;
        // (passive: the queue must exist; Freshet does not create it)
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "RabbitMQ queue \"{queue}\" cannot be read: {e}"
                ))
            })?;
        let lag = Some(i64::from(q.message_count()));
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| ConnectorError::unreachable(&format!("RabbitMQ queue \"{queue}\""), e))?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "freshet".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| ConnectorError::unreachable(&format!("RabbitMQ queue \"{queue}\""), e))?;
        let in_doubt = InDoubt::from_position(position.as_ref());
        Ok(Reader {
            _connection: connection,
            channel,
            consumer,
            queue,
            in_doubt,
            batch: Vec::new(),
            ack: None,
            lag,
            last_lag_check: std::time::Instant::now(),
        })
    }

    fn failed(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Unreachable(format!("reading RabbitMQ queue \"{}\": {e}", self.queue))
    }

    /// The message to store, or `None` for one stored before a restart.
    fn take(&mut self, d: lapin::message::Delivery) -> Result<Option<Message>, ConnectorError> {
        let headers: Vec<(String, Vec<u8>)> = d
            .properties
            .headers()
            .as_ref()
            .map(|h| {
                h.inner()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), value_bytes(v)))
                    .collect()
            })
            .unwrap_or_default();
        if headers.iter().any(|(k, _)| k == "x-stream-offset") {
            return Err(ConnectorError::Unsupported(format!(
                "RabbitMQ queue \"{}\" is a stream queue, which connector 'rabbitmq' does not read yet",
                self.queue
            )));
        }
        let id = match d.properties.message_id() {
            Some(m) => of_id(m.as_str()),
            None => {
                let ts = d.properties.timestamp().unwrap_or(0).to_le_bytes();
                let mut parts: Vec<&[u8]> = vec![
                    &d.data,
                    d.exchange.as_str().as_bytes(),
                    d.routing_key.as_str().as_bytes(),
                    &ts,
                ];
                // (not the broker's own `x-` headers: a quorum queue adds
                // x-delivery-count to a redelivery)
                for (k, v) in headers.iter().filter(|(k, _)| !k.starts_with("x-")) {
                    parts.push(k.as_bytes());
                    parts.push(v);
                }
                fnv(&parts)
            }
        };
        self.ack = Some(d.delivery_tag);
        self.batch.push(id);
        if !self.in_doubt.admit(id, d.redelivered) {
            return Ok(None);
        }
        let timestamp = d
            .properties
            .timestamp()
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| s.saturating_mul(1_000_000));
        Ok(Some(Message {
            key: d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().as_bytes().to_vec()),
            payload: Some(d.data),
            partition: None,
            subject: Some(d.routing_key.as_str().to_string()),
            offset: None,
            timestamp,
            headers,
            position: format!(
                "queue {} delivery {}{}",
                self.queue,
                d.delivery_tag,
                d.properties
                    .message_id()
                    .as_ref()
                    .map(|m| format!(" (message_id {})", m.as_str()))
                    .unwrap_or_default()
            ),
        }))
    }
}

#[async_trait::async_trait]
impl super::runner::Next for Reader {
    async fn next_message(&mut self) -> Result<Option<Message>, ConnectorError> {
        match self.consumer.next().await {
            None => Err(self.failed("the consumer was cancelled")),
            Some(Err(e)) => Err(self.failed(e)),
            Some(Ok(d)) => self.take(d),
        }
    }

    fn gathered(&self, _: &[Message]) -> usize {
        self.batch.len()
    }
}

#[async_trait::async_trait]
impl super::runner::Reader for Reader {
    async fn poll(&mut self, max: usize) -> Result<Option<Polled>, ConnectorError> {
        self.batch.clear();
        let out = super::runner::gather(self, max).await?;
        Ok(Some(Polled {
            chunk: Chunk::Messages(out),
            position: self.in_doubt.position(&self.batch),
        }))
    }

    async fn committed(&mut self) -> Result<(), ConnectorError> {
        if let Some(tag) = self.ack.take() {
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true })
                .await
                .map_err(|e| self.failed(e))?;
        }
        // the queue's ready messages, every few seconds
        if self.last_lag_check.elapsed() >= Duration::from_secs(2) {
            self.last_lag_check = std::time::Instant::now();
            self.lag = self
                .channel
                .queue_declare(
                    self.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .ok()
                .map(|q| i64::from(q.message_count()));
        }
        Ok(())
    }

    fn lag(&self) -> Option<i64> {
        self.lag
    }
}
