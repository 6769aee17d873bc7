//! The ingest loop of one connector, whatever its kind: take a batch from the departmental
//! system ([`Source`]: REST polling, a database table, an MQTT sensor stream or pushed
//! webhooks), map each record to a civic event, produce the events to the department's feed
//! topic (and the records that cannot be mapped to the dead-letter topic), and only once the
//! broker has acknowledged all of it save the cursor and acknowledge the batch upstream.
//!
//! ```text
//! start(saved cursor) → next_batch → map → produce + dead-letter → (broker acks) → save cursor → commit
//!                          ▲  Err: health, backoff         │ broker error: the same batch again
//!                          └───────────────────────────────┘
//! ```
//!
//! A crash anywhere before `commit` makes the source deliver the batch again (a REST page, the
//! rows after the saved keyset, the unacknowledged MQTT readings, an unanswered push that its
//! sender retries); the router's idempotent task creation absorbs the repeat. Nothing is
//! skipped: the position moves only after the broker has everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::try_join_all;
use hub_connectors::backoff::Backoff;
use hub_connectors::mapping::{Mapped, Mapper, MappingContext};
use hub_connectors::rate_limit::TokenBucket;
use hub_connectors::{Batch, Outcome, RawRecord, Source, SourceError, SourceKind};
use hub_router::city::City;
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::{CivicEvent, Department};
use hub_store::TaskStore;
use tracing::Instrument;

use crate::context::health::{BatchCounts, Health};
use crate::infra::kafka::Kafka;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;
use crate::pipeline::dead_letters::{self, Letter, STAGE_MAPPING, STAGE_SOURCE};
use crate::pipeline::push::PushEndpoint;
use hub_connectors::{BuildError, ConnectorConfig};

/// How long a connector whose credentials or configuration are refused waits before trying
/// again: slow enough not to hammer the system or fill the logs, fast enough to pick up a fix.
pub const MUST_ACT_RETRY: Duration = Duration::from_secs(30);

/// One running connector: its source, and the rest of the pipeline.
pub struct Connector {
    pub source: Box<dyn Source>,
    /// Spaces `next_batch` calls (pull kinds; a webhook's limit is applied to its pushes).
    pub limiter: Option<TokenBucket>,
    pub sink: Sink,
}

/// Everything of a connector but its source: the mapping and where records go.
pub struct Sink {
    pub name: String,
    pub kind: SourceKind,
    pub department: Department,
    pub mapper: Mapper,
    /// Pause after a batch that left nothing waiting (pull kinds).
    pub poll_interval: Duration,
    pub feed_topic: String,
    pub dead_letter_topic: String,
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub store: Arc<dyn TaskStore>,
    pub city: Arc<City>,
    pub health: Arc<Health>,
    pub limits: hub_schemas::limits::InputLimits,
}

/// A connector built from its configuration, with the endpoint that feeds it when it is a
/// webhook.
pub struct Built {
    pub connector: Connector,
    pub push: Option<PushEndpoint>,
}

/// The clients and state a connector shares with the rest of its process.
#[derive(Clone)]
pub struct Handles {
    pub kafka: Kafka,
    pub codec: Arc<Codec>,
    pub store: Arc<dyn TaskStore>,
    pub city: Arc<City>,
    pub health: Arc<Health>,
    /// The bounds records from outside are held to (`[input]`).
    pub limits: hub_schemas::limits::InputLimits,
}

/// Where a connector's records go, and what it shares with the rest of the process.
pub struct Wiring<'a> {
    pub feed_topic: String,
    pub dead_letter_topic: String,
    pub handles: &'a Handles,
}

