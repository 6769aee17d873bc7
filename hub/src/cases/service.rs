//! The case workflow service: the task state machine and SLA clocks of `hub_cases`
//! applied to stored tasks. Used by the console API (lifecycle actions), the routing pipeline
//! (how a new task opens) and the SLA tracker (escalations).
//!
//! It derives the state and clocks of a task the router dispatched, applies an action with
//! the pure core, and writes the result through the store in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hub_cases::joint_case::{Assignment, JointCaseError};
use hub_cases::lifecycle::{Action, Command};
use hub_cases::opening::Opening;
use hub_cases::sla::{apply_effects, ClockEffect};
use hub_cases::{
    apply, Actor, IllegalTransition, JointCase, SlaClock, SlaConfig, SlaPolicy, TaskFacts,
    TaskState, Transition,
};
use hub_router::task::{NewTask, Task, TaskStatus};
use hub_store::{earliest_deadline, ApplyOutcome, StoreError, StoredClock, TaskStore};
use tokio::sync::broadcast;

use crate::context::routing::RoutingState;

/// A change to a task, as the live stream sends it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub task_id: String,
    pub community_code: Option<String>,
    pub street_code: Option<String>,
    pub lead_unit_id: Option<String>,
    pub department: String,
    pub what: String,
    pub status: TaskStatus,
    pub at: DateTime<Utc>,
}

/// The case workflow service.
pub struct CaseService {
    pub store: Arc<dyn TaskStore>,
    pub changes: broadcast::Sender<Change>,
    /// The configuration in force: the city, for the units a task is handed to, and the SLA
    /// policies and calendars.
    routing: Arc<RoutingState>,
}

/// A task's workflow as it stands: stored, or derived for a task no action touched yet.
pub struct Current {
    pub task: Task,
    pub state: TaskState,
    pub version: u64,
    pub clocks: Vec<StoredClock>,
    /// Whether state and clocks were derived (nothing stored yet): the first write stores
    /// every clock.
    pub derived: bool,
    pub due_at: Option<DateTime<Utc>>,
    pub breached: bool,
}

