//! The one place where tasks become rows and rows become tasks, for both dialects.
//!
//! Rows hold only column types that sqlx's `Any` driver carries (text, optional text, 64-bit
//! integers, doubles), so the same structs and the same bind order serve SQLite and
//! PostgreSQL; the SQL in [`crate::tasks`] lists the columns in the order of
//! [`TaskRow::push_values`].

use chrono::{DateTime, Utc};
use hub_router::city::UnitRole;
use hub_router::explanation::Explanation;
use hub_router::place::ResolvedPlace;
use hub_router::priority::Priority;
use hub_router::task::{AssignedUnit, NewTask, StatusChange, Task, TaskStatus};
use hub_router::taxonomy::CategoryRef;
use hub_schemas::event::{Department, GeoPoint, Location};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::filter::SqlBuilder;
use crate::StoreError;

/// One row of `tasks`. Times are epoch milliseconds; JSON columns are read as text.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct TaskRow {
    task_id: String,
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    category_code: String,
    category_name: Option<String>,
    description: String,
    status: String,
    district_code: Option<String>,
    street_code: Option<String>,
    community_code: Option<String>,
    grid_code: Option<String>,
    place_level: String,
    place_method: String,
    matched_area: String,
    lead_unit_id: Option<String>,
    lead_unit_role: Option<String>,
    lead_unit_name: Option<String>,
    co_handlers: String,
    location: String,
    explanation: String,
    rules_version: String,
    occurred_at: i64,
    received_at: i64,
    created_at: i64,
    updated_at: i64,
    category: String,
    category_group: String,
    priority: String,
    sla_policy: Option<String>,
    place_lon: Option<f64>,
    place_lat: Option<f64>,
    /// The taxonomy's code of `category`, for filtering; written, not read back.
    #[sqlx(default)]
    taxonomy_code: String,
    /// The earliest open deadline (epoch ms) the task is created with; written, not read
    /// back (the workflow record reads it).
    #[sqlx(default)]
    due_at: Option<i64>,
}

impl TaskRow {
    /// The row a freshly routed task is stored as, in the status its opening left it
    /// (dispatched to its lead unit, or `created` for triage).
    pub(crate) fn new(
        task: &NewTask,
        status: TaskStatus,
        due_at: Option<DateTime<Utc>>,
    ) -> Result<Self, StoreError> {
        if let Some(point) = task.location.point {
            // JSON has no NaN or infinity: serde_json would write `null` and the task could
            // never be read back.
            if !(point.lon.is_finite() && point.lat.is_finite()) {
                return Err(StoreError::InvalidTask {
                    task_id: task.task_id.clone(),
                    reason: format!(
                        "location point ({}, {}) is not finite",
                        point.lon, point.lat
                    ),
                });
            }
        }
        let lead = task.lead_unit.as_ref();
        Ok(TaskRow {
            task_id: task.task_id.clone(),
            event_id: task.event_id.clone(),
            source_system: task.source_system.clone(),
            source_id: task.source_id.clone(),
            department: task.department.as_str().to_owned(),
            category_code: task.category_code.clone(),
            category_name: task.category_name.clone(),
            description: task.description.clone(),
            status: status.as_str().to_owned(),
            district_code: task.place.district_code.clone(),
            street_code: task.place.street_code.clone(),
            community_code: task.place.community_code.clone(),
            grid_code: task.place.grid_code.clone(),
            place_level: enum_name(&task.task_id, "place_level", &task.place.level)?,
            place_method: enum_name(&task.task_id, "place_method", &task.place.method)?,
            matched_area: task.place.matched_area.clone(),
            lead_unit_id: lead.map(|u| u.unit_id.clone()),
            lead_unit_role: lead.map(|u| u.role.as_str().to_owned()),
            lead_unit_name: lead.map(|u| u.name.clone()),
            co_handlers: to_json(&task.task_id, "co_handlers", &task.co_handlers)?,
            location: to_json(&task.task_id, "location", &task.location)?,
            explanation: to_json(&task.task_id, "explanation", &task.explanation)?,
            rules_version: task.rules_version.clone(),
            occurred_at: task.occurred_at.timestamp_millis(),
            received_at: task.received_at.timestamp_millis(),
            created_at: task.created_at.timestamp_millis(),
            updated_at: task.created_at.timestamp_millis(),
            category: to_json(&task.task_id, "category", &task.category)?,
            category_group: task.category.group.clone(),
            priority: task.priority.as_str().to_owned(),
            sla_policy: task.sla_policy.clone(),
            place_lon: task.place.point.map(|p| p.lon),
            place_lat: task.place.point.map(|p| p.lat),
            taxonomy_code: task.category.code.clone(),
            due_at: due_at.map(|d| d.timestamp_millis()),
        })
    }

