//! Reports linked to tasks (duplicates merged into one task), the search for the open tasks
//! a new report may duplicate, and what became of a departmental record already seen.

use chrono::{DateTime, Utc};
use hub_schemas::event::Department;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Executor};

use crate::store::Store;
use crate::{returns, StoreError};

/// A departmental record that became, or was merged into, a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub occurred_at: DateTime<Utc>,
    pub linked_at: DateTime<Utc>,
}

impl Report {
    /// The report of the record a routed task came from, linked when the task was created.
    pub fn of(task: &hub_router::task::NewTask) -> Self {
        Report {
            event_id: task.event_id.clone(),
            source_system: task.source_system.clone(),
            source_id: task.source_id.clone(),
            department: task.department,
            occurred_at: task.occurred_at,
            linked_at: task.created_at,
        }
    }
}

/// What [`crate::TaskStore::link_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// This record was already linked (to this or another task); nothing changed.
    AlreadyLinked {
        task_id: String,
    },
}

/// How an event was already handled, if it was: the pipeline asks before routing, so a
/// redelivered event changes nothing whatever its first outcome was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriorOutcome {
    /// It became or joined this task.
    Task { task_id: String },
    /// It was sent back to its department.
    Returned,
    /// A rule suppressed it (no task by design).
    Suppressed,
}

/// An open task that a new report might duplicate.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTaskNear {
    pub task_id: String,
    pub category_group: String,
    pub lon: f64,
    pub lat: f64,
    pub occurred_at: DateTime<Utc>,
}

/// Where to look for duplicates: a category group, a time window and a bounding box.
#[derive(Debug, Clone, PartialEq)]
pub struct NearQuery {
    pub category_group: String,
    pub occurred_since: DateTime<Utc>,
    pub occurred_until: DateTime<Utc>,
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

const INSERT_REPORT: &str = "INSERT INTO task_reports (task_id, event_id, source_system, \
     source_id, department, occurred_at, linked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT DO NOTHING";
/// Followed by `(task_id, event_id, source_system, source_id, department, occurred_at,
/// linked_at)` rows.
const INSERT_REPORTS: &str = "INSERT INTO task_reports (task_id, event_id, source_system, \
     source_id, department, occurred_at, linked_at) VALUES ";
const SELECT_REPORTS: &str = "SELECT event_id, source_system, source_id, department, \
     occurred_at, linked_at FROM task_reports WHERE task_id = $1 \
     ORDER BY linked_at, source_system, source_id";
const SELECT_REPORT_TASK: &str =
    "SELECT task_id FROM task_reports WHERE source_system = $1 AND source_id = $2";
/// Binds group, since, until, min_lon, max_lon, min_lat, max_lat.
const SELECT_NEAR: &str = "SELECT task_id, category_group, place_lon, place_lat, occurred_at \
     FROM tasks WHERE category_group = $1 AND occurred_at >= $2 AND occurred_at <= $3 \
     AND place_lon BETWEEN $4 AND $5 AND place_lat BETWEEN $6 AND $7 \
     AND status NOT IN ('closed', 'cancelled') ORDER BY occurred_at, task_id LIMIT 100";

/// Links `report` to the task: its own first report (in the transaction that creates the
/// task), or a duplicate. Answers 0 when the record was linked already.
pub(crate) async fn insert_report<'e>(
    db: impl Executor<'e, Database = Any>,
    task_id: &str,
    report: &Report,
) -> sqlx::Result<u64> {
    let done = sqlx::query(INSERT_REPORT)
        .bind(task_id)
        .bind(&report.event_id)
        .bind(&report.source_system)
        .bind(&report.source_id)
        .bind(report.department.as_str())
        .bind(report.occurred_at.timestamp_millis())
        .bind(report.linked_at.timestamp_millis())
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// The first reports of new tasks, in multi-row statements.
pub(crate) async fn insert_reports(
    store: &Store,
    tx: &mut sqlx::AnyConnection,
    reports: &[(&str, Report)],
) -> Result<(), StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("link the first reports of {} tasks", reports.len())
        })
    };
    for chunk in reports.chunks(store.rows_per_statement()) {
        let mut q = crate::filter::SqlBuilder::for_rows(store.dialect, INSERT_REPORTS);
        q.push_rows(chunk, |q, (task_id, r)| {
            q.push("(")
                .push_bind(*task_id)
                .push_bind_next(r.event_id.as_str())
                .push_bind_next(r.source_system.as_str())
                .push_bind_next(r.source_id.as_str())
                .push_bind_next(r.department.as_str())
                .push_bind_next(r.occurred_at.timestamp_millis())
                .push_bind_next(r.linked_at.timestamp_millis())
                .push(")");
        });
        q.push(" ON CONFLICT DO NOTHING");
        let (sql, args) = q.build().map_err(err())?;
        sqlx::query_with(&sql, args)
            .persistent(store.keeps_row_statements())
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    Ok(())
}

pub(crate) async fn prior_outcome(
    store: &Store,
    source_system: &str,
    source_id: &str,
) -> Result<Option<PriorOutcome>, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("look up {source_system}/{source_id}")
        })
    };
    let task: Option<String> = sqlx::query_scalar(SELECT_REPORT_TASK)
        .bind(source_system)
        .bind(source_id)
        .fetch_optional(&store.readers)
        .await
        .map_err(err())?;
    if let Some(task_id) = task {
        return Ok(Some(PriorOutcome::Task { task_id }));
    }
    let returned: Option<String> = sqlx::query_scalar(returns::SELECT_RETURNED)
        .bind(source_system)
        .bind(source_id)
        .fetch_optional(&store.readers)
        .await
        .map_err(err())?;
    if returned.is_some() {
        return Ok(Some(PriorOutcome::Returned));
    }
    let suppressed: Option<String> = sqlx::query_scalar(returns::SELECT_SUPPRESSED)
        .bind(source_system)
        .bind(source_id)
        .fetch_optional(&store.readers)
        .await
        .map_err(err())?;
    Ok(suppressed.map(|_| PriorOutcome::Suppressed))
}

