//! Pure normalisers: one departmental record in, one canonical civic event (or a precise
//! reason) out. No I/O here, so every mapping is tested with plain data.
//!
//! Each department's system has its own field names, time formats and codes; the modules
//! below hold that knowledge, one per department.

pub mod civil_affairs;
pub mod civil_affairs_row;
pub mod police;
pub mod sanitation;
pub mod sanitation_bins;
pub mod urban_management;

mod fields;

use std::fmt;

use chrono::{DateTime, Utc};
use hub_schemas::event::{CivicEvent, Department};
use hub_schemas::limits::{check_event, FieldProblem, InputLimits};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::source::SourceKind;
use crate::RawRecord;

/// Why a record could not be mapped: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct MappingError {
    pub field: String,
    pub problem: String,
}

impl From<FieldProblem> for MappingError {
    fn from(p: FieldProblem) -> Self {
        MappingError {
            field: p.field,
            problem: p.problem,
        }
    }
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
    /// The bounds the record's values are held to (times seen from `received_at`).
    pub limits: InputLimits,
}

/// The record layouts the hub can map, one per departmental system and source kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// 公安 110 incident (REST): [`police`].
    PoliceIncident,
    /// 城管 case (REST or webhook): [`urban_management`].
    UrbanManagementCase,
    /// 环卫 work order (REST): [`sanitation`].
    SanitationWorkOrder,
    /// 环卫 bin overflow episode (MQTT, debounced): [`sanitation_bins`].
    SanitationBinEpisode,
    /// 民政 welfare case (REST): [`civil_affairs`].
    CivilAffairsCase,
    /// 民政 welfare case table row (database polling): [`civil_affairs_row`].
    CivilAffairsRow,
}

impl RecordFormat {
    pub const ALL: [RecordFormat; 6] = [
        RecordFormat::PoliceIncident,
        RecordFormat::UrbanManagementCase,
        RecordFormat::SanitationWorkOrder,
        RecordFormat::SanitationBinEpisode,
        RecordFormat::CivilAffairsCase,
        RecordFormat::CivilAffairsRow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordFormat::PoliceIncident => "police_incident",
            RecordFormat::UrbanManagementCase => "urban_management_case",
            RecordFormat::SanitationWorkOrder => "sanitation_work_order",
            RecordFormat::SanitationBinEpisode => "sanitation_bin_episode",
            RecordFormat::CivilAffairsCase => "civil_affairs_case",
            RecordFormat::CivilAffairsRow => "civil_affairs_row",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn department(self) -> Department {
        match self {
            RecordFormat::PoliceIncident => Department::Police,
            RecordFormat::UrbanManagementCase => Department::UrbanManagement,
            RecordFormat::SanitationWorkOrder | RecordFormat::SanitationBinEpisode => {
                Department::Sanitation
            }
            RecordFormat::CivilAffairsCase | RecordFormat::CivilAffairsRow => {
                Department::CivilAffairs
            }
        }
    }

    /// The REST layout of a department's system (what [`map_record`] uses).
    pub fn rest(department: Department) -> Option<Self> {
        match department {
            Department::Police => Some(RecordFormat::PoliceIncident),
            Department::UrbanManagement => Some(RecordFormat::UrbanManagementCase),
            Department::Sanitation => Some(RecordFormat::SanitationWorkOrder),
            Department::CivilAffairs => Some(RecordFormat::CivilAffairsCase),
            Department::Residents => None,
        }
    }

    /// The layout a connector of `kind` for `department` delivers, or why that pair makes
    /// no sense (for configuration checks).
    pub fn for_source(kind: SourceKind, department: Department) -> Result<Self, String> {
        let format = match (kind, department) {
            (SourceKind::HttpPoll | SourceKind::Webhook, d) => Self::rest(d),
            (SourceKind::Mqtt, Department::Sanitation) => Some(RecordFormat::SanitationBinEpisode),
            (SourceKind::PostgresPoll, Department::CivilAffairs) => {
                Some(RecordFormat::CivilAffairsRow)
            }
            _ => None,
        };
        format.ok_or_else(|| {
            format!(
                "a `{kind}` connector for `{department}` is not supported; supported: http_poll and webhook for police, urban_management, sanitation, civil_affairs; mqtt for sanitation; postgres_poll for civil_affairs (residents come through Open311)"
            )
        })
    }
}

impl fmt::Display for RecordFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Settings that shape what counts as an event (numbers a city configures).
#[derive(Debug, Clone, PartialEq)]
pub struct MappingRules {
    /// An elderly person living alone with no contact for this long needs a welfare check.
    /// Default 48 h.
    pub elderly_no_contact: chrono::Duration,
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules {
            elderly_no_contact: chrono::Duration::hours(48),
        }
    }
}

/// A mapped record: an event, or a valid record that calls for nothing (counted as
/// skipped, not dead-lettered).
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    Event(Box<CivicEvent>),
    Skip { reason: String },
}

/// Maps the records of one connector.
#[derive(Debug, Clone)]
pub struct Mapper {
    pub format: RecordFormat,
    pub rules: MappingRules,
}

impl Mapper {
    pub fn new(format: RecordFormat) -> Self {
        Mapper {
            format,
            rules: MappingRules::default(),
        }
    }

    pub fn with_rules(mut self, rules: MappingRules) -> Self {
        self.rules = rules;
        self
    }

    /// Map one raw record; the event carries a reference to the raw bytes (uri + SHA-256).
    pub fn map(&self, ctx: MappingContext<'_>, raw: &RawRecord) -> Result<Mapped, MappingError> {
        let record = fields::Record::parse(&raw.bytes, ctx.limits, ctx.received_at)?;
        let mapped = match self.format {
            RecordFormat::UrbanManagementCase => urban_management::map(&record, ctx)?.into(),
            RecordFormat::PoliceIncident => police::map(&record, ctx)?.into(),
            RecordFormat::SanitationWorkOrder => sanitation::map(&record, ctx)?.into(),
            RecordFormat::SanitationBinEpisode => sanitation_bins::map(&record, ctx)?.into(),
            RecordFormat::CivilAffairsCase => civil_affairs::map(&record, ctx)?.into(),
            RecordFormat::CivilAffairsRow => civil_affairs_row::map(&record, ctx, &self.rules)?,
        };
        Ok(match mapped {
            Mapped::Event(mut event) => {
                event.raw_ref = Some(hub_schemas::event::RawPayloadRef {
                    uri: raw.uri.clone(),
                    sha256: sha256_hex(&raw.bytes),
                });
                // Whatever the department's layout, the event is held to the same bounds
                // the routing pipeline checks again.
                check_event(&event, &ctx.limits, ctx.received_at)?;
                Mapped::Event(event)
            }
            skip => skip,
        })
    }
}

impl From<CivicEvent> for Mapped {
    fn from(event: CivicEvent) -> Self {
        Mapped::Event(Box::new(event))
    }
}

/// Map one raw record of `department`'s REST system to the canonical event.
pub fn map_record(
    department: Department,
    ctx: MappingContext<'_>,
    raw: &RawRecord,
) -> Result<CivicEvent, MappingError> {
    let format = RecordFormat::rest(department).ok_or_else(|| {
        MappingError::new(
            "department",
            "residents' requests arrive through the Open311 endpoint, not a polled feed",
        )
    })?;
    match Mapper::new(format).map(ctx, raw)? {
        Mapped::Event(event) => Ok(*event),
        // REST layouts always make an event; kept total for safety.
        Mapped::Skip { reason } => Err(MappingError::new("(record)", reason)),
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
