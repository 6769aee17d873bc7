//! One behaviour suite for the task store, run against every backend: SQLite on a temporary
//! file and PostgreSQL on a fresh database per test (at `HUB_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable PostgreSQL fails the
//! PostgreSQL tests; it never skips them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hub_router::explanation::{AdmissionCheck, Explanation};
use hub_router::place::{PlaceLevel, PlaceMethod, ResolvedPlace};
use hub_router::priority::Priority;
use hub_router::task::{AssignedUnit, NewTask, TaskStatus};
use hub_router::taxonomy::CategoryRef;
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use hub_store::{
    CreateOutcome, DepartmentReturn, LinkOutcome, NearQuery, PriorOutcome, Report, StoreError,
    TaskEvent, TaskFilter, TaskStore, ROUTER_ACTOR,
};
use sqlx::{Connection, Executor, PgConnection};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// 2024-06-01 08:00:00 UTC.
const BASE_MS: i64 = 1_717_228_800_000;

// ---------------------------------------------------------------------------------------
// Backends

/// A store location that lives as long as one test.
struct TestDb {
    url: String,
    _cleanup: Cleanup,
}

/// Held only for what dropping it does.
enum Cleanup {
    RemoveDir { _dir: tempfile::TempDir },
    DropDatabase { _database: PgDatabase },
}

impl TestDb {
    async fn open(&self) -> Arc<dyn TaskStore> {
        hub_store::open(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening the store at {} failed: {e}", self.url))
    }
}

/// A file in a directory that does not exist yet, so `open` has to create both.
async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let url = format!("sqlite://{}/data/hub.db", dir.path().display());
    TestDb {
        url,
        _cleanup: Cleanup::RemoveDir { _dir: dir },
    }
}

async fn postgres() -> TestDb {
    let admin_url =
        std::env::var("HUB_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL for the hub-store suite is unreachable at {admin_url}: {e}\n\
             start PostgreSQL or point HUB_TEST_POSTGRES_URL at one (these tests are not skipped)"
        )
    });
    let name = format!("hub_test_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("creating test database {name} at {admin_url} failed: {e}"));
    TestDb {
        url: with_database(&admin_url, &name),
        _cleanup: Cleanup::DropDatabase {
            _database: PgDatabase { admin_url, name },
        },
    }
}

/// `base` with its database name replaced by `database`.
fn with_database(base: &str, database: &str) -> String {
    let (main, query) = base
        .split_once('?')
        .map_or((base, None), |(m, q)| (m, Some(q)));
    let authority = main.find("://").map_or(0, |i| i + 3);
    let root = main[authority..]
        .find('/')
        .map_or(main, |i| &main[..authority + i]);
    match query {
        Some(query) => format!("{root}/{database}?{query}"),
        None => format!("{root}/{database}"),
    }
}

/// Drops its database when the test ends, passed or failed.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread of its own.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                // FORCE: pools of the stores under test may still hold connections.
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("warning: dropping test database {} panicked", self.name),
        }
    }
}

macro_rules! store_suite {
    ($backend:ident, $provision:ident) => {
        mod $backend {
            store_suite!(@tests $provision:
                create_then_get_round_trips_every_field,
                second_create_of_same_record_changes_nothing,
                concurrent_creates_of_one_event_create_one_task,
                task_id_taken_by_another_record_is_refused,
                non_finite_coordinates_are_refused,
                list_filters_pages_and_orders_newest_first,
                history_records_created_then_dispatched,
                triage_task_is_stored_as_created,
                cursors_round_trip_overwrite_and_survive_reopen,
                reopening_runs_migrations_idempotently,
                new_task_writes_its_events_to_the_outbox_in_order,
                outbox_destination_lease_cursor_and_failures,
                duplicate_reports_link_to_one_task_and_hear_its_events,
                open_tasks_near_filters_by_group_time_and_box,
                returned_events_are_kept_once_and_published_to_their_department,
                lifecycle_action_writes_state_history_clocks_and_outbox_once,
                clock_alerts_are_raised_once_and_filter_tasks,
                dispatch_clocks_are_stored_with_the_task_and_seen_as_changes,
                breach_and_its_escalation_are_written_together_or_not_at_all
            );
        }
    };
    (@tests $provision:ident: $($test:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let db = super::$provision().await;
                super::$test(&db).await;
            }
        )+
    };
}

store_suite!(sqlite_backend, sqlite);
store_suite!(postgres_backend, postgres);

// ---------------------------------------------------------------------------------------
// Sample data

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("test time in range")
}

fn unit(unit_id: &str, role: &str, name: &str) -> AssignedUnit {
    AssignedUnit {
        unit_id: unit_id.to_owned(),
        role: role.to_owned(),
        name: name.to_owned(),
    }
}

