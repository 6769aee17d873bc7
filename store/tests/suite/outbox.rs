//! The outbox: events written with their task, and each destination's lease and cursor.

use hub_schemas::event::Department;
use hub_store::{TaskEvent, ROUTER_ACTOR};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    new_task_writes_its_events_to_the_outbox_in_order,
    outbox_destination_lease_cursor_and_failures,
);

async fn new_task_writes_its_events_to_the_outbox_in_order(db: &TestDb) {
    let store = db.open().await;
    let first = sample_task("CG-OUT-1", BASE_MS);
    let triage = triage_task("R-OUT-2", BASE_MS + 1000);
    store.create_routed(&first, &[]).await.unwrap();
    store.create_routed(&triage, &[]).await.unwrap();
    // A redelivered event adds nothing.
    store.create_routed(&first, &[]).await.unwrap();

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

/// An entry whose transaction commits after a later writer's is still relayed, after what a
/// relay read meanwhile: PostgreSQL writers take no ordering lock, and the relays number
/// entries as they see them committed. (SQLite's one writer commits in order; a second
/// writer would wait for the first, so the case does not arise there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_entry_that_commits_late_is_relayed_after_what_was_read() {
    use sqlx::{Connection, Executor};
    let db = crate::backends::postgres().await;
    let store = db.open().await;
    store
        .create_routed(&sample_task("CG-LATE-1", BASE_MS), &[])
        .await
        .unwrap();
    let mut slow = sqlx::PgConnection::connect(db.url()).await.unwrap();
    slow.execute("BEGIN").await.unwrap();
    slow.execute(
        "INSERT INTO outbox (task_id, department, kind, payload, created_at) \
         SELECT task_id, department, kind, payload, created_at FROM outbox \
         ORDER BY entry_id LIMIT 1",
    )
    .await
    .unwrap();
    // A later writer does not wait for the open transaction.
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        store.create_routed(&sample_task("CG-LATE-2", BASE_MS + 1000), &[]),
    )
    .await
    .expect("a writer waited for another writer's open transaction")
    .unwrap();
    let read = store.outbox_after(0, None, 100).await.unwrap();
    let up_to = read.last().expect("the committed entries").id;
    slow.execute("COMMIT").await.unwrap();
    let next = store.outbox_after(up_to, None, 100).await.unwrap();
    assert_eq!(
        next.len(),
        1,
        "the late entry comes after what was read (up to {up_to}): {next:?}"
    );
    assert!(next[0].id > up_to);
    assert!(store
        .outbox_after(next[0].id, None, 100)
        .await
        .unwrap()
        .is_empty());
}
