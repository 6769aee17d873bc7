//! The hub's category taxonomy (`config/taxonomy.toml`): event (事件) and component (部件)
//! categories with GB/T 30428-style major/minor codes, the groups that duplicate detection
//! compares, and per department the mapping from that department's own codes.
//!
//! Codes are a kind letter, a 2-digit major class and a 2-digit minor class: `E0102` is
//! 事件 / 市容环境 / 暴露垃圾, `C0101` is 部件 / 公用设施 / 井盖. A major class is written
//! with its first three characters (`E01`) wherever a rule or admission list names a whole
//! class.
//!
//! ```toml
//! [[major]]
//! code = "E01"
//! name = "市容环境"
//!
//! [[group]]
//! id = "garbage"
//! name = "垃圾堆积与满溢"
//! merge = { radius_m = 80, window = "12h" }   # omit `merge`: never merged
//!
//! [[category]]
//! code = "E0102"
//! name = "暴露垃圾"
//! group = "garbage"
//! priority = "normal"          # optional; the default priority of its events
//! sla = "exposed_garbage"      # optional; the SLA policy unless a rule names another
//!
//! [departments.sanitation]     # the department's own code = taxonomy code
//! EXPOSED_GARBAGE = "E0102"
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::TimeDelta;
use hub_schemas::event::Department;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diagnostic::{Diagnostic, SourceText};
use crate::priority::Priority;

/// The usual file name inside the configuration directory.
pub const TAXONOMY_FILE: &str = "taxonomy.toml";

/// 事件 or 部件.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryKind {
    /// 事件: something that happened (garbage dumped, a dispute).
    Event,
    /// 部件: a piece of public equipment with a problem (a manhole cover, a street light).
    Component,
}

impl CategoryKind {
    fn from_letter(c: u8) -> Option<Self> {
        match c {
            b'E' => Some(CategoryKind::Event),
            b'C' => Some(CategoryKind::Component),
            _ => None,
        }
    }
}

/// A major class (大类), e.g. `E01` 市容环境.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MajorClass {
    pub code: String,
    pub name: String,
}

/// When two reports of a group are the same incident: within `radius_m` metres and
/// `window` of each other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeRule {
    pub radius_m: f64,
    pub window: TimeDelta,
}

/// Categories whose reports may describe one incident, e.g. exposed garbage and an
/// overflowing bin.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoryGroup {
    pub id: String,
    pub name: String,
    /// `None`: reports of this group are never merged (two thefts at one address are two
    /// cases).
    pub merge: Option<MergeRule>,
}

/// A minor category (小类).
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub code: String,
    pub name: String,
    pub kind: CategoryKind,
    /// Id of its group.
    pub group: String,
    /// Priority of its events unless the source says otherwise.
    pub priority: Priority,
    /// Default SLA policy name.
    pub sla: Option<String>,
    pub(crate) index: usize,
    pub(crate) major_index: usize,
    pub(crate) group_index: usize,
}

impl Category {
    /// The major class code, e.g. `E01` for `E0102`.
    pub fn major_code(&self) -> &str {
        &self.code[..3]
    }

    pub fn to_ref(&self) -> CategoryRef {
        CategoryRef {
            code: self.code.clone(),
            name: self.name.clone(),
            group: self.group.clone(),
        }
    }
}

/// A category as recorded on a task: taxonomy code, name and duplicate group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryRef {
    pub code: String,
    pub name: String,
    pub group: String,
}

/// A department code the taxonomy does not map: the event cannot be routed and goes to the
/// dead-letter queue with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{department} category code {code:?} is not mapped in the taxonomy \
     (add it under [departments.{department}] in taxonomy.toml)"
)]
pub struct Unmapped {
    pub department: Department,
    pub code: String,
}

/// The loaded, validated taxonomy.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    majors: Vec<MajorClass>,
    groups: Vec<CategoryGroup>,
    categories: Vec<Category>,
    by_code: HashMap<String, usize>,
    major_by_code: HashMap<String, usize>,
    /// Per department (in `Department::ALL` order): own code → category index.
    mappings: Vec<HashMap<String, usize, BuildHasherDefault<CodeHasher>>>,
    file: String,
}

fn department_slot(department: Department) -> usize {
    Department::ALL
        .iter()
        .position(|&d| d == department)
        .unwrap_or_default()
}

