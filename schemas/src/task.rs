//! Records the hub publishes about tasks: a dispatched task and a task status change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Department;

/// A unit of the 1+2+X model as published to departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRef {
    /// Unit id from the city configuration, e.g. `510504001001.police`.
    pub unit_id: String,
    /// 1+2+X role, e.g. `party_branch`, `workstation`, `residents_committee`, `police_station`.
    pub role: String,
    pub name: String,
}

/// Schema `city.hub.v1.TaskDispatched`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDispatched {
    pub task_id: String,
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub district_code: Option<String>,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub grid_code: Option<String>,
    pub lead_unit: Option<UnitRef>,
    pub co_handlers: Vec<UnitRef>,
    pub due_at: Option<DateTime<Utc>>,
    pub dispatched_at: DateTime<Utc>,
    pub rules_version: String,
}

/// Schema `city.hub.v1.TaskStatusChanged`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatusChanged {
    pub task_id: String,
    /// Position of this change in the task's history, from 1.
    pub seq: i64,
    pub source_system: String,
    pub source_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub note: Option<String>,
    pub changed_at: DateTime<Utc>,
}
