//! Cases (案件): what happens to a task after routing made it. The case workflow as pure
//! functions over data: the task state machine (立案 → 派遣 → 签收 → 处置 → 反馈 → 核查 → 结案,
//! with 注销, 回退, 返工, 延期 and 回访), SLA policies, working calendars with holidays and 调休,
//! SLA clocks, escalation along a community's ladder, joint cases (吹哨报到), the scheduler
//! core the SLA tracker runs on, and the indicators (考核) computed from cases.
//!
//! The routing core (`hub-router`) decides where a new task goes; this crate decides what
//! may happen to it next. The hub's `cases` layer runs it against the store.
//!
//! Nothing here reads the system clock: every function that needs the time takes `now`.
//! Files are read only by the `load` functions; everything else works on parsed values.
//!
//! Configuration lives in one directory (shipped as `config/sla/`):
//! * `policies.toml` — SLA policies, escalation limits per ladder step, joint-case report-in
//!   limit ([`SlaPolicies`]);
//! * `calendars/<id>.toml` — one working calendar per file, its id being the file stem
//!   ([`WorkingCalendar`]).

pub mod calendar;
pub mod clock;
pub mod config;
pub mod escalation;
pub mod events;
pub mod indicators;
pub mod joint_case;
pub mod lifecycle;
pub mod opening;
pub mod scheduler;
pub mod sla;

pub use calendar::{Limit, Measure, TimeUnit, WorkingCalendar};
pub use clock::{ClockEvent, ClockKind, ClockStatus, PauseReason, SlaClock};
pub(crate) use config::Source;
pub use config::{Calendars, ConfigError, SlaConfig, CALENDARS_DIR, POLICIES_FILE};
pub use escalation::{Escalation, EscalationConfig, EscalationStep};
pub use joint_case::{JointCase, JointCaseConfig};
pub use lifecycle::{apply, Action, Actor, IllegalTransition, TaskState, Transition};
pub use scheduler::{Due, DueKind, Scheduler};
pub use sla::{ClockEffect, SlaPolicies, SlaPolicy, TaskFacts};
