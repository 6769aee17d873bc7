//! The hub's HTTP layer: every route is declared once, with the [`Guard`] that says who may
//! call it, in a [`RouteTable`]; the served router and the list of routes (`/healthz` and the
//! authorization tests walk it) are built from that one table, so a route cannot be added
//! without saying who may call it.
//!
//! * [`auth`]: bearer-token sign-in (throttled), the [`auth::Caller`] and
//!   [`auth::TaskInScope`] extractors that every account route uses;
//! * [`action_trail`]: the record of who did what, on every route that changes something
//!   for a signed-in account;
//! * [`web`]: the web console's pages, behind console sessions;
//! * [`ApiError`]: the one JSON error (`{"error": "..."}`) with its status;
//! * [`ApiQuery`]: typed query strings — an unknown, repeated or malformed parameter is a
//!   400 naming it, before any handler runs.

pub mod action_trail;
pub mod audit;
pub mod auth;
pub mod console;
pub mod deadletters;
pub mod health;
pub mod indicators;
pub mod open311;
pub mod openapi;
pub mod push;
pub mod rules;
pub mod stream;
pub mod tasks;
pub mod web;

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Anyone: health, metrics, Open311 reads (public by the specification).
    Open,
    /// Any account's bearer token; the handler reads inside the account's scope.
    Account,
    /// An administrator's bearer token.
    Administrator,
    /// A department's push, signed with HMAC-SHA256 (checked by the handler).
    Signed,
    /// An Open311 client's api key (checked by the handler).
    ApiKey,
    /// A console session (a signed cookie from signing in at `/login`); the page reads
    /// inside the account's scope. POSTs also carry the session's CSRF token.
    Session,
}

/// One served route, for listings and tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    #[serde(serialize_with = "method_name")]
    pub method: Method,
    pub path: String,
    pub guard: Guard,
    /// A page of the web console (not part of the API and its OpenAPI document).
    pub console: bool,
    /// Its requests go to the action trail ([`action_trail`]).
    pub recorded: bool,
}

fn method_name<S: serde::Serializer>(m: &Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// A route before it is served: its method router has its state already.
pub struct Route {
    pub method: Method,
    pub path: String,
    pub guard: Guard,
    pub handler: MethodRouter,
    /// See [`RouteInfo::console`].
    pub console: bool,
    /// See [`RouteInfo::recorded`]; [`action_trail::records`] decides it for
    /// [`Route::new`].
    pub recorded: bool,
}

impl Route {
    pub fn new(
        method: Method,
        path: impl Into<String>,
        guard: Guard,
        handler: MethodRouter,
    ) -> Self {
        Route {
            recorded: action_trail::records(&method, guard),
            method,
            path: path.into(),
            guard,
            handler,
            console: false,
        }
    }
}

/// Every route of a process, each with its guard.
#[derive(Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn add(&mut self, routes: impl IntoIterator<Item = Route>) {
        self.routes.extend(routes);
    }

    /// The router to serve, each account route behind [`auth::require`] and each recorded
    /// one writing the action trail inside it, and the list of what it serves.
    pub fn build(self, auth: auth::AuthState) -> (Router, Vec<RouteInfo>) {
        let mut info = Vec::with_capacity(self.routes.len());
        let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
        for r in self.routes {
            info.push(RouteInfo {
                method: r.method.clone(),
                path: r.path.clone(),
                guard: r.guard,
                console: r.console,
                recorded: r.recorded,
            });
            let handler = if r.recorded {
                let trail = action_trail::Trail {
                    store: auth.store.clone(),
                    route: r.path.clone(),
                };
                r.handler.route_layer(axum::middleware::from_fn_with_state(
                    trail,
                    action_trail::record,
                ))
            } else {
                r.handler
            };
            let handler = match r.guard {
                Guard::Account | Guard::Administrator => {
                    let state = (auth.clone(), r.guard);
                    handler.route_layer(axum::middleware::from_fn_with_state(state, auth::require))
                }
                Guard::Session => handler.route_layer(axum::middleware::from_fn_with_state(
                    auth.clone(),
                    web::session::require,
                )),
                Guard::Open | Guard::Signed | Guard::ApiKey => handler,
            };
            let merged = match by_path.remove(&r.path) {
                Some(existing) => existing.merge(handler),
                None => handler,
            };
            by_path.insert(r.path, merged);
        }
        let mut router = Router::new();
        for (path, handler) in by_path {
            router = router.route(&path, handler);
        }
        (router, info)
    }
}

/// The JSON error every API route answers with: `{"error": "...", ...}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub Value);

impl ApiError {
    pub fn msg(code: StatusCode, message: impl Into<String>) -> Self {
        ApiError(code, json!({ "error": message.into() }))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::msg(StatusCode::BAD_REQUEST, message)
    }

    /// The same answer for a task that does not exist and one outside the caller's scope,
    /// so a scope cannot be probed for ids.
    pub fn no_task(id: &str) -> Self {
        Self::msg(StatusCode::NOT_FOUND, format!("no task with id `{id}`"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<hub_store::StoreError> for ApiError {
    fn from(e: hub_store::StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving the API");
        ApiError::msg(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("task store unavailable: {e}"),
        )
    }
}

/// A typed query string. Declare the struct with `#[serde(deny_unknown_fields)]` and text
/// fields: an unknown or repeated parameter, or one that is not valid UTF-8, is refused with
/// 400 naming it; values are parsed by the handler with messages of their own.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(ApiQuery(q)),
            Err(rejection) => Err(ApiError::bad_request(format!(
                "query string refused: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Parses an optional query value with `parse`; the error names the parameter.
pub fn parse_param<T>(
    name: &str,
    value: Option<&str>,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => parse(v).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("`{name}` = `{}` {expected}", shorten(v)))
        }),
    }
}

/// A page size from 1 to `max` (default `default`).
pub fn page_limit(value: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    Ok(parse_param(
        "limit",
        value,
        &format!("must be a number from 1 to {max}"),
        |v| v.parse::<u32>().ok().filter(|l| (1..=max).contains(l)),
    )?
    .unwrap_or(default))
}

/// At most 100 characters of a value, for error messages.
pub fn shorten(v: &str) -> String {
    if v.chars().count() <= 100 {
        v.to_owned()
    } else {
        format!("{}…", v.chars().take(100).collect::<String>())
    }
}

/// The client's address, when the server was started with connection info (it always is
/// in `hub run`; tests that call the router directly have none).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

pub fn client_addr(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}
