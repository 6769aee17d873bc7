//! At activation, when the administrator asks for it: the open tasks nobody has signed for
//! yet (立案 awaiting 派遣, or 派遣 not yet 签收) are routed again with the new version from
//! their logged events, and those it hands to another lead unit or other co-handlers are
//! re-routed (改派) through the normal workflow, each history entry naming the version.
//! A task signed for stays with the unit that took it; so does one the new version would
//! place in another community, return, suppress or leave to triage (reported, for the street
//! to decide by hand).

use chrono::{DateTime, Utc};
use hub_cases::lifecycle::{Action, Command};
use hub_cases::Actor;
use hub_router::routing::RoutingDecision;
use hub_router::task::{AssignedUnit, Task, TaskStatus};
use hub_store::TaskFilter;
use serde::Serialize;
use tracing::Instrument;

use super::service::{ActError, CaseService};

/// What the new version makes of one task nobody signed for yet (pure).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// It routes the task as it stands: nothing to do.
    Unchanged,
    /// Another lead unit or other co-handlers, in the same community.
    Reroute {
        lead: AssignedUnit,
        co_handlers: Vec<AssignedUnit>,
    },
    /// Left as it is, and why (in the administrator's words).
    Left(String),
}

/// Compares what `decision` (the new version's routing of the task's event) does with what
/// the task stands as.
pub fn verdict(task: &Task, decision: &RoutingDecision) -> Verdict {
    let f = &task.fields;
    let new = match decision {
        RoutingDecision::Dispatch(t) | RoutingDecision::Triage(t) => t,
        RoutingDecision::ReturnToDepartment(r) => {
            return Verdict::Left(format!(
                "新版本会将其退回{}（{}），请人工处理",
                r.department.as_str(),
                r.reason
            ))
        }
        RoutingDecision::Suppressed(_) => {
            return Verdict::Left("新版本不会为其立案，请人工处理".into())
        }
    };
    if new.place.community_code != f.place.community_code {
        return Verdict::Left(format!(
            "新版本将其定位到另一社区（{}），跨社区调整由街道处理",
            new.place.community_code.as_deref().unwrap_or("无")
        ));
    }
    let Some(lead) = &new.lead_unit else {
        return if f.lead_unit.is_none() {
            Verdict::Unchanged
        } else {
            Verdict::Left("新版本会将其交分拨台，保持原派遣".into())
        };
    };
    let same_lead = f.lead_unit.as_ref().map(|u| &u.unit_id) == Some(&lead.unit_id);
    if same_lead && ids(&f.co_handlers) == ids(&new.co_handlers) {
        return Verdict::Unchanged;
    }
    Verdict::Reroute {
        lead: lead.clone(),
        co_handlers: new.co_handlers.clone(),
    }
}

/// The units' ids, sorted (co-handlers are a set).
fn ids(units: &[AssignedUnit]) -> Vec<&str> {
    let mut ids: Vec<&str> = units.iter().map(|u| u.unit_id.as_str()).collect();
    ids.sort_unstable();
    ids
}

/// One task re-routed.
#[derive(Debug, Clone, Serialize)]
pub struct Rerouted {
    pub task_id: String,
    /// The lead unit it had (none for a triage task), then the one it has: ids and names.
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: String,
    pub to_name: String,
    /// The co-handlers it had (names), then those it has: ids and names.
    pub from_co_handler_names: Vec<String>,
    pub co_handlers: Vec<String>,
    pub co_handler_names: Vec<String>,
}

/// What a re-route did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RerouteReport {
    pub version: String,
    /// Open tasks nobody had signed for.
    pub considered: usize,
    pub rerouted: Vec<Rerouted>,
    pub unchanged: usize,
    /// Tasks left as they are, with why.
    pub left: Vec<(String, String)>,
}

/// Routes every open task nobody signed for with the version in force in `cases` (the one
/// just activated: the new round's clocks run by its SLA policies) and re-routes, as
/// `actor`, those it sends elsewhere.
pub async fn reroute_unsigned(
    cases: &CaseService,
    actor: &Actor,
    now: DateTime<Utc>,
) -> anyhow::Result<RerouteReport> {
    let router = cases.routing().current();
    let version = cases.routing().version();
    let mut report = RerouteReport {
        version: version.clone(),
        ..RerouteReport::default()
    };
    // Listed first, then changed: a re-routed 立案 task becomes 派遣 and would move pages.
    let mut tasks = Vec::new();
    for status in [TaskStatus::Created, TaskStatus::Dispatched] {
        let mut offset = 0;
        loop {
            let page = cases
                .store
                .list_tasks(&TaskFilter {
                    status: Some(status),
                    limit: 500,
                    offset,
                    ..TaskFilter::default()
                })
                .await?;
            let n = page.len();
            tasks.extend(page);
            if n < 500 {
                break;
            }
            offset += 500;
        }
    }
    report.considered = tasks.len();
    for task in tasks {
        let span = tracing::info_span!(
            "reroute",
            task_id = %task.fields.task_id,
            event_id = %task.fields.event_id
        );
        match reroute_one(cases, &router, &version, &task, actor, now)
            .instrument(span)
            .await?
        {
            Done::Rerouted(r) => report.rerouted.push(r),
            Done::Unchanged => report.unchanged += 1,
            Done::Left(why) => report.left.push((task.fields.task_id.clone(), why)),
        }
    }
    metrics::counter!(crate::infra::telemetry::RULES_REROUTED_TASKS)
        .increment(report.rerouted.len() as u64);
    Ok(report)
}

