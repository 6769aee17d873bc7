//! The SLA tracker against a real store and a running hub: a task left untouched warns,
//! breaches and climbs its community's ladder step by step, each step with its own deadline;
//! a joint case breaches only the unit that did not report in; after a crash every open
//! clock is back and what fell due meanwhile is raised once.
//!
//! The SLA policies here count in seconds (`config/sla` copied, `policies.toml` replaced) so
//! a whole ladder is climbed in a few seconds.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hub::config::HubConfig;
use hub::startup::{self, Roles, RunningHub};
use hub_tests::*;
use serde_json::{json, Value};

use crate::cases::{task, unit, Api};

const ROUTER_AND_API: Roles = Roles {
    connectors: false,
    router: true,
    api: true,
};

const ADMIN: &str = "demo-admin";

/// Sign-for in 4 s (warning at half), handling and verification in an hour; each ladder
/// step has 2 s; a joint-case unit has 3 s to report in.
const FAST_POLICIES: &str = r#"
version = "test-seconds"
calendar = "cn-mainland"
warning_fraction = 0.5

[default]
id = "drill"
name = "drill"
sign_for = "4 seconds"
handling = "1 hours"
verification = "1 hours"

[escalation]
default = "2 seconds"

[joint_case]
report_in = "3 seconds"
"#;

/// The shipped configuration folder with `policies.toml` replaced, in `dir/routing`.
pub fn routing_dir_with(dir: &Path, policies: &str) -> std::path::PathBuf {
    let routing = dir.join("routing");
    copy_dir(&workspace_root().join("config"), &routing);
    std::fs::write(routing.join("sla/policies.toml"), policies).expect("write policies");
    routing
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read config dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy config file");
        }
    }
}

/// The shipped hub configuration pointed at this test's broker, store and routing folder.
pub fn config_with_routing(
    dir: &Path,
    brokers: &str,
    store_url: &str,
    routing: &Path,
) -> HubConfig {
    hub::infra::telemetry::init_logging();
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("config/hub.toml")).expect("config/hub.toml");
    let mut overrides = config_overrides(dir, brokers, store_url);
    for (k, v) in &mut overrides {
        if k == "HUB__ROUTING__DIR" {
            *v = format!("\"{}\"", routing.display());
        }
    }
    HubConfig::parse(&text, &root.join("config/hub.toml"), &overrides).expect("test config")
}

struct Fixture {
    _dir: tempfile::TempDir,
    _broker: hub::infra::broker::EmbeddedBroker,
    hub: RunningHub,
    api: Api,
}

async fn fixture(policies: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let routing = routing_dir_with(dir.path(), policies);
    let config = config_with_routing(dir.path(), broker.bootstrap(), &url, &routing);
    let hub = startup::start(
        &config,
        ROUTER_AND_API,
        with_demo_tokens(Arc::new(|_: &str| None)),
    )
    .await
    .expect("hub starts");
    let api = Api {
        base: format!("http://{}", hub.api_addr.unwrap()),
        client: reqwest::Client::new(),
    };
    Fixture {
        _dir: dir,
        _broker: broker,
        hub,
        api,
    }
}

/// A task in 清泉社区 dispatched now to its workstation, stored as the router stores it
/// (with the clocks its dispatch starts).
async fn dispatch(hub: &RunningHub, source_id: &str) -> String {
    let t = task(
        source_id,
        hub_schemas::event::Department::UrbanManagement,
        "510504001",
        "510504001002",
        unit("510504001002.workstation", "workstation"),
        vec![],
    );
    let opening = hub.cases.open(&t);
    hub.store.create_task(&t, &opening).await.unwrap();
    t.task_id
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .with_timezone(&Utc)
}

