//! The task state machine (GB/T 30428 case workflow):
//!
//! ```text
//! created ─dispatch─▶ dispatched ─sign_for─▶ signed_for ─start─▶ in_progress ─resolve─▶ resolved
//!   │ 立案              派遣 │                  签收 │               处置 │           反馈 │
//!   │                       │ return (回退)        │ return               │ report_stage    ├─verify─▶ verified ─close─▶ closed
//!   └─cancel (注销)          ▼                      ▼                      │ (staged limits) │  核查         │  结案      │
//!                        returned ─arbitrate─▶ dispatched (re-dispatched)  │                 └─rework (返工)─▶ in_progress
//!                                                                                        callback unsatisfied (回访) ─▶ dispatched (reopened)
//! ```
//!
//! Besides the status a task carries flags that change what is allowed: an extension (延期)
//! awaiting a decision, waiting on the resident, the ladder step it has been escalated to,
//! whether the resident callback was recorded. [`TaskState::allowed_actions`] is the single
//! source of what may happen next; [`apply`] refuses anything else and says what is allowed.
//!
//! Who may do what (a unit signs for its own tasks, the level above arbitrates) is checked by
//! the API's access rules, not here: this module knows states, not accounts.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::calendar::Limit;
use super::escalation::{ladder_rank, ladder_serde};
use super::joint_case::JointCase;
use hub_router::city::LadderStep;
use hub_router::task::{AssignedUnit, TaskStatus};

// ------------------------------------------------------------------------------ reasons

/// Why a unit sends a case back (回退原因). Arbitration by the level above decides who
/// takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnReason {
    /// 非本单位职责: the matter is another unit's remit.
    NotOurRemit,
    /// 不在辖区: the place is outside the unit's area.
    OutsideArea,
    /// 未准入: the task type is not on the community's admission list (准入制).
    NotAdmitted,
    /// 信息不全: the case cannot be acted on with the information given.
    InsufficientInformation,
    /// 重复派遣: the same matter is already being handled.
    Duplicate,
    /// 超出权限: it needs powers the unit does not have (enforcement, funds).
    BeyondPowers,
    /// 其他: a note must say why.
    Other,
}

