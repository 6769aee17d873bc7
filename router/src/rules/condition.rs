//! The `when` part of a rule: a small, declarative condition language. Every field given
//! must hold (AND); a list holds when any of its entries does (OR); an absent field holds
//! always. There is nothing to loop or call, so a rule always finishes in time, and every
//! name in it (department, category, place, role) is checked against the configuration when
//! the rules load.
//!
//! ```toml
//! [rule.when]
//! department = ["sanitation", "residents"]   # the event's department
//! source = ["sanitation.longmatan", "sensor.*"]  # source system; a trailing * is a prefix
//! category = ["E0103", "E04"]        # taxonomy category, or a whole major class
//! place = ["510504001", "510504002003"]  # district, street, community or grid code
//! place_level = ["street", "district", "triage"]  # lowest level the event was placed at
//! hours = ["22:00-06:00"]            # China Standard Time (UTC+8); may wrap midnight
//! weekdays = ["sat", "sun"]          # calendar days (holidays are the SLA calendar's job)
//! min_priority = "urgent"            # the event's priority (source's, else category's)
//! attributes = { fillLevel = ">= 95", source = "市民举报" }
//! ```
//!
//! Attribute tests: `"text"` equals text; `"== text"` equals text (for text starting with an
//! operator); `"!= text"` differs or is absent; `"< n"`, `"<= n"`, `"> n"`, `">= n"`
//! compare numbers (absent or non-numeric values do not match); `"*"` is present.

use std::collections::BTreeMap;
use std::fmt;

use hub_schemas::event::Department;
use serde::Deserialize;
use toml::Spanned;

use crate::city::{City, Community};
use crate::diagnostic::{Diagnostic, SourceText};
use crate::place::{Located, PlaceLevel};
use crate::priority::Priority;
use crate::taxonomy::{Category, Taxonomy};

/// What a rule can look at, computed once per event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub department: Department,
    pub source_system: &'a str,
    pub category: &'a Category,
    pub located: &'a Located<'a>,
    /// Minutes since local midnight, China Standard Time.
    pub minute_of_day: u16,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    pub priority: Priority,
    pub attributes: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Conditions {
    /// Bit per `Department::ALL` position; 0 = any.
    departments: u8,
    sources: Vec<SourcePattern>,
    categories: Vec<CategoryMatch>,
    places: Vec<AreaRef>,
    /// Bit per `PLACE_LEVELS` position; 0 = any.
    place_levels: u8,
    hours: Vec<HourWindow>,
    /// Bit per weekday, Monday = bit 0; 0 = any.
    weekdays: u8,
    min_priority: Option<Priority>,
    attributes: Vec<(String, AttributeTest)>,
}

