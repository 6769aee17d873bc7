//! Reports linked to tasks (duplicates merged into one task) and events sent back to their
//! department by a community's admission list.

use chrono::{DateTime, Utc};
use hub_router::explanation::Explanation;
use hub_schemas::event::Department;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A departmental record that became, or was merged into, a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub occurred_at: DateTime<Utc>,
    pub linked_at: DateTime<Utc>,
}

/// What [`crate::TaskStore::link_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// This record was already linked (to this or another task); nothing changed.
    AlreadyLinked {
        task_id: String,
    },
}

/// How an event was already handled, if it was: the pipeline asks before routing, so a
/// redelivered event changes nothing whatever its first outcome was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorOutcome {
    /// It became or joined this task.
    Task { task_id: String },
    /// It was sent back to its department.
    Returned,
    /// A rule suppressed it (no task by design).
    Suppressed,
}

/// An event a routing rule suppressed: no task, but a recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub community_code: Option<String>,
    pub rule_id: String,
    pub rules_version: String,
    pub suppressed_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SuppressionRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    category_code: String,
    community_code: Option<String>,
    rule_id: String,
    rules_version: String,
    suppressed_at: i64,
}

impl SuppressionRow {
    pub(crate) fn into_suppression(self) -> Result<Suppression, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: format!("(suppressed event {})", self.event_id),
            column,
            reason,
        };
        Ok(Suppression {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "suppressions.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            suppressed_at: millis(self.suppressed_at)
                .ok_or_else(|| corrupt("suppressions.suppressed_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
            category_code: self.category_code,
            community_code: self.community_code,
            rule_id: self.rule_id,
            rules_version: self.rules_version,
        })
    }
}

/// An open task that a new report might duplicate.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTaskNear {
    pub task_id: String,
    pub category_group: String,
    pub lon: f64,
    pub lat: f64,
    pub occurred_at: DateTime<Utc>,
}

/// Where to look for duplicates: a category group, a time window and a bounding box.
#[derive(Debug, Clone, PartialEq)]
pub struct NearQuery {
    pub category_group: String,
    pub occurred_since: DateTime<Utc>,
    pub occurred_until: DateTime<Utc>,
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

/// An event a community's admission list did not admit, back in its department's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentReturn {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub community_code: Option<String>,
    pub reason: String,
    pub explanation: Explanation,
    pub returned_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReportRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    occurred_at: i64,
    linked_at: i64,
}

impl ReportRow {
    pub(crate) fn into_report(self, task_id: &str) -> Result<Report, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: task_id.to_owned(),
            column,
            reason,
        };
        Ok(Report {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "task_reports.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            occurred_at: millis(self.occurred_at)
                .ok_or_else(|| corrupt("task_reports.occurred_at", "out of range".into()))?,
            linked_at: millis(self.linked_at)
                .ok_or_else(|| corrupt("task_reports.linked_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NearRow {
    task_id: String,
    category_group: String,
    place_lon: f64,
    place_lat: f64,
    occurred_at: i64,
}

impl NearRow {
    pub(crate) fn into_open_task(self) -> Result<OpenTaskNear, StoreError> {
        let occurred_at = millis(self.occurred_at).ok_or_else(|| StoreError::Corrupt {
            task_id: self.task_id.clone(),
            column: "occurred_at",
            reason: "out of range".into(),
        })?;
        Ok(OpenTaskNear {
            task_id: self.task_id,
            category_group: self.category_group,
            lon: self.place_lon,
            lat: self.place_lat,
            occurred_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReturnRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    category_code: String,
    community_code: Option<String>,
    reason: String,
    explanation: String,
    returned_at: i64,
}

impl ReturnRow {
    pub(crate) fn into_return(self) -> Result<DepartmentReturn, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: format!("(returned event {})", self.event_id),
            column,
            reason,
        };
        Ok(DepartmentReturn {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "department_returns.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            explanation: serde_json::from_str(&self.explanation)
                .map_err(|e| corrupt("department_returns.explanation", e.to_string()))?,
            returned_at: millis(self.returned_at)
                .ok_or_else(|| corrupt("department_returns.returned_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
            category_code: self.category_code,
            community_code: self.community_code,
            reason: self.reason,
        })
    }
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

// SQL shared by both dialects.
pub(crate) const INSERT_REPORT: &str = "INSERT INTO task_reports (task_id, event_id, source_system, source_id, \
     department, occurred_at, linked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";
pub(crate) const SELECT_REPORTS: &str =
    "SELECT event_id, source_system, source_id, department, occurred_at, \
     linked_at FROM task_reports WHERE task_id = $1 ORDER BY linked_at, source_system, source_id";
pub(crate) const SELECT_REPORT_TASK: &str =
    "SELECT task_id FROM task_reports WHERE source_system = $1 AND source_id = $2";
pub(crate) const INSERT_SUPPRESSION: &str = "INSERT INTO suppressions (event_id, source_system, \
     source_id, department, category_code, community_code, rule_id, rules_version, suppressed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
/// Binds: before (epoch ms, exclusive), limit.
pub(crate) const SELECT_SUPPRESSIONS: &str =
    "SELECT event_id, source_system, source_id, department, \
     category_code, community_code, rule_id, rules_version, suppressed_at FROM suppressions \
     WHERE suppressed_at < $1 ORDER BY suppressed_at DESC, event_id LIMIT $2";
pub(crate) const SELECT_SUPPRESSED: &str =
    "SELECT event_id FROM suppressions WHERE source_system = $1 AND source_id = $2";
pub(crate) const SELECT_RETURNED: &str =
    "SELECT event_id FROM department_returns WHERE source_system = $1 AND source_id = $2";
/// Binds group, since, until, min_lon, max_lon, min_lat, max_lat.
pub(crate) const SELECT_NEAR: &str =
    "SELECT task_id, category_group, place_lon, place_lat, occurred_at FROM tasks \
     WHERE category_group = $1 AND occurred_at >= $2 AND occurred_at <= $3 \
     AND place_lon BETWEEN $4 AND $5 AND place_lat BETWEEN $6 AND $7 \
     AND status NOT IN ('closed', 'cancelled') ORDER BY occurred_at, task_id LIMIT 100";