/// An illegal-construction report from urban management, routed to 红星社区's workstation,
/// with every optional field filled in.
fn sample_task(source_id: &str, created_ms: i64) -> NewTask {
    let source_system = "urban_management.longmatan";
    let event_id = CivicEvent::derive_id(source_system, source_id);
    NewTask {
        task_id: NewTask::derive_id(&event_id),
        event_id,
        source_system: source_system.to_owned(),
        source_id: source_id.to_owned(),
        department: Department::UrbanManagement,
        category_code: "010101".to_owned(),
        category_name: Some("私搭乱建".to_owned()),
        category: CategoryRef {
            code: "E0101".to_owned(),
            name: "私搭乱建".to_owned(),
            group: "illegal_construction".to_owned(),
        },
        priority: Priority::Urgent,
        sla_policy: Some("illegal_construction".to_owned()),
        description: "红星社区3栋楼顶违章搭建彩钢房，约20平方米 \"quoted\" ∑".to_owned(),
        location: Location {
            point: Some(GeoPoint {
                lon: 105.431_234_5,
                lat: 28.898_765_4,
            }),
            address: Some("龙马潭区红星街道红星社区3栋".to_owned()),
            grid_code: Some("510504001002003".to_owned()),
        },
        occurred_at: at(created_ms - 3_600_000),
        received_at: at(created_ms - 60_123),
        place: ResolvedPlace {
            level: PlaceLevel::Grid,
            method: PlaceMethod::Point,
            district_code: Some("510504".to_owned()),
            street_code: Some("510504001".to_owned()),
            community_code: Some("510504001002".to_owned()),
            grid_code: Some("510504001002003".to_owned()),
            matched_area: "红星社区 第3网格".to_owned(),
            point: Some(GeoPoint {
                lon: 105.431_234_5,
                lat: 28.898_765_4,
            }),
        },
        lead_unit: Some(unit(
            "510504001002.workstation",
            "workstation",
            "红星社区工作站",
        )),
        co_handlers: vec![
            unit(
                "510504001002.urban_management",
                "urban_management",
                "红星街道城管中队",
            ),
            unit("510504001002.property", "property", "红星物业公司"),
        ],
        explanation: Explanation {
            place_method: PlaceMethod::Point,
            place_level: PlaceLevel::Grid,
            matched_area: "红星社区 第3网格".to_owned(),
            place_detail: "point (105.4312345, 28.8987654) inside grid 510504001002003".to_owned(),
            rule_id: "urban_management.illegal_construction".to_owned(),
            rules_version: "2024.06.1".to_owned(),
            admission: Some(AdmissionCheck {
                admitted: true,
                reason: "红星社区 admits E0101 私搭乱建 from urban management".to_owned(),
            }),
            category: Some(CategoryRef {
                code: "E0101".to_owned(),
                name: "私搭乱建".to_owned(),
                group: "illegal_construction".to_owned(),
            }),
            category_detail: "urban_management code 010101 → E0101 私搭乱建".to_owned(),
            rule_detail: "config/rules/20-urban.toml:4: illegal construction".to_owned(),
            assignment_detail: "lead workstation → 红星社区工作站".to_owned(),
            merged_into: None,
        },
        rules_version: "2024.06.1".to_owned(),
        created_at: at(created_ms),
    }
}

/// A report nothing in the city contains: no lead unit, owned by city triage.
fn triage_task(source_id: &str, created_ms: i64) -> NewTask {
    let mut task = sample_task(source_id, created_ms);
    task.department = Department::Residents;
    task.source_system = "residents.12345".to_owned();
    task.event_id = CivicEvent::derive_id(&task.source_system, source_id);
    task.task_id = NewTask::derive_id(&task.event_id);
    task.location = Location {
        point: None,
        address: Some("某小区门口".to_owned()),
        grid_code: None,
    };
    task.place = ResolvedPlace::triage(
        PlaceMethod::Unplaced,
        "no point, grid code or known address",
    );
    task.lead_unit = None;
    task.co_handlers = Vec::new();
    task.explanation.place_method = PlaceMethod::Unplaced;
    task.explanation.place_level = PlaceLevel::Triage;
    task.explanation.matched_area = task.place.matched_area.clone();
    task.explanation.admission = None;
    task
}

