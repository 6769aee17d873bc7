//! What the console's pages show, built from the store's types, and the templates that
//! render it (`hub/templates/web/`, checked at compile time). No I/O here: handlers load the
//! data, these functions turn it into words for people.

use askama::Template;
use chrono::{DateTime, FixedOffset, Utc};
use hub_cases::clock::ClockStatus;
use hub_cases::joint_case::{JointCase, JointRole};
use hub_cases::lifecycle::{ActionKind, CancelReason, ReturnReason};
use hub_cases::Measure;
use hub_cases::SlaConfig;
use hub_router::place::PlaceMethod;
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
    let working_time = c.clock.limit.measure() != Measure::Natural;
    match c.clock.status(now) {
        ClockStatus::Running { .. } => Countdown {
            band: "ok",
            text: messages::time_left(left, working_time),
        },
        ClockStatus::Warning { .. } => Countdown {
            band: "warn",
            text: messages::almost_overdue(left, working_time),
        },
        ClockStatus::Breached { overdue, .. } => Countdown {
            band: "late",
            text: messages::overdue_by(overdue.num_milliseconds()),
        },
        ClockStatus::Paused { left_ms, .. } => Countdown {
            band: "paused",
            text: messages::paused_time_left(left_ms),
        },
        ClockStatus::Stopped { met, .. } => Countdown {
            band: "met",
            text: if met {
                ZH.finished_on_time
            } else {
                ZH.finished_late
            }
            .to_owned(),
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
    /// The units chosen tasks can be sent to at once (派遣/仲裁): those of the community in
    /// focus and its street; empty when there is none, or the account may not dispatch.
    pub assign_units: Vec<Choice>,
    pub total: u64,
    pub flash: String,
    /// `ok` or `error`.
    pub flash_kind: &'static str,
}

/// The queue's filters, as chosen (and as they stand in the page's address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilters {
    pub status: String,
    pub due_within: String,
    pub sort: String,
    pub department: String,
    pub community: String,
    /// A major class or category code of the taxonomy (a prefix: `E01`, `E0103`).
    pub category: String,
    pub unit: String,
    pub grid: String,
    pub breached: bool,
    pub at_risk: bool,
    pub paused: bool,
}

