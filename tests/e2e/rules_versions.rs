//! Rules versions on a city's hub processes sharing PostgreSQL: `hub rules publish` and
//! `hub rules rollback` on one machine, every process routing with the active version within
//! seconds, every task recording the version it was routed with.

use std::path::Path;
use std::time::{Duration, Instant};

use hub_router::bundle::Bundle;
use hub_store::{PriorOutcome, TaskStore};
use hub_tests::*;
use serde_json::Value;

use crate::pipeline::{partitions_held, preload_named, routed_by};
use crate::routing::copy_dir;

/// `hub <args>` against the store at `store_url`; success and what it printed.
async fn hub_cli(store_url: &str, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
        .args(args)
        .arg("--config")
        .arg(workspace_root().join("config/hub.toml"))
        .env("HUB__STORE__URL", format!("\"{store_url}\""))
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run the hub command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn version_of(port: u16) -> Option<String> {
    let v: Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["rules_version"].as_str().map(str::to_owned)
}

/// The shipped configuration with thefts (`police.theft`) co-handled by the residents'
/// committee, and its rule test saying so.
fn candidate(dir: &Path) -> std::path::PathBuf {
    let to = dir.join("candidate");
    copy_dir(&workspace_root().join("config"), &to);
    let edit = |file: &str, from: &str, with: &str| {
        let path = to.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} holds {from:?}");
        std::fs::write(&path, text.replacen(from, with, 1)).unwrap();
    };
    edit(
        "rules/20-police.toml",
        "id = \"police.theft\"\ndescription = \"Thefts and burglaries stay with the community police office\"\nlead = [\"police_station\"]\n",
        "id = \"police.theft\"\ndescription = \"Thefts and burglaries: the community police office, the residents' committee helping\"\nlead = [\"police_station\"]\nco_handlers = [\"residents_committee\"]\n",
    );
    edit(
        "rules/tests/police.toml",
        "lead = \"510504001001.police_station\"\nco_handlers = []",
        "lead = \"510504001001.police_station\"\nco_handlers = [\"510504001001.residents_committee\"]",
    );
    to
}

/// The version and co-handler roles of the task each theft `<prefix>-<n>` became.
async fn routed_thefts(
    store: &std::sync::Arc<dyn TaskStore>,
    prefix: &str,
    n: usize,
) -> Vec<(String, Vec<String>)> {
    let ids: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let outcomes = store.prior_outcomes("police.backlog", &refs).await.unwrap();
    let mut out = Vec::new();
    for id in &ids {
        let Some(PriorOutcome::Task { task_id }) = outcomes.get(id) else {
            panic!("theft {id} became no task: {:?}", outcomes.get(id));
        };
        let task = store.get_task(task_id).await.unwrap().unwrap();
        let roles = task
            .fields
            .co_handlers
            .iter()
            .map(|u| u.role.to_string())
            .collect();
        out.push((task.fields.rules_version.clone(), roles));
    }
    out
}

/// 签收 of the task theft `source_id` became, by its lead unit's staff, through the case
/// workflow as the API applies it; its task id.
async fn sign_for(store: &std::sync::Arc<dyn TaskStore>, source_id: &str) -> String {
    let Some(PriorOutcome::Task { task_id }) = store
        .prior_outcomes("police.backlog", &[source_id])
        .await
        .unwrap()
        .remove(source_id)
    else {
        panic!("{source_id} is a task");
    };
    let task = store.get_task(&task_id).await.unwrap().unwrap();
    let lead = task.fields.lead_unit.expect("a theft has a lead unit");
    let dir = workspace_root().join("config");
    let loaded = hub::context::routing::load(&dir).unwrap();
    let routing = std::sync::Arc::new(hub::context::routing::RoutingState::new(&dir, loaded));
    let cases = hub::cases::service::CaseService::new(store.clone(), routing);
    cases
        .act(
            &task_id,
            hub_cases::lifecycle::Action::SignFor.into(),
            &hub_cases::Actor::person("民警", Some(&lead.unit_id)),
            chrono::Utc::now(),
            None,
        )
        .await
        .unwrap();
    task_id
}

