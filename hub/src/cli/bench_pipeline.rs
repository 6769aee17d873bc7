//! `hub bench pipeline`: the routing pipeline beside its broker, in one run on the embedded
//! broker with the shipped sample city.
//!
//! 1. **Raw broker**: produce N feed events (Avro, the feed's real size) with rdkafka, then
//!    consume them from the beginning with a plain consumer: what the broker gives.
//! 2. **Hub, backlog**: the hub with the router role alone routes the same N preloaded events
//!    to committed tasks, on SQLite and, when one answers, on PostgreSQL (a fresh database).
//! 3. **Hub, latency**: events produced at a fixed rate while the hub routes them; the delay
//!    from each event's production to its task's routing decision (the task's `created_at`,
//!    written in the transaction that commits it). Then at a quarter of the rate.
//!
//! 4. **Two hubs in one group**: two routing pipelines in `group` assignment on one
//!    consumer group and one fresh PostgreSQL database route the same backlog together.
//!
//! The events are police 110 thefts (盗窃, a group that never merges: two thefts in one
//! building are two cases), spread over the city's addresses, so each one becomes one task
//! and the count of tasks tells when the backlog is done. The figures print last, with the ratio of
//! each hub rate to the raw consume rate measured in the same run.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::Utc;
use hub_connectors::mapping::{Mapped, Mapper, MappingContext, RecordFormat};
use hub_connectors::RawRecord;
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::{CivicEvent, Department};
use hub_schemas::registry::{LocalRegistry, Registry};
use hub_simulator::generator::{load_addresses, Address, Generator};
use hub_store::TaskFilter;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use serde_json::json;

use crate::config::{HubConfig, RouterAssignment};
use crate::infra::broker::EmbeddedBroker;
use crate::infra::kafka::Kafka;
use crate::startup::{self, Roles};

/// What one run measures.
#[derive(Debug, Clone)]
pub struct Params {
    /// Events in the backlog (and in the raw baseline).
    pub events: usize,
    /// The latency run: events per second, for this long.
    pub rate: u32,
    pub seconds: u64,
    /// A PostgreSQL server to create a fresh database on (skipped when it does not answer).
    pub postgres: String,
}

impl Params {
    pub fn new(quick: bool, postgres: String) -> Self {
        if quick {
            Params {
                events: 5_000,
                rate: 500,
                seconds: 5,
                postgres,
            }
        } else {
            Params {
                events: 100_000,
                rate: 2_000,
                seconds: 20,
                postgres,
            }
        }
    }
}

const ROUTER_ONLY: Roles = Roles {
    connectors: false,
    router: true,
    api: false,
};

/// The feed the events go to.
const DEPARTMENT: Department = Department::Police;
const SOURCE: &str = "police.bench";

