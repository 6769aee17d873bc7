//! The city model and place resolution, against the shipped sample city and small synthetic
//! cities built in code.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hub_router::city::{
    parse_boundaries, AreaLevel, Boundary, City, CityConfig, CityError, GazetteerEntry, Problem,
    UnitRole,
};
use hub_router::geo::{MultiPolygon, Point, Polygon};
use hub_router::place::{PlaceLevel, PlaceMethod, ResolvedPlace};
use hub_schemas::event::{Department, GeoPoint, Location};
use proptest::prelude::*;

fn city_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/city")
}

fn sample() -> &'static City {
    static CITY: OnceLock<City> = OnceLock::new();
    CITY.get_or_init(|| City::load(&city_dir()).unwrap_or_else(|e| panic!("sample city: {e}")))
}

fn at(lon: f64, lat: f64) -> Location {
    Location {
        point: Some(GeoPoint { lon, lat }),
        ..Location::default()
    }
}

fn by_code(code: &str) -> Location {
    Location {
        grid_code: Some(code.to_owned()),
        ..Location::default()
    }
}

fn by_address(address: &str) -> Location {
    Location {
        address: Some(address.to_owned()),
        ..Location::default()
    }
}

/// Every community whose polygon contains `p`, by brute force over all of them.
fn holders(city: &City, p: Point) -> Vec<&str> {
    city.communities()
        .iter()
        .filter(|c| c.boundary.contains(p))
        .map(|c| c.code.as_str())
        .collect()
}

// ------------------------------------------------------------------ the shipped sample city

#[test]
fn sample_city_loads_with_the_organisation_the_domain_needs() {
    let city = sample();
    assert_eq!(city.district().code, "510504");
    assert_eq!(city.district().datum, "GCJ-02");
    assert_eq!(city.district().triage_desk().role, UnitRole::TriageDesk);
    assert!(
        city.streets().len() >= 4,
        "{} streets",
        city.streets().len()
    );
    assert!(
        city.communities().len() >= 20,
        "{} communities",
        city.communities().len()
    );
    for street in city.streets() {
        assert_eq!(
            street.triage_desk().role,
            UnitRole::TriageDesk,
            "street {}",
            street.code
        );
        assert!(
            !street.community_codes().is_empty(),
            "street {} has no community",
            street.code
        );
    }
    for c in city.communities() {
        assert!(
            city.grids_of(c).count() >= 1,
            "community {} has no grid",
            c.code
        );
        for role in UnitRole::CORE {
            let units = city.community_units(&c.code, role);
            assert!(!units.is_empty(), "community {} lacks {role}", c.code);
            assert_eq!(city.unit(&units[0].id), Some(units[0]));
        }
        assert!(c.admission.admits(Department::Sanitation, "any category"));
        assert_eq!(
            city.street(&c.street_code).map(|s| s.code.as_str()),
            Some(c.street_code.as_str())
        );
    }
    let old_neighbourhoods = city
        .communities()
        .iter()
        .filter(|c| {
            c.units_with_role(UnitRole::PropertyCompany)
                .next()
                .is_none()
        })
        .count();
    assert!(
        old_neighbourhoods > 0,
        "some communities have no property company"
    );
    let police = city.community_units(&city.communities()[0].code, UnitRole::PoliceStation);
    assert_eq!(police[0].department, Some(Department::Police));
    assert!(city.unit("510504.triage_desk").is_some());
    assert!(city.unit("510504.nobody").is_none());
}

#[test]
fn every_gazetteer_address_lies_in_its_grid_by_point_too() {
    let city = sample();
    assert!(
        city.gazetteer().len() >= 90,
        "{} addresses",
        city.gazetteer().len()
    );
    for entry in city.gazetteer() {
        let by_point = city.resolve(&at(entry.point.lon, entry.point.lat));
        assert_eq!(
            by_point.grid_code.as_deref(),
            Some(entry.grid_code.as_str()),
            "{}",
            entry.address
        );
        let by_name = city.resolve(&by_address(&entry.address));
        assert_eq!(
            (by_name.level, by_name.method),
            (PlaceLevel::Grid, PlaceMethod::Address)
        );
        assert_eq!(by_name.grid_code, by_point.grid_code, "{}", entry.address);
    }
}

#[test]
fn addresses_match_in_normalised_form() {
    let city = sample();
    let entry = city
        .gazetteer()
        .iter()
        .find(|e| e.address.ends_with('号'))
        .unwrap();
    // Full-width digits and stray spaces, as typed on a phone.
    let typed: String = entry
        .address
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                char::from_u32(c as u32 + 0xfee0).unwrap()
            } else {
                c
            }
        })
        .collect();
    let place = city.resolve(&by_address(&format!("  {typed} ")));
    assert_eq!(place.grid_code.as_deref(), Some(entry.grid_code.as_str()));
}

