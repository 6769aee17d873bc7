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
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::{self, HistoryRow, TaskRow};
use crate::{CreateOutcome, StoreError, TaskFilter, TaskStore};

const BACKEND: &str = "sqlite";
/// Another process holding the write lock is waited for this long before a write fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const READER_CONNECTIONS: u32 = 4;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const INSERT_TASK: &str = "INSERT INTO tasks (task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20, $21, $22, $23, $24, $25, $26, $27) \
     ON CONFLICT DO NOTHING";

const SELECT_TASKS: &str = "SELECT task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at \
     FROM tasks";

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
    async fn create_task(&self, task: &NewTask) -> Result<CreateOutcome, StoreError> {
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

    fn backend(&self) -> &'static str {
        BACKEND
    }
}
