//! Where an event was placed in the city hierarchy, and how.

use hub_schemas::event::{GeoPoint, Location};
use serde::{Deserialize, Serialize};

use crate::city::{City, Community, Grid, Street};
use crate::geo::Point;

/// The lowest level of the hierarchy an event was placed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceLevel {
    Grid,
    Community,
    Street,
    District,
    /// Nothing in the city contains it: city triage owns it (属地兜底).
    Triage,
}

/// How the place was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceMethod {
    /// Point-in-polygon over the boundaries.
    Point,
    /// Prefix of a grid code given by the source.
    GridCode,
    /// Gazetteer lookup of an address or landmark.
    Address,
    /// Nothing usable in the location.
    Unplaced,
}

/// The resolved place: codes of every level down to the lowest one found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedPlace {
    pub level: PlaceLevel,
    pub method: PlaceMethod,
    pub district_code: Option<String>,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub grid_code: Option<String>,
    /// Human-readable name of the matched area (the lowest level), e.g. `红星社区 第2网格`.
    pub matched_area: String,
    /// The point the event stands at: its own when valid, else its address's gazetteer
    /// point. Duplicate detection measures distances from it.
    #[serde(default)]
    pub point: Option<GeoPoint>,
}

impl ResolvedPlace {
    pub fn triage(method: PlaceMethod, why: &str) -> Self {
        ResolvedPlace {
            level: PlaceLevel::Triage,
            method,
            district_code: None,
            street_code: None,
            community_code: None,
            grid_code: None,
            matched_area: format!("city triage: {why}"),
            point: None,
        }
    }
}

/// Where an event lies, found without allocating: the area of every level down to the
/// lowest one found. [`City::resolve`] writes it out as a [`ResolvedPlace`].
#[derive(Debug, Clone, Copy)]
pub struct Located<'a> {
    pub level: PlaceLevel,
    pub method: PlaceMethod,
    pub street: Option<&'a Street>,
    pub community: Option<&'a Community>,
    pub grid: Option<&'a Grid>,
    /// See [`ResolvedPlace::point`].
    pub point: Option<Point>,
    /// Positions of `street`, `community` and `grid` in the city's lists.
    pub(crate) positions: Positions,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Positions {
    pub street: Option<usize>,
    pub community: Option<usize>,
    pub grid: Option<usize>,
}

/// How a point is matched to its community and grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointLookup {
    /// Through the spatial index (what routing uses).
    Index,
    /// By testing every polygon in turn (every community, then every grid; bounding box
    /// first, then the exact test): the baseline for benchmarks and tests.
    Scan,
}

/// The area an event was placed in, by position in the city's lists.
#[derive(Clone, Copy)]
enum Area {
    Grid(usize),
    Community(usize),
    Street(usize),
    District,
}

impl City {
    /// Places an event in the city, trying in turn:
    /// 1. the point, in the community whose boundary contains it, then in that community's
    ///    grid (community level when no grid contains it);
    /// 2. the grid code: a known grid, else the community or street its 12- or 9-digit
    ///    prefix names;
    /// 3. the address, through the gazetteer (normalised exact match);
    /// 4. the district, when the point lies inside its outline or the grid code carries the
    ///    district's prefix;
    /// 5. triage, saying what was given and why none of it matched.
    ///
    /// Never fails: every event gets an owner at some level (属地兜底).
    pub fn resolve(&self, location: &Location) -> ResolvedPlace {
        self.resolved(&self.locate(location), location)
    }

