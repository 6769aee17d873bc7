//! What-if replay: the events of a period routed again with a candidate rules version and
//! compared, event by event, with the version that routed them: where each would go (its
//! community, lead unit and co-handlers), its priority, SLA policy and deadlines (counted on
//! the candidate's calendars), and whether it would be a task at all (dispatched, for a
//! triage desk, returned to its department, suppressed). Per unit and community, the change
//! in load and in tasks resolved on time (按时办结): a task resolved when it actually was,
//! held to the deadline each version gives it, counted for the unit each version makes it
//! lead (as if the work had been done at the same time by whoever the version chose).
//!
//! Pure: events and loaded configurations in, a report out; nothing is read or written here
//! (`crate::cli::replay` reads the event log and prints). Each event is routed as of the
//! time the hub received it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hub_router::routing::RoutingDecision;
use hub_router::task::NewTask;
use hub_schemas::event::CivicEvent;
use serde::Serialize;

use crate::cases::service::{derive_with, policy_for};
use crate::context::routing::Loaded;

/// What became (or would become) of one event under one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `dispatch`, `triage`, `returned`, `suppressed` or `unmapped`.
    pub kind: &'static str,
    pub community: Option<String>,
    pub lead: Option<String>,
    pub co_handlers: Vec<String>,
    pub priority: Option<String>,
    pub sla_policy: Option<String>,
    /// The deadlines its clocks start with, by clock (`sign_for`, `handling`, ...).
    pub deadlines: BTreeMap<String, DateTime<Utc>>,
    /// The rule that decided it.
    pub rule: Option<String>,
}

/// What a version does with `event`, received at `event.received_at`.
pub fn outcome(config: &Loaded, event: &CivicEvent) -> Outcome {
    outcome_of(&config.router.route(event, event.received_at), &config.sla)
}

/// What a routing decision becomes under the SLA policies `sla`.
fn outcome_of(
    decision: &Result<RoutingDecision, hub_router::taxonomy::Unmapped>,
    sla: &hub_cases::SlaConfig,
) -> Outcome {
    let none = |kind| Outcome {
        kind,
        community: None,
        lead: None,
        co_handlers: Vec::new(),
        priority: None,
        sla_policy: None,
        deadlines: BTreeMap::new(),
        rule: None,
    };
    match decision {
        Err(_) => none("unmapped"),
        Ok(RoutingDecision::Dispatch(task)) => of_task("dispatch", sla, task),
        Ok(RoutingDecision::Triage(task)) => of_task("triage", sla, task),
        Ok(RoutingDecision::ReturnToDepartment(r)) => Outcome {
            community: Some(r.community_code.clone()),
            rule: Some(r.explanation.rule_id.clone()),
            ..none("returned")
        },
        Ok(RoutingDecision::Suppressed(s)) => Outcome {
            community: s.community_code.clone(),
            rule: Some(s.rule_id.clone()),
            ..none("suppressed")
        },
    }
}

/// Both outcomes of `event`. Two versions that differ only in their SLA policies and
/// calendars decide alike: the event is routed once (half the work of a calendar change).
fn outcomes(event: &CivicEvent, baseline: &Loaded, candidate: &Loaded) -> (Outcome, Outcome) {
    if baseline.routing_digest == candidate.routing_digest {
        let decision = baseline.router.route(event, event.received_at);
        (
            outcome_of(&decision, &baseline.sla),
            outcome_of(&decision, &candidate.sla),
        )
    } else {
        (outcome(baseline, event), outcome(candidate, event))
    }
}

fn of_task(kind: &'static str, sla: &hub_cases::SlaConfig, task: &NewTask) -> Outcome {
    let (_, clocks) = derive_with(sla, task);
    let policy = policy_for(sla, task);
    Outcome {
        kind,
        community: task.place.community_code.clone(),
        lead: task.lead_unit.as_ref().map(|u| u.unit_id.clone()),
        co_handlers: task.co_handlers.iter().map(|u| u.unit_id.clone()).collect(),
        priority: Some(task.priority.to_string()),
        sla_policy: Some(policy.id.clone()),
        deadlines: clocks
            .iter()
            .filter_map(|c| Some((c.kind.to_string(), c.deadline()?)))
            .collect(),
        rule: Some(task.explanation.rule_id.clone()),
    }
}

