//! The hub's configuration file (`config/hub.toml`) with environment overrides.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use hub_connectors::config::{ConnectorConfig, RateLimitConfig, WebhookSourceConfig};
pub use hub_connectors::debounce::DebounceConfig;
pub use hub_connectors::http_poll::HttpPollConfig;
pub use hub_connectors::mqtt::MqttConfig;
pub use hub_connectors::pg_poll::PgPollConfig;
use hub_schemas::event::Department;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub schema_registry: RegistryConfig,
    pub routing: RoutingConfig,
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
    /// Residents' requests over Open311 GeoReport v2; absent or `enabled = false`: off.
    #[serde(default)]
    pub open311: Option<Open311Config>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The bounds every record from outside is held to.
    #[serde(default)]
    pub input: InputConfig,
    /// Tamper evidence of the case histories.
    #[serde(default)]
    pub audit: AuditConfig,
    /// The event log replays run over.
    #[serde(default)]
    pub replay: ReplayConfig,
    /// How long a stopping hub (Ctrl-C, SIGTERM) waits for its tasks to finish what they
    /// are doing before it abandons them (their uncommitted work is redelivered later).
    #[serde(default = "default_drain_ms")]
    pub shutdown_drain_ms: u64,
}

/// The longest a single outbox delivery may take (webhook timeouts are checked against it):
/// a delivery started on a lease just renewed ends before the lease does.
pub const MAX_DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn default_drain_ms() -> u64 {
    10_000
}

/// `[audit]`: how often the heads of the case histories' hash chains are checkpointed
/// (signed with `HUB_AUDIT_KEY` when it is set). A history rewritten in the database shows
/// in `hub audit verify` once a checkpoint recorded it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Seconds between checkpoints (default 600).
    #[serde(default = "default_checkpoint_every_s")]
    pub checkpoint_every_s: u64,
}

/// `[replay]`: how long the accepted events are kept for `hub rules replay`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Days an accepted event is kept (default 400: a year and the appeals after it); 0
    /// keeps them for ever.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
}

fn default_keep_days() -> u32 {
    400
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            keep_days: default_keep_days(),
        }
    }
}

fn default_checkpoint_every_s() -> u64 {
    600
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every_s: default_checkpoint_every_s(),
        }
    }
}

/// `[input]`: the sane window for event times, seen from the hub's clock. A record outside
/// it is refused at the edge (connectors, pushes, Open311) and dead-lettered by the routing
/// pipeline, with the field named.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// How many days back an event may have happened (default 3650: ten years).
    #[serde(default = "default_max_age_days")]
    pub max_age_days: u32,
    /// How many hours ahead of the hub's clock an event time may be (default 24).
    #[serde(default = "default_max_ahead_hours")]
    pub max_ahead_hours: u32,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            max_age_days: default_max_age_days(),
            max_ahead_hours: default_max_ahead_hours(),
        }
    }
}

fn default_max_age_days() -> u32 {
    3650
}

fn default_max_ahead_hours() -> u32 {
    24
}

impl InputConfig {
    pub fn limits(&self) -> hub_schemas::limits::InputLimits {
        hub_schemas::limits::InputLimits {
            max_age: chrono::TimeDelta::days(i64::from(self.max_age_days)),
            max_ahead: chrono::TimeDelta::hours(i64::from(self.max_ahead_hours)),
        }
    }
}

/// Where a department receives status feedback on the tasks its records became.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub department: String,
    pub url: String,
    /// Name of the environment variable holding the HMAC-SHA256 signing secret.
    pub secret_env: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub url: String,
    /// PostgreSQL: the connections of the process's shared pool (API, console, workflow, SLA
    /// tracker, outbox relays).
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// PostgreSQL: the routing pipeline's own connections, which nothing else takes: a burst
    /// of console reads cannot hold up a backlog. SQLite has one writer per file, shared.
    #[serde(default = "default_routing_connections")]
    pub routing_connections: u32,
}

fn default_connections() -> u32 {
    10
}

fn default_routing_connections() -> u32 {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Empty: start the embedded broker.
    #[serde(default)]
    pub brokers: String,
    pub client_id: String,
    pub router_group: String,
    /// How the routing pipeline gets its feed partitions; see [`RouterAssignment`].
    #[serde(default)]
    pub router_assignment: RouterAssignment,
    /// At most this many feed events routed and stored together (one transaction): what the
    /// consumer has ready, so a lone event is never kept waiting for a full batch.
    #[serde(default = "default_router_batch")]
    pub router_batch: usize,
    pub topics: TopicsConfig,
}

