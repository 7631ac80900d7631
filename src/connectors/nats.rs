//! `connector = 'nats'`: one subject (wildcards allowed) of a NATS
//! JetStream stream, through async-nats.
//!
//! JetStream numbers every message of a stream (its stream sequence), so
//! the position is a number like a Kafka offset: `{"sequence": next}`,
//! stored with the rows. Each open creates an *ordered consumer* (ephemeral,
//! no acknowledgements, recreated by the client on a gap) that starts at the
//! stored sequence; nothing is kept on the server between opens, so a
//! crash can neither lose a message that was not stored nor store one
//! twice. Without a stored position, `scan.startup.mode` says where to
//! begin: `earliest` (the default) or `latest`, resolved to a sequence
//! and stored before the first message.

use async_nats::jetstream::{
    self,
    consumer::{pull::Ordered, pull::OrderedConfig, DeliverPolicy},
};
use futures::StreamExt;
use serde_json::Value;

use super::decode::Message;
use super::runner::{Chunk, Polled, CONNECT_TIMEOUT};
use super::spec::SourceSpec;
use super::ConnectorError;
use crate::catalog::RelationDef;

pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

pub struct Reader {
    messages: Ordered,
    subject: String,
    stream: String,
    /// The stream sequence of the next message to store.
    next: u64,
    /// No position was stored yet: the first poll stores the starting one.
    fresh: bool,
    /// Messages of the subject after the last one read, as the server
    /// counted them when it sent that one.
    lag: Option<i64>,
}

impl Reader {
    pub async fn open(
        _def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let url = spec.option("server_url").unwrap_or(DEFAULT_URL).to_string();
        let subject = spec.option("subject").unwrap_or_default().to_string();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("freshet")
            .connect(url.as_str())
            .await
            .map_err(|e| ConnectorError::unreachable(&format!("cannot reach NATS at {url}"), e))?;
        let js = jetstream::new(client);
        let stream_name = match spec.option("stream") {
            Some(s) => s.to_string(),
            None => tokio::time::timeout(CONNECT_TIMEOUT, js.stream_by_subject(subject.clone()))
                .await
                .map_err(|_| {
                    ConnectorError::unreachable(
                        &format!("NATS at {url}"),
                        "no answer from JetStream",
                    )
                })?
                .map_err(|e| {
                    ConnectorError::Unreachable(format!(
                        "no JetStream stream holds subject \"{subject}\" ({e})"
                    ))
                })?,
        };
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, js.get_stream(&stream_name))
            .await
            .map_err(|_| {
                ConnectorError::unreachable(&format!("NATS at {url}"), "no answer from JetStream")
            })?
            .map_err(|e| {
                ConnectorError::Unreachable(format!(
                    "JetStream stream \"{stream_name}\" cannot be read: {e}"
                ))
            })?;
        let stored = position
            .as_ref()
            .and_then(|p| p.get("sequence"))
            .and_then(Value::as_u64);
        let next = match stored {
            Some(n) => n,
            None => {
                let info = stream.info().await.map_err(|e| {
                    ConnectorError::unreachable(&format!("JetStream stream \"{stream_name}\""), e)
                })?;
                let mode = spec
                    .option("scan.startup.mode")
                    .unwrap_or("earliest")
                    .to_ascii_lowercase();
                if mode == "latest" {
                    info.state.last_sequence + 1
                } else {
                    info.state.first_sequence.max(1)
                }
            }
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: next,
                },
                ..Default::default()
            })
            .await
            .map_err(|e| {
                ConnectorError::unreachable(
                    &format!("cannot read subject \"{subject}\" of stream \"{stream_name}\""),
                    e,
                )
            })?;
        // (what the subject holds after the start, until a message tells)
        let lag = i64::try_from(consumer.cached_info().num_pending).ok();
        let messages = consumer.messages().await.map_err(|e| {
            ConnectorError::unreachable(
                &format!("cannot read subject \"{subject}\" of stream \"{stream_name}\""),
                e,
            )
        })?;
        Ok(Reader {
            messages,
            subject,
            stream: stream_name,
            next,
            fresh: stored.is_none(),
            lag,
        })
    }

    fn position(&self) -> Value {
        serde_json::json!({ "sequence": self.next })
    }

    /// The message, or `None` for one already stored (the consumer starts
    /// at the stored sequence, so only after a server-side replay).
    fn take(&mut self, m: jetstream::Message) -> Result<Option<Message>, ConnectorError> {
        let info = m.info().map_err(|e| {
            ConnectorError::Unreachable(format!("JetStream message without metadata: {e}"))
        })?;
        let seq = info.stream_sequence;
        if seq < self.next {
            return Ok(None);
        }
        self.next = seq + 1;
        self.lag = i64::try_from(info.pending).ok();
        let timestamp = i64::try_from(info.published.unix_timestamp_nanos() / 1000).ok();
        let headers = m
            .message
            .headers
            .as_ref()
            .map(|h| {
                h.iter()
                    .flat_map(|(k, vs)| {
                        vs.iter()
                            .map(move |v| (k.to_string(), v.as_str().as_bytes().to_vec()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Message {
            key: None,
            payload: Some(m.message.payload.to_vec()),
            partition: None,
            subject: Some(m.message.subject.to_string()),
            offset: i64::try_from(seq).ok(),
            timestamp,
            headers,
            position: format!("stream {} sequence {seq}", self.stream),
        }))
    }

    fn failed(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Unreachable(format!(
            "reading subject \"{}\" of JetStream stream \"{}\": {e}",
            self.subject, self.stream
        ))
    }
}

#[async_trait::async_trait]
impl super::runner::Next for Reader {
    async fn next_message(&mut self) -> Result<Option<Message>, ConnectorError> {
        match self.messages.next().await {
            None => Err(self.failed("the consumer ended")),
            Some(Err(e)) => Err(self.failed(e)),
            Some(Ok(m)) => self.take(m),
        }
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

    fn lag(&self) -> Option<i64> {
        self.lag
    }
}
