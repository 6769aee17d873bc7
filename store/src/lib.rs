//! The hub's task store: routed tasks, the history of every status change, the outbox of task
//! events to relay, and the cursors of pull connectors, on SQLite (one machine, a district) or
//! PostgreSQL (several hub processes, a city).
//!
//! [`open`] picks the backend from the URL and brings the schema up to date; everything
//! else goes through the [`TaskStore`] trait, so the hub holds an `Arc<dyn TaskStore>`. Its
//! methods come in one trait per concern: [`Tasks`], [`Reports`], [`Workflow`] (state,
//! clocks, alerts), [`Outbox`], [`Cursors`], [`Audit`], [`Rules`] and [`EventLog`]. Code
//! that needs one concern only can take that trait (`&dyn Outbox`); `dyn TaskStore` offers
//! them all without imports.
//! Times are stored as epoch milliseconds, so a task reads back with millisecond precision.
//!
//! # Where things are
//!
//! One implementation serves both databases through sqlx's `Any` driver; each query is
//! written once.
//! - `store.rs`: the [`TaskStore`] implementation, each method handing over to its concern:
//! - `tasks.rs`: creating a task (with its history, clocks, report and outbox events, in one
//!   transaction), reading, listing and counting tasks, their history; `filter.rs` turns a
//!   [`TaskFilter`] into SQL; `rows.rs` turns tasks into rows and back.
//! - `indicators.rs`: the assessment indicators of many tasks, in one aggregate query.
//! - `workflow.rs`: lifecycle transitions on a task's versioned state machine.
//! - `clocks.rs`: SLA clocks; `alerts.rs`: the alerts raised on them, once, across processes.
//! - `outbox.rs`: task events waiting to be relayed, and each destination's lease and cursor.
//! - `reports.rs`: reports linked to tasks, duplicates nearby, a record's prior outcome;
//!   `returns.rs`: records that became no task (returned to their department, suppressed).
//! - `cursors.rs`: where each pull connector stopped.
//! - `history.rs`: a task's history as a hash chain, appended to inside each transaction that
//!   writes an entry; `audit.rs`: checking the chains, and checkpointing their heads;
//!   `actions.rs`: the trail of what accounts did through the API and the console.
//! - `rules_versions.rs`: every routing configuration published, and which one routes;
//!   `events.rs`: the events the pipeline accepted, kept for replays.
//! - `dialect/`: what differs between SQLite and PostgreSQL: opening each (pools, pragmas,
//!   migrations, in `sqlite.rs` and `postgres.rs`) and the few SQL differences (`mod.rs`).
//!   The schemas themselves are in `migrations/sqlite` and `migrations/postgres`.
//! - `error.rs`: [`StoreError`] and how a failure is classified.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hub_cases::indicators::{GroupBy, Tally};
use hub_cases::opening::Opening;
use hub_router::city::UnitRole;
use hub_router::task::{AssignedUnit, NewTask, StatusChange, Task, TaskStatus};
use hub_schemas::event::{CivicEvent, Department};

mod actions;
mod alerts;
mod audit;
mod clocks;
mod cursors;
pub(crate) mod dialect;
mod error;
mod events;
mod filter;
mod history;
mod indicators;
mod outbox;
mod reports;
mod returns;
mod rows;
mod rules_versions;
mod store;
mod tasks;
mod workflow;

pub use actions::{ActionQuery, ActionRecord};
pub use alerts::{AlertTransition, ClockAlert, RaiseOutcome};
pub use audit::{AuditReport, BrokenLink, Checkpoint, Place};
pub use clocks::{earliest_deadline, ClockChange, StoredClock};
pub use dialect::postgres::fresh_database as fresh_postgres_database;
pub use dialect::postgres::replicate_tasks as replicate_postgres_tasks;
pub use error::{FailureClass, StoreError};
pub use events::{EventCursor, Handled};
pub use outbox::{DestinationState, EventReturned, OutboxEvent, TaskEvent};
pub use reports::{LinkOutcome, NearQuery, OpenTaskNear, PriorOutcome, Report};
pub use returns::{DepartmentReturn, Suppression};
pub use rules_versions::{Activating, RulesActivation, RulesVersion};
pub use tasks::TaskPoint;
pub use workflow::{ApplyOutcome, WorkflowRecord};

