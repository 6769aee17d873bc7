//! The indicators' aggregate query against the definitions in Rust: cases driven through the
//! workflow with the shipped SLA policy's clocks, then the store's tallies compared with
//! `hub_cases::indicators::tally` over the facts read back case by case.

use std::path::Path;

use chrono::Utc;
use hub_cases::indicators::{tally, CaseFacts, GroupBy};
use hub_cases::lifecycle::{Action, CancelReason};
use hub_cases::sla::apply_effects;
use hub_cases::{apply, Actor, ClockKind, Limit, SlaClock, SlaConfig, TaskState};
use hub_router::task::TaskStatus;
use hub_store::{earliest_deadline, TaskFilter, TaskStore};

use crate::backends::TestDb;
use crate::fixtures::*;

store_suite!(
    aggregate_indicators_agree_with_the_definitions_case_by_case,
    indicators_of_no_cases_are_no_groups,
);

/// A case as the workflow holds it between actions.
struct Case {
    id: String,
    state: TaskState,
    clocks: Vec<SlaClock>,
}

struct Workflow {
    sla: SlaConfig,
}

impl Workflow {
    fn new() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla");
        Workflow {
            sla: SlaConfig::load(&dir).expect("the shipped SLA configuration loads"),
        }
    }

    /// Routes a task to `unit` at `ms` (what the router stores), with the policy's clocks.
    async fn open(&self, store: &dyn TaskStore, n: usize, community: &str, ms: i64) -> Case {
        let mut task = sample_task(&format!("UM-IND-{n:04}"), ms);
        task.place.community_code = Some(community.to_owned());
        let lead = format!("{community}.workstation");
        task.lead_unit = Some(unit(&lead, "workstation", "工作站"));
        let policy = self.sla.policies.default_policy();
        let calendar = self.sla.calendar_of(policy);
        let t = apply(
            &TaskState::new(policy.stage_names()),
            Action::Dispatch { unit: lead },
            &Actor::system("router"),
            at(ms),
        )
        .unwrap();
        let mut clocks = Vec::new();
        apply_effects(&mut clocks, &policy.clock_effects(&t, calendar), calendar).unwrap();
        let id = created_id(store.create_routed(&task, &clocks).await.unwrap());
        let mut state = t.state;
        state.version = 0;
        Case { id, state, clocks }
    }

    /// One lifecycle action at `ms`, written with the clocks it changes.
    async fn act(&self, store: &dyn TaskStore, case: &mut Case, action: Action, ms: i64) {
        let actor = Actor::person("staff", case.state.assignee.as_deref());
        let t = apply(&case.state, action.clone(), &actor, at(ms))
            .unwrap_or_else(|e| panic!("{action:?} on {}: {e}", case.id));
        let policy = self.sla.policies.default_policy();
        let calendar = self.sla.calendar_of(policy);
        let changed = apply_effects(
            &mut case.clocks,
            &policy.clock_effects(&t, calendar),
            calendar,
        )
        .unwrap();
        let written: Vec<SlaClock> = changed.iter().map(|&i| case.clocks[i].clone()).collect();
        let due = earliest_deadline(case.clocks.iter());
        store
            .apply_transition(&case.id, case.state.version, &t, &written, due, None)
            .await
            .unwrap();
        case.state = t.state;
    }
}

const MINUTE: i64 = 60_000;