#[test]
fn grid_code_resolves_to_the_lowest_known_level() {
    let city = sample();
    let grid = &city.grids()[7];
    let community = city.community(&grid.community_code).unwrap();

    let place = city.resolve(&by_code(&grid.code));
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::Grid, PlaceMethod::GridCode)
    );
    assert_eq!(place.grid_code.as_deref(), Some(grid.code.as_str()));
    assert_eq!(
        place.community_code.as_deref(),
        Some(community.code.as_str())
    );
    assert_eq!(
        place.street_code.as_deref(),
        Some(community.street_code.as_str())
    );
    assert_eq!(
        place.matched_area,
        format!("{} {} ({})", community.name, grid.name, grid.code)
    );

    let place = city.resolve(&by_code(&community.code));
    assert_eq!(
        (place.level, place.grid_code.as_deref()),
        (PlaceLevel::Community, None)
    );
    assert_eq!(
        place.matched_area,
        format!("{} ({})", community.name, community.code)
    );

    // A grid the city does not know, in a known community: the community owns it.
    let place = city.resolve(&by_code(&format!("{}999", community.code)));
    assert_eq!(place.level, PlaceLevel::Community);
    assert_eq!(
        place.community_code.as_deref(),
        Some(community.code.as_str())
    );

    let place = city.resolve(&by_code(&format!(" {} ", community.street_code)));
    assert_eq!(
        (place.level, place.street_code.as_deref()),
        (PlaceLevel::Street, Some(community.street_code.as_str()))
    );

    let place = city.resolve(&by_code("510504999001001"));
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::District, PlaceMethod::GridCode)
    );

    let place = city.resolve(&by_code("110101001001001"));
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::Triage, PlaceMethod::Unplaced)
    );
    assert!(
        place
            .matched_area
            .contains("\"110101001001001\" names no known area"),
        "{}",
        place.matched_area
    );
}

#[test]
fn the_point_wins_over_grid_code_and_address() {
    let city = sample();
    let entry = &city.gazetteer()[0];
    let other_grid = city
        .grids()
        .iter()
        .find(|g| g.code != entry.grid_code)
        .unwrap();
    let location = Location {
        point: Some(GeoPoint {
            lon: entry.point.lon,
            lat: entry.point.lat,
        }),
        grid_code: Some(other_grid.code.clone()),
        address: Some("no such place".into()),
    };
    let place = city.resolve(&location);
    assert_eq!(place.method, PlaceMethod::Point);
    assert_eq!(place.grid_code.as_deref(), Some(entry.grid_code.as_str()));
}

#[test]
fn nothing_usable_goes_to_triage_with_the_reasons() {
    let city = sample();
    let place = city.resolve(&Location::default());
    assert_eq!(
        place,
        ResolvedPlace::triage(
            PlaceMethod::Unplaced,
            "no point, grid code or address given"
        )
    );

    let location = Location {
        point: Some(GeoPoint {
            lon: f64::NAN,
            lat: 29.0,
        }),
        grid_code: Some("网格５".into()),
        address: Some("火星路1号".into()),
    };
    let place = city.resolve(&location);
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::Triage, PlaceMethod::Unplaced)
    );
    assert!(
        place.matched_area.contains("is not a valid lon/lat"),
        "{}",
        place.matched_area
    );
    assert!(
        place
            .matched_area
            .contains("\"火星路1号\" is not in the gazetteer"),
        "{}",
        place.matched_area
    );

    let place = city.resolve(&at(116.4, 39.9));
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::Triage, PlaceMethod::Point)
    );
    assert!(
        place.matched_area.contains("is outside 龙马潭区"),
        "{}",
        place.matched_area
    );
}

/// Points on the lattice sides communities share, with whether the border is interior
/// (a community on both sides).
fn axis_aligned_community_edges(city: &City) -> Vec<(Point, Point)> {
    let mut edges = Vec::new();
    for c in city.communities() {
        for polygon in c.boundary.polygons() {
            let ring = polygon.exterior();
            for (i, &a) in ring.iter().enumerate() {
                let b = ring[(i + 1) % ring.len()];
                if a.lon == b.lon || a.lat == b.lat {
                    edges.push((a, b));
                }
            }
        }
    }
    edges
}

