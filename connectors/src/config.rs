//! The `[[connectors]]` of the hub's configuration, one per departmental system instance.
//! `kind` picks the source; each kind's settings are declared once, by its source module
//! ([`HttpPollConfig`], [`WebhookSourceConfig`], [`MqttConfig`], [`PgPollConfig`]), and
//! [`ConnectorConfig::build`] turns them, with their secrets, into a running source.
//!
//! Every kind has a `name` (unique; also the `source_system` of its events), a `department`
//! and an optional `rate_limit`. Secrets are never in the file: it names the environment
//! variable that holds each one (`token_env`, `secret_env`, `password_env`, `url_env`), and
//! no log or error shows its value.

use std::time::Duration;

use hub_schemas::event::Department;
use serde::Deserialize;

use crate::http_poll::{HttpPollConfig, HttpPollSource, HttpPoller};
use crate::mapping::{Mapper, MappingRules, RecordFormat};
use crate::mqtt::{MqttConfig, MqttSource};
use crate::pg_poll::{PgPollConfig, PgPollSource};
use crate::push::{self, PushHandle};
use crate::rate_limit::TokenBucket;
use crate::webhook::{Verifier, WebhookConfig};
use crate::{Secret, Source, SourceKind};

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// A departmental REST API paged by a cursor, with a bearer token.
    HttpPoll(HttpPollConfig),
    /// The department pushes records to the hub's webhook endpoint, signed with HMAC-SHA256.
    Webhook(WebhookSourceConfig),
    /// Sensor readings on an MQTT topic, debounced into episodes (sanitation bins).
    Mqtt(MqttConfig),
    /// A PostgreSQL table read by an `updated_at` + id cursor (civil-affairs welfare cases).
    PostgresPoll(PgPollConfig),
}

/// At most `burst` requests at once and `per_second` on average: polls of the departmental
/// system for pull kinds, accepted pushes for `webhook`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

impl RateLimitConfig {
    pub fn bucket(&self) -> Result<TokenBucket, String> {
        TokenBucket::new(self.per_second, self.burst).map_err(|e| e.to_string())
    }
}

/// A webhook connector: where the department posts and how its pushes are verified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSourceConfig {
    pub name: String,
    pub department: String,
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Where the department posts, besides `/api/v1/connectors/<name>/records`.
    #[serde(default)]
    pub path: Option<String>,
    /// Name of the environment variable holding the HMAC-SHA256 secret shared with the
    /// department.
    pub secret_env: String,
    /// During a secret rotation: the variable holding the old secret, still accepted.
    #[serde(default)]
    pub previous_secret_env: Option<String>,
    /// How far a request's signed timestamp may be from the hub's clock.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// Pushed records waiting for the ingest loop; beyond this the hub answers 503.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    #[serde(default = "default_push_linger_ms")]
    pub linger_ms: u64,
}

fn default_tolerance_secs() -> u64 {
    300
}
fn default_queue_capacity() -> usize {
    1000
}
fn default_max_batch() -> usize {
    100
}
fn default_push_linger_ms() -> u64 {
    20
}

/// Why a connector could not be built. A missing secret or an unusable setting stops only
/// that connector: the hub runs the others and shows this in `/healthz`.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("environment variable {var} ({what}) is not set")]
    MissingSecret { var: String, what: &'static str },
    #[error("{0}")]
    Invalid(String),
}

/// The receiving side of a webhook connector, for the hub's HTTP layer.
pub struct PushParts {
    pub path: Option<String>,
    pub verifier: Verifier,
    pub handle: PushHandle,
    /// The connector's rate limit, applied to accepted pushes.
    pub limiter: Option<TokenBucket>,
}

/// A connector built from its configuration, not started.
pub struct BuiltSource {
    pub source: Box<dyn Source>,
    pub mapper: Mapper,
    /// Spaces `next_batch` calls (pull kinds; a webhook's limit is in [`PushParts`]).
    pub limiter: Option<TokenBucket>,
    /// Pause after a batch that left nothing waiting (pull kinds).
    pub poll_interval: Duration,
    /// Set for a webhook connector.
    pub push: Option<PushParts>,
}

