//! The figures page (考核): the indicators communities, streets and units are assessed by,
//! for a chosen period, ranked, with a bar chart per indicator and the CSV — the same numbers
//! as the API and `hub report`, computed by the same function.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use chrono::{Datelike, FixedOffset, Utc};
use hub_cases::indicators::Indicators;

use super::messages::{Labels, ZH};
use super::session::Session;
use super::views::Choice;
use super::{PageError, WebState};
use crate::http::indicators::{compute_for, Figures, IndicatorsQuery};

#[derive(Debug, Default, serde::Deserialize)]
pub struct FiguresQuery {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// One rate of the assessment, its name in a catalogue and how to read it off a group.
struct Rate {
    name: fn(&Labels) -> &'static str,
    of: fn(&Indicators) -> Option<f64>,
}

const RATES: [Rate; 8] = [
    Rate {
        name: |t| t.rate_on_time_closing,
        of: |g| g.on_time_closing_rate,
    },
    Rate {
        name: |t| t.rate_closing,
        of: |g| g.closing_rate,
    },
    Rate {
        name: |t| t.rate_filing,
        of: |g| g.filing_rate,
    },
    Rate {
        name: |t| t.rate_response,
        of: |g| g.response_rate,
    },
    Rate {
        name: |t| t.rate_resolution,
        of: |g| g.resolution_rate,
    },
    Rate {
        name: |t| t.rate_satisfaction,
        of: |g| g.satisfaction_rate,
    },
    Rate {
        name: |t| t.rate_rework,
        of: |g| g.rework_rate,
    },
    Rate {
        name: |t| t.rate_extension,
        of: |g| g.extension_rate,
    },
];

/// A rate as people read it: `87.5%`, or `—` when there was nothing to count.
pub fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn minutes(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.0}"))
}

#[derive(Debug, Clone)]
pub struct FigureRow {
    pub rank: usize,
    pub key: String,
    pub name: String,
    pub received: u64,
    pub cells: Vec<String>,
    pub sign_for: String,
    pub handling: String,
}

#[derive(Debug, Clone)]
pub struct Bar {
    pub name: String,
    pub width: u32,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: &'static str,
    pub bars: Vec<Bar>,
}

#[derive(Template)]
#[template(path = "web/figures.html")]
pub struct FiguresPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub bys: Vec<Choice>,
    pub from: String,
    pub to: String,
    pub cases: usize,
    pub headers: Vec<&'static str>,
    pub rows: Vec<FigureRow>,
    pub charts: Vec<Chart>,
    pub csv_link: String,
    pub error: String,
}

/// The name of a group's code: the community, street or unit as the city calls it.
fn name_of(city: &hub_router::city::City, key: &str) -> String {
    if let Some(c) = city.community(key) {
        return c.name.clone();
    }
    if let Some(s) = city.streets().iter().find(|s| s.code == key) {
        return s.name.clone();
    }
    city.communities()
        .iter()
        .flat_map(|c| c.units())
        .chain(city.streets().iter().flat_map(|s| s.units()))
        .find(|u| u.id == key)
        .map_or_else(|| key.to_owned(), |u| u.name.clone())
}

fn api_query(q: &FiguresQuery, default_from: &str, default_to: &str) -> IndicatorsQuery {
    IndicatorsQuery {
        by: Some(q.by.clone().unwrap_or_else(|| "community".to_owned())),
        from: Some(
            q.from
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default_from.to_owned()),
        ),
        to: Some(
            q.to.clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default_to.to_owned()),
        ),
        ..IndicatorsQuery::default()
    }
}

/// This month so far (China Standard Time): the period a page opens on.
fn this_month() -> (String, String) {
    let cst = FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let today = Utc::now().with_timezone(&cst).date_naive();
    let first = today.with_day0(0).unwrap_or(today);
    let tomorrow = today.succ_opt().unwrap_or(today);
    (first.to_string(), tomorrow.to_string())
}

