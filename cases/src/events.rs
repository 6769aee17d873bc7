//! What departments hear about their cases: the events the hub publishes on the task
//! topics and to departmental webhooks, through the store's outbox.

use chrono::{DateTime, Utc};
use hub_schemas::event::Department;
use hub_schemas::task::{TaskDispatched, TaskStatusChanged};
use serde::{Deserialize, Serialize};

/// An event for departments, as published to the task topics and departmental webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskEvent {
    TaskDispatched(TaskDispatched),
    TaskStatusChanged(TaskStatusChanged),
    /// An event the community did not admit: back to its department, with no task.
    EventReturned(EventReturned),
}

/// What a department hears when its event was not admitted (准入制).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventReturned {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub community_code: Option<String>,
    pub reason: String,
    pub returned_at: DateTime<Utc>,
}

impl TaskEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            TaskEvent::TaskDispatched(_) => "task_dispatched",
            TaskEvent::TaskStatusChanged(_) => "task_status_changed",
            TaskEvent::EventReturned(_) => "event_returned",
        }
    }

    /// The task the event is about (empty for a returned event, which has none).
    pub fn task_id(&self) -> &str {
        match self {
            TaskEvent::TaskDispatched(e) => &e.task_id,
            TaskEvent::TaskStatusChanged(e) => &e.task_id,
            TaskEvent::EventReturned(_) => "",
        }
    }

    /// The key the event is published under: its task, or for a return, its event.
    pub fn key(&self) -> &str {
        match self {
            TaskEvent::EventReturned(e) => &e.event_id,
            other => other.task_id(),
        }
    }
}
