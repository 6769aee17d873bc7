//! What the console's pages show, built from the store's types, and the templates that
//! render it (`hub/templates/web/`, checked at compile time). No I/O here: handlers load the
//! data, these functions turn it into words for people.

use askama::Template;
use chrono::{DateTime, FixedOffset, Utc};
use hub_cases::clock::ClockStatus;
use hub_cases::lifecycle::{ActionKind, CancelReason, ReturnReason};
use hub_cases::Measure;
use hub_cases::SlaConfig;
use hub_router::task::{StatusChange, Task, TaskStatus};
use hub_store::{Report, StoredClock};

use super::messages::{self, Labels, ZH};

/// China Standard Time: how people in the city read times.
fn cst(t: DateTime<Utc>) -> String {
    cst_as(t, "%m-%d %H:%M")
}

/// A time in China Standard Time, in `format` (chrono's).
pub(crate) fn cst_as(t: DateTime<Utc>, format: &str) -> String {
    let offset = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    t.with_timezone(&offset).format(format).to_string()
}

/// A choice in a select.
#[derive(Debug, Clone)]
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices<'a>(
    options: impl IntoIterator<Item = (&'a str, &'a str)>,
    selected: &str,
) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == selected,
        })
        .collect()
}

// ------------------------------------------------------------------------------ countdown

/// Where a task or clock stands against its time limit: a band (colour) and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Countdown {
    /// `ok`, `warn`, `late`, `paused`, `met` or `none`: a CSS class.
    pub band: &'static str,
    pub text: String,
}

/// One clock at `now`. Time left is counted in the clock's own measure: working time (with
/// holidays and 调休) for working-day limits, natural time for the others.
pub fn clock_countdown(c: &StoredClock, sla: &SlaConfig, now: DateTime<Utc>) -> Countdown {
    let calendar = sla
        .calendars
        .get(&c.clock.calendar)
        .unwrap_or_else(|| hub_cases::WorkingCalendar::always_open());
    let left = c.clock.budget_ms(calendar) - c.clock.used_ms(now, calendar);
    let working = |m: Measure| {
        if m == Measure::Natural {
            ""
        } else {
            "（工作时间）"
        }
    };
    match c.clock.status(now) {
        ClockStatus::Running { .. } => Countdown {
            band: "ok",
            text: format!(
                "剩余 {}{}",
                messages::span(left),
                working(c.clock.limit.measure())
            ),
        },
        ClockStatus::Warning { .. } => Countdown {
            band: "warn",
            text: format!(
                "即将超时，剩余 {}{}",
                messages::span(left),
                working(c.clock.limit.measure())
            ),
        },
        ClockStatus::Breached { overdue, .. } => Countdown {
            band: "late",
            text: format!("已超时 {}", messages::span(overdue.num_milliseconds())),
        },
        ClockStatus::Paused { left_ms, .. } => Countdown {
            band: "paused",
            text: format!("已暂停，剩余 {}", messages::span(left_ms)),
        },
        ClockStatus::Stopped { met, .. } => Countdown {
            band: "met",
            text: if met { "按时完成" } else { "超时完成" }.to_owned(),
        },
    }
}

/// A task's countdown: that of its most pressing open clock (breached first, then the
/// soonest deadline).
pub fn task_countdown(clocks: &[StoredClock], sla: &SlaConfig, now: DateTime<Utc>) -> Countdown {
    let rank = |c: &StoredClock| match c.clock.status(now) {
        ClockStatus::Breached { overdue, .. } => Some((0, -overdue.num_milliseconds())),
        ClockStatus::Warning { remaining, .. } | ClockStatus::Running { remaining, .. } => {
            Some((1, remaining.num_milliseconds()))
        }
        ClockStatus::Paused { left_ms, .. } => Some((2, left_ms)),
        ClockStatus::Stopped { .. } => None,
    };
    clocks
        .iter()
        .filter_map(|c| rank(c).map(|r| (r, c)))
        .min_by_key(|(r, _)| *r)
        .map_or(
            Countdown {
                band: "none",
                text: "—".to_owned(),
            },
            |(_, c)| clock_countdown(c, sla, now),
        )
}

// ------------------------------------------------------------------------------ queue

/// One row of the queue.
#[derive(Debug, Clone)]
pub struct QueueRow {
    pub id: String,
    pub short_id: String,
    pub category: String,
    pub place: String,
    pub lead: String,
    pub status: &'static str,
    pub band: &'static str,
    pub countdown: String,
    pub reported: String,
}

