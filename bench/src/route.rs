//! `hub bench route`: routing decisions per second on one core for a generated city, with
//! the spatial index and with a linear scan over all polygons, measured in the same run,
//! and the index's memory.
//!
//! The city is generated, not the sample: by default 5,000 communities of 10 grids each
//! (50,000 grids) on a lattice, every shared border a wiggly line of `vertices_per_side`
//! segments computed identically for both neighbours, so grids have 100 vertices and
//! communities 350. Events come from all five departments with a representative rule set
//! (department, category, time-of-day, attribute and place conditions, suppression,
//! triage, catch-all). Points are uniform over the district's box, so a few fall outside
//! every community.
//!
//! A decision here is what routing decides before writing anything out: category, place
//! (community and grid), rule, lead unit, admission. Writing the task and explanation
//! (strings) is measured separately as `route()`. The linear scan makes the same decisions
//! but places points by testing every community polygon, then every grid polygon, in turn
//! (bounding box first, then the exact test): 55,000 polygons. Both are timed in rounds,
//! taking turns, so that other load on the host slows both alike.

use std::collections::BTreeMap;
use std::fmt;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};

use hub_router::city::{
    AreaLevel, Boundary, City, CityConfig, CityError, CommunityConfig, DistrictConfig, GridConfig,
    StreetConfig, UnitConfig,
};
use hub_router::config::ConfigFile;
use hub_router::config::RoutingConfig;
use hub_router::geo::{MultiPolygon, Point, Polygon};
use hub_router::place::PointLookup;
use hub_router::routing::Router;

/// What to generate and how long to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchParams {
    /// Communities along longitude and latitude.
    pub communities_x: usize,
    pub communities_y: usize,
    /// Grids per community along longitude and latitude.
    pub grids_x: usize,
    pub grids_y: usize,
    /// Segments per grid side: a grid polygon has 4 × this many vertices.
    pub vertices_per_side: usize,
    /// Decisions timed with the index, with the linear scan, and through `route()`.
    pub index_decisions: usize,
    pub scan_decisions: usize,
    pub route_decisions: usize,
    pub seed: u64,
}

impl Default for BenchParams {
    /// The issue's figures: 5,000 communities, 50,000 grids of 100 vertices.
    fn default() -> Self {
        BenchParams {
            communities_x: 50,
            communities_y: 100,
            grids_x: 5,
            grids_y: 2,
            vertices_per_side: 25,
            index_decisions: 2_000_000,
            scan_decisions: 20_000,
            route_decisions: 200_000,
            seed: 510_599,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench parameters: {0}")]
    Params(String),
    #[error("generated city: {0}")]
    City(#[from] CityError),
    #[error("bench rules: {0}")]
    Rules(String),
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub communities: usize,
    pub grids: usize,
    /// Fewest vertices of any community or grid polygon.
    pub min_vertices: usize,
    pub total_vertices: usize,
    pub rules: usize,
    /// Building the city, its indexes included.
    pub build_seconds: f64,
    pub index_cells: usize,
    /// Share of cells that answer with one read (wholly inside one area, or empty).
    pub one_read_cells: f64,
    pub index_decisions: usize,
    pub index_per_second: f64,
    pub scan_decisions: usize,
    pub scan_per_second: f64,
    pub route_decisions: usize,
    pub route_per_second: f64,
    /// Points where index and scan placed differently (must be 0).
    pub disagreements: usize,
    /// Bytes of the community and grid indexes.
    pub index_bytes: usize,
}

impl BenchReport {
    pub fn speedup(&self) -> f64 {
        self.index_per_second / self.scan_per_second
    }
}

/// Context first, then the figures, last.
impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "generated city: {} communities, {} grids, {} vertices (every polygon ≥ {}), {} rules",
            self.communities, self.grids, self.total_vertices, self.min_vertices, self.rules
        )?;
        writeln!(
            f,
            "built in {:.2} s; index: {} cells, {:.1}% answered with one read",
            self.build_seconds,
            self.index_cells,
            self.one_read_cells * 100.0
        )?;
        writeln!(
            f,
            "one core; {} decisions with the index, {} with the scan ({} disagreements), {} through route()",
            self.index_decisions, self.scan_decisions, self.disagreements, self.route_decisions
        )?;
        writeln!(
            f,
            "route() with task and explanation:  {:>12}/s",
            thousands(self.route_per_second)
        )?;
        writeln!(
            f,
            "routing decisions, linear scan:     {:>12}/s",
            thousands(self.scan_per_second)
        )?;
        writeln!(
            f,
            "routing decisions, spatial index:   {:>12}/s",
            thousands(self.index_per_second)
        )?;
        writeln!(
            f,
            "index vs scan:                      {:>11.1}x",
            self.speedup()
        )?;
        write!(
            f,
            "index memory:                       {:>10.1} MiB ({} bytes)",
            self.index_bytes as f64 / (1024.0 * 1024.0),
            self.index_bytes
        )
    }
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Generates the city, routes random events through it and measures. Runs on the calling
/// thread only.
pub fn bench_route(params: &BenchParams) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let city = Arc::new(bench_city(params)?);
    let build_seconds = started.elapsed().as_secs_f64();