/// What became of one task.
enum Done {
    Rerouted(Rerouted),
    Unchanged,
    Left(String),
}

async fn reroute_one(
    cases: &CaseService,
    router: &hub_router::Router,
    version: &str,
    task: &Task,
    actor: &Actor,
    now: DateTime<Utc>,
) -> anyhow::Result<Done> {
    let f = &task.fields;
    let Some(event) = cases
        .store
        .logged_event(&f.source_system, &f.source_id)
        .await?
    else {
        return Ok(Done::Left(
            "事件日志中已无其原始事件（超出保留期），保持原派遣".into(),
        ));
    };
    let decision = match router.route(&event, now) {
        Ok(d) => d,
        Err(unmapped) => return Ok(Done::Left(format!("新版本无法分类：{unmapped}"))),
    };
    let (lead, co_handlers) = match verdict(task, &decision) {
        Verdict::Unchanged => return Ok(Done::Unchanged),
        Verdict::Left(why) => return Ok(Done::Left(why)),
        Verdict::Reroute { lead, co_handlers } => (lead, co_handlers),
    };
    let command = Command {
        action: Action::Reroute {
            lead: lead.clone(),
            co_handlers: co_handlers.clone(),
            rules_version: version.to_owned(),
        },
        note: Some(format!("按规则版本 {version} 改派")),
    };
    match cases.act(&f.task_id, command, actor, now, None).await {
        Ok(_) => {
            tracing::info!(to = %lead.unit_id, version, "task re-routed by the activated rules version");
            Ok(Done::Rerouted(Rerouted {
                task_id: f.task_id.clone(),
                from: f.lead_unit.as_ref().map(|u| u.unit_id.clone()),
                from_name: f.lead_unit.as_ref().map(|u| u.name.clone()),
                to: lead.unit_id,
                to_name: lead.name,
                from_co_handler_names: f.co_handlers.iter().map(|u| u.name.clone()).collect(),
                co_handler_names: co_handlers.iter().map(|u| u.name.clone()).collect(),
                co_handlers: co_handlers.into_iter().map(|u| u.unit_id).collect(),
            }))
        }
        // Signed for (or otherwise moved on) since it was listed: it stays.
        Err(ActError::Illegal(e)) => Ok(Done::Left(format!("期间已有处理，保持不变（{e}）"))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::fixtures::{candidate, shipped, theft};
    use crate::context::routing::load;
    use hub_router::Router;

    fn routed(router: &Router) -> RoutingDecision {
        router.route(&theft(), Utc::now()).unwrap()
    }

    #[test]
    fn only_another_lead_or_other_co_handlers_in_the_same_community_reroute() {
        let dir = tempfile::tempdir().unwrap();
        let (baseline, candidate) = (
            load(&shipped()).unwrap(),
            load(&candidate(dir.path())).unwrap(),
        );
        let stands = Task {
            fields: routed(&baseline.router).into_task().unwrap(),
            status: TaskStatus::Dispatched,
            updated_at: Utc::now(),
        };
        assert_eq!(
            stands.fields.lead_unit.as_ref().map(|u| u.unit_id.as_str()),
            Some("510504001001.police_station")
        );
        assert_eq!(
            verdict(&stands, &routed(&baseline.router)),
            Verdict::Unchanged
        );
        let moved = routed(&candidate.router);
        let Verdict::Reroute { lead, co_handlers } = verdict(&stands, &moved) else {
            panic!("the candidate gives thefts to the workstation");
        };
        assert_eq!(
            (lead.unit_id.as_str(), co_handlers.len()),
            ("510504001001.workstation", 0)
        );

        let mut elsewhere = moved.clone().into_task().unwrap();
        elsewhere.place.community_code = Some("510504001002".into());
        assert!(matches!(
            verdict(&stands, &RoutingDecision::Dispatch(Box::new(elsewhere))),
            Verdict::Left(why) if why.contains("510504001002")
        ));
        let mut to_triage = moved.into_task().unwrap();
        to_triage.lead_unit = None;
        assert!(matches!(
            verdict(&stands, &RoutingDecision::Triage(Box::new(to_triage))),
            Verdict::Left(why) if why.contains("分拨")
        ));
    }
}
