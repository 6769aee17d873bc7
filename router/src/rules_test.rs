//! Rule tests written next to the rules (`config/rules/tests/*.toml`), in the spirit of
//! vector's config unit tests: an input event and what routing must make of it. What
//! `hub rules test` runs, and what a reload runs before it swaps the rules in.
//!
//! ```toml
//! [[test]]
//! name = "an overflowing bin in 梧桐社区 goes to its sanitation team"
//! [test.event]
//! department = "sanitation"
//! code = "GARBAGE_OVERFLOW"               # the department's own code
//! point = [105.3512, 28.9488]             # and/or grid = "…", address = "…"
//! time = "2024-06-03T09:30:00+08:00"      # optional; default Monday 2024-06-03 10:00 CST
//! attributes = { fillLevel = "85" }       # optional
//! source = "sanitation.longmatan"         # optional; default "<department>.test"
//! [test.expect]                           # every field optional; given ones must hold
//! outcome = "dispatch"    # dispatch | triage | return_to_department | suppressed | unmapped
//! community = "510504001001"              # or "none"
//! grid = "510504001001002"
//! place_level = "grid"
//! rule = "sanitation.garbage"
//! category = "E0103"
//! lead = "sanitation_team"                # a role, a unit id, or "none" (city triage)
//! co_handlers = ["property_company"]      # exactly these (roles or unit ids)
//! priority = "normal"
//! sla = "exposed_garbage"                 # or "none"
//! ```

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use hub_schemas::event::{CivicEvent, Department, GeoPoint, Location};
use serde::Deserialize;
use toml::Spanned;

use crate::city::UnitRole;
use crate::config::ConfigFile;
use crate::config::RoutingConfig;
use crate::diagnostic::{Diagnostic, SourceText};
use crate::place::{PlaceLevel, PointLookup};
use crate::priority::Priority;
use crate::routing::{Router, RoutingDecision};
use crate::task::AssignedUnit;

/// Time of test events that give none: a Monday morning in China Standard Time.
pub const DEFAULT_TIME: &str = "2024-06-03T10:00:00+08:00";

const OUTCOMES: [&str; 5] = [
    "dispatch",
    "triage",
    "return_to_department",
    "suppressed",
    "unmapped",
];

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub event: CivicEvent,
    pub expect: Expect,
}

/// What a test expects; `None` fields are not checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub outcome: Option<String>,
    /// `Some(None)`: placed in no community.
    pub community: Option<Option<String>>,
    pub grid: Option<String>,
    pub place_level: Option<PlaceLevel>,
    pub rule: Option<String>,
    pub category: Option<String>,
    pub lead: Option<ExpectedUnit>,
    pub co_handlers: Option<Vec<ExpectedUnit>>,
    pub priority: Option<Priority>,
    /// `Some(None)`: no SLA policy.
    pub sla: Option<Option<String>>,
}

/// A unit as a test names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedUnit {
    Role(UnitRole),
    Id(String),
    /// No unit (city triage, or no task at all).
    Nobody,
}

impl ExpectedUnit {
    fn matches(&self, unit: Option<&AssignedUnit>) -> bool {
        match (self, unit) {
            (ExpectedUnit::Role(r), Some(u)) => u.role == *r,
            (ExpectedUnit::Id(id), Some(u)) => &u.unit_id == id,
            (ExpectedUnit::Nobody, None) => true,
            _ => false,
        }
    }
}

impl fmt::Display for ExpectedUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedUnit::Role(r) => write!(f, "role {r}"),
            ExpectedUnit::Id(id) => write!(f, "unit {id}"),
            ExpectedUnit::Nobody => f.write_str("nobody"),
        }
    }
}

fn show(unit: Option<&AssignedUnit>) -> String {
    unit.map_or_else(
        || "nobody".to_owned(),
        |u| format!("{} ({}, {})", u.unit_id, u.role, u.name),
    )
}

