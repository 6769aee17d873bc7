//! A task's history as a hash chain: each entry's hash covers its content and the hash of
//! the entry before it, so an entry edited, inserted or deleted in the database afterwards
//! no longer matches the entries after it (`audit.rs` checks the chains and checkpoints
//! their heads). Entries written before the chain began (migration 0009) have no hash.

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use crate::error::StoreError;
use crate::filter::SqlBuilder;
use crate::store::Store;

/// Followed by `(task_id, seq, from_status, to_status, actor, note, at, action, prev_hash,
/// hash)` rows.
pub(crate) const INSERT_ENTRIES: &str = "INSERT INTO task_history (task_id, seq, from_status, \
     to_status, actor, note, at, action, prev_hash, hash) VALUES ";

const INSERT_ENTRY: &str = "INSERT INTO task_history (task_id, seq, from_status, to_status, \
     actor, note, at, action, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The last entry of a task: the next one's `seq` and `prev_hash` come from it.
const SELECT_LAST: &str = "SELECT seq, hash FROM task_history WHERE task_id = $1 \
     ORDER BY seq DESC LIMIT 1";

/// One history entry as it is stored, the task id included: what its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct Entry {
    pub task_id: String,
    pub seq: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub note: Option<String>,
    pub at: i64,
    /// The lifecycle action as JSON; none for the router's opening entries.
    pub action: Option<String>,
}

impl Entry {
    /// The entry's hash after `prev_hash` (empty for a task's first entry), in lowercase hex:
    /// SHA-256 over the bytes `hub.task_history.v1`, then for each of task_id, seq,
    /// from_status, to_status, actor, note, at, action and prev_hash a 0 byte for NULL or a
    /// 1 byte, the value's length as 8 bytes big-endian and the value (text as UTF-8,
    /// integers as 8 bytes big-endian). Every field is delimited, so no two different
    /// entries hash the same bytes (`"ab","c"` against `"a","bc"`; NULL against empty), and
    /// anyone can check a chain from this description alone.
    pub(crate) fn hash(&self, prev_hash: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"hub.task_history.v1");
        let mut field = |value: Option<&[u8]>| match value {
            None => h.update([0u8]),
            Some(bytes) => {
                h.update([1u8]);
                h.update((bytes.len() as u64).to_be_bytes());
                h.update(bytes);
            }
        };
        field(Some(self.task_id.as_bytes()));
        field(Some(&self.seq.to_be_bytes()));
        field(self.from_status.as_deref().map(str::as_bytes));
        field(Some(self.to_status.as_bytes()));
        field(Some(self.actor.as_bytes()));
        field(self.note.as_deref().map(str::as_bytes));
        field(Some(&self.at.to_be_bytes()));
        field(self.action.as_deref().map(str::as_bytes));
        field(Some(prev_hash.as_bytes()));
        hex(&h.finalize())
    }
}

/// An entry with its place in the chain, ready to insert.
#[derive(Debug)]
pub(crate) struct Chained {
    pub entry: Entry,
    pub prev_hash: String,
    pub hash: String,
}

impl Chained {
    /// Appends the row to a multi-row [`INSERT_ENTRIES`].
    pub(crate) fn push_values<'q>(&'q self, q: &mut SqlBuilder<'q>) {
        let e = &self.entry;
        q.push("(")
            .push_bind(e.task_id.as_str())
            .push_bind_next(e.seq)
            .push_bind_next(e.from_status.as_deref())
            .push_bind_next(e.to_status.as_str())
            .push_bind_next(e.actor.as_str())
            .push_bind_next(e.note.as_deref())
            .push_bind_next(e.at)
            .push_bind_next(e.action.as_deref())
            .push_bind_next(self.prev_hash.as_str())
            .push_bind_next(self.hash.as_str())
            .push(")");
    }
}

/// Chains the entries of one new task (its first entries, in order).
pub(crate) fn chain_new(entries: impl IntoIterator<Item = Entry>) -> Vec<Chained> {
    let mut prev = String::new();
    entries
        .into_iter()
        .map(|entry| {
            let hash = entry.hash(&prev);
            let prev_hash = std::mem::replace(&mut prev, hash.clone());
            Chained {
                entry,
                prev_hash,
                hash,
            }
        })
        .collect()
}

/// Appends `entry` to its task's chain inside `tx`, numbered after the task's last entry
/// (its own `seq` is ignored); returns that `seq`. Two writers appending to one task at once
/// take the same `seq`, and the primary key (task_id, seq) refuses the second: the chain
/// never forks.
pub(crate) async fn append(
    store: &Store,
    tx: &mut AnyConnection,
    mut entry: Entry,
) -> Result<i64, StoreError> {
    let task_id = entry.task_id.clone();
    let err = || {
        let task_id = task_id.clone();
        StoreError::query(store.backend(), move || {
            format!("append to the history of task {task_id}")
        })
    };
    let last: Option<(i64, Option<String>)> = sqlx::query_as(SELECT_LAST)
        .bind(task_id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(err())?;
    let (seq, prev_hash) = last.map_or((1, String::new()), |(seq, hash)| {
        (seq + 1, hash.unwrap_or_default())
    });
    entry.seq = seq;
    let hash = entry.hash(&prev_hash);
    sqlx::query(INSERT_ENTRY)
        .bind(entry.task_id)
        .bind(seq)
        .bind(entry.from_status)
        .bind(entry.to_status)
        .bind(entry.actor)
        .bind(entry.note)
        .bind(entry.at)
        .bind(entry.action)
        .bind(prev_hash)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .map_err(err())?;
    Ok(seq)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, note: Option<&str>) -> Entry {
        Entry {
            task_id: "t-1".into(),
            seq,
            from_status: None,
            to_status: "dispatched".into(),
            actor: "router".into(),
            note: note.map(str::to_owned),
            at: 1_700_000_000_000,
            action: None,
        }
    }

    #[test]
    fn each_hash_depends_on_the_content_and_the_entry_before() {
        let chain = chain_new([entry(1, None), entry(2, Some("派遣"))]);
        assert_eq!(chain[0].prev_hash, "");
        assert_eq!(chain[1].prev_hash, chain[0].hash);
        assert_eq!(chain[1].hash, entry(2, Some("派遣")).hash(&chain[0].hash));
        assert_ne!(chain[1].hash, entry(2, Some("派遣")).hash(""));
        assert_ne!(
            entry(2, Some("派遣")).hash(""),
            entry(2, Some("派遣 ")).hash("")
        );
        assert_eq!(chain[0].hash.len(), 64);
    }

    #[test]
    fn null_and_empty_and_shifted_text_hash_apart() {
        assert_ne!(entry(1, None).hash(""), entry(1, Some("")).hash(""));
        let mut a = entry(1, Some("bc"));
        a.actor = "a".into();
        let mut b = entry(1, Some("c"));
        b.actor = "ab".into();
        assert_ne!(a.hash(""), b.hash(""));
    }
}
