//! The SLA tracker: watches every open clock and raises, once each, its warning (at the
//! policy's fraction of the limit), its breach (at the deadline) and — for a breach of a
//! clock on the ladder — the escalation step it leads to, with the step's own clock.
//!
//! * **Timers** live in memory ([`Scheduler`]: one heap entry per clock); the store is the
//!   truth. At start the tracker pages through every open clock, so anything that fell due
//!   while the hub was down is raised at once; when a timer fires, the clock is read again
//!   (it may have been stopped, paused or extended since).
//! * **Clocks changed elsewhere** (the router dispatching, a console acting through another
//!   hub process) are read from the store's change feed every `poll` (at once when this
//!   process changed a task). The feed is re-read with a few seconds of overlap, so a
//!   transaction that committed late is not missed.
//! * **Several hub processes** all run a tracker: an alert is a claim in the store, written in
//!   one transaction with its history entry, outbox event and escalation, so whichever
//!   process claims it raises it and the others do nothing.
//!
//! Joint-case clocks (a unit's report-in and its part) breach on their own and do not climb
//! the ladder: only the unit that missed its deadline breaches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hub_cases::escalation::escalate;
use hub_cases::scheduler::Timing;
use hub_cases::{apply, Action, Actor, Due, DueKind, Escalation, Scheduler};
use hub_router::city::LadderStep;
use hub_store::{AlertTransition, ClockAlert, RaiseOutcome, StoreError, StoredClock};
use tracing::Instrument;

use crate::cases::service::{CaseService, Current};
use crate::context::routing::RoutingState;
use crate::infra::shutdown::Shutdown;
use crate::infra::telemetry;

/// Open clocks read per page at start.
const LOAD_PAGE: u32 = 10_000;
/// Changed clocks read per page.
const CHANGES_PAGE: u32 = 1_000;
/// How far back every read of the change feed reaches, for transactions that took the time
/// of their change before committing (and for clocks of other machines running behind).
const FEED_OVERLAP: TimeDelta = TimeDelta::seconds(5);
/// How often a read of the change feed reaches [`FEED_OVERLAP`] back; the reads between
/// start at the newest change seen. Reading the whole overlap at every poll (the tracker
/// polls after every batch this process stores) was a fifth of the hub's CPU during a
/// backlog; a change that commits late is now seen within this much more.
const OVERLAP_EVERY: Duration = Duration::from_secs(2);
/// The actor the tracker's alerts and escalations are recorded under.
pub const ACTOR: &str = "sla_tracker";

pub struct SlaTracker {
    pub cases: Arc<CaseService>,
    /// The city, for each community's ladder (reloaded with the routing configuration).
    pub routing: Arc<RoutingState>,
    /// This process, as recorded with the alerts it raises.
    pub holder: String,
    /// How often the change feed is read.
    pub poll: Duration,
}

/// Where the tracker stands in the store's change feed.
struct Feed {
    /// The newest change seen.
    watermark: DateTime<Utc>,
    /// Changes already taken into account (id → changed_at), within the overlap.
    seen: HashMap<i64, DateTime<Utc>>,
    /// When a read last reached the whole overlap back.
    overlap_read: std::time::Instant,
}

#[async_trait::async_trait]
impl crate::infra::supervisor::Service for SlaTracker {
    /// Every run starts by reading every open clock from the store, so a restarted tracker
    /// raises at once whatever fell due while it was down.
    async fn run(&mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.track(shutdown).await;
        Ok(())
    }
}

impl SlaTracker {
    async fn track(&self, mut shutdown: Shutdown) {
        let mut changes = self.cases.changes.subscribe();
        let mut scheduler = Scheduler::new();
        let mut feed = loop {
            match self.load(&mut scheduler).await {
                Ok(feed) => break feed,
                Err(e) => {
                    tracing::warn!(error = %e, "SLA tracker cannot read the open clocks; retrying");
                    metrics::counter!(telemetry::STORE_ERRORS, "operation" => "sla_load")
                        .increment(1);
                    if !shutdown.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                }
            }
        };
        let mut retry: Vec<Due> = Vec::new();
        let mut due = Vec::new();
        loop {
            if let Err(e) = self.follow(&mut scheduler, &mut feed).await {
                tracing::warn!(error = %e, "SLA tracker cannot read changed clocks; retrying");
                metrics::counter!(telemetry::STORE_ERRORS, "operation" => "sla_changes")
                    .increment(1);
            }
            due.clear();
            due.append(&mut retry);
            scheduler.pop_due(Utc::now(), &mut due);
            for d in due.drain(..) {
                if let Err(e) = self.raise(&mut scheduler, d).await {
                    tracing::warn!(error = %e, clock = d.clock, "SLA alert not raised yet; retrying");
                    metrics::counter!(telemetry::STORE_ERRORS, "operation" => "sla_raise")
                        .increment(1);
                    retry.push(d);
                }
            }
            metrics::gauge!(telemetry::SLA_CLOCKS_WATCHED).set(scheduler.len() as f64);
            let mut sleep = self.poll;
            if !retry.is_empty() {
                sleep = Duration::from_secs(1);
            } else if let Some(next) = scheduler.next_due() {
                let until = (next - Utc::now()).to_std().unwrap_or_default();
                sleep = sleep.min(until);
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                // This process changed a task: read its clocks now rather than at the next poll.
                _ = changes.recv() => {}
                _ = shutdown.wait() => break,
            }
        }
        tracing::info!("SLA tracker stopped");
    }

