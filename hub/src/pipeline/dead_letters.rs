//! The dead-letter topic: every record the hub refuses — a connector could not map it, the
//! routing pipeline could not decode, validate, classify, store or route it — is kept there
//! with its original bytes and the reason naming the field or the failure, and counted; the
//! stream goes on. This module writes them (one [`Letter`] type, one writer), lists them and
//! replays them after a fix.
//!
//! Replay runs a connector's record through the *current* mapping and produces what maps now
//! to its department's feed topic, exactly as the connector would have (same event id, so a
//! record that had meanwhile become a task changes nothing); a record the routing pipeline
//! refused goes back, byte for byte, to the feed topic it came from, to be routed by the
//! current rules. What still fails stays. Nothing is ever removed from the topic; a replay
//! can be repeated safely.
//!
//! The hub serves both over HTTP (`crate::http::deadletters`), so `hub dlq list|replay --api
//! URL` works with the embedded broker too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use hub_connectors::mapping::{Mapped, Mapper, MappingContext, RecordFormat};
use hub_connectors::privacy::mask_json_bytes;
use hub_connectors::RawRecord;
use hub_router::city::City;
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::Department;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::infra::kafka::Kafka;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;
use crate::pipeline::ingest::partition_key;

/// Header names on dead-letter records (values are UTF-8 text).
pub const HEADER_STAGE: &str = "hub.dlq.stage";
pub const HEADER_REASON: &str = "hub.dlq.reason";
pub const HEADER_SOURCE: &str = "hub.dlq.source";
pub const HEADER_ORIGIN: &str = "hub.dlq.origin";
/// The record layout a connector read the record as (`RecordFormat`), so a replay maps it
/// the same way even when the connector is gone from the configuration.
pub const HEADER_FORMAT: &str = "hub.dlq.format";

/// Stages of the connectors: the mapping refused a record, or the source could not even
/// read it (not valid JSON from a database row, an MQTT payload that is not text).
pub const STAGE_MAPPING: &str = "connector.mapping";
pub const STAGE_SOURCE: &str = "connector.source";
/// Stages of the routing pipeline whose refusals are dead-lettered: the Avro could not be
/// decoded, the event broke the input bounds, its category is not in the taxonomy, the
/// store refused its values, or routing it panicked.
pub const STAGE_ROUTER_DECODE: &str = "router.decode";
pub const STAGE_ROUTER_VALIDATE: &str = "router.validate";
pub const STAGE_ROUTER_CLASSIFY: &str = "router.classify";
pub const STAGE_ROUTER_STORE: &str = "router.store";
pub const STAGE_ROUTER_PANIC: &str = "router.panic";

/// A record the hub refused.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Where it was refused: `connector.mapping` (the mapping refused it),
    /// `connector.source` (the source could not even read it), or one of the `router.*`
    /// stages.
    pub stage: &'static str,
    /// The connector (or, for the routing pipeline, the event's source system or topic).
    pub source: String,
    pub format: Option<String>,
    /// Where exactly: a page URL, `table:id`, an MQTT topic, `webhook:<name>`, or
    /// `topic/partition@offset` for the routing pipeline.
    pub origin: String,
    pub reason: String,
    /// The bytes exactly as received.
    pub original: Vec<u8>,
}

/// Set (to `true`) on a dead letter whose record was cut to [`MAX_LETTER_BYTES`].
pub const HEADER_TRUNCATED: &str = "hub.dlq.truncated";
/// The size and SHA-256 (hex) of the record as received, on a truncated dead letter.
pub const HEADER_SIZE: &str = "hub.dlq.size";
pub const HEADER_SHA256: &str = "hub.dlq.sha256";

/// The most of a refused record a dead letter keeps. Kafka refuses messages over about
/// 1 MB; a record bigger than this is kept cut, with its size and digest, so that the
/// dead-letter write itself cannot fail forever and stop the feed.
pub const MAX_LETTER_BYTES: usize = 512 * 1024;
/// The most characters of a reason or origin kept (a reason may quote the bad value).
const MAX_HEADER_CHARS: usize = 2000;

fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_HEADER_CHARS {
        std::borrow::Cow::Borrowed(text)
    } else {
        let cut: String = text.chars().take(MAX_HEADER_CHARS).collect();
        std::borrow::Cow::Owned(format!("{cut}… ({} bytes in all)", text.len()))
    }
}

