//! The console API: the case workflow over HTTP for street and community dispatch consoles.
//!
//! * `GET  /api/v1/console/tasks?community=|street=|unit=&status=&due_within=&breached=` —
//!   tasks in a scope with their deadlines;
//! * `GET  /api/v1/console/stream?community=|street=|unit=` — live changes in a scope
//!   (server-sent events, see [`crate::live_stream`]);
//! * `GET  /api/v1/tasks/{id}/workflow` — the task, its history, its state, the actions
//!   allowed now and its live SLA clocks;
//! * `POST /api/v1/tasks/{id}/actions` — one lifecycle action (`{"action": "sign_for"}`,
//!   `{"action": "resolve", "feedback": "..."}`, ... with an optional `note` and
//!   `expected_version`). An illegal action is refused with 409 naming the current state and
//!   the allowed actions; so is one decided on a stale version. A joint case (吹哨报到):
//!   `{"action": "convene_joint_meeting", "lead": {"unit", "part"}, "co_handlers": [...]}`,
//!   then `{"action": "report_in", "unit": ...}` and `{"action": "complete_part", ...}`.
//!
//! [`Workflow`] (in [`crate::case_workflow`]) is the service behind it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use chrono::{DateTime, TimeDelta, Utc};
use hub_router::task::TaskStatus;
use hub_router::workflow::lifecycle::{Action, Command};
use hub_router::workflow::{Actor, SlaConfig};
use hub_store::{StoreError, StoredClock, TaskFilter};
use serde_json::{json, Value};

use crate::auth::{Identity, Scope};
use crate::case_workflow::{ActError, Current, Workflow};

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
    /// Ends live streams when the hub stops.
    pub shutdown: crate::shutdown::Shutdown,
}

pub fn routes(state: ConsoleState) -> Router {
    Router::new()
        .route("/api/v1/console/tasks", get(list))
        .route("/api/v1/console/stream", get(crate::live_stream::stream))
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

/// `convene_joint_meeting` names a `lead` and `co_handlers` (each `{unit, part, limit?}`);
/// the case with every unit's deadlines is built here, where the SLA configuration is known.
fn convene_body(
    workflow: &Workflow,
    current: &Current,
    mut body: Value,
    now: chrono::DateTime<Utc>,
) -> Result<Value, String> {
    let Some(obj) = body.as_object_mut() else {
        return Ok(body);
    };
    if obj.get("action").and_then(Value::as_str) != Some("convene_joint_meeting") {
        return Ok(body);
    }
    let lead = obj
        .remove("lead")
        .ok_or("convene_joint_meeting needs `lead`: {unit, part, limit?}")?;
    let lead = serde_json::from_value(lead).map_err(|e| format!("`lead`: {e}"))?;
    let co_handlers = obj
        .remove("co_handlers")
        .ok_or("convene_joint_meeting needs `co_handlers`: [{unit, part, limit?}, ...]")?;
    let co_handlers =
        serde_json::from_value(co_handlers).map_err(|e| format!("`co_handlers`: {e}"))?;
    let case = workflow
        .convene(&current.task, lead, co_handlers, now)
        .map_err(|e| e.to_string())?;
    obj.insert(
        "case".to_owned(),
        serde_json::to_value(case).map_err(|e| e.to_string())?,
    );
    Ok(body)
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
    let current = scoped(&s, &who, &id).await?;
    let now = Utc::now();
    let body = convene_body(&s.workflow, &current, body, now)
        .map_err(|m| ApiError::msg(StatusCode::BAD_REQUEST, m))?;
    let (command, expected) =
        parse_command(body).map_err(|m| ApiError::msg(StatusCode::BAD_REQUEST, m))?;
    if !who.may_act(&current.task, &command.action) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not {} task {id}", who.name, command.action.kind()),
        ));
    }
    let actor = Actor::person(who.name.clone(), who.unit.as_deref());
    let t = s.workflow.act(&id, command, &actor, now, expected).await?;
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
