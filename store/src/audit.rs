//! Proof that no one quietly rewrote a case history: checking every task's hash chain
//! (`history.rs`) and checkpointing the chains' heads.
//!
//! A chain alone shows an entry edited in place (its hash no longer matches) or deleted (a
//! gap in `seq`); someone who can write the database could still recompute a whole chain
//! after an edit. Checkpoints close that: each records the heads that moved since the one
//! before, chained to it by digest and signed (HMAC-SHA256) with a key the database never
//! sees (`HUB_AUDIT_KEY`); a recomputed chain no longer ends in the head a checkpoint
//! recorded, and a checkpoint rewritten to match no longer carries a valid signature.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::filter::SqlBuilder;
use crate::history::{hex, Entry};
use crate::store::Store;
use crate::StoreError;

/// Rows read per query while verifying: a page, so no connection is held for the whole walk.
const PAGE: i64 = 10_000;
/// Broken links a report lists (it counts them all).
const LISTED: usize = 100;

/// What [`crate::Audit::verify_history`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Tasks whose history was read.
    pub tasks: u64,
    /// History entries read.
    pub entries: u64,
    /// Entries written before the chain began (migration 0009): nothing to check them by.
    pub unchained: u64,
    /// Checkpoints read.
    pub checkpoints: u64,
    /// Checkpoints whose signature was checked against the key and held.
    pub signed_checkpoints: u64,
    /// Rules versions read (their chain is checked with the histories').
    pub rules_versions: u64,
    /// Rules activations read.
    pub rules_activations: u64,
    /// Checkpoints without a signature (written while the hub had no `HUB_AUDIT_KEY`): they
    /// show a chain rewritten without rewriting them, not one rewritten with them.
    pub unsigned_checkpoints: u64,
    /// The first broken links found, in task order, at most 100.
    pub broken: Vec<BrokenLink>,
    /// All the broken links found.
    pub broken_total: u64,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.broken_total == 0
    }

    pub(crate) fn broke(&mut self, link: BrokenLink) {
        self.broken_total += 1;
        if self.broken.len() < LISTED {
            self.broken.push(link);
        }
    }
}

/// Where the evidence no longer holds, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub at: Place,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A task's history entry (`seq`).
    Entry { task_id: String, seq: i64 },
    /// A task as a whole (its history is gone).
    Task { task_id: String },
    /// A checkpoint of the chains' heads.
    Checkpoint { id: i64 },
    /// A stored rules version (`seq`).
    RulesVersion { seq: i64 },
    /// An activation of a rules version (`seq`).
    RulesActivation { seq: i64 },
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Entry { task_id, seq } => write!(f, "task {task_id} entry {seq}"),
            Place::Task { task_id } => write!(f, "task {task_id}"),
            Place::Checkpoint { id } => write!(f, "checkpoint {id}"),
            Place::RulesVersion { seq } => write!(f, "rules version {seq}"),
            Place::RulesActivation { seq } => write!(f, "rules activation {seq}"),
        }
    }
}

/// A checkpoint [`crate::Audit::checkpoint_history`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: i64,
    /// Heads it recorded: the chains that moved since the checkpoint before.
    pub heads: u64,
    pub digest: String,
    pub signed: bool,
}

const LAST_CHECKPOINT: &str = "SELECT id, digest FROM audit_checkpoints ORDER BY id DESC LIMIT 1";
/// The head of every chain not recorded (at that entry or later) by a checkpoint yet.
const MOVED_HEADS: &str = "SELECT h.task_id, h.seq, h.hash FROM task_history h \
     WHERE h.hash IS NOT NULL \
     AND h.seq = (SELECT MAX(m.seq) FROM task_history m WHERE m.task_id = h.task_id) \
     AND NOT EXISTS (SELECT 1 FROM audit_heads a WHERE a.task_id = h.task_id AND a.seq >= h.seq) \
     ORDER BY h.task_id";
/// The rules versions' two chains, checkpointed beside the tasks' under these names (no
/// task id starts with `rules:`, and these sort after every task id, as the digest takes
/// the heads in `task_id` order).
const RULES_CHAINS: [(&str, &str); 2] = [
    ("rules:activations", "rules_activations"),
    ("rules:versions", "rules_versions"),
];
const INSERT_CHECKPOINT: &str = "INSERT INTO audit_checkpoints (id, prev_digest, at, heads, \
     digest, signature) VALUES ($1, $2, $3, $4, $5, $6)";