/// A dozen kinds of case in two communities: open, signed for late and on time, resolved,
/// closed on time and late, reworked, extended, cancelled, called back either way.
async fn aggregate_indicators_agree_with_the_definitions_case_by_case(db: &TestDb) {
    let store = db.open().await;
    let store = store.as_ref();
    let wf = Workflow::new();
    let feedback = || Action::Resolve {
        feedback: "已处置".to_owned(),
    };
    for n in 0..24 {
        let community = if n % 3 == 0 {
            "510504001001"
        } else {
            "510504001002"
        };
        let start = BASE_MS + n as i64 * 37 * MINUTE;
        let mut case = wf.open(store, n, community, start).await;
        let mut t = start;
        let mut step = |minutes: i64| {
            t += minutes * MINUTE;
            t
        };
        match n % 8 {
            0 if n == 0 => {} // dispatched, never signed for
            0 => {
                // Returned, handed back by the street (a second round, with its own
                // sign-for clock), then signed for late in that round.
                let reason = hub_cases::lifecycle::ReturnReason::NotOurRemit;
                wf.act(store, &mut case, Action::Return { reason }, step(20))
                    .await;
                let unit = case.state.returned_by.clone().unwrap_or_default();
                wf.act(store, &mut case, Action::Arbitrate { unit }, step(60))
                    .await;
                wf.act(store, &mut case, Action::SignFor, step(2 * 24 * 60))
                    .await;
            }
            1 => {
                // Signed for after days: late on the sign-for clock, and never resolved.
                wf.act(store, &mut case, Action::SignFor, step(3 * 24 * 60))
                    .await;
            }
            2 | 3 => {
                wf.act(store, &mut case, Action::SignFor, step(5)).await;
                wf.act(store, &mut case, feedback(), step(90)).await;
                wf.act(store, &mut case, Action::Verify, step(30)).await;
                wf.act(store, &mut case, Action::Close, step(10)).await;
                let satisfied = n % 8 == 2;
                wf.act(store, &mut case, Action::Callback { satisfied }, step(60))
                    .await;
            }
            4 => {
                // Resolved after a rework round, weeks after its deadline.
                wf.act(store, &mut case, Action::SignFor, step(5)).await;
                wf.act(store, &mut case, feedback(), step(60)).await;
                let finding = "未处理完".to_owned();
                wf.act(store, &mut case, Action::Rework { finding }, step(30))
                    .await;
                wf.act(store, &mut case, feedback(), step(30 * 24 * 60))
                    .await;
                wf.act(store, &mut case, Action::Verify, step(10)).await;
                wf.act(store, &mut case, Action::Close, step(10)).await;
            }
            5 => {
                let by = Limit::parse("3 days").unwrap();
                wf.act(store, &mut case, Action::SignFor, step(5)).await;
                wf.act(store, &mut case, Action::RequestExtension { by }, step(20))
                    .await;
                wf.act(
                    store,
                    &mut case,
                    Action::ApproveExtension { by: None },
                    step(20),
                )
                .await;
                wf.act(store, &mut case, feedback(), step(600)).await;
            }
            6 => {
                let reason = CancelReason::Invalid;
                wf.act(store, &mut case, Action::Cancel { reason }, step(15))
                    .await;
            }
            _ => {
                // Signed for, handling overdue by the end of the period.
                wf.act(store, &mut case, Action::SignFor, step(1)).await;
            }
        }
    }
    let facts = facts_of_every_case(store).await;
    assert_eq!(facts.len(), 24);
    for by in GroupBy::ALL {
        for as_of in [at(BASE_MS + 60 * MINUTE), Utc::now()] {
            let expected = tally(&facts, by, as_of);
            let got = store
                .tally_indicators(&TaskFilter::default(), by, as_of)
                .await
                .unwrap();
            assert_eq!(got, expected, "by {} as of {as_of}", by.as_str());
        }
    }
    // The definitions see what the cases were meant to show, so the comparison is not
    // between two empty answers.
    let all = tally(&facts, GroupBy::Street, Utc::now()).remove(0);
    assert_eq!((all.received, all.filed), (24, 21));
    assert!(all.closed >= 6 && all.reworked >= 3 && all.extended >= 3);
    assert!(all.responded < all.dispatched, "{all:?}");
    assert!(all.closed_on_time < all.closed, "{all:?}");
    // An unsatisfied callback reopens the case for a new round, which has no verdict yet.
    assert_eq!((all.callbacks, all.satisfied), (3, 3));
    assert!(all.sign_for_cases > 0 && all.handling_cases > 0, "{all:?}");
    // The filter narrows the aggregate like a listing: one community.
    let one = TaskFilter {
        community_code: Some("510504001001".to_owned()),
        ..TaskFilter::default()
    };
    let got = store
        .tally_indicators(&one, GroupBy::Community, Utc::now())
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key, "510504001001");
    assert_eq!(got[0].received, 8);
}

async fn indicators_of_no_cases_are_no_groups(db: &TestDb) {
    let store = db.open().await;
    let got = store
        .tally_indicators(&TaskFilter::default(), GroupBy::Unit, Utc::now())
        .await
        .unwrap();
    assert!(got.is_empty(), "{got:?}");
}

/// Each case's facts read back one case at a time: its history, state and clocks.
async fn facts_of_every_case(store: &dyn TaskStore) -> Vec<CaseFacts> {
    let filter = TaskFilter {
        limit: TaskFilter::MAX_LIMIT,
        ..TaskFilter::default()
    };
    let mut out = Vec::new();
    for task in store.list_tasks(&filter).await.unwrap() {
        let id = &task.fields.task_id;
        let history = store.task_history(id).await.unwrap();
        let record = store.workflow(id).await.unwrap();
        let clocks = store.task_clocks(id).await.unwrap();
        let moves = || {
            history
                .iter()
                .filter(|h| h.from_status != Some(h.to_status))
        };
        let first = |s: TaskStatus| moves().find(|h| h.to_status == s).map(|h| h.at);
        let last = |s: TaskStatus| moves().rfind(|h| h.to_status == s).map(|h| h.at);
        let state = record.as_ref().and_then(|r| r.state.as_ref());
        let sign_for_due = clocks
            .iter()
            .find(|c| c.clock.kind == ClockKind::SignFor)
            .and_then(|c| c.clock.deadline());
        let handling_due = clocks
            .iter()
            .filter(|c| matches!(c.clock.kind, ClockKind::Handling { .. } | ClockKind::Rework))
            .filter_map(|c| c.clock.deadline())
            .max();
        let f = &task.fields;
        out.push(CaseFacts {
            task_id: id.clone(),
            street_code: f.place.street_code.clone(),
            community_code: f.place.community_code.clone(),
            lead_unit: f.lead_unit.as_ref().map(|u| u.unit_id.clone()),
            status: task.status,
            created_at: f.created_at,
            dispatched_at: first(TaskStatus::Dispatched),
            signed_for_at: first(TaskStatus::SignedFor),
            resolved_at: last(TaskStatus::Resolved),
            closed_at: last(TaskStatus::Closed),
            sign_for_due,
            handling_due,
            reworked: state.is_some_and(|s| s.rework_count > 0),
            extended: state.is_some_and(|s| s.extension_count > 0),
            satisfied: state.and_then(|s| s.callback_satisfied),
        });
    }
    out
}