impl ReturnReason {
    pub const ALL: [ReturnReason; 7] = [
        ReturnReason::NotOurRemit,
        ReturnReason::OutsideArea,
        ReturnReason::NotAdmitted,
        ReturnReason::InsufficientInformation,
        ReturnReason::Duplicate,
        ReturnReason::BeyondPowers,
        ReturnReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReturnReason::NotOurRemit => "not_our_remit",
            ReturnReason::OutsideArea => "outside_area",
            ReturnReason::NotAdmitted => "not_admitted",
            ReturnReason::InsufficientInformation => "insufficient_information",
            ReturnReason::Duplicate => "duplicate",
            ReturnReason::BeyondPowers => "beyond_powers",
            ReturnReason::Other => "other",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ReturnReason::NotOurRemit => "非本单位职责",
            ReturnReason::OutsideArea => "不在辖区",
            ReturnReason::NotAdmitted => "未准入",
            ReturnReason::InsufficientInformation => "信息不全",
            ReturnReason::Duplicate => "重复派遣",
            ReturnReason::BeyondPowers => "超出权限",
            ReturnReason::Other => "其他",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why a case is cancelled (注销原因).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// 无效: not a real matter (a test, a prank, nothing found on site).
    Invalid,
    /// 重复: the same matter is already a case.
    Duplicate,
    /// 不属于受理范围: not something the hub's units handle.
    OutOfScope,
    /// 撤回: the reporter withdrew it.
    Withdrawn,
    /// 其他: a note must say why.
    Other,
}

impl CancelReason {
    pub const ALL: [CancelReason; 5] = [
        CancelReason::Invalid,
        CancelReason::Duplicate,
        CancelReason::OutOfScope,
        CancelReason::Withdrawn,
        CancelReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Invalid => "invalid",
            CancelReason::Duplicate => "duplicate",
            CancelReason::OutOfScope => "out_of_scope",
            CancelReason::Withdrawn => "withdrawn",
            CancelReason::Other => "other",
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            CancelReason::Invalid => "无效",
            CancelReason::Duplicate => "重复",
            CancelReason::OutOfScope => "不属于受理范围",
            CancelReason::Withdrawn => "撤回",
            CancelReason::Other => "其他",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

// ------------------------------------------------------------------------------ actions

/// Something a person or the hub does to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// 派遣 to a unit.
    Dispatch { unit: String },
    /// 签收 by the unit.
    SignFor,
    /// 处置 begins.
    Start,
    /// A stage of a staged limit is done (e.g. work stopped, before the penalty).
    ReportStage { stage: String },
    /// 反馈: the unit reports the matter handled.
    Resolve { feedback: String },
    /// 核查 passed.
    Verify,
    /// 核查 failed: 返工, back to the unit.
    Rework { finding: String },
    /// 结案
    Close,
    /// 注销
    Cancel { reason: CancelReason },
    /// 回退 by the unit, for arbitration by the level above.
    Return { reason: ReturnReason },
    /// The level above decides who takes a returned case (the same unit if the return is
    /// refused) and re-dispatches it.
    Arbitrate { unit: String },
    /// 延期申请
    RequestExtension { by: Limit },
    /// 延期批准, for what was asked or for `by`.
    ApproveExtension { by: Option<Limit> },
    /// 延期不予批准
    RefuseExtension,
    /// The unit waits on the resident; handling clocks pause.
    AwaitResident,
    /// The resident answered; handling clocks resume.
    ResidentResponded,
    /// 回访: the resident's verdict. Unsatisfied reopens the case.
    Callback { satisfied: bool },
    /// The case climbs the community's ladder to `step`.
    Escalate {
        #[serde(with = "ladder_serde")]
        step: LadderStep,
    },
    /// 吹哨: the case is put to the joint meeting, which names a lead and co-handlers, each
    /// with a report-in deadline and a part of the work (see [`JointCase::convene`]).
    ConveneJointMeeting { case: JointCase },
    /// 报到: a unit called to the joint case reports in.
    ReportIn { unit: String },
    /// A unit called to the joint case finished its part.
    CompletePart { unit: String },
    /// 改派 by a rules version: a task not yet signed for goes, in a new round, to the lead
    /// unit and co-handlers `rules_version` routes it to. Only the hub does this, when an
    /// administrator activates a version and asks for it; no account may.
    Reroute {
        lead: AssignedUnit,
        co_handlers: Vec<AssignedUnit>,
        rules_version: String,
    },
}

/// The name of an action, as listed in "allowed now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Dispatch,
    SignFor,
    Start,
    ReportStage,
    Resolve,
    Verify,
    Rework,
    Close,
    Cancel,
    Return,
    Arbitrate,
    RequestExtension,
    ApproveExtension,
    RefuseExtension,
    AwaitResident,
    ResidentResponded,
    Callback,
    Escalate,
    ConveneJointMeeting,
    ReportIn,
    CompletePart,
    Reroute,
}

impl ActionKind {
    pub const ALL: [ActionKind; 22] = [
        ActionKind::Dispatch,
        ActionKind::SignFor,
        ActionKind::Start,
        ActionKind::ReportStage,
        ActionKind::Resolve,
        ActionKind::Verify,
        ActionKind::Rework,
        ActionKind::Close,
        ActionKind::Cancel,
        ActionKind::Return,
        ActionKind::Arbitrate,
        ActionKind::RequestExtension,
        ActionKind::ApproveExtension,
        ActionKind::RefuseExtension,
        ActionKind::AwaitResident,
        ActionKind::ResidentResponded,
        ActionKind::Callback,
        ActionKind::Escalate,
        ActionKind::ConveneJointMeeting,
        ActionKind::ReportIn,
        ActionKind::CompletePart,
        ActionKind::Reroute,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Dispatch => "dispatch",
            ActionKind::SignFor => "sign_for",
            ActionKind::Start => "start",
            ActionKind::ReportStage => "report_stage",
            ActionKind::Resolve => "resolve",
            ActionKind::Verify => "verify",
            ActionKind::Rework => "rework",
            ActionKind::Close => "close",
            ActionKind::Cancel => "cancel",
            ActionKind::Return => "return",
            ActionKind::Arbitrate => "arbitrate",
            ActionKind::RequestExtension => "request_extension",
            ActionKind::ApproveExtension => "approve_extension",
            ActionKind::RefuseExtension => "refuse_extension",
            ActionKind::AwaitResident => "await_resident",
            ActionKind::ResidentResponded => "resident_responded",
            ActionKind::Callback => "callback",
            ActionKind::Escalate => "escalate",
            ActionKind::ConveneJointMeeting => "convene_joint_meeting",
            ActionKind::ReportIn => "report_in",
            ActionKind::CompletePart => "complete_part",
            ActionKind::Reroute => "reroute",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Dispatch { .. } => ActionKind::Dispatch,
            Action::SignFor => ActionKind::SignFor,
            Action::Start => ActionKind::Start,
            Action::ReportStage { .. } => ActionKind::ReportStage,
            Action::Resolve { .. } => ActionKind::Resolve,
            Action::Verify => ActionKind::Verify,
            Action::Rework { .. } => ActionKind::Rework,
            Action::Close => ActionKind::Close,
            Action::Cancel { .. } => ActionKind::Cancel,
            Action::Return { .. } => ActionKind::Return,
            Action::Arbitrate { .. } => ActionKind::Arbitrate,
            Action::RequestExtension { .. } => ActionKind::RequestExtension,
            Action::ApproveExtension { .. } => ActionKind::ApproveExtension,
            Action::RefuseExtension => ActionKind::RefuseExtension,
            Action::AwaitResident => ActionKind::AwaitResident,
            Action::ResidentResponded => ActionKind::ResidentResponded,
            Action::Callback { .. } => ActionKind::Callback,
            Action::Escalate { .. } => ActionKind::Escalate,
            Action::ConveneJointMeeting { .. } => ActionKind::ConveneJointMeeting,
            Action::ReportIn { .. } => ActionKind::ReportIn,
            Action::CompletePart { .. } => ActionKind::CompletePart,
            Action::Reroute { .. } => ActionKind::Reroute,
        }
    }

