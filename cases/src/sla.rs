//! SLA policies: which limits a task runs against, and which clocks each workflow step
//! starts, stops, pauses or extends.
//!
//! A task runs under the policy its routing rule or category names (by id), else under the
//! first policy in file order that matches it; `[default]` takes what none matches
//! ([`SlaPolicies::policy_for`]). A policy matches on category codes (exact, or a prefix
//! written `"E01*"`),
//! priorities and departments; an empty list matches anything. Limits: sign-for (签收),
//! handling (处置, one limit or ordered stages), verification (核查), rework (返工, the last
//! handling limit unless given) and, optionally, arbitration of a return (回退).

use std::collections::BTreeSet;
use std::path::Path;

use hub_schemas::event::Department;
use serde::Deserialize;
use toml::Spanned;

use super::calendar::{Limit, WorkingCalendar};
use super::clock::{ClockError, ClockEvent, ClockKind, PauseReason, Phase, SlaClock};
use super::escalation::{EscalationConfig, RawEscalation};
use super::joint_case::{JointCaseConfig, RawJointCase};
use super::lifecycle::{Action, Transition};
use super::{Calendars, ConfigError, Source};
use hub_router::priority::Priority;

/// The name of the handling stage of an unstaged policy.
pub const SINGLE_STAGE: &str = "handling";

/// A category code pattern: an exact code, or a prefix (`"E01*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CategoryPattern {
    Exact(String),
    Prefix(String),
}

impl CategoryPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (body, prefix) = match s.strip_suffix('*') {
            Some(body) => (body, true),
            None => (s, false),
        };
        if body.is_empty() {
            return Err(format!(
                "category pattern {s:?} matches everything; that is what [default] is for"
            ));
        }
        if !body
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "category pattern {s:?}: a code is letters, digits, '-', '_' or '.', with an optional trailing '*'"
            ));
        }
        Ok(if prefix {
            CategoryPattern::Prefix(body.to_owned())
        } else {
            CategoryPattern::Exact(body.to_owned())
        })
    }

    pub fn matches(&self, code: &str) -> bool {
        match self {
            CategoryPattern::Exact(c) => c == code,
            CategoryPattern::Prefix(p) => code.starts_with(p.as_str()),
        }
    }

    /// Whether every code `other` matches is also matched by `self`.
    fn covers(&self, other: &CategoryPattern) -> bool {
        match (self, other) {
            (CategoryPattern::Exact(a), CategoryPattern::Exact(b)) => a == b,
            (
                CategoryPattern::Prefix(p),
                CategoryPattern::Exact(c) | CategoryPattern::Prefix(c),
            ) => c.starts_with(p.as_str()),
            (CategoryPattern::Exact(_), CategoryPattern::Prefix(_)) => false,
        }
    }
}

/// When a handling stage's clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStart {
    /// At dispatch, like the first stage: the stages are milestones counted from dispatch.
    Dispatch,
    /// When the stage before it is reported done.
    PreviousStage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    pub limit: Limit,
    pub from: StageStart,
}

/// One SLA policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    pub id: String,
    pub name: String,
    pub categories: Vec<CategoryPattern>,
    pub priorities: Vec<Priority>,
    pub departments: Vec<Department>,
    /// Id of the working calendar its working-time limits count on.
    pub calendar: String,
    /// Fraction of each limit at which its clock warns.
    pub warning_fraction: f64,
    pub sign_for: Limit,
    /// Handling stages in order; one stage named "handling" when unstaged.
    pub handling: Vec<Stage>,
    pub verification: Limit,
    pub rework: Limit,
    pub arbitration: Option<Limit>,
    /// Where the calendar is named, for "unknown calendar" errors.
    calendar_at: (usize, usize),
}

/// What the policy choice is made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFacts<'a> {
    pub category_code: &'a str,
    pub priority: Option<Priority>,
    pub department: Option<Department>,
}

