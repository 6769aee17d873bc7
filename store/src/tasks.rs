//! Tasks: creating one with its first history, clocks, report and outbox events in one
//! transaction; reading, listing and counting them; their history.

use chrono::{DateTime, Utc};
use hub_cases::opening::Opening;
use hub_router::task::{NewTask, StatusChange, Task, TaskStatus};
use hub_router::taxonomy::CategoryRef;
use hub_schemas::event::CivicEvent;
use sqlx::AnyConnection;

use crate::filter::{self, SqlBuilder};
use crate::rows::{HistoryRow, TaskRow};
use crate::store::Store;
use crate::{
    clocks, events, history, indicators, outbox, reports, CreateOutcome, StoreError, TaskFilter,
};

/// A task as a map shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPoint {
    pub task_id: String,
    pub status: TaskStatus,
    pub category_code: String,
    pub category_name: String,
    pub matched_area: String,
    pub lon: f64,
    pub lat: f64,
    /// The earliest open SLA deadline.
    pub due_at: Option<DateTime<Utc>>,
    /// The earliest warning point of a running clock (即将超时 once passed).
    pub warning_at: Option<DateTime<Utc>>,
    pub breached: bool,
}

/// Followed by rows in the order of [`TaskRow::push_values`], then [`INSERT_TASKS_END`]. The
/// JSON columns (co-handlers, location, explanation, category) are JSONB on PostgreSQL, hence
/// their casts there and in [`SELECT_TASKS`]; SQLite drops them
/// ([`crate::dialect::Dialect::sql`]).
const INSERT_TASKS: &str = "INSERT INTO tasks (task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at, \
     category, category_group, priority, sla_policy, place_lon, place_lat, taxonomy_code, due_at) \
     VALUES ";
/// A concurrent insert of the same source record (another PostgreSQL process; SQLite's one
/// writer runs them one after the other) makes the insert wait for that transaction and then
/// do nothing, so exactly one caller sees its row inserted. No conflict target: with one, a
/// race on the task id (the other unique index) would fail instead.
const INSERT_TASKS_END: &str = " ON CONFLICT DO NOTHING RETURNING task_id";

const SELECT_TASKS: &str = "SELECT task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers::text AS co_handlers, location::text AS location, explanation::text AS explanation, \
     rules_version, occurred_at, received_at, created_at, updated_at, \
     category::text AS category, category_group, priority, sla_policy, place_lon, place_lat \
     FROM tasks";

const SELECT_HISTORY: &str = "SELECT seq, from_status, to_status, actor, note, at \
     FROM task_history WHERE task_id = $1 ORDER BY seq";

pub(crate) async fn create_task(
    store: &Store,
    task: &NewTask,
    opening: &Opening,
) -> Result<CreateOutcome, StoreError> {
    let outcomes = create_tasks(store, &[(task, opening)], &[]).await?;
    Ok(outcomes.into_iter().next().expect("one outcome per task"))
}

/// Tasks with their openings in one transaction: a row per task (to learn which are new),
/// then the history, clocks, first reports and outbox events of the new ones in a few
/// multi-row statements. One commit for all: what makes a backlog fast.
pub(crate) async fn create_tasks(
    store: &Store,
    tasks: &[(&NewTask, &Opening)],
    logged: &[&CivicEvent],
) -> Result<Vec<CreateOutcome>, StoreError> {
    let db_err = || {
        StoreError::query(store.backend(), || match tasks {
            [(task, _)] => create_operation(task),
            _ => format!("create {} tasks in one transaction", tasks.len()),
        })
    };
    let rows = tasks
        .iter()
        .map(|(task, opening)| task_row(task, opening))
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = store.writer.begin().await.map_err(db_err())?;
    events::record_in(store, &mut tx, logged).await?;
    let mut inserted = std::collections::HashSet::new();
    for chunk in rows.chunks(store.rows_per_statement()) {
        let mut q = SqlBuilder::for_rows(store.dialect, INSERT_TASKS);
        q.push_rows(chunk, |q, row| {
            row.push_values(q);
        });
        q.push(INSERT_TASKS_END);
        let (sql, args) = q.build().map_err(db_err())?;
        let ids: Vec<String> = sqlx::query_scalar_with(&store.sql(&sql), args)
            .persistent(store.keeps_row_statements())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err())?;
        inserted.extend(ids);
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut created = Vec::with_capacity(tasks.len());
    for &(task, opening) in tasks {
        // `remove`: a record twice in one call is created once, then found.
        if inserted.remove(&task.task_id) {
            created.push((task, opening));
            outcomes.push(CreateOutcome::Created {
                task_id: task.task_id.clone(),
            });
        } else {
            outcomes.push(existing_task(store, &mut tx, task).await?);
        }
    }
    if created.is_empty() {
        // Nothing new: the tasks' events were logged with them, nothing to commit.
        return Ok(outcomes);
    }
    write_openings(store, &mut tx, &created).await?;
    tx.commit().await.map_err(db_err())?;
    Ok(outcomes)
}

