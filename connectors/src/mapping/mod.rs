//! Pure normalisers: one departmental record in, one canonical civic event (or a precise
//! reason) out. No I/O here, so every mapping is tested with plain data.
//!
//! Each department's system has its own field names, time formats and codes; the modules
//! below hold that knowledge, one per department.

pub mod civil_affairs;
pub mod police;
pub mod sanitation;
pub mod urban_management;

mod fields;

use chrono::{DateTime, Utc};
use hub_schemas::event::{CivicEvent, Department};
use sha2::{Digest, Sha256};

use crate::RawRecord;

/// Why a record could not be mapped: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct MappingError {
    pub field: String,
    pub problem: String,
}

impl MappingError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        MappingError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// What a mapping needs besides the record itself.
#[derive(Debug, Clone, Copy)]
pub struct MappingContext<'a> {
    /// The configured source system instance, e.g. `urban_management.longmatan`.
    pub source_system: &'a str,
    pub received_at: DateTime<Utc>,
}

/// Map one raw record of `department`'s system to the canonical event.
pub fn map_record(
    department: Department,
    ctx: MappingContext<'_>,
    raw: &RawRecord,
) -> Result<CivicEvent, MappingError> {
    let record = fields::Record::parse(&raw.bytes)?;
    let mut event = match department {
        Department::UrbanManagement => urban_management::map(&record, ctx)?,
        Department::Police => police::map(&record, ctx)?,
        Department::Sanitation => sanitation::map(&record, ctx)?,
        Department::CivilAffairs => civil_affairs::map(&record, ctx)?,
        Department::Residents => {
            return Err(MappingError::new(
                "department",
                "residents' requests arrive through the Open311 endpoint, not a polled feed",
            ))
        }
    };
    event.raw_ref = Some(hub_schemas::event::RawPayloadRef {
        uri: raw.uri.clone(),
        sha256: sha256_hex(&raw.bytes),
    });
    Ok(event)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
