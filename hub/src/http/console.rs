//! The console API: the case workflow over HTTP for street and community dispatch consoles.
//!
//! * `GET  /api/v1/console/tasks?community=|street=|unit=&status=&due_within=&breached=` —
//!   tasks in a scope with their deadlines;
//! * `GET  /api/v1/console/stream?community=|street=|unit=` — live changes in a scope
//!   (server-sent events, see [`crate::pipeline::live_feed`]);
//! * `GET  /api/v1/tasks/{id}/workflow` — the task, its history, its state, the actions
//!   allowed now and its live SLA clocks;
//! * `POST /api/v1/tasks/{id}/actions` — one lifecycle action (`{"action": "sign_for"}`,
//!   `{"action": "resolve", "feedback": "..."}`, ... with an optional `note` and
//!   `expected_version`). An illegal action is refused with 409 naming the current state and
//!   the allowed actions; so is one decided on a stale version. A joint case (吹哨报到):
//!   `{"action": "convene_joint_meeting", "lead": {"unit", "part"}, "co_handlers": [...]}`,
//!   then `{"action": "report_in", "unit": ...}` and `{"action": "complete_part", ...}`.
//!
//! [`CaseService`] (in [`crate::cases::service`]) is the service behind it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use hub_cases::lifecycle::{Action, Command};
use hub_cases::{Actor, SlaConfig};
use hub_router::task::Task;
use hub_store::{StoredClock, TaskFilter};
use serde_json::{json, Value};

use crate::cases::service::{ActError, CaseService, Current};
use crate::context::access::Identity;
use crate::http::auth::{Caller, TaskInScope};
use crate::http::{page_limit, parse_param, ApiError, ApiQuery, Guard, Route};

/// A clock as the console shows it, live at `now`.
pub fn clock_json(c: &StoredClock, sla: &SlaConfig, now: DateTime<Utc>) -> Value {
    let calendar = sla
        .calendars
        .get(&c.clock.calendar)
        .unwrap_or_else(|| hub_cases::WorkingCalendar::always_open());
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
    pub cases: Arc<CaseService>,
    /// The city, for the roles of units named in joint-case actions.
    pub routing: Arc<crate::context::routing::RoutingState>,
    /// Ends live streams when the hub stops.
    pub shutdown: crate::infra::shutdown::Shutdown,
    /// Live streams open per account, bounded.
    pub streams: Arc<crate::http::stream::StreamLimits>,
    /// The outbox as this process reads it for live streams.
    pub live: Arc<crate::pipeline::live_feed::LiveFeed>,
}

pub fn routes(state: ConsoleState) -> Vec<Route> {
    let s = state;
    vec![
        Route::new(
            Method::GET,
            "/api/v1/console/tasks",
            Guard::Account,
            get(list).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/api/v1/console/stream",
            Guard::Account,
            get(crate::http::stream::stream).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/api/v1/tasks/{id}/workflow",
            Guard::Account,
            get(show).with_state(s.clone()),
        ),
        Route::new(
            Method::POST,
            "/api/v1/tasks/{id}/actions",
            Guard::Account,
            post(act).with_state(s),
        ),
    ]
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

/// The longest `due_within` a list takes.
const MAX_WITHIN: TimeDelta = TimeDelta::days(366);

/// Parses `30m`, `2h`, `1d` or a number of minutes, up to a year.
pub fn parse_within(s: &str) -> Option<TimeDelta> {
    let s = s.trim();
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "m"),
    };
    let n: i64 = n.parse().ok()?;
    let d = match unit {
        "m" | "min" => TimeDelta::try_minutes(n),
        "h" => TimeDelta::try_hours(n),
        "d" => TimeDelta::try_days(n),
        _ => None,
    }?;
    (d <= MAX_WITHIN).then_some(d)
}

