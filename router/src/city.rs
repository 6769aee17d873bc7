//! The city model: district → streets → communities → grids, the 1+2+X units of each
//! community, the triage desks that own what no community can (属地兜底), and the boundaries
//! and gazetteer that place events.
//!
//! A city is loaded from a directory holding
//! * `city.toml` — the organisation: district, streets, communities, units, grids, admission
//!   lists. It is authoritative for names.
//! * `boundaries.geojson` — one feature per area, properties `level` (district, street,
//!   community, grid), `code`, `name` (a label for map viewers) and `parent`. Every
//!   community and grid needs a geometry; streets may omit theirs (they are the union of
//!   their communities).
//! * `addresses.csv` (optional) — a gazetteer `address,lon,lat,grid_code`, no quoting.
//!
//! Codes follow the 15-digit scheme: 6-digit district, then 3 digits each for street,
//! community and grid, each code extending its parent's.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use hub_schemas::event::Department;
use serde::Deserialize;

use crate::geo::{GeometryError, MultiPolygon, Point};
use crate::place::PointLookup;
use crate::spatial_index::SpatialIndex;
use crate::topology::{self, Defect};

pub const CONFIG_FILE: &str = "city.toml";
pub const BOUNDARIES_FILE: &str = "boundaries.geojson";
pub const GAZETTEER_FILE: &str = "addresses.csv";

/// Digits each level adds to its parent's code.
const DISTRICT_DIGITS: usize = 6;
const LEVEL_DIGITS: usize = 3;

// ------------------------------------------------------------------------------ errors

/// Why a city could not be loaded. Every variant names the file; `at` names the feature,
/// community, unit or line.
#[derive(Debug, thiserror::Error)]
pub enum CityError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: {at}: {problem}")]
    Invalid {
        file: String,
        at: String,
        problem: Problem,
    },
}

impl CityError {
    /// The problem found by validation, if that is what failed.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            CityError::Invalid { problem, .. } => Some(problem),
            _ => None,
        }
    }
}

/// What validation found wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("code {0} is used twice")]
    DuplicateCode(String),
    #[error("unit id {0} is used twice")]
    DuplicateUnitId(String),
    #[error("street {0} is not declared in [[streets]]")]
    UnknownStreet(String),
    #[error("code {code:?} does not follow the code scheme: expected {expected}")]
    CodeScheme { code: String, expected: String },
    #[error("unknown role {0:?} (known: {known})", known = UnitRole::ALL.map(UnitRole::as_str).join(", "))]
    UnknownRole(String),
    #[error("unknown department {0:?} (known: police, urban_management, sanitation, civil_affairs, residents)")]
    UnknownDepartment(String),
    #[error("unknown ladder step {0:?} (known: {known})", known = LadderStep::ALL.map(LadderStep::as_str).join(", "))]
    UnknownLadderStep(String),
    #[error("admission list mixes \"*\" with category codes; \"*\" must stand alone")]
    MixedAdmission,
    #[error("unit id {id:?} must start with its owner's code \"{owner}.\"")]
    UnitIdOutsideOwner { id: String, owner: String },
    #[error("has no {0} unit: every {1} needs one")]
    MissingUnit(UnitRole, &'static str),
    #[error("has no boundary feature")]
    NoBoundary,
    #[error("names no {level} declared in the city config")]
    UnknownArea { level: AreaLevel },
    #[error(
        "parent is {} but the city config says {}",
        .found.as_deref().unwrap_or("(none)"),
        .expected.as_deref().unwrap_or("(none)")
    )]
    ParentMismatch {
        expected: Option<String>,
        found: Option<String>,
    },
    #[error("unknown level {0:?} (expected district, street, community or grid)")]
    UnknownLevel(String),
    #[error("{0}")]
    Geometry(GeometryError),
    #[error("{ring} has fewer than 3 distinct corners")]
    DegenerateRing { ring: String },
    /// A ring whose edges cross or touch (other than consecutive edges at their vertex).
    #[error("{ring} crosses itself at {at}")]
    SelfIntersection { ring: String, at: Point },
    #[error("{ring} crosses ring {other} at {at}")]
    RingsCross {
        ring: String,
        other: usize,
        at: Point,
    },
    /// Two areas of one level (or two polygons of one area) whose interiors intersect;
    /// `other` names the second as `at` names the first.
    #[error("overlaps {other} near {at}")]
    Overlap { other: String, at: Point },
    #[error("grid {0} is not declared in the city config")]
    UnknownGrid(String),
    #[error("address {0:?} is listed twice")]
    DuplicateAddress(String),
    #[error("{0}")]
    Malformed(String),
}

// ------------------------------------------------------------------------------ raw config