pub fn queue_row(task: &Task, countdown: Countdown) -> QueueRow {
    let f = &task.fields;
    QueueRow {
        id: f.task_id.clone(),
        short_id: f.task_id.chars().take(8).collect(),
        category: category_of(task),
        place: f.place.matched_area.clone(),
        lead: f
            .lead_unit
            .as_ref()
            .map_or_else(|| ZH.unassigned.to_owned(), |u| u.name.clone()),
        status: messages::status(task.status),
        band: countdown.band,
        countdown: countdown.text,
        reported: cst(f.created_at),
    }
}

pub(crate) fn category_of(task: &Task) -> String {
    let f = &task.fields;
    f.category_name
        .clone()
        .unwrap_or_else(|| f.category.name.clone())
}

#[derive(Template)]
#[template(path = "web/queue_rows.html")]
pub struct QueueRows<'a> {
    pub t: &'a Labels,
    pub rows: Vec<QueueRow>,
    pub total: u64,
    pub flash: String,
    /// `ok` or `error`.
    pub flash_kind: &'static str,
}

/// The queue's filters, as chosen (and as they stand in the page's address).
#[derive(Debug, Clone, Default)]
pub struct QueueFilters {
    pub status: String,
    pub due_within: String,
    pub sort: String,
    pub breached: bool,
    pub department: String,
    pub community: String,
}

impl QueueFilters {
    /// The query string that reproduces these filters (`?status=...`), empty for none.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("due_within", &self.due_within),
            ("sort", &self.sort),
            ("department", &self.department),
            ("community", &self.community),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", super::url_encode(v)));
            }
        }
        if self.breached {
            parts.push("breached=true".to_owned());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[derive(Template)]
#[template(path = "web/queue.html")]
pub struct QueuePage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub statuses: Vec<Choice>,
    pub withins: Vec<Choice>,
    pub sorts: Vec<Choice>,
    pub departments: Vec<Choice>,
    /// Empty for an account of one community (nothing to choose).
    pub communities: Vec<Choice>,
    pub breached: bool,
    pub rows: String,
}

impl<'a> QueuePage<'a> {
    pub fn new(
        account: &str,
        admin: bool,
        csrf: String,
        filters: &QueueFilters,
        communities: &[(String, String)],
        rows: String,
    ) -> Self {
        let t = &ZH;
        let mut statuses = vec![("open", t.open_only), ("", t.any)];
        statuses.extend(TaskStatus::ALL.map(|s| (s.as_str(), messages::status(s))));
        let status = if filters.status.is_empty() {
            "open"
        } else {
            filters.status.as_str()
        };
        QueuePage {
            t,
            account: account.to_owned(),
            csrf,
            nav: "queue",
            admin,
            statuses: choices(statuses, status),
            withins: choices(
                [
                    ("", t.any),
                    ("2h", "2小时内"),
                    ("1d", "1天内"),
                    ("3d", "3天内"),
                    ("7d", "7天内"),
                ],
                &filters.due_within,
            ),
            sorts: choices(
                [("due", t.sort_due), ("newest", t.sort_newest)],
                if filters.sort.is_empty() {
                    "due"
                } else {
                    filters.sort.as_str()
                },
            ),
            departments: {
                let mut d = vec![("", t.any)];
                d.extend(
                    hub_schemas::event::Department::ALL
                        .map(|d| (d.as_str(), messages::department(d))),
                );
                choices(d, &filters.department)
            },
            communities: if communities.len() > 1 {
                let mut c = vec![("", t.any)];
                c.extend(
                    communities
                        .iter()
                        .map(|(code, name)| (code.as_str(), name.as_str())),
                );
                choices(c, &filters.community)
            } else {
                Vec::new()
            },
            breached: filters.breached,
            rows,
        }
    }
}

// ------------------------------------------------------------------------------ sign-in

#[derive(Template)]
#[template(path = "web/login.html")]
pub struct LoginPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub error: String,
    pub next: String,
}

impl LoginPage<'_> {
    pub fn new(error: &str, next: &str) -> Self {
        LoginPage {
            t: &ZH,
            account: String::new(),
            csrf: String::new(),
            nav: "",
            admin: false,
            error: error.to_owned(),
            next: next.to_owned(),
        }
    }
}

// ------------------------------------------------------------------------------ task page

#[derive(Debug, Clone)]
pub struct ClockRow {
    pub kind: String,
    pub limit: String,
    pub deadline: String,
    pub band: &'static str,
    pub state: String,
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub at: String,
    pub status: &'static str,
    pub actor: String,
    pub note: String,
}