fn created_id(outcome: CreateOutcome) -> String {
    match outcome {
        CreateOutcome::Created { task_id } => task_id,
        other => panic!("expected a new task, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The suite

async fn create_then_get_round_trips_every_field(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000123", BASE_MS);

    let task_id = created_id(store.create_task(&task, &[]).await.unwrap());
    assert_eq!(task_id, task.task_id);

    let stored = store
        .get_task(&task_id)
        .await
        .unwrap()
        .expect("the task just created");
    assert_eq!(stored.fields, task);
    assert_eq!(stored.status, TaskStatus::Dispatched);
    assert_eq!(stored.updated_at, task.created_at);
    assert_eq!(store.get_task("no-such-task").await.unwrap(), None);
}

async fn second_create_of_same_record_changes_nothing(db: &TestDb) {
    let store = db.open().await;
    let original = sample_task("UM-2024-000200", BASE_MS);
    created_id(store.create_task(&original, &[]).await.unwrap());

    // The same departmental record routed again later, differently (new rules, new text) and
    // even under another task id: the first task stands.
    let mut again = sample_task("UM-2024-000200", BASE_MS + 86_400_000);
    again.description = "重复推送的同一条记录".to_owned();
    again.lead_unit = Some(unit(
        "510504001002.residents_committee",
        "residents_committee",
        "红星社区居委会",
    ));
    for task_id in [original.task_id.clone(), "another-task-id".to_owned()] {
        again.task_id = task_id;
        assert_eq!(
            store.create_task(&again, &[]).await.unwrap(),
            CreateOutcome::AlreadyExists {
                task_id: original.task_id.clone()
            }
        );
    }

    let stored = store.get_task(&original.task_id).await.unwrap().unwrap();
    assert_eq!(stored.fields, original);
    assert_eq!(store.get_task("another-task-id").await.unwrap(), None);
    assert_eq!(
        store.task_history(&original.task_id).await.unwrap().len(),
        2
    );
    assert_eq!(store.count_tasks(&TaskFilter::default()).await.unwrap(), 1);
}

async fn concurrent_creates_of_one_event_create_one_task(db: &TestDb) {
    // Two independently opened stores stand for two hub processes.
    let stores = [db.open().await, db.open().await];
    let task = Arc::new(sample_task("UM-2024-000300", BASE_MS));

    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            let task = Arc::clone(&task);
            tokio::spawn(async move { store.create_task(&task, &[]).await })
        })
        .collect();
    let mut created = 0;
    for attempt in attempts {
        let outcome = attempt
            .await
            .expect("create task panicked")
            .expect("create task failed");
        assert_eq!(outcome.task_id(), task.task_id);
        if matches!(outcome, CreateOutcome::Created { .. }) {
            created += 1;
        }
    }

    assert_eq!(
        created, 1,
        "exactly one of 20 concurrent creates must store the task"
    );
    assert_eq!(
        stores[0].count_tasks(&TaskFilter::default()).await.unwrap(),
        1
    );
    assert_eq!(
        stores[1].task_history(&task.task_id).await.unwrap().len(),
        2
    );
}

async fn task_id_taken_by_another_record_is_refused(db: &TestDb) {
    let store = db.open().await;
    let first = sample_task("UM-2024-000400", BASE_MS);
    created_id(store.create_task(&first, &[]).await.unwrap());

    let mut other = sample_task("UM-2024-000401", BASE_MS);
    other.task_id = first.task_id.clone();
    let err = store.create_task(&other, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("UM-2024-000401"), "{err}");

    assert_eq!(
        store
            .get_task(&first.task_id)
            .await
            .unwrap()
            .unwrap()
            .fields,
        first
    );
}

async fn non_finite_coordinates_are_refused(db: &TestDb) {
    let store = db.open().await;
    let mut task = sample_task("UM-2024-000500", BASE_MS);
    task.location.point = Some(GeoPoint {
        lon: f64::NAN,
        lat: 28.9,
    });

    let err = store.create_task(&task, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidTask { .. }), "{err:?}");
    assert!(err.to_string().contains(&task.task_id), "{err}");
    assert_eq!(store.count_tasks(&TaskFilter::default()).await.unwrap(), 0);
}

