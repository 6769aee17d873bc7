//! The case workflow in the store: each task's state machine with an optimistic version.
//!
//! A lifecycle action is written as one transaction: the task's new status and state (only
//! if its version is still the one the action was decided on), a history entry, the changed
//! clocks, and the outbox event.

use chrono::{DateTime, Utc};
use hub_cases::lifecycle::Action;
use hub_cases::{SlaClock, TaskState, Transition};
use hub_router::task::{AssignedUnit, TaskStatus};
use hub_schemas::task::TaskStatusChanged;
use serde::Serialize;
use sqlx::AnyConnection;

use crate::store::Store;
use crate::{clocks, history, indicators, outbox, StoreError, TaskEvent};

/// A task's workflow as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRecord {
    pub status: TaskStatus,
    /// `None` until the first lifecycle action (the router stores tasks without one).
    pub state: Option<TaskState>,
    /// Lifecycle actions applied so far; an action must name it to be applied.
    pub version: u64,
    /// The earliest deadline among the task's open clocks.
    pub due_at: Option<DateTime<Utc>>,
    /// Whether any of its clocks breached.
    pub breached: bool,
}

/// What [`crate::TaskStore::apply_transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Written; the history entry has this sequence number.
    Applied {
        seq: i64,
    },
    /// The task changed since the action was decided: nothing was written.
    Conflict {
        current_version: u64,
    },
    NotFound,
}

const SELECT_WORKFLOW: &str = "SELECT task_id, status, workflow, workflow_version, \
     due_at, breached FROM tasks WHERE task_id = $1";
pub(crate) const SELECT_HEAD: &str = "SELECT department, source_system, source_id, status, \
     workflow_version FROM tasks WHERE task_id = $1";
/// Binds task, status, workflow, new version, updated_at, due_at, expected version, and the
/// state's counts the indicators read (rework, extension, callback verdict).
const UPDATE_WORKFLOW: &str = "UPDATE tasks SET status = $2, workflow = $3, \
     workflow_version = $4, updated_at = $5, due_at = $6, rework_count = $8, \
     extension_count = $9, callback_satisfied = $10 WHERE task_id = $1 AND workflow_version = $7";
const UPDATE_LEAD: &str = "UPDATE tasks SET lead_unit_id = $2, lead_unit_role = $3, \
     lead_unit_name = $4 WHERE task_id = $1";
const UPDATE_REROUTED: &str =
    "UPDATE tasks SET co_handlers = $2::jsonb, rules_version = $3 WHERE task_id = $1";
pub(crate) async fn workflow(
    store: &Store,
    task_id: &str,
) -> Result<Option<WorkflowRecord>, StoreError> {
    let row: Option<WorkflowRow> = sqlx::query_as(SELECT_WORKFLOW)
        .bind(task_id)
        .fetch_optional(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("read workflow of task {task_id}")
        }))?;
    row.map(WorkflowRow::into_record).transpose()
}

pub(crate) async fn apply_transition(
    store: &Store,
    task_id: &str,
    expected_version: u64,
    t: &Transition,
    clocks: &[SlaClock],
    due_at: Option<DateTime<Utc>>,
    new_lead: Option<&AssignedUnit>,
) -> Result<ApplyOutcome, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("apply {} to task {task_id}", t.action.kind())
        })
    };
    let mut tx = store.writer.begin().await.map_err(err())?;
    let head: Option<TaskHead> = sqlx::query_as(SELECT_HEAD)
        .bind(task_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err())?;
    let Some(head) = head else {
        return Ok(ApplyOutcome::NotFound);
    };
    let change = TransitionWrite {
        task_id,
        head: &head,
        expected_version,
        t,
        clocks,
        due_at,
        new_lead,
    };
    let Some(seq) = change.write(store, &mut tx).await? else {
        return Ok(ApplyOutcome::Conflict {
            current_version: head.workflow_version.unsigned_abs(),
        });
    };
    tx.commit().await.map_err(err())?;
    Ok(ApplyOutcome::Applied { seq })
}

/// A lifecycle transition to write inside a transaction (of its own, or of the alert it goes
/// with).
pub(crate) struct TransitionWrite<'a> {
    pub task_id: &'a str,
    pub head: &'a TaskHead,
    pub expected_version: u64,
    pub t: &'a Transition,
    pub clocks: &'a [SlaClock],
    pub due_at: Option<DateTime<Utc>>,
    /// The unit the transition hands the task to, which becomes its lead unit.
    pub new_lead: Option<&'a AssignedUnit>,
}

