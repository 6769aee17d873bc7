//! Escalation along a community's ladder (grid worker → workstation → party branch → joint
//! meeting → street → district, as configured per community in `city.toml`).
//!
//! When a clock breaches, the case climbs one step; the step is an event with its own clock,
//! whose limit is configured per step. If that clock breaches too, the case climbs again,
//! until the ladder's top. Each step's clock starts when the step is raised (`now`), so a
//! step raised late — after the hub was down — still gets its full time. A task has one
//! chain: raising a step stops the clocks of the steps below it. The assignee does not
//! change: the unit at the step oversees and presses, the case stays with its owner.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use toml::Spanned;

use super::calendar::{spanned_limit, Limit, WorkingCalendar};
use super::clock::{ClockKind, SlaClock};
use super::sla::ClockEffect;
use super::{ConfigError, Source};
use hub_router::city::LadderStep;

/// How long each step has to act before the case climbs to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationConfig {
    pub default: Limit,
    /// Per-step limits, by position in [`LadderStep::ALL`]; `None` takes `default`.
    pub steps: [Option<Limit>; 6],
}

impl EscalationConfig {
    pub fn new(default: Limit) -> Self {
        EscalationConfig {
            default,
            steps: [None; 6],
        }
    }

    pub fn with_step(mut self, step: LadderStep, limit: Limit) -> Self {
        self.steps[ladder_rank(step)] = Some(limit);
        self
    }

    pub fn limit_for(&self, step: LadderStep) -> Limit {
        self.steps[ladder_rank(step)].unwrap_or(self.default)
    }
}

/// `[escalation]` in `policies.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEscalation {
    default: Spanned<String>,
    grid_worker: Option<Spanned<String>>,
    workstation: Option<Spanned<String>>,
    party_branch: Option<Spanned<String>>,
    joint_meeting: Option<Spanned<String>>,
    street: Option<Spanned<String>>,
    district: Option<Spanned<String>>,
}

impl RawEscalation {
    pub(crate) fn build(&self, src: &Source<'_>) -> Result<EscalationConfig, ConfigError> {
        let mut config = EscalationConfig::new(spanned_limit(src, &self.default)?);
        let steps = [
            &self.grid_worker,
            &self.workstation,
            &self.party_branch,
            &self.joint_meeting,
            &self.street,
            &self.district,
        ];
        for (i, value) in steps.into_iter().enumerate() {
            if let Some(value) = value {
                config.steps[i] = Some(spanned_limit(src, value)?);
            }
        }
        Ok(config)
    }
}

/// The position of a step on the full ladder, lowest first.
pub fn ladder_rank(step: LadderStep) -> usize {
    LadderStep::ALL.iter().position(|s| *s == step).unwrap_or(0)
}

/// The step a breach leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationStep {
    pub step: LadderStep,
    /// The step's own clock; its deadline is when the case climbs again.
    pub clock: SlaClock,
}

impl EscalationStep {
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        self.clock.deadline()
    }

    /// The clock effects of raising this step: earlier steps' clocks stop (the case has
    /// one escalation chain, at its highest step) and this step's clock starts.
    pub fn clock_effects(&self) -> Vec<ClockEffect> {
        vec![
            ClockEffect::StopEscalations {
                at: self.clock.started_at,
            },
            ClockEffect::Start(self.clock.clone()),
        ]
    }
}

/// What a breach leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Escalation {
    Step(EscalationStep),
    /// The case is at the top of its ladder (or the community has none): the breach stands
    /// and is reported, but there is nowhere left to climb.
    Exhausted,
    /// The breached clock does not climb the ladder (see [`ClockKind::escalates`]).
    NotOnLadder,
}

/// The next step after a breach of `breached`. `current` is the step the task is already at
/// (from [`super::TaskState::escalation`]); if the breached clock is itself an escalation
/// step, the case climbs from that step. Steps not on the community's `ladder` are skipped.
pub fn escalate(
    ladder: &[LadderStep],
    breached: &SlaClock,
    current: Option<LadderStep>,
    now: DateTime<Utc>,
    config: &EscalationConfig,
    calendar: &WorkingCalendar,
) -> Escalation {
    if !breached.kind.escalates() {
        return Escalation::NotOnLadder;
    }
    let from_clock = match &breached.kind {
        ClockKind::Escalation { step, .. } => Some(*step),
        _ => None,
    };
    let at = match (current, from_clock) {
        (Some(a), Some(b)) => Some(if ladder_rank(a) >= ladder_rank(b) {
            a
        } else {
            b
        }),
        (a, b) => a.or(b),
    };
    let above = |s: &LadderStep| at.is_none_or(|at| ladder_rank(*s) > ladder_rank(at));
    let Some(step) = ladder
        .iter()
        .copied()
        .filter(above)
        .min_by_key(|s| ladder_rank(*s))
    else {
        return Escalation::Exhausted;
    };
    let kind = ClockKind::Escalation {
        step,
        cause: breached.kind.phase(),
    };
    let clock = SlaClock::start(
        kind,
        breached.round,
        now,
        config.limit_for(step),
        None,
        calendar,
    );
    Escalation::Step(EscalationStep { step, clock })
}

/// Serde for [`LadderStep`] (defined with the city model, without serde) as its config name.
pub mod ladder_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use hub_router::city::LadderStep;

    pub fn serialize<S: Serializer>(step: &LadderStep, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(step.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LadderStep, D::Error> {
        let name = String::deserialize(d)?;
        LadderStep::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown ladder step {name:?} (known: {})",
                LadderStep::ALL.map(LadderStep::as_str).join(", ")
            ))
        })
    }

    /// The same for `Option<LadderStep>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use hub_router::city::LadderStep;

        pub fn serialize<S: Serializer>(
            step: &Option<LadderStep>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match step {
                Some(step) => s.serialize_some(step.as_str()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<LadderStep>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(name) => LadderStep::parse(&name).map(Some).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "unknown ladder step {name:?} (known: {})",
                        LadderStep::ALL.map(LadderStep::as_str).join(", ")
                    ))
                }),
            }
        }
    }
}
