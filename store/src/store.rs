//! The one [`TaskStore`] implementation, over either backend. Each method is a line that hands
//! over to the module of its concern, where its queries are.

use std::borrow::Cow;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hub_cases::indicators::{GroupBy, Tally};
use hub_cases::opening::Opening;
use hub_cases::{SlaClock, Transition};
use hub_router::task::{AssignedUnit, NewTask, StatusChange, Task};
use hub_schemas::event::Department;
use sqlx::AnyPool;

use crate::dialect::Dialect;
use crate::{
    actions, alerts, audit, clocks, cursors, events, indicators, outbox, reports, returns,
    rules_versions, tasks, workflow,
};
use crate::{ActionQuery, ActionRecord, Audit, AuditReport, Checkpoint};
use crate::{Activating, EventCursor, EventLog, Handled, Rules, RulesActivation, RulesVersion};
use crate::{
    ApplyOutcome, ClockAlert, ClockChange, CreateOutcome, DepartmentReturn, DestinationState,
    LinkOutcome, NearQuery, OpenTaskNear, OutboxEvent, PriorOutcome, RaiseOutcome, Report,
    StoreError, StoredClock, Suppression, TaskFilter, TaskPoint, TaskStore, WorkflowRecord,
};
use crate::{Cursors, Outbox, Reports, Tasks, Workflow};

pub(crate) struct Store {
    pub(crate) dialect: Dialect,
    /// Where writes go. SQLite: the only connection that writes, so writers in this process
    /// queue here instead of contending for SQLite's lock. PostgreSQL: the one pool.
    pub(crate) writer: AnyPool,
    /// Where reads go. SQLite: read-only connections beside the writer. PostgreSQL: the same
    /// pool as `writer`.
    pub(crate) readers: AnyPool,
}

impl Store {
    /// `"sqlite"` or `"postgres"`, for errors and [`TaskStore::backend`].
    pub(crate) fn backend(&self) -> &'static str {
        self.dialect.name()
    }

    /// A query of this crate (written for PostgreSQL) as this store's dialect runs it.
    pub(crate) fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        self.dialect.sql(sql)
    }

    /// Rows per multi-row statement ([`Dialect::rows_per_statement`]).
    pub(crate) fn rows_per_statement(&self) -> usize {
        self.dialect.rows_per_statement()
    }

    pub(crate) fn keeps_row_statements(&self) -> bool {
        self.dialect.keeps_row_statements()
    }
}

#[async_trait]
impl TaskStore for Store {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(StoreError::query(self.backend(), || {
                "answer a health check".to_owned()
            }))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        self.dialect.name()
    }
}

#[async_trait]
impl Tasks for Store {
    async fn create_task(
        &self,
        task: &NewTask,
        opening: &Opening,
    ) -> Result<CreateOutcome, StoreError> {
        tasks::create_task(self, task, opening).await
    }

    async fn create_tasks(
        &self,
        tasks: &[(&NewTask, &Opening)],
        logged: &[&hub_schemas::event::CivicEvent],
    ) -> Result<Vec<CreateOutcome>, StoreError> {
        tasks::create_tasks(self, tasks, logged).await
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        tasks::get_task(self, task_id).await
    }