#[derive(Debug, Clone)]
enum SourcePattern {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, Copy)]
enum CategoryMatch {
    Category(usize),
    Major(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AreaRef {
    District,
    Street(usize),
    Community(usize),
    Grid(usize),
}

/// `start..end` in minutes of the day; wraps past midnight when `end <= start`.
#[derive(Debug, Clone, Copy)]
struct HourWindow {
    start: u16,
    end: u16,
}

#[derive(Debug, Clone, PartialEq)]
enum AttributeTest {
    Present,
    Equals(String),
    NotEquals(String),
    Compare(Comparison, f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

const PLACE_LEVELS: [PlaceLevel; 5] = [
    PlaceLevel::Grid,
    PlaceLevel::Community,
    PlaceLevel::Street,
    PlaceLevel::District,
    PlaceLevel::Triage,
];

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn bit_of<T: PartialEq>(all: &[T], item: &T) -> u8 {
    all.iter().position(|x| x == item).map_or(0, |i| 1 << i)
}

fn place_level_name(level: PlaceLevel) -> &'static str {
    match level {
        PlaceLevel::Grid => "grid",
        PlaceLevel::Community => "community",
        PlaceLevel::Street => "street",
        PlaceLevel::District => "district",
        PlaceLevel::Triage => "triage",
    }
}

impl Conditions {
    /// True when the rule has no conditions: it matches every event.
    pub fn is_empty(&self) -> bool {
        self.departments == 0
            && self.sources.is_empty()
            && self.categories.is_empty()
            && self.places.is_empty()
            && self.place_levels == 0
            && self.hours.is_empty()
            && self.weekdays == 0
            && self.min_priority.is_none()
            && self.attributes.is_empty()
    }

    /// Cheapest tests first: most rules are told apart by department and category.
    pub fn matches(&self, f: &Facts<'_>) -> bool {
        (self.departments == 0 || self.departments & bit_of(&Department::ALL, &f.department) != 0)
            && (self.categories.is_empty()
                || self.categories.iter().any(|m| match *m {
                    CategoryMatch::Category(i) => f.category.index == i,
                    CategoryMatch::Major(i) => f.category.major_index == i,
                }))
            && (self.place_levels == 0
                || self.place_levels & bit_of(&PLACE_LEVELS, &f.located.level) != 0)
            && self.min_priority.is_none_or(|p| f.priority >= p)
            && (self.weekdays == 0 || self.weekdays & (1 << f.weekday) != 0)
            && (self.hours.is_empty() || self.hours.iter().any(|w| w.contains(f.minute_of_day)))
            && (self.places.is_empty() || self.places.iter().any(|a| a.holds(f.located)))
            && (self.sources.is_empty() || self.sources.iter().any(|s| s.matches(f.source_system)))
            && self
                .attributes
                .iter()
                .all(|(name, test)| test.holds(f.attributes.get(name).map(String::as_str)))
    }

    /// Whether the department and category conditions can hold for events of `department`
    /// and `category` (the other conditions depend on the event).
    pub fn can_match(&self, department: Department, category: &Category) -> bool {
        (self.departments == 0 || self.departments & bit_of(&Department::ALL, &department) != 0)
            && (self.categories.is_empty()
                || self.categories.iter().any(|m| match *m {
                    CategoryMatch::Category(i) => category.index == i,
                    CategoryMatch::Major(i) => category.major_index == i,
                }))
    }

    /// The departments whose events the rule can take (all when it names none).
    pub fn departments(&self) -> impl Iterator<Item = Department> + '_ {
        Department::ALL.into_iter().filter(|d| {
            self.departments == 0 || self.departments & bit_of(&Department::ALL, d) != 0
        })
    }

    /// The communities an event matching these conditions can be placed in.
    pub fn reachable_communities<'c>(&self, city: &'c City) -> Vec<&'c Community> {
        let community_levels = bit_of(&PLACE_LEVELS, &PlaceLevel::Grid)
            | bit_of(&PLACE_LEVELS, &PlaceLevel::Community);
        if self.place_levels != 0 && self.place_levels & community_levels == 0 {
            return Vec::new();
        }
        city.communities()
            .iter()
            .filter(|c| {
                self.places.is_empty()
                    || self.places.iter().any(|a| match *a {
                        AreaRef::District => true,
                        AreaRef::Street(s) => c.street_index == s,
                        AreaRef::Community(i) => c.index == i,
                        AreaRef::Grid(g) => city.grids()[g].community_index == c.index,
                    })
            })
            .collect()
    }
}

impl SourcePattern {
    fn matches(&self, source: &str) -> bool {
        match self {
            SourcePattern::Exact(s) => source == s,
            SourcePattern::Prefix(p) => source.starts_with(p.as_str()),
        }
    }
}

impl AreaRef {
    fn holds(self, located: &Located<'_>) -> bool {
        match self {
            AreaRef::District => located.level != PlaceLevel::Triage,
            AreaRef::Street(i) => located.positions.street == Some(i),
            AreaRef::Community(i) => located.positions.community == Some(i),
            AreaRef::Grid(i) => located.positions.grid == Some(i),
        }
    }
}

