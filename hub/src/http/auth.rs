//! Sign-in with bearer tokens, and the extractors that make every account route read inside
//! its account's scope.
//!
//! [`require`] runs before each account route (the [`super::RouteTable`] puts it there):
//! no or a wrong token is 401, an address that failed too often is 429 for a while, an
//! administrator route called by another account is 403. It hands the handler the caller's
//! [`Identity`]. What the caller may *see* is decided by the handler on the parsed request:
//! [`TaskInScope`] loads the task named by the decoded path parameter and answers 404 —
//! the same as for a task that does not exist — when it is outside the caller's scope; list
//! handlers narrow their typed filter with [`Identity::narrow`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hub_router::task::Task;
use hub_store::TaskStore;

use super::{ApiError, Guard};
use crate::context::access::{AccessState, Identity, LoginThrottle};
use crate::infra::telemetry;

/// What sign-in and the extractors need; cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    pub access: Arc<AccessState>,
    pub store: Arc<dyn TaskStore>,
    /// What console sessions are signed with.
    pub sessions: crate::http::web::session::SessionKey,
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::msg(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"hub\""),
    );
    r
}

/// The bearer token of a request, if it carries one.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Signs the caller in (see the module documentation) for a route with `guard`.
pub async fn require(
    State((auth, guard)): State<(AuthState, Guard)>,
    req: Request,
    next: Next,
) -> Response {
    let route = req.uri().path().to_owned();
    let (mut parts, body) = req.into_parts();
    let client = super::client_addr(&parts);
    let throttle: &LoginThrottle = &auth.access.throttle;
    let now = Instant::now();
    if let Some(wait) = client.and_then(|ip| throttle.blocked(ip, now)) {
        metrics::counter!(telemetry::HTTP_REFUSED, "reason" => "throttled").increment(1);
        let mut r = ApiError::msg(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed sign-ins from this address; try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
        r.headers_mut()
            .insert("retry-after", wait.as_secs().max(1).into());
        return r;
    }
    let access = auth.access.current();
    let who = bearer(&parts).and_then(|t| access.identify(t)).cloned();
    let Some(who) = who else {
        if let Some(ip) = client {
            throttle.failed(ip, now);
        }
        metrics::counter!(telemetry::HTTP_REFUSED, "reason" => "unauthenticated").increment(1);
        tracing::info!(route = %route, client = ?client, "API call without a valid token refused");
        return unauthorized(
            "a valid bearer token is required (Authorization: Bearer <token>, accounts in config/access.toml)",
        );
    };
    if let Some(ip) = client {
        throttle.succeeded(ip);
    }
    if guard == Guard::Administrator && !who.is_admin() {
        return ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{route} is for administrators; {} is not one", who.name),
        )
        .into_response();
    }
    parts.extensions.insert(who);
    parts.extensions.insert(auth);
    next.run(Request::from_parts(parts, body)).await
}

/// The signed-in caller. Without sign-in (a route declared without a guard) it refuses:
/// deny by default.
pub struct Caller(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .map(Caller)
            .ok_or_else(|| unauthorized("this route needs a signed-in account"))
    }
}

/// The task named by the route's `{id}`, if the caller may see it. A task outside the
/// caller's scope is answered exactly like one that does not exist (404).
pub struct TaskInScope {
    pub task: Task,
    pub who: Identity,
}

impl<S: Send + Sync> FromRequestParts<S> for TaskInScope {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(who) = Caller::from_request_parts(parts, state).await?;
        let Some(auth) = parts.extensions.get::<AuthState>().cloned() else {
            return Err(unauthorized("this route needs a signed-in account"));
        };
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!("path refused: {}", e.body_text())).into_response()
            })?;
        let id = params.0.get("id").cloned().unwrap_or_default();
        match auth.store.get_task(&id).await {
            Ok(Some(task)) if who.may_see(&task) => Ok(TaskInScope { task, who }),
            Ok(_) => Err(ApiError::no_task(&id).into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}
