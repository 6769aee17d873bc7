//! Who owns a placed event under 1+2+X: turning the roles a rule names into a community's
//! concrete units, and finding the owner of last resort (属地兜底) when no community can
//! take the event.

use hub_schemas::event::Department;

use crate::city::{City, Community, Unit, UnitRole};
use crate::place::Located;
use crate::rules::Role;
use crate::task::AssignedUnit;

/// The unit playing `role` in `community` for an event of `department`.
pub fn unit_for(community: &Community, role: Role, department: Department) -> Option<&Unit> {
    match role {
        Role::Unit(r) => community.units_with_role(r).next(),
        Role::DepartmentUnit => community
            .units()
            .iter()
            .find(|u| u.department == Some(department)),
    }
}

/// The first of `roles` the community has, with its position in the list (0 = the rule's
/// first choice).
pub fn lead_unit<'a>(
    community: &'a Community,
    roles: &[Role],
    department: Department,
) -> Option<(&'a Unit, usize)> {
    roles
        .iter()
        .enumerate()
        .find_map(|(i, &role)| unit_for(community, role, department).map(|u| (u, i)))
}

/// The co-handlers a community has for `roles`, without the lead and without repeats, and
/// the roles it has no unit for.
pub fn co_handlers<'a>(
    community: &'a Community,
    roles: &[Role],
    department: Department,
    lead: &Unit,
) -> (Vec<&'a Unit>, Vec<Role>) {
    let mut found: Vec<&Unit> = Vec::new();
    let mut missing = Vec::new();
    for &role in roles {
        match unit_for(community, role, department) {
            Some(u) if u.id != lead.id && !found.iter().any(|f| f.id == u.id) => found.push(u),
            Some(_) => {}
            None => missing.push(role),
        }
    }
    (found, missing)
}

/// The triage desk of the level above the place (属地兜底): the street's for anything in a
/// street, else the district's for anything in the district; `None` for events outside the
/// city, which wait in city triage.
pub fn triage_desk<'a>(city: &'a City, located: &Located<'a>) -> Option<&'a Unit> {
    match (located.street, located.level) {
        (Some(street), _) => Some(street.triage_desk()),
        (None, crate::place::PlaceLevel::Triage) => None,
        (None, _) => Some(city.district().triage_desk()),
    }
}

/// Per community, where in its units the first unit of each role and each department's
/// unit sit: routing finds a lead from this small table without reading the units.
#[derive(Debug, Clone)]
pub(crate) struct UnitTable {
    slots: Vec<[u16; SLOTS]>,
}

const SLOTS: usize = UnitRole::ALL.len() + Department::ALL.len();
const NONE: u16 = u16::MAX;

impl UnitTable {
    pub fn new(city: &City) -> UnitTable {
        let slots = city
            .communities()
            .iter()
            .map(|c| {
                let mut row = [NONE; SLOTS];
                // Reversed, so the first unit of a role is the one that stays.
                for (i, u) in c.units().iter().enumerate().rev() {
                    let Ok(i) = u16::try_from(i) else { continue };
                    row[role_slot(u.role)] = i;
                    if let Some(d) = u.department {
                        row[department_slot(d)] = i;
                    }
                }
                row
            })
            .collect();
        UnitTable { slots }
    }

    /// Position in the community's units of the unit playing `role`.
    pub fn position(&self, community: usize, role: Role, department: Department) -> Option<usize> {
        let slot = match role {
            Role::Unit(r) => role_slot(r),
            Role::DepartmentUnit => department_slot(department),
        };
        let at = self.slots[community][slot];
        (at != NONE).then_some(usize::from(at))
    }

    /// [`lead_unit`] by positions: the first of `roles` the community has, as (unit
    /// position in the community, position in `roles`).
    pub fn lead(
        &self,
        community: usize,
        roles: &[Role],
        department: Department,
    ) -> Option<(usize, usize)> {
        roles
            .iter()
            .enumerate()
            .find_map(|(i, &role)| self.position(community, role, department).map(|u| (u, i)))
    }
}

fn role_slot(role: UnitRole) -> usize {
    UnitRole::ALL
        .iter()
        .position(|&r| r == role)
        .unwrap_or_default()
}

fn department_slot(department: Department) -> usize {
    UnitRole::ALL.len()
        + Department::ALL
            .iter()
            .position(|&d| d == department)
            .unwrap_or_default()
}

pub fn assigned(unit: &Unit) -> AssignedUnit {
    AssignedUnit {
        unit_id: unit.id.clone(),
        role: unit.role,
        name: unit.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_table_finds_what_the_units_say() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/city");
        let city = City::load(&dir).unwrap();
        let table = UnitTable::new(&city);
        let roles: Vec<Role> = UnitRole::ALL
            .into_iter()
            .map(Role::Unit)
            .chain([Role::DepartmentUnit])
            .collect();
        for (c, community) in city.communities().iter().enumerate() {
            for d in Department::ALL {
                for role in &roles {
                    let by_table = table.position(c, *role, d).map(|i| &community.units()[i]);
                    assert_eq!(
                        by_table,
                        unit_for(community, *role, d),
                        "{} {role} {d}",
                        community.code
                    );
                }
                let by_table = table
                    .lead(c, &roles[3..], d)
                    .map(|(u, i)| (&community.units()[u], i));
                assert_eq!(by_table, lead_unit(community, &roles[3..], d));
            }
        }
    }
}