/// Followed by `(checkpoint_id, task_id, seq, hash)` rows.
const INSERT_HEADS: &str = "INSERT INTO audit_heads (checkpoint_id, task_id, seq, hash) VALUES ";

pub(crate) async fn checkpoint(
    store: &Store,
    key: Option<&[u8]>,
    at: DateTime<Utc>,
) -> Result<Option<Checkpoint>, StoreError> {
    let err = || StoreError::query(store.backend(), || "checkpoint the history chains".into());
    let mut tx = store.writer.begin().await.map_err(err())?;
    let last: Option<(i64, String)> = sqlx::query_as(LAST_CHECKPOINT)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err())?;
    let mut heads: Vec<(String, i64, String)> = sqlx::query_as(MOVED_HEADS)
        .fetch_all(&mut *tx)
        .await
        .map_err(err())?;
    for (chain, table) in RULES_CHAINS {
        // A chain cut short after its last checkpoint shows only if that head was recorded.
        let head: Option<(i64, String)> = sqlx::query_as(&format!(
            "SELECT seq, hash FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM audit_heads a \
             WHERE a.task_id = $1 AND a.seq >= t.seq) ORDER BY seq DESC LIMIT 1"
        ))
        .bind(chain)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err())?;
        if let Some((seq, hash)) = head {
            heads.push((chain.to_owned(), seq, hash));
        }
    }
    if heads.is_empty() {
        return Ok(None);
    }
    let (prev_id, prev_digest) = last.unwrap_or((0, String::new()));
    let id = prev_id + 1;
    let at = at.timestamp_millis();
    let digest = checkpoint_digest(id, &prev_digest, at, &heads);
    let signature = key.map(|key| sign(key, &digest));
    // Two processes checkpointing at once take the same id; the primary key refuses the
    // second, which tries again at its next turn.
    sqlx::query(INSERT_CHECKPOINT)
        .bind(id)
        .bind(&prev_digest)
        .bind(at)
        .bind(heads.len() as i64)
        .bind(&digest)
        .bind(signature.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(err())?;
    for chunk in heads.chunks(store.rows_per_statement()) {
        let mut q = SqlBuilder::for_rows(store.dialect, INSERT_HEADS);
        q.push_rows(chunk, |q, (task_id, seq, hash)| {
            q.push("(")
                .push_bind(id)
                .push_bind_next(task_id.as_str())
                .push_bind_next(*seq)
                .push_bind_next(hash.as_str())
                .push(")");
        });
        let (sql, args) = q.build().map_err(err())?;
        sqlx::query_with(&sql, args)
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    tx.commit().await.map_err(err())?;
    Ok(Some(Checkpoint {
        id,
        heads: heads.len() as u64,
        digest,
        signed: signature.is_some(),
    }))
}

/// SHA-256 (hex) over a version tag, the checkpoint's id, the digest of the one before, its
/// time and its heads in task order, each length-prefixed.
fn checkpoint_digest(
    id: i64,
    prev_digest: &str,
    at: i64,
    heads: &[(String, i64, String)],
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(b"hub.audit_checkpoint.v1");
    field(&id.to_be_bytes());
    field(prev_digest.as_bytes());
    field(&at.to_be_bytes());
    for (task_id, seq, hash) in heads {
        field(task_id.as_bytes());
        field(&seq.to_be_bytes());
        field(hash.as_bytes());
    }
    hex(&h.finalize())
}

fn sign(key: &[u8], digest: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(digest.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// One stored history row, with its place in the chain.
#[derive(sqlx::FromRow)]
struct StoredEntry {
    #[sqlx(flatten)]
    entry: Entry,
    prev_hash: Option<String>,
    hash: Option<String>,
}

const ENTRY_COLUMNS: &str = "SELECT task_id, seq, from_status, to_status, actor, note, at, \
     action, prev_hash, hash FROM task_history";

/// Where a walk along one task's chain is.
struct Walk {
    task_id: String,
    last_seq: i64,
    /// The last entry's hash; empty before the first hashed entry.
    last_hash: String,
    /// A hashed entry was seen: every later entry must be hashed too.
    chained: bool,
    /// A link broke: the rest of this chain follows a broken entry, so is not judged.
    broken: bool,
}

pub(crate) async fn verify(
    store: &Store,
    task_id: Option<&str>,
    key: Option<&[u8]>,
) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    verify_chains(store, task_id, &mut report).await?;
    verify_heads(store, task_id, &mut report).await?;
    verify_checkpoints(store, key, &mut report).await?;
    if task_id.is_none() {
        crate::rules_versions::verify(store, &mut report).await?;
    }
    Ok(report)
}

async fn verify_chains(
    store: &Store,
    only: Option<&str>,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    let err = || StoreError::query(store.backend(), || "read the history chains".into());
    let mut walk: Option<Walk> = None;
    let mut after: Option<(String, i64)> = None;
    loop {
        let mut q = SqlBuilder::new(ENTRY_COLUMNS);
        let mut and = " WHERE ";
        if let Some(task_id) = only {
            q.push(and).push("task_id = ").push_bind(task_id);
            and = " AND ";
        }
        if let Some((task_id, seq)) = &after {
            q.push(and)
                .push("(task_id, seq) > (")
                .push_bind(task_id.clone())
                .push(", ")
                .push_bind(*seq)
                .push(")");
        }
        q.push(" ORDER BY task_id, seq LIMIT ").push_bind(PAGE);
        let (sql, args) = q.build().map_err(err())?;
        let rows: Vec<StoredEntry> = sqlx::query_as_with(&sql, args)
            .fetch_all(&store.readers)
            .await
            .map_err(err())?;
        let full = rows.len() as i64 == PAGE;
        for row in rows {
            after = Some((row.entry.task_id.clone(), row.entry.seq));
            report.entries += 1;
            let same_task = walk
                .as_ref()
                .is_some_and(|w| w.task_id == row.entry.task_id);
            if !same_task {
                report.tasks += 1;
                walk = Some(Walk {
                    task_id: row.entry.task_id.clone(),
                    last_seq: 0,
                    last_hash: String::new(),
                    chained: false,
                    broken: false,
                });
            }
            let w = walk.as_mut().expect("set above");
            step(w, row, report);
        }
        if !full {
            break;
        }
    }
    if let Some(task_id) = only {
        if report.tasks == 0 {
            report.broke(BrokenLink {
                at: Place::Task {
                    task_id: task_id.to_owned(),
                },
                reason: "the task has no history entry".into(),
            });
        }
        return Ok(());
    }
    // Every task is created with its first entries: one without any lost them all.
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT t.task_id FROM tasks t WHERE NOT EXISTS \
         (SELECT 1 FROM task_history h WHERE h.task_id = t.task_id) ORDER BY t.task_id",
    )
    .fetch_all(&store.readers)
    .await
    .map_err(err())?;
    for task_id in orphans {
        report.broke(BrokenLink {
            at: Place::Task { task_id },
            reason: "the task has no history entry: its entries were deleted".into(),
        });
    }
    Ok(())
}

/// Judges one entry against the chain before it.
fn step(w: &mut Walk, row: StoredEntry, report: &mut AuditReport) {
    let seq = row.entry.seq;
    let expected = w.last_seq + 1;
    let prev_seq = std::mem::replace(&mut w.last_seq, seq);
    if w.broken {
        return;
    }
    let place = || Place::Entry {
        task_id: w.task_id.clone(),
        seq,
    };
    let reason = if seq != expected {
        Some(if expected == seq - 1 {
            format!("entry {expected} is missing (deleted)")
        } else {
            format!("entries {expected} to {} are missing (deleted)", seq - 1)
        })
    } else {
        match (&row.hash, &row.prev_hash) {
            (None, _) if w.chained => Some(format!(
                "the entry has no hash, though entry {prev_seq} before it has one"
            )),
            (None, _) => {
                report.unchained += 1;
                None
            }
            (Some(hash), prev) => {
                let prev = prev.as_deref().unwrap_or_default();
                if prev != w.last_hash {
                    Some(if seq == 1 {
                        "the first entry names an entry before it".to_owned()
                    } else {
                        format!(
                            "the entry does not follow entry {prev_seq}: its previous hash differs"
                        )
                    })
                } else if row.entry.hash(prev) != *hash {
                    Some("the entry's content does not match its hash: it was edited".to_owned())
                } else {
                    w.chained = true;
                    w.last_hash.clone_from(hash);
                    None
                }
            }
        }
    };
    if let Some(reason) = reason {
        w.broken = true;
        let at = place();
        report.broke(BrokenLink { at, reason });
    }
}

/// Every head a checkpoint recorded must still be in its chain, unchanged.
async fn verify_heads(
    store: &Store,
    only: Option<&str>,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    let err = || StoreError::query(store.backend(), || "compare the recorded heads".into());
    let mut q = SqlBuilder::new(
        "SELECT a.checkpoint_id, a.task_id, a.seq, h.hash FROM audit_heads a \
         LEFT JOIN task_history h ON h.task_id = a.task_id AND h.seq = a.seq \
         WHERE (h.hash IS NULL OR h.hash <> a.hash) AND a.task_id NOT LIKE 'rules:%'",
    );
    if let Some(task_id) = only {
        q.push(" AND a.task_id = ").push_bind(task_id);
    }
    q.push(" ORDER BY a.task_id, a.seq");
    let (sql, args) = q.build().map_err(err())?;
    let differ: Vec<(i64, String, i64, Option<String>)> = sqlx::query_as_with(&sql, args)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
    for (checkpoint, task_id, seq, now) in differ {
        report.broke(BrokenLink {
            at: Place::Entry { task_id, seq },
            reason: head_reason(checkpoint, now.is_some()),
        });
    }
    if only.is_some() {
        return Ok(());
    }
    for (chain, table) in RULES_CHAINS {
        let differ: Vec<(i64, i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT a.checkpoint_id, a.seq, t.hash FROM audit_heads a \
             LEFT JOIN {table} t ON t.seq = a.seq \
             WHERE a.task_id = $1 AND (t.hash IS NULL OR t.hash <> a.hash) ORDER BY a.seq"
        ))
        .bind(chain)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
        for (checkpoint, seq, now) in differ {
            let at = match chain {
                "rules:versions" => Place::RulesVersion { seq },
                _ => Place::RulesActivation { seq },
            };
            report.broke(BrokenLink {
                at,
                reason: head_reason(checkpoint, now.is_some()),
            });
        }
    }
    Ok(())
}

