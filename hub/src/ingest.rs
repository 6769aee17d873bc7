//! The ingest loop of one pull connector: fetch a page from the departmental system, map
//! each record to a civic event, produce it to the department's feed topic (or the record to
//! the dead-letter topic), and only then save the cursor.
//!
//! Saving the cursor after the broker has acknowledged the page means a crash can re-send a
//! page but never skip one; the router's idempotent task creation absorbs the re-send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::future::try_join_all;
use hub_connectors::backoff::Backoff;
use hub_connectors::http_poll::{HttpPollConfig, HttpPoller, Page, PollError};
use hub_connectors::mapping::{map_record, MappingContext};
use hub_router::city::City;
use hub_schemas::codec::Codec;
use hub_schemas::event::{CivicEvent, Department};
use hub_store::TaskStore;
use tracing::Instrument;

use crate::config::ConnectorConfig;
use crate::dead_letter::{self, DeadLetter};
use crate::health::Health;
use crate::kafka::Kafka;
use crate::shutdown::Shutdown;
use crate::telemetry;

/// Everything one connector needs; built by the hub from its config.
pub struct Connector {
    pub name: String,
    pub department: Department,
    pub poller: HttpPoller,
    pub poll_interval: Duration,
    pub feed_topic: String,
    pub dead_letter_topic: String,
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub store: Arc<dyn TaskStore>,
    pub city: Arc<City>,
    pub health: Arc<Health>,
}

impl Connector {
    pub fn from_config(
        config: &ConnectorConfig,
        token: String,
        feed_topic: String,
        dead_letter_topic: String,
        shared: &crate::app::Shared,
    ) -> anyhow::Result<Self> {
        let poller = HttpPoller::new(HttpPollConfig {
            base_url: config.base_url.clone(),
            path: config.path.clone(),
            token,
            page_size: config.page_size,
            cursor_param: config.cursor_param.clone(),
            items_pointer: config.items_pointer.clone(),
            cursor_pointer: config.cursor_pointer.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
        })
        .with_context(|| format!("connector {}: building its HTTP client", config.name))?;
        Ok(Connector {
            name: config.name.clone(),
            department: config.department(),
            poller,
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            feed_topic,
            dead_letter_topic,
            kafka: shared.kafka.clone(),
            codec: shared.codec.clone(),
            store: shared.store.clone(),
            city: shared.city.clone(),
            health: shared.health.clone(),
        })
    }

