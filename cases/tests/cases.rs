//! The case workflow with a controlled clock: calendars, SLA clocks, staged limits,
//! escalation, joint cases, the state machine and the tracker's scheduler, on the shipped
//! configuration in `config/sla/`.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};
use hub_cases::calendar::{DayKind, Measure};
use hub_cases::clock::{ClockEvent, ClockKind, ClockStatus, PauseReason};
use hub_cases::escalation::escalate;
use hub_cases::joint_case::{Assignment, JointCaseConfig, JointDuty};
use hub_cases::lifecycle::{ActionKind, CancelReason, Refusal, ReturnReason};
use hub_cases::scheduler::Timing;
use hub_cases::sla::apply_effects;
use hub_cases::{
    apply, Action, Actor, DueKind, Escalation, JointCase, Limit, Scheduler, SlaClock, SlaConfig,
    SlaPolicies, SlaPolicy, TaskFacts, TaskState, WorkingCalendar,
};
use hub_router::city::LadderStep;
use hub_router::priority::Priority;
use hub_router::task::TaskStatus;
use hub_schemas::event::Department;
use proptest::prelude::*;

// ------------------------------------------------------------------------------ helpers

fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/sla")
}

fn config() -> SlaConfig {
    SlaConfig::load(&config_dir()).expect("the shipped SLA configuration loads")
}

fn calendar(config: &SlaConfig) -> &WorkingCalendar {
    config
        .calendars
        .get("cn-mainland")
        .expect("cn-mainland calendar")
}

/// A China Standard Time wall-clock instant.
fn cn(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    let cst = FixedOffset::east_opt(8 * 3600).unwrap();
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
        .and_local_timezone(cst)
        .unwrap()
        .with_timezone(&Utc)
}

fn policy<'a>(config: &'a SlaConfig, id: &str) -> &'a SlaPolicy {
    config
        .policies
        .get(id)
        .unwrap_or_else(|| panic!("policy {id}"))
}

fn person(unit: &str) -> Actor {
    Actor::person(format!("{unit}.staff"), Some(unit))
}

/// A task and its clocks, moved along by actions, with the tracker's scheduler watching.
struct Case<'a> {
    policy: &'a SlaPolicy,
    calendar: &'a WorkingCalendar,
    state: TaskState,
    clocks: Vec<SlaClock>,
    scheduler: Scheduler,
}

impl<'a> Case<'a> {
    fn new(policy: &'a SlaPolicy, calendar: &'a WorkingCalendar) -> Self {
        Case {
            policy,
            calendar,
            state: TaskState::new(policy.stage_names()),
            clocks: Vec::new(),
            scheduler: Scheduler::new(),
        }
    }

    fn act(&mut self, action: Action, actor: &Actor, at: DateTime<Utc>) {
        let t = apply(&self.state, action, actor, at).unwrap_or_else(|e| panic!("{e}"));
        let effects = self.policy.clock_effects(&t, self.calendar);
        self.state = t.state;
        self.effects(&effects);
    }

    fn effects(&mut self, effects: &[hub_cases::ClockEffect]) {
        for i in apply_effects(&mut self.clocks, effects, self.calendar).unwrap() {
            match Timing::of(&self.clocks[i]) {
                Some(timing) => self.scheduler.schedule(i as u64, timing),
                None => {
                    self.scheduler.cancel(i as u64);
                }
            }
        }
    }

    fn clock(&self, kind: &ClockKind) -> &SlaClock {
        self.clocks
            .iter()
            .rev()
            .find(|c| &c.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} clock"))
    }
}

fn handling(stage: &str) -> ClockKind {
    ClockKind::Handling {
        stage: stage.to_owned(),
    }
}

// ------------------------------------------------------------------------------ calendar

