//! Creating tasks (idempotently, also concurrently), reading, listing and counting them, and
//! their history.

use std::sync::Arc;

use hub_router::task::{NewTask, TaskStatus};
use hub_schemas::event::{Department, GeoPoint};
use hub_store::{CreateOutcome, StoreError, TaskFilter, ROUTER_ACTOR};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    create_then_get_round_trips_every_field,
    second_create_of_same_record_changes_nothing,
    concurrent_creates_of_one_event_create_one_task,
    task_id_taken_by_another_record_is_refused,
    non_finite_coordinates_are_refused,
    list_filters_pages_and_orders_newest_first,
    history_records_created_then_dispatched,
    triage_task_is_stored_as_created,
    points_list_placed_tasks_of_the_scope_with_their_deadline,
    queue_filters_by_category_prefix_grid_and_paused_clock,
    a_batch_of_tasks_is_stored_in_one_go_and_its_records_are_known_after,
);

/// The routing pipeline's batch: several tasks in one transaction, a record stored before
/// left as it is, then every record's prior outcome in one lookup.
async fn a_batch_of_tasks_is_stored_in_one_go_and_its_records_are_known_after(db: &TestDb) {
    use hub_cases::opening::Opening;
    use hub_store::PriorOutcome;
    let store = db.open().await;
    let before = sample_task("B-0", BASE_MS);
    store.create_routed(&before, &[]).await.unwrap();
    let batch: Vec<NewTask> = (0..3)
        .map(|i| sample_task(&format!("B-{i}"), BASE_MS + i))
        .collect();
    let openings: Vec<Opening> = batch
        .iter()
        .map(|t| Opening::new(t, vec![sign_for_clock(30)]))
        .collect();
    let pairs: Vec<_> = batch.iter().zip(&openings).collect();
    let outcomes = store.create_tasks(&pairs, &[]).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            CreateOutcome::AlreadyExists {
                task_id: before.task_id.clone()
            },
            CreateOutcome::Created {
                task_id: batch[1].task_id.clone()
            },
            CreateOutcome::Created {
                task_id: batch[2].task_id.clone()
            },
        ]
    );
    // Stored whole: the clocks and the history came with the tasks.
    assert_eq!(store.task_clocks(&batch[2].task_id).await.unwrap().len(), 1);
    assert_eq!(
        store.task_history(&batch[2].task_id).await.unwrap().len(),
        2
    );
    let ids = ["B-0", "B-1", "B-2", "B-9"];
    let prior = store
        .prior_outcomes(&before.source_system, &ids)
        .await
        .unwrap();
    assert_eq!(prior.len(), 3, "{prior:?}");
    assert_eq!(
        prior["B-1"],
        PriorOutcome::Task {
            task_id: batch[1].task_id.clone()
        }
    );
    assert!(!prior.contains_key("B-9"));
    assert!(store
        .prior_outcomes("another.system", &ids)
        .await
        .unwrap()
        .is_empty());
}

