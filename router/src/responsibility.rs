//! Who owns a placed event under 1+2+X: the lead unit and co-handlers.
//!
//! This is the built-in default: each department's work goes to the community member that
//! answers to that department, and what is not placed in a community goes to the triage desk
//! of the lowest level that contains it (属地兜底). Configurable rules replace it later; the
//! rule ids here name the default's branches so every task can say which one applied.

use hub_schemas::event::Department;

use crate::city::{City, Unit, UnitRole};
use crate::place::{PlaceLevel, ResolvedPlace};
use crate::task::AssignedUnit;

/// The version of the built-in default rules, recorded on every task routed with them.
pub const DEFAULT_RULES_VERSION: &str = "builtin-1";

#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// `None`: nothing in the city can own it; the task waits in city triage.
    pub lead: Option<AssignedUnit>,
    pub co_handlers: Vec<AssignedUnit>,
    pub rule_id: String,
}

/// The community member that takes a department's work by default.
pub fn default_lead_role(department: Department) -> UnitRole {
    match department {
        Department::Police => UnitRole::PoliceStation,
        Department::UrbanManagement => UnitRole::UrbanManagementSquad,
        Department::Sanitation => UnitRole::SanitationTeam,
        Department::CivilAffairs => UnitRole::ResidentsCommittee,
        Department::Residents => UnitRole::Workstation,
    }
}

pub fn assign(city: &City, place: &ResolvedPlace, department: Department) -> Assignment {
    match (place.level, place.community_code.as_deref()) {
        (PlaceLevel::Grid | PlaceLevel::Community, Some(community)) => {
            let role = default_lead_role(department);
            if let Some(unit) = city.community_units(community, role).first() {
                return Assignment {
                    lead: Some(assigned(unit)),
                    co_handlers: Vec::new(),
                    rule_id: format!("default.{}-to-{}", department.as_str(), role.as_str()),
                };
            }
            // A community without that member: its workstation takes the work.
            let workstation = city.community_units(community, UnitRole::Workstation);
            Assignment {
                lead: workstation.first().map(|u| assigned(u)),
                co_handlers: Vec::new(),
                rule_id: format!("default.no-{}-to-workstation", role.as_str()),
            }
        }
        _ => {
            let desk = place
                .street_code
                .as_deref()
                .and_then(|s| city.street(s))
                .map(|s| s.triage_desk())
                .or_else(|| {
                    place
                        .district_code
                        .as_ref()
                        .map(|_| city.district().triage_desk())
                });
            Assignment {
                lead: desk.map(assigned),
                co_handlers: Vec::new(),
                rule_id: if desk.is_some() {
                    "default.level-above-owns".into()
                } else {
                    "default.city-triage".into()
                },
            }
        }
    }
}

fn assigned(unit: &Unit) -> AssignedUnit {
    AssignedUnit {
        unit_id: unit.id.clone(),
        role: unit.role.as_str().to_owned(),
        name: unit.name.clone(),
    }
}