#[test]
fn shipped_calendar_knows_2026_holidays_and_makeup_days() {
    let config = config();
    let cal = calendar(&config);
    let day = |m, d| NaiveDate::from_ymd_opt(2026, m, d).unwrap();
    assert_eq!(cal.day_kind(day(2, 14)), DayKind::MakeupWorkday("春节"));
    assert_eq!(cal.day_kind(day(2, 16)), DayKind::Holiday("春节"));
    assert_eq!(cal.day_kind(day(2, 23)), DayKind::Holiday("春节"));
    assert_eq!(cal.day_kind(day(2, 24)), DayKind::Workday);
    assert_eq!(cal.day_kind(day(1, 4)), DayKind::MakeupWorkday("元旦"));
    assert_eq!(cal.day_kind(day(4, 6)), DayKind::Holiday("清明节"));
    assert_eq!(cal.day_kind(day(5, 9)), DayKind::MakeupWorkday("劳动节"));
    assert_eq!(cal.day_kind(day(6, 19)), DayKind::Holiday("端午节"));
    assert_eq!(cal.day_kind(day(9, 20)), DayKind::MakeupWorkday("国庆节"));
    assert_eq!(cal.day_kind(day(10, 10)), DayKind::MakeupWorkday("国庆节"));
    assert_eq!(cal.day_kind(day(3, 7)), DayKind::RestDay);
    assert!(cal.covers(day(12, 31)) && !cal.covers(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
    // A make-up Saturday has the hours of a Monday.
    assert_eq!(
        cal.working_spans(day(10, 10)),
        vec![
            (cn(2026, 10, 10, 8, 30), cn(2026, 10, 10, 12, 0)),
            (cn(2026, 10, 10, 14, 0), cn(2026, 10, 10, 17, 30)),
        ]
    );
}

#[test]
fn working_hours_across_weekend_holidays_and_makeup_saturday_land_on_the_minute() {
    let config = config();
    let cal = calendar(&config);
    // Thursday 24 September 10:00, 42 working hours: Thu 5.5 h; 中秋 Fri-Sun off; Mon-Wed
    // 21 h (26.5); 国庆 1-7 October off (its weekend included); Thu 8 and Fri 9 October 14 h
    // (40.5); the last 1.5 h on the make-up Saturday 10 October, from 08:30.
    let start = cn(2026, 9, 24, 10, 0);
    assert_eq!(
        cal.add(start, Limit::working_hours(42)),
        cn(2026, 10, 10, 10, 0)
    );
    // One working minute less or more moves the deadline by exactly one minute.
    assert_eq!(
        cal.add(start, Limit::working_minutes(42 * 60 - 1)),
        cn(2026, 10, 10, 9, 59)
    );
    assert_eq!(
        cal.add(start, Limit::working_minutes(42 * 60 + 1)),
        cn(2026, 10, 10, 10, 1)
    );

    // Friday before 春节, 2 working days: the make-up Saturday counts, the nine days off do
    // not; due Tuesday at the same time of day.
    assert_eq!(
        cal.add(cn(2026, 2, 13, 10, 0), Limit::working_days(2)),
        cn(2026, 2, 24, 10, 0)
    );
    // Reported Friday after hours, 1 working day: by the end of Monday.
    assert_eq!(
        cal.add(cn(2026, 3, 6, 18, 0), Limit::working_days(1)),
        cn(2026, 3, 9, 17, 30)
    );
    // A limit ending at the lunch break falls due at 12:00, not at 14:00.
    assert_eq!(
        cal.add(cn(2026, 3, 9, 9, 0), Limit::working_hours(3)),
        cn(2026, 3, 9, 12, 0)
    );
    // Natural hours run through nights and holidays.
    assert_eq!(
        cal.add(cn(2026, 9, 30, 20, 0), Limit::hours(24)),
        cn(2026, 10, 1, 20, 0)
    );
}

proptest! {
    #[test]
    fn deadlines_are_monotone_and_inside_working_hours(
        start_minute in 0i64..(366 * 24 * 60),
        a in 1u32..3000,
        b in 1u32..3000,
        unit in prop_oneof![
            Just(hub_cases::TimeUnit::WorkingMinutes),
            Just(hub_cases::TimeUnit::WorkingHours),
            Just(hub_cases::TimeUnit::WorkingDays),
        ],
    ) {
        let config = config();
        let cal = calendar(&config);
        let start = cn(2026, 1, 1, 0, 0) + TimeDelta::minutes(start_minute);
        let (lo, hi) = (a.min(b).min(unit.max_amount()), a.max(b).min(unit.max_amount()));
        let d_lo = cal.add(start, Limit::new(lo, unit));
        let d_hi = cal.add(start, Limit::new(hi, unit));
        prop_assert!(d_lo > start);
        prop_assert!(d_lo <= d_hi, "{lo} {unit} → {d_lo}, {hi} {unit} → {d_hi}");
        prop_assert!(lo == hi || d_lo < d_hi);
        prop_assert!(cal.is_within_working_hours(d_lo), "{d_lo} is outside working hours");
        prop_assert!(cal.is_within_working_hours(d_hi), "{d_hi} is outside working hours");
        // The working time between start and deadline is the limit, exactly.
        let measure = unit.measure();
        prop_assert_eq!(cal.elapsed(start, d_lo, measure), Limit::new(lo, unit).in_measure(measure, cal));
    }
}

// ------------------------------------------------------------------------------ policies

#[test]
fn first_matching_policy_wins_and_the_default_takes_the_rest() {
    let config = config();
    let p = &config.policies;
    let facts = |code, priority, department| TaskFacts {
        category_code: code,
        priority,
        department,
    };
    let id = |f: TaskFacts<'_>| p.select(&f).id.clone();
    assert_eq!(
        id(facts("E0101", None, Some(Department::UrbanManagement))),
        "illegal_construction"
    );
    assert_eq!(
        id(facts(
            "E0102",
            Some(Priority::Normal),
            Some(Department::Sanitation)
        )),
        "exposed_garbage"
    );
    // A resident's emergency is the hotline's, not the general emergency policy below it.
    assert_eq!(
        id(facts(
            "E0102",
            Some(Priority::Emergency),
            Some(Department::Residents)
        )),
        "hotline_emergency"
    );
    assert_eq!(
        id(facts(
            "E0102",
            Some(Priority::Emergency),
            Some(Department::Sanitation)
        )),
        "emergency"
    );
    assert_eq!(
        id(facts(
            "E0102",
            Some(Priority::Urgent),
            Some(Department::Residents)
        )),
        "hotline_utilities"
    );
    assert_eq!(
        id(facts("E0601", None, Some(Department::Police))),
        "general"
    );
    assert_eq!(
        id(facts("C0201", None, Some(Department::UrbanManagement))),
        "utilities"
    );
    assert_eq!(
        id(facts(
            "E0801",
            Some(Priority::Urgent),
            Some(Department::CivilAffairs)
        )),
        "welfare_urgent"
    );
    assert_eq!(
        id(facts(
            "E0802",
            Some(Priority::Normal),
            Some(Department::CivilAffairs)
        )),
        "welfare_follow_up"
    );
    // A category or rule that names a policy takes it, whatever matching would give.
    let garbage = facts(
        "E0103",
        Some(Priority::Normal),
        Some(Department::Sanitation),
    );
    assert_eq!(
        p.policy_for(Some("exposed_garbage"), &garbage).id,
        "exposed_garbage"
    );
    assert_eq!(p.policy_for(None, &garbage).id, "general");
    // Every policy the shipped taxonomy names exists.
    let taxonomy =
        std::fs::read_to_string(config_dir().join("../taxonomy.toml")).unwrap_or_default();
    for line in taxonomy.lines().filter(|l| l.starts_with("sla = ")) {
        let name = line.split('"').nth(1).unwrap_or_default();
        assert!(
            p.get(name).is_some(),
            "config/taxonomy.toml names SLA policy {name:?}"
        );
    }
    assert_eq!(p.version, "2026.1");
    assert_eq!(
        p.get("illegal_construction").unwrap().stage_names(),
        ["stop_work", "penalty", "demolition"]
    );
}

#[test]
fn bad_configuration_is_refused_with_file_line_and_what_is_wrong() {
    let text = std::fs::read_to_string(config_dir().join("policies.toml")).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    let bad_unit = text.replacen(
        "handling = \"4 working_hours\"",
        "handling = \"4 work_hours\"",
        1,
    );
    let err = SlaPolicies::parse(&bad_unit, "policies.toml")
        .unwrap_err()
        .to_string();
    let line = line_of("handling = \"4 working_hours\"");
    assert!(err.starts_with(&format!("policies.toml:{line}:")), "{err}");
    assert!(
        err.contains("exposed_garbage") && err.contains("unknown unit \"work_hours\""),
        "{err}"
    );

    let shadowed = text.replacen("categories = [\"E0102\"]", "categories = [\"E01*\"]", 1);
    let err = SlaPolicies::parse(&shadowed, "policies.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("policy \"construction_waste\" can never match: policy \"exposed_garbage\""),
        "{err}"
    );

    let unknown_priority =
        text.replacen("priorities = [\"urgent\"]", "priorities = [\"urgnet\"]", 1);
    let err = SlaPolicies::parse(&unknown_priority, "policies.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown priority \"urgnet\""), "{err}");

    let typo_key = text.replacen("verification = \"2 hours\"", "verifcation = \"2 hours\"", 1);
    let err = SlaPolicies::parse(&typo_key, "policies.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("verifcation"), "{err}");
    assert!(
        err.starts_with(&format!(
            "policies.toml:{}:",
            line_of("verification = \"2 hours\"")
        )),
        "{err}"
    );

    let unknown_calendar =
        text.replacen("calendar = \"cn-mainland\"", "calendar = \"cn-mainlnd\"", 1);
    let policies = SlaPolicies::parse(&unknown_calendar, "policies.toml").unwrap();
    let err = SlaConfig::new(policies, config().calendars)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("calendar \"cn-mainlnd\" is not loaded (known: cn-mainland)"),
        "{err}"
    );

    let cal = std::fs::read_to_string(config_dir().join("calendars/cn-mainland.toml")).unwrap();
    let weekday_makeup = cal.replacen("work = [\"2026-05-09\"]", "work = [\"2026-05-08\"]", 1);
    let err = WorkingCalendar::parse(&weekday_makeup, "cn-mainland.toml", "cn-mainland")
        .unwrap_err()
        .to_string();
    let line = cal.lines().position(|l| l.contains("2026-05-09")).unwrap() + 1;
    assert!(
        err.starts_with(&format!("cn-mainland.toml:{line}:")),
        "{err}"
    );
    assert!(
        err.contains("2026-05-08 is a Fri, already a working day"),
        "{err}"
    );

    let wrong_year = cal.replacen("2026-06-19..2026-06-21", "2027-06-19..2027-06-21", 1);
    let err = WorkingCalendar::parse(&wrong_year, "cn-mainland.toml", "cn-mainland")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outside the years this file covers (2026)"),
        "{err}"
    );
}