/// `city.toml` as written: names and codes, not yet checked against each other.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CityConfig {
    pub district: DistrictConfig,
    #[serde(default)]
    pub streets: Vec<StreetConfig>,
    #[serde(default)]
    pub communities: Vec<CommunityConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictConfig {
    pub code: String,
    pub name: String,
    /// Datum of every coordinate in the city's files, e.g. `GCJ-02`.
    pub datum: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub units: Vec<UnitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreetConfig {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub units: Vec<UnitConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityConfig {
    pub code: String,
    pub name: String,
    pub street: String,
    pub ladder: Vec<String>,
    /// Department → admitted category codes, `["*"]` for all.
    #[serde(default)]
    pub admission: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub units: Vec<UnitConfig>,
    #[serde(default)]
    pub grids: Vec<GridConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    pub id: String,
    pub role: String,
    pub name: String,
    #[serde(default)]
    pub department: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridConfig {
    pub code: String,
    pub name: String,
    pub grid_worker: String,
}

impl CityConfig {
    /// Parses `city.toml` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<CityConfig, CityError> {
        toml::from_str(text).map_err(|e| CityError::Syntax {
            file: file.to_owned(),
            message: e.to_string(),
        })
    }
}

/// One feature of `boundaries.geojson`.
#[derive(Debug, Clone)]
pub struct Boundary {
    pub level: AreaLevel,
    pub code: String,
    pub parent: Option<String>,
    /// `None` only for a street whose area is its communities'.
    pub geometry: Option<MultiPolygon>,
}

/// Parses `boundaries.geojson` text; `file` names it in errors, features are named by index
/// and code.
pub fn parse_boundaries(text: &str, file: &str) -> Result<Vec<Boundary>, CityError> {
    #[derive(Deserialize)]
    struct Collection {
        #[serde(rename = "type")]
        kind: String,
        features: Vec<serde_json::Value>,
    }
    #[derive(Deserialize)]
    struct Feature {
        properties: Properties,
        #[serde(default)]
        geometry: serde_json::Value,
    }
    #[derive(Deserialize)]
    struct Properties {
        level: String,
        code: String,
        #[serde(default)]
        parent: Option<String>,
    }

    let syntax = |message: String| CityError::Syntax {
        file: file.to_owned(),
        message,
    };
    let collection: Collection = serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?;
    if collection.kind != "FeatureCollection" {
        return Err(syntax(format!(
            "type is {:?}, expected \"FeatureCollection\"",
            collection.kind
        )));
    }
    let mut boundaries = Vec::with_capacity(collection.features.len());
    for (index, value) in collection.features.into_iter().enumerate() {
        let feature: Feature = serde_json::from_value(value).map_err(|e| CityError::Invalid {
            file: file.to_owned(),
            at: format!("feature {index}"),
            problem: Problem::Malformed(e.to_string()),
        })?;
        let p = feature.properties;
        let invalid = |problem| CityError::Invalid {
            file: file.to_owned(),
            at: format!("feature {index} ({} {})", p.level, p.code),
            problem,
        };
        let level = AreaLevel::parse(&p.level)
            .ok_or_else(|| invalid(Problem::UnknownLevel(p.level.clone())))?;
        let geometry = match MultiPolygon::from_geojson(&feature.geometry) {
            Ok(g) => Some(g),
            Err(GeometryError::Missing) if level == AreaLevel::Street => None,
            Err(e) => return Err(invalid(Problem::Geometry(e))),
        };
        boundaries.push(Boundary {
            level,
            code: p.code,
            parent: p.parent,
            geometry,
        });
    }
    Ok(boundaries)
}

/// One gazetteer row: a normalised-matchable address or landmark and the grid it lies in.
#[derive(Debug, Clone, PartialEq)]
pub struct GazetteerEntry {
    pub address: String,
    pub point: Point,
    pub grid_code: String,
}

/// Parses `addresses.csv` (header `address,lon,lat,grid_code`, plain comma-separated
/// fields without quotes); `file` names it in errors.
pub fn parse_gazetteer(text: &str, file: &str) -> Result<Vec<GazetteerEntry>, CityError> {
    const HEADER: &str = "address,lon,lat,grid_code";
    let bad = |line: usize, what: String| CityError::Invalid {
        file: file.to_owned(),
        at: format!("line {line}"),
        problem: Problem::Malformed(what),
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, header)) if header.trim_start_matches('\u{feff}') == HEADER => {}
        _ => return Err(bad(1, format!("expected the header {HEADER:?}"))),
    }
    let mut entries = Vec::new();
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        if line.contains('"') {
            return Err(bad(n, "quoted fields are not supported".into()));
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [address, lon, lat, grid_code] = fields[..] else {
            return Err(bad(
                n,
                format!("{} fields, expected 4 ({HEADER})", fields.len()),
            ));
        };
        let number = |name: &str, s: &str| {
            s.parse::<f64>()
                .map_err(|_| bad(n, format!("{name} {s:?} is not a number")))
        };
        let point = Point::new(number("lon", lon)?, number("lat", lat)?);
        if !point.is_valid() {
            return Err(bad(n, format!("{point} is not a valid lon/lat")));
        }
        if normalise_address(address).is_empty() {
            return Err(bad(n, "empty address".into()));
        }
        entries.push(GazetteerEntry {
            address: address.to_owned(),
            point,
            grid_code: grid_code.to_owned(),
        });
    }
    Ok(entries)
}

/// The form addresses are matched in: whitespace removed (including the ideographic
/// space), full-width ASCII folded to half-width, ASCII letters lower-cased. `１８号` and
/// `18 号` both become `18号`.
pub fn normalise_address(address: &str) -> String {
    address
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            _ => c,
        })
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

// ------------------------------------------------------------------------------ model