/// How a hub process's routing pipeline is given feed partitions.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouterAssignment {
    /// This process reads every partition of every feed topic, resuming from the offsets
    /// committed for `router_group`. Right for one routing process, and the safe choice with
    /// the embedded broker.
    #[default]
    Static,
    /// Kafka consumer-group subscription: several hub processes split the partitions and take
    /// over from each other. With the embedded broker (tansu 0.6.0) a member that stops
    /// gracefully hands its partitions over (test `two_routing_processes_in_one_group_...`),
    /// but after a member is killed the whole group stops: the other member routed nothing
    /// for the 120 s measured. Use it with a real Kafka cluster.
    Group,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    pub dead_letter: TopicConfig,
    pub tasks: TopicConfig,
    pub task_status: TopicConfig,
    pub feeds: BTreeMap<String, TopicConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    pub name: String,
    pub partitions: i32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub url: String,
}

/// Where the routing configuration lives: `<dir>/city/` (boundaries, communities, gazetteer),
/// `<dir>/taxonomy.toml`, `<dir>/rules/` (rules and their tests) and `<dir>/sla/`; and
/// whether the hub routes with those files or with the store's active rules version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub dir: PathBuf,
    #[serde(default)]
    pub source: RulesSource,
    /// How often the hub looks for a new version (the files changed, or another version was
    /// activated in the store); 0 turns that off.
    #[serde(default = "default_reload_ms")]
    pub reload_check_ms: u64,
}

/// Where the routing configuration a hub routes with comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesSource {
    /// The files in `dir`, reloaded when they change (one machine).
    #[default]
    Files,
    /// The store's active rules version (`hub rules publish` / `rollback`): every process
    /// sharing the store routes with the same one. On the first start `dir` is published as
    /// the first version.
    Store,
}

fn default_router_batch() -> usize {
    500
}

fn default_reload_ms() -> u64 {
    2000
}

/// Residents' requests over Open311 GeoReport v2 (`/open311/v2/`), `[open311]` in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Open311Config {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The `source_system` of the events requests become; request ids are their source ids.
    #[serde(default = "default_open311_source")]
    pub source_system: String,
    /// The service catalogue (TOML, `[[services]]`); its codes are the taxonomy's residents'
    /// codes.
    pub services: PathBuf,
    /// Name of the environment variable holding the client applications' api keys,
    /// comma-separated. Unset: every POST is refused with 403.
    #[serde(default)]
    pub api_keys_env: Option<String>,
    /// Set when clients send `jurisdiction_id`; another value is answered with 404.
    #[serde(default)]
    pub jurisdiction_id: Option<String>,
    /// The datum clients' lat/long use: `wgs84` (GPS, the specification) or `gcj02`.
    #[serde(default)]
    pub datum: hub_connectors::open311::Datum,
    /// Limit on accepted posts (all clients together).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Shown as `service_notice` in the answer to a post.
    #[serde(default)]
    pub service_notice: Option<String>,
    /// Whether the public reads (`GET requests`, `requests/<id>`) show a request's
    /// description, address and exact point. Off by default: anyone can read them, and
    /// they are a resident's words and whereabouts; points are then rounded to ~100 m.
    #[serde(default)]
    pub public_details: bool,
    /// Reads per client address (GET services, requests).
    #[serde(default = "default_read_rate_limit")]
    pub read_rate_limit: RateLimitConfig,
}

