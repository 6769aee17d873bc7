//! One behaviour suite for the task store, run against every backend: SQLite on a temporary
//! file and PostgreSQL on a fresh database per test (at `HUB_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable PostgreSQL fails the
//! PostgreSQL tests; it never skips them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hub_router::explanation::Explanation;
use hub_router::place::{PlaceLevel, PlaceMethod, ResolvedPlace};
use hub_router::task::{AssignedUnit, NewTask, TaskStatus};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use hub_store::{CreateOutcome, StoreError, TaskFilter, TaskStore, ROUTER_ACTOR};
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
                reopening_runs_migrations_idempotently
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
            admission: Some("admitted: 私搭乱建 is on 红星社区's admission list".to_owned()),
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

    let task_id = created_id(store.create_task(&task).await.unwrap());
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
    created_id(store.create_task(&original).await.unwrap());

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
            store.create_task(&again).await.unwrap(),
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
            tokio::spawn(async move { store.create_task(&task).await })
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
    created_id(store.create_task(&first).await.unwrap());

    let mut other = sample_task("UM-2024-000401", BASE_MS);
    other.task_id = first.task_id.clone();
    let err = store.create_task(&other).await.unwrap_err();
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

    let err = store.create_task(&task).await.unwrap_err();
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
        created_id(store.create_task(task).await.unwrap());
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
    created_id(store.create_task(&task).await.unwrap());

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
    created_id(store.create_task(&task).await.unwrap());

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
    created_id(store.create_task(&first).await.unwrap());
    drop(store);

    // Reopened, also by two processes starting at once: the schema is already there.
    let (a, b) = tokio::join!(db.open(), db.open());
    assert_eq!(a.backend(), backend);
    assert_eq!(
        a.get_task(&first.task_id).await.unwrap().unwrap().fields,
        first
    );
    let second = sample_task("UM-2024-000801", BASE_MS + 1);
    created_id(b.create_task(&second).await.unwrap());
    assert_eq!(a.count_tasks(&TaskFilter::default()).await.unwrap(), 2);
}
