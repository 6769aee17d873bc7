//! Health of each connector, shown by `GET /healthz` and `hub connectors status`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    Starting,
    /// The last batch went through.
    Healthy,
    /// The last attempt failed with something a retry may cure (an outage, a 5xx, the broker).
    Degraded,
    /// Failing in a way an operator must fix (credentials refused, a missing secret, a wrong
    /// table or topic); retried slowly so that a fix is picked up.
    Failing,
}

impl ConnectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Starting => "starting",
            ConnectorState::Healthy => "healthy",
            ConnectorState::Degraded => "degraded",
            ConnectorState::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectorHealth {
    /// `http_poll`, `webhook`, `mqtt`, `postgres_poll` or `open311`.
    pub kind: String,
    pub state: ConnectorState,
    pub last_success_at: Option<DateTime<Utc>>,
    /// What went wrong last, for an operator: names the system and the cause, never a
    /// secret.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Records taken from the departmental system (mapped or not).
    pub records_received: u64,
    pub records_produced: u64,
    pub records_dead_lettered: u64,
    /// Valid records that call for nothing (e.g. a welfare row with a recent contact).
    pub records_skipped: u64,
    /// Failed attempts (polls, connections, deliveries to Kafka) since start.
    pub failures: u64,
    /// Seconds between the newest produced event's `occurred_at` and its production.
    pub lag_seconds: Option<f64>,
    /// Pushed requests refused before their record was looked at (bad or missing
    /// signature, stale or replayed): counted, without changing the state.
    #[serde(default)]
    pub pushes_refused: u64,
    #[serde(default)]
    pub last_refusal: Option<String>,
}

impl ConnectorHealth {
    fn new(kind: &str) -> Self {
        ConnectorHealth {
            kind: kind.to_owned(),
            state: ConnectorState::Starting,
            last_success_at: None,
            last_error: None,
            last_error_at: None,
            records_received: 0,
            records_produced: 0,
            records_dead_lettered: 0,
            records_skipped: 0,
            failures: 0,
            lag_seconds: None,
            pushes_refused: 0,
            last_refusal: None,
        }
    }
}

/// What one batch did, for [`Health::batch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub received: u64,
    pub produced: u64,
    pub dead_lettered: u64,
    pub skipped: u64,
}

#[derive(Debug, Default)]
pub struct Health {
    connectors: RwLock<BTreeMap<String, ConnectorHealth>>,
}

impl Health {
    pub fn register(&self, connector: &str, kind: &str) {
        self.connectors
            .write()
            .expect("health lock")
            .entry(connector.to_owned())
            .or_insert_with(|| ConnectorHealth::new(kind));
    }

    /// A batch went through (its records produced or dead-lettered, its cursor saved).
    pub fn batch(&self, connector: &str, counts: BatchCounts) {
        self.update(connector, |h| {
            h.state = ConnectorState::Healthy;
            h.last_success_at = Some(Utc::now());
            h.records_received += counts.received;
            h.records_produced += counts.produced;
            h.records_dead_lettered += counts.dead_lettered;
            h.records_skipped += counts.skipped;
        });
    }

    /// Shorthand for a batch of `produced` good and `dead_lettered` bad records.
    pub fn success(&self, connector: &str, produced: u64, dead_lettered: u64) {
        self.batch(
            connector,
            BatchCounts {
                received: produced + dead_lettered,
                produced,
                dead_lettered,
                skipped: 0,
            },
        );
    }

    pub fn failure(&self, connector: &str, error: &str, operator_must_act: bool) {
        self.update(connector, |h| {
            h.state = if operator_must_act {
                ConnectorState::Failing
            } else {
                ConnectorState::Degraded
            };
            h.failures += 1;
            h.last_error = Some(error.to_owned());
            h.last_error_at = Some(Utc::now());
        });
    }

    /// A pushed request was refused (see [`ConnectorHealth::pushes_refused`]).
    pub fn refused(&self, connector: &str, why: &str) {
        self.update(connector, |h| {
            h.pushes_refused += 1;
            h.last_refusal = Some(format!("{}: {why}", Utc::now().to_rfc3339()));
        });
    }

    pub fn lag(&self, connector: &str, seconds: f64) {
        self.update(connector, |h| h.lag_seconds = Some(seconds));
    }

    pub fn get(&self, connector: &str) -> Option<ConnectorHealth> {
        self.connectors
            .read()
            .expect("health lock")
            .get(connector)
            .cloned()
    }

    pub fn snapshot(&self) -> BTreeMap<String, ConnectorHealth> {
        self.connectors.read().expect("health lock").clone()
    }

    fn update(&self, connector: &str, f: impl FnOnce(&mut ConnectorHealth)) {
        let mut all = self.connectors.write().expect("health lock");
        let h = all
            .entry(connector.to_owned())
            .or_insert_with(|| ConnectorHealth::new("unknown"));
        f(h);
    }
}

/// How the routing pipeline is doing: when it last settled a record, and since when it has
/// been retrying a store failure (it retries in place, so a store outage stops it).
#[derive(Debug, Default)]
pub struct PipelineStatus {
    state: RwLock<PipelineState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipelineState {
    pub last_progress_at: Option<DateTime<Utc>>,
    /// Set while a record's outcome cannot be stored; cleared by the next success.
    pub retrying_since: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl PipelineStatus {
    /// A record was settled (stored or dead-lettered).
    pub fn progress(&self) {
        let mut s = self.state.write().expect("pipeline status lock");
        s.last_progress_at = Some(Utc::now());
        s.retrying_since = None;
    }

    /// Storing a record's outcome failed and is being retried.
    pub fn retrying(&self, error: &str) {
        let mut s = self.state.write().expect("pipeline status lock");
        s.retrying_since.get_or_insert_with(Utc::now);
        s.last_error = Some(error.to_owned());
    }

    pub fn snapshot(&self) -> PipelineState {
        self.state.read().expect("pipeline status lock").clone()
    }
}

impl PipelineState {
    /// Stuck: retrying for longer than `patience`.
    pub fn stuck(&self, now: DateTime<Utc>, patience: chrono::TimeDelta) -> bool {
        self.retrying_since.is_some_and(|t| now - t > patience)
    }
}
