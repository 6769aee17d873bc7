//! Why a task went where it went; stored with every task and shown by the API.

use serde::{Deserialize, Serialize};

use crate::place::{PlaceLevel, PlaceMethod};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// How the place was resolved and what it matched.
    pub place_method: PlaceMethod,
    pub place_level: PlaceLevel,
    pub matched_area: String,
    /// Free text detail, e.g. `point (105.43, 28.90) inside community 510504001002`.
    pub place_detail: String,
    /// The responsibility rule that chose the lead unit, and the rules version it belongs to.
    pub rule_id: String,
    pub rules_version: String,
    /// Outcome of the community's admission check, when one ran.
    pub admission: Option<String>,
    /// The task this event's report was merged into, when it was a duplicate.
    pub merged_into: Option<String>,
}