    let taxonomy = ConfigFile {
        name: "bench/taxonomy.toml".into(),
        text: BENCH_TAXONOMY.into(),
    };
    let rules = [ConfigFile {
        name: "bench/rules.toml".into(),
        text: BENCH_RULES.replace("{STREET}", &format!("{DISTRICT}002")),
    }];
    let (config, _) = RoutingConfig::new(city.clone(), &taxonomy, &rules).map_err(|problems| {
        BenchError::Rules(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let rule_count = config.rules().rules().len();
    let router = Router::new(config);

    let mut rng = SplitMix(params.seed);
    let b = city.district().boundary.bbox();
    // 2% margin around the district: some events fall outside every community.
    let (mx, my) = (
        (b.max_lon - b.min_lon) * 0.02,
        (b.max_lat - b.min_lat) * 0.02,
    );
    let points: Vec<Point> = (0..params.index_decisions.max(params.scan_decisions))
        .map(|_| {
            Point::new(
                rng.range(b.min_lon - mx, b.max_lon + mx),
                rng.range(b.min_lat - my, b.max_lat + my),
            )
        })
        .collect();
    let mut pool = event_pool(&mut rng, 1024);
    let mask = pool.len() - 1;

    let mut disagreements = 0;
    for (i, p) in points.iter().take(params.scan_decisions).enumerate() {
        let e = &mut pool[i & mask];
        e.location.point = Some(GeoPoint {
            lon: p.lon,
            lat: p.lat,
        });
        let a = router.decide(e, PointLookup::Index);
        let s = router.decide(e, PointLookup::Scan);
        let key = |d: &Result<hub_router::routing::Decision<'_>, _>| {
            d.as_ref().ok().map(|d| {
                (
                    d.located.community.map(|c| c.code.clone()),
                    d.located.grid.map(|g| g.code.clone()),
                    d.rule.line,
                )
            })
        };
        if key(&a) != key(&s) {
            disagreements += 1;
        }
    }

    // Seconds for decisions `range` of the points.
    let time = |range: std::ops::Range<usize>, lookup: PointLookup, pool: &mut Vec<CivicEvent>| {
        let started = Instant::now();
        for i in range {
            let p = points[i];
            let e = &mut pool[i & mask];
            e.location.point = Some(GeoPoint {
                lon: p.lon,
                lat: p.lat,
            });
            let _ = black_box(router.decide(black_box(e), lookup));
        }
        started.elapsed().as_secs_f64()
    };
    // Index and scan take turns, so that both see the same machine (other work on the
    // host slows both alike instead of skewing the ratio).
    let (mut index_seconds, mut scan_seconds) = (0.0, 0.0);
    for round in 0..ROUNDS {
        let share = |n: usize| n * round / ROUNDS..n * (round + 1) / ROUNDS;
        scan_seconds += time(share(params.scan_decisions), PointLookup::Scan, &mut pool);
        index_seconds += time(share(params.index_decisions), PointLookup::Index, &mut pool);
    }
    let scan_per_second = params.scan_decisions as f64 / scan_seconds;
    let index_per_second = params.index_decisions as f64 / index_seconds;
    let now = Utc
        .with_ymd_and_hms(2024, 6, 3, 2, 0, 0)
        .single()
        .unwrap_or_default();
    let started = Instant::now();
    for (i, p) in points
        .iter()
        .cycle()
        .take(params.route_decisions)
        .enumerate()
    {
        let e = &mut pool[i & mask];
        e.location.point = Some(GeoPoint {
            lon: p.lon,
            lat: p.lat,
        });
        let _ = black_box(router.route(black_box(e), now));
    }
    let route_per_second = params.route_decisions as f64 / started.elapsed().as_secs_f64();

    let polygons = city
        .communities()
        .iter()
        .map(|c| &c.boundary)
        .chain(city.grids().iter().map(|g| &g.boundary))
        .flat_map(MultiPolygon::polygons);
    let (min_vertices, total_vertices) = polygons.fold((usize::MAX, 0), |(min, total), p| {
        (min.min(p.vertex_count()), total + p.vertex_count())
    });
    let (cells, one_read) = city.point_index_cells();
    Ok(BenchReport {
        communities: city.communities().len(),
        grids: city.grids().len(),
        min_vertices,
        total_vertices,
        rules: rule_count,
        build_seconds,
        index_cells: cells,
        one_read_cells: one_read as f64 / cells.max(1) as f64,
        index_decisions: params.index_decisions,
        index_per_second,
        scan_decisions: params.scan_decisions,
        scan_per_second,
        route_decisions: params.route_decisions,
        route_per_second,
        disagreements,
        index_bytes: city.point_index_bytes(),
    })
}

/// Rounds the timed decisions are split into, index and scan alternating.
const ROUNDS: usize = 10;

const DISTRICT: &str = "510599";
/// South-west corner and grid size (≈ 195 m × 200 m at this latitude).
const ORIGIN: (f64, f64) = (105.0, 28.5);
const GRID_DEG: (f64, f64) = (0.002, 0.0018);
/// How far a border strays from the straight line, as a share of the grid's size.
const WIGGLE: f64 = 0.2;

/// The generated city: lattice of communities, each a lattice of grids, with wiggly
/// shared borders (the outer border of the district is straight).
pub fn bench_city(params: &BenchParams) -> Result<City, BenchError> {
    let BenchParams {
        communities_x: cx,
        communities_y: cy,
        grids_x: gx,
        grids_y: gy,
        vertices_per_side: n,
        ..
    } = *params;
    if cx * cy == 0 || gx * gy == 0 || n == 0 {
        return Err(BenchError::Params("every count must be at least 1".into()));
    }
    if gx * gy > 999 || cx * cy > 999 * 999 {
        return Err(BenchError::Params(
            "codes allow 999 grids per community and 999 streets of 999 communities".into(),
        ));
    }
    let lattice = Lattice {
        cols: cx * gx,
        rows: cy * gy,
        n,
        seed: params.seed,
    };
    let per_street = cx.min(999);
    let unit = |owner: &str, role: &str, department: Option<&str>| UnitConfig {
        id: format!("{owner}.{role}"),
        role: role.into(),
        name: format!("{owner} {role}"),
        department: department.map(Into::into),
    };
    let mut streets = Vec::new();
    let mut communities = Vec::new();
    let mut boundaries = Vec::new();
    let street_count = (cx * cy).div_ceil(per_street);
    for s in 0..street_count {
        let code = format!("{DISTRICT}{:03}", s + 1);
        streets.push(StreetConfig {
            code: code.clone(),
            name: format!("街道{}", s + 1),
            units: vec![unit(&code, "triage_desk", None)],
        });
        boundaries.push(Boundary {
            level: AreaLevel::Street,
            code,
            parent: Some(DISTRICT.into()),
            geometry: None,
        });
    }
    for j in 0..cy {
        for i in 0..cx {
            let k = j * cx + i;
            let street = format!("{DISTRICT}{:03}", k / per_street + 1);
            let code = format!("{street}{:03}", k % per_street + 1);
            let mut units = vec![
                unit(&code, "party_branch", None),
                unit(&code, "workstation", None),
                unit(&code, "residents_committee", None),
                unit(&code, "police_station", Some("police")),
                unit(&code, "urban_management_squad", Some("urban_management")),
                unit(&code, "sanitation_team", Some("sanitation")),
            ];
            if k % 4 != 3 {
                units.push(unit(&code, "property_company", None));
            }
            let mut admission = BTreeMap::new();
            for d in Department::ALL {
                let list = match d {
                    Department::Police if k % 3 == 1 => vec!["E06".into(), "E0702".into()],
                    _ => vec!["*".into()],
                };
                admission.insert(d.as_str().to_owned(), list);
            }
            let mut grids = Vec::new();
            for b in 0..gy {
                for a in 0..gx {
                    let grid_code = format!("{code}{:03}", b * gx + a + 1);
                    let polygon = lattice.block(i * gx + a, j * gy + b, 1, 1)?;
                    boundaries.push(Boundary {
                        level: AreaLevel::Grid,
                        code: grid_code.clone(),
                        parent: Some(code.clone()),
                        geometry: Some(polygon.into()),
                    });
                    grids.push(GridConfig {
                        code: grid_code,
                        name: format!("第{}网格", b * gx + a + 1),
                        grid_worker: "网格员".into(),
                    });
                }
            }
            boundaries.push(Boundary {
                level: AreaLevel::Community,
                code: code.clone(),
                parent: Some(street.clone()),
                geometry: Some(lattice.block(i * gx, j * gy, gx, gy)?.into()),
            });
            communities.push(CommunityConfig {
                code,
                name: format!("社区{}", k + 1),
                street,
                ladder: vec!["grid_worker".into(), "workstation".into(), "street".into()],
                admission,
                units,
                grids,
            });
        }
    }
    let district = Polygon::rectangle(lattice.node(0, 0), lattice.node(lattice.cols, lattice.rows))
        .map_err(|e| BenchError::Params(e.to_string()))?;
    boundaries.push(Boundary {
        level: AreaLevel::District,
        code: DISTRICT.into(),
        parent: None,
        geometry: Some(district.into()),
    });
    let config = CityConfig {
        district: DistrictConfig {
            code: DISTRICT.into(),
            name: "基准测试区".into(),
            datum: "GCJ-02".into(),
            description: None,
            units: vec![unit(DISTRICT, "triage_desk", None)],
        },
        streets,
        communities,
    };
    Ok(City::from_parts(config, boundaries, Vec::new())?)
}

/// Grid-lattice nodes and the wiggly sides between them.
struct Lattice {
    cols: usize,
    rows: usize,
    n: usize,
    seed: u64,
}

impl Lattice {
    fn node(&self, i: usize, j: usize) -> Point {
        Point::new(
            ORIGIN.0 + i as f64 * GRID_DEG.0,
            ORIGIN.1 + j as f64 * GRID_DEG.1,
        )
    }

    /// Points of the side from node (i, j) east (`vertical` false) or north (true), without
    /// its far end. The wiggle fades out at the ends (sin), so sides never cross; sides on
    /// the district's outline stay straight.
    fn side(&self, i: usize, j: usize, vertical: bool, out: &mut Vec<Point>) {
        let start = self.node(i, j);
        let outer = if vertical {
            i == 0 || i == self.cols
        } else {
            j == 0 || j == self.rows
        };
        for k in 0..self.n {
            let t = k as f64 / self.n as f64;
            let wiggle = if outer || k == 0 {
                0.0
            } else {
                let h = SplitMix(
                    self.seed
                        ^ ((i as u64) << 40)
                        ^ ((j as u64) << 20)
                        ^ ((k as u64) << 2)
                        ^ u64::from(vertical),
                )
                .next_u64();
                let noise = (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
                WIGGLE * noise * (std::f64::consts::PI * t).sin()
            };
            out.push(if vertical {
                Point::new(start.lon + wiggle * GRID_DEG.0, start.lat + t * GRID_DEG.1)
            } else {
                Point::new(start.lon + t * GRID_DEG.0, start.lat + wiggle * GRID_DEG.1)
            });
        }
    }

    /// The polygon of `w × h` grid cells from cell (i, j), counter-clockwise.
    fn block(&self, i: usize, j: usize, w: usize, h: usize) -> Result<Polygon, BenchError> {
        let mut ring = Vec::with_capacity(2 * (w + h) * self.n + 1);
        for a in 0..w {
            self.side(i + a, j, false, &mut ring);
        }
        for b in 0..h {
            self.side(i + w, j + b, true, &mut ring);
        }
        let reversed =
            |side: &mut dyn FnMut(&mut Vec<Point>), end: Point, ring: &mut Vec<Point>| {
                let mut pts = Vec::with_capacity(self.n + 1);
                side(&mut pts);
                pts.push(end);
                pts.reverse();
                pts.pop();
                ring.extend(pts);
            };
        for a in (0..w).rev() {
            let end = self.node(i + a + 1, j + h);
            reversed(&mut |v| self.side(i + a, j + h, false, v), end, &mut ring);
        }
        for b in (0..h).rev() {
            let end = self.node(i, j + b + 1);
            reversed(&mut |v| self.side(i, j + b, true, v), end, &mut ring);
        }
        ring.push(ring[0]);
        Polygon::new(ring, Vec::new())
            .map_err(|e| BenchError::Params(format!("lattice polygon: {e}")))
    }
}

/// Events of all five departments, at varied times and with the attributes the rules read.
fn event_pool(rng: &mut SplitMix, size: usize) -> Vec<CivicEvent> {
    let codes: [(Department, &[&str]); 5] = [
        (Department::Police, &["0201", "0301", "0501", "0502"]),
        (
            Department::UrbanManagement,
            &["010101", "010102", "040102", "060101"],
        ),
        (
            Department::Sanitation,
            &["GARBAGE_OVERFLOW", "EXPOSED_GARBAGE", "ROAD_CLEANING"],
        ),
        (
            Department::CivilAffairs,
            &["ELDERLY_NO_CONTACT", "HARDSHIP"],
        ),
        (
            Department::Residents,
            &["noise", "garbage", "property-service", "consultation"],
        ),
    ];
    let monday = Utc
        .with_ymd_and_hms(2024, 6, 2, 16, 0, 0)
        .single()
        .unwrap_or_default();
    (0..size)
        .map(|i| {
            let (department, list) = codes[rng.below(codes.len())];
            let code = list[rng.below(list.len())];
            let mut attributes = BTreeMap::new();
            match department {
                Department::Sanitation => {
                    attributes.insert("fillLevel".into(), (60 + rng.below(41)).to_string());
                }
                Department::CivilAffairs => {
                    attributes.insert(
                        "hours_without_contact".into(),
                        (48 + rng.below(48)).to_string(),
                    );
                }
                _ => {}
            }
            let at: DateTime<Utc> = monday + TimeDelta::minutes(rng.below(7 * 24 * 60) as i64);
            CivicEvent {
                event_id: format!("bench-{i}"),
                source_system: format!("{department}.bench"),
                source_id: i.to_string(),
                department,
                category_code: code.into(),
                category_name: None,
                occurred_at: at,
                received_at: at,
                location: Location::default(),
                description: String::new(),
                attributes,
                reporter: None,
                raw_ref: None,
            }
        })
        .collect()
}

/// A small, seeded generator (SplitMix64): the benchmark needs no cryptographic quality,
/// only the same numbers every run.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

const BENCH_TAXONOMY: &str = r#"
[[major]]
code = "E01"
name = "市容环境"
[[major]]
code = "E03"
name = "施工管理"
[[major]]
code = "E06"
name = "社会治安"
[[major]]
code = "E07"
name = "人口与房屋"
[[major]]
code = "E08"
name = "民政服务"
[[major]]
code = "E09"
name = "群众诉求"
[[major]]
code = "C01"
name = "公用设施"

[[group]]
id = "garbage"
name = "垃圾"
merge = { radius_m = 80, window = "12h" }
[[group]]
id = "other"
name = "其他"

[[category]]
code = "E0101"
name = "私搭乱建"
group = "other"
[[category]]
code = "E0102"
name = "暴露垃圾"
group = "garbage"
[[category]]
code = "E0103"
name = "垃圾满溢"
group = "garbage"
[[category]]
code = "E0105"
name = "道路保洁"
group = "other"
[[category]]
code = "E0301"
name = "工地管理"
group = "other"
[[category]]
code = "E0601"
name = "盗窃"
group = "other"
[[category]]
code = "E0602"
name = "纠纷"
group = "other"
[[category]]
code = "E0701"
name = "出租房屋核查"
group = "other"
[[category]]
code = "E0702"
name = "流动人口登记"
group = "other"
[[category]]
code = "E0801"
name = "独居老人失联"
group = "other"
priority = "urgent"
[[category]]
code = "E0803"
name = "困难群众帮扶"
group = "other"
[[category]]
code = "E0901"
name = "噪音扰民"
group = "other"
[[category]]
code = "E0902"
name = "物业服务纠纷"
group = "other"
[[category]]
code = "E0903"
name = "咨询建议"
group = "other"
priority = "low"
[[category]]
code = "C0101"
name = "井盖破损"
group = "other"

[departments.police]
"0201" = "E0601"
"0301" = "E0602"
"0501" = "E0701"
"0502" = "E0702"
[departments.urban_management]
"010101" = "E0101"
"010102" = "E0102"
"040102" = "E0301"
"060101" = "C0101"
[departments.sanitation]
GARBAGE_OVERFLOW = "E0103"
EXPOSED_GARBAGE = "E0102"
ROAD_CLEANING = "E0105"
[departments.civil_affairs]
ELDERLY_NO_CONTACT = "E0801"
HARDSHIP = "E0803"
[departments.residents]
noise = "E0901"
garbage = "E0102"
property-service = "E0902"
consultation = "E0903"
"#;

const BENCH_RULES: &str = r#"
[[rule]]
id = "bin-below-threshold"
suppress = true
[rule.when]
department = ["sanitation"]
category = ["E0103"]
attributes = { fillLevel = "< 70" }

[[rule]]
id = "outside-communities"
triage = true
[rule.when]
place_level = ["street", "district", "triage"]

[[rule]]
id = "rental-check-pilot"
lead = ["workstation"]
co_handlers = ["police_station"]
[rule.when]
department = ["police"]
category = ["E0701"]
place = ["{STREET}"]

[[rule]]
id = "rental-check"
lead = ["police_station"]
co_handlers = ["residents_committee"]
[rule.when]
department = ["police"]
category = ["E0701"]

[[rule]]
id = "night-dispute"
lead = ["police_station"]
priority = "urgent"
[rule.when]
department = ["police"]
category = ["E0602"]
hours = ["22:00-06:00"]

[[rule]]
id = "dispute"
lead = ["residents_committee"]
co_handlers = ["police_station"]
[rule.when]
category = ["E0602"]

[[rule]]
id = "illegal-construction"
lead = ["urban_management_squad"]
co_handlers = ["property_company"]
[rule.when]
category = ["E0101"]

[[rule]]
id = "construction"
lead = ["urban_management_squad"]
[rule.when]
category = ["E03"]

[[rule]]
id = "bin-full"
lead = ["sanitation_team"]
priority = "urgent"
[rule.when]
department = ["sanitation"]
category = ["E0103"]
attributes = { fillLevel = ">= 95" }

[[rule]]
id = "garbage"
lead = ["sanitation_team"]
co_handlers = ["property_company"]
[rule.when]
category = ["E0102", "E0103", "E0105"]

[[rule]]
id = "elderly-72h"
lead = ["residents_committee"]
co_handlers = ["police_station"]
priority = "emergency"
[rule.when]
category = ["E0801"]
attributes = { hours_without_contact = ">= 72" }

[[rule]]
id = "welfare"
lead = ["residents_committee"]
[rule.when]
category = ["E08"]

[[rule]]
id = "night-noise"
lead = ["police_station"]
[rule.when]
category = ["E0901"]
hours = ["22:00-06:00"]

[[rule]]
id = "weekend-property"
lead = ["property_company", "workstation"]
[rule.when]
category = ["E0902"]
weekdays = ["sat", "sun"]
min_priority = "normal"

[[rule]]
id = "property"
lead = ["property_company", "workstation"]
[rule.when]
category = ["E0902"]

[[rule]]
id = "catch-all"
lead = ["department_unit", "workstation"]
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_runs_and_agrees() {
        let params = BenchParams {
            communities_x: 4,
            communities_y: 3,
            grids_x: 3,
            grids_y: 2,
            vertices_per_side: 6,
            index_decisions: 3_000,
            scan_decisions: 3_000,
            route_decisions: 500,
            seed: 7,
        };
        let report = bench_route(&params).unwrap();
        assert_eq!((report.communities, report.grids), (12, 72));
        assert_eq!(report.min_vertices, 24);
        assert_eq!(report.disagreements, 0);
        assert!(report.index_bytes > 0);
        let text = report.to_string();
        assert!(
            text.lines().last().unwrap().starts_with("index memory:"),
            "the figures come last:\n{text}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
    }
}
