//! The console API: the case workflow over HTTP for street and community dispatch consoles.
//!
//! * `GET  /api/v1/console/tasks?community=|street=|unit=&status=&due_within=&breached=` —
//!   tasks in a scope with their deadlines;
//! * `GET  /api/v1/tasks/{id}/workflow` — the task, its history, its state, the actions
//!   allowed now and its live SLA clocks;
//! * `POST /api/v1/tasks/{id}/actions` — one lifecycle action (`{"action": "sign_for"}`,
//!   `{"action": "resolve", "feedback": "..."}`, ... with an optional `note` and
//!   `expected_version`). An illegal action is refused with 409 naming the current state and
//!   the allowed actions; so is one decided on a stale version.
//!
//! [`Workflow`] is the service behind it (also used by the SLA tracker): it derives the state
//! and clocks of a task the router dispatched, applies an action with the pure core
//! (`hub_router::workflow`), and writes the result through the store in one transaction.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use hub_router::task::{Task, TaskStatus};
use hub_router::workflow::lifecycle::{Action, Command};
use hub_router::workflow::sla::apply_effects;
use hub_router::workflow::{
    apply, Actor, IllegalTransition, SlaClock, SlaConfig, SlaPolicy, TaskFacts, TaskState,
    Transition,
};
use hub_store::{ApplyOutcome, StoreError, StoredClock, TaskFilter, TaskStore};
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::auth::{Identity, Scope};

/// The folder of SLA policies and calendars inside the routing configuration folder.
pub const SLA_DIR: &str = "sla";

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
pub struct Workflow {
    pub store: Arc<dyn TaskStore>,
    pub sla: SlaConfig,
    pub changes: broadcast::Sender<Change>,
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

impl Workflow {
    pub fn load(routing_dir: &Path, store: Arc<dyn TaskStore>) -> anyhow::Result<Arc<Self>> {
        let dir = routing_dir.join(SLA_DIR);
        let sla = SlaConfig::load(&dir)
            .with_context(|| format!("loading SLA policies from {}", dir.display()))?;
        Ok(Arc::new(Workflow {
            store,
            sla,
            changes: broadcast::channel(1024).0,
        }))
    }

