//! The indicators communities, streets and units are assessed by (考核), computed from each
//! case's facts. Pure: the hub gathers the facts from the store.
//!
//! Definitions (over the cases created in the period):
//! * 立案率 filing rate — cases filed (not cancelled as invalid) / cases received;
//! * 结案率 closing rate — closed / due to close (filed cases whose handling deadline fell by
//!   the end of the period, or that are closed already);
//! * 按期结案率 on-time closing rate — closed with feedback by the handling deadline / due to
//!   close;
//! * 返工率 rework rate — closed cases that were sent back for rework / closed;
//! * 延期率 extension rate — filed cases granted an extension / filed;
//! * 响应率 response rate — signed for by the sign-for deadline / dispatched;
//! * 解决率 resolution rate — resolved with feedback / filed;
//! * 满意率 satisfaction rate — satisfied callbacks (回访) / callbacks;
//! * average sign-for time (dispatch → signed for) and handling time (signed for → feedback),
//!   in minutes.
//!
//! A rate whose denominator is zero is absent (not 0 % and not 100 %).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use hub_router::task::TaskStatus;

/// What the indicators need to know about one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFacts {
    pub task_id: String,
    pub street_code: Option<String>,
    pub community_code: Option<String>,
    pub lead_unit: Option<String>,
    pub status: TaskStatus,
    pub created_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub signed_for_at: Option<DateTime<Utc>>,
    /// The last feedback (反馈), after any rework.
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The first sign-for clock's deadline.
    pub sign_for_due: Option<DateTime<Utc>>,
    /// The deadline the feedback was due by: the latest handling (or rework) deadline,
    /// extensions included.
    pub handling_due: Option<DateTime<Utc>>,
    pub reworked: bool,
    pub extended: bool,
    /// The resident's callback verdict, if given.
    pub satisfied: Option<bool>,
}

/// What indicators are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Street,
    Community,
    /// The lead unit (the unit assessed for the case).
    Unit,
}

impl GroupBy {
    pub const ALL: [GroupBy; 3] = [GroupBy::Street, GroupBy::Community, GroupBy::Unit];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "street" => Some(GroupBy::Street),
            "community" => Some(GroupBy::Community),
            "unit" => Some(GroupBy::Unit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Street => "street",
            GroupBy::Community => "community",
            GroupBy::Unit => "unit",
        }
    }

    fn key(self, f: &CaseFacts) -> String {
        let key = match self {
            GroupBy::Street => &f.street_code,
            GroupBy::Community => &f.community_code,
            GroupBy::Unit => &f.lead_unit,
        };
        key.clone().unwrap_or_else(|| "-".to_owned())
    }
}

/// The indicators of one group, with the counts they are computed from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Indicators {
    /// The street, community or unit code (`-` for cases without one).
    pub key: String,
    pub received: u64,
    pub filed: u64,
    pub dispatched: u64,
    pub responded: u64,
    pub resolved: u64,
    pub due_to_close: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    pub reworked: u64,
    pub extended: u64,
    pub callbacks: u64,
    pub satisfied: u64,
    pub filing_rate: Option<f64>,
    pub closing_rate: Option<f64>,
    pub on_time_closing_rate: Option<f64>,
    pub rework_rate: Option<f64>,
    pub extension_rate: Option<f64>,
    pub response_rate: Option<f64>,
    pub resolution_rate: Option<f64>,
    pub satisfaction_rate: Option<f64>,
    pub avg_sign_for_minutes: Option<f64>,
    pub avg_handling_minutes: Option<f64>,
}

impl Indicators {
    /// Column names of [`Indicators::csv_row`], with the Chinese names assessors use.
    pub const CSV_HEADER: &'static str = "key,received,filed,dispatched,responded,resolved,\
        due_to_close,closed,closed_on_time,reworked,extended,callbacks,satisfied,\
        filing_rate 立案率,closing_rate 结案率,on_time_closing_rate 按期结案率,\
        rework_rate 返工率,extension_rate 延期率,response_rate 响应率,\
        resolution_rate 解决率,satisfaction_rate 满意率,avg_sign_for_minutes,avg_handling_minutes";

