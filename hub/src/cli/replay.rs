//! `hub rules replay`: what a candidate rules version would have done to the events of a
//! period (see `crate::cases::replay`). It reads the event log of the store the
//! configuration names and writes nothing.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use hub_store::{EventCursor, TaskStore};

use crate::cases::replay::Report;
use crate::config::{HubConfig, RulesSource};
use crate::context::routing::{load, Loaded};
use crate::context::rules_versions::load_version;

/// How the result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Events read per page of the log.
const PAGE: u32 = 10_000;

/// A configuration: a routing folder, or a stored version (`r-…`).
async fn configuration(
    store: &dyn TaskStore,
    config: &HubConfig,
    which: &str,
) -> anyhow::Result<Loaded> {
    let dir = Path::new(which);
    if dir.is_dir() {
        let dir = dir.to_owned();
        return tokio::task::spawn_blocking(move || load(&dir))
            .await
            .context("loading the candidate")?
            .map_err(anyhow::Error::from);
    }
    if which.starts_with("r-") {
        return load_version(store, which, &config.data_dir).await;
    }
    bail!("`{which}` is neither a routing folder nor a rules version (r-…)")
}

/// The version that routed each moment of the period: from the store's activations, or —
/// with rules from files and nothing published — the routing folder.
pub struct Baselines {
    /// (active from, configuration), in time order.
    spans: Vec<(DateTime<Utc>, Arc<Loaded>)>,
}

impl Baselines {
    /// One configuration for the whole period.
    pub fn single(config: Arc<Loaded>) -> Baselines {
        Baselines {
            spans: vec![(DateTime::<Utc>::MIN_UTC, config)],
        }
    }

