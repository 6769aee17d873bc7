//! The routing pipeline: consume civic events from the feed topics, route each one, and store
//! the outcome: a new task (立案 + 派遣), a report merged into an open task of the same
//! incident, an event sent back to its department (not admitted), or nothing (suppressed by
//! a rule). An event whose category the taxonomy does not map is dead-lettered.
//!
//! It works in batches of what the consumer has ready: the new tasks of a batch are stored
//! in one transaction, everything else one at a time in order (see
//! `RoutingPipeline::handle_batch`). A batch's offsets are stored only after every outcome
//! of it has committed, and a store failure is retried in place, so no later success commits
//! past an unhandled failure. Every outcome is idempotent on (source system, source id): a
//! redelivery changes nothing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::FutureExt;
use hub_connectors::backoff::Backoff;
use hub_router::dedup::{find_merge_target, OpenReport};
use hub_router::routing::RoutingDecision;
use hub_router::task::NewTask;
use hub_router::Router;
use hub_schemas::codec::Codec;
use hub_schemas::error::DecodeError;
use hub_schemas::event::{CivicEvent, GeoPoint};
use hub_schemas::limits::{check_event, InputLimits};
use hub_store::{
    CreateOutcome, DepartmentReturn, FailureClass, LinkOutcome, NearQuery, Report, StoreError,
    Suppression, TaskStore,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use tracing::Instrument;

use crate::cases::service::CaseService;
use crate::context::routing::RoutingState;
use crate::infra::kafka::{HubConsumer, Kafka};
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;
use crate::pipeline::dead_letters::{
    self, Letter, STAGE_ROUTER_CLASSIFY, STAGE_ROUTER_DECODE, STAGE_ROUTER_PANIC,
    STAGE_ROUTER_STORE, STAGE_ROUTER_VALIDATE,
};

pub struct RoutingPipeline {
    /// Makes the feed consumer; a restarted pipeline takes a fresh one, which resumes from
    /// the committed offsets.
    pub new_consumer: ConsumerFactory,
    /// The consumer of the current (or last, if it died) run.
    consumer: Option<HubConsumer>,
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    /// Gives a new task the SLA clocks its dispatch starts.
    pub cases: Arc<CaseService>,
    pub dead_letter_topic: String,
    /// The bounds every event is held to before it is routed.
    pub limits: InputLimits,
    /// Where the pipeline says how it is doing (`/healthz`).
    pub status: Arc<crate::context::health::PipelineStatus>,
    pub hooks: Hooks,
    /// At most this many events taken together (one transaction for their new tasks).
    pub batch_max: usize,
}

pub type ConsumerFactory = Box<dyn Fn() -> anyhow::Result<HubConsumer> + Send + Sync>;

/// Fault injection for tests: called with each event just before it is routed.
pub type RouteHook = Arc<dyn Fn(&CivicEvent) + Send + Sync>;

/// Test hooks of the routing pipeline; none in production.
#[derive(Clone, Default)]
pub struct Hooks {
    pub before_routing: Option<RouteHook>,
}

/// An unknown store error is retried this many times before the store is asked whether it
/// answers at all; if it does, the record is the problem and is dead-lettered.
pub const UNKNOWN_FAILURES_TOLERATED: u32 = 5;

/// What became of one event.
enum Settled {
    Created,
    Merged,
    /// Handled before (a redelivery); nothing changed.
    Duplicate,
    Returned,
    Suppressed,
    /// Its category is not in the taxonomy: dead-lettered with this reason.
    Unmapped(String),
}

impl Settled {
    /// The outcome's metric label.
    fn label(&self) -> &'static str {
        match self {
            Settled::Created => "created",
            Settled::Merged => "merged",
            Settled::Duplicate => "duplicate",
            Settled::Returned => "returned",
            Settled::Suppressed => "suppressed",
            Settled::Unmapped(_) => "unmapped",
        }
    }
}

