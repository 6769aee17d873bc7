//! SLA clocks: one per limit that runs against a task (sign-for, each handling stage,
//! verification, an escalation step, a joint-case report-in...).
//!
//! A clock is its start, its limit and the events recorded on it since (paused, resumed,
//! extended, stopped). The deadline and the warning instant are recomputed from those, never
//! edited, so a clock read back from storage after a crash gives the same answers. Pauses
//! (waiting on the resident) do not consume the limit; an approved extension (延期) adds to
//! it. Everything is serialisable so the store can keep the events as they happen.

use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::{Limit, Measure, WorkingCalendar};
use super::escalation::ladder_serde;
use hub_router::city::LadderStep;

/// What a clock times. The phase a clock belongs to decides which workflow actions stop,
/// pause or extend it (see [`ClockKind::phase`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClockKind {
    /// 签收: from dispatch until the unit signs for the case.
    SignFor,
    /// 处置: one stage of handling (the only one, named "handling", for most categories).
    Handling { stage: String },
    /// 返工: handling again after a failed verification.
    Rework,
    /// 核查: from feedback until verification.
    Verification,
    /// Arbitration of a return (回退) by the level above.
    Arbitration,
    /// An escalation step: the unit at `step` must act before the case climbs further.
    Escalation {
        #[serde(with = "ladder_serde")]
        step: LadderStep,
        cause: Phase,
    },
    /// 报到: a unit called to a joint case reporting in.
    ReportIn { unit: String },
    /// A joint-case unit's own part of the work.
    JointPart { unit: String },
}

/// The part of the workflow a clock times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    SignFor,
    Handling,
    Verification,
    Arbitration,
    JointCase,
}

impl ClockKind {
    /// The phase this clock times; an escalation step belongs to the phase that breached.
    pub fn phase(&self) -> Phase {
        match self {
            ClockKind::SignFor => Phase::SignFor,
            ClockKind::Handling { .. } | ClockKind::Rework => Phase::Handling,
            ClockKind::Verification => Phase::Verification,
            ClockKind::Arbitration => Phase::Arbitration,
            ClockKind::Escalation { cause, .. } => *cause,
            ClockKind::ReportIn { .. } | ClockKind::JointPart { .. } => Phase::JointCase,
        }
    }

    pub fn is_escalation(&self) -> bool {
        matches!(self, ClockKind::Escalation { .. })
    }

    /// Whether a breach of this clock climbs the community's ladder. Verification is the
    /// hub's own desk, and joint-case deadlines are each unit's: those breaches are raised
    /// and counted, but climb nowhere.
    pub fn escalates(&self) -> bool {
        !matches!(
            self,
            ClockKind::Verification | ClockKind::ReportIn { .. } | ClockKind::JointPart { .. }
        )
    }
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClockKind::SignFor => f.write_str("sign_for"),
            ClockKind::Handling { stage } => write!(f, "handling:{stage}"),
            ClockKind::Rework => f.write_str("rework"),
            ClockKind::Verification => f.write_str("verification"),
            ClockKind::Arbitration => f.write_str("arbitration"),
            ClockKind::Escalation { step, .. } => write!(f, "escalation:{}", step.as_str()),
            ClockKind::ReportIn { unit } => write!(f, "report_in:{unit}"),
            ClockKind::JointPart { unit } => write!(f, "joint_part:{unit}"),
        }
    }
}

/// Why a clock is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// Waiting on the resident (a visit arranged, information asked for).
    AwaitingResident,
}

/// Something that happened to a running clock. Recorded in time order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ClockEvent {
    Paused {
        at: DateTime<Utc>,
        reason: PauseReason,
    },
    Resumed {
        at: DateTime<Utc>,
    },
    /// An approved extension (延期) adds `by` to the limit.
    Extended {
        at: DateTime<Utc>,
        by: Limit,
    },
    /// The timed thing was done (or the case left the phase): the clock stops for good.
    Stopped {
        at: DateTime<Utc>,
    },
}

impl ClockEvent {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            ClockEvent::Paused { at, .. }
            | ClockEvent::Resumed { at }
            | ClockEvent::Extended { at, .. }
            | ClockEvent::Stopped { at } => *at,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ClockEvent::Paused { .. } => "pause",
            ClockEvent::Resumed { .. } => "resume",
            ClockEvent::Extended { .. } => "extend",
            ClockEvent::Stopped { .. } => "stop",
        }
    }
}

/// Why an event could not be recorded on a clock.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    #[error("cannot {event} the {kind} clock: it was stopped at {stopped}")]
    Stopped {
        kind: ClockKind,
        event: &'static str,
        stopped: DateTime<Utc>,
    },
    #[error("cannot pause the {kind} clock: it is already paused")]
    AlreadyPaused { kind: ClockKind },
    #[error("cannot resume the {kind} clock: it is not paused")]
    NotPaused { kind: ClockKind },
    #[error("cannot {event} the {kind} clock at {at}: its last event is at {last}; events are recorded in time order")]
    OutOfOrder {
        kind: ClockKind,
        event: &'static str,
        at: DateTime<Utc>,
        last: DateTime<Utc>,
    },
}