pub async fn bench_pipeline(params: &Params) -> anyhow::Result<()> {
    let shipped = Path::new("config/hub.toml");
    if !shipped.is_file() {
        bail!("config/hub.toml not found: run `hub bench pipeline` from the project folder");
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: a debug build; run `cargo run --release -p hub -- bench pipeline` for real figures"
        );
    }
    let dir = Scratch::new()?;
    let broker = EmbeddedBroker::start(&dir.path().join("broker")).await?;
    let mut config = HubConfig::load(shipped)?;
    config.kafka.brokers = broker.bootstrap().to_owned();
    config.kafka.router_assignment = RouterAssignment::Static;
    config.data_dir = dir.path().to_owned();
    config.connectors.clear();
    config.routing.reload_check_ms = 0;
    let topic = config.feed_topic(DEPARTMENT).name.clone();
    let kafka = Kafka::connect(broker.bootstrap(), "hub-bench")?;
    kafka.ensure_topics(&config.all_topics()).await?;
    let codec = Codec::new(Registry::from(LocalRegistry::open(
        dir.path().join("schema-ids.json"),
    )?));
    let addresses =
        load_addresses(&config.city_dir().join("addresses.csv")).map_err(anyhow::Error::msg)?;
    let mut events = Events::new(addresses);

    let mut report = String::new();
    eprintln!("encoding {} events", params.events);
    let payloads = events
        .encode(&codec, &topic, "BACKLOG", params.events)
        .await?;
    let bytes = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len().max(1);

    // 1. The raw broker.
    eprintln!("producing {} events", payloads.len());
    let started = Instant::now();
    produce_all(&kafka, &topic, &payloads).await?;
    let produce = rate(payloads.len(), started.elapsed());
    eprintln!("consuming them with a plain consumer");
    let started = Instant::now();
    consume_all(&kafka, &topic, payloads.len()).await?;
    let consume = rate(payloads.len(), started.elapsed());
    let _ = writeln!(
        report,
        "raw broker: produce {produce:.0} events/s, consume {consume:.0} events/s ({} events of {bytes} bytes)",
        payloads.len()
    );

    // 2. The hub routing the backlog, on each store.
    let mut stores = vec![(
        "SQLite",
        format!("sqlite://{}", dir.path().join("hub.db").display()),
    )];
    match hub_store::fresh_postgres_database(&params.postgres, "hub_bench").await {
        Ok(url) => stores.push(("PostgreSQL", url)),
        Err(e) => {
            let _ = writeln!(
                report,
                "PostgreSQL skipped: {} does not answer ({e})",
                startup::redact_url(&params.postgres)
            );
        }
    }
    let mut ratios = Vec::new();
    for (n, (name, url)) in stores.iter().enumerate() {
        eprintln!("the hub routing the backlog on {name}");
        let mut config = config.clone();
        config.store.url = url.clone();
        // Each store's hub reads the backlog from the start, in a group of its own.
        config.kafka.router_group = format!("hub-bench-router-{n}");
        let hub = startup::start(&config, ROUTER_ONLY, Arc::new(|_: &str| None)).await?;
        let routed = until_tasks(&hub, payloads.len(), Duration::from_secs(3600)).await;
        let (done, elapsed) = match routed {
            Ok(v) => v,
            Err(e) => {
                hub.stop().await;
                return Err(e);
            }
        };
        let hub_rate = rate(done, elapsed);
        let _ = writeln!(
            report,
            "hub on {name}: {hub_rate:.0} events/s routed to committed tasks ({done} in {:.1} s)",
            elapsed.as_secs_f64()
        );
        ratios.push((name.to_string(), hub_rate / consume));
        if n == 0 {
            // 3. Latency at a fixed rate, on the first store; and at a quarter of it, where
            // a hub slower than the rate is not measuring its own backlog.
            for rate in [params.rate, (params.rate / 4).max(1)] {
                eprintln!(
                    "latency: {rate} events/s for {} s on {name}",
                    params.seconds
                );
                let figures = latency(
                    &hub,
                    &kafka,
                    &codec,
                    &topic,
                    &mut events,
                    rate,
                    params.seconds,
                )
                .await;
                match figures {
                    Ok(line) => {
                        let _ = writeln!(report, "{line}");
                    }
                    Err(e) => {
                        let _ = writeln!(report, "latency run failed: {e:#}");
                    }
                }
            }
        }
        hub.stop().await;
    }
    // 4. Two routing processes' pipelines in one consumer group, on a PostgreSQL of their own:
    // what a second process adds on this machine.
    if stores.len() > 1 {
        match hub_store::fresh_postgres_database(&params.postgres, "hub_bench_group").await {
            Ok(url) => {
                eprintln!("two routers in one group routing the backlog on PostgreSQL");
                let mut config = config.clone();
                config.store.url = url;
                config.kafka.router_group = "hub-bench-router-group".to_owned();
                config.kafka.router_assignment = RouterAssignment::Group;
                let first = startup::start(&config, ROUTER_ONLY, Arc::new(|_: &str| None)).await?;
                let second = startup::start(&config, ROUTER_ONLY, Arc::new(|_: &str| None)).await?;
                let routed = until_tasks(&first, payloads.len(), Duration::from_secs(3600)).await;
                second.stop().await;
                first.stop().await;
                let (done, elapsed) = routed?;
                let pair = rate(done, elapsed);
                let _ = writeln!(
                    report,
                    "two hubs in one group on PostgreSQL: {pair:.0} events/s ({done} in {:.1} s)",
                    elapsed.as_secs_f64()
                );
                ratios.push((
                    "PostgreSQL, two hubs in one group".to_owned(),
                    pair / consume,
                ));
            }
            Err(e) => {
                let _ = writeln!(report, "two hubs in one group skipped: {e}");
            }
        }
    }
    for (name, ratio) in ratios {
        let _ = writeln!(report, "hub / raw consume on {name}: {ratio:.3}");
    }
    drop(broker);
    println!("{report}");
    Ok(())
}

/// A folder of the run's own (broker log, SQLite file), removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("hub-bench-pipeline-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Police thefts in the sample city, one task each.
pub(crate) struct Events {
    generator: Generator,
    addresses: Vec<Address>,
    n: usize,
}

impl Events {
    pub(crate) fn new(addresses: Vec<Address>) -> Self {
        Events {
            generator: Generator::new(addresses.clone(), 20_261_201),
            addresses,
            n: 0,
        }
    }

    /// The next event, received now.
    pub(crate) fn next(&mut self, prefix: &str) -> anyhow::Result<CivicEvent> {
        let at = &self.addresses[(self.n * 7919) % self.addresses.len()];
        let mut record = self.generator.record_at(DEPARTMENT, at, Utc::now());
        record["jjdbh"] = json!(format!("{prefix}-{}", self.n));
        // Thefts never merge: every event is a task of its own.
        record["bjlbdm"] = json!("0201");
        record["bjlbmc"] = json!("盗窃");
        self.n += 1;
        let raw = RawRecord {
            bytes: record.to_string().into_bytes(),
            uri: "bench:generator".into(),
        };
        let ctx = MappingContext {
            source_system: SOURCE,
            received_at: Utc::now(),
            limits: Default::default(),
        };
        match Mapper::new(RecordFormat::PoliceIncident).map(ctx, &raw) {
            Ok(Mapped::Event(e)) => Ok(*e),
            Ok(Mapped::Skip { reason }) => bail!("a generated case was skipped: {reason}"),
            Err(e) => bail!("a generated case does not map: {e}"),
        }
    }

