//! Task events waiting to be relayed: written with the task change that caused them, read in
//! id order by each destination's relay. Writers take no lock for that order: on PostgreSQL
//! the relays number committed entries before they read ([`sequence`]), so an entry that
//! commits late is numbered late and never skipped.

use chrono::{DateTime, Utc};

use hub_schemas::event::Department;
use serde::Serialize;
use sqlx::AnyConnection;

use crate::store::Store;
use crate::StoreError;

pub use hub_cases::events::{EventReturned, TaskEvent};

/// One outbox entry.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Increasing in commit order: a destination delivers entries by ascending id. PostgreSQL
    /// numbers an entry when a relay first reads after it commits (migration 0008), SQLite
    /// when it is written.
    pub id: i64,
    pub department: Department,
    pub created_at: DateTime<Utc>,
    pub event: TaskEvent,
}

/// Where one destination's relay stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationState {
    pub destination: String,
    /// Every entry with an id up to this one has been delivered.
    pub delivered_up_to: i64,
    /// Failed attempts since the last success.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// No attempt before this time (backoff after a failure).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl DestinationState {
    pub fn new(destination: &str) -> Self {
        DestinationState {
            destination: destination.to_owned(),
            delivered_up_to: 0,
            attempts: 0,
            last_error: None,
            last_attempt_at: None,
            next_attempt_at: None,
        }
    }
}

pub(crate) fn to_payload(event: &TaskEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::InvalidTask {
        task_id: event.key().to_owned(),
        reason: format!("outbox event cannot be written as JSON: {e}"),
    })
}

/// An outbox row as read back.
#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    id: i64,
    department: String,
    payload: String,
    created_at: i64,
}