/// [`prior_outcome`] for many records of one source system: three queries per 500 ids.
pub(crate) async fn prior_outcomes(
    store: &Store,
    source_system: &str,
    source_ids: &[&str],
) -> Result<std::collections::HashMap<String, PriorOutcome>, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("look up {} records of {source_system}", source_ids.len())
        })
    };
    let mut found = std::collections::HashMap::new();
    for chunk in source_ids.chunks(500) {
        // The most telling outcome first, as `prior_outcome` answers: a task, then a
        // return, then a suppression.
        for (table, key, outcome) in [
            ("task_reports", "task_id", None),
            (
                "department_returns",
                "event_id",
                Some(PriorOutcome::Returned),
            ),
            ("suppressions", "event_id", Some(PriorOutcome::Suppressed)),
        ] {
            // Each id looked up by both columns of the record key, in a subquery per id:
            // with `source_id IN (...)`, and with a join, PostgreSQL without fresh
            // statistics (autovacuum off, or a table grown since its last ANALYZE) took the
            // index for the source system alone and went through every record of the
            // system (180 ms a batch at 100,000 records).
            let mut q = crate::filter::SqlBuilder::new("WITH v(id) AS (VALUES ");
            q.push_rows(chunk, |q, id| {
                q.push("(").push_bind(*id).push(")");
            });
            q.push(&format!(
                ") SELECT v.id, (SELECT r.{key} FROM {table} r \
                 WHERE r.source_system = "
            ))
            .push_bind(source_system)
            .push(" AND r.source_id = v.id) FROM v");
            let (sql, args) = q.build().map_err(err())?;
            let rows: Vec<(String, Option<String>)> = sqlx::query_as_with(&sql, args)
                // Not kept prepared: the statement differs with the number of ids.
                .persistent(false)
                .fetch_all(&store.readers)
                .await
                .map_err(err())?;
            let rows = rows.into_iter().filter_map(|(id, v)| Some((id, v?)));
            for (source_id, value) in rows {
                let outcome = outcome
                    .clone()
                    .unwrap_or(PriorOutcome::Task { task_id: value });
                found.entry(source_id).or_insert(outcome);
            }
        }
    }
    Ok(found)
}

pub(crate) async fn open_tasks_near(
    store: &Store,
    q: &NearQuery,
) -> Result<Vec<OpenTaskNear>, StoreError> {
    let rows: Vec<NearRow> = sqlx::query_as(SELECT_NEAR)
        .bind(&q.category_group)
        .bind(q.occurred_since.timestamp_millis())
        .bind(q.occurred_until.timestamp_millis())
        .bind(q.min_lon)
        .bind(q.max_lon)
        .bind(q.min_lat)
        .bind(q.max_lat)
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("find open {} tasks nearby", q.category_group)
        }))?;
    rows.into_iter().map(NearRow::into_open_task).collect()
}

pub(crate) async fn link_report(
    store: &Store,
    task_id: &str,
    report: &Report,
) -> Result<LinkOutcome, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!(
                "link {}/{} to task {task_id}",
                report.source_system, report.source_id
            )
        })
    };
    let linked = insert_report(&store.writer, task_id, report)
        .await
        .map_err(err())?;
    if linked == 1 {
        return Ok(LinkOutcome::Linked);
    }
    let existing: String = sqlx::query_scalar(SELECT_REPORT_TASK)
        .bind(&report.source_system)
        .bind(&report.source_id)
        .fetch_one(&store.writer)
        .await
        .map_err(err())?;
    Ok(LinkOutcome::AlreadyLinked { task_id: existing })
}

pub(crate) async fn task_reports(store: &Store, task_id: &str) -> Result<Vec<Report>, StoreError> {
    let rows: Vec<ReportRow> = sqlx::query_as(SELECT_REPORTS)
        .bind(task_id)
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("read reports of task {task_id}")
        }))?;
    rows.into_iter().map(|r| r.into_report(task_id)).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReportRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    occurred_at: i64,
    linked_at: i64,
}

impl ReportRow {
    pub(crate) fn into_report(self, task_id: &str) -> Result<Report, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: task_id.to_owned(),
            column,
            reason,
        };
        Ok(Report {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "task_reports.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            occurred_at: millis(self.occurred_at)
                .ok_or_else(|| corrupt("task_reports.occurred_at", "out of range".into()))?,
            linked_at: millis(self.linked_at)
                .ok_or_else(|| corrupt("task_reports.linked_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NearRow {
    task_id: String,
    category_group: String,
    place_lon: f64,
    place_lat: f64,
    occurred_at: i64,
}

impl NearRow {
    pub(crate) fn into_open_task(self) -> Result<OpenTaskNear, StoreError> {
        let occurred_at = millis(self.occurred_at).ok_or_else(|| StoreError::Corrupt {
            task_id: self.task_id.clone(),
            column: "occurred_at",
            reason: "out of range".into(),
        })?;
        Ok(OpenTaskNear {
            task_id: self.task_id,
            category_group: self.category_group,
            lon: self.place_lon,
            lat: self.place_lat,
            occurred_at,
        })
    }
}

pub(crate) fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}