impl HourWindow {
    fn contains(self, minute: u16) -> bool {
        if self.start < self.end {
            self.start <= minute && minute < self.end
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

impl AttributeTest {
    fn holds(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (AttributeTest::Present, v) => v.is_some(),
            (AttributeTest::Equals(want), Some(v)) => v == want,
            (AttributeTest::NotEquals(want), v) => v != Some(want.as_str()),
            (AttributeTest::Compare(op, n), Some(v)) => match v.trim().parse::<f64>() {
                Ok(x) => match op {
                    Comparison::Less => x < *n,
                    Comparison::LessOrEqual => x <= *n,
                    Comparison::Greater => x > *n,
                    Comparison::GreaterOrEqual => x >= *n,
                },
                Err(_) => false,
            },
            (_, None) => false,
        }
    }

    fn parse(text: &str) -> Result<AttributeTest, String> {
        let t = text.trim();
        if t == "*" {
            return Ok(AttributeTest::Present);
        }
        let number = |rest: &str, op| {
            rest.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|n| AttributeTest::Compare(op, n))
                .ok_or_else(|| format!("{text:?}: expected a number after the comparison"))
        };
        // Two-character operators first, so that "<=" is not read as "<" then "=".
        if let Some(rest) = t.strip_prefix("==") {
            Ok(AttributeTest::Equals(rest.trim().to_owned()))
        } else if let Some(rest) = t.strip_prefix("!=") {
            Ok(AttributeTest::NotEquals(rest.trim().to_owned()))
        } else if let Some(rest) = t.strip_prefix("<=") {
            number(rest, Comparison::LessOrEqual)
        } else if let Some(rest) = t.strip_prefix(">=") {
            number(rest, Comparison::GreaterOrEqual)
        } else if let Some(rest) = t.strip_prefix('<') {
            number(rest, Comparison::Less)
        } else if let Some(rest) = t.strip_prefix('>') {
            number(rest, Comparison::Greater)
        } else if t.is_empty() {
            Err("empty test; use \"*\" for \"present\" or \"== \" for an empty value".to_owned())
        } else {
            Ok(AttributeTest::Equals(t.to_owned()))
        }
    }
}

/// `HH:MM-HH:MM` (24:00 allowed as an end).
fn parse_hours(text: &str) -> Option<HourWindow> {
    let minute = |s: &str, allow_24: bool| -> Option<u16> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        let ok = m < 60 && (h < 24 || (allow_24 && h == 24 && m == 0));
        ok.then_some(h * 60 + m)
    };
    let (a, b) = text.split_once('-')?;
    let window = HourWindow {
        start: minute(a, false)?,
        end: minute(b, true)? % (24 * 60),
    };
    (window.start != window.end || b.trim() == "24:00").then_some(window)
}

impl fmt::Display for AttributeTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeTest::Present => f.write_str("present"),
            AttributeTest::Equals(v) => write!(f, "== {v}"),
            AttributeTest::NotEquals(v) => write!(f, "!= {v}"),
            AttributeTest::Compare(op, n) => {
                let op = match op {
                    Comparison::Less => "<",
                    Comparison::LessOrEqual => "<=",
                    Comparison::Greater => ">",
                    Comparison::GreaterOrEqual => ">=",
                };
                write!(f, "{op} {n}")
            }
        }
    }
}

// ------------------------------------------------------------------------------ parsing

/// `[rule.when]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWhen {
    #[serde(default)]
    department: Vec<Spanned<String>>,
    #[serde(default)]
    source: Vec<Spanned<String>>,
    #[serde(default)]
    category: Vec<Spanned<String>>,
    #[serde(default)]
    place: Vec<Spanned<String>>,
    #[serde(default)]
    place_level: Vec<Spanned<String>>,
    #[serde(default)]
    hours: Vec<Spanned<String>>,
    #[serde(default)]
    weekdays: Vec<Spanned<String>>,
    #[serde(default)]
    min_priority: Option<Spanned<String>>,
    #[serde(default)]
    attributes: BTreeMap<String, Spanned<String>>,
}