#[test]
fn sample_has_shared_lattice_borders_to_test() {
    let city = sample();
    let edges = axis_aligned_community_edges(city);
    let interior = edges
        .iter()
        .filter(|(a, b)| {
            let mid = Point::new((a.lon + b.lon) / 2.0, (a.lat + b.lat) / 2.0);
            let (dx, dy) = if a.lon == b.lon {
                (1e-7, 0.0)
            } else {
                (0.0, 1e-7)
            };
            holders(city, Point::new(mid.lon - dx, mid.lat - dy)).len() == 1
                && holders(city, Point::new(mid.lon + dx, mid.lat + dy)).len() == 1
        })
        .count();
    assert!(interior > 50, "only {interior} interior lattice borders");
}

const LON: std::ops::Range<f64> = 105.32..105.575;
const LAT: std::ops::Range<f64> = 28.86..29.08;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn point_resolution_agrees_with_the_polygons(lon in LON, lat in LAT) {
        let city = sample();
        let p = Point::new(lon, lat);
        let containing = holders(city, p);
        prop_assert!(containing.len() <= 1, "{p} lies in {containing:?}");
        let place = city.resolve(&at(lon, lat));
        prop_assert_eq!(&place, &city.resolve(&at(lon, lat)), "resolution is deterministic");
        match containing.first() {
            Some(&community) => {
                prop_assert_eq!(place.community_code.as_deref(), Some(community));
                prop_assert_eq!(place.method, PlaceMethod::Point);
                if let Some(code) = &place.grid_code {
                    let grid = city.grid(code).unwrap();
                    prop_assert_eq!(grid.community_code.as_str(), community);
                    prop_assert!(grid.boundary.contains(p));
                    prop_assert_eq!(place.level, PlaceLevel::Grid);
                } else {
                    prop_assert_eq!(place.level, PlaceLevel::Community);
                    prop_assert!(city.grids_of(city.community(community).unwrap()).all(|g| !g.boundary.contains(p)));
                }
            }
            None if city.district().boundary.contains(p) => {
                prop_assert_eq!((place.level, place.method), (PlaceLevel::District, PlaceMethod::Point));
                prop_assert_eq!(place.district_code.as_deref(), Some("510504"));
            }
            None => prop_assert_eq!(place.level, PlaceLevel::Triage),
        }
    }

    #[test]
    fn points_beyond_the_district_go_to_triage(lon in 100.0..105.3f64, lat in -80.0..80.0f64) {
        let place = sample().resolve(&at(lon, lat));
        prop_assert_eq!((place.level, place.method), (PlaceLevel::Triage, PlaceMethod::Point));
    }

    #[test]
    fn points_on_shared_borders_belong_to_exactly_one_community(edge in any::<prop::sample::Index>(), t in 0.0..1.0f64) {
        let city = sample();
        let edges = axis_aligned_community_edges(city);
        let (a, b) = edges[edge.index(edges.len())];
        // Exactly on the edge: one coordinate is the lattice value itself.
        let p = if a.lon == b.lon {
            Point::new(a.lon, a.lat + t * (b.lat - a.lat))
        } else {
            Point::new(a.lon + t * (b.lon - a.lon), a.lat)
        };
        let (dx, dy) = if a.lon == b.lon { (1e-7, 0.0) } else { (0.0, 1e-7) };
        let both_sides_held = holders(city, Point::new(p.lon - dx, p.lat - dy)).len() == 1
            && holders(city, Point::new(p.lon + dx, p.lat + dy)).len() == 1;
        let containing = holders(city, p);
        prop_assert!(containing.len() <= 1, "{p} lies in {containing:?}");
        if both_sides_held {
            prop_assert_eq!(containing.len(), 1, "{} on an interior border lies in no community", p);
            let place = city.resolve(&at(p.lon, p.lat));
            prop_assert_eq!(place.community_code.as_deref(), Some(containing[0]));
        }
    }

    #[test]
    fn any_grid_code_or_address_resolves_without_panicking(code in "\\PC{0,20}", address in "\\PC{0,12}") {
        let city = sample();
        let place = city.resolve(&Location { point: None, grid_code: Some(code.clone()), address: Some(address) });
        match place.level {
            PlaceLevel::Grid => prop_assert!(place.grid_code.as_deref().is_some_and(|g| city.grid(g).is_some())),
            PlaceLevel::Triage => prop_assert!(place.district_code.is_none()),
            _ => prop_assert!(code.trim().starts_with("510504")),
        }
    }
}

// ------------------------------------------------------------------ a synthetic city