/// Where a clock stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStatus {
    Running {
        deadline: DateTime<Utc>,
        remaining: TimeDelta,
    },
    /// Past the warning fraction of the limit.
    Warning {
        deadline: DateTime<Utc>,
        remaining: TimeDelta,
    },
    /// The limit is used up (a paused clock stays breached if it ran out before the pause).
    Breached {
        deadline: DateTime<Utc>,
        overdue: TimeDelta,
    },
    /// Paused with `left` milliseconds of its measure still to use.
    Paused {
        since: DateTime<Utc>,
        left_ms: i64,
        measure: Measure,
    },
    /// Stopped for good; `met` tells whether that was within the limit.
    Stopped { at: DateTime<Utc>, met: bool },
}

impl ClockStatus {
    pub fn name(&self) -> &'static str {
        match self {
            ClockStatus::Running { .. } => "running",
            ClockStatus::Warning { .. } => "warning",
            ClockStatus::Breached { .. } => "breached",
            ClockStatus::Paused { .. } => "paused",
            ClockStatus::Stopped { .. } => "stopped",
        }
    }
}

/// One SLA clock. Build it with [`SlaClock::start`], record events with
/// [`SlaClock::record`], read it with [`SlaClock::status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaClock {
    pub kind: ClockKind,
    /// Which dispatch round of the task the clock belongs to (re-dispatch, rework and reopen
    /// start a new round), so that clocks of the same kind stay distinct.
    pub round: u32,
    /// The id of the calendar working time is counted on.
    pub calendar: String,
    pub started_at: DateTime<Utc>,
    pub limit: Limit,
    /// Fraction of the limit after which the clock warns; `None` for no warning.
    pub warning_fraction: Option<f64>,
    events: Vec<ClockEvent>,
    // Derived from the fields above by `recompute`; stored for readers that have no
    // calendar at hand (lists, the API).
    #[serde(default)]
    deadline: Option<DateTime<Utc>>,
    #[serde(default)]
    warning_at: Option<DateTime<Utc>>,
    #[serde(default)]
    left_when_paused: i64,
}

impl SlaClock {
    /// A clock running from `started_at`.
    pub fn start(
        kind: ClockKind,
        round: u32,
        started_at: DateTime<Utc>,
        limit: Limit,
        warning_fraction: Option<f64>,
        calendar: &WorkingCalendar,
    ) -> SlaClock {
        let mut clock = SlaClock {
            kind,
            round,
            calendar: calendar.id().to_owned(),
            started_at,
            limit,
            warning_fraction,
            events: Vec::new(),
            deadline: None,
            warning_at: None,
            left_when_paused: 0,
        };
        clock.recompute(calendar);
        clock
    }

    /// Rebuilds a clock from storage: this clock's start and limit with `events` (its own
    /// events, if any, are replaced), checked to be in order and recomputed on `calendar`.
    /// `SlaClock::start(..).replay(stored_events, calendar)`.
    pub fn replay(
        mut self,
        events: impl IntoIterator<Item = ClockEvent>,
        calendar: &WorkingCalendar,
    ) -> Result<SlaClock, ClockError> {
        self.events.clear();
        for event in events {
            self.check(&event)?;
            self.events.push(event);
        }
        self.recompute(calendar);
        Ok(self)
    }

    /// Records an event and recomputes the deadline.
    pub fn record(
        &mut self,
        event: ClockEvent,
        calendar: &WorkingCalendar,
    ) -> Result<(), ClockError> {
        self.check(&event)?;
        self.events.push(event);
        self.recompute(calendar);
        Ok(())
    }

    fn check(&self, event: &ClockEvent) -> Result<(), ClockError> {
        let kind = || self.kind.clone();
        if let Some(stopped) = self.stopped_at() {
            return Err(ClockError::Stopped {
                kind: kind(),
                event: event.name(),
                stopped,
            });
        }
        let last = self.events.last().map_or(self.started_at, ClockEvent::at);
        if event.at() < last {
            return Err(ClockError::OutOfOrder {
                kind: kind(),
                event: event.name(),
                at: event.at(),
                last,
            });
        }
        match event {
            ClockEvent::Paused { .. } if self.is_paused() => {
                Err(ClockError::AlreadyPaused { kind: kind() })
            }
            ClockEvent::Resumed { .. } if !self.is_paused() => {
                Err(ClockError::NotPaused { kind: kind() })
            }
            _ => Ok(()),
        }
    }