    /// Watches every open clock in the store. Returns the feed position to follow from.
    async fn load(&self, scheduler: &mut Scheduler) -> Result<Feed, StoreError> {
        let started = std::time::Instant::now();
        let since = Utc::now();
        let mut after = 0;
        let mut clocks = 0usize;
        loop {
            let page = self.cases.store.open_clocks(after, LOAD_PAGE).await?;
            for c in &page {
                watch(scheduler, c);
            }
            clocks += page.len();
            match page.last() {
                Some(last) if page.len() == LOAD_PAGE as usize => after = last.id,
                _ => break,
            }
        }
        metrics::gauge!(telemetry::SLA_CLOCKS_LOADED).set(clocks as f64);
        metrics::gauge!(telemetry::SLA_RECOVERY_SECONDS).set(started.elapsed().as_secs_f64());
        tracing::info!(
            open_clocks = clocks,
            watched = scheduler.len(),
            seconds = started.elapsed().as_secs_f64(),
            "SLA tracker loaded the open clocks"
        );
        Ok(Feed {
            watermark: since,
            seen: HashMap::new(),
            overlap_read: std::time::Instant::now(),
        })
    }

    /// Reads the clocks written since the watermark (with overlap, every [`OVERLAP_EVERY`])
    /// and (re)schedules them.
    async fn follow(&self, scheduler: &mut Scheduler, feed: &mut Feed) -> Result<(), StoreError> {
        let mut since = feed.watermark;
        if feed.overlap_read.elapsed() >= OVERLAP_EVERY {
            since -= FEED_OVERLAP;
            feed.overlap_read = std::time::Instant::now();
        }
        let mut after_id = 0;
        loop {
            let page = self
                .cases
                .store
                .clocks_changed(since, after_id, CHANGES_PAGE)
                .await?;
            // Some of a page was seen before (a read starts at or before the newest change
            // seen): only the clocks new or changed since are read in full.
            let fresh: Vec<i64> = page
                .iter()
                .filter(|c| feed.seen.get(&c.id) != Some(&c.changed_at))
                .map(|c| c.id)
                .collect();
            if !fresh.is_empty() {
                for c in self.cases.store.clocks(&fresh).await? {
                    feed.seen.insert(c.id, c.changed_at);
                    watch(scheduler, &c);
                }
            }
            for c in &page {
                feed.watermark = feed.watermark.max(c.changed_at);
            }
            match page.last() {
                Some(last) if page.len() == CHANGES_PAGE as usize => {
                    (since, after_id) = (last.changed_at, last.id);
                }
                _ => break,
            }
        }
        let horizon = feed.watermark - FEED_OVERLAP;
        feed.seen.retain(|_, at| *at >= horizon);
        Ok(())
    }

