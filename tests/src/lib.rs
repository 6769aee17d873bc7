//! Harness for the end-to-end tests: a real broker per test, a store of either backend, the
//! hub's shipped configuration pointed at them, and small clients to look at the results.

pub mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use hub::config::HubConfig;
use hub::infra::broker::EmbeddedBroker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The workspace root (tests run with the crate folder as working directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// Prints a test's panic message on stdout too: a failing test's stderr is long with the
/// hub's log, and a CI excerpt shows stdout first and cuts stderr short.
pub fn echo_panics_to_stdout() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            println!("panicked: {info}");
            previous(info);
        }));
    });
}

/// A broker for one test, in the test's temp folder.
pub async fn start_broker(dir: &Path) -> EmbeddedBroker {
    echo_panics_to_stdout();
    EmbeddedBroker::start(&dir.join("broker"))
        .await
        .expect("the embedded broker starts (build it with `cargo build --workspace --bins`)")
}

/// Which store backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A store URL for a fresh store: a SQLite file in `dir`, or a new PostgreSQL database.
pub async fn fresh_store_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("hub.db").display()),
        Backend::Postgres => {
            let admin = postgres_url();
            let name = format!("hub_e2e_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test (scripts/test starts it): {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        }
    }
}

pub fn postgres_url() -> String {
    std::env::var("HUB_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Environment overrides pointing the shipped configuration at this test's broker, store
/// and temp folder, with the API on a free port.
pub fn config_overrides(dir: &Path, brokers: &str, store_url: &str) -> Vec<(String, String)> {
    let root = workspace_root();
    vec![
        ("HUB__DATA_DIR".to_owned(), format!("\"{}\"", dir.display())),
        ("HUB__LISTEN".to_owned(), "\"127.0.0.1:0\"".to_owned()),
        ("HUB__STORE__URL".to_owned(), format!("\"{store_url}\"")),
        ("HUB__KAFKA__BROKERS".to_owned(), format!("\"{brokers}\"")),
        (
            "HUB__ROUTING__DIR".to_owned(),
            format!("\"{}\"", root.join("config").display()),
        ),
        (
            "HUB__OPEN311__SERVICES".to_owned(),
            format!(
                "\"{}\"",
                root.join("config/open311/services.toml").display()
            ),
        ),
    ]
}

/// A loopback port nothing listens on now, for a hub process the test talks to.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped configuration with [`config_overrides`] applied.
pub fn hub_config(dir: &Path, brokers: &str, store_url: &str) -> HubConfig {
    // The hub's own logs, filtered by RUST_LOG (warnings by default), in the test's output.
    hub::infra::telemetry::init_logging();
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("config/hub.toml")).expect("config/hub.toml");
    HubConfig::parse(
        &text,
        &root.join("config/hub.toml"),
        &config_overrides(dir, brokers, store_url),
    )
    .expect("test config parses")
}

/// A `hub run` process, for tests that kill the hub as a crash would (SIGKILL).
pub struct HubProcess {
    child: tokio::process::Child,
}

impl HubProcess {
    /// `hub run --config <shipped config + extra_toml> --roles <roles>` with `env` set.
    pub fn spawn(
        dir: &Path,
        extra_toml: &str,
        roles: &str,
        env: &[(String, String)],
    ) -> HubProcess {
        let root = workspace_root();
        let shipped =
            std::fs::read_to_string(root.join("config/hub.toml")).expect("config/hub.toml");
        let config = dir.join(format!("hub-{roles}.toml").replace(',', "-"));
        std::fs::write(&config, format!("{shipped}\n{extra_toml}")).expect("write test config");
        let bin = root.join("target/debug/hub");
        let child = tokio::process::Command::new(&bin)
            .args(["run", "--roles", roles, "--config"])
            .arg(&config)
            .envs(env.iter().cloned())
            .env(
                "RUST_LOG",
                std::env::var("HUB_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} (build it with `cargo build --workspace --bins`): {e}",
                    bin.display()
                )
            });
        HubProcess { child }
    }

    /// Kill the process with SIGKILL, as a crash or an OOM kill would, and reap it.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill hub process");
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the hub process runs")
    }

    /// Send SIGTERM (how an orchestrator stops a process) and wait up to `within` for the
    /// process to exit; its exit status, or `None` if it was still running (then killed).
    pub async fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.pid().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}");
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Some(status.expect("wait for the hub")),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        }
    }
}

/// Poll `check` every 100 ms until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl TopicRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Read every record of every partition of `topic` from the beginning, stopping after
/// `idle` without a new record. Runs on a blocking thread (rdkafka's base consumer blocks).
pub async fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    idle: Duration,
) -> Vec<TopicRecord> {
    let brokers = brokers.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("test consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut out = Vec::new();
        let mut last = std::time::Instant::now();
        while last.elapsed() < idle {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(TopicRecord {
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                    last = std::time::Instant::now();
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    })
    .await
    .expect("reader thread")
}

/// The administrator's demo token (config/access.toml), accepted when the hub runs with
/// [`with_demo_tokens`] (or `HUB_ACCESS_DEMO_TOKENS=1`).
pub const ADMIN_TOKEN: &str = "demo-admin";

/// Secrets that also switch on the accounts' demo tokens, and give no account a token of
/// its own (so `inner` answering every name cannot make tokens collide).
pub fn with_demo_tokens(inner: hub::startup::Secrets) -> hub::startup::Secrets {
    std::sync::Arc::new(move |name: &str| {
        if name == hub::context::access::DEMO_TOKENS_VAR {
            Some("1".to_owned())
        } else if name.starts_with("HUB_TOKEN_") {
            None
        } else {
            inner(name)
        }
    })
}

/// `GET url` as the administrator.
pub async fn admin_get(url: &str) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
}
