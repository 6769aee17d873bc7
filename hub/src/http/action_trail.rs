//! The trail of who did what (操作记录): every state-changing request of a signed-in account,
//! through the API or the console, and every console sign-in, whatever its outcome, is
//! written to the store with the actor, their role, the action, its target, the time, the
//! client's address and what the hub answered.
//!
//! [`record`] is put on those routes by the [`super::RouteTable`] itself (a route cannot be
//! added without it), inside sign-in: it sees the caller the route signed in. It names an
//! action by its route (`POST /api/v1/deadletters/replay`) unless the handler says more with
//! an [`ActionNote`] (`task.sign_for` on a task, one record per task of a bulk action). Administrators read the trail through
//! `GET /api/v1/audit/actions` (JSON or CSV), the console's 管理 page and `hub audit actions`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use chrono::Utc;
use hub_cases::lifecycle::ActionKind;
use hub_store::{ActionRecord, TaskStore};
use serde_json::Value;

use super::ApiError;
use crate::context::access::Identity;
use crate::infra::telemetry;

/// The longest answer whose error text is kept as the record's detail.
const DETAIL_BODY_MAX: u64 = 8 * 1024;
/// The longest detail kept, in characters.
const DETAIL_MAX_CHARS: usize = 500;

/// What a handler says of its request, for the trail: the actions it took (a bulk page
/// takes several, each recorded on its own), and the actor when the route does not sign one
/// in (the sign-in page). A request extension on every recorded route; elsewhere it is
/// detached and what is noted goes nowhere. A handler that notes nothing gets one record
/// named by its route, with the answer's status and error.
#[derive(Clone, Default)]
pub struct ActionNote(Arc<Mutex<Noted>>);