// ------------------------------------------------------------------------------ clocks

#[test]
fn waiting_on_the_resident_pauses_handling_and_an_extension_adds_time() {
    let config = config();
    let cal = calendar(&config);
    let mut case = Case::new(policy(&config, "exposed_garbage"), cal);
    let unit = person("510504001001.sanitation");
    case.act(
        Action::Dispatch {
            unit: "510504001001.sanitation".into(),
        },
        &Actor::system("router"),
        cn(2026, 3, 2, 9, 0),
    );
    case.act(Action::SignFor, &unit, cn(2026, 3, 2, 9, 20));
    case.act(Action::Start, &unit, cn(2026, 3, 2, 9, 30));
    // 4 working hours from Monday 09:00.
    let h = handling("handling");
    assert_eq!(case.clock(&h).deadline(), Some(cn(2026, 3, 2, 15, 0)));
    assert_eq!(case.clock(&h).warning_at(), Some(cn(2026, 3, 2, 14, 12)));

    // At 10:00 (1 h used) the unit waits on the resident until Tuesday 09:00.
    case.act(Action::AwaitResident, &unit, cn(2026, 3, 2, 10, 0));
    assert_eq!(
        case.clock(&h).status(cn(2026, 3, 2, 16, 0)),
        ClockStatus::Paused {
            since: cn(2026, 3, 2, 10, 0),
            left_ms: 3 * 3_600_000,
            measure: Measure::Working
        }
    );
    // Paused clocks are not watched by the tracker (clock 0 is sign-for, 1 handling).
    assert!(!case.scheduler.contains(1));
    case.act(Action::ResidentResponded, &unit, cn(2026, 3, 3, 9, 0));
    assert_eq!(case.clock(&h).deadline(), Some(cn(2026, 3, 3, 12, 0)));
    assert!(matches!(
        case.clock(&h).status(cn(2026, 3, 3, 9, 0)),
        ClockStatus::Running { .. }
    ));

    // An extension of 1 working day (7 h) is asked for and approved: due Wednesday 12:00.
    case.act(
        Action::RequestExtension {
            by: Limit::working_days(1),
        },
        &unit,
        cn(2026, 3, 3, 10, 0),
    );
    assert_eq!(
        case.clock(&h).deadline(),
        Some(cn(2026, 3, 3, 12, 0)),
        "a request alone changes nothing"
    );
    case.act(
        Action::ApproveExtension { by: None },
        &person("510504001.triage_desk"),
        cn(2026, 3, 3, 11, 0),
    );
    assert_eq!(case.clock(&h).deadline(), Some(cn(2026, 3, 4, 12, 0)));
    assert_eq!(case.state.extension_count, 1);

    // Resolved at 11:30 Wednesday: the handling clock stopped in time, verification starts.
    case.act(
        Action::Resolve {
            feedback: "清运完毕".into(),
        },
        &unit,
        cn(2026, 3, 4, 11, 30),
    );
    assert_eq!(
        case.clock(&h).status(cn(2026, 3, 5, 9, 0)),
        ClockStatus::Stopped {
            at: cn(2026, 3, 4, 11, 30),
            met: true
        }
    );
    assert_eq!(
        case.clock(&ClockKind::Verification).deadline(),
        Some(cn(2026, 3, 4, 17, 30))
    );

    // Events survive a round trip through storage and give the same deadlines.
    let stored = serde_json::to_string(case.clock(&h)).unwrap();
    let read: SlaClock = serde_json::from_str(&stored).unwrap();
    let events = read.events().to_vec();
    let restored = read.replay(events, cal).unwrap();
    assert_eq!(&restored, case.clock(&h));
}