    /// The action with a free-text note for the history.
    pub fn with_note(self, note: impl Into<String>) -> Command {
        Command {
            action: self,
            note: Some(note.into()),
        }
    }
}

/// An action with its note, as [`apply`] takes it. `Action` converts into a command
/// without a note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub action: Action,
    pub note: Option<String>,
}

impl From<Action> for Command {
    fn from(action: Action) -> Self {
        Command { action, note: None }
    }
}

/// Who acted: a person (with the unit they act for) or a part of the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub unit: Option<String>,
}

impl Actor {
    pub fn person(id: impl Into<String>, unit: Option<&str>) -> Self {
        Actor {
            id: id.into(),
            unit: unit.map(str::to_owned),
        }
    }

    /// A part of the hub acting on its own (the SLA tracker, the router).
    pub fn system(component: &str) -> Self {
        Actor {
            id: format!("system:{component}"),
            unit: None,
        }
    }
}

// ------------------------------------------------------------------------------ state

/// Everything about a task the state machine decides on. Stored with the task; `version`
/// counts applied transitions so that a store can refuse a change made on a stale copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    pub status: TaskStatus,
    /// The unit currently responsible (属地管理, 责任主体唯一).
    pub assignee: Option<String>,
    /// Handling stages of the task's SLA policy, in order (one for unstaged limits).
    pub stages: Vec<String>,
    /// How many of `stages` were reported done in this round.
    pub stages_reported: u32,
    /// Dispatch round: 0 before the first dispatch, +1 at every (re-)dispatch, rework and
    /// reopening. Clocks belong to a round.
    pub round: u32,
    /// An extension asked for and not yet decided.
    pub extension_requested: Option<Limit>,
    pub waiting_on_resident: bool,
    /// The highest ladder step the case has climbed to in this round.
    #[serde(with = "ladder_serde::option", default)]
    pub escalation: Option<LadderStep>,
    /// The unit whose return awaits arbitration.
    pub returned_by: Option<String>,
    /// The joint case (吹哨报到), once the case was put to the joint meeting.
    #[serde(default)]
    pub joint_case: Option<JointCase>,
    /// The resident's callback verdict, once given.
    pub callback_satisfied: Option<bool>,
    pub rework_count: u32,
    pub reopen_count: u32,
    pub return_count: u32,
    pub extension_count: u32,
    pub version: u64,
}

impl TaskState {
    /// A task just created (立案), to be handled in `stages` (the policy's handling stages).
    pub fn new(stages: Vec<String>) -> Self {
        TaskState {
            status: TaskStatus::Created,
            assignee: None,
            stages,
            stages_reported: 0,
            round: 0,
            extension_requested: None,
            waiting_on_resident: false,
            escalation: None,
            returned_by: None,
            joint_case: None,
            callback_satisfied: None,
            rework_count: 0,
            reopen_count: 0,
            return_count: 0,
            extension_count: 0,
            version: 0,
        }
    }

