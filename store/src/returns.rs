//! Departmental records that became no task: events a community's admission list did not
//! admit, sent back to their department (with an outbox event), and events a routing rule
//! suppressed.

use chrono::{DateTime, Utc};
use hub_router::explanation::Explanation;
use hub_schemas::event::Department;
use serde::{Deserialize, Serialize};

use crate::outbox::{self, EventReturned, TaskEvent};
use crate::reports::millis;
use crate::store::Store;
use crate::StoreError;

/// An event a community's admission list did not admit, back in its department's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentReturn {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub community_code: Option<String>,
    pub reason: String,
    pub explanation: Explanation,
    pub returned_at: DateTime<Utc>,
}

/// An event a routing rule suppressed: no task, but a recorded outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    pub event_id: String,
    pub source_system: String,
    pub source_id: String,
    pub department: Department,
    pub category_code: String,
    pub community_code: Option<String>,
    pub rule_id: String,
    pub rules_version: String,
    pub suppressed_at: DateTime<Utc>,
}

/// The explanation is JSON: JSONB on PostgreSQL.
const INSERT_RETURN: &str = "INSERT INTO department_returns (event_id, source_system, \
     source_id, department, category_code, community_code, reason, explanation, returned_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9) ON CONFLICT DO NOTHING";
/// Binds department (or NULL for all), limit.
const SELECT_RETURNS: &str = "SELECT event_id, source_system, source_id, department, \
     category_code, community_code, reason, explanation::text AS explanation, returned_at \
     FROM department_returns WHERE ($1::text IS NULL OR department = $1) \
     ORDER BY returned_at DESC, event_id LIMIT $2";
pub(crate) const SELECT_RETURNED: &str =
    "SELECT event_id FROM department_returns WHERE source_system = $1 AND source_id = $2";
const INSERT_SUPPRESSION: &str = "INSERT INTO suppressions (event_id, source_system, \
     source_id, department, category_code, community_code, rule_id, rules_version, suppressed_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING";
/// Binds: before (epoch ms, exclusive), limit.
const SELECT_SUPPRESSIONS: &str = "SELECT event_id, source_system, source_id, department, \
     category_code, community_code, rule_id, rules_version, suppressed_at FROM suppressions \
     WHERE suppressed_at < $1 ORDER BY suppressed_at DESC, event_id LIMIT $2";
pub(crate) const SELECT_SUPPRESSED: &str =
    "SELECT event_id FROM suppressions WHERE source_system = $1 AND source_id = $2";

pub(crate) async fn record_return(
    store: &Store,
    ret: &DepartmentReturn,
) -> Result<bool, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
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
    let mut tx = store.writer.begin().await.map_err(err())?;
    let inserted = sqlx::query(&store.sql(INSERT_RETURN))
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
    let department = ret.department.as_str();
    outbox::insert(
        store,
        &mut tx,
        None,
        department,
        &event,
        ret.returned_at,
        err(),
    )
    .await?;
    tx.commit().await.map_err(err())?;
    Ok(true)
}

pub(crate) async fn list_returns(
    store: &Store,
    department: Option<Department>,
    limit: u32,
) -> Result<Vec<DepartmentReturn>, StoreError> {
    let rows: Vec<ReturnRow> = sqlx::query_as(&store.sql(SELECT_RETURNS))
        .bind(department.map(|d| d.as_str()))
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            "list returned events".to_owned()
        }))?;
    rows.into_iter().map(ReturnRow::into_return).collect()
}

pub(crate) async fn record_suppression(store: &Store, s: &Suppression) -> Result<bool, StoreError> {
    let inserted = sqlx::query(INSERT_SUPPRESSION)
        .bind(&s.event_id)
        .bind(&s.source_system)
        .bind(&s.source_id)
        .bind(s.department.as_str())
        .bind(&s.category_code)
        .bind(s.community_code.as_deref())
        .bind(&s.rule_id)
        .bind(&s.rules_version)
        .bind(s.suppressed_at.timestamp_millis())
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!(
                "record the suppression of {}/{}",
                s.source_system, s.source_id
            )
        }))?
        .rows_affected();
    Ok(inserted > 0)
}

pub(crate) async fn list_suppressions(
    store: &Store,
    before: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<Vec<Suppression>, StoreError> {
    let rows: Vec<SuppressionRow> = sqlx::query_as(SELECT_SUPPRESSIONS)
        .bind(before.map_or(i64::MAX, |t| t.timestamp_millis()))
        .bind(i64::from(limit.min(1000)))
        .fetch_all(&store.readers)
        .await
        .map_err(StoreError::query(store.backend(), || {
            "list suppressed events".to_owned()
        }))?;
    rows.into_iter()
        .map(SuppressionRow::into_suppression)
        .collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReturnRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    category_code: String,
    community_code: Option<String>,
    reason: String,
    explanation: String,
    returned_at: i64,
}

impl ReturnRow {
    pub(crate) fn into_return(self) -> Result<DepartmentReturn, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: format!("(returned event {})", self.event_id),
            column,
            reason,
        };
        Ok(DepartmentReturn {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "department_returns.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            explanation: serde_json::from_str(&self.explanation)
                .map_err(|e| corrupt("department_returns.explanation", e.to_string()))?,
            returned_at: millis(self.returned_at)
                .ok_or_else(|| corrupt("department_returns.returned_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
            category_code: self.category_code,
            community_code: self.community_code,
            reason: self.reason,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SuppressionRow {
    event_id: String,
    source_system: String,
    source_id: String,
    department: String,
    category_code: String,
    community_code: Option<String>,
    rule_id: String,
    rules_version: String,
    suppressed_at: i64,
}

impl SuppressionRow {
    pub(crate) fn into_suppression(self) -> Result<Suppression, StoreError> {
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            task_id: format!("(suppressed event {})", self.event_id),
            column,
            reason,
        };
        Ok(Suppression {
            department: Department::parse(&self.department).ok_or_else(|| {
                corrupt(
                    "suppressions.department",
                    format!("unknown department `{}`", self.department),
                )
            })?,
            suppressed_at: millis(self.suppressed_at)
                .ok_or_else(|| corrupt("suppressions.suppressed_at", "out of range".into()))?,
            event_id: self.event_id,
            source_system: self.source_system,
            source_id: self.source_id,
            category_code: self.category_code,
            community_code: self.community_code,
            rule_id: self.rule_id,
            rules_version: self.rules_version,
        })
    }
}
