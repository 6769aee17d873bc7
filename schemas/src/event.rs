//! The canonical civic event: what every connector produces, whatever department it came from.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The departmental systems (and residents) that feed the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Department {
    /// 公安 / 派出所
    Police,
    /// 城管
    UrbanManagement,
    /// 环卫
    Sanitation,
    /// 民政
    CivilAffairs,
    /// Residents and the 12345 hotline (Open311).
    Residents,
}

impl Department {
    pub const ALL: [Department; 5] = [
        Department::Police,
        Department::UrbanManagement,
        Department::Sanitation,
        Department::CivilAffairs,
        Department::Residents,
    ];

    /// Stable lower-case name used in config, topics, metrics labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Department::Police => "police",
            Department::UrbanManagement => "urban_management",
            Department::Sanitation => "sanitation",
            Department::CivilAffairs => "civil_affairs",
            Department::Residents => "residents",
        }
    }

    /// The Avro enum symbol.
    pub fn avro_symbol(self) -> &'static str {
        match self {
            Department::Police => "POLICE",
            Department::UrbanManagement => "URBAN_MANAGEMENT",
            Department::Sanitation => "SANITATION",
            Department::CivilAffairs => "CIVIL_AFFAIRS",
            Department::Residents => "RESIDENTS",
        }
    }

    pub fn from_avro_symbol(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.avro_symbol() == s)
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for Department {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WGS-84-style longitude/latitude pair (the sample city uses the GCJ-02 datum throughout).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lon: f64,
    pub lat: f64,
}

/// Where the event happened, as precisely as the source knows it. Any subset may be present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub point: Option<GeoPoint>,
    pub address: Option<String>,
    /// A grid code in the city's scheme (for example Beijing-style 15 digits).
    pub grid_code: Option<String>,
}

/// Personal data (names, phone numbers, ID numbers). Its `Debug` and `Display` never show the
/// value, so it cannot leak into logs by accident; `expose()` is the one way to read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PersonalData(String);

impl PersonalData {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A masked form fit for logs and outbound copies that do not need the value:
    /// keeps the first and last character, e.g. `1**********8`.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        match chars.len() {
            0 => String::new(),
            1 | 2 => "*".repeat(chars.len()),
            n => {
                let mut s = String::new();
                s.push(chars[0]);
                s.push_str(&"*".repeat(n - 2));
                s.push(chars[n - 1]);
                s
            }
        }
    }
}

impl fmt::Debug for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonalData({})", self.masked())
    }
}

impl fmt::Display for PersonalData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Who reported the event. All of it is personal data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reporter {
    pub name: Option<PersonalData>,
    pub phone: Option<PersonalData>,
    pub id_number: Option<PersonalData>,
}

/// Where the raw departmental payload can be found again, and its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawPayloadRef {
    /// For example the departmental record's URL, or `table:row` for a database feed.
    pub uri: String,
    /// Lower-case hex SHA-256 of the raw bytes the connector received.
    pub sha256: String,
}

/// The canonical civic event (schema `city.hub.v1.CivicEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CivicEvent {
    /// Hub-assigned id, derived from (source system, source id): see [`CivicEvent::derive_id`].
    pub event_id: String,
    /// The departmental system instance, e.g. `urban_management.longmatan`.
    pub source_system: String,
    /// The record's id in its source system.
    pub source_id: String,
    pub department: Department,
    /// The department's own category code (mapped to the hub's taxonomy by the router).
    pub category_code: String,
    pub category_name: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub location: Location,
    pub description: String,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub reporter: Option<Reporter>,
    pub raw_ref: Option<RawPayloadRef>,
}

impl CivicEvent {
    /// The event id is a UUIDv5 of `source_system` and `source_id`, so the same departmental
    /// record always gets the same id, however often it is fetched or redelivered.
    pub fn derive_id(source_system: &str, source_id: &str) -> String {
        const NAMESPACE: uuid::Uuid =
            uuid::Uuid::from_u128(0x6a1f_4c2e_9b3d_4e5f_8a7b_1c2d_3e4f_5a6b);
        let name = format!("{source_system}\u{1f}{source_id}");
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
    }
}
