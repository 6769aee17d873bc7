//! Rules versions and their replay, for administrators: `GET /api/v1/rules/versions` and
//! `POST /api/v1/rules/replay` (what a stored version would have done to a period, as
//! `hub rules replay --format json` says it). A candidate is named by its version: nothing
//! over HTTP names a folder on the server.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use hub_store::TaskStore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::action_trail::ActionNote;
use super::{ApiError, Guard, Route};
use crate::cases::replay::Report;
use crate::cases::replay_run::{run, Baselines};
use crate::cases::reroute::{reroute_unsigned, RerouteReport};
use crate::cases::service::CaseService;
use crate::config::HubConfig;
use crate::context::rules_versions::{load_version, routing_of};

/// The longest period replayed over HTTP (the command line has no limit).
pub const MAX_DAYS: i64 = 93;
/// Moved events an answer lists (it counts them all).
pub const LISTED: usize = 1_000;

#[derive(Clone)]
pub struct RulesState {
    pub store: Arc<dyn TaskStore>,
    /// Where versions are loaded from, and what routed a period with nothing published.
    pub config: Arc<HubConfig>,
    /// For re-routing open tasks at an activation.
    pub cases: Arc<CaseService>,
}

pub fn routes(state: RulesState) -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/rules/versions",
            Guard::Administrator,
            get(rules_versions).with_state(state.clone()),
        ),
        Route::new(
            Method::POST,
            "/api/v1/rules/replay",
            Guard::Administrator,
            post(replay_rules).with_state(state.clone()),
        ),
        Route::new(
            Method::POST,
            "/api/v1/rules/activate",
            Guard::Administrator,
            post(activate_rules).with_state(state),
        ),
    ]
}

/// `GET /api/v1/rules/versions`
#[utoipa::path(get, path = "/api/v1/rules/versions", tag = "rules", security(("bearer" = [])), responses((status = 200, description = "The stored rules versions (oldest first) and the last activations (newest first: the first is the version that routes)"), (status = 403, description = "Administrators only"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn rules_versions(State(s): State<RulesState>) -> Result<Json<Value>, ApiError> {
    let versions = s.store.rules_versions().await?;
    let activations = s.store.rules_activations(100).await?;
    Ok(Json(json!({
        "active": activations.first().map(|a| a.version.clone()),
        "versions": versions.iter().map(|v| json!({
            "seq": v.seq,
            "version": v.version,
            "author": v.author,
            "at": v.at,
            "message": v.message,
            "diff": v.diff,
        })).collect::<Vec<_>>(),
        "activations": activations.iter().map(activation_json).collect::<Vec<_>>(),
    })))
}

/// What to replay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A stored version (`r-…`).
    pub candidate: String,
    /// A day (`2026-11-01`, China Standard Time) or an RFC 3339 time.
    pub from: String,
    /// A day (inclusive) or a time (exclusive).
    pub to: String,
}

/// The period of a request, checked.
pub fn period(from: &str, to: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let from = super::audit::instant("from", from, false)?;
    let to = super::audit::instant("to", to, true)?;
    if from >= to {
        return Err(ApiError::bad_request(
            "the period is empty: `from` must be before `to`",
        ));
    }
    if to - from > TimeDelta::days(MAX_DAYS) {
        return Err(ApiError::bad_request(format!(
            "the period is longer than {MAX_DAYS} days; `hub rules replay` replays longer ones"
        )));
    }
    Ok((from, to))
}

/// Replays the period with the stored version `candidate`; noted in the trail as
/// `rules.replay`.
pub async fn replay(
    s: &RulesState,
    r: &ReplayRequest,
    note: &ActionNote,
) -> Result<Report, ApiError> {
    let result = replay_unnoted(s, r).await;
    note.result("rules.replay", r.candidate.clone(), &result, |r| {
        format!("{} events, {} moved", r.events, r.moved)
    });
    result
}

async fn replay_unnoted(s: &RulesState, r: &ReplayRequest) -> Result<Report, ApiError> {
    let (from, to) = period(&r.from, &r.to)?;
    let known = s.store.rules_version(&r.candidate).await?;
    if known.is_none() {
        return Err(ApiError::msg(
            StatusCode::NOT_FOUND,
            format!(
                "no rules version `{}` is stored",
                super::shorten(&r.candidate)
            ),
        ));
    }
    let unprocessable =
        |e: anyhow::Error| ApiError::msg(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}"));
    let candidate = load_version(&*s.store, &r.candidate, &s.config.data_dir)
        .await
        .map_err(unprocessable)?;
    let baselines = Baselines::load(&*s.store, &s.config, from, to)
        .await
        .map_err(unprocessable)?;
    let mut done = run(&*s.store, &baselines, &candidate, from, to, false)
        .await
        .map_err(unprocessable)?;
    done.report.moved_events.truncate(LISTED);
    Ok(done.report)
}