async fn list_filters_pages_and_orders_newest_first(db: &TestDb) {
    let store = db.open().await;
    let in_place =
        |source_id: &str, minutes: i64, street: &str, community: &str, department: Department| {
            let mut task = sample_task(source_id, BASE_MS + minutes * 60_000);
            task.place.street_code = Some(street.to_owned());
            task.place.community_code = Some(community.to_owned());
            task.department = department;
            task
        };
    let hongxing = "510504001002";
    let yangdashan = "510504002001";
    let tasks = [
        in_place("L-1", 0, "510504001", hongxing, Department::UrbanManagement),
        in_place("L-2", 10, "510504001", hongxing, Department::Police),
        in_place(
            "L-3",
            20,
            "510504002",
            yangdashan,
            Department::UrbanManagement,
        ),
        // Same minute as L-2: the task id decides their order.
        in_place(
            "L-4",
            10,
            "510504001",
            hongxing,
            Department::UrbanManagement,
        ),
        triage_task("L-5", 30),
    ];
    for task in &tasks {
        created_id(store.create_task(task, &[]).await.unwrap());
    }
    let ids = |found: Vec<hub_router::task::Task>| -> Vec<String> {
        found.into_iter().map(|t| t.fields.task_id).collect()
    };
    let newest_first = |picked: &[&NewTask]| -> Vec<String> {
        let mut picked = picked.to_vec();
        picked.sort_by(|a, b| (b.created_at, &b.task_id).cmp(&(a.created_at, &a.task_id)));
        picked.into_iter().map(|t| t.task_id.clone()).collect()
    };
    let [l1, l2, l3, l4, l5] = &tasks;

    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(ids(all), newest_first(&[l1, l2, l3, l4, l5]));

    let in_hongxing = TaskFilter {
        community_code: Some(hongxing.to_owned()),
        ..TaskFilter::default()
    };
    let expected = newest_first(&[l1, l2, l4]);
    assert_eq!(ids(store.list_tasks(&in_hongxing).await.unwrap()), expected);
    assert_eq!(store.count_tasks(&in_hongxing).await.unwrap(), 3);

    // Pages of two: the first two, then the last one; counting ignores the page.
    let page = |offset| TaskFilter {
        limit: 2,
        offset,
        ..in_hongxing.clone()
    };
    assert_eq!(
        ids(store.list_tasks(&page(0)).await.unwrap()),
        expected[..2]
    );
    assert_eq!(
        ids(store.list_tasks(&page(2)).await.unwrap()),
        expected[2..]
    );
    assert!(store.list_tasks(&page(4)).await.unwrap().is_empty());
    assert_eq!(store.count_tasks(&page(2)).await.unwrap(), 3);

    let by_street = TaskFilter {
        street_code: Some("510504002".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(store.list_tasks(&by_street).await.unwrap()),
        newest_first(&[l3])
    );

    let awaiting_triage = TaskFilter {
        status: Some(TaskStatus::Created),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(store.list_tasks(&awaiting_triage).await.unwrap()),
        newest_first(&[l5])
    );
    let dispatched = TaskFilter {
        status: Some(TaskStatus::Dispatched),
        ..TaskFilter::default()
    };
    assert_eq!(store.count_tasks(&dispatched).await.unwrap(), 4);

    let urban_management_in_hongxing = TaskFilter {
        department: Some(Department::UrbanManagement),
        ..in_hongxing.clone()
    };
    let found = store
        .list_tasks(&urban_management_in_hongxing)
        .await
        .unwrap();
    assert_eq!(found[0].fields, *l4, "listed tasks carry every field");
    assert_eq!(ids(found), newest_first(&[l1, l4]));
    let police = TaskFilter {
        department: Some(Department::Police),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(store.list_tasks(&police).await.unwrap()),
        newest_first(&[l2])
    );

    let nowhere = TaskFilter {
        community_code: Some("999999999999".to_owned()),
        ..TaskFilter::default()
    };
    assert!(store.list_tasks(&nowhere).await.unwrap().is_empty());
    assert_eq!(store.count_tasks(&nowhere).await.unwrap(), 0);
}

async fn history_records_created_then_dispatched(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000600", BASE_MS);
    created_id(store.create_task(&task, &[]).await.unwrap());

    let history = store.task_history(&task.task_id).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    let (created, dispatched) = (&history[0], &history[1]);

    assert_eq!(
        (created.seq, created.from_status, created.to_status),
        (1, None, TaskStatus::Created)
    );
    assert_eq!(
        (dispatched.seq, dispatched.from_status, dispatched.to_status),
        (2, Some(TaskStatus::Created), TaskStatus::Dispatched)
    );
    for entry in &history {
        assert_eq!(entry.actor, ROUTER_ACTOR);
        assert_eq!(entry.at, task.created_at);
    }
    let note = dispatched
        .note
        .as_deref()
        .expect("the dispatch names its lead unit");
    assert!(
        note.contains("红星社区工作站") && note.contains("510504001002.workstation"),
        "{note}"
    );
    assert!(
        note.contains("红星物业公司"),
        "co-handlers are named too: {note}"
    );
    assert!(store.task_history("no-such-task").await.unwrap().is_empty());
}

async fn triage_task_is_stored_as_created(db: &TestDb) {
    let store = db.open().await;
    let task = triage_task("12345-2024-0700", BASE_MS);
    created_id(store.create_task(&task, &[]).await.unwrap());

    let stored = store.get_task(&task.task_id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Created);
    assert_eq!(stored.fields, task);

    let history = store.task_history(&task.task_id).await.unwrap();
    assert_eq!(
        history.len(),
        1,
        "a task nobody was found for is not dispatched: {history:?}"
    );
    assert_eq!(history[0].to_status, TaskStatus::Created);
    let note = history[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("triage"), "{note}");
}

async fn cursors_round_trip_overwrite_and_survive_reopen(db: &TestDb) {
    let store = db.open().await;
    let police = "police.longmatan";
    assert_eq!(store.load_cursor(police).await.unwrap(), None);

    store
        .save_cursor(police, "2024-06-01T08:00:00Z#1001")
        .await
        .unwrap();
    store
        .save_cursor("civil_affairs.longmatan", "row:77")
        .await
        .unwrap();
    assert_eq!(
        store.load_cursor(police).await.unwrap().as_deref(),
        Some("2024-06-01T08:00:00Z#1001")
    );
    store
        .save_cursor(police, "2024-06-01T09:30:00Z#1042")
        .await
        .unwrap();
    drop(store);

    let reopened = db.open().await;
    assert_eq!(
        reopened.load_cursor(police).await.unwrap().as_deref(),
        Some("2024-06-01T09:30:00Z#1042")
    );
    assert_eq!(
        reopened
            .load_cursor("civil_affairs.longmatan")
            .await
            .unwrap()
            .as_deref(),
        Some("row:77")
    );
}

async fn reopening_runs_migrations_idempotently(db: &TestDb) {
    let store = db.open().await;
    let backend = store.backend();
    let first = sample_task("UM-2024-000800", BASE_MS);
    created_id(store.create_task(&first, &[]).await.unwrap());
    drop(store);

    // Reopened, also by two processes starting at once: the schema is already there.
    let (a, b) = tokio::join!(db.open(), db.open());
    assert_eq!(a.backend(), backend);
    assert_eq!(
        a.get_task(&first.task_id).await.unwrap().unwrap().fields,
        first
    );
    let second = sample_task("UM-2024-000801", BASE_MS + 1);
    created_id(b.create_task(&second, &[]).await.unwrap());
    assert_eq!(a.count_tasks(&TaskFilter::default()).await.unwrap(), 2);
}

async fn new_task_writes_its_events_to_the_outbox_in_order(db: &TestDb) {
    let store = db.open().await;
    let first = sample_task("CG-OUT-1", BASE_MS);
    let triage = triage_task("R-OUT-2", BASE_MS + 1000);
    store.create_task(&first, &[]).await.unwrap();
    store.create_task(&triage, &[]).await.unwrap();
    // A redelivered event adds nothing.
    store.create_task(&first, &[]).await.unwrap();

    let all = store.outbox_after(0, None, 100).await.unwrap();
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.event.task_id(), e.event.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            (first.task_id.as_str(), "task_status_changed"),
            (first.task_id.as_str(), "task_status_changed"),
            (first.task_id.as_str(), "task_dispatched"),
            (triage.task_id.as_str(), "task_status_changed"),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    match &all[1].event {
        TaskEvent::TaskStatusChanged(c) => {
            assert_eq!(
                (c.seq, c.from_status.as_deref(), c.to_status.as_str()),
                (2, Some("created"), "dispatched")
            );
            assert_eq!(c.actor, ROUTER_ACTOR);
        }
        other => panic!("expected a status change, got {other:?}"),
    }
    match &all[2].event {
        TaskEvent::TaskDispatched(d) => {
            assert_eq!(
                d.lead_unit.as_ref().unwrap().unit_id,
                "510504001002.workstation"
            );
            assert_eq!(d.co_handlers.len(), 2);
            assert_eq!(d.community_code.as_deref(), Some("510504001002"));
        }
        other => panic!("expected a dispatch, got {other:?}"),
    }
    // Filtered by the originating department, and resumable after an id.
    let urban = store
        .outbox_after(0, Some(Department::UrbanManagement), 100)
        .await
        .unwrap();
    assert_eq!(urban.len(), 3);
    let rest = store.outbox_after(all[1].id, None, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        [all[2].id, all[3].id]
    );
}

async fn outbox_destination_lease_cursor_and_failures(db: &TestDb) {
    let store = db.open().await;
    let t0 = at(BASE_MS);
    let dest = "webhook:urban_management";
    assert_eq!(
        store
            .outbox_destination(dest)
            .await
            .unwrap()
            .delivered_up_to,
        0
    );

    // One holder at a time; an expired lease can be taken over.
    assert!(store
        .lease_destination(dest, "hub-a", t0, at(BASE_MS + 30_000))
        .await
        .unwrap());
    assert!(!store
        .lease_destination(dest, "hub-b", at(BASE_MS + 1_000), at(BASE_MS + 31_000))
        .await
        .unwrap());
    assert!(store
        .lease_destination(dest, "hub-a", at(BASE_MS + 1_000), at(BASE_MS + 31_000))
        .await
        .unwrap());

    // Only the holder moves the cursor or records failures.
    store.outbox_delivered(dest, "hub-b", 7, t0).await.unwrap();
    assert_eq!(
        store
            .outbox_destination(dest)
            .await
            .unwrap()
            .delivered_up_to,
        0
    );
    store
        .outbox_failed(
            dest,
            "hub-a",
            "HTTP 503 from receiver",
            t0,
            at(BASE_MS + 2_000),
        )
        .await
        .unwrap();
    store
        .outbox_failed(dest, "hub-a", "connection refused", t0, at(BASE_MS + 4_000))
        .await
        .unwrap();
    let state = store.outbox_destination(dest).await.unwrap();
    assert_eq!(
        (state.attempts, state.last_error.as_deref()),
        (2, Some("connection refused"))
    );
    assert_eq!(state.next_attempt_at, Some(at(BASE_MS + 4_000)));
    store
        .outbox_delivered(dest, "hub-a", 7, at(BASE_MS + 5_000))
        .await
        .unwrap();
    let state = store.outbox_destination(dest).await.unwrap();
    assert_eq!(
        (state.delivered_up_to, state.attempts, state.last_error),
        (7, 0, None)
    );
    // The cursor never moves back.
    store
        .outbox_delivered(dest, "hub-a", 3, at(BASE_MS + 6_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .outbox_destination(dest)
            .await
            .unwrap()
            .delivered_up_to,
        7
    );

    assert!(store
        .lease_destination(dest, "hub-b", at(BASE_MS + 40_000), at(BASE_MS + 70_000))
        .await
        .unwrap());
    assert_eq!(store.outbox_destinations().await.unwrap().len(), 1);
}

fn report(source_system: &str, source_id: &str, department: Department, ms: i64) -> Report {
    Report {
        event_id: CivicEvent::derive_id(source_system, source_id),
        source_system: source_system.to_owned(),
        source_id: source_id.to_owned(),
        department,
        occurred_at: at(ms),
        linked_at: at(ms + 500),
    }
}

async fn duplicate_reports_link_to_one_task_and_hear_its_events(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("CG-DUP-1", BASE_MS);
    store.create_task(&task, &[]).await.unwrap();
    let sanitation = report(
        "sanitation.longmatan",
        "HW-9",
        Department::Sanitation,
        BASE_MS + 60_000,
    );
    let resident = report(
        "residents.12345",
        "R-7",
        Department::Residents,
        BASE_MS + 120_000,
    );
    assert_eq!(
        store.link_report(&task.task_id, &sanitation).await.unwrap(),
        LinkOutcome::Linked
    );
    assert_eq!(
        store.link_report(&task.task_id, &resident).await.unwrap(),
        LinkOutcome::Linked
    );
    // Redelivered: nothing changes.
    assert_eq!(
        store.link_report(&task.task_id, &sanitation).await.unwrap(),
        LinkOutcome::AlreadyLinked {
            task_id: task.task_id.clone()
        }
    );
    let reports = store.task_reports(&task.task_id).await.unwrap();
    let ids: Vec<&str> = reports.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids, ["CG-DUP-1", "HW-9", "R-7"]);
    assert_eq!(
        store
            .prior_outcome("sanitation.longmatan", "HW-9")
            .await
            .unwrap(),
        Some(PriorOutcome::Task {
            task_id: task.task_id.clone()
        })
    );
    assert_eq!(
        store
            .prior_outcome("sanitation.longmatan", "HW-10")
            .await
            .unwrap(),
        None
    );
    // The linked departments hear the task's events; others do not.
    let for_sanitation = store
        .outbox_after(0, Some(Department::Sanitation), 100)
        .await
        .unwrap();
    assert_eq!(
        for_sanitation.len(),
        3,
        "the task's events reach every linked reporter"
    );
    assert!(store
        .outbox_after(0, Some(Department::Police), 100)
        .await
        .unwrap()
        .is_empty());
}

async fn open_tasks_near_filters_by_group_time_and_box(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("CG-NEAR-1", BASE_MS);
    store.create_task(&task, &[]).await.unwrap();
    let p = task.place.point.unwrap();
    let query = |group: &str, since: i64, until: i64, d: f64| NearQuery {
        category_group: group.to_owned(),
        occurred_since: at(since),
        occurred_until: at(until),
        min_lon: p.lon - d,
        min_lat: p.lat - d,
        max_lon: p.lon + d,
        max_lat: p.lat + d,
    };
    let occurred = task.occurred_at.timestamp_millis();
    let found = store
        .open_tasks_near(&query(
            "illegal_construction",
            occurred - 1000,
            occurred + 1000,
            0.001,
        ))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].task_id, task.task_id);
    assert!((found[0].lon - p.lon).abs() < 1e-9 && found[0].occurred_at == task.occurred_at);
    assert!(store
        .open_tasks_near(&query("garbage", occurred - 1000, occurred + 1000, 0.001))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .open_tasks_near(&query(
            "illegal_construction",
            occurred + 1,
            occurred + 1000,
            0.001
        ))
        .await
        .unwrap()
        .is_empty());
    let mut far = query(
        "illegal_construction",
        occurred - 1000,
        occurred + 1000,
        0.001,
    );
    far.min_lon += 0.01;
    far.max_lon += 0.01;
    assert!(store.open_tasks_near(&far).await.unwrap().is_empty());
}

