//! Supervision and health: a task of the hub that dies is restarted and `/healthz` shows it;
//! `/healthz` answers 503 while the store cannot be reached; SIGTERM stops `hub run` within
//! its drain limit with the routing offsets committed and the embedded broker stopped.

use std::time::{Duration, Instant};

use hub::startup::{self, Roles};
use hub_store::{PriorOutcome, TaskStore};
use hub_tests::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::connectors::{base, open311_config, open311_secrets, Env, API_KEY};

async fn healthz(base: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}/healthz")).await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Posts an Open311 request; its service request id.
async fn post_request(base: &str, address: &str) -> String {
    let body = hub_simulator::open311_client::form_encode(&[
        ("api_key".into(), API_KEY.into()),
        ("service_code".into(), "noise".into()),
        ("address_string".into(), address.into()),
        ("attribute[NOISE_SOURCE]".into(), "neighbours".into()),
    ]);
    let r = reqwest::Client::new()
        .post(format!("{base}/open311/v2/requests.json"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v[0]["service_request_id"].as_str().unwrap().to_owned()
}

async fn routed(store: &std::sync::Arc<dyn TaskStore>, id: &str) {
    eventually(Duration::from_secs(30), "the request routed", || async {
        matches!(
            store.prior_outcome("residents.open311", id).await.unwrap(),
            Some(PriorOutcome::Task { .. })
        )
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_task_is_restarted_and_healthz_shows_it() {
    let env = Env::new().await;
    let hub = startup::start(&open311_config(&env, None), Roles::ALL, open311_secrets())
        .await
        .expect("hub starts");
    let base = base(&hub);
    let address = crate::connectors::addresses()[5].name.clone();
    routed(&hub.store, &post_request(&base, &address).await).await;
    let (status, h) = healthz(&base).await;
    assert_eq!(status, 200, "{h}");
    for task in [
        "routing_pipeline",
        "sla_tracker",
        "outbox_relay:kafka",
        "http",
    ] {
        assert_eq!(h["tasks"][task]["state"], "running", "{task}: {h}");
        assert_eq!(h["tasks"][task]["restarts"], 0, "{task}: {h}");
    }

    for task in ["routing_pipeline", "sla_tracker", "outbox_relay:kafka"] {
        assert!(hub.supervisor.registry.kill(task), "{task} is supervised");
    }
    let h = eventually(Duration::from_secs(20), "the killed tasks back", || async {
        let (_, h) = healthz(&base).await;
        ["routing_pipeline", "sla_tracker", "outbox_relay:kafka"]
            .iter()
            .all(|t| h["tasks"][t]["state"] == "running" && h["tasks"][t]["restarts"] == 1)
            .then_some(h)
    })
    .await;
    for task in ["routing_pipeline", "sla_tracker", "outbox_relay:kafka"] {
        let cause = h["tasks"][task]["last_failure"]
            .as_str()
            .unwrap_or_default();
        assert!(cause.contains("killed"), "{task}: {h}");
        assert!(
            h["tasks"][task]["last_failure_at"].is_string(),
            "{task}: {h}"
        );
    }
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hub_supervisor_restarts_total{task=\"routing_pipeline\"} 1")),
        "{metrics}"
    );
    // The restarted pipeline routes, from where the committed offsets say.
    let id = post_request(&base, &address).await;
    routed(&hub.store, &id).await;
    let (status, _) = healthz(&base).await;
    assert_eq!(status, 200);
    hub.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_503_while_the_store_cannot_be_reached() {
    let env = Env::on(Backend::Postgres).await;
    let hub = startup::start(&open311_config(&env, None), Roles::ALL, open311_secrets())
        .await
        .expect("hub starts");
    let base = base(&hub);
    assert_eq!(healthz(&base).await.0, 200);
    let database = env.store_url.rsplit('/').next().unwrap().to_owned();
    let admin = postgres_url();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    // Nobody may connect, and the hub's connections are cut: the store is gone for it.
    sqlx::query(&format!(
        "ALTER DATABASE {database} ALLOW_CONNECTIONS false"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&database)
        .execute(&mut conn)
        .await
        .unwrap();
    let h = eventually(Duration::from_secs(30), "/healthz to say 503", || async {
        let (status, h) = healthz(&base).await;
        (status == 503).then_some(h)
    })
    .await;
    assert!(
        h["problems"][0]
            .as_str()
            .unwrap_or_default()
            .contains("the task store does not answer"),
        "{h}"
    );
    sqlx::query(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS true"))
        .execute(&mut conn)
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "/healthz back to 200", || async {
        (healthz(&base).await.0 == 200).then_some(())
    })
    .await;
    hub.stop().await;
    env.stop().await;
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: the command may hold spaces, so read after ')'.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or_default();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_hub_within_its_drain_limit_with_offsets_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store_url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env: Vec<(String, String)> = config_overrides(dir.path(), "", &store_url);
    env.retain(|(k, _)| k != "HUB__LISTEN");
    env.push(("HUB__LISTEN".into(), format!("\"127.0.0.1:{port}\"")));
    env.push(("HUB__SHUTDOWN_DRAIN_MS".into(), "5000".into()));
    env.push(("HUB_OPEN311_API_KEYS".into(), API_KEY.into()));
    // Empty brokers: `hub run` starts its own embedded broker.
    let hub = HubProcess::spawn(dir.path(), "", "connectors,router,api", &env);
    let base = format!("http://127.0.0.1:{port}");
    eventually(Duration::from_secs(60), "the hub up", || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
            .map(|_| ())
    })
    .await;
    let store = hub_store::open(&store_url).await.unwrap();
    let addresses = crate::connectors::addresses();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(post_request(&base, &addresses[i * 7 % addresses.len()].name).await);
    }
    for id in &ids {
        routed(&store, id).await;
    }
    let broker_pids = children_of(hub.pid());
    assert!(
        !broker_pids.is_empty(),
        "the embedded broker runs as a child"
    );

    let asked = Instant::now();
    let status = hub
        .terminate(Duration::from_secs(5 + 10))
        .await
        .expect("the hub stopped after SIGTERM");
    let took = asked.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    for pid in broker_pids {
        assert!(
            !alive(pid),
            "the embedded broker ({pid}) stopped with the hub"
        );
    }

    // The routing offsets were committed: the consumer group stands at the end of the feed.
    let broker = hub::infra::broker::EmbeddedBroker::start(&dir.path().join("broker"))
        .await
        .expect("the broker data is there");
    let bootstrap = broker.bootstrap().to_owned();
    let (committed, ends) = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "hub-router")
            .create()
            .unwrap();
        let topic = "hub.feed.residents";
        let mut tpl = TopicPartitionList::new();
        let mut ends = 0;
        for p in 0..3 {
            tpl.add_partition(topic, p);
            ends += consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1;
        }
        let committed: i64 = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        (committed, ends)
    })
    .await
    .unwrap();
    assert_eq!(ends, 20, "20 requests on the residents feed");
    assert_eq!(committed, ends, "every routed record's offset is committed");
    broker.stop().await;
}
