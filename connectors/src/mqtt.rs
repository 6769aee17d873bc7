//! Source: sanitation bin sensors on MQTT, debounced into overflow episodes.
//!
//! The source subscribes to a topic filter (e.g. `sanitation/bins/+/reading`) with QoS 1 on a
//! persistent session (fixed client id, clean session off) and acknowledges a reading only
//! in [`Source::commit`], after the episode events it caused are in Kafka and the debouncer
//! state is saved as the cursor. So the broker keeps every reading the hub has not safely
//! handled, including those sent while the hub was down, and delivers them again.
//!
//! A batch's records are *episode records* (one per overflow that began), not readings:
//!
//! ```json
//! {"episode_id": "BIN-0042@20261121T022300Z", "bin_id": "BIN-0042",
//!  "opened_at": "2026-11-21T02:23:00Z", "fill_level": 97.0, "lon": 105.43, "lat": 28.9,
//!  "topic": "sanitation/bins/BIN-0042/reading", "reading": { ...the reading's own bytes... }}
//! ```
//! mapped by [`crate::mapping::RecordFormat::SanitationBinEpisode`]. A reading that cannot be
//! parsed is returned in [`Batch::rejected`] with its exact bytes, for the dead-letter topic.
//!
//! The broker bounds how many unacknowledged readings it sends at once (Mosquitto's
//! `max_inflight_messages`, 20 by default), so a batch holds at most that many readings.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet,
    Publish, QoS, SubscribeReasonCode,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::{duration, RateLimitConfig};
use crate::debounce::{DebounceConfig, Debouncer, Episode, Observed, Reading};
use crate::source::{
    Batch, Outcome, Receipt, ReceiptInner, Rejected, Source, SourceError, SourceKind,
};
use crate::{RawRecord, Secret};

/// The largest reading taken (a reading is a few hundred bytes of JSON).
pub const MAX_READING_BYTES: usize = 64 * 1024;

/// How to reach the broker and what to subscribe to, as `[[connectors]] kind = "mqtt"`
/// configures it. `Debug` shows the password's variable, never a password.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// The connector (also the `source_system` of its events).
    pub name: String,
    pub department: String,
    pub rate_limit: Option<RateLimitConfig>,
    pub host: String,
    pub port: u16,
    /// Must stay the same across restarts: the broker keeps the session (subscription and
    /// unacknowledged readings) under this id. Unique per connector; empty means
    /// `hub-<name>`.
    pub client_id: String,
    /// Topic filter; a single-level `+` names the bin, and the reading's `bin_id` must match it.
    pub topic: String,
    pub username: Option<String>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    #[serde(
        rename = "keep_alive_secs",
        deserialize_with = "duration::secs::deserialize"
    )]
    pub keep_alive: Duration,
    #[serde(
        rename = "connect_timeout_ms",
        deserialize_with = "duration::ms::deserialize"
    )]
    pub connect_timeout: Duration,
    /// Most readings in one batch.
    pub max_batch: usize,
    /// How long a batch gathers readings after the first one.
    #[serde(rename = "linger_ms", deserialize_with = "duration::ms::deserialize")]
    pub linger: Duration,
    pub debounce: DebounceConfig,
}

impl Default for MqttConfig {
    /// Port 1883, keep-alive 30 s, connect timeout 5 s, batches of up to 100 readings
    /// gathered for 200 ms, default debounce thresholds.
    fn default() -> Self {
        MqttConfig {
            name: String::new(),
            department: String::new(),
            rate_limit: None,
            host: String::new(),
            port: 1883,
            client_id: String::new(),
            topic: String::new(),
            username: None,
            password_env: None,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_batch: 100,
            linger: Duration::from_millis(200),
            debounce: DebounceConfig::default(),
        }
    }
}

impl MqttConfig {
    pub fn new(
        host: impl Into<String>,
        port: u16,
        client_id: impl Into<String>,
        topic: impl Into<String>,
    ) -> Self {
        MqttConfig {
            host: host.into(),
            port,
            client_id: client_id.into(),
            topic: topic.into(),
            ..MqttConfig::default()
        }
    }

    /// The client id the broker keeps the session under.
    pub fn client_id(&self) -> String {
        if self.client_id.trim().is_empty() {
            format!("hub-{}", self.name)
        } else {
            self.client_id.clone()
        }
    }
}

pub struct MqttSource {
    client: AsyncClient,
    events: EventLoop,
    config: MqttConfig,
    debouncer: Debouncer,
    origin: String,
    bin_level: Option<usize>,
    /// The last snapshot handed out as a cursor, to hand out only changes.
    last_cursor: Option<String>,
}

impl fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSource")
            .field("origin", &self.origin)
            .field("config", &self.config)
            .finish()
    }
}