    pub fn csv_row(&self) -> String {
        let opt = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        let key = hub_schemas::csv::field(&self.key);
        format!(
            "{key},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.received,
            self.filed,
            self.dispatched,
            self.responded,
            self.resolved,
            self.due_to_close,
            self.closed,
            self.closed_on_time,
            self.reworked,
            self.extended,
            self.callbacks,
            self.satisfied,
            opt(self.filing_rate),
            opt(self.closing_rate),
            opt(self.on_time_closing_rate),
            opt(self.rework_rate),
            opt(self.extension_rate),
            opt(self.response_rate),
            opt(self.resolution_rate),
            opt(self.satisfaction_rate),
            opt(self.avg_sign_for_minutes),
            opt(self.avg_handling_minutes),
        )
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The counts of one group and the sums its averages come from: what the store's aggregate
/// query returns for a group, and what [`compute`] adds up from each case's facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub key: String,
    pub received: u64,
    pub filed: u64,
    pub dispatched: u64,
    pub responded: u64,
    pub resolved: u64,
    pub due_to_close: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    pub reworked: u64,
    pub extended: u64,
    pub callbacks: u64,
    pub satisfied: u64,
    /// Dispatch → signed for, summed over the cases signed for, in milliseconds.
    pub sign_for_ms: i64,
    pub sign_for_cases: u64,
    /// Signed for → feedback, summed over the cases resolved, in milliseconds.
    pub handling_ms: i64,
    pub handling_cases: u64,
}

impl Tally {
    /// Adds one case, as of `as_of`. The definitions of the module's header, in code; the
    /// store's aggregate query (`hub_store`'s `indicators.rs`) says the same in SQL, and a
    /// store test holds the two to the same figures.
    pub fn add(&mut self, f: &CaseFacts, as_of: DateTime<Utc>) {
        self.received += 1;
        if f.status == TaskStatus::Cancelled {
            return;
        }
        self.filed += 1;
        let closed = f.status == TaskStatus::Closed || f.closed_at.is_some();
        if let Some(dispatched) = f.dispatched_at {
            self.dispatched += 1;
            let responded = match (f.signed_for_at, f.sign_for_due) {
                (Some(signed), Some(due)) => signed <= due,
                (Some(_), None) => true,
                _ => false,
            };
            self.responded += u64::from(responded);
            if let Some(ms) = millis(Some(dispatched), f.signed_for_at) {
                self.sign_for_ms += ms;
                self.sign_for_cases += 1;
            }
        }
        if f.resolved_at.is_some() {
            self.resolved += 1;
            if let Some(ms) = millis(f.signed_for_at, f.resolved_at) {
                self.handling_ms += ms;
                self.handling_cases += 1;
            }
        }
        if closed || f.handling_due.is_some_and(|due| due <= as_of) {
            self.due_to_close += 1;
        }
        if closed {
            self.closed += 1;
            let on_time = match (f.resolved_at, f.handling_due) {
                (Some(resolved), Some(due)) => resolved <= due,
                (Some(_), None) => true,
                (None, _) => false,
            };
            self.closed_on_time += u64::from(on_time);
            self.reworked += u64::from(f.reworked);
        }
        self.extended += u64::from(f.extended);
        if let Some(satisfied) = f.satisfied {
            self.callbacks += 1;
            self.satisfied += u64::from(satisfied);
        }
    }