impl ConnectorConfig {
    /// Unique; also the `source_system` of the events it produces.
    pub fn name(&self) -> &str {
        match self {
            ConnectorConfig::HttpPoll(c) => &c.name,
            ConnectorConfig::Webhook(c) => &c.name,
            ConnectorConfig::Mqtt(c) => &c.name,
            ConnectorConfig::PostgresPoll(c) => &c.name,
        }
    }

    pub fn kind(&self) -> SourceKind {
        match self {
            ConnectorConfig::HttpPoll(_) => SourceKind::HttpPoll,
            ConnectorConfig::Webhook(_) => SourceKind::Webhook,
            ConnectorConfig::Mqtt(_) => SourceKind::Mqtt,
            ConnectorConfig::PostgresPoll(_) => SourceKind::PostgresPoll,
        }
    }

    fn department_text(&self) -> &str {
        match self {
            ConnectorConfig::HttpPoll(c) => &c.department,
            ConnectorConfig::Webhook(c) => &c.department,
            ConnectorConfig::Mqtt(c) => &c.department,
            ConnectorConfig::PostgresPoll(c) => &c.department,
        }
    }

    /// The department; [`ConnectorConfig::check`] refuses an unknown one.
    pub fn department(&self) -> Department {
        Department::parse(self.department_text()).unwrap_or(Department::Residents)
    }

    pub fn rate_limit(&self) -> Option<RateLimitConfig> {
        match self {
            ConnectorConfig::HttpPoll(c) => c.rate_limit,
            ConnectorConfig::Webhook(c) => c.rate_limit,
            ConnectorConfig::Mqtt(c) => c.rate_limit,
            ConnectorConfig::PostgresPoll(c) => c.rate_limit,
        }
    }

    /// The layout of the records this connector delivers; [`ConnectorConfig::check`]
    /// refuses a pairing that has none.
    pub fn record_format(&self) -> RecordFormat {
        RecordFormat::for_source(self.kind(), self.department())
            .unwrap_or(RecordFormat::UrbanManagementCase)
    }

    /// How this connector's records are mapped (its rules included).
    pub fn mapper(&self) -> Mapper {
        let mapper = Mapper::new(self.record_format());
        match self {
            ConnectorConfig::PostgresPoll(p) => mapper.with_rules(MappingRules {
                elderly_no_contact: chrono::Duration::hours(i64::from(p.elderly_no_contact_hours)),
            }),
            _ => mapper,
        }
    }

    /// The names of the environment variables holding this connector's secrets.
    pub fn secret_vars(&self) -> Vec<&str> {
        match self {
            ConnectorConfig::HttpPoll(c) => vec![c.token_env.as_str()],
            ConnectorConfig::Webhook(c) => std::iter::once(c.secret_env.as_str())
                .chain(c.previous_secret_env.as_deref())
                .collect(),
            ConnectorConfig::Mqtt(c) => c.password_env.as_deref().into_iter().collect(),
            ConnectorConfig::PostgresPoll(c) => vec![c.url_env.as_str()],
        }
    }

    /// Everything that can be checked without reaching the departmental system.
    pub fn check(&self) -> Result<(), String> {
        let department = Department::parse(self.department_text())
            .ok_or_else(|| format!("unknown department `{}`", self.department_text()))?;
        RecordFormat::for_source(self.kind(), department)?;
        if let Some(r) = self.rate_limit() {
            r.bucket()?;
        }
        if self.name().trim().is_empty() {
            return Err("name is empty".into());
        }
        match self {
            ConnectorConfig::HttpPoll(c) => {
                for (key, value) in [("base_url", &c.base_url), ("token_env", &c.token_env)] {
                    if value.trim().is_empty() {
                        return Err(format!("{key} is missing"));
                    }
                }
                if c.page_size == 0 {
                    return Err("page_size must be at least 1".into());
                }
                if !c.path.starts_with('/') {
                    return Err(format!("path `{}` must start with /", c.path));
                }
            }
            ConnectorConfig::Webhook(c) => {
                if let Some(path) = &c.path {
                    if !path.starts_with('/') || path.contains(['{', '}', '*']) {
                        return Err(format!(
                            "path `{path}` must start with / and hold no {{ }} or *"
                        ));
                    }
                }
                if !(1..=86_400).contains(&c.tolerance_secs) {
                    return Err("tolerance_secs must be between 1 and 86400".into());
                }
                if c.queue_capacity == 0 || c.max_batch == 0 {
                    return Err("queue_capacity and max_batch must be at least 1".into());
                }
            }
            ConnectorConfig::Mqtt(c) => {
                for (key, value) in [("host", &c.host), ("topic", &c.topic)] {
                    if value.trim().is_empty() {
                        return Err(format!("{key} is missing"));
                    }
                }
                c.debounce.validate()?;
                if c.max_batch == 0 {
                    return Err("max_batch must be at least 1".into());
                }
            }
            ConnectorConfig::PostgresPoll(c) => {
                for (key, value) in [("url_env", &c.url_env), ("table", &c.table)] {
                    if value.trim().is_empty() {
                        return Err(format!("{key} is missing"));
                    }
                }
                if c.page_size == 0 {
                    return Err("page_size must be at least 1".into());
                }
                if c.elderly_no_contact_hours == 0 {
                    return Err("elderly_no_contact_hours must be at least 1".into());
                }
            }
        }
        Ok(())
    }

