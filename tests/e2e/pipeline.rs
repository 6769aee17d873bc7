//! The walking skeleton end to end: a fake departmental system → connector → Kafka (the
//! embedded Kafka-protocol broker) → routing pipeline → task store (SQLite file or
//! PostgreSQL) → HTTP API, plus the outbox back to the departments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hub::config::{ConnectorConfig, HttpPollConfig, HubConfig};
use hub::startup::{self, Roles, RunningHub};
use hub_schemas::event::Department;
use hub_simulator::generator::{load_addresses, Address, Generator};
use hub_simulator::FakeDepartment;
use hub_store::TaskFilter;
use hub_tests::*;
use serde_json::Value;

const TOKEN: &str = "test-token";

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn addresses() -> Vec<Address> {
    load_addresses(&workspace_root().join("config/city/addresses.csv")).expect("gazetteer")
}

/// A broker, a fake urban-management system and the hub's configuration polling it (10
/// records a page) with a SQLite store, all in `dir`.
async fn urban_management_hub(
    dir: &std::path::Path,
) -> (
    hub::infra::broker::EmbeddedBroker,
    FakeDepartment,
    HubConfig,
) {
    let broker = start_broker(dir).await;
    let store_url = fresh_store_url(Backend::Sqlite, dir).await;
    let fake = FakeDepartment::start(
        Department::UrbanManagement,
        TOKEN,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    let mut config = hub_config(dir, broker.bootstrap(), &store_url);
    config.connectors = vec![connector_for(&fake, 10)];
    (broker, fake, config)
}

/// The `i`-th of a series of urban-management records that are all distinct incidents
/// (different addresses, an admitted category), so each becomes its own task.
fn distinct_record(generator: &mut Generator, i: usize) -> Value {
    let at = generator.addresses()[(i * 7) % generator.addresses().len()].clone();
    let mut record = generator.record_at(Department::UrbanManagement, &at, now());
    record["eventTypeCode"] = Value::from("010101");
    record["eventTypeName"] = Value::from("私搭乱建");
    record
}

fn connector_for(fake: &FakeDepartment, page_size: u32) -> ConnectorConfig {
    ConnectorConfig::HttpPoll(http_connector(fake, page_size))
}

fn http_connector(fake: &FakeDepartment, page_size: u32) -> HttpPollConfig {
    let shape = fake.shape();
    HttpPollConfig {
        name: format!("{}.test", fake.department().as_str()),
        department: fake.department().as_str().to_owned(),
        base_url: fake.base_url(),
        path: shape.path.to_owned(),
        token_env: "TEST_TOKEN".to_owned(),
        cursor_param: shape.cursor_param.to_owned(),
        items_pointer: shape.items_pointer.to_owned(),
        cursor_pointer: shape.cursor_pointer.to_owned(),
        page_size,
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(2000),
        ..HttpPollConfig::default()
    }
}

async fn start(config: &HubConfig, roles: Roles) -> RunningHub {
    startup::start(
        config,
        roles,
        hub_tests::with_demo_tokens(Arc::new(|_: &str| Some(TOKEN.to_owned()))),
    )
    .await
    .expect("hub starts")
}

const CONNECTORS_ONLY: Roles = Roles {
    connectors: true,
    router: false,
    api: false,
};
const API_ONLY: Roles = Roles {
    connectors: false,
    router: false,
    api: true,
};

async fn get_json(url: &str) -> Value {
    let resp = hub_tests::admin_get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.json().await.expect("JSON body")
}

async fn task_count(store: &Arc<dyn hub_store::TaskStore>) -> u64 {
    store
        .count_tasks(&TaskFilter::default())
        .await
        .expect("count tasks")
}

fn connector_toml(fake: &FakeDepartment, page_size: u32) -> String {
    let c = http_connector(fake, page_size);
    format!(
        "[[connectors]]\nname = \"{}\"\ndepartment = \"{}\"\nkind = \"http_poll\"\nbase_url = \"{}\"\npath = \"{}\"\n\
         token_env = \"{}\"\ncursor_param = \"{}\"\nitems_pointer = \"{}\"\ncursor_pointer = \"{}\"\n\
         page_size = {}\npoll_interval_ms = {}\ntimeout_ms = {}\n",
        c.name, c.department, c.base_url, c.path, c.token_env, c.cursor_param, c.items_pointer,
        c.cursor_pointer, c.page_size, c.poll_interval.as_millis(), c.timeout.as_millis()
    )
}

/// N records → exactly N tasks, each in the community containing its point, although the
/// connector process and the router process are each killed (SIGKILL) and restarted
/// several times mid-stream, and the departmental system answers 503 now and then.
async fn exactly_n_tasks_across_crashes(backend: Backend) {
    const N: usize = 180;
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(backend, dir.path()).await;
    let fake = FakeDepartment::start(
        Department::UrbanManagement,
        TOKEN,
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .await
    .unwrap();
    fake.fail_every(7);
    let config = hub_config(dir.path(), broker.bootstrap(), &store_url);
    let mut env = config_overrides(dir.path(), broker.bootstrap(), &store_url);
    env.push(("TEST_TOKEN".to_owned(), TOKEN.to_owned()));
    let connectors = connector_toml(&fake, 5);

    let mut generator = Generator::new(addresses(), 42);
    let mut expected: BTreeMap<String, String> = BTreeMap::new(); // source id → community
                                                                  // Distinct incidents: no two records share an address and a category group, and every
                                                                  // category is admitted everywhere, so each record must become its own task.
    const DISTINCT: [(&str, &str); 2] = [("010101", "私搭乱建"), ("020101", "非法小广告")];
    let mut publish = |count: usize| {
        for _ in 0..count {
            let i = expected.len();
            let n = generator.addresses().len();
            let at = generator.addresses()[i % n].clone();
            let mut record = generator.record_at(Department::UrbanManagement, &at, now());
            let (code, name) = DISTINCT[(i / n) % DISTINCT.len()];
            record["eventTypeCode"] = Value::from(code);
            record["eventTypeName"] = Value::from(name);
            expected.insert(
                record["caseNo"].as_str().unwrap().to_owned(),
                at.community_code().to_owned(),
            );
            fake.publish(&record);
        }
    };
    publish(N / 3);

    let api = start(&config, API_ONLY).await;
    let store = api.store.clone();
    let spawn_connector = || HubProcess::spawn(dir.path(), &connectors, "connectors", &env);
    let spawn_router = || HubProcess::spawn(dir.path(), "", "router", &env);
    let mut connector = spawn_connector();
    let mut router = spawn_router();

    eventually(Duration::from_secs(60), "the first tasks", || async {
        (task_count(&store).await > 5).then_some(())
    })
    .await;
    for pause_ms in [400, 900, 650] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        connector.kill().await;
        publish(N / 9);
        connector = spawn_connector();
    }
    eventually(Duration::from_secs(60), "a third of the tasks", || async {
        (task_count(&store).await > (N / 3) as u64).then_some(())
    })
    .await;
    for pause_ms in [500, 800, 300] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        router.kill().await;
        router = spawn_router();
    }
    publish(N - N / 3 - 3 * (N / 9));
    assert_eq!(expected.len(), N);

    eventually(Duration::from_secs(120), "N tasks", || async {
        (task_count(&store).await >= N as u64).then_some(())
    })
    .await;
    // Let any redelivery land before counting for good.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(task_count(&store).await, N as u64, "exactly N tasks");
    assert!(
        fake.failures_injected() > 0,
        "the fake system did fail now and then"
    );
    let produced = read_topic(
        broker.bootstrap(),
        "hub.feed.urban-management",
        3,
        Duration::from_secs(2),
    )
    .await
    .len();
    assert!(
        produced >= N,
        "every record reached the feed topic ({produced} < {N})"
    );
    println!(
        "{N} records, {produced} feed messages (re-sent after kills: {}), {N} tasks",
        produced - N
    );

    let tasks = store
        .list_tasks(&TaskFilter {
            limit: 1000,
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    for task in &tasks {
        let t = &task.fields;
        assert!(
            seen.insert(t.source_id.clone()),
            "task for {} doubled",
            t.source_id
        );
        let community = expected
            .get(&t.source_id)
            .unwrap_or_else(|| panic!("unexpected task {}", t.source_id));
        assert_eq!(
            t.place.community_code.as_ref(),
            Some(community),
            "task {} in the wrong community",
            t.source_id
        );
        assert!(
            t.lead_unit.is_some(),
            "task {} has a lead unit",
            t.source_id
        );
    }
    assert_eq!(seen.len(), N);

    // The API shows them, filtered by community, with the routing explanation.
    let base = format!("http://{}", api.api_addr.unwrap());
    let (source_id, community) = expected.iter().next().unwrap();
    let listed = get_json(&format!(
        "{base}/api/v1/tasks?community={community}&limit=1000"
    ))
    .await;
    let want = expected.values().filter(|c| *c == community).count();
    assert_eq!(listed["total"].as_u64(), Some(want as u64));
    let task_id = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["source_id"] == source_id.as_str())
        .unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let detail = get_json(&format!("{base}/api/v1/tasks/{task_id}")).await;
    assert_eq!(
        detail["task"]["place"]["community_code"],
        community.as_str()
    );
    assert_eq!(detail["task"]["explanation"]["place_method"], "point");
    assert!(detail["task"]["explanation"]["matched_area"]
        .as_str()
        .unwrap()
        .contains(community.as_str()));
    assert_eq!(
        detail["history"].as_array().unwrap().len(),
        2,
        "created, then dispatched"
    );

    connector.kill().await;
    router.kill().await;
    api.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_n_tasks_across_crashes_on_sqlite() {
    exactly_n_tasks_across_crashes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_n_tasks_across_crashes_on_postgres() {
    exactly_n_tasks_across_crashes(Backend::Postgres).await;
}

/// A record the connector cannot map goes to the dead-letter topic with its reason and its
/// original bytes; the records around it still become tasks. Bytes on a feed topic that are
/// not an event are dead-lettered by the router the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmappable_records_are_dead_lettered_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, fake, config) = urban_management_hub(dir.path()).await;
    let mut generator = Generator::new(addresses(), 7);
    let good1 = distinct_record(&mut generator, 0);
    let mut bad = distinct_record(&mut generator, 1);
    bad["reportTime"] = Value::from("21/11/2026 10:00");
    let good2 = distinct_record(&mut generator, 2);
    for r in [&good1, &bad, &good2] {
        fake.publish(r);
    }
    let hub = start(&config, Roles::ALL).await;
    let store = hub.store.clone();

    // Garbage straight onto a feed topic, as a misbehaving producer would write it.
    let kafka = hub::infra::kafka::Kafka::connect(broker.bootstrap(), "test").unwrap();
    kafka
        .produce("hub.feed.police", "k", b"\x00\x00\x00\x00\x63not avro", &[])
        .await
        .unwrap();

    eventually(Duration::from_secs(60), "two tasks", || async {
        (task_count(&store).await == 2).then_some(())
    })
    .await;
    let dead = eventually(Duration::from_secs(30), "two dead letters", || async {
        let records = read_topic(
            broker.bootstrap(),
            "hub.deadletter",
            1,
            Duration::from_secs(2),
        )
        .await;
        (records.len() >= 2).then_some(records)
    })
    .await;
    assert_eq!(dead.len(), 2);
    let mapping = dead
        .iter()
        .find(|r| r.header("hub.dlq.stage") == Some("connector.mapping"))
        .expect("mapping dead letter");
    assert!(
        mapping
            .header("hub.dlq.reason")
            .unwrap()
            .contains("reportTime"),
        "{:?}",
        mapping.headers
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&mapping.payload).unwrap(),
        bad,
        "original bytes kept"
    );
    let decode = dead
        .iter()
        .find(|r| r.header("hub.dlq.stage") == Some("router.decode"))
        .expect("decode dead letter");
    assert_eq!(decode.payload, b"\x00\x00\x00\x00\x63not avro".to_vec());
    assert!(decode
        .header("hub.dlq.origin")
        .unwrap()
        .starts_with("hub.feed.police/"));

    // Both good records became tasks.
    let tasks = store.list_tasks(&TaskFilter::default()).await.unwrap();
    let ids: BTreeSet<_> = tasks.iter().map(|t| t.fields.source_id.clone()).collect();
    assert!(
        ids.contains(good1["caseNo"].as_str().unwrap())
            && ids.contains(good2["caseNo"].as_str().unwrap())
    );

    // The health endpoint and the metrics show the connector and the dead letters.
    let base = format!("http://{}", hub.api_addr.unwrap());
    let health = get_json(&format!("{base}/healthz")).await;
    assert_eq!(
        health["connectors"]["urban_management.test"]["records_dead_lettered"],
        1
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hub_dead_letters_total{stage=\"connector.mapping\"} 1"),
        "{metrics}"
    );
    hub.stop().await;
    broker.stop().await;
}

/// The feed topic can be read by a plain Kafka client (kcat), and its values are Avro in the
/// Confluent wire format: magic byte 0, then a 4-byte schema id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_topic_is_readable_by_kcat_in_wire_format() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, fake, config) = urban_management_hub(dir.path()).await;
    fake.publish(&Generator::new(addresses(), 3).record(Department::UrbanManagement, now()));
    let hub = start(&config, CONNECTORS_ONLY).await;
    let bootstrap = broker.bootstrap().to_owned();
    let output = eventually(Duration::from_secs(30), "kcat to read one record", || {
        let bootstrap = bootstrap.clone();
        async move {
            let out = tokio::process::Command::new("kcat")
                .args([
                    "-C",
                    "-b",
                    &bootstrap,
                    "-t",
                    "hub.feed.urban-management",
                    "-c",
                    "1",
                    "-e",
                    "-q",
                    "-f",
                    "%s",
                ])
                .output()
                .await
                .expect("kcat is installed (scripts/test installs it)");
            (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
        }
    })
    .await;
    assert_eq!(output[0], 0x00, "magic byte");
    let schema_id = u32::from_be_bytes([output[1], output[2], output[3], output[4]]);
    assert!(schema_id >= 1, "schema id {schema_id}");
    assert!(output.len() > 50, "an Avro body follows");
    hub.stop().await;
    broker.stop().await;
}

/// The README's run command: `hub demo` serves tasks from all four departments' simulated
/// feeds within 30 s, each with a community and an explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_tasks_from_all_four_departments_within_30s() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hub_bin = workspace_root().join("target/debug/hub");
    let mut child = tokio::process::Command::new(&hub_bin)
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path().join("demo"))
        .current_dir(workspace_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} (build it with `cargo build --workspace --bins`): {e}",
                hub_bin.display()
            )
        });
    let url = format!("http://127.0.0.1:{port}/api/v1/tasks?limit=1000");
    let tasks = eventually(
        Duration::from_secs(30),
        "tasks from all four departments",
        || {
            let url = url.clone();
            async move {
                let body: Value = hub_tests::admin_get(&url).await.ok()?.json().await.ok()?;
                let tasks = body["tasks"].as_array()?.clone();
                let departments: BTreeSet<_> = tasks
                    .iter()
                    .filter_map(|t| t["department"].as_str().map(str::to_owned))
                    .collect();
                (departments.len() == 4).then_some(tasks)
            }
        },
    )
    .await;
    for t in &tasks {
        assert!(
            t["place"]["community_code"].is_string(),
            "task without community: {t}"
        );
        assert!(
            !t["explanation"]["matched_area"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{t}"
        );
    }
    child.kill().await.unwrap();
}

