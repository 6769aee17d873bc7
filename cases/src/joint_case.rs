//! Joint cases, "whistle and report" (街乡吹哨、部门报到): a hard case put to the community's
//! joint meeting (联席会议) names a lead unit (牵头) and co-handlers (协办). Every unit called
//! must report in (报到) within a short limit — 30 minutes is usual — and each has its own
//! part of the work, possibly with its own limit. A unit breaches when it has not reported in
//! by its deadline (or reported in late), or has not finished its part in time; the others do
//! not breach because of it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::calendar::{spanned_limit, Limit, WorkingCalendar};
use super::clock::{ClockKind, SlaClock};
use super::{ConfigError, Source};

/// `[joint_case]` in `policies.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct JointCaseConfig {
    /// How long a called unit has to report in.
    pub report_in: Limit,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJointCase {
    report_in: Spanned<String>,
}

impl RawJointCase {
    pub(crate) fn build(&self, src: &Source<'_>) -> Result<JointCaseConfig, ConfigError> {
        Ok(JointCaseConfig {
            report_in: spanned_limit(src, &self.report_in)?,
        })
    }
}

/// A unit's part in a joint case, as the meeting assigns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub unit: String,
    /// What the unit is to do, in the meeting's words.
    pub part: String,
    /// The time the unit has for its part, counted from the meeting; none if open-ended.
    pub limit: Option<Limit>,
}

impl Assignment {
    pub fn new(unit: &str, part: &str, limit: Option<Limit>) -> Self {
        Assignment {
            unit: unit.to_owned(),
            part: part.to_owned(),
            limit,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointRole {
    /// 牵头/主办
    Lead,
    /// 协办
    CoHandler,
}

/// A unit called to a joint case, with its deadlines and what it has done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub unit: String,
    pub role: JointRole,
    pub part: String,
    pub report_in_by: DateTime<Utc>,
    pub reported_in_at: Option<DateTime<Utc>>,
    pub part_limit: Option<Limit>,
    pub part_due: Option<DateTime<Utc>>,
    pub part_done_at: Option<DateTime<Utc>>,
}

/// What a unit failed to do in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JointDuty {
    ReportIn,
    Part,
}

/// A unit that breached a joint-case deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JointBreach {
    pub unit: String,
    pub role: JointRole,
    pub duty: JointDuty,
    pub deadline: DateTime<Utc>,
    /// When it was done after all, late; `None` if still not done.
    pub done_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JointCaseError {
    #[error("unit {0:?} is called twice; a unit takes one part (the lead included)")]
    DuplicateUnit(String),
    #[error("a joint case needs at least one co-handler besides the lead")]
    NoCoHandler,
    #[error("unit {0:?} has no part of the work assigned")]
    NoPart(String),
    #[error("the unit id is empty")]
    NoUnit,
    #[error("unit {unit:?} is not called to this joint case (called: {called})")]
    NotCalled { unit: String, called: String },
    #[error("unit {unit:?} already reported in at {at}")]
    AlreadyReportedIn { unit: String, at: DateTime<Utc> },
    #[error("unit {unit:?} already finished its part at {at}")]
    AlreadyDone { unit: String, at: DateTime<Utc> },
    #[error("unit {0:?} must report in before finishing its part")]
    NotReportedIn(String),
    #[error("{0} is before the meeting was convened")]
    BeforeConvened(DateTime<Utc>),
}

/// A case put to the joint meeting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JointCase {
    pub task_id: String,
    pub convened_at: DateTime<Utc>,
    /// How long each unit had to report in (from the configuration at the meeting).
    pub report_in: Limit,
    /// The lead first, then the co-handlers in the order named.
    pub participants: Vec<Participant>,
}

impl JointCase {
    /// Convenes a joint case at `now`: every unit's report-in deadline is `now` plus the
    /// configured report-in limit, its part deadline `now` plus its own limit.
    pub fn convene(
        task_id: &str,
        now: DateTime<Utc>,
        lead: Assignment,
        co_handlers: Vec<Assignment>,
        config: &JointCaseConfig,
        calendar: &WorkingCalendar,
    ) -> Result<JointCase, JointCaseError> {
        if co_handlers.is_empty() {
            return Err(JointCaseError::NoCoHandler);
        }
        let report_in_by = calendar.add(now, config.report_in);
        let mut seen = BTreeSet::new();
        let mut participants = Vec::with_capacity(co_handlers.len() + 1);
        let called = std::iter::once((JointRole::Lead, lead))
            .chain(co_handlers.into_iter().map(|a| (JointRole::CoHandler, a)));
        for (role, a) in called {
            let unit = a.unit.trim().to_owned();
            if unit.is_empty() {
                return Err(JointCaseError::NoUnit);
            }
            if !seen.insert(unit.clone()) {
                return Err(JointCaseError::DuplicateUnit(unit));
            }
            if a.part.trim().is_empty() {
                return Err(JointCaseError::NoPart(unit));
            }
            participants.push(Participant {
                unit,
                role,
                part: a.part.trim().to_owned(),
                report_in_by,
                reported_in_at: None,
                part_limit: a.limit,
                part_due: a.limit.map(|l| calendar.add(now, l)),
                part_done_at: None,
            });
        }
        Ok(JointCase {
            task_id: task_id.to_owned(),
            convened_at: now,
            report_in: config.report_in,
            participants,
        })
    }

