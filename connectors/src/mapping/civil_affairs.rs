//! 民政 civil-affairs welfare case system.
//!
//! ```json
//! {"case_id": "MZ-2026-000123", "case_type": "ELDERLY_NO_CONTACT",
//!  "case_type_name": "独居老人失联", "updated_at": "2026-11-21 10:23:00",
//!  "grid_code": "510504001001002", "address": "...", "hours_without_contact": 52,
//!  "person": {"name": "...", "id_number": "...", "phone": "..."}, "note": "..."}
//! ```
//! Welfare records locate people by grid code and address, not by coordinates. The person
//! concerned is carried as the event's reporter (personal data, masked in logs).

use hub_schemas::event::{CivicEvent, Department, Location, PersonalData, Reporter};

use super::fields::{require_some_location, Record};
use super::{MappingContext, MappingError};

pub fn map(r: &Record, ctx: MappingContext<'_>) -> Result<CivicEvent, MappingError> {
    let source_id = r.text("case_id")?;
    let location = Location {
        point: None,
        address: r.opt_text("address")?,
        grid_code: r.opt_text("grid_code")?,
    };
    require_some_location(&location, "grid_code, address")?;
    if let Some(code) = &location.grid_code {
        if !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(MappingError::new(
                "grid_code",
                format!("`{code}` is not a numeric grid code"),
            ));
        }
    }
    let reporter = match r.object("person")? {
        None => None,
        Some(p) => Some(Reporter {
            name: p.opt_text("name")?.map(PersonalData::new),
            phone: p.opt_text("phone")?.map(PersonalData::new),
            id_number: p.opt_text("id_number")?.map(PersonalData::new),
        }),
    };
    Ok(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::CivilAffairs,
        category_code: r.text("case_type")?,
        category_name: r.opt_text("case_type_name")?,
        occurred_at: r.local_time("updated_at", "%Y-%m-%d %H:%M:%S")?,
        received_at: ctx.received_at,
        location,
        description: r.opt_free_text("note")?.unwrap_or_default(),
        attributes: r.attributes(&["hours_without_contact"]),
        reporter,
        raw_ref: None,
    })
}