    /// Appends the row to a multi-row `VALUES` list, its columns in declaration order (the
    /// JSON ones cast to JSONB, a cast SQLite's dialect drops).
    pub(crate) fn push_values<'q>(&'q self, q: &mut SqlBuilder<'q>) {
        q.push("(")
            .push_bind(self.task_id.as_str())
            .push_bind_next(self.event_id.as_str())
            .push_bind_next(self.source_system.as_str())
            .push_bind_next(self.source_id.as_str())
            .push_bind_next(self.department.as_str())
            .push_bind_next(self.category_code.as_str())
            .push_bind_next(self.category_name.as_deref())
            .push_bind_next(self.description.as_str())
            .push_bind_next(self.status.as_str())
            .push_bind_next(self.district_code.as_deref())
            .push_bind_next(self.street_code.as_deref())
            .push_bind_next(self.community_code.as_deref())
            .push_bind_next(self.grid_code.as_deref())
            .push_bind_next(self.place_level.as_str())
            .push_bind_next(self.place_method.as_str())
            .push_bind_next(self.matched_area.as_str())
            .push_bind_next(self.lead_unit_id.as_deref())
            .push_bind_next(self.lead_unit_role.as_deref())
            .push_bind_next(self.lead_unit_name.as_deref())
            .push_bind_next(self.co_handlers.as_str())
            .push("::jsonb")
            .push_bind_next(self.location.as_str())
            .push("::jsonb")
            .push_bind_next(self.explanation.as_str())
            .push("::jsonb")
            .push_bind_next(self.rules_version.as_str())
            .push_bind_next(self.occurred_at)
            .push_bind_next(self.received_at)
            .push_bind_next(self.created_at)
            .push_bind_next(self.updated_at)
            .push_bind_next(self.category.as_str())
            .push("::jsonb")
            .push_bind_next(self.category_group.as_str())
            .push_bind_next(self.priority.as_str())
            .push_bind_next(self.sla_policy.as_deref())
            .push_bind_next(self.place_lon)
            .push_bind_next(self.place_lat)
            .push_bind_next(self.taxonomy_code.as_str())
            .push_bind_next(self.due_at)
            .push(")");
    }

    pub(crate) fn into_task(self) -> Result<Task, StoreError> {
        // Kept apart so errors can name the task while the row's fields move into it.
        let id = self.task_id.clone();
        let id = id.as_str();
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: id.to_owned(),
            column,
            reason,
        };
        let department = Department::parse(&self.department).ok_or_else(|| {
            corrupt(
                "department",
                format!("unknown department `{}`", self.department),
            )
        })?;
        let status = TaskStatus::parse(&self.status)
            .ok_or_else(|| corrupt("status", format!("unknown status `{}`", self.status)))?;
        let lead_unit = match (self.lead_unit_id, self.lead_unit_role, self.lead_unit_name) {
            (Some(unit_id), Some(role), Some(name)) => Some(AssignedUnit {
                unit_id,
                role: UnitRole::parse(&role).ok_or_else(|| {
                    corrupt("lead_unit_role", format!("unknown unit role `{role}`"))
                })?,
                name,
            }),
            (None, None, None) => None,
            _ => {
                return Err(corrupt(
                    "lead_unit_id",
                    "lead unit id, role and name must be all set or all empty".to_owned(),
                ))
            }
        };
        let fields = NewTask {
            task_id: self.task_id,
            place: ResolvedPlace {
                level: parse_enum(id, "place_level", &self.place_level)?,
                method: parse_enum(id, "place_method", &self.place_method)?,
                district_code: self.district_code,
                street_code: self.street_code,
                community_code: self.community_code,
                grid_code: self.grid_code,
                matched_area: self.matched_area,
                point: match (self.place_lon, self.place_lat) {
                    (Some(lon), Some(lat)) => Some(GeoPoint { lon, lat }),
                    _ => None,
                },
            },
            category: from_json::<CategoryRef>(id, "category", &self.category)?,
            priority: Priority::parse(&self.priority).ok_or_else(|| {
                corrupt("priority", format!("unknown priority `{}`", self.priority))
            })?,
            sla_policy: self.sla_policy,
            co_handlers: from_json::<Vec<AssignedUnit>>(id, "co_handlers", &self.co_handlers)?,
            location: from_json::<Location>(id, "location", &self.location)?,
            explanation: from_json::<Explanation>(id, "explanation", &self.explanation)?,
            occurred_at: from_millis(id, "occurred_at", self.occurred_at)?,
            received_at: from_millis(id, "received_at", self.received_at)?,
            created_at: from_millis(id, "created_at", self.created_at)?,
            department,
            lead_unit,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
            category_code: self.category_code,
            category_name: self.category_name,
            description: self.description,
            rules_version: self.rules_version,
        };
        Ok(Task {
            fields,
            status,
            updated_at: from_millis(id, "updated_at", self.updated_at)?,
        })
    }
}

