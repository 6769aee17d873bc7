//! Every kind of connector against its department's fake, through the real hub (embedded
//! Kafka-protocol broker, SQLite store, routing pipeline, HTTP API): police REST polling,
//! urban-management webhook pushes, sanitation MQTT sensors (Mosquitto), the civil-affairs
//! PostgreSQL table, and residents' Open311 GeoReport v2 requests. For each: the happy path,
//! malformed records to the dead-letter topic while the stream goes on, an outage with no
//! loss, a restart mid-stream with no gap and no duplicate, and wrong credentials shown in
//! /healthz without a crash loop. Plus the dead-letter replay and the CLI.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use hub::config::{
    ConnectorConfig, HttpPollConfig, HubConfig, MqttConfig, PgPollConfig, WebhookSourceConfig,
};
use hub::infra::broker::EmbeddedBroker;
use hub::startup::{self, Roles, RunningHub, Secrets};
use hub_connectors::open311::gcj02_to_wgs84;
use hub_schemas::event::Department;
use hub_simulator::civil_affairs_db::{with_database, FakeCivilAffairsDb, WelfareCase};
use hub_simulator::generator::{load_addresses, Address, Generator};
use hub_simulator::open311_client::form_encode;
use hub_simulator::sensors::{reading, SensorGateway};
use hub_simulator::webhook_client::WebhookClient;
use hub_simulator::FakeDepartment;
use hub_store::{PriorOutcome, TaskStore};
use hub_tests::*;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

pub(crate) const TOKEN: &str = "police-token";
pub(crate) const SECRET: &str = "whsec-urban-management";
pub(crate) const API_KEY: &str = "resident-app-key";
/// The administrator's demo token (config/access.toml, with HUB_ACCESS_DEMO_TOKENS=1).
const ADMIN: &str = "demo-admin";

// ------------------------------------------------------------------------------ harness

pub(crate) fn addresses() -> Vec<Address> {
    load_addresses(&workspace_root().join("config/city/addresses.csv")).expect("gazetteer")
}

/// A broker and a SQLite store in a temp folder.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) broker: Option<EmbeddedBroker>,
    pub(crate) bootstrap: String,
    pub(crate) store_url: String,
}

impl Env {
    pub(crate) async fn new() -> Env {
        Self::on(Backend::Sqlite).await
    }

    /// A broker, and a fresh store of `backend`.
    pub(crate) async fn on(backend: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let broker = start_broker(dir.path()).await;
        let bootstrap = broker.bootstrap().to_owned();
        let store_url = fresh_store_url(backend, dir.path()).await;
        Env {
            dir,
            broker: Some(broker),
            bootstrap,
            store_url,
        }
    }

    /// The shipped configuration on this broker and store, with `connectors`.
    pub(crate) fn config(&self, connectors: Vec<ConnectorConfig>) -> HubConfig {
        let mut config = hub_config(self.dir.path(), &self.bootstrap, &self.store_url);
        config.connectors = connectors;
        config
    }

    /// Stop the broker and start it again on the same port and data (a broker outage).
    async fn restart_broker_after(&mut self, outage: Duration) {
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
        tokio::time::sleep(outage).await;
        let restarted = EmbeddedBroker::start_on(&self.dir.path().join("broker"), &self.bootstrap)
            .await
            .expect("the broker restarts on its port");
        self.broker = Some(restarted);
    }

    pub(crate) async fn stop(mut self) {
        if let Some(b) = self.broker.take() {
            b.stop().await;
        }
    }
}

pub(crate) fn secrets(pairs: &[(&str, &str)]) -> Secrets {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Arc::new(move |var: &str| pairs.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()))
}

pub(crate) async fn start(config: &HubConfig, secrets: Secrets) -> RunningHub {
    startup::start(config, Roles::ALL, secrets)
        .await
        .expect("hub starts")
}

