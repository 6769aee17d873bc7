//! Alerts raised on SLA clocks (warning, breach, escalation step overdue): claimed once
//! across hub processes, and written with their history entry, outbox event and, for a
//! breach, the escalation it leads to, in one transaction.

use chrono::{DateTime, Utc};
use hub_cases::{SlaClock, Transition};
use hub_schemas::task::TaskStatusChanged;

use crate::store::Store;
use crate::workflow::{self, TaskHead, TransitionWrite};
use crate::{history, outbox, StoreError, TaskEvent};

/// An alert the SLA tracker raises on a clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockAlert {
    pub clock_id: i64,
    pub task_id: String,
    /// `warning`, `breach` or `step_overdue`: one of each per clock, ever.
    pub kind: String,
    /// When it fell due (earlier than `raised_at` after downtime).
    pub due_at: DateTime<Utc>,
    pub raised_at: DateTime<Utc>,
    /// The process raising it.
    pub raised_by: String,
    /// What the history says.
    pub note: String,
    /// A transition written with the alert, in the same transaction (the escalation a
    /// breach leads to), so that a crash cannot leave a breach raised and not escalated.
    pub then: Option<AlertTransition>,
}

/// A lifecycle transition that goes with an alert; see [`ClockAlert::then`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTransition {
    /// The workflow version the transition was decided on.
    pub expected_version: u64,
    pub transition: Transition,
    /// The clocks it starts or changes.
    pub clocks: Vec<SlaClock>,
    /// The task's earliest open deadline afterwards.
    pub due_at: Option<DateTime<Utc>>,
}

/// What [`crate::TaskStore::raise_alert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// This call raised it (and wrote its transition).
    Raised,
    /// It was raised before, by this process or another; nothing was written.
    AlreadyRaised,
    /// The task's workflow moved past the version the transition was decided on; nothing
    /// was written: decide again on the current state.
    Stale { current_version: u64 },
}

impl ClockAlert {
    pub(crate) fn is_breach(&self) -> bool {
        self.kind == "breach" || self.kind == "step_overdue"
    }
}

/// Binds clock id, kind, due_at, raised_at, raised_by. One row per (clock, kind): the claim.
const CLAIM_ALERT: &str = "INSERT INTO sla_alerts (clock_id, kind, due_at, raised_at, \
     raised_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
const MARK_BREACHED: &str = "UPDATE tasks SET breached = 1, updated_at = $2 WHERE task_id = $1";

pub(crate) async fn raise_alert(
    store: &Store,
    alert: &ClockAlert,
) -> Result<RaiseOutcome, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("raise {} on clock {}", alert.kind, alert.clock_id)
        })
    };
    let mut tx = store.writer.begin().await.map_err(err())?;
    let claimed = sqlx::query(CLAIM_ALERT)
        .bind(alert.clock_id)
        .bind(&alert.kind)
        .bind(alert.due_at.timestamp_millis())
        .bind(alert.raised_at.timestamp_millis())
        .bind(&alert.raised_by)
        .execute(&mut *tx)
        .await
        .map_err(err())?
        .rows_affected();
    if claimed == 0 {
        return Ok(RaiseOutcome::AlreadyRaised);
    }
    let head: TaskHead = sqlx::query_as(workflow::SELECT_HEAD)
        .bind(&alert.task_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(err())?;
    let entry = history::Entry {
        task_id: alert.task_id.clone(),
        seq: 0,
        from_status: Some(head.status.clone()),
        to_status: head.status.clone(),
        actor: alert.raised_by.clone(),
        note: Some(alert.note.clone()),
        at: alert.raised_at.timestamp_millis(),
        action: Some(alert_action(alert)),
    };
    let seq = history::append(store, &mut tx, entry).await?;
    if alert.is_breach() {
        sqlx::query(MARK_BREACHED)
            .bind(&alert.task_id)
            .bind(alert.raised_at.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    let event = TaskEvent::TaskStatusChanged(TaskStatusChanged {
        task_id: alert.task_id.clone(),
        seq,
        source_system: head.source_system.clone(),
        source_id: head.source_id.clone(),
        from_status: Some(head.status.clone()),
        to_status: head.status.clone(),
        actor: alert.raised_by.clone(),
        note: Some(alert.note.clone()),
        changed_at: alert.raised_at,
    });
    let (task_id, at) = (&alert.task_id, alert.raised_at);
    outbox::insert_task_event(store, &mut tx, task_id, &head.department, &event, at).await?;
    if let Some(then) = &alert.then {
        let change = TransitionWrite {
            task_id: &alert.task_id,
            head: &head,
            expected_version: then.expected_version,
            t: &then.transition,
            clocks: &then.clocks,
            due_at: then.due_at,
            // Escalation moves a case up the ladder; it stays with its unit.
            new_lead: None,
        };
        if change.write(store, &mut tx).await?.is_none() {
            // Rolled back with the claim: the alert is raised with its transition or not.
            return Ok(RaiseOutcome::Stale {
                current_version: head.workflow_version.unsigned_abs(),
            });
        }
    }
    tx.commit().await.map_err(err())?;
    Ok(RaiseOutcome::Raised)
}

/// The history entry of an alert, as the `action` column records it.
pub(crate) fn alert_action(alert: &ClockAlert) -> String {
    serde_json::json!({
        "action": format!("sla_{}", alert.kind),
        "clock_id": alert.clock_id,
        "due_at": alert.due_at,
    })
    .to_string()
}
