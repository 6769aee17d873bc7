//! Lifecycle actions and the SLA clocks they and the router write.

use chrono::Utc;
use hub_cases::lifecycle::Action;
use hub_cases::{apply, Actor, WorkingCalendar};
use hub_router::task::TaskStatus;
use hub_store::{ApplyOutcome, TaskEvent, TaskFilter, TaskOrder};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    lifecycle_action_writes_state_history_clocks_and_outbox_once,
    dispatch_clocks_are_stored_with_the_task_and_seen_as_changes,
    soonest_due_lists_the_next_to_breach_first_and_tasks_without_deadline_last,
    a_task_handed_to_another_unit_has_it_as_its_lead,
    a_rerouted_task_stands_as_the_version_routed_it,
);

/// 改派 by a rules version: lead, co-handlers and the version the task records change with
/// the transition, and its history entry names the version.
async fn a_rerouted_task_stands_as_the_version_routed_it(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000960", BASE_MS);
    let id = created_id(store.create_routed(&task, &[]).await.unwrap());
    let lead = unit("510504001002.property", "property_company", "红星社区物业");
    let co = unit(
        "510504001002.residents_committee",
        "residents_committee",
        "红星社区居委会",
    );
    let rerouted = apply(
        &dispatched_state("510504001002.workstation"),
        Action::Reroute {
            lead: lead.clone(),
            co_handlers: vec![co.clone()],
            rules_version: "r-0123456789ab".into(),
        },
        &Actor::person("管理员", None),
        at(BASE_MS + 60_000),
    )
    .unwrap();
    assert_eq!(rerouted.to, TaskStatus::Dispatched);
    store
        .apply_transition(&id, 0, &rerouted, &[], None, Some(&lead))
        .await
        .unwrap();
    let stored = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.fields.lead_unit,
            stored.fields.co_handlers,
            stored.fields.rules_version.as_str()
        ),
        (Some(lead), vec![co], "r-0123456789ab")
    );
    let history = store.task_history(&id).await.unwrap();
    let last = history.last().unwrap().note.clone().unwrap_or_default();
    assert!(
        last.contains("rerouted to 510504001002.property with 510504001002.residents_committee by rules version r-0123456789ab"),
        "{last}"
    );
    let report = store.verify_history(Some(&id), None).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.broken);
}

