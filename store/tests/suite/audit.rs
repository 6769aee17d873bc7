//! Tamper evidence: a history edited, cut or rewritten in the database behind the hub's back
//! is named by `verify_history`; an untouched one verifies clean.

use std::sync::Arc;

use hub_cases::lifecycle::Action;
use hub_cases::{apply, Actor};
use hub_store::{ClockAlert, TaskStore};
use sqlx::Connection;

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    untouched_histories_verify_clean_and_checkpoint_only_what_moved,
    an_entry_edited_in_the_database_is_named_by_task_and_entry,
    a_deleted_entry_and_a_deleted_history_are_named,
    a_cut_or_rewritten_chain_is_caught_by_the_checkpoint,
    a_checkpoint_edited_or_signed_with_another_key_is_named,
);

const KEY: &[u8] = b"audit key of the test city";

/// Runs `sql` on the store's database over a connection of its own, as a DBA with write
/// access (or an intruder) would.
pub(crate) async fn tamper(db: &TestDb, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(db.url()).await.unwrap();
    let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
    assert!(done.rows_affected() > 0, "the edit changed nothing: {sql}");
    conn.close().await.unwrap();
}

/// Two tasks; the first signed for and alerted on, so its chain is five entries long (its
/// two opening entries, the sign-for, a warning and a breach).
async fn two_histories(store: &Arc<dyn TaskStore>) -> (String, String) {
    let first = created_id(
        store
            .create_routed(&sample_task("UM-2024-000970", BASE_MS), &[])
            .await
            .unwrap(),
    );
    let second = created_id(
        store
            .create_routed(&sample_task("UM-2024-000971", BASE_MS + 1), &[])
            .await
            .unwrap(),
    );
    let t = apply(
        &dispatched_state("510504001002.workstation"),
        Action::SignFor.with_note("马上到"),
        &Actor::person("alice", Some("510504001002.workstation")),
        at(BASE_MS + 60_000),
    )
    .unwrap();
    let clock = sign_for_clock(10);
    store
        .apply_transition(
            &first,
            0,
            &t,
            std::slice::from_ref(&clock),
            clock.deadline(),
            None,
        )
        .await
        .unwrap();
    let clock_id = store.open_clocks(0, 10).await.unwrap()[0].id;
    for (kind, minutes) in [("warning", 8), ("breach", 11)] {
        store
            .raise_alert(&ClockAlert {
                clock_id,
                task_id: first.clone(),
                kind: kind.to_owned(),
                due_at: at(BASE_MS + minutes * 60_000),
                raised_at: at(BASE_MS + minutes * 60_000),
                raised_by: "system:sla_tracker".to_owned(),
                note: format!("sla_{kind}: sign_for"),
                then: None,
            })
            .await
            .unwrap();
    }
    (first, second)
}

fn places(report: &hub_store::AuditReport) -> Vec<String> {
    report.broken.iter().map(|b| b.at.to_string()).collect()
}

async fn untouched_histories_verify_clean_and_checkpoint_only_what_moved(db: &TestDb) {
    let store = db.open().await;
    let (first, _) = two_histories(&store).await;
    let entries = store.task_history(&first).await.unwrap().len() as u64;
    assert!(entries >= 4, "sign-for and two alerts after the opening");
    let report = store.verify_history(None, Some(KEY)).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.tasks, report.unchained), (2, 0));
    assert!(report.entries > entries);

    let one = store
        .checkpoint_history(Some(KEY), at(BASE_MS))
        .await
        .unwrap();
    let one = one.expect("two chains to record");
    assert_eq!((one.id, one.heads, one.signed), (1, 2, true));
    assert_eq!(
        store
            .checkpoint_history(Some(KEY), at(BASE_MS))
            .await
            .unwrap(),
        None,
        "nothing moved since"
    );
    let t = apply(
        &store
            .workflow(&first)
            .await
            .unwrap()
            .unwrap()
            .state
            .unwrap(),
        Action::Start,
        &Actor::person("alice", Some("510504001002.workstation")),
        at(BASE_MS + 3_600_000),
    )
    .unwrap();
    store
        .apply_transition(&first, 1, &t, &[], None, None)
        .await
        .unwrap();
    let two = store.checkpoint_history(Some(KEY), at(BASE_MS + 1)).await;
    assert_eq!(two.unwrap().map(|c| (c.id, c.heads)), Some((2, 1)));
    let report = store.verify_history(None, Some(KEY)).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.checkpoints, report.signed_checkpoints), (2, 2));
    let one_task = store.verify_history(Some(&first), Some(KEY)).await.unwrap();
    assert!(one_task.is_clean() && one_task.tasks == 1, "{one_task:?}");
}

async fn an_entry_edited_in_the_database_is_named_by_task_and_entry(db: &TestDb) {
    let store = db.open().await;
    let (first, second) = two_histories(&store).await;
    // The breach becomes a harmless note: the figures the community is ranked on change.
    tamper(
        db,
        &format!(
            "UPDATE task_history SET note = 'sla_warning: sign_for' \
             WHERE task_id = '{first}' AND seq = 5"
        ),
    )
    .await;
    let report = store.verify_history(None, None).await.unwrap();
    assert_eq!(places(&report), [format!("task {first} entry 5")]);
    assert!(report.broken[0].reason.contains("edited"), "{report:?}");
    assert!(store
        .verify_history(Some(&second), None)
        .await
        .unwrap()
        .is_clean());
    // Its time moved back under the deadline instead: named the same way.
    tamper(
        db,
        &format!("UPDATE task_history SET at = at - 1 WHERE task_id = '{second}' AND seq = 1"),
    )
    .await;
    let report = store.verify_history(Some(&second), None).await.unwrap();
    assert_eq!(places(&report), [format!("task {second} entry 1")]);
}