/// A level of the area hierarchy that has boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AreaLevel {
    District,
    Street,
    Community,
    Grid,
}

impl AreaLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::District => "district",
            AreaLevel::Street => "street",
            AreaLevel::Community => "community",
            AreaLevel::Grid => "grid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            AreaLevel::District,
            AreaLevel::Street,
            AreaLevel::Community,
            AreaLevel::Grid,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

impl fmt::Display for AreaLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The part a unit plays: the 1 (party branch), the 2 (workstation, residents' committee),
/// the X members, and the triage desks of streets and the district.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UnitRole {
    /// 社区党委/党总支: the core; oversees, receives escalations, chairs the joint meeting.
    PartyBranch,
    /// 社区工作站: administrative services and government tasks.
    Workstation,
    /// 居委会: residents' self-governance, mediation, welfare follow-up.
    ResidentsCommittee,
    /// 派出所 / 社区警务室
    PoliceStation,
    /// 城管中队
    UrbanManagementSquad,
    /// 环卫所
    SanitationTeam,
    /// 物业公司
    PropertyCompany,
    /// 业委会
    OwnersCommittee,
    /// 房管: housing management
    Housing,
    /// 园林绿化
    Greening,
    /// 消防
    FireSafety,
    /// 学校
    School,
    /// 社会组织
    SocialOrganisation,
    /// 志愿服务队
    VolunteerTeam,
    /// Street or district dispatch desk (综治中心/指挥中心): owner of last resort (属地兜底).
    TriageDesk,
}

impl UnitRole {
    pub const ALL: [UnitRole; 15] = [
        UnitRole::PartyBranch,
        UnitRole::Workstation,
        UnitRole::ResidentsCommittee,
        UnitRole::PoliceStation,
        UnitRole::UrbanManagementSquad,
        UnitRole::SanitationTeam,
        UnitRole::PropertyCompany,
        UnitRole::OwnersCommittee,
        UnitRole::Housing,
        UnitRole::Greening,
        UnitRole::FireSafety,
        UnitRole::School,
        UnitRole::SocialOrganisation,
        UnitRole::VolunteerTeam,
        UnitRole::TriageDesk,
    ];

    /// The "1+2" every community must have.
    pub const CORE: [UnitRole; 3] = [
        UnitRole::PartyBranch,
        UnitRole::Workstation,
        UnitRole::ResidentsCommittee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnitRole::PartyBranch => "party_branch",
            UnitRole::Workstation => "workstation",
            UnitRole::ResidentsCommittee => "residents_committee",
            UnitRole::PoliceStation => "police_station",
            UnitRole::UrbanManagementSquad => "urban_management_squad",
            UnitRole::SanitationTeam => "sanitation_team",
            UnitRole::PropertyCompany => "property_company",
            UnitRole::OwnersCommittee => "owners_committee",
            UnitRole::Housing => "housing",
            UnitRole::Greening => "greening",
            UnitRole::FireSafety => "fire_safety",
            UnitRole::School => "school",
            UnitRole::SocialOrganisation => "social_organisation",
            UnitRole::VolunteerTeam => "volunteer_team",
            UnitRole::TriageDesk => "triage_desk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for UnitRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its name in configuration and on the wire (`police_station`).
impl serde::Serialize for UnitRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for UnitRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        UnitRole::parse(&name).ok_or_else(|| {
            let known: Vec<&str> = UnitRole::ALL.iter().map(|r| r.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown unit role `{name}`; known roles: {}",
                known.join(", ")
            ))
        })
    }
}

/// A step of a community's escalation ladder, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LadderStep {
    GridWorker,
    Workstation,
    PartyBranch,
    /// 联席会议: put on the agenda of the 1+2+X joint meeting.
    JointMeeting,
    Street,
    District,
}

impl LadderStep {
    pub const ALL: [LadderStep; 6] = [
        LadderStep::GridWorker,
        LadderStep::Workstation,
        LadderStep::PartyBranch,
        LadderStep::JointMeeting,
        LadderStep::Street,
        LadderStep::District,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LadderStep::GridWorker => "grid_worker",
            LadderStep::Workstation => "workstation",
            LadderStep::PartyBranch => "party_branch",
            LadderStep::JointMeeting => "joint_meeting",
            LadderStep::Street => "street",
            LadderStep::District => "district",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A member unit of a community, street or district.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub id: String,
    pub role: UnitRole,
    pub name: String,
    /// The departmental system the unit answers to, when it has one.
    pub department: Option<Department>,
    /// Code of the community, street or district the unit belongs to.
    pub owner_code: String,
}

/// What a community admits from one department (准入制).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    All,
    Categories(BTreeSet<String>),
}

/// A community's admission list: which category codes each department may push into it.
/// A department that is not listed may push nothing: its work stays with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admission {
    by_department: BTreeMap<Department, Admitted>,
}

impl Admission {
    pub fn admits(&self, department: Department, category_code: &str) -> bool {
        match self.by_department.get(&department) {
            Some(Admitted::All) => true,
            Some(Admitted::Categories(codes)) => codes.contains(category_code),
            None => false,
        }
    }

    pub fn of(&self, department: Department) -> Option<&Admitted> {
        self.by_department.get(&department)
    }
}