/// A field of an action form.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub required: bool,
    /// A text area (feedback, findings) rather than one line (a note).
    pub multiline: bool,
    /// A select when not empty, else text.
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone)]
pub struct ActionForm {
    pub kind: &'static str,
    pub label: &'static str,
    pub fields: Vec<Field>,
}

/// The actions the console has forms for. The joint-meeting ones (吹哨, 报到, 完成分工) are
/// taken through the API until their forms land.
pub const FORM_ACTIONS: [ActionKind; 18] = [
    ActionKind::Dispatch,
    ActionKind::Arbitrate,
    ActionKind::ReportStage,
    ActionKind::ApproveExtension,
    ActionKind::Escalate,
    ActionKind::SignFor,
    ActionKind::Start,
    ActionKind::Resolve,
    ActionKind::Verify,
    ActionKind::Rework,
    ActionKind::Close,
    ActionKind::Return,
    ActionKind::RequestExtension,
    ActionKind::RefuseExtension,
    ActionKind::AwaitResident,
    ActionKind::ResidentResponded,
    ActionKind::Callback,
    ActionKind::Cancel,
];

fn note_field() -> Field {
    Field {
        name: "note",
        label: ZH.note,
        required: false,
        multiline: false,
        choices: Vec::new(),
    }
}

/// The form of an action; `units` are the units a task can go to (its community's, then its
/// street's).
pub fn action_form(kind: ActionKind, units: &[Choice]) -> ActionForm {
    let t = &ZH;
    let text = |name, label| Field {
        name,
        label,
        required: true,
        multiline: true,
        choices: Vec::new(),
    };
    let select = |name, label, options: Vec<(&'static str, &'static str)>| Field {
        name,
        label,
        required: true,
        multiline: false,
        choices: choices(options, ""),
    };
    let mut fields = match kind {
        ActionKind::Resolve => vec![text("feedback", t.feedback)],
        ActionKind::Rework => vec![text("finding", t.finding)],
        ActionKind::Return => vec![select(
            "reason",
            t.reason,
            ReturnReason::ALL
                .map(|r| (r.as_str(), messages::return_reason(r)))
                .to_vec(),
        )],
        ActionKind::Cancel => vec![select(
            "reason",
            t.reason,
            CancelReason::ALL
                .map(|r| (r.as_str(), messages::cancel_reason(r)))
                .to_vec(),
        )],
        ActionKind::RequestExtension => vec![select(
            "by",
            t.extension_by,
            vec![
                ("1 working_days", "1个工作日"),
                ("2 working_days", "2个工作日"),
                ("3 working_days", "3个工作日"),
                ("5 working_days", "5个工作日"),
            ],
        )],
        ActionKind::Dispatch | ActionKind::Arbitrate => vec![Field {
            name: "unit",
            label: t.assign_to,
            required: true,
            multiline: false,
            choices: units.to_vec(),
        }],
        ActionKind::ReportStage => vec![Field {
            name: "stage",
            label: "完成的阶段",
            required: true,
            multiline: false,
            choices: Vec::new(),
        }],
        ActionKind::ApproveExtension => vec![Field {
            name: "by",
            label: "批准延长",
            required: false,
            multiline: false,
            choices: choices(
                [
                    ("", "按申请"),
                    ("1 working_days", "1个工作日"),
                    ("2 working_days", "2个工作日"),
                    ("3 working_days", "3个工作日"),
                ],
                "",
            ),
        }],
        ActionKind::Escalate => vec![Field {
            name: "step",
            label: "督办至",
            required: true,
            multiline: false,
            choices: hub_router::city::LadderStep::ALL
                .iter()
                .map(|s| Choice {
                    value: s.as_str().to_owned(),
                    label: messages::ladder_step(s.as_str()).to_owned(),
                    selected: false,
                })
                .collect(),
        }],
        ActionKind::Callback => vec![select(
            "satisfied",
            t.satisfied,
            vec![("true", t.satisfied_yes), ("false", t.satisfied_no)],
        )],
        _ => Vec::new(),
    };
    fields.push(note_field());
    ActionForm {
        kind: kind.as_str(),
        label: messages::action(kind),
        fields,
    }
}

