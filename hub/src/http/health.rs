//! `GET /healthz` (is this process working: the store, the routing pipeline, every
//! supervised task, connector and outbox destination) and `GET /metrics` (Prometheus).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::Utc;
use hub_store::TaskStore;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::context::health::{Health, PipelineStatus};
use crate::context::routing::RoutingState;
use crate::http::{Guard, Route};
use crate::infra::supervisor::{Registry, TaskState};

/// How long the routing pipeline may retry a store failure before `/healthz` says it is
/// not working.
const PIPELINE_PATIENCE: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// The supervised task that is the routing pipeline.
pub const PIPELINE_TASK: &str = "routing_pipeline";

#[derive(Clone)]
pub struct HealthState {
    pub routing: Arc<RoutingState>,
    pub store: Arc<dyn TaskStore>,
    pub health: Arc<Health>,
    pub metrics: PrometheusHandle,
    pub tasks: Arc<Registry>,
    pub pipeline: Arc<PipelineStatus>,
    /// Whether this process runs the routing pipeline (its health counts then).
    pub routes_events: bool,
}

pub fn routes(state: HealthState) -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/healthz",
            Guard::Open,
            get(healthz).with_state(state.clone()),
        ),
        Route::new(
            Method::GET,
            "/metrics",
            Guard::Open,
            get(metrics).with_state(state),
        ),
    ]
}

/// `GET /healthz`: 200 when this process works, 503 when the store does not answer or the
/// routing pipeline (in a process that routes) is down or stuck retrying; with every
/// connector, supervised task and outbox destination.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "This process works: the store answers and the routing pipeline runs. The body lists every connector, supervised task and outbox destination"), (status = 503, description = "The store does not answer or the routing pipeline is down or stuck; `problems` says why")))]
pub(crate) async fn healthz(State(s): State<HealthState>) -> Response {
    let now = Utc::now();
    let store = s.store.ping().await;
    let outbox = s.store.outbox_destinations().await.unwrap_or_default();
    let pipeline = s.pipeline.snapshot();
    let tasks = s.tasks.snapshot();
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = &store {
        problems.push(format!("the task store does not answer: {e}"));
    }
    if s.routes_events {
        match tasks.get(PIPELINE_TASK) {
            Some(t) if t.state == TaskState::Running => {}
            Some(t) => problems.push(format!(
                "the routing pipeline is {:?}: {}",
                t.state,
                t.last_failure.as_deref().unwrap_or("-")
            )),
            None => problems.push("the routing pipeline is not running".to_owned()),
        }
        if pipeline.stuck(now, PIPELINE_PATIENCE) {
            problems.push(format!(
                "the routing pipeline has been retrying since {}: {}",
                pipeline
                    .retrying_since
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                pipeline.last_error.as_deref().unwrap_or("-")
            ));
        }
    }
    let ok = problems.is_empty();
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "problems": problems,
        "store": s.store.backend(),
        "rules_version": s.routing.current().config().version(),
        "pipeline": if s.routes_events { json!(pipeline) } else { json!(null) },
        "tasks": tasks,
        "connectors": s.health.snapshot(),
        "outbox": outbox,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub(crate) async fn metrics(State(s): State<HealthState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}