pub use hub_cases::opening::ROUTER_ACTOR;

/// What [`TaskStore::create_task`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The task and its first history entries were stored.
    Created { task_id: String },
    /// A task for the same source system and source id was already stored (a redelivered
    /// or re-fetched event); nothing was changed.
    AlreadyExists { task_id: String },
}

impl CreateOutcome {
    pub fn task_id(&self) -> &str {
        match self {
            CreateOutcome::Created { task_id } | CreateOutcome::AlreadyExists { task_id } => {
                task_id
            }
        }
    }
}

/// Which tasks to list or count. Conditions that are `None` do not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    pub community_code: Option<String>,
    pub street_code: Option<String>,
    pub status: Option<TaskStatus>,
    /// Only tasks still open: not closed (结案) or cancelled (注销).
    pub open_only: bool,
    pub department: Option<Department>,
    /// Tasks in this grid (网格).
    pub grid_code: Option<String>,
    /// Tasks of this taxonomy category or major class: a code prefix (`E01`, `E0103`).
    pub category: Option<String>,
    /// Only tasks with a paused clock (waiting on the resident, 挂起).
    pub paused: bool,
    /// Tasks at risk at this instant: an open clock past its warning point and not yet
    /// breached (即将超时).
    pub at_risk_at: Option<DateTime<Utc>>,
    /// Tasks whose lead unit or one of whose co-handlers is this unit.
    pub unit_id: Option<String>,
    /// Tasks a department is involved in: it originated them, or one of its units (by role,
    /// e.g. `police_station`) leads or co-handles them. Used for department accounts.
    pub involving: Option<Involvement>,
    /// Tasks with an open SLA deadline at or before this time.
    pub due_before: Option<DateTime<Utc>>,
    /// Tasks one of whose clocks breached (`Some(true)`), or none (`Some(false)`).
    pub breached: Option<bool>,
    /// Tasks created at or after this time.
    pub created_from: Option<DateTime<Utc>>,
    /// Tasks created before this time.
    pub created_before: Option<DateTime<Utc>>,
    /// The order of a page. Ignored by `count_tasks`.
    pub order: TaskOrder,
    /// Page size; capped at [`TaskFilter::MAX_LIMIT`]. Ignored by `count_tasks`.
    pub limit: u32,
    /// Tasks to skip, newest first. Ignored by `count_tasks`.
    pub offset: u32,
}

impl TaskFilter {
    /// The largest page one call returns, whatever `limit` asks for.
    pub const MAX_LIMIT: u32 = 1000;
    pub const DEFAULT_LIMIT: u32 = 100;

    pub(crate) fn effective_limit(&self) -> u32 {
        self.limit.min(Self::MAX_LIMIT)
    }
}

