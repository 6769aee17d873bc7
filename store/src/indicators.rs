//! The assessment indicators (考核) of the tasks a filter selects, per street, community or
//! lead unit, in ONE aggregate query over `case_facts`: a city-year is a million cases, and
//! reading each case's history, state and clocks (or joining them all at query time) took
//! minutes, or half a minute.
//!
//! `case_facts` holds one narrow row per task, written in the transaction of every change to
//! the task (its creation, [`insert_opening_facts`]; each lifecycle transition,
//! [`refresh_case_facts`]): the
//! first dispatch and sign-for and the last feedback and closing (from its history), the
//! first sign-for deadline and the latest handling or rework deadline (from its clocks), and
//! its rework, extension and callback counts (from its state). [`AGGREGATE`] then counts
//! what `hub_cases::indicators::Tally::add` counts; the store suite holds the two to the
//! same figures.

use chrono::{DateTime, Utc};
use hub_cases::indicators::{GroupBy, Tally};
use hub_cases::opening::Opening;
use hub_cases::{ClockKind, SlaClock};
use hub_router::task::{NewTask, TaskStatus};
use sqlx::AnyConnection;

use crate::filter::{self, SqlBuilder};
use crate::store::Store;
use crate::{StoreError, TaskFilter};

/// Rewrites the facts of the task `$1`. The same statement (for every task) fills the table
/// in migration 0007. `ORDER BY c.id + 0`: ordered by
/// `c.id` itself, PostgreSQL walked the whole clock table in id order looking for the task's
/// clock (24 ms a task at 130,000 clocks) instead of taking the task's few clocks by its index.
const REFRESH_FACTS: &str = "INSERT INTO case_facts (task_id, created_at, department, status, \
     street_code, community_code, lead_unit_id, lead_unit_role, co_handlers, dispatched_at, \
     signed_for_at, resolved_at, closed_at, sign_for_due, handling_due, rework_count, \
     extension_count, callback_satisfied) \
SELECT t.task_id, t.created_at, t.department, t.status, t.street_code, t.community_code, \
       t.lead_unit_id, t.lead_unit_role, CAST(t.co_handlers AS TEXT), \
       (SELECT MIN(h.at) FROM task_history h WHERE h.task_id = t.task_id \
           AND h.to_status = 'dispatched' AND (h.from_status IS NULL OR h.from_status <> h.to_status)), \
       (SELECT MIN(h.at) FROM task_history h WHERE h.task_id = t.task_id \
           AND h.to_status = 'signed_for' AND (h.from_status IS NULL OR h.from_status <> h.to_status)), \
       (SELECT MAX(h.at) FROM task_history h WHERE h.task_id = t.task_id \
           AND h.to_status = 'resolved' AND (h.from_status IS NULL OR h.from_status <> h.to_status)), \
       (SELECT MAX(h.at) FROM task_history h WHERE h.task_id = t.task_id \
           AND h.to_status = 'closed' AND (h.from_status IS NULL OR h.from_status <> h.to_status)), \
       (SELECT c.deadline FROM sla_clocks c WHERE c.task_id = t.task_id \
           AND c.clock_key LIKE '{\"kind\":\"sign!_for\"}#%' ESCAPE '!' ORDER BY c.id + 0 LIMIT 1), \
       (SELECT MAX(c.deadline) FROM sla_clocks c WHERE c.task_id = t.task_id \
           AND (c.clock_key LIKE '{\"kind\":\"handling\",%' OR c.clock_key LIKE '{\"kind\":\"rework\"}#%')), \
       t.rework_count, t.extension_count, t.callback_satisfied \
  FROM tasks t WHERE t.task_id = $1 \
ON CONFLICT (task_id) DO UPDATE SET \
     status = excluded.status, lead_unit_id = excluded.lead_unit_id, \
     lead_unit_role = excluded.lead_unit_role, co_handlers = excluded.co_handlers, \
     dispatched_at = excluded.dispatched_at, signed_for_at = excluded.signed_for_at, \
     resolved_at = excluded.resolved_at, closed_at = excluded.closed_at, \
     sign_for_due = excluded.sign_for_due, handling_due = excluded.handling_due, \
     rework_count = excluded.rework_count, extension_count = excluded.extension_count, \
     callback_satisfied = excluded.callback_satisfied";