    /// The connector's source with its secrets (looked up by variable name), not started.
    pub fn build(
        &self,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BuiltSource, BuildError> {
        let need = |var: &str, what: &'static str| {
            secret(var)
                .filter(|v| !v.is_empty())
                .map(Secret::new)
                .ok_or_else(|| BuildError::MissingSecret {
                    var: var.to_owned(),
                    what,
                })
        };
        let invalid = |e: &dyn std::fmt::Display| BuildError::Invalid(e.to_string());
        let limiter = self
            .rate_limit()
            .map(|r| r.bucket())
            .transpose()
            .map_err(|e| invalid(&e))?;
        let mut push_parts = None;
        let (source, poll_interval, limiter): (Box<dyn Source>, Duration, Option<TokenBucket>) =
            match self {
                ConnectorConfig::HttpPoll(c) => {
                    let token = need(&c.token_env, "the bearer token")?;
                    let poller = HttpPoller::new(c.clone(), token)
                        .map_err(|e| invalid(&format!("building its HTTP client: {e}")))?;
                    (
                        Box::new(HttpPollSource::new(poller)),
                        c.poll_interval,
                        limiter,
                    )
                }
                ConnectorConfig::Webhook(c) => {
                    let mut secrets = vec![need(&c.secret_env, "the webhook signing secret")?];
                    if let Some(var) = &c.previous_secret_env {
                        // The old secret of a rotation may already be gone: that is fine.
                        if let Ok(old) = need(var, "the previous webhook secret") {
                            secrets.push(old);
                        }
                    }
                    let mut verification = WebhookConfig::new(secrets);
                    verification.tolerance = Duration::from_secs(c.tolerance_secs);
                    let verifier = Verifier::new(&verification).map_err(|e| invalid(&e))?;
                    let (handle, source) = push::channel(
                        c.name.clone(),
                        c.queue_capacity,
                        c.max_batch,
                        Duration::from_millis(c.linger_ms),
                    );
                    push_parts = Some(PushParts {
                        path: c.path.clone(),
                        verifier,
                        handle,
                        limiter,
                    });
                    // A webhook's limit applies to its pushes, not to the ingest loop.
                    (Box::new(source), Duration::ZERO, None)
                }
                ConnectorConfig::Mqtt(c) => {
                    let password = c
                        .password_env
                        .as_deref()
                        .map(|var| need(var, "the MQTT password"))
                        .transpose()?;
                    let source = MqttSource::new(c.clone(), password).map_err(|e| invalid(&e))?;
                    (Box::new(source), Duration::ZERO, limiter)
                }
                ConnectorConfig::PostgresPoll(c) => {
                    let url = need(&c.url_env, "the database URL")?;
                    let source = PgPollSource::new(c.clone(), url).map_err(|e| invalid(&e))?;
                    (Box::new(source), c.poll_interval, limiter)
                }
            };
        Ok(BuiltSource {
            source,
            mapper: self.mapper(),
            limiter,
            poll_interval,
            push: push_parts,
        })
    }
}

/// `Duration` fields written as whole milliseconds (`*_ms` keys) or seconds (`*_secs`).
pub mod duration {
    pub mod ms {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            u64::deserialize(d).map(Duration::from_millis)
        }
    }

    pub mod secs {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            u64::deserialize(d).map(Duration::from_secs)
        }
    }
}