#[derive(Debug, Clone)]
pub struct District {
    pub code: String,
    pub name: String,
    pub datum: String,
    pub description: Option<String>,
    pub boundary: MultiPolygon,
    units: Vec<Unit>,
    /// Index in `units` of the triage desk, which validation requires.
    triage_desk: usize,
}

impl District {
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The district's triage desk: owner of last resort for the whole district.
    pub fn triage_desk(&self) -> &Unit {
        &self.units[self.triage_desk]
    }
}

#[derive(Debug, Clone)]
pub struct Street {
    pub code: String,
    pub name: String,
    /// The street's own outline when the boundaries file gives one.
    pub boundary: Option<MultiPolygon>,
    units: Vec<Unit>,
    /// Index in `units` of the triage desk, which validation requires.
    triage_desk: usize,
    communities: Vec<String>,
    /// Position in `City::streets`.
    pub(crate) index: usize,
}

impl Street {
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The street's triage desk: owner of what its communities cannot take.
    pub fn triage_desk(&self) -> &Unit {
        &self.units[self.triage_desk]
    }

    /// Codes of the street's communities, in config order.
    pub fn community_codes(&self) -> &[String] {
        &self.communities
    }
}

#[derive(Debug, Clone)]
pub struct Community {
    pub code: String,
    pub name: String,
    pub street_code: String,
    /// Escalation ladder, lowest step first.
    pub ladder: Vec<LadderStep>,
    pub admission: Admission,
    pub boundary: MultiPolygon,
    units: Vec<Unit>,
    grids: Vec<usize>,
    /// Positions in `City::communities` and of its street in `City::streets`.
    pub(crate) index: usize,
    pub(crate) street_index: usize,
}

impl Community {
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn units_with_role(&self, role: UnitRole) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(move |u| u.role == role)
    }
}

#[derive(Debug, Clone)]
pub struct Grid {
    pub code: String,
    pub name: String,
    pub community_code: String,
    /// Name of the grid worker (网格员) in charge.
    pub grid_worker: String,
    pub boundary: MultiPolygon,
    /// Positions in `City::grids` and of its community in `City::communities`.
    pub(crate) index: usize,
    pub(crate) community_index: usize,
}

/// Where a unit lives, for `City::unit`.
#[derive(Debug, Clone, Copy)]
enum UnitSlot {
    District(usize),
    Street(usize, usize),
    Community(usize, usize),
}

/// Layers of the point index: communities' boundaries and all grids', on one lattice so that
/// one read answers both for most points. Each layer answers exactly like a scan in config
/// order (see `spatial_index`), so even wrongly overlapping areas resolve the same way every
/// time.
const COMMUNITY_LAYER: usize = 0;
const GRID_LAYER: usize = 1;

fn point_index(communities: &[Community], grids: &[Grid]) -> SpatialIndex {
    SpatialIndex::build_layers(
        &[
            communities.iter().map(|c| &c.boundary).collect(),
            grids.iter().map(|g| &g.boundary).collect(),
        ],
        crate::spatial_index::DEFAULT_CELLS_PER_WIDTH,
    )
}

/// The loaded, validated city.
#[derive(Debug, Clone)]
pub struct City {
    district: District,
    streets: Vec<Street>,
    communities: Vec<Community>,
    grids: Vec<Grid>,
    street_index: HashMap<String, usize>,
    community_index: HashMap<String, usize>,
    grid_index: HashMap<String, usize>,
    unit_index: HashMap<String, UnitSlot>,
    gazetteer: Vec<GazetteerEntry>,
    address_index: HashMap<String, usize>,
    point_index: SpatialIndex,
    /// Per grid its community's position, per community its street's.
    community_of_grid: Vec<u32>,
    street_of_community: Vec<u32>,
}

/// The file names errors are reported against.
struct Sources {
    config: String,
    boundaries: String,
    gazetteer: String,
}