/// District 0..3 × 0..2 (lon × lat); four unit-square communities cover 0..2 × 0..2, each
/// split into a west and an east grid; the strip 2..3 belongs to no community.
fn synthetic() -> City {
    let mut toml = String::from(
        r#"
[district]
code = "110101"
name = "示例区"
datum = "GCJ-02"
[[district.units]]
id = "110101.triage_desk"
role = "triage_desk"
name = "区指挥中心"
[[streets]]
code = "110101001"
name = "东街道"
[[streets.units]]
id = "110101001.triage_desk"
role = "triage_desk"
name = "东街道综治中心"
"#,
    );
    let rect = |x0: f64, y0: f64, x1: f64, y1: f64| -> Option<MultiPolygon> {
        Some(
            Polygon::rectangle(Point::new(x0, y0), Point::new(x1, y1))
                .unwrap()
                .into(),
        )
    };
    let mut boundaries = vec![
        Boundary {
            level: AreaLevel::District,
            code: "110101".into(),
            parent: None,
            geometry: rect(0.0, 0.0, 3.0, 2.0),
        },
        Boundary {
            level: AreaLevel::Street,
            code: "110101001".into(),
            parent: Some("110101".into()),
            geometry: None,
        },
    ];
    // Communities 001 (south-west), 002 (south-east), 003 (north-west), 004 (north-east).
    for (k, (x, y)) in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0)]
        .into_iter()
        .enumerate()
    {
        let code = format!("110101001{:03}", k + 1);
        toml.push_str(&format!(
            r#"
[[communities]]
code = "{code}"
name = "社区{k}"
street = "110101001"
ladder = ["grid_worker", "workstation", "party_branch", "joint_meeting", "street", "district"]
admission = {{ police = ["*"], sanitation = ["A01", "A02"] }}
[[communities.units]]
id = "{code}.party_branch"
role = "party_branch"
name = "党委"
[[communities.units]]
id = "{code}.workstation"
role = "workstation"
name = "工作站"
[[communities.units]]
id = "{code}.residents_committee"
role = "residents_committee"
name = "居委会"
[[communities.grids]]
code = "{code}001"
name = "西网格"
grid_worker = "甲"
[[communities.grids]]
code = "{code}002"
name = "东网格"
grid_worker = "乙"
"#
        ));
        boundaries.push(Boundary {
            level: AreaLevel::Community,
            code: code.clone(),
            parent: Some("110101001".into()),
            geometry: rect(x, y, x + 1.0, y + 1.0),
        });
        for (g, (gx0, gx1)) in [(x, x + 0.5), (x + 0.5, x + 1.0)].into_iter().enumerate() {
            boundaries.push(Boundary {
                level: AreaLevel::Grid,
                code: format!("{code}{:03}", g + 1),
                parent: Some(code.clone()),
                geometry: rect(gx0, y, gx1, y + 1.0),
            });
        }
    }
    let gazetteer = vec![GazetteerEntry {
        address: "Main Street 1".into(),
        point: Point::new(0.25, 0.25),
        grid_code: "110101001001001".into(),
    }];
    City::from_parts(
        CityConfig::parse(&toml, "city.toml").unwrap(),
        boundaries,
        gazetteer,
    )
    .unwrap()
}

fn community_and_grid(place: &ResolvedPlace) -> (Option<&str>, Option<&str>) {
    (place.community_code.as_deref(), place.grid_code.as_deref())
}

#[test]
fn border_points_go_east_then_north() {
    let city = synthetic();
    let resolve = |lon, lat| city.resolve(&at(lon, lat));
    // On the north-south border between 001 and 002: east.
    assert_eq!(
        community_and_grid(&resolve(1.0, 0.5)),
        (Some("110101001002"), Some("110101001002001"))
    );
    // On the east-west border between 001 and 003: north.
    assert_eq!(
        community_and_grid(&resolve(0.2, 1.0)),
        (Some("110101001003"), Some("110101001003001"))
    );
    // The corner all four share: the north-east one.
    assert_eq!(
        community_and_grid(&resolve(1.0, 1.0)),
        (Some("110101001004"), Some("110101001004001"))
    );
    // The border between a community's two grids: the east grid.
    assert_eq!(
        community_and_grid(&resolve(0.5, 0.5)),
        (Some("110101001001"), Some("110101001001002"))
    );
    // The district's own west side is inside, its north side outside.
    assert_eq!(
        resolve(0.0, 0.5).community_code.as_deref(),
        Some("110101001001")
    );
    assert_eq!(resolve(0.5, 2.0).level, PlaceLevel::Triage);
}