impl RoutingPipeline {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        new_consumer: ConsumerFactory,
        kafka: Kafka,
        codec: Arc<Codec>,
        routing: Arc<RoutingState>,
        store: Arc<dyn TaskStore>,
        cases: Arc<CaseService>,
        dead_letter_topic: String,
        limits: InputLimits,
        status: Arc<crate::context::health::PipelineStatus>,
        hooks: Hooks,
    ) -> Self {
        RoutingPipeline {
            new_consumer,
            consumer: None,
            kafka,
            codec,
            routing,
            store,
            cases,
            dead_letter_topic,
            limits,
            status,
            hooks,
            batch_max: 500,
        }
    }

    /// At most `n` events taken together (at least one).
    pub fn with_batch(mut self, n: usize) -> Self {
        self.batch_max = n.max(1);
        self
    }

    /// Commits what the consumer stored (every offset it stored is of a settled record)
    /// and closes it, off the async workers: dropping a consumer blocks while it leaves
    /// the group.
    async fn close_consumer(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(error = %e, "final offset commit");
                }
                drop(consumer);
            })
            .await;
        }
    }
}

impl Drop for RoutingPipeline {
    /// Dropped without a graceful stop (a process abandoning its tasks): the consumer's
    /// drop blocks while it leaves the group, so it happens on a thread of its own.
    fn drop(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let _ = std::thread::Builder::new()
                .name("close-consumer".into())
                .spawn(move || drop(consumer));
        }
    }
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for RoutingPipeline {
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        // A run that died left its consumer behind, positioned past a record it may not
        // have settled: close it (committing only what was settled) and start afresh.
        self.close_consumer().await;
        self.consumer = Some((self.new_consumer)()?);
        tracing::info!("routing pipeline started");
        loop {
            let consumer = self.consumer.as_ref().expect("made above");
            let message = tokio::select! {
                m = consumer.recv() => m,
                _ = shutdown.wait() => break,
            };
            let first = match message {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::warn!(error = %e, "consuming from the feed topics failed");
                    shutdown.sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // With it, whatever else the consumer has ready now: a backlog goes in batches,
            // a lone event is not kept waiting for company.
            let mut batch = vec![first];
            while batch.len() < self.batch_max {
                match consumer.recv().now_or_never() {
                    Some(Ok(msg)) => batch.push(msg),
                    // An error is met again, and reported, by the next `recv`.
                    Some(Err(_)) | None => break,
                }
            }
            metrics::histogram!(telemetry::ROUTER_BATCH_EVENTS).record(batch.len() as f64);
            if !self.handle_batch(&batch, &mut shutdown).await {
                break;
            }
            // Every outcome of the batch is stored: its offsets may be.
            for msg in &batch {
                if let Err(e) = consumer.store_offset_from_message(msg) {
                    // The partition was revoked meanwhile; its new owner re-reads the
                    // message and finds the task already stored.
                    tracing::debug!(error = %e, "offset not stored");
                }
            }
        }
        self.close_consumer().await;
        tracing::info!("routing pipeline stopped");
        Ok(())
    }
}

