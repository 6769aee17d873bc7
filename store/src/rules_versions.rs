//! Rules versions: each routing configuration published, stored whole and never changed, and
//! the activations that say which one routes (the last). Both are hash chains like the task
//! histories (`history.rs`): each row's hash covers its content and the row before, so an
//! edit or a deletion in the database shows in `hub audit verify` ([`verify`]).
//!
//! The store does not judge a configuration: the hub checks and tests it before it publishes
//! or rolls back, and reads the active one back to route with it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::audit::{AuditReport, BrokenLink, Place};
use crate::history::hex;
use crate::store::Store;
use crate::StoreError;

/// A rules version as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesVersion {
    /// 1, 2, 3, ... in the order versions were stored.
    pub seq: i64,
    /// `r-…`, the digest of its files: what every task routed with it records.
    pub version: String,
    pub author: String,
    pub at: DateTime<Utc>,
    pub message: String,
    /// Against the version that was active when it was stored (all of it, for the first).
    pub diff: String,
    /// The files by path inside the routing folder (empty in a listing).
    pub files: BTreeMap<String, String>,
}

/// One activation: from `at`, `version` routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesActivation {
    pub seq: i64,
    pub version: String,
    /// `publish` or `rollback`.
    pub action: String,
    pub author: String,
    pub at: DateTime<Utc>,
    pub message: String,
}

/// Who activates a version, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activating {
    pub action: String,
    pub author: String,
    pub at: DateTime<Utc>,
    pub message: String,
}

fn hash_of(fields: &[&[u8]], prev_hash: &str, tag: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(tag);
    for f in fields.iter().copied().chain([prev_hash.as_bytes()]) {
        h.update((f.len() as u64).to_be_bytes());
        h.update(f);
    }
    hex(&h.finalize())
}

fn files_json(files: &BTreeMap<String, String>) -> String {
    serde_json::to_string(files).expect("a map of strings is JSON")
}

/// SHA-256 (hex) over a tag, every column but the hash, each length-prefixed.
fn version_hash(v: &RulesVersion, files: &str, prev_hash: &str) -> String {
    hash_of(
        &[
            &v.seq.to_be_bytes(),
            v.version.as_bytes(),
            v.author.as_bytes(),
            &v.at.timestamp_millis().to_be_bytes(),
            v.message.as_bytes(),
            files.as_bytes(),
            v.diff.as_bytes(),
        ],
        prev_hash,
        b"hub.rules_version.v1",
    )
}

fn activation_hash(a: &RulesActivation, prev_hash: &str) -> String {
    hash_of(
        &[
            &a.seq.to_be_bytes(),
            a.version.as_bytes(),
            a.action.as_bytes(),
            a.author.as_bytes(),
            &a.at.timestamp_millis().to_be_bytes(),
            a.message.as_bytes(),
        ],
        prev_hash,
        b"hub.rules_activation.v1",
    )
}

