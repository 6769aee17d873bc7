//! The task a routed event becomes, as the core sees it (no storage or transport here).

use std::fmt;

use chrono::{DateTime, Utc};
use hub_schemas::event::{Department, Location};
use serde::{Deserialize, Serialize};

use crate::city::UnitRole;
use crate::explanation::Explanation;
use crate::place::ResolvedPlace;
use crate::priority::Priority;
use crate::taxonomy::CategoryRef;

/// Where a task stands in the case workflow (立案 → 派遣 → 签收 → 处置 → 反馈 → 核查 → 结案).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// 立案
    Created,
    /// 派遣
    Dispatched,
    /// 签收
    SignedFor,
    /// 处置
    InProgress,
    /// 反馈: resolved, with feedback from the handling unit
    Resolved,
    /// 核查
    Verified,
    /// 结案
    Closed,
    /// 注销
    Cancelled,
    /// 回退: sent back by the unit, awaiting arbitration by the level above
    Returned,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 9] = [
        TaskStatus::Created,
        TaskStatus::Dispatched,
        TaskStatus::SignedFor,
        TaskStatus::InProgress,
        TaskStatus::Resolved,
        TaskStatus::Verified,
        TaskStatus::Closed,
        TaskStatus::Cancelled,
        TaskStatus::Returned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Created => "created",
            TaskStatus::Dispatched => "dispatched",
            TaskStatus::SignedFor => "signed_for",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Resolved => "resolved",
            TaskStatus::Verified => "verified",
            TaskStatus::Closed => "closed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::Returned => "returned",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A concrete unit a task is assigned to (a 1+2+X member of a community, or a triage desk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignedUnit {
    pub unit_id: String,
    pub role: UnitRole,
    pub name: String,
}

/// Everything needed to create a task; produced by routing an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    pub task_id: String,
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub category_name: Option<String>,
    /// The hub's taxonomy category the department's code maps to.
    pub category: CategoryRef,
    pub priority: Priority,
    /// The SLA policy the task runs under, when its rule or category names one.
    pub sla_policy: Option<String>,
    pub description: String,
    pub location: Location,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub place: ResolvedPlace,
    pub lead_unit: Option<AssignedUnit>,
    pub co_handlers: Vec<AssignedUnit>,
    pub explanation: Explanation,
    pub rules_version: String,
    /// When the task was created (立案) and dispatched (派遣) by the hub.
    pub created_at: DateTime<Utc>,
}

impl NewTask {
    /// The task id is derived from the event id so that a redelivered event maps onto the
    /// same task id (creation is idempotent on source system + source id).
    pub fn derive_id(event_id: &str) -> String {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x2b7c_91d0_55e3_4a8f_b6c1_0d9e_8f7a_6b5c);
        uuid::Uuid::new_v5(&NAMESPACE, event_id.as_bytes()).to_string()
    }
}

/// A stored task as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    #[serde(flatten)]
    pub fields: NewTask,
    pub status: TaskStatus,
    pub updated_at: DateTime<Utc>,
}

/// One entry of a task's history: every state change records who, when and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub seq: i64,
    pub from_status: Option<TaskStatus>,
    pub to_status: TaskStatus,
    pub actor: String,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}
