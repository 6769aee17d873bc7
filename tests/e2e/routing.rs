//! The routing core through the running pipeline: duplicates from several departments become
//! one task, a non-admitted category goes back to its department, and a broken rules change
//! is refused while the hub keeps routing with the previous version.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hub::infra::kafka::Kafka;
use hub::startup::{self, Roles, RunningHub};
use hub_router::routing::RoutingDecision;
use hub_schemas::codec::{value_subject, Codec};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use hub_schemas::registry::{LocalRegistry, Registry};
use hub_simulator::generator::{load_addresses, Address};
use hub_store::{PriorOutcome, TaskFilter};
use hub_tests::*;
use serde_json::Value;

const ROUTER_AND_API: Roles = Roles {
    connectors: false,
    router: true,
    api: true,
};

async fn start_hub(dir: &Path, brokers: &str, routing_dir: Option<&Path>) -> RunningHub {
    let store_url = fresh_store_url(Backend::Sqlite, dir).await;
    let mut config = hub_config(dir, brokers, &store_url);
    if let Some(routing) = routing_dir {
        config.routing.dir = routing.to_owned();
        config.routing.reload_check_ms = 200;
    }
    startup::start(
        &config,
        ROUTER_AND_API,
        with_demo_tokens(Arc::new(|_: &str| None)),
    )
    .await
    .expect("hub starts")
}

/// Produces events to their department's feed topic, as a connector would.
pub(crate) struct Feed {
    kafka: Kafka,
    codec: Codec,
}

impl Feed {
    pub(crate) fn new(dir: &Path, brokers: &str) -> Feed {
        let registry = LocalRegistry::open(dir.join("schema-ids.json")).unwrap();
        Feed {
            kafka: Kafka::connect(brokers, "test-feed").unwrap(),
            codec: Codec::new(Registry::from(registry)),
        }
    }

    pub(crate) async fn publish(&self, event: &CivicEvent) {
        let topic = format!("hub.feed.{}", event.department.as_str().replace('_', "-"));
        let payload = self
            .codec
            .encode(&value_subject(&topic), event)
            .await
            .unwrap();
        self.kafka
            .produce(&topic, &event.source_id, &payload, &[])
            .await
            .unwrap();
    }
}

pub(crate) fn event(
    department: Department,
    source_id: &str,
    code: &str,
    point: GeoPoint,
    at: DateTime<Utc>,
) -> CivicEvent {
    let source_system = format!("{}.test", department.as_str());
    CivicEvent {
        event_id: CivicEvent::derive_id(&source_system, source_id),
        source_system,
        source_id: source_id.to_owned(),
        department,
        category_code: code.to_owned(),
        category_name: None,
        occurred_at: at,
        received_at: at,
        location: Location {
            point: Some(point),
            address: None,
            grid_code: None,
        },
        description: "路口垃圾堆积".to_owned(),
        attributes: Default::default(),
        reporter: None,
        raw_ref: None,
    }
}

pub(crate) fn addresses() -> Vec<Address> {
    load_addresses(&workspace_root().join("config/city/addresses.csv")).unwrap()
}