/// Everything the task page shows.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub id: String,
    pub short_id: String,
    pub category: String,
    pub status: &'static str,
    pub band: &'static str,
    pub countdown: String,
    pub version: u64,
    pub description: String,
    pub source: String,
    pub reported: String,
    pub place: String,
    pub lead: String,
    pub co_handlers: String,
    pub reports: Vec<String>,
    pub why: Vec<String>,
    pub clocks: Vec<ClockRow>,
    pub history: Vec<HistoryRow>,
    pub actions: Vec<ActionForm>,
}

pub struct TaskFacts<'a> {
    pub task: &'a Task,
    pub version: u64,
    pub clocks: &'a [StoredClock],
    pub history: &'a [StatusChange],
    pub reports: &'a [Report],
    /// The actions this account may take now.
    pub allowed: &'a [ActionKind],
    /// The units the task can go to (for dispatch and arbitration).
    pub units: &'a [Choice],
}

pub fn task_view(facts: &TaskFacts<'_>, sla: &SlaConfig, now: DateTime<Utc>) -> TaskView {
    let task = facts.task;
    let f = &task.fields;
    let e = &f.explanation;
    let countdown = task_countdown(facts.clocks, sla, now);
    let mut why = vec![if e.place_detail.is_empty() {
        format!("位置：{}", e.matched_area)
    } else {
        format!("位置：{}（{}）", e.matched_area, e.place_detail)
    }];
    if !e.category_detail.is_empty() {
        why.push(format!("类别：{}", e.category_detail));
    }
    why.push(if e.rule_detail.is_empty() {
        format!("规则：{}", e.rule_id)
    } else {
        format!("规则：{}", e.rule_detail)
    });
    if !e.assignment_detail.is_empty() {
        why.push(format!("派遣：{}", e.assignment_detail));
    }
    if let Some(a) = &e.admission {
        why.push(format!("准入：{}", a.reason));
    }
    why.push(format!("{}：{}", ZH.rules_version, e.rules_version));
    TaskView {
        id: f.task_id.clone(),
        short_id: f.task_id.chars().take(8).collect(),
        category: category_of(task),
        status: messages::status(task.status),
        band: countdown.band,
        countdown: countdown.text,
        version: facts.version,
        description: f.description.clone(),
        source: format!(
            "{} · {} {}",
            messages::department(f.department),
            f.source_system,
            f.source_id
        ),
        reported: cst(f.occurred_at),
        place: f.place.matched_area.clone(),
        lead: f
            .lead_unit
            .as_ref()
            .map_or_else(|| ZH.unassigned.to_owned(), |u| u.name.clone()),
        co_handlers: f
            .co_handlers
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join("、"),
        reports: facts
            .reports
            .iter()
            .map(|r| {
                format!(
                    "{} · {} {} · {}",
                    messages::department(r.department),
                    r.source_system,
                    r.source_id,
                    cst(r.occurred_at)
                )
            })
            .collect(),
        why,
        clocks: facts
            .clocks
            .iter()
            .map(|c| {
                let cd = clock_countdown(c, sla, now);
                ClockRow {
                    kind: messages::clock_kind(&c.clock.kind),
                    limit: c.clock.limit.to_string(),
                    deadline: c.clock.deadline().map_or_else(|| "—".to_owned(), cst),
                    band: cd.band,
                    state: cd.text,
                }
            })
            .collect(),
        history: facts
            .history
            .iter()
            .map(|h| HistoryRow {
                at: cst(h.at),
                status: messages::status(h.to_status),
                actor: h.actor.clone(),
                note: h.note.clone().unwrap_or_default(),
            })
            .collect(),
        actions: facts
            .allowed
            .iter()
            .filter(|k| FORM_ACTIONS.contains(k))
            .map(|k| action_form(*k, facts.units))
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "web/task_body.html")]
pub struct TaskBody<'a> {
    pub t: &'a Labels,
    pub v: &'a TaskView,
    pub flash: String,
    /// `ok` or `error`.
    pub flash_kind: &'static str,
}

#[derive(Template)]
#[template(path = "web/task.html")]
pub struct TaskPage<'a> {
    pub t: &'a Labels,
    pub account: String,
    pub csrf: String,
    pub nav: &'static str,
    /// Whether the account administers (the 管理 link).
    pub admin: bool,
    pub v: &'a TaskView,
    pub body: String,
}

#[cfg(test)]
mod tests {
    //! The page fragments rendered for the states and roles, without a browser.

    use super::*;
    use hub_cases::clock::{ClockKind, SlaClock};
    use hub_cases::{Limit, WorkingCalendar};