    pub fn policy_of(&self, task: &Task) -> &SlaPolicy {
        let f = &task.fields;
        self.sla.policies.policy_for(
            f.sla_policy.as_deref(),
            &TaskFacts {
                category_code: &f.category_code,
                priority: Some(f.priority),
                department: Some(f.department),
            },
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
        let (state, clocks) = self.derive(&task);
        let clocks = if stored_clocks.is_empty() {
            clocks
                .into_iter()
                .map(|clock| StoredClock {
                    id: 0,
                    task_id: task_id.to_owned(),
                    clock,
                    alerts: Vec::new(),
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

    /// The state and clocks of a task as the router left it: created, or dispatched to its
    /// lead unit at creation (which starts the policy's sign-for and handling clocks).
    pub fn derive(&self, task: &Task) -> (TaskState, Vec<SlaClock>) {
        let policy = self.policy_of(task);
        let state = TaskState::new(policy.stage_names());
        let Some(lead) = &task.fields.lead_unit else {
            return (state, Vec::new());
        };
        let Ok(t) = apply(
            &state,
            Action::Dispatch {
                unit: lead.unit_id.clone(),
            },
            &Actor::system("router"),
            task.fields.created_at,
        ) else {
            return (state, Vec::new());
        };
        let calendar = self.sla.calendar_of(policy);
        let mut clocks = Vec::new();
        // Starting clocks cannot fail.
        let _ = apply_effects(&mut clocks, &policy.clock_effects(&t, calendar), calendar);
        let mut state = t.state;
        state.version = 0;
        (state, clocks)
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

    /// As [`Workflow::write`], with extra clock effects (an escalation step's clock).
    pub async fn write_with(
        &self,
        current: &Current,
        t: &Transition,
        extra: &[hub_router::workflow::sla::ClockEffect],
    ) -> Result<ApplyOutcome, ActError> {
        let policy = self.policy_of(&current.task);
        let calendar = self.sla.calendar_of(policy);
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
        let due_at = earliest_deadline(clocks.iter());
        Ok(self
            .store
            .apply_transition(
                &current.task.fields.task_id,
                current.version,
                t,
                &to_write,
                due_at,
            )
            .await?)
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

/// The earliest deadline among open, running clocks.
pub fn earliest_deadline<'a>(clocks: impl Iterator<Item = &'a SlaClock>) -> Option<DateTime<Utc>> {
    clocks
        .filter(|c| c.is_open() && !c.is_paused())
        .filter_map(SlaClock::deadline)
        .min()
}

/// A clock as the console shows it, live at `now`.
pub fn clock_json(c: &StoredClock, sla: &SlaConfig, now: DateTime<Utc>) -> Value {
    let calendar = sla
        .calendars
        .get(&c.clock.calendar)
        .unwrap_or_else(|| hub_router::workflow::WorkingCalendar::always_open());
    json!({
        "id": c.id,
        "kind": c.clock.kind,
        "round": c.clock.round,
        "limit": c.clock.limit,
        "calendar": c.clock.calendar,
        "started_at": c.clock.started_at,
        "warning_at": c.clock.warning_at(),
        "deadline": c.clock.deadline(),
        "stopped_at": c.clock.stopped_at(),
        "status": c.clock.status(now).name(),
        "used_ms": c.clock.used_ms(now, calendar),
        "budget_ms": c.clock.budget_ms(calendar),
        "events": c.clock.events(),
        "alerts": c.alerts,
    })
}

// ------------------------------------------------------------------------------ HTTP

#[derive(Clone)]
pub struct ConsoleState {
    pub workflow: Arc<Workflow>,
}

pub fn routes(state: ConsoleState) -> Router {
    Router::new()
        .route("/api/v1/console/tasks", get(list))
        .route("/api/v1/tasks/{id}/workflow", get(show))
        .route("/api/v1/tasks/{id}/actions", post(act))
        .with_state(state)
}

pub(crate) struct ApiError(pub StatusCode, pub Value);

impl ApiError {
    pub(crate) fn msg(code: StatusCode, message: impl Into<String>) -> Self {
        ApiError(code, json!({ "error": message.into() }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving the console API");
        ApiError::msg(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("task store unavailable: {e}"),
        )
    }
}

impl From<ActError> for ApiError {
    fn from(e: ActError) -> Self {
        match e {
            ActError::NotFound(_) => ApiError::msg(StatusCode::NOT_FOUND, e.to_string()),
            ActError::Illegal(ref i) => ApiError(
                StatusCode::CONFLICT,
                json!({
                    "error": e.to_string(),
                    "status": i.status,
                    "attempted": i.attempted,
                    "allowed": i.allowed,
                }),
            ),
            ActError::Stale { current, .. } => ApiError(
                StatusCode::CONFLICT,
                json!({ "error": e.to_string(), "version": current }),
            ),
            ActError::Clock(_) => ApiError::msg(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            ActError::Store(s) => s.into(),
        }
    }
}

/// Parses `30m`, `2h`, `1d` or a number of minutes.
pub fn parse_within(s: &str) -> Option<TimeDelta> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "m"),
    };
    let n: i64 = n.parse().ok()?;
    match unit {
        "m" | "min" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }
}

/// `GET /api/v1/console/tasks`: tasks in a scope (community, street or unit; an account's
/// own scope narrows it further) with filters.
async fn list(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Identity>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    const KNOWN: [&str; 9] = [
        "community",
        "street",
        "unit",
        "status",
        "due_within",
        "breached",
        "department",
        "limit",
        "offset",
    ];
    let bad = |m: String| ApiError::msg(StatusCode::BAD_REQUEST, m);
    if let Some(k) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown query parameter `{k}` (known: {})",
            KNOWN.join(", ")
        )));
    }
    let mut filter = TaskFilter {
        community_code: q.get("community").cloned(),
        street_code: q.get("street").cloned(),
        unit_id: q.get("unit").cloned(),
        ..TaskFilter::default()
    };
    if let Some(st) = q.get("status") {
        filter.status =
            Some(TaskStatus::parse(st).ok_or_else(|| bad(format!("unknown status `{st}`")))?);
    }
    if let Some(d) = q.get("department") {
        filter.department = Some(
            hub_schemas::event::Department::parse(d)
                .ok_or_else(|| bad(format!("unknown department `{d}`")))?,
        );
    }
    if let Some(w) = q.get("due_within") {
        let within = parse_within(w)
            .ok_or_else(|| bad(format!("due_within `{w}` must be like 30m, 2h or 1d")))?;
        filter.due_before = Some(Utc::now() + within);
    }
    if let Some(b) = q.get("breached") {
        filter.breached = Some(match b.as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(bad(format!("breached `{b}` must be true or false"))),
        });
    }
    if let Some(l) = q.get("limit") {
        filter.limit = l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| bad(format!("limit `{l}` must be a number from 1 to 1000")))?;
    }
    if let Some(o) = q.get("offset") {
        filter.offset = o
            .parse()
            .map_err(|_| bad(format!("offset `{o}` must be a non-negative number")))?;
    }
    if !who.narrow(&mut filter) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not list tasks outside its scope", who.name),
        ));
    }
    let total = s.workflow.store.count_tasks(&filter).await?;
    let tasks = s.workflow.store.list_tasks(&filter).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let record = s.workflow.store.workflow(&t.fields.task_id).await?;
        out.push(json!({
            "task_id": t.fields.task_id,
            "status": t.status,
            "category_code": t.fields.category_code,
            "category_name": t.fields.category_name,
            "description": t.fields.description,
            "community_code": t.fields.place.community_code,
            "street_code": t.fields.place.street_code,
            "lead_unit": t.fields.lead_unit,
            "department": t.fields.department,
            "created_at": t.fields.created_at,
            "updated_at": t.updated_at,
            "due_at": record.as_ref().and_then(|r| r.due_at),
            "breached": record.as_ref().is_some_and(|r| r.breached),
            "version": record.as_ref().map_or(0, |r| r.version),
        }));
    }
    Ok(Json(json!({
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
        "tasks": out,
    })))
}