impl Taxonomy {
    /// Parses and validates `taxonomy.toml`; `file` names it in diagnostics. Warnings (a
    /// group no category uses, a department without mappings) come back with the taxonomy.
    pub fn parse(text: &str, file: &str) -> Result<(Taxonomy, Vec<Diagnostic>), Vec<Diagnostic>> {
        let src = SourceText::new(file, text);
        let raw: RawTaxonomy = src.parse().map_err(|d| vec![d])?;
        let mut problems = Vec::new();
        let mut warnings = Vec::new();

        let mut majors = Vec::new();
        let mut major_by_code = HashMap::new();
        for m in raw.majors {
            let span = m.span();
            let m = m.into_inner();
            if !is_code(&m.code, 3) {
                problems.push(src.error(
                    &span,
                    format!(
                        "major class code {:?} must be E or C followed by 2 digits, e.g. \"E01\"",
                        m.code
                    ),
                ));
                continue;
            }
            if major_by_code.insert(m.code.clone(), majors.len()).is_some() {
                problems.push(src.error(&span, format!("major class {} is defined twice", m.code)));
                continue;
            }
            majors.push(MajorClass {
                code: m.code,
                name: m.name,
            });
        }

        let mut groups = Vec::new();
        let mut group_by_id = HashMap::new();
        for g in raw.groups {
            let span = g.span();
            let g = g.into_inner();
            if !is_identifier(&g.id) {
                problems.push(src.error(
                    &span,
                    format!(
                        "group id {:?} must be lower-case letters, digits, '_' or '-'",
                        g.id
                    ),
                ));
                continue;
            }
            let merge = match g.merge {
                None => None,
                Some(m) => {
                    let span = m.span();
                    let m = m.into_inner();
                    let window = parse_window(m.window.get_ref())
                        .map_err(|why| src.error(&m.window.span(), why));
                    match window {
                        Err(d) => {
                            problems.push(d);
                            None
                        }
                        Ok(_) if !(m.radius_m.is_finite() && m.radius_m > 0.0) => {
                            problems.push(src.error(
                                &span,
                                format!(
                                    "group {}: merge radius_m must be a positive number of metres",
                                    g.id
                                ),
                            ));
                            None
                        }
                        Ok(window) => Some(MergeRule {
                            radius_m: m.radius_m,
                            window,
                        }),
                    }
                }
            };
            if group_by_id.insert(g.id.clone(), groups.len()).is_some() {
                problems.push(src.error(&span, format!("group {} is defined twice", g.id)));
                continue;
            }
            groups.push(CategoryGroup {
                id: g.id,
                name: g.name,
                merge,
            });
        }

        let mut categories: Vec<Category> = Vec::new();
        let mut by_code = HashMap::new();
        let mut group_used = vec![false; groups.len()];
        // Codes of categories refused above, so that mappings to them add no second error.
        let mut refused = HashSet::new();
        for c in raw.categories {
            let span = c.span();
            let c = c.into_inner();
            refused.insert(c.code.clone());
            if !is_code(&c.code, 5) {
                problems.push(src.error(
                    &span,
                    format!(
                        "category code {:?} must be E or C followed by 4 digits (major, minor), e.g. \"E0102\"",
                        c.code
                    ),
                ));
                continue;
            }
            let Some(&major_index) = major_by_code.get(&c.code[..3]) else {
                problems.push(src.error(
                    &span,
                    format!(
                        "category {}: its major class {} is not defined in [[major]]",
                        c.code,
                        &c.code[..3]
                    ),
                ));
                continue;
            };
            let Some(&group_index) = group_by_id.get(c.group.get_ref()) else {
                problems.push(src.error(
                    &c.group.span(),
                    format!(
                        "category {}: unknown group {:?} (define it in [[group]])",
                        c.code,
                        c.group.get_ref()
                    ),
                ));
                continue;
            };
            let priority = match &c.priority {
                None => Priority::default(),
                Some(p) => match Priority::parse(p.get_ref()) {
                    Some(p) => p,
                    None => {
                        problems.push(src.error(
                            &p.span(),
                            format!(
                                "category {}: unknown priority {:?} (known: {})",
                                c.code,
                                p.get_ref(),
                                Priority::known()
                            ),
                        ));
                        continue;
                    }
                },
            };
            if by_code.contains_key(&c.code) {
                problems.push(src.error(&span, format!("category {} is defined twice", c.code)));
                continue;
            }
            let kind =
                CategoryKind::from_letter(c.code.as_bytes()[0]).unwrap_or(CategoryKind::Event);
            group_used[group_index] = true;
            refused.remove(&c.code);
            by_code.insert(c.code.clone(), categories.len());
            categories.push(Category {
                index: categories.len(),
                code: c.code,
                name: c.name,
                kind,
                group: groups[group_index].id.clone(),
                priority,
                sla: c.sla,
                major_index,
                group_index,
            });
        }

        let mut mappings = vec![HashMap::default(); Department::ALL.len()];
        for (department, codes) in raw.departments {
            let Some(d) = Department::parse(department.get_ref()) else {
                problems.push(src.error(
                    &department.span(),
                    format!(
                        "unknown department {:?} (known: {})",
                        department.get_ref(),
                        Department::ALL.map(Department::as_str).join(", ")
                    ),
                ));
                continue;
            };
            let map = &mut mappings[department_slot(d)];
            for (own, target) in codes {
                if own.get_ref().trim().is_empty() {
                    problems.push(src.error(&own.span(), format!("{d}: empty department code")));
                    continue;
                }
                match by_code.get(target.get_ref()) {
                    Some(&i) => {
                        map.insert(own.into_inner(), i);
                    }
                    None if refused.contains(target.get_ref()) => {}
                    None => problems.push(src.error(
                        &target.span(),
                        format!(
                            "{d} code {:?} maps to unknown category {:?}",
                            own.get_ref(),
                            target.get_ref()
                        ),
                    )),
                }
            }
        }
        for d in Department::ALL {
            if mappings[department_slot(d)].is_empty() {
                warnings.push(Diagnostic::warning(
                    file,
                    None,
                    format!("no codes mapped for department {d}: every event it sends will be dead-lettered"),
                ));
            }
        }
        for (g, used) in groups.iter().zip(&group_used) {
            if !used {
                warnings.push(Diagnostic::warning(
                    file,
                    None,
                    format!("group {} has no categories", g.id),
                ));
            }
        }
        if categories.is_empty() && problems.is_empty() {
            problems.push(src.whole("no [[category]] defined"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok((
            Taxonomy {
                majors,
                groups,
                categories,
                by_code,
                major_by_code,
                mappings,
                file: file.to_owned(),
            },
            warnings,
        ))
    }

    /// The taxonomy category of a department's own code.
    pub fn classify(&self, department: Department, own_code: &str) -> Result<&Category, Unmapped> {
        self.mappings[department_slot(department)]
            .get(own_code)
            .map(|&i| &self.categories[i])
            .ok_or_else(|| Unmapped {
                department,
                code: own_code.to_owned(),
            })
    }

    pub fn category(&self, code: &str) -> Option<&Category> {
        self.by_code.get(code).map(|&i| &self.categories[i])
    }

    pub fn major(&self, code: &str) -> Option<&MajorClass> {
        self.major_by_code.get(code).map(|&i| &self.majors[i])
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn majors(&self) -> &[MajorClass] {
        &self.majors
    }

    pub fn groups(&self) -> &[CategoryGroup] {
        &self.groups
    }

    pub fn group_of(&self, category: &Category) -> &CategoryGroup {
        &self.groups[category.group_index]
    }

    pub fn major_of(&self, category: &Category) -> &MajorClass {
        &self.majors[category.major_index]
    }

    /// A department's own codes and the categories they map to, sorted by own code (for
    /// Open311 `GET /services` and for documentation).
    pub fn mappings(&self, department: Department) -> Vec<(&str, &Category)> {
        let mut out: Vec<_> = self.mappings[department_slot(department)]
            .iter()
            .map(|(own, &i)| (own.as_str(), &self.categories[i]))
            .collect();
        out.sort_by_key(|&(own, _)| own);
        out
    }

    /// The file the taxonomy was read from.
    pub fn file(&self) -> &str {
        &self.file
    }

    pub(crate) fn major_index(&self, code: &str) -> Option<usize> {
        self.major_by_code.get(code).copied()
    }
}

/// FNV-1a for the department-code maps, which every event consults: several times faster
/// than the default SipHash on short codes. Safe without SipHash's flooding defence: the
/// maps are built from configuration and never grow from input, so a hostile code can only
/// miss.
#[derive(Debug, Clone, Copy)]
struct CodeHasher(u64);

impl Default for CodeHasher {
    fn default() -> Self {
        CodeHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for CodeHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `E`/`C` then `len - 1` digits.
fn is_code(code: &str, len: usize) -> bool {
    let b = code.as_bytes();
    b.len() == len
        && CategoryKind::from_letter(b[0]).is_some()
        && b[1..].iter().all(u8::is_ascii_digit)
}

pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `30m`, `12h`, `7d`: a whole number of minutes, hours or days.
pub(crate) fn parse_window(s: &str) -> Result<TimeDelta, String> {
    let bad = || {
        format!("window {s:?} must be a whole number of minutes, hours or days, e.g. \"30m\", \"12h\", \"7d\"")
    };
    let s = s.trim();
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    let delta = match unit {
        'm' => TimeDelta::try_minutes(n),
        'h' => TimeDelta::try_hours(n),
        'd' => TimeDelta::try_days(n),
        _ => None,
    };
    delta.ok_or_else(bad)
}

impl fmt::Display for CategoryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.name)
    }
}

// ------------------------------------------------------------------------------ raw file

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    #[serde(default, rename = "major")]
    majors: Vec<Spanned<RawMajor>>,
    #[serde(default, rename = "group")]
    groups: Vec<Spanned<RawGroup>>,
    #[serde(default, rename = "category")]
    categories: Vec<Spanned<RawCategory>>,
    #[serde(default)]
    departments: BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMajor {
    code: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    id: String,
    name: String,
    #[serde(default)]
    merge: Option<Spanned<RawMerge>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMerge {
    radius_m: f64,
    window: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    code: String,
    name: String,
    group: Spanned<String>,
    #[serde(default)]
    priority: Option<Spanned<String>>,
    #[serde(default)]
    sla: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
[[major]]
code = "E01"
name = "市容环境"

[[group]]
id = "garbage"
name = "垃圾"
merge = { radius_m = 80, window = "12h" }

[[category]]
code = "E0102"
name = "暴露垃圾"
group = "garbage"

[departments.sanitation]
EXPOSED_GARBAGE = "E0102"
"#;

    fn errors(text: &str) -> Vec<String> {
        Taxonomy::parse(text, "taxonomy.toml")
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn classifies_department_codes() {
        let (t, warnings) = Taxonomy::parse(SMALL, "taxonomy.toml").unwrap();
        let c = t
            .classify(Department::Sanitation, "EXPOSED_GARBAGE")
            .unwrap();
        assert_eq!((c.code.as_str(), c.name.as_str()), ("E0102", "暴露垃圾"));
        assert_eq!(c.major_code(), "E01");
        assert_eq!(c.kind, CategoryKind::Event);
        assert_eq!(c.priority, Priority::Normal);
        assert_eq!(
            t.group_of(c).merge,
            Some(MergeRule {
                radius_m: 80.0,
                window: TimeDelta::hours(12)
            })
        );
        // Four departments map nothing here: each is worth a warning.
        assert_eq!(warnings.len(), 4, "{warnings:?}");
    }

    #[test]
    fn unmapped_codes_name_department_and_code() {
        let (t, _) = Taxonomy::parse(SMALL, "taxonomy.toml").unwrap();
        let e = t.classify(Department::Police, "0201").unwrap_err();
        assert_eq!(
            e.to_string(),
            "police category code \"0201\" is not mapped in the taxonomy (add it under [departments.police] in taxonomy.toml)"
        );
        // Codes are per department: sanitation's code means nothing to urban management.
        assert!(t
            .classify(Department::UrbanManagement, "EXPOSED_GARBAGE")
            .is_err());
    }

    #[test]
    fn errors_name_the_line_and_the_problem() {
        let text = SMALL.replace("group = \"garbage\"", "group = \"rubbish\"");
        assert_eq!(
            errors(&text),
            vec!["taxonomy.toml:14: category E0102: unknown group \"rubbish\" (define it in [[group]])"]
        );
        let text = SMALL.replace("EXPOSED_GARBAGE = \"E0102\"", "EXPOSED_GARBAGE = \"E0199\"");
        assert_eq!(
            errors(&text),
            vec!["taxonomy.toml:17: sanitation code \"EXPOSED_GARBAGE\" maps to unknown category \"E0199\""]
        );
        let text = SMALL.replace("[departments.sanitation]", "[departments.fire]");
        assert_eq!(
            errors(&text),
            vec!["taxonomy.toml:16: unknown department \"fire\" (known: police, urban_management, sanitation, civil_affairs, residents)"]
        );
        let text = SMALL.replace("\"12h\"", "\"12 hours\"");
        assert!(errors(&text)[0].starts_with("taxonomy.toml:9: window \"12 hours\""));
        let text = SMALL.replace("code = \"E0102\"", "code = \"E102\"");
        assert!(errors(&text)[0].starts_with("taxonomy.toml:11: category code \"E102\""));
        let text =
            format!("{SMALL}\n[[category]]\ncode = \"E0102\"\nname = \"x\"\ngroup = \"garbage\"\n");
        assert_eq!(
            errors(&text),
            vec!["taxonomy.toml:19: category E0102 is defined twice"]
        );
        let text = SMALL.replace(
            "name = \"暴露垃圾\"",
            "name = \"暴露垃圾\"\ncolour = \"red\"",
        );
        assert!(
            errors(&text)[0].contains("unknown field `colour`"),
            "{:?}",
            errors(&text)
        );
    }

    #[test]
    fn windows_are_minutes_hours_or_days() {
        assert_eq!(parse_window("30m"), Ok(TimeDelta::minutes(30)));
        assert_eq!(parse_window("7d"), Ok(TimeDelta::days(7)));
        assert!(parse_window("0h").is_err());
        assert!(parse_window("h").is_err());
        assert!(parse_window("5w").is_err());
        assert!(parse_window("").is_err());
        assert!(parse_window("3时").is_err());
    }
}