/// Write one dead letter and wait for the broker; an error is returned (the ingest loop
/// retries its whole batch).
pub async fn produce(kafka: &Kafka, topic: &str, letter: &Letter) -> Result<(), KafkaError> {
    let reason = bounded(&letter.reason);
    let origin = bounded(&letter.origin);
    let source = bounded(&letter.source);
    let truncated = letter.original.len() > MAX_LETTER_BYTES;
    let size = letter.original.len().to_string();
    let digest = hub_connectors::mapping::sha256_hex(&letter.original);
    let mut headers: Vec<(&str, &[u8])> = vec![
        (HEADER_STAGE, letter.stage.as_bytes()),
        (HEADER_REASON, reason.as_bytes()),
        (HEADER_SOURCE, source.as_bytes()),
        (HEADER_ORIGIN, origin.as_bytes()),
    ];
    if let Some(format) = &letter.format {
        headers.push((HEADER_FORMAT, format.as_bytes()));
    }
    let kept = if truncated {
        headers.push((HEADER_TRUNCATED, b"true"));
        headers.push((HEADER_SIZE, size.as_bytes()));
        headers.push((HEADER_SHA256, digest.as_bytes()));
        &letter.original[..MAX_LETTER_BYTES]
    } else {
        &letter.original[..]
    };
    kafka.produce(topic, &source, kept, &headers).await
}

/// Write one dead letter, retrying until the broker takes it (losing it would drop the
/// record) or the hub stops. False when shutdown came first: the caller must then not move
/// past the record.
pub async fn send(kafka: &Kafka, topic: &str, letter: &Letter, shutdown: &mut Shutdown) -> bool {
    let mut backoff =
        hub_connectors::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match produce(kafka, topic, letter).await {
            Ok(()) => {
                delivered(letter);
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, topic, "dead-letter write failed; retrying");
                if !shutdown.sleep(backoff.next_delay()).await {
                    return false;
                }
            }
        }
    }
}

/// Count and log a dead letter once the broker has it. The log names the record's origin and
/// the reason, never its bytes (they hold personal data).
pub fn delivered(letter: &Letter) {
    tracing::warn!(
        stage = letter.stage,
        source = %letter.source,
        origin = %letter.origin,
        reason = %letter.reason,
        "record dead-lettered"
    );
    metrics::counter!(telemetry::DEAD_LETTERS, "stage" => letter.stage).increment(1);
}

/// One record on the dead-letter topic.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub at: Option<DateTime<Utc>>,
    pub stage: String,
    pub source: String,
    pub format: Option<String>,
    pub origin: String,
    pub reason: String,
    pub size: usize,
    /// Whether the record was too big to keep whole (only its start is kept).
    #[serde(default)]
    pub truncated: bool,
    /// The record with personal values masked (names, phones, ID numbers), shortened.
    pub preview: String,
    #[serde(skip)]
    pub original: Vec<u8>,
}

/// Which entries to look at.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only this connector's (or router stage's) records.
    pub source: Option<String>,
    pub stage: Option<String>,
    /// Only records after this offset (on every partition).
    pub after: Option<i64>,
    pub limit: Option<usize>,
}

impl Filter {
    fn keeps(&self, e: &Entry) -> bool {
        self.source.as_ref().is_none_or(|s| *s == e.source)
            && self.stage.as_ref().is_none_or(|s| *s == e.stage)
            && self.after.is_none_or(|a| e.offset > a)
    }
}

/// Read the whole topic (up to the high watermark of each partition at the time of the call).
pub async fn read(brokers: &str, topic: &str, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    let filter = filter.clone();
    tokio::task::spawn_blocking(move || read_blocking(&brokers, &topic, &filter))
        .await
        .context("the dead-letter reader thread")?
}

