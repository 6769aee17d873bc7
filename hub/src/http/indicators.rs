//! Assessment indicators (考核) over HTTP and on the command line.
//!
//! `GET /api/v1/reports/indicators?by=community|street|unit&from=YYYY-MM-DD&to=YYYY-MM-DD`
//! (optionally `community=`, `street=`, `unit=`; `format=csv`) computes, for the cases
//! created in [from, to), the indicators of `hub_cases::indicators` per group. An account
//! sees the indicators of its own scope only. `hub report` prints the same, as a table or
//! CSV.
//!
//! The store tallies each group in one aggregate query (`TaskStore::tally_indicators`), over
//! each case's history, workflow state and clocks, so a city-year takes one query.

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use hub_cases::indicators::{GroupBy, Indicators, Tally};
use hub_store::TaskFilter;
use serde_json::json;

use crate::context::access::Identity;
use crate::http::auth::Caller;
use crate::http::console::ConsoleState;
use crate::http::{ApiError, ApiQuery, Guard, Route};

pub fn routes(state: ConsoleState) -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/reports/indicators",
        Guard::Account,
        get(indicators).with_state(state),
    )]
}

/// The longest period one request computes (a year and a day, for leap years); longer
/// periods are asked for year by year.
pub const MAX_PERIOD_DAYS: i64 = 367;

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndicatorsQuery {
    pub by: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub community: Option<String>,
    pub street: Option<String>,
    pub unit: Option<String>,
    pub format: Option<String>,
}

fn day(s: &str, what: &str) -> Result<DateTime<Utc>, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| (1970..=9999).contains(&chrono::Datelike::year(d)))
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        .ok_or_else(|| {
            format!(
                "`{what}` = `{}` must be a date like 2026-11-01",
                crate::http::shorten(s)
            )
        })
}

/// `GET /api/v1/reports/indicators`
#[utoipa::path(get, path = "/api/v1/reports/indicators", tag = "reports", params(IndicatorsQuery), security(("bearer" = [])), responses((status = 200, description = "The indicators (立案率, 结案率, 按期结案率, ...) per group for the period, as JSON or CSV"), (status = 403, description = "Another scope"), (status = 400, description = "A parameter is unknown, repeated or malformed; the error names it"), (status = 401, description = "No valid bearer token"), (status = 429, description = "Too many failed sign-ins from this address")))]
pub(crate) async fn indicators(
    State(s): State<ConsoleState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<IndicatorsQuery>,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`format` = `{other}` must be json or csv"
            )))
        }
    };
    let figures = compute_for(&s, &who, q).await?;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            figures.csv(),
        )
            .into_response());
    }
    Ok(Json(json!({
        "by": figures.by.as_str(),
        "from": figures.from,
        "to": figures.to,
        "as_of": figures.as_of,
        "cases": figures.cases,
        "groups": figures.groups,
    }))
    .into_response())
}

/// The indicators of a period, per group, inside `who`'s scope: what the API, `hub report`
/// and the console's figures page show.
pub(crate) struct Figures {
    pub by: GroupBy,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub as_of: DateTime<Utc>,
    pub cases: usize,
    pub groups: Vec<Indicators>,
}

impl Figures {
    pub fn csv(&self) -> String {
        let mut body = String::from(Indicators::CSV_HEADER);
        body.push('\n');
        for g in &self.groups {
            body.push_str(&g.csv_row());
            body.push('\n');
        }
        body
    }
}

/// Checks the query (names what is wrong) and computes the figures.
pub(crate) async fn compute_for(
    s: &ConsoleState,
    who: &Identity,
    q: IndicatorsQuery,
) -> Result<Figures, ApiError> {
    let bad = |m: String| ApiError::msg(StatusCode::BAD_REQUEST, m);
    let by_name = q.by.as_deref().unwrap_or("community");
    let by = GroupBy::parse(by_name).ok_or_else(|| {
        bad(format!(
            "`by` = `{by_name}` must be street, community or unit"
        ))
    })?;
    let now = Utc::now();
    let to =
        q.to.as_deref()
            .map(|v| day(v, "to"))
            .transpose()
            .map_err(bad)?;
    // Without `from`, the period is the longest one allowed up to `to` (or now).
    let end = to.unwrap_or(now);
    let from = match q.from.as_deref() {
        Some(v) => day(v, "from").map_err(bad)?,
        None => end
            .checked_sub_signed(chrono::TimeDelta::days(MAX_PERIOD_DAYS))
            .unwrap_or(end),
    };
    if from >= end {
        return Err(bad(format!(
            "the period is empty: `from` ({}) must be before `to` ({})",
            from.date_naive(),
            end.date_naive()
        )));
    }
    if end - from > chrono::TimeDelta::days(MAX_PERIOD_DAYS) {
        return Err(bad(format!(
            "the period {} – {} is longer than {MAX_PERIOD_DAYS} days; ask year by year",
            from.date_naive(),
            end.date_naive()
        )));
    }
    let from = Some(from);
    let mut filter = TaskFilter {
        community_code: q.community,
        street_code: q.street,
        unit_id: q.unit,
        created_from: from,
        created_before: to,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(ApiError::msg(
            StatusCode::FORBIDDEN,
            format!("{} may not see indicators outside its scope", who.name),
        ));
    }
    let as_of = to.map_or(now, |t| t.min(now));
    let tallies = s.cases.store.tally_indicators(&filter, by, as_of).await?;
    let cases = tallies.iter().map(|t| t.received).sum::<u64>();
    Ok(Figures {
        by,
        from,
        to,
        as_of,
        cases: usize::try_from(cases).unwrap_or(usize::MAX),
        groups: tallies.into_iter().map(Tally::indicators).collect(),
    })
}