/// Publish and roll back on two hub processes sharing PostgreSQL: both route with the new
/// version within seconds of `hub rules publish` and with the old one after `hub rules
/// rollback`; a candidate whose rule tests fail is refused and changes nothing; every task
/// records the version it was routed with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_follow_publish_and_rollback_through_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(Backend::Postgres, dir.path()).await;
    let store = hub_store::open(&store_url).await.unwrap();
    let spawn = |port: u16| {
        let mut env = config_overrides(dir.path(), broker.bootstrap(), &store_url);
        env.retain(|(k, _)| k != "HUB__LISTEN");
        env.push(("HUB__LISTEN".into(), format!("\"127.0.0.1:{port}\"")));
        env.push(("HUB__KAFKA__ROUTER_ASSIGNMENT".into(), "\"group\"".into()));
        env.push(("HUB__ROUTING__SOURCE".into(), "\"store\"".into()));
        env.push(("HUB__ROUTING__RELOAD_CHECK_MS".into(), "500".into()));
        HubProcess::spawn(dir.path(), "", "router,api", &env)
    };
    let (port_a, port_b) = (free_port(), free_port());
    let a = spawn(port_a);
    let b = spawn(port_b);
    eventually(
        Duration::from_secs(60),
        "both processes holding feed partitions",
        || async {
            let held = (
                partitions_held(port_a).await?,
                partitions_held(port_b).await?,
            );
            (held.0 > 0.0 && held.1 > 0.0).then_some(())
        },
    )
    .await;
    // The first start published the shipped folder as the first version.
    let shipped = Bundle::read(&workspace_root().join("config"))
        .unwrap()
        .digest();
    let active = store.rules_activations(1).await.unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].version, shipped);
    assert_eq!(version_of(port_a).await.as_deref(), Some(shipped.as_str()));
    assert_eq!(version_of(port_b).await.as_deref(), Some(shipped.as_str()));

    // A candidate that fails its own rule tests is refused; nothing changes.
    let broken = candidate(dir.path());
    std::fs::write(
        broken.join("rules/tests/police.toml"),
        std::fs::read_to_string(workspace_root().join("config/rules/tests/police.toml")).unwrap(),
    )
    .unwrap();
    let (ok, out) = hub_cli(
        &store_url,
        &[
            "rules",
            "publish",
            "--dir",
            broken.to_str().unwrap(),
            "--author",
            "王科长",
            "--message",
            "试一下",
        ],
    )
    .await;
    assert!(!ok && out.contains("rule tests failed"), "{out}");
    assert_eq!(store.rules_versions().await.unwrap().len(), 1);
    std::fs::remove_dir_all(&broken).unwrap();

    let candidate = candidate(dir.path());
    let (ok, out) = hub_cli(
        &store_url,
        &[
            "rules",
            "publish",
            "--dir",
            candidate.to_str().unwrap(),
            "--author",
            "王科长",
            "--message",
            "盗窃案件请居委会协办",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let new = Bundle::read(&candidate).unwrap().digest();
    assert!(out.contains(&format!("published {new}")), "{out}");
    assert!(
        out.contains("+co_handlers = [\"residents_committee\"]"),
        "the diff: {out}"
    );
    let published = Instant::now();
    eventually(
        Duration::from_secs(15),
        "both processes on the new version",
        || async {
            let v = (version_of(port_a).await?, version_of(port_b).await?);
            (v.0 == new && v.1 == new).then_some(())
        },
    )
    .await;
    println!(
        "both processes routed with {new} {:?} after publish",
        published.elapsed()
    );

    let before = (
        routed_by(port_a).await.unwrap_or_default(),
        routed_by(port_b).await.unwrap_or_default(),
    );
    preload_named(dir.path(), broker.bootstrap(), "PUBLISHED", 200, 0, 0).await;
    eventually(Duration::from_secs(60), "the thefts routed", || async {
        let r = (routed_by(port_a).await?, routed_by(port_b).await?);
        (r.0 + r.1 - before.0 - before.1 >= 200.0).then_some(())
    })
    .await;
    let after = (
        routed_by(port_a).await.unwrap_or_default(),
        routed_by(port_b).await.unwrap_or_default(),
    );
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "both processes routed some: {before:?} → {after:?}"
    );
    for (version, roles) in routed_thefts(&store, "PUBLISHED", 200).await {
        assert_eq!(version, new);
        assert_eq!(roles, ["residents_committee"]);
    }

    let (ok, out) = hub_cli(
        &store_url,
        &[
            "rules",
            "rollback",
            "--author",
            "李主任",
            "--message",
            "协办安排未谈妥，先退回",
        ],
    )
    .await;
    assert!(
        ok && out.contains(&format!("{shipped} is the active version again")),
        "{out}"
    );
    let rolled = Instant::now();
    eventually(
        Duration::from_secs(15),
        "both processes back on the old version",
        || async {
            let v = (version_of(port_a).await?, version_of(port_b).await?);
            (v.0 == shipped && v.1 == shipped).then_some(())
        },
    )
    .await;
    println!(
        "both processes routed with {shipped} {:?} after rollback",
        rolled.elapsed()
    );
    preload_named(dir.path(), broker.bootstrap(), "ROLLED-BACK", 200, 0, 0).await;
    eventually(Duration::from_secs(60), "the thefts routed", || async {
        let r = (routed_by(port_a).await?, routed_by(port_b).await?);
        (r.0 + r.1 - after.0 - after.1 >= 200.0).then_some(())
    })
    .await;
    for (version, roles) in routed_thefts(&store, "ROLLED-BACK", 200).await {
        assert_eq!(version, shipped);
        assert!(roles.is_empty(), "{roles:?}");
    }
    // A rollback for new events only leaves the open tasks as they were routed.
    for (version, roles) in routed_thefts(&store, "PUBLISHED", 200).await {
        assert_eq!(
            (version, roles),
            (new.clone(), vec!["residents_committee".to_owned()])
        );
    }
    // Asked to, the active version re-routes the open tasks nobody signed for (改派): one
    // signed for by its police station meanwhile stays as it is.
    sign_for(&store, "PUBLISHED-0").await;
    let (ok, out) = hub_cli(
        &store_url,
        &[
            "rules",
            "publish",
            "--dir",
            workspace_root().join("config").to_str().unwrap(),
            "--author",
            "李主任",
            "--message",
            "在办的也按原安排",
            "--reroute-unsigned",
        ],
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "re-routed by {shipped}: 199; unchanged: 200; left as they are: 0"
        )),
        "{out}"
    );
    for (i, (version, roles)) in routed_thefts(&store, "PUBLISHED", 200)
        .await
        .into_iter()
        .enumerate()
    {
        if i == 0 {
            assert_eq!(
                (version, roles),
                (new.clone(), vec!["residents_committee".to_owned()])
            );
        } else {
            assert_eq!((version.as_str(), roles.len()), (shipped.as_str(), 0));
        }
    }
    let rerouted = store
        .prior_outcomes("police.backlog", &["PUBLISHED-1"])
        .await
        .unwrap();
    let Some(PriorOutcome::Task { task_id }) = rerouted.get("PUBLISHED-1") else {
        panic!("PUBLISHED-1 is a task");
    };
    let history = store.task_history(task_id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.actor, "李主任");
    assert!(
        last.note
            .as_deref()
            .unwrap_or("")
            .contains(&format!("by rules version {shipped}")),
        "{last:?}"
    );

    let (ok, out) = hub_cli(&store_url, &["rules", "versions"]).await;
    assert!(ok, "{out}");
    for line in [
        "盗窃案件请居委会协办",
        "协办安排未谈妥，先退回",
        "rollback",
        "首个版本",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    let (ok, out) = hub_cli(&store_url, &["audit", "verify"]).await;
    assert!(
        ok && out.contains("2 rules version(s), 3 activation(s)") && out.contains("OK:"),
        "publishing the active version again adds no activation: {out}"
    );
    a.terminate(Duration::from_secs(30)).await;
    b.terminate(Duration::from_secs(30)).await;
}

