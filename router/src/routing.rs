//! Routing one civic event: category → place → first matching rule → 1+2+X units →
//! admission check, ending in a [`RoutingDecision`] with its explanation.
//!
//! Pure: the decision depends only on the event and the configuration. Rule conditions on
//! time read the event's `occurred_at` (China Standard Time), never the clock, so routing a
//! redelivered event again gives the same answer.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use hub_schemas::event::{CivicEvent, Department};
use serde::{Deserialize, Serialize};

use crate::city::{City, Community, Unit};
use crate::config::RoutingConfig;
use crate::dedup::MergeCandidate;
use crate::explanation::{AdmissionCheck, Explanation};
use crate::place::{Located, PlaceMethod, PointLookup};
use crate::priority::Priority;
use crate::responsibility::{self, assigned};
use crate::rules::{Action, Facts, Role, Rule};
use crate::task::NewTask;
use crate::taxonomy::{Category, CategoryRef, Unmapped};

/// Attribute a source may set to give the event's priority (`low` … `emergency`); when it
/// is absent or unreadable, the category's default applies.
pub const PRIORITY_ATTRIBUTE: &str = "priority";

/// Routes events with one configuration. A reload builds a new `Router` and swaps it in
/// whole (e.g. behind an `Arc`), so a decision never mixes two configurations.
#[derive(Debug, Clone)]
pub struct Router {
    config: RoutingConfig,
}

/// What becomes of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RoutingDecision {
    /// Create the task and dispatch it to its lead unit in the community.
    Dispatch(Box<NewTask>),
    /// Create the task for a triage desk (street, district) or city triage (no lead unit):
    /// a rule said so, the event lies in no community, or the community has no unit for it.
    Triage(Box<NewTask>),
    /// The community has not admitted this category from this department: the department
    /// keeps the case. No task; the community never sees it.
    ReturnToDepartment(Box<Returned>),
    /// A rule said this event needs no task.
    Suppressed(Box<Suppressed>),
}

/// An event going back to its department (准入制).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Returned {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category: CategoryRef,
    pub community_code: String,
    /// The admission reason, for the department.
    pub reason: String,
    pub explanation: Explanation,
    pub decided_at: DateTime<Utc>,
}

/// An event a rule suppressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suppressed {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    /// The community the event was placed in, if any.
    pub community_code: Option<String>,
    pub rule_id: String,
    pub explanation: Explanation,
    pub decided_at: DateTime<Utc>,
}

impl RoutingDecision {
    /// `dispatch`, `triage`, `return_to_department` or `suppressed` (also the serialized tag;
    /// fit for metric labels).
    pub fn outcome(&self) -> &'static str {
        match self {
            RoutingDecision::Dispatch(_) => "dispatch",
            RoutingDecision::Triage(_) => "triage",
            RoutingDecision::ReturnToDepartment(_) => "return_to_department",
            RoutingDecision::Suppressed(_) => "suppressed",
        }
    }

    pub fn explanation(&self) -> &Explanation {
        match self {
            RoutingDecision::Dispatch(t) | RoutingDecision::Triage(t) => &t.explanation,
            RoutingDecision::ReturnToDepartment(r) => &r.explanation,
            RoutingDecision::Suppressed(s) => &s.explanation,
        }
    }

    /// The task to create, for `Dispatch` and `Triage`.
    pub fn task(&self) -> Option<&NewTask> {
        match self {
            RoutingDecision::Dispatch(t) | RoutingDecision::Triage(t) => Some(t),
            _ => None,
        }
    }

    pub fn into_task(self) -> Option<NewTask> {
        match self {
            RoutingDecision::Dispatch(t) | RoutingDecision::Triage(t) => Some(*t),
            _ => None,
        }
    }
}