impl Conditions {
    /// Checks every name against the city and the taxonomy; problems go to `problems`.
    pub fn build(
        raw: RawWhen,
        src: &SourceText<'_>,
        city: &City,
        taxonomy: &Taxonomy,
        problems: &mut Vec<Diagnostic>,
    ) -> Conditions {
        let mut c = Conditions::default();
        for d in raw.department {
            match Department::parse(d.get_ref()) {
                Some(dept) => c.departments |= bit_of(&Department::ALL, &dept),
                None => problems.push(src.error(
                    &d.span(),
                    format!(
                        "unknown department {:?} (known: {})",
                        d.get_ref(),
                        Department::ALL.map(Department::as_str).join(", ")
                    ),
                )),
            }
        }
        for s in raw.source {
            let text = s.get_ref().trim();
            let pattern = match text.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => SourcePattern::Prefix(prefix.to_owned()),
                None if !text.is_empty() && !text.contains('*') => {
                    SourcePattern::Exact(text.to_owned())
                }
                _ => {
                    problems.push(src.error(
                        &s.span(),
                        format!(
                            "source {:?}: give a source system name, optionally ending in * to match a prefix",
                            s.get_ref()
                        ),
                    ));
                    continue;
                }
            };
            c.sources.push(pattern);
        }
        for code in raw.category {
            let text = code.get_ref().as_str();
            let found = match text.len() {
                3 => taxonomy.major_index(text).map(CategoryMatch::Major),
                _ => taxonomy
                    .category(text)
                    .map(|cat| CategoryMatch::Category(cat.index)),
            };
            match found {
                Some(m) => c.categories.push(m),
                None => problems.push(src.error(
                    &code.span(),
                    format!(
                        "unknown category {text:?}: not a category or major class of {}",
                        taxonomy.file()
                    ),
                )),
            }
        }
        for code in raw.place {
            let text = code.get_ref().trim();
            let area = if text == city.district().code {
                Some(AreaRef::District)
            } else if let Some(s) = city.street(text) {
                Some(AreaRef::Street(s.index))
            } else if let Some(k) = city.community(text) {
                Some(AreaRef::Community(k.index))
            } else {
                city.grid(text).map(|g| AreaRef::Grid(g.index))
            };
            match area {
                Some(a) => c.places.push(a),
                None => problems.push(src.error(
                    &code.span(),
                    format!(
                        "unknown place code {text:?}: no district, street, community or grid of the city has it"
                    ),
                )),
            }
        }
        for level in raw.place_level {
            match PLACE_LEVELS
                .iter()
                .find(|&&l| place_level_name(l) == level.get_ref())
            {
                Some(l) => c.place_levels |= bit_of(&PLACE_LEVELS, l),
                None => problems.push(src.error(
                    &level.span(),
                    format!(
                        "unknown place level {:?} (known: {})",
                        level.get_ref(),
                        PLACE_LEVELS.map(place_level_name).join(", ")
                    ),
                )),
            }
        }
        for h in raw.hours {
            match parse_hours(h.get_ref()) {
                Some(w) => c.hours.push(w),
                None => problems.push(src.error(
                    &h.span(),
                    format!(
                        "hours {:?}: expected \"HH:MM-HH:MM\" in China Standard Time, e.g. \"22:00-06:00\"",
                        h.get_ref()
                    ),
                )),
            }
        }
        for d in raw.weekdays {
            match WEEKDAYS.iter().position(|w| *w == d.get_ref()) {
                Some(i) => c.weekdays |= 1 << i,
                None => problems.push(src.error(
                    &d.span(),
                    format!(
                        "unknown weekday {:?} (known: {})",
                        d.get_ref(),
                        WEEKDAYS.join(", ")
                    ),
                )),
            }
        }
        if let Some(p) = raw.min_priority {
            match Priority::parse(p.get_ref()) {
                Some(p) => c.min_priority = Some(p),
                None => problems.push(src.error(
                    &p.span(),
                    format!(
                        "unknown priority {:?} (known: {})",
                        p.get_ref(),
                        Priority::known()
                    ),
                )),
            }
        }
        for (name, test) in raw.attributes {
            match AttributeTest::parse(test.get_ref()) {
                Ok(t) => c.attributes.push((name, t)),
                Err(why) => {
                    problems.push(src.error(&test.span(), format!("attribute {name}: {why}")))
                }
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_tests_read_as_documented() {
        let t = |s: &str| AttributeTest::parse(s).unwrap();
        assert!(t(">= 95").holds(Some("95")));
        assert!(!t(">= 95").holds(Some("94.9")));
        assert!(
            !t(">= 95").holds(Some("full")),
            "non-numeric never compares"
        );
        assert!(!t(">= 95").holds(None));
        assert!(t("<80").holds(Some(" 79 ")));
        assert!(t("市民举报").holds(Some("市民举报")));
        assert!(!t("市民举报").holds(Some("巡查上报")));
        assert!(t("!= 巡查上报").holds(None), "absent differs");
        assert!(t("== >5").holds(Some(">5")));
        assert!(t("*").holds(Some("")));
        assert!(!t("*").holds(None));
        assert!(AttributeTest::parse(">= lots").is_err());
        assert!(AttributeTest::parse("  ").is_err());
    }

    #[test]
    fn hour_windows_may_wrap_midnight() {
        let night = parse_hours("22:00-06:00").unwrap();
        assert!(night.contains(22 * 60));
        assert!(night.contains(3 * 60));
        assert!(!night.contains(6 * 60), "the end is exclusive");
        assert!(!night.contains(12 * 60));
        let day = parse_hours("08:30-17:30").unwrap();
        assert!(day.contains(8 * 60 + 30) && !day.contains(17 * 60 + 30));
        let all = parse_hours("00:00-24:00").unwrap();
        assert!(all.contains(0) && all.contains(1439));
        for bad in ["8-17", "25:00-06:00", "08:00-08:00", "08:60-09:00", "08:00"] {
            assert!(parse_hours(bad).is_none(), "{bad}");
        }
    }
}
