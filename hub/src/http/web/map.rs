//! The map page (地图): the city's outlines from its configuration and the account's open
//! tasks as points, as GeoJSON for Leaflet, which draws them with no base layer. Coordinates
//! are those of the configuration and the API (the sample city's datum is GCJ-02), unchanged.

use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use hub_router::geo::MultiPolygon;
use hub_store::TaskFilter;
use serde_json::{json, Value};

use super::messages::{Labels, ZH};
use super::session::Session;
use super::{PageError, WebState};
use crate::context::access::Identity;

/// The most points one map shows; a district's open tasks are far fewer.
pub const MAX_POINTS: u32 = 20_000;

#[derive(Template)]
#[template(path = "web/map.html")]
pub struct MapPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
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
            admin: session.who.is_admin(),
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

/// The open tasks of the account's scope that have a point, with their SLA band from the
/// task's earliest open deadline, earliest warning point and breach flag (one light listing, not a clock read per
/// task, so that a district's thousands of points come in one quick answer).
///
/// Columns rather than GeoJSON features, so that ten thousand points stay small: each task is
/// `[id, lon, lat, category, place, band]`, the category and place being indices into their
/// lists (a district has few of either) and the band an index into `bands`, which also gives
/// each band's words.
pub async fn tasks_json(
    State(s): State<WebState>,
    Extension(session): Extension<Session>,
) -> Result<Response, PageError> {
    let who: &Identity = &session.who;
    let mut filter = TaskFilter {
        open_only: true,
        ..TaskFilter::default()
    };
    if !who.narrow(&mut filter) {
        return Err(PageError(
            axum::http::StatusCode::FORBIDDEN,
            ZH.out_of_scope.to_owned(),
        ));
    }
    let now = Utc::now();
    let points = s
        .console
        .cases
        .store
        .task_points(&filter, MAX_POINTS)
        .await?;
    let mut categories = Interned::default();
    let mut places = Interned::default();
    let tasks: Vec<PointRow<'_>> = points
        .iter()
        .map(|p| {
            let band = match p.due_at {
                _ if p.breached => Band::Late,
                Some(due) if due <= now => Band::Late,
                // Past a clock's warning point, as the queue's 即将超时.
                Some(_) if p.warning_at.is_some_and(|w| w <= now) => Band::Warn,
                Some(_) => Band::Ok,
                None => Band::None,
            };
            (
                p.task_id.as_str(),
                Rounded(p.lon),
                Rounded(p.lat),
                categories.index(&p.category_name),
                places.index(&p.matched_area),
                band as u8,
            )
        })
        .collect();
    Ok(Json(Points {
        bands: Band::ALL.map(|b| BandWords {
            band: b.class(),
            words: b.words(),
        }),
        categories: categories.list,
        places: places.list,
        tasks,
    })
    .into_response())
}

/// A map point's SLA band; its index is what a point carries.
#[derive(Debug, Clone, Copy)]
enum Band {
    Ok,
    Warn,
    Late,
    None,
}

impl Band {
    const ALL: [Band; 4] = [Band::Ok, Band::Warn, Band::Late, Band::None];

    /// The CSS class of the band (as on the queue).
    fn class(self) -> &'static str {
        match self {
            Band::Ok => "ok",
            Band::Warn => "warn",
            Band::Late => "late",
            Band::None => "none",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Band::Ok => ZH.map_band_ok,
            Band::Warn => ZH.map_band_warn,
            Band::Late => ZH.map_band_late,
            Band::None => ZH.map_band_none,
        }
    }
}

/// Strings listed once, referred to by index.
#[derive(Default)]
struct Interned<'a> {
    list: Vec<&'a str>,
    at: std::collections::HashMap<&'a str, usize>,
}

impl<'a> Interned<'a> {
    fn index(&mut self, s: &'a str) -> usize {
        *self.at.entry(s).or_insert_with(|| {
            self.list.push(s);
            self.list.len() - 1
        })
    }
}

/// A coordinate written to six decimals (about 0.1 m), not seventeen digits.
struct Rounded(f64);

impl serde::Serialize for Rounded {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((self.0 * 1e6).round() / 1e6)
    }
}

type PointRow<'a> = (&'a str, Rounded, Rounded, usize, usize, u8);

// Typed, so that ten thousand points serialise without building a JSON tree first.
#[derive(serde::Serialize)]
struct Points<'a> {
    bands: [BandWords; 4],
    categories: Vec<&'a str>,
    places: Vec<&'a str>,
    tasks: Vec<PointRow<'a>>,
}

#[derive(serde::Serialize)]
struct BandWords {
    band: &'static str,
    words: &'static str,
}