fn create_operation(task: &NewTask) -> String {
    format!(
        "create task {} for {}/{}",
        task.task_id, task.source_system, task.source_id
    )
}

/// The task's row in the status its opening leaves it, with its earliest deadline.
fn task_row(task: &NewTask, opening: &Opening) -> Result<TaskRow, StoreError> {
    let status = match opening.history.last() {
        Some(entry) => entry.to_status,
        None => {
            return Err(StoreError::InvalidTask {
                task_id: task.task_id.clone(),
                reason: "its opening has no history entry".to_owned(),
            })
        }
    };
    TaskRow::new(task, status, clocks::earliest_deadline(&opening.clocks))
}

/// The task a record already has, when its insert did nothing.
async fn existing_task(
    store: &Store,
    tx: &mut AnyConnection,
    task: &NewTask,
) -> Result<CreateOutcome, StoreError> {
    let operation = || create_operation(task);
    // A new statement, so under PostgreSQL's READ COMMITTED it sees the row the winner
    // committed.
    let existing: Option<String> =
        sqlx::query_scalar("SELECT task_id FROM tasks WHERE source_system = $1 AND source_id = $2")
            .bind(&task.source_system)
            .bind(&task.source_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(store.backend(), operation))?;
    match existing {
        Some(task_id) => Ok(CreateOutcome::AlreadyExists { task_id }),
        None => Err(StoreError::Inconsistent {
            backend: store.backend(),
            operation: operation(),
            reason: "its task id is already taken by a task from another source record".to_owned(),
        }),
    }
}

/// The openings of new tasks: history entries, clocks, first reports and outbox events, each
/// kind in multi-row statements.
async fn write_openings(
    store: &Store,
    tx: &mut AnyConnection,
    created: &[(&NewTask, &Opening)],
) -> Result<(), StoreError> {
    let db_err = || {
        StoreError::query(store.backend(), || {
            format!("write the openings of {} new tasks", created.len())
        })
    };
    let history: Vec<history::Chained> = created
        .iter()
        .flat_map(|(task, opening)| {
            history::chain_new(opening.history.iter().map(|change| history::Entry {
                task_id: task.task_id.clone(),
                seq: change.seq,
                from_status: change.from_status.map(|s| s.as_str().to_owned()),
                to_status: change.to_status.as_str().to_owned(),
                actor: change.actor.clone(),
                note: change.note.clone(),
                at: change.at.timestamp_millis(),
                action: None,
            }))
        })
        .collect();
    for chunk in history.chunks(store.rows_per_statement()) {
        let mut q = SqlBuilder::for_rows(store.dialect, history::INSERT_ENTRIES);
        q.push_rows(chunk, |q, row| row.push_values(q));
        let (sql, args) = q.build().map_err(db_err())?;
        sqlx::query_with(&sql, args)
            .persistent(store.keeps_row_statements())
            .execute(&mut *tx)
            .await
            .map_err(db_err())?;
    }
    let clocks: Vec<(&str, &[hub_cases::SlaClock])> = created
        .iter()
        .map(|(task, opening)| (task.task_id.as_str(), opening.clocks.as_slice()))
        .collect();
    clocks::upsert_clocks_of(store, tx, &clocks).await?;
    let reports: Vec<(&str, reports::Report)> = created
        .iter()
        .map(|(task, _)| (task.task_id.as_str(), reports::Report::of(task)))
        .collect();
    reports::insert_reports(store, tx, &reports).await?;
    let events: Vec<outbox::NewEntry<'_>> = created
        .iter()
        .flat_map(|(task, opening)| {
            opening.events.iter().map(|event| outbox::NewEntry {
                task_id: Some(task.task_id.as_str()),
                department: task.department.as_str(),
                event,
                at: task.created_at,
            })
        })
        .collect();
    outbox::insert_many(store, tx, &events).await?;
    indicators::insert_opening_facts(store, tx, created).await
}