fn clock_of<'a>(cases: &'a Value, kind: &Value) -> &'a Value {
    cases["clocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| &c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} clock in {}", cases["clocks"]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_task_warns_breaches_and_climbs_the_ladder_step_by_step() {
    let f = fixture(FAST_POLICIES).await;
    let id = dispatch(&f.hub, "UNTOUCHED-1").await;
    let path = format!("/api/v1/tasks/{id}/workflow");

    // The ladder of 清泉社区 has six steps of 2 s after a 4 s sign-for: the top is reached
    // about 16 s after dispatch.
    let cases = eventually(
        Duration::from_secs(40),
        "the case reaches the district",
        || async {
            let (_, w) = f.api.get(Some(ADMIN), &path).await;
            let done = w["history"].as_array()?.iter().any(|h| {
                h["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("top of its ladder"))
            });
            // The view reads clocks and history one after the other: wait until both
            // show the last alert.
            let top_alerted = w["clocks"].as_array()?.iter().any(|c| {
                c["kind"]["step"] == json!("district") && c["alerts"] == json!(["step_overdue"])
            });
            (done && top_alerted).then_some(w)
        },
    )
    .await;

    let history: Vec<&str> = cases["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["note"].as_str().unwrap_or(""))
        .collect();
    // In order: created, dispatched, warning, breach + grid worker, then every step overdue
    // and the next one, and at the top a step overdue with nowhere left to climb.
    let expected_steps = [
        "grid_worker",
        "workstation",
        "party_branch",
        "joint_meeting",
        "street",
        "district",
    ];
    let mut expected: Vec<String> = vec![
        "SLA warning: sign_for".into(),
        "SLA breach: sign_for".into(),
    ];
    for (i, step) in expected_steps.iter().enumerate() {
        expected.push(format!("escalated to {step}"));
        if i + 1 < expected_steps.len() {
            expected.push(format!("SLA step overdue: escalation:{step}"));
        }
    }
    expected.push("SLA step overdue: escalation:district".into());
    let after_dispatch = &history[2..];
    assert_eq!(after_dispatch.len(), expected.len(), "{history:#?}");
    for (note, want) in after_dispatch.iter().zip(&expected) {
        assert!(
            note.contains(want.as_str()),
            "expected {want:?}, got {note:?}\n{history:#?}"
        );
    }
    assert!(history.last().unwrap().contains("top of its ladder"));

    // Deadlines: the warning at half the sign-for limit, the breach at its deadline, each
    // within a second; every step gets its full 2 s from when it was raised.
    let entries = cases["history"].as_array().unwrap();
    let sign_for = clock_of(&cases, &json!({ "kind": "sign_for" }));
    let started = time(&sign_for["started_at"]);
    let deadline = time(&sign_for["deadline"]);
    assert_eq!((deadline - started).num_milliseconds(), 4_000);
    assert_eq!(
        (time(&sign_for["warning_at"]) - started).num_milliseconds(),
        2_000
    );
    let warned = time(&entries[2]["at"]);
    let breached = time(&entries[3]["at"]);
    let within_a_second = |at: DateTime<Utc>, due: DateTime<Utc>| {
        let late = (at - due).num_milliseconds();
        assert!(
            (0..=1_000).contains(&late),
            "raised {late} ms after it fell due"
        );
    };
    within_a_second(warned, time(&sign_for["warning_at"]));
    within_a_second(breached, deadline);
    assert_eq!(sign_for["alerts"], json!(["breach", "warning"]));

    let mut previous_deadline = deadline;
    for step in expected_steps {
        let clock = clock_of(
            &cases,
            &json!({ "kind": "escalation", "step": step, "cause": "sign_for" }),
        );
        let started = time(&clock["started_at"]);
        let step_deadline = time(&clock["deadline"]);
        within_a_second(started, previous_deadline);
        assert_eq!(
            (step_deadline - started).num_milliseconds(),
            2_000,
            "{step}"
        );
        assert_eq!(clock["alerts"], json!(["step_overdue"]), "{step}");
        previous_deadline = step_deadline;
    }
    assert_eq!(cases["state"]["escalation"], json!("district"));
    assert_eq!(cases["breached"], json!(true));
    // The handling clock (an hour) still runs: the case is still the workstation's.
    let handling = clock_of(&cases, &json!({ "kind": "handling", "stage": "handling" }));
    assert_eq!(handling["status"], json!("running"));

    // Nothing is raised twice, however long the tracker keeps running.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, again) = f.api.get(Some(ADMIN), &path).await;
    assert_eq!(again["history"].as_array().unwrap().len(), entries.len());
    // The breached task is listed as breached for its community.
    let (_, list) = f
        .api
        .get(
            Some(ADMIN),
            "/api/v1/console/tasks?community=510504001002&breached=true",
        )
        .await;
    assert_eq!(list["total"], json!(1));
    f.hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joint_case_breaches_only_the_unit_that_did_not_report_in() {
    let f = fixture(FAST_POLICIES).await;
    let id = dispatch(&f.hub, "JOINT-1").await;
    let path = format!("/api/v1/tasks/{id}/workflow");
    let (status, body) = f.api.act(ADMIN, &id, json!({ "action": "sign_for" })).await;
    assert_eq!(status, 200, "{body}");
    let units = [
        "510504001002.workstation",
        "510504001002.property",
        "510504001002.police_station",
        "510504001002.urban_management_squad",
    ];
    let (status, body) = f
        .api
        .act(
            ADMIN,
            &id,
            json!({
                "action": "convene_joint_meeting",
                "lead": { "unit": units[0], "part": "coordinate and report" },
                "co_handlers": [
                    { "unit": units[1], "part": "open the basement" },
                    { "unit": units[2], "part": "keep order" },
                    { "unit": units[3], "part": "remove the structure", "limit": "1 hours" },
                ],
                "note": "联席会议: 地下室违建",
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Three of the four units report in at once; the police station does not.
    for unit in [units[0], units[1], units[3]] {
        let (status, body) = f
            .api
            .act(ADMIN, &id, json!({ "action": "report_in", "unit": unit }))
            .await;
        assert_eq!(status, 200, "{unit}: {body}");
    }
    // A unit not called cannot report in; the refusal names the units called.
    let (status, body) = f
        .api
        .act(
            ADMIN,
            &id,
            json!({ "action": "report_in", "unit": "510504001002.sanitation" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not called"),
        "{body}"
    );

    let cases = eventually(
        Duration::from_secs(15),
        "the report-in deadline passes",
        || async {
            let (_, w) = f.api.get(Some(ADMIN), &path).await;
            let police = w["clocks"]
                .as_array()?
                .iter()
                .find(|c| c["kind"] == json!({ "kind": "report_in", "unit": units[2] }))?;
            police["alerts"]
                .as_array()?
                .iter()
                .any(|a| a == "breach")
                .then_some(w)
        },
    )
    .await;
    // Wait past the other deadlines too, so a wrong breach would have shown.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (_, workflow_later) = f.api.get(Some(ADMIN), &path).await;
    for (i, unit) in units.iter().enumerate() {
        let clock = clock_of(
            &workflow_later,
            &json!({ "kind": "report_in", "unit": unit }),
        );
        let breached = clock["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "breach");
        assert_eq!(breached, i == 2, "{unit}: {clock}");
        assert_eq!(
            clock["status"],
            json!(if i == 2 { "breached" } else { "stopped" }),
            "{unit}"
        );
    }
    let breaches: Vec<&str> = workflow_later["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str())
        .filter(|n| n.starts_with("SLA breach"))
        .collect();
    assert_eq!(breaches.len(), 1, "{breaches:?}");
    assert!(breaches[0].contains(units[2]), "{breaches:?}");
    // A joint-case breach names the unit and does not climb the ladder.
    assert!(
        breaches[0].contains("does not climb the ladder"),
        "{breaches:?}"
    );
    assert_eq!(cases["state"]["escalation"], Value::Null);
    assert!(cases["state"]["joint_case"]["participants"][2]["reported_in_at"].is_null());
    f.hub.stop().await;
}

/// Sign-for in 30 s (warning at half), handling in an hour; escalation steps of an hour so
/// that a breach raises one step and nothing more during the test.
const CRASH_POLICIES: &str = r#"
version = "test-crash"
calendar = "cn-mainland"
warning_fraction = 0.5

[default]
id = "drill"
name = "drill"
sign_for = "30 seconds"
handling = "1 hours"
verification = "1 hours"

[escalation]
default = "1 hours"

[joint_case]
report_in = "30 minutes"
"#;

async fn wait_healthy(base: &str) -> DateTime<Utc> {
    let client = reqwest::Client::new();
    eventually(
        Duration::from_secs(60),
        "the hub answers /healthz",
        || async {
            let resp = client.get(format!("{base}/healthz")).send().await.ok()?;
            resp.status().is_success().then(Utc::now)
        },
    )
    .await
}

/// A Prometheus gauge or counter of the hub at `base`, summed over its labels.
async fn metric(base: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Notes of the task's history entries raised by the SLA tracker, by kind.
async fn alerts_of(store: &dyn hub_store::TaskStore, id: &str) -> (usize, Vec<DateTime<Utc>>) {
    let history = store.task_history(id).await.unwrap();
    let warnings = history
        .iter()
        .filter(|h| {
            h.note
                .as_deref()
                .is_some_and(|n| n.starts_with("SLA warning"))
        })
        .count();
    let breaches = history
        .iter()
        .filter(|h| {
            h.note
                .as_deref()
                .is_some_and(|n| n.starts_with("SLA breach"))
        })
        .map(|h| h.at)
        .collect();
    (warnings, breaches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_every_open_clock_is_back_and_what_fell_due_is_raised_once() {
    const TASKS: usize = 500; // two open clocks each (sign-for and handling): 1,000 clocks
    const EARLY: usize = 100; // whose sign-for falls due while the hub is down
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let routing = routing_dir_with(dir.path(), CRASH_POLICIES);
    let store = hub_store::open(&url).await.unwrap();
    let state = std::sync::Arc::new(hub::context::routing::RoutingState::new(
        &routing,
        hub::context::routing::load(&routing).unwrap(),
    ));
    let cases = hub::cases::service::CaseService::new(store.clone(), state);

    // The early tasks were dispatched 17 s ago: warned at -2 s, due at +13 s. The others are
    // dispatched now: warned at +15 s, due at +30 s.
    let t0 = Utc::now();
    let mut early = Vec::new();
    let mut late = Vec::new();
    for i in 0..TASKS {
        let mut t = task(
            &format!("CRASH-{i}"),
            hub_schemas::event::Department::UrbanManagement,
            "510504001",
            "510504001002",
            unit("510504001002.workstation", "workstation"),
            vec![],
        );
        t.created_at = if i < EARLY {
            t0 - chrono::TimeDelta::seconds(17)
        } else {
            t0
        };
        let opening = cases.open(&t);
        assert_eq!(opening.clocks.len(), 2);
        store.create_task(&t, &opening).await.unwrap();
        if i < EARLY {
            early.push(t.task_id);
        } else {
            late.push(t.task_id);
        }
    }
    assert_eq!(store.open_clocks(0, 10_000).await.unwrap().len(), 2 * TASKS);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = config_overrides(dir.path(), broker.bootstrap(), &url);
    for (k, v) in &mut env {
        match k.as_str() {
            "HUB__ROUTING__DIR" => *v = format!("\"{}\"", routing.display()),
            "HUB__LISTEN" => *v = format!("\"127.0.0.1:{port}\""),
            _ => {}
        }
    }
    let hub = HubProcess::spawn(dir.path(), "", "router,api", &env);
    wait_healthy(&base).await;
    // The early tasks' warnings were overdue at start: raised at once.
    eventually(Duration::from_secs(20), "the overdue warnings", || async {
        let mut n = 0;
        for id in &early {
            n += alerts_of(store.as_ref(), id).await.0;
        }
        (n == EARLY).then_some(())
    })
    .await;
    hub.kill().await;
    let killed = Utc::now();
    assert!(
        killed < t0 + chrono::TimeDelta::seconds(13),
        "the hub must be killed before the early deadlines"
    );
    for id in &early {
        assert!(alerts_of(store.as_ref(), id).await.1.is_empty());
    }

    // Down past the early deadlines (+13 s) and the late warnings (+15 s).
    let down_until = t0 + chrono::TimeDelta::seconds(16);
    tokio::time::sleep((down_until - Utc::now()).to_std().unwrap_or_default()).await;
    let hub = HubProcess::spawn(dir.path(), "", "router,api", &env);
    let ready = wait_healthy(&base).await;
    let loaded = eventually(
        Duration::from_secs(20),
        "the tracker has loaded",
        || async { metric(&base, "hub_sla_clocks_loaded").await },
    )
    .await;
    assert_eq!(loaded as usize, 2 * TASKS, "every open clock is back");

    // Every early breach is raised at once (one escalation each), every late warning too.
    eventually(Duration::from_secs(20), "the overdue breaches", || async {
        let mut n = 0;
        for id in &early {
            n += alerts_of(store.as_ref(), id).await.1.len();
        }
        (n == EARLY).then_some(())
    })
    .await;
    for id in &early {
        let (warnings, breaches) = alerts_of(store.as_ref(), id).await;
        assert_eq!((warnings, breaches.len()), (1, 1), "{id}");
        let after_ready = (breaches[0] - ready).num_milliseconds();
        assert!(
            // At once, not at some later poll: a bound loose enough for a loaded 2-core machine.
            after_ready < 10_000,
            "{id}: raised {after_ready} ms after the restart"
        );
        let record = store.workflow(id).await.unwrap().unwrap();
        assert!(record.breached);
        assert_eq!(
            record.state.unwrap().escalation,
            Some(hub_router::city::LadderStep::GridWorker)
        );
    }
    // The late deadlines (+30 s) are kept from the reloaded clocks: each raised once (a
    // double is named by the check below, not hidden in this wait).
    eventually(Duration::from_secs(60), "the late breaches", || async {
        let mut raised = 0;
        for id in &late {
            raised += usize::from(!alerts_of(store.as_ref(), id).await.1.is_empty());
        }
        (raised == TASKS - EARLY).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for id in early.iter().chain(&late) {
        let (warnings, breaches) = alerts_of(store.as_ref(), id).await;
        assert_eq!((warnings, breaches.len()), (1, 1), "{id}: raised once each");
    }
    let detected = metric(&base, "hub_sla_alerts_total")
        .await
        .unwrap_or_default();
    assert!(detected >= (TASKS + EARLY) as f64, "{detected}");
    hub.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hub_processes_on_one_postgres_raise_each_alert_once() {
    const TASKS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let routing = routing_dir_with(dir.path(), FAST_POLICIES);
    let mut hubs = Vec::new();
    for n in 0..2 {
        let data = dir.path().join(format!("hub-{n}"));
        std::fs::create_dir_all(&data).unwrap();
        let config = config_with_routing(&data, broker.bootstrap(), &url, &routing);
        let hub = startup::start(
            &config,
            ROUTER_AND_API,
            with_demo_tokens(Arc::new(|_: &str| None)),
        )
        .await
        .expect("hub starts");
        hubs.push(hub);
    }
    let mut ids = Vec::new();
    for i in 0..TASKS {
        // Dispatched through either process's store handle.
        ids.push(dispatch(&hubs[i % 2], &format!("TWO-{i}")).await);
    }
    // Sign-for breaches 4 s after dispatch and climbs to the grid worker; its step is overdue
    // 2 s later and climbs to the workstation, and on up the ladder every 2 s: wait until
    // every task has reached the workstation step or gone past it (a poll over 40 tasks on a
    // busy machine can take longer than one step, so "all at the workstation at once" may
    // never be seen).
    use hub_router::city::LadderStep;
    let position = |s: LadderStep| LadderStep::ALL.iter().position(|l| *l == s);
    let store = hubs[0].store.clone();
    eventually(
        Duration::from_secs(30),
        "every task at the workstation step or above",
        || async {
            for id in &ids {
                let state = store.workflow(id).await.ok()??.state?;
                if state.escalation.and_then(position) < position(LadderStep::Workstation) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    for id in &ids {
        let notes: Vec<String> = store
            .task_history(id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|h| h.note)
            .collect();
        let count = |prefix: &str| notes.iter().filter(|n| n.starts_with(prefix)).count();
        assert_eq!(count("SLA warning"), 1, "{id}: {notes:#?}");
        assert_eq!(count("SLA breach"), 1, "{id}: {notes:#?}");
        assert_eq!(count("escalated to grid_worker"), 1, "{id}: {notes:#?}");
        assert_eq!(
            count("SLA step overdue: escalation:grid_worker"),
            1,
            "{id}: {notes:#?}"
        );
        assert_eq!(count("escalated to workstation"), 1, "{id}: {notes:#?}");
    }
    // Each alert names the process that raised it.
    let mut raisers = std::collections::BTreeSet::new();
    for id in &ids {
        for h in store.task_history(id).await.unwrap() {
            if h.note.as_deref().is_some_and(|n| n.starts_with("SLA ")) {
                raisers.insert(h.actor);
            }
        }
    }
    assert!(
        !raisers.is_empty() && raisers.iter().all(|r| r.starts_with("system:sla_tracker@")),
        "{raisers:?}"
    );
    for hub in hubs {
        hub.stop().await;
    }
}