    async fn load(
        store: &dyn TaskStore,
        config: &HubConfig,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Baselines> {
        let mut activations = store.rules_activations(100_000).await?;
        activations.reverse();
        if activations.is_empty() {
            if config.routing.source == RulesSource::Store {
                bail!("no rules version was ever published: nothing to compare with");
            }
            let dir = config.routing.dir.display().to_string();
            let loaded = configuration(store, config, &dir).await?;
            return Ok(Baselines::single(Arc::new(loaded)));
        }
        // The activations of the period, and the one in force when it began.
        let first = activations.iter().rposition(|a| a.at <= from).unwrap_or(0);
        let mut loaded: BTreeMap<String, Arc<Loaded>> = BTreeMap::new();
        let mut spans = Vec::new();
        for a in activations[first..].iter().filter(|a| a.at < to) {
            let config = match loaded.get(&a.version) {
                Some(l) => l.clone(),
                None => {
                    let l = Arc::new(load_version(store, &a.version, &config.data_dir).await?);
                    loaded.insert(a.version.clone(), l.clone());
                    l
                }
            };
            spans.push((a.at, config));
        }
        if spans.is_empty() {
            bail!("no rules version was active in the period");
        }
        Ok(Baselines { spans })
    }

    fn at(&self, t: DateTime<Utc>) -> &Loaded {
        let i = self.spans.partition_point(|(from, _)| *from <= t);
        &self.spans[i.saturating_sub(1)].1
    }
}

/// A replay's report and where its time went.
pub struct Run {
    pub report: Report,
    /// Comparing the events (routing each twice, with its clocks): the replay itself.
    pub replaying: Duration,
    /// Reading the event log.
    pub reading: Duration,
}

/// Replays the logged events of `[from, to)` with `candidate` against `baselines`, a page
/// at a time, showing progress on a terminal.
pub async fn run(
    store: &dyn TaskStore,
    baselines: &Baselines,
    candidate: &Loaded,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Run> {
    let progress = std::io::stderr().is_terminal();
    let mut report = Report::default();
    let (mut replaying, mut reading) = (Duration::ZERO, Duration::ZERO);
    let mut cursor: Option<EventCursor> = None;
    loop {
        let read = Instant::now();
        let page = store.logged_events(from, to, cursor.as_ref(), PAGE).await?;
        reading += read.elapsed();
        let started = Instant::now();
        for event in &page {
            report.add(event, baselines.at(event.received_at), candidate);
        }
        replaying += started.elapsed();
        if progress {
            eprint!(
                "\r{} events replayed, {} moved",
                report.events, report.moved
            );
        }
        match page.last() {
            Some(last) if page.len() as u32 == PAGE => {
                cursor = Some(EventCursor {
                    received_at: last.received_at,
                    source_system: last.source_system.clone(),
                    source_id: last.source_id.clone(),
                });
            }
            _ => break,
        }
    }
    if progress {
        eprintln!();
    }
    report.finish();
    Ok(Run {
        report,
        replaying,
        reading,
    })
}

/// `hub rules replay`
pub async fn replay(
    config: &Path,
    candidate: &str,
    from: &str,
    to: &str,
    format: Format,
) -> anyhow::Result<()> {
    let bad = |e: crate::http::ApiError| {
        anyhow::anyhow!("{}", e.1["error"].as_str().unwrap_or("bad period"))
    };
    let from = crate::http::audit::instant("from", from, false).map_err(bad)?;
    let to = crate::http::audit::instant("to", to, true).map_err(bad)?;
    if from >= to {
        bail!("the period is empty: --from must be before --to");
    }
    let config = HubConfig::load(config)?;
    let store = hub_store::open(&config.store.url)
        .await
        .with_context(|| format!("opening the store at {}", config.store.url))?;
    let candidate = configuration(&*store, &config, candidate).await?;
    let baselines = Baselines::load(&*store, &config, from, to).await?;

    let run = run(&*store, &baselines, &candidate, from, to).await?;
    let (report, replaying, reading) = (run.report, run.replaying, run.reading);
    let rate = report.events as f64 / replaying.as_secs_f64().max(1e-9);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let mut v = serde_json::to_value(&report)?;
            v["candidate"] = candidate.version().into();
            v["from"] = from.to_rfc3339().into();
            v["to"] = to.to_rfc3339().into();
            v["events_per_second"] = rate.round().into();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        Format::Csv => {
            writeln!(out, "{}", Report::CSV_HEADER)?;
            for row in report.csv_rows() {
                writeln!(out, "{row}")?;
            }
        }
        Format::Table => print_table(&mut out, &report, candidate.version())?,
    }
    eprintln!(
        "replayed {} events in {:.2} s ({:.0} events/s on one core; {:.2} s reading the log)",
        report.events,
        replaying.as_secs_f64(),
        rate,
        reading.as_secs_f64()
    );
    Ok(())
}

pub fn print_table(out: &mut impl Write, r: &Report, candidate: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "{} events replayed with {candidate}: {} would change",
        r.events, r.moved
    )?;
    for (what, n) in &r.by_change {
        writeln!(out, "  {what:<12} {n}")?;
    }
    if !r.unit_load.is_empty() {
        writeln!(
            out,
            "lead units whose load changes (tasks led, before → after):"
        )?;
        for (unit, l) in &r.unit_load {
            let delta = l.after as i64 - l.before as i64;
            writeln!(
                out,
                "  {unit:<40} {:>6} → {:<6} ({delta:+})",
                l.before, l.after
            )?;
        }
    }
    if !r.community_load.is_empty() {
        writeln!(out, "communities whose load changes:")?;
        for (c, l) in &r.community_load {
            let delta = l.after as i64 - l.before as i64;
            writeln!(
                out,
                "  {c:<40} {:>6} → {:<6} ({delta:+})",
                l.before, l.after
            )?;
        }
    }
    const SHOWN: usize = 20;
    if !r.moved_events.is_empty() {
        writeln!(
            out,
            "moved events (first {SHOWN}; --format csv lists them all):"
        )?;
    }
    for m in r.moved_events.iter().take(SHOWN) {
        let side = |o: &crate::cases::replay::Outcome| {
            format!(
                "{} {} {}",
                o.kind,
                o.lead.as_deref().or(o.community.as_deref()).unwrap_or("-"),
                o.co_handlers.join("+")
            )
        };
        writeln!(
            out,
            "  {}/{} [{}]: {} → {}",
            m.source_system,
            m.source_id,
            m.changed.join(","),
            side(&m.before),
            side(&m.after)
        )?;
    }
    Ok(())
}
