//! Plane geometry on lon/lat for place resolution: points, polygons, point-in-polygon, and
//! reading GeoJSON Polygon/MultiPolygon geometries.
//!
//! Coordinates are taken as plane coordinates (lon = x, lat = y). At the scale of a city
//! that is exact enough for containment, which is all the hub asks of them.
//!
//! # Border rule
//!
//! Containment uses the crossing number with a half-open rule, so that a point lying exactly
//! on a border shared by two polygons of a tiling belongs to exactly one of them:
//!
//! * each edge is taken from its lower end to its upper end (by latitude), whichever way the
//!   ring runs, and counts only for points with `low.lat <= p.lat < high.lat`;
//!   east-west (horizontal) edges never count;
//! * the edge is crossed when the point lies strictly west of it (strictly left of the
//!   upward edge).
//!
//! A point on a shared border therefore goes to the polygon east of it, and on an east-west
//! border to the polygon north of it. Because both neighbours evaluate the shared edge with
//! the same end first, they compute bit-identical results, which keeps the rule exact in
//! floating point for any edge direction. The outer border of a tiling follows suit: points
//! on its west and south sides are inside, points on its east and north sides outside.

use std::fmt;

use hub_schemas::event::GeoPoint;

/// A longitude/latitude pair, in degrees (the sample city uses the GCJ-02 datum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lon: f64,
    pub lat: f64,
}

impl Point {
    pub fn new(lon: f64, lat: f64) -> Self {
        Point { lon, lat }
    }

    /// True when both coordinates are finite and within lon -180..=180, lat -90..=90.
    pub fn is_valid(self) -> bool {
        self.lon.is_finite()
            && self.lat.is_finite()
            && (-180.0..=180.0).contains(&self.lon)
            && (-90.0..=90.0).contains(&self.lat)
    }
}

impl From<GeoPoint> for Point {
    fn from(p: GeoPoint) -> Self {
        Point::new(p.lon, p.lat)
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.lon, self.lat)
    }
}

/// A closed bounding box: points on its sides are inside, so it never rejects a point that
/// the exact test would accept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    /// The box around `points`; `None` when there are none.
    fn around<'a>(points: impl IntoIterator<Item = &'a Point>) -> Option<BBox> {
        points.into_iter().fold(None, |acc, p| {
            let b = BBox {
                min_lon: p.lon,
                min_lat: p.lat,
                max_lon: p.lon,
                max_lat: p.lat,
            };
            Some(acc.map_or(b, |a: BBox| a.union(&b)))
        })
    }

    pub fn union(&self, other: &BBox) -> BBox {
        BBox {
            min_lon: self.min_lon.min(other.min_lon),
            min_lat: self.min_lat.min(other.min_lat),
            max_lon: self.max_lon.max(other.max_lon),
            max_lat: self.max_lat.max(other.max_lat),
        }
    }

    pub fn contains(&self, p: Point) -> bool {
        self.min_lon <= p.lon
            && p.lon <= self.max_lon
            && self.min_lat <= p.lat
            && p.lat <= self.max_lat
    }
}

/// Why a geometry was refused. `at` locates the problem, e.g. `polygon 0, ring 1, position 3`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("no geometry (null or missing)")]
    Missing,
    #[error("geometry type {0:?} is not supported (expected Polygon or MultiPolygon)")]
    UnsupportedType(String),
    #[error("{at}: expected {expected}")]
    Malformed { at: String, expected: &'static str },
    #[error(
        "{at}: {count} positions, a ring needs at least 4 (three corners and the closing position)"
    )]
    TooFewPositions { at: String, count: usize },
    #[error("{at}: ring is not closed: first position {first} differs from last {last}")]
    UnclosedRing {
        at: String,
        first: Point,
        last: Point,
    },
    #[error("{at}: coordinate is not a finite number")]
    NonFiniteCoordinate { at: String },
    #[error("{at}: {point} is outside lon -180..180 / lat -90..90")]
    OutOfRange { at: String, point: Point },
    #[error("{at}: no rings")]
    NoRings { at: String },
    #[error("multipolygon has no polygons")]
    NoPolygons,
}

/// A polygon: one exterior ring and any number of holes. Rings are stored without the
/// repeated closing position; orientation does not matter for containment.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    exterior: Vec<Point>,
    holes: Vec<Vec<Point>>,
    bbox: BBox,
}

impl Polygon {
    /// Builds a polygon from closed rings (first position repeated last, as in GeoJSON).
    pub fn new(exterior: Vec<Point>, holes: Vec<Vec<Point>>) -> Result<Polygon, GeometryError> {
        Self::from_rings(
            std::iter::once(exterior).chain(holes).collect(),
            "polygon 0",
        )
    }

