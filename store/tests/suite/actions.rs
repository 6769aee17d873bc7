//! The trail of what accounts did: kept across reopening, read by period, actor and page.

use chrono::{DateTime, TimeDelta, Utc};
use hub_store::{ActionQuery, ActionRecord};

use crate::backends::TestDb;

store_suite!(actions_are_kept_in_order_and_read_by_period_actor_and_page);

fn action(at: DateTime<Utc>, actor: &str, action: &str, outcome: u16) -> ActionRecord {
    ActionRecord {
        id: 0,
        at,
        actor: actor.into(),
        role: "street".into(),
        via: "api".into(),
        action: action.into(),
        target: "task-1".into(),
        outcome,
        source: "10.1.2.3".into(),
        detail: "中文说明, with a comma".into(),
    }
}

async fn actions_are_kept_in_order_and_read_by_period_actor_and_page(db: &TestDb) {
    let store = db.open().await;
    let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).unwrap();
    let minutes = |m: i64| t0 + TimeDelta::minutes(m);
    for (m, actor, what, outcome) in [
        (0, "街道调度员", "task.dispatch", 200),
        (1, "梧桐社区", "task.sign_for", 200),
        (2, "梧桐社区", "task.verify", 403),
        (3, "", "sign_in_refused", 401),
    ] {
        store
            .record_action(&action(minutes(m), actor, what, outcome))
            .await
            .unwrap();
    }
    drop(store);
    let store = db.open().await;
    let all = store
        .actions(&ActionQuery {
            limit: 100,
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|a| a.action.as_str()).collect::<Vec<_>>(),
        [
            "task.dispatch",
            "task.sign_for",
            "task.verify",
            "sign_in_refused"
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "ids count up");
    let mut expected = action(minutes(2), "梧桐社区", "task.verify", 403);
    expected.id = all[2].id;
    assert_eq!(all[2], expected, "every field reads back as written");

    let period = store
        .actions(&ActionQuery {
            from: Some(minutes(1)),
            to: Some(minutes(3)),
            limit: 100,
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        period.len(),
        2,
        "from is inclusive, to exclusive: {period:?}"
    );
    let by_actor = store
        .actions(&ActionQuery {
            actor: Some("梧桐社区".into()),
            limit: 100,
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_actor.len(), 2);
    let page = store
        .actions(&ActionQuery {
            after_id: Some(all[0].id),
            limit: 2,
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|a| a.id).collect::<Vec<_>>(),
        [all[1].id, all[2].id]
    );
    let newest = store
        .actions(&ActionQuery {
            limit: 2,
            newest_first: true,
            ..ActionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|a| a.id).collect::<Vec<_>>(),
        [all[3].id, all[2].id]
    );
}
