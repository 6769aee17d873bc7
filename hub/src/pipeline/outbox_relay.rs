//! The outbox relay: delivers task events, in the order they were committed, to the Kafka
//! task topics and to the webhooks departments configured for feedback on their records.
//!
//! Each destination is relayed by one process at a time (a lease in the store), so every hub
//! process can run a relay: whichever holds a destination's lease delivers, the others stand
//! by. A failed delivery is retried with backoff, and nothing after it in that destination
//! is delivered first; the failure's reason is kept and shown by `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use futures::future::try_join_all;
use hub_connectors::backoff::Backoff;
use hub_connectors::webhook::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use hub_connectors::Secret;
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::Department;
use hub_store::{OutboxEvent, TaskEvent, TaskStore};
use serde::Serialize;
use tracing::Instrument;

use crate::config::MAX_DELIVERY_TIMEOUT;
use crate::infra::kafka::Kafka;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;

/// How long a lease lasts; a process that dies loses its destinations after this.
const LEASE: Duration = Duration::from_secs(15);
/// A lease older than this is renewed before the next delivery.
const RENEW_AFTER: Duration = Duration::from_secs(5);
/// How often an idle relay looks for new entries.
const IDLE_POLL: Duration = Duration::from_millis(200);
const BATCH: u32 = 200;

/// Where events go.
pub enum Destination {
    /// `TaskDispatched` to the tasks topic, `TaskStatusChanged` to the status topic.
    Kafka {
        kafka: Kafka,
        codec: Arc<Codec>,
        tasks_topic: String,
        status_topic: String,
    },
    /// Events of tasks that came from `department`, signed with HMAC-SHA256.
    Webhook {
        department: Department,
        url: String,
        secret: Secret,
        client: reqwest::Client,
    },
}

impl Destination {
    pub fn name(&self) -> String {
        match self {
            Destination::Kafka { .. } => "kafka".to_owned(),
            Destination::Webhook { department, .. } => format!("webhook:{department}"),
        }
    }

    fn department(&self) -> Option<Department> {
        match self {
            Destination::Kafka { .. } => None,
            Destination::Webhook { department, .. } => Some(*department),
        }
    }

    /// Deliver a batch in order, keeping the lease. On failure (or a lost lease), returns
    /// how many were delivered before it.
    async fn deliver(
        &self,
        batch: &[OutboxEvent],
        lease: &mut Lease<'_>,
    ) -> Result<(), (usize, anyhow::Error)> {
        match self {
            Destination::Kafka {
                kafka,
                codec,
                tasks_topic,
                status_topic,
            } => {
                // Sent together, acknowledged together; a partial failure re-sends the batch
                // (consumers key on task id and seq).
                // Returned events have no task and no Avro schema yet: departments receive them
                // by webhook and through `GET /api/v1/returns`.
                let sends = batch
                    .iter()
                    .filter(|e| !matches!(e.event, TaskEvent::EventReturned(_)))
                    .map(|e| async move {
                        let (topic, payload) = match &e.event {
                            TaskEvent::TaskDispatched(d) => (
                                tasks_topic,
                                codec.encode(&value_subject(tasks_topic), d).await,
                            ),
                            TaskEvent::TaskStatusChanged(c) => (
                                status_topic,
                                codec.encode(&value_subject(status_topic), c).await,
                            ),
                            TaskEvent::EventReturned(_) => unreachable!("filtered above"),
                        };
                        let payload =
                            payload.with_context(|| format!("encoding outbox entry {}", e.id))?;
                        kafka
                            .produce(topic, e.event.key(), &payload, &[])
                            .await
                            .with_context(|| format!("producing outbox entry {} to {topic}", e.id))
                    });
                let sent = tokio::time::timeout(MAX_DELIVERY_TIMEOUT, try_join_all(sends))
                    .await
                    .map_err(|_| {
                        (
                            0,
                            anyhow::anyhow!(
                                "Kafka did not acknowledge the batch within {} s",
                                MAX_DELIVERY_TIMEOUT.as_secs()
                            ),
                        )
                    })?;
                sent.map(|_| ()).map_err(|e| (0, e))
            }
            Destination::Webhook {
                url,
                secret,
                client,
                ..
            } => {
                for (i, e) in batch.iter().enumerate() {
                    lease.keep().await.map_err(|err| (i, err))?;
                    post_signed(client, url, secret, e)
                        .await
                        .map_err(|err| (i, err))?;
                }
                Ok(())
            }
        }
    }
}

/// The JSON a departmental webhook receives: the outbox id (an idempotency key, increasing
/// in delivery order) and the event.
#[derive(Serialize)]
struct WebhookBody<'a> {
    id: i64,
    #[serde(flatten)]
    event: &'a TaskEvent,
}

async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    e: &OutboxEvent,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&WebhookBody {
        id: e.id,
        event: &e.event,
    })?;
    let timestamp = Utc::now().timestamp();
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, webhook::sign(secret, timestamp, &body))
        .header("X-Hub-Event-Id", e.id.to_string())
        .body(body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        anyhow::bail!(
            "POST {url}: HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        );
    }
    Ok(())
}

/// A destination's lease as this relay holds it.
struct Lease<'a> {
    store: &'a dyn TaskStore,
    destination: &'a str,
    holder: &'a str,
    taken: std::time::Instant,
    /// Set once another process holds the lease: this relay must stop at once.
    lost: bool,
}