#[test]
fn clock_refuses_events_out_of_order_or_after_stop() {
    let config = config();
    let cal = calendar(&config);
    let mut clock = SlaClock::start(
        ClockKind::SignFor,
        1,
        cn(2026, 3, 2, 9, 0),
        Limit::working_hours(2),
        Some(0.8),
        cal,
    );
    let paused = ClockEvent::Paused {
        at: cn(2026, 3, 2, 10, 0),
        reason: PauseReason::AwaitingResident,
    };
    clock.record(paused.clone(), cal).unwrap();
    let err = clock.record(paused, cal).unwrap_err().to_string();
    assert_eq!(err, "cannot pause the sign_for clock: it is already paused");
    let err = clock
        .record(
            ClockEvent::Resumed {
                at: cn(2026, 3, 2, 9, 30),
            },
            cal,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("events are recorded in time order"), "{err}");
    clock
        .record(
            ClockEvent::Stopped {
                at: cn(2026, 3, 2, 11, 0),
            },
            cal,
        )
        .unwrap();
    let err = clock
        .record(
            ClockEvent::Resumed {
                at: cn(2026, 3, 2, 11, 0),
            },
            cal,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("it was stopped at"), "{err}");
}

#[test]
fn staged_limits_run_from_dispatch_and_stop_stage_by_stage() {
    let config = config();
    let cal = calendar(&config);
    let mut case = Case::new(policy(&config, "illegal_construction"), cal);
    let squad = person("510504001.urban_management");
    case.act(
        Action::Dispatch {
            unit: "510504001.urban_management".into(),
        },
        &Actor::system("router"),
        cn(2026, 3, 2, 9, 0),
    );
    // Stop work within 4 working hours, penalty within 7 working days, demolition within 20.
    assert_eq!(
        case.clock(&handling("stop_work")).deadline(),
        Some(cn(2026, 3, 2, 15, 0))
    );
    assert_eq!(
        case.clock(&handling("penalty")).deadline(),
        Some(cn(2026, 3, 11, 9, 0))
    );
    assert_eq!(
        case.clock(&handling("demolition")).deadline(),
        Some(cn(2026, 3, 30, 9, 0))
    );

    case.act(Action::SignFor, &squad, cn(2026, 3, 2, 9, 30));
    // Stages are reported in order; the last one ends with resolve.
    let err = apply(
        &case.state,
        Action::ReportStage {
            stage: "penalty".into(),
        },
        &squad,
        cn(2026, 3, 2, 10, 0),
    )
    .unwrap_err();
    assert_eq!(
        err.problem,
        Refusal::WrongStage {
            stage: "penalty".into(),
            expected: "stop_work".into()
        }
    );
    case.act(
        Action::ReportStage {
            stage: "stop_work".into(),
        },
        &squad,
        cn(2026, 3, 2, 14, 0),
    );
    assert_eq!(case.state.status, TaskStatus::InProgress);
    assert_eq!(
        case.clock(&handling("stop_work"))
            .status(cn(2026, 3, 3, 9, 0)),
        ClockStatus::Stopped {
            at: cn(2026, 3, 2, 14, 0),
            met: true
        }
    );
    // The penalty comes a day late: breached, while demolition is still running.
    let late = cn(2026, 3, 12, 9, 0);
    assert_eq!(
        case.clock(&handling("penalty")).status(late),
        ClockStatus::Breached {
            deadline: cn(2026, 3, 11, 9, 0),
            overdue: TimeDelta::hours(24)
        }
    );
    case.act(
        Action::ReportStage {
            stage: "penalty".into(),
        },
        &squad,
        late,
    );
    assert_eq!(
        case.clock(&handling("penalty")).status(late),
        ClockStatus::Stopped {
            at: late,
            met: false
        }
    );
    assert!(matches!(
        case.clock(&handling("demolition")).status(late),
        ClockStatus::Running { .. }
    ));
    assert!(!case
        .state
        .allowed_actions()
        .contains(&ActionKind::ReportStage));
    case.act(
        Action::Resolve {
            feedback: "已拆除".into(),
        },
        &squad,
        cn(2026, 3, 27, 16, 0),
    );
    assert_eq!(
        case.clock(&handling("demolition"))
            .status(cn(2026, 3, 30, 9, 0)),
        ClockStatus::Stopped {
            at: cn(2026, 3, 27, 16, 0),
            met: true
        }
    );
}

// ------------------------------------------------------------------------------ escalation

