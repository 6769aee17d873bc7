//! Responsibility rules (`config/rules/*.toml`): an ordered list, first match wins, ending
//! in a catch-all. Files are read in name order (`10-police.toml` before
//! `20-urban-management.toml`) and rules in file order.
//!
//! ```toml
//! [[rule]]
//! id = "sanitation.bin-full"                 # unique across all files
//! description = "A bin sensor at 95% or more is urgent"
//! lead = ["sanitation_team"]                 # 1+2+X roles, first one the community has
//! co_handlers = ["property_company"]         # optional; skipped where missing
//! priority = "urgent"                        # optional; else the event's priority
//! sla = "exposed_garbage"                    # optional; else the category's
//! [rule.when]                                # see `condition` for every field
//! department = ["sanitation"]
//! category = ["E0103"]
//! attributes = { fillLevel = ">= 95" }
//! ```
//!
//! Instead of `lead`, a rule may say `triage = true` (the triage desk of the level above
//! takes it: the community's street, else the district) or `suppress = true` (no task: for
//! noise such as a bin sensor below its threshold). The role `department_unit` means "the
//! community member answering to the event's department", e.g. the police station for
//! police events.
//!
//! Why not CEL (the issue suggests the `cel` crate, 0.15 on crates.io): it interprets an
//! expression over a context of dynamic values built for each evaluation, where routing
//! decides over a million events a second on one core (these typed conditions, compiled
//! to bit masks and indices at load, leave most of that budget to place resolution); CEL
//! names cannot be checked against the city and taxonomy until an event arrives, whereas
//! every name here is checked by `hub rules check` with file and line; and the crate needs
//! Rust 1.86 (the workspace promises 1.85) and an ANTLR runtime. The conditions below cover
//! what the issue asks for: category, department, source, place, time, priority,
//! attributes.

pub(crate) mod condition;

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use hub_schemas::event::Department;

use crate::city::{City, Community, UnitRole};
use crate::config::ConfigFile;
use crate::diagnostic::{Diagnostic, SourceText};
use crate::priority::Priority;
use crate::taxonomy::Taxonomy;

pub(crate) use condition::Facts;
use condition::{Conditions, RawWhen};

/// A role a rule names: a 1+2+X role, or the member tied to the event's department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Unit(UnitRole),
    /// `department_unit`: the community's unit whose `department` is the event's.
    DepartmentUnit,
}

impl Role {
    fn parse(s: &str) -> Option<Role> {
        if s == "department_unit" {
            Some(Role::DepartmentUnit)
        } else {
            UnitRole::parse(s).map(Role::Unit)
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Unit(r) => f.write_str(r.as_str()),
            Role::DepartmentUnit => f.write_str("department_unit"),
        }
    }
}

/// What a matching rule does with the event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Dispatch to the first `lead` role the community has; `co_handlers` help.
    Dispatch {
        lead: Vec<Role>,
        co_handlers: Vec<Role>,
    },
    /// To the triage desk of the level above (属地兜底).
    Triage,
    /// No task at all.
    Suppress,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    pub action: Action,
    pub priority: Option<Priority>,
    pub sla: Option<String>,
    /// Where the rule is written, for explanations and diagnostics.
    pub file: String,
    pub line: usize,
    pub(crate) when: Conditions,
}

impl Rule {
    /// `file:line`.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// The loaded, validated rules, in order; the last one matches every event.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Per (department, category): positions of the rules (catch-all excluded) whose
    /// department and category conditions can hold, in order — most rules never need a look.
    candidates: Vec<Vec<u32>>,
    categories: usize,
}

