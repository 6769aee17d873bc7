//! How a case begins once routing made its task: 立案 (created) and, when routing found a
//! lead unit, 派遣 (dispatched to it). This module decides everything the store then writes
//! in one transaction: the first history entries, the SLA clocks dispatch started, and the
//! events the department hears.

use hub_router::task::{AssignedUnit, NewTask, StatusChange, TaskStatus};
use hub_schemas::task::{TaskDispatched, TaskStatusChanged, UnitRef};

use crate::clock::SlaClock;
use crate::events::TaskEvent;

/// The actor on the history entries of a task's opening.
pub const ROUTER_ACTOR: &str = "hub.router";

/// What a new task starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct Opening {
    /// Created, then dispatched when the task has a lead unit (a task without one waits in
    /// triage, 待分派).
    pub history: Vec<StatusChange>,
    /// The clocks dispatch started (none for a task in triage).
    pub clocks: Vec<SlaClock>,
    /// One status change per history entry, then the dispatch itself.
    pub events: Vec<TaskEvent>,
}

impl Opening {
    /// The opening of `task`, with the `clocks` its SLA policy starts at dispatch.
    pub fn new(task: &NewTask, clocks: Vec<SlaClock>) -> Self {
        let history = first_history(task);
        let events = first_events(task, &history);
        Opening {
            history,
            clocks,
            events,
        }
    }
}

fn first_history(task: &NewTask) -> Vec<StatusChange> {
    let at = task.created_at;
    let created_note = match &task.lead_unit {
        Some(_) => format!(
            "created from {} record {} at {}",
            task.source_system, task.source_id, task.place.matched_area
        ),
        None => format!(
            "created from {} record {} at {}; no lead unit matched, awaiting triage",
            task.source_system, task.source_id, task.place.matched_area
        ),
    };
    let mut history = vec![StatusChange {
        seq: 1,
        from_status: None,
        to_status: TaskStatus::Created,
        actor: ROUTER_ACTOR.to_owned(),
        note: Some(created_note),
        at,
    }];
    if let Some(lead) = &task.lead_unit {
        let mut note = format!(
            "dispatched to lead unit {} ({}, {})",
            lead.name, lead.role, lead.unit_id
        );
        if !task.co_handlers.is_empty() {
            let names: Vec<&str> = task.co_handlers.iter().map(|u| u.name.as_str()).collect();
            note.push_str(&format!("; co-handlers: {}", names.join(", ")));
        }
        history.push(StatusChange {
            seq: 2,
            from_status: Some(TaskStatus::Created),
            to_status: TaskStatus::Dispatched,
            actor: ROUTER_ACTOR.to_owned(),
            note: Some(note),
            at,
        });
    }
    history
}

fn first_events(task: &NewTask, history: &[StatusChange]) -> Vec<TaskEvent> {
    let unit = |u: &AssignedUnit| UnitRef {
        unit_id: u.unit_id.clone(),
        role: u.role.as_str().to_owned(),
        name: u.name.clone(),
    };
    let mut events: Vec<TaskEvent> = history
        .iter()
        .map(|entry| {
            TaskEvent::TaskStatusChanged(TaskStatusChanged {
                task_id: task.task_id.clone(),
                seq: entry.seq,
                source_system: task.source_system.clone(),
                source_id: task.source_id.clone(),
                from_status: entry.from_status.map(|s| s.as_str().to_owned()),
                to_status: entry.to_status.as_str().to_owned(),
                actor: entry.actor.clone(),
                note: entry.note.clone(),
                changed_at: entry.at,
            })
        })
        .collect();
    if let Some(lead) = &task.lead_unit {
        events.push(TaskEvent::TaskDispatched(TaskDispatched {
            task_id: task.task_id.clone(),
            event_id: task.event_id.clone(),
            source_system: task.source_system.clone(),
            source_id: task.source_id.clone(),
            department: task.department,
            category_code: task.category_code.clone(),
            district_code: task.place.district_code.clone(),
            street_code: task.place.street_code.clone(),
            community_code: task.place.community_code.clone(),
            grid_code: task.place.grid_code.clone(),
            lead_unit: Some(unit(lead)),
            co_handlers: task.co_handlers.iter().map(unit).collect(),
            due_at: None,
            dispatched_at: task.created_at,
            rules_version: task.rules_version.clone(),
        }));
    }
    events
}
