//! The webhook endpoint departments push records to: `POST /api/v1/connectors/<name>/records`
//! (and the connector's own `path`, if configured), signed as `hub_connectors::webhook`
//! describes (`X-Hub-Timestamp`, `X-Hub-Signature: sha256=...`).
//!
//! | answer | when |
//! | --- | --- |
//! | 200 `{"status":"accepted"}` | the record is in Kafka (or valid with nothing to act on: `"skipped"`) |
//! | 401 | missing, malformed, stale, replayed or wrongly signed request; counted by reason |
//! | 404 | no webhook connector of that name |
//! | 422 | signed, but the record cannot be mapped; the reason says which field; it is on the dead-letter topic |
//! | 429 | over the connector's rate limit (`Retry-After`) |
//! | 503 | the hub is busy or the connector is not running here (`Retry-After`); send again |
//!
//! The hub answers 2xx only once the record is safe in Kafka: the handler waits for the
//! ingest loop to produce it. A request the hub did not take (429, 503) is forgotten by the
//! replay check, so the department may send it again with the very same headers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use chrono::Utc;
use hub_connectors::push::SubmitError;
use hub_connectors::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use hub_connectors::{Outcome, RawRecord};
use serde_json::json;

use crate::context::health::Health;
use crate::http::{Guard, Route};
use crate::infra::telemetry;
use crate::pipeline::push::PushEndpoint;

/// Webhook connectors of this process, and those configured but not running here (another
/// process runs them, or they could not start) with the reason.
#[derive(Clone, Default)]
pub struct PushState {
    endpoints: Arc<BTreeMap<String, Arc<PushEndpoint>>>,
    unavailable: Arc<BTreeMap<String, String>>,
    health: Arc<Health>,
}

impl PushState {
    pub fn new(
        endpoints: Vec<PushEndpoint>,
        unavailable: BTreeMap<String, String>,
        health: Arc<Health>,
    ) -> Self {
        PushState {
            endpoints: Arc::new(
                endpoints
                    .into_iter()
                    .map(|e| (e.name.clone(), Arc::new(e)))
                    .collect(),
            ),
            unavailable: Arc::new(unavailable),
            health,
        }
    }
}

/// The routes: the generic one, plus each connector's own path. `paths` are the configured
/// paths of every webhook connector (running here or not), by connector name. The handler
/// checks each push's signature.
pub fn routes(state: PushState, paths: &BTreeMap<String, String>) -> Vec<Route> {
    let mut routes = vec![Route::new(
        Method::POST,
        "/api/v1/connectors/{name}/records",
        Guard::Signed,
        post(push_record)
            .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
            .with_state(state.clone()),
    )];
    for (name, path) in paths {
        let name = name.clone();
        routes.push(Route::new(
            Method::POST,
            path.clone(),
            Guard::Signed,
            post(
                move |State(s): State<PushState>, headers: HeaderMap, body: Bytes| async move {
                    receive(&s, &name, &headers, body).await
                },
            )
            .layer(DefaultBodyLimit::max(MAX_PUSH_BYTES))
            .with_state(state.clone()),
        ));
    }
    routes
}

/// The largest pushed record taken (a case with its text; photos go by URL).
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;

#[utoipa::path(post, path = "/api/v1/connectors/{name}/records", tag = "connectors",
    params(("name" = String, Path, description = "The webhook connector"),
           ("X-Hub-Timestamp" = i64, Header, description = "Unix seconds the request was signed at"),
           ("X-Hub-Signature" = String, Header, description = "`sha256=` + hex HMAC-SHA256 of timestamp + `.` + body")),
    request_body(content = Object, description = "One departmental record, as the connector's department writes it"),
    responses((status = 200, description = "The record is in Kafka (`accepted`), or valid with nothing to act on (`skipped`)"),
              (status = 401, description = "Missing, malformed, stale, replayed or wrongly signed"),
              (status = 404, description = "No webhook connector of that name"),
              (status = 413, description = "Over 1 MB"),
              (status = 422, description = "Signed, but the record cannot be mapped; the reason names the field"),
              (status = 429, description = "Over the connector's rate limit"),
              (status = 503, description = "Busy, or the connector is not running here; send again")))]
pub(crate) async fn push_record(
    State(s): State<PushState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(&s, &name, &headers, body).await
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn refused(connector: &str, reason: &'static str) {
    metrics::counter!(telemetry::CONNECTOR_WEBHOOK_REJECTED, "connector" => connector.to_owned(), "reason" => reason).increment(1);
}

async fn receive(s: &PushState, name: &str, headers: &HeaderMap, body: Bytes) -> Response {
    let Some(endpoint) = s.endpoints.get(name) else {
        if let Some(why) = s.unavailable.get(name) {
            refused(name, "not_running");
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": format!("connector {name} is not running in this hub process: {why}") }),
            );
            r.headers_mut().insert("retry-after", 30.into());
            return r;
        }
        return answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no webhook connector named `{name}`") }),
        );
    };
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let verified = endpoint.verifier.lock().expect("verifier lock").verify(
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        Utc::now().timestamp(),
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            refused(name, e.reason());
            // Anyone can send garbage to a public endpoint: a refused push is counted and
            // shown, but does not make the connector look broken.
            s.health.refused(name, &format!("{e}"));
            tracing::warn!(connector = name, reason = e.reason(), error = %e, "pushed request refused");
            return answer(StatusCode::UNAUTHORIZED, json!({ "error": e.to_string() }));
        }
    };
    if let Some(limiter) = &endpoint.limiter {
        let acquired = limiter
            .lock()
            .expect("limiter lock")
            .try_acquire(Instant::now());
        if let Err(wait) = acquired {
            endpoint
                .verifier
                .lock()
                .expect("verifier lock")
                .forget(&verified);
            refused(name, "rate_limited");
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({ "error": format!("over the rate limit of connector {name}; retry in {secs} s") }),
            );
            r.headers_mut().insert("retry-after", secs.into());
            return r;
        }
    }
    let record = RawRecord {
        bytes: body.to_vec(),
        uri: format!("webhook:{name}"),
    };
    match endpoint.handle.submit(record).await {
        Ok(Outcome::Produced) => answer(StatusCode::OK, json!({ "status": "accepted" })),
        Ok(Outcome::Skipped { reason }) => answer(
            StatusCode::OK,
            json!({ "status": "skipped", "reason": reason }),
        ),
        Ok(Outcome::DeadLettered { reason }) => {
            answer(StatusCode::UNPROCESSABLE_ENTITY, json!({ "error": reason }))
        }
        Err(e) => {
            // Not taken: the sender may retry with the same headers.
            endpoint
                .verifier
                .lock()
                .expect("verifier lock")
                .forget(&verified);
            refused(
                name,
                match e {
                    SubmitError::Busy { .. } => "busy",
                    SubmitError::Closed | SubmitError::Unconfirmed => "not_running",
                },
            );
            let mut r = answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": e.to_string() }),
            );
            r.headers_mut().insert("retry-after", 1.into());
            r
        }
    }
}
