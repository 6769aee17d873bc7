//! How urgent a case is. The levels follow the 12345 hotline's practice: emergencies are
//! dispatched within the hour, urgent utility matters within two, general requests within a
//! day; `low` is for consultations and suggestions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Ordered from least to most urgent, so `a >= b` reads "at least as urgent".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 咨询建议
    Low,
    /// 一般
    #[default]
    Normal,
    /// 急
    Urgent,
    /// 紧急
    Emergency,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::Urgent,
        Priority::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::Urgent => "urgent",
            Priority::Emergency => "emergency",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// `low, normal, urgent, emergency`, for error messages.
    pub fn known() -> String {
        Self::ALL.map(Priority::as_str).join(", ")
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