/// One event whose outcome the candidate changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    pub source_system: String,
    pub source_id: String,
    pub department: String,
    pub category_code: String,
    /// Where it was reported, `[lon, lat]`.
    pub point: Option<[f64; 2]>,
    pub received_at: DateTime<Utc>,
    /// What changed: `outcome`, `community`, `lead`, `co_handlers`, `priority`,
    /// `sla_policy`, `deadlines`.
    pub changed: Vec<&'static str>,
    pub before: Outcome,
    pub after: Outcome,
}

impl Moved {
    /// A rule test (`rules/tests/*.toml`, `router/src/rules_test.rs`) that holds the
    /// candidate to what it does with this event, for the candidate's folder: the case the
    /// change was made for stays decided that way.
    pub fn rule_test(&self) -> String {
        let a = &self.after;
        let mut t = format!(
            "[[test]]\nname = \"{}/{}: {}\"\n[test.event]\ndepartment = \"{}\"\ncode = \"{}\"\n",
            toml_text(&self.source_system),
            toml_text(&self.source_id),
            self.changed.join(", "),
            toml_text(&self.department),
            toml_text(&self.category_code),
        );
        if let Some([lon, lat]) = self.point {
            t.push_str(&format!("point = [{lon}, {lat}]\n"));
        }
        t.push_str(&format!(
            "time = \"{}\"\n[test.expect]\noutcome = \"{}\"\n",
            self.received_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            if a.kind == "returned" {
                "return_to_department"
            } else {
                a.kind
            },
        ));
        if let Some(c) = &a.community {
            t.push_str(&format!("community = \"{}\"\n", toml_text(c)));
        }
        if matches!(a.kind, "dispatch" | "triage") {
            match &a.lead {
                Some(l) => t.push_str(&format!("lead = \"{}\"\n", toml_text(l))),
                None => t.push_str("lead = \"nobody\"\n"),
            }
            let co: Vec<String> = a
                .co_handlers
                .iter()
                .map(|c| format!("\"{}\"", toml_text(c)))
                .collect();
            t.push_str(&format!("co_handlers = [{}]\n", co.join(", ")));
        }
        t
    }
}

/// Text inside a TOML basic string.
fn toml_text(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Of the moved tasks that were resolved, those a unit (or community) would have had
/// resolved within their handling deadline, under each version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OnTime {
    pub resolved_before: u64,
    pub on_time_before: u64,
    pub resolved_after: u64,
    pub on_time_after: u64,
}

impl OnTime {
    fn count(&mut self, after: bool, on_time: bool) {
        let (resolved, in_time) = if after {
            (&mut self.resolved_after, &mut self.on_time_after)
        } else {
            (&mut self.resolved_before, &mut self.on_time_before)
        };
        *resolved += 1;
        *in_time += u64::from(on_time);
    }

    /// Whether the figure changes: another number resolved or on time.
    pub fn changes(&self) -> bool {
        self.resolved_before != self.resolved_after || self.on_time_before != self.on_time_after
    }
}

/// Whether a task resolved at `resolved` was within the last handling deadline `o` gives it;
/// `None` when it has none.
fn resolved_on_time(o: &Outcome, resolved: DateTime<Utc>) -> Option<bool> {
    o.deadlines
        .iter()
        .filter(|(k, _)| k.starts_with("handling"))
        .map(|(_, t)| *t)
        .max()
        .map(|due| resolved <= due)
}

/// The load of a unit or community: the tasks it would lead (or, for a community, hold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Load {
    pub before: u64,
    pub after: u64,
}

/// The replay of a period: every event compared, the moved ones listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub events: u64,
    /// Events whose outcome changed in any way.
    pub moved: u64,
    /// How many events changed in each respect.
    pub by_change: BTreeMap<&'static str, u64>,
    /// Tasks each unit leads, before and after (units whose load changed).
    pub unit_load: BTreeMap<String, Load>,
    /// Tasks in each community, before and after (communities whose load changed).
    pub community_load: BTreeMap<String, Load>,
    /// Moved tasks resolved on time per lead unit, before and after (units whose figure
    /// changed).
    pub unit_on_time: BTreeMap<String, OnTime>,
    /// The same per community.
    pub community_on_time: BTreeMap<String, OnTime>,
    /// The moved events, in the order replayed, at most [`Report::LISTED`].
    pub moved_events: Vec<Moved>,
}

impl Report {
    /// Moved events a report lists (it counts them all).
    pub const LISTED: usize = 10_000;