pub(crate) fn base(hub: &RunningHub) -> String {
    format!("http://{}", hub.api_addr.unwrap())
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn get_json(url: &str) -> Value {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .expect("JSON body")
}

pub(crate) async fn health(base: &str, connector: &str) -> Value {
    get_json(&format!("{base}/healthz")).await["connectors"][connector].clone()
}

/// Wait until the connector's health satisfies `check`.
pub(crate) async fn wait_health(
    base: &str,
    connector: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let what = format!("{connector}: {what}");
    eventually(Duration::from_secs(60), &what, || async {
        let h = health(base, connector).await;
        check(&h).then_some(h)
    })
    .await
}

pub(crate) async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one Prometheus sample whose name and labels contain all of `parts`.
pub(crate) fn sample(metrics: &str, parts: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| parts.iter().all(|p| l.contains(p)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn feed(env: &Env, department: Department) -> Vec<TopicRecord> {
    let topic = format!("hub.feed.{}", department.as_str().replace('_', "-"));
    read_topic(&env.bootstrap, &topic, 3, Duration::from_secs(2)).await
}

fn event_ids(records: &[TopicRecord]) -> BTreeSet<String> {
    records
        .iter()
        .filter_map(|r| r.header("hub.event_id").map(str::to_owned))
        .collect()
}

pub(crate) async fn dead_letters(env: &Env) -> Vec<TopicRecord> {
    read_topic(&env.bootstrap, "hub.deadletter", 1, Duration::from_secs(2)).await
}

/// Wait until exactly the expected records reached the feed topic, then a little longer to
/// see that nothing more comes.
/// Puts `record` on the dead-letter topic as a police mapping refused it before a fix, so
/// that the current mapping takes it on replay.
async fn dead_letter_before_the_fix(env: &Env, record: &Value) {
    let kafka = hub::infra::kafka::Kafka::connect(&env.bootstrap, "test").unwrap();
    hub::pipeline::dead_letters::produce(
        &kafka,
        "hub.deadletter",
        &hub::pipeline::dead_letters::Letter {
            stage: "connector.mapping",
            source: "police.test".into(),
            format: Some("police_incident".into()),
            origin: "http://jq/api/incidents".into(),
            reason: "field `bjlbdm`: code 0201 unknown (mapping before the fix)".into(),
            original: record.to_string().into_bytes(),
        },
    )
    .await
    .unwrap();
}

async fn exactly_on_feed(env: &Env, department: Department, n: usize) -> Vec<TopicRecord> {
    eventually(
        Duration::from_secs(90),
        &format!("{n} records on the {department} feed"),
        || async {
            let records = feed(env, department).await;
            (records.len() >= n).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = feed(env, department).await;
    assert_eq!(
        records.len(),
        n,
        "exactly {n} records on the {department} feed (no duplicate)"
    );
    assert_eq!(event_ids(&records).len(), n, "{n} distinct events");
    records
}

/// How many of `ids` (source ids of `source_system`) the routing pipeline has handled: each
/// became a task, joined one, or went back to its department; none is missing.
async fn handled(store: &Arc<dyn TaskStore>, source_system: &str, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        if store
            .prior_outcome(source_system, id)
            .await
            .expect("prior outcome")
            .is_some()
        {
            n += 1;
        }
    }
    n
}

async fn all_handled(store: &Arc<dyn TaskStore>, source_system: &str, ids: &[String]) {
    eventually(
        Duration::from_secs(90),
        &format!("{} records of {source_system} routed", ids.len()),
        || async { (handled(store, source_system, ids).await == ids.len()).then_some(()) },
    )
    .await;
}

/// A TCP relay that can be cut (connections dropped, new ones closed at once) and restored:
/// an outage of the system behind it.
struct TcpProxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    async fn start(target: SocketAddr) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let task = tokio::spawn({
            let open = open.clone();
            let conns = conns.clone();
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !open.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let handle = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(handle);
                }
            }
        });
        TcpProxy {
            addr,
            open,
            conns,
            task,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

// ------------------------------------------------------------------------------ police REST

pub(crate) fn police_connector(base_url: &str) -> ConnectorConfig {
    let shape = hub_simulator::ApiShape::of(Department::Police);
    ConnectorConfig::HttpPoll(HttpPollConfig {
        name: "police.test".into(),
        department: "police".into(),
        base_url: base_url.to_owned(),
        path: shape.path.into(),
        token_env: "POLICE_TOKEN".into(),
        cursor_param: shape.cursor_param.into(),
        items_pointer: shape.items_pointer.into(),
        cursor_pointer: shape.cursor_pointer.into(),
        page_size: 4,
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(1000),
        ..HttpPollConfig::default()
    })
}

/// A theft report (a category that never merges), so every record is its own task.
pub(crate) fn theft(generator: &mut Generator, at: &Address) -> Value {
    let mut r = generator.record_at(Department::Police, at, Utc::now());
    r["bjlbdm"] = json!("0201");
    r["bjlbmc"] = json!("盗窃");
    r.as_object_mut().unwrap().remove("fwbh");
    r.as_object_mut().unwrap().remove("ldrks");
    r
}

fn ids_of(records: &[Value], field: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| r[field].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn police_fake() -> FakeDepartment {
    FakeDepartment::start(
        Department::Police,
        TOKEN,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_rest_records_become_tasks_and_malformed_ones_are_dead_lettered() {
    let env = Env::new().await;
    let fake = police_fake().await;
    let a = addresses();
    let mut generator = Generator::new(a.clone(), 101);
    let mut good = Vec::new();
    for i in 0..10 {
        let r = theft(&mut generator, &a[i * 13 % a.len()]);
        fake.publish(&r);
        good.push(r);
        if i == 3 {
            let mut bad = theft(&mut generator, &a[0]);
            bad["bjsj"] = json!("昨天下午");
            fake.publish(&bad);
        }
        if i == 6 {
            fake.publish(&json!({"bjlbdm": "0201", "fadd": "无编号的警情"}));
        }
    }
    let config = env.config(vec![police_connector(&fake.base_url())]);
    let hub = start(&config, secrets(&[("POLICE_TOKEN", TOKEN)])).await;
    let ids = ids_of(&good, "jjdbh");

    let records = exactly_on_feed(&env, Department::Police, 10).await;
    assert!(
        records.iter().all(|r| r.payload[0] == 0),
        "Avro in the wire format"
    );
    all_handled(&hub.store, "police.test", &ids).await;
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 2, "two malformed records");
    let reasons: Vec<&str> = dead
        .iter()
        .map(|r| r.header("hub.dlq.reason").unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("field `bjsj`")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("field `jjdbh`: missing")),
        "{reasons:?}"
    );
    assert!(dead
        .iter()
        .all(|r| r.header("hub.dlq.source") == Some("police.test")
            && r.header("hub.dlq.stage") == Some("connector.mapping")
            && r.header("hub.dlq.format") == Some("police_incident")));
    let original: Value = serde_json::from_slice(&dead[1].payload).unwrap();
    assert_eq!(original["fadd"], "无编号的警情", "original bytes kept");

    let base = base(&hub);
    let h = wait_health(&base, "police.test", "12 records through", |h| {
        h["records_received"] == 12
    })
    .await;
    assert_eq!(h["kind"], "http_poll");
    assert_eq!(h["state"], "healthy");
    assert_eq!(
        (
            h["records_produced"].as_u64(),
            h["records_dead_lettered"].as_u64()
        ),
        (Some(10), Some(2))
    );
    assert!(h["lag_seconds"].as_f64().is_some());
    let m = metrics(&base).await;
    for (outcome, n) in [
        ("received", 12.0),
        ("produced", 10.0),
        ("dead_lettered", 2.0),
    ] {
        assert_eq!(
            sample(
                &m,
                &[
                    "hub_connector_records_total{",
                    "connector=\"police.test\"",
                    &format!("outcome=\"{outcome}\"")
                ]
            ),
            Some(n),
            "{outcome}"
        );
    }
    assert!(
        m.contains("hub_connector_poll_duration_seconds"),
        "poll latency"
    );
    assert!(m.contains("hub_connector_lag_seconds{connector=\"police.test\"}"));
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_rest_survives_5xx_an_outage_and_a_restart_with_no_gap_and_no_duplicate() {
    let env = Env::new().await;
    let fake = police_fake().await;
    fake.fail_every(3);
    let proxy = TcpProxy::start(
        fake.base_url()
            .trim_start_matches("http://")
            .parse()
            .unwrap(),
    )
    .await;
    let config = env.config(vec![police_connector(&format!("http://{}", proxy.addr))]);
    let secrets = secrets(&[("POLICE_TOKEN", TOKEN)]);
    let a = addresses();
    let mut generator = Generator::new(a.clone(), 102);
    let mut all = Vec::new();
    let mut publish = |n: usize, all: &mut Vec<Value>| {
        for _ in 0..n {
            let at = a[all.len() * 17 % a.len()].clone();
            let r = theft(&mut generator, &at);
            fake.publish(&r);
            all.push(r);
        }
    };
    publish(10, &mut all);
    let hub = start(&config, secrets.clone()).await;
    let base_url = base(&hub);
    eventually(Duration::from_secs(60), "the first records", || async {
        (feed(&env, Department::Police).await.len() >= 4).then_some(())
    })
    .await;

    // The departmental system goes away (connections refused and reset).
    proxy.cut();
    publish(6, &mut all);
    let h = wait_health(&base_url, "police.test", "degraded by the outage", |h| {
        h["state"] == "degraded"
            && h["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("unavailable")
    })
    .await;
    assert!(h["failures"].as_u64().unwrap() >= 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    eventually(
        Duration::from_secs(60),
        "16 records after the outage",
        || async { (feed(&env, Department::Police).await.len() >= 16).then_some(()) },
    )
    .await;

    // A restart mid-stream: stopped, more records published, started again.
    hub.stop().await;
    publish(8, &mut all);
    let hub = start(&config, secrets).await;
    let records = exactly_on_feed(&env, Department::Police, all.len()).await;
    assert_eq!(records.len(), 24);
    all_handled(&hub.store, "police.test", &ids_of(&all, "jjdbh")).await;
    assert!(
        fake.failures_injected() > 0,
        "the fake answered 503 now and then"
    );
    // The restarted hub produced only the new records.
    wait_health(
        &base(&hub),
        "police.test",
        "8 records after the restart",
        |h| h["records_produced"] == 8,
    )
    .await;
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_rest_with_a_wrong_token_fails_clearly_and_retries_slowly() {
    let env = Env::new().await;
    let fake = police_fake().await;
    fake.publish(&theft(
        &mut Generator::new(addresses(), 103),
        &addresses()[0],
    ));
    let mut config = env.config(vec![police_connector(&fake.base_url())]);
    // A second connector whose secret is not set at all.
    let mut missing = police_connector(&fake.base_url());
    if let ConnectorConfig::HttpPoll(c) = &mut missing {
        c.name = "police.unset".into();
        c.token_env = "UNSET_TOKEN".into();
    }
    config.connectors.push(missing);
    let hub = start(&config, secrets(&[("POLICE_TOKEN", "expired-token")])).await;
    let base = base(&hub);
    let h = wait_health(&base, "police.test", "failing on credentials", |h| {
        h["state"] == "failing"
    })
    .await;
    let error = h["last_error"].as_str().unwrap();
    assert!(
        error.contains("credentials refused") && error.contains("HTTP 401"),
        "{error}"
    );
    assert!(
        !error.contains("expired-token"),
        "the token never shows: {error}"
    );
    let unset = health(&base, "police.unset").await;
    assert_eq!(unset["state"], "failing");
    assert!(
        unset["last_error"]
            .as_str()
            .unwrap()
            .contains("environment variable UNSET_TOKEN"),
        "{unset}"
    );
    // No crash loop and no hammering: one attempt, then a slow retry; the hub serves on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        fake.requests_served() <= 2,
        "{} requests",
        fake.requests_served()
    );
    let h = health(&base, "police.test").await;
    assert_eq!(h["failures"], 1);
    assert!(feed(&env, Department::Police).await.is_empty());
    let m = metrics(&base).await;
    assert_eq!(
        sample(
            &m,
            &[
                "hub_connector_failures_total{",
                "connector=\"police.test\"",
                "reason=\"unauthorized\""
            ]
        ),
        Some(1.0)
    );
    // The CLI shows it and says so in its exit status.
    let out = cli(&["connectors", "status", "--api", &base]).await;
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("police.test")
            && text.contains("failing")
            && text.contains("credentials refused"),
        "{text}"
    );
    hub.stop().await;
    env.stop().await;
}

// ------------------------------------------------------------------------------ webhook

pub(crate) fn webhook_connector() -> ConnectorConfig {
    ConnectorConfig::Webhook(WebhookSourceConfig {
        name: "urban_management.push".into(),
        department: "urban_management".into(),
        rate_limit: None,
        path: Some("/webhooks/urban-management".into()),
        secret_env: "UM_SECRET".into(),
        previous_secret_env: None,
        tolerance_secs: 300,
        queue_capacity: 100,
        max_batch: 20,
        linger_ms: 20,
    })
}

pub(crate) fn push_url(base: &str) -> String {
    format!("{base}/api/v1/connectors/urban_management.push/records")
}

fn case_ids(records: &[Value]) -> Vec<String> {
    ids_of(records, "caseNo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_cases_are_produced_once_and_refused_pushes_are_401_and_counted() {
    let env = Env::new().await;
    let config = env.config(vec![webhook_connector()]);
    let hub = start(&config, secrets(&[("UM_SECRET", SECRET)])).await;
    let base = base(&hub);
    let client = WebhookClient::new(push_url(&base), SECRET);
    let mut generator = Generator::new(addresses(), 201);
    let cases: Vec<Value> = (0..8)
        .map(|_| generator.record(Department::UrbanManagement, Utc::now()))
        .collect();
    let mut last = None;
    for (i, case) in cases.iter().enumerate() {
        let d = client.push(case).await.unwrap();
        assert_eq!(d.status, 200, "{}", d.body);
        assert!(d.body.contains("accepted"), "{}", d.body);
        last = Some(d);
        if i == 2 {
            // A signed case the mapping refuses: 422 naming the field, and dead-lettered.
            let bad = client
                .push(&json!({"caseNo": "CG-BAD", "eventTypeCode": "010102", "reportTime": "2026-11-21 10:00:00", "x": 105.4}))
                .await
                .unwrap();
            assert_eq!(bad.status, 422, "{}", bad.body);
            assert!(bad.body.contains("field `y`"), "{}", bad.body);
        }
    }
    // The connector's own path works too.
    let own = WebhookClient::new(format!("{base}/webhooks/urban-management"), SECRET);
    let extra = generator.record(Department::UrbanManagement, Utc::now());
    assert_eq!(own.push(&extra).await.unwrap().status, 200);
    let mut all = cases.clone();
    all.push(extra);

    // Refused: replayed, wrongly signed, stale, unsigned; and an unknown connector.
    let last = last.unwrap();
    let body = cases[7].to_string();
    let replay = client
        .send_raw(
            body.as_bytes(),
            Some(&last.timestamp),
            Some(&last.signature),
        )
        .await
        .unwrap();
    assert_eq!(replay.status, 401);
    assert!(replay.body.contains("already accepted"), "{}", replay.body);
    let stale = client
        .push_at(body.as_bytes(), Utc::now().timestamp() - 900)
        .await
        .unwrap();
    assert_eq!(stale.status, 401);
    let unsigned = client
        .send_raw(body.as_bytes(), Some("1"), None)
        .await
        .unwrap();
    assert_eq!(unsigned.status, 401);
    let forged = WebhookClient::new(push_url(&base), "guessed-secret")
        .push(&cases[0])
        .await
        .unwrap();
    assert_eq!(forged.status, 401);
    let nobody = WebhookClient::new(format!("{base}/api/v1/connectors/nobody/records"), SECRET)
        .push(&cases[0])
        .await
        .unwrap();
    assert_eq!(nobody.status, 404);

    exactly_on_feed(&env, Department::UrbanManagement, 9).await;
    all_handled(&hub.store, "urban_management.push", &case_ids(&all)).await;
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].header("hub.dlq.origin"),
        Some("webhook:urban_management.push")
    );
    assert!(String::from_utf8_lossy(&dead[0].payload).contains("CG-BAD"));

    let m = metrics(&base).await;
    for reason in [
        "replayed",
        "outside_window",
        "missing_signature",
        "bad_signature",
    ] {
        assert_eq!(
            sample(
                &m,
                &[
                    "hub_connector_webhook_rejected_total{",
                    "connector=\"urban_management.push\"",
                    &format!("reason=\"{reason}\"")
                ]
            ),
            Some(1.0),
            "{reason}: {m}"
        );
    }
    // Refused pushes are counted and the last one shown, but anyone can send garbage to a
    // public endpoint: they do not make the connector look broken.
    let h = health(&base, "urban_management.push").await;
    assert_eq!(h["state"], "healthy", "{h}");
    assert_eq!(h["pushes_refused"], 4, "{h}");
    assert!(
        h["last_refusal"]
            .as_str()
            .unwrap()
            .contains("signature does not match"),
        "{h}"
    );
    assert_eq!(h["kind"], "webhook");
    let ok = client
        .push(&generator.record(Department::UrbanManagement, Utc::now()))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let h = health(&base, "urban_management.push").await;
    assert_eq!(
        (
            h["state"].as_str(),
            h["records_produced"].as_u64(),
            h["records_dead_lettered"].as_u64()
        ),
        (Some("healthy"), Some(10), Some(1))
    );
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_survive_a_broker_outage_and_a_hub_restart_with_no_loss() {
    let mut env = Env::new().await;
    let mut config = env.config(vec![webhook_connector()]);
    config.listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let secrets = secrets(&[("UM_SECRET", SECRET)]);
    let hub = start(&config, secrets.clone()).await;
    let base = base(&hub);
    let client = Arc::new(WebhookClient::new(push_url(&base), SECRET));
    let mut generator = Generator::new(addresses(), 202);
    let mut all: Vec<Value> = Vec::new();
    for _ in 0..4 {
        let case = generator.record(Department::UrbanManagement, Utc::now());
        assert_eq!(client.push(&case).await.unwrap().status, 200);
        all.push(case);
    }
    exactly_on_feed(&env, Department::UrbanManagement, 4).await;

    // The broker goes down; departments keep pushing (and retry what is not confirmed).
    let pushes: Vec<JoinHandle<u16>> = (0..4)
        .map(|_| {
            let case = generator.record(Department::UrbanManagement, Utc::now());
            all.push(case.clone());
            let client = client.clone();
            tokio::spawn(async move { client.push_with_retry(&case, 12).await.unwrap().status })
        })
        .collect();
    env.restart_broker_after(Duration::from_secs(3)).await;
    for p in pushes {
        assert_eq!(
            p.await.unwrap(),
            200,
            "every push confirmed once the broker is back"
        );
    }

    // The hub restarts; a department pushing meanwhile retries until it is back.
    hub.stop().await;
    let during = generator.record(Department::UrbanManagement, Utc::now());
    all.push(during.clone());
    let retrying = tokio::spawn({
        let client = client.clone();
        async move { client.push_with_retry(&during, 12).await.unwrap().status }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let hub = start(&config, secrets).await;
    assert_eq!(retrying.await.unwrap(), 200);
    let records = feed(&env, Department::UrbanManagement).await;
    eventually(
        Duration::from_secs(60),
        "every pushed case on the feed",
        || async {
            let ids = event_ids(&feed(&env, Department::UrbanManagement).await);
            (ids.len() >= all.len()).then_some(())
        },
    )
    .await;
    let ids = event_ids(&feed(&env, Department::UrbanManagement).await);
    assert_eq!(
        ids.len(),
        all.len(),
        "no case lost ({} feed records)",
        records.len()
    );
    all_handled(&hub.store, "urban_management.push", &case_ids(&all)).await;
    let failures = health(&base, "urban_management.push").await;
    assert_eq!(failures["state"], "healthy");
    hub.stop().await;
    env.stop().await;
}

// ------------------------------------------------------------------------------ MQTT sensors

pub(crate) fn mqtt_connector(
    port: u16,
    prefix: &str,
    client_id: &str,
    login: Option<&str>,
) -> ConnectorConfig {
    ConnectorConfig::Mqtt(MqttConfig {
        name: "sanitation.bins".into(),
        department: "sanitation".into(),
        host: "127.0.0.1".into(),
        port,
        client_id: client_id.into(),
        topic: format!("{prefix}/+/reading"),
        username: login.map(str::to_owned),
        password_env: login.map(|_| "MQTT_PASSWORD".to_owned()),
        keep_alive: Duration::from_secs(10),
        connect_timeout: Duration::from_millis(2000),
        ..MqttConfig::default()
    })
}

pub(crate) fn mqtt_names() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("hube2e/{id}/bins"), format!("hub-e2e-{id}"))
}

pub(crate) fn require_mosquitto() {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:1883".parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_err()
    {
        panic!("Mosquitto is not reachable at 127.0.0.1:1883 (scripts/test starts it; Debian: apt-get install mosquitto && mosquitto -d)");
    }
}

/// Publish harmless readings until the hub's MQTT connector has taken a batch (so it is
/// subscribed and its session exists).
pub(crate) async fn until_subscribed(
    base: &str,
    sensors: &SensorGateway,
    prefix: &str,
    at: &Address,
) {
    eventually(
        Duration::from_secs(30),
        "the MQTT connector subscribed",
        || async {
            sensors
                .publish(
                    prefix,
                    &reading("BIN-WARMUP", 10, false, at.lon, at.lat, Utc::now()),
                )
                .await
                .unwrap();
            let h = health(base, "sanitation.bins").await;
            (h["state"] == "healthy").then_some(())
        },
    )
    .await;
}

/// One overflow of `bin` (several readings reporting it), around `minutes_ago`.
async fn overflow(
    sensors: &SensorGateway,
    prefix: &str,
    bin: &str,
    at: &Address,
    minutes_ago: i64,
) {
    let t0 = Utc::now() - chrono::Duration::minutes(minutes_ago);
    for (i, fill) in [70, 85, 92, 97, 100, 100, 100].iter().enumerate() {
        let t = t0 + chrono::Duration::seconds(30 * i as i64);
        sensors
            .publish(
                prefix,
                &reading(bin, *fill, *fill == 100, at.lon, at.lat, t),
            )
            .await
            .unwrap();
    }
    sensors.flush(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_overflows_become_one_task_each_and_malformed_readings_are_dead_lettered() {
    require_mosquitto();
    let env = Env::new().await;
    let (prefix, client_id) = mqtt_names();
    let config = env.config(vec![mqtt_connector(1883, &prefix, &client_id, None)]);
    let hub = start(&config, secrets(&[])).await;
    let base = base(&hub);
    let a = addresses();
    let sensors = SensorGateway::connect("127.0.0.1", 1883, &format!("{client_id}-sensors")).await;
    until_subscribed(&base, &sensors, &prefix, &a[0]).await;

    overflow(&sensors, &prefix, "BIN-A", &a[3], 20).await;
    sensors
        .publish_raw(&format!("{prefix}/BIN-X/reading"), b"fill=97%".to_vec())
        .await
        .unwrap();
    sensors
        .publish_raw(
            &format!("{prefix}/BIN-Y/reading"),
            reading("BIN-Z", 99, true, a[5].lon, a[5].lat, Utc::now())
                .to_string()
                .into_bytes(),
        )
        .await
        .unwrap();
    overflow(&sensors, &prefix, "BIN-B", &a[9], 10).await;
    // BIN-A keeps reporting its overflow: still one episode.
    sensors
        .publish(
            &prefix,
            &reading("BIN-A", 100, true, a[3].lon, a[3].lat, Utc::now()),
        )
        .await
        .unwrap();
    sensors.flush(Duration::from_secs(10)).await.unwrap();

    let records = exactly_on_feed(&env, Department::Sanitation, 2).await;
    assert_eq!(
        records.len(),
        2,
        "one event per overflow, not one per reading"
    );
    let dead = eventually(Duration::from_secs(30), "two dead letters", || async {
        let d = dead_letters(&env).await;
        (d.len() >= 2).then_some(d)
    })
    .await;
    assert_eq!(dead.len(), 2);
    assert!(dead
        .iter()
        .all(|d| d.header("hub.dlq.stage") == Some("connector.source")));
    assert_eq!(dead[0].payload, b"fill=97%".to_vec(), "original bytes");
    assert!(dead[1]
        .header("hub.dlq.reason")
        .unwrap()
        .contains("differs from the bin `BIN-Y`"));
    let store = hub.store.clone();
    eventually(Duration::from_secs(60), "both overflows routed", || async {
        let tasks = store
            .list_tasks(&hub_store::TaskFilter {
                department: Some(Department::Sanitation),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut bins: Vec<String> = tasks
            .iter()
            .filter(|t| t.fields.source_system == "sanitation.bins")
            .map(|t| t.fields.source_id.split('@').next().unwrap().to_owned())
            .collect();
        bins.sort();
        (bins == ["BIN-A", "BIN-B"]).then_some(())
    })
    .await;
    let h = health(&base, "sanitation.bins").await;
    assert_eq!(
        (
            h["records_produced"].as_u64(),
            h["records_dead_lettered"].as_u64()
        ),
        (Some(2), Some(2))
    );
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_readings_sent_while_the_hub_is_down_are_taken_after_restart_once() {
    require_mosquitto();
    let env = Env::new().await;
    let (prefix, client_id) = mqtt_names();
    let config = env.config(vec![mqtt_connector(1883, &prefix, &client_id, None)]);
    let hub = start(&config, secrets(&[])).await;
    let a = addresses();
    let sensors = SensorGateway::connect("127.0.0.1", 1883, &format!("{client_id}-sensors")).await;
    until_subscribed(&base(&hub), &sensors, &prefix, &a[0]).await;
    overflow(&sensors, &prefix, "BIN-E", &a[11], 30).await;
    exactly_on_feed(&env, Department::Sanitation, 1).await;

    hub.stop().await;
    // While the hub is down: BIN-E still overflowing (no new event), BIN-F overflows (one).
    for _ in 0..5 {
        sensors
            .publish(
                &prefix,
                &reading("BIN-E", 100, true, a[11].lon, a[11].lat, Utc::now()),
            )
            .await
            .unwrap();
    }
    overflow(&sensors, &prefix, "BIN-F", &a[12], 5).await;
    let hub = start(&config, secrets(&[])).await;
    let records = exactly_on_feed(&env, Department::Sanitation, 2).await;
    assert_eq!(records.len(), 2, "no gap, no duplicate across the restart");
    let h = wait_health(
        &base(&hub),
        "sanitation.bins",
        "took the queued readings",
        |h| h["records_produced"] == 1,
    )
    .await;
    assert_eq!(h["state"], "healthy");
    hub.stop().await;
    env.stop().await;
}

/// A private Mosquitto on a free port, for an outage or a password.
struct PrivateMosquitto {
    port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl PrivateMosquitto {
    fn start(password: Option<(&str, &str)>) -> PrivateMosquitto {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut conf = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n",
            dir.path().display()
        );
        if nix_is_root() {
            conf.push_str("user root\n");
        }
        match password {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, pass)) => {
                let file = dir.path().join("passwords");
                let status = std::process::Command::new("mosquitto_passwd")
                    .args(["-b", "-c"])
                    .arg(&file)
                    .args([user, pass])
                    .status()
                    .expect("mosquitto_passwd (apt-get install mosquitto)");
                assert!(status.success());
                conf.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
        }
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut m = PrivateMosquitto {
            port,
            child: None,
            dir,
        };
        m.resume();
        m
    }

    fn resume(&mut self) {
        let child = std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mosquitto did not start on port {}", self.port);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
    }
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_broker_outage_is_ridden_out_and_wrong_credentials_fail_clearly() {
    let env = Env::new().await;
    let mut open = PrivateMosquitto::start(None);
    let locked = PrivateMosquitto::start(Some(("hub", "right-password")));
    let (prefix, client_id) = mqtt_names();
    let mut wrong = mqtt_connector(
        locked.port,
        &prefix,
        &format!("{client_id}-locked"),
        Some("hub"),
    );
    if let ConnectorConfig::Mqtt(m) = &mut wrong {
        m.name = "sanitation.locked".into();
    }
    let config = env.config(vec![
        mqtt_connector(open.port, &prefix, &client_id, None),
        wrong,
    ]);
    let hub = start(&config, secrets(&[("MQTT_PASSWORD", "wrong-password")])).await;
    let base = base(&hub);
    let a = addresses();
    let sensors =
        SensorGateway::connect("127.0.0.1", open.port, &format!("{client_id}-sensors")).await;
    until_subscribed(&base, &sensors, &prefix, &a[0]).await;
    overflow(&sensors, &prefix, "BIN-G", &a[20], 30).await;
    exactly_on_feed(&env, Department::Sanitation, 1).await;

    open.stop();
    wait_health(
        &base,
        "sanitation.bins",
        "degraded while the broker is down",
        |h| {
            h["state"] == "degraded"
                && h["last_error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("unavailable")
        },
    )
    .await;
    open.resume();
    overflow(&sensors, &prefix, "BIN-H", &a[21], 5).await;
    exactly_on_feed(&env, Department::Sanitation, 2).await;
    wait_health(&base, "sanitation.bins", "healthy after the outage", |h| {
        h["state"] == "healthy"
    })
    .await;

    let h = wait_health(&base, "sanitation.locked", "failing on credentials", |h| {
        h["state"] == "failing"
    })
    .await;
    let error = h["last_error"].as_str().unwrap();
    assert!(error.contains("credentials refused"), "{error}");
    assert!(!error.contains("wrong-password"), "{error}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        health(&base, "sanitation.locked").await["failures"],
        1,
        "retried slowly, no crash loop"
    );
    drop(locked);
    hub.stop().await;
    env.stop().await;
}

// ------------------------------------------------------------------------------ PostgreSQL

pub(crate) fn welfare_connector(url_env: &str) -> ConnectorConfig {
    ConnectorConfig::PostgresPoll(PgPollConfig {
        name: "civil_affairs.welfare".into(),
        department: "civil_affairs".into(),
        url_env: url_env.into(),
        table: "welfare_case".into(),
        page_size: 3,
        settle: Duration::ZERO,
        poll_interval: Duration::from_millis(200),
        timeout: Duration::from_millis(2000),
        ..PgPollConfig::default()
    })
}

pub(crate) async fn welfare_db() -> FakeCivilAffairsDb {
    let url = postgres_url();
    FakeCivilAffairsDb::create(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed (scripts/test starts it): {e}"))
}

fn hours_ago(h: i64) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(h)
}

/// Cases `from..to` of people out of contact for 50 hours (each one welfare-check event).
async fn silent_cases(db: &FakeCivilAffairsDb, from: u32, to: u32) {
    let a = addresses();
    for n in from..to {
        db.insert(&WelfareCase::elderly_alone(
            n,
            &a[n as usize * 7 % a.len()],
            hours_ago(50),
        ))
        .await
        .unwrap();
    }
}

async fn welfare_source_ids(store: &Arc<dyn TaskStore>, n: usize) -> Vec<String> {
    eventually(Duration::from_secs(60), "welfare tasks", || async {
        let tasks = store
            .list_tasks(&hub_store::TaskFilter {
                department: Some(Department::CivilAffairs),
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap();
        (tasks.len() >= n).then(|| tasks.iter().map(|t| t.fields.source_id.clone()).collect())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn welfare_rows_become_checks_and_a_malformed_row_is_dead_lettered() {
    let env = Env::new().await;
    let db = welfare_db().await;
    let a = addresses();
    silent_cases(&db, 1, 4).await;
    db.insert(&WelfareCase::elderly_alone(4, &a[40], hours_ago(3)))
        .await
        .unwrap();
    db.insert(&WelfareCase::other(
        5,
        "LEFT_BEHIND_CHILD",
        "留守儿童探访",
        &a[41],
    ))
    .await
    .unwrap();
    db.execute("INSERT INTO welfare_case (case_no, case_type, person_name, grid_code, status) VALUES ('MZ-BAD-1', 'HARDSHIP', '赵伟', 'GRID-X1', 'ACTIVE')")
        .await
        .unwrap();
    silent_cases(&db, 6, 8).await;
    let config = env.config(vec![welfare_connector("WELFARE_DB")]);
    let hub = start(
        &config,
        secrets(&[("WELFARE_DB", db.url()), ("HUB_ACCESS_DEMO_TOKENS", "1")]),
    )
    .await;
    exactly_on_feed(&env, Department::CivilAffairs, 6).await;
    let dead = dead_letters(&env).await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .header("hub.dlq.reason")
            .unwrap()
            .contains("grid_code"),
        "{:?}",
        dead[0].headers
    );
    assert!(dead[0]
        .header("hub.dlq.origin")
        .unwrap()
        .starts_with("welfare_case:"));
    let row: Value = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(row["case_no"], "MZ-BAD-1", "the row as the table held it");
    let ids = welfare_source_ids(&hub.store, 6).await;
    assert_eq!(
        ids.iter()
            .filter(|i| i.contains("/no-contact-since-"))
            .count(),
        5,
        "{ids:?}"
    );
    let h = wait_health(&base(&hub), "civil_affairs.welfare", "all rows read", |h| {
        h["records_received"] == 8
    })
    .await;
    assert_eq!(
        (
            h["records_produced"].as_u64(),
            h["records_skipped"].as_u64(),
            h["records_dead_lettered"].as_u64()
        ),
        (Some(6), Some(1), Some(1)),
        "the person reached 3 h ago is skipped"
    );
    // Personal data stays out of the health and the dead-letter listing.
    let listing: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/deadletters", base(&hub)))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = listing.to_string();
    assert!(
        text.contains("MZ-BAD-1") && !text.contains("赵伟"),
        "{text}"
    );
    hub.stop().await;
    db.drop_database().await.unwrap();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welfare_table_poll_survives_an_outage_and_a_restart_with_no_gap_and_no_duplicate() {
    let env = Env::new().await;
    let db = welfare_db().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = db.url().replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(url, db.url(), "the database URL goes through the proxy");
    let config = env.config(vec![welfare_connector("WELFARE_DB")]);
    let secrets = secrets(&[("WELFARE_DB", &url)]);
    silent_cases(&db, 1, 6).await;
    let hub = start(&config, secrets.clone()).await;
    let base_url = base(&hub);
    exactly_on_feed(&env, Department::CivilAffairs, 5).await;

    proxy.cut();
    silent_cases(&db, 6, 10).await;
    wait_health(
        &base_url,
        "civil_affairs.welfare",
        "degraded while the database is unreachable",
        |h| h["state"] == "degraded",
    )
    .await;
    proxy.restore();
    exactly_on_feed(&env, Department::CivilAffairs, 9).await;

    hub.stop().await;
    silent_cases(&db, 10, 14).await;
    let hub = start(&config, secrets).await;
    exactly_on_feed(&env, Department::CivilAffairs, 13).await;
    let ids = welfare_source_ids(&hub.store, 13).await;
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 13);
    hub.stop().await;
    db.drop_database().await.unwrap();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_login_fails_clearly_without_a_crash_loop() {
    let env = Env::new().await;
    let db = welfare_db().await;
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    let url = with_database(
        "postgres://no_such_role:secret-pw@127.0.0.1:5432/postgres",
        &name,
    );
    let config = env.config(vec![welfare_connector("WELFARE_DB")]);
    let hub = start(&config, secrets(&[("WELFARE_DB", &url)])).await;
    let base = base(&hub);
    let h = wait_health(
        &base,
        "civil_affairs.welfare",
        "failing on credentials",
        |h| h["state"] == "failing",
    )
    .await;
    let error = h["last_error"].as_str().unwrap();
    assert!(error.contains("credentials refused"), "{error}");
    assert!(!error.contains("secret-pw"), "{error}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(health(&base, "civil_affairs.welfare").await["failures"], 1);
    hub.stop().await;
    db.drop_database().await.unwrap();
    env.stop().await;
}

// ------------------------------------------------------------------------------ Open311

pub(crate) fn open311_config(env: &Env, jurisdiction: Option<&str>) -> HubConfig {
    let mut config = env.config(vec![]);
    let o = config
        .open311
        .as_mut()
        .expect("the shipped config enables Open311");
    o.api_keys_env = Some("OPEN311_KEYS".into());
    o.jurisdiction_id = jurisdiction.map(str::to_owned);
    config
}

pub(crate) fn open311_secrets() -> Secrets {
    secrets(&[("OPEN311_KEYS", &format!("other-app, {API_KEY}"))])
}

async fn raw_get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ct, r.text().await.unwrap())
}

pub(crate) async fn raw_post(url: &str, body: &str) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ct, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_services_and_definitions_follow_georeport_v2() {
    let env = Env::new().await;
    let hub = start(
        &open311_config(&env, Some("longmatan.gov.cn")),
        open311_secrets(),
    )
    .await;
    let v2 = format!("{}/open311/v2", base(&hub));

    let (status, ct, xml) = raw_get(&format!("{v2}/services.xml")).await;
    assert_eq!((status, ct.as_str()), (200, "text/xml; charset=utf-8"));
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<services><service><service_code>garbage</service_code><service_name>暴露垃圾</service_name>"), "{xml}");
    assert!(
        xml.contains("<metadata>true</metadata><type>realtime</type>"),
        "{xml}"
    );
    assert_eq!(xml.matches("<service>").count(), 17);
    let (_, _, no_ext) = raw_get(&format!("{v2}/services")).await;
    assert_eq!(no_ext, xml, "XML is the default format");

    let (status, ct, body) = raw_get(&format!(
        "{v2}/services.json?jurisdiction_id=longmatan.gov.cn"
    ))
    .await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json; charset=utf-8")
    );
    let services: Value = serde_json::from_str(&body).unwrap();
    let list = services.as_array().unwrap();
    assert_eq!(list.len(), 17);
    let noise = list.iter().find(|s| s["service_code"] == "noise").unwrap();
    assert_eq!(noise["metadata"], true);
    assert_eq!(noise["type"], "realtime");
    assert!(
        noise["keywords"].as_str().unwrap().contains(", "),
        "comma-separated keywords"
    );
    let consult = list
        .iter()
        .find(|s| s["service_code"] == "consultation")
        .unwrap();
    assert_eq!(consult["metadata"], false);

    let (status, _, xml) = raw_get(&format!("{v2}/services/noise.xml")).await;
    assert_eq!(status, 200);
    assert!(xml.contains("<service_definition><service_code>noise</service_code><attributes><attribute><variable>true</variable><code>NOISE_SOURCE</code><datatype>singlevaluelist</datatype><required>true</required><datatype_description></datatype_description><order>1</order>"), "{xml}");
    assert!(
        xml.contains("<values><value><key>neighbours</key><name>邻居</name></value>"),
        "{xml}"
    );
    let (_, _, body) = raw_get(&format!("{v2}/services/property-service.json")).await;
    let def: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(def["service_code"], "property-service");
    assert_eq!(def["attributes"][0]["datatype"], "multivaluelist");
    assert_eq!(def["attributes"][0]["datatype_description"], Value::Null);

    // Errors: the specification's list, with 404 for what does not exist, 400 otherwise.
    let (status, ct, body) = raw_get(&format!("{v2}/services/potholes.json")).await;
    assert_eq!(
        (status, ct.as_str()),
        (404, "application/json; charset=utf-8")
    );
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors[0]["code"], 404);
    assert!(errors[0]["description"]
        .as_str()
        .unwrap()
        .contains("potholes"));
    let (status, _, xml) = raw_get(&format!("{v2}/services.xml?jurisdiction_id=sfgov.org")).await;
    assert_eq!(status, 404);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<errors><error><code>404</code><description>jurisdiction_id `sfgov.org` was not found"), "{xml}");
    let (status, ct, xml) = raw_get(&format!("{v2}/services.csv")).await;
    assert_eq!((status, ct.as_str()), (400, "text/xml; charset=utf-8"));
    assert!(xml.contains("<errors><error><code>400</code>"), "{xml}");
    let (status, _, _) = raw_get(&format!("{v2}/requests/noise-20000101000000-0000.json")).await;
    assert_eq!(status, 404);
    let (status, _, body) = raw_get(&format!("{v2}/requests.json?start_date=yesterday")).await;
    assert_eq!(status, 400);
    assert!(body.contains("start_date"), "{body}");
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open311_posts_are_checked_as_the_specification_says() {
    let env = Env::new().await;
    let hub = start(&open311_config(&env, None), open311_secrets()).await;
    let v2 = format!("{}/open311/v2", base(&hub));
    let post = |format: &str, pairs: &[(&str, &str)]| {
        let body = form_encode(
            &pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        );
        let url = format!("{v2}/requests.{format}");
        async move { raw_post(&url, &body).await }
    };
    let place = [("lat", "29.05"), ("long", "105.38")];

    let (status, ct, xml) = post(
        "xml",
        &[("service_code", "consultation"), place[0], place[1]],
    )
    .await;
    assert_eq!((status, ct.as_str()), (403, "text/xml; charset=utf-8"));
    assert!(
        xml.contains("<errors><error><code>403</code><description>api_key is required"),
        "{xml}"
    );
    let (status, _, body) = post(
        "json",
        &[
            ("api_key", "xyz"),
            ("service_code", "consultation"),
            place[0],
            place[1],
        ],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!([{"code": 403, "description": "Invalid api_key received -- can't proceed with create_request."}])
    );
    let (status, _, body) = post(
        "json",
        &[
            ("api_key", API_KEY),
            ("service_code", "potholes"),
            place[0],
            place[1],
        ],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = post(
        "json",
        &[
            ("api_key", API_KEY),
            ("service_code", "noise"),
            place[0],
            place[1],
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("attribute[NOISE_SOURCE] is required"),
        "{body}"
    );
    let (status, _, body) = post(
        "json",
        &[
            ("api_key", API_KEY),
            ("service_code", "noise"),
            ("attribute[NOISE_SOURCE]", "aliens"),
            place[0],
            place[1],
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("`aliens` is not one of"), "{body}");
    let (status, _, body) = post(
        "json",
        &[("api_key", API_KEY), ("service_code", "consultation")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("a location is required"), "{body}");
    let (status, _, body) = post(
        "json",
        &[
            ("api_key", API_KEY),
            ("service_code", "consultation"),
            ("lat", "29.05"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("long is missing"), "{body}");
    // Several problems at once: every one listed.
    let (_, _, body) = post(
        "json",
        &[
            ("api_key", API_KEY),
            ("service_code", "manhole-cover"),
            ("lat", "north"),
            ("long", "105.38"),
            ("email", "not-an-address"),
        ],
    )
    .await;
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert!(errors.as_array().unwrap().len() >= 3, "{body}");
    // Nothing refused reached Kafka.
    assert!(feed(&env, Department::Residents).await.is_empty());
    let m = metrics(&base(&hub)).await;
    assert!(
        sample(
            &m,
            &[
                "hub_open311_requests_total{",
                "operation=\"post\"",
                "status=\"403\""
            ]
        ) == Some(2.0),
        "{m}"
    );
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open311_request_becomes_a_routed_task_whose_status_shows_through_get_requests() {
    let env = Env::new().await;
    let hub = start(&open311_config(&env, None), open311_secrets()).await;
    let base = base(&hub);
    let a = addresses();
    let at = &a[2];
    let (lon, lat) = gcj02_to_wgs84(at.lon, at.lat);
    let (lat_s, lon_s) = (format!("{lat:.7}"), format!("{lon:.7}"));
    // Exactly what an Open311 client library sends: form-encoded, api_key, attribute[code].
    let body = form_encode(&[
        ("api_key".into(), API_KEY.into()),
        ("service_code".into(), "noise".into()),
        ("lat".into(), lat_s.clone()),
        ("long".into(), lon_s.clone()),
        ("address_string".into(), at.name.clone()),
        ("attribute[NOISE_SOURCE]".into(), "neighbours".into()),
        (
            "attribute[SINCE]".into(),
            "2026-11-21T21:00:00+08:00".into(),
        ),
        ("description".into(), "楼上每晚装修到十一点".into()),
        ("first_name".into(), "秀英".into()),
        ("last_name".into(), "李".into()),
        ("phone".into(), "13800001234".into()),
        ("account_id".into(), "wx-123".into()),
    ]);
    let (status, ct, answer) = raw_post(&format!("{base}/open311/v2/requests.json"), &body).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/json; charset=utf-8"),
        "{answer}"
    );
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let id = answer[0]["service_request_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("noise-"), "{id}");
    assert_eq!(answer[0]["account_id"], "wx-123");
    assert!(
        answer[0].get("token").is_none(),
        "a realtime service returns the id, no token"
    );

    // A multivaluelist with attribute[code][], answered in XML.
    let body = form_encode(&[
        ("api_key".into(), API_KEY.into()),
        ("service_code".into(), "property-service".into()),
        ("address_string".into(), a[30].name.clone()),
        ("attribute[ISSUE][]".into(), "elevator".into()),
        ("attribute[ISSUE][]".into(), "water".into()),
    ]);
    let (status, ct, xml) = raw_post(&format!("{base}/open311/v2/requests.xml"), &body).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/xml; charset=utf-8"),
        "{xml}"
    );
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request><service_request_id>property-service-"), "{xml}");
    let second = xml
        .split("<service_request_id>")
        .nth(1)
        .and_then(|s| s.split("</service_request_id>").next())
        .unwrap()
        .to_owned();

    // The request went to the residents' feed as an event and became a routed task.
    let records = exactly_on_feed(&env, Department::Residents, 2).await;
    assert!(records.iter().all(|r| r.payload[0] == 0));
    let task_id = eventually(Duration::from_secs(60), "the request's task", || async {
        match hub
            .store
            .prior_outcome("residents.open311", &id)
            .await
            .unwrap()
        {
            Some(PriorOutcome::Task { task_id }) => Some(task_id),
            _ => None,
        }
    })
    .await;
    let task = hub.store.get_task(&task_id).await.unwrap().unwrap();
    assert_eq!(task.fields.category_code, "noise");
    assert_eq!(task.fields.department, Department::Residents);
    let lead = task.fields.lead_unit.clone().expect("a lead unit").name;
    assert_eq!(
        task.fields.place.community_code.as_deref(),
        Some(at.community_code()),
        "the GPS position was converted to the city's datum and placed in its community"
    );

    let url = format!("{base}/open311/v2/requests/{id}.json");
    let view = get_json(&url).await;
    let r = &view[0];
    assert_eq!(r["service_request_id"], id.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "noise");
    assert_eq!(r["service_name"], "噪音扰民");
    assert_eq!(r["agency_responsible"], lead.as_str());
    // Anyone may read requests: a resident's words, address and exact point are left out
    // (the operator may turn `public_details` on); the point is rounded to about 100 m.
    assert!(r["description"].is_null(), "{r}");
    assert!(r["address"].is_null(), "{r}");
    let (shown_lat, shown_lon) = (r["lat"].as_f64().unwrap(), r["long"].as_f64().unwrap());
    assert!(
        (shown_lat - lat).abs() < 6e-4 && (shown_lon - lon).abs() < 6e-4,
        "{r}"
    );
    assert_eq!((shown_lat * 1e3).round() / 1e3, shown_lat, "rounded: {r}");
    assert!(
        r["requested_datetime"]
            .as_str()
            .unwrap()
            .ends_with("+08:00"),
        "{r}"
    );
    // The SLA: the task's earliest open deadline, in the future and in China time.
    let expected = r["expected_datetime"]
        .as_str()
        .unwrap_or_else(|| panic!("expected_datetime from the SLA: {r}"));
    let expected_at = chrono::DateTime::parse_from_rfc3339(expected).unwrap();
    assert!(
        expected.ends_with("+08:00") && expected_at > chrono::Utc::now(),
        "{r}"
    );
    let (status, ct, xml) = raw_get(&format!("{base}/open311/v2/requests/{id}.xml")).await;
    assert_eq!((status, ct.as_str()), (200, "text/xml; charset=utf-8"));
    assert!(xml.contains(&format!("<service_requests><request><service_request_id>{id}</service_request_id><status>open</status>")), "{xml}");
    assert!(
        xml.contains(&format!("<agency_responsible>{lead}</agency_responsible>")),
        "{xml}"
    );
    // Personal data never shows.
    assert!(
        !xml.contains("13800001234") && !xml.contains("秀英"),
        "{xml}"
    );

    // GET requests: by service code, by id list, by status.
    let list = get_json(&format!(
        "{base}/open311/v2/requests.json?service_code=noise"
    ))
    .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["expected_datetime"], r["expected_datetime"],
        "the list and the single read show the same SLA"
    );
    assert!(list[0]["description"].is_null(), "{list}");
    eventually(
        Duration::from_secs(60),
        "the second request routed",
        || async {
            hub.store
                .prior_outcome("residents.open311", &second)
                .await
                .unwrap()
                .map(|_| ())
        },
    )
    .await;
    let both = get_json(&format!(
        "{base}/open311/v2/requests.json?service_request_id={id},{second}"
    ))
    .await;
    assert_eq!(both.as_array().unwrap().len(), 2);
    let all = get_json(&format!("{base}/open311/v2/requests.json")).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let closed = get_json(&format!("{base}/open311/v2/requests.json?status=closed")).await;
    assert!(closed.as_array().unwrap().is_empty());

    // The task is closed by its unit: the request reads closed.
    close_task(&env, &task_id).await;
    let view = get_json(&url).await;
    assert_eq!(view[0]["status"], "closed", "{view}");
    let closed = get_json(&format!("{base}/open311/v2/requests.json?status=closed")).await;
    assert_eq!(closed.as_array().unwrap().len(), 1);
    let h = health(&base, "residents.open311").await;
    assert_eq!(
        (h["kind"].as_str(), h["records_produced"].as_u64()),
        (Some("open311"), Some(2))
    );
    hub.stop().await;
    env.stop().await;
}

/// Close a task as its handling unit would (the workflow API is not in this test's scope).
async fn close_task(env: &Env, task_id: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&env.store_url)
        .await
        .unwrap();
    sqlx::query("UPDATE tasks SET status = 'closed', updated_at = ? WHERE task_id = ?")
        .bind(Utc::now().timestamp_millis())
        .bind(task_id)
        .execute(&mut conn)
        .await
        .unwrap();
}

// ------------------------------------------------------------------------------ DLQ + CLI

async fn cli(args: &[&str]) -> std::process::Output {
    let bin = workspace_root().join("target/debug/hub");
    tokio::process::Command::new(&bin)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{} (cargo build --workspace --bins): {e}", bin.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_through_the_current_mapping() {
    let env = Env::new().await;
    let fake = police_fake().await;
    let a = addresses();
    let mut generator = Generator::new(a.clone(), 301);
    fake.publish(&theft(&mut generator, &a[1]));
    let mut unfixable = theft(&mut generator, &a[2]);
    unfixable["bjsj"] = json!("昨天");
    fake.publish(&unfixable);
    let config = env.config(vec![police_connector(&fake.base_url())]);
    let hub = start(
        &config,
        secrets(&[("POLICE_TOKEN", TOKEN), ("HUB_ACCESS_DEMO_TOKENS", "1")]),
    )
    .await;
    let base = base(&hub);
    exactly_on_feed(&env, Department::Police, 1).await;

    // A record an older mapping refused, which the current one maps: as after a fix.
    let fixed = theft(&mut generator, &a[3]);
    dead_letter_before_the_fix(&env, &fixed).await;

    let out = cli(&["dlq", "list", "--api", &base, "--token", ADMIN]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("2 dead letters on hub.deadletter"),
        "{text}"
    );
    assert!(
        text.contains("field `bjsj`") && text.contains("before the fix"),
        "{text}"
    );
    assert!(
        !text.contains(unfixable["bjrdh"].as_str().unwrap()),
        "phone numbers are masked: {text}"
    );

    let out = cli(&[
        "dlq",
        "replay",
        "--api",
        &base,
        "--token",
        ADMIN,
        "--dry-run",
    ])
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("would produce 1"));
    assert_eq!(
        feed(&env, Department::Police).await.len(),
        1,
        "a dry run produces nothing"
    );
    let out = cli(&["dlq", "replay", "--api", &base, "--token", ADMIN]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("produced 1, skipped 0, still failing 1"),
        "{text}"
    );
    exactly_on_feed(&env, Department::Police, 2).await;
    let fixed_id = fixed["jjdbh"].as_str().unwrap().to_owned();
    all_handled(&hub.store, "police.test", &[fixed_id]).await;
    // The unfixable record is still there; nothing was removed.
    assert_eq!(dead_letters(&env).await.len(), 2);
    // Replaying again changes no task (same event id).
    let anonymous = reqwest::Client::new()
        .post(format!("{base}/api/v1/deadletters/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "replay needs an API token");
    let not_admin = reqwest::Client::new()
        .post(format!("{base}/api/v1/deadletters/replay"))
        .bearer_auth("demo-police")
        .send()
        .await
        .unwrap();
    assert_eq!(not_admin.status(), 403, "replay is for administrators");
    let again: Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/deadletters/replay"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["produced"].as_array().unwrap().len(), 1);
    let out = cli(&["connectors", "status", "--api", &base]).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("police.test"));
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sees_connector_health_replays_a_dead_letter_and_dry_runs_an_event_in_the_console(
) {
    let env = Env::new().await;
    let fake = police_fake().await;
    let a = addresses();
    let mut generator = Generator::new(a.clone(), 302);
    fake.publish(&theft(&mut generator, &a[1]));
    let config = env.config(vec![police_connector(&fake.base_url())]);
    let hub = start(
        &config,
        secrets(&[("POLICE_TOKEN", TOKEN), ("HUB_ACCESS_DEMO_TOKENS", "1")]),
    )
    .await;
    let base = base(&hub);
    exactly_on_feed(&env, Department::Police, 1).await;
    // A record an older mapping refused, which the current one maps: as after a fix.
    let fixed = theft(&mut generator, &a[3]);
    dead_letter_before_the_fix(&env, &fixed).await;

    let b = hub_tests::browser::Browser::start("console-admin").await;
    // Not for other accounts.
    b.sign_in(&base, "demo-community-510504001001").await;
    b.goto(&format!("{base}/admin")).await;
    let body = b.execute("return document.body.innerText;", vec![]).await;
    assert!(body.as_str().unwrap().contains("仅限管理员"), "{body}");
    b.sign_in(&base, ADMIN).await;
    b.goto(&format!("{base}/admin")).await;
    let row = b
        .wait_text(
            "tr[data-connector='police.test']",
            "正常",
            Duration::from_secs(10),
        )
        .await;
    assert!(row.contains("http_poll"), "{row}");
    b.wait_text("table.letters", "before the fix", Duration::from_secs(5))
        .await;
    b.execute(
        "document.getElementById('replay-source').value = 'police.test'; return null;",
        vec![],
    )
    .await;
    b.click(&b.find("form[action='/admin/replay'] button").await)
        .await;
    b.wait_text("#replay-result", "重新投递 1 条", Duration::from_secs(20))
        .await;
    exactly_on_feed(&env, Department::Police, 2).await;

    // The dry-run of the sample event: where it would go, and that nothing was written.
    let before = hub
        .store
        .count_tasks(&hub_store::TaskFilter::default())
        .await
        .unwrap();
    b.click(&b.find("form[action='/admin/dry-run'] button").await)
        .await;
    let result = b
        .wait_text("#dry-run-result", "试运行结果", Duration::from_secs(10))
        .await;
    assert!(
        result.contains("派遣") && result.contains("梧桐社区"),
        "{result}"
    );
    assert_eq!(
        hub.store
            .count_tasks(&hub_store::TaskFilter::default())
            .await
            .unwrap(),
        before
    );
    // The city's communities with their units and admission lists.
    let wutong = b
        .wait_text(
            "tr[data-community='510504001001']",
            "梧桐社区",
            Duration::from_secs(5),
        )
        .await;
    assert!(
        wutong.contains("workstation") && wutong.contains("公安"),
        "{wutong}"
    );
    b.save_screenshot("console-admin").await;
    drop(b);
    hub.stop().await;
}