/// Build a connector (not started) from its configuration: the source kind builds its
/// source (`hub_connectors::ConnectorConfig::build`); this wires it to the feed topic, the
/// dead-letter topic and the process's clients. `secret` looks a variable up by name.
pub fn build(
    config: &ConnectorConfig,
    secret: &dyn Fn(&str) -> Option<String>,
    wiring: Wiring<'_>,
) -> Result<Built, BuildError> {
    let built = config.build(secret)?;
    let name = config.name().to_owned();
    let push = built.push.map(|p| PushEndpoint::new(name.clone(), p));
    let shared = wiring.handles;
    Ok(Built {
        connector: Connector {
            source: built.source,
            limiter: built.limiter,
            sink: Sink {
                name,
                kind: config.kind(),
                department: config.department(),
                mapper: built.mapper,
                poll_interval: built.poll_interval,
                feed_topic: wiring.feed_topic,
                dead_letter_topic: wiring.dead_letter_topic,
                kafka: shared.kafka.clone(),
                codec: shared.codec.clone(),
                store: shared.store.clone(),
                city: shared.city.clone(),
                health: shared.health.clone(),
                limits: shared.limits,
            },
        },
        push,
    })
}

/// A batch mapped: what to produce, what to dead-letter, and each record's outcome.
struct Prepared {
    events: Vec<CivicEvent>,
    letters: Vec<Letter>,
    outcomes: Vec<Outcome>,
    counts: BatchCounts,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for Connector {
    /// Run until shutdown. Every failure is retried (outages with backoff, refused
    /// credentials slowly); nothing here ends the loop but shutdown. A run started after a
    /// crash begins again from the saved cursor.
    async fn run(&mut self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let Connector {
            source,
            limiter,
            sink,
        } = self;
        sink.health.register(&sink.name, sink.kind.as_str());
        let span = tracing::info_span!("connector", connector = %sink.name, kind = %sink.kind);
        async move {
            let Some(cursor) = sink.load_cursor(&mut shutdown).await else {
                return Ok(());
            };
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
            loop {
                match source.start(cursor.clone()).await {
                    Ok(()) => break,
                    Err(e) => {
                        let delay = sink.source_failed(&e, &mut backoff);
                        if !shutdown.sleep(delay).await {
                            return Ok(());
                        }
                    }
                }
            }
            tracing::info!(cursor = cursor.as_deref().unwrap_or("(none)"), "connector started");
            while !shutdown.is_stopping() {
                if !sink.throttle(limiter, &mut shutdown).await {
                    break;
                }
                let started = Instant::now();
                let next = tokio::select! {
                    b = source.next_batch() => b,
                    _ = shutdown.wait() => break,
                };
                metrics::histogram!(telemetry::CONNECTOR_POLL_SECONDS, "connector" => sink.name.clone())
                    .record(started.elapsed().as_secs_f64());
                let batch = match next {
                    Ok(batch) => batch,
                    Err(SourceError::Closed { .. }) => {
                        tracing::info!("the source closed");
                        break;
                    }
                    Err(e) => {
                        let delay = sink.source_failed(&e, &mut backoff);
                        shutdown.sleep(delay).await;
                        continue;
                    }
                };
                metrics::counter!(telemetry::CONNECTOR_POLLS, "connector" => sink.name.clone(), "outcome" => "ok").increment(1);
                let more = batch.more;
                if !sink.handle(source.as_mut(), batch, &mut shutdown).await {
                    break;
                }
                backoff.reset();
                if !more {
                    shutdown.sleep(sink.poll_interval).await;
                }
            }
            tracing::info!("connector stopped");
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl Sink {
    /// Record a failed `start` or `next_batch` in logs, health and metrics; returns how long
    /// to wait before the next attempt.
    fn source_failed(&self, e: &SourceError, backoff: &mut Backoff) -> Duration {
        metrics::counter!(telemetry::CONNECTOR_POLLS, "connector" => self.name.clone(), "outcome" => "error").increment(1);
        metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => self.name.clone(), "reason" => e.label()).increment(1);
        let must_act = !e.is_transient();
        self.health.failure(&self.name, &e.to_string(), must_act);
        let delay = if must_act {
            MUST_ACT_RETRY
        } else {
            backoff.next_delay()
        };
        if must_act {
            tracing::error!(error = %e, retry_in_s = delay.as_secs(), "connector needs an operator: {}", e.label());
        } else {
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "connector failed; retrying");
        }
        delay
    }

    /// Wait for the rate limit; false when shutdown came first.
    async fn throttle(&self, limiter: &mut Option<TokenBucket>, shutdown: &mut Shutdown) -> bool {
        let Some(limiter) = limiter else {
            return true;
        };
        loop {
            match limiter.try_acquire(Instant::now()) {
                Ok(()) => return true,
                Err(wait) => {
                    metrics::counter!(telemetry::CONNECTOR_THROTTLED, "connector" => self.name.clone()).increment(1);
                    if !shutdown.sleep(wait).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Take one batch all the way: map, produce (retrying the same batch until the broker
    /// has it), save the cursor, commit. False when shutdown interrupted it (nothing is
    /// acknowledged then: the batch comes again after a restart).
    async fn handle(
        &self,
        source: &mut (dyn Source + '_),
        batch: Batch,
        shutdown: &mut Shutdown,
    ) -> bool {
        let Batch {
            records,
            rejected,
            cursor,
            more: _,
            receipt,
        } = batch;
        let mapped = self.map(&records, rejected);
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        loop {
            let attempt = tokio::select! {
                r = self.deliver(&mapped) => r,
                _ = shutdown.wait() => return false,
            };
            match attempt {
                Ok(()) => break,
                Err(e) => {
                    metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => self.name.clone(), "reason" => "broker").increment(1);
                    let text = format!("producing to Kafka: {e:#}; the batch will be sent again");
                    self.health.failure(&self.name, &text, false);
                    tracing::warn!(error = %format!("{e:#}"), "producing a batch failed; sending it again");
                    if !shutdown.sleep(backoff.next_delay()).await {
                        return false;
                    }
                }
            }
        }
        if let Some(cursor) = &cursor {
            if !self.save_cursor(cursor, shutdown).await {
                return false;
            }
        }
        if let Err(e) = source.commit(receipt, &mapped.outcomes).await {
            // Everything is produced and the cursor saved: the source re-delivers what it
            // could not acknowledge, which idempotency absorbs.
            metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => self.name.clone(), "reason" => e.label()).increment(1);
            self.health
                .failure(&self.name, &format!("acknowledging upstream: {e}"), false);
            tracing::warn!(error = %e, "acknowledging a batch upstream failed");
            return true;
        }
        let c = mapped.counts;
        for (outcome, n) in [
            ("received", c.received),
            ("produced", c.produced),
            ("dead_lettered", c.dead_lettered),
            ("skipped", c.skipped),
        ] {
            if n > 0 {
                metrics::counter!(telemetry::CONNECTOR_RECORDS, "connector" => self.name.clone(), "outcome" => outcome).increment(n);
            }
        }
        if let Some(newest) = mapped.events.iter().map(|e| e.occurred_at).max() {
            let lag = (Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!(telemetry::CONNECTOR_LAG_SECONDS, "connector" => self.name.clone())
                .set(lag);
            self.health.lag(&self.name, lag);
        }
        self.health.batch(&self.name, c);
        if c.received > 0 {
            tracing::debug!(
                produced = c.produced,
                dead_lettered = c.dead_lettered,
                skipped = c.skipped,
                "batch through"
            );
        }
        true
    }

    /// Map every record of a batch; the source's own rejections become dead letters too.
    fn map(&self, records: &[RawRecord], rejected: Vec<hub_connectors::Rejected>) -> Prepared {
        let ctx = MappingContext {
            source_system: &self.name,
            received_at: Utc::now(),
            limits: self.limits,
        };
        let mut out = Prepared {
            events: Vec::new(),
            letters: Vec::new(),
            outcomes: Vec::with_capacity(records.len()),
            counts: BatchCounts::default(),
        };
        for record in records {
            out.counts.received += 1;
            match self.mapper.map(ctx, record) {
                Ok(Mapped::Event(event)) => {
                    out.counts.produced += 1;
                    out.events.push(*event);
                    out.outcomes.push(Outcome::Produced);
                }
                Ok(Mapped::Skip { reason }) => {
                    out.counts.skipped += 1;
                    tracing::debug!(origin = %record.uri, reason = %reason, "record skipped");
                    out.outcomes.push(Outcome::Skipped { reason });
                }
                Err(e) => {
                    let reason = e.to_string();
                    out.counts.dead_lettered += 1;
                    out.letters
                        .push(self.letter(STAGE_MAPPING, record.clone(), &reason));
                    out.outcomes.push(Outcome::DeadLettered { reason });
                }
            }
        }
        for r in rejected {
            out.counts.received += 1;
            out.counts.dead_lettered += 1;
            out.letters
                .push(self.letter(STAGE_SOURCE, r.record, &r.reason));
        }
        out
    }

    fn letter(&self, stage: &'static str, record: RawRecord, reason: &str) -> Letter {
        Letter {
            stage,
            source: self.name.clone(),
            format: Some(self.mapper.format.as_str().to_owned()),
            origin: record.uri,
            reason: reason.to_owned(),
            original: record.bytes,
        }
    }

    /// Produce every event and dead letter of a batch and wait until the broker has all of
    /// them. After 5 s of waiting, health says so (the broker may be down; the producer keeps
    /// trying).
    async fn deliver(&self, mapped: &Prepared) -> anyhow::Result<()> {
        let subject = value_subject(&self.feed_topic);
        let mut payloads = Vec::with_capacity(mapped.events.len());
        for event in &mapped.events {
            let payload = self
                .codec
                .encode(&subject, event)
                .await
                .map_err(|e| anyhow::anyhow!("encoding event {}: {e}", event.event_id))?;
            payloads.push(payload);
        }
        let events = mapped
            .events
            .iter()
            .zip(&payloads)
            .map(|(event, payload)| async move {
                let key = self.partition_key(event);
                self.kafka
                    .produce(
                        &self.feed_topic,
                        &key,
                        payload,
                        &[("hub.event_id", event.event_id.as_bytes())],
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("event {}: {e}", event.event_id))
            });
        let letters = mapped.letters.iter().map(|letter| async move {
            dead_letters::produce(&self.kafka, &self.dead_letter_topic, letter)
                .await
                .map_err(|e| anyhow::anyhow!("dead letter from {}: {e}", letter.origin))
        });
        let all = async {
            try_join_all(events).await?;
            try_join_all(letters).await?;
            Ok::<_, anyhow::Error>(())
        };
        tokio::pin!(all);
        let waited = tokio::select! {
            r = &mut all => return r.map(|_| self.after_delivery(mapped)),
            _ = tokio::time::sleep(Duration::from_secs(5)) => true,
        };
        if waited {
            let n = mapped.events.len() + mapped.letters.len();
            self.health.failure(
                &self.name,
                &format!("waiting for Kafka to acknowledge {n} records (is the broker reachable?)"),
                false,
            );
        }
        all.await.map(|_| self.after_delivery(mapped))
    }

    fn after_delivery(&self, mapped: &Prepared) {
        for letter in &mapped.letters {
            dead_letters::delivered(letter);
        }
        for event in &mapped.events {
            tracing::debug!(event_id = %event.event_id, source_id = %event.source_id, "event produced");
        }
    }

    /// Feed topics are keyed by community when the city can place the event, so one
    /// community's events stay in order on one partition; else by source id.
    fn partition_key(&self, event: &CivicEvent) -> String {
        partition_key(&self.city, event)
    }

    /// The saved cursor (`Some(None)`: none saved yet); `None` when shutdown came first.
    async fn load_cursor(&self, shutdown: &mut Shutdown) -> Option<Option<String>> {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            match self.store.load_cursor(&self.name).await {
                Ok(c) => return Some(c),
                Err(e) => {
                    metrics::counter!(telemetry::STORE_ERRORS, "operation" => "load_cursor")
                        .increment(1);
                    metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => self.name.clone(), "reason" => "store").increment(1);
                    self.health
                        .failure(&self.name, &format!("loading cursor: {e}"), false);
                    if !shutdown.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    /// False when shutdown came first (the batch is then not committed).
    async fn save_cursor(&self, cursor: &str, shutdown: &mut Shutdown) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while let Err(e) = self.store.save_cursor(&self.name, cursor).await {
            metrics::counter!(telemetry::STORE_ERRORS, "operation" => "save_cursor").increment(1);
            metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => self.name.clone(), "reason" => "store").increment(1);
            self.health
                .failure(&self.name, &format!("saving cursor: {e}"), false);
            if !shutdown.sleep(backoff.next_delay()).await {
                return false;
            }
        }
        true
    }
}

/// The partition key of an event on its feed topic: its community when the city places it,
/// else its source id.
pub fn partition_key(city: &City, event: &CivicEvent) -> String {
    city.resolve(&event.location)
        .community_code
        .unwrap_or_else(|| event.source_id.clone())
}

/// Show a connector that could not be built (a missing secret, a bad setting) in health, the
/// logs and the metrics; the rest of the hub runs.
pub fn report_unbuilt(health: &Health, config: &ConnectorConfig, error: &BuildError) {
    health.register(config.name(), config.kind().as_str());
    let reason = match error {
        BuildError::MissingSecret { .. } => "missing_secret",
        BuildError::Invalid(_) => "misconfigured",
    };
    metrics::counter!(telemetry::CONNECTOR_FAILURES, "connector" => config.name().to_owned(), "reason" => reason).increment(1);
    let text = format!("not started: {error}");
    health.failure(config.name(), &text, true);
    tracing::error!(connector = config.name(), error = %error, "connector not started");
}

/// What the connectors of this process hand to the HTTP layer: the receiving side of each
/// webhook connector running here, why the others are not running here, every webhook's
/// own path, and every connector's mapping (for dead-letter replay).
pub struct ConnectorHandles {
    pub endpoints: Vec<PushEndpoint>,
    pub unavailable: BTreeMap<String, String>,
    pub paths: BTreeMap<String, String>,
    pub mappers: BTreeMap<String, Mapper>,
}

/// Start this process's connectors (role `connectors`). A connector that cannot be built
/// (a missing secret, say) is shown as failing in `/healthz`; the others and the rest of
/// the hub run.
pub fn start_connectors(
    config: &crate::config::HubConfig,
    roles: crate::context::Roles,
    secrets: &crate::context::Secrets,
    handles: &Handles,
    supervisor: &crate::infra::supervisor::Supervisor,
    tasks: &mut tokio::task::JoinSet<()>,
) -> ConnectorHandles {
    let dead_letter_topic = config.kafka.topics.dead_letter.name.clone();
    let mut endpoints = Vec::new();
    let mut unavailable = BTreeMap::new();
    let mut paths = BTreeMap::new();
    let mut mappers = BTreeMap::new();
    for c in &config.connectors {
        mappers.insert(c.name().to_owned(), c.mapper());
        if let ConnectorConfig::Webhook(w) = c {
            if let Some(path) = &w.path {
                paths.insert(w.name.clone(), path.clone());
            }
            if !roles.connectors {
                unavailable.insert(
                    w.name.clone(),
                    "this process does not run the connectors role".to_owned(),
                );
            }
        }
        if !roles.connectors {
            continue;
        }
        let wiring = Wiring {
            feed_topic: config.feed_topic(c.department()).name.clone(),
            dead_letter_topic: dead_letter_topic.clone(),
            handles,
        };
        match build(c, &|var: &str| secrets(var), wiring) {
            Ok(built) => {
                if let Some(endpoint) = built.push {
                    endpoints.push(endpoint);
                }
                supervisor.spawn(tasks, c.name(), "connector", built.connector);
            }
            Err(e) => {
                report_unbuilt(&handles.health, c, &e);
                if matches!(c, ConnectorConfig::Webhook(_)) {
                    unavailable.insert(c.name().to_owned(), e.to_string());
                }
            }
        }
    }
    ConnectorHandles {
        endpoints,
        unavailable,
        paths,
        mappers,
    }
}
