//! Where an event was placed in the city hierarchy, and how.

use hub_schemas::event::Location;
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedPlace {
    pub level: PlaceLevel,
    pub method: PlaceMethod,
    pub district_code: Option<String>,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub grid_code: Option<String>,
    /// Human-readable name of the matched area (the lowest level), e.g. `红星社区 第2网格`.
    pub matched_area: String,
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
        }
    }
}

/// The area an event was placed in, before it is written out as a `ResolvedPlace`.
enum Area<'a> {
    Grid(&'a Grid),
    Community(&'a Community),
    Street(&'a Street),
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
        let point = location.point.map(Point::from);
        let valid_point = point.filter(|p| p.is_valid());
        if let Some(p) = valid_point {
            if let Some(community) = self.community_at(p) {
                let area = self
                    .grid_at(community, p)
                    .map_or(Area::Community(community), Area::Grid);
                return self.place(area, PlaceMethod::Point);
            }
        }

        let code = location
            .grid_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let by_code = code.and_then(|c| self.area_of_code(c));
        if let Some(area @ (Area::Grid(_) | Area::Community(_) | Area::Street(_))) = by_code {
            return self.place(area, PlaceMethod::GridCode);
        }

        let address = location
            .address
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty());
        if let Some(grid) = address
            .and_then(|a| self.lookup_address(a))
            .and_then(|e| self.grid(&e.grid_code))
        {
            return self.place(Area::Grid(grid), PlaceMethod::Address);
        }

        if valid_point.is_some_and(|p| self.district().boundary.contains(p)) {
            return self.place(Area::District, PlaceMethod::Point);
        }
        if by_code.is_some() {
            return self.place(Area::District, PlaceMethod::GridCode);
        }

        let mut why = Vec::new();
        match point {
            Some(p) if p.is_valid() => {
                why.push(format!("point {p} is outside {}", self.district().name))
            }
            Some(p) => why.push(format!("point {p} is not a valid lon/lat")),
            None => {}
        }
        if let Some(c) = code {
            why.push(format!("grid code {c:?} names no known area"));
        }
        if let Some(a) = address {
            why.push(format!("address {a:?} is not in the gazetteer"));
        }
        if why.is_empty() {
            why.push("no point, grid code or address given".to_owned());
        }
        let method = if valid_point.is_some() {
            PlaceMethod::Point
        } else {
            PlaceMethod::Unplaced
        };
        ResolvedPlace::triage(method, &why.join("; "))
    }

    /// The area a grid code names: the grid itself, else the community, street or district
    /// of its prefix. Prefixes are cut with `get` so that a code holding non-ASCII
    /// characters is simply not matched.
    fn area_of_code(&self, code: &str) -> Option<Area<'_>> {
        if let Some(grid) = self.grid(code) {
            return Some(Area::Grid(grid));
        }
        let district = &self.district().code;
        let community_len = district.len() + 6;
        let street_len = district.len() + 3;
        if let Some(community) = code.get(..community_len).and_then(|c| self.community(c)) {
            return Some(Area::Community(community));
        }
        if let Some(street) = code.get(..street_len).and_then(|c| self.street(c)) {
            return Some(Area::Street(street));
        }
        code.starts_with(district.as_str())
            .then_some(Area::District)
    }

    fn place(&self, area: Area<'_>, method: PlaceMethod) -> ResolvedPlace {
        let district = self.district();
        let (level, grid, community, street, matched_area) = match area {
            Area::Grid(g) => {
                let community = self.community(&g.community_code);
                let community_name = community.map_or("", |c| c.name.as_str());
                let name = format!("{community_name} {} ({})", g.name, g.code);
                (
                    PlaceLevel::Grid,
                    Some(g),
                    community,
                    community.and_then(|c| self.street(&c.street_code)),
                    name,
                )
            }
            Area::Community(c) => {
                let name = format!("{} ({})", c.name, c.code);
                (
                    PlaceLevel::Community,
                    None,
                    Some(c),
                    self.street(&c.street_code),
                    name,
                )
            }
            Area::Street(s) => (
                PlaceLevel::Street,
                None,
                None,
                Some(s),
                format!("{} ({})", s.name, s.code),
            ),
            Area::District => {
                let name = format!("{} ({})", district.name, district.code);
                (PlaceLevel::District, None, None, None, name)
            }
        };
        ResolvedPlace {
            level,
            method,
            district_code: Some(district.code.clone()),
            street_code: street.map(|s| s.code.clone()),
            community_code: community.map(|c| c.code.clone()),
            grid_code: grid.map(|g| g.code.clone()),
            matched_area,
        }
    }
}