const LAST_VERSION: &str = "SELECT seq, hash FROM rules_versions ORDER BY seq DESC LIMIT 1";
const LAST_ACTIVATION: &str = "SELECT seq, hash FROM rules_activations ORDER BY seq DESC LIMIT 1";
const INSERT_VERSION: &str = "INSERT INTO rules_versions (seq, version, author, at, message, \
     files, diff, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const INSERT_ACTIVATION: &str = "INSERT INTO rules_activations (seq, version, action, author, \
     at, message, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const ACTIVATION_COLUMNS: &str =
    "SELECT seq, version, action, author, at, message FROM rules_activations";
const VERSION_COLUMNS: &str = "SELECT seq, version, author, at, message, diff";

type ActivationRow = (i64, String, String, String, i64, String);
type VersionRow = (i64, String, String, i64, String, String);

fn activation_of((seq, version, action, author, at, message): ActivationRow) -> RulesActivation {
    RulesActivation {
        seq,
        version,
        action,
        author,
        at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
        message,
    }
}

fn version_of(
    (seq, version, author, at, message, diff): VersionRow,
    files: BTreeMap<String, String>,
) -> RulesVersion {
    RulesVersion {
        seq,
        version,
        author,
        at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
        message,
        diff,
        files,
    }
}

/// Stores `version` unless a version with its digest is stored already, then activates it
/// unless it is active already. Two publishers at once take the same `seq`; the primary key
/// refuses the second, whose error says so.
pub(crate) async fn publish(
    store: &Store,
    version: &RulesVersion,
    activating: &Activating,
) -> Result<RulesActivation, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("publish rules version {}", version.version)
        })
    };
    let mut tx = store.writer.begin().await.map_err(err())?;
    let known: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM rules_versions WHERE version = $1")
            .bind(&version.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err())?;
    if known.is_none() {
        let last: Option<(i64, String)> = sqlx::query_as(LAST_VERSION)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err())?;
        let (prev_seq, prev_hash) = last.unwrap_or((0, String::new()));
        let stored = RulesVersion {
            seq: prev_seq + 1,
            ..version.clone()
        };
        let files = files_json(&stored.files);
        let hash = version_hash(&stored, &files, &prev_hash);
        sqlx::query(INSERT_VERSION)
            .bind(stored.seq)
            .bind(&stored.version)
            .bind(&stored.author)
            .bind(stored.at.timestamp_millis())
            .bind(&stored.message)
            .bind(&files)
            .bind(&stored.diff)
            .bind(&prev_hash)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(err())?;
    }
    // Publishing the version that routes changes nothing: two processes starting at once
    // both publish the shipped folder, and the second must not add an activation.
    let last: Option<ActivationRow> =
        sqlx::query_as(&format!("{ACTIVATION_COLUMNS} ORDER BY seq DESC LIMIT 1"))
            .fetch_optional(&mut *tx)
            .await
            .map_err(err())?;
    if let Some(last) = last.map(activation_of) {
        if last.version == version.version {
            tx.commit().await.map_err(err())?;
            return Ok(last);
        }
    }
    let activation = activate_in(&mut tx, store, &version.version, activating).await?;
    tx.commit().await.map_err(err())?;
    Ok(activation)
}

/// Activates a stored version; `None` when no version `version` is stored.
pub(crate) async fn activate(
    store: &Store,
    version: &str,
    activating: &Activating,
) -> Result<Option<RulesActivation>, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("activate rules version {version}")
        })
    };
    let mut tx = store.writer.begin().await.map_err(err())?;
    let known: Option<i64> =
        sqlx::query_scalar("SELECT seq FROM rules_versions WHERE version = $1")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err())?;
    if known.is_none() {
        return Ok(None);
    }
    let activation = activate_in(&mut tx, store, version, activating).await?;
    tx.commit().await.map_err(err())?;
    Ok(Some(activation))
}

async fn activate_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    version: &str,
    activating: &Activating,
) -> Result<RulesActivation, StoreError> {
    let err = || {
        StoreError::query(store.backend(), || {
            format!("activate rules version {version}")
        })
    };
    let last: Option<(i64, String)> = sqlx::query_as(LAST_ACTIVATION)
        .fetch_optional(&mut **tx)
        .await
        .map_err(err())?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, String::new()));
    let a = RulesActivation {
        seq: prev_seq + 1,
        version: version.to_owned(),
        action: activating.action.clone(),
        author: activating.author.clone(),
        at: activating.at,
        message: activating.message.clone(),
    };
    let hash = activation_hash(&a, &prev_hash);
    sqlx::query(INSERT_ACTIVATION)
        .bind(a.seq)
        .bind(&a.version)
        .bind(&a.action)
        .bind(&a.author)
        .bind(a.at.timestamp_millis())
        .bind(&a.message)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut **tx)
        .await
        .map_err(err())?;
    Ok(a)
}

/// The last activations, newest first (the first is the version that routes).
pub(crate) async fn activations(
    store: &Store,
    limit: u32,
) -> Result<Vec<RulesActivation>, StoreError> {
    let rows: Vec<ActivationRow> =
        sqlx::query_as(&format!("{ACTIVATION_COLUMNS} ORDER BY seq DESC LIMIT $1"))
            .bind(i64::from(limit.max(1)))
            .fetch_all(&store.readers)
            .await
            .map_err(StoreError::query(store.backend(), || {
                "read the rules activations".into()
            }))?;
    Ok(rows.into_iter().map(activation_of).collect())
}