/// `POST /api/v1/rules/replay`
#[utoipa::path(post, path = "/api/v1/rules/replay", tag = "rules", request_body(content = Object, description = "`{\"candidate\": \"r-…\", \"from\": \"2026-11-01\", \"to\": \"2026-11-30\"}`: a stored version and a period of at most 93 days"), security(("bearer" = [])), responses((status = 200, description = "What the candidate changes: events replayed, moved, by change, each unit's and community's load, the first 1,000 moved events with both outcomes"), (status = 400, description = "The body or the period is malformed; the error names it"), (status = 404, description = "No such stored version"), (status = 422, description = "The candidate or a version of the period does not load"), (status = 403, description = "Administrators only"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn replay_rules(
    State(s): State<RulesState>,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: ReplayRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a replay request: {e}")))?;
    let report = replay(&s, &r, &note).await?;
    let mut v = serde_json::to_value(&report)
        .map_err(|e| ApiError::msg(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["candidate"] = r.candidate.into();
    Ok(Json(v))
}

/// Which stored version to route with from now on, why, and what becomes of the open
/// tasks nobody has signed for yet.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    pub version: String,
    pub message: String,
    #[serde(default)]
    pub open_tasks: OpenTasks,
}

/// What an activation does to the open tasks nobody has signed for yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenTasks {
    /// They stay as they are; only new events route by the version.
    #[default]
    Keep,
    /// Those the version hands to another unit are re-routed (改派).
    RerouteUnsigned,
}

/// An activation and, when asked for, what the re-route did.
#[derive(Debug)]
pub struct Activated {
    pub activation: hub_store::RulesActivation,
    pub rerouted: Option<RerouteReport>,
}

/// Makes a stored version the active one (after it loads and its rule tests pass with this
/// hub), as `hub rules rollback --to` does; every process following the store routes with it.
/// Noted in the trail as `rules.activate`.
pub async fn activate(
    s: &RulesState,
    who: &crate::context::access::Identity,
    r: &ActivateRequest,
    note: &ActionNote,
) -> Result<Activated, ApiError> {
    let result = activate_unnoted(s, who, r).await;
    note.result("rules.activate", r.version.clone(), &result, |a| {
        match &a.rerouted {
            Some(report) => format!(
                "activation {}, {} open task(s) re-routed",
                a.activation.seq,
                report.rerouted.len()
            ),
            None => format!("activation {}", a.activation.seq),
        }
    });
    result
}

async fn activate_unnoted(
    s: &RulesState,
    who: &crate::context::access::Identity,
    r: &ActivateRequest,
) -> Result<Activated, ApiError> {
    if r.message.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`message`: say why the version is activated",
        ));
    }
    if s.store.rules_version(&r.version).await?.is_none() {
        return Err(ApiError::msg(
            StatusCode::NOT_FOUND,
            format!(
                "no rules version `{}` is stored",
                super::shorten(&r.version)
            ),
        ));
    }
    let activation = crate::context::rules_versions::rollback(
        &*s.store,
        Some(&r.version),
        &who.name,
        r.message.trim(),
        &s.config.data_dir,
    )
    .await
    .map_err(|e| ApiError::msg(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
    let rerouted = match r.open_tasks {
        OpenTasks::Keep => None,
        OpenTasks::RerouteUnsigned => {
            let internal = |e: anyhow::Error| {
                ApiError::msg(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the version is active, but re-routing the open tasks failed: {e:#}"),
                )
            };
            let routing = routing_of(&*s.store, &activation.version, &s.config.data_dir)
                .await
                .map_err(internal)?;
            let cases = s.cases.under(Arc::new(routing));
            let actor = hub_cases::Actor::person(who.name.clone(), None);
            Some(
                reroute_unsigned(&cases, &actor, Utc::now())
                    .await
                    .map_err(internal)?,
            )
        }
    };
    Ok(Activated {
        activation,
        rerouted,
    })
}

/// `POST /api/v1/rules/activate`
#[utoipa::path(post, path = "/api/v1/rules/activate", tag = "rules", request_body(content = Object, description = "`{\"version\": \"r-…\", \"message\": \"why\", \"open_tasks\": \"keep\" | \"reroute_unsigned\"}` (default `keep`: only new events route by it; `reroute_unsigned` also re-routes the open tasks nobody signed for that it hands to another unit)"), security(("bearer" = [])), responses((status = 200, description = "The activation (the version routes from now on in every process that follows the store) and, with `reroute_unsigned`, `rerouted`: the tasks re-routed, unchanged and left as they are with why"), (status = 400, description = "The body is malformed or says no why"), (status = 404, description = "No such stored version"), (status = 422, description = "It is active already, or it does not load or pass its tests with this hub"), (status = 403, description = "Administrators only"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn activate_rules(
    State(s): State<RulesState>,
    super::auth::Caller(who): super::auth::Caller,
    note: ActionNote,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let r: ActivateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not an activation: {e}")))?;
    let activated = activate(&s, &who, &r, &note).await?;
    let mut v = activation_json(&activated.activation);
    v["rerouted"] = json!(activated.rerouted);
    Ok(Json(v))
}

fn activation_json(a: &hub_store::RulesActivation) -> Value {
    json!({
        "seq": a.seq,
        "version": a.version,
        "action": a.action,
        "author": a.author,
        "at": a.at,
        "message": a.message,
    })
}
