//! The routing pipeline: consume civic events from the feed topics (as a consumer group),
//! route each one, and store the task (立案 + 派遣).
//!
//! A message's offset is stored only after the task transaction has committed, and a store
//! failure is retried in place, so no later success commits past an unhandled failure.
//! Creation is idempotent on (source system, source id), so a redelivery changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hub_connectors::backoff::Backoff;
use hub_router::Router;
use hub_schemas::codec::Codec;
use hub_schemas::error::DecodeError;
use hub_schemas::event::CivicEvent;
use hub_store::{CreateOutcome, TaskStore};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tracing::Instrument;

use crate::dead_letter::{self, DeadLetter};
use crate::kafka::Kafka;
use crate::shutdown::Shutdown;
use crate::telemetry;

pub struct Dispatcher {
    pub consumer: StreamConsumer,
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub router: Arc<Router>,
    pub store: Arc<dyn TaskStore>,
    pub dead_letter_topic: String,
}

impl Dispatcher {
    pub async fn run(self, mut shutdown: Shutdown) {
        tracing::info!("routing pipeline started");
        loop {
            let message = tokio::select! {
                m = self.consumer.recv() => m,
                _ = shutdown.wait() => break,
            };
            match message {
                Ok(msg) => {
                    if !self.handle(&msg, &mut shutdown).await {
                        break;
                    }
                    if let Err(e) = self.consumer.store_offset_from_message(&msg) {
                        // The partition was revoked meanwhile; its new owner re-reads the
                        // message and finds the task already stored.
                        tracing::debug!(error = %e, "offset not stored");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "consuming from the feed topics failed");
                    shutdown.sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "final offset commit");
        }
        // Dropping a consumer blocks while it leaves the group: not on an async worker.
        let consumer = self.consumer;
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        tracing::info!("routing pipeline stopped");
    }

    /// Handle one message completely. Returns false only if shutdown interrupted a retry,
    /// in which case the offset must not be stored.
    async fn handle(&self, msg: &BorrowedMessage<'_>, shutdown: &mut Shutdown) -> bool {
        let started = Instant::now();
        let payload = msg.payload().unwrap_or_default();
        let origin = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
        let event = match self.decode(payload, shutdown).await {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                let key = msg
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                dead_letter::send(
                    &self.kafka,
                    &self.dead_letter_topic,
                    &DeadLetter {
                        stage: "router.decode",
                        source: msg.topic(),
                        origin: &origin,
                        key: &key,
                        reason: &e.to_string(),
                        original: payload,
                    },
                )
                .await;
                metrics::counter!(telemetry::ROUTER_EVENTS, "outcome" => "dead_lettered")
                    .increment(1);
                return true;
            }
            None => return false,
        };
        let span = tracing::info_span!("route", event_id = %event.event_id, source_id = %event.source_id, task_id = tracing::field::Empty);
        async {
            let task = self.router.route(&event, Utc::now());
            tracing::Span::current().record("task_id", task.task_id.as_str());
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
            loop {
                match self.store.create_task(&task).await {
                    Ok(outcome) => {
                        let label = match &outcome {
                            CreateOutcome::Created { .. } => "created",
                            CreateOutcome::AlreadyExists { .. } => "duplicate",
                        };
                        metrics::counter!(telemetry::ROUTER_EVENTS, "outcome" => label)
                            .increment(1);
                        metrics::histogram!(telemetry::ROUTER_EVENT_SECONDS)
                            .record(started.elapsed().as_secs_f64());
                        tracing::info!(
                            outcome = label,
                            community = task.place.community_code.as_deref().unwrap_or("-"),
                            lead = task
                                .lead_unit
                                .as_ref()
                                .map(|u| u.unit_id.as_str())
                                .unwrap_or("triage"),
                            "task stored"
                        );
                        return true;
                    }
                    Err(e) => {
                        metrics::counter!(telemetry::STORE_ERRORS, "operation" => "create_task")
                            .increment(1);
                        tracing::warn!(error = %e, "storing the task failed; retrying");
                        if !shutdown.sleep(backoff.next_delay()).await {
                            return false;
                        }
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Decode, retrying while the schema registry is unreachable (that is no fault of the
    /// record). `None`: shutdown came first.
    async fn decode(
        &self,
        payload: &[u8],
        shutdown: &mut Shutdown,
    ) -> Option<Result<CivicEvent, DecodeError>> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.codec.decode::<CivicEvent>(payload).await {
                Err(DecodeError::Registry { schema_id, source }) if source.is_transient() => {
                    tracing::warn!(schema_id, error = %source, "schema registry unavailable; retrying");
                    if !shutdown.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
                other => return Some(other),
            }
        }
    }
}
