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
    /// When the row was last written (the writer's wall clock).
    pub changed_at: DateTime<Utc>,
}

impl StoredClock {
    pub fn raised(&self, kind: &str) -> bool {
        self.alerts.iter().any(|a| a == kind)
    }
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

/// The earliest deadline among open, running clocks: the task's `due_at`.
pub fn earliest_deadline<'a>(
    clocks: impl IntoIterator<Item = &'a SlaClock>,
) -> Option<DateTime<Utc>> {
    clocks
        .into_iter()
        .filter(|c| c.is_open() && !c.is_paused())
        .filter_map(SlaClock::deadline)
        .min()
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
        Action::ConveneJointMeeting { case } => {
            let units: Vec<String> = case
                .participants
                .iter()
                .map(|p| format!("{} ({})", p.unit, p.part))
                .collect();
            format!(": {}", units.join(", "))
        }
        Action::ReportIn { unit } | Action::CompletePart { unit } => format!(" by {unit}"),
        _ => String::new(),
    };
    let mut note = format!("{}{details}", t.label());
    if let Some(n) = &t.note {
        note.push_str(" — ");
        note.push_str(n);
    }
    note
}

/// A row of `sla_clocks` as read, with its alerts as a comma-separated list.
#[derive(sqlx::FromRow)]
pub(crate) struct ClockRow {
    pub id: i64,
    pub task_id: String,
    pub clock: String,
    pub changed_at: i64,
    pub alerts: Option<String>,
}

impl ClockRow {
    pub(crate) fn into_clock(self) -> Result<StoredClock, StoreError> {
        let clock = serde_json::from_str(&self.clock).map_err(|e| StoreError::Corrupt {
            task_id: self.task_id.clone(),
            column: "sla_clocks.clock",
            reason: e.to_string(),
        })?;
        let mut alerts: Vec<String> = self
            .alerts
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        alerts.sort();
        Ok(StoredClock {
            id: self.id,
            task_id: self.task_id,
            clock,
            alerts,
            changed_at: DateTime::from_timestamp_millis(self.changed_at).unwrap_or_default(),
        })
    }
}

/// `SELECT` of clock rows with their alerts; `concat` is the dialect's string aggregate
/// (`group_concat` or `string_agg`), `rest` the `WHERE`/`ORDER BY`/`LIMIT` clauses.
pub(crate) fn select_clocks(concat: &str, rest: &str) -> String {
    format!(
        "SELECT c.id, c.task_id, c.clock, c.changed_at, (SELECT {concat}(a.kind, ',') FROM \
         sla_alerts a WHERE a.clock_id = c.id) AS alerts FROM sla_clocks c {rest}"
    )
}
pub(crate) const TASK_CLOCKS: &str = "WHERE c.task_id = $1 ORDER BY c.id";
pub(crate) const OPEN_CLOCKS: &str = "WHERE c.is_open = 1 AND c.id > $1 ORDER BY c.id LIMIT $2";
pub(crate) const CLOCK_BY_ID: &str = "WHERE c.id = $1";
/// Keyset over (changed_at, id): binds changed_at, id, limit.
pub(crate) const CHANGED_CLOCKS: &str = "WHERE c.changed_at > $1 OR (c.changed_at = $1 AND \
     c.id > $2) ORDER BY c.changed_at, c.id LIMIT $3";

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
/// Binds task, key, clock JSON, open (0/1), deadline, changed_at.
pub(crate) const UPSERT_CLOCK: &str =
    "INSERT INTO sla_clocks (task_id, clock_key, clock, is_open, \
     deadline, changed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task_id, clock_key) DO UPDATE SET \
     clock = excluded.clock, is_open = excluded.is_open, deadline = excluded.deadline, \
     changed_at = excluded.changed_at";
pub(crate) const SET_DUE: &str = "UPDATE tasks SET due_at = $2 WHERE task_id = $1";
/// Binds clock id, kind, due_at, raised_at, raised_by. One row per (clock, kind): the claim.
pub(crate) const CLAIM_ALERT: &str = "INSERT INTO sla_alerts (clock_id, kind, due_at, raised_at, \
     raised_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING";
pub(crate) const MARK_BREACHED: &str =
    "UPDATE tasks SET breached = 1, updated_at = $2 WHERE task_id = $1";

/// The history entry of an alert, as the `action` column records it.
pub(crate) fn alert_action(alert: &ClockAlert) -> String {
    serde_json::json!({
        "action": format!("sla_{}", alert.kind),
        "clock_id": alert.clock_id,
        "due_at": alert.due_at,
    })
    .to_string()
}
