//! `GET /api/v1/audit/actions`: the action trail ([`super::action_trail`]) for
//! administrators, as JSON pages or one CSV file.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use hub_store::{ActionQuery, ActionRecord, TaskStore};
use serde::Deserialize;
use serde_json::json;

use super::{page_limit, ApiError, ApiQuery, Guard, Route};

/// Records a JSON page holds at most.
pub const PAGE_MAX: u32 = 1_000;
/// Records one CSV export holds at most (a year of a district's desks fits).
pub const CSV_MAX: u32 = 200_000;

pub fn routes(store: Arc<dyn TaskStore>) -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/audit/actions",
        Guard::Administrator,
        get(list_actions).with_state(store),
    )]
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActionsQuery {
    /// From this day (`2026-11-01`, China Standard Time) or instant (RFC 3339), inclusive.
    pub from: Option<String>,
    /// Up to this day (inclusive) or instant (exclusive).
    pub to: Option<String>,
    /// One account's actions.
    pub actor: Option<String>,
    /// After this record id (the last `id` of the previous page).
    pub after: Option<String>,
    /// Records per page, 1 to 1000 (default 100); a CSV holds every record of the period.
    pub limit: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// A day in China Standard Time (its start, or the start of the next day for `to`), or an
/// RFC 3339 instant.
pub fn instant(name: &str, v: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is an offset");
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .filter(|d| (1970..=9999).contains(&chrono::Datelike::year(d)))
        .and_then(|d| if end_of_day { d.succ_opt() } else { Some(d) })
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .and_then(|t| t.and_local_timezone(cst).single())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{name}` = `{}` must be a day like 2026-11-01 or an RFC 3339 time",
                super::shorten(v)
            ))
        })
}

/// Checks the query (naming what is wrong) into the store's.
pub fn parse(q: &ActionsQuery) -> Result<(ActionQuery, bool), ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`format` = `{}` must be json or csv",
                super::shorten(other)
            )))
        }
    };
    let from = q
        .from
        .as_deref()
        .map(|v| instant("from", v, false))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|v| instant("to", v, true))
            .transpose()?;
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(ApiError::bad_request(
                "the period is empty: `from` must be before `to`",
            ));
        }
    }
    let after = super::parse_param(
        "after",
        q.after.as_deref(),
        "must be a record id (a whole number)",
        |v| v.parse::<i64>().ok().filter(|n| *n >= 0),
    )?;
    let limit = if csv {
        CSV_MAX
    } else {
        page_limit(q.limit.as_deref(), 100, PAGE_MAX)?
    };
    let actor = q.actor.clone().filter(|a| !a.is_empty());
    Ok((
        ActionQuery {
            from,
            to,
            actor,
            after_id: after,
            limit,
            newest_first: false,
        },
        csv,
    ))
}

pub fn json_of(a: &ActionRecord) -> serde_json::Value {
    json!({
        "id": a.id,
        "at": a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "actor": a.actor,
        "role": a.role,
        "via": a.via,
        "action": a.action,
        "target": a.target,
        "outcome": a.outcome,
        "source": a.source,
        "detail": a.detail,
    })
}

/// The trail as CSV, header first.
pub fn csv_of(actions: &[ActionRecord]) -> String {
    let mut body = String::from(ActionRecord::CSV_HEADER);
    body.push('\n');
    for a in actions {
        body.push_str(&a.csv_row());
        body.push('\n');
    }
    body
}

/// `GET /api/v1/audit/actions`
#[utoipa::path(get, path = "/api/v1/audit/actions", tag = "audit", params(ActionsQuery), security(("bearer" = [])), responses((status = 200, description = "Who did what through the API and the console (actor, role, action, target, time, source address, outcome), oldest first, as JSON pages or CSV"), (status = 403, description = "Administrators only"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn list_actions(
    State(store): State<Arc<dyn TaskStore>>,
    ApiQuery(q): ApiQuery<ActionsQuery>,
) -> Result<Response, ApiError> {
    let (query, csv) = parse(&q)?;
    let actions = store.actions(&query).await?;
    if csv {
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"actions.csv\"",
                ),
            ],
            csv_of(&actions),
        )
            .into_response());
    }
    let next = (actions.len() as u32 == query.limit)
        .then(|| actions.last().map(|a| a.id))
        .flatten();
    Ok(Json(json!({
        "count": actions.len(),
        "next_after": next,
        "actions": actions.iter().map(json_of).collect::<Vec<_>>(),
    }))
    .into_response())
}
