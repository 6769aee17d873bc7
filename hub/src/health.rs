//! Health of each connector, shown by `GET /healthz`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    Starting,
    /// The last poll succeeded.
    Healthy,
    /// The last poll failed with something a retry may cure (an outage, a 5xx, the broker).
    Degraded,
    /// Failing in a way an operator must fix (credentials refused).
    Failing,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectorHealth {
    pub state: ConnectorState,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub records_produced: u64,
    pub records_dead_lettered: u64,
}

#[derive(Debug, Default)]
pub struct Health {
    connectors: RwLock<BTreeMap<String, ConnectorHealth>>,
}

impl Health {
    pub fn register(&self, connector: &str) {
        self.connectors
            .write()
            .expect("health lock")
            .entry(connector.to_owned())
            .or_insert(ConnectorHealth {
                state: ConnectorState::Starting,
                last_success_at: None,
                last_error: None,
                last_error_at: None,
                records_produced: 0,
                records_dead_lettered: 0,
            });
    }

    pub fn success(&self, connector: &str, produced: u64, dead_lettered: u64) {
        self.update(connector, |h| {
            h.state = ConnectorState::Healthy;
            h.last_success_at = Some(Utc::now());
            h.records_produced += produced;
            h.records_dead_lettered += dead_lettered;
        });
    }

    pub fn failure(&self, connector: &str, error: &str, operator_must_act: bool) {
        self.update(connector, |h| {
            h.state = if operator_must_act {
                ConnectorState::Failing
            } else {
                ConnectorState::Degraded
            };
            h.last_error = Some(error.to_owned());
            h.last_error_at = Some(Utc::now());
        });
    }

    pub fn snapshot(&self) -> BTreeMap<String, ConnectorHealth> {
        self.connectors.read().expect("health lock").clone()
    }

    fn update(&self, connector: &str, f: impl FnOnce(&mut ConnectorHealth)) {
        self.register(connector);
        if let Some(h) = self
            .connectors
            .write()
            .expect("health lock")
            .get_mut(connector)
        {
            f(h);
        }
    }
}
