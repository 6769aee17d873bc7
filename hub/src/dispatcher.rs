//! The routing pipeline: consume civic events from the feed topics, route each one, and store
//! the outcome: a new task (立案 + 派遣), a report merged into an open task of the same
//! incident, an event sent back to its department (not admitted), or nothing (suppressed by
//! a rule). An event whose category the taxonomy does not map is dead-lettered.
//!
//! A message's offset is stored only after the outcome's transaction has committed, and a
//! store failure is retried in place, so no later success commits past an unhandled failure.
//! Every outcome is idempotent on (source system, source id): a redelivery changes nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hub_connectors::backoff::Backoff;
use hub_router::dedup::{find_merge_target, OpenReport};
use hub_router::routing::RoutingDecision;
use hub_router::task::NewTask;
use hub_router::Router;
use hub_schemas::codec::Codec;
use hub_schemas::error::DecodeError;
use hub_schemas::event::{CivicEvent, GeoPoint};
use hub_store::{
    CreateOutcome, DepartmentReturn, LinkOutcome, NearQuery, Report, StoreError, TaskStore,
};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use tracing::Instrument;

use crate::case_workflow::Workflow;
use crate::dead_letter::{self, DeadLetter};
use crate::kafka::Kafka;
use crate::routing_state::RoutingState;
use crate::shutdown::Shutdown;
use crate::telemetry;

pub struct Dispatcher {
    pub consumer: StreamConsumer,
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    /// Gives a new task the SLA clocks its dispatch starts.
    pub workflow: Arc<Workflow>,
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
            let router = self.routing.current();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
            loop {
                match self.settle(&router, &event, payload, &origin).await {
                    Ok(outcome) => {
                        metrics::counter!(telemetry::ROUTER_EVENTS, "outcome" => outcome)
                            .increment(1);
                        metrics::histogram!(telemetry::ROUTER_EVENT_SECONDS)
                            .record(started.elapsed().as_secs_f64());
                        return true;
                    }
                    Err(e) => {
                        metrics::counter!(telemetry::STORE_ERRORS, "operation" => "route_event")
                            .increment(1);
                        tracing::warn!(error = %e, "storing the routing outcome failed; retrying");
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

    /// Route one event and store its outcome; returns the outcome's metric label. Only store
    /// errors come back as errors (the caller retries); everything about the event itself is
    /// an outcome.
    async fn settle(
        &self,
        router: &Router,
        event: &CivicEvent,
        payload: &[u8],
        origin: &str,
    ) -> Result<&'static str, StoreError> {
        if let Some(prior) = self
            .store
            .prior_outcome(&event.source_system, &event.source_id)
            .await?
        {
            tracing::debug!(?prior, "event already handled; redelivery changes nothing");
            return Ok("duplicate");
        }
        let decision = match router.route(event, Utc::now()) {
            Ok(decision) => decision,
            Err(unmapped) => {
                dead_letter::send(
                    &self.kafka,
                    &self.dead_letter_topic,
                    &DeadLetter {
                        stage: "router.classify",
                        source: &event.source_system,
                        origin,
                        key: &event.source_id,
                        reason: &unmapped.to_string(),
                        original: payload,
                    },
                )
                .await;
                return Ok("unmapped");
            }
        };
        match decision {
            RoutingDecision::Dispatch(task) | RoutingDecision::Triage(task) => {
                tracing::Span::current().record("task_id", task.task_id.as_str());
                if let Some(target) = self.merge_target(router, &task).await? {
                    let linked = self.store.link_report(&target, &report_of(&task)).await?;
                    tracing::info!(merged_into = %target, ?linked, "duplicate report merged into an open task");
                    return Ok(match linked {
                        LinkOutcome::Linked => "merged",
                        LinkOutcome::AlreadyLinked { .. } => "duplicate",
                    });
                }
                // The clocks are stored with the task, so the SLA tracker watches it from
                // the moment it is dispatched.
                let (_, clocks) = self.workflow.derive(&task);
                let outcome = self.store.create_task(&task, &clocks).await?;
                tracing::info!(
                    community = task.place.community_code.as_deref().unwrap_or("-"),
                    lead = task.lead_unit.as_ref().map(|u| u.unit_id.as_str()).unwrap_or("triage"),
                    rule = %task.explanation.rule_id,
                    "task stored"
                );
                Ok(match outcome {
                    CreateOutcome::Created { .. } => "created",
                    CreateOutcome::AlreadyExists { .. } => "duplicate",
                })
            }
            RoutingDecision::ReturnToDepartment(r) => {
                let ret = DepartmentReturn {
                    event_id: r.event_id,
                    source_system: r.source_system,
                    source_id: r.source_id,
                    department: r.department,
                    category_code: event.category_code.clone(),
                    community_code: Some(r.community_code),
                    reason: r.reason,
                    explanation: r.explanation,
                    returned_at: r.decided_at,
                };
                self.store.record_return(&ret).await?;
                tracing::info!(reason = %ret.reason, "event returned to its department (not admitted)");
                Ok("returned")
            }
            RoutingDecision::Suppressed(s) => {
                tracing::info!(rule = %s.rule_id, "event suppressed by a rule; no task");
                Ok("suppressed")
            }
        }
    }

    /// The open task this new task duplicates, if any (same category group, within the
    /// group's radius and time window).
    async fn merge_target(
        &self,
        router: &Router,
        task: &NewTask,
    ) -> Result<Option<String>, StoreError> {
        let Some(candidate) = router.merge_candidate(task) else {
            return Ok(None);
        };
        let (dlon, dlat) = degrees_around(candidate.point, candidate.radius_m);
        let open = self
            .store
            .open_tasks_near(&NearQuery {
                category_group: candidate.group.clone(),
                occurred_since: candidate.window_start(),
                occurred_until: candidate.window_end(),
                min_lon: candidate.point.lon - dlon,
                min_lat: candidate.point.lat - dlat,
                max_lon: candidate.point.lon + dlon,
                max_lat: candidate.point.lat + dlat,
            })
            .await?;
        let reports: Vec<OpenReport> = open
            .into_iter()
            .map(|t| OpenReport {
                task_id: t.task_id,
                group: t.category_group,
                point: GeoPoint {
                    lon: t.lon,
                    lat: t.lat,
                },
                occurred_at: t.occurred_at,
            })
            .collect();
        Ok(find_merge_target(&candidate, &reports).map(str::to_owned))
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

fn report_of(task: &NewTask) -> Report {
    Report {
        event_id: task.event_id.clone(),
        source_system: task.source_system.clone(),
        source_id: task.source_id.clone(),
        department: task.department,
        occurred_at: task.occurred_at,
        linked_at: task.created_at,
    }
}

/// Half-widths in degrees of a box that contains the circle of `radius_m` around `p`, for
/// the store's prefilter; the exact distance test follows.
fn degrees_around(p: GeoPoint, radius_m: f64) -> (f64, f64) {
    const METRES_PER_DEGREE: f64 = 111_320.0;
    let dlat = radius_m / METRES_PER_DEGREE;
    let dlon = radius_m / (METRES_PER_DEGREE * p.lat.to_radians().cos().max(0.01));
    (dlon * 1.01, dlat * 1.01)
}