fn read_blocking(brokers: &str, topic: &str, filter: &Filter) -> anyhow::Result<Vec<Entry>> {
    let timeout = Duration::from_secs(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "hub-dlq-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the dead-letter reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading the partitions of {topic}"))?;
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .with_context(|| format!("reading the offsets of {topic}/{}", p.id()))?;
            if high > low {
                ends.insert(p.id(), high);
                assignment.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            }
        }
    }
    // The newest `limit` matching entries only: a heap of at most `limit`, whose least
    // recent entry is dropped when a newer one comes, so memory stays bounded however long
    // the topic is.
    let limit = filter.limit.unwrap_or(MAX_LISTED).clamp(1, MAX_LISTED);
    let mut kept: std::collections::BinaryHeap<std::cmp::Reverse<Newest>> =
        std::collections::BinaryHeap::new();
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut done: BTreeMap<i32, bool> = ends.keys().map(|p| (*p, false)).collect();
    while done.values().any(|d| !d) {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("reading {topic} did not reach its end within 60 s");
        }
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = message.with_context(|| format!("reading {topic}"))?;
        let header = |name: &str| {
            m.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let payload = m.payload().unwrap_or_default().to_vec();
        if m.offset() + 1 >= ends[&m.partition()] {
            done.insert(m.partition(), true);
        }
        let preview = String::from_utf8_lossy(&mask_json_bytes(&payload))
            .chars()
            .take(300)
            .collect();
        let entry = Entry {
            partition: m.partition(),
            offset: m.offset(),
            at: m
                .timestamp()
                .to_millis()
                .and_then(DateTime::<Utc>::from_timestamp_millis),
            stage: header(HEADER_STAGE).unwrap_or_default(),
            source: header(HEADER_SOURCE).unwrap_or_default(),
            format: header(HEADER_FORMAT),
            origin: header(HEADER_ORIGIN).unwrap_or_default(),
            reason: header(HEADER_REASON).unwrap_or_default(),
            size: header(HEADER_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(payload.len()),
            truncated: header(HEADER_TRUNCATED).is_some(),
            preview,
            original: payload,
        };
        if filter.keeps(&entry) {
            kept.push(std::cmp::Reverse(Newest(entry)));
            if kept.len() > limit {
                kept.pop();
            }
        }
    }
    let mut out: Vec<Entry> = kept.into_iter().map(|r| r.0 .0).collect();
    out.sort_by_key(|e| (e.at, e.partition, e.offset));
    Ok(out)
}

/// The most entries one listing or replay looks at (the newest ones).
pub const MAX_LISTED: usize = 10_000;

/// Orders entries by recency, for keeping the newest.
struct Newest(Entry);

impl Newest {
    fn key(&self) -> (Option<DateTime<Utc>>, i32, i64) {
        (self.0.at, self.0.partition, self.0.offset)
    }
}