impl RuleSet {
    /// Parses and validates rules files, in the order given, against the city and taxonomy.
    /// Returns the rules with warnings, or every problem found.
    pub fn parse(
        files: &[ConfigFile],
        city: &City,
        taxonomy: &Taxonomy,
    ) -> Result<(RuleSet, Vec<Diagnostic>), Vec<Diagnostic>> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for file in files {
            let src = SourceText::new(&file.name, &file.text);
            let raw: RawFile = match src.parse() {
                Ok(raw) => raw,
                Err(d) => {
                    problems.push(d);
                    continue;
                }
            };
            if raw.rule.is_empty() {
                warnings.push(Diagnostic::warning(
                    &file.name,
                    None,
                    "no [[rule]] in this file",
                ));
            }
            for raw_rule in raw.rule {
                let line = src.line_of(raw_rule.span().start);
                let before = problems.len();
                let rule = build_rule(
                    raw_rule.into_inner(),
                    &src,
                    line,
                    city,
                    taxonomy,
                    &mut problems,
                );
                if let Some(first) = ids.get(&rule.id) {
                    problems.push(Diagnostic::error(
                        &file.name,
                        Some(line),
                        format!("rule id {:?} is used twice (first at {first})", rule.id),
                    ));
                    continue;
                }
                ids.insert(rule.id.clone(), rule.location());
                if problems.len() == before {
                    check_roles(&rule, city, &mut problems, &mut warnings);
                }
                rules.push(rule);
            }
        }
        check_order(&rules, files, &mut problems);
        if problems.is_empty() {
            let categories = taxonomy.categories().len();
            let mut candidates = Vec::with_capacity(Department::ALL.len() * categories);
            for d in Department::ALL {
                for c in taxonomy.categories() {
                    candidates.push(
                        (0..rules.len().saturating_sub(1))
                            .filter(|&i| rules[i].when.can_match(d, c))
                            .map(|i| i as u32)
                            .collect(),
                    );
                }
            }
            Ok((
                RuleSet {
                    rules,
                    candidates,
                    categories,
                },
                warnings,
            ))
        } else {
            Err(problems)
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first rule matching; validation guarantees the last one matches everything.
    pub(crate) fn first_match(&self, facts: &Facts<'_>) -> &Rule {
        let department = Department::ALL
            .iter()
            .position(|&d| d == facts.department)
            .unwrap_or_default();
        let key = department * self.categories + facts.category.index;
        self.candidates
            .get(key)
            .into_iter()
            .flatten()
            .map(|&i| &self.rules[i as usize])
            .find(|r| r.when.matches(facts))
            .unwrap_or(&self.rules[self.rules.len() - 1])
    }
}

fn build_rule(
    raw: RawRule,
    src: &SourceText<'_>,
    line: usize,
    city: &City,
    taxonomy: &Taxonomy,
    problems: &mut Vec<Diagnostic>,
) -> Rule {
    let id = raw.id.get_ref().trim().to_owned();
    let id_ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !id_ok {
        problems.push(src.error(
            &raw.id.span(),
            format!("rule id {id:?} must be lower-case letters, digits, '.', '_' or '-'"),
        ));
    }
    let at = |span: &std::ops::Range<usize>, message: String| {
        src.error(span, format!("rule {id}: {message}"))
    };
    let when = raw
        .when
        .map(|w| Conditions::build(w, src, city, taxonomy, problems))
        .unwrap_or_default();
    let roles = |list: Option<Spanned<Vec<Spanned<String>>>>,
                 what: &str,
                 problems: &mut Vec<Diagnostic>| {
        let Some(list) = list else {
            return (Vec::new(), None);
        };
        let span = list.span();
        let roles = list
            .into_inner()
            .into_iter()
            .filter_map(|r| {
                let role = Role::parse(r.get_ref());
                if role.is_none() {
                    problems.push(at(
                        &r.span(),
                        format!(
                            "unknown {what} role {:?} (known: department_unit, {})",
                            r.get_ref(),
                            UnitRole::ALL.map(UnitRole::as_str).join(", ")
                        ),
                    ));
                }
                role
            })
            .collect::<Vec<_>>();
        (roles, Some(span))
    };
    let empty_lead = raw.lead.as_ref().is_some_and(|l| l.get_ref().is_empty());
    let (lead, lead_span) = roles(raw.lead, "lead", problems);
    let (co_handlers, co_span) = roles(raw.co_handlers, "co-handler", problems);
    let suppress = raw.suppress.as_ref().is_some_and(|s| *s.get_ref());
    let triage = raw.triage.as_ref().is_some_and(|s| *s.get_ref());
    let chosen = usize::from(lead_span.is_some()) + usize::from(suppress) + usize::from(triage);
    let rule_span = raw.id.span();
    let action = match (lead_span, suppress, triage) {
        _ if chosen != 1 => {
            problems.push(at(
                &rule_span,
                "give exactly one of `lead = [...]`, `triage = true` or `suppress = true`".into(),
            ));
            Action::Suppress
        }
        (Some(span), ..) => {
            if empty_lead {
                problems.push(at(&span, "lead lists no role".into()));
            }
            Action::Dispatch { lead, co_handlers }
        }
        (None, true, _) => Action::Suppress,
        _ => Action::Triage,
    };
    if !matches!(action, Action::Dispatch { .. }) {
        if let Some(span) = co_span {
            problems.push(at(&span, "co_handlers only go with `lead`".into()));
        }
    }
    let priority = raw.priority.and_then(|p| {
        let parsed = Priority::parse(p.get_ref());
        if parsed.is_none() {
            problems.push(at(
                &p.span(),
                format!(
                    "unknown priority {:?} (known: {})",
                    p.get_ref(),
                    Priority::known()
                ),
            ));
        }
        parsed
    });
    let sla = raw.sla.map(|s| {
        if s.get_ref().trim().is_empty() {
            problems.push(at(&s.span(), "empty SLA policy name".into()));
        }
        s.into_inner()
    });
    if action == Action::Suppress && (priority.is_some() || sla.is_some()) && chosen == 1 {
        problems.push(at(
            &rule_span,
            "a suppressing rule creates no task: drop its priority and sla".into(),
        ));
    }
    Rule {
        id,
        description: raw.description,
        action,
        priority,
        sla,
        file: src.file.to_owned(),
        line,
        when,
    }
}

/// Every community a dispatching rule can reach must have a unit for one of its lead roles
/// (an error: the event would have no owner there).
fn check_roles(
    rule: &Rule,
    city: &City,
    problems: &mut Vec<Diagnostic>,
    warnings: &mut Vec<Diagnostic>,
) {
    let Action::Dispatch { lead, co_handlers } = &rule.action else {
        return;
    };
    let communities = rule.when.reachable_communities(city);
    let departments: Vec<_> = rule.when.departments().collect();
    let has = |c: &Community, role: &Role, d: Department| match role {
        Role::Unit(r) => c.units_with_role(*r).next().is_some(),
        Role::DepartmentUnit => c.units().iter().any(|u| u.department == Some(d)),
    };
    // Every department the rule takes must find a lead, and a co-handler to be of use.
    let has_all = |c: &Community, role: &Role| departments.iter().all(|&d| has(c, role, d));
    let list = |roles: &[Role]| {
        roles
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let name = |missing: &[&Community]| {
        let shown: Vec<String> = missing
            .iter()
            .take(3)
            .map(|c| format!("{} ({})", c.code, c.name))
            .collect();
        let more = missing.len().saturating_sub(3);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let missing: Vec<_> = communities
        .iter()
        .copied()
        .filter(|c| {
            !departments
                .iter()
                .all(|&d| lead.iter().any(|r| has(c, r, d)))
        })
        .collect();
    if !missing.is_empty() {
        problems.push(Diagnostic::error(
            &rule.file,
            Some(rule.line),
            format!(
                "rule {}: no unit for lead [{}] in {} community(ies) the rule can reach: {}; add a fallback role such as \"workstation\"",
                rule.id,
                list(lead),
                missing.len(),
                name(&missing)
            ),
        ));
    }
    // A co-handler missing in some communities is normal (old neighbourhoods have no
    // property company) and is skipped there; missing everywhere, it is likely a mistake.
    for role in co_handlers {
        if !communities.is_empty() && communities.iter().all(|c| !has_all(c, role)) {
            warnings.push(Diagnostic::warning(
                &rule.file,
                Some(rule.line),
                format!(
                    "rule {}: no community the rule can reach has a unit for co-handler {role}; it never helps",
                    rule.id
                ),
            ));
        }
    }
}

/// The last rule must match everything (and not suppress it: nothing silently dropped);
/// no earlier rule may, or the rules after it would never apply.
fn check_order(rules: &[Rule], files: &[ConfigFile], problems: &mut Vec<Diagnostic>) {
    let Some(last) = rules.last() else {
        let file = files.first().map_or("rules", |f| f.name.as_str());
        problems.push(Diagnostic::error(
            file,
            None,
            "no rules: a catch-all rule at least is required",
        ));
        return;
    };
    for r in &rules[..rules.len() - 1] {
        if r.when.is_empty() {
            problems.push(Diagnostic::error(
                &r.file,
                Some(r.line),
                format!(
                    "rule {} has no conditions, so it matches every event and the rules after it never apply; only the last rule may be a catch-all",
                    r.id
                ),
            ));
        }
    }
    if !last.when.is_empty() {
        problems.push(Diagnostic::error(
            &last.file,
            Some(last.line),
            format!(
                "the last rule ({}) has conditions; end with a catch-all rule without [rule.when] so that every event has an owner",
                last.id
            ),
        ));
    } else if last.action == Action::Suppress {
        problems.push(Diagnostic::error(
            &last.file,
            Some(last.line),
            format!(
                "the catch-all rule ({}) suppresses: events no other rule matches would vanish; give it a lead or triage",
                last.id
            ),
        ));
    }
}

// ------------------------------------------------------------------------------ raw file

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    when: Option<RawWhen>,
    #[serde(default)]
    lead: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    co_handlers: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    priority: Option<Spanned<String>>,
    #[serde(default)]
    sla: Option<Spanned<String>>,
    #[serde(default)]
    suppress: Option<Spanned<bool>>,
    #[serde(default)]
    triage: Option<Spanned<bool>>,
}
