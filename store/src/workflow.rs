//! The case workflow in the store: each task's state machine with an optimistic version, its
//! SLA clocks, and the alerts raised on them (claimed once across hub processes).
//!
//! A lifecycle action is written as one transaction: the task's new status and state (only
//! if its version is still the one the action was decided on), a history entry, the changed
//! clocks, and the outbox event.

use chrono::{DateTime, Utc};
use hub_router::task::TaskStatus;
use hub_router::workflow::lifecycle::Action;
use hub_router::workflow::{SlaClock, TaskState, Transition};
use serde::Serialize;

use crate::StoreError;

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

/// An SLA clock as stored, with the tracker's id for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredClock {
    pub id: i64,
    pub task_id: String,
    pub clock: SlaClock,
    /// The alerts already raised on it (`warning`, `breach`, `step_overdue`).
    pub alerts: Vec<String>,
}

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
}

impl ClockAlert {
    pub(crate) fn is_breach(&self) -> bool {
        self.kind == "breach" || self.kind == "step_overdue"
    }
}

/// The key that makes a clock unique within its task: its kind and round.
pub(crate) fn clock_key(clock: &SlaClock) -> Result<String, StoreError> {
    let kind = serde_json::to_string(&clock.kind).map_err(|e| StoreError::InvalidTask {
        task_id: String::new(),
        reason: format!("clock kind cannot be written as JSON: {e}"),
    })?;
    Ok(format!("{kind}#{}", clock.round))
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
        _ => String::new(),
    };
    let mut note = format!("{}{details}", t.label());
    if let Some(n) = &t.note {
        note.push_str(" — ");
        note.push_str(n);
    }
    note
}

/// A row of `sla_clocks` as read.
#[derive(sqlx::FromRow)]
pub(crate) struct ClockRow {
    pub id: i64,
    pub task_id: String,
    pub clock: String,
}

impl ClockRow {
    pub(crate) fn into_clock(self, alerts: Vec<String>) -> Result<StoredClock, StoreError> {
        let clock = serde_json::from_str(&self.clock).map_err(|e| StoreError::Corrupt {
            task_id: self.task_id.clone(),
            column: "sla_clocks.clock",
            reason: e.to_string(),
        })?;
        Ok(StoredClock {
            id: self.id,
            task_id: self.task_id,
            clock,
            alerts,
        })
    }
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

// SQL shared by both dialects.
pub(crate) const SELECT_WORKFLOW: &str = "SELECT task_id, status, workflow, workflow_version, \
     due_at, breached FROM tasks WHERE task_id = $1";
pub(crate) const SELECT_HEAD: &str = "SELECT department, source_system, source_id, status, \
     workflow_version FROM tasks WHERE task_id = $1";
/// Binds task, status, workflow, new version, updated_at, due_at, expected version.
pub(crate) const UPDATE_WORKFLOW: &str = "UPDATE tasks SET status = $2, workflow = $3, \
     workflow_version = $4, updated_at = $5, due_at = $6 WHERE task_id = $1 AND workflow_version = $7";
pub(crate) const NEXT_SEQ: &str =
    "SELECT COALESCE(MAX(seq), 0) + 1 FROM task_history WHERE task_id = $1";
pub(crate) const INSERT_HISTORY_ACTION: &str = "INSERT INTO task_history (task_id, seq, \
     from_status, to_status, actor, note, at, action) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
/// Binds task, key, clock JSON, open (0/1), deadline.
pub(crate) const UPSERT_CLOCK: &str =
    "INSERT INTO sla_clocks (task_id, clock_key, clock, is_open, \
     deadline) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (task_id, clock_key) DO UPDATE SET \
     clock = excluded.clock, is_open = excluded.is_open, deadline = excluded.deadline";
pub(crate) const SELECT_TASK_CLOCKS: &str =
    "SELECT id, task_id, clock FROM sla_clocks WHERE task_id = $1 ORDER BY id";
pub(crate) const SELECT_TASK_ALERTS: &str = "SELECT a.clock_id, a.kind FROM sla_alerts a \
     JOIN sla_clocks c ON c.id = a.clock_id WHERE c.task_id = $1 ORDER BY a.clock_id";
pub(crate) const SELECT_OPEN_CLOCKS: &str =
    "SELECT id, task_id, clock FROM sla_clocks WHERE is_open = 1 AND id > $1 ORDER BY id LIMIT $2";
pub(crate) const SELECT_OPEN_ALERTS: &str = "SELECT a.clock_id, a.kind FROM sla_alerts a \
     JOIN sla_clocks c ON c.id = a.clock_id WHERE c.is_open = 1 AND c.id > $1 AND c.id <= $2";
/// Binds clock id, kind, due_at, raised_at, raised_by. One row per (clock, kind): the claim.
pub(crate) const CLAIM_ALERT: &str = "INSERT INTO sla_alerts (clock_id, kind, due_at, raised_at, \
     raised_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub(crate) const MARK_BREACHED: &str =
    "UPDATE tasks SET breached = 1, updated_at = $2 WHERE task_id = $1";

/// Groups `(clock_id, kind)` alert rows by clock.
pub(crate) fn group_alerts(
    rows: Vec<(i64, String)>,
) -> std::collections::HashMap<i64, Vec<String>> {
    let mut by_clock: std::collections::HashMap<i64, Vec<String>> = Default::default();
    for (id, kind) in rows {
        by_clock.entry(id).or_default().push(kind);
    }
    by_clock
}
