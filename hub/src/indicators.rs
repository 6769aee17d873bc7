//! Assessment indicators (考核) over HTTP and on the command line.
//!
//! `GET /api/v1/reports/indicators?by=community|street|unit&from=YYYY-MM-DD&to=YYYY-MM-DD`
//! (optionally `community=`, `street=`, `unit=`; `format=csv`) computes, for the cases
//! created in [from, to), the indicators of `hub_router::indicators` per group. An account
//! sees the indicators of its own scope only. `hub report` prints the same, as a table or
//! CSV.
//!
//! Each case's facts come from its history (when it was dispatched, signed for, resolved,
//! closed), its workflow state (rework, extension, callback) and its clocks (deadlines).

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use hub_router::indicators::{compute, CaseFacts, GroupBy, Indicators};
use hub_router::task::{Task, TaskStatus};
use hub_router::workflow::ClockKind;
use hub_store::{StoreError, TaskFilter, TaskStore};
use serde_json::json;

use crate::console_api::ConsoleState;
use crate::http::auth::Caller;
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

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IndicatorsQuery {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
    community: Option<String>,
    street: Option<String>,
    unit: Option<String>,
    format: Option<String>,
}

/// The facts of every case matching `filter` (paged through the store).
pub async fn case_facts(
    store: &dyn TaskStore,
    mut filter: TaskFilter,
) -> Result<Vec<CaseFacts>, StoreError> {
    filter.limit = TaskFilter::MAX_LIMIT;
    filter.offset = 0;
    let mut out = Vec::new();
    loop {
        let page = store.list_tasks(&filter).await?;
        for task in &page {
            out.push(facts_of(store, task).await?);
        }
        if page.len() < filter.limit as usize {
            return Ok(out);
        }
        filter.offset += filter.limit;
    }
}

async fn facts_of(store: &dyn TaskStore, task: &Task) -> Result<CaseFacts, StoreError> {
    let id = &task.fields.task_id;
    let history = store.task_history(id).await?;
    let record = store.workflow(id).await?;
    let clocks = store.task_clocks(id).await?;
    // Entries that change the status (not alerts, escalations or report-ins).
    let moves = || {
        history
            .iter()
            .filter(|h| h.from_status != Some(h.to_status))
    };
    let first = |s: TaskStatus| moves().find(|h| h.to_status == s).map(|h| h.at);
    let last = |s: TaskStatus| moves().rfind(|h| h.to_status == s).map(|h| h.at);
    let state = record.as_ref().and_then(|r| r.state.as_ref());
    let sign_for_due = clocks
        .iter()
        .find(|c| c.clock.kind == ClockKind::SignFor)
        .and_then(|c| c.clock.deadline());
    let handling_due = clocks
        .iter()
        .filter(|c| matches!(c.clock.kind, ClockKind::Handling { .. } | ClockKind::Rework))
        .filter_map(|c| c.clock.deadline())
        .max();
    let f = &task.fields;
    Ok(CaseFacts {
        task_id: id.clone(),
        street_code: f.place.street_code.clone(),
        community_code: f.place.community_code.clone(),
        lead_unit: f.lead_unit.as_ref().map(|u| u.unit_id.clone()),
        status: task.status,
        created_at: f.created_at,
        dispatched_at: first(TaskStatus::Dispatched),
        signed_for_at: first(TaskStatus::SignedFor),
        resolved_at: last(TaskStatus::Resolved),
        closed_at: last(TaskStatus::Closed),
        sign_for_due,
        handling_due,
        reworked: state.is_some_and(|s| s.rework_count > 0),
        extended: state.is_some_and(|s| s.extension_count > 0),
        satisfied: state.and_then(|s| s.callback_satisfied),
    })
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
async fn indicators(
    State(s): State<ConsoleState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<IndicatorsQuery>,
) -> Result<Response, ApiError> {
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
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(bad(format!("`format` = `{other}` must be json or csv"))),
    };
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
    let facts = case_facts(s.workflow.store.as_ref(), filter).await?;
    let as_of = to.map_or(now, |t| t.min(now));
    let groups = compute(&facts, by, as_of);
    if csv {
        let mut body = String::from(Indicators::CSV_HEADER);
        body.push('\n');
        for g in &groups {
            body.push_str(&g.csv_row());
            body.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(json!({
        "by": by.as_str(),
        "from": from,
        "to": to,
        "as_of": as_of,
        "cases": facts.len(),
        "groups": groups,
    }))
    .into_response())
}

/// `hub report`: the indicators from a running hub, as CSV or a table.
pub async fn report_cli(
    api: &str,
    token: Option<&str>,
    query: &[(&str, Option<String>)],
    csv: bool,
) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = query
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
        .collect();
    params.push(("format", if csv { "csv" } else { "json" }.to_owned()));
    let mut req = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/reports/indicators",
            api.trim_end_matches('/')
        ))
        .query(&params);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the hub at {api}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        anyhow::bail!("the hub answered {status}: {body}");
    }
    if csv {
        print!("{body}");
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let pct = |x: &serde_json::Value| {
        x.as_f64()
            .map(|r| format!("{:.1}%", r * 100.0))
            .unwrap_or_else(|| "-".to_owned())
    };
    println!(
        "{:<28} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        v["by"].as_str().unwrap_or("group"),
        "cases",
        "立案率",
        "结案率",
        "按期",
        "返工率",
        "延期率",
        "响应率",
        "解决率",
        "满意率"
    );
    for g in v["groups"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            g["key"].as_str().unwrap_or("-"),
            g["received"],
            pct(&g["filing_rate"]),
            pct(&g["closing_rate"]),
            pct(&g["on_time_closing_rate"]),
            pct(&g["rework_rate"]),
            pct(&g["extension_rate"]),
            pct(&g["response_rate"]),
            pct(&g["resolution_rate"]),
            pct(&g["satisfaction_rate"]),
        );
    }
    Ok(())
}