impl RoutingPipeline {
    /// Handle a batch of messages completely: every outcome is stored or dead-lettered. New
    /// tasks (the bulk of a backlog) are routed in memory and stored together in one
    /// transaction; the rest (a report that may duplicate an open task, a return, a
    /// suppression, a record seen before or twice in the batch) one at a time, in order,
    /// after the tasks before them. A batch the store refuses is stored record by record,
    /// where a failure is classified and the record at fault dead-lettered. Returns false
    /// only if shutdown interrupted a retry: the offsets must then not be stored.
    async fn handle_batch(&self, batch: &[BorrowedMessage<'_>], shutdown: &mut Shutdown) -> bool {
        let started = Instant::now();
        let mut ready: Vec<(&BorrowedMessage<'_>, CivicEvent)> = Vec::with_capacity(batch.len());
        for msg in batch {
            match self.checked(msg, shutdown).await {
                Checked::Event(event) => ready.push((msg, *event)),
                Checked::Refused(letter) => {
                    if !self.dead_letter(&letter, shutdown).await {
                        return false;
                    }
                }
                Checked::Interrupted => return false,
            }
        }
        let checked_at = Instant::now();
        let Ok(prior) = self.prior_outcomes(&ready).await else {
            // The store did not answer: one at a time, each retried in place.
            for (msg, event) in &ready {
                if !self.handle_event(msg, event, started, shutdown).await {
                    return false;
                }
            }
            return true;
        };
        let looked_up_at = Instant::now();
        let router = self.routing.current();
        let mut pending: Vec<Pending<'_, '_>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (msg, event) in &ready {
            let key = (event.source_system.as_str(), event.source_id.as_str());
            if prior.contains(&key) {
                tracing::debug!(event_id = %event.event_id, "event already handled; redelivery changes nothing");
                self.settled(&Settled::Duplicate, started);
                continue;
            }
            let first_time = seen.insert(key);
            let routed = AssertUnwindSafe(|| {
                if let Some(hook) = &self.hooks.before_routing {
                    hook(event);
                }
                router.route(event, Utc::now())
            });
            let task = match std::panic::catch_unwind(routed) {
                Ok(Ok(RoutingDecision::Dispatch(task) | RoutingDecision::Triage(task)))
                    if first_time && router.merge_candidate(&task).is_none() =>
                {
                    task
                }
                // A panic, an unmapped category and everything else take the one-at-a-time
                // path (which says why), after the tasks before them are stored.
                _ => {
                    if !self.flush(&mut pending, started, shutdown).await
                        || !self.handle_event(msg, event, started, shutdown).await
                    {
                        return false;
                    }
                    continue;
                }
            };
            let opening = self.cases.open(&task);
            pending.push(Pending {
                msg,
                event,
                task: *task,
                opening,
            });
        }
        let routed_at = Instant::now();
        let new_tasks = pending.len();
        let flushed = self.flush(&mut pending, started, shutdown).await;
        // Where a batch's time goes, for whoever tunes the pipeline.
        tracing::debug!(
            events = batch.len(),
            new_tasks,
            check_ms = (checked_at - started).as_secs_f64() * 1e3,
            lookup_ms = (looked_up_at - checked_at).as_secs_f64() * 1e3,
            route_ms = (routed_at - looked_up_at).as_secs_f64() * 1e3,
            store_ms = routed_at.elapsed().as_secs_f64() * 1e3,
            "batch routed"
        );
        flushed
    }

    /// Stores the pending new tasks in one transaction; if the store refuses it, one at a
    /// time (the record at fault is found and dead-lettered, a store outage retried).
    async fn flush(
        &self,
        pending: &mut Vec<Pending<'_, '_>>,
        started: Instant,
        shutdown: &mut Shutdown,
    ) -> bool {
        if pending.is_empty() {
            return true;
        }
        let tasks: Vec<(&NewTask, &hub_cases::opening::Opening)> =
            pending.iter().map(|p| (&p.task, &p.opening)).collect();
        // Every accepted event goes to the event log (for replays of other rules versions)
        // with its task, in the same transaction; the one-at-a-time path logs its own.
        let logged: Vec<&CivicEvent> = pending.iter().map(|p| p.event).collect();
        match self.store.create_tasks(&tasks, &logged).await {
            Ok(outcomes) => {
                for (p, outcome) in pending.iter().zip(outcomes) {
                    let settled = match outcome {
                        CreateOutcome::Created { .. } => Settled::Created,
                        CreateOutcome::AlreadyExists { .. } => Settled::Duplicate,
                    };
                    let t = &p.task;
                    tracing::info!(
                        event_id = %p.event.event_id,
                        source_id = %p.event.source_id,
                        task_id = %t.task_id,
                        community = t.place.community_code.as_deref().unwrap_or("-"),
                        lead = t.lead_unit.as_ref().map(|u| u.unit_id.as_str()).unwrap_or("triage"),
                        rule = %t.explanation.rule_id,
                        batch = tasks.len(),
                        "task stored"
                    );
                    self.settled(&settled, started);
                }
            }
            Err(error) => {
                metrics::counter!(telemetry::STORE_ERRORS, "operation" => "route_batch")
                    .increment(1);
                tracing::warn!(error = %error, tasks = tasks.len(), "storing a batch of tasks failed; storing them one at a time");
                for p in pending.iter() {
                    if !self.handle_event(p.msg, p.event, started, shutdown).await {
                        return false;
                    }
                }
            }
        }
        pending.clear();
        true
    }

    /// Which events of the batch were handled before (a redelivery), by (source system,
    /// source id): one lookup per source system.
    async fn prior_outcomes<'e>(
        &self,
        ready: &'e [(&BorrowedMessage<'_>, CivicEvent)],
    ) -> Result<std::collections::HashSet<(&'e str, &'e str)>, StoreError> {
        let mut by_source: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (_, e) in ready {
            by_source
                .entry(e.source_system.as_str())
                .or_default()
                .push(e.source_id.as_str());
        }
        let mut handled = std::collections::HashSet::new();
        for (system, ids) in by_source {
            let found = self.store.prior_outcomes(system, &ids).await?;
            for id in ids {
                if found.contains_key(id) {
                    handled.insert((system, id));
                }
            }
        }
        Ok(handled)
    }

    /// Counts an outcome.
    fn settled(&self, settled: &Settled, started: Instant) {
        metrics::counter!(telemetry::ROUTER_EVENTS, "outcome" => settled.label()).increment(1);
        metrics::histogram!(telemetry::ROUTER_EVENT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        self.status.progress();
    }

    /// A message decoded and held to the input bounds, or the letter saying why not.
    async fn checked(&self, msg: &BorrowedMessage<'_>, shutdown: &mut Shutdown) -> Checked {
        let payload = msg.payload().unwrap_or_default();
        let refuse = |stage, source: &str, reason| letter(msg, stage, source, reason);
        let event = match self.decode(payload, shutdown).await {
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                return Checked::Refused(refuse(STAGE_ROUTER_DECODE, msg.topic(), e.to_string()))
            }
            None => return Checked::Interrupted,
        };
        // Anything with the broker's address can write to a feed topic: the event is held
        // to the same bounds the connectors apply, before a value reaches the store.
        if let Err(problem) = check_event(&event, &self.limits, Utc::now()) {
            return Checked::Refused(refuse(
                STAGE_ROUTER_VALIDATE,
                &event.source_system,
                problem.to_string(),
            ));
        }
        Checked::Event(Box::new(event))
    }

    /// Handle one event completely: its outcome is stored or it is dead-lettered. Returns
    /// false only if shutdown interrupted a retry, in which case the offset must not be
    /// stored.
    async fn handle_event(
        &self,
        msg: &BorrowedMessage<'_>,
        event: &CivicEvent,
        started: Instant,
        shutdown: &mut Shutdown,
    ) -> bool {
        let refuse = |stage, source: &str, reason| letter(msg, stage, source, reason);
        let span = tracing::info_span!("route", event_id = %event.event_id, source_id = %event.source_id, task_id = tracing::field::Empty);
        async {
            let router = self.routing.current();
            let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
            let mut attempts = 0u32;
            loop {
                // A panic while routing one record is that record's fault: it is set aside
                // and the stream goes on.
                let settled = AssertUnwindSafe(self.settle(&router, event))
                    .catch_unwind()
                    .await;
                let error = match settled {
                    Ok(Ok(Settled::Unmapped(reason))) => {
                        let letter = refuse(STAGE_ROUTER_CLASSIFY, &event.source_system, reason);
                        return self.dead_letter(&letter, shutdown).await;
                    }
                    Ok(Ok(settled)) => {
                        self.settled(&settled, started);
                        return true;
                    }
                    Err(panic) => {
                        let reason = format!("routing this record panicked: {}", crate::infra::supervisor::panic_message(panic.as_ref()));
                        tracing::error!(reason = %reason, "routing panicked; the record is dead-lettered");
                        let letter = refuse(STAGE_ROUTER_PANIC, &event.source_system, reason);
                        return self.dead_letter(&letter, shutdown).await;
                    }
                    Ok(Err(e)) => e,
                };
                attempts += 1;
                metrics::counter!(telemetry::STORE_ERRORS, "operation" => "route_event")
                    .increment(1);
                if self.is_the_records_fault(&error, attempts).await {
                    let reason = format!("the task store refuses this record: {error}");
                    let letter = refuse(STAGE_ROUTER_STORE, &event.source_system, reason);
                    return self.dead_letter(&letter, shutdown).await;
                }
                tracing::warn!(error = %error, attempts, "storing the routing outcome failed; retrying");
                self.status.retrying(&error.to_string());
                if !shutdown.sleep(backoff.next_delay()).await {
                    return false;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Whether a store failure is the record's (dead-letter it) rather than the store's
    /// (retry in place). Known classes decide at once; an unknown error is the record's
    /// once it failed [`UNKNOWN_FAILURES_TOLERATED`] times while the store answers a ping.
    async fn is_the_records_fault(&self, error: &StoreError, attempts: u32) -> bool {
        match error.class() {
            FailureClass::Permanent => true,
            FailureClass::Transient => false,
            FailureClass::Unknown => {
                attempts >= UNKNOWN_FAILURES_TOLERATED && self.store.ping().await.is_ok()
            }
        }
    }

    /// Dead-letter a refused record and count it. False only when shutdown came first.
    async fn dead_letter(&self, letter: &Letter, shutdown: &mut Shutdown) -> bool {
        metrics::counter!(telemetry::ROUTER_EVENTS, "outcome" => "dead_lettered").increment(1);
        let sent = dead_letters::send(&self.kafka, &self.dead_letter_topic, letter, shutdown).await;
        if sent {
            self.status.progress();
        }
        sent
    }

    /// Route one event and store its outcome. Only store errors come back as errors (the
    /// caller classifies them); everything about the event itself is an outcome.
    async fn settle(&self, router: &Router, event: &CivicEvent) -> Result<Settled, StoreError> {
        if let Some(hook) = &self.hooks.before_routing {
            hook(event);
        }
        if let Some(prior) = self
            .store
            .prior_outcome(&event.source_system, &event.source_id)
            .await?
        {
            tracing::debug!(?prior, "event already handled; redelivery changes nothing");
            return Ok(Settled::Duplicate);
        }
        self.store.record_events(&[event]).await?;
        let decision = match router.route(event, Utc::now()) {
            Ok(decision) => decision,
            Err(unmapped) => return Ok(Settled::Unmapped(unmapped.to_string())),
        };
        match decision {
            RoutingDecision::Dispatch(task) | RoutingDecision::Triage(task) => {
                tracing::Span::current().record("task_id", task.task_id.as_str());
                if let Some(target) = self.merge_target(router, &task).await? {
                    let linked = self.store.link_report(&target, &Report::of(&task)).await?;
                    tracing::info!(merged_into = %target, ?linked, "duplicate report merged into an open task");
                    return Ok(match linked {
                        LinkOutcome::Linked => Settled::Merged,
                        LinkOutcome::AlreadyLinked { .. } => Settled::Duplicate,
                    });
                }
                // The opening (first history, dispatch clocks, events) is stored with the
                // task, so the SLA tracker watches it from the moment it is dispatched.
                let opening = self.cases.open(&task);
                let outcome = self.store.create_task(&task, &opening).await?;
                tracing::info!(
                    community = task.place.community_code.as_deref().unwrap_or("-"),
                    lead = task.lead_unit.as_ref().map(|u| u.unit_id.as_str()).unwrap_or("triage"),
                    rule = %task.explanation.rule_id,
                    "task stored"
                );
                Ok(match outcome {
                    CreateOutcome::Created { .. } => Settled::Created,
                    CreateOutcome::AlreadyExists { .. } => Settled::Duplicate,
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
                Ok(Settled::Returned)
            }
            RoutingDecision::Suppressed(s) => {
                // No task by design, but a recorded outcome an administrator can list.
                self.store
                    .record_suppression(&Suppression {
                        event_id: s.event_id,
                        source_system: s.source_system,
                        source_id: s.source_id,
                        department: s.department,
                        category_code: event.category_code.clone(),
                        community_code: s.community_code.clone(),
                        rules_version: s.explanation.rules_version.clone(),
                        rule_id: s.rule_id.clone(),
                        suppressed_at: s.decided_at,
                    })
                    .await?;
                tracing::info!(rule = %s.rule_id, "event suppressed by a rule; no task");
                Ok(Settled::Suppressed)
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

/// A message as the pipeline checked it.
enum Checked {
    Event(Box<CivicEvent>),
    Refused(Letter),
    /// Shutdown came first.
    Interrupted,
}

/// A new task routed in a batch, to be stored with the others.
struct Pending<'m, 'e> {
    msg: &'m BorrowedMessage<'m>,
    event: &'e CivicEvent,
    task: NewTask,
    opening: hub_cases::opening::Opening,
}

/// The dead letter of a message the pipeline refuses: its original bytes, where it came from
/// (`topic/partition@offset`) and why.
fn letter(msg: &BorrowedMessage<'_>, stage: &'static str, source: &str, reason: String) -> Letter {
    Letter {
        stage,
        source: source.to_owned(),
        format: None,
        origin: format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset()),
        reason,
        original: msg.payload().unwrap_or_default().to_vec(),
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