fn head_reason(checkpoint: i64, still_there: bool) -> String {
    if still_there {
        format!(
            "the entry is not the one checkpoint {checkpoint} recorded: the chain was rewritten"
        )
    } else {
        format!("the entry checkpoint {checkpoint} recorded is gone")
    }
}

/// The checkpoints follow each other from 1 with no gap, each digest matches its heads and
/// the digest before it, and (given the key) each signature holds.
async fn verify_checkpoints(
    store: &Store,
    key: Option<&[u8]>,
    report: &mut AuditReport,
) -> Result<(), StoreError> {
    let err = || StoreError::query(store.backend(), || "read the checkpoints".into());
    let checkpoints: Vec<(i64, String, i64, i64, String, Option<String>)> = sqlx::query_as(
        "SELECT id, prev_digest, at, heads, digest, signature FROM audit_checkpoints ORDER BY id",
    )
    .fetch_all(&store.readers)
    .await
    .map_err(err())?;
    let mut prev = (0i64, String::new());
    for (id, prev_digest, at, count, digest, signature) in checkpoints {
        report.checkpoints += 1;
        let heads: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT task_id, seq, hash FROM audit_heads WHERE checkpoint_id = $1 ORDER BY task_id",
        )
        .bind(id)
        .fetch_all(&store.readers)
        .await
        .map_err(err())?;
        let reason = if id != prev.0 + 1 {
            Some(format!(
                "checkpoints {} to {} are missing",
                prev.0 + 1,
                id - 1
            ))
        } else if prev_digest != prev.1 {
            Some(format!("it does not follow checkpoint {}", prev.0))
        } else if count != heads.len() as i64
            || checkpoint_digest(id, &prev_digest, at, &heads) != digest
        {
            Some("its heads do not match its digest: they were edited".into())
        } else {
            match (key, &signature) {
                (Some(key), Some(s)) if sign(key, &digest) == *s => {
                    report.signed_checkpoints += 1;
                    None
                }
                (Some(_), Some(_)) => Some("its signature does not hold with this key".into()),
                // A signature stripped to rewrite it: an unsigned one is only believable
                // before the hub was first given a key.
                (Some(_), None) if report.signed_checkpoints > 0 => {
                    Some("it is not signed, though checkpoints before it are".into())
                }
                (_, None) => {
                    report.unsigned_checkpoints += 1;
                    None
                }
                (None, Some(_)) => None,
            }
        };
        if let Some(reason) = reason {
            report.broke(BrokenLink {
                at: Place::Checkpoint { id },
                reason,
            });
        }
        prev = (id, digest);
    }
    Ok(())
}