/// Arbitration (or a dispatch from triage) hands the task to a unit: the task's lead is that
/// unit from then on, in the same transaction; a stale decision changes nothing.
async fn a_task_handed_to_another_unit_has_it_as_its_lead(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000950", BASE_MS);
    let id = created_id(store.create_routed(&task, &[]).await.unwrap());
    let street = Actor::person("street", Some("510504001.triage_desk"));
    let returned = apply(
        &dispatched_state("510504001002.workstation"),
        Action::Return {
            reason: hub_cases::lifecycle::ReturnReason::NotOurRemit,
        },
        &Actor::person("alice", Some("510504001002.workstation")),
        at(BASE_MS + 60_000),
    )
    .unwrap();
    store
        .apply_transition(&id, 0, &returned, &[], None, None)
        .await
        .unwrap();
    let police = unit(
        "510504001002.police_station",
        "police_station",
        "红星社区警务室",
    );
    let arbitrated = apply(
        &returned.state,
        Action::Arbitrate {
            unit: police.unit_id.clone(),
        },
        &street,
        at(BASE_MS + 120_000),
    )
    .unwrap();
    assert_eq!(
        store
            .apply_transition(&id, 0, &arbitrated, &[], None, Some(&police))
            .await
            .unwrap(),
        ApplyOutcome::Conflict { current_version: 1 },
    );
    assert_eq!(
        store.get_task(&id).await.unwrap().unwrap().fields.lead_unit,
        task.lead_unit,
        "a refused transition leaves the lead"
    );
    store
        .apply_transition(&id, 1, &arbitrated, &[], None, Some(&police))
        .await
        .unwrap();
    let stored = store.get_task(&id).await.unwrap().unwrap();
    assert_eq!(stored.fields.lead_unit, Some(police.clone()));
    let listed = store
        .list_tasks(&TaskFilter {
            unit_id: Some(police.unit_id.clone()),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

async fn soonest_due_lists_the_next_to_breach_first_and_tasks_without_deadline_last(db: &TestDb) {
    let store = db.open().await;
    // Created in this order, due in 30, 10 and (no clock) never, 20 minutes.
    for (i, minutes) in [Some(30), Some(10), None, Some(20)].into_iter().enumerate() {
        let task = sample_task(&format!("UM-2024-00092{i}"), BASE_MS + i as i64);
        let clocks: Vec<_> = minutes.map(sign_for_clock).into_iter().collect();
        store.create_routed(&task, &clocks).await.unwrap();
    }
    let order = |tasks: Vec<hub_router::task::Task>| -> Vec<String> {
        tasks.into_iter().map(|t| t.fields.source_id).collect()
    };
    let soonest = store
        .list_tasks(&TaskFilter {
            order: TaskOrder::SoonestDue,
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        order(soonest),
        [
            "UM-2024-000921",
            "UM-2024-000923",
            "UM-2024-000920",
            "UM-2024-000922"
        ]
    );
    let newest = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(
        order(newest),
        [
            "UM-2024-000923",
            "UM-2024-000922",
            "UM-2024-000921",
            "UM-2024-000920"
        ]
    );
}

async fn lifecycle_action_writes_state_history_clocks_and_outbox_once(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000900", BASE_MS);
    let id = created_id(store.create_routed(&task, &[]).await.unwrap());
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
            .apply_transition(&id, 0, &t, std::slice::from_ref(&clock), due, None)
            .await
            .unwrap(),
        ApplyOutcome::Applied { seq: 3 }
    );
    // The same action decided on the stale version changes nothing.
    assert_eq!(
        store
            .apply_transition(&id, 0, &t, &[], None, None)
            .await
            .unwrap(),
        ApplyOutcome::Conflict { current_version: 1 }
    );
    assert_eq!(
        store
            .apply_transition("no-such-task", 0, &t, &[], None, None)
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
            hub_cases::ClockEvent::Stopped {
                at: at(BASE_MS + 120_000),
            },
            WorkingCalendar::always_open(),
        )
        .unwrap();
    assert!(!stopped.is_open());
    assert_eq!(
        store
            .apply_transition(&id, 1, &t2, &[stopped.clone()], None, None)
            .await
            .unwrap(),
        ApplyOutcome::Applied { seq: 4 }
    );
    let clocks = store.task_clocks(&id).await.unwrap();
    assert_eq!(clocks.len(), 1);
    assert_eq!(clocks[0].clock, stopped);
    assert!(store.open_clocks(0, 100).await.unwrap().is_empty());
}

async fn dispatch_clocks_are_stored_with_the_task_and_seen_as_changes(db: &TestDb) {
    let store = db.open().await;
    let before = Utc::now() - chrono::TimeDelta::seconds(1);
    let clock = sign_for_clock(10);
    let deadline = clock.deadline().unwrap();
    let id = created_id(
        store
            .create_routed(
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
    assert_eq!((last_id, at_ms), (open[0].id, open[0].changed_at));
    // The feed gives keys; the clocks are read in full by id (an unknown id is skipped).
    assert_eq!(
        store.clocks(&[last_id, last_id + 1000]).await.unwrap(),
        open,
        "the clock read by id is the stored one"
    );
    assert!(store.clocks(&[]).await.unwrap().is_empty());
    assert!(store
        .clocks_changed(at_ms, last_id, 100)
        .await
        .unwrap()
        .is_empty());
    store
        .create_routed(&sample_task("UM-2024-000910", BASE_MS), &[clock])
        .await
        .unwrap();
    assert!(store
        .clocks_changed(at_ms, last_id, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.task_clocks(&id).await.unwrap().len(), 1);
}