impl PartialEq for Newest {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Newest {}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReplayReport {
    pub examined: usize,
    /// Records that map now and were produced to their feed topic.
    pub produced: Vec<Replayed>,
    /// Valid now, but nothing to act on (counted, not produced).
    pub skipped: Vec<Left>,
    /// Still refused by the current mapping; they stay on the dead-letter topic.
    pub still_failing: Vec<Left>,
    /// Not connector mapping failures (the router's, or a source that could not read the
    /// record at all); left as they are.
    pub not_replayable: Vec<Left>,
}

impl ReplayReport {
    /// The counts, in a line (for the action trail).
    pub fn summary(&self) -> String {
        format!(
            "examined {}, produced {}, skipped {}, still failing {}, not replayable {}",
            self.examined,
            self.produced.len(),
            self.skipped.len(),
            self.still_failing.len(),
            self.not_replayable.len()
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replayed {
    pub offset: i64,
    pub source: String,
    pub source_id: String,
    pub event_id: String,
    pub topic: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Left {
    pub offset: i64,
    pub source: String,
    pub reason: String,
}

/// What replay needs from the running hub.
#[derive(Clone)]
pub struct DlqState {
    pub kafka: Kafka,
    pub dead_letter_topic: String,
    /// Feed topic per department.
    pub feeds: BTreeMap<Department, String>,
    pub codec: Arc<Codec>,
    pub city: Arc<City>,
    /// The configured connectors' mappers, by name (rules included).
    pub mappers: BTreeMap<String, Mapper>,
    pub limits: hub_schemas::limits::InputLimits,
}

/// Re-run the matching dead letters through the current mapping.
pub async fn replay(
    state: &DlqState,
    filter: &Filter,
    dry_run: bool,
) -> anyhow::Result<ReplayReport> {
    let entries = read(state.kafka.brokers(), &state.dead_letter_topic, filter).await?;
    let mut report = ReplayReport {
        examined: entries.len(),
        ..ReplayReport::default()
    };
    for e in entries {
        let left = |reason: String| Left {
            offset: e.offset,
            source: e.source.clone(),
            reason,
        };
        if e.truncated {
            report.not_replayable.push(left(format!(
                "the record was {} bytes, too big to keep whole; only its start is kept",
                e.size
            )));
            continue;
        }
        if e.stage.starts_with("router.") {
            // The routing pipeline refused it: it goes back as it was to the feed topic it
            // came from, to be routed by the current rules.
            let topic = e.origin.split('/').next().unwrap_or_default().to_owned();
            if !state.feeds.values().any(|t| *t == topic) {
                report.not_replayable.push(left(format!(
                    "`{}` does not name a feed topic of this hub",
                    e.origin
                )));
                continue;
            }
            let decoded = state
                .codec
                .decode::<hub_schemas::event::CivicEvent>(&e.original)
                .await
                .ok();
            let key = decoded
                .as_ref()
                .map(|ev| partition_key(&state.city, ev))
                .unwrap_or_else(|| e.source.clone());
            if !dry_run {
                state
                    .kafka
                    .produce(
                        &topic,
                        &key,
                        &e.original,
                        &[(
                            "hub.replayed_from",
                            format!("{}/{}@{}", state.dead_letter_topic, e.partition, e.offset)
                                .as_bytes(),
                        )],
                    )
                    .await
                    .with_context(|| format!("producing dead letter {} to {topic}", e.offset))?;
                tracing::info!(source = %e.source, offset = e.offset, stage = %e.stage, "dead letter sent back to its feed topic");
            }
            report.produced.push(Replayed {
                offset: e.offset,
                source: e.source.clone(),
                source_id: decoded
                    .as_ref()
                    .map(|ev| ev.source_id.clone())
                    .unwrap_or_default(),
                event_id: decoded
                    .as_ref()
                    .map(|ev| ev.event_id.clone())
                    .unwrap_or_default(),
                topic,
            });
            continue;
        }
        if e.stage != STAGE_MAPPING {
            let why = if e.stage == STAGE_SOURCE {
                format!(
                    "the source could not read it ({}); a mapping fix does not change that",
                    e.reason
                )
            } else {
                format!("stage `{}` is not a connector mapping", e.stage)
            };
            report.not_replayable.push(left(why));
            continue;
        }
        let mapper = match state.mappers.get(&e.source) {
            Some(m) => m.clone(),
            None => match e.format.as_deref().and_then(RecordFormat::parse) {
                Some(format) => Mapper::new(format),
                None => {
                    report.not_replayable.push(left(format!(
                        "connector `{}` is not configured and the record names no format",
                        e.source
                    )));
                    continue;
                }
            },
        };
        let ctx = MappingContext {
            source_system: &e.source,
            received_at: Utc::now(),
            limits: state.limits,
        };
        let raw = RawRecord {
            bytes: e.original.clone(),
            uri: e.origin.clone(),
        };
        match mapper.map(ctx, &raw) {
            Err(err) => report.still_failing.push(left(err.to_string())),
            Ok(Mapped::Skip { reason }) => report.skipped.push(left(reason)),
            Ok(Mapped::Event(event)) => {
                let topic = state
                    .feeds
                    .get(&event.department)
                    .with_context(|| format!("no feed topic for {}", event.department))?
                    .clone();
                if !dry_run {
                    let payload = state
                        .codec
                        .encode(&value_subject(&topic), event.as_ref())
                        .await
                        .map_err(|err| {
                            anyhow::anyhow!("encoding event {}: {err}", event.event_id)
                        })?;
                    let key = partition_key(&state.city, &event);
                    state
                        .kafka
                        .produce(
                            &topic,
                            &key,
                            &payload,
                            &[
                                ("hub.event_id", event.event_id.as_bytes()),
                                (
                                    "hub.replayed_from",
                                    format!(
                                        "{}/{}@{}",
                                        state.dead_letter_topic, e.partition, e.offset
                                    )
                                    .as_bytes(),
                                ),
                            ],
                        )
                        .await
                        .with_context(|| {
                            format!("producing event {} to {topic}", event.event_id)
                        })?;
                    tracing::info!(event_id = %event.event_id, source = %e.source, offset = e.offset, "dead letter replayed");
                }
                report.produced.push(Replayed {
                    offset: e.offset,
                    source: e.source.clone(),
                    source_id: event.source_id.clone(),
                    event_id: event.event_id.clone(),
                    topic,
                });
            }
        }
    }
    Ok(report)
}