impl OutboxRow {
    pub(crate) fn into_event(self) -> Result<OutboxEvent, StoreError> {
        let corrupt = |reason: String| StoreError::CorruptOutbox {
            id: self.id,
            reason,
        };
        let department = Department::parse(&self.department)
            .ok_or_else(|| corrupt(format!("unknown department `{}`", self.department)))?;
        let event =
            serde_json::from_str(&self.payload).map_err(|e| corrupt(format!("payload: {e}")))?;
        let created_at = DateTime::from_timestamp_millis(self.created_at)
            .ok_or_else(|| corrupt(format!("created_at {} out of range", self.created_at)))?;
        Ok(OutboxEvent {
            id: self.id,
            department,
            created_at,
            event,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DestinationRow {
    destination: String,
    delivered_up_to: i64,
    attempts: i64,
    last_error: Option<String>,
    last_attempt_at: Option<i64>,
    next_attempt_at: Option<i64>,
}

impl From<DestinationRow> for DestinationState {
    fn from(r: DestinationRow) -> Self {
        DestinationState {
            destination: r.destination,
            delivered_up_to: r.delivered_up_to,
            attempts: r.attempts,
            last_error: r.last_error,
            last_attempt_at: r.last_attempt_at.and_then(DateTime::from_timestamp_millis),
            next_attempt_at: r.next_attempt_at.and_then(DateTime::from_timestamp_millis),
        }
    }
}

/// The payload is JSON: JSONB on PostgreSQL.
const INSERT: &str = "INSERT INTO outbox (task_id, department, kind, payload, created_at) \
     VALUES ($1, $2, $3, $4::jsonb, $5)";
/// A department receives the events of its own records and of the tasks its reports were
/// merged into. Binds after, department (or NULL for all), limit.
const SELECT_AFTER: &str = "SELECT id, department, payload::text AS payload, created_at \
     FROM outbox WHERE id > $1 AND ($2::text IS NULL OR department = $2 OR EXISTS (SELECT 1 \
     FROM task_reports r WHERE r.task_id = outbox.task_id AND r.department = $2)) ORDER BY id LIMIT $3";
const SELECT_HEAD: &str = "SELECT COALESCE(MAX(id), 0) FROM outbox";
const SELECT_DESTINATION: &str = "SELECT destination, delivered_up_to, attempts, last_error, \
     last_attempt_at, next_attempt_at FROM outbox_destinations WHERE destination = $1";
const SELECT_DESTINATIONS: &str = "SELECT destination, delivered_up_to, attempts, last_error, \
     last_attempt_at, next_attempt_at FROM outbox_destinations ORDER BY destination";
/// Take or renew the lease when it is free, ours, or expired. Binds destination, holder,
/// now, until.
const LEASE: &str = "INSERT INTO outbox_destinations (destination, lease_holder, lease_until) \
     VALUES ($1, $2, $4) ON CONFLICT (destination) DO UPDATE SET lease_holder = $2, lease_until = $4 \
     WHERE outbox_destinations.lease_holder IS NULL OR outbox_destinations.lease_holder = $2 \
     OR outbox_destinations.lease_until < $3";
/// Binds destination, holder, up_to, now. Only the lease holder moves the cursor.
const DELIVERED: &str = "UPDATE outbox_destinations SET delivered_up_to = $3, attempts = 0, \
     last_error = NULL, last_attempt_at = $4, next_attempt_at = NULL \
     WHERE destination = $1 AND lease_holder = $2 AND delivered_up_to < $3";
/// Binds destination, holder, error, now, next_attempt_at.
const FAILED: &str = "UPDATE outbox_destinations SET attempts = attempts + 1, last_error = $3, \
     last_attempt_at = $4, next_attempt_at = $5 WHERE destination = $1 AND lease_holder = $2";

/// Writes `event` to the outbox inside the caller's transaction. `task_id` is `None` for a returned event;
/// `err` names the caller's operation in a failure.
pub(crate) async fn insert(
    store: &Store,
    tx: &mut AnyConnection,
    task_id: Option<&str>,
    department: &str,
    event: &TaskEvent,
    at: DateTime<Utc>,
    err: impl FnOnce(sqlx::Error) -> StoreError,
) -> Result<(), StoreError> {
    sqlx::query(&store.sql(INSERT))
        .bind(task_id)
        .bind(department)
        .bind(event.kind())
        .bind(to_payload(event)?)
        .bind(at.timestamp_millis())
        .execute(tx)
        .await
        .map_err(err)?;
    Ok(())
}

/// An outbox entry to write.
pub(crate) struct NewEntry<'a> {
    pub task_id: Option<&'a str>,
    pub department: &'a str,
    pub event: &'a TaskEvent,
    pub at: DateTime<Utc>,
}

/// Several entries in multi-row statements, in order (their ids follow it).
pub(crate) async fn insert_many(
    store: &Store,
    tx: &mut AnyConnection,
    entries: &[NewEntry<'_>],
) -> Result<(), StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("write {} outbox events", entries.len())
        })
    };
    let rows = entries
        .iter()
        .map(|e| Ok((e, to_payload(e.event)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    for chunk in rows.chunks(store.rows_per_statement()) {
        let mut q = crate::filter::SqlBuilder::for_rows(
            store.dialect,
            "INSERT INTO outbox (task_id, department, kind, payload, created_at) VALUES ",
        );
        q.push_rows(chunk, |q, (e, payload)| {
            q.push("(")
                .push_bind(e.task_id)
                .push_bind_next(e.department)
                .push_bind_next(e.event.kind())
                .push_bind_next(payload.as_str())
                .push("::jsonb")
                .push_bind_next(e.at.timestamp_millis())
                .push(")");
        });
        let (sql, args) = q.build().map_err(err())?;
        sqlx::query_with(&store.sql(&sql), args)
            .persistent(store.keeps_row_statements())
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    Ok(())
}

/// [`insert`] for the event of a lifecycle transition or an alert on task `task_id`.
pub(crate) async fn insert_task_event(
    store: &Store,
    tx: &mut AnyConnection,
    task_id: &str,
    department: &str,
    event: &TaskEvent,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let err = StoreError::query(store.backend(), || {
        format!("write {} of task {task_id} to the outbox", event.kind())
    });
    insert(store, tx, Some(task_id), department, event, at, err).await
}

pub(crate) async fn outbox_after(
    store: &Store,
    after: i64,
    department: Option<Department>,
    limit: u32,
) -> Result<Vec<OutboxEvent>, StoreError> {
    sequence(store).await?;
    let rows: Vec<OutboxRow> = sqlx::query_as(&store.sql(SELECT_AFTER))
        .bind(after)
        .bind(department.map(|d| d.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("read outbox after {after}")
        }))?;
    rows.into_iter().map(OutboxRow::into_event).collect()
}

/// Numbers the entries committed since the last call, where the dialect numbers them at
/// relay time ([`crate::dialect::Dialect::outbox_sequencing`]).
async fn sequence(store: &Store) -> Result<(), StoreError> {
    let statements = store.dialect.outbox_sequencing();
    if statements.is_empty() {
        return Ok(());
    }
    let err = || StoreError::query(store.backend(), || "number new outbox entries".to_owned());
    let mut tx = store.writer.begin().await.map_err(err())?;
    for sql in statements {
        sqlx::query(sql).execute(&mut *tx).await.map_err(err())?;
    }
    tx.commit().await.map_err(err())
}

pub(crate) async fn outbox_head(store: &Store) -> Result<i64, StoreError> {
    sqlx::query_scalar(SELECT_HEAD)
        .fetch_one(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            "read the outbox head".to_owned()
        }))
}

pub(crate) async fn outbox_destination(
    store: &Store,
    destination: &str,
) -> Result<DestinationState, StoreError> {
    let row: Option<DestinationRow> = sqlx::query_as(SELECT_DESTINATION)
        .bind(destination)
        .fetch_optional(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("read outbox destination {destination}")
        }))?;
    Ok(row.map_or_else(|| DestinationState::new(destination), Into::into))
}

pub(crate) async fn outbox_destinations(
    store: &Store,
) -> Result<Vec<DestinationState>, StoreError> {
    let rows: Vec<DestinationRow> = sqlx::query_as(SELECT_DESTINATIONS)
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            "read outbox destinations".to_owned()
        }))?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(crate) async fn lease_destination(
    store: &Store,
    destination: &str,
    holder: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let taken = sqlx::query(LEASE)
        .bind(destination)
        .bind(holder)
        .bind(now.timestamp_millis())
        .bind(until.timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("lease outbox destination {destination}")
        }))?
        .rows_affected();
    Ok(taken == 1)
}

pub(crate) async fn outbox_delivered(
    store: &Store,
    destination: &str,
    holder: &str,
    up_to: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(DELIVERED)
        .bind(destination)
        .bind(holder)
        .bind(up_to)
        .bind(now.timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("record delivery to {destination}")
        }))?;
    Ok(())
}

pub(crate) async fn outbox_failed(
    store: &Store,
    destination: &str,
    holder: &str,
    error: &str,
    now: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(FAILED)
        .bind(destination)
        .bind(holder)
        .bind(error)
        .bind(now.timestamp_millis())
        .bind(next_attempt_at.timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("record failed delivery to {destination}")
        }))?;
    Ok(())
}