    /// Compares one event under `baseline` and `candidate`; `resolved` is when its task
    /// was last resolved, if it was.
    pub fn add(
        &mut self,
        event: &CivicEvent,
        baseline: &Loaded,
        candidate: &Loaded,
        resolved: Option<DateTime<Utc>>,
    ) {
        self.events += 1;
        let (before, after) = outcomes(event, baseline, candidate);
        if before == after {
            return;
        }
        let mut changed = Vec::new();
        let mut differs = |what: &'static str, same: bool| {
            if !same {
                changed.push(what);
            }
        };
        differs("outcome", before.kind == after.kind);
        differs("community", before.community == after.community);
        differs("lead", before.lead == after.lead);
        differs("co_handlers", before.co_handlers == after.co_handlers);
        differs("priority", before.priority == after.priority);
        differs("sla_policy", before.sla_policy == after.sla_policy);
        differs("deadlines", before.deadlines == after.deadlines);
        if changed.is_empty() {
            // Only the deciding rule differs: the same work, the same clocks.
            return;
        }
        self.moved += 1;
        for what in &changed {
            *self.by_change.entry(what).or_default() += 1;
        }
        let is_task = |o: &Outcome| matches!(o.kind, "dispatch" | "triage");
        for (o, after) in [(&before, false), (&after, true)] {
            if !is_task(o) {
                continue;
            }
            let count = |map: &mut BTreeMap<String, Load>, key: &Option<String>| {
                if let Some(k) = key {
                    let l = map.entry(k.clone()).or_default();
                    if after {
                        l.after += 1;
                    } else {
                        l.before += 1;
                    }
                }
            };
            count(&mut self.unit_load, &o.lead);
            count(&mut self.community_load, &o.community);
            if let Some(on_time) = resolved.and_then(|r| resolved_on_time(o, r)) {
                for (map, key) in [
                    (&mut self.unit_on_time, &o.lead),
                    (&mut self.community_on_time, &o.community),
                ] {
                    if let Some(k) = key {
                        map.entry(k.clone()).or_default().count(after, on_time);
                    }
                }
            }
        }
        if self.moved_events.len() < Self::LISTED {
            self.moved_events.push(Moved {
                source_system: event.source_system.clone(),
                source_id: event.source_id.clone(),
                department: event.department.as_str().to_owned(),
                category_code: event.category_code.clone(),
                point: event.location.point.map(|p| [p.lon, p.lat]),
                received_at: event.received_at,
                changed,
                before,
                after,
            });
        }
    }

    /// Drops the units and communities whose load the moved events leave as it was.
    pub fn finish(&mut self) {
        self.unit_load.retain(|_, l| l.before != l.after);
        self.community_load.retain(|_, l| l.before != l.after);
        self.unit_on_time.retain(|_, o| o.changes());
        self.community_on_time.retain(|_, o| o.changes());
    }

    /// The header of [`Report::csv_rows`].
    pub const CSV_HEADER: &'static str = "source_system,source_id,category_code,received_at,\
         changed,outcome_before,outcome_after,community_before,community_after,lead_before,\
         lead_after,co_handlers_before,co_handlers_after,priority_before,priority_after,\
         sla_policy_before,sla_policy_after,deadlines_before,deadlines_after";

    /// One CSV line per moved event.
    pub fn csv_rows(&self) -> impl Iterator<Item = String> + '_ {
        fn opt(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("")
        }
        fn deadlines(o: &Outcome) -> String {
            o.deadlines
                .iter()
                .map(|(k, t)| {
                    format!(
                        "{k}={}",
                        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        }
        self.moved_events.iter().map(|m| {
            let (b, a) = (&m.before, &m.after);
            let fields = [
                m.source_system.clone(),
                m.source_id.clone(),
                m.category_code.clone(),
                m.received_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                m.changed.join(" "),
                b.kind.to_owned(),
                a.kind.to_owned(),
                opt(&b.community).to_owned(),
                opt(&a.community).to_owned(),
                opt(&b.lead).to_owned(),
                opt(&a.lead).to_owned(),
                b.co_handlers.join(" "),
                a.co_handlers.join(" "),
                opt(&b.priority).to_owned(),
                opt(&a.priority).to_owned(),
                opt(&b.sla_policy).to_owned(),
                opt(&a.sla_policy).to_owned(),
                deadlines(b),
                deadlines(a),
            ];
            hub_schemas::csv::line(&fields)
        })
    }
}

#[cfg(test)]
mod tests {
    use hub_router::bundle::Bundle;

    use super::*;
    use crate::cases::fixtures::{candidate, shipped, theft};
    use crate::context::routing::load;
    use std::collections::BTreeMap;

    /// The theft's last handling deadline under `config`.
    fn handling_due(config: &Loaded) -> DateTime<Utc> {
        let o = outcome(config, &theft());
        let due = o
            .deadlines
            .iter()
            .filter(|(k, _)| k.starts_with("handling"));
        due.map(|(_, t)| *t)
            .max()
            .expect("a theft has a handling deadline")
    }

    #[test]
    fn tasks_resolved_on_time_follow_the_lead_and_the_deadline_each_version_gives() {
        let dir = tempfile::tempdir().unwrap();
        let baseline = load(&shipped()).unwrap();
        let police = "510504001001.police_station".to_owned();

        // Another lead, the same deadline: the on-time task moves to the workstation.
        let to_workstation = load(&candidate(dir.path())).unwrap();
        let resolved = handling_due(&baseline) - chrono::TimeDelta::minutes(1);
        let mut report = Report::default();
        report.add(&theft(), &baseline, &to_workstation, Some(resolved));
        report.finish();
        let one = |before: u64, after: u64| OnTime {
            resolved_before: before,
            on_time_before: before,
            resolved_after: after,
            on_time_after: after,
        };
        assert_eq!(report.unit_on_time.get(&police), Some(&one(1, 0)));
        assert_eq!(
            report.unit_on_time.get("510504001001.workstation"),
            Some(&one(0, 1))
        );
        assert!(report.community_on_time.is_empty(), "the same community");

        // The same lead, a holiday on the day it fell due: resolved a minute late becomes
        // on time.
        let due = handling_due(&baseline);
        let day = (due + chrono::TimeDelta::hours(8)).date_naive();
        let mut files: BTreeMap<String, String> = Bundle::read(&shipped()).unwrap().files().clone();
        files
            .get_mut("sla/calendars/cn-mainland.toml")
            .unwrap()
            .push_str(&format!(
                "\n[[holidays]]\nname = \"加一天\"\noff = [\"{day}\"]\n"
            ));
        let holiday = dir.path().join("holiday");
        Bundle::from_files(files).unwrap().write(&holiday).unwrap();
        let holiday = load(&holiday).unwrap();
        assert!(
            handling_due(&holiday) > due,
            "the deadline moves past the holiday"
        );
        let mut report = Report::default();
        let late = due + chrono::TimeDelta::minutes(1);
        report.add(&theft(), &baseline, &holiday, Some(late));
        report.add(&theft(), &baseline, &holiday, None);
        report.finish();
        assert_eq!(report.moved, 2);
        assert_eq!(
            report.unit_on_time.get(&police),
            Some(&OnTime {
                resolved_before: 1,
                on_time_before: 0,
                resolved_after: 1,
                on_time_after: 1,
            }),
            "an unresolved task counts for neither"
        );
    }

    #[test]
    fn a_moved_event_is_saved_as_a_rule_test_the_candidate_passes_and_the_baseline_fails() {
        let dir = tempfile::tempdir().unwrap();
        let (baseline, candidate_dir) = (load(&shipped()).unwrap(), candidate(dir.path()));
        let candidate = load(&candidate_dir).unwrap();
        let mut report = Report::default();
        report.add(&theft(), &baseline, &candidate, None);
        assert_eq!(report.moved, 1);
        let moved = &report.moved_events[0];
        assert_eq!(moved.changed, ["lead"]);
        assert_eq!(
            moved.after.lead.as_deref(),
            Some("510504001001.workstation")
        );
        let test = moved.rule_test();

        // In the candidate's folder it passes; beside the rules it was moved from, it fails.
        std::fs::write(candidate_dir.join("rules/tests/saved.toml"), &test).unwrap();
        load(&candidate_dir).unwrap_or_else(|e| panic!("{e}\n{test}"));
        let old = dir.path().join("baseline");
        Bundle::read(&shipped()).unwrap().write(&old).unwrap();
        std::fs::write(old.join("rules/tests/saved.toml"), &test).unwrap();
        let refused = load(&old)
            .err()
            .expect("the saved test fails with the old rules");
        assert!(refused.problems.contains("rule tests failed"), "{refused}");
    }

    #[test]
    fn the_same_version_moves_nothing() {
        let baseline = load(&shipped()).unwrap();
        let mut report = Report::default();
        report.add(&theft(), &baseline, &baseline, None);
        report.finish();
        assert_eq!((report.events, report.moved), (1, 0));
    }
}