#[test]
fn land_outside_every_community_falls_to_the_district() {
    let city = synthetic();
    let place = city.resolve(&at(2.5, 1.0));
    assert_eq!(
        (place.level, place.method),
        (PlaceLevel::District, PlaceMethod::Point)
    );
    assert_eq!(place.matched_area, "示例区 (110101)");
    assert_eq!((place.street_code, place.community_code), (None, None));
    assert_eq!(city.resolve(&at(3.5, 1.0)).level, PlaceLevel::Triage);
}

#[test]
fn synthetic_city_answers_lookups() {
    let city = synthetic();
    let community = city.community("110101001003").unwrap();
    assert!(community.admission.admits(Department::Police, "anything"));
    assert!(community.admission.admits(Department::Sanitation, "A02"));
    assert!(!community.admission.admits(Department::Sanitation, "B01"));
    assert!(
        !community.admission.admits(Department::CivilAffairs, "A01"),
        "unlisted department admits nothing"
    );
    assert_eq!(city.street("110101001").unwrap().community_codes().len(), 4);
    assert!(city.street("110101001").unwrap().boundary.is_none());
    assert_eq!(city.grid("110101001003002").unwrap().grid_worker, "乙");
    assert_eq!(
        city.street("110101001").unwrap().triage_desk().id,
        "110101001.triage_desk"
    );
    let place = city.resolve(&by_address("mainstreet1"));
    assert_eq!(
        (place.level, place.grid_code.as_deref()),
        (PlaceLevel::Grid, Some("110101001001001"))
    );
}

// ------------------------------------------------------------------ validation errors

/// A copy of the sample city in a fresh directory, with its files passed through `edit`.
fn broken_city(
    name: &str,
    edit_config: impl Fn(String) -> String,
    edit_boundaries: impl Fn(String) -> String,
) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("city-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let read = |file: &str| std::fs::read_to_string(city_dir().join(file)).unwrap();
    std::fs::write(dir.join("city.toml"), edit_config(read("city.toml"))).unwrap();
    std::fs::write(
        dir.join("boundaries.geojson"),
        edit_boundaries(read("boundaries.geojson")),
    )
    .unwrap();
    dir
}

/// Edits feature `index` of a boundaries file as JSON.
fn edit_feature(text: String, index: usize, edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    edit(&mut doc["features"][index]);
    doc.to_string()
}

/// Feature index and code of the first community feature of the sample.
fn first_community_feature() -> (usize, String) {
    let text = std::fs::read_to_string(city_dir().join("boundaries.geojson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let features = doc["features"].as_array().unwrap();
    let index = features
        .iter()
        .position(|f| f["properties"]["level"] == "community")
        .unwrap();
    (
        index,
        features[index]["properties"]["code"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

fn load_error(dir: &Path) -> (String, CityError) {
    let err = City::load(dir).expect_err("the broken city must be refused");
    (err.to_string(), err)
}

#[test]
fn unclosed_ring_names_file_feature_and_position() {
    let (index, code) = first_community_feature();
    let dir = broken_city(
        "unclosed",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                let ring = f["geometry"]["coordinates"][0][0].as_array_mut().unwrap();
                ring.pop();
            })
        },
    );
    let (message, _) = load_error(&dir);
    assert!(message.contains("boundaries.geojson"), "{message}");
    assert!(
        message.contains(&format!("feature {index} (community {code})")),
        "{message}"
    );
    assert!(
        message.contains("polygon 0, ring 0: ring is not closed"),
        "{message}"
    );
}

#[test]
fn short_ring_and_bad_coordinates_are_named() {
    let (index, code) = first_community_feature();
    let dir = broken_city(
        "short-ring",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                f["geometry"]["coordinates"][0][0] =
                    serde_json::json!([[105.4, 29.0], [105.41, 29.0], [105.4, 29.0]]);
            })
        },
    );
    let (message, _) = load_error(&dir);
    assert!(
        message.contains(&format!(
            "feature {index} (community {code}): polygon 0, ring 0: 3 positions"
        )),
        "{message}"
    );

    let dir = broken_city(
        "bad-coordinate",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                f["geometry"]["coordinates"][0][0][2] = serde_json::json!([105.4, "29.0"])
            })
        },
    );
    let (message, _) = load_error(&dir);
    assert!(
        message.contains("polygon 0, ring 0, position 2: expected numbers in a position"),
        "{message}"
    );
}