impl Default for TaskFilter {
    /// Every task, first page of [`TaskFilter::DEFAULT_LIMIT`].
    fn default() -> Self {
        TaskFilter {
            community_code: None,
            street_code: None,
            status: None,
            open_only: false,
            department: None,
            grid_code: None,
            category: None,
            paused: false,
            at_risk_at: None,
            unit_id: None,
            involving: None,
            due_before: None,
            breached: None,
            created_from: None,
            created_before: None,
            order: TaskOrder::Newest,
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

/// How a list of tasks is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskOrder {
    /// Newest first (created, then task id, descending).
    #[default]
    Newest,
    /// Soonest open deadline first (the next to breach, or the most overdue); tasks without
    /// an open deadline last.
    SoonestDue,
}

/// A department's involvement in tasks: originated by it, or led or co-handled by one of
/// its units (unit roles such as `police_station`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Involvement {
    pub department: Department,
    pub unit_roles: Vec<UnitRole>,
}

/// The whole store, as the hub holds it (`Arc<dyn TaskStore>`): the traits of each concern,
/// plus what concerns the database as a whole.
#[async_trait]
pub trait TaskStore:
    Tasks + Reports + Workflow + Outbox + Cursors + Audit + Rules + EventLog + Send + Sync
{
    /// Answers when the database does: for health checks and for telling a record's fault
    /// from the store's.
    async fn ping(&self) -> Result<(), StoreError>;

    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
}

/// Tasks: storing a routed task with its opening; reading, listing and counting tasks; their
/// history.
#[async_trait]
pub trait Tasks: Send + Sync {
    /// Stores a routed task with its opening, as the case workflow decided it (first history
    /// entries, the SLA clocks dispatch started, the events for its department), in one
    /// transaction, so that the SLA tracker and the relays see every dispatched task. The
    /// task's status is that of its last opening entry. Idempotent on (source system, source
    /// id), also across concurrent callers and processes: when such a task exists nothing
    /// changes and [`CreateOutcome::AlreadyExists`] names it.
    async fn create_task(
        &self,
        task: &NewTask,
        opening: &Opening,
    ) -> Result<CreateOutcome, StoreError>;

    /// Several routed tasks with their openings, each as [`Tasks::create_task`] would store
    /// it, in ONE transaction: one commit for all, which is what lets a backlog drain at the
    /// broker's pace. All or nothing: on an error none is stored, and the caller stores them
    /// one by one to tell which record is at fault. `logged` (the events the tasks come
    /// from) go to the event log in the same transaction, so a batch commits once.
    async fn create_tasks(
        &self,
        tasks: &[(&NewTask, &Opening)],
        logged: &[&CivicEvent],
    ) -> Result<Vec<CreateOutcome>, StoreError>;

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError>;

    /// The task's status changes, oldest first (empty for an unknown task).
    async fn task_history(&self, task_id: &str) -> Result<Vec<StatusChange>, StoreError>;

    /// Tasks matching the filter, newest first (`created_at`, then task id, descending).
    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError>;

    /// The tasks matching the filter that have a point, newest first, at most `max` (the
    /// filter's page is ignored), with what a map shows of them.
    async fn task_points(
        &self,
        filter: &TaskFilter,
        max: u32,
    ) -> Result<Vec<TaskPoint>, StoreError>;

    /// How many tasks match the filter (its limit and offset are ignored).
    async fn count_tasks(&self, filter: &TaskFilter) -> Result<u64, StoreError>;

    /// The indicator tallies (考核) of the tasks matching the filter, per group, by key, as
    /// of `as_of` (its limit and offset are ignored): one aggregate query, whatever the
    /// number of tasks.
    async fn tally_indicators(
        &self,
        filter: &TaskFilter,
        by: GroupBy,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<Tally>, StoreError>;
}

/// The departmental records behind tasks: a record's prior outcome, duplicates nearby and
/// the reports merged into a task, and the records that became no task (returned,
/// suppressed).
#[async_trait]
pub trait Reports: Send + Sync {
    /// How the event from this departmental record was handled already, if it was.
    async fn prior_outcome(
        &self,
        source_system: &str,
        source_id: &str,
    ) -> Result<Option<PriorOutcome>, StoreError>;