/// A hub routing 300 preloaded thefts from the shipped folder, on SQLite: the seeded history
/// the replays run over. Returns the running hub and its store's URL.
async fn seeded(
    dir: &Path,
) -> (
    hub::infra::broker::EmbeddedBroker,
    hub::startup::RunningHub,
    String,
) {
    let broker = start_broker(dir).await;
    let store_url = fresh_store_url(Backend::Sqlite, dir).await;
    let config = hub_config(dir, broker.bootstrap(), &store_url);
    let hub = hub::startup::start(
        &config,
        hub::startup::Roles {
            connectors: false,
            router: true,
            api: false,
        },
        std::sync::Arc::new(|_: &str| None),
    )
    .await
    .expect("hub starts");
    preload_named(dir, broker.bootstrap(), "SEED", SEEDED, 0, 0).await;
    let store = hub.store.clone();
    eventually(Duration::from_secs(60), "every theft routed", || async {
        let ids: Vec<String> = (0..SEEDED).map(|i| format!("SEED-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let done = store.prior_outcomes("police.backlog", &refs).await.ok()?;
        (done.len() == SEEDED).then_some(())
    })
    .await;
    (broker, hub, store_url)
}

const SEEDED: usize = 300;

/// `hub rules replay --format json` over today (CST) of the store at `store_url`.
async fn replay(store_url: &str, candidate: &Path) -> Value {
    let today = (chrono::Utc::now() + chrono::TimeDelta::hours(8)).date_naive();
    let (from, to) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    let out = tokio::process::Command::new(workspace_root().join("target/debug/hub"))
        .args(["rules", "replay", "--format", "json", "--candidate"])
        .arg(candidate)
        .args([
            "--from",
            &from.to_string(),
            "--to",
            &to.to_string(),
            "--config",
        ])
        .arg(workspace_root().join("config/hub.toml"))
        .env("HUB__STORE__URL", format!("\"{store_url}\""))
        .env(
            "HUB__ROUTING__DIR",
            format!("\"{}\"", workspace_root().join("config").display()),
        )
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run hub rules replay");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("events/s"), "the rate is printed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

/// Replays over a seeded history: a candidate identical to what routed it reports nothing;
/// one that hands thefts to the community workstation reports exactly the thefts the police
/// stations led, each unit's load moving by as many; one more holiday moves exactly the
/// deadlines that run across that day, by one working day, and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_over_a_seeded_history_report_exactly_what_a_candidate_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, hub, store_url) = seeded(dir.path()).await;
    let store = hub.store.clone();
    let tasks = store
        .list_tasks(&hub_store::TaskFilter {
            limit: 1000,
            ..hub_store::TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(tasks.len(), SEEDED, "every seeded theft is a task here");

    // 1. The same files: nothing moves.
    let same = dir.path().join("same");
    copy_dir(&workspace_root().join("config"), &same);
    let r = replay(&store_url, &same).await;
    assert_eq!(
        (r["events"].as_u64(), r["moved"].as_u64()),
        (Some(SEEDED as u64), Some(0)),
        "{r:#}"
    );

    // 2. Thefts go to the community's workstation instead of its police station.
    let moved = dir.path().join("theft-to-workstation");
    copy_dir(&workspace_root().join("config"), &moved);
    let edit = |file: &str, from: &str, with: &str| {
        let path = moved.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} holds {from:?}");
        std::fs::write(&path, text.replace(from, with)).unwrap();
    };
    edit(
        "rules/20-police.toml",
        "id = \"police.theft\"\ndescription = \"Thefts and burglaries stay with the community police office\"\nlead = [\"police_station\"]",
        "id = \"police.theft\"\ndescription = \"Thefts go to the community workstation\"\nlead = [\"workstation\"]",
    );
    edit(
        "rules/tests/police.toml",
        "lead = \"510504001001.police_station\"\nco_handlers = []",
        "lead = \"510504001001.workstation\"\nco_handlers = []",
    );
    edit(
        "rules/tests/police.toml",
        "rule = \"police.theft\"\ncategory = \"E0604\"\nlead = \"police_station\"",
        "rule = \"police.theft\"\ncategory = \"E0604\"\nlead = \"workstation\"",
    );
    let mut expected: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut theirs = 0u64;
    for t in &tasks {
        let Some(lead) = &t.fields.lead_unit else {
            continue;
        };
        if t.fields.explanation.rule_id != "police.theft"
            || lead.role.to_string() != "police_station"
        {
            continue;
        }
        theirs += 1;
        let community = t.fields.place.community_code.clone().unwrap();
        expected.entry(lead.unit_id.clone()).or_default().0 += 1;
        expected
            .entry(format!("{community}.workstation"))
            .or_default()
            .1 += 1;
    }
    assert!(theirs > 0, "some thefts were led by police stations");
    let r = replay(&store_url, &moved).await;
    assert_eq!(r["moved"].as_u64(), Some(theirs), "{r:#}");
    assert_eq!(
        r["by_change"],
        serde_json::json!({"lead": theirs}),
        "only the lead changes"
    );
    let load: std::collections::BTreeMap<String, (u64, u64)> = r["unit_load"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v["before"].as_u64().unwrap(), v["after"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(load, expected);
    assert!(
        r["community_load"].as_object().unwrap().is_empty(),
        "no task changes community"
    );

    // 3. One more holiday, on the day the earliest handling deadline falls on.
    let mut deadlines: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = Vec::new();
    for t in &tasks {
        for c in store.task_clocks(&t.fields.task_id).await.unwrap() {
            deadlines.push((
                t.fields.source_id.clone(),
                c.clock.kind.to_string(),
                c.clock.deadline().unwrap(),
            ));
        }
    }
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let day = deadlines
        .iter()
        .filter(|(_, kind, _)| kind.starts_with("handling"))
        .map(|(_, _, d)| d.with_timezone(&cst).date_naive())
        .min()
        .unwrap();
    let day_starts = day
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(cst)
        .unwrap();
    let holiday = dir.path().join("one-more-holiday");
    copy_dir(&workspace_root().join("config"), &holiday);
    let calendar = holiday.join("sla/calendars/cn-mainland.toml");
    let mut text = std::fs::read_to_string(&calendar).unwrap();
    let year = chrono::Datelike::year(&day);
    if !text.contains(&format!("years = [{year}]")) {
        text = text.replace("years = [2026]", &format!("years = [2026, {year}]"));
    }
    text.push_str(&format!(
        "\n[[holidays]]\nname = \"测试\"\noff = [\"{day}\"]\n"
    ));
    std::fs::write(&calendar, text).unwrap();
    // Independently of the replay: the clocks whose deadline lies after the day begins.
    let crossing: std::collections::BTreeSet<(String, String)> = deadlines
        .iter()
        .filter(|(_, _, d)| *d > day_starts)
        .map(|(id, kind, _)| (id.clone(), kind.clone()))
        .collect();
    let r = replay(&store_url, &holiday).await;
    let mut shifted = std::collections::BTreeSet::new();
    for m in r["moved_events"].as_array().unwrap() {
        assert_eq!(m["changed"], serde_json::json!(["deadlines"]), "{m:#}");
        let (before, after) = (
            m["before"]["deadlines"].as_object().unwrap(),
            m["after"]["deadlines"].as_object().unwrap(),
        );
        for (kind, b) in before {
            let b = chrono::DateTime::parse_from_rfc3339(b.as_str().unwrap()).unwrap();
            let a = chrono::DateTime::parse_from_rfc3339(after[kind].as_str().unwrap()).unwrap();
            if a != b {
                // One working day later: the same hour of the next working day.
                assert!(a > b && a.time() == b.time(), "{kind}: {b} → {a}");
                shifted.insert((m["source_id"].as_str().unwrap().to_owned(), kind.clone()));
            }
        }
    }
    assert!(!crossing.is_empty());
    assert_eq!(shifted, crossing, "exactly the deadlines across {day} move");
    hub.stop().await;
}

/// An administrator replays an earlier version in the console and sees the moved tasks: the
/// hub routes with a version that has the residents' committee co-handle thefts; a replay of
/// the version before it lists exactly the thefts that committee co-handles, each losing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_replays_a_version_in_the_console_and_sees_the_moved_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let store_url = fresh_store_url(Backend::Sqlite, dir.path()).await;
    let mut config = hub_config(dir.path(), broker.bootstrap(), &store_url);
    config.routing.source = hub::config::RulesSource::Store;
    config.routing.reload_check_ms = 200;
    let hub = hub::startup::start(
        &config,
        hub::startup::Roles {
            connectors: false,
            router: true,
            api: true,
        },
        with_demo_tokens(std::sync::Arc::new(|_: &str| None)),
    )
    .await
    .expect("hub starts");
    let base = format!("http://{}", hub.api_addr.unwrap());
    let store = hub.store.clone();
    let shipped = Bundle::read(&workspace_root().join("config"))
        .unwrap()
        .digest();
    let published = hub::context::rules_versions::publish(
        &*store,
        &candidate(dir.path()),
        "王科长",
        "盗窃案件请居委会协办",
    )
    .await
    .unwrap();
    let hub::context::rules_versions::Published::Activated { activation, .. } = published else {
        panic!("the candidate is a new version");
    };
    let port = hub.api_addr.unwrap().port();
    eventually(
        Duration::from_secs(15),
        "the hub on the new version",
        || async { (version_of(port).await? == activation.version).then_some(()) },
    )
    .await;
    preload_named(dir.path(), broker.bootstrap(), "CONSOLE", 40, 0, 0).await;
    let routed = eventually(Duration::from_secs(60), "the thefts routed", || async {
        let ids: Vec<String> = (0..40).map(|i| format!("CONSOLE-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let done = store.prior_outcomes("police.backlog", &refs).await.ok()?;
        (done.len() == 40).then_some(())
    });
    routed.await;
    let co_handled: std::collections::BTreeSet<String> = routed_thefts(&store, "CONSOLE", 40)
        .await
        .into_iter()
        .zip(0..)
        .filter(|((_, roles), _)| roles.contains(&"residents_committee".to_owned()))
        .map(|(_, i)| format!("CONSOLE-{i}"))
        .collect();
    assert!(!co_handled.is_empty());

    let b = hub_tests::browser::Browser::start("console-rules-replay").await;
    b.sign_in(&base, "demo-admin").await;
    b.goto(&format!("{base}/admin")).await;
    b.execute(
        "document.querySelector('#replay-candidate').value = arguments[0];",
        vec![Value::from(shipped.clone())],
    )
    .await;
    let button = b.find("#rules-replay form button[type=submit]").await;
    b.click(&button).await;
    let text = b
        .wait_text("#rules-replay-result", "回放结果", Duration::from_secs(20))
        .await;
    assert!(
        text.contains(&format!(
            "按 {shipped} 回放 40 件事件，其中 {} 件",
            co_handled.len()
        )),
        "{text}"
    );
    let rows = b
        .execute(
            "return [...document.querySelectorAll('#rules-replay-result tr[data-source-id]')]\
             .map(r => [r.dataset.sourceId, r.cells[1].innerText, r.cells[2].innerText, r.cells[3].innerText]);",
            vec![],
        )
        .await;
    let rows = rows.as_array().unwrap();
    let listed: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| r[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed, co_handled,
        "exactly the thefts the committee co-handles"
    );
    for r in rows {
        assert_eq!(r[1], "协办单位", "{r}");
        let (before, after) = (r[2].as_str().unwrap(), r[3].as_str().unwrap());
        assert!(
            before.contains("协办：") && before.contains("居民委员会"),
            "{before}"
        );
        assert!(!after.contains("协办："), "{after}");
    }
    b.execute(
        "document.querySelector('#rules-replay').scrollIntoView();",
        vec![],
    )
    .await;
    b.save_screenshot("console-rules-replay").await;
    // A blank why is refused (the API, as the form's 启用此版本 uses it).
    let refused = reqwest::Client::new()
        .post(format!("{base}/api/v1/rules/activate"))
        .bearer_auth("demo-admin")
        .json(&serde_json::json!({"version": shipped, "message": " "}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    // One co-handled theft is signed for by its police station meanwhile.
    let signed_source = co_handled.iter().next().unwrap().clone();
    sign_for(&store, &signed_source).await;
    // Satisfied, the administrator activates the version replayed from the console and has
    // the open tasks nobody signed for re-routed; the hub routes with it within a poll.
    b.execute(
        "window.confirm = () => true;\
         document.querySelector('#activate-message').value = '回放看过，退回原版本';\
         document.querySelector('input[name=open_tasks][value=reroute_unsigned]').checked = true;",
        vec![],
    )
    .await;
    let activate = b
        .find("#rules-replay form button[hx-post='/admin/rules/activate']")
        .await;
    b.click(&activate).await;
    let text = b
        .wait_text(
            "#rules-replay-result",
            "已启用规则版本",
            Duration::from_secs(20),
        )
        .await;
    assert!(
        text.contains(&format!(
            "尚未签收的在办任务 39 件：按新版本改派 {} 件，分派不变 {} 件，保持原状 0 件",
            co_handled.len() - 1,
            40 - co_handled.len()
        )),
        "{text}"
    );
    assert!(
        text.contains("（不变）；协办 ") && text.contains("居民委员会 → 无"),
        "each re-routed task in words: {text}"
    );
    b.save_screenshot("console-rules-activate-reroute").await;
    eventually(
        Duration::from_secs(15),
        "the hub back on the shipped version",
        || async { (version_of(port).await? == shipped).then_some(()) },
    )
    .await;
    for ((version, roles), i) in routed_thefts(&store, "CONSOLE", 40)
        .await
        .into_iter()
        .zip(0..)
    {
        let source = format!("CONSOLE-{i}");
        if source == signed_source {
            assert_eq!(roles, ["residents_committee"], "signed for: it stays");
            assert_eq!(version, activation.version);
        } else {
            assert!(roles.is_empty(), "{source}: {roles:?}");
            assert_eq!(version, shipped, "{source}");
        }
    }
    let last = store.rules_activations(1).await.unwrap().remove(0);
    assert_eq!(
        (last.version.as_str(), last.author.as_str()),
        (shipped.as_str(), "admin")
    );
    b.goto(&format!("{base}/admin")).await;
    b.execute("document.querySelector('#trail').scrollIntoView();", vec![])
        .await;
    b.save_screenshot("console-trail").await;
    // The replay and the activation are in the trail, as the administrator's actions.
    let trail = store
        .actions(&hub_store::ActionQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        trail
            .iter()
            .any(|a| a.action == "rules.replay" && a.actor == "admin" && a.target == shipped),
        "{trail:?}"
    );
    assert!(
        trail
            .iter()
            .any(|a| a.action == "rules.activate" && a.outcome == 200 && a.target == shipped),
        "{trail:?}"
    );
    hub.stop().await;
}