#[test]
fn community_without_boundary_is_refused() {
    let (index, code) = first_community_feature();
    let dir = broken_city(
        "no-boundary",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                f["properties"]["level"] = serde_json::json!("grid")
            })
        },
    );
    // The feature now claims to be a grid: its community has no boundary left.
    let (message, err) = load_error(&dir);
    assert_eq!(err.problem(), Some(&Problem::NoBoundary), "{message}");
    assert!(message.contains("boundaries.geojson"), "{message}");
    assert!(
        message.contains(&format!("community {code} (")),
        "{message}"
    );
}

#[test]
fn duplicate_and_unknown_features_are_refused() {
    let (index, code) = first_community_feature();
    let dir = broken_city(
        "duplicate",
        |c| c,
        |b| {
            let mut doc: serde_json::Value = serde_json::from_str(&b).unwrap();
            let copy = doc["features"][index].clone();
            doc["features"].as_array_mut().unwrap().push(copy);
            doc.to_string()
        },
    );
    let (message, err) = load_error(&dir);
    assert_eq!(
        err.problem(),
        Some(&Problem::DuplicateCode(code.clone())),
        "{message}"
    );

    let dir = broken_city(
        "unknown-area",
        |c| c,
        |b| {
            let mut doc: serde_json::Value = serde_json::from_str(&b).unwrap();
            let features = doc["features"].as_array_mut().unwrap();
            let mut stranger = features[index].clone();
            stranger["properties"]["code"] = serde_json::json!("510504009009");
            features.push(stranger);
            doc.to_string()
        },
    );
    let (message, err) = load_error(&dir);
    assert_eq!(
        err.problem(),
        Some(&Problem::UnknownArea {
            level: AreaLevel::Community
        }),
        "{message}"
    );
    assert!(
        message
            .contains("(community 510504009009): names no community declared in the city config"),
        "{message}"
    );

    let dir = broken_city(
        "bad-level",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                f["properties"]["level"] = serde_json::json!("village")
            })
        },
    );
    let (message, _) = load_error(&dir);
    assert!(
        message.contains(&format!(
            "feature {index} (village {code}): unknown level \"village\""
        )),
        "{message}"
    );
}

#[test]
fn config_errors_name_the_community_and_what_is_wrong() {
    let keep = |b: String| b;
    let dir = broken_city(
        "unknown-street",
        |c| c.replacen("street = \"510504001\"", "street = \"510504009\"", 1),
        keep,
    );
    let (message, err) = load_error(&dir);
    assert!(
        message.contains("city.toml: community 510504001001 ("),
        "{message}"
    );
    assert_eq!(
        err.problem(),
        Some(&Problem::UnknownStreet("510504009".into()))
    );

    let dir = broken_city(
        "unknown-role",
        |c| c.replacen("role = \"workstation\"", "role = \"work_station\"", 1),
        keep,
    );
    let (message, err) = load_error(&dir);
    assert!(
        message.contains("unit 510504001001.workstation"),
        "{message}"
    );
    assert_eq!(
        err.problem(),
        Some(&Problem::UnknownRole("work_station".into()))
    );

    let dir = broken_city(
        "grid-code",
        |c| {
            c.replacen(
                "code = \"510504001001002\"",
                "code = \"510504001002002\"",
                1,
            )
        },
        keep,
    );
    let (message, err) = load_error(&dir);
    assert!(message.contains("grid 510504001002002"), "{message}");
    assert!(
        matches!(err.problem(), Some(Problem::CodeScheme { .. })),
        "{message}"
    );
    assert!(
        message.contains("expected 510504001001 followed by 3 digits"),
        "{message}"
    );

    let dir = broken_city(
        "no-party-branch",
        |c| c.replacen("role = \"party_branch\"", "role = \"school\"", 1),
        keep,
    );
    let (_, err) = load_error(&dir);
    assert_eq!(
        err.problem(),
        Some(&Problem::MissingUnit(UnitRole::PartyBranch, "community"))
    );

    let dir = broken_city(
        "duplicate-unit",
        |c| {
            c.replacen(
                "id = \"510504001001.workstation\"",
                "id = \"510504001001.party_branch\"",
                1,
            )
        },
        keep,
    );
    let (_, err) = load_error(&dir);
    assert_eq!(
        err.problem(),
        Some(&Problem::DuplicateUnitId(
            "510504001001.party_branch".into()
        ))
    );

    let dir = broken_city(
        "foreign-unit",
        |c| {
            c.replacen(
                "id = \"510504001001.workstation\"",
                "id = \"510504001002.workstation\"",
                1,
            )
        },
        keep,
    );
    let (message, _) = load_error(&dir);
    assert!(
        message.contains("must start with its owner's code \"510504001001.\""),
        "{message}"
    );

    let dir = broken_city(
        "typo-key",
        |c| c.replacen("grid_worker = ", "gridworker = ", 1),
        keep,
    );
    let (message, _) = load_error(&dir);
    assert!(
        message.contains("city.toml") && message.contains("gridworker"),
        "{message}"
    );
}