/// Metres east of a point, in degrees of longitude.
fn east(p: GeoPoint, metres: f64) -> GeoPoint {
    GeoPoint {
        lon: p.lon + metres / (111_320.0 * p.lat.to_radians().cos()),
        lat: p.lat,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_garbage_pile_reported_three_times_is_one_task_with_three_reports() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let hub = start_hub(dir.path(), broker.bootstrap(), None).await;
    let feed = Feed::new(dir.path(), broker.bootstrap());
    let at = &addresses()[3];
    let here = GeoPoint {
        lon: at.lon,
        lat: at.lat,
    };
    let t0 = Utc::now() - TimeDelta::minutes(30);
    // Sanitation first, then a resident 20 m away, then urban management 35 m away.
    feed.publish(&event(
        Department::Sanitation,
        "HW-1",
        "EXPOSED_GARBAGE",
        here,
        t0,
    ))
    .await;
    let first = eventually(Duration::from_secs(30), "the first task", || async {
        hub.store
            .prior_outcome("sanitation.test", "HW-1")
            .await
            .unwrap()
    })
    .await;
    let PriorOutcome::Task { task_id } = first else {
        panic!("expected a task, got {first:?}")
    };
    feed.publish(&event(
        Department::Residents,
        "R-1",
        "garbage",
        east(here, 20.0),
        t0 + TimeDelta::minutes(10),
    ))
    .await;
    feed.publish(&event(
        Department::UrbanManagement,
        "CG-1",
        "010102",
        east(here, 35.0),
        t0 + TimeDelta::minutes(20),
    ))
    .await;
    // A garbage pile 2 km away is another incident.
    feed.publish(&event(
        Department::Sanitation,
        "HW-2",
        "EXPOSED_GARBAGE",
        east(here, 2000.0),
        t0,
    ))
    .await;

    let reports = eventually(Duration::from_secs(30), "three linked reports", || async {
        let r = hub.store.task_reports(&task_id).await.unwrap();
        (r.len() == 3).then_some(r)
    })
    .await;
    // The first report is the task's own; the other two arrive on other feed topics, in
    // either order.
    let mut departments: Vec<Department> = reports.iter().map(|r| r.department).collect();
    assert_eq!(departments[0], Department::Sanitation);
    departments.sort();
    assert_eq!(
        departments,
        [
            Department::UrbanManagement,
            Department::Sanitation,
            Department::Residents
        ]
    );
    eventually(
        Duration::from_secs(30),
        "the far pile's own task",
        || async {
            hub.store
                .prior_outcome("sanitation.test", "HW-2")
                .await
                .unwrap()
        },
    )
    .await;
    assert_eq!(
        hub.store.count_tasks(&TaskFilter::default()).await.unwrap(),
        2,
        "one task per incident"
    );
    // Every linked reporter's department hears the task's events.
    for d in [Department::Residents, Department::UrbanManagement] {
        let out = hub.store.outbox_after(0, Some(d), 100).await.unwrap();
        assert!(
            out.iter().any(|e| e.event.task_id() == task_id),
            "{d} receives the task's status changes"
        );
    }
    hub.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_the_community_has_not_admitted_goes_back_to_its_department() {
    let dir = tempfile::tempdir().unwrap();
    // Find a place whose community does not admit police rental-housing checks (0501).
    let router = hub::context::routing::load(&workspace_root().join("config"))
        .unwrap()
        .router;
    let now = Utc::now();
    let (at, community) = addresses()
        .into_iter()
        .find_map(|a| {
            let e = event(
                Department::Police,
                "probe",
                "0501",
                GeoPoint {
                    lon: a.lon,
                    lat: a.lat,
                },
                now,
            );
            match router.route(&e, now) {
                Ok(RoutingDecision::ReturnToDepartment(r)) => Some((a, r.community_code)),
                _ => None,
            }
        })
        .expect("the sample city has a community that does not admit rental-housing checks");

    let broker = start_broker(dir.path()).await;
    let hub = start_hub(dir.path(), broker.bootstrap(), None).await;
    let feed = Feed::new(dir.path(), broker.bootstrap());
    let here = GeoPoint {
        lon: at.lon,
        lat: at.lat,
    };
    feed.publish(&event(Department::Police, "J-RENT-1", "0501", here, now))
        .await;
    // A theft at the same place is admitted and becomes the community's task.
    feed.publish(&event(Department::Police, "J-THEFT-1", "0201", here, now))
        .await;
    eventually(Duration::from_secs(30), "both events handled", || async {
        let a = hub
            .store
            .prior_outcome("police.test", "J-RENT-1")
            .await
            .unwrap();
        let b = hub
            .store
            .prior_outcome("police.test", "J-THEFT-1")
            .await
            .unwrap();
        (a.is_some() && b.is_some()).then_some(())
    })
    .await;
    assert_eq!(
        hub.store
            .prior_outcome("police.test", "J-RENT-1")
            .await
            .unwrap(),
        Some(PriorOutcome::Returned)
    );

    let base = format!("http://{}", hub.api_addr.unwrap());
    let returns: Value = admin_get(&format!("{base}/api/v1/returns?department=police"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let returned = &returns["returns"][0];
    assert_eq!(returned["source_id"], "J-RENT-1");
    assert!(
        returned["reason"].as_str().unwrap().contains("admit"),
        "{returned}"
    );
    let listed: Value = admin_get(&format!(
        "{base}/api/v1/tasks?community={community}&limit=1000"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["source_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["J-THEFT-1"],
        "the community sees only what it admitted"
    );
    // The department hears it back through its outbox stream.
    let out = hub
        .store
        .outbox_after(0, Some(Department::Police), 100)
        .await
        .unwrap();
    assert!(out.iter().any(|e| e.event.kind() == "event_returned"));
    hub.stop().await;
    broker.stop().await;
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rules_change_is_refused_and_the_hub_keeps_routing_with_the_old_version() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    copy_dir(&workspace_root().join("config"), &config);
    let broker = start_broker(dir.path()).await;
    let hub = start_hub(dir.path(), broker.bootstrap(), Some(&config)).await;
    let feed = Feed::new(dir.path(), broker.bootstrap());
    let base = format!("http://{}", hub.api_addr.unwrap());
    let version = || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["rules_version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let v1 = version().await;
    let a = &addresses()[5];
    let here = GeoPoint {
        lon: a.lon,
        lat: a.lat,
    };

    // A rule naming a role that does not exist: refused, and routing goes on with v1.
    std::fs::write(
        config.join("rules/15-broken.toml"),
        "[[rule]]\nid = \"broken\"\ndescription = \"names no real role\"\nlead = [\"mayor\"]\n[rule.when]\ndepartment = [\"police\"]\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(version().await, v1, "the broken change is refused");
    feed.publish(&event(Department::Police, "J-1", "0201", here, Utc::now()))
        .await;
    let first = eventually(
        Duration::from_secs(30),
        "a task routed after the refused change",
        || async {
            match hub.store.prior_outcome("police.test", "J-1").await.unwrap() {
                Some(PriorOutcome::Task { task_id }) => hub.store.get_task(&task_id).await.unwrap(),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(first.fields.rules_version, v1);

    // A valid change is validated, tested and applied; new tasks carry the new version.
    std::fs::remove_file(config.join("rules/15-broken.toml")).unwrap();
    let police = config.join("rules/20-police.toml");
    let text = std::fs::read_to_string(&police).unwrap();
    std::fs::write(&police, format!("{text}\n# reviewed\n")).unwrap();
    let v2 = eventually(Duration::from_secs(30), "the new version", || async {
        let v = version().await;
        (v != v1).then_some(v)
    })
    .await;
    feed.publish(&event(Department::Police, "J-2", "0201", here, Utc::now()))
        .await;
    let second = eventually(
        Duration::from_secs(30),
        "a task routed with the new version",
        || async {
            match hub.store.prior_outcome("police.test", "J-2").await.unwrap() {
                Some(PriorOutcome::Task { task_id }) => hub.store.get_task(&task_id).await.unwrap(),
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(second.fields.rules_version, v2);
    hub.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suppressed_event_leaves_a_row_that_administrators_can_list() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let hub = start_hub(dir.path(), broker.bootstrap(), None).await;
    let feed = Feed::new(dir.path(), broker.bootstrap());
    let base = format!("http://{}", hub.api_addr.unwrap());
    let a = &addresses()[8];
    let here = GeoPoint {
        lon: a.lon,
        lat: a.lat,
    };
    // A bin at 50 %: the rules say no task yet, but the outcome is recorded.
    let mut reading = event(
        Department::Sanitation,
        "HW-LOW-1",
        "GARBAGE_OVERFLOW",
        here,
        Utc::now(),
    );
    reading.attributes.insert("fillLevel".into(), "50".into());
    feed.publish(&reading).await;
    eventually(
        Duration::from_secs(30),
        "the suppression recorded",
        || async {
            (hub.store
                .prior_outcome("sanitation.test", "HW-LOW-1")
                .await
                .unwrap()
                == Some(PriorOutcome::Suppressed))
            .then_some(())
        },
    )
    .await;
    let list: Value = admin_get(&format!("{base}/api/v1/suppressions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &list["suppressions"][0];
    assert_eq!(row["source_id"], "HW-LOW-1", "{list}");
    assert_eq!(row["rule_id"], "sanitation.bin-below-threshold", "{list}");
    assert_eq!(row["community_code"], a.community_code(), "{list}");
    let version: Value = reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(row["rules_version"], version["rules_version"], "{list}");
    // A redelivery changes nothing; the list is for administrators.
    feed.publish(&reading).await;
    let street = reqwest::Client::new()
        .get(format!("{base}/api/v1/suppressions"))
        .bearer_auth("demo-street-510504001")
        .send()
        .await
        .unwrap();
    assert_eq!(street.status(), 403);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let list: Value = admin_get(&format!("{base}/api/v1/suppressions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 1, "{list}");
    hub.stop().await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_reloaded_when_access_toml_changes_and_a_broken_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    copy_dir(&workspace_root().join("config"), &config);
    let broker = start_broker(dir.path()).await;
    let hub = start_hub(dir.path(), broker.bootstrap(), Some(&config)).await;
    let base = format!("http://{}", hub.api_addr.unwrap());
    let status = |token: &'static str| {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{base}/api/v1/tasks"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("demo-new-street").await, 401);
    let access = config.join("access.toml");
    let text = std::fs::read_to_string(&access).unwrap();
    std::fs::write(
        &access,
        format!(
            "{text}\n[[accounts]]\nname = \"street-new\"\nrole = \"street\"\nstreet = \"510504003\"\ntoken_env = \"HUB_TOKEN_NEW\"\ndemo_token = \"demo-new-street\"\n"
        ),
    )
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "the new account accepted",
        || async { (status("demo-new-street").await == 200).then_some(()) },
    )
    .await;
    // A broken file is refused: the accounts in force stay.
    std::fs::write(&access, "[[accounts]\nname = ").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status("demo-new-street").await, 200);
    assert_eq!(status("demo-admin").await, 200);
    hub.stop().await;
    broker.stop().await;
}