impl SlaPolicy {
    pub fn matches(&self, facts: &TaskFacts<'_>) -> bool {
        (self.categories.is_empty()
            || self
                .categories
                .iter()
                .any(|p| p.matches(facts.category_code)))
            && (self.priorities.is_empty()
                || facts.priority.is_some_and(|p| self.priorities.contains(&p)))
            && (self.departments.is_empty()
                || facts
                    .department
                    .is_some_and(|d| self.departments.contains(&d)))
    }

    /// The stage names, for [`super::TaskState::new`].
    pub fn stage_names(&self) -> Vec<String> {
        self.handling.iter().map(|s| s.name.clone()).collect()
    }

    /// Whether every task `later` matches is matched by `self` first.
    fn shadows(&self, later: &SlaPolicy) -> bool {
        let categories = self.categories.is_empty()
            || (!later.categories.is_empty()
                && later
                    .categories
                    .iter()
                    .all(|c| self.categories.iter().any(|p| p.covers(c))));
        let priorities = self.priorities.is_empty()
            || (!later.priorities.is_empty()
                && later.priorities.iter().all(|p| self.priorities.contains(p)));
        let departments = self.departments.is_empty()
            || (!later.departments.is_empty()
                && later
                    .departments
                    .iter()
                    .all(|d| self.departments.contains(d)));
        categories && priorities && departments
    }

    fn clock(
        &self,
        kind: ClockKind,
        round: u32,
        at: chrono::DateTime<chrono::Utc>,
        limit: Limit,
        calendar: &WorkingCalendar,
    ) -> ClockEffect {
        ClockEffect::Start(SlaClock::start(
            kind,
            round,
            at,
            limit,
            Some(self.warning_fraction),
            calendar,
        ))
    }

    /// The clocks a workflow transition starts, stops, pauses or extends. Escalation clocks
    /// are started by [`super::escalation::escalate`], not here; they stop with their phase.
    pub fn clock_effects(&self, t: &Transition, calendar: &WorkingCalendar) -> Vec<ClockEffect> {
        let at = t.at;
        let round = t.state.round;
        let stop = |phase: Option<Phase>| ClockEffect::Stop {
            phase,
            stage: None,
            at,
        };
        match &t.action {
            Action::Dispatch { .. }
            | Action::Arbitrate { .. }
            | Action::Reroute { .. }
            | Action::Callback { satisfied: false } => {
                // A new round: whatever still ran from the last one stops.
                let mut effects = vec![
                    stop(None),
                    self.clock(ClockKind::SignFor, round, at, self.sign_for, calendar),
                ];
                for (i, stage) in self.handling.iter().enumerate() {
                    if i == 0 || stage.from == StageStart::Dispatch {
                        let kind = ClockKind::Handling {
                            stage: stage.name.clone(),
                        };
                        effects.push(self.clock(kind, round, at, stage.limit, calendar));
                    }
                }
                effects
            }
            Action::SignFor => vec![stop(Some(Phase::SignFor))],
            Action::ReportStage { stage } => {
                let mut effects = vec![ClockEffect::Stop {
                    phase: Some(Phase::Handling),
                    stage: Some(stage.clone()),
                    at,
                }];
                let next = self
                    .handling
                    .iter()
                    .position(|s| &s.name == stage)
                    .and_then(|i| self.handling.get(i + 1));
                if let Some(next) = next.filter(|n| n.from == StageStart::PreviousStage) {
                    let kind = ClockKind::Handling {
                        stage: next.name.clone(),
                    };
                    effects.push(self.clock(kind, round, at, next.limit, calendar));
                }
                effects
            }
            Action::Resolve { .. } => vec![
                stop(Some(Phase::SignFor)),
                stop(Some(Phase::Handling)),
                self.clock(
                    ClockKind::Verification,
                    round,
                    at,
                    self.verification,
                    calendar,
                ),
            ],
            Action::Verify => vec![stop(Some(Phase::Verification))],
            Action::Rework { .. } => vec![
                stop(Some(Phase::Verification)),
                self.clock(ClockKind::Rework, round, at, self.rework, calendar),
            ],
            Action::Close | Action::Cancel { .. } => vec![stop(None)],
            Action::Return { .. } => {
                let mut effects = vec![stop(None)];
                if let Some(limit) = self.arbitration {
                    effects.push(self.clock(ClockKind::Arbitration, round, at, limit, calendar));
                }
                effects
            }
            Action::ApproveExtension { by: Some(by) } => vec![ClockEffect::Extend {
                phase: Phase::Handling,
                by: *by,
                at,
            }],
            Action::AwaitResident => vec![ClockEffect::Pause {
                phase: Phase::Handling,
                reason: PauseReason::AwaitingResident,
                at,
            }],
            Action::ResidentResponded => vec![ClockEffect::Resume {
                phase: Phase::Handling,
                at,
            }],
            Action::ConveneJointMeeting { case } => case
                .clocks(round, calendar)
                .into_iter()
                .map(ClockEffect::Start)
                .collect(),
            Action::ReportIn { unit } => vec![ClockEffect::StopKind {
                kind: ClockKind::ReportIn {
                    unit: unit.trim().to_owned(),
                },
                at,
            }],
            Action::CompletePart { unit } => vec![ClockEffect::StopKind {
                kind: ClockKind::JointPart {
                    unit: unit.trim().to_owned(),
                },
                at,
            }],
            Action::Start
            | Action::RequestExtension { .. }
            | Action::ApproveExtension { by: None }
            | Action::RefuseExtension
            | Action::Callback { satisfied: true }
            | Action::Escalate { .. } => Vec::new(),
        }
    }
}