    fn clock(now: DateTime<Utc>, started_min_ago: i64, limit: Limit) -> StoredClock {
        let c = SlaClock::start(
            ClockKind::SignFor,
            1,
            now - chrono::TimeDelta::minutes(started_min_ago),
            limit,
            Some(0.5),
            WorkingCalendar::always_open(),
        );
        StoredClock {
            id: 1,
            task_id: "t".to_owned(),
            clock: c,
            alerts: Vec::new(),
            changed_at: now,
        }
    }

    fn sla() -> SlaConfig {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla");
        SlaConfig::load(&dir).unwrap()
    }

    #[test]
    fn the_band_says_in_words_how_a_task_stands() {
        let (sla, now) = (sla(), Utc::now());
        let cd = |c: &[StoredClock]| task_countdown(c, &sla, now);
        assert_eq!(cd(&[clock(now, 10, Limit::minutes(60))]).band, "ok");
        let warn = cd(&[clock(now, 40, Limit::minutes(60))]);
        assert_eq!(
            (warn.band, warn.text.starts_with("即将超时")),
            ("warn", true)
        );
        let late = cd(&[clock(now, 90, Limit::minutes(60))]);
        assert_eq!((late.band, late.text.as_str()), ("late", "已超时 30分钟"));
        // The most pressing clock decides: a breached one over one with time left.
        let both = cd(&[
            clock(now, 10, Limit::minutes(60)),
            clock(now, 90, Limit::minutes(60)),
        ]);
        assert_eq!(both.band, "late");
        assert_eq!(cd(&[]).text, "—");
    }

    #[test]
    fn action_forms_ask_for_what_the_action_needs() {
        let ret = action_form(ActionKind::Return, &[]);
        assert_eq!(ret.label, "回退");
        let reasons: Vec<&str> = ret.fields[0]
            .choices
            .iter()
            .map(|c| c.value.as_str())
            .collect();
        assert_eq!(reasons.len(), ReturnReason::ALL.len());
        assert!(reasons.contains(&"not_our_remit"));
        let resolve = action_form(ActionKind::Resolve, &[]);
        assert!(resolve.fields[0].required && resolve.fields[0].multiline);
        assert_eq!(resolve.fields.last().unwrap().name, "note");
        assert_eq!(action_form(ActionKind::SignFor, &[]).fields.len(), 1);
        let units = vec![Choice {
            value: "510504001001.workstation".to_owned(),
            label: "梧桐社区工作站".to_owned(),
            selected: false,
        }];
        let dispatch = action_form(ActionKind::Dispatch, &units);
        assert_eq!(dispatch.fields[0].choices[0].label, "梧桐社区工作站");
        let escalate = action_form(ActionKind::Escalate, &[]);
        assert!(escalate.fields[0]
            .choices
            .iter()
            .any(|c| c.label == "联席会议"));
    }

    #[test]
    fn rows_render_escaped_with_their_band_and_link() {
        let row = QueueRow {
            id: "t-1".to_owned(),
            short_id: "t-1".to_owned(),
            category: "<script>alert(1)</script>".to_owned(),
            place: "梧桐社区".to_owned(),
            lead: ZH.unassigned.to_owned(),
            status: messages::status(TaskStatus::Dispatched),
            band: "late",
            countdown: "已超时 5分钟".to_owned(),
            reported: "12-01 09:00".to_owned(),
        };
        let html = QueueRows {
            t: &ZH,
            rows: vec![row],
            total: 1,
            flash: String::new(),
            flash_kind: "ok",
        }
        .render()
        .unwrap();
        assert!(html.contains("&#60;script&#62;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains(r#"<span class="band late">已超时 5分钟</span>"#));
        assert!(html.contains(r#"href="/tasks/t-1""#));
        assert!(html.contains("共 1 件"));
        let empty = QueueRows {
            t: &ZH,
            rows: vec![],
            total: 0,
            flash: String::new(),
            flash_kind: "ok",
        }
        .render()
        .unwrap();
        assert!(empty.contains(ZH.no_tasks));
    }

    #[test]
    fn filters_round_trip_through_the_address() {
        let f = QueueFilters {
            status: "signed_for".to_owned(),
            due_within: "1d".to_owned(),
            sort: String::new(),
            breached: true,
            department: "police".to_owned(),
            community: String::new(),
        };
        assert_eq!(
            f.query(),
            "?status=signed_for&due_within=1d&department=police&breached=true"
        );
        assert_eq!(QueueFilters::default().query(), "");
    }
}
