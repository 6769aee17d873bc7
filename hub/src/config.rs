//! The hub's configuration file (`config/hub.toml`) with environment overrides.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    pub city: CityConfig,
    #[serde(default)]
    pub connectors: Vec<ConnectorConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub url: String,
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
    pub topics: TopicsConfig,
}

/// How a hub process's routing pipeline is given feed partitions.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouterAssignment {
    /// This process reads every partition of every feed topic, resuming from the offsets
    /// committed for `router_group`. Right for one routing process, and the only safe choice
    /// with the embedded broker, whose group coordinator never hands partitions to a new
    /// member after a member crashed (measured with tansu 0.6.0).
    #[default]
    Static,
    /// Kafka consumer-group subscription: several hub processes split the partitions and take
    /// over from each other. Use it with a real Kafka cluster.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityConfig {
    pub dir: PathBuf,
}

/// One departmental system instance the hub pulls from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Unique; also the `source_system` of the events it produces.
    pub name: String,
    pub department: String,
    pub kind: ConnectorKind,
    pub base_url: String,
    pub path: String,
    /// Name of the environment variable holding the bearer token.
    pub token_env: String,
    #[serde(default = "default_cursor_param")]
    pub cursor_param: String,
    #[serde(default = "default_items_pointer")]
    pub items_pointer: String,
    #[serde(default = "default_cursor_pointer")]
    pub cursor_pointer: String,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    HttpPoll,
}

fn default_cursor_param() -> String {
    "cursor".into()
}
fn default_items_pointer() -> String {
    "/items".into()
}
fn default_cursor_pointer() -> String {
    "/next_cursor".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_poll_interval_ms() -> u64 {
    2000
}
fn default_timeout_ms() -> u64 {
    10_000
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
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.connectors.iter().enumerate() {
            if Department::parse(&c.department).is_none() {
                return Err(format!(
                    "connectors[{i}] ({}): unknown department `{}`",
                    c.name, c.department
                ));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!(
                    "connectors[{i}]: duplicate connector name `{}`",
                    c.name
                ));
            }
        }
        Ok(())
    }

    /// The feed topic of a department.
    pub fn feed_topic(&self, department: Department) -> &TopicConfig {
        &self.kafka.topics.feeds[department.as_str()]
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

impl ConnectorConfig {
    pub fn department(&self) -> Department {
        Department::parse(&self.department).expect("validated at load")
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
}
