//! 民政 welfare case table, one row as PostgreSQL renders it (`row_to_json`), read by the
//! database source ([`crate::pg_poll`]):
//!
//! ```json
//! {"id": 17, "case_no": "MZ-510504-000017", "case_type": "ELDERLY_LIVING_ALONE",
//!  "case_type_name": "独居老人", "person_name": "...", "id_number": "...", "phone": "...",
//!  "lives_alone": true, "last_contact_at": "2026-11-19T08:00:00+08:00",
//!  "grid_code": "510504001001002", "address": "...", "status": "ACTIVE", "note": "...",
//!  "updated_at": "2026-11-21T10:23:00.123456+08:00"}
//! ```
//!
//! The department's care platform updates a row at every check-in attempt: `updated_at`
//! moves, `last_contact_at` only when someone was reached. So, at the row's update time:
//! - an elderly person living alone not reached for [`MappingRules::elderly_no_contact`]
//!   (48 h by default) → a welfare-check event (`ELDERLY_NO_CONTACT`). Its source id is the
//!   case number and the last contact time: every update during the same silence is the
//!   same event, and a new silence after a contact is a new one;
//! - the same person reached recently → skipped;
//! - other active case types (left-behind children, hardship, disability support) → one
//!   event per case (source id = case number);
//! - closed cases → skipped.
//!
//! The person concerned is the event's reporter (personal data, masked in logs).

use hub_schemas::event::{CivicEvent, Department, Location, PersonalData, Reporter};

use super::fields::{require_some_location, Record};
use super::{Mapped, MappingContext, MappingError, MappingRules};

pub const ELDERLY_LIVING_ALONE: &str = "ELDERLY_LIVING_ALONE";
/// The code of the welfare-check event (as the department's REST feed names it).
pub const ELDERLY_NO_CONTACT: &str = "ELDERLY_NO_CONTACT";

pub fn map(
    r: &Record,
    ctx: MappingContext<'_>,
    rules: &MappingRules,
) -> Result<Mapped, MappingError> {
    let case_no = r.text("case_no")?;
    let case_type = r.text("case_type")?;
    let updated_at = r.flexible_time("updated_at")?;
    let status = r.opt_text("status")?.unwrap_or_else(|| "ACTIVE".into());
    if status.eq_ignore_ascii_case("CLOSED") {
        return Ok(Mapped::Skip {
            reason: format!("case {case_no} is closed"),
        });
    }
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
    let reporter = Reporter {
        name: r.opt_text("person_name")?.map(PersonalData::new),
        phone: r.opt_text("phone")?.map(PersonalData::new),
        id_number: r.opt_text("id_number")?.map(PersonalData::new),
    };
    let reporter =
        (reporter.name.is_some() || reporter.phone.is_some() || reporter.id_number.is_some())
            .then_some(reporter);
    let mut attributes = r.attributes(&["case_no", "case_type"]);
    let note = r.opt_free_text("note")?.unwrap_or_default();

    let elderly_alone = case_type == ELDERLY_LIVING_ALONE
        || (r.opt_bool("lives_alone")? == Some(true) && case_type.starts_with("ELDERLY"));
    let (source_id, category_code, category_name, description, occurred_at) = if elderly_alone {
        let last_contact = r.opt_flexible_time("last_contact_at")?.ok_or_else(|| {
            MappingError::new(
                "last_contact_at",
                "missing for an elderly person living alone; the no-contact rule needs it",
            )
        })?;
        if last_contact > updated_at {
            return Err(MappingError::new(
                "last_contact_at",
                "is later than updated_at; the row's times are inconsistent",
            ));
        }
        let silence = updated_at - last_contact;
        if silence < rules.elderly_no_contact {
            return Ok(Mapped::Skip {
                reason: format!(
                    "case {case_no}: last contact {} h before the update, under the {} h threshold",
                    silence.num_hours(),
                    rules.elderly_no_contact.num_hours()
                ),
            });
        }
        let hours = silence.num_hours();
        attributes.insert("hours_without_contact".into(), hours.to_string());
        attributes.insert("last_contact_at".into(), last_contact.to_rfc3339());
        attributes.insert("action".into(), "welfare_check".into());
        (
            format!(
                "{case_no}/no-contact-since-{}",
                last_contact.format("%Y%m%dT%H%M%SZ")
            ),
            ELDERLY_NO_CONTACT.to_owned(),
            Some("独居老人失联".to_owned()),
            format!("独居老人已 {hours} 小时未联系上，请上门探视。{note}")
                .trim()
                .to_owned(),
            // The check is due from the moment the threshold was crossed.
            last_contact + rules.elderly_no_contact,
        )
    } else {
        (
            case_no.clone(),
            case_type.clone(),
            r.opt_text("case_type_name")?,
            note,
            updated_at,
        )
    };
    Ok(Mapped::Event(Box::new(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::CivilAffairs,
        category_code,
        category_name,
        occurred_at,
        received_at: ctx.received_at,
        location,
        description,
        attributes,
        reporter,
        raw_ref: None,
    })))
}