    /// The axis-aligned rectangle with the given corners.
    pub fn rectangle(min: Point, max: Point) -> Result<Polygon, GeometryError> {
        Polygon::new(
            vec![
                min,
                Point::new(max.lon, min.lat),
                max,
                Point::new(min.lon, max.lat),
                min,
            ],
            Vec::new(),
        )
    }

    /// `rings[0]` is the exterior; `at` names the polygon in errors.
    fn from_rings(rings: Vec<Vec<Point>>, at: &str) -> Result<Polygon, GeometryError> {
        let mut open = Vec::with_capacity(rings.len());
        for (r, mut ring) in rings.into_iter().enumerate() {
            let ring_at = format!("{at}, ring {r}");
            for (i, p) in ring.iter().enumerate() {
                let at = || format!("{ring_at}, position {i}");
                if !p.lon.is_finite() || !p.lat.is_finite() {
                    return Err(GeometryError::NonFiniteCoordinate { at: at() });
                }
                if !p.is_valid() {
                    return Err(GeometryError::OutOfRange {
                        at: at(),
                        point: *p,
                    });
                }
            }
            if ring.len() < 4 {
                return Err(GeometryError::TooFewPositions {
                    at: ring_at,
                    count: ring.len(),
                });
            }
            let (first, last) = (ring[0], ring[ring.len() - 1]);
            if first != last {
                return Err(GeometryError::UnclosedRing {
                    at: ring_at,
                    first,
                    last,
                });
            }
            ring.pop();
            open.push(ring);
        }
        let mut rings = open.into_iter();
        let exterior = rings
            .next()
            .ok_or_else(|| GeometryError::NoRings { at: at.to_owned() })?;
        let bbox =
            BBox::around(&exterior).ok_or_else(|| GeometryError::NoRings { at: at.to_owned() })?;
        Ok(Polygon {
            exterior,
            holes: rings.collect(),
            bbox,
        })
    }

    pub fn exterior(&self) -> &[Point] {
        &self.exterior
    }

    pub fn holes(&self) -> &[Vec<Point>] {
        &self.holes
    }

    pub fn bbox(&self) -> BBox {
        self.bbox
    }

    /// Number of distinct vertices over all rings.
    pub fn vertex_count(&self) -> usize {
        self.exterior.len() + self.holes.iter().map(Vec::len).sum::<usize>()
    }

    /// Point-in-polygon under the half-open border rule of this module.
    pub fn contains(&self, p: Point) -> bool {
        if !self.bbox.contains(p) {
            return false;
        }
        std::iter::once(&self.exterior)
            .chain(&self.holes)
            .fold(false, |inside, ring| inside ^ ring_crossings_odd(ring, p))
    }
}

/// Whether a ray from `p` towards +lon crosses `ring` an odd number of times.
fn ring_crossings_odd(ring: &[Point], p: Point) -> bool {
    let mut odd = false;
    for (i, &a) in ring.iter().enumerate() {
        let b = ring[(i + 1) % ring.len()];
        let (low, high) = if a.lat < b.lat { (a, b) } else { (b, a) };
        if !(low.lat <= p.lat && p.lat < high.lat) {
            continue;
        }
        let cross =
            (high.lon - low.lon) * (p.lat - low.lat) - (high.lat - low.lat) * (p.lon - low.lon);
        if cross > 0.0 {
            odd = !odd;
        }
    }
    odd
}

/// One or more polygons that do not overlap (they may share borders).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiPolygon {
    polygons: Vec<Polygon>,
    bbox: BBox,
}

impl MultiPolygon {
    pub fn new(polygons: Vec<Polygon>) -> Result<MultiPolygon, GeometryError> {
        let bbox = polygons
            .iter()
            .map(Polygon::bbox)
            .reduce(|a, b| a.union(&b))
            .ok_or(GeometryError::NoPolygons)?;
        Ok(MultiPolygon { polygons, bbox })
    }

