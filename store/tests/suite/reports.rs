//! Duplicate reports linked to one task, the search for open tasks nearby, and events sent
//! back to their department.

use hub_schemas::event::Department;
use hub_store::{DepartmentReturn, LinkOutcome, NearQuery, PriorOutcome, TaskEvent, TaskFilter};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    duplicate_reports_link_to_one_task_and_hear_its_events,
    open_tasks_near_filters_by_group_time_and_box,
    returned_events_are_kept_once_and_published_to_their_department,
);

async fn duplicate_reports_link_to_one_task_and_hear_its_events(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("CG-DUP-1", BASE_MS);
    store.create_routed(&task, &[]).await.unwrap();
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
    store.create_routed(&task, &[]).await.unwrap();
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
