//! Fake sanitation bin-fill sensors publishing to an MQTT broker, as the department's
//! sensor gateway does: one JSON reading per bin on `<prefix>/<bin_id>/reading`, QoS 1.
//!
//! ```json
//! {"bin_id": "BIN-0042", "fill_level": 97, "overflow": true,
//!  "lon": 105.43, "lat": 28.90, "time": "2026-11-21T10:23:00+08:00", "battery": 81}
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::generator::Address;

/// The default topic prefix; the hub subscribes to `<prefix>/+/reading`.
pub const TOPIC_PREFIX: &str = "sanitation/bins";

/// The topic a bin publishes on.
pub fn bin_topic(prefix: &str, bin_id: &str) -> String {
    format!("{prefix}/{bin_id}/reading")
}

/// A reading as the sensors write it (local time, UTC+8).
pub fn reading(
    bin_id: &str,
    fill: u8,
    overflow: bool,
    lon: f64,
    lat: f64,
    at: DateTime<Utc>,
) -> Value {
    let local = at.with_timezone(&FixedOffset::east_opt(8 * 3600).expect("UTC+8"));
    json!({
        "bin_id": bin_id, "fill_level": fill, "overflow": overflow,
        "lon": lon, "lat": lat, "time": local.to_rfc3339(), "battery": 80,
    })
}

/// A connection to the broker for publishing readings.
pub struct SensorGateway {
    client: AsyncClient,
    published: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    driver: JoinHandle<()>,
}

impl SensorGateway {
    /// Connect as `client_id`; the connection is kept (and re-made) in the background.
    pub async fn connect(host: &str, port: u16, client_id: &str) -> Self {
        Self::connect_with(host, port, client_id, None).await
    }

    /// As [`SensorGateway::connect`], with a username and password.
    pub async fn connect_with(
        host: &str,
        port: u16,
        client_id: &str,
        login: Option<(&str, &str)>,
    ) -> Self {
        let mut options = MqttOptions::new(client_id, host, port);
        options
            .set_keep_alive(Duration::from_secs(10))
            // Room for the oversized readings the hub's tests send on purpose.
            .set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut events) = AsyncClient::new(options, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let driver = tokio::spawn({
            let acked = acked.clone();
            let failures = failures.clone();
            async move {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(e) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(error = %e, "sensor gateway: broker connection failed");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        });
        SensorGateway {
            client,
            published: Arc::new(AtomicU64::new(0)),
            acked,
            failures,
            driver,
        }
    }

    /// Publish one reading on its bin's topic under `prefix`.
    pub async fn publish(&self, prefix: &str, reading: &Value) -> Result<(), String> {
        let bin = reading
            .get("bin_id")
            .and_then(Value::as_str)
            .unwrap_or("unknown");
        self.publish_raw(&bin_topic(prefix, bin), reading.to_string().into_bytes())
            .await
    }

    /// Publish exact bytes on a topic (malformed readings for tests).
    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) -> Result<(), String> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| format!("publishing to {topic}: {e}"))?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Wait until the broker acknowledged everything published, or fail after `within`
    /// naming how far it got (a broker that is down shows here).
    pub async fn flush(&self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (p, a) = (
                self.published.load(Ordering::Relaxed),
                self.acked.load(Ordering::Relaxed),
            );
            if a >= p {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the broker acknowledged {a} of {p} readings within {within:?} ({} connection failures)",
                    self.failures.load(Ordering::Relaxed)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Connection failures seen so far.
    pub fn connection_failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

impl Drop for SensorGateway {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Bins at gazetteer addresses that fill up, overflow and are emptied, each reporting every
/// tick: what the live demo publishes. Overflowing bins keep reporting (so the hub's
/// debouncing is visible: one task per overflow, not one per reading).
pub struct LiveBins {
    task: JoinHandle<()>,
}

impl LiveBins {
    pub fn start(
        gateway: Arc<SensorGateway>,
        prefix: String,
        addresses: &[Address],
        bins: usize,
        interval: Duration,
        seed: u64,
    ) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut state: Vec<(String, f64, f64, f64)> = (0..bins.max(1))
            .map(|i| {
                let a = &addresses[rng.random_range(0..addresses.len().max(1))];
                (
                    format!("BIN-{:04}", i + 1),
                    a.lon,
                    a.lat,
                    rng.random_range(0.0..60.0),
                )
            })
            .collect();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let now = Utc::now();
                for (bin, lon, lat, fill) in &mut state {
                    *fill += rng.random_range(0.0..6.0);
                    // Overflowing bins are emptied by a crew after a while.
                    if *fill > 100.0 && rng.random_bool(0.1) {
                        *fill = rng.random_range(0.0..10.0);
                    }
                    let level = fill.clamp(0.0, 100.0) as u8;
                    let r = reading(bin, level, *fill >= 100.0, *lon, *lat, now);
                    if let Err(e) = gateway.publish(&prefix, &r).await {
                        tracing::warn!(error = %e, "simulated bin sensor could not publish");
                    }
                }
            }
        });
        LiveBins { task }
    }
}

impl Drop for LiveBins {
    fn drop(&mut self) {
        self.task.abort();
    }
}
