//! `connector = 'mqtt'`: one topic filter of an MQTT 3.1.1 broker, at
//! QoS 1 (or 2) in a persistent session, acknowledged after our commit.
//!
//! The session (`clean_session = false`, a client id of the relation's
//! own) makes the broker keep what arrives while Freshet is down and
//! resend what was delivered but not acknowledged, flagged `dup`. As with
//! RabbitMQ ([`super::redelivery`]), each batch stores the identities of
//! the messages it acknowledges (a hash of topic and payload: MQTT 3
//! messages carry no id), so a resend after a crash between our commit and
//! the acknowledgement is not stored twice.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use serde_json::Value;

use super::decode::Message;
use super::redelivery::{fnv, Identity, InDoubt};
use super::runner::{Chunk, Polled, CONNECT_TIMEOUT};
use super::spec::SourceSpec;
use super::ConnectorError;
use crate::catalog::RelationDef;

pub const DEFAULT_URL: &str = "tcp://127.0.0.1:1883";

pub struct Reader {
    client: AsyncClient,
    events: EventLoop,
    topic: String,
    in_doubt: InDoubt,
    /// Identities of the messages the current batch covers.
    batch: Vec<Identity>,
    /// The messages to acknowledge once the batch is durable.
    to_ack: Vec<Publish>,
    /// Messages that arrived before the subscription was confirmed.
    early: std::collections::VecDeque<Publish>,
}

/// `tcp://host:port` or `mqtt://host:port` (port 1883 by default).
fn host_port(url: &str) -> Result<(String, u16), ConnectorError> {
    let rest = url
        .strip_prefix("tcp://")
        .or_else(|| url.strip_prefix("mqtt://"))
        .ok_or_else(|| {
            ConnectorError::InvalidOption(format!(
                "invalid value for option \"url\": \"{url}\" (expected tcp://host:port)"
            ))
        })?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => p.parse().map(|p| (h.to_string(), p)).map_err(|_| {
            ConnectorError::InvalidOption(format!(
                "invalid value for option \"url\": \"{url}\" (bad port)"
            ))
        }),
        None => Ok((rest.to_string(), 1883)),
    }
}

/// The session's client id: `client.id`, which CREATE sets (the prefix,
/// the relation's name and a unique suffix); the session outlives
/// Freshet's restarts, so it must be the same each time, and another
/// relation's must differ. (Relations created before `client.id` existed
/// keep the prefix, name and id.)
pub fn client_id(def: &RelationDef, spec: &SourceSpec) -> String {
    if let Some(id) = spec.option("client.id") {
        return id.to_string();
    }
    format!(
        "{}-{}-{}",
        spec.option("client_prefix").unwrap_or("freshet"),
        def.name,
        def.id
    )
}

impl Reader {
    pub async fn open(
        def: &RelationDef,
        spec: &SourceSpec,
        position: Option<Value>,
    ) -> Result<Reader, ConnectorError> {
        let url = spec.option("url").unwrap_or(DEFAULT_URL).to_string();
        let topic = spec.option("topic").unwrap_or_default().to_string();
        let qos = match spec.option("qos").map(str::to_ascii_lowercase).as_deref() {
            Some("exactly_once") => QoS::ExactlyOnce,
            _ => QoS::AtLeastOnce,
        };
        let (host, port) = host_port(&url)?;
        let mut options = MqttOptions::new(client_id(def, spec), host, port);
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 65_536);
        let unreachable = |e: &dyn std::fmt::Display| {
            ConnectorError::Unreachable(format!("MQTT broker at {url}: {e}"))
        };
        client
            .subscribe(topic.clone(), qos)
            .await
            .map_err(|e| unreachable(&e))?;
        // connected and subscribed, or an error (messages arriving meanwhile
        // are left to the broker: unacknowledged, it sends them again)
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        let mut early = std::collections::VecDeque::new();
        loop {
            let ev = tokio::time::timeout_at(deadline, events.poll())
                .await
                .map_err(|_| unreachable(&"no answer"))?
                .map_err(|e| unreachable(&e))?;
            if let Event::Incoming(Packet::Publish(p)) = ev {
                // (a resend of the session's unacknowledged messages)
                early.push_back(p);
            } else if let Event::Incoming(Packet::SubAck(ack)) = ev {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    return Err(ConnectorError::Unreachable(format!(
                        "MQTT broker at {url} refused the subscription to \"{topic}\""
                    )));
                }
                break;
            }
        }
        Ok(Reader {
            client,
            events,
            topic,
            in_doubt: InDoubt::from_position(position.as_ref()),
            batch: Vec::new(),
            to_ack: Vec::new(),
            early,
        })
    }

    fn failed(&self, e: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::Unreachable(format!("reading MQTT topic \"{}\": {e}", self.topic))
    }

    /// The next message from the broker (driving the connection meanwhile).
    async fn next(&mut self) -> Result<Publish, ConnectorError> {
        if let Some(p) = self.early.pop_front() {
            return Ok(p);
        }
        loop {
            match self.events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return Ok(p),
                Ok(_) => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    fn take(&mut self, p: Publish) -> Option<Message> {
        let id = fnv(&[p.topic.as_bytes(), &p.payload]);
        self.batch.push(id);
        let keep = self.in_doubt.admit(id, p.dup);
        let m = keep.then(|| Message {
            payload: Some(p.payload.to_vec()),
            subject: Some(p.topic.clone()),
            position: format!("topic {} packet {}", p.topic, p.pkid),
            ..Default::default()
        });
        self.to_ack.push(p);
        m
    }
}

#[async_trait::async_trait]
impl super::runner::Next for Reader {
    async fn next_message(&mut self) -> Result<Option<Message>, ConnectorError> {
        let p = self.next().await?;
        Ok(self.take(p))
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
        for p in std::mem::take(&mut self.to_ack) {
            self.client.ack(&p).await.map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
}

/// After DROP: ends the relation's persistent session, so that the broker
/// stops keeping messages for it (a clean-session connect discards it).
pub async fn drop_upstream(def: &RelationDef, spec: &SourceSpec) {
    let url = spec.option("url").unwrap_or(DEFAULT_URL).to_string();
    let Ok((host, port)) = host_port(&url) else {
        return;
    };
    let mut options = MqttOptions::new(client_id(def, spec), host, port);
    options.set_clean_session(true);
    let (client, mut events) = AsyncClient::new(options, 8);
    let done = async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.disconnect().await;
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(CONNECT_TIMEOUT, done).await.is_err() {
        tracing::warn!(relation = %def.name, "MQTT session of a dropped source not ended");
    }
}