/// docker-compose.yml runs the hub with config/docker-compose.toml and HUB__ variables: every
/// variable must be a real config key, and every connector must match the simulator's API.
#[test]
fn docker_compose_matches_the_hub_config() {
    let root = workspace_root();
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let overrides: Vec<(String, String)> = compose
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(k, _)| k.starts_with("HUB__"))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    assert!(overrides.len() >= 4, "{overrides:?}");
    let path = root.join("config/docker-compose.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = HubConfig::parse(&text, &path, &overrides).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.kafka.brokers, "kafka:9092");
    assert!(config.store.url.starts_with("postgres://"));
    assert!(compose.contains("--config\", \"/app/config/docker-compose.toml\""));
    let ports = [
        (Department::Police, 9101),
        (Department::UrbanManagement, 9102),
        (Department::Sanitation, 9103),
        (Department::CivilAffairs, 9104),
    ];
    for (department, port) in ports {
        let Some(ConnectorConfig::HttpPoll(c)) = config
            .connectors
            .iter()
            .find(|c| c.department() == department)
        else {
            panic!("an http_poll connector per department")
        };
        let shape = hub_simulator::ApiShape::of(department);
        assert_eq!(c.base_url, format!("http://simulator:{port}"), "{}", c.name);
        assert_eq!(
            (
                c.path.as_str(),
                c.cursor_param.as_str(),
                c.items_pointer.as_str(),
                c.cursor_pointer.as_str()
            ),
            (
                shape.path,
                shape.cursor_param,
                shape.items_pointer,
                shape.cursor_pointer
            ),
            "{}",
            c.name
        );
    }
}

