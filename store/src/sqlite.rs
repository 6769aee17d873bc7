//! The SQLite backend: one file, one writer connection, a few reader connections (WAL lets
//! readers run while the router writes).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use hub_router::task::{NewTask, StatusChange, Task};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::outbox::{self, DestinationRow, OutboxRow};
use crate::reports::{self, NearRow, ReportRow, ReturnRow};
use crate::rows::{self, HistoryRow, TaskRow};
use crate::workflow::{self, ClockRow, TaskHead, WorkflowRow};
use crate::{ApplyOutcome, ClockAlert, RaiseOutcome, StoredClock, WorkflowRecord};
use crate::{
    CreateOutcome, DepartmentReturn, DestinationState, EventReturned, LinkOutcome, NearQuery,
    OpenTaskNear, OutboxEvent, PriorOutcome, Report, StoreError, Suppression, TaskEvent,
    TaskFilter, TaskStore,
};
use chrono::DateTime;
use hub_router::workflow::{SlaClock, Transition};
use hub_schemas::event::Department;
use hub_schemas::task::TaskStatusChanged;

const BACKEND: &str = "sqlite";
/// Another process holding the write lock is waited for this long before a write fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READER_CONNECTIONS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const INSERT_TASK: &str = "INSERT INTO tasks (task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at, \
     category, category_group, priority, sla_policy, place_lon, place_lat) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33) \
     ON CONFLICT DO NOTHING";

const SELECT_TASKS: &str = "SELECT task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at, \
     category, category_group, priority, sla_policy, place_lon, place_lat \
     FROM tasks";

const INSERT_OUTBOX: &str =
    "INSERT INTO outbox (task_id, department, kind, payload, created_at) VALUES ($1, $2, $3, $4, $5)";

const INSERT_RETURN: &str = "INSERT INTO department_returns (event_id, source_system, source_id, department, \
     category_code, community_code, reason, explanation, returned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT DO NOTHING";
const SELECT_RETURNS: &str = "SELECT event_id, source_system, source_id, department, category_code, community_code, \
     reason, explanation, returned_at FROM department_returns WHERE ($1 IS NULL OR department = $1) \
     ORDER BY returned_at DESC, event_id LIMIT $2";