/// One stored version with its files.
pub(crate) async fn version(
    store: &Store,
    version: &str,
) -> Result<Option<RulesVersion>, StoreError> {
    let err = || StoreError::query(store.backend(), || format!("read rules version {version}"));
    let row: Option<(i64, String, String, i64, String, String, String)> = sqlx::query_as(&format!(
        "{VERSION_COLUMNS}, files FROM rules_versions WHERE version = $1"
    ))
    .bind(version)
    .fetch_optional(&store.readers)
    .await
    .map_err(err())?;
    let Some((seq, v, author, at, message, diff, files)) = row else {
        return Ok(None);
    };
    let files: BTreeMap<String, String> =
        serde_json::from_str(&files).map_err(|e| StoreError::Inconsistent {
            backend: store.backend(),
            operation: format!("read rules version {version}"),
            reason: format!("its files are not JSON: {e}"),
        })?;
    Ok(Some(version_of((seq, v, author, at, message, diff), files)))
}

/// Every stored version, oldest first, without their files.
pub(crate) async fn versions(store: &Store) -> Result<Vec<RulesVersion>, StoreError> {
    let rows: Vec<VersionRow> = sqlx::query_as(&format!(
        "{VERSION_COLUMNS} FROM rules_versions ORDER BY seq"
    ))
    .fetch_all(&store.readers)
    .await
    .map_err(StoreError::query(store.backend(), || {
        "read the rules versions".into()
    }))?;
    Ok(rows
        .into_iter()
        .map(|r| version_of(r, BTreeMap::new()))
        .collect())
}

/// Checks both chains: `seq` from 1 with no gap, each row following the one before, each
/// row's content matching its hash, each version's files matching its digest.
pub(crate) async fn verify(store: &Store, report: &mut AuditReport) -> Result<(), StoreError> {
    let err = || StoreError::query(store.backend(), || "read the rules versions".into());
    type StoredVersion = (
        i64,
        String,
        String,
        i64,
        String,
        String,
        String,
        String,
        String,
    );
    let rows: Vec<StoredVersion> = sqlx::query_as(
        "SELECT seq, version, author, at, message, diff, files, prev_hash, hash \
             FROM rules_versions ORDER BY seq",
    )
    .fetch_all(&store.readers)
    .await
    .map_err(err())?;
    let mut last = (0i64, String::new());
    for (seq, version, author, at, message, diff, files, prev_hash, hash) in rows {
        report.rules_versions += 1;
        let v = version_of((seq, version, author, at, message, diff), BTreeMap::new());
        let digest = serde_json::from_str::<BTreeMap<String, String>>(&files)
            .ok()
            .and_then(|f| hub_router::bundle::Bundle::from_files(f).ok())
            .map(|b| b.digest());
        let reason = chain_reason(seq, &last, &prev_hash).or_else(|| {
            if version_hash(&v, &files, &prev_hash) != hash {
                Some("the version's content does not match its hash: it was edited".to_owned())
            } else if digest.as_deref() != Some(v.version.as_str()) {
                Some(format!("its files are not those of {}", v.version))
            } else {
                None
            }
        });
        if let Some(reason) = reason {
            report.broke(BrokenLink {
                at: Place::RulesVersion { seq },
                reason,
            });
        }
        last = (seq, hash);
    }
    type StoredActivation = (i64, String, String, String, i64, String, String, String);
    let rows: Vec<StoredActivation> = sqlx::query_as(
        "SELECT seq, version, action, author, at, message, prev_hash, hash \
         FROM rules_activations ORDER BY seq",
    )
    .fetch_all(&store.readers)
    .await
    .map_err(err())?;
    let mut last = (0i64, String::new());
    for (seq, version, action, author, at, message, prev_hash, hash) in rows {
        report.rules_activations += 1;
        let a = activation_of((seq, version, action, author, at, message));
        let reason = chain_reason(seq, &last, &prev_hash).or_else(|| {
            (activation_hash(&a, &prev_hash) != hash).then(|| {
                "the activation's content does not match its hash: it was edited".to_owned()
            })
        });
        if let Some(reason) = reason {
            report.broke(BrokenLink {
                at: Place::RulesActivation { seq },
                reason,
            });
        }
        last = (seq, hash);
    }
    Ok(())
}

/// Whether row `seq` follows `last` (its seq and hash).
fn chain_reason(seq: i64, last: &(i64, String), prev_hash: &str) -> Option<String> {
    if seq != last.0 + 1 {
        Some(if seq == last.0 + 2 {
            format!("row {} before it is missing (deleted)", last.0 + 1)
        } else {
            format!(
                "rows {} to {} before it are missing (deleted)",
                last.0 + 1,
                seq - 1
            )
        })
    } else if prev_hash != last.1 {
        Some(format!(
            "it does not follow row {}: its previous hash differs",
            last.0
        ))
    } else {
        None
    }
}