/// The decision before anything is written out (no allocation): what `hub bench route` times
/// and what a replay of many events compares.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub category: &'a Category,
    pub located: Located<'a>,
    pub rule: &'a Rule,
    pub priority: Priority,
    pub outcome: Outcome<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// Community and lead unit by position (community in the city, unit in the community).
    Dispatch {
        community: usize,
        lead: usize,
        /// The rule's lead roles, and the position of the one taken (0: its first choice).
        roles: &'a [Role],
        choice: usize,
        co_roles: &'a [Role],
    },
    Triage {
        desk: Option<&'a Unit>,
        why: TriageWhy,
    },
    NotAdmitted {
        community: usize,
    },
    Suppressed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriageWhy {
    /// The rule sends it to triage.
    Rule,
    /// Placed above community level: no community can own it.
    NoCommunity,
    /// The community has no unit for any of the rule's lead roles.
    NoLeadUnit,
}

impl Router {
    pub fn new(config: RoutingConfig) -> Self {
        Router { config }
    }

    pub fn config(&self) -> &RoutingConfig {
        &self.config
    }

    pub fn city(&self) -> &City {
        self.config.city()
    }

    /// Decides where `event` goes. `now` is the decision time recorded on the result (when
    /// the task is created and dispatched). An event whose category code the taxonomy does
    /// not map cannot be routed: the error says why, for the dead-letter queue.
    pub fn route(
        &self,
        event: &CivicEvent,
        now: DateTime<Utc>,
    ) -> Result<RoutingDecision, Unmapped> {
        let d = self.decide(event, PointLookup::Index)?;
        let city = self.city();
        let place = city.resolved(&d.located, &event.location);
        let mut explanation = Explanation {
            place_method: place.method,
            place_level: place.level,
            matched_area: place.matched_area.clone(),
            place_detail: place_detail(event, &place),
            category: Some(d.category.to_ref()),
            category_detail: self.category_detail(event, d.category),
            rule_id: d.rule.id.clone(),
            rules_version: self.config.version().to_owned(),
            rule_detail: rule_detail(d.rule),
            assignment_detail: String::new(),
            admission: None,
            merged_into: None,
        };
        let sla_policy = d.rule.sla.clone().or_else(|| d.category.sla.clone());
        let task = |lead: Option<&Unit>, co: Vec<&Unit>, explanation: Explanation| NewTask {
            task_id: NewTask::derive_id(&event.event_id),
            event_id: event.event_id.clone(),
            source_system: event.source_system.clone(),
            source_id: event.source_id.clone(),
            department: event.department,
            category_code: event.category_code.clone(),
            category_name: event.category_name.clone(),
            category: d.category.to_ref(),
            priority: d.priority,
            sla_policy: sla_policy.clone(),
            description: event.description.clone(),
            location: event.location.clone(),
            occurred_at: event.occurred_at,
            received_at: event.received_at,
            place: place.clone(),
            lead_unit: lead.map(assigned),
            co_handlers: co.into_iter().map(assigned).collect(),
            explanation,
            rules_version: self.config.version().to_owned(),
            created_at: now,
        };
        Ok(match d.outcome {
            Outcome::Dispatch {
                community,
                lead,
                roles,
                choice,
                co_roles,
            } => {
                let community = &city.communities()[community];
                let lead = &community.units()[lead];
                let (co, missing) =
                    responsibility::co_handlers(community, co_roles, event.department, lead);
                explanation.assignment_detail =
                    assignment_detail(community, roles, choice, lead, &co, &missing);
                explanation.admission = Some(self.config.admission().check(
                    community,
                    event.department,
                    d.category,
                ));
                RoutingDecision::Dispatch(Box::new(task(Some(lead), co, explanation)))
            }
            Outcome::Triage { desk, why } => {
                explanation.assignment_detail = triage_detail(&d, desk, why);
                RoutingDecision::Triage(Box::new(task(desk, Vec::new(), explanation)))
            }
            Outcome::NotAdmitted { community } => {
                let community = &city.communities()[community];
                let AdmissionCheck { reason, .. } =
                    self.config
                        .admission()
                        .check(community, event.department, d.category);
                explanation.assignment_detail =
                    format!("not dispatched: {} has not admitted it", community.name);
                explanation.admission = Some(AdmissionCheck {
                    admitted: false,
                    reason: reason.clone(),
                });
                RoutingDecision::ReturnToDepartment(Box::new(Returned {
                    event_id: event.event_id.clone(),
                    source_system: event.source_system.clone(),
                    source_id: event.source_id.clone(),
                    department: event.department,
                    category: d.category.to_ref(),
                    community_code: community.code.clone(),
                    reason,
                    explanation,
                    decided_at: now,
                }))
            }
            Outcome::Suppressed => {
                explanation.assignment_detail = "suppressed: no task is created".to_owned();
                RoutingDecision::Suppressed(Box::new(Suppressed {
                    event_id: event.event_id.clone(),
                    source_system: event.source_system.clone(),
                    source_id: event.source_id.clone(),
                    department: event.department,
                    community_code: place.community_code.clone(),
                    rule_id: d.rule.id.clone(),
                    explanation,
                    decided_at: now,
                }))
            }
        })
    }