#[test]
fn missing_directory_names_the_file() {
    let err = City::load(Path::new("/nonexistent/city")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/city/city.toml"),
        "{err}"
    );
}

#[test]
fn boundaries_must_be_a_feature_collection() {
    let err = parse_boundaries(r#"{"type": "Feature", "features": []}"#, "b.geojson").unwrap_err();
    assert_eq!(
        err.to_string(),
        "b.geojson: type is \"Feature\", expected \"FeatureCollection\""
    );
}

// ------------------------------------------------------------------ boundary topology

fn square(x: f64, y: f64, size: f64) -> MultiPolygon {
    Polygon::rectangle(Point::new(x, y), Point::new(x + size, y + size))
        .unwrap()
        .into()
}

fn closed(corners: &[(f64, f64)]) -> Vec<Point> {
    let mut ring: Vec<Point> = corners.iter().map(|&(x, y)| Point::new(x, y)).collect();
    ring.push(ring[0]);
    ring
}

/// A district (-1..5 × -1..5) with one street and a community per shape, each with one
/// grid of the same shape. Features: district 0, street 1, then per community `k` the
/// community at 2 + 2k and its grid at 3 + 2k.
fn city_of(shapes: &[MultiPolygon]) -> Result<City, CityError> {
    let mut toml = String::from(
        r#"
[district]
code = "110101"
name = "示例区"
datum = "GCJ-02"
[[district.units]]
id = "110101.triage_desk"
role = "triage_desk"
name = "区指挥中心"
[[streets]]
code = "110101001"
name = "东街道"
[[streets.units]]
id = "110101001.triage_desk"
role = "triage_desk"
name = "东街道综治中心"
"#,
    );
    let mut boundaries = vec![
        Boundary {
            level: AreaLevel::District,
            code: "110101".into(),
            parent: None,
            geometry: Some(square(-1.0, -1.0, 6.0)),
        },
        Boundary {
            level: AreaLevel::Street,
            code: "110101001".into(),
            parent: Some("110101".into()),
            geometry: None,
        },
    ];
    for (k, shape) in shapes.iter().enumerate() {
        let code = format!("110101001{:03}", k + 1);
        toml.push_str(&format!(
            r#"
[[communities]]
code = "{code}"
name = "社区{k}"
street = "110101001"
ladder = ["grid_worker", "workstation", "street"]
[[communities.units]]
id = "{code}.party_branch"
role = "party_branch"
name = "党委"
[[communities.units]]
id = "{code}.workstation"
role = "workstation"
name = "工作站"
[[communities.units]]
id = "{code}.residents_committee"
role = "residents_committee"
name = "居委会"
[[communities.grids]]
code = "{code}001"
name = "网格"
grid_worker = "甲"
"#
        ));
        for (level, code, parent) in [
            (AreaLevel::Community, code.clone(), "110101001".to_owned()),
            (AreaLevel::Grid, format!("{code}001"), code.clone()),
        ] {
            boundaries.push(Boundary {
                level,
                code,
                parent: Some(parent),
                geometry: Some(shape.clone()),
            });
        }
    }
    City::from_parts(
        CityConfig::parse(&toml, "city.toml").unwrap(),
        boundaries,
        Vec::new(),
    )
}

#[test]
fn a_self_intersecting_ring_is_refused_with_the_crossing_point() {
    let (index, code) = first_community_feature();
    let dir = broken_city(
        "bow-tie",
        |c| c,
        |b| {
            edit_feature(b, index, |f| {
                f["geometry"] = serde_json::json!({"type": "Polygon", "coordinates": [[
                    [105.40, 28.90], [105.42, 28.92], [105.42, 28.90], [105.40, 28.92], [105.40, 28.90]
                ]]});
            })
        },
    );
    let (message, err) = load_error(&dir);
    assert!(
        message.contains(&format!(
            "boundaries.geojson: feature {index} (community {code}): polygon 0, ring 0 crosses itself at (105.41, 28.91)"
        )),
        "{message}"
    );
    assert_eq!(
        err.problem(),
        Some(&Problem::SelfIntersection {
            ring: "polygon 0, ring 0".into(),
            at: Point::new(105.41, 28.91)
        })
    );

    // A hole crossing its polygon's exterior, in code.
    let holed = Polygon::new(
        closed(&[(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]),
        vec![closed(&[(1.0, 0.5), (3.0, 0.5), (3.0, 1.5), (1.0, 1.5)])],
    )
    .unwrap();
    let message = city_of(&[holed.into()]).unwrap_err().to_string();
    assert!(
        message.starts_with("boundaries.geojson: feature 2 (community 110101001001): polygon 0, ring 0 crosses ring 1 at (2, "),
        "{message}"
    );
}

#[test]
fn overlapping_communities_are_refused_naming_both() {
    let err = city_of(&[square(0.0, 0.0, 2.0), square(1.0, 1.0, 2.0)]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "boundaries.geojson: feature 2 (community 110101001001): overlaps feature 4 (community 110101001002) near ("
        ),
        "{message}"
    );
    // Where the two squares' sides cross.
    match err.problem() {
        Some(Problem::Overlap { other, at }) => {
            assert_eq!(other, "feature 4 (community 110101001002)");
            assert!(
                [Point::new(2.0, 1.0), Point::new(1.0, 2.0)].contains(at),
                "{at}"
            );
        }
        other => panic!("{other:?}"),
    }

    // Wholly inside, without a hole; touching the other's side from inside.
    for inner in [square(0.5, 0.5, 1.0), square(0.0, 0.5, 1.0)] {
        let message = city_of(&[square(0.0, 0.0, 2.0), inner])
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(
                "feature 2 (community 110101001001): overlaps feature 4 (community 110101001002) near"
            ),
            "{message}"
        );
    }
}

