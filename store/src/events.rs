//! The event log: every event the routing pipeline accepted, as it was routed (without its
//! reporter), for replaying a candidate rules version over a period. Written once per
//! event, whatever the pipeline then made of it; pruned after the retention.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hub_schemas::event::CivicEvent;
use sqlx::AnyConnection;

use crate::filter::SqlBuilder;
use crate::store::Store;
use crate::StoreError;

/// Followed by `(source_system, source_id, received_at, event)` rows.
const INSERT: &str = "INSERT INTO event_log (source_system, source_id, received_at, event) VALUES ";
const ON_CONFLICT: &str = " ON CONFLICT (source_system, source_id) DO NOTHING";

/// Where a read of the log stopped: the last event's time and source record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    pub received_at: DateTime<Utc>,
    pub source_system: String,
    pub source_id: String,
}

pub(crate) async fn record(store: &Store, events: &[&CivicEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let err = || StoreError::query(store.backend(), || "record accepted events".into());
    let mut conn = store.writer.acquire().await.map_err(err())?;
    record_in(store, &mut conn, events).await
}

/// [`record`] on a connection (or in a transaction) the caller holds.
pub(crate) async fn record_in(
    store: &Store,
    conn: &mut AnyConnection,
    events: &[&CivicEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let err = || StoreError::query(store.backend(), || "record accepted events".into());
    let rows: Vec<(String, String, i64, String)> = events
        .iter()
        .map(|e| {
            let kept = CivicEvent {
                reporter: None,
                ..(*e).clone()
            };
            (
                e.source_system.clone(),
                e.source_id.clone(),
                e.received_at.timestamp_millis(),
                serde_json::to_string(&kept).expect("an event is JSON"),
            )
        })
        .collect();
    for chunk in rows.chunks(store.rows_per_statement()) {
        let mut q = SqlBuilder::for_rows(store.dialect, INSERT);
        q.push_rows(chunk, |q, (system, id, at, json)| {
            q.push("(")
                .push_bind(system.as_str())
                .push_bind_next(id.as_str())
                .push_bind_next(*at)
                .push_bind_next(json.as_str())
                .push(")");
        });
        q.push(ON_CONFLICT);
        let (sql, args) = q.build().map_err(err())?;
        sqlx::query_with(&sql, args)
            .persistent(store.keeps_row_statements())
            .execute(&mut *conn)
            .await
            .map_err(err())?;
    }
    Ok(())
}

/// Events received in `[from, to)`, in time order, after `after`, at most `limit`.
pub(crate) async fn between(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<&EventCursor>,
    limit: u32,
) -> Result<Vec<CivicEvent>, StoreError> {
    let err = || StoreError::query(store.backend(), || "read the event log".into());
    let mut q = SqlBuilder::new("SELECT event FROM event_log WHERE received_at < ");
    q.push_bind(to.timestamp_millis());
    match after {
        Some(c) => {
            q.push(" AND (received_at, source_system, source_id) > (")
                .push_bind(c.received_at.timestamp_millis())
                .push(", ")
                .push_bind(c.source_system.clone())
                .push(", ")
                .push_bind(c.source_id.clone())
                .push(")");
        }
        None => {
            q.push(" AND received_at >= ")
                .push_bind(from.timestamp_millis());
        }
    }
    q.push(" ORDER BY received_at, source_system, source_id LIMIT ")
        .push_bind(i64::from(limit.max(1)));
    let (sql, args) = q.build().map_err(err())?;
    let rows: Vec<String> = sqlx::query_scalar_with(&sql, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    rows.iter().map(|json| parse(store, json)).collect()
}

/// When a task was first signed for and last resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub signed_for_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

pub(crate) async fn handled_times(
    store: &Store,
    task_ids: &[&str],
) -> Result<HashMap<String, Handled>, StoreError> {
    let err = || StoreError::query(store.backend(), || "read when tasks were handled".into());
    let mut out = HashMap::new();
    for chunk in task_ids.chunks(500) {
        let mut q = SqlBuilder::new(
            "SELECT task_id, signed_for_at, resolved_at FROM case_facts \
             WHERE (signed_for_at IS NOT NULL OR resolved_at IS NOT NULL) AND task_id IN (",
        );
        for (n, id) in chunk.iter().enumerate() {
            if n == 0 {
                q.push_bind(*id);
            } else {
                q.push_bind_next(*id);
            }
        }
        q.push(")");
        let (sql, args) = q.build().map_err(err())?;
        let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as_with(&sql, args)
            // Not kept prepared: the statement differs with the number of ids.
            .persistent(false)
            .fetch_all(&store.readers)
            .await
            .map_err(err())?;
        for (id, signed, resolved) in rows {
            let at = |ms: Option<i64>| ms.and_then(DateTime::from_timestamp_millis);
            out.insert(
                id,
                Handled {
                    signed_for_at: at(signed),
                    resolved_at: at(resolved),
                },
            );
        }
    }
    Ok(out)
}

/// The logged event of one source record.
pub(crate) async fn one(
    store: &Store,
    source_system: &str,
    source_id: &str,
) -> Result<Option<CivicEvent>, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("read the logged event of {source_system}/{source_id}")
        })
    };
    let row: Option<String> = sqlx::query_scalar(
        "SELECT event FROM event_log WHERE source_system = $1 AND source_id = $2",
    )
    .bind(source_system)
    .bind(source_id)
    .fetch_optional(&store.readers)
    .await
    .map_err(err())?;
    row.map(|json| parse(store, &json)).transpose()
}

fn parse(store: &Store, json: &str) -> Result<CivicEvent, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Inconsistent {
        backend: store.backend(),
        operation: "read the event log".into(),
        reason: format!("a logged event is not an event: {e}"),
    })
}

/// Forgets events received before `before`; how many.
pub(crate) async fn prune(store: &Store, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM event_log WHERE received_at < $1")
        .bind(before.timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            "prune the event log".into()
        }))?;
    Ok(done.rows_affected())
}