/// A departmental receiver that refuses its first deliveries: every task event still arrives
/// once, in order, with a valid HMAC signature; the failure reason shows in /healthz while it
/// lasts; and the Kafka task topics carry the same events as Avro.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_events_reach_the_departments_webhook_once_in_order_and_signed() {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Receiver {
        refusals_left: Mutex<u32>,
        received: Mutex<Vec<Value>>,
        bad_signatures: Mutex<u32>,
    }
    const SECRET: &str = "feedback-secret";
    async fn receive(
        State(r): State<Arc<Receiver>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        {
            let mut left = r.refusals_left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return StatusCode::SERVICE_UNAVAILABLE;
            }
        }
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let timestamp: i64 = header("X-Hub-Timestamp").parse().unwrap_or_default();
        let expected =
            hub_connectors::webhook::sign(&hub_connectors::Secret::new(SECRET), timestamp, &body);
        if header("X-Hub-Signature") != expected {
            *r.bad_signatures.lock().unwrap() += 1;
            return StatusCode::UNAUTHORIZED;
        }
        r.received
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap());
        StatusCode::OK
    }
    let receiver = Arc::new(Receiver {
        refusals_left: Mutex::new(3),
        ..Receiver::default()
    });
    let app = axum::Router::new()
        .route("/feedback", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/feedback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let (broker, fake, mut config) = urban_management_hub(dir.path()).await;
    config.webhooks = vec![hub::config::WebhookConfig {
        department: "urban_management".into(),
        url: receiver_url,
        secret_env: "FEEDBACK_SECRET".into(),
        timeout_ms: 2000,
    }];
    const N: usize = 6;
    let mut generator = Generator::new(addresses(), 11);
    for i in 0..N {
        fake.publish(&distinct_record(&mut generator, i));
    }
    let hub = startup::start(
        &config,
        Roles::ALL,
        Arc::new(|name: &str| {
            Some(
                if name == "FEEDBACK_SECRET" {
                    SECRET
                } else {
                    TOKEN
                }
                .to_owned(),
            )
        }),
    )
    .await
    .unwrap();
    let base = format!("http://{}", hub.api_addr.unwrap());

    // While the receiver refuses, /healthz shows why.
    let health = eventually(
        Duration::from_secs(30),
        "a failed delivery in /healthz",
        || {
            let url = format!("{base}/healthz");
            async move {
                let h = get_json(&url).await;
                let failing = h["outbox"]
                    .as_array()?
                    .iter()
                    .find(|d| {
                        d["destination"] == "webhook:urban_management"
                            && d["attempts"].as_i64() > Some(0)
                    })?
                    .clone();
                Some(failing)
            }
        },
    )
    .await;
    assert!(
        health["last_error"].as_str().unwrap().contains("503"),
        "{health}"
    );

    let events = eventually(
        Duration::from_secs(60),
        "every event at the receiver",
        || async {
            let got = receiver.received.lock().unwrap().clone();
            (got.len() >= 3 * N).then_some(got)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events_now = receiver.received.lock().unwrap().clone();
    assert_eq!(events_now.len(), 3 * N, "each event once: {events_now:#?}");
    assert_eq!(*receiver.bad_signatures.lock().unwrap(), 0);
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    // Per task: created, then dispatched, then the dispatch record.
    let mut per_task: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        let kind = match e["type"].as_str().unwrap() {
            "task_status_changed" => format!("status:{}", e["to_status"].as_str().unwrap()),
            other => other.to_owned(),
        };
        per_task
            .entry(e["task_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(kind);
    }
    assert_eq!(per_task.len(), N);
    for kinds in per_task.values() {
        assert_eq!(
            kinds,
            &["status:created", "status:dispatched", "task_dispatched"]
        );
    }

    // The same events on the Kafka task topics, in the wire format.
    let dispatched = read_topic(broker.bootstrap(), "hub.tasks", 3, Duration::from_secs(2)).await;
    let changes = read_topic(
        broker.bootstrap(),
        "hub.task-status",
        3,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!((dispatched.len(), changes.len()), (N, 2 * N));
    assert!(dispatched.iter().chain(&changes).all(|r| r.payload[0] == 0));
    let health = get_json(&format!("{base}/healthz")).await;
    let hook = health["outbox"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination"] == "webhook:urban_management")
        .unwrap()
        .clone();
    assert_eq!(
        (hook["attempts"].as_i64(), hook["last_error"].is_null()),
        (Some(0), true),
        "{hook}"
    );
    hub.stop().await;
    broker.stop().await;
}

/// Police thefts (never merged) and garbage reports (10 of each incident, merged into one
/// task) preloaded onto the feed topics, as a department's backlog after a day offline.
pub(crate) struct Backlog {
    /// Source records by (source system, source id).
    records: BTreeSet<(String, String)>,
    thefts: usize,
    incidents: usize,
}

async fn preload_backlog(
    dir: &std::path::Path,
    broker: &str,
    thefts: usize,
    incidents: usize,
    reports_each: usize,
) -> Backlog {
    preload_named(dir, broker, "THEFT", thefts, incidents, reports_each).await
}

/// [`preload_backlog`] with thefts numbered `<prefix>-<n>` (a second call with another
/// prefix adds records, not redeliveries).
pub(crate) async fn preload_named(
    dir: &std::path::Path,
    broker: &str,
    prefix: &str,
    thefts: usize,
    incidents: usize,
    reports_each: usize,
) -> Backlog {
    use hub_connectors::mapping::{Mapped, Mapper, MappingContext, RecordFormat};
    use hub_schemas::codec::{value_subject, Codec};
    use hub_schemas::registry::{LocalRegistry, Registry};
    let codec = Codec::new(Registry::from(
        LocalRegistry::open(dir.join("schema-ids.json")).unwrap(),
    ));
    let kafka = hub::infra::kafka::Kafka::connect(broker, "backlog").unwrap();
    let addresses = addresses();
    let mut generator = Generator::new(addresses.clone(), 2026);
    let mut records = BTreeSet::new();
    let mut produce = |department: Department, record: Value, format: RecordFormat| {
        let ctx = MappingContext {
            source_system: if department == Department::Police {
                "police.backlog"
            } else {
                "urban_management.backlog"
            },
            received_at: now(),
            limits: Default::default(),
        };
        let raw = hub_connectors::RawRecord {
            bytes: record.to_string().into_bytes(),
            uri: "test:backlog".into(),
        };
        let Mapped::Event(event) = Mapper::new(format).map(ctx, &raw).unwrap() else {
            panic!("a backlog record was skipped");
        };
        records.insert((event.source_system.clone(), event.source_id.clone()));
        *event
    };
    let mut events = Vec::new();
    for i in 0..thefts {
        let at = &addresses[(i * 7919) % addresses.len()];
        let mut r = generator.record_at(Department::Police, at, now());
        r["jjdbh"] = Value::from(format!("{prefix}-{i}"));
        r["bjlbdm"] = Value::from("0201");
        r["bjlbmc"] = Value::from("盗窃");
        events.push(produce(Department::Police, r, RecordFormat::PoliceIncident));
    }
    // Interleaved, so that an incident's reports fall into different batches.
    for k in 0..reports_each {
        for j in 0..incidents {
            let at = &addresses[(j * 31) % addresses.len()];
            let mut r = generator.record_at(Department::UrbanManagement, at, now());
            r["caseNo"] = Value::from(format!("PILE-{j}-{k}"));
            r["eventTypeCode"] = Value::from("010102");
            r["eventTypeName"] = Value::from("暴露垃圾");
            events.push(produce(
                Department::UrbanManagement,
                r,
                RecordFormat::UrbanManagementCase,
            ));
        }
    }
    let mut encoded = Vec::with_capacity(events.len());
    for (n, event) in events.iter().enumerate() {
        let topic = if event.department == Department::Police {
            "hub.feed.police"
        } else {
            "hub.feed.urban-management"
        };
        let payload = codec.encode(&value_subject(topic), event).await.unwrap();
        encoded.push((topic, format!("k{}", n % 97), payload));
    }
    // Many in flight at once; a partition keeps their order.
    for chunk in encoded.chunks(500) {
        let sends = chunk
            .iter()
            .map(|(topic, key, payload)| kafka.produce(topic, key, payload, &[]));
        for sent in futures::future::join_all(sends).await {
            sent.unwrap();
        }
    }
    Backlog {
        records,
        thefts,
        incidents,
    }
}

/// A backlog drains in batches while the routing process is killed with SIGKILL again and
/// again, in the middle of its batches: every source record ends with exactly one outcome —
/// its own task, or a report merged into its incident's one task — none lost, none doubled.
async fn a_backlog_drains_in_batches_through_repeated_kills(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(backend, dir.path()).await;
    let config = hub_config(dir.path(), broker.bootstrap(), &store_url);
    let env = config_overrides(dir.path(), broker.bootstrap(), &store_url);
    // The API process creates the topics; the backlog waits on them.
    let api = start(&config, API_ONLY).await;
    let backlog = preload_backlog(dir.path(), broker.bootstrap(), 3_000, 20, 10).await;
    let store = api.store.clone();
    let spawn_router = || HubProcess::spawn(dir.path(), "", "router", &env);
    let mut router = spawn_router();
    eventually(Duration::from_secs(60), "the first tasks", || async {
        (task_count(&store).await > 0).then_some(())
    })
    .await;
    let want = (backlog.thefts + backlog.incidents) as u64;
    let mut kills = 0;
    let mut at_kills = Vec::new();
    for pause_ms in [250, 60, 150, 400, 100, 300, 200, 120] {
        // Killed while it routes: once its first batch is stored, a moment later.
        let before = task_count(&store).await;
        if before >= want {
            break;
        }
        eventually(
            Duration::from_secs(60),
            "the restarted router routing",
            || async { (task_count(&store).await > before).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        router.kill().await;
        kills += 1;
        at_kills.push(task_count(&store).await);
        router = spawn_router();
    }
    assert!(
        at_kills.iter().filter(|n| **n < want).count() >= 4,
        "kills fell while the backlog drained: tasks at each kill {at_kills:?}"
    );
    eventually(Duration::from_secs(180), "every task", || async {
        (task_count(&store).await >= want).then_some(())
    })
    .await;
    // Let any redelivery land before counting for good.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        task_count(&store).await,
        want,
        "exactly one task per incident"
    );
    let mut by_system: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (system, id) in &backlog.records {
        by_system.entry(system).or_default().push(id);
    }
    let mut piles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (system, ids) in by_system {
        let found = store.prior_outcomes(system, &ids).await.unwrap();
        for id in ids {
            match found.get(id) {
                Some(hub_store::PriorOutcome::Task { task_id }) => {
                    if let Some(pile) = id.strip_prefix("PILE-") {
                        let incident = pile.split('-').next().unwrap().to_owned();
                        piles.entry(incident).or_default().insert(task_id.clone());
                    }
                }
                other => panic!("{system}/{id} has no task: {other:?}"),
            }
        }
    }
    assert_eq!(piles.len(), backlog.incidents);
    for (incident, tasks) in &piles {
        assert_eq!(
            tasks.len(),
            1,
            "the reports of pile {incident} are in one task: {tasks:?}"
        );
    }
    println!(
        "{} records, {kills} kills of the router (tasks at each: {at_kills:?}), {want} tasks",
        backlog.records.len()
    );
    router.kill().await;
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_in_batches_through_repeated_kills_on_sqlite() {
    a_backlog_drains_in_batches_through_repeated_kills(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_in_batches_through_repeated_kills_on_postgres() {
    a_backlog_drains_in_batches_through_repeated_kills(Backend::Postgres).await;
}

/// Feed events the hub process listening on `port` has routed (all outcomes), from its
/// Prometheus metrics; `None` while it does not answer.
pub(crate) async fn routed_by(port: u16) -> Option<f64> {
    metric_sum(port, "hub_router_events_total").await
}

/// The feed partitions the process on `port` holds after its group's last rebalance.
pub(crate) async fn partitions_held(port: u16) -> Option<f64> {
    metric_sum(port, "hub_kafka_partitions_assigned").await
}

/// The sum of every series of `name` on the `/metrics` page of the process on `port`.
async fn metric_sum(port: u16, name: &str) -> Option<f64> {
    let body = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        body.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Two hub processes route one backlog in `group` assignment on one consumer group: both
/// take partitions, and when one is stopped gracefully (SIGTERM) midway, the other takes over
/// its partitions from the committed offsets. Every record ends as exactly one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_routing_processes_in_one_group_split_a_backlog_and_one_stops_midway() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let config = hub_config(dir.path(), broker.bootstrap(), &store_url);
    let api = start(&config, API_ONLY).await;
    let store = api.store.clone();
    let spawn = |port: u16| {
        let mut env = config_overrides(dir.path(), broker.bootstrap(), &store_url);
        env.retain(|(k, _)| k != "HUB__LISTEN");
        env.push(("HUB__LISTEN".into(), format!("\"127.0.0.1:{port}\"")));
        env.push(("HUB__KAFKA__ROUTER_ASSIGNMENT".into(), "\"group\"".into()));
        HubProcess::spawn(dir.path(), "", "router,api", &env)
    };
    let (port_a, port_b) = (free_port(), free_port());
    let a = spawn(port_a);
    let b = spawn(port_b);
    // The backlog goes in once both hold partitions: a backlog there before the second
    // joined could drain through the first alone.
    eventually(
        Duration::from_secs(60),
        "both processes holding feed partitions",
        || async {
            let (pa, pb) = (
                partitions_held(port_a).await?,
                partitions_held(port_b).await?,
            );
            (pa > 0.0 && pb > 0.0).then_some(())
        },
    )
    .await;
    let backlog = preload_backlog(dir.path(), broker.bootstrap(), 6_000, 0, 0).await;
    let want = backlog.thefts as u64;
    eventually(
        Duration::from_secs(90),
        "both processes routing",
        || async {
            let (ra, rb) = (routed_by(port_a).await?, routed_by(port_b).await?);
            (ra > 0.0 && rb > 0.0).then_some(())
        },
    )
    .await;
    let at_stop = task_count(&store).await;
    assert!(
        at_stop < want,
        "the backlog drained before the second process took partitions"
    );
    let routed_a = routed_by(port_a).await.unwrap_or_default();
    let status = a.terminate(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the stopped process exits cleanly within its drain limit: {status:?}"
    );
    let before_takeover = routed_by(port_b).await.unwrap_or_default();
    eventually(Duration::from_secs(180), "every task", || async {
        (task_count(&store).await >= want).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(task_count(&store).await, want, "one task per record");
    let ids: Vec<&str> = backlog.records.iter().map(|(_, id)| id.as_str()).collect();
    let found = store.prior_outcomes("police.backlog", &ids).await.unwrap();
    let missing: Vec<&&str> = ids.iter().filter(|id| !found.contains_key(**id)).collect();
    assert!(missing.is_empty(), "records without a task: {missing:?}");
    let routed_b = routed_by(port_b).await.unwrap_or_default();
    assert!(
        routed_b - before_takeover > 0.0,
        "the remaining process routed what was left"
    );
    println!(
        "{want} records: process A routed {routed_a} before its SIGTERM at {at_stop} tasks, \
         process B {routed_b} in all"
    );
    b.terminate(Duration::from_secs(30)).await;
    api.stop().await;
}

/// On PostgreSQL the routing pipeline writes through a pool of its own: while a backlog
/// drains, the server shows its connections as `<client_id>.routing`, never more than
/// `store.routing_connections`, and the process's shared pool (`<client_id>.shared`) never
/// runs the pipeline's task inserts, so the API's readers cannot take what it needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_routing_pipeline_writes_through_connections_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let database = store_url.rsplit('/').next().unwrap().to_owned();
    let mut config = hub_config(dir.path(), broker.bootstrap(), &store_url);
    config.store.routing_connections = 2;
    let roles = Roles {
        connectors: false,
        router: true,
        api: true,
    };
    let hub = start(&config, roles).await;
    let backlog = preload_backlog(dir.path(), broker.bootstrap(), 2_000, 0, 0).await;
    let routing_name = format!("{}.routing", config.kafka.client_id);
    let shared_name = format!("{}.shared", config.kafka.client_id);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_url())
        .await
        .unwrap();
    let want = backlog.thefts as u64;
    let (mut most_routing, mut routing_inserts, mut shared_seen) = (0usize, 0usize, false);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while task_count(&hub.store).await < want {
        assert!(
            std::time::Instant::now() < deadline,
            "the backlog did not drain"
        );
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT application_name, query FROM pg_stat_activity WHERE datname = $1",
        )
        .bind(&database)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let routing = rows.iter().filter(|(name, _)| *name == routing_name);
        most_routing = most_routing.max(routing.clone().count());
        routing_inserts += routing
            .filter(|(_, q)| q.starts_with("INSERT INTO tasks"))
            .count();
        for (name, query) in &rows {
            shared_seen |= *name == shared_name;
            assert!(
                !(*name == shared_name && query.starts_with("INSERT INTO tasks")),
                "the shared pool ran the pipeline's insert: {}",
                &query[..query.len().min(60)]
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(shared_seen, "the shared pool is named {shared_name}");
    assert!(
        (1..=2).contains(&most_routing),
        "the routing pool holds 1 to 2 connections, seen {most_routing}"
    );
    assert!(
        routing_inserts > 0,
        "the pipeline's inserts ran on {routing_name}"
    );
    hub.stop().await;
}