    pub fn lead(&self) -> Option<&Participant> {
        self.participants.iter().find(|p| p.role == JointRole::Lead)
    }

    pub fn co_handlers(&self) -> impl Iterator<Item = &Participant> {
        self.participants
            .iter()
            .filter(|p| p.role == JointRole::CoHandler)
    }

    pub fn participant(&self, unit: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.unit == unit)
    }

    fn participant_mut(&mut self, unit: &str) -> Result<&mut Participant, JointCaseError> {
        let called = self
            .participants
            .iter()
            .map(|p| p.unit.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        self.participants
            .iter_mut()
            .find(|p| p.unit == unit)
            .ok_or(JointCaseError::NotCalled {
                unit: unit.to_owned(),
                called,
            })
    }

    /// 报到: the unit reports in at `at` (late is recorded, and counts as a breach).
    pub fn report_in(&mut self, unit: &str, at: DateTime<Utc>) -> Result<(), JointCaseError> {
        if at < self.convened_at {
            return Err(JointCaseError::BeforeConvened(at));
        }
        let p = self.participant_mut(unit)?;
        if let Some(at) = p.reported_in_at {
            return Err(JointCaseError::AlreadyReportedIn {
                unit: unit.to_owned(),
                at,
            });
        }
        p.reported_in_at = Some(at);
        Ok(())
    }

    /// The unit finished its part.
    pub fn complete_part(&mut self, unit: &str, at: DateTime<Utc>) -> Result<(), JointCaseError> {
        if at < self.convened_at {
            return Err(JointCaseError::BeforeConvened(at));
        }
        let p = self.participant_mut(unit)?;
        if p.reported_in_at.is_none() {
            return Err(JointCaseError::NotReportedIn(unit.to_owned()));
        }
        if let Some(at) = p.part_done_at {
            return Err(JointCaseError::AlreadyDone {
                unit: unit.to_owned(),
                at,
            });
        }
        p.part_done_at = Some(at);
        Ok(())
    }

    /// Every deadline missed as of `now`: units that did not report in (or did so late), and
    /// units whose part is overdue. Units that kept their deadlines do not appear.
    pub fn breaches(&self, now: DateTime<Utc>) -> Vec<JointBreach> {
        let mut out = Vec::new();
        for p in &self.participants {
            let missed = |deadline: DateTime<Utc>, done: Option<DateTime<Utc>>| match done {
                Some(done) => done > deadline,
                None => now >= deadline,
            };
            if missed(p.report_in_by, p.reported_in_at) {
                out.push(JointBreach {
                    unit: p.unit.clone(),
                    role: p.role,
                    duty: JointDuty::ReportIn,
                    deadline: p.report_in_by,
                    done_at: p.reported_in_at,
                });
            }
            if let Some(due) = p.part_due {
                if missed(due, p.part_done_at) {
                    out.push(JointBreach {
                        unit: p.unit.clone(),
                        role: p.role,
                        duty: JointDuty::Part,
                        deadline: due,
                        done_at: p.part_done_at,
                    });
                }
            }
        }
        out
    }

    /// The units that breached their report-in deadline as of `now`.
    pub fn units_not_reported_in(&self, now: DateTime<Utc>) -> Vec<&str> {
        self.participants
            .iter()
            .filter(|p| match p.reported_in_at {
                Some(at) => at > p.report_in_by,
                None => now >= p.report_in_by,
            })
            .map(|p| p.unit.as_str())
            .collect()
    }

    /// The clocks the tracker watches for this case: a report-in clock per unit and a clock
    /// per part with a limit, stopped where already done.
    pub fn clocks(&self, round: u32, calendar: &WorkingCalendar) -> Vec<SlaClock> {
        let mut clocks = Vec::new();
        for p in &self.participants {
            let mut report = SlaClock::start(
                ClockKind::ReportIn {
                    unit: p.unit.clone(),
                },
                round,
                self.convened_at,
                self.report_in,
                None,
                calendar,
            );
            if let Some(at) = p.reported_in_at {
                // Cannot fail: a fresh clock, and `at` is not before the meeting.
                let _ = report.record(super::clock::ClockEvent::Stopped { at }, calendar);
            }
            clocks.push(report);
            if let Some(limit) = p.part_limit {
                let mut part = SlaClock::start(
                    ClockKind::JointPart {
                        unit: p.unit.clone(),
                    },
                    round,
                    self.convened_at,
                    limit,
                    None,
                    calendar,
                );
                if let Some(at) = p.part_done_at {
                    let _ = part.record(super::clock::ClockEvent::Stopped { at }, calendar);
                }
                clocks.push(part);
            }
        }
        clocks
    }
}