    /// Raises what fell due on a clock, after reading the clock again.
    async fn raise(&self, scheduler: &mut Scheduler, due: Due) -> Result<(), StoreError> {
        let Some(c) = self.cases.store.clock(due.clock as i64).await? else {
            scheduler.cancel(due.clock);
            return Ok(());
        };
        let span = tracing::info_span!("sla_alert", task_id = %c.task_id, clock = %c.clock.kind);
        async {
            let now = Utc::now();
            let Some(timing) = Timing::of(&c.clock) else {
                // Stopped or paused since it was scheduled.
                scheduler.cancel(due.clock);
                return Ok(());
            };
            match due.kind {
                DueKind::Warning => match timing.warning_at {
                    Some(at) if at <= now && !c.raised("warning") => self.warn(&c, at, now).await,
                    // Moved later (an extension, a pause): watch the new times.
                    Some(at) if at > now => {
                        watch(scheduler, &c);
                        Ok(())
                    }
                    _ => Ok(()),
                },
                DueKind::Breach | DueKind::StepOverdue => {
                    if timing.deadline > now {
                        watch(scheduler, &c);
                        return Ok(());
                    }
                    self.breach(&c, due.kind, timing.deadline).await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn warn(
        &self,
        c: &StoredClock,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let deadline = c
            .clock
            .deadline()
            .map(|d| d.to_rfc3339())
            .unwrap_or_default();
        let alert = ClockAlert {
            clock_id: c.id,
            task_id: c.task_id.clone(),
            kind: "warning".to_owned(),
            due_at: at,
            raised_at: now,
            raised_by: self.actor(),
            note: format!("SLA warning: {} clock due at {deadline}", c.clock.kind),
            then: None,
        };
        if self.cases.store.raise_alert(&alert).await? == RaiseOutcome::Raised {
            self.raised(c, &alert, "sla warning").await;
        }
        Ok(())
    }

    /// Raises the breach with the escalation it leads to, in one write; decided again if the
    /// task moved meanwhile.
    async fn breach(
        &self,
        c: &StoredClock,
        kind: DueKind,
        deadline: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let kind = match kind {
            DueKind::StepOverdue => "step_overdue",
            _ => "breach",
        };
        for _ in 0..5 {
            let Some(current) = self.cases.current(&c.task_id).await? else {
                return Ok(());
            };
            let now = Utc::now();
            let (then, outcome) = self.escalation(&current, c, now);
            let alert = ClockAlert {
                clock_id: c.id,
                task_id: c.task_id.clone(),
                kind: kind.to_owned(),
                due_at: deadline,
                raised_at: now,
                raised_by: self.actor(),
                note: format!(
                    "SLA {}: {} clock was due at {}; {outcome}",
                    kind.replace('_', " "),
                    c.clock.kind,
                    deadline.to_rfc3339()
                ),
                then,
            };
            match self.cases.store.raise_alert(&alert).await? {
                RaiseOutcome::Raised => {
                    if let Some(then) = &alert.then {
                        if let Action::Escalate { step } = &then.transition.action {
                            metrics::counter!(telemetry::SLA_ESCALATIONS, "step" => step.as_str())
                                .increment(1);
                        }
                    }
                    self.raised(c, &alert, "sla breach").await;
                    return Ok(());
                }
                RaiseOutcome::AlreadyRaised => return Ok(()),
                RaiseOutcome::Stale { .. } => continue,
            }
        }
        tracing::warn!("the task kept changing; the breach is retried at the next wake-up");
        Err(StoreError::Inconsistent {
            backend: self.cases.store.backend(),
            operation: format!("raise {kind} on clock {}", c.id),
            reason: "the task changed five times while the breach was being raised".to_owned(),
        })
    }

    /// The escalation a breach of `c` leads to, and what the history says about it.
    fn escalation(
        &self,
        current: &Current,
        c: &StoredClock,
        now: DateTime<Utc>,
    ) -> (Option<AlertTransition>, String) {
        let ladder = self.ladder(current.task.fields.place.community_code.as_deref());
        let sla = self.cases.sla();
        let policy = crate::cases::service::policy_of(&sla, &current.task);
        let calendar = sla.calendar_of(policy);
        let config = &sla.policies.escalation;
        match escalate(
            &ladder,
            &c.clock,
            current.state.escalation,
            now,
            config,
            calendar,
        ) {
            Escalation::Step(step) => {
                let action = Action::Escalate { step: step.step };
                let t = match apply(&current.state, action, &Actor::system(ACTOR), now) {
                    Ok(t) => t,
                    Err(e) => return (None, format!("not escalated: {e}")),
                };
                match self.cases.clock_changes(current, &t, &step.clock_effects()) {
                    Ok((clocks, due_at)) => {
                        let note = format!(
                            "escalated to {} (to act by {})",
                            step.step.as_str(),
                            step.deadline().map(|d| d.to_rfc3339()).unwrap_or_default()
                        );
                        let then = AlertTransition {
                            expected_version: current.version,
                            transition: t,
                            clocks,
                            due_at,
                        };
                        (Some(then), note)
                    }
                    Err(e) => (None, format!("not escalated: {e}")),
                }
            }
            Escalation::Exhausted => (None, "the case is at the top of its ladder".to_owned()),
            Escalation::NotOnLadder => (None, "this clock does not climb the ladder".to_owned()),
        }
    }

    fn ladder(&self, community: Option<&str>) -> Vec<LadderStep> {
        let router = self.routing.current();
        community
            .and_then(|code| router.city().community(code))
            .map(|c| c.ladder.clone())
            .unwrap_or_default()
    }

    fn actor(&self) -> String {
        format!("system:{ACTOR}@{}", self.holder)
    }

    /// Counts, logs and announces an alert this process raised.
    async fn raised(&self, c: &StoredClock, alert: &ClockAlert, what: &str) {
        let delay = (alert.raised_at - alert.due_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::counter!(telemetry::SLA_ALERTS, "kind" => alert.kind.clone()).increment(1);
        metrics::histogram!(telemetry::SLA_DETECTION_SECONDS, "kind" => alert.kind.clone())
            .record(delay);
        tracing::info!(
            kind = %alert.kind,
            delay_ms = (alert.raised_at - alert.due_at).num_milliseconds(),
            note = %alert.note,
            "SLA alert raised"
        );
        if let Ok(Some(task)) = self.cases.store.get_task(&c.task_id).await {
            self.cases.notify(&task, what, task.status, alert.raised_at);
        }
    }
}

/// Schedules what is still to raise on a clock: nothing once it breached, no warning once
/// that was raised.
fn watch(scheduler: &mut Scheduler, c: &StoredClock) {
    let id = c.id as u64;
    if c.raised("breach") || c.raised("step_overdue") {
        scheduler.cancel(id);
        return;
    }
    match Timing::of(&c.clock) {
        Some(mut timing) => {
            if c.raised("warning") {
                timing.warning_at = None;
            }
            scheduler.schedule(id, timing);
        }
        None => {
            scheduler.cancel(id);
        }
    }
}
