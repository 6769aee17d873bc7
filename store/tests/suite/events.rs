//! The event log: accepted events kept once each, without their reporters, read by period in
//! pages, forgotten after the retention.

use chrono::{DateTime, TimeDelta, Utc};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location, PersonalData, Reporter};
use hub_store::EventCursor;

use crate::backends::TestDb;

store_suite!(
    accepted_events_are_logged_once_read_by_period_and_pruned,
    a_batch_of_tasks_logs_its_events_with_it_and_a_refused_batch_none,
);

fn event(n: u32, at: DateTime<Utc>) -> CivicEvent {
    let source_id = format!("J-{n:03}");
    CivicEvent {
        event_id: CivicEvent::derive_id("police.longmatan", &source_id),
        source_system: "police.longmatan".into(),
        source_id,
        department: Department::Police,
        category_code: "0201".into(),
        category_name: Some("盗窃".into()),
        occurred_at: at - TimeDelta::minutes(5),
        received_at: at,
        location: Location {
            point: Some(GeoPoint {
                lon: 105.382181,
                lat: 29.060633,
            }),
            address: Some("梧桐社区党群服务中心".into()),
            grid_code: None,
        },
        description: "电动车被盗".into(),
        attributes: Default::default(),
        reporter: Some(Reporter {
            name: Some(PersonalData::new("张三")),
            phone: Some(PersonalData::new("13800000000")),
            id_number: None,
        }),
        raw_ref: None,
    }
}

async fn accepted_events_are_logged_once_read_by_period_and_pruned(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    let events: Vec<CivicEvent> = (0..25)
        .map(|n| event(n, t0 + TimeDelta::minutes(n.into())))
        .collect();
    let refs: Vec<&CivicEvent> = events.iter().collect();
    store.record_events(&refs).await.unwrap();
    // A redelivery, with a changed description: the first one stays.
    let mut again = events[3].clone();
    again.description = "changed".into();
    store.record_events(&[&again, &events[4]]).await.unwrap();

    let (from, to) = (t0 + TimeDelta::minutes(2), t0 + TimeDelta::minutes(22));
    let mut read = Vec::new();
    let mut cursor: Option<EventCursor> = None;
    loop {
        let page = store
            .logged_events(from, to, cursor.as_ref(), 7)
            .await
            .unwrap();
        let full = page.len() == 7;
        if let Some(last) = page.last() {
            cursor = Some(EventCursor {
                received_at: last.received_at,
                source_system: last.source_system.clone(),
                source_id: last.source_id.clone(),
            });
        }
        read.extend(page);
        if !full {
            break;
        }
    }
    let ids: Vec<&str> = read.iter().map(|e| e.source_id.as_str()).collect();
    let expected: Vec<String> = (2..22).map(|n| format!("J-{n:03}")).collect();
    assert_eq!(
        ids, expected,
        "from inclusive, to exclusive, in time order, no doubles"
    );
    let kept = read.iter().find(|e| e.source_id == "J-003").unwrap();
    let mut original = events[3].clone();
    original.reporter = None;
    assert_eq!(
        *kept, original,
        "the first copy, whole but for its reporter"
    );
    let one = store
        .logged_event("police.longmatan", "J-003")
        .await
        .unwrap();
    assert_eq!(
        one.as_ref(),
        Some(&original),
        "one record's event by its source"
    );
    assert!(store
        .logged_event("police.other", "J-003")
        .await
        .unwrap()
        .is_none());

    let forgotten = store
        .prune_events(t0 + TimeDelta::minutes(10))
        .await
        .unwrap();
    assert_eq!(forgotten, 10);
    let left = store
        .logged_events(t0 - TimeDelta::days(1), t0 + TimeDelta::days(1), None, 100)
        .await
        .unwrap();
    assert_eq!(left.len(), 15);
}

/// The routing pipeline's batch writes its events in the task transaction: logged when the
/// tasks are, not at all when the store refuses the batch (which then goes one at a time).
async fn a_batch_of_tasks_logs_its_events_with_it_and_a_refused_batch_none(db: &TestDb) {
    use crate::fixtures::{sample_task, sign_for_clock, CreateRouted, BASE_MS};
    use hub_cases::opening::Opening;
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(BASE_MS).unwrap();
    let period = (t0 - TimeDelta::days(1), t0 + TimeDelta::days(1));
    let logged = |store: std::sync::Arc<dyn hub_store::TaskStore>| async move {
        store
            .logged_events(period.0, period.1, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.source_id)
            .collect::<Vec<_>>()
    };
    let first = sample_task("UM-1", BASE_MS);
    store.create_routed(&first, &[]).await.unwrap();
    // A batch whose second task takes the id of a record stored before: refused whole.
    let mut clash = sample_task("UM-3", BASE_MS);
    clash.task_id = first.task_id.clone();
    let refused = [sample_task("UM-2", BASE_MS), clash];
    let openings: Vec<Opening> = refused
        .iter()
        .map(|t| Opening::new(t, vec![sign_for_clock(30)]))
        .collect();
    let events = [event(2, t0), event(3, t0)];
    let pairs: Vec<_> = refused.iter().zip(&openings).collect();
    let refs: Vec<&CivicEvent> = events.iter().collect();
    assert!(store.create_tasks(&pairs, &refs).await.is_err());
    assert!(
        logged(store.clone()).await.is_empty(),
        "a refused batch logs nothing"
    );

    let pairs: Vec<_> = refused[..1].iter().zip(&openings).collect();
    store.create_tasks(&pairs, &refs[..1]).await.unwrap();
    assert_eq!(logged(store.clone()).await, ["J-002"]);

    // When tasks were handled, for a replay's on-time figures: only those that were.
    let id = refused[0].task_id.clone();
    assert!(store.handled_times(&[&id]).await.unwrap().is_empty());
    let signed = hub_cases::apply(
        &crate::fixtures::dispatched_state("510504001002.workstation"),
        hub_cases::lifecycle::Action::SignFor,
        &hub_cases::Actor::person("alice", Some("510504001002.workstation")),
        t0 + TimeDelta::minutes(7),
    )
    .unwrap();
    store
        .apply_transition(&id, 0, &signed, &[], None, None)
        .await
        .unwrap();
    let handled = store
        .handled_times(&[&id, &first.task_id, "no-such-task"])
        .await
        .unwrap();
    assert_eq!(
        handled.get(&id),
        Some(&hub_store::Handled {
            signed_for_at: Some(t0 + TimeDelta::minutes(7)),
            resolved_at: None,
        })
    );
    assert_eq!(handled.len(), 1, "{handled:?}");
}