#[test]
fn untouched_task_warns_breaches_then_climbs_the_ladder_step_by_step() {
    let config = config();
    let cal = calendar(&config);
    let ladder = LadderStep::ALL.to_vec();
    let mut case = Case::new(policy(&config, "exposed_garbage"), cal);
    case.act(
        Action::Dispatch {
            unit: "510504001001.sanitation".into(),
        },
        &Actor::system("router"),
        cn(2026, 3, 2, 9, 0),
    );

    let tracker = Actor::system("sla-tracker");
    let mut log: Vec<String> = Vec::new();
    let mut due = Vec::new();
    while let Some(at) = case.scheduler.next_due() {
        due.clear();
        case.scheduler.pop_due(at, &mut due);
        for d in due.clone() {
            let clock = case.clocks[d.clock as usize].clone();
            let when =
                d.at.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
                    .format("%m-%d %H:%M");
            match d.kind {
                DueKind::Warning => log.push(format!("{when} warning {}", clock.kind)),
                DueKind::Breach | DueKind::StepOverdue => {
                    let what = if d.kind == DueKind::Breach {
                        "breach"
                    } else {
                        "overdue"
                    };
                    log.push(format!("{when} {what} {}", clock.kind));
                    match escalate(
                        &ladder,
                        &clock,
                        case.state.escalation,
                        d.at,
                        &config.policies.escalation,
                        cal,
                    ) {
                        Escalation::Step(step) => {
                            let deadline = step
                                .deadline()
                                .unwrap()
                                .with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap());
                            log.push(format!(
                                "{when} escalated to {} due {}",
                                step.step.as_str(),
                                deadline.format("%m-%d %H:%M")
                            ));
                            let t = apply(
                                &case.state,
                                Action::Escalate { step: step.step },
                                &tracker,
                                d.at,
                            )
                            .unwrap();
                            case.state = t.state;
                            case.effects(&step.clock_effects());
                        }
                        Escalation::Exhausted => log.push(format!("{when} top of the ladder")),
                        Escalation::NotOnLadder => log.push(format!("{when} not on the ladder")),
                    }
                }
            }
        }
    }
    assert_eq!(
        log,
        [
            "03-02 09:48 warning sign_for",
            "03-02 10:00 breach sign_for",
            "03-02 10:00 escalated to grid_worker due 03-02 12:00",
            "03-02 12:00 overdue escalation:grid_worker",
            "03-02 12:00 escalated to workstation due 03-03 09:00",
            "03-02 14:12 warning handling:handling",
            "03-02 15:00 breach handling:handling",
            // The handling breach climbs again; the workstation's step is superseded.
            "03-02 15:00 escalated to party_branch due 03-03 15:00",
            "03-03 15:00 overdue escalation:party_branch",
            "03-03 15:00 escalated to joint_meeting due 03-05 15:00",
            "03-05 15:00 overdue escalation:joint_meeting",
            "03-05 15:00 escalated to street due 03-10 15:00",
            "03-10 15:00 overdue escalation:street",
            "03-10 15:00 escalated to district due 03-17 15:00",
            "03-17 15:00 overdue escalation:district",
            "03-17 15:00 top of the ladder",
        ]
    );
    assert_eq!(case.state.escalation, Some(LadderStep::District));
    // One escalation chain: every earlier step's clock was stopped when the next was raised.
    let open_steps: Vec<String> = case
        .clocks
        .iter()
        .filter(|c| c.kind.is_escalation() && c.is_open())
        .map(|c| c.kind.to_string())
        .collect();
    assert_eq!(open_steps, ["escalation:district"]);
}

#[test]
fn a_community_without_some_steps_skips_them() {
    let config = config();
    let cal = calendar(&config);
    let ladder = [
        LadderStep::GridWorker,
        LadderStep::PartyBranch,
        LadderStep::Street,
    ];
    let clock = SlaClock::start(
        ClockKind::SignFor,
        1,
        cn(2026, 3, 2, 9, 0),
        Limit::working_hours(1),
        None,
        cal,
    );
    let step = |current| match escalate(
        &ladder,
        &clock,
        current,
        cn(2026, 3, 2, 10, 0),
        &config.policies.escalation,
        cal,
    ) {
        Escalation::Step(s) => Some(s.step),
        other => panic!("{other:?}"),
    };
    assert_eq!(step(None), Some(LadderStep::GridWorker));
    assert_eq!(
        step(Some(LadderStep::GridWorker)),
        Some(LadderStep::PartyBranch)
    );
    assert_eq!(
        step(Some(LadderStep::Workstation)),
        Some(LadderStep::PartyBranch)
    );
    assert_eq!(
        step(Some(LadderStep::PartyBranch)),
        Some(LadderStep::Street)
    );
    let at_street = escalate(
        &ladder,
        &clock,
        Some(LadderStep::Street),
        cn(2026, 3, 2, 10, 0),
        &config.policies.escalation,
        cal,
    );
    assert_eq!(at_street, Escalation::Exhausted);

    // A step's clock, as stored, reads back the same (the ladder step by its config name).
    let Escalation::Step(step) = escalate(
        &ladder,
        &clock,
        None,
        cn(2026, 3, 2, 10, 0),
        &config.policies.escalation,
        cal,
    ) else {
        panic!("expected a step");
    };
    let json = serde_json::to_value(&step.clock).unwrap();
    assert_eq!(json["kind"]["kind"], "escalation");
    assert_eq!(json["kind"]["step"], "grid_worker");
    assert_eq!(json["kind"]["cause"], "sign_for");
    assert_eq!(
        serde_json::from_value::<SlaClock>(json).unwrap(),
        step.clock
    );

    // A late verification or a unit late for a joint case is raised, but climbs nowhere.
    let verification = SlaClock::start(
        ClockKind::Verification,
        1,
        cn(2026, 3, 2, 9, 0),
        Limit::working_hours(1),
        None,
        cal,
    );
    let verdict = escalate(
        &ladder,
        &verification,
        None,
        cn(2026, 3, 2, 10, 0),
        &config.policies.escalation,
        cal,
    );
    assert_eq!(verdict, Escalation::NotOnLadder);
}