    /// Recomputes the deadline and warning instant, e.g. after the calendar changed.
    pub fn recompute(&mut self, calendar: &WorkingCalendar) {
        let budget = self.budget_ms(calendar);
        self.deadline = self.when_used(budget, calendar);
        self.warning_at = self
            .warning_fraction
            .filter(|f| *f > 0.0 && *f < 1.0)
            .map(|f| ((budget as f64) * f).round() as i64)
            .filter(|w| *w > 0 && *w < budget)
            .and_then(|w| self.when_used(w, calendar));
        self.left_when_paused = match self.paused_since() {
            Some(since) => budget - self.used_ms(since, calendar),
            None => 0,
        };
    }

    pub fn events(&self) -> &[ClockEvent] {
        &self.events
    }

    /// The limit plus every extension, in milliseconds of the limit's measure.
    pub fn budget_ms(&self, calendar: &WorkingCalendar) -> i64 {
        let measure = self.limit.measure();
        self.limit.in_measure(measure, calendar)
            + self
                .events
                .iter()
                .filter_map(|e| match e {
                    ClockEvent::Extended { by, .. } => Some(by.in_measure(measure, calendar)),
                    _ => None,
                })
                .sum::<i64>()
    }

    /// Milliseconds of the limit's measure used up by `now`.
    pub fn used_ms(&self, now: DateTime<Utc>, calendar: &WorkingCalendar) -> i64 {
        let measure = self.limit.measure();
        let mut used = 0;
        for (from, to) in self.running_segments() {
            let to = to.map_or(now, |t| t.min(now));
            used += calendar.elapsed(from, to, measure);
        }
        used
    }

    /// When the limit runs out: `None` while paused or once stopped, unless it ran out first.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.deadline
    }

    /// When the clock passes its warning fraction, under the same conditions.
    pub fn warning_at(&self) -> Option<DateTime<Utc>> {
        self.warning_at
    }

    pub fn stopped_at(&self) -> Option<DateTime<Utc>> {
        match self.events.last() {
            Some(ClockEvent::Stopped { at }) => Some(*at),
            _ => None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.stopped_at().is_none()
    }

    pub fn is_paused(&self) -> bool {
        self.paused_since().is_some()
    }

    fn paused_since(&self) -> Option<DateTime<Utc>> {
        self.events.iter().rev().find_map(|e| match e {
            ClockEvent::Paused { at, .. } => Some(Some(*at)),
            ClockEvent::Resumed { .. } | ClockEvent::Stopped { .. } => Some(None),
            ClockEvent::Extended { .. } => None,
        })?
    }

    pub fn status(&self, now: DateTime<Utc>) -> ClockStatus {
        if let Some(at) = self.stopped_at() {
            // `deadline` is set on a stopped clock only if the limit ran out by the stop.
            let met = self.deadline.is_none_or(|d| at <= d);
            return ClockStatus::Stopped { at, met };
        }
        match (self.deadline, self.paused_since()) {
            (Some(deadline), _) if now >= deadline => ClockStatus::Breached {
                deadline,
                overdue: now - deadline,
            },
            (_, Some(since)) => ClockStatus::Paused {
                since,
                left_ms: self.left_when_paused,
                measure: self.limit.measure(),
            },
            (Some(deadline), None) if self.warning_at.is_some_and(|w| now >= w) => {
                ClockStatus::Warning {
                    deadline,
                    remaining: deadline - now,
                }
            }
            (Some(deadline), None) => ClockStatus::Running {
                deadline,
                remaining: deadline - now,
            },
            // A running clock always has a deadline; keep the status total all the same.
            (None, None) => ClockStatus::Running {
                deadline: DateTime::<Utc>::MAX_UTC,
                remaining: TimeDelta::MAX,
            },
        }
    }

    /// The intervals during which the clock ran: `(from, Some(to))`, and a last `(from, None)`
    /// if it is running now.
    fn running_segments(&self) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        let mut segments = Vec::new();
        let mut running = Some(self.started_at);
        for event in &self.events {
            match event {
                ClockEvent::Paused { at, .. } | ClockEvent::Stopped { at } => {
                    if let Some(from) = running.take() {
                        segments.push((from, Some(*at)));
                    }
                }
                ClockEvent::Resumed { at } => {
                    if running.is_none() {
                        running = Some(*at);
                    }
                }
                ClockEvent::Extended { .. } => {}
            }
        }
        if let Some(from) = running {
            segments.push((from, None));
        }
        segments
    }

    /// The earliest instant at which `target` ms of the measure have been used, if the clock
    /// gets there (it does not if paused or stopped first).
    fn when_used(&self, target: i64, calendar: &WorkingCalendar) -> Option<DateTime<Utc>> {
        let measure = self.limit.measure();
        let mut used = 0;
        for (from, to) in self.running_segments() {
            match to {
                Some(to) => {
                    let segment = calendar.elapsed(from, to, measure);
                    if used + segment >= target {
                        return Some(calendar.advance(from, target - used, measure));
                    }
                    used += segment;
                }
                None => return Some(calendar.advance(from, target - used, measure)),
            }
        }
        None
    }
}
