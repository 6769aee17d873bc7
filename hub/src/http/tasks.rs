//! Tasks for consoles and departmental systems, read inside the caller's scope: lists, one
//! task with why it went where it went and its history, events sent back to their
//! department, events a rule suppressed; and the routing dry-run for administrators.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Utc};
use hub_router::task::TaskStatus;
use hub_schemas::event::{CivicEvent, Department};
use hub_store::{TaskFilter, TaskStore};
use serde::Deserialize;
use serde_json::json;

use crate::context::routing::RoutingState;
use crate::http::auth::{Caller, TaskInScope};
use crate::http::{page_limit, parse_param, ApiError, ApiQuery, Guard, Route};

#[derive(Clone)]
pub struct TasksState {
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    /// The bounds a dry-run event is held to, as the pipeline holds every event.
    pub limits: hub_schemas::limits::InputLimits,
}

pub fn routes(state: TasksState) -> Vec<Route> {
    let s = state;
    vec![
        Route::new(
            Method::GET,
            "/api/v1/tasks",
            Guard::Account,
            get(list_tasks).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/api/v1/tasks/{id}",
            Guard::Account,
            get(get_task).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/api/v1/returns",
            Guard::Account,
            get(list_returns).with_state(s.clone()),
        ),
        Route::new(
            Method::GET,
            "/api/v1/suppressions",
            Guard::Administrator,
            get(list_suppressions).with_state(s.clone()),
        ),
        Route::new(
            Method::POST,
            "/api/v1/route/dry-run",
            Guard::Administrator,
            post(dry_run).with_state(s),
        ),
    ]
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TasksQuery {
    community: Option<String>,
    street: Option<String>,
    status: Option<String>,
    department: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

/// `GET /api/v1/tasks?community=&street=&status=&department=&limit=&offset=`, narrowed to
/// the caller's scope.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TasksQuery), security(("bearer" = [])), responses((status = 200, description = "Tasks in the caller's scope, newest first: `total`, `limit`, `offset`, `tasks`"), (status = 403, description = "A filter asks for another scope"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list_tasks(
    State(s): State<TasksState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<TasksQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut filter = TaskFilter {
        community_code: q.community,
        street_code: q.street,
        status: parse_status(q.status.as_deref())?,
        department: parse_department(q.department.as_deref())?,
        limit: page_limit(
            q.limit.as_deref(),
            TaskFilter::DEFAULT_LIMIT,
            TaskFilter::MAX_LIMIT,
        )?,
        offset: parse_offset(q.offset.as_deref())?,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not list tasks outside its scope", who.name),
        ));
    }
    let total = s.store.count_tasks(&filter).await?;
    let tasks = s.store.list_tasks(&filter).await?;
    Ok(Json(
        json!({ "total": total, "limit": filter.limit, "offset": filter.offset, "tasks": tasks }),
    ))
}

pub fn parse_status(v: Option<&str>) -> Result<Option<TaskStatus>, ApiError> {
    let all: Vec<_> = TaskStatus::ALL.iter().map(|t| t.as_str()).collect();
    parse_param(
        "status",
        v,
        &format!("is not one of {}", all.join(", ")),
        TaskStatus::parse,
    )
}

pub fn parse_department(v: Option<&str>) -> Result<Option<Department>, ApiError> {
    parse_param(
        "department",
        v,
        &format!("is not one of {}", department_names()),
        Department::parse,
    )
}

/// Offsets beyond this are refused: a page that deep is a scan, not a page.
const MAX_OFFSET: u32 = 1_000_000;

pub fn parse_offset(v: Option<&str>) -> Result<u32, ApiError> {
    Ok(parse_param(
        "offset",
        v,
        &format!("must be a number from 0 to {MAX_OFFSET}"),
        |v| v.parse::<u32>().ok().filter(|o| *o <= MAX_OFFSET),
    )?
    .unwrap_or(0))
}