async fn a_deleted_entry_and_a_deleted_history_are_named(db: &TestDb) {
    let store = db.open().await;
    let (first, second) = two_histories(&store).await;
    tamper(
        db,
        &format!("DELETE FROM task_history WHERE task_id = '{first}' AND seq = 4"),
    )
    .await;
    tamper(
        db,
        &format!("DELETE FROM task_history WHERE task_id = '{second}'"),
    )
    .await;
    let report = store.verify_history(None, None).await.unwrap();
    let mut want = vec![format!("task {first} entry 5"), format!("task {second}")];
    want.sort();
    let mut got = places(&report);
    got.sort();
    assert_eq!(got, want, "{report:?}");
    let gap = report
        .broken
        .iter()
        .find(|b| b.at.to_string().contains(&first));
    assert!(
        gap.unwrap().reason.contains("entry 4 is missing"),
        "{report:?}"
    );
}

async fn a_cut_or_rewritten_chain_is_caught_by_the_checkpoint(db: &TestDb) {
    let store = db.open().await;
    let (first, second) = two_histories(&store).await;
    store
        .checkpoint_history(Some(KEY), at(BASE_MS))
        .await
        .unwrap()
        .unwrap();
    // The breach (entry 5, the head) is rewritten as a warning and its hash recomputed, as
    // anyone who reads the format could: the chain itself holds again.
    let (prev, row) = {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(db.url()).await.unwrap();
        let prev: String = sqlx::query_scalar(&format!(
            "SELECT hash FROM task_history WHERE task_id = '{first}' AND seq = 4"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let row: (Option<String>, String, String, i64, Option<String>) = sqlx::query_as(&format!(
            "SELECT from_status, to_status, actor, at, action FROM task_history \
                 WHERE task_id = '{first}' AND seq = 5"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        (prev, row)
    };
    let note = "sla_warning: sign_for";
    let (from, to, actor, at_ms, action) = row;
    let forged = entry_hash(&[
        Some(first.as_bytes()),
        Some(&5i64.to_be_bytes()),
        from.as_deref().map(str::as_bytes),
        Some(to.as_bytes()),
        Some(actor.as_bytes()),
        Some(note.as_bytes()),
        Some(&at_ms.to_be_bytes()),
        action.as_deref().map(str::as_bytes),
        Some(prev.as_bytes()),
    ]);
    tamper(
        db,
        &format!(
            "UPDATE task_history SET note = '{note}', hash = '{forged}' \
             WHERE task_id = '{first}' AND seq = 5"
        ),
    )
    .await;
    let chains_only = store.verify_history(Some(&first), None).await.unwrap();
    assert!(
        chains_only
            .broken
            .iter()
            .all(|b| !b.reason.contains("edited")),
        "the forged entry passes the chain check: {chains_only:?}"
    );
    // The second task's last entry is cut off: what is left is a whole chain too.
    tamper(
        db,
        &format!("DELETE FROM task_history WHERE task_id = '{second}' AND seq = 2"),
    )
    .await;
    let report = store.verify_history(None, Some(KEY)).await.unwrap();
    let reason = |place: String| {
        let found = report.broken.iter().find(|b| b.at.to_string() == place);
        found.map(|b| b.reason.clone()).unwrap_or_default()
    };
    assert!(
        reason(format!("task {first} entry 5")).contains("rewritten"),
        "{report:?}"
    );
    assert!(
        reason(format!("task {second} entry 2")).contains("is gone"),
        "{report:?}"
    );
    assert_eq!(report.broken_total, 2, "{report:?}");
    // The intruder then records the forged head in the checkpoint: its digest breaks.
    tamper(
        db,
        &format!("UPDATE audit_heads SET hash = '{forged}' WHERE task_id = '{first}'"),
    )
    .await;
    let report = store.verify_history(None, Some(KEY)).await.unwrap();
    assert!(
        places(&report).contains(&"checkpoint 1".to_owned()),
        "{report:?}"
    );
}

/// The entry hash as `hub_store`'s history module documents it, written again from that
/// description: SHA-256 over a version tag and each column, length-prefixed (NULL as 0).
fn entry_hash(fields: &[Option<&[u8]>]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"hub.task_history.v1");
    for field in fields {
        match field {
            None => h.update([0u8]),
            Some(bytes) => {
                h.update([1u8]);
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn a_checkpoint_edited_or_signed_with_another_key_is_named(db: &TestDb) {
    let store = db.open().await;
    two_histories(&store).await;
    store
        .checkpoint_history(Some(KEY), at(BASE_MS))
        .await
        .unwrap()
        .unwrap();
    let clean = store.verify_history(None, Some(KEY)).await.unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    let other = store
        .verify_history(None, Some(b"another key"))
        .await
        .unwrap();
    assert_eq!(places(&other), ["checkpoint 1"]);
    assert!(other.broken[0].reason.contains("signature"), "{other:?}");
    tamper(db, "UPDATE audit_checkpoints SET at = at + 1 WHERE id = 1").await;
    let edited = store.verify_history(None, Some(KEY)).await.unwrap();
    assert_eq!(places(&edited), ["checkpoint 1"]);
    assert!(edited.broken[0].reason.contains("edited"), "{edited:?}");
}