impl MqttSource {
    /// Check the configuration; nothing connects until the first batch is asked for.
    pub fn new(mut config: MqttConfig, password: Option<Secret>) -> Result<Self, SourceError> {
        config.client_id = config.client_id();
        let origin = format!("mqtt://{}:{}/{}", config.host, config.port, config.topic);
        let bad = |detail: String| SourceError::Misconfigured {
            origin: origin.clone(),
            detail,
        };
        let bin_level = validate_filter(&config.topic).map_err(bad)?;
        if config.client_id.trim().is_empty() || config.client_id == "hub-" {
            return Err(bad(
                "client_id is empty: a fixed id is what keeps the broker session across restarts"
                    .into(),
            ));
        }
        let debouncer = Debouncer::new(config.debounce.clone()).map_err(bad)?;
        let mut options =
            MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
        options
            .set_keep_alive(config.keep_alive.max(Duration::from_secs(5)))
            .set_clean_session(false)
            .set_manual_acks(true)
            // Room for a whole batch of acknowledgements plus the subscription.
            .set_request_channel_capacity(config.max_batch.max(1) + 16)
            // Incoming packets up to 16 MiB are taken and, when larger than a reading can be,
            // dead-lettered: a packet over the client's limit would drop the connection, and
            // the broker would redeliver it at once, forever.
            .set_max_packet_size(16 * 1024 * 1024, 256 * 1024);
        if let Some(user) = &config.username {
            let password = password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default();
            options.set_credentials(user.clone(), password);
        }
        let (client, mut events) = AsyncClient::new(options, config.max_batch.max(1) + 16);
        events
            .network_options
            .set_connection_timeout(config.connect_timeout.as_secs().max(1));
        Ok(MqttSource {
            client,
            events,
            config,
            debouncer,
            origin,
            bin_level,
            last_cursor: None,
        })
    }

    /// Bins currently overflowing (for the `hub_connector_open_episodes` gauge).
    pub fn open_episodes(&self) -> usize {
        self.debouncer.open_episodes()
    }

    fn error(&self, e: ConnectionError) -> SourceError {
        let origin = self.origin.clone();
        match e {
            ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
            ) => SourceError::Unauthorized {
                origin,
                detail: format!("broker refused the connection ({code:?}); check the connector's username and password"),
            },
            ConnectionError::ConnectionRefused(code @ ConnectReturnCode::BadClientId) => {
                SourceError::Misconfigured {
                    origin,
                    detail: format!("broker refused client id `{}` ({code:?})", self.config.client_id),
                }
            }
            ConnectionError::NetworkTimeout => SourceError::Unavailable {
                origin,
                detail: format!("no answer within {} s", self.config.connect_timeout.as_secs().max(1)),
            },
            other => SourceError::Unavailable {
                origin,
                detail: other.to_string(),
            },
        }
    }

    /// Turn the gathered readings into a batch: parse, debounce, render episodes.
    fn build_batch(&mut self, publishes: Vec<Publish>) -> Batch {
        let now = Utc::now();
        let mut records = Vec::new();
        let mut rejected = Vec::new();
        for p in &publishes {
            let uri = format!(
                "mqtt://{}:{}/{}",
                self.config.host, self.config.port, p.topic
            );
            let raw = || RawRecord {
                bytes: p.payload.to_vec(),
                uri: uri.clone(),
            };
            if p.payload.len() > MAX_READING_BYTES {
                rejected.push(Rejected {
                    record: raw(),
                    reason: format!(
                        "the reading is {} bytes; a reading is at most {MAX_READING_BYTES} bytes",
                        p.payload.len()
                    ),
                });
                continue;
            }
            let reading = match Reading::parse(&p.payload) {
                Ok(r) => r,
                Err(reason) => {
                    rejected.push(Rejected {
                        record: raw(),
                        reason,
                    });
                    continue;
                }
            };
            if let Some(named) = self.bin_level.and_then(|i| p.topic.split('/').nth(i)) {
                if named != reading.bin_id {
                    rejected.push(Rejected {
                        record: raw(),
                        reason: format!(
                            "field `bin_id`: `{}` differs from the bin `{named}` named by topic `{}`",
                            reading.bin_id, p.topic
                        ),
                    });
                    continue;
                }
            }
            match self.debouncer.observe(&reading, now) {
                Ok(Observed::Opened(episode)) => {
                    records.push(RawRecord {
                        bytes: episode_record(&episode, &p.topic, &p.payload),
                        uri,
                    });
                }
                Ok(_) => {}
                Err(reason) => rejected.push(Rejected {
                    record: raw(),
                    reason,
                }),
            }
        }
        let snapshot = self.debouncer.snapshot();
        let cursor = (self.last_cursor.as_deref() != Some(snapshot.as_str())).then(|| {
            self.last_cursor = Some(snapshot.clone());
            snapshot
        });
        Batch {
            records,
            rejected,
            cursor,
            more: true,
            receipt: Receipt(ReceiptInner::Mqtt(publishes)),
        }
    }
}