/// `GET /api/v1/tasks/{id}`: the task, why it went where it went, and its history.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "Task id")), security(("bearer" = [])), responses((status = 200, description = "The task, why it went where it went, its history and its reports"), (status = 404, description = "No such task in the caller's scope (the same answer whether it does not exist or is outside the scope)"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn get_task(
    State(s): State<TasksState>,
    TaskInScope { task, .. }: TaskInScope,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = task.fields.task_id.clone();
    let history = s.store.task_history(&id).await?;
    let reports = s.store.task_reports(&id).await?;
    Ok(Json(
        json!({ "task": task, "history": history, "reports": reports }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReturnsQuery {
    department: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/returns?department=&limit=`: events sent back to their department because a
/// community had not admitted them, with the reason. A department account reads its own
/// department's only (it must name it); administrators read any.
#[utoipa::path(get, path = "/api/v1/returns", tag = "tasks", params(ReturnsQuery), security(("bearer" = [])), responses((status = 200, description = "Events sent back to their department (not admitted), newest first"), (status = 403, description = "Not an administrator, or another department's returns"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list_returns(
    State(s): State<TasksState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ReturnsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let department = parse_department(q.department.as_deref())?;
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let allowed = match &who.scope {
        crate::context::access::Scope::Administrator => true,
        crate::context::access::Scope::Department {
            department: own, ..
        } => department == Some(*own),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!(
                "{} may read only its own department's returns (department=...)",
                who.name
            ),
        ));
    }
    let returns = s.store.list_returns(department, limit).await?;
    Ok(Json(json!({ "returns": returns })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuppressionsQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/suppressions?before=&limit=`: events a rule suppressed (no task), newest
/// first, with the rule and rules version; page back with `before` = the last one's time.
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "tasks", params(SuppressionsQuery), security(("bearer" = [])), responses((status = 200, description = "Events a rule suppressed (no task), newest first, with rule and rules version"), (status = 403, description = "Administrators only"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list_suppressions(
    State(s): State<TasksState>,
    ApiQuery(q): ApiQuery<SuppressionsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let before = parse_param(
        "before",
        q.before.as_deref(),
        "must be an RFC 3339 time like 2026-11-21T10:00:00+08:00",
        |v| {
            DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        },
    )?;
    let limit = page_limit(q.limit.as_deref(), 100, 1000)?;
    let suppressions = s.store.list_suppressions(before, limit).await?;
    Ok(Json(json!({ "suppressions": suppressions })))
}

/// The largest event the dry-run takes.
const DRY_RUN_MAX_BYTES: usize = 256 * 1024;

/// `POST /api/v1/route/dry-run` with a civic event (JSON): the decision and its explanation,
/// and the open task it would be merged into, without storing or sending anything.
#[utoipa::path(post, path = "/api/v1/route/dry-run", tag = "routing", request_body(content = Object, description = "A civic event (JSON, as in schemas/civic_event.avsc)"), security(("bearer" = [])), responses((status = 200, description = "The decision and its explanation, without storing anything"), (status = 413, description = "Over 256 KB"), (status = 422, description = "The pipeline would dead-letter the event; the error says why"), (status = 403, description = "Administrators only"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn dry_run(
    State(s): State<TasksState>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    dry_run_decision(&s, &body).map(Json)
}

/// What routing would decide for the event in `body` (JSON), with the merge check; nothing
/// is written. Shared by the API and the console's administration page.
pub(crate) fn dry_run_decision(s: &TasksState, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.len() > DRY_RUN_MAX_BYTES {
        return Err(ApiError::msg(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the event is {} bytes; at most {DRY_RUN_MAX_BYTES}",
                body.len()
            ),
        ));
    }
    let event: CivicEvent = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a civic event (JSON, as in schemas/civic_event.avsc): {e}"
        ))
    })?;
    if let Err(problem) = hub_schemas::limits::check_event(&event, &s.limits, Utc::now()) {
        return Err(ApiError::msg(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{problem}; the pipeline would dead-letter this event"),
        ));
    }
    let router = s.routing.current();
    let decision = router.route(&event, Utc::now()).map_err(|unmapped| {
        ApiError::msg(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{unmapped}; the pipeline would dead-letter this event"),
        )
    })?;
    let merge_candidate = decision.task().and_then(|t| router.merge_candidate(t)).map(|c| {
        json!({ "group": c.group, "radius_m": c.radius_m, "window_minutes": c.window.num_minutes() })
    });
    Ok(json!({
        "rules_version": router.config().version(),
        "decision": decision,
        "merge_check": merge_candidate,
    }))
}

fn department_names() -> String {
    Department::ALL
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
