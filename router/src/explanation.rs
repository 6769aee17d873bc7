//! Why a task went where it went; stored with every task and shown by the API.

use serde::{Deserialize, Serialize};

use crate::place::{PlaceLevel, PlaceMethod};
use crate::taxonomy::CategoryRef;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// How the place was resolved and what it matched.
    pub place_method: PlaceMethod,
    pub place_level: PlaceLevel,
    pub matched_area: String,
    /// Free text detail, e.g. `point (105.43, 28.90) inside community 510504001002`.
    pub place_detail: String,
    /// The taxonomy category the department's code mapped to.
    #[serde(default)]
    pub category: Option<CategoryRef>,
    /// e.g. `sanitation code GARBAGE_OVERFLOW → E0103 垃圾满溢 (major class E01 市容环境, group garbage)`.
    #[serde(default)]
    pub category_detail: String,
    /// The responsibility rule that decided, and the rules version it belongs to.
    pub rule_id: String,
    pub rules_version: String,
    /// Where the rule is written and what it says, e.g.
    /// `config/rules/40-sanitation.toml:12: A bin sensor at 95% or more is urgent`.
    #[serde(default)]
    pub rule_detail: String,
    /// Which units the rule's roles became, and any fallback taken, e.g.
    /// `lead property_company: none in 翠屏社区, took workstation → 翠屏社区工作站 (…)`.
    #[serde(default)]
    pub assignment_detail: String,
    /// Outcome of the community's admission check, when one ran.
    pub admission: Option<AdmissionCheck>,
    /// The task this event's report was merged into, when it was a duplicate (set by the
    /// pipeline, which sees the open tasks).
    pub merged_into: Option<String>,
}

/// The admission check (准入制) of the community a task was routed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionCheck {
    pub admitted: bool,
    /// e.g. `梧桐社区 has not admitted E0701 出租房屋核查 from police (its list for police: E06, E0702); the department keeps the case`.
    pub reason: String,
}