    /// `resolve` without writing anything out.
    pub fn locate(&self, location: &Location) -> Located<'_> {
        self.locate_with(location, PointLookup::Index)
    }

    /// `locate`, choosing how points are matched.
    pub fn locate_with(&self, location: &Location, lookup: PointLookup) -> Located<'_> {
        let point = location.point.map(Point::from);
        let valid_point = point.filter(|p| p.is_valid());
        if let Some(p) = valid_point {
            if let Some((community, grid)) = self.positions_at(p, lookup) {
                let area = grid.map_or(Area::Community(community), Area::Grid);
                return self.located(area, PlaceMethod::Point, valid_point);
            }
        }

        let code = trimmed(location.grid_code.as_deref());
        let by_code = code.and_then(|c| self.area_of_code(c));
        if let Some(area @ (Area::Grid(_) | Area::Community(_) | Area::Street(_))) = by_code {
            return self.located(area, PlaceMethod::GridCode, valid_point);
        }

        if let Some(entry) =
            trimmed(location.address.as_deref()).and_then(|a| self.lookup_address(a))
        {
            if let Some(grid) = self.grid(&entry.grid_code) {
                let point = valid_point.or(Some(entry.point));
                return self.located(Area::Grid(grid.index), PlaceMethod::Address, point);
            }
        }

        if valid_point.is_some_and(|p| self.district().boundary.contains(p)) {
            return self.located(Area::District, PlaceMethod::Point, valid_point);
        }
        if by_code.is_some() {
            return self.located(Area::District, PlaceMethod::GridCode, valid_point);
        }
        Located {
            level: PlaceLevel::Triage,
            method: if valid_point.is_some() {
                PlaceMethod::Point
            } else {
                PlaceMethod::Unplaced
            },
            street: None,
            community: None,
            grid: None,
            point: valid_point,
            positions: Positions::default(),
        }
    }

    /// Writes a located place out, with the reasons for triage when nothing matched.
    pub fn resolved(&self, located: &Located<'_>, location: &Location) -> ResolvedPlace {
        let district = self.district();
        let point = located.point.map(|p| GeoPoint {
            lon: p.lon,
            lat: p.lat,
        });
        let matched_area = match (
            located.level,
            located.grid,
            located.community,
            located.street,
        ) {
            (PlaceLevel::Triage, ..) => {
                let mut place = ResolvedPlace::triage(located.method, &self.unplaced_why(location));
                place.point = point;
                return place;
            }
            (_, Some(g), Some(c), _) => format!("{} {} ({})", c.name, g.name, g.code),
            (_, None, Some(c), _) => format!("{} ({})", c.name, c.code),
            (_, None, None, Some(s)) => format!("{} ({})", s.name, s.code),
            _ => format!("{} ({})", district.name, district.code),
        };
        ResolvedPlace {
            level: located.level,
            method: located.method,
            district_code: Some(district.code.clone()),
            street_code: located.street.map(|s| s.code.clone()),
            community_code: located.community.map(|c| c.code.clone()),
            grid_code: located.grid.map(|g| g.code.clone()),
            matched_area,
            point,
        }
    }

    /// Why nothing in the city matched a location.
    fn unplaced_why(&self, location: &Location) -> String {
        let mut why = Vec::new();
        match location.point.map(Point::from) {
            Some(p) if p.is_valid() => {
                why.push(format!("point {p} is outside {}", self.district().name))
            }
            Some(p) => why.push(format!("point {p} is not a valid lon/lat")),
            None => {}
        }
        if let Some(c) = trimmed(location.grid_code.as_deref()) {
            why.push(format!("grid code {c:?} names no known area"));
        }
        if let Some(a) = trimmed(location.address.as_deref()) {
            why.push(format!("address {a:?} is not in the gazetteer"));
        }
        if why.is_empty() {
            why.push("no point, grid code or address given".to_owned());
        }
        why.join("; ")
    }

    /// The area a grid code names: the grid itself, else the community, street or district
    /// of its prefix. Prefixes are cut with `get` so that a code holding non-ASCII
    /// characters is simply not matched.
    fn area_of_code(&self, code: &str) -> Option<Area> {
        if let Some(grid) = self.grid(code) {
            return Some(Area::Grid(grid.index));
        }
        let district = &self.district().code;
        let community_len = district.len() + 6;
        let street_len = district.len() + 3;
        if let Some(community) = code.get(..community_len).and_then(|c| self.community(c)) {
            return Some(Area::Community(community.index));
        }
        if let Some(street) = code.get(..street_len).and_then(|c| self.street(c)) {
            return Some(Area::Street(street.index));
        }
        code.starts_with(district.as_str())
            .then_some(Area::District)
    }

    fn located(&self, area: Area, method: PlaceMethod, point: Option<Point>) -> Located<'_> {
        let (level, grid, community, street) = match area {
            Area::Grid(g) => {
                let c = self.community_position_of_grid(g);
                (
                    PlaceLevel::Grid,
                    Some(g),
                    Some(c),
                    Some(self.street_position_of_community(c)),
                )
            }
            Area::Community(c) => (
                PlaceLevel::Community,
                None,
                Some(c),
                Some(self.street_position_of_community(c)),
            ),
            Area::Street(s) => (PlaceLevel::Street, None, None, Some(s)),
            Area::District => (PlaceLevel::District, None, None, None),
        };
        Located {
            level,
            method,
            street: street.map(|s| &self.streets()[s]),
            community: community.map(|c| &self.communities()[c]),
            grid: grid.map(|g| &self.grids()[g]),
            point,
            positions: Positions {
                street,
                community,
                grid,
            },
        }
    }
}

fn trimmed(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}