    /// What duplicate detection compares for a new task: `None` when its category group is
    /// never merged or the task has no point to measure from.
    pub fn merge_candidate(&self, task: &NewTask) -> Option<MergeCandidate> {
        let taxonomy = self.config.taxonomy();
        let category = taxonomy.category(&task.category.code)?;
        let rule = taxonomy.group_of(category).merge?;
        Some(MergeCandidate {
            task_id: task.task_id.clone(),
            group: category.group.clone(),
            point: task.place.point?,
            occurred_at: task.occurred_at,
            radius_m: rule.radius_m,
            window: rule.window,
        })
    }

    /// The decision core: no allocation on the way to an answer.
    pub fn decide(
        &self,
        event: &CivicEvent,
        lookup: PointLookup,
    ) -> Result<Decision<'_>, Unmapped> {
        let category = self
            .config
            .taxonomy()
            .classify(event.department, &event.category_code)?;
        let city = self.city();
        let located = city.locate_with(&event.location, lookup);
        let priority = event
            .attributes
            .get(PRIORITY_ATTRIBUTE)
            .and_then(|p| Priority::parse(p.trim()))
            .unwrap_or(category.priority);
        let (minute_of_day, weekday) = china_time(event.occurred_at);
        let facts = Facts {
            department: event.department,
            source_system: &event.source_system,
            category,
            located: &located,
            minute_of_day,
            weekday,
            priority,
            attributes: &event.attributes,
        };
        let rule = self.config.rules().first_match(&facts);
        let triage = |why| Outcome::Triage {
            desk: responsibility::triage_desk(city, &located),
            why,
        };
        let outcome = match (&rule.action, located.positions.community) {
            (Action::Suppress, _) => Outcome::Suppressed,
            (Action::Triage, _) => triage(TriageWhy::Rule),
            (Action::Dispatch { .. }, None) => triage(TriageWhy::NoCommunity),
            (
                Action::Dispatch {
                    lead: roles,
                    co_handlers,
                },
                Some(community),
            ) => match self.config.units().lead(community, roles, event.department) {
                None => triage(TriageWhy::NoLeadUnit),
                Some(_)
                    if !self.config.admission().admits_at(
                        community,
                        event.department,
                        category,
                    ) =>
                {
                    Outcome::NotAdmitted { community }
                }
                Some((lead, choice)) => Outcome::Dispatch {
                    community,
                    lead,
                    roles,
                    choice,
                    co_roles: co_handlers,
                },
            },
        };
        Ok(Decision {
            category,
            located,
            rule,
            priority: rule.priority.unwrap_or(priority),
            outcome,
        })
    }

    fn category_detail(&self, event: &CivicEvent, category: &Category) -> String {
        let taxonomy = self.config.taxonomy();
        let major = taxonomy.major_of(category);
        let own_name = event
            .category_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        format!(
            "{} code {}{own_name} → {} {} (major class {} {}, group {})",
            event.department,
            event.category_code,
            category.code,
            category.name,
            major.code,
            major.name,
            category.group
        )
    }
}