    async fn task_history(&self, task_id: &str) -> Result<Vec<StatusChange>, StoreError> {
        tasks::task_history(self, task_id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        tasks::list_tasks(self, filter).await
    }

    async fn task_points(
        &self,
        filter: &TaskFilter,
        max: u32,
    ) -> Result<Vec<TaskPoint>, StoreError> {
        tasks::task_points(self, filter, max).await
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        tasks::count_tasks(self, filter).await
    }

    async fn tally_indicators(
        &self,
        filter: &TaskFilter,
        by: GroupBy,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<Tally>, StoreError> {
        indicators::tally_indicators(self, filter, by, as_of).await
    }
}

#[async_trait]
impl Reports for Store {
    async fn prior_outcome(
        &self,
        source_system: &str,
        source_id: &str,
    ) -> Result<Option<PriorOutcome>, StoreError> {
        reports::prior_outcome(self, source_system, source_id).await
    }

    async fn prior_outcomes(
        &self,
        source_system: &str,
        source_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, PriorOutcome>, StoreError> {
        reports::prior_outcomes(self, source_system, source_ids).await
    }

    async fn open_tasks_near(&self, query: &NearQuery) -> Result<Vec<OpenTaskNear>, StoreError> {
        reports::open_tasks_near(self, query).await
    }

    async fn link_report(&self, task_id: &str, report: &Report) -> Result<LinkOutcome, StoreError> {
        reports::link_report(self, task_id, report).await
    }

    async fn task_reports(&self, task_id: &str) -> Result<Vec<Report>, StoreError> {
        reports::task_reports(self, task_id).await
    }

    async fn record_return(&self, ret: &DepartmentReturn) -> Result<bool, StoreError> {
        returns::record_return(self, ret).await
    }

    async fn list_returns(
        &self,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<DepartmentReturn>, StoreError> {
        returns::list_returns(self, department, limit).await
    }

    async fn record_suppression(&self, s: &Suppression) -> Result<bool, StoreError> {
        returns::record_suppression(self, s).await
    }

    async fn list_suppressions(
        &self,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Suppression>, StoreError> {
        returns::list_suppressions(self, before, limit).await
    }
}

#[async_trait]
impl Workflow for Store {
    async fn workflow(&self, task_id: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        workflow::workflow(self, task_id).await
    }

    async fn apply_transition(
        &self,
        task_id: &str,
        expected_version: u64,
        transition: &Transition,
        clocks: &[SlaClock],
        due_at: Option<DateTime<Utc>>,
        new_lead: Option<&AssignedUnit>,
    ) -> Result<ApplyOutcome, StoreError> {
        workflow::apply_transition(
            self,
            task_id,
            expected_version,
            transition,
            clocks,
            due_at,
            new_lead,
        )
        .await
    }

    async fn task_clocks(&self, task_id: &str) -> Result<Vec<StoredClock>, StoreError> {
        clocks::task_clocks(self, task_id).await
    }

    async fn clock(&self, clock_id: i64) -> Result<Option<StoredClock>, StoreError> {
        clocks::clock(self, clock_id).await
    }

    async fn open_clocks(&self, after: i64, limit: u32) -> Result<Vec<StoredClock>, StoreError> {
        clocks::open_clocks(self, after, limit).await
    }

    async fn clocks_changed(
        &self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<ClockChange>, StoreError> {
        clocks::clocks_changed(self, since, after_id, limit).await
    }

    async fn clocks(&self, ids: &[i64]) -> Result<Vec<StoredClock>, StoreError> {
        clocks::clocks_by_id(self, ids).await
    }

    async fn raise_alert(&self, alert: &ClockAlert) -> Result<RaiseOutcome, StoreError> {
        alerts::raise_alert(self, alert).await
    }
}

#[async_trait]
impl Outbox for Store {
    async fn outbox_after(
        &self,
        after: i64,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        outbox::outbox_after(self, after, department, limit).await
    }

    async fn outbox_destination(&self, destination: &str) -> Result<DestinationState, StoreError> {
        outbox::outbox_destination(self, destination).await
    }

    async fn outbox_head(&self) -> Result<i64, StoreError> {
        outbox::outbox_head(self).await
    }

    async fn outbox_destinations(&self) -> Result<Vec<DestinationState>, StoreError> {
        outbox::outbox_destinations(self).await
    }

    async fn lease_destination(
        &self,
        destination: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        outbox::lease_destination(self, destination, holder, now, until).await
    }

    async fn outbox_delivered(
        &self,
        destination: &str,
        holder: &str,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        outbox::outbox_delivered(self, destination, holder, up_to, now).await
    }

    async fn outbox_failed(
        &self,
        destination: &str,
        holder: &str,
        error: &str,
        now: DateTime<Utc>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        outbox::outbox_failed(self, destination, holder, error, now, next_attempt_at).await
    }
}

#[async_trait]
impl Cursors for Store {
    async fn load_cursor(&self, connector: &str) -> Result<Option<String>, StoreError> {
        cursors::load_cursor(self, connector).await
    }

    async fn save_cursor(&self, connector: &str, cursor: &str) -> Result<(), StoreError> {
        cursors::save_cursor(self, connector, cursor).await
    }
}

#[async_trait]
impl Audit for Store {
    async fn checkpoint_history(
        &self,
        key: Option<&[u8]>,
        at: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        audit::checkpoint(self, key, at).await
    }

    async fn verify_history(
        &self,
        task_id: Option<&str>,
        key: Option<&[u8]>,
    ) -> Result<AuditReport, StoreError> {
        audit::verify(self, task_id, key).await
    }

    async fn record_action(&self, action: &ActionRecord) -> Result<(), StoreError> {
        actions::record(self, action).await
    }

    async fn actions(&self, query: &ActionQuery) -> Result<Vec<ActionRecord>, StoreError> {
        actions::list(self, query).await
    }
}

#[async_trait]
impl Rules for Store {
    async fn publish_rules(
        &self,
        version: &RulesVersion,
        activating: &Activating,
    ) -> Result<RulesActivation, StoreError> {
        rules_versions::publish(self, version, activating).await
    }

    async fn activate_rules(
        &self,
        version: &str,
        activating: &Activating,
    ) -> Result<Option<RulesActivation>, StoreError> {
        rules_versions::activate(self, version, activating).await
    }

    async fn rules_activations(&self, limit: u32) -> Result<Vec<RulesActivation>, StoreError> {
        rules_versions::activations(self, limit).await
    }

    async fn rules_version(&self, version: &str) -> Result<Option<RulesVersion>, StoreError> {
        rules_versions::version(self, version).await
    }

    async fn rules_versions(&self) -> Result<Vec<RulesVersion>, StoreError> {
        rules_versions::versions(self).await
    }
}

#[async_trait]
impl EventLog for Store {
    async fn record_events(
        &self,
        events: &[&hub_schemas::event::CivicEvent],
    ) -> Result<(), StoreError> {
        events::record(self, events).await
    }

    async fn logged_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&EventCursor>,
        limit: u32,
    ) -> Result<Vec<hub_schemas::event::CivicEvent>, StoreError> {
        events::between(self, from, to, after, limit).await
    }

    async fn handled_times(
        &self,
        task_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Handled>, StoreError> {
        events::handled_times(self, task_ids).await
    }

    async fn logged_event(
        &self,
        source_system: &str,
        source_id: &str,
    ) -> Result<Option<hub_schemas::event::CivicEvent>, StoreError> {
        events::one(self, source_system, source_id).await
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        events::prune(self, before).await
    }
}
