//! The HTTP API: health, metrics, and tasks for consoles and departmental systems.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use hub_router::task::TaskStatus;
use hub_schemas::event::{CivicEvent, Department};
use hub_store::{TaskFilter, TaskStore};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::health::Health;
use crate::routing_state::RoutingState;

#[derive(Clone)]
pub struct ApiState {
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    pub health: Arc<Health>,
    pub metrics: PrometheusHandle,
}

pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/tasks", get(list_tasks))
        .route("/api/v1/tasks/{id}", get(get_task))
        .route("/api/v1/returns", get(list_returns))
        .route("/api/v1/route/dry-run", post(dry_run))
        .with_state(state)
}

/// A JSON error `{"error": "..."}` with its status code.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<hub_store::StoreError> for ApiError {
    fn from(e: hub_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving the API");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("task store unavailable: {e}"),
        )
    }
}

async fn healthz(State(s): State<ApiState>) -> Response {
    let connectors = s.health.snapshot();
    // The outbox destinations double as the store check: each relay's position, last
    // failure and next retry.
    let outbox = s.store.outbox_destinations().await;
    let store_ok = outbox.is_ok();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if store_ok { "ok" } else { "store_unavailable" },
        "store": s.store.backend(),
        "rules_version": s.routing.current().config().version(),
        "connectors": connectors,
        "outbox": outbox.unwrap_or_default(),
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// `GET /api/v1/tasks?community=&street=&status=&department=&limit=&offset=`
async fn list_tasks(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = parse_filter(&q).map_err(|m| ApiError(StatusCode::BAD_REQUEST, m))?;
    let total = s.store.count_tasks(&filter).await?;
    let tasks = s.store.list_tasks(&filter).await?;
    Ok(Json(
        json!({ "total": total, "limit": filter.limit, "offset": filter.offset, "tasks": tasks }),
    ))
}

/// `GET /api/v1/tasks/{id}`: the task, why it went where it went, and its history.
async fn get_task(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let task = s
        .store
        .get_task(&id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no task with id `{id}`")))?;
    let history = s.store.task_history(&id).await?;
    let reports = s.store.task_reports(&id).await?;
    Ok(Json(
        json!({ "task": task, "history": history, "reports": reports }),
    ))
}

fn parse_filter(q: &HashMap<String, String>) -> Result<TaskFilter, String> {
    const KNOWN: [&str; 6] = [
        "community",
        "street",
        "status",
        "department",
        "limit",
        "offset",
    ];
    if let Some(unknown) = q.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(format!(
            "unknown query parameter `{unknown}` (known: {})",
            KNOWN.join(", ")
        ));
    }
    let mut filter = TaskFilter {
        limit: 100,
        ..TaskFilter::default()
    };
    filter.community_code = q.get("community").cloned();
    filter.street_code = q.get("street").cloned();
    if let Some(s) = q.get("status") {
        filter.status = Some(TaskStatus::parse(s).ok_or_else(|| {
            let all: Vec<_> = TaskStatus::ALL.iter().map(|t| t.as_str()).collect();
            format!("status `{s}` is not one of {}", all.join(", "))
        })?);
    }
    if let Some(d) = q.get("department") {
        filter.department = Some(Department::parse(d).ok_or_else(|| {
            let all: Vec<_> = Department::ALL.iter().map(|d| d.as_str()).collect();
            format!("department `{d}` is not one of {}", all.join(", "))
        })?);
    }
    if let Some(l) = q.get("limit") {
        filter.limit = l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| format!("limit `{l}` must be a number from 1 to 1000"))?;
    }
    if let Some(o) = q.get("offset") {
        filter.offset = o
            .parse()
            .map_err(|_| format!("offset `{o}` must be a non-negative number"))?;
    }
    Ok(filter)
}

/// `GET /api/v1/returns?department=&limit=`: events sent back to their department because a
/// community had not admitted them, with the reason.
async fn list_returns(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let department = match q.get("department") {
        None => None,
        Some(d) => Some(Department::parse(d).ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("department `{d}` is not one of {}", department_names()),
            )
        })?),
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("limit `{l}` must be a number from 1 to 1000"),
                )
            })?,
    };
    let returns = s.store.list_returns(department, limit).await?;
    Ok(Json(json!({ "returns": returns })))
}

/// `POST /api/v1/route/dry-run` with a civic event (JSON): the decision and its explanation,
/// and the open task it would be merged into, without storing or sending anything.
async fn dry_run(
    State(s): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let event: CivicEvent = serde_json::from_slice(&body).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("the body is not a civic event (JSON, as in schemas/civic_event.avsc): {e}"),
        )
    })?;
    let router = s.routing.current();
    let decision = router.route(&event, Utc::now()).map_err(|unmapped| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{unmapped}; the pipeline would dead-letter this event"),
        )
    })?;
    let merge_candidate = decision.task().and_then(|t| router.merge_candidate(t)).map(|c| {
        json!({ "group": c.group, "radius_m": c.radius_m, "window_minutes": c.window.num_minutes() })
    });
    Ok(Json(json!({
        "rules_version": router.config().version(),
        "decision": decision,
        "merge_check": merge_candidate,
    })))
}

fn department_names() -> String {
    Department::ALL
        .iter()
        .map(|d| d.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
