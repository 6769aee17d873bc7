//! 城管 digital urban-management case system.
//!
//! ```json
//! {"caseNo": "CG20261121000123", "eventTypeCode": "010102", "eventTypeName": "暴露垃圾",
//!  "reportTime": "2026-11-21 10:23:00", "x": 105.43, "y": 28.90, "address": "...",
//!  "gridCode": "510504001001001", "description": "...", "source": "巡查",
//!  "reporter": {"name": "...", "phone": "..."}}
//! ```
//! `reportTime` is local time (UTC+8); `x`/`y` are longitude/latitude.

use hub_schemas::event::{CivicEvent, Department, Location, PersonalData, Reporter};

use super::fields::{require_some_location, Record};
use super::{MappingContext, MappingError};

pub fn map(r: &Record, ctx: MappingContext<'_>) -> Result<CivicEvent, MappingError> {
    let source_id = r.text("caseNo")?;
    let location = Location {
        point: r.opt_point("x", "y")?,
        address: r.opt_text("address")?,
        grid_code: r.opt_text("gridCode")?,
    };
    require_some_location(&location, "x/y, address, gridCode")?;
    let reporter = match r.object("reporter")? {
        None => None,
        Some(p) => Some(Reporter {
            name: p.opt_text("name")?.map(PersonalData::new),
            phone: p.opt_text("phone")?.map(PersonalData::new),
            id_number: None,
        }),
    };
    Ok(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::UrbanManagement,
        category_code: r.text("eventTypeCode")?,
        category_name: r.opt_text("eventTypeName")?,
        occurred_at: r.local_time("reportTime", "%Y-%m-%d %H:%M:%S")?,
        received_at: ctx.received_at,
        location,
        description: r.opt_free_text("description")?.unwrap_or_default(),
        attributes: r.attributes(&["source"]),
        reporter,
        raw_ref: None,
    })
}
