//! 环卫 bin overflow episodes, as the MQTT source renders them ([`crate::mqtt`]):
//!
//! ```json
//! {"episode_id": "BIN-0042@20261121T022300Z", "bin_id": "BIN-0042",
//!  "opened_at": "2026-11-21T02:23:00Z", "fill_level": 97.0, "lon": 105.43, "lat": 28.9,
//!  "topic": "sanitation/bins/BIN-0042/reading", "reading": {...}}
//! ```
//! One event per episode: its source id is the episode id, stable for the whole overflow,
//! so a redelivered episode creates nothing new.

use hub_schemas::event::{CivicEvent, Department, Location};

use super::fields::{require_some_location, Record};
use super::{MappingContext, MappingError};

/// The department's own code for an overflowing bin (as in its work orders).
pub const CATEGORY_CODE: &str = "GARBAGE_OVERFLOW";

pub fn map(r: &Record, ctx: MappingContext<'_>) -> Result<CivicEvent, MappingError> {
    let source_id = r.text("episode_id")?;
    let bin_id = r.text("bin_id")?;
    let location = Location {
        point: r.opt_point("lon", "lat")?,
        address: None,
        grid_code: None,
    };
    require_some_location(&location, "lon/lat")?;
    let fill = r
        .opt_number("fill_level")?
        .ok_or_else(|| MappingError::new("fill_level", "missing"))?;
    if !(0.0..=100.0).contains(&fill) {
        return Err(MappingError::new(
            "fill_level",
            format!("{fill} is not a percentage"),
        ));
    }
    let mut attributes = r.attributes(&["bin_id", "fill_level", "topic"]);
    attributes.insert("sensor_episode".into(), source_id.clone());
    Ok(CivicEvent {
        event_id: CivicEvent::derive_id(ctx.source_system, &source_id),
        source_system: ctx.source_system.to_owned(),
        source_id,
        department: Department::Sanitation,
        category_code: CATEGORY_CODE.to_owned(),
        category_name: Some("垃圾满溢".to_owned()),
        occurred_at: r.rfc3339_time("opened_at")?,
        received_at: ctx.received_at,
        location,
        description: format!("垃圾桶 {bin_id} 满溢（传感器读数 {fill:.0}%）"),
        attributes,
        reporter: None,
        raw_ref: None,
    })
}