/// Rewrites the indicator facts of `task_id` from its rows as they stand in `tx`: call it
/// after writing the task's history, clocks and state (a lifecycle transition).
pub(crate) async fn refresh_case_facts(
    store: &Store,
    tx: &mut AnyConnection,
    task_id: &str,
) -> Result<(), StoreError> {
    sqlx::query(REFRESH_FACTS)
        .bind(task_id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("refresh the indicator facts of task {task_id}")
        }))?;
    Ok(())
}

const INSERT_FACTS: &str = "INSERT INTO case_facts (task_id, created_at, department, status, \
     street_code, community_code, lead_unit_id, lead_unit_role, co_handlers, dispatched_at, \
     signed_for_at, resolved_at, closed_at, sign_for_due, handling_due, rework_count, \
     extension_count, callback_satisfied) VALUES ";

/// The facts of tasks just created, from their openings: what [`REFRESH_FACTS`] would read
/// back from the rows the openings wrote, without reading them (a backlog's batch of 500 new
/// tasks spent more time in that read-back than in everything else it stores).
pub(crate) async fn insert_opening_facts(
    store: &Store,
    tx: &mut AnyConnection,
    created: &[(&NewTask, &Opening)],
) -> Result<(), StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("write the indicator facts of {} new tasks", created.len())
        })
    };
    let rows = created
        .iter()
        .map(|(task, opening)| OpeningFacts::of(task, opening))
        .collect::<Result<Vec<_>, StoreError>>()?;
    for chunk in rows.chunks(store.rows_per_statement()) {
        let mut q = SqlBuilder::for_rows(store.dialect, INSERT_FACTS);
        q.push_rows(chunk, |q, f| {
            q.push("(")
                .push_bind(f.task_id)
                .push_bind_next(f.created_at)
                .push_bind_next(f.department)
                .push_bind_next(f.status)
                .push_bind_next(f.street_code)
                .push_bind_next(f.community_code)
                .push_bind_next(f.lead_unit_id)
                .push_bind_next(f.lead_unit_role)
                .push_bind_next(f.co_handlers.as_str())
                .push_bind_next(f.dispatched_at)
                .push_bind_next(f.signed_for_at)
                .push_bind_next(f.resolved_at)
                .push_bind_next(f.closed_at)
                .push_bind_next(f.sign_for_due)
                .push_bind_next(f.handling_due)
                .push(", 0, 0, NULL)");
        });
        let (sql, args) = q.build().map_err(err())?;
        sqlx::query_with(&sql, args)
            .persistent(store.keeps_row_statements())
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    Ok(())
}

/// A new task's `case_facts` row (no rework, extension or callback yet).
struct OpeningFacts<'a> {
    task_id: &'a str,
    created_at: i64,
    department: &'a str,
    status: &'a str,
    street_code: Option<&'a str>,
    community_code: Option<&'a str>,
    lead_unit_id: Option<&'a str>,
    lead_unit_role: Option<&'a str>,
    co_handlers: String,
    dispatched_at: Option<i64>,
    signed_for_at: Option<i64>,
    resolved_at: Option<i64>,
    closed_at: Option<i64>,
    sign_for_due: Option<i64>,
    handling_due: Option<i64>,
}