/// Why an action was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    #[error("no task with id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("the task changed meanwhile (version {current}, the action was decided on {expected}); reload and retry")]
    Stale { expected: u64, current: u64 },
    #[error("SLA clocks: {0}")]
    Clock(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CaseService {
    pub fn new(store: Arc<dyn TaskStore>, routing: Arc<RoutingState>) -> Arc<Self> {
        warn_of_uncovered_years(&routing.sla(), Utc::now());
        Arc::new(CaseService {
            store,
            changes: broadcast::channel(1024).0,
            routing,
        })
    }

    /// This service with `routing` in force instead (a version being activated, before this
    /// process follows it), announcing on the same channel.
    pub fn under(&self, routing: Arc<RoutingState>) -> CaseService {
        CaseService {
            store: self.store.clone(),
            changes: self.changes.clone(),
            routing,
        }
    }

    /// The configuration in force.
    pub fn routing(&self) -> &RoutingState {
        &self.routing
    }

    /// The SLA policies and calendars in force (they change with the rules version).
    pub fn sla(&self) -> Arc<SlaConfig> {
        self.routing.sla()
    }

    /// A joint case for `task` convened at `now`, with every unit's deadlines on the task's
    /// calendar.
    pub fn convene(
        &self,
        task: &Task,
        lead: Assignment,
        co_handlers: Vec<Assignment>,
        now: DateTime<Utc>,
    ) -> Result<JointCase, JointCaseError> {
        let sla = self.sla();
        let calendar = sla.calendar_of(policy_of(&sla, task));
        JointCase::convene(
            &task.fields.task_id,
            now,
            lead,
            co_handlers,
            &sla.policies.joint_case,
            calendar,
        )
    }

    /// The task's state, version and clocks.
    pub async fn current(&self, task_id: &str) -> Result<Option<Current>, StoreError> {
        let Some(task) = self.store.get_task(task_id).await? else {
            return Ok(None);
        };
        let Some(record) = self.store.workflow(task_id).await? else {
            return Ok(None);
        };
        let stored_clocks = self.store.task_clocks(task_id).await?;
        if let Some(state) = record.state {
            return Ok(Some(Current {
                task,
                state,
                version: record.version,
                clocks: stored_clocks,
                derived: false,
                due_at: record.due_at,
                breached: record.breached,
            }));
        }
        // Dispatch stored the clocks; tasks stored before it did get them derived.
        let (state, clocks) = self.derive(&task.fields);
        let clocks = if stored_clocks.is_empty() {
            clocks
                .into_iter()
                .map(|clock| StoredClock {
                    id: 0,
                    task_id: task_id.to_owned(),
                    clock,
                    alerts: Vec::new(),
                    changed_at: task.updated_at,
                })
                .collect()
        } else {
            stored_clocks
        };
        let due_at = earliest_deadline(clocks.iter().map(|c| &c.clock));
        Ok(Some(Current {
            task,
            state,
            version: record.version,
            clocks,
            derived: true,
            due_at,
            breached: record.breached,
        }))
    }

    /// How a task the router made opens (立案, then 派遣 to its lead unit): what the store
    /// writes with it, the clocks being those its SLA policy starts at dispatch.
    pub fn open(&self, task: &NewTask) -> Opening {
        let (_, clocks) = self.derive(task);
        Opening::new(task, clocks)
    }

    /// The state and clocks of a task as the router left it (see [`derive_with`]), with
    /// the SLA policies in force.
    pub fn derive(&self, task: &NewTask) -> (TaskState, Vec<SlaClock>) {
        derive_with(&self.sla(), task)
    }

    /// Applies `command` by `actor` at `now`. With `expected_version` the action is refused
    /// if the task moved on since; without, it is decided on the latest state (retried if
    /// another writer got in between).
    pub async fn act(
        &self,
        task_id: &str,
        command: Command,
        actor: &Actor,
        now: DateTime<Utc>,
        expected_version: Option<u64>,
    ) -> Result<Transition, ActError> {
        for _ in 0..5 {
            let current = self
                .current(task_id)
                .await?
                .ok_or_else(|| ActError::NotFound(task_id.to_owned()))?;
            if let Some(expected) = expected_version {
                if expected != current.version {
                    return Err(ActError::Stale {
                        expected,
                        current: current.version,
                    });
                }
            }
            let t = apply(&current.state, command.clone(), actor, now)?;
            match self.write(&current, &t).await? {
                ApplyOutcome::Applied { .. } => {
                    self.announce(&current.task, &t);
                    return Ok(t);
                }
                ApplyOutcome::NotFound => return Err(ActError::NotFound(task_id.to_owned())),
                ApplyOutcome::Conflict { current_version } => {
                    if let Some(expected) = expected_version {
                        return Err(ActError::Stale {
                            expected,
                            current: current_version,
                        });
                    }
                }
            }
        }
        Err(ActError::Stale {
            expected: 0,
            current: 0,
        })
    }

    /// Writes a transition decided on `current`, with the clocks it changes.
    pub async fn write(&self, current: &Current, t: &Transition) -> Result<ApplyOutcome, ActError> {
        self.write_with(current, t, &[]).await
    }

    /// As [`CaseService::write`], with extra clock effects (an escalation step's clock).
    pub async fn write_with(
        &self,
        current: &Current,
        t: &Transition,
        extra: &[ClockEffect],
    ) -> Result<ApplyOutcome, ActError> {
        let (clocks, due_at) = self.clock_changes(current, t, extra)?;
        // Handed to a unit (派遣, 仲裁改派): the task's lead is now that unit.
        let new_lead = match &t.action {
            Action::Dispatch { unit } | Action::Arbitrate { unit } => self
                .routing
                .current()
                .config()
                .city()
                .unit(unit)
                .map(hub_router::responsibility::assigned),
            Action::Reroute { lead, .. } => Some(lead.clone()),
            _ => None,
        };
        Ok(self
            .store
            .apply_transition(
                &current.task.fields.task_id,
                current.version,
                t,
                &clocks,
                due_at,
                new_lead.as_ref(),
            )
            .await?)
    }

    /// The clocks a transition (plus `extra` effects) starts or changes, to be written, and
    /// the task's earliest open deadline afterwards.
    pub fn clock_changes(
        &self,
        current: &Current,
        t: &Transition,
        extra: &[ClockEffect],
    ) -> Result<(Vec<SlaClock>, Option<DateTime<Utc>>), ActError> {
        let sla = self.sla();
        let policy = policy_of(&sla, &current.task);
        let calendar = sla.calendar_of(policy);
        let mut clocks: Vec<SlaClock> = current.clocks.iter().map(|c| c.clock.clone()).collect();
        let mut effects = policy.clock_effects(t, calendar);
        effects.extend_from_slice(extra);
        let changed = apply_effects(&mut clocks, &effects, calendar)
            .map_err(|e| ActError::Clock(e.to_string()))?;
        let to_write: Vec<SlaClock> = if current.derived {
            clocks.clone()
        } else {
            changed.iter().map(|&i| clocks[i].clone()).collect()
        };
        Ok((to_write, earliest_deadline(clocks.iter())))
    }

    pub fn announce(&self, task: &Task, t: &Transition) {
        self.notify(task, t.label(), t.to, t.at);
    }

    pub fn notify(&self, task: &Task, what: &str, status: TaskStatus, at: DateTime<Utc>) {
        let f = &task.fields;
        // Nobody listening is fine.
        let _ = self.changes.send(Change {
            task_id: f.task_id.clone(),
            community_code: f.place.community_code.clone(),
            street_code: f.place.street_code.clone(),
            lead_unit_id: f.lead_unit.as_ref().map(|u| u.unit_id.clone()),
            department: f.department.as_str().to_owned(),
            what: what.to_owned(),
            status,
            at,
        });
    }
}

/// The state and clocks of a task as the router left it: created, or dispatched to its
/// lead unit at creation (which starts the policy's sign-for and handling clocks).
pub fn derive_with(sla: &SlaConfig, task: &NewTask) -> (TaskState, Vec<SlaClock>) {
    let policy = policy_for(sla, task);
    let state = TaskState::new(policy.stage_names());
    let Some(lead) = &task.lead_unit else {
        return (state, Vec::new());
    };
    let Ok(t) = apply(
        &state,
        Action::Dispatch {
            unit: lead.unit_id.clone(),
        },
        &Actor::system("router"),
        task.created_at,
    ) else {
        return (state, Vec::new());
    };
    let calendar = sla.calendar_of(policy);
    let mut clocks = Vec::new();
    // Starting clocks cannot fail.
    let _ = apply_effects(&mut clocks, &policy.clock_effects(&t, calendar), calendar);
    let mut state = t.state;
    state.version = 0;
    (state, clocks)
}

/// The SLA policy of a task: the one its rule named, else the first whose conditions match.
pub fn policy_of<'a>(sla: &'a SlaConfig, task: &Task) -> &'a SlaPolicy {
    policy_for(sla, &task.fields)
}

pub fn policy_for<'a>(sla: &'a SlaConfig, f: &NewTask) -> &'a SlaPolicy {
    sla.policies.policy_for(
        f.sla_policy.as_deref(),
        &TaskFacts {
            category_code: &f.category_code,
            priority: Some(f.priority),
            department: Some(f.department),
        },
    )
}

/// Deadlines running into a year a calendar has no holidays for count those holidays as
/// working days: say so from November on (when the State Council publishes next year's).
fn warn_of_uncovered_years(sla: &SlaConfig, now: DateTime<Utc>) {
    use chrono::Datelike;
    for calendar in sla.calendars.iter() {
        let years: Vec<i32> = calendar.years().collect();
        let this = now.year();
        let missing: Vec<i32> = [this, this + 1]
            .into_iter()
            .filter(|y| !years.contains(y) && (*y == this || now.month() >= 11))
            .collect();
        if !missing.is_empty() && !years.is_empty() {
            tracing::warn!(
                calendar = calendar.id(),
                covered = ?years,
                missing = ?missing,
                "the working calendar has no holidays for {missing:?}: deadlines there count \
                 holidays as working days; add them to {}",
                calendar.file()
            );
        }
    }
}