    /// The group's rates and averages.
    pub fn indicators(self) -> Indicators {
        let minutes = |ms: i64, n: u64| (n > 0).then(|| ms as f64 / n as f64 / 60_000.0);
        Indicators {
            filing_rate: rate(self.filed, self.received),
            closing_rate: rate(self.closed, self.due_to_close),
            on_time_closing_rate: rate(self.closed_on_time, self.due_to_close),
            rework_rate: rate(self.reworked, self.closed),
            extension_rate: rate(self.extended, self.filed),
            response_rate: rate(self.responded, self.dispatched),
            resolution_rate: rate(self.resolved, self.filed),
            satisfaction_rate: rate(self.satisfied, self.callbacks),
            avg_sign_for_minutes: minutes(self.sign_for_ms, self.sign_for_cases),
            avg_handling_minutes: minutes(self.handling_ms, self.handling_cases),
            key: self.key,
            received: self.received,
            filed: self.filed,
            dispatched: self.dispatched,
            responded: self.responded,
            resolved: self.resolved,
            due_to_close: self.due_to_close,
            closed: self.closed,
            closed_on_time: self.closed_on_time,
            reworked: self.reworked,
            extended: self.extended,
            callbacks: self.callbacks,
            satisfied: self.satisfied,
        }
    }
}

/// `to - from` in milliseconds, when both are known and in that order.
fn millis(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Option<i64> {
    let ms = (to? - from?).num_milliseconds();
    (ms >= 0).then_some(ms)
}

/// The tallies of each group, by key, as of `as_of` (the end of the period, or now if
/// earlier): the reference the store's aggregate query is tested against.
pub fn tally(cases: &[CaseFacts], by: GroupBy, as_of: DateTime<Utc>) -> Vec<Tally> {
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for f in cases {
        let key = by.key(f);
        groups
            .entry(key.clone())
            .or_insert_with(|| Tally {
                key,
                ..Tally::default()
            })
            .add(f, as_of);
    }
    groups.into_values().collect()
}

/// Indicators per group, by key, as of `as_of`.
pub fn compute(cases: &[CaseFacts], by: GroupBy, as_of: DateTime<Utc>) -> Vec<Indicators> {
    tally(cases, by, as_of)
        .into_iter()
        .map(Tally::indicators)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap() + TimeDelta::minutes(min)
    }

    fn case(id: &str, community: &str) -> CaseFacts {
        CaseFacts {
            task_id: id.to_owned(),
            street_code: Some("510504001".to_owned()),
            community_code: Some(community.to_owned()),
            lead_unit: Some(format!("{community}.workstation")),
            status: TaskStatus::Dispatched,
            created_at: at(0),
            dispatched_at: Some(at(0)),
            signed_for_at: None,
            resolved_at: None,
            closed_at: None,
            sign_for_due: Some(at(120)),
            handling_due: Some(at(600)),
            reworked: false,
            extended: false,
            satisfied: None,
        }
    }

    fn closed(id: &str, community: &str, signed: i64, resolved: i64) -> CaseFacts {
        CaseFacts {
            status: TaskStatus::Closed,
            signed_for_at: Some(at(signed)),
            resolved_at: Some(at(resolved)),
            closed_at: Some(at(resolved + 30)),
            ..case(id, community)
        }
    }

    #[test]
    fn rates_count_what_the_definitions_say() {
        let mut late = closed("late", "A", 150, 700); // signed for late, resolved late
        late.reworked = true;
        late.satisfied = Some(false);
        let mut on_time = closed("ok", "A", 30, 330);
        on_time.satisfied = Some(true);
        on_time.extended = true;
        let cancelled = CaseFacts {
            status: TaskStatus::Cancelled,
            ..case("void", "A")
        };
        let open_overdue = case("open", "A"); // handling due at 600, still dispatched
        let other = closed("b", "B", 10, 20);
        let cases = [late, on_time, cancelled, open_overdue, other];
        let by_community = compute(&cases, GroupBy::Community, at(1_000));
        assert_eq!(by_community.len(), 2);
        let a = &by_community[0];
        assert_eq!(a.key, "A");
        assert_eq!((a.received, a.filed), (4, 3));
        assert_eq!(a.filing_rate, Some(0.75));
        assert_eq!((a.closed, a.due_to_close), (2, 3));
        assert_eq!(a.closed_on_time, 1);
        assert_eq!(a.on_time_closing_rate, Some(1.0 / 3.0));
        assert_eq!(a.rework_rate, Some(0.5));
        assert_eq!(a.extension_rate, Some(1.0 / 3.0));
        assert_eq!((a.responded, a.dispatched), (1, 3));
        assert_eq!(a.resolution_rate, Some(2.0 / 3.0));
        assert_eq!(a.satisfaction_rate, Some(0.5));
        assert_eq!(a.avg_sign_for_minutes, Some(90.0)); // (150 + 30) / 2
        assert_eq!(a.avg_handling_minutes, Some(425.0)); // (550 + 300) / 2
                                                         // Before the open case's deadline it is not yet due to close.
        let earlier = compute(&cases, GroupBy::Community, at(500));
        assert_eq!(earlier[0].due_to_close, 2);
        // By street, both communities together.
        let street = compute(&cases, GroupBy::Street, at(1_000));
        assert_eq!(street.len(), 1);
        assert_eq!(street[0].received, 5);
    }

    #[test]
    fn empty_denominators_give_no_rate_and_csv_leaves_them_blank() {
        let cases = [case("only", "A")];
        let g = &compute(&cases, GroupBy::Unit, at(10))[0];
        assert_eq!(g.key, "A.workstation");
        assert_eq!(g.closing_rate, None);
        assert_eq!(g.satisfaction_rate, None);
        let row = g.csv_row();
        assert_eq!(
            row.split(',').count(),
            Indicators::CSV_HEADER.split(',').count()
        );
        assert!(
            row.starts_with("A.workstation,1,1,1,0,0,0,0,0,0,0,0,0,1.0000,,"),
            "{row}"
        );
    }
}