/// One row of `task_history` (without its task id, which the caller knows).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HistoryRow {
    seq: i64,
    from_status: Option<String>,
    to_status: String,
    actor: String,
    note: Option<String>,
    at: i64,
}

impl HistoryRow {
    pub(crate) fn into_change(self, task_id: &str) -> Result<StatusChange, StoreError> {
        let status = |column: &'static str, value: &str| {
            TaskStatus::parse(value).ok_or_else(|| StoreError::Corrupt {
                task_id: task_id.to_owned(),
                column,
                reason: format!("history entry {}: unknown status `{value}`", self.seq),
            })
        };
        Ok(StatusChange {
            seq: self.seq,
            from_status: self
                .from_status
                .as_deref()
                .map(|s| status("task_history.from_status", s))
                .transpose()?,
            to_status: status("task_history.to_status", &self.to_status)?,
            at: from_millis(task_id, "task_history.at", self.at)?,
            actor: self.actor,
            note: self.note,
        })
    }
}

fn to_json<T: Serialize>(
    task_id: &str,
    column: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::InvalidTask {
        task_id: task_id.to_owned(),
        reason: format!("{column} cannot be encoded as JSON: {e}"),
    })
}

fn from_json<T: DeserializeOwned>(
    task_id: &str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        task_id: task_id.to_owned(),
        column,
        reason: e.to_string(),
    })
}

/// The name a unit-like enum has in the API (its serde name), which is also how it is stored.
fn enum_name<T: Serialize>(
    task_id: &str,
    column: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        other => Err(StoreError::InvalidTask {
            task_id: task_id.to_owned(),
            reason: format!("{column} does not serialize to a name: {other:?}"),
        }),
    }
}

fn parse_enum<T: DeserializeOwned>(
    task_id: &str,
    column: &'static str,
    name: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        StoreError::Corrupt {
            task_id: task_id.to_owned(),
            column,
            reason: format!("unknown value `{name}`"),
        }
    })
}

fn from_millis(
    task_id: &str,
    column: &'static str,
    millis: i64,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| StoreError::Corrupt {
        task_id: task_id.to_owned(),
        column,
        reason: format!("{millis} ms since the epoch is out of range"),
    })
}