impl<'a> OpeningFacts<'a> {
    fn of(task: &'a NewTask, opening: &'a Opening) -> Result<Self, StoreError> {
        // Entries that change the status, as in REFRESH_FACTS.
        let moves = || {
            opening
                .history
                .iter()
                .filter(|h| h.from_status != Some(h.to_status))
        };
        let first = |s: TaskStatus| moves().find(|h| h.to_status == s).map(|h| h.at);
        let last = |s: TaskStatus| moves().filter(|h| h.to_status == s).map(|h| h.at).max();
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        let sign_for_due = opening
            .clocks
            .iter()
            .find(|c| c.kind == ClockKind::SignFor)
            .and_then(SlaClock::deadline);
        let handling_due = opening
            .clocks
            .iter()
            .filter(|c| matches!(c.kind, ClockKind::Handling { .. } | ClockKind::Rework))
            .filter_map(SlaClock::deadline)
            .max();
        let status = opening
            .history
            .last()
            .map_or(TaskStatus::Created, |h| h.to_status);
        let lead = task.lead_unit.as_ref();
        Ok(OpeningFacts {
            task_id: &task.task_id,
            created_at: task.created_at.timestamp_millis(),
            department: task.department.as_str(),
            status: status.as_str(),
            street_code: task.place.street_code.as_deref(),
            community_code: task.place.community_code.as_deref(),
            lead_unit_id: lead.map(|u| u.unit_id.as_str()),
            lead_unit_role: lead.map(|u| u.role.as_str()),
            co_handlers: crate::workflow::to_json(&task.task_id, "co_handlers", &task.co_handlers)?,
            dispatched_at: ms(first(TaskStatus::Dispatched)),
            signed_for_at: ms(first(TaskStatus::SignedFor)),
            resolved_at: ms(last(TaskStatus::Resolved)),
            closed_at: ms(last(TaskStatus::Closed)),
            sign_for_due: ms(sign_for_due),
            handling_due: ms(handling_due),
        })
    }
}

/// `f`: one row of facts per case, as 0/1 flags and times, narrowed by the filter that
/// follows; then [`AGGREGATE`], the as-of time and [`AGGREGATE_END`].
fn facts(by: GroupBy) -> String {
    let key = match by {
        GroupBy::Street => "street_code",
        GroupBy::Community => "community_code",
        GroupBy::Unit => "lead_unit_id",
    };
    format!(
        "WITH f AS (SELECT COALESCE({key}, '-') AS group_key, \
         CASE WHEN status = 'cancelled' THEN 0 ELSE 1 END AS filed, \
         dispatched_at, signed_for_at, resolved_at, \
         CASE WHEN status = 'closed' OR closed_at IS NOT NULL THEN 1 ELSE 0 END AS closed, \
         sign_for_due, handling_due, rework_count AS reworks, extension_count AS extensions, \
         callback_satisfied AS satisfied FROM case_facts"
    )
}

const AGGREGATE: &str = ") \
SELECT group_key, \
  CAST(COUNT(*) AS BIGINT) AS received, \
  CAST(SUM(filed) AS BIGINT) AS filed, \
  CAST(SUM(CASE WHEN filed = 1 AND dispatched_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS dispatched, \
  CAST(SUM(CASE WHEN filed = 1 AND dispatched_at IS NOT NULL AND signed_for_at IS NOT NULL \
      AND (sign_for_due IS NULL OR signed_for_at <= sign_for_due) THEN 1 ELSE 0 END) AS BIGINT) AS responded, \
  CAST(SUM(CASE WHEN filed = 1 AND resolved_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS resolved, \
  CAST(SUM(CASE WHEN filed = 1 AND (closed = 1 OR handling_due <= ";