const INSERT_HISTORY: &str =
    "INSERT INTO task_history (task_id, seq, from_status, to_status, actor, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) struct SqliteStore {
    /// The only connection that writes, so writers in this process queue here instead of
    /// contending for SQLite's lock.
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        let (path, query) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|rest| rest.split_once('?').unwrap_or((rest, "")))
            .ok_or_else(|| StoreError::InvalidUrl {
                reason: "a SQLite URL starts with `sqlite://`".to_owned(),
            })?;
        if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
            return Err(StoreError::InvalidUrl {
                reason: format!(
                    "`{url}` is not a database file: the task store must outlive the process, give a path such as sqlite://data/hub.db"
                ),
            });
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
            reason: format!("`{url}`: {e}"),
        })?;
        let target = options.get_filename().display().to_string();
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            // Blocking, but once at start-up before anything else runs.
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = options
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL, not NORMAL: a committed task must survive a power cut, since the broker
            // offset is committed right after it.
            .synchronous(SqliteSynchronous::Full);
        let connect_err = |source| StoreError::Connect {
            backend: BACKEND,
            target: target.clone(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone().create_if_missing(true))
            .await
            .map_err(connect_err)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                target: target.clone(),
                source,
            })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READER_CONNECTIONS)
            .connect_with(options.read_only(true))
            .await
            .map_err(connect_err)?;
        Ok(SqliteStore { writer, readers })
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create_task(
        &self,
        task: &NewTask,
        clocks: &[SlaClock],
    ) -> Result<CreateOutcome, StoreError> {
        let row = TaskRow::new(task)?;
        let history = rows::initial_history(task);
        let operation = || {
            format!(
                "create task {} for {}/{}",
                task.task_id, task.source_system, task.source_id
            )
        };
        let db_err = || StoreError::query(BACKEND, operation);

        let mut tx = self.writer.begin().await.map_err(db_err())?;
        let inserted = row
            .bind_insert(sqlx::query(INSERT_TASK))
            .execute(&mut *tx)
            .await
            .map_err(db_err())?
            .rows_affected();
        if inserted == 0 {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT task_id FROM tasks WHERE source_system = $1 AND source_id = $2",
            )
            .bind(&task.source_system)
            .bind(&task.source_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err())?;
            return match existing {
                Some(task_id) => Ok(CreateOutcome::AlreadyExists { task_id }),
                None => Err(StoreError::Inconsistent {
                    backend: BACKEND,
                    operation: operation(),
                    reason: "its task id is already taken by a task from another source record"
                        .to_owned(),
                }),
            };
        }
        for entry in &history {
            entry
                .bind_insert(&task.task_id, sqlx::query(INSERT_HISTORY))
                .execute(&mut *tx)
                .await
                .map_err(db_err())?;
        }
        upsert_clocks(&mut tx, &task.task_id, clocks).await?;
        sqlx::query(workflow::SET_DUE)
            .bind(&task.task_id)
            .bind(workflow::earliest_deadline(clocks).map(|d| d.timestamp_millis()))
            .execute(&mut *tx)
            .await
            .map_err(db_err())?;
        sqlx::query(reports::INSERT_REPORT)
            .bind(&task.task_id)
            .bind(&task.event_id)
            .bind(&task.source_system)
            .bind(&task.source_id)
            .bind(task.department.as_str())
            .bind(task.occurred_at.timestamp_millis())
            .bind(task.created_at.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(db_err())?;
        for event in outbox::events_for_new_task(task, &history) {
            sqlx::query(INSERT_OUTBOX)
                .bind(&task.task_id)
                .bind(task.department.as_str())
                .bind(event.kind())
                .bind(outbox::to_payload(&event)?)
                .bind(task.created_at.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(db_err())?;
        }
        tx.commit().await.map_err(db_err())?;
        Ok(CreateOutcome::Created {
            task_id: task.task_id.clone(),
        })
    }

    async fn get_task(&self, task_id: &str) -> Result<Option<Task>, StoreError> {
        let row: Option<TaskRow> = sqlx::query_as(&format!("{SELECT_TASKS} WHERE task_id = $1"))
            .bind(task_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || format!("get task {task_id}")))?;
        row.map(TaskRow::into_task).transpose()
    }

    async fn task_history(&self, task_id: &str) -> Result<Vec<StatusChange>, StoreError> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT seq, from_status, to_status, actor, note, at FROM task_history WHERE task_id = $1 ORDER BY seq",
        )
        .bind(task_id)
        .fetch_all(&self.readers)
        .await
        .map_err(StoreError::query(BACKEND, || format!("read history of task {task_id}")))?;
        rows.into_iter()
            .map(|row| row.into_change(task_id))
            .collect()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(SELECT_TASKS);
        rows::push_filter(&mut query, filter);
        rows::push_page(&mut query, filter);
        let rows: Vec<TaskRow> = query
            .build_query_as()
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("list tasks ({filter:?})")
            }))?;
        rows.into_iter().map(TaskRow::into_task).collect()
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM tasks");
        rows::push_filter(&mut query, filter);
        let count: i64 = query
            .build_query_scalar()
            .fetch_one(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("count tasks ({filter:?})")
            }))?;
        // COUNT(*) is never negative.
        Ok(count.unsigned_abs())
    }

    async fn load_cursor(&self, connector: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT cursor FROM connector_cursors WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("load cursor of connector {connector}")
            }))
    }

    async fn save_cursor(&self, connector: &str, cursor: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO connector_cursors (connector, cursor, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (connector) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        )
        .bind(connector)
        .bind(cursor)
        .bind(Utc::now().timestamp_millis())
        .execute(&self.writer)
        .await
        .map_err(StoreError::query(BACKEND, || format!("save cursor of connector {connector}")))?;
        Ok(())
    }

    async fn prior_outcome(
        &self,
        source_system: &str,
        source_id: &str,
    ) -> Result<Option<PriorOutcome>, StoreError> {
        let err = || StoreError::query(BACKEND, || format!("look up {source_system}/{source_id}"));
        let task: Option<String> = sqlx::query_scalar(reports::SELECT_REPORT_TASK)
            .bind(source_system)
            .bind(source_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(err())?;
        if let Some(task_id) = task {
            return Ok(Some(PriorOutcome::Task { task_id }));
        }
        let returned: Option<String> = sqlx::query_scalar(reports::SELECT_RETURNED)
            .bind(source_system)
            .bind(source_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(err())?;
        if returned.is_some() {
            return Ok(Some(PriorOutcome::Returned));
        }
        let suppressed: Option<String> = sqlx::query_scalar(reports::SELECT_SUPPRESSED)
            .bind(source_system)
            .bind(source_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(err())?;
        Ok(suppressed.map(|_| PriorOutcome::Suppressed))
    }

    async fn record_suppression(&self, s: &Suppression) -> Result<bool, StoreError> {
        let inserted = sqlx::query(reports::INSERT_SUPPRESSION)
            .bind(&s.event_id)
            .bind(&s.source_system)
            .bind(&s.source_id)
            .bind(s.department.as_str())
            .bind(&s.category_code)
            .bind(s.community_code.as_deref())
            .bind(&s.rule_id)
            .bind(&s.rules_version)
            .bind(s.suppressed_at.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!(
                    "record the suppression of {}/{}",
                    s.source_system, s.source_id
                )
            }))?
            .rows_affected();
        Ok(inserted > 0)
    }

    async fn list_suppressions(
        &self,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<Suppression>, StoreError> {
        let rows: Vec<reports::SuppressionRow> = sqlx::query_as(reports::SELECT_SUPPRESSIONS)
            .bind(before.map_or(i64::MAX, |t| t.timestamp_millis()))
            .bind(i64::from(limit.min(1000)))
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                "list suppressed events".to_owned()
            }))?;
        rows.into_iter()
            .map(reports::SuppressionRow::into_suppression)
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                "answer a health check".to_owned()
            }))?;
        Ok(())
    }

    async fn open_tasks_near(&self, q: &NearQuery) -> Result<Vec<OpenTaskNear>, StoreError> {
        let rows: Vec<NearRow> = sqlx::query_as(reports::SELECT_NEAR)
            .bind(&q.category_group)
            .bind(q.occurred_since.timestamp_millis())
            .bind(q.occurred_until.timestamp_millis())
            .bind(q.min_lon)
            .bind(q.max_lon)
            .bind(q.min_lat)
            .bind(q.max_lat)
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("find open {} tasks nearby", q.category_group)
            }))?;
        rows.into_iter().map(NearRow::into_open_task).collect()
    }

    async fn link_report(&self, task_id: &str, report: &Report) -> Result<LinkOutcome, StoreError> {
        let err = || {
            StoreError::query(BACKEND, || {
                format!(
                    "link {}/{} to task {task_id}",
                    report.source_system, report.source_id
                )
            })
        };
        let linked = sqlx::query(reports::INSERT_REPORT)
            .bind(task_id)
            .bind(&report.event_id)
            .bind(&report.source_system)
            .bind(&report.source_id)
            .bind(report.department.as_str())
            .bind(report.occurred_at.timestamp_millis())
            .bind(report.linked_at.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(err())?
            .rows_affected();
        if linked == 1 {
            return Ok(LinkOutcome::Linked);
        }
        let existing: String = sqlx::query_scalar(reports::SELECT_REPORT_TASK)
            .bind(&report.source_system)
            .bind(&report.source_id)
            .fetch_one(&self.writer)
            .await
            .map_err(err())?;
        Ok(LinkOutcome::AlreadyLinked { task_id: existing })
    }

    async fn task_reports(&self, task_id: &str) -> Result<Vec<Report>, StoreError> {
        let rows: Vec<ReportRow> = sqlx::query_as(reports::SELECT_REPORTS)
            .bind(task_id)
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("read reports of task {task_id}")
            }))?;
        rows.into_iter().map(|r| r.into_report(task_id)).collect()
    }

    async fn record_return(&self, ret: &DepartmentReturn) -> Result<bool, StoreError> {
        let err = || {
            StoreError::query(BACKEND, || {
                format!(
                    "return {}/{} to its department",
                    ret.source_system, ret.source_id
                )
            })
        };
        let explanation =
            serde_json::to_string(&ret.explanation).map_err(|e| StoreError::InvalidTask {
                task_id: ret.event_id.clone(),
                reason: format!("explanation cannot be written as JSON: {e}"),
            })?;
        let event = TaskEvent::EventReturned(EventReturned {
            event_id: ret.event_id.clone(),
            source_system: ret.source_system.clone(),
            source_id: ret.source_id.clone(),
            department: ret.department,
            category_code: ret.category_code.clone(),
            community_code: ret.community_code.clone(),
            reason: ret.reason.clone(),
            returned_at: ret.returned_at,
        });
        let mut tx = self.writer.begin().await.map_err(err())?;
        let inserted = sqlx::query(INSERT_RETURN)
            .bind(&ret.event_id)
            .bind(&ret.source_system)
            .bind(&ret.source_id)
            .bind(ret.department.as_str())
            .bind(&ret.category_code)
            .bind(ret.community_code.as_deref())
            .bind(&ret.reason)
            .bind(explanation)
            .bind(ret.returned_at.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(err())?
            .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query(INSERT_OUTBOX)
            .bind(None::<&str>)
            .bind(ret.department.as_str())
            .bind(event.kind())
            .bind(outbox::to_payload(&event)?)
            .bind(ret.returned_at.timestamp_millis())
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        tx.commit().await.map_err(err())?;
        Ok(true)
    }

    async fn list_returns(
        &self,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<DepartmentReturn>, StoreError> {
        let rows: Vec<ReturnRow> = sqlx::query_as(SELECT_RETURNS)
            .bind(department.map(|d| d.as_str()))
            .bind(i64::from(limit.min(1000)))
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                "list returned events".to_owned()
            }))?;
        rows.into_iter().map(ReturnRow::into_return).collect()
    }

    async fn outbox_after(
        &self,
        after: i64,
        department: Option<Department>,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let rows: Vec<OutboxRow> = sqlx::query_as(outbox::SELECT_AFTER)
            .bind(after)
            .bind(department.map(|d| d.as_str()))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("read outbox after {after}")
            }))?;
        rows.into_iter().map(OutboxRow::into_event).collect()
    }

    async fn outbox_destination(&self, destination: &str) -> Result<DestinationState, StoreError> {
        let row: Option<DestinationRow> = sqlx::query_as(outbox::SELECT_DESTINATION)
            .bind(destination)
            .fetch_optional(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("read outbox destination {destination}")
            }))?;
        Ok(row.map_or_else(|| DestinationState::new(destination), Into::into))
    }

    async fn outbox_destinations(&self) -> Result<Vec<DestinationState>, StoreError> {
        let rows: Vec<DestinationRow> = sqlx::query_as(outbox::SELECT_DESTINATIONS)
            .fetch_all(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                "read outbox destinations".to_owned()
            }))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn lease_destination(
        &self,
        destination: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(outbox::LEASE)
            .bind(destination)
            .bind(holder)
            .bind(now.timestamp_millis())
            .bind(until.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("lease outbox destination {destination}")
            }))?
            .rows_affected();
        Ok(taken == 1)
    }

    async fn outbox_delivered(
        &self,
        destination: &str,
        holder: &str,
        up_to: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(outbox::DELIVERED)
            .bind(destination)
            .bind(holder)
            .bind(up_to)
            .bind(now.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("record delivery to {destination}")
            }))?;
        Ok(())
    }

    async fn outbox_failed(
        &self,
        destination: &str,
        holder: &str,
        error: &str,
        now: DateTime<Utc>,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(outbox::FAILED)
            .bind(destination)
            .bind(holder)
            .bind(error)
            .bind(now.timestamp_millis())
            .bind(next_attempt_at.timestamp_millis())
            .execute(&self.writer)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("record failed delivery to {destination}")
            }))?;
        Ok(())
    }

    async fn workflow(&self, task_id: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        let row: Option<WorkflowRow> = sqlx::query_as(workflow::SELECT_WORKFLOW)
            .bind(task_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                format!("read workflow of task {task_id}")
            }))?;
        row.map(WorkflowRow::into_record).transpose()
    }

    async fn apply_transition(
        &self,
        task_id: &str,
        expected_version: u64,
        t: &Transition,
        clocks: &[SlaClock],
        due_at: Option<DateTime<Utc>>,
    ) -> Result<ApplyOutcome, StoreError> {
        let err = || {
            StoreError::query(BACKEND, || {
                format!("apply {} to task {task_id}", t.action.kind())
            })
        };
        let mut tx = self.writer.begin().await.map_err(err())?;
        let head: Option<TaskHead> = sqlx::query_as(workflow::SELECT_HEAD)
            .bind(task_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err())?;
        let Some(head) = head else {
            return Ok(ApplyOutcome::NotFound);
        };
        let change = TransitionWrite {
            task_id,
            head: &head,
            expected_version,
            t,
            clocks,
            due_at,
        };
        let Some(seq) = change.write(&mut tx).await? else {
            return Ok(ApplyOutcome::Conflict {
                current_version: head.workflow_version.unsigned_abs(),
            });
        };
        tx.commit().await.map_err(err())?;
        Ok(ApplyOutcome::Applied { seq })
    }

    async fn task_clocks(&self, task_id: &str) -> Result<Vec<StoredClock>, StoreError> {
        let rows: Vec<ClockRow> =
            sqlx::query_as(&workflow::select_clocks(CONCAT, workflow::TASK_CLOCKS))
                .bind(task_id)
                .fetch_all(&self.readers)
                .await
                .map_err(StoreError::query(BACKEND, || {
                    format!("read clocks of task {task_id}")
                }))?;
        rows.into_iter().map(ClockRow::into_clock).collect()
    }

    async fn clock(&self, clock_id: i64) -> Result<Option<StoredClock>, StoreError> {
        let row: Option<ClockRow> =
            sqlx::query_as(&workflow::select_clocks(CONCAT, workflow::CLOCK_BY_ID))
                .bind(clock_id)
                .fetch_optional(&self.readers)
                .await
                .map_err(StoreError::query(BACKEND, || {
                    format!("read clock {clock_id}")
                }))?;
        row.map(ClockRow::into_clock).transpose()
    }

    async fn open_clocks(&self, after: i64, limit: u32) -> Result<Vec<StoredClock>, StoreError> {
        let rows: Vec<ClockRow> =
            sqlx::query_as(&workflow::select_clocks(CONCAT, workflow::OPEN_CLOCKS))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await
                .map_err(StoreError::query(BACKEND, || {
                    format!("read open clocks after {after}")
                }))?;
        rows.into_iter().map(ClockRow::into_clock).collect()
    }

    async fn clocks_changed(
        &self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<StoredClock>, StoreError> {
        let rows: Vec<ClockRow> =
            sqlx::query_as(&workflow::select_clocks(CONCAT, workflow::CHANGED_CLOCKS))
                .bind(since.timestamp_millis())
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await
                .map_err(StoreError::query(BACKEND, || {
                    format!("read clocks changed since {since}")
                }))?;
        rows.into_iter().map(ClockRow::into_clock).collect()
    }

    async fn outbox_head(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM outbox")
            .fetch_one(&self.readers)
            .await
            .map_err(StoreError::query(BACKEND, || {
                "read the outbox head".to_owned()
            }))
    }

    async fn raise_alert(&self, alert: &ClockAlert) -> Result<RaiseOutcome, StoreError> {
        let err = || {
            StoreError::query(BACKEND, || {
                format!("raise {} on clock {}", alert.kind, alert.clock_id)
            })
        };
        let mut tx = self.writer.begin().await.map_err(err())?;
        let claimed = sqlx::query(workflow::CLAIM_ALERT)
            .bind(alert.clock_id)
            .bind(&alert.kind)
            .bind(alert.due_at.timestamp_millis())
            .bind(alert.raised_at.timestamp_millis())
            .bind(&alert.raised_by)
            .execute(&mut *tx)
            .await
            .map_err(err())?
            .rows_affected();
        if claimed == 0 {
            return Ok(RaiseOutcome::AlreadyRaised);
        }
        let head: TaskHead = sqlx::query_as(workflow::SELECT_HEAD)
            .bind(&alert.task_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err())?;
        let seq: i64 = sqlx::query_scalar(workflow::NEXT_SEQ)
            .bind(&alert.task_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err())?;
        sqlx::query(workflow::INSERT_HISTORY_ACTION)
            .bind(&alert.task_id)
            .bind(seq)
            .bind(&head.status)
            .bind(&head.status)
            .bind(&alert.raised_by)
            .bind(&alert.note)
            .bind(alert.raised_at.timestamp_millis())
            .bind(workflow::alert_action(alert))
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        if alert.is_breach() {
            sqlx::query(workflow::MARK_BREACHED)
                .bind(&alert.task_id)
                .bind(alert.raised_at.timestamp_millis())
                .execute(&mut *tx)
                .await
                .map_err(err())?;
        }
        let event = TaskEvent::TaskStatusChanged(TaskStatusChanged {
            task_id: alert.task_id.clone(),
            seq,
            source_system: head.source_system.clone(),
            source_id: head.source_id.clone(),
            from_status: Some(head.status.clone()),
            to_status: head.status.clone(),
            actor: alert.raised_by.clone(),
            note: Some(alert.note.clone()),
            changed_at: alert.raised_at,
        });
        insert_outbox(
            &mut tx,
            &alert.task_id,
            &head.department,
            &event,
            alert.raised_at,
        )
        .await?;
        if let Some(then) = &alert.then {
            let change = TransitionWrite {
                task_id: &alert.task_id,
                head: &head,
                expected_version: then.expected_version,
                t: &then.transition,
                clocks: &then.clocks,
                due_at: then.due_at,
            };
            if change.write(&mut tx).await?.is_none() {
                // Rolled back with the claim: the alert is raised with its transition or not.
                return Ok(RaiseOutcome::Stale {
                    current_version: head.workflow_version.unsigned_abs(),
                });
            }
        }
        tx.commit().await.map_err(err())?;
        Ok(RaiseOutcome::Raised)
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}

/// The dialect's string aggregate, for the alerts of a clock.
const CONCAT: &str = "group_concat";

async fn insert_outbox(
    tx: &mut SqliteConnection,
    task_id: &str,
    department: &str,
    event: &TaskEvent,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(INSERT_OUTBOX)
        .bind(task_id)
        .bind(department)
        .bind(event.kind())
        .bind(outbox::to_payload(event)?)
        .bind(at.timestamp_millis())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, || {
            format!("write {} of task {task_id} to the outbox", event.kind())
        }))?;
    Ok(())
}