    /// Reads a GeoJSON geometry object of type `Polygon` or `MultiPolygon`.
    pub fn from_geojson(geometry: &serde_json::Value) -> Result<MultiPolygon, GeometryError> {
        if geometry.is_null() {
            return Err(GeometryError::Missing);
        }
        let kind = geometry
            .get("type")
            .and_then(serde_json::Value::as_str)
            .ok_or(GeometryError::Malformed {
                at: "geometry".into(),
                expected: "a \"type\" string",
            })?;
        let coordinates = geometry
            .get("coordinates")
            .ok_or(GeometryError::Malformed {
                at: "geometry".into(),
                expected: "\"coordinates\"",
            })?;
        match kind {
            "Polygon" => MultiPolygon::new(vec![parse_polygon(coordinates, "polygon 0")?]),
            "MultiPolygon" => {
                let polygons = as_array(coordinates, "coordinates", "an array of polygons")?
                    .iter()
                    .enumerate()
                    .map(|(i, p)| parse_polygon(p, &format!("polygon {i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                MultiPolygon::new(polygons)
            }
            other => Err(GeometryError::UnsupportedType(other.to_owned())),
        }
    }

    pub fn polygons(&self) -> &[Polygon] {
        &self.polygons
    }

    pub fn bbox(&self) -> BBox {
        self.bbox
    }

    pub fn vertex_count(&self) -> usize {
        self.polygons.iter().map(Polygon::vertex_count).sum()
    }

    /// Point-in-polygon under the half-open border rule of this module.
    pub fn contains(&self, p: Point) -> bool {
        self.bbox.contains(p) && self.polygons.iter().any(|poly| poly.contains(p))
    }
}

impl From<Polygon> for MultiPolygon {
    fn from(polygon: Polygon) -> Self {
        let bbox = polygon.bbox;
        MultiPolygon {
            polygons: vec![polygon],
            bbox,
        }
    }
}

fn as_array<'a>(
    value: &'a serde_json::Value,
    at: &str,
    expected: &'static str,
) -> Result<&'a Vec<serde_json::Value>, GeometryError> {
    value.as_array().ok_or_else(|| GeometryError::Malformed {
        at: at.to_owned(),
        expected,
    })
}

fn parse_polygon(value: &serde_json::Value, at: &str) -> Result<Polygon, GeometryError> {
    let rings = as_array(value, at, "an array of rings")?;
    let mut parsed = Vec::with_capacity(rings.len());
    for (r, ring) in rings.iter().enumerate() {
        let ring_at = format!("{at}, ring {r}");
        let positions = as_array(ring, &ring_at, "an array of positions")?;
        let mut points = Vec::with_capacity(positions.len());
        for (i, position) in positions.iter().enumerate() {
            let pos_at = || format!("{ring_at}, position {i}");
            let numbers = as_array(position, &pos_at(), "a position [lon, lat]")?;
            let coordinate = |k: usize| -> Result<f64, GeometryError> {
                let v = numbers.get(k).ok_or_else(|| GeometryError::Malformed {
                    at: pos_at(),
                    expected: "a position [lon, lat]",
                })?;
                let x = v.as_f64().ok_or_else(|| GeometryError::Malformed {
                    at: pos_at(),
                    expected: "numbers in a position",
                })?;
                if x.is_finite() {
                    Ok(x)
                } else {
                    Err(GeometryError::NonFiniteCoordinate { at: pos_at() })
                }
            };
            points.push(Point::new(coordinate(0)?, coordinate(1)?));
        }
        parsed.push(points);
    }
    Polygon::from_rings(parsed, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(min: (f64, f64), max: (f64, f64)) -> Polygon {
        Polygon::rectangle(Point::new(min.0, min.1), Point::new(max.0, max.1)).unwrap()
    }

    #[test]
    fn shared_vertical_border_goes_east() {
        let west = square((0.0, 0.0), (1.0, 1.0));
        let east = square((1.0, 0.0), (2.0, 1.0));
        let on_border = Point::new(1.0, 0.5);
        assert!(!west.contains(on_border));
        assert!(east.contains(on_border));
    }

    #[test]
    fn shared_horizontal_border_goes_north() {
        let south = square((0.0, 0.0), (1.0, 1.0));
        let north = square((0.0, 1.0), (1.0, 2.0));
        let on_border = Point::new(0.5, 1.0);
        assert!(!south.contains(on_border));
        assert!(north.contains(on_border));
    }

    #[test]
    fn shared_corner_of_four_squares_belongs_to_one() {
        let squares = [
            square((0.0, 0.0), (1.0, 1.0)),
            square((1.0, 0.0), (2.0, 1.0)),
            square((0.0, 1.0), (1.0, 2.0)),
            square((1.0, 1.0), (2.0, 2.0)),
        ];
        let corner = Point::new(1.0, 1.0);
        let holders: Vec<usize> = (0..4).filter(|&i| squares[i].contains(corner)).collect();
        assert_eq!(
            holders,
            vec![3],
            "the north-east square owns the shared corner"
        );
    }

    #[test]
    fn shared_diagonal_border_belongs_to_exactly_one_whatever_the_ring_direction() {
        // Two triangles split a square along its diagonal; the west one is wound clockwise,
        // the east one counter-clockwise, so they walk the shared edge in opposite directions.
        let p = |lon, lat| Point::new(lon, lat);
        let west = Polygon::new(
            vec![p(0.0, 0.0), p(0.0, 3.0), p(3.0, 3.0), p(0.0, 0.0)],
            vec![],
        )
        .unwrap();
        let east = Polygon::new(
            vec![p(0.0, 0.0), p(3.0, 0.0), p(3.0, 3.0), p(0.0, 0.0)],
            vec![],
        )
        .unwrap();
        for k in 1..300 {
            let t = f64::from(k) / 100.0;
            let on_diagonal = p(t, t);
            assert!(
                west.contains(on_diagonal) ^ east.contains(on_diagonal),
                "point {on_diagonal} on the shared diagonal"
            );
        }
    }

    #[test]
    fn hole_is_outside() {
        let p = |lon, lat| Point::new(lon, lat);
        let outer = vec![
            p(0.0, 0.0),
            p(4.0, 0.0),
            p(4.0, 4.0),
            p(0.0, 4.0),
            p(0.0, 0.0),
        ];
        let hole = vec![
            p(1.0, 1.0),
            p(3.0, 1.0),
            p(3.0, 3.0),
            p(1.0, 3.0),
            p(1.0, 1.0),
        ];
        let poly = Polygon::new(outer, vec![hole]).unwrap();
        assert!(!poly.contains(p(2.0, 2.0)));
        assert!(poly.contains(p(0.5, 2.0)));
        assert!(!poly.contains(p(f64::NAN, 2.0)));
    }

    #[test]
    fn geojson_polygon_and_multipolygon_are_read() {
        let polygon = serde_json::json!({
            "type": "Polygon",
            "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]
        });
        let mp = MultiPolygon::from_geojson(&polygon).unwrap();
        assert_eq!(mp.vertex_count(), 4);
        assert!(mp.contains(Point::new(1.0, 1.0)));

        let multi = serde_json::json!({
            "type": "MultiPolygon",
            "coordinates": [
                [[[0, 0], [1, 0], [1, 1], [0, 0]]],
                [[[5, 5], [6, 5], [6, 6, 10.0], [5, 5]]]
            ]
        });
        let mp = MultiPolygon::from_geojson(&multi).unwrap();
        assert_eq!(mp.polygons().len(), 2);
        assert!(mp.contains(Point::new(5.8, 5.2)));
        assert!(!mp.contains(Point::new(3.0, 3.0)));
    }

    #[test]
    fn geojson_errors_say_where_and_what() {
        let err = |v: serde_json::Value| MultiPolygon::from_geojson(&v).unwrap_err().to_string();
        let unclosed = serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]});
        assert_eq!(
            err(unclosed),
            "polygon 0, ring 0: ring is not closed: first position (0, 0) differs from last (0, 1)"
        );
        let short = serde_json::json!({"type": "MultiPolygon", "coordinates": [
            [[[0, 0], [1, 0], [1, 1], [0, 0]]],
            [[[0, 0], [1, 0], [0, 0]]]
        ]});
        assert_eq!(
            err(short),
            "polygon 1, ring 0: 3 positions, a ring needs at least 4 (three corners and the closing position)"
        );
        let text = serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [1, "x"], [1, 1], [0, 0]]]});
        assert_eq!(
            err(text),
            "polygon 0, ring 0, position 1: expected numbers in a position"
        );
        let far = serde_json::json!({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]});
        assert_eq!(
            err(far),
            "polygon 0, ring 0, position 1: (200, 0) is outside lon -180..180 / lat -90..90"
        );
        let point = serde_json::json!({"type": "Point", "coordinates": [0, 0]});
        assert!(err(point).contains("\"Point\" is not supported"));
        assert_eq!(
            err(serde_json::Value::Null),
            "no geometry (null or missing)"
        );
    }

    #[test]
    fn non_finite_coordinates_are_refused() {
        let p = |lon, lat| Point::new(lon, lat);
        let ring = vec![p(0.0, 0.0), p(f64::INFINITY, 0.0), p(1.0, 1.0), p(0.0, 0.0)];
        assert_eq!(
            Polygon::new(ring, vec![]).unwrap_err(),
            GeometryError::NonFiniteCoordinate {
                at: "polygon 0, ring 0, position 1".into()
            }
        );
    }
}