/// What a transition does to a task's clocks.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockEffect {
    /// A new clock.
    Start(SlaClock),
    /// Stop the open clocks of `phase` (every phase if `None`), escalation steps of that
    /// phase included; only the named handling stage if `stage` is given.
    Stop {
        phase: Option<Phase>,
        stage: Option<String>,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Stop the open clock of exactly this kind (a joint-case unit's report-in or part).
    StopKind {
        kind: ClockKind,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Stop every open escalation step: a newly raised step supersedes them (one
    /// escalation chain per task).
    StopEscalations { at: chrono::DateTime<chrono::Utc> },
    /// Pause the running clocks of `phase`, escalation steps included.
    Pause {
        phase: Phase,
        reason: PauseReason,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Resume the paused clocks of `phase`.
    Resume {
        phase: Phase,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Add time to the open clocks of `phase` (not to escalation steps already raised).
    Extend {
        phase: Phase,
        by: Limit,
        at: chrono::DateTime<chrono::Utc>,
    },
}

impl ClockEffect {
    /// The event this effect records on `clock`, if it concerns it.
    pub fn event_for(&self, clock: &SlaClock) -> Option<ClockEvent> {
        if !clock.is_open() {
            return None;
        }
        let phase = clock.kind.phase();
        match self {
            ClockEffect::Start(_) => None,
            ClockEffect::Stop {
                phase: p,
                stage,
                at,
            } => {
                let in_phase = p.is_none_or(|p| p == phase);
                let in_stage = match (stage, &clock.kind) {
                    (None, _) => true,
                    (Some(s), ClockKind::Handling { stage }) => s == stage,
                    (Some(_), _) => false,
                };
                (in_phase && in_stage).then_some(ClockEvent::Stopped { at: *at })
            }
            ClockEffect::StopKind { kind, at } => {
                (clock.kind == *kind).then_some(ClockEvent::Stopped { at: *at })
            }
            ClockEffect::StopEscalations { at } => clock
                .kind
                .is_escalation()
                .then_some(ClockEvent::Stopped { at: *at }),
            ClockEffect::Pause {
                phase: p,
                reason,
                at,
            } => (*p == phase && !clock.is_paused()).then_some(ClockEvent::Paused {
                at: *at,
                reason: *reason,
            }),
            ClockEffect::Resume { phase: p, at } => {
                (*p == phase && clock.is_paused()).then_some(ClockEvent::Resumed { at: *at })
            }
            ClockEffect::Extend { phase: p, by, at } => (*p == phase
                && !clock.kind.is_escalation())
            .then_some(ClockEvent::Extended { at: *at, by: *by }),
        }
    }
}

/// Applies effects to a task's clocks held in memory: records events on the clocks they
/// concern and appends new clocks. Returns the indices of the clocks that changed or were
/// added, for the caller to persist.
pub fn apply_effects(
    clocks: &mut Vec<SlaClock>,
    effects: &[ClockEffect],
    calendar: &WorkingCalendar,
) -> Result<Vec<usize>, ClockError> {
    let mut changed = BTreeSet::new();
    for effect in effects {
        if let ClockEffect::Start(clock) = effect {
            clocks.push(clock.clone());
            changed.insert(clocks.len() - 1);
            continue;
        }
        for (i, clock) in clocks.iter_mut().enumerate() {
            if let Some(event) = effect.event_for(clock) {
                clock.record(event, calendar)?;
                changed.insert(i);
            }
        }
    }
    Ok(changed.into_iter().collect())
}

// ------------------------------------------------------------------------------ the file

/// `policies.toml`: the ordered policies, the default, and the escalation and joint-case
/// limits.
#[derive(Debug, Clone)]
pub struct SlaPolicies {
    file: String,
    /// Recorded with each task's SLA, so a later change of policy is explainable.
    pub version: String,
    policies: Vec<SlaPolicy>,
    default: SlaPolicy,
    pub escalation: EscalationConfig,
    pub joint_case: JointCaseConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicies {
    version: Spanned<String>,
    calendar: Spanned<String>,
    warning_fraction: Spanned<f64>,
    #[serde(default)]
    policies: Vec<RawPolicy>,
    default: Spanned<RawPolicy>,
    escalation: RawEscalation,
    joint_case: RawJointCase,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    id: Option<Spanned<String>>,
    name: Option<String>,
    #[serde(default)]
    categories: Vec<Spanned<String>>,
    #[serde(default)]
    priorities: Vec<Spanned<String>>,
    #[serde(default)]
    departments: Vec<Spanned<String>>,
    calendar: Option<Spanned<String>>,
    warning_fraction: Option<Spanned<f64>>,
    sign_for: Spanned<String>,
    handling: Option<Spanned<String>>,
    stages: Option<Spanned<Vec<RawStage>>>,
    verification: Spanned<String>,
    rework: Option<Spanned<String>>,
    arbitration: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    name: Spanned<String>,
    limit: Spanned<String>,
    from: Option<Spanned<String>>,
}

fn fraction(src: &Source<'_>, f: &Spanned<f64>) -> Result<f64, ConfigError> {
    let v = *f.get_ref();
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(src.at(
            f.span(),
            format!("warning_fraction {v} must be between 0 and 1 (e.g. 0.8)"),
        ))
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

impl SlaPolicies {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses `policies.toml` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let src = Source::new(file, text);
        let raw: RawPolicies = src.parse()?;
        let version = raw.version.get_ref().trim().to_owned();
        if version.is_empty() {
            return Err(src.at(
                raw.version.span(),
                "version is empty: give the policies a version to record with tasks",
            ));
        }
        let calendar = &raw.calendar;
        let warning = fraction(&src, &raw.warning_fraction)?;

        let mut policies: Vec<SlaPolicy> = Vec::new();
        let mut ids = BTreeSet::new();
        for p in &raw.policies {
            let Some(id) = &p.id else {
                return Err(src.at(p.sign_for.span(), "this [[policies]] entry has no id"));
            };
            let policy = build_policy(&src, p, id.get_ref(), id.span(), calendar, warning)?;
            if policy.categories.is_empty()
                && policy.priorities.is_empty()
                && policy.departments.is_empty()
            {
                return Err(src.at(
                    id.span(),
                    format!("policy {:?} matches every task: give it categories, priorities or departments, or make it the [default]", policy.id),
                ));
            }
            if !ids.insert(policy.id.clone()) {
                return Err(src.at(
                    id.span(),
                    format!("policy id {:?} is used twice", policy.id),
                ));
            }
            if let Some(earlier) = policies.iter().find(|e| e.shadows(&policy)) {
                return Err(src.at(
                    id.span(),
                    format!(
                        "policy {:?} can never match: policy {:?} above it takes every task it would (first match wins; move it up or narrow the other)",
                        policy.id, earlier.id
                    ),
                ));
            }
            policies.push(policy);
        }

        let d = raw.default.get_ref();
        if !d.categories.is_empty() || !d.priorities.is_empty() || !d.departments.is_empty() {
            return Err(src.at(raw.default.span(), "[default] takes every task no policy matched; it cannot list categories, priorities or departments"));
        }
        let default_id = d.id.as_ref().map_or("default", |i| i.get_ref().as_str());
        let default = build_policy(&src, d, default_id, raw.default.span(), calendar, warning)?;

        Ok(SlaPolicies {
            file: file.to_owned(),
            version,
            policies,
            default,
            escalation: raw.escalation.build(&src)?,
            joint_case: raw.joint_case.build(&src)?,
        })
    }

    /// The policy for a task: the first that matches, else the default.
    pub fn select(&self, facts: &TaskFacts<'_>) -> &SlaPolicy {
        self.policies
            .iter()
            .find(|p| p.matches(facts))
            .unwrap_or(&self.default)
    }

    /// The policy a task runs under: the one its routing rule or category names, else the
    /// first that matches. A name that is not a policy falls back to matching; loading the
    /// routing configuration refuses such names (check them with [`SlaPolicies::get`]).
    pub fn policy_for(&self, named: Option<&str>, facts: &TaskFacts<'_>) -> &SlaPolicy {
        named
            .and_then(|id| self.get(id))
            .unwrap_or_else(|| self.select(facts))
    }

    /// A policy by id (the default included), for a category or rule that names one.
    pub fn get(&self, id: &str) -> Option<&SlaPolicy> {
        self.policies
            .iter()
            .chain(std::iter::once(&self.default))
            .find(|p| p.id == id)
    }

    pub fn policies(&self) -> &[SlaPolicy] {
        &self.policies
    }

    pub fn default_policy(&self) -> &SlaPolicy {
        &self.default
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// Refuses policies naming a calendar that is not loaded.
    pub fn check_calendars(&self, calendars: &Calendars) -> Result<(), ConfigError> {
        for p in self.policies.iter().chain(std::iter::once(&self.default)) {
            if calendars.get(&p.calendar).is_none() {
                let known: Vec<&str> = calendars.ids().collect();
                return Err(ConfigError::Invalid {
                    file: self.file.clone(),
                    line: p.calendar_at.0,
                    column: p.calendar_at.1,
                    message: format!(
                        "policy {:?}: calendar {:?} is not loaded (known: {})",
                        p.id,
                        p.calendar,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
        }
        Ok(())
    }
}

fn build_policy(
    src: &Source<'_>,
    p: &RawPolicy,
    id: &str,
    id_span: std::ops::Range<usize>,
    default_calendar: &Spanned<String>,
    default_warning: f64,
) -> Result<SlaPolicy, ConfigError> {
    let id = id.trim().to_owned();
    if !is_name(&id) {
        return Err(src.at(
            id_span,
            format!("policy id {id:?} must be lower-case letters, digits, '_' or '-'"),
        ));
    }
    let ctx = |m: String| format!("policy {id:?}: {m}");
    let limit =
        |v: &Spanned<String>| Limit::parse(v.get_ref()).map_err(|m| src.at(v.span(), ctx(m)));

    let mut categories = Vec::new();
    for c in &p.categories {
        categories.push(CategoryPattern::parse(c.get_ref()).map_err(|m| src.at(c.span(), ctx(m)))?);
    }
    let mut priorities = Vec::new();
    for pr in &p.priorities {
        let v = pr.get_ref().trim();
        let priority = Priority::parse(v).ok_or_else(|| {
            src.at(
                pr.span(),
                ctx(format!(
                    "unknown priority {v:?} (known: {})",
                    Priority::known()
                )),
            )
        })?;
        priorities.push(priority);
    }
    let mut departments = Vec::new();
    for d in &p.departments {
        departments.push(Department::parse(d.get_ref().trim()).ok_or_else(|| {
            src.at(
                d.span(),
                ctx(format!(
                    "unknown department {:?} (known: {})",
                    d.get_ref(),
                    Department::ALL.map(Department::as_str).join(", ")
                )),
            )
        })?);
    }

    let handling = match (&p.handling, &p.stages) {
        (Some(h), None) => vec![Stage {
            name: SINGLE_STAGE.to_owned(),
            limit: limit(h)?,
            from: StageStart::Dispatch,
        }],
        (None, Some(stages)) => {
            if stages.get_ref().is_empty() {
                return Err(src.at(stages.span(), ctx("stages is empty".into())));
            }
            let mut out: Vec<Stage> = Vec::new();
            for (i, s) in stages.get_ref().iter().enumerate() {
                let name = s.name.get_ref().trim().to_owned();
                if !is_name(&name) {
                    return Err(src.at(
                        s.name.span(),
                        ctx(format!(
                            "stage name {name:?} must be lower-case letters, digits or '_'"
                        )),
                    ));
                }
                if out.iter().any(|o| o.name == name) {
                    return Err(src.at(
                        s.name.span(),
                        ctx(format!("stage {name:?} is listed twice")),
                    ));
                }
                let from = match s.from.as_ref().map(|f| (f, f.get_ref().as_str())) {
                    None | Some((_, "dispatch")) => StageStart::Dispatch,
                    Some((f, "previous_stage")) => {
                        if i == 0 {
                            return Err(src.at(
                                f.span(),
                                ctx(
                                    "the first stage has no previous stage; it starts at dispatch"
                                        .into(),
                                ),
                            ));
                        }
                        StageStart::PreviousStage
                    }
                    Some((f, other)) => {
                        return Err(src.at(
                            f.span(),
                            ctx(format!(
                                "stage from {other:?} must be \"dispatch\" or \"previous_stage\""
                            )),
                        ));
                    }
                };
                out.push(Stage {
                    name,
                    limit: limit(&s.limit)?,
                    from,
                });
            }
            out
        }
        (Some(h), Some(_)) => {
            return Err(src.at(
                h.span(),
                ctx("give either handling (one limit) or stages, not both".into()),
            ));
        }
        (None, None) => {
            return Err(src.at(
                p.sign_for.span(),
                ctx("has no handling limit: give handling = \"...\" or stages".into()),
            ));
        }
    };
    let last = handling.last().map(|s| s.limit);

    let calendar = p.calendar.as_ref().unwrap_or(default_calendar);
    let calendar_at = src.position(calendar.span().start);
    let warning_fraction = match &p.warning_fraction {
        Some(f) => fraction(src, f)?,
        None => default_warning,
    };
    Ok(SlaPolicy {
        name: p.name.clone().unwrap_or_else(|| id.clone()),
        categories,
        priorities,
        departments,
        calendar: calendar.get_ref().trim().to_owned(),
        warning_fraction,
        sign_for: limit(&p.sign_for)?,
        verification: limit(&p.verification)?,
        rework: match &p.rework {
            Some(r) => limit(r)?,
            None => last.unwrap_or(Limit::working_days(1)),
        },
        arbitration: p.arbitration.as_ref().map(limit).transpose()?,
        handling,
        calendar_at,
        id,
    })
}
