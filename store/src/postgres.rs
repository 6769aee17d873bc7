//! The PostgreSQL backend, for several hub processes sharing one database. Idempotent task
//! creation rests on the unique (source_system, source_id) index, so it holds across
//! processes; migrations take PostgreSQL's advisory lock, so processes may start together.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::Utc;
use hub_router::task::{NewTask, StatusChange, Task};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use crate::rows::{self, HistoryRow, TaskRow};
use crate::{CreateOutcome, StoreError, TaskFilter, TaskStore};

const BACKEND: &str = "postgres";
const MAX_CONNECTIONS: u32 = 10;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

// JSON travels as text both ways: cast to JSONB on the way in, back to text on the way out.
const INSERT_TASK: &str = "INSERT INTO tasks (task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers, location, explanation, rules_version, occurred_at, received_at, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
     $20::jsonb, $21::jsonb, $22::jsonb, $23, $24, $25, $26, $27) \
     ON CONFLICT DO NOTHING";

const SELECT_TASKS: &str = "SELECT task_id, event_id, source_system, source_id, department, \
     category_code, category_name, description, status, district_code, street_code, community_code, \
     grid_code, place_level, place_method, matched_area, lead_unit_id, lead_unit_role, lead_unit_name, \
     co_handlers::text AS co_handlers, location::text AS location, explanation::text AS explanation, \
     rules_version, occurred_at, received_at, created_at, updated_at \
     FROM tasks";

const INSERT_HISTORY: &str =
    "INSERT INTO task_history (task_id, seq, from_status, to_status, actor, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(crate) struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub(crate) async fn open(url: &str) -> Result<Self, StoreError> {
        // sqlx's parse errors do not echo the URL, which may hold a password.
        let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::InvalidUrl {
            reason: format!("PostgreSQL URL: {e}"),
        })?;
        // host:port/database names the server without the credentials.
        let target = format!(
            "{}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                backend: BACKEND,
                target: target.clone(),
                source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                backend: BACKEND,
                target,
                source,
            })?;
        Ok(PostgresStore { pool })
    }
}

#[async_trait]
impl TaskStore for PostgresStore {
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

        let mut tx = self.pool.begin().await.map_err(db_err())?;
        // A concurrent insert of the same source record makes this wait for that transaction
        // and then do nothing, so exactly one caller sees a row inserted. No conflict target:
        // with one, a race on the task id (the other unique index) would fail instead.
        let inserted = row
            .bind_insert(sqlx::query(INSERT_TASK))
            .execute(&mut *tx)
            .await
            .map_err(db_err())?
            .rows_affected();
        if inserted == 0 {
            // A new statement under READ COMMITTED: sees the row the winner committed.
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
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, || format!("get task {task_id}")))?;
        row.map(TaskRow::into_task).transpose()
    }

    async fn task_history(&self, task_id: &str) -> Result<Vec<StatusChange>, StoreError> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT seq, from_status, to_status, actor, note, at FROM task_history WHERE task_id = $1 ORDER BY seq",
        )
        .bind(task_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, || format!("read history of task {task_id}")))?;
        rows.into_iter()
            .map(|row| row.into_change(task_id))
            .collect()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(SELECT_TASKS);
        rows::push_filter(&mut query, filter);
        rows::push_page(&mut query, filter);
        let rows: Vec<TaskRow> =
            query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::query(BACKEND, || {
                    format!("list tasks ({filter:?})")
                }))?;
        rows.into_iter().map(TaskRow::into_task).collect()
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> Result<u64, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT COUNT(*) FROM tasks");
        rows::push_filter(&mut query, filter);
        let count: i64 = query
            .build_query_scalar()
            .fetch_one(&self.pool)
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
            .fetch_optional(&self.pool)
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
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, || format!("save cursor of connector {connector}")))?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }
}