    /// The stage to report next, when a stage other than the last is still open (the last
    /// one ends with `resolve`).
    pub fn next_stage(&self) -> Option<&str> {
        let next = self.stages_reported as usize;
        (next + 1 < self.stages.len()).then(|| self.stages[next].as_str())
    }

    fn handling(&self) -> bool {
        matches!(self.status, TaskStatus::SignedFor | TaskStatus::InProgress)
    }

    fn can_escalate(&self) -> bool {
        matches!(
            self.status,
            TaskStatus::Dispatched
                | TaskStatus::SignedFor
                | TaskStatus::InProgress
                | TaskStatus::Returned
        ) && self.escalation != Some(LadderStep::District)
    }

    /// What may be done now, in workflow order. 改派 by a rules version is the hub's own
    /// and never listed: nobody is offered it.
    pub fn allowed_actions(&self) -> Vec<ActionKind> {
        ActionKind::ALL
            .into_iter()
            .filter(|k| *k != ActionKind::Reroute && self.why_not(*k).is_none())
            .collect()
    }

    /// Why `kind` is not allowed now, or `None` if it is.
    fn why_not(&self, kind: ActionKind) -> Option<Refusal> {
        use ActionKind as K;
        use TaskStatus as S;
        let status_ok = match kind {
            K::Dispatch => self.status == S::Created,
            K::SignFor => self.status == S::Dispatched,
            K::Start => self.status == S::SignedFor,
            K::ReportStage
            | K::Resolve
            | K::RequestExtension
            | K::ApproveExtension
            | K::RefuseExtension
            | K::AwaitResident
            | K::ResidentResponded => self.handling(),
            K::Verify | K::Rework => self.status == S::Resolved,
            K::Close => self.status == S::Verified,
            K::Cancel => matches!(
                self.status,
                S::Created | S::Dispatched | S::SignedFor | S::InProgress | S::Returned
            ),
            K::Return => matches!(self.status, S::Dispatched | S::SignedFor),
            K::Arbitrate => self.status == S::Returned,
            K::Callback => matches!(self.status, S::Verified | S::Closed),
            K::Reroute => matches!(self.status, S::Created | S::Dispatched),
            K::Escalate | K::ConveneJointMeeting | K::ReportIn | K::CompletePart => matches!(
                self.status,
                S::Dispatched | S::SignedFor | S::InProgress | S::Returned
            ),
        };
        if !status_ok {
            return Some(Refusal::WrongStatus);
        }
        let why = match kind {
            K::ReportStage if self.next_stage().is_none() => {
                "no stage is left to report before resolving (the last stage ends with resolve)"
            }
            K::RequestExtension if self.extension_requested.is_some() => {
                "an extension request is already awaiting a decision"
            }
            K::ApproveExtension | K::RefuseExtension if self.extension_requested.is_none() => {
                "no extension request is awaiting a decision"
            }
            K::AwaitResident if self.waiting_on_resident => {
                "the task is already waiting on the resident"
            }
            K::ResidentResponded if !self.waiting_on_resident => {
                "the task is not waiting on the resident"
            }
            K::Callback if self.callback_satisfied.is_some() => "the callback was already recorded",
            K::Escalate if !self.can_escalate() => "the case is already at the top of the ladder",
            K::ConveneJointMeeting if self.joint_case.is_some() => {
                "the case is already before the joint meeting"
            }
            K::ReportIn | K::CompletePart if self.joint_case.is_none() => {
                "the case has not been put to the joint meeting"
            }
            _ => return None,
        };
        Some(Refusal::NotNow(why.to_owned()))
    }

    /// A new dispatch round: the flags of the previous round no longer apply.
    fn new_round(&mut self) {
        self.round += 1;
        self.stages_reported = 0;
        self.escalation = None;
        self.leave_handling();
        self.callback_satisfied = None;
    }

    /// Leaving signed_for / in_progress: a pending extension or a wait on the resident ends
    /// with it (the transition recording why).
    fn leave_handling(&mut self) {
        self.extension_requested = None;
        self.waiting_on_resident = false;
    }
}

// ------------------------------------------------------------------------------ transitions

