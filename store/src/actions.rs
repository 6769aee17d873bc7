//! The trail of what accounts did through the API and the console: one row per
//! state-changing request, kept for as long as the database is, only ever added to.

use chrono::{DateTime, Utc};

use crate::filter::SqlBuilder;
use crate::store::Store;
use crate::StoreError;

/// One action an account took (or tried): who, as what, did what to what, when, from where,
/// and what the hub answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// Given by the store, counting up; 0 in a record not yet stored.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The account's name; empty for a refused sign-in (no account was recognised).
    pub actor: String,
    /// `administrator`, `street`, `community`, `department`, or empty.
    pub role: String,
    /// `api` or `console`.
    pub via: String,
    /// What was done: `task.<action>` (e.g. `task.sign_for`), `sign_in`, `sign_in_refused`,
    /// or the route (`POST /api/v1/deadletters/replay`).
    pub action: String,
    /// What it was done to: a task id, a dead-letter source; empty when nothing in
    /// particular.
    pub target: String,
    /// The HTTP status the hub answered: 2xx done, 4xx refused.
    pub outcome: u16,
    /// The client's address, empty when unknown.
    pub source: String,
    /// Why it was refused (the answer's error), or what it did (a count).
    pub detail: String,
}

/// Which actions to read: `from <= at < to`, one actor, after an id (for paging); oldest
/// first (newest first with `newest_first`), at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub after_id: Option<i64>,
    pub limit: u32,
    pub newest_first: bool,
}

impl ActionRecord {
    /// The header of [`ActionRecord::csv_row`].
    pub const CSV_HEADER: &'static str = "id,at,actor,role,via,action,target,outcome,source,detail";

    /// The record as a CSV line ([`hub_schemas::csv`]: quoted, formulas defused).
    pub fn csv_row(&self) -> String {
        let at = self.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (id, outcome) = (self.id.to_string(), self.outcome.to_string());
        hub_schemas::csv::line(&[
            id.as_str(),
            at.as_str(),
            &self.actor,
            &self.role,
            &self.via,
            &self.action,
            &self.target,
            outcome.as_str(),
            &self.source,
            &self.detail,
        ])
    }
}

const INSERT: &str = "INSERT INTO audit_actions (at, actor, role, via, action, target, outcome, \
     source, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const SELECT: &str = "SELECT id, at, actor, role, via, action, target, outcome, source, detail \
     FROM audit_actions WHERE 1 = 1";

type Row = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
);

pub(crate) async fn record(store: &Store, r: &ActionRecord) -> Result<(), StoreError> {
    sqlx::query(INSERT)
        .bind(r.at.timestamp_millis())
        .bind(&r.actor)
        .bind(&r.role)
        .bind(&r.via)
        .bind(&r.action)
        .bind(&r.target)
        .bind(i64::from(r.outcome))
        .bind(&r.source)
        .bind(&r.detail)
        .execute(&store.writer)
        .await
        .map_err(StoreError::query(store.backend(), || {
            format!("record the action {} of {:?}", r.action, r.actor)
        }))?;
    Ok(())
}

pub(crate) async fn list(store: &Store, q: &ActionQuery) -> Result<Vec<ActionRecord>, StoreError> {
    let mut sql = SqlBuilder::new(SELECT);
    if let Some(from) = q.from {
        sql.push(" AND at >= ").push_bind(from.timestamp_millis());
    }
    if let Some(to) = q.to {
        sql.push(" AND at < ").push_bind(to.timestamp_millis());
    }
    if let Some(actor) = &q.actor {
        sql.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(after) = q.after_id {
        sql.push(" AND id > ").push_bind(after);
    }
    sql.push(if q.newest_first {
        " ORDER BY id DESC LIMIT "
    } else {
        " ORDER BY id LIMIT "
    })
    .push_bind(i64::from(q.limit.max(1)));
    let err = || StoreError::query(store.backend(), || "read the action trail".into());
    let (text, args) = sql.build().map_err(err())?;
    let rows: Vec<Row> = sqlx::query_as_with(&text, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    Ok(rows
        .into_iter()
        .map(
            |(id, at, actor, role, via, action, target, outcome, source, detail)| ActionRecord {
                id,
                at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
                actor,
                role,
                via,
                action,
                target,
                outcome: u16::try_from(outcome).unwrap_or(0),
                source,
                detail,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let r = ActionRecord {
            id: 7,
            at: DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            actor: "=HYPERLINK(\"x\")".into(),
            role: "street".into(),
            via: "api".into(),
            action: "task.sign_for".into(),
            target: "t-1".into(),
            outcome: 409,
            source: "127.0.0.1".into(),
            detail: "a, b\nc".into(),
        };
        assert_eq!(
            r.csv_row(),
            "7,2023-11-14T22:13:20.123Z,\"'=HYPERLINK(\"\"x\"\")\",street,api,task.sign_for,t-1,409,127.0.0.1,\"a, b\nc\""
        );
    }
}
