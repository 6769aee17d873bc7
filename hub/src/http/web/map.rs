//! The map page (地图): the city's outlines from its configuration and the account's open
//! tasks as points, as GeoJSON for Leaflet, which draws them with no base layer. Coordinates
//! are those of the configuration and the API (the sample city's datum is GCJ-02), unchanged.

use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{TimeDelta, Utc};
use hub_router::geo::MultiPolygon;
use hub_router::task::{Task, TaskStatus};
use hub_store::TaskFilter;
use serde_json::{json, Value};

use super::messages::{Labels, ZH};
use super::session::Session;
use super::{PageError, WebState};
use crate::context::access::Identity;

/// The most points one map shows; a district's open tasks are far fewer.
pub const MAX_POINTS: usize = 20_000;

#[derive(Template)]
#[template(path = "web/map.html")]
pub struct MapPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
}

pub async fn page(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Html<String>, PageError> {
    Ok(Html(
        MapPage {
            t: &ZH,
            account: session.who.name.clone(),
            csrf: session.csrf(&s.key),
            nav: "map",
        }
        .render()?,
    ))
}

fn rings(boundary: &MultiPolygon) -> Value {
    let ring = |points: &[hub_router::geo::Point]| -> Value {
        points.iter().map(|p| json!([p.lon, p.lat])).collect()
    };
    boundary
        .polygons()
        .iter()
        .map(|p| {
            let mut rings = vec![ring(p.exterior())];
            rings.extend(p.holes().iter().map(|h| ring(h)));
            Value::Array(rings)
        })
        .collect()
}

/// The outlines of the city's communities and grids. Boundaries are the city's public
/// configuration, the same for every account.
pub fn areas(city: &hub_router::city::City) -> Value {
    let feature = |level: &str, code: &str, name: &str, boundary: &MultiPolygon| {
        json!({
            "type": "Feature",
            "properties": {"level": level, "code": code, "name": name},
            "geometry": {"type": "MultiPolygon", "coordinates": rings(boundary)},
        })
    };
    let mut features: Vec<Value> = city
        .grids()
        .iter()
        .map(|g| feature("grid", &g.code, &g.name, &g.boundary))
        .collect();
    features.extend(
        city.communities()
            .iter()
            .map(|c| feature("community", &c.code, &c.name, &c.boundary)),
    );
    json!({"type": "FeatureCollection", "features": features})
}

pub async fn areas_json(State(s): State<WebState>) -> Response {
    let routing = s.console.routing.current();
    let body = areas(routing.config().city());
    (
        [(header::CACHE_CONTROL, "private, max-age=300")],
        Json(body),
    )
        .into_response()
}

/// Every task of `filter` (paged through, at most `max`).
async fn all_tasks(
    s: &WebState,
    mut filter: TaskFilter,
    max: usize,
) -> Result<Vec<Task>, PageError> {
    let mut out = Vec::new();
    filter.limit = TaskFilter::MAX_LIMIT;
    filter.offset = 0;
    loop {
        let page = s.console.cases.store.list_tasks(&filter).await?;
        let n = page.len();
        out.extend(page);
        if n < TaskFilter::MAX_LIMIT as usize || out.len() >= max {
            break;
        }
        filter.offset += TaskFilter::MAX_LIMIT;
    }
    out.truncate(max);
    Ok(out)
}

/// The open tasks of the account's scope that have a point, with their SLA band: breached,
/// due within two hours, or neither. (Three listings, not a clock read per task, so that a
/// district's thousands of points come in one quick answer.)
pub async fn tasks_json(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Json<Value>, PageError> {
    let who: &Identity = &session.who;
    let mut base = TaskFilter::default();
    if !who.narrow(&mut base) {
        return Err(PageError(
            axum::http::StatusCode::FORBIDDEN,
            "超出管辖范围".to_owned(),
        ));
    }
    let now = Utc::now();
    let tasks = all_tasks(&s, base.clone(), MAX_POINTS).await?;
    let ids = |tasks: Vec<Task>| -> std::collections::HashSet<String> {
        tasks.into_iter().map(|t| t.fields.task_id).collect()
    };
    let breached = ids(all_tasks(
        &s,
        TaskFilter {
            breached: Some(true),
            ..base.clone()
        },
        MAX_POINTS,
    )
    .await?);
    let soon = ids(all_tasks(
        &s,
        TaskFilter {
            due_before: now.checked_add_signed(TimeDelta::hours(2)),
            ..base
        },
        MAX_POINTS,
    )
    .await?);
    let finished = [TaskStatus::Closed, TaskStatus::Cancelled];
    let features: Vec<Value> = tasks
        .iter()
        .filter(|t| !finished.contains(&t.status))
        .filter_map(|t| {
            let f = &t.fields;
            // Where routing placed it (the event's own point when valid, else its address's).
            let p = f.place.point.or(f.location.point)?;
            let (lon, lat) = (p.lon, p.lat);
            let (band, countdown) = if breached.contains(&f.task_id) {
                ("late", "已超时")
            } else if soon.contains(&f.task_id) {
                ("warn", "2小时内到期")
            } else {
                ("ok", "未超时")
            };
            Some(json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [lon, lat]},
                "properties": {
                    "id": f.task_id,
                    "category": super::views::category_of(t),
                    "place": f.place.matched_area,
                    "status": super::messages::status(t.status),
                    "band": band,
                    "countdown": countdown,
                },
            }))
        })
        .collect();
    Ok(Json(
        json!({"type": "FeatureCollection", "features": features}),
    ))
}
