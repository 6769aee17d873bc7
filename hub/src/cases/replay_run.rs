//! Running a replay over the store: the candidate and the versions that routed the period
//! (its baselines) loaded, the event log read a page at a time and compared
//! (`super::replay`). Writes nothing. Used by `hub rules replay`, the API and the console.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use hub_router::task::NewTask;
use hub_store::{EventCursor, TaskStore};

use crate::cases::replay::Report;
use crate::config::{HubConfig, RulesSource};
use crate::context::routing::{load, Loaded};
use crate::context::rules_versions::load_version;

/// Events read per page of the log.
const PAGE: u32 = 10_000;

/// A configuration: a routing folder, or a stored version (`r-…`).
pub async fn configuration(
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

    pub async fn load(
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
/// at a time, showing progress on standard error with `progress`.
pub async fn run(
    store: &dyn TaskStore,
    baselines: &Baselines,
    candidate: &Loaded,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    progress: bool,
) -> anyhow::Result<Run> {
    let mut report = Report::default();
    let (mut replaying, mut reading) = (Duration::ZERO, Duration::ZERO);
    let mut cursor: Option<EventCursor> = None;
    loop {
        let read = Instant::now();
        let page = store.logged_events(from, to, cursor.as_ref(), PAGE).await?;
        // When each event's task was resolved, for the on-time figures.
        let task_ids: Vec<String> = page
            .iter()
            .map(|e| NewTask::derive_id(&e.event_id))
            .collect();
        let refs: Vec<&str> = task_ids.iter().map(String::as_str).collect();
        let handled = store.handled_times(&refs).await?;
        reading += read.elapsed();
        let started = Instant::now();
        for (event, task_id) in page.iter().zip(&task_ids) {
            let resolved = handled.get(task_id).and_then(|h| h.resolved_at);
            report.add(event, baselines.at(event.received_at), candidate, resolved);
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