impl TransitionWrite<'_> {
    /// The new status and state (only if the version is still the expected one), a history
    /// entry, the clocks and the outbox event. `None` when the version moved: the caller
    /// drops the transaction.
    pub(crate) async fn write(
        &self,
        store: &Store,
        tx: &mut AnyConnection,
    ) -> Result<Option<i64>, StoreError> {
        let (task_id, t) = (self.task_id, self.t);
        let err = || {
            StoreError::query(store.backend(), || {
                format!("apply {} to task {task_id}", t.action.kind())
            })
        };
        let state = to_json(task_id, "workflow state", &t.state)?;
        let action = to_json(task_id, "action", &t.action)?;
        let updated = sqlx::query(UPDATE_WORKFLOW)
            .bind(task_id)
            .bind(t.to.as_str())
            .bind(&state)
            .bind(i64::try_from(t.state.version).unwrap_or(i64::MAX))
            .bind(t.at.timestamp_millis())
            .bind(self.due_at.map(|d| d.timestamp_millis()))
            .bind(i64::try_from(self.expected_version).unwrap_or(i64::MAX))
            .bind(i64::from(t.state.rework_count))
            .bind(i64::from(t.state.extension_count))
            .bind(t.state.callback_satisfied.map(i64::from))
            .execute(&mut *tx)
            .await
            .map_err(err())?
            .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        if let Some(lead) = self.new_lead {
            sqlx::query(UPDATE_LEAD)
                .bind(task_id)
                .bind(lead.unit_id.as_str())
                .bind(lead.role.as_str())
                .bind(lead.name.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err())?;
        }
        if let Action::Reroute {
            co_handlers,
            rules_version,
            ..
        } = &t.action
        {
            // The task now stands as the version routed it: its co-handlers and version.
            sqlx::query(&store.sql(UPDATE_REROUTED))
                .bind(task_id)
                .bind(to_json(task_id, "co_handlers", co_handlers)?)
                .bind(rules_version.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err())?;
        }
        let actor = actor_name(t);
        let note = history_note(t);
        let entry = history::Entry {
            task_id: task_id.to_owned(),
            seq: 0,
            from_status: Some(t.from.as_str().to_owned()),
            to_status: t.to.as_str().to_owned(),
            actor: actor.clone(),
            note: Some(note.clone()),
            at: t.at.timestamp_millis(),
            action: Some(action),
        };
        let seq = history::append(store, tx, entry).await?;
        clocks::upsert_clocks(store, tx, task_id, self.clocks).await?;
        indicators::refresh_case_facts(store, tx, task_id).await?;
        let event = TaskEvent::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id.to_owned(),
            seq,
            source_system: self.head.source_system.clone(),
            source_id: self.head.source_id.clone(),
            from_status: Some(t.from.as_str().to_owned()),
            to_status: t.to.as_str().to_owned(),
            actor,
            note: Some(note),
            changed_at: t.at,
        });
        outbox::insert_task_event(store, tx, task_id, &self.head.department, &event, t.at).await?;
        Ok(Some(seq))
    }
}

pub(crate) fn to_json<T: Serialize>(
    task_id: &str,
    what: &str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::InvalidTask {
        task_id: task_id.to_owned(),
        reason: format!("{what} cannot be written as JSON: {e}"),
    })
}

/// The actor as the history shows it: `id` or `id@unit`.
pub(crate) fn actor_name(t: &Transition) -> String {
    match &t.actor.unit {
        Some(unit) => format!("{}@{unit}", t.actor.id),
        None => t.actor.id.clone(),
    }
}

/// The history note of a transition: what happened, its particulars, and the actor's note.
pub(crate) fn history_note(t: &Transition) -> String {
    let details = match &t.action {
        Action::Dispatch { unit } | Action::Arbitrate { unit } => format!(" to {unit}"),
        Action::ReportStage { stage } => format!(" {stage}"),
        Action::Resolve { feedback } => format!(": {feedback}"),
        Action::Rework { finding } => format!(": {finding}"),
        Action::Cancel { reason } => format!(" ({}, {})", reason.as_str(), reason.label_zh()),
        Action::Return { reason } => format!(" ({}, {})", reason.as_str(), reason.label_zh()),
        Action::RequestExtension { by } => format!(" by {by}"),
        Action::ApproveExtension { by: Some(by) } => format!(" by {by}"),
        Action::Escalate { step } => format!(" to {}", step.as_str()),
        Action::ConveneJointMeeting { case } => {
            let units: Vec<String> = case
                .participants
                .iter()
                .map(|p| format!("{} ({})", p.unit, p.part))
                .collect();
            format!(": {}", units.join(", "))
        }
        Action::ReportIn { unit } | Action::CompletePart { unit } => format!(" by {unit}"),
        Action::Reroute {
            lead,
            co_handlers,
            rules_version,
        } => {
            let co: Vec<&str> = co_handlers.iter().map(|u| u.unit_id.as_str()).collect();
            let with = if co.is_empty() {
                String::new()
            } else {
                format!(" with {}", co.join(", "))
            };
            format!(
                " to {}{with} by rules version {rules_version}",
                lead.unit_id
            )
        }
        _ => String::new(),
    };
    let mut note = format!("{}{details}", t.label());
    if let Some(n) = &t.note {
        note.push_str(" — ");
        note.push_str(n);
    }
    note
}

#[derive(sqlx::FromRow)]
pub(crate) struct WorkflowRow {
    pub task_id: String,
    pub status: String,
    pub workflow: Option<String>,
    pub workflow_version: i64,
    pub due_at: Option<i64>,
    pub breached: i64,
}

impl WorkflowRow {
    pub(crate) fn into_record(self) -> Result<WorkflowRecord, StoreError> {
        let corrupt = |column, reason| StoreError::Corrupt {
            task_id: self.task_id.clone(),
            column,
            reason,
        };
        let status = TaskStatus::parse(&self.status)
            .ok_or_else(|| corrupt("status", format!("unknown status `{}`", self.status)))?;
        let state = match &self.workflow {
            Some(json) => {
                Some(serde_json::from_str(json).map_err(|e| corrupt("workflow", e.to_string()))?)
            }
            None => None,
        };
        Ok(WorkflowRecord {
            status,
            state,
            version: self.workflow_version.unsigned_abs(),
            due_at: self.due_at.and_then(DateTime::from_timestamp_millis),
            breached: self.breached != 0,
        })
    }
}

/// The task's facts a transaction needs for its history and outbox entries.
#[derive(sqlx::FromRow)]
pub(crate) struct TaskHead {
    pub department: String,
    pub source_system: String,
    pub source_id: String,
    pub status: String,
    pub workflow_version: i64,
}