const AGGREGATE_END: &str = ") THEN 1 ELSE 0 END) AS BIGINT) AS due_to_close, \
  CAST(SUM(CASE WHEN filed = 1 AND closed = 1 THEN 1 ELSE 0 END) AS BIGINT) AS closed, \
  CAST(SUM(CASE WHEN filed = 1 AND closed = 1 AND resolved_at IS NOT NULL \
      AND (handling_due IS NULL OR resolved_at <= handling_due) THEN 1 ELSE 0 END) AS BIGINT) AS closed_on_time, \
  CAST(SUM(CASE WHEN filed = 1 AND closed = 1 AND reworks > 0 THEN 1 ELSE 0 END) AS BIGINT) AS reworked, \
  CAST(SUM(CASE WHEN filed = 1 AND extensions > 0 THEN 1 ELSE 0 END) AS BIGINT) AS extended, \
  CAST(SUM(CASE WHEN filed = 1 AND satisfied IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS callbacks, \
  CAST(SUM(CASE WHEN filed = 1 AND satisfied = 1 THEN 1 ELSE 0 END) AS BIGINT) AS satisfied, \
  CAST(COALESCE(SUM(CASE WHEN filed = 1 AND signed_for_at >= dispatched_at \
      THEN signed_for_at - dispatched_at END), 0) AS BIGINT) AS sign_for_ms, \
  CAST(SUM(CASE WHEN filed = 1 AND signed_for_at >= dispatched_at THEN 1 ELSE 0 END) AS BIGINT) AS sign_for_cases, \
  CAST(COALESCE(SUM(CASE WHEN filed = 1 AND resolved_at IS NOT NULL AND resolved_at >= signed_for_at \
      THEN resolved_at - signed_for_at END), 0) AS BIGINT) AS handling_ms, \
  CAST(SUM(CASE WHEN filed = 1 AND resolved_at IS NOT NULL AND resolved_at >= signed_for_at \
      THEN 1 ELSE 0 END) AS BIGINT) AS handling_cases \
FROM f GROUP BY group_key";

/// Whether `filter` narrows by what `case_facts` holds: the scope of an account (street,
/// community, unit, department, roles), status and period.
fn facts_can_filter(filter: &TaskFilter) -> bool {
    filter.grid_code.is_none()
        && filter.category.is_none()
        && !filter.paused
        && filter.at_risk_at.is_none()
        && filter.due_before.is_none()
        && filter.breached.is_none()
}

#[derive(sqlx::FromRow)]
struct TallyRow {
    group_key: String,
    received: i64,
    filed: i64,
    dispatched: i64,
    responded: i64,
    resolved: i64,
    due_to_close: i64,
    closed: i64,
    closed_on_time: i64,
    reworked: i64,
    extended: i64,
    callbacks: i64,
    satisfied: i64,
    sign_for_ms: i64,
    sign_for_cases: i64,
    handling_ms: i64,
    handling_cases: i64,
}

pub(crate) async fn tally_indicators(
    store: &Store,
    filter: &TaskFilter,
    by: GroupBy,
    as_of: DateTime<Utc>,
) -> Result<Vec<Tally>, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("tally indicators by {} ({filter:?})", by.as_str())
        })
    };
    if !facts_can_filter(filter) {
        return Err(StoreError::Unsupported {
            reason: format!(
                "indicators are narrowed by scope, status and period only, not by {filter:?}"
            ),
        });
    }
    let mut query = SqlBuilder::new(facts(by));
    filter::push_filter(&mut query, filter);
    query
        .push(AGGREGATE)
        .push_bind(as_of.timestamp_millis())
        .push(AGGREGATE_END);
    let (sql, args) = query.build().map_err(err())?;
    let rows: Vec<TallyRow> = sqlx::query_as_with(&sql, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    let n = |v: i64| v.unsigned_abs();
    let mut tallies: Vec<Tally> = rows
        .into_iter()
        .map(|r| Tally {
            key: r.group_key,
            received: n(r.received),
            filed: n(r.filed),
            dispatched: n(r.dispatched),
            responded: n(r.responded),
            resolved: n(r.resolved),
            due_to_close: n(r.due_to_close),
            closed: n(r.closed),
            closed_on_time: n(r.closed_on_time),
            reworked: n(r.reworked),
            extended: n(r.extended),
            callbacks: n(r.callbacks),
            satisfied: n(r.satisfied),
            sign_for_ms: r.sign_for_ms,
            sign_for_cases: n(r.sign_for_cases),
            handling_ms: r.handling_ms,
            handling_cases: n(r.handling_cases),
        })
        .collect();
    // By key in code, not in SQL: PostgreSQL's collation would order keys unlike SQLite.
    tallies.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(tallies)
}