    /// Run until shutdown. Outages are retried with backoff; nothing here ends the loop.
    pub async fn run(self, mut shutdown: Shutdown) {
        self.health.register(&self.name);
        let span = tracing::info_span!("connector", connector = %self.name);
        async move {
            let mut cursor = self.load_cursor(&mut shutdown).await;
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            tracing::info!(cursor = ?cursor, "connector started");
            while !shutdown.is_stopping() {
                let started = Instant::now();
                let fetched = self.poller.fetch_page(cursor.as_deref()).await;
                metrics::histogram!(telemetry::CONNECTOR_POLL_SECONDS, "connector" => self.name.clone())
                    .record(started.elapsed().as_secs_f64());
                let page = match fetched {
                    Ok(page) => page,
                    Err(e) => {
                        metrics::counter!(telemetry::CONNECTOR_POLLS, "connector" => self.name.clone(), "outcome" => "error").increment(1);
                        let must_act = !e.is_transient();
                        self.health.failure(&self.name, &e.to_string(), must_act);
                        let delay = retry_delay(&e, &mut backoff);
                        tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "poll failed");
                        shutdown.sleep(delay).await;
                        continue;
                    }
                };
                metrics::counter!(telemetry::CONNECTOR_POLLS, "connector" => self.name.clone(), "outcome" => "ok").increment(1);
                let full_page = page.records.len() as u32 >= self.poller.config().page_size;
                match self.publish(&page).await {
                    Ok((produced, dead)) => {
                        if let Some(next) = page.next_cursor.filter(|n| Some(n) != cursor.as_ref()) {
                            self.save_cursor(&next, &mut shutdown).await;
                            cursor = Some(next);
                        }
                        backoff.reset();
                        self.health.success(&self.name, produced, dead);
                    }
                    Err(e) => {
                        // The cursor stays: the whole page is sent again once Kafka is back.
                        self.health.failure(&self.name, &format!("producing to Kafka: {e:#}"), false);
                        tracing::warn!(error = %e, "publishing a page failed; it will be sent again");
                        shutdown.sleep(backoff.next_delay()).await;
                        continue;
                    }
                }
                if !full_page {
                    shutdown.sleep(self.poll_interval).await;
                }
            }
            tracing::info!("connector stopped");
        }
        .instrument(span)
        .await
    }

    /// Produce every record of a page; returns (produced, dead-lettered) once the broker has
    /// acknowledged all of them.
    async fn publish(&self, page: &Page) -> anyhow::Result<(u64, u64)> {
        let received_at = Utc::now();
        let ctx = MappingContext {
            source_system: &self.name,
            received_at,
        };
        let mut events = Vec::new();
        let mut dead = 0u64;
        for record in &page.records {
            match map_record(self.department, ctx, record) {
                Ok(event) => {
                    let payload = self
                        .codec
                        .encode(&hub_schemas::codec::value_subject(&self.feed_topic), &event)
                        .await
                        .context("encoding an event")?;
                    events.push((event, payload));
                }
                Err(reason) => {
                    dead += 1;
                    metrics::counter!(telemetry::CONNECTOR_RECORDS, "connector" => self.name.clone(), "outcome" => "dead_lettered").increment(1);
                    let reason = reason.to_string();
                    dead_letter::send(
                        &self.kafka,
                        &self.dead_letter_topic,
                        &DeadLetter {
                            stage: "connector.mapping",
                            source: &self.name,
                            origin: &record.uri,
                            key: &self.name,
                            reason: &reason,
                            original: &record.bytes,
                        },
                    )
                    .await;
                }
            }
        }
        // All sends are queued at once and awaited together; per-partition order holds.
        let sends = events.iter().map(|(event, payload)| {
            let key = self.partition_key(event);
            let event_id = event.event_id.clone();
            async move {
                self.kafka
                    .produce(
                        &self.feed_topic,
                        &key,
                        payload,
                        &[("hub.event_id", event_id.as_bytes())],
                    )
                    .await
                    .with_context(|| format!("event {event_id}"))
            }
        });
        try_join_all(sends).await?;
        for (event, _) in &events {
            tracing::debug!(event_id = %event.event_id, source_id = %event.source_id, "event produced");
        }
        let produced = events.len() as u64;
        metrics::counter!(telemetry::CONNECTOR_RECORDS, "connector" => self.name.clone(), "outcome" => "produced").increment(produced);
        Ok((produced, dead))
    }

    /// Feed topics are keyed by community when the connector can place the event, so one
    /// community's events stay in order on one partition; else by source id.
    fn partition_key(&self, event: &CivicEvent) -> String {
        self.city
            .resolve(&event.location)
            .community_code
            .unwrap_or_else(|| event.source_id.clone())
    }

    async fn load_cursor(&self, shutdown: &mut Shutdown) -> Option<String> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.store.load_cursor(&self.name).await {
                Ok(c) => return c,
                Err(e) => {
                    metrics::counter!(telemetry::STORE_ERRORS, "operation" => "load_cursor")
                        .increment(1);
                    self.health
                        .failure(&self.name, &format!("loading cursor: {e}"), false);
                    if !shutdown.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn save_cursor(&self, cursor: &str, shutdown: &mut Shutdown) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while let Err(e) = self.store.save_cursor(&self.name, cursor).await {
            metrics::counter!(telemetry::STORE_ERRORS, "operation" => "save_cursor").increment(1);
            self.health
                .failure(&self.name, &format!("saving cursor: {e}"), false);
            if !shutdown.sleep(backoff.next_delay()).await {
                return;
            }
        }
    }
}

/// Refused credentials are retried slowly (an operator must fix them; no crash loop, no
/// hammering); outages back off exponentially.
fn retry_delay(e: &PollError, backoff: &mut Backoff) -> Duration {
    if e.is_transient() {
        backoff.next_delay()
    } else {
        backoff.next_delay().max(Duration::from_secs(30))
    }
}