/// Writes clocks (upserted by kind and round) and the task's earliest open deadline.
async fn upsert_clocks(
    tx: &mut SqliteConnection,
    task_id: &str,
    clocks: &[SlaClock],
) -> Result<(), StoreError> {
    let err = || StoreError::query(BACKEND, || format!("write clocks of task {task_id}"));
    let changed_at = Utc::now().timestamp_millis();
    for clock in clocks {
        sqlx::query(workflow::UPSERT_CLOCK)
            .bind(task_id)
            .bind(workflow::clock_key(clock)?)
            .bind(workflow::to_json(task_id, "clock", clock)?)
            .bind(i64::from(clock.is_open()))
            .bind(clock.deadline().map(|d| d.timestamp_millis()))
            .bind(changed_at)
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    Ok(())
}

/// A lifecycle transition to write inside a transaction.
struct TransitionWrite<'a> {
    task_id: &'a str,
    head: &'a TaskHead,
    expected_version: u64,
    t: &'a Transition,
    clocks: &'a [SlaClock],
    due_at: Option<DateTime<Utc>>,
}

impl TransitionWrite<'_> {
    /// The new status and state (only if the version is still the expected one), a history
    /// entry, the clocks and the outbox event. `None` when the version moved: the caller
    /// drops the transaction.
    async fn write(&self, tx: &mut SqliteConnection) -> Result<Option<i64>, StoreError> {
        let (task_id, t) = (self.task_id, self.t);
        let err = || {
            StoreError::query(BACKEND, || {
                format!("apply {} to task {task_id}", t.action.kind())
            })
        };
        let state = workflow::to_json(task_id, "workflow state", &t.state)?;
        let action = workflow::to_json(task_id, "action", &t.action)?;
        let updated = sqlx::query(workflow::UPDATE_WORKFLOW)
            .bind(task_id)
            .bind(t.to.as_str())
            .bind(&state)
            .bind(i64::try_from(t.state.version).unwrap_or(i64::MAX))
            .bind(t.at.timestamp_millis())
            .bind(self.due_at.map(|d| d.timestamp_millis()))
            .bind(i64::try_from(self.expected_version).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(err())?
            .rows_affected();
        if updated == 0 {
            return Ok(None);
        }
        let seq: i64 = sqlx::query_scalar(workflow::NEXT_SEQ)
            .bind(task_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(err())?;
        let actor = workflow::actor_name(t);
        let note = workflow::history_note(t);
        sqlx::query(workflow::INSERT_HISTORY_ACTION)
            .bind(task_id)
            .bind(seq)
            .bind(t.from.as_str())
            .bind(t.to.as_str())
            .bind(&actor)
            .bind(&note)
            .bind(t.at.timestamp_millis())
            .bind(&action)
            .execute(&mut *tx)
            .await
            .map_err(err())?;
        upsert_clocks(tx, task_id, self.clocks).await?;
        let event = TaskEvent::TaskStatusChanged(TaskStatusChanged {
            task_id: task_id.to_owned(),
            seq,
            source_system: self.head.source_system.clone(),
            source_id: self.head.source_id.clone(),
            from_status: Some(t.from.as_str().to_owned()),
            to_status: t.to.as_str().to_owned(),
            actor,
            note: Some(note),
            changed_at: t.at,
        });
        insert_outbox(tx, task_id, &self.head.department, &event, t.at).await?;
        Ok(Some(seq))
    }
}