#[test]
fn communities_sharing_borders_and_corners_load() {
    let city = city_of(&[
        square(0.0, 0.0, 1.0),
        square(1.0, 0.0, 1.0),
        // Along the top of both: its side holds the corner they share (a T-junction).
        Polygon::rectangle(Point::new(0.0, 1.0), Point::new(2.0, 2.0))
            .unwrap()
            .into(),
        // Meets the second square at one corner only.
        square(2.0, -1.0, 1.0),
        // Walked clockwise, sharing the strip's east side.
        Polygon::new(
            closed(&[(2.0, 1.0), (2.0, 2.0), (3.0, 2.0), (3.0, 1.0)]),
            vec![],
        )
        .unwrap()
        .into(),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(city.communities().len(), 5);
    let place = city.resolve(&at(1.0, 1.0));
    assert_eq!(place.community_code.as_deref(), Some("110101001003"));
}

#[test]
fn a_community_inside_anothers_hole_loads() {
    let holed: MultiPolygon = Polygon::new(
        closed(&[(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]),
        vec![closed(&[(1.0, 1.0), (1.0, 3.0), (3.0, 3.0), (3.0, 1.0)])],
    )
    .unwrap()
    .into();
    // Filling the hole exactly (an enclave), and strictly inside it.
    for inner in [square(1.0, 1.0, 2.0), square(1.5, 1.5, 1.0)] {
        let city = city_of(&[holed.clone(), inner]).unwrap_or_else(|e| panic!("{e}"));
        let place = city.resolve(&at(2.0, 2.0));
        assert_eq!(place.community_code.as_deref(), Some("110101001002"));
        let place = city.resolve(&at(0.5, 2.0));
        assert_eq!(place.community_code.as_deref(), Some("110101001001"));
    }
    // Reaching out of the hole onto the polygon.
    let message = city_of(&[holed, square(0.5, 1.5, 1.0)])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "feature 2 (community 110101001001): overlaps feature 4 (community 110101001002) near"
        ),
        "{message}"
    );
}

#[test]
fn overlapping_grids_of_the_sample_are_refused_naming_both() {
    // The second grid of the first community gets the first grid's geometry.
    let text = std::fs::read_to_string(city_dir().join("boundaries.geojson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let grids: Vec<(usize, String)> = doc["features"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, f)| f["properties"]["level"] == "grid")
        .map(|(i, f)| (i, f["properties"]["code"].as_str().unwrap().to_owned()))
        .take(2)
        .collect();
    let geometry = doc["features"][grids[0].0]["geometry"].clone();
    let dir = broken_city(
        "duplicate-grid-shape",
        |c| c,
        |b| edit_feature(b, grids[1].0, |f| f["geometry"] = geometry.clone()),
    );
    let (message, err) = load_error(&dir);
    assert!(
        message.contains(&format!(
            "boundaries.geojson: feature {} (grid {}): overlaps feature {} (grid {}) near (",
            grids[0].0, grids[0].1, grids[1].0, grids[1].1
        )),
        "{message}"
    );
    assert!(matches!(err.problem(), Some(Problem::Overlap { .. })));
}