/// Parses test files and checks every name in them against the configuration.
pub fn parse(
    files: &[ConfigFile],
    config: &RoutingConfig,
) -> Result<Vec<TestCase>, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    for file in files {
        let src = SourceText::new(&file.name, &file.text);
        let raw: RawFile = match src.parse() {
            Ok(raw) => raw,
            Err(d) => {
                problems.push(d);
                continue;
            }
        };
        for t in raw.test {
            let line = src.line_of(t.span().start);
            let before = problems.len();
            let case = build_case(t.into_inner(), &src, line, config, &mut problems);
            if problems.len() == before {
                cases.extend(case);
            }
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems)
    }
}

fn build_case(
    raw: RawTest,
    src: &SourceText<'_>,
    line: usize,
    config: &RoutingConfig,
    problems: &mut Vec<Diagnostic>,
) -> Option<TestCase> {
    let city = config.city();
    let mut bad = |span: &std::ops::Range<usize>, message: String| {
        problems.push(src.error(span, format!("test {:?}: {message}", raw.name)));
    };
    let e = raw.event;
    let department = Department::parse(e.department.get_ref());
    if department.is_none() {
        bad(
            &e.department.span(),
            format!("unknown department {:?}", e.department.get_ref()),
        );
    }
    let point = match &e.point {
        Some(p) => match p.get_ref()[..] {
            [lon, lat] => Some(GeoPoint { lon, lat }),
            _ => {
                bad(&p.span(), "point must be [lon, lat]".into());
                None
            }
        },
        None => None,
    };
    let time_text = e
        .time
        .as_ref()
        .map_or(DEFAULT_TIME, |t| t.get_ref().as_str());
    let time = DateTime::parse_from_rfc3339(time_text).map(|t| t.with_timezone(&Utc));
    if time.is_err() {
        let span = e.time.as_ref().map_or(0..0, Spanned::span);
        bad(
            &span,
            format!("time {time_text:?} is not RFC 3339, e.g. {DEFAULT_TIME:?}"),
        );
    }

    let x = raw.expect;
    let mut expect = Expect::default();
    if let Some(o) = x.outcome {
        if OUTCOMES.contains(&o.get_ref().as_str()) {
            expect.outcome = Some(o.into_inner());
        } else {
            bad(
                &o.span(),
                format!(
                    "unknown outcome {:?} (known: {})",
                    o.get_ref(),
                    OUTCOMES.join(", ")
                ),
            );
        }
    }
    if let Some(c) = x.community {
        match c.get_ref().as_str() {
            "none" => expect.community = Some(None),
            code if city.community(code).is_some() => {
                expect.community = Some(Some(code.to_owned()))
            }
            code => bad(&c.span(), format!("unknown community {code:?}")),
        }
    }
    if let Some(g) = x.grid {
        if city.grid(g.get_ref()).is_some() {
            expect.grid = Some(g.into_inner());
        } else {
            bad(&g.span(), format!("unknown grid {:?}", g.get_ref()));
        }
    }
    if let Some(l) = x.place_level {
        let level =
            serde_json::from_value::<PlaceLevel>(serde_json::Value::String(l.get_ref().clone()));
        match level {
            Ok(level) => expect.place_level = Some(level),
            Err(_) => bad(&l.span(), format!("unknown place level {:?}", l.get_ref())),
        }
    }
    if let Some(r) = x.rule {
        if config.rules().rule(r.get_ref()).is_some() {
            expect.rule = Some(r.into_inner());
        } else {
            bad(&r.span(), format!("no rule has id {:?}", r.get_ref()));
        }
    }
    if let Some(c) = x.category {
        if config.taxonomy().category(c.get_ref()).is_some() {
            expect.category = Some(c.into_inner());
        } else {
            bad(&c.span(), format!("unknown category {:?}", c.get_ref()));
        }
    }
    let mut unit = |u: Spanned<String>| {
        let text = u.get_ref().as_str();
        if text == "none" {
            Some(ExpectedUnit::Nobody)
        } else if let Some(role) = UnitRole::parse(text) {
            Some(ExpectedUnit::Role(role))
        } else if city.unit(text).is_some() {
            Some(ExpectedUnit::Id(text.to_owned()))
        } else {
            bad(
                &u.span(),
                format!("{text:?} is neither a role nor a unit id of the city"),
            );
            None
        }
    };
    expect.lead = x.lead.and_then(&mut unit);
    expect.co_handlers = x
        .co_handlers
        .map(|list| list.into_iter().filter_map(&mut unit).collect());
    if let Some(p) = x.priority {
        match Priority::parse(p.get_ref()) {
            Some(p) => expect.priority = Some(p),
            None => bad(
                &p.span(),
                format!(
                    "unknown priority {:?} (known: {})",
                    p.get_ref(),
                    Priority::known()
                ),
            ),
        }
    }
    expect.sla = x.sla.map(|s| (s != "none").then_some(s));

    let (department, time) = (department?, time.ok()?);
    let source_system = e.source.unwrap_or_else(|| format!("{department}.test"));
    let source_id = format!("{}:{line}", src.file);
    Some(TestCase {
        name: raw.name,
        file: src.file.to_owned(),
        line,
        event: CivicEvent {
            event_id: CivicEvent::derive_id(&source_system, &source_id),
            source_system,
            source_id,
            department,
            category_code: e.code,
            category_name: e.name,
            occurred_at: time,
            received_at: time,
            location: Location {
                point,
                address: e.address,
                grid_code: e.grid,
            },
            description: e.description.unwrap_or_default(),
            attributes: e.attributes,
            reporter: None,
            raw_ref: None,
        },
        expect,
    })
}