#[test]
fn joint_case_breaches_only_the_unit_that_did_not_report_in() {
    let config = config();
    let cal = calendar(&config);
    let convened = cn(2026, 3, 2, 10, 0);
    let mut case = JointCase::convene(
        "task-1",
        convened,
        Assignment::new("510504001001.party_branch", "牵头协调，组织现场会", None),
        vec![
            Assignment::new(
                "510504001.police",
                "现场秩序维护",
                Some(Limit::working_days(1)),
            ),
            Assignment::new(
                "510504001.urban_management",
                "违建查处",
                Some(Limit::working_days(7)),
            ),
            Assignment::new(
                "510504001001.property",
                "配合拆除、清运",
                Some(Limit::working_days(3)),
            ),
        ],
        &config.policies.joint_case,
        cal,
    )
    .unwrap();
    assert_eq!(case.lead().unwrap().report_in_by, cn(2026, 3, 2, 10, 30));
    assert_eq!(case.co_handlers().count(), 3);
    case.report_in("510504001001.party_branch", cn(2026, 3, 2, 10, 5))
        .unwrap();
    case.report_in("510504001.police", cn(2026, 3, 2, 10, 20))
        .unwrap();
    // Exactly at the deadline is in time.
    case.report_in("510504001.urban_management", cn(2026, 3, 2, 10, 30))
        .unwrap();

    assert!(case.breaches(cn(2026, 3, 2, 10, 29)).is_empty());
    assert_eq!(
        case.units_not_reported_in(cn(2026, 3, 2, 10, 31)),
        ["510504001001.property"]
    );
    let breaches = case.breaches(cn(2026, 3, 2, 10, 31));
    assert_eq!(breaches.len(), 1);
    assert_eq!(
        (breaches[0].unit.as_str(), breaches[0].duty),
        ("510504001001.property", JointDuty::ReportIn)
    );

    // Reporting in late still counts as a breach of the report-in deadline.
    case.report_in("510504001001.property", cn(2026, 3, 2, 10, 45))
        .unwrap();
    assert_eq!(
        case.units_not_reported_in(cn(2026, 3, 2, 11, 0)),
        ["510504001001.property"]
    );
    let err = case
        .report_in("510504001.fire", cn(2026, 3, 2, 11, 0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not called to this joint case"), "{err}");

    // Each unit's own part: the police finish in time, the others are still working.
    case.complete_part("510504001.police", cn(2026, 3, 3, 9, 0))
        .unwrap();
    assert!(case
        .breaches(cn(2026, 3, 3, 10, 0))
        .iter()
        .all(|b| b.duty == JointDuty::ReportIn));
    let clocks = case.clocks(1, cal);
    assert_eq!(
        clocks
            .iter()
            .filter(|c| matches!(c.kind, ClockKind::ReportIn { .. }))
            .count(),
        4
    );
    assert!(clocks
        .iter()
        .filter(|c| matches!(c.kind, ClockKind::ReportIn { .. }))
        .all(|c| !c.is_open()));
}

// ------------------------------------------------------------------------------ state machine

fn sample(kind: ActionKind, state: &TaskState) -> Action {
    match kind {
        ActionKind::Dispatch => Action::Dispatch {
            unit: "unit-b".into(),
        },
        ActionKind::SignFor => Action::SignFor,
        ActionKind::Start => Action::Start,
        ActionKind::ReportStage => Action::ReportStage {
            stage: state.next_stage().unwrap_or("stop_work").into(),
        },
        ActionKind::Resolve => Action::Resolve {
            feedback: "done".into(),
        },
        ActionKind::Verify => Action::Verify,
        ActionKind::Rework => Action::Rework {
            finding: "still there".into(),
        },
        ActionKind::Close => Action::Close,
        ActionKind::Cancel => Action::Cancel {
            reason: CancelReason::Invalid,
        },
        ActionKind::Return => Action::Return {
            reason: ReturnReason::NotOurRemit,
        },
        ActionKind::Arbitrate => Action::Arbitrate {
            unit: "unit-c".into(),
        },
        ActionKind::RequestExtension => Action::RequestExtension {
            by: Limit::working_days(2),
        },
        ActionKind::ApproveExtension => Action::ApproveExtension { by: None },
        ActionKind::RefuseExtension => Action::RefuseExtension,
        ActionKind::AwaitResident => Action::AwaitResident,
        ActionKind::ResidentResponded => Action::ResidentResponded,
        ActionKind::Callback => Action::Callback { satisfied: true },
        ActionKind::Escalate => Action::Escalate {
            step: LadderStep::Street,
        },
        ActionKind::ConveneJointMeeting => Action::ConveneJointMeeting {
            case: JointCase::convene(
                "task-1",
                cn(2026, 3, 2, 9, 0),
                Assignment::new("unit-a", "lead the case", None),
                vec![Assignment::new("unit-b", "keep order", None)],
                &JointCaseConfig {
                    report_in: Limit::minutes(30),
                },
                WorkingCalendar::always_open(),
            )
            .unwrap(),
        },
        ActionKind::ReportIn => Action::ReportIn {
            unit: "unit-b".into(),
        },
        ActionKind::CompletePart => Action::CompletePart {
            unit: "unit-b".into(),
        },
        ActionKind::Reroute => Action::Reroute {
            lead: hub_router::task::AssignedUnit {
                unit_id: "unit-d".into(),
                role: hub_router::city::UnitRole::Workstation,
                name: "工作站".into(),
            },
            co_handlers: vec![],
            rules_version: "r-000000000001".into(),
        },
    }
}

/// One task state of every kind, reached by real transitions.
fn states() -> Vec<(&'static str, TaskState)> {
    let actor = Actor::person("clerk", None);
    let at = cn(2026, 3, 2, 9, 0);
    let go = |s: &TaskState, a: Action| apply(s, a, &actor, at).unwrap().state;
    let created = TaskState::new(vec![
        "stop_work".into(),
        "penalty".into(),
        "demolition".into(),
    ]);
    let dispatched = go(
        &created,
        Action::Dispatch {
            unit: "unit-a".into(),
        },
    );
    let signed = go(&dispatched, Action::SignFor);
    let in_progress = go(&signed, Action::Start);
    let extension = go(
        &in_progress,
        Action::RequestExtension {
            by: Limit::working_days(1),
        },
    );
    let waiting = go(&in_progress, Action::AwaitResident);
    let last_stage = go(
        &go(
            &in_progress,
            Action::ReportStage {
                stage: "stop_work".into(),
            },
        ),
        Action::ReportStage {
            stage: "penalty".into(),
        },
    );
    let resolved = go(
        &in_progress,
        Action::Resolve {
            feedback: "done".into(),
        },
    );
    let verified = go(&resolved, Action::Verify);
    let closed = go(&verified, Action::Close);
    let closed_final = go(&closed, Action::Callback { satisfied: true });
    let returned = go(
        &dispatched,
        Action::Return {
            reason: ReturnReason::OutsideArea,
        },
    );
    let cancelled = go(
        &created,
        Action::Cancel {
            reason: CancelReason::Duplicate,
        },
    );
    let at_top = go(
        &dispatched,
        Action::Escalate {
            step: LadderStep::District,
        },
    );
    vec![
        ("created", created),
        ("dispatched", dispatched),
        ("signed_for", signed),
        ("in_progress", in_progress),
        ("extension pending", extension),
        ("waiting on resident", waiting),
        ("last stage open", last_stage),
        ("resolved", resolved),
        ("verified", verified),
        ("closed", closed),
        ("closed after callback", closed_final),
        ("returned", returned),
        ("cancelled", cancelled),
        ("escalated to the top", at_top),
    ]
}

#[test]
fn every_illegal_transition_is_refused_naming_the_state_and_the_allowed_moves() {
    let actor = Actor::person("clerk", None);
    let at = cn(2026, 3, 3, 9, 0);
    let mut refused = 0;
    for (name, state) in states() {
        let allowed = state.allowed_actions();
        for kind in ActionKind::ALL {
            let result = apply(&state, sample(kind, &state), &actor, at);
            match result {
                Ok(t) => {
                    // 改派 by a rules version is the hub's own: applied, never offered.
                    assert!(
                        allowed.contains(&kind) || kind == ActionKind::Reroute,
                        "{name}: {kind} was applied but is not listed as allowed"
                    );
                    assert_eq!(
                        (t.from, t.at, t.state.version),
                        (state.status, at, state.version + 1)
                    );
                }
                Err(e) => {
                    refused += 1;
                    assert!(
                        !allowed.contains(&kind),
                        "{name}: {kind} is listed as allowed but refused: {e}"
                    );
                    assert_eq!(e.status, state.status);
                    assert_eq!(e.allowed, allowed);
                    let msg = e.to_string();
                    assert!(
                        msg.starts_with(&format!("cannot {kind} a task that is {}", state.status)),
                        "{msg}"
                    );
                    let listed: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
                    if listed.is_empty() {
                        assert!(
                            msg.ends_with("nothing is allowed now (the task is final)"),
                            "{msg}"
                        );
                    } else {
                        assert!(
                            msg.ends_with(&format!("allowed now: {}", listed.join(", "))),
                            "{msg}"
                        );
                    }
                }
            }
        }
    }
    assert!(refused > 150, "{refused}");
}

#[test]
fn allowed_moves_per_state_are_what_a_dispatcher_expects() {
    let expect: &[(&str, &[&str])] = &[
        ("created", &["dispatch", "cancel"]),
        (
            "dispatched",
            &[
                "sign_for",
                "cancel",
                "return",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        (
            "signed_for",
            &[
                "start",
                "report_stage",
                "resolve",
                "cancel",
                "return",
                "request_extension",
                "await_resident",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        (
            "in_progress",
            &[
                "report_stage",
                "resolve",
                "cancel",
                "request_extension",
                "await_resident",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        (
            "extension pending",
            &[
                "report_stage",
                "resolve",
                "cancel",
                "approve_extension",
                "refuse_extension",
                "await_resident",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        (
            "waiting on resident",
            &[
                "report_stage",
                "resolve",
                "cancel",
                "request_extension",
                "resident_responded",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        (
            "last stage open",
            &[
                "resolve",
                "cancel",
                "request_extension",
                "await_resident",
                "escalate",
                "convene_joint_meeting",
            ],
        ),
        ("resolved", &["verify", "rework"]),
        ("verified", &["close", "callback"]),
        ("closed", &["callback"]),
        ("closed after callback", &[]),
        (
            "returned",
            &["cancel", "arbitrate", "escalate", "convene_joint_meeting"],
        ),
        ("cancelled", &[]),
        (
            "escalated to the top",
            &["sign_for", "cancel", "return", "convene_joint_meeting"],
        ),
    ];
    for ((name, state), (expected_name, expected)) in states().into_iter().zip(expect) {
        assert_eq!(name, *expected_name);
        let got: Vec<&str> = state.allowed_actions().iter().map(|k| k.as_str()).collect();
        assert_eq!(got, *expected, "{name}");
    }
    let closed_in_progress = apply(
        &states()[3].1,
        Action::Close,
        &Actor::person("clerk", None),
        cn(2026, 3, 2, 9, 0),
    );
    assert_eq!(
        closed_in_progress.unwrap_err().to_string(),
        "cannot close a task that is in_progress; allowed now: report_stage, resolve, cancel, request_extension, await_resident, escalate, convene_joint_meeting"
    );
    let approve = apply(
        &states()[3].1,
        Action::ApproveExtension { by: None },
        &Actor::person("clerk", None),
        cn(2026, 3, 2, 9, 0),
    );
    assert!(approve
        .unwrap_err()
        .to_string()
        .contains(": no extension request is awaiting a decision; allowed now:"));
}

#[test]
fn full_lifecycle_with_return_rework_and_reopen_records_who_when_and_why() {
    let at = |h| cn(2026, 3, 2, h, 0);
    let desk = Actor::person("desk-1", Some("510504001.triage_desk"));
    let unit = Actor::person("zhang", Some("unit-a"));
    let s = TaskState::new(vec!["handling".into()]);
    let t = apply(
        &s,
        Action::Dispatch {
            unit: "unit-a".into(),
        },
        &desk,
        at(9),
    )
    .unwrap();
    assert_eq!(
        (t.from, t.to, t.label()),
        (TaskStatus::Created, TaskStatus::Dispatched, "dispatched")
    );
    // 回退 needs a note when the reason is "other".
    let err = apply(
        &t.state,
        Action::Return {
            reason: ReturnReason::Other,
        },
        &unit,
        at(10),
    )
    .unwrap_err();
    assert_eq!(
        err.problem,
        Refusal::Missing("a note saying why (reason \"other\")")
    );
    let t = apply(
        &t.state,
        Action::Return {
            reason: ReturnReason::NotOurRemit,
        }
        .with_note("属物业管理范围"),
        &unit,
        at(10),
    )
    .unwrap();
    assert_eq!(
        (t.to, t.note.as_deref(), t.state.returned_by.as_deref()),
        (TaskStatus::Returned, Some("属物业管理范围"), Some("unit-a"))
    );
    let t = apply(
        &t.state,
        Action::Arbitrate {
            unit: "unit-b".into(),
        },
        &desk,
        at(11),
    )
    .unwrap();
    assert_eq!(
        (t.to, t.label(), t.state.assignee.as_deref(), t.state.round),
        (TaskStatus::Dispatched, "re-dispatched", Some("unit-b"), 2)
    );
    let b = Actor::person("li", Some("unit-b"));
    let mut s = t.state;
    for a in [
        Action::SignFor,
        Action::Start,
        Action::Resolve {
            feedback: "已处理".into(),
        },
    ] {
        s = apply(&s, a, &b, at(14)).unwrap().state;
    }
    let t = apply(
        &s,
        Action::Rework {
            finding: "现场仍有堆放".into(),
        },
        &desk,
        at(15),
    )
    .unwrap();
    assert_eq!(
        (t.to, t.state.rework_count, t.state.round),
        (TaskStatus::InProgress, 1, 3)
    );
    let mut s = t.state;
    for a in [
        Action::Resolve {
            feedback: "已清理".into(),
        },
        Action::Verify,
        Action::Close,
    ] {
        s = apply(&s, a, &desk, at(16)).unwrap().state;
    }
    let t = apply(
        &s,
        Action::Callback { satisfied: false }.with_note("居民反映仍未解决"),
        &desk,
        at(17),
    )
    .unwrap();
    assert_eq!(
        (t.from, t.to, t.label(), t.state.reopen_count),
        (TaskStatus::Closed, TaskStatus::Dispatched, "reopened", 1)
    );
    assert_eq!((t.actor.id.as_str(), t.at), ("desk-1", at(17)));
    assert_eq!(t.state.version, 11);
    // The history entry is what the store keeps: it serialises.
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["action"]["action"], "callback");
    assert_eq!(json["state"]["status"], "dispatched");
}

// ------------------------------------------------------------------------------ tracker core

#[test]
fn after_a_restart_every_clock_is_back_and_what_fell_due_while_down_is_raised_once() {
    let config = config();
    let cal = calendar(&config);
    let limits = [
        Limit::working_hours(2),
        Limit::working_hours(4),
        Limit::working_days(1),
        Limit::minutes(90),
    ];
    let clocks: Vec<SlaClock> = (0..1000)
        .map(|i| {
            let start = cn(2026, 3, 2, 8, 0) + TimeDelta::minutes(i as i64 % 480);
            SlaClock::start(ClockKind::SignFor, 1, start, limits[i % 4], Some(0.8), cal)
        })
        .collect();
    let mut before = Scheduler::new();
    for (i, c) in clocks.iter().enumerate() {
        before.schedule(i as u64, Timing::of(c).unwrap());
    }
    // Run until 11:00, then the hub dies; it is back at 15:00.
    let (crash, back) = (cn(2026, 3, 2, 11, 0), cn(2026, 3, 2, 15, 0));
    let mut raised = Vec::new();
    before.pop_due(crash, &mut raised);
    drop(before);
    let warned: std::collections::HashSet<u64> = raised
        .iter()
        .filter(|d| d.kind == DueKind::Warning)
        .map(|d| d.clock)
        .collect();
    let breached: std::collections::HashSet<u64> = raised
        .iter()
        .filter(|d| d.kind == DueKind::Breach)
        .map(|d| d.clock)
        .collect();

    // Rebuild from the stored clocks, passing only what is still to raise.
    let mut after = Scheduler::new();
    for (i, c) in clocks.iter().enumerate() {
        let id = i as u64;
        if breached.contains(&id) {
            continue;
        }
        let mut timing = Timing::of(c).unwrap();
        if warned.contains(&id) {
            timing.warning_at = None;
        }
        after.schedule(id, timing);
    }
    assert_eq!(after.len(), 1000 - breached.len());
    let mut at_restart = Vec::new();
    after.pop_due(back, &mut at_restart);
    let expected_breaches = clocks
        .iter()
        .filter(|c| c.deadline().unwrap() > crash && c.deadline().unwrap() <= back)
        .count();
    assert!(expected_breaches > 100, "{expected_breaches}");
    assert_eq!(
        at_restart
            .iter()
            .filter(|d| d.kind == DueKind::Breach)
            .count(),
        expected_breaches
    );
    // Nothing is raised twice, before and after the crash together.
    let mut all: Vec<(u64, DueKind)> = raised
        .iter()
        .chain(&at_restart)
        .map(|d| (d.clock, d.kind))
        .collect();
    let n = all.len();
    all.sort_by_key(|(c, k)| (*c, *k as u8));
    all.dedup();
    assert_eq!(all.len(), n);
    // The rest falls due later, each at its own deadline.
    let mut later = Vec::new();
    while let Some(at) = after.next_due() {
        assert!(at > back);
        after.pop_due(at, &mut later);
    }
    assert_eq!(
        breached.len()
            + expected_breaches
            + later.iter().filter(|d| d.kind == DueKind::Breach).count(),
        1000
    );
    assert!(later
        .iter()
        .all(|d| d.kind != DueKind::Breach || clocks[d.clock as usize].deadline() == Some(d.at)));
}