/// Loads a task and checks the caller may see it (404 before 403 would leak existence, so
/// an out-of-scope task is 403 only once it is known to exist; ids are not guessable).
async fn scoped(s: &ConsoleState, who: &Identity, id: &str) -> Result<Current, ApiError> {
    let current =
        s.workflow.current(id).await?.ok_or_else(|| {
            ApiError::msg(StatusCode::NOT_FOUND, format!("no task with id `{id}`"))
        })?;
    if !who.may_see(&current.task) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not see or act on task {id} (outside its scope)",
                who.name
            ),
        ));
    }
    Ok(current)
}

/// `GET /api/v1/tasks/{id}/workflow`
async fn show(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Identity>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    let current = scoped(&s, &who, &id).await?;
    let history = s.workflow.store.task_history(&id).await?;
    let now = Utc::now();
    let policy = s.workflow.policy_of(&current.task);
    let clocks: Vec<Value> = current
        .clocks
        .iter()
        .map(|c| clock_json(c, &s.workflow.sla, now))
        .collect();
    Ok(Json(json!({
        "task": current.task,
        "history": history,
        "state": current.state,
        "version": current.version,
        "allowed": current.state.allowed_actions(),
        "sla_policy": { "id": policy.id, "name": policy.name },
        "due_at": current.due_at,
        "breached": current.breached,
        "clocks": clocks,
    })))
}

/// Turns the request body into a command: the lifecycle action (its JSON form, tagged by
/// `action`) with `note`; `verify` with `"passed": false` is a rework.
pub fn parse_command(mut body: Value) -> Result<(Command, Option<u64>), String> {
    let obj = body
        .as_object_mut()
        .ok_or("the body must be a JSON object with an `action`")?;
    let note = match obj.remove("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("`note` must be text".to_owned()),
    };
    let expected = match obj.remove("expected_version") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or("`expected_version` must be a number")?),
    };
    if obj.get("action").and_then(Value::as_str) == Some("verify") {
        if let Some(passed) = obj.remove("passed") {
            if passed == Value::Bool(false) {
                obj.insert("action".to_owned(), json!("rework"));
            }
        }
    }
    let kinds: Vec<&str> = hub_router::workflow::lifecycle::ActionKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let action: Action = serde_json::from_value(body).map_err(|e| {
        format!(
            "not a lifecycle action ({e}); `action` is one of {}",
            kinds.join(", ")
        )
    })?;
    Ok((Command { action, note }, expected))
}

/// `POST /api/v1/tasks/{id}/actions`
async fn act(
    State(s): State<ConsoleState>,
    Extension(who): Extension<Identity>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::msg(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let (command, expected) =
        parse_command(body).map_err(|m| ApiError::msg(StatusCode::BAD_REQUEST, m))?;
    let current = scoped(&s, &who, &id).await?;
    if !who.may_act(&current.task, &command.action) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not {} task {id}", who.name, command.action.kind()),
        ));
    }
    let actor = Actor::person(who.name.clone(), who.unit.as_deref());
    let t = s
        .workflow
        .act(&id, command, &actor, Utc::now(), expected)
        .await?;
    Ok(Json(json!({
        "task_id": id,
        "from": t.from,
        "to": t.to,
        "label": t.label(),
        "version": t.state.version,
        "state": t.state,
        "allowed": t.state.allowed_actions(),
    })))
}

/// Scope names used in errors.
pub fn scope_name(scope: &Scope) -> String {
    format!("{scope:?}")
}