/// The query of `GET /api/v1/console/tasks`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsoleQuery {
    community: Option<String>,
    street: Option<String>,
    unit: Option<String>,
    status: Option<String>,
    due_within: Option<String>,
    breached: Option<String>,
    department: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /api/v1/console/tasks`: tasks in a scope (community, street or unit; an account's
/// own scope narrows it further) with filters.
#[utoipa::path(get, path = "/api/v1/console/tasks", tag = "console", params(ConsoleQuery), security(("bearer" = [])), responses((status = 200, description = "Tasks in the scope with their deadlines and breach flag"), (status = 403, description = "A filter asks for another scope"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list(
    State(s): State<ConsoleState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ConsoleQuery>,
) -> Result<Json<Value>, ApiError> {
    let now = Utc::now();
    let within = parse_param(
        "due_within",
        q.due_within.as_deref(),
        "must be like 30m, 2h or 1d (at most 366d)",
        parse_within,
    )?;
    let breached = parse_param(
        "breached",
        q.breached.as_deref(),
        "must be true or false",
        |b| match b {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
    )?;
    let mut filter = TaskFilter {
        community_code: q.community,
        street_code: q.street,
        unit_id: q.unit,
        status: crate::http::tasks::parse_status(q.status.as_deref())?,
        department: crate::http::tasks::parse_department(q.department.as_deref())?,
        due_before: within.and_then(|w| now.checked_add_signed(w)),
        breached,
        limit: page_limit(
            q.limit.as_deref(),
            TaskFilter::DEFAULT_LIMIT,
            TaskFilter::MAX_LIMIT,
        )?,
        offset: crate::http::tasks::parse_offset(q.offset.as_deref())?,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not list tasks outside its scope", who.name),
        ));
    }
    let total = s.cases.store.count_tasks(&filter).await?;
    let tasks = s.cases.store.list_tasks(&filter).await?;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let record = s.cases.store.workflow(&t.fields.task_id).await?;
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

/// `GET /api/v1/tasks/{id}/workflow`
#[utoipa::path(get, path = "/api/v1/tasks/{id}/workflow", tag = "console", params(("id" = String, Path, description = "Task id")), security(("bearer" = [])), responses((status = 200, description = "The task, its history, its state, the actions allowed now and its live SLA clocks"), (status = 404, description = "No such task in the caller's scope"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn show(
    State(s): State<ConsoleState>,
    TaskInScope { task, .. }: TaskInScope,
) -> Result<Json<Value>, ApiError> {
    let id = task.fields.task_id.clone();
    let current = s
        .cases
        .current(&id)
        .await?
        .ok_or_else(|| ApiError::no_task(&id))?;
    let history = s.cases.store.task_history(&id).await?;
    let now = Utc::now();
    let sla = s.cases.sla();
    let policy = crate::cases::service::policy_of(&sla, &current.task);
    let clocks: Vec<Value> = current
        .clocks
        .iter()
        .map(|c| clock_json(c, &sla, now))
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
    let kinds: Vec<&str> = hub_cases::lifecycle::ActionKind::ALL
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
    cases: &CaseService,
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
    let case = cases
        .convene(&current.task, lead, co_handlers, now)
        .map_err(|e| e.to_string())?;
    obj.insert(
        "case".to_owned(),
        serde_json::to_value(case).map_err(|e| e.to_string())?,
    );
    Ok(body)
}

/// `POST /api/v1/tasks/{id}/actions`
#[utoipa::path(post, path = "/api/v1/tasks/{id}/actions", tag = "console", params(("id" = String, Path, description = "Task id")), request_body(content = Object, description = "One lifecycle action: `{\"action\": \"sign_for\"}`, `{\"action\": \"resolve\", \"feedback\": \"...\"}`, ... with an optional `note` and `expected_version`"), security(("bearer" = [])), responses((status = 200, description = "The transition: from, to, the new state and the actions allowed now"), (status = 403, description = "The caller's role may not take this action"), (status = 404, description = "No such task in the caller's scope"), (status = 409, description = "Not allowed in the task's state, or decided on a stale version"), (status = 413, description = "Over 64 KB"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn act(
    State(s): State<ConsoleState>,
    TaskInScope { task, who }: TaskInScope,
    note: crate::http::action_trail::ActionNote,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = task.fields.task_id.clone();
    if body.len() > ACTION_MAX_BYTES {
        return Err(ApiError::msg(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the action is {} bytes; at most {ACTION_MAX_BYTES}",
                body.len()
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let result = perform(&s, &who, &id, body.clone()).await;
    note.task_action(&id, &body, &result);
    Ok(Json(result?))
}

/// One lifecycle action (`body`, as the API takes it) by `who` on task `id`, which the
/// caller checked is in `who`'s scope: the checks and the write that the API and the
/// console's forms share.
pub(crate) async fn perform(
    s: &ConsoleState,
    who: &Identity,
    id: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let current = s
        .cases
        .current(id)
        .await?
        .ok_or_else(|| ApiError::no_task(id))?;
    let now = Utc::now();
    let body = convene_body(&s.cases, &current, body, now)
        .map_err(|m| ApiError::msg(StatusCode::BAD_REQUEST, m))?;
    let (command, expected) =
        parse_command(body).map_err(|m| ApiError::msg(StatusCode::BAD_REQUEST, m))?;
    if !may_act(s, who, &current.task, &command.action) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not {} task {id}", who.name, command.action.kind()),
        ));
    }
    let actor = Actor::person(who.name.clone(), who.unit.as_deref());
    let t = s.cases.act(id, command, &actor, now, expected).await?;
    Ok(json!({
        "task_id": id,
        "from": t.from,
        "to": t.to,
        "label": t.label(),
        "version": t.state.version,
        "state": t.state,
        "allowed": t.state.allowed_actions(),
    }))
}

/// Whether `who` may take `action` on `task` (the action matrix, with the roles of the
/// units the city has).
pub(crate) fn may_act(s: &ConsoleState, who: &Identity, task: &Task, action: &Action) -> bool {
    let routing = s.routing.current();
    let city = routing.config().city();
    let role_of = |unit: &str| unit_role(city, unit);
    who.may_act(task, action, &role_of)
}

/// The largest action body taken (a note, a feedback text, a joint case's parts).
pub(crate) const ACTION_MAX_BYTES: usize = 64 * 1024;

/// The role of a unit of the city (`510504001001.police_station` → `police_station`).
fn unit_role(city: &hub_router::city::City, unit: &str) -> Option<hub_router::city::UnitRole> {
    city.communities()
        .iter()
        .flat_map(|c| c.units())
        .chain(city.streets().iter().flat_map(|s| s.units()))
        .find(|u| u.id == unit)
        .map(|u| u.role)
}