    /// The prior outcomes of several records of one source system, by source id (records
    /// with none are absent): what [`Reports::prior_outcome`] answers, in a few queries.
    async fn prior_outcomes(
        &self,
        source_system: &str,
        source_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, PriorOutcome>, StoreError>;

    /// Open tasks (not closed or cancelled) of a category group within a time window and a
    /// bounding box: the candidates a new report may duplicate.
    async fn open_tasks_near(&self, query: &NearQuery) -> Result<Vec<OpenTaskNear>, StoreError>;

    /// Links a duplicate report to an existing task; its department then receives the
    /// task's status changes. Idempotent on the report's (source system, source id).
    async fn link_report(&self, task_id: &str, report: &Report) -> Result<LinkOutcome, StoreError>;

    /// The reports of a task: the one it was created from, then those merged into it.
    async fn task_reports(&self, task_id: &str) -> Result<Vec<Report>, StoreError>;

    /// Keeps an event a community did not admit and publishes it back to its department, in
    /// one transaction. Idempotent: false when it was already recorded.
    async fn record_return(&self, ret: &DepartmentReturn) -> Result<bool, StoreError>;

    /// Events sent back to a department (or to any), newest first.
    async fn list_returns(
        &self,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<DepartmentReturn>, StoreError>;

    /// Keeps the outcome of an event a rule suppressed. Idempotent on (source system, source
    /// id): false when it was already recorded.
    async fn record_suppression(&self, s: &Suppression) -> Result<bool, StoreError>;

    /// Suppressed events, newest first, those suppressed before `before` (all when `None`).
    async fn list_suppressions(
        &self,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Suppression>, StoreError>;
}

/// The case workflow's state: lifecycle transitions on a task's versioned state, its SLA
/// clocks, and the alerts raised on them.
#[async_trait]
pub trait Workflow: Send + Sync {
    /// The task's workflow state, version, earliest open deadline and breach flag.
    async fn workflow(&self, task_id: &str) -> Result<Option<WorkflowRecord>, StoreError>;

    /// Writes a lifecycle transition in one transaction, only if the task's workflow version
    /// is still `expected_version`: the new status and state, a history entry (actor, time,
    /// note), the clocks it started or changed (upserted by kind and round), the task's
    /// earliest open deadline `due_at`, and a `TaskStatusChanged` outbox event. A transition
    /// that hands the task to a unit (dispatch, arbitration) names it in `new_lead`, which
    /// becomes the task's lead unit: lists, scopes and figures follow who holds the task.
    async fn apply_transition(
        &self,
        task_id: &str,
        expected_version: u64,
        transition: &hub_cases::Transition,
        clocks: &[hub_cases::SlaClock],
        due_at: Option<DateTime<Utc>>,
        new_lead: Option<&AssignedUnit>,
    ) -> Result<ApplyOutcome, StoreError>;

    /// The task's SLA clocks, oldest first, with the alerts raised on them.
    async fn task_clocks(&self, task_id: &str) -> Result<Vec<StoredClock>, StoreError>;

    /// One clock by its id, with its alerts.
    async fn clock(&self, clock_id: i64) -> Result<Option<StoredClock>, StoreError>;

    /// Open clocks with an id above `after`, by id, at most `limit`: the SLA tracker pages
    /// through them at start.
    async fn open_clocks(&self, after: i64, limit: u32) -> Result<Vec<StoredClock>, StoreError>;

    /// Which clocks were written after (`since`, `after_id`), in (changed_at, id) order, at
    /// most `limit`, open or not: how an SLA tracker learns of clocks other processes
    /// changed. Keys only: the tracker reads again ([`Self::clocks`]) only those it has not
    /// seen in that version, since it reads a few seconds back every time.
    async fn clocks_changed(
        &self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<ClockChange>, StoreError>;

    /// The clocks of these ids that exist, with their alerts, by id.
    async fn clocks(&self, ids: &[i64]) -> Result<Vec<StoredClock>, StoreError>;

    /// Raises an alert on a clock once: claims (clock, kind) and, if this call got the
    /// claim, writes a history entry and an outbox event (and marks the task breached for a
    /// breach), and the alert's transition if it has one, in the same transaction. Nothing is
    /// written when it was raised already, by any process, or when the transition is stale.
    async fn raise_alert(&self, alert: &ClockAlert) -> Result<RaiseOutcome, StoreError>;
}

/// Task events waiting to be relayed, and each destination's lease and cursor.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Outbox entries with an id above `after`, oldest first; only those of `department`'s
    /// tasks when one is given.
    async fn outbox_after(
        &self,
        after: i64,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError>;

    /// Where a destination's relay stands (a fresh state if it never ran).
    async fn outbox_destination(&self, destination: &str) -> Result<DestinationState, StoreError>;

    /// The newest outbox entry's id (0 when empty): where a live stream starts.
    async fn outbox_head(&self) -> Result<i64, StoreError>;

    /// Every destination's state, for health reporting.
    async fn outbox_destinations(&self) -> Result<Vec<DestinationState>, StoreError>;

    /// Takes or renews the lease on a destination until `until`; false while another holder's
    /// lease runs. Only the holder may move the destination's cursor, so hub processes can
    /// all run relays without delivering twice.
    async fn lease_destination(
        &self,
        destination: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records that every entry up to `up_to` reached the destination.
    async fn outbox_delivered(
        &self,
        destination: &str,
        holder: &str,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Records a failed delivery and when to try again.
    async fn outbox_failed(
        &self,
        destination: &str,
        holder: &str,
        error: &str,
        now: DateTime<Utc>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Where each pull connector stopped.
#[async_trait]
pub trait Cursors: Send + Sync {
    /// Where a pull connector stopped, as it last saved it.
    async fn load_cursor(&self, connector: &str) -> Result<Option<String>, StoreError>;

    /// Records where a pull connector stopped, replacing what it saved before.
    async fn save_cursor(&self, connector: &str, cursor: &str) -> Result<(), StoreError>;
}

/// Tamper evidence of the case histories: every task's history is a hash chain
/// (`history.rs`), and checkpoints record the chains' heads, signed with a key the database
/// does not hold (`audit.rs`); and the trail of what accounts did (`actions.rs`).
#[async_trait]
pub trait Audit: Send + Sync {
    /// Records the head of every chain that moved since the last checkpoint, in a new
    /// checkpoint chained to that one and signed with `key` (HMAC-SHA256) when given; `None`
    /// when no chain moved.
    async fn checkpoint_history(
        &self,
        key: Option<&[u8]>,
        at: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>, StoreError>;

    /// Checks every task's chain (or one task's), the heads the checkpoints recorded, and
    /// the checkpoints themselves (their signatures too, given the key), and reports each
    /// broken link: what no longer holds, and where.
    async fn verify_history(
        &self,
        task_id: Option<&str>,
        key: Option<&[u8]>,
    ) -> Result<AuditReport, StoreError>;

    /// Adds an action to the trail (its `id` is ignored: the store numbers them).
    async fn record_action(&self, action: &ActionRecord) -> Result<(), StoreError>;

    /// The actions `query` selects, oldest first.
    async fn actions(&self, query: &ActionQuery) -> Result<Vec<ActionRecord>, StoreError>;
}

/// Rules versions (`rules_versions.rs`): every routing configuration published, whole and
/// chained, and the activations that say which one routes.
#[async_trait]
pub trait Rules: Send + Sync {
    /// Stores `version` (unless a version with its digest is stored already: then its `seq`,
    /// author, message and diff are those stored first) and makes it the active one.
    async fn publish_rules(
        &self,
        version: &RulesVersion,
        activating: &Activating,
    ) -> Result<RulesActivation, StoreError>;

    /// Makes a stored version the active one again; `None` when it is not stored.
    async fn activate_rules(
        &self,
        version: &str,
        activating: &Activating,
    ) -> Result<Option<RulesActivation>, StoreError>;

    /// The last activations, newest first: the first names the version that routes.
    async fn rules_activations(&self, limit: u32) -> Result<Vec<RulesActivation>, StoreError>;

    /// A stored version, with its files.
    async fn rules_version(&self, version: &str) -> Result<Option<RulesVersion>, StoreError>;

    /// Every stored version, oldest first, without their files.
    async fn rules_versions(&self) -> Result<Vec<RulesVersion>, StoreError>;
}

/// The event log (`events.rs`): every event the routing pipeline accepted, kept for replays.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Logs accepted events (without their reporters); one already logged stays as it was.
    async fn record_events(&self, events: &[&CivicEvent]) -> Result<(), StoreError>;

    /// Logged events received in `[from, to)`, oldest first, after `after` (the last event
    /// of the previous page), at most `limit`.
    async fn logged_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&EventCursor>,
        limit: u32,
    ) -> Result<Vec<CivicEvent>, StoreError>;

    /// When each of these tasks was first signed for and last resolved, for the ones that
    /// were (what a replay holds a candidate's deadlines against).
    async fn handled_times(
        &self,
        task_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Handled>, StoreError>;

    /// The logged event of one source record, if it is still kept.
    async fn logged_event(
        &self,
        source_system: &str,
        source_id: &str,
    ) -> Result<Option<CivicEvent>, StoreError>;

    /// Forgets the events received before `before`; how many it forgot.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Opens the store at `url` and applies any pending schema migrations.
///
/// - `sqlite://path/to/hub.db` (or `sqlite:path`): the file and its directory are created if
///   missing. In-memory databases are refused: tasks would vanish with the process.
/// - `postgres://user[:password]@host[:port]/database` (or `postgresql://`).
pub async fn open(url: &str) -> Result<Arc<dyn TaskStore>, StoreError> {
    open_with(url, &PoolOptions::default()).await
}

/// The connections one store handle may hold. PostgreSQL: a pool of `max_connections`,
/// shown on the server (`pg_stat_activity.application_name`) as `name`; a process opens a
/// handle per role so that one role cannot take the connections another needs. SQLite keeps
/// its fixed pools (one writer, a few readers) and ignores these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    pub max_connections: u32,
    pub name: Option<String>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 10,
            name: None,
        }
    }
}

/// Whether handles opened on `url` have pools of their own (PostgreSQL), so that a process
/// may give a role its own handle; SQLite's one writer per file is better shared.
pub fn pools_per_handle(url: &str) -> bool {
    url.starts_with("postgres:") || url.starts_with("postgresql:")
}

/// [`open`] with pool options.
pub async fn open_with(url: &str, pool: &PoolOptions) -> Result<Arc<dyn TaskStore>, StoreError> {
    let scheme = match url.split_once(':') {
        Some((scheme, _)) if !scheme.is_empty() => scheme,
        _ => {
            return Err(StoreError::InvalidUrl {
                reason: "no scheme: expected `sqlite://PATH` or `postgres://...`".to_owned(),
            })
        }
    };
    match scheme {
        "sqlite" => Ok(Arc::new(dialect::sqlite::open(url).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(dialect::postgres::open(url, pool).await?)),
        other => Err(StoreError::UnsupportedScheme {
            scheme: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_named_with_the_accepted_ones() {
        let err = open("mysql://root:secret@db/hub")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`mysql`"), "{err}");
        assert!(
            err.contains("sqlite://") && err.contains("postgres://"),
            "{err}"
        );
        assert!(!err.contains("secret"), "the URL's password leaked: {err}");
    }

    #[tokio::test]
    async fn url_without_scheme_is_refused() {
        let err = open("/var/lib/hub/hub.db").await.err().unwrap().to_string();
        assert!(err.contains("no scheme"), "{err}");
    }

    #[tokio::test]
    async fn in_memory_sqlite_is_refused() {
        for url in [
            "sqlite::memory:",
            "sqlite://hub.db?mode=memory",
            "sqlite://",
        ] {
            let err = open(url).await.err().unwrap().to_string();
            assert!(err.contains("not a database file"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn unusable_sqlite_directory_is_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let dir = file.path().join("data");
        let err = open(&format!("sqlite://{}/hub.db", dir.display()))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("cannot create directory") && err.contains(&dir.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn page_size_is_capped() {
        let filter = TaskFilter {
            limit: 50_000,
            ..TaskFilter::default()
        };
        assert_eq!(filter.effective_limit(), TaskFilter::MAX_LIMIT);
        let filter = TaskFilter {
            limit: 20,
            ..TaskFilter::default()
        };
        assert_eq!(filter.effective_limit(), 20);
    }
}