/// Minute of the day and weekday (0 = Monday) in China Standard Time (UTC+8, no DST).
fn china_time(t: DateTime<Utc>) -> (u16, u8) {
    let local = t.timestamp() + 8 * 3600;
    let minute = local.rem_euclid(86_400) / 60;
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    let weekday = (local.div_euclid(86_400) + 3).rem_euclid(7);
    (minute as u16, weekday as u8)
}

fn place_detail(event: &CivicEvent, place: &crate::place::ResolvedPlace) -> String {
    match place.method {
        PlaceMethod::Point => match event.location.point {
            Some(p) => format!(
                "point ({:.6}, {:.6}) inside {}",
                p.lon, p.lat, place.matched_area
            ),
            None => place.matched_area.clone(),
        },
        PlaceMethod::GridCode => format!(
            "grid code {} names {}",
            event.location.grid_code.as_deref().unwrap_or_default(),
            place.matched_area
        ),
        PlaceMethod::Address => format!(
            "address `{}` found in the gazetteer: {}",
            event.location.address.as_deref().unwrap_or_default(),
            place.matched_area
        ),
        PlaceMethod::Unplaced => format!("no usable location: {}", place.matched_area),
    }
}

fn rule_detail(rule: &Rule) -> String {
    match &rule.description {
        Some(d) => format!("{}: {d}", rule.location()),
        None => rule.location(),
    }
}

fn unit_label(u: &Unit) -> String {
    format!("{} ({})", u.name, u.id)
}

fn assignment_detail(
    community: &Community,
    roles: &[Role],
    choice: usize,
    lead: &Unit,
    co: &[&Unit],
    missing: &[Role],
) -> String {
    let mut s = String::new();
    for skipped in &roles[..choice] {
        let _ = write!(s, "lead {skipped}: none in {}; ", community.name);
    }
    let _ = write!(s, "lead {} → {}", roles[choice], unit_label(lead));
    for u in co {
        let _ = write!(s, "; co-handler {} → {}", u.role, unit_label(u));
    }
    for role in missing {
        let _ = write!(s, "; co-handler {role}: none in {}", community.name);
    }
    s
}

fn triage_detail(d: &Decision<'_>, desk: Option<&Unit>, why: TriageWhy) -> String {
    let owner = desk.map_or_else(
        || "city triage (no desk of the city contains it)".to_owned(),
        unit_label,
    );
    let why = match why {
        TriageWhy::Rule => "the rule sends it to triage".to_owned(),
        TriageWhy::NoCommunity => "placed in no community".to_owned(),
        TriageWhy::NoLeadUnit => {
            let community = d.located.community.map_or("", |c| c.name.as_str());
            match &d.rule.action {
                Action::Dispatch { lead, .. } => format!(
                    "{community} has no unit for lead [{}]",
                    lead.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => format!("{community} has no lead unit"),
            }
        }
    };
    format!("{why}; the level above owns it (属地兜底): {owner}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn china_time_is_utc_plus_eight() {
        // 2024-06-02 23:30 UTC is Monday 2024-06-03 07:30 in Beijing.
        let t = Utc.with_ymd_and_hms(2024, 6, 2, 23, 30, 0).unwrap();
        assert_eq!(china_time(t), (7 * 60 + 30, 0));
        // 2024-06-09 15:59 UTC is Sunday 23:59.
        let t = Utc.with_ymd_and_hms(2024, 6, 9, 15, 59, 0).unwrap();
        assert_eq!(china_time(t), (23 * 60 + 59, 6));
        let t = Utc.with_ymd_and_hms(1969, 12, 31, 16, 0, 0).unwrap();
        assert_eq!(china_time(t), (0, 3), "1970-01-01 00:00 CST, a Thursday");
    }
}
