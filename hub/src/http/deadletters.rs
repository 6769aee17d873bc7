//! `GET /api/v1/deadletters` (the newest dead letters, personal data masked) and `POST
//! /api/v1/deadletters/replay` (re-run them after a fix), for administrators.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;

use crate::http::action_trail::ActionNote;
use crate::http::{ApiQuery, Guard, Route};
use crate::pipeline::dead_letters::{read, replay, DlqState, Filter, MAX_LISTED};

/// `GET /api/v1/deadletters` and `POST /api/v1/deadletters/replay`, for administrators
/// (dead letters carry whole departmental records).
pub fn routes(state: DlqState) -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/deadletters",
            Guard::Administrator,
            get(list_handler).with_state(state.clone()),
        ),
        Route::new(
            Method::POST,
            "/api/v1/deadletters/replay",
            Guard::Administrator,
            post(replay_handler).with_state(state),
        ),
    ]
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayQuery {
    source: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
    #[serde(default)]
    dry_run: bool,
}

fn failed(e: anyhow::Error) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": format!("{e:#}") })),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/deadletters", tag = "dead letters", params(Filter), security(("bearer" = [])), responses((status = 200, description = "The newest dead letters, personal data masked"), (status = 403, description = "Administrators only"), (status = 503, description = "The broker cannot be read"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list_handler(
    State(s): State<DlqState>,
    ApiQuery(filter): ApiQuery<Filter>,
) -> Response {
    let filter = Filter {
        limit: Some(filter.limit.unwrap_or(100).clamp(1, MAX_LISTED)),
        ..filter
    };
    match read(s.kafka.brokers(), &s.dead_letter_topic, &filter).await {
        Ok(entries) => Json(serde_json::json!({
            "topic": s.dead_letter_topic,
            "count": entries.len(),
            "entries": entries,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}

#[utoipa::path(post, path = "/api/v1/deadletters/replay", tag = "dead letters", params(ReplayQuery), security(("bearer" = [])), responses((status = 200, description = "What was produced again, what still fails, what cannot be replayed"), (status = 403, description = "Administrators only"), (status = 503, description = "The broker cannot be read"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn replay_handler(
    State(s): State<DlqState>,
    note: ActionNote,
    ApiQuery(q): ApiQuery<ReplayQuery>,
) -> Response {
    let filter = Filter {
        source: q.source,
        stage: None,
        after: q.after,
        limit: q.limit,
    };
    let action = if q.dry_run {
        "dead_letters.replay_dry_run"
    } else {
        "dead_letters.replay"
    };
    let target = filter.source.clone().unwrap_or_default();
    match replay(&s, &filter, q.dry_run).await {
        Ok(report) => {
            note.add(action, target, None, report.summary());
            Json(report).into_response()
        }
        Err(e) => {
            note.add(action, target, None, format!("{e:#}"));
            failed(e)
        }
    }
}