    async fn encode(
        &mut self,
        codec: &Codec,
        topic: &str,
        prefix: &str,
        n: usize,
    ) -> anyhow::Result<Vec<Vec<u8>>> {
        let subject = value_subject(topic);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let event = self.next(prefix)?;
            out.push(codec.encode(&subject, &event).await?);
        }
        Ok(out)
    }
}

/// Produces every payload, many in flight at once, each keyed by its position (spread over
/// the partitions).
async fn produce_all(kafka: &Kafka, topic: &str, payloads: &[Vec<u8>]) -> anyhow::Result<()> {
    for (c, chunk) in payloads.chunks(5_000).enumerate() {
        let sends = chunk.iter().enumerate().map(|(i, p)| {
            let key = format!("k{}", c * 5_000 + i);
            async move { kafka.produce(topic, &key, p, &[]).await }
        });
        for result in futures::future::join_all(sends).await {
            result.context("producing a bench event")?;
        }
    }
    Ok(())
}

/// Reads `n` records of `topic` from the beginning with a plain consumer of a fresh group.
async fn consume_all(kafka: &Kafka, topic: &str, n: usize) -> anyhow::Result<()> {
    let consumer = kafka.consumer("hub-bench-raw", RouterAssignment::Static, &[topic])?;
    let mut seen = 0;
    let mut bytes = 0usize;
    while seen < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .context("the raw consumer waited 30 s for a record")??;
        bytes += m.payload().map_or(0, <[u8]>::len);
        seen += 1;
    }
    std::hint::black_box(bytes);
    consumer.unsubscribe();
    Ok(())
}

/// Waits until the store holds `n` tasks; the time from the first task to the last (start-up
/// left out), and how many were timed.
async fn until_tasks(
    hub: &startup::RunningHub,
    n: usize,
    limit: Duration,
) -> anyhow::Result<(usize, Duration)> {
    let deadline = Instant::now() + limit;
    let mut first: Option<(Instant, u64)> = None;
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        let count = hub.store.count_tasks(&TaskFilter::default()).await?;
        let now = Instant::now();
        if count > 0 && first.is_none() {
            first = Some((now, count));
        }
        if count as usize >= n {
            let (at, base) = first.expect("set above");
            return Ok(((count - base) as usize, now - at));
        }
        if count != last_count {
            (last_count, last_change) = (count, now);
        } else if now - last_change > Duration::from_secs(60) {
            bail!("the hub stopped at {count} of {n} tasks for a minute");
        }
        if now > deadline {
            bail!("the hub routed {count} of {n} in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Events at `params.rate` per second for `params.seconds` while the hub routes them; the
/// delay from production to each task's routing decision.
async fn latency(
    hub: &startup::RunningHub,
    kafka: &Kafka,
    codec: &Codec,
    topic: &str,
    events: &mut Events,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<String> {
    let before = hub.store.count_tasks(&TaskFilter::default()).await? as usize;
    let subject = value_subject(topic);
    let total = rate as usize * seconds as usize;
    // Sent in ticks of 10 ms.
    let per_tick = (rate as usize / 100).max(1);
    let started = tokio::time::Instant::now();
    let mut sent = 0;
    let mut ids = Vec::with_capacity(total);
    let mut tick = 0u32;
    while sent < total {
        tokio::time::sleep_until(started + Duration::from_millis(10) * tick).await;
        tick += 1;
        let mut batch = Vec::with_capacity(per_tick);
        for _ in 0..per_tick.min(total - sent) {
            // `received_at` is the moment of production: the delay is measured from it.
            let event = events.next("LATENCY")?;
            ids.push(event.source_id.clone());
            batch.push((codec.encode(&subject, &event).await?, event.source_id));
        }
        sent += batch.len();
        let sends = batch
            .iter()
            .map(|(p, key)| async move { kafka.produce(topic, key, p, &[]).await });
        // Not awaited in the tick: the producer's own batching sends them.
        for r in futures::future::join_all(sends).await {
            r.context("producing a latency event")?;
        }
    }
    until_tasks(hub, before + total, Duration::from_secs(600)).await?;
    let mut delays = Vec::with_capacity(ids.len());
    for id in &ids {
        let Some(hub_store::PriorOutcome::Task { task_id }) =
            hub.store.prior_outcome(SOURCE, id).await?
        else {
            bail!("no task for {id}");
        };
        let task = hub
            .store
            .get_task(&task_id)
            .await?
            .with_context(|| format!("no task {task_id}"))?;
        let f = &task.fields;
        delays.push((f.created_at - f.received_at).num_milliseconds());
    }
    delays.sort_unstable();
    let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    Ok(format!(
        "latency at {} events/s for {} s: p50 {} ms, p99 {} ms, max {} ms (production to routing decision, {} events)",
        rate,
        seconds,
        at(0.5),
        at(0.99),
        delays.last().copied().unwrap_or_default(),
        delays.len()
    ))
}
