//! 环卫 sanitation work-order system.
//!
//! ```json
//! {"orderId": "HW-000123", "type": "GARBAGE_OVERFLOW", "typeName": "垃圾满溢",
//!  "createdAt": "2026-11-21T10:23:00+08:00", "binId": "BIN-0042", "lng": 105.43,
//!  "lat": 28.90, "fillLevel": 97, "remark": "..."}
//! ```

use hub_schemas::event::{CivicEvent, Department, Location};

use super::fields::{require_some_location, Record};
use super::{MappingContext, MappingError};

pub fn map(r: &Record, ctx: MappingContext<'_>) -> Result<CivicEvent, MappingError> {
    let source_id = r.text("orderId")?;
    let location = Location {
        point: r.opt_point("lng", "lat")?,
        address: r.opt_text("address")?,
        grid_code: None,
    };
    require_some_location(&location, "lng/lat, address")?;
    if let Some(level) = r.opt_number("fillLevel")? {
        if !(0.0..=100.0).contains(&level) {
            return Err(MappingError::new(
                "fillLevel",
                format!("{level} is not a percentage"),
            ));
        }
    }
    Ok(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::Sanitation,
        category_code: r.text("type")?,
        category_name: r.opt_text("typeName")?,
        occurred_at: r.rfc3339_time("createdAt")?,
        received_at: ctx.received_at,
        location,
        description: r.opt_free_text("remark")?.unwrap_or_default(),
        attributes: r.attributes(&["binId", "fillLevel"]),
        reporter: None,
        raw_ref: None,
    })
}