impl Lease<'_> {
    /// Renews the lease when it is getting old; an error when another holder has it now
    /// (this relay must stop delivering).
    async fn keep(&mut self) -> anyhow::Result<()> {
        if self.taken.elapsed() < RENEW_AFTER {
            return Ok(());
        }
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).expect("lease fits");
        if !self
            .store
            .lease_destination(self.destination, self.holder, now, until)
            .await?
        {
            self.lost = true;
            anyhow::bail!(
                "the lease on {} passed to another process",
                self.destination
            );
        }
        self.taken = std::time::Instant::now();
        Ok(())
    }
}

pub struct Relay {
    pub destination: Destination,
    pub store: Arc<dyn TaskStore>,
    /// This process's name in leases.
    pub holder: String,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for Relay {
    async fn run(&mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let span = tracing::info_span!("outbox_relay", destination = %self.destination.name());
        self.relay(shutdown).instrument(span).await;
        Ok(())
    }
}

impl Relay {
    async fn relay(&self, mut shutdown: Shutdown) {
        let name = self.destination.name();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        while !shutdown.is_stopping() {
            match self.step(&name, &mut backoff).await {
                Ok(Step::Busy) => {}
                Ok(Step::Idle) => {
                    shutdown.sleep(IDLE_POLL).await;
                }
                Ok(Step::Wait(d)) => {
                    shutdown.sleep(d.min(Duration::from_secs(1))).await;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "outbox relay step failed");
                    shutdown.sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn step(&self, name: &str, backoff: &mut Backoff) -> anyhow::Result<Step> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(LEASE).expect("lease fits");
        if !self
            .store
            .lease_destination(name, &self.holder, now, until)
            .await?
        {
            return Ok(Step::Wait(LEASE / 3));
        }
        let mut lease = Lease {
            store: self.store.as_ref(),
            destination: name,
            holder: &self.holder,
            taken: std::time::Instant::now(),
            lost: false,
        };
        let state = self.store.outbox_destination(name).await?;
        if let Some(next) = state.next_attempt_at.filter(|n| *n > now) {
            return Ok(Step::Wait((next - now).to_std().unwrap_or_default()));
        }
        let batch = self
            .store
            .outbox_after(state.delivered_up_to, self.destination.department(), BATCH)
            .await?;
        let Some(last) = batch.last() else {
            return Ok(Step::Idle);
        };
        match self.destination.deliver(&batch, &mut lease).await {
            Ok(()) => {
                self.store
                    .outbox_delivered(name, &self.holder, last.id, Utc::now())
                    .await?;
                metrics::counter!(telemetry::OUTBOX_DELIVERED, "destination" => name.to_owned())
                    .increment(batch.len() as u64);
                backoff.reset();
                Ok(Step::Busy)
            }
            Err((delivered, error)) if lease.lost => {
                // Another process holds the destination now and delivers from the cursor
                // as stored; what this relay delivered meanwhile is delivered again (the
                // receivers key on the outbox id).
                tracing::warn!(error = %format!("{error:#}"), delivered, "outbox lease lost mid-batch; stopping");
                Ok(Step::Wait(LEASE / 3))
            }
            Err((delivered, error)) => {
                if delivered > 0 {
                    self.store
                        .outbox_delivered(name, &self.holder, batch[delivered - 1].id, Utc::now())
                        .await?;
                    metrics::counter!(telemetry::OUTBOX_DELIVERED, "destination" => name.to_owned()).increment(delivered as u64);
                }
                let delay = backoff.next_delay();
                let reason = format!("{error:#}");
                tracing::warn!(error = %reason, retry_in_ms = delay.as_millis() as u64, entry = batch[delivered].id, "delivery failed");
                metrics::counter!(telemetry::OUTBOX_FAILURES, "destination" => name.to_owned())
                    .increment(1);
                let now = Utc::now();
                let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                self.store
                    .outbox_failed(name, &self.holder, &reason, now, next)
                    .await?;
                Ok(Step::Wait(delay))
            }
        }
    }
}

enum Step {
    /// Delivered a batch; look again at once.
    Busy,
    /// Nothing to deliver.
    Idle,
    /// Not ours now, or backing off.
    Wait(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_relay_renews_its_lease_and_notices_when_another_process_took_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = hub_store::open(&format!("sqlite://{}/hub.db", dir.path().display()))
            .await
            .unwrap();
        let t0 = Utc::now();
        let lease_for = chrono::Duration::from_std(LEASE).unwrap();
        assert!(store
            .lease_destination("webhook:police", "a", t0, t0 + lease_for)
            .await
            .unwrap());
        let old = std::time::Instant::now() - RENEW_AFTER - Duration::from_millis(10);
        let mut lease = Lease {
            store: store.as_ref(),
            destination: "webhook:police",
            holder: "a",
            taken: old,
            lost: false,
        };
        // An old lease is renewed before the next delivery.
        lease.keep().await.unwrap();
        assert!(lease.taken > old && !lease.lost);
        // Process a stalls past its lease; b takes the destination over.
        let later = t0 + lease_for * 3;
        assert!(store
            .lease_destination("webhook:police", "b", later, later + lease_for * 10)
            .await
            .unwrap());
        lease.taken = old;
        let err = lease.keep().await.unwrap_err().to_string();
        assert!(lease.lost, "{err}");
        assert!(err.contains("passed to another process"), "{err}");
    }
}