/// The console's queue filters: a taxonomy code prefix (major class or category), a grid,
/// tasks with a paused clock (waiting on the resident) and tasks at risk.
async fn queue_filters_by_category_prefix_grid_and_paused_clock(db: &TestDb) {
    use hub_cases::clock::{ClockEvent, PauseReason};
    let store = db.open().await;
    let running = sample_task("Q-1", BASE_MS);
    store
        .create_routed(&running, &[sign_for_clock(30)])
        .await
        .unwrap();
    let mut paused_task = sample_task("Q-2", BASE_MS + 1);
    paused_task.category.code = "E0203".to_owned();
    paused_task.place.grid_code = Some("510504001002007".to_owned());
    let mut paused = sign_for_clock(30);
    paused
        .record(
            ClockEvent::Paused {
                at: at(BASE_MS + 60_000),
                reason: PauseReason::AwaitingResident,
            },
            hub_cases::WorkingCalendar::always_open(),
        )
        .unwrap();
    assert!(paused.deadline().is_none());
    store.create_routed(&paused_task, &[paused]).await.unwrap();
    // A task whose code shares characters with the prefix, not at its start.
    let mut lookalike = sample_task("Q-3", BASE_MS + 2);
    lookalike.category.code = "C0102".to_owned();
    store.create_routed(&lookalike, &[]).await.unwrap();

    let ids = |filter: TaskFilter| {
        let store = store.clone();
        async move {
            let mut ids: Vec<String> = store
                .list_tasks(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.fields.task_id)
                .collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let of_class = TaskFilter {
        category: Some("E01".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(ids(of_class).await, vec![running.task_id.clone()]);
    let of_category = TaskFilter {
        category: Some("E0203".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(ids(of_category).await, vec![paused_task.task_id.clone()]);
    let wildcard = TaskFilter {
        category: Some("%".to_owned()),
        ..TaskFilter::default()
    };
    assert!(
        ids(wildcard).await.is_empty(),
        "% is a character, not a wildcard"
    );
    let in_grid = TaskFilter {
        grid_code: Some("510504001002003".to_owned()),
        ..TaskFilter::default()
    };
    assert_eq!(
        ids(in_grid).await,
        sorted(vec![running.task_id.clone(), lookalike.task_id.clone()])
    );
    let waiting = TaskFilter {
        paused: true,
        ..TaskFilter::default()
    };
    assert_eq!(ids(waiting).await, vec![paused_task.task_id.clone()]);
    // The running clock warns at 24 minutes (0.8 of 30) and breaches at 30.
    let at_risk = |minutes: i64| TaskFilter {
        at_risk_at: Some(at(BASE_MS + minutes * 60_000)),
        ..TaskFilter::default()
    };
    assert!(ids(at_risk(10)).await.is_empty(), "not yet at risk");
    assert_eq!(ids(at_risk(25)).await, vec![running.task_id.clone()]);
    assert!(
        ids(at_risk(31)).await.is_empty(),
        "breached, no longer at risk"
    );
    let count = store
        .count_tasks(&TaskFilter {
            paused: true,
            category: Some("E01".to_owned()),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(count, 0);
}

async fn points_list_placed_tasks_of_the_scope_with_their_deadline(db: &TestDb) {
    let store = db.open().await;
    let placed = sample_task("UM-2024-000700", BASE_MS);
    let clock = sign_for_clock(30);
    store
        .create_routed(&placed, std::slice::from_ref(&clock))
        .await
        .unwrap();
    let mut unplaced = sample_task("UM-2024-000701", BASE_MS + 1);
    unplaced.place.point = None;
    store.create_routed(&unplaced, &[]).await.unwrap();
    let mut elsewhere = sample_task("UM-2024-000702", BASE_MS + 2);
    elsewhere.place.community_code = Some("510504002001".to_owned());
    store.create_routed(&elsewhere, &[]).await.unwrap();

    let scope = TaskFilter {
        community_code: Some("510504001002".to_owned()),
        ..TaskFilter::default()
    };
    let points = store.task_points(&scope, 100).await.unwrap();
    assert_eq!(points.len(), 1, "{points:?}");
    let p = &points[0];
    assert_eq!(p.task_id, placed.task_id);
    assert_eq!((p.lon, p.lat), (105.431_234_5, 28.898_765_4));
    assert_eq!(p.category_name, placed.category.name);
    assert_eq!(p.due_at, clock.deadline());
    assert_eq!(p.warning_at, clock.warning_at());
    assert!(!p.breached);
    assert_eq!(p.status, TaskStatus::Dispatched);
    assert_eq!(
        store
            .task_points(&TaskFilter::default(), 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn create_then_get_round_trips_every_field(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000123", BASE_MS);

    let task_id = created_id(store.create_routed(&task, &[]).await.unwrap());
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
    created_id(store.create_routed(&original, &[]).await.unwrap());

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
            store.create_routed(&again, &[]).await.unwrap(),
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
            tokio::spawn(async move { store.create_routed(&task, &[]).await })
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
    created_id(store.create_routed(&first, &[]).await.unwrap());

    let mut other = sample_task("UM-2024-000401", BASE_MS);
    other.task_id = first.task_id.clone();
    let err = store.create_routed(&other, &[]).await.unwrap_err();
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

    let err = store.create_routed(&task, &[]).await.unwrap_err();
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
        created_id(store.create_routed(task, &[]).await.unwrap());
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
    created_id(store.create_routed(&task, &[]).await.unwrap());

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
    created_id(store.create_routed(&task, &[]).await.unwrap());

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