#[async_trait]
impl Source for MqttSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Mqtt
    }

    async fn start(&mut self, cursor: Option<String>) -> Result<(), SourceError> {
        if let Some(cursor) = cursor {
            self.debouncer
                .restore(&cursor)
                .map_err(|detail| SourceError::Misconfigured {
                    origin: self.origin.clone(),
                    detail,
                })?;
            self.last_cursor = Some(cursor);
        }
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        let mut gathered: Vec<Publish> = Vec::new();
        let mut deadline: Option<tokio::time::Instant> = None;
        while gathered.len() < self.config.max_batch.max(1) {
            let polled = match deadline {
                None => self.events.poll().await,
                Some(d) => match tokio::time::timeout_at(d, self.events.poll()).await {
                    Ok(polled) => polled,
                    Err(_) => break,
                },
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    tracing::info!(origin = %self.origin, session_present = ack.session_present, "connected to the MQTT broker");
                    // Subscribing again is harmless when the broker kept the session, and
                    // needed when it did not (a broker restarted without persistence).
                    self.client
                        .try_subscribe(self.config.topic.clone(), QoS::AtLeastOnce)
                        .map_err(|e| SourceError::Unavailable {
                            origin: self.origin.clone(),
                            detail: format!("subscribing: {e}"),
                        })?;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                        return Err(SourceError::Misconfigured {
                            origin: self.origin.clone(),
                            detail: "the broker refused the subscription; check the topic and the user's ACL".into(),
                        });
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + self.config.linger);
                    }
                    gathered.push(p);
                }
                Ok(_) => {}
                Err(e) => {
                    if gathered.is_empty() {
                        return Err(self.error(e));
                    }
                    // Hand over what arrived; the broker redelivers anything unacknowledged
                    // and the debouncer sees those copies as stale.
                    tracing::warn!(origin = %self.origin, error = %e, "MQTT connection lost mid-batch");
                    break;
                }
            }
        }
        Ok(self.build_batch(gathered))
    }

    async fn commit(&mut self, receipt: Receipt, _: &[Outcome]) -> Result<(), SourceError> {
        if let ReceiptInner::Mqtt(publishes) = receipt.0 {
            for p in &publishes {
                // Sent with the next poll; a lost ack only means a redelivery, seen as stale.
                if let Err(e) = self.client.try_ack(p) {
                    return Err(SourceError::Unavailable {
                        origin: self.origin.clone(),
                        detail: format!("acknowledging readings: {e}"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Check the topic filter; returns the level of the `+` naming the bin, if any.
fn validate_filter(topic: &str) -> Result<Option<usize>, String> {
    if topic.is_empty() {
        return Err("topic is empty".into());
    }
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("topic `{topic}`: `#` must be a whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("topic `{topic}`: `+` must be a whole level"));
        }
    }
    let plus: Vec<usize> = levels
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == "+")
        .map(|(i, _)| i)
        .collect();
    Ok(match plus.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

#[derive(Serialize)]
struct EpisodeRecord<'a> {
    episode_id: &'a str,
    bin_id: &'a str,
    opened_at: String,
    fill_level: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lon: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lat: Option<f64>,
    topic: &'a str,
    reading: &'a RawValue,
}

/// The record for an opened episode, with the opening reading's own bytes inside.
pub fn episode_record(episode: &Episode, topic: &str, reading: &[u8]) -> Vec<u8> {
    // The reading parsed as JSON already, so it is valid UTF-8 and a valid JSON value.
    let text = std::str::from_utf8(reading).unwrap_or("null");
    let raw: &RawValue = serde_json::from_str(text)
        .unwrap_or_else(|_| serde_json::from_str("null").expect("null is JSON"));
    let record = EpisodeRecord {
        episode_id: &episode.id,
        bin_id: &episode.bin_id,
        opened_at: episode.opened_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        fill_level: episode.fill_pct,
        lon: episode.point.map(|p| p.0),
        lat: episode.point.map(|p| p.1),
        topic,
        reading: raw,
    };
    serde_json::to_vec(&record).expect("an episode record serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_are_checked_and_the_bin_level_found() {
        assert_eq!(validate_filter("sanitation/bins/+/reading"), Ok(Some(2)));
        assert_eq!(validate_filter("sanitation/#"), Ok(None));
        assert!(validate_filter("sanitation/#/x").is_err());
        assert!(validate_filter("sanitation/bin+/x").is_err());
        assert!(validate_filter("").is_err());
    }

    #[test]
    fn config_debug_hides_the_password() {
        let mut c = MqttConfig::new(
            "127.0.0.1",
            1883,
            "hub-sanitation",
            "sanitation/bins/+/reading",
        );
        c.username = Some("hub".into());
        c.password_env = Some("MQTT_PASSWORD".into());
        let source = MqttSource::new(c, Some(Secret::new("pa55word"))).unwrap();
        let shown = format!("{source:?}");
        assert!(
            !shown.contains("pa55word") && shown.contains("MQTT_PASSWORD"),
            "{shown}"
        );
    }
}