async fn returned_events_are_kept_once_and_published_to_their_department(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("J-RET-1", BASE_MS);
    let ret = DepartmentReturn {
        event_id: task.event_id.clone(),
        source_system: "police.longmatan".to_owned(),
        source_id: "J-RET-1".to_owned(),
        department: Department::Police,
        category_code: "0501".to_owned(),
        community_code: Some("510504001002".to_owned()),
        reason: "红星社区 has not admitted E0701 出租房屋核查 from police".to_owned(),
        explanation: task.explanation.clone(),
        returned_at: at(BASE_MS),
    };
    assert!(store.record_return(&ret).await.unwrap());
    assert!(!store.record_return(&ret).await.unwrap(), "recorded once");
    assert_eq!(
        store
            .prior_outcome("police.longmatan", "J-RET-1")
            .await
            .unwrap(),
        Some(PriorOutcome::Returned)
    );
    let listed = store
        .list_returns(Some(Department::Police), 10)
        .await
        .unwrap();
    assert_eq!(listed, vec![ret.clone()]);
    assert!(store
        .list_returns(Some(Department::Sanitation), 10)
        .await
        .unwrap()
        .is_empty());
    let out = store
        .outbox_after(0, Some(Department::Police), 100)
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    match &out[0].event {
        TaskEvent::EventReturned(r) => assert_eq!(
            (r.source_id.as_str(), r.reason.as_str()),
            ("J-RET-1", ret.reason.as_str())
        ),
        other => panic!("expected a returned event, got {other:?}"),
    }
    // No task appears anywhere for it.
    assert_eq!(store.count_tasks(&TaskFilter::default()).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------
// Workflow: lifecycle actions, clocks and alerts

use hub_router::workflow::lifecycle::Action;
use hub_router::workflow::{apply, Actor, ClockKind, Limit, SlaClock, TaskState, WorkingCalendar};
use hub_store::{AlertTransition, ApplyOutcome, ClockAlert, RaiseOutcome};

/// The state the hub derives for a task the router dispatched.
fn dispatched_state(unit: &str) -> TaskState {
    let t = apply(
        &TaskState::new(vec!["handling".to_owned()]),
        Action::Dispatch {
            unit: unit.to_owned(),
        },
        &Actor::system("router"),
        at(BASE_MS),
    )
    .unwrap();
    TaskState {
        version: 0,
        ..t.state
    }
}

fn sign_for_clock(minutes: u32) -> SlaClock {
    SlaClock::start(
        ClockKind::SignFor,
        1,
        at(BASE_MS),
        Limit::parse(&format!("{minutes} minutes")).unwrap(),
        Some(0.8),
        WorkingCalendar::always_open(),
    )
}

async fn lifecycle_action_writes_state_history_clocks_and_outbox_once(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000900", BASE_MS);
    let id = created_id(store.create_task(&task, &[]).await.unwrap());
    let record = store.workflow(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            record.status,
            record.state.as_ref(),
            record.version,
            record.breached
        ),
        (TaskStatus::Dispatched, None, 0, false)
    );
    assert!(store.workflow("no-such-task").await.unwrap().is_none());

    let state = dispatched_state("510504001002.workstation");
    let actor = Actor::person("alice", Some("510504001002.workstation"));
    let t = apply(
        &state,
        Action::SignFor.with_note("on my way"),
        &actor,
        at(BASE_MS + 60_000),
    )
    .unwrap();
    let clock = sign_for_clock(30);
    let due = clock.deadline();
    assert_eq!(
        store
            .apply_transition(&id, 0, &t, std::slice::from_ref(&clock), due)
            .await
            .unwrap(),
        ApplyOutcome::Applied { seq: 3 }
    );
    // The same action decided on the stale version changes nothing.
    assert_eq!(
        store.apply_transition(&id, 0, &t, &[], None).await.unwrap(),
        ApplyOutcome::Conflict { current_version: 1 }
    );
    assert_eq!(
        store
            .apply_transition("no-such-task", 0, &t, &[], None)
            .await
            .unwrap(),
        ApplyOutcome::NotFound
    );

    let record = store.workflow(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::SignedFor);
    assert_eq!(record.version, 1);
    assert_eq!(record.state.as_ref(), Some(&t.state));
    assert_eq!(record.due_at, due);
    assert_eq!(
        store.get_task(&id).await.unwrap().unwrap().status,
        TaskStatus::SignedFor
    );

    let history = store.task_history(&id).await.unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    let last = &history[2];
    assert_eq!(
        (
            last.seq,
            last.from_status,
            last.to_status,
            last.actor.as_str(),
            last.at
        ),
        (
            3,
            Some(TaskStatus::Dispatched),
            TaskStatus::SignedFor,
            "alice@510504001002.workstation",
            at(BASE_MS + 60_000)
        )
    );
    assert!(
        last.note.as_deref().unwrap().contains("on my way"),
        "{last:?}"
    );

    let outbox = store.outbox_after(0, None, 100).await.unwrap();
    let changes: Vec<_> = outbox
        .iter()
        .filter_map(|e| match &e.event {
            TaskEvent::TaskStatusChanged(c) if c.seq == 3 => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 1, "{outbox:?}");
    assert_eq!(changes[0].to_status, "signed_for");
    assert_eq!(changes[0].from_status.as_deref(), Some("dispatched"));

    let clocks = store.task_clocks(&id).await.unwrap();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].clock, clock);
    // Writing the clock again (stopped) updates the same row.
    let t2 = apply(&t.state, Action::Start, &actor, at(BASE_MS + 120_000)).unwrap();
    let mut stopped = clock.clone();
    stopped
        .record(
            hub_router::workflow::ClockEvent::Stopped {
                at: at(BASE_MS + 120_000),
            },
            WorkingCalendar::always_open(),
        )
        .unwrap();
    assert!(!stopped.is_open());
    assert_eq!(
        store
            .apply_transition(&id, 1, &t2, &[stopped.clone()], None)
            .await
            .unwrap(),
        ApplyOutcome::Applied { seq: 4 }
    );
    let clocks = store.task_clocks(&id).await.unwrap();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].clock, stopped);
    assert!(store.open_clocks(0, 100).await.unwrap().is_empty());
}