impl QueueFilters {
    /// The filters from query or form pairs; keys it does not know are left to the caller
    /// (a bookmarked address from an older console still opens).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut f = QueueFilters::default();
        for (k, v) in pairs {
            f.set(k, v);
        }
        f
    }

    /// Sets one filter; false when `key` is not a filter.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let text = match key {
            "status" => &mut self.status,
            "due_within" => &mut self.due_within,
            "sort" => &mut self.sort,
            "department" => &mut self.department,
            "community" => &mut self.community,
            "category" => &mut self.category,
            "unit" => &mut self.unit,
            "grid" => &mut self.grid,
            "breached" | "at_risk" | "paused" => {
                let on = value == "true";
                match key {
                    "breached" => self.breached = on,
                    "at_risk" => self.at_risk = on,
                    _ => self.paused = on,
                }
                return true;
            }
            _ => return false,
        };
        *text = value.to_owned();
        true
    }

    /// The query string that reproduces these filters (`?status=...`), empty for none.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("due_within", &self.due_within),
            ("sort", &self.sort),
            ("department", &self.department),
            ("community", &self.community),
            ("category", &self.category),
            ("unit", &self.unit),
            ("grid", &self.grid),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", super::url_encode(v)));
            }
        }
        for (k, on) in [
            ("breached", self.breached),
            ("at_risk", self.at_risk),
            ("paused", self.paused),
        ] {
            if on {
                parts.push(format!("{k}=true"));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

/// What the queue's selects offer beyond the fixed choices: (value, label) pairs.
#[derive(Debug, Clone, Default)]
pub struct QueueChoices {
    /// The communities the account may narrow to (empty for an account of one community).
    pub communities: Vec<(String, String)>,
    /// The taxonomy's major classes.
    pub categories: Vec<(String, String)>,
    /// The units and grids of the community in focus (chosen, or the account's only one).
    pub units: Vec<(String, String)>,
    pub grids: Vec<(String, String)>,
}

fn optional_choices(options: &[(String, String)], selected: &str, any: &str) -> Vec<Choice> {
    if options.is_empty() {
        return Vec::new();
    }
    let mut c = vec![("", any)];
    c.extend(options.iter().map(|(v, l)| (v.as_str(), l.as_str())));
    choices(c, selected)
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
    pub categories: Vec<Choice>,
    /// Empty until one community is in focus.
    pub units: Vec<Choice>,
    pub grids: Vec<Choice>,
    pub breached: bool,
    pub at_risk: bool,
    pub paused: bool,
    pub rows: String,
}

impl<'a> QueuePage<'a> {
    pub fn new(
        account: &str,
        admin: bool,
        csrf: String,
        filters: &QueueFilters,
        offered: &QueueChoices,
        rows: String,
    ) -> Self {
        let t = &ZH;
        let mut statuses = vec![("open", t.open_only), ("any", t.any)];
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
                    ("2h", t.within_2h),
                    ("1d", t.within_1d),
                    ("3d", t.within_3d),
                    ("7d", t.within_7d),
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
            communities: if offered.communities.len() > 1 {
                optional_choices(&offered.communities, &filters.community, t.any)
            } else {
                Vec::new()
            },
            categories: optional_choices(&offered.categories, &filters.category, t.any),
            units: optional_choices(&offered.units, &filters.unit, t.any),
            grids: optional_choices(&offered.grids, &filters.grid, t.any),
            breached: filters.breached,
            at_risk: filters.at_risk,
            paused: filters.paused,
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
    /// What was done (立案, 签收, 报到, ...).
    pub what: String,
    /// The status it led to, when it changed; empty otherwise.
    pub status: &'static str,
    pub actor: String,
    pub note: String,
}

/// A history entry in words: what was done, by whom, with the particulars. The store keeps
/// the entry as the workflow wrote it (`<label><particulars>[ — <actor's note>]`); the
/// router's first two entries are told from the task itself. `name` gives a unit's name.
pub fn history_row(task: &Task, h: &StatusChange, name: &dyn Fn(&str) -> String) -> HistoryRow {
    let f = &task.fields;
    let note = h.note.clone().unwrap_or_default();
    let by_router = h.actor == hub_cases::opening::ROUTER_ACTOR;
    let (what, note) = if by_router && h.seq == 1 {
        let n = messages::history_filed_from(
            messages::department(f.department),
            &f.source_system,
            &f.source_id,
            &f.place.matched_area,
            f.lead_unit.is_some(),
        );
        (ZH.history_filed.to_owned(), n)
    } else if by_router && h.seq == 2 && h.to_status == TaskStatus::Dispatched {
        let co: Vec<&str> = f.co_handlers.iter().map(|u| u.name.as_str()).collect();
        let n = messages::history_dispatched_to(
            f.lead_unit.as_ref().map_or("", |u| u.name.as_str()),
            &co,
        );
        (messages::action(ActionKind::Dispatch).to_owned(), n)
    } else {
        // The actor's own note, after the dash, is kept as written.
        let (written, said) = note.split_once(" — ").unwrap_or((note.as_str(), ""));
        let (head, rest) = written
            .find([' ', ':', '('])
            .map_or((written, ""), |i| written.split_at(i));
        match messages::history_label(head) {
            Some(what) => {
                let rest = rest.trim_start_matches([':', ' ']);
                let rest = rest
                    .strip_prefix("by ")
                    .or_else(|| rest.strip_prefix("to "))
                    .unwrap_or(rest);
                let mut n = with_unit_names(rest, name);
                if !said.is_empty() {
                    if !n.is_empty() {
                        n.push_str(" — ");
                    }
                    n.push_str(said);
                }
                (what.to_owned(), n)
            }
            None => (messages::status(h.to_status).to_owned(), note.clone()),
        }
    };
    let changed = h.from_status != Some(h.to_status);
    HistoryRow {
        at: cst(h.at),
        what,
        status: if changed {
            messages::status(h.to_status)
        } else {
            ""
        },
        actor: actor_words(&h.actor, name),
        note,
    }
}

/// Unit ids (`510504001001.property_company`) in `text` replaced by the units' names.
fn with_unit_names(text: &str, name: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.contains('.') && word.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&name(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Who acted: the system's parts in words, an account with its unit's name.
fn actor_words(actor: &str, name: &dyn Fn(&str) -> String) -> String {
    match actor {
        hub_cases::opening::ROUTER_ACTOR | "router" => ZH.actor_router.to_owned(),
        "sla_tracker" => ZH.actor_sla_tracker.to_owned(),
        a => match a.split_once('@') {
            Some((account, unit)) => messages::with_aside(account, &name(unit)),
            None => a.to_owned(),
        },
    }
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

/// The actions the console has forms for: all of them.
pub const FORM_ACTIONS: [ActionKind; 21] = [
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
    ActionKind::ConveneJointMeeting,
    ActionKind::ReportIn,
    ActionKind::CompletePart,
];

/// Co-handler rows on the form that convenes a joint meeting (吹哨).
pub const CONVENE_CO_HANDLERS: usize = 3;

/// The units an account may choose on a task's joint-case forms.
#[derive(Debug, Clone, Default)]
pub struct JointChoices {
    /// Called units that have not reported in, that the account may report in for.
    pub report_in: Vec<Choice>,
    /// Units that reported in and have not finished their part, that the account may act for.
    pub complete_part: Vec<Choice>,
}

fn note_field() -> Field {
    Field {
        name: "note",
        label: ZH.note,
        required: false,
        multiline: false,
        choices: Vec::new(),
    }
}

/// Limits of so many working days (`3 working_days`, as the API reads them), after an
/// empty choice worded `unset` when there is one (chosen first).
fn working_days_choices(unset: Option<&str>, days: &[u32]) -> Vec<Choice> {
    let mut options: Vec<(String, String)> = unset
        .map(|label| (String::new(), label.to_owned()))
        .into_iter()
        .collect();
    options.extend(
        days.iter()
            .map(|d| (format!("{d} working_days"), messages::working_days(*d))),
    );
    choices(options.iter().map(|(v, l)| (v.as_str(), l.as_str())), "")
}

fn part_limits() -> Vec<Choice> {
    working_days_choices(Some(ZH.joint_no_part_limit), &[1, 3, 5, 10])
}

/// The fields of the form that convenes the joint meeting: the lead unit and its part, up
/// to [`CONVENE_CO_HANDLERS`] co-handlers with theirs, one time limit for the parts.
fn convene_fields(units: &[Choice]) -> Vec<Field> {
    let t = &ZH;
    let unit = |name, label, units: Vec<Choice>| Field {
        name,
        label,
        required: false,
        multiline: false,
        choices: units,
    };
    let part = |name, label, required| Field {
        name,
        label,
        required,
        multiline: false,
        choices: Vec::new(),
    };
    let mut none = vec![Choice {
        value: String::new(),
        label: t.not_called.to_owned(),
        selected: true,
    }];
    none.extend(units.iter().map(|u| Choice {
        selected: false,
        ..u.clone()
    }));
    let mut fields = vec![
        unit("lead_unit", t.joint_lead, units.to_vec()),
        part("lead_part", t.joint_lead_part, true),
    ];
    const ROWS: [(&str, &str); CONVENE_CO_HANDLERS] = [
        ("co_unit_1", "co_part_1"),
        ("co_unit_2", "co_part_2"),
        ("co_unit_3", "co_part_3"),
    ];
    for (i, (u, p)) in ROWS.into_iter().enumerate() {
        fields.push(unit(u, t.joint_co_unit[i], none.clone()));
        fields.push(part(p, t.joint_co_part[i], false));
    }
    fields.push(Field {
        name: "part_limit",
        label: t.joint_part_limit,
        required: false,
        multiline: false,
        choices: part_limits(),
    });
    fields
}

/// The form of an action; `units` are the units a task can go to (its community's, then its
/// street's), `joint` the units of its joint case the account may act for.
pub fn action_form(kind: ActionKind, units: &[Choice], joint: &JointChoices) -> ActionForm {
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
        ActionKind::RequestExtension => vec![Field {
            name: "by",
            label: t.extension_by,
            required: true,
            multiline: false,
            choices: working_days_choices(None, &[1, 2, 3, 5]),
        }],
        ActionKind::Dispatch | ActionKind::Arbitrate => vec![Field {
            name: "unit",
            label: t.assign_to,
            required: true,
            multiline: false,
            choices: units.to_vec(),
        }],
        ActionKind::ReportStage => vec![Field {
            name: "stage",
            label: t.stage_done,
            required: true,
            multiline: false,
            choices: Vec::new(),
        }],
        ActionKind::ApproveExtension => vec![Field {
            name: "by",
            label: t.extension_granted,
            required: false,
            multiline: false,
            choices: working_days_choices(Some(t.extension_as_requested), &[1, 2, 3]),
        }],
        ActionKind::Escalate => vec![Field {
            name: "step",
            label: t.escalate_to,
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
        ActionKind::ConveneJointMeeting => convene_fields(units),
        ActionKind::ReportIn | ActionKind::CompletePart => vec![Field {
            name: "unit",
            label: t.joint_unit,
            required: true,
            multiline: false,
            choices: if kind == ActionKind::ReportIn {
                joint.report_in.clone()
            } else {
                joint.complete_part.clone()
            },
        }],
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
    /// Where and why the task went, in words built from what the router decided.
    pub why: Vec<String>,
    /// The router's own explanation, as it wrote it (rules, roles and fallbacks in detail).
    pub why_detail: Vec<String>,
    pub clocks: Vec<ClockRow>,
    pub history: Vec<HistoryRow>,
    pub actions: Vec<ActionForm>,
    /// The joint meeting's units and what each has done, when one was convened.
    pub joint: Vec<JointRow>,
    pub joint_convened: String,
}

/// A unit called to the joint meeting.
#[derive(Debug, Clone)]
pub struct JointRow {
    pub unit: String,
    pub role: &'static str,
    pub part: String,
    /// Reported in (报到): when, or by when, with its band.
    pub report_in: String,
    pub report_in_band: &'static str,
    /// Its part: done when, due when, or open-ended.
    pub part_state: String,
    pub part_band: &'static str,
}

/// The joint case as rows, each unit's deadlines judged at `now`; `name` gives a unit's name.
pub fn joint_rows(
    case: &JointCase,
    name: &dyn Fn(&str) -> String,
    now: DateTime<Utc>,
) -> Vec<JointRow> {
    let judged = |done: Option<DateTime<Utc>>, due: Option<DateTime<Utc>>| match (done, due) {
        (Some(at), Some(due)) if at > due => (messages::part_done_late(&cst(at)), "late"),
        (Some(at), _) => (messages::part_done_at(&cst(at)), "met"),
        (None, Some(due)) if now > due => (messages::overdue_since(&cst(due)), "late"),
        (None, Some(due)) => (messages::due_by(&cst(due)), "ok"),
        (None, None) => (ZH.joint_untimed.to_owned(), "none"),
    };
    case.participants
        .iter()
        .map(|p| {
            let (report_in, report_in_band) = judged(p.reported_in_at, Some(p.report_in_by));
            let (part_state, part_band) = if p.reported_in_at.is_none() && p.part_done_at.is_none()
            {
                (ZH.joint_awaiting_report_in.to_owned(), "none")
            } else {
                judged(p.part_done_at, p.part_due)
            };
            JointRow {
                unit: name(&p.unit),
                role: match p.role {
                    JointRole::Lead => ZH.joint_role_lead,
                    JointRole::CoHandler => ZH.joint_role_co_handler,
                },
                part: p.part.clone(),
                report_in,
                report_in_band,
                part_state,
                part_band,
            }
        })
        .collect()
}

/// Where and why a task went where it went, in words, from the decision's fields (the
/// router's own text, in [`why_detail`], is kept for administrators tracing a rule).
pub fn why_here(task: &Task) -> Vec<String> {
    let f = &task.fields;
    let e = &f.explanation;
    let area = &e.matched_area;
    let mut why = vec![match e.place_method {
        PlaceMethod::Point => match f.location.point {
            Some(p) => messages::placed_by_point(p.lon, p.lat, area),
            None => messages::placed_in(area),
        },
        PlaceMethod::GridCode => {
            messages::placed_by_grid_code(f.location.grid_code.as_deref().unwrap_or_default(), area)
        }
        PlaceMethod::Address => {
            messages::placed_by_address(f.location.address.as_deref().unwrap_or_default(), area)
        }
        PlaceMethod::Unplaced => messages::unplaced(area),
    }];
    why.push(messages::category_matched(
        messages::department(f.department),
        &f.category_code,
        f.category_name.as_deref(),
        &f.category.code,
        &f.category.name,
    ));
    why.push(messages::labelled(ZH.rule, &e.rule_id));
    match &f.lead_unit {
        Some(lead) if lead.role == hub_router::city::UnitRole::TriageDesk => {
            why.push(messages::triaged_by(&lead.name))
        }
        Some(lead) => {
            why.push(messages::lead_with_role(
                &lead.name,
                messages::unit_role(lead.role),
            ));
            if !f.co_handlers.is_empty() {
                let co: Vec<String> = f
                    .co_handlers
                    .iter()
                    .map(|u| messages::with_aside(&u.name, messages::unit_role(u.role)))
                    .collect();
                why.push(messages::co_handlers_with_roles(&co));
            }
        }
        None => why.push(ZH.triaged_above.to_owned()),
    }
    if let Some(a) = &e.admission {
        why.push(
            if a.admitted {
                ZH.admitted
            } else {
                ZH.not_admitted
            }
            .to_owned(),
        );
    }
    why.push(messages::labelled(ZH.rules_version, &e.rules_version));
    why
}

/// The router's explanation as it wrote it.
fn why_detail(e: &hub_router::explanation::Explanation) -> Vec<String> {
    [
        &e.place_detail,
        &e.category_detail,
        &e.rule_detail,
        &e.assignment_detail,
    ]
    .into_iter()
    .chain(e.admission.as_ref().map(|a| &a.reason))
    .filter(|d| !d.is_empty())
    .cloned()
    .collect()
}

pub struct TaskFacts<'a> {
    pub task: &'a Task,
    pub version: u64,
    pub clocks: &'a [StoredClock],
    pub history: &'a [StatusChange],
    pub reports: &'a [Report],
    /// The actions this account may take now.
    pub allowed: &'a [ActionKind],
    /// The units the task can go to (for dispatch, arbitration and the joint meeting).
    pub units: &'a [Choice],
    pub joint: Option<&'a JointCase>,
    pub joint_choices: &'a JointChoices,
    /// A unit's name from its id.
    pub unit_name: &'a dyn Fn(&str) -> String,
}

pub fn task_view(facts: &TaskFacts<'_>, sla: &SlaConfig, now: DateTime<Utc>) -> TaskView {
    let task = facts.task;
    let f = &task.fields;
    let countdown = task_countdown(facts.clocks, sla, now);
    let why = why_here(task);
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
        co_handlers: messages::listed(
            &f.co_handlers
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>(),
        ),
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
        why_detail: why_detail(&f.explanation),
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
            .map(|h| history_row(task, h, facts.unit_name))
            .collect(),
        actions: facts
            .allowed
            .iter()
            .filter(|k| FORM_ACTIONS.contains(k))
            .map(|k| action_form(*k, facts.units, facts.joint_choices))
            .collect(),
        joint: facts
            .joint
            .map(|c| joint_rows(c, facts.unit_name, now))
            .unwrap_or_default(),
        joint_convened: facts.joint.map(|c| cst(c.convened_at)).unwrap_or_default(),
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
        let ret = action_form(ActionKind::Return, &[], &JointChoices::default());
        assert_eq!(ret.label, "回退");
        let reasons: Vec<&str> = ret.fields[0]
            .choices
            .iter()
            .map(|c| c.value.as_str())
            .collect();
        assert_eq!(reasons.len(), ReturnReason::ALL.len());
        assert!(reasons.contains(&"not_our_remit"));
        let resolve = action_form(ActionKind::Resolve, &[], &JointChoices::default());
        assert!(resolve.fields[0].required && resolve.fields[0].multiline);
        assert_eq!(resolve.fields.last().unwrap().name, "note");
        assert_eq!(
            action_form(ActionKind::SignFor, &[], &JointChoices::default())
                .fields
                .len(),
            1
        );
        let units = vec![Choice {
            value: "510504001001.workstation".to_owned(),
            label: "梧桐社区工作站".to_owned(),
            selected: false,
        }];
        let dispatch = action_form(ActionKind::Dispatch, &units, &JointChoices::default());
        assert_eq!(dispatch.fields[0].choices[0].label, "梧桐社区工作站");
        let escalate = action_form(ActionKind::Escalate, &[], &JointChoices::default());
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
            assign_units: Vec::new(),
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
            assign_units: Vec::new(),
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
            breached: true,
            department: "police".to_owned(),
            category: "E01".to_owned(),
            grid: "510504001002003".to_owned(),
            paused: true,
            ..QueueFilters::default()
        };
        let query = f.query();
        assert_eq!(
            query,
            "?status=signed_for&due_within=1d&department=police&category=E01\
             &grid=510504001002003&breached=true&paused=true"
        );
        let back = QueueFilters::from_pairs(
            query[1..]
                .split('&')
                .map(|kv| kv.split_once('=').unwrap())
                .chain([("page", "2")]),
        );
        assert_eq!(back, f, "an unknown key is ignored");
        assert_eq!(QueueFilters::default().query(), "");
    }
}
