//! Alerts raised on SLA clocks, once, with the escalation a breach leads to.

use hub_cases::lifecycle::Action;
use hub_cases::{apply, Actor, ClockKind, Limit, SlaClock, WorkingCalendar};
use hub_store::{AlertTransition, ClockAlert, RaiseOutcome, TaskFilter};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    clock_alerts_are_raised_once_and_filter_tasks,
    breach_and_its_escalation_are_written_together_or_not_at_all,
);

async fn clock_alerts_are_raised_once_and_filter_tasks(db: &TestDb) {
    let store = db.open().await;
    let task = sample_task("UM-2024-000901", BASE_MS);
    let id = created_id(store.create_routed(&task, &[]).await.unwrap());
    let other = created_id(
        store
            .create_routed(&sample_task("UM-2024-000902", BASE_MS + 1), &[])
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
        .apply_transition(&id, 0, &t, &[clock], Some(deadline), None)
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

async fn breach_and_its_escalation_are_written_together_or_not_at_all(db: &TestDb) {
    let store = db.open().await;
    let clock = sign_for_clock(10);
    let deadline = clock.deadline().unwrap();
    let id = created_id(
        store
            .create_routed(&sample_task("UM-2024-000911", BASE_MS), &[clock])
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
            cause: hub_cases::clock::Phase::SignFor,
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