/// A state change as recorded in the task's history: who, when, what, why, and the state it
/// led to. `action` is as applied (an approval names the time it granted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub from: TaskStatus,
    pub to: TaskStatus,
    pub action: Action,
    pub actor: Actor,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
    pub state: TaskState,
}

impl Transition {
    /// What happened, in the workflow's words (e.g. "re-dispatched" for an arbitration,
    /// "reopened" for an unsatisfied callback).
    pub fn label(&self) -> &'static str {
        match &self.action {
            Action::Dispatch { .. } => "dispatched",
            Action::SignFor => "signed_for",
            Action::Start => "in_progress",
            Action::ReportStage { .. } => "stage_reported",
            Action::Resolve { .. } => "resolved",
            Action::Verify => "verified",
            Action::Rework { .. } => "rework",
            Action::Close => "closed",
            Action::Cancel { .. } => "cancelled",
            Action::Return { .. } => "returned",
            Action::Arbitrate { .. } => "re-dispatched",
            Action::RequestExtension { .. } => "extension_requested",
            Action::ApproveExtension { .. } => "extension_approved",
            Action::RefuseExtension => "extension_refused",
            Action::AwaitResident => "awaiting_resident",
            Action::ResidentResponded => "resident_responded",
            Action::Callback { satisfied: true } => "callback_satisfied",
            Action::Callback { satisfied: false } => "reopened",
            Action::Escalate { .. } => "escalated",
            Action::ConveneJointMeeting { .. } => "joint_meeting_convened",
            Action::ReportIn { .. } => "reported_in",
            Action::CompletePart { .. } => "part_completed",
            Action::Reroute { .. } => "rerouted",
        }
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The status does not allow the action at all.
    WrongStatus,
    /// The status allows it, but not now; says why (e.g. no extension request pending).
    NotNow(String),
    /// A required part is missing (a unit, feedback, a note for "other").
    Missing(&'static str),
    /// A stage reported out of order or not in the policy.
    WrongStage { stage: String, expected: String },
    /// An escalation that does not climb.
    NotAbove {
        step: LadderStep,
        current: LadderStep,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::WrongStatus => f.write_str("not possible in this status"),
            Refusal::NotNow(why) => f.write_str(why),
            Refusal::Missing(what) => write!(f, "{what} is required"),
            Refusal::WrongStage { stage, expected } => {
                write!(
                    f,
                    "stage {stage:?} is not next; the next stage is {expected:?}"
                )
            }
            Refusal::NotAbove { step, current } => write!(
                f,
                "{} is not above {}, where the case already is",
                step.as_str(),
                current.as_str()
            ),
        }
    }
}

/// An action refused: the state it was tried on, what was wrong, and what is allowed now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IllegalTransition {
    pub status: TaskStatus,
    pub attempted: ActionKind,
    pub allowed: Vec<ActionKind>,
    pub problem: Refusal,
}

/// "cannot close a task that is in_progress; allowed now: report_stage, resolve, ..."
impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} a task that is {}",
            self.attempted, self.status
        )?;
        if self.problem != Refusal::WrongStatus {
            write!(f, ": {}", self.problem)?;
        }
        if self.allowed.is_empty() {
            f.write_str("; nothing is allowed now (the task is final)")
        } else {
            let allowed: Vec<&str> = self.allowed.iter().map(|k| k.as_str()).collect();
            write!(f, "; allowed now: {}", allowed.join(", "))
        }
    }
}