#[derive(Default)]
struct Noted {
    actor: Option<(String, &'static str)>,
    actions: Vec<NotedAction>,
}

struct NotedAction {
    action: String,
    target: String,
    /// `None`: the answer's status.
    outcome: Option<StatusCode>,
    detail: String,
}

impl ActionNote {
    fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().expect("action note lock"));
    }

    /// One action taken: what, on what, how it ended (`None`: as the answer says), and why
    /// it was refused or what it did.
    pub fn add(
        &self,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: Option<StatusCode>,
        detail: impl Into<String>,
    ) {
        let a = NotedAction {
            action: action.into(),
            target: target.into(),
            outcome,
            detail: detail.into(),
        };
        self.with(|n| n.actions.push(a));
    }

    /// An action and how it ended: `done` says what it did, a refusal is noted with its
    /// status and error.
    pub fn result<T>(
        &self,
        action: impl Into<String>,
        target: impl Into<String>,
        result: &Result<T, ApiError>,
        done: impl FnOnce(&T) -> String,
    ) {
        let (outcome, detail) = match result {
            Ok(t) => (StatusCode::OK, done(t)),
            Err(ApiError(code, v)) => (*code, v["error"].as_str().unwrap_or("").to_owned()),
        };
        self.add(action, target, Some(outcome), detail);
    }

    /// A lifecycle action on a task (`body` as the API takes it) and how it ended.
    pub fn task_action(&self, task_id: &str, body: &Value, result: &Result<Value, ApiError>) {
        let kind = body
            .get("action")
            .and_then(Value::as_str)
            .and_then(|a| ActionKind::ALL.into_iter().find(|k| k.as_str() == a))
            .map_or("unknown", ActionKind::as_str);
        self.result(format!("task.{kind}"), task_id, result, |_| String::new());
    }

    /// Who acted, when the route does not sign its caller in (the sign-in page); an empty
    /// name for a sign-in that named no account.
    pub fn actor(&self, name: impl Into<String>, role: &'static str) {
        let name = name.into();
        self.with(|n| n.actor = Some((name, role)));
    }

    fn take(&self) -> Noted {
        std::mem::take(&mut self.0.lock().expect("action note lock"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ActionNote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ActionNote>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Whether the route table records a route's requests: state-changing methods of routes
/// that sign an account in. A department's signed push and an Open311 client's request are
/// records of the feeds, kept as events; they are not a person's action.
pub fn records(method: &Method, guard: super::Guard) -> bool {
    use super::Guard;
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    changes
        && matches!(
            guard,
            Guard::Account | Guard::Administrator | Guard::Session
        )
}

/// What [`record`] needs: the store, and the route as declared.
#[derive(Clone)]
pub struct Trail {
    pub store: Arc<dyn TaskStore>,
    pub route: String,
}

/// Runs the route, then writes its record (see the module documentation). A record the
/// store cannot take is logged and counted; the answer stands.
pub async fn record(State(trail): State<Trail>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let who = parts.extensions.get::<Identity>().cloned();
    let source = super::client_addr(&parts).map_or_else(String::new, |ip| ip.to_string());
    let target = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(_, v)| v.to_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => String::new(),
    };
    let method = parts.method.clone();
    let note = ActionNote::default();
    parts.extensions.insert(note.clone());

    let response = next.run(Request::from_parts(parts, body)).await;

    let noted = note.take();
    let Some((actor, role)) = noted
        .actor
        .or_else(|| who.map(|w| (w.name.clone(), w.role_name())))
    else {
        // Nobody signed in and the handler named nobody: not an account's action.
        return response;
    };
    let status = response.status();
    let (response, actions) = if noted.actions.is_empty() {
        let (response, answered) = if status.is_client_error() || status.is_server_error() {
            error_text(response).await
        } else {
            (response, String::new())
        };
        let by_route = NotedAction {
            action: format!("{} {}", method, trail.route),
            target,
            outcome: None,
            detail: answered,
        };
        (response, vec![by_route])
    } else {
        (response, noted.actions)
    };
    let via = if trail.route.starts_with("/api/") {
        "api"
    } else {
        "console"
    };
    let at = Utc::now();
    for a in actions {
        let outcome = a.outcome.unwrap_or(status);
        let record = ActionRecord {
            id: 0,
            at,
            actor: actor.clone(),
            role: role.to_owned(),
            via: via.to_owned(),
            action: a.action,
            target: a.target,
            outcome: outcome.as_u16(),
            source: source.clone(),
            detail: a.detail.chars().take(DETAIL_MAX_CHARS).collect(),
        };
        let label = match trail.store.record_action(&record).await {
            Ok(()) if outcome.is_success() || outcome.is_redirection() => "done",
            Ok(()) => "refused",
            Err(e) => {
                tracing::error!(
                    error = %e,
                    actor = %record.actor,
                    action = %record.action,
                    target = %record.target,
                    "the action trail could not record an action"
                );
                "unrecorded"
            }
        };
        metrics::counter!(telemetry::AUDIT_ACTIONS, "outcome" => label).increment(1);
    }
    response
}

/// The text of an error answer (its JSON `error`, or its text), and the answer rebuilt.
/// Only a small answer of known size is read: a stream is passed on untouched.
async fn error_text(response: Response) -> (Response, String) {
    let small = response
        .body()
        .size_hint()
        .upper()
        .is_some_and(|n| n <= DETAIL_BODY_MAX);
    if !small {
        return (response, String::new());
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, DETAIL_BODY_MAX as usize).await {
        Ok(b) => b,
        Err(_) => return (Response::from_parts(parts, Body::empty()), String::new()),
    };
    let text = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => v["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string()),
        Err(_) => String::from_utf8_lossy(&bytes).trim().to_owned(),
    };
    (Response::from_parts(parts, Body::from(bytes)), text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Guard;

    #[test]
    fn account_changes_are_recorded_and_reads_and_feeds_are_not() {
        assert!(records(&Method::POST, Guard::Account));
        assert!(records(&Method::POST, Guard::Administrator));
        assert!(records(&Method::DELETE, Guard::Session));
        assert!(!records(&Method::GET, Guard::Administrator));
        assert!(!records(&Method::POST, Guard::Signed));
        assert!(!records(&Method::POST, Guard::ApiKey));
        assert!(!records(&Method::POST, Guard::Open));
    }
}
