//! The event log: accepted events kept once each, without their reporters, read by period in
//! pages, forgotten after the retention.

use chrono::{DateTime, TimeDelta, Utc};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location, PersonalData, Reporter};
use hub_store::EventCursor;

use crate::backends::TestDb;

store_suite!(accepted_events_are_logged_once_read_by_period_and_pruned);

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