/// The outcome of one test: empty `failures` when it passed.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestReport {
    pub results: Vec<CaseResult>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.failures.is_empty())
    }

    pub fn failed(&self) -> impl Iterator<Item = &CaseResult> {
        self.results.iter().filter(|r| !r.failures.is_empty())
    }
}

/// One line per test (`ok` or `FAILED` with each failed expectation below it), then the
/// totals.
impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.results {
            let status = if r.failures.is_empty() {
                "ok    "
            } else {
                "FAILED"
            };
            writeln!(f, "{status} {}:{}: {}", r.file, r.line, r.name)?;
            for failure in &r.failures {
                writeln!(f, "         {failure}")?;
            }
        }
        let failed = self.failed().count();
        write!(f, "{} passed, {failed} failed", self.results.len() - failed)
    }
}

/// Routes every test event with `router` and compares with the expectations. Pure: the
/// decision time is the event's own time.
pub fn run(router: &Router, cases: &[TestCase]) -> TestReport {
    TestReport {
        results: cases.iter().map(|case| run_case(router, case)).collect(),
    }
}

fn run_case(router: &Router, case: &TestCase) -> CaseResult {
    let mut failures = Vec::new();
    let x = &case.expect;
    let decision = router.route(&case.event, case.event.received_at);
    let outcome = decision
        .as_ref()
        .map_or("unmapped", RoutingDecision::outcome);
    if let Some(want) = &x.outcome {
        if want != outcome {
            let detail = match &decision {
                Err(e) => format!(" ({e})"),
                Ok(d) => format!(
                    " ({}; rule {})",
                    d.explanation().assignment_detail,
                    d.explanation().rule_id
                ),
            };
            failures.push(format!("expected outcome {want}, got {outcome}{detail}"));
        }
    }
    let (Ok(decision), Ok(core)) = (&decision, router.decide(&case.event, PointLookup::Index))
    else {
        let wants_more =
            x.community.is_some() || x.rule.is_some() || x.lead.is_some() || x.category.is_some();
        if wants_more && x.outcome.as_deref() != Some("unmapped") {
            failures.push("the event could not be routed, so nothing else can be checked".into());
        }
        return result(case, failures);
    };
    let city = router.city();
    let name_of = |code: Option<&str>| match code.and_then(|c| city.community(c)) {
        Some(c) => format!("{} ({})", c.code, c.name),
        None => "no community".to_owned(),
    };
    let got_community = core.located.community.map(|c| c.code.as_str());
    if let Some(want) = &x.community {
        if want.as_deref() != got_community {
            failures.push(format!(
                "expected community {}, got {} ({})",
                name_of(want.as_deref()),
                name_of(got_community),
                decision.explanation().place_detail
            ));
        }
    }
    if let Some(want) = &x.grid {
        let got = core.located.grid.map(|g| g.code.as_str());
        if got != Some(want.as_str()) {
            failures.push(format!(
                "expected grid {want}, got {}",
                got.unwrap_or("no grid")
            ));
        }
    }
    if let Some(want) = x.place_level {
        if want != core.located.level {
            failures.push(format!(
                "expected place level {want:?}, got {:?}",
                core.located.level
            ));
        }
    }
    let explanation = decision.explanation();
    if let Some(want) = &x.rule {
        if want != &explanation.rule_id {
            failures.push(format!(
                "expected rule {want}, got {} ({})",
                explanation.rule_id, explanation.rule_detail
            ));
        }
    }
    if let Some(want) = &x.category {
        if want != &core.category.code {
            failures.push(format!(
                "expected category {want}, got {} {}",
                core.category.code, core.category.name
            ));
        }
    }
    let task = decision.task();
    let no_task = || format!("no task was created (outcome {outcome})");
    if let Some(want) = &x.lead {
        let got = task.and_then(|t| t.lead_unit.as_ref());
        if task.is_none() && *want != ExpectedUnit::Nobody {
            failures.push(format!("expected lead {want}, but {}", no_task()));
        } else if !want.matches(got) {
            failures.push(format!(
                "expected lead {want}, got {} ({})",
                show(got),
                explanation.assignment_detail
            ));
        }
    }
    if let Some(want) = &x.co_handlers {
        let got: Vec<&AssignedUnit> = task
            .map(|t| t.co_handlers.iter().collect())
            .unwrap_or_default();
        let all_found = want.iter().all(|w| got.iter().any(|g| w.matches(Some(g))));
        let none_extra = got.iter().all(|g| want.iter().any(|w| w.matches(Some(g))));
        if !(all_found && none_extra) {
            let want: Vec<String> = want.iter().map(ToString::to_string).collect();
            let got: Vec<String> = got.iter().map(|g| show(Some(g))).collect();
            failures.push(format!(
                "expected co-handlers [{}], got [{}]",
                want.join(", "),
                got.join(", ")
            ));
        }
    }
    if let Some(want) = x.priority {
        match task {
            Some(t) if t.priority != want => {
                failures.push(format!("expected priority {want}, got {}", t.priority))
            }
            None => failures.push(format!("expected priority {want}, but {}", no_task())),
            Some(_) => {}
        }
    }
    if let Some(want) = &x.sla {
        let got = task.map(|t| t.sla_policy.clone());
        match got {
            Some(got) if &got != want => failures.push(format!(
                "expected SLA policy {}, got {}",
                want.as_deref().unwrap_or("none"),
                got.as_deref().unwrap_or("none")
            )),
            None => failures.push(format!("expected an SLA policy, but {}", no_task())),
            Some(_) => {}
        }
    }
    result(case, failures)
}

fn result(case: &TestCase, failures: Vec<String>) -> CaseResult {
    CaseResult {
        name: case.name.clone(),
        file: case.file.clone(),
        line: case.line,
        failures,
    }
}

// ------------------------------------------------------------------------------ raw file

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    test: Vec<Spanned<RawTest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: String,
    event: RawEvent,
    #[serde(default)]
    expect: RawExpect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    department: Spanned<String>,
    code: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    point: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    grid: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    time: Option<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    outcome: Option<Spanned<String>>,
    #[serde(default)]
    community: Option<Spanned<String>>,
    #[serde(default)]
    grid: Option<Spanned<String>>,
    #[serde(default)]
    place_level: Option<Spanned<String>>,
    #[serde(default)]
    rule: Option<Spanned<String>>,
    #[serde(default)]
    category: Option<Spanned<String>>,
    #[serde(default)]
    lead: Option<Spanned<String>>,
    #[serde(default)]
    co_handlers: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    priority: Option<Spanned<String>>,
    #[serde(default)]
    sla: Option<String>,
}