fn default_read_rate_limit() -> RateLimitConfig {
    RateLimitConfig {
        per_second: 10.0,
        burst: 30,
    }
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_open311_source() -> String {
    "residents.open311".into()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl HubConfig {
    /// Read a config file and apply `HUB__SECTION__KEY` environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let overrides: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("HUB__"))
            .collect();
        Self::parse(&text, path, &overrides)
    }

    pub fn parse(
        text: &str,
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        for (var, value) in overrides {
            apply_override(&mut doc, var, value)?;
        }
        let config: HubConfig = toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.audit.checkpoint_every_s == 0 {
            return Err("audit.checkpoint_every_s: must be at least 1".into());
        }
        for key in self.kafka.topics.feeds.keys() {
            if Department::parse(key).is_none() {
                return Err(format!("kafka.topics.feeds.{key}: not a department"));
            }
        }
        for d in Department::ALL {
            if !self.kafka.topics.feeds.contains_key(d.as_str()) {
                return Err(format!(
                    "kafka.topics.feeds: no feed topic for department `{d}`"
                ));
            }
        }
        let mut hooked = std::collections::BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let department = Department::parse(&w.department)
                .ok_or_else(|| format!("webhooks[{i}]: unknown department `{}`", w.department))?;
            if !hooked.insert(department) {
                return Err(format!(
                    "webhooks[{i}]: a second webhook for `{department}`"
                ));
            }
            // The relay renews its lease between deliveries; one delivery must fit well
            // inside it, or a second process could take over while it still runs.
            let most = MAX_DELIVERY_TIMEOUT.as_millis() as u64;
            if w.timeout_ms == 0 || w.timeout_ms > most {
                return Err(format!(
                    "webhooks[{i}] ({department}): timeout_ms = {} must be from 1 to {most} (shorter than the relay's lease)",
                    w.timeout_ms
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        let mut paths = std::collections::BTreeSet::new();
        for (i, c) in self.connectors.iter().enumerate() {
            c.check()
                .map_err(|e| format!("connectors[{i}] ({}): {e}", c.name()))?;
            if !names.insert(c.name()) {
                return Err(format!(
                    "connectors[{i}]: duplicate connector name `{}`",
                    c.name()
                ));
            }
            if let ConnectorConfig::Webhook(w) = c {
                if let Some(path) = &w.path {
                    if !paths.insert(path.as_str()) {
                        return Err(format!(
                            "connectors[{i}] ({}): path `{path}` is used by another webhook connector",
                            w.name
                        ));
                    }
                }
            }
        }
        if let Some(o) = &self.open311 {
            o.check().map_err(|e| format!("open311: {e}"))?;
            if names.contains(o.source_system.as_str()) {
                return Err(format!(
                    "open311.source_system `{}` is also a connector's name",
                    o.source_system
                ));
            }
        }
        Ok(())
    }

    /// The feed topic of a department.
    pub fn feed_topic(&self, department: Department) -> &TopicConfig {
        &self.kafka.topics.feeds[department.as_str()]
    }

    /// The city model's folder.
    pub fn city_dir(&self) -> PathBuf {
        self.routing.dir.join(hub_router::config::CITY_DIR)
    }

    /// Every topic the hub uses, for creation at start-up.
    pub fn all_topics(&self) -> Vec<TopicConfig> {
        let t = &self.kafka.topics;
        let mut all = vec![
            t.dead_letter.clone(),
            t.tasks.clone(),
            t.task_status.clone(),
        ];
        all.extend(t.feeds.values().cloned());
        all
    }

    /// The shipped configuration, for `hub demo`.
    pub fn shipped() -> Result<Self, ConfigError> {
        Self::load(Path::new("config/hub.toml"))
    }
}

impl Open311Config {
    fn check(&self) -> Result<(), String> {
        if self.source_system.trim().is_empty() {
            return Err("source_system is empty".into());
        }
        if let Some(r) = self.rate_limit {
            hub_connectors::rate_limit::TokenBucket::new(r.per_second, r.burst)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Read and check the service catalogue.
    pub fn load_catalog(&self) -> Result<hub_connectors::open311::Catalog, String> {
        let text = std::fs::read_to_string(&self.services)
            .map_err(|e| format!("cannot read {}: {e}", self.services.display()))?;
        let file: hub_connectors::open311::Catalog =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", self.services.display()))?;
        hub_connectors::open311::Catalog::new(file.services)
            .map_err(|problems| format!("{}: {}", self.services.display(), problems.join("; ")))
    }
}

/// `HUB__KAFKA__BROKERS=x` sets `kafka.brokers = "x"`. The value is read as TOML when it
/// parses as a TOML value (numbers, booleans, inline tables), else as a plain string.
fn apply_override(doc: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var
        .trim_start_matches("HUB__")
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let env_err = |message: &str| ConfigError::Env {
        var: var.to_owned(),
        message: message.to_owned(),
    };
    let (last, parents) = path.split_last().ok_or_else(|| env_err("names no key"))?;
    let mut table = doc;
    for key in parents {
        table = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| env_err(&format!("`{key}` is not a section")))?;
    }
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    table.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../config/hub.toml");

    #[test]
    fn shipped_config_parses_and_env_overrides_apply() {
        let c = HubConfig::parse(SHIPPED, Path::new("hub.toml"), &[]).unwrap();
        assert_eq!(c.kafka.brokers, "");
        assert_eq!(
            c.feed_topic(Department::UrbanManagement).name,
            "hub.feed.urban-management"
        );
        let overrides = vec![
            ("HUB__KAFKA__BROKERS".to_owned(), "kafka:9092".to_owned()),
            (
                "HUB__STORE__URL".to_owned(),
                "postgres://postgres@db/hub".to_owned(),
            ),
            (
                "HUB__KAFKA__TOPICS__TASKS__PARTITIONS".to_owned(),
                "12".to_owned(),
            ),
        ];
        let c = HubConfig::parse(SHIPPED, Path::new("hub.toml"), &overrides).unwrap();
        assert_eq!(c.kafka.brokers, "kafka:9092");
        assert_eq!(c.store.url, "postgres://postgres@db/hub");
        assert_eq!(c.kafka.topics.tasks.partitions, 12);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let bad = SHIPPED.replace("router_group", "routr_group");
        let err = HubConfig::parse(&bad, Path::new("x/hub.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x/hub.toml"), "{err}");
        assert!(err.contains("routr_group"), "{err}");
        let bad = format!("{SHIPPED}\n[[connectors]]\nname='a'\ndepartment='fire'\nkind='http_poll'\nbase_url='x'\npath='/'\ntoken_env='T'\n");
        let err = HubConfig::parse(&bad, Path::new("hub.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown department `fire`"), "{err}");
    }

    const EVERY_KIND: &str = r#"
[[connectors]]
name = "police.longmatan"
department = "police"
kind = "http_poll"
base_url = "http://jq.example"
path = "/jq/api/incidents"
token_env = "POLICE_TOKEN"
rate_limit = { per_second = 2.0, burst = 4 }

[[connectors]]
name = "urban_management.push"
department = "urban_management"
kind = "webhook"
secret_env = "UM_SECRET"
previous_secret_env = "UM_SECRET_OLD"
path = "/webhooks/urban-management"

[[connectors]]
name = "sanitation.bins"
department = "sanitation"
kind = "mqtt"
host = "127.0.0.1"
topic = "sanitation/bins/+/reading"
username = "hub"
password_env = "MQTT_PASSWORD"
debounce = { overflow_at_pct = 95.0 }

[[connectors]]
name = "civil_affairs.welfare"
department = "civil_affairs"
kind = "postgres_poll"
url_env = "WELFARE_DB_URL"
table = "minzheng.welfare_case"
settle_ms = 2000
"#;

    #[test]
    fn every_kind_of_connector_is_configured_by_kind_with_its_own_fields() {
        let c = HubConfig::parse(
            &format!("{SHIPPED}\n{EVERY_KIND}"),
            Path::new("hub.toml"),
            &[],
        )
        .unwrap();
        let kinds: Vec<_> = c.connectors.iter().map(|c| c.kind().as_str()).collect();
        assert_eq!(kinds, ["http_poll", "webhook", "mqtt", "postgres_poll"]);
        let secrets: Vec<_> = c.connectors.iter().flat_map(|c| c.secret_vars()).collect();
        assert_eq!(
            secrets,
            [
                "POLICE_TOKEN",
                "UM_SECRET",
                "UM_SECRET_OLD",
                "MQTT_PASSWORD",
                "WELFARE_DB_URL"
            ]
        );
        let ConnectorConfig::Mqtt(m) = &c.connectors[2] else {
            panic!("mqtt")
        };
        assert_eq!((m.port, m.debounce.overflow_at_pct), (1883, 95.0));
        assert_eq!(
            m.debounce.clear_below_pct, 60.0,
            "unset thresholds keep their default"
        );
        assert_eq!(
            c.connectors[3].record_format(),
            hub_connectors::mapping::RecordFormat::CivilAffairsRow
        );
        assert_eq!(c.connectors[0].rate_limit().unwrap().burst, 4);
    }

    #[test]
    fn a_field_of_another_kind_or_an_impossible_pairing_is_refused_by_name() {
        let parse = |extra: &str| {
            HubConfig::parse(&format!("{SHIPPED}\n{extra}"), Path::new("hub.toml"), &[])
                .unwrap_err()
                .to_string()
        };
        let err = parse("[[connectors]]\nname='a'\ndepartment='sanitation'\nkind='mqtt'\nhost='h'\ntopic='t/+'\ntoken_env='X'\n");
        assert!(err.contains("token_env"), "{err}");
        let err = parse(
            "[[connectors]]\nname='a'\ndepartment='police'\nkind='mqtt'\nhost='h'\ntopic='t/+'\n",
        );
        assert!(
            err.contains("a `mqtt` connector for `police` is not supported"),
            "{err}"
        );
        let err = parse("[[connectors]]\nname='a'\ndepartment='police'\nkind='ftp'\n");
        assert!(err.contains("ftp"), "{err}");
        let err = parse("[[connectors]]\nname='a'\ndepartment='police'\nkind='http_poll'\nbase_url='x'\npath='/'\ntoken_env='T'\nrate_limit={per_second=0}\n");
        assert!(err.contains("per_second"), "{err}");
    }
}