impl City {
    /// Loads `city.toml`, `boundaries.geojson` and, if present, `addresses.csv` from `dir`.
    pub fn load(dir: &Path) -> Result<City, CityError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CityError::Read { path, source })
        };
        let sources = Sources {
            config: dir.join(CONFIG_FILE).display().to_string(),
            boundaries: dir.join(BOUNDARIES_FILE).display().to_string(),
            gazetteer: dir.join(GAZETTEER_FILE).display().to_string(),
        };
        let config = CityConfig::parse(&read(CONFIG_FILE)?, &sources.config)?;
        let boundaries = parse_boundaries(&read(BOUNDARIES_FILE)?, &sources.boundaries)?;
        let gazetteer = if dir.join(GAZETTEER_FILE).exists() {
            parse_gazetteer(&read(GAZETTEER_FILE)?, &sources.gazetteer)?
        } else {
            Vec::new()
        };
        City::assemble(config, boundaries, gazetteer, &sources)
    }

    /// Builds a city from parts already parsed or made in code (tests, admin API). Errors
    /// name the parts by their usual file names.
    pub fn from_parts(
        config: CityConfig,
        boundaries: Vec<Boundary>,
        gazetteer: Vec<GazetteerEntry>,
    ) -> Result<City, CityError> {
        let sources = Sources {
            config: CONFIG_FILE.into(),
            boundaries: BOUNDARIES_FILE.into(),
            gazetteer: GAZETTEER_FILE.into(),
        };
        City::assemble(config, boundaries, gazetteer, &sources)
    }

    fn assemble(
        config: CityConfig,
        boundaries: Vec<Boundary>,
        gazetteer: Vec<GazetteerEntry>,
        sources: &Sources,
    ) -> Result<City, CityError> {
        let in_config = |at: String, problem| CityError::Invalid {
            file: sources.config.clone(),
            at,
            problem,
        };
        let no_geometry = |at: &str| CityError::Invalid {
            file: sources.boundaries.clone(),
            at: at.to_owned(),
            problem: Problem::NoBoundary,
        };

        // Boundaries by (level, code), refusing duplicates.
        let mut shapes: HashMap<(AreaLevel, String), (usize, Boundary)> = HashMap::new();
        for (index, b) in boundaries.into_iter().enumerate() {
            let at = format!("feature {index} ({} {})", b.level, b.code);
            let key = (b.level, b.code.clone());
            if shapes.contains_key(&key) {
                return Err(CityError::Invalid {
                    file: sources.boundaries.clone(),
                    at,
                    problem: Problem::DuplicateCode(b.code),
                });
            }
            shapes.insert(key, (index, b));
        }
        let mut take_shape = |level: AreaLevel, code: &str, parent: Option<&str>, at: &str| {
            let (index, b) = shapes
                .remove(&(level, code.to_owned()))
                .ok_or_else(|| no_geometry(at))?;
            if b.parent.as_deref() != parent {
                return Err(CityError::Invalid {
                    file: sources.boundaries.clone(),
                    at: format!("feature {index} ({level} {code})"),
                    problem: Problem::ParentMismatch {
                        expected: parent.map(str::to_owned),
                        found: b.parent,
                    },
                });
            }
            Ok((index, b.geometry))
        };

        let check_code =
            |code: &str, parent: &str, digits: usize, at: &str| -> Result<(), CityError> {
                let ok = code.len() == parent.len() + digits
                    && code.starts_with(parent)
                    && code.bytes().all(|b| b.is_ascii_digit());
                if ok {
                    Ok(())
                } else {
                    let expected = if parent.is_empty() {
                        format!("{digits} digits")
                    } else {
                        format!("{parent} followed by {digits} digits")
                    };
                    Err(in_config(
                        at.to_owned(),
                        Problem::CodeScheme {
                            code: code.to_owned(),
                            expected,
                        },
                    ))
                }
            };

        // District.
        let d = config.district;
        let district_at = format!("district {} ({})", d.code, d.name);
        check_code(&d.code, "", DISTRICT_DIGITS, &district_at)?;
        let district_units = build_units(d.units, &d.code, &district_at, &in_config)?;
        let triage_desk = require_role(
            &district_units,
            UnitRole::TriageDesk,
            "district",
            &district_at,
            &in_config,
        )?;
        let (district_feature, boundary) =
            take_shape(AreaLevel::District, &d.code, None, &district_at)?;
        let boundary = boundary.ok_or_else(|| no_geometry(&district_at))?;
        let district = District {
            code: d.code,
            name: d.name,
            datum: d.datum,
            description: d.description,
            boundary,
            units: district_units,
            triage_desk,
        };

        // Streets.
        let mut streets = Vec::with_capacity(config.streets.len());
        // Feature index of each street's (when it has one), community's and grid's boundary.
        let mut street_features = Vec::with_capacity(config.streets.len());
        let mut community_features = Vec::with_capacity(config.communities.len());
        let mut grid_features = Vec::new();
        let mut street_index = HashMap::new();
        for s in config.streets {
            let at = format!("street {} ({})", s.code, s.name);
            check_code(&s.code, &district.code, LEVEL_DIGITS, &at)?;
            if street_index.insert(s.code.clone(), streets.len()).is_some() {
                return Err(in_config(at, Problem::DuplicateCode(s.code)));
            }
            let units = build_units(s.units, &s.code, &at, &in_config)?;
            let triage_desk =
                require_role(&units, UnitRole::TriageDesk, "street", &at, &in_config)?;
            // A missing street outline is allowed: a street is the union of its communities.
            let (feature, boundary) =
                match take_shape(AreaLevel::Street, &s.code, Some(&district.code), &at) {
                    Ok(shape) => shape,
                    Err(CityError::Invalid {
                        problem: Problem::NoBoundary,
                        ..
                    }) => (usize::MAX, None),
                    Err(e) => return Err(e),
                };
            street_features.push(feature);
            streets.push(Street {
                index: streets.len(),
                code: s.code,
                name: s.name,
                boundary,
                units,
                triage_desk,
                communities: Vec::new(),
            });
        }

        // Communities and their grids.
        let mut communities = Vec::with_capacity(config.communities.len());
        let mut community_index = HashMap::new();
        let mut grids = Vec::new();
        let mut grid_index = HashMap::new();
        for c in config.communities {
            let at = format!("community {} ({})", c.code, c.name);
            let street = *street_index
                .get(&c.street)
                .ok_or_else(|| in_config(at.clone(), Problem::UnknownStreet(c.street.clone())))?;
            check_code(&c.code, &c.street, LEVEL_DIGITS, &at)?;
            if community_index.contains_key(&c.code) {
                return Err(in_config(at, Problem::DuplicateCode(c.code)));
            }
            let ladder = c
                .ladder
                .iter()
                .map(|s| {
                    LadderStep::parse(s)
                        .ok_or_else(|| in_config(at.clone(), Problem::UnknownLadderStep(s.clone())))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let admission = build_admission(c.admission, &at, &in_config)?;
            let units = build_units(c.units, &c.code, &at, &in_config)?;
            for role in UnitRole::CORE {
                require_role(&units, role, "community", &at, &in_config)?;
            }
            let (feature, boundary) =
                take_shape(AreaLevel::Community, &c.code, Some(&c.street), &at)?;
            let boundary = boundary.ok_or_else(|| no_geometry(&at))?;
            community_features.push(feature);
            let mut own_grids = Vec::with_capacity(c.grids.len());
            for g in c.grids {
                let grid_at = format!("{at}, grid {} ({})", g.code, g.name);
                check_code(&g.code, &c.code, LEVEL_DIGITS, &grid_at)?;
                if grid_index.insert(g.code.clone(), grids.len()).is_some() {
                    return Err(in_config(grid_at, Problem::DuplicateCode(g.code)));
                }
                let (feature, boundary) =
                    take_shape(AreaLevel::Grid, &g.code, Some(&c.code), &grid_at)?;
                let boundary = boundary.ok_or_else(|| no_geometry(&grid_at))?;
                grid_features.push(feature);
                own_grids.push(grids.len());
                grids.push(Grid {
                    index: grids.len(),
                    community_index: communities.len(),
                    code: g.code,
                    name: g.name,
                    community_code: c.code.clone(),
                    grid_worker: g.grid_worker,
                    boundary,
                });
            }
            streets[street].communities.push(c.code.clone());
            community_index.insert(c.code.clone(), communities.len());
            communities.push(Community {
                index: communities.len(),
                street_index: street,
                code: c.code,
                name: c.name,
                street_code: c.street,
                ladder,
                admission,
                boundary,
                units,
                grids: own_grids,
            });
        }

        // Features left over name areas the config does not know.
        if let Some((index, b)) = shapes.into_values().min_by_key(|(index, _)| *index) {
            return Err(CityError::Invalid {
                file: sources.boundaries.clone(),
                at: format!("feature {index} ({} {})", b.level, b.code),
                problem: Problem::UnknownArea { level: b.level },
            });
        }

        // Rings are simple and areas of one level do not overlap.
        let district_level = [(district_feature, district.code.as_str(), &district.boundary)];
        let street_level: Vec<_> = streets
            .iter()
            .zip(&street_features)
            .filter_map(|(s, &f)| Some((f, s.code.as_str(), s.boundary.as_ref()?)))
            .collect();
        let community_level: Vec<_> = communities
            .iter()
            .zip(&community_features)
            .map(|(c, &f)| (f, c.code.as_str(), &c.boundary))
            .collect();
        let grid_level: Vec<_> = grids
            .iter()
            .zip(&grid_features)
            .map(|(g, &f)| (f, g.code.as_str(), &g.boundary))
            .collect();
        for (level, features) in [
            (AreaLevel::District, &district_level[..]),
            (AreaLevel::Street, &street_level),
            (AreaLevel::Community, &community_level),
            (AreaLevel::Grid, &grid_level),
        ] {
            check_topology(level, features, &sources.boundaries)?;
        }

        // Unit ids are unique across the city.
        let mut unit_index = HashMap::new();
        let district_slots = district
            .units
            .iter()
            .enumerate()
            .map(|(u, unit)| (unit, UnitSlot::District(u)));
        let street_slots = streets.iter().enumerate().flat_map(|(s, street)| {
            street
                .units
                .iter()
                .enumerate()
                .map(move |(u, unit)| (unit, UnitSlot::Street(s, u)))
        });
        let community_slots = communities.iter().enumerate().flat_map(|(c, community)| {
            community
                .units
                .iter()
                .enumerate()
                .map(move |(u, unit)| (unit, UnitSlot::Community(c, u)))
        });
        for (unit, slot) in district_slots.chain(street_slots).chain(community_slots) {
            if unit_index.insert(unit.id.clone(), slot).is_some() {
                let at = format!("unit {} of {}", unit.id, unit.owner_code);
                return Err(in_config(at, Problem::DuplicateUnitId(unit.id.clone())));
            }
        }

        // Gazetteer.
        let mut address_index = HashMap::new();
        for (i, entry) in gazetteer.iter().enumerate() {
            let invalid = |problem| CityError::Invalid {
                file: sources.gazetteer.clone(),
                at: format!("entry {} ({})", i + 1, entry.address),
                problem,
            };
            if !grid_index.contains_key(&entry.grid_code) {
                return Err(invalid(Problem::UnknownGrid(entry.grid_code.clone())));
            }
            if address_index
                .insert(normalise_address(&entry.address), i)
                .is_some()
            {
                return Err(invalid(Problem::DuplicateAddress(entry.address.clone())));
            }
        }

        let point_index = point_index(&communities, &grids);
        let community_of_grid = grids.iter().map(|g| g.community_index as u32).collect();
        let street_of_community = communities.iter().map(|c| c.street_index as u32).collect();
        Ok(City {
            district,
            streets,
            communities,
            grids,
            street_index,
            community_index,
            grid_index,
            unit_index,
            gazetteer,
            address_index,
            point_index,
            community_of_grid,
            street_of_community,
        })
    }

    pub fn district(&self) -> &District {
        &self.district
    }

    pub fn streets(&self) -> &[Street] {
        &self.streets
    }

    pub fn communities(&self) -> &[Community] {
        &self.communities
    }

    pub fn grids(&self) -> &[Grid] {
        &self.grids
    }

    pub fn street(&self, code: &str) -> Option<&Street> {
        self.street_index.get(code).map(|&i| &self.streets[i])
    }

    pub fn community(&self, code: &str) -> Option<&Community> {
        self.community_index
            .get(code)
            .map(|&i| &self.communities[i])
    }

    pub fn grid(&self, code: &str) -> Option<&Grid> {
        self.grid_index.get(code).map(|&i| &self.grids[i])
    }

    /// The grids of a community, in config order.
    pub fn grids_of<'a>(&'a self, community: &'a Community) -> impl Iterator<Item = &'a Grid> {
        community.grids.iter().map(move |&i| &self.grids[i])
    }

    /// Any unit of the city — community member, street or district desk — by id.
    pub fn unit(&self, id: &str) -> Option<&Unit> {
        match *self.unit_index.get(id)? {
            UnitSlot::District(u) => self.district.units.get(u),
            UnitSlot::Street(s, u) => self.streets.get(s)?.units.get(u),
            UnitSlot::Community(c, u) => self.communities.get(c)?.units.get(u),
        }
    }

    /// The units of a community that play `role` (empty for an unknown community).
    pub fn community_units(&self, community_code: &str, role: UnitRole) -> Vec<&Unit> {
        self.community(community_code)
            .map(|c| c.units_with_role(role).collect())
            .unwrap_or_default()
    }

    pub fn gazetteer(&self) -> &[GazetteerEntry] {
        &self.gazetteer
    }

    /// The gazetteer entry for an address, matched in normalised form.
    pub fn lookup_address(&self, address: &str) -> Option<&GazetteerEntry> {
        self.address_index
            .get(&normalise_address(address))
            .map(|&i| &self.gazetteer[i])
    }

    /// The community whose boundary contains `p` (see `geo` for the border rule), found
    /// through the spatial index.
    pub fn community_at(&self, p: Point) -> Option<&Community> {
        self.point_index
            .lookup_in(COMMUNITY_LAYER, p)
            .map(|i| &self.communities[i])
    }

    /// The grid of `community` whose boundary contains `p` (the first in config order).
    pub fn grid_at<'a>(&'a self, community: &'a Community, p: Point) -> Option<&'a Grid> {
        let first = self.point_index.lookup_in(GRID_LAYER, p)?;
        self.own_grid(community.index, first, p)
            .map(|g| &self.grids[g])
    }

    /// `community_at` by testing every community's boundary in turn: the baseline the
    /// spatial index is measured and tested against.
    pub fn community_at_by_scan(&self, p: Point) -> Option<&Community> {
        self.communities.iter().find(|c| c.boundary.contains(p))
    }

    /// `grid_at` by testing every grid of the city in turn (the same answer as `grid_at`).
    pub fn grid_at_by_scan<'a>(&'a self, community: &'a Community, p: Point) -> Option<&'a Grid> {
        let first = self.grids.iter().position(|g| g.boundary.contains(p))?;
        self.own_grid(community.index, first, p)
            .map(|g| &self.grids[g])
    }

    /// Positions in `communities()` of the community containing `p`, and in `grids()` of
    /// its grid containing `p`.
    pub(crate) fn positions_at(
        &self,
        p: Point,
        lookup: PointLookup,
    ) -> Option<(usize, Option<usize>)> {
        let (community, first_grid) = match lookup {
            PointLookup::Index => {
                // One cell for both layers: the community's and the grid's answer share a
                // cache line.
                let cell = self.point_index.cell_of(p)?;
                let community = self.point_index.lookup_at(cell, COMMUNITY_LAYER, p)?;
                (community, self.point_index.lookup_at(cell, GRID_LAYER, p))
            }
            PointLookup::Scan => {
                let community = self
                    .communities
                    .iter()
                    .position(|c| c.boundary.contains(p))?;
                (
                    community,
                    self.grids.iter().position(|g| g.boundary.contains(p)),
                )
            }
        };
        Some((
            community,
            first_grid.and_then(|g| self.own_grid(community, g, p)),
        ))
    }

    /// The first grid of the city containing `p` is also its community's first; when it
    /// belongs to another community (which overlaps this one), this one's own grids are
    /// asked.
    fn own_grid(&self, community: usize, first: usize, p: Point) -> Option<usize> {
        if self.community_of_grid[first] as usize == community {
            Some(first)
        } else {
            let own = &self.communities[community].grids;
            own.iter()
                .copied()
                .find(|&g| self.grids[g].boundary.contains(p))
        }
    }

    /// Bytes held by the point index (communities and grids).
    pub fn point_index_bytes(&self) -> usize {
        self.point_index.memory_bytes()
    }

    /// Cells of the point index (both layers), and how many of them answer with one read.
    pub fn point_index_cells(&self) -> (usize, usize) {
        self.point_index.cell_stats()
    }

    /// The street a community belongs to.
    pub fn street_of(&self, community: &Community) -> &Street {
        &self.streets[community.street_index]
    }

    /// The community a grid belongs to.
    pub fn community_of(&self, grid: &Grid) -> &Community {
        &self.communities[grid.community_index]
    }

    /// Positions of a grid's community and a community's street, from small dense tables
    /// (routing reads these for every event; the structs themselves are far apart in memory).
    pub(crate) fn community_position_of_grid(&self, grid: usize) -> usize {
        self.community_of_grid[grid] as usize
    }

    pub(crate) fn street_position_of_community(&self, community: usize) -> usize {
        self.street_of_community[community] as usize
    }
}

/// Refuses self-intersecting rings and overlapping areas of one level. `features` holds
/// each area's feature index, code and boundary.
fn check_topology(
    level: AreaLevel,
    features: &[(usize, &str, &MultiPolygon)],
    file: &str,
) -> Result<(), CityError> {
    let shapes: Vec<&MultiPolygon> = features.iter().map(|&(_, _, shape)| shape).collect();
    let Err(defect) = topology::check_level(&shapes) else {
        return Ok(());
    };
    let feature = |area: usize| {
        let (index, code, _) = features[area];
        format!("feature {index} ({level} {code})")
    };
    let ring = |polygon: usize, ring: usize| format!("polygon {polygon}, ring {ring}");
    let (at, problem) = match defect {
        Defect::Degenerate { part, ring: r } => (
            feature(part.area),
            Problem::DegenerateRing {
                ring: ring(part.polygon, r),
            },
        ),
        Defect::SelfIntersection { part, ring: r, at } => (
            feature(part.area),
            Problem::SelfIntersection {
                ring: ring(part.polygon, r),
                at,
            },
        ),
        Defect::RingsCross {
            part,
            rings: (r, other),
            at,
        } => (
            feature(part.area),
            Problem::RingsCross {
                ring: ring(part.polygon, r),
                other,
                at,
            },
        ),
        Defect::Overlap { parts: (a, b), at } if a.area == b.area => (
            format!("{}, polygon {}", feature(a.area), a.polygon),
            Problem::Overlap {
                other: format!("polygon {}", b.polygon),
                at,
            },
        ),
        Defect::Overlap { parts: (a, b), at } => {
            // Name a polygon only where a feature has several.
            let name = |part: topology::Part| {
                if features[part.area].2.polygons().len() > 1 {
                    format!("{}, polygon {}", feature(part.area), part.polygon)
                } else {
                    feature(part.area)
                }
            };
            (name(a), Problem::Overlap { other: name(b), at })
        }
    };
    Err(CityError::Invalid {
        file: file.to_owned(),
        at,
        problem,
    })
}

fn build_units(
    units: Vec<UnitConfig>,
    owner: &str,
    at: &str,
    in_config: &impl Fn(String, Problem) -> CityError,
) -> Result<Vec<Unit>, CityError> {
    units
        .into_iter()
        .map(|u| {
            let unit_at = format!("{at}, unit {}", u.id);
            let role = UnitRole::parse(&u.role)
                .ok_or_else(|| in_config(unit_at.clone(), Problem::UnknownRole(u.role.clone())))?;
            let department = u
                .department
                .map(|d| {
                    Department::parse(&d)
                        .ok_or_else(|| in_config(unit_at.clone(), Problem::UnknownDepartment(d)))
                })
                .transpose()?;
            let owned =
                u.id.strip_prefix(owner)
                    .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'));
            if !owned {
                return Err(in_config(
                    unit_at,
                    Problem::UnitIdOutsideOwner {
                        id: u.id,
                        owner: owner.to_owned(),
                    },
                ));
            }
            Ok(Unit {
                id: u.id,
                role,
                name: u.name,
                department,
                owner_code: owner.to_owned(),
            })
        })
        .collect()
}

/// The index of the first unit playing `role`, which `level` requires.
fn require_role(
    units: &[Unit],
    role: UnitRole,
    level: &'static str,
    at: &str,
    in_config: &impl Fn(String, Problem) -> CityError,
) -> Result<usize, CityError> {
    units
        .iter()
        .position(|u| u.role == role)
        .ok_or_else(|| in_config(at.to_owned(), Problem::MissingUnit(role, level)))
}

fn build_admission(
    lists: BTreeMap<String, Vec<String>>,
    at: &str,
    in_config: &impl Fn(String, Problem) -> CityError,
) -> Result<Admission, CityError> {
    let mut by_department = BTreeMap::new();
    for (department, codes) in lists {
        let admission_at = format!("{at}, admission.{department}");
        let dept = Department::parse(&department).ok_or_else(|| {
            in_config(
                admission_at.clone(),
                Problem::UnknownDepartment(department.clone()),
            )
        })?;
        let admitted = if codes.iter().any(|c| c == "*") {
            if codes.len() > 1 {
                return Err(in_config(admission_at, Problem::MixedAdmission));
            }
            Admitted::All
        } else {
            Admitted::Categories(codes.into_iter().collect())
        };
        by_department.insert(dept, admitted);
    }
    Ok(Admission { by_department })
}
