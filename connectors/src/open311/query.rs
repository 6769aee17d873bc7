//! `GET requests` query parameters.

use chrono::{DateTime, Duration, Utc};

use super::Open311Error;

/// The specification's default and maximum window, and its default page.
pub const MAX_SPAN_DAYS: i64 = 90;
pub const DEFAULT_LIMIT: usize = 1000;
/// The most `service_request_id`s one query may name.
pub const MAX_IDS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Open,
    Closed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Open => "open",
            RequestStatus::Closed => "closed",
        }
    }
}

/// A checked `GET requests` query.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestsQuery {
    /// When non-empty, overrides every other filter (specification).
    pub service_request_ids: Vec<String>,
    /// Empty: every service.
    pub service_codes: Vec<String>,
    /// Requests whose `requested_datetime` is in `[start, end]`.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Empty: every status.
    pub statuses: Vec<RequestStatus>,
    pub limit: usize,
}

/// Parse the query string (without `?`). `now` closes the default window.
pub fn parse_requests_query(
    query: &str,
    now: DateTime<Utc>,
    jurisdiction_id: Option<&str>,
) -> Result<RequestsQuery, Vec<Open311Error>> {
    let mut errors = Vec::new();
    let mut ids = Vec::new();
    let mut codes = Vec::new();
    let mut statuses = Vec::new();
    let mut start = None;
    let mut end = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let list = || {
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        match key.as_ref() {
            "service_request_id" => ids.extend(list()),
            "service_code" => codes.extend(list()),
            "status" => {
                for s in list() {
                    match s.as_str() {
                        "open" => statuses.push(RequestStatus::Open),
                        "closed" => statuses.push(RequestStatus::Closed),
                        other => errors.push(Open311Error::new(
                            400,
                            format!("status `{other}` is not open or closed"),
                        )),
                    }
                }
            }
            "start_date" | "end_date" => match DateTime::parse_from_rfc3339(value) {
                Ok(t) if key == "start_date" => start = Some(t.with_timezone(&Utc)),
                Ok(t) => end = Some(t.with_timezone(&Utc)),
                Err(_) => errors.push(Open311Error::new(
                    400,
                    format!(
                        "{key} `{value}` is not a w3 date and time such as 2010-01-01T00:00:00Z"
                    ),
                )),
            },
            "jurisdiction_id" => {
                if let Some(expected) = jurisdiction_id {
                    if value != expected {
                        errors.push(Open311Error::new(404, format!("jurisdiction_id `{value}` was not found; this endpoint serves `{expected}`")));
                    }
                }
            }
            _ => {}
        }
    }
    let span = Duration::days(MAX_SPAN_DAYS);
    // Checked: a date at the edge of the calendar must not overflow.
    let before = |t: DateTime<Utc>| {
        t.checked_sub_signed(span)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let after = |t: DateTime<Utc>| {
        t.checked_add_signed(span)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    };
    let (start, end) = match (start, end) {
        (None, None) => (before(now), now),
        (Some(s), None) => (s, now.min(after(s))),
        (None, Some(e)) => (before(e), e),
        (Some(s), Some(e)) => (s, e),
    };
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    if ids.len() > MAX_IDS {
        errors.push(Open311Error::new(
            400,
            format!(
                "{} service_request_ids were asked for; at most {MAX_IDS} in one query",
                ids.len()
            ),
        ));
    }
    if start > end {
        errors.push(Open311Error::new(400, "start_date is after end_date"));
    } else if end - start > span {
        errors.push(Open311Error::new(
            400,
            format!("start_date to end_date may not span more than {MAX_SPAN_DAYS} days"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    statuses.dedup();
    Ok(RequestsQuery {
        service_request_ids: ids,
        service_codes: codes,
        start,
        end,
        statuses,
        limit: DEFAULT_LIMIT,
    })
}