pub(crate) async fn get_task(store: &Store, task_id: &str) -> Result<Option<Task>, StoreError> {
    let sql = format!("{SELECT_TASKS} WHERE task_id = $1");
    let row: Option<TaskRow> = sqlx::query_as(&store.sql(&sql))
        .bind(task_id)
        .fetch_optional(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("get task {task_id}")
        }))?;
    row.map(TaskRow::into_task).transpose()
}

pub(crate) async fn task_history(
    store: &Store,
    task_id: &str,
) -> Result<Vec<StatusChange>, StoreError> {
    let rows: Vec<HistoryRow> = sqlx::query_as(SELECT_HISTORY)
        .bind(task_id)
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("read history of task {task_id}")
        }))?;
    rows.into_iter()
        .map(|row| row.into_change(task_id))
        .collect()
}

pub(crate) async fn list_tasks(
    store: &Store,
    filter: &TaskFilter,
) -> Result<Vec<Task>, StoreError> {
    let err = || StoreError::query(store.backend(), || format!("list tasks ({filter:?})"));
    let mut query = SqlBuilder::new(store.sql(SELECT_TASKS));
    filter::push_filter(&mut query, filter);
    filter::push_page(&mut query, filter);
    let (sql, args) = query.build().map_err(err())?;
    let rows: Vec<TaskRow> = sqlx::query_as_with(&sql, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    rows.into_iter().map(TaskRow::into_task).collect()
}

/// `+c.is_open`: the task's own clocks are found by task id; SQLite would otherwise take the
/// open-clocks index and scan every open clock for each task (seen with 10,000 tasks).
const SELECT_POINTS: &str = "SELECT task_id, status, category_code, category_name, \
     category::text AS category, matched_area, place_lon, place_lat, due_at, breached, \
     (SELECT MIN(c.warning_at) FROM sla_clocks c WHERE c.task_id = tasks.task_id \
      AND +c.is_open = 1 AND c.deadline IS NOT NULL) AS warning_at FROM tasks";

#[derive(sqlx::FromRow)]
struct PointRow {
    task_id: String,
    status: String,
    category_code: String,
    category_name: Option<String>,
    category: String,
    matched_area: String,
    place_lon: Option<f64>,
    place_lat: Option<f64>,
    due_at: Option<i64>,
    breached: i64,
    warning_at: Option<i64>,
}

/// The tasks of `filter` that have a point, in a few columns, at most `max` (the page of
/// `filter` is ignored): what a map draws.
pub(crate) async fn task_points(
    store: &Store,
    filter: &TaskFilter,
    max: u32,
) -> Result<Vec<TaskPoint>, StoreError> {
    let err = || StoreError::query(store.backend(), || format!("task points ({filter:?})"));
    let mut query = SqlBuilder::new(store.sql(SELECT_POINTS));
    filter::push_filter(&mut query, filter);
    query
        .push(" ORDER BY created_at DESC, task_id DESC LIMIT ")
        .push_bind(i64::from(max));
    let (sql, args) = query.build().map_err(err())?;
    let rows: Vec<PointRow> = sqlx::query_as_with(&sql, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(lon), Some(lat)) = (r.place_lon, r.place_lat) else {
            continue;
        };
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: r.task_id.clone(),
            column,
            reason,
        };
        let status = TaskStatus::parse(&r.status)
            .ok_or_else(|| corrupt("status", format!("unknown status `{}`", r.status)))?;
        let category_name = match r.category_name {
            Some(name) => name,
            None => {
                serde_json::from_str::<CategoryRef>(&r.category)
                    .map_err(|e| corrupt("category", e.to_string()))?
                    .name
            }
        };
        out.push(TaskPoint {
            status,
            category_code: r.category_code,
            category_name,
            matched_area: r.matched_area,
            lon,
            lat,
            due_at: r.due_at.and_then(DateTime::from_timestamp_millis),
            warning_at: r.warning_at.and_then(DateTime::from_timestamp_millis),
            breached: r.breached != 0,
            task_id: r.task_id,
        });
    }
    Ok(out)
}

pub(crate) async fn count_tasks(store: &Store, filter: &TaskFilter) -> Result<u64, StoreError> {
    let err = || StoreError::query(store.backend(), || format!("count tasks ({filter:?})"));
    let mut query = SqlBuilder::new("SELECT COUNT(*) FROM tasks");
    filter::push_filter(&mut query, filter);
    let (sql, args) = query.build().map_err(err())?;
    let count: i64 = sqlx::query_scalar_with(&sql, args)
        .fetch_one(&store.readers)
        .await
        .map_err(err())?;
    // COUNT(*) is never negative.
    Ok(count.unsigned_abs())
}