async fn clock_alerts_are_raised_once_and_filter_tasks(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000901", BASE_MS);
    let id = created_id(store.create_task(&task, &[]).await.unwrap());
    let other = created_id(
        store
            .create_task(&sample_task("UM-2024-000902", BASE_MS + 1), &[])
            .await
            .unwrap(),
    );
    let state = dispatched_state("510504001002.workstation");
    let t = apply(
        &state,
        Action::SignFor,
        &Actor::person("bob", None),
        at(BASE_MS),
    )
    .unwrap();
    let clock = sign_for_clock(10);
    let deadline = clock.deadline().unwrap();
    store
        .apply_transition(&id, 0, &t, &[clock], Some(deadline))
        .await
        .unwrap();

    let open = store.open_clocks(0, 100).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(open[0].alerts.is_empty());
    let clock_id = open[0].id;
    assert_eq!(open[0].task_id, id);

    // Several processes race to raise the same breach: exactly one does.
    let mut racers = Vec::new();
    for n in 0..4 {
        let store = store.clone();
        let alert = ClockAlert {
            clock_id,
            task_id: id.clone(),
            kind: "breach".to_owned(),
            due_at: deadline,
            raised_at: at(BASE_MS + 700_000),
            raised_by: format!("system:sla_tracker:{n}"),
            note: "sla_breach: sign_for".to_owned(),
            then: None,
        };
        racers.push(tokio::spawn(async move {
            store.raise_alert(&alert).await.unwrap()
        }));
    }
    let mut raised = 0;
    for r in racers {
        raised += usize::from(r.await.unwrap() == RaiseOutcome::Raised);
    }
    assert_eq!(raised, 1);
    let history = store.task_history(&id).await.unwrap();
    let breaches = history
        .iter()
        .filter(|h| h.note.as_deref() == Some("sla_breach: sign_for"))
        .count();
    assert_eq!(breaches, 1, "{history:?}");
    assert!(store.workflow(&id).await.unwrap().unwrap().breached);
    assert_eq!(
        store.open_clocks(0, 100).await.unwrap()[0].alerts,
        vec!["breach".to_owned()]
    );

    let breached = store
        .list_tasks(&TaskFilter {
            breached: Some(true),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        breached
            .iter()
            .map(|t| t.fields.task_id.as_str())
            .collect::<Vec<_>>(),
        vec![id.as_str()]
    );
    let not_breached = store
        .list_tasks(&TaskFilter {
            breached: Some(false),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        not_breached
            .iter()
            .map(|t| t.fields.task_id.as_str())
            .collect::<Vec<_>>(),
        vec![other.as_str()]
    );
    let due = store
        .count_tasks(&TaskFilter {
            due_before: Some(deadline),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(due, 1);
    let due_earlier = store
        .count_tasks(&TaskFilter {
            due_before: Some(at(BASE_MS)),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(due_earlier, 0);
    // By unit: the lead unit and a co-handler both see it; another unit does not.
    for (unit, expected) in [
        ("510504001002.workstation", 2),
        ("510504001002.property", 2),
        ("510504001001.workstation", 0),
    ] {
        let n = store
            .count_tasks(&TaskFilter {
                unit_id: Some(unit.to_owned()),
                ..TaskFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(n, expected, "{unit}");
    }
}

async fn dispatch_clocks_are_stored_with_the_task_and_seen_as_changes(db: &TestDb) {
    let store = db.open().await;
    let before = Utc::now() - chrono::TimeDelta::seconds(1);
    let clock = sign_for_clock(10);
    let deadline = clock.deadline().unwrap();
    let id = created_id(
        store
            .create_task(
                &sample_task("UM-2024-000910", BASE_MS),
                std::slice::from_ref(&clock),
            )
            .await
            .unwrap(),
    );
    let clocks = store.task_clocks(&id).await.unwrap();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].clock, clock);
    assert!(clocks[0].changed_at >= before);
    let record = store.workflow(&id).await.unwrap().unwrap();
    assert_eq!(record.due_at, Some(deadline), "due_at is set at dispatch");
    assert_eq!(record.state, None, "no lifecycle action yet");

    let open = store.open_clocks(0, 100).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(store.clock(open[0].id).await.unwrap().unwrap(), open[0]);
    assert_eq!(store.clock(open[0].id + 1000).await.unwrap(), None);

    // The change feed has it; a cursor at it has nothing newer; a redelivered create does
    // not write the clocks again.
    let changed = store.clocks_changed(before, 0, 100).await.unwrap();
    assert_eq!(changed.len(), 1);
    let (at_ms, last_id) = (changed[0].changed_at, changed[0].id);
    assert!(store
        .clocks_changed(at_ms, last_id, 100)
        .await
        .unwrap()
        .is_empty());
    store
        .create_task(&sample_task("UM-2024-000910", BASE_MS), &[clock])
        .await
        .unwrap();
    assert!(store
        .clocks_changed(at_ms, last_id, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.task_clocks(&id).await.unwrap().len(), 1);
}

async fn breach_and_its_escalation_are_written_together_or_not_at_all(db: &TestDb) {
    let store = db.open().await;
    let clock = sign_for_clock(10);
    let deadline = clock.deadline().unwrap();
    let id = created_id(
        store
            .create_task(&sample_task("UM-2024-000911", BASE_MS), &[clock])
            .await
            .unwrap(),
    );
    let clock_id = store.open_clocks(0, 10).await.unwrap()[0].id;
    let escalate = apply(
        &dispatched_state("510504001002.workstation"),
        Action::Escalate {
            step: hub_router::city::LadderStep::Workstation,
        },
        &Actor::system("sla_tracker"),
        deadline,
    )
    .unwrap();
    let step_clock = SlaClock::start(
        ClockKind::Escalation {
            step: hub_router::city::LadderStep::Workstation,
            cause: hub_router::workflow::clock::Phase::SignFor,
        },
        1,
        deadline,
        Limit::parse("30 minutes").unwrap(),
        None,
        WorkingCalendar::always_open(),
    );
    let alert = |expected_version| ClockAlert {
        clock_id,
        task_id: id.clone(),
        kind: "breach".to_owned(),
        due_at: deadline,
        raised_at: deadline,
        raised_by: "system:sla_tracker".to_owned(),
        note: "sign-for breached".to_owned(),
        then: Some(AlertTransition {
            expected_version,
            transition: escalate.clone(),
            clocks: vec![step_clock.clone()],
            due_at: step_clock.deadline(),
        }),
    };
    // Decided on a version the task has moved past: neither the breach nor the step is
    // written, so the tracker can decide again.
    let outcome = store.raise_alert(&alert(7)).await.unwrap();
    assert_eq!(outcome, RaiseOutcome::Stale { current_version: 0 });
    assert!(store.task_clocks(&id).await.unwrap()[0].alerts.is_empty());
    assert_eq!(store.task_history(&id).await.unwrap().len(), 2);
    assert!(!store.workflow(&id).await.unwrap().unwrap().breached);

    assert_eq!(
        store.raise_alert(&alert(0)).await.unwrap(),
        RaiseOutcome::Raised
    );
    assert_eq!(
        store.raise_alert(&alert(0)).await.unwrap(),
        RaiseOutcome::AlreadyRaised
    );
    let history = store.task_history(&id).await.unwrap();
    let notes: Vec<_> = history.iter().filter_map(|h| h.note.clone()).collect();
    assert_eq!(history.len(), 4, "{notes:?}");
    assert_eq!(history[2].note.as_deref(), Some("sign-for breached"));
    assert!(
        history[3].note.as_deref().unwrap().contains("workstation"),
        "{notes:?}"
    );
    let record = store.workflow(&id).await.unwrap().unwrap();
    assert!(record.breached);
    assert_eq!(record.version, 1);
    assert_eq!(record.due_at, step_clock.deadline());
    let clocks = store.task_clocks(&id).await.unwrap();
    assert_eq!(clocks.len(), 2);
    assert_eq!(clocks[1].clock, step_clock);
}