/// Applies an action to a task: the new state and the history record, or a refusal naming
/// the current state and the allowed actions. Pure: the state passed in is not changed.
pub fn apply(
    state: &TaskState,
    command: impl Into<Command>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Transition, IllegalTransition> {
    let Command { mut action, note } = command.into();
    let note = note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let refuse = |problem: Refusal| IllegalTransition {
        status: state.status,
        attempted: action.kind(),
        allowed: state.allowed_actions(),
        problem,
    };
    if let Some(why) = state.why_not(action.kind()) {
        return Err(refuse(why));
    }
    let blank = |s: &str| s.trim().is_empty();

    let mut next = state.clone();
    match &action {
        Action::Dispatch { unit } | Action::Arbitrate { unit } => {
            if blank(unit) {
                return Err(refuse(Refusal::Missing("the unit to dispatch to")));
            }
            next.new_round();
            next.status = TaskStatus::Dispatched;
            next.assignee = Some(unit.trim().to_owned());
            next.returned_by = None;
        }
        Action::Reroute {
            lead,
            rules_version,
            ..
        } => {
            if blank(&lead.unit_id) || blank(rules_version) {
                return Err(refuse(Refusal::Missing(
                    "the unit and the rules version to re-route by",
                )));
            }
            next.new_round();
            next.status = TaskStatus::Dispatched;
            next.assignee = Some(lead.unit_id.clone());
            next.returned_by = None;
        }
        Action::SignFor => next.status = TaskStatus::SignedFor,
        Action::Start => next.status = TaskStatus::InProgress,
        Action::ReportStage { stage } => {
            let expected = state.next_stage().unwrap_or_default();
            if stage.trim() != expected {
                return Err(refuse(Refusal::WrongStage {
                    stage: stage.clone(),
                    expected: expected.to_owned(),
                }));
            }
            next.stages_reported += 1;
            next.status = TaskStatus::InProgress;
        }
        Action::Resolve { feedback } => {
            if blank(feedback) {
                return Err(refuse(Refusal::Missing("feedback saying what was done")));
            }
            next.stages_reported = next.stages.len() as u32;
            next.leave_handling();
            next.status = TaskStatus::Resolved;
        }
        Action::Verify => next.status = TaskStatus::Verified,
        Action::Rework { finding } => {
            if blank(finding) {
                return Err(refuse(Refusal::Missing(
                    "the finding that failed verification",
                )));
            }
            // Rework is handled under its own clock in a new round, by the same unit.
            next.round += 1;
            next.escalation = None;
            next.rework_count += 1;
            next.status = TaskStatus::InProgress;
        }
        Action::Close => next.status = TaskStatus::Closed,
        Action::Cancel { reason } => {
            if *reason == CancelReason::Other && note.is_none() {
                return Err(refuse(Refusal::Missing(
                    "a note saying why (reason \"other\")",
                )));
            }
            next.leave_handling();
            next.status = TaskStatus::Cancelled;
        }
        Action::Return { reason } => {
            if *reason == ReturnReason::Other && note.is_none() {
                return Err(refuse(Refusal::Missing(
                    "a note saying why (reason \"other\")",
                )));
            }
            next.leave_handling();
            next.escalation = None;
            next.return_count += 1;
            next.returned_by = state.assignee.clone();
            next.status = TaskStatus::Returned;
        }
        Action::RequestExtension { by } => next.extension_requested = Some(*by),
        Action::ApproveExtension { by } => {
            // Record what was granted, so the history and the clocks agree.
            let granted = by.or(state.extension_requested);
            next.extension_requested = None;
            next.extension_count += 1;
            action = Action::ApproveExtension { by: granted };
        }
        Action::RefuseExtension => next.extension_requested = None,
        Action::AwaitResident => next.waiting_on_resident = true,
        Action::ResidentResponded => next.waiting_on_resident = false,
        Action::Callback { satisfied: true } => next.callback_satisfied = Some(true),
        Action::Callback { satisfied: false } => {
            // 回访不满意: the same unit takes the case again, from sign-for.
            next.new_round();
            next.reopen_count += 1;
            next.status = TaskStatus::Dispatched;
        }
        Action::Escalate { step } => {
            if let Some(current) = state.escalation {
                if ladder_rank(*step) <= ladder_rank(current) {
                    return Err(refuse(Refusal::NotAbove {
                        step: *step,
                        current,
                    }));
                }
            }
            next.escalation = Some(*step);
        }
        Action::ConveneJointMeeting { case } => {
            if case.participants.len() < 2 {
                return Err(refuse(Refusal::Missing(
                    "a lead and at least one co-handler",
                )));
            }
            next.joint_case = Some(case.clone());
        }
        Action::ReportIn { unit } | Action::CompletePart { unit } => {
            // `why_not` refused these without a joint case.
            let Some(mut case) = state.joint_case.clone() else {
                return Err(refuse(Refusal::WrongStatus));
            };
            let done = match &action {
                Action::ReportIn { .. } => case.report_in(unit.trim(), now),
                _ => case.complete_part(unit.trim(), now),
            };
            done.map_err(|e| refuse(Refusal::NotNow(e.to_string())))?;
            next.joint_case = Some(case);
        }
    }
    next.version += 1;
    Ok(Transition {
        from: state.status,
        to: next.status,
        action,
        actor: actor.clone(),
        at: now,
        note,
        state: next,
    })
}