fn rows_and_charts(f: &Figures, city: &hub_router::city::City) -> (Vec<FigureRow>, Vec<Chart>) {
    let mut groups: Vec<&Indicators> = f.groups.iter().collect();
    // Ranked by 按期结案率, then 结案率; groups with nothing to count last.
    groups.sort_by(|a, b| {
        let key = |g: &Indicators| {
            (
                g.on_time_closing_rate.unwrap_or(-1.0),
                g.closing_rate.unwrap_or(-1.0),
            )
        };
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let rows = groups
        .iter()
        .enumerate()
        .map(|(i, g)| FigureRow {
            rank: i + 1,
            key: g.key.clone(),
            name: name_of(city, &g.key),
            received: g.received,
            cells: RATES.iter().map(|r| percent((r.of)(g))).collect(),
            sign_for: minutes(g.avg_sign_for_minutes),
            handling: minutes(g.avg_handling_minutes),
        })
        .collect();
    let charts = RATES
        .iter()
        .map(|r| Chart {
            title: (r.name)(&ZH),
            bars: groups
                .iter()
                .map(|g| Bar {
                    name: name_of(city, &g.key),
                    width: (r.of)(g).map_or(0, |v| (v.clamp(0.0, 1.0) * 100.0).round() as u32),
                    value: percent((r.of)(g)),
                })
                .collect(),
        })
        .collect();
    (rows, charts)
}

pub async fn page(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    Query(q): Query<FiguresQuery>,
) -> Result<Html<String>, PageError> {
    let (month_start, tomorrow) = this_month();
    let api = api_query(&q, &month_start, &tomorrow);
    let (from, to, by) = (
        api.from.clone().unwrap_or_default(),
        api.to.clone().unwrap_or_default(),
        api.by.clone().unwrap_or_default(),
    );
    let csv_link = format!(
        "/figures.csv?by={}&from={}&to={}",
        super::url_encode(&by),
        super::url_encode(&from),
        super::url_encode(&to)
    );
    let routing = s.console.routing.current();
    let city = routing.config().city();
    let (rows, charts, cases, error) = match compute_for(&s.console, &session.who, api).await {
        Ok(f) => {
            let (rows, charts) = rows_and_charts(&f, city);
            (rows, charts, f.cases, String::new())
        }
        Err(e) => (
            Vec::new(),
            Vec::new(),
            0,
            e.1["error"].as_str().unwrap_or("").to_owned(),
        ),
    };
    let bys = [
        ("community", ZH.by_community),
        ("street", ZH.by_street),
        ("unit", ZH.by_unit),
    ]
    .into_iter()
    .map(|(v, l)| Choice {
        value: v.to_owned(),
        label: l.to_owned(),
        selected: v == by,
    })
    .collect();
    let mut headers = vec![ZH.figures_rank, ZH.name, ZH.figures_received];
    headers.extend(RATES.iter().map(|r| (r.name)(&ZH)));
    headers.extend([ZH.figures_avg_sign_for, ZH.figures_avg_handling]);
    Ok(Html(
        FiguresPage {
            t: &ZH,
            account: session.who.name.clone(),
            csrf: session.csrf(&s.key),
            nav: "figures",
            admin: session.who.is_admin(),
            bys,
            from,
            to,
            cases,
            headers,
            rows,
            charts,
            csv_link,
            error,
        }
        .render()?,
    ))
}

/// The same CSV as `GET /api/v1/reports/indicators?format=csv` and `hub report --csv`.
pub async fn csv(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
    Query(q): Query<FiguresQuery>,
) -> Result<Response, PageError> {
    let (month_start, tomorrow) = this_month();
    let api = api_query(&q, &month_start, &tomorrow);
    let name = format!(
        "indicators-{}-{}-{}.csv",
        api.by.as_deref().unwrap_or(""),
        api.from.as_deref().unwrap_or(""),
        api.to.as_deref().unwrap_or("")
    );
    let f = compute_for(&s.console, &session.who, api).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "")),
            ),
        ],
        f.csv(),
    )
        .into_response())
}
