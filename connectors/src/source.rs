//! The one interface the hub's ingest loop drives, whatever the departmental system: REST
//! polling ([`crate::http_poll::HttpPollSource`]), a database table
//! ([`crate::pg_poll::PgPollSource`]), an MQTT sensor stream ([`crate::mqtt::MqttSource`]) or
//! records pushed to the hub ([`crate::push::PushSource`], fed by the signed webhook).
//!
//! # The loop that drives a source
//!
//! ```text
//! source.start(store.load_cursor(name)).await?;
//! loop {
//!     let batch = source.next_batch().await;          // Err: health + backoff, then again
//!     // map each record (RecordFormat from the source), produce events, dead-letter the
//!     // failures and `batch.rejected`, and wait until the broker acknowledged all of it;
//!     // on a broker error retry *this* batch: never drop one and ask for the next
//!     if let Some(c) = &batch.cursor { store.save_cursor(name, c).await }
//!     source.commit(batch.receipt, &outcomes).await;  // acks upstream, moves the position
//!     if !batch.more { sleep(poll_interval) }
//! }
//! ```
//!
//! The position moves only in [`Source::commit`], after the cursor is saved: a crash anywhere
//! before it makes the source deliver the same records again (never skip them), and the
//! router's idempotent task creation absorbs the repeat.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::RawRecord;

/// The kinds of source, as a connector's configuration names them (`kind = "http_poll"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A departmental REST API paged by a cursor, with a bearer token.
    HttpPoll,
    /// The department calls the hub's webhook endpoint, signed with HMAC-SHA256.
    Webhook,
    /// Sensor readings on an MQTT topic, debounced into episodes.
    Mqtt,
    /// A PostgreSQL table read by an `updated_at` + id keyset cursor.
    PostgresPoll,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::HttpPoll => "http_poll",
            SourceKind::Webhook => "webhook",
            SourceKind::Mqtt => "mqtt",
            SourceKind::PostgresPoll => "postgres_poll",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record the source itself could not read (for example a sensor message that is not
/// JSON). It goes to the dead-letter topic with its original bytes and this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub record: RawRecord,
    pub reason: String,
}

/// What the source hands back to [`Source::commit`]: whatever it must acknowledge upstream
/// (MQTT packets, waiting webhook callers) once the batch is safe. Opaque to the hub.
#[derive(Default)]
pub struct Receipt(pub(crate) ReceiptInner);

#[derive(Default)]
pub(crate) enum ReceiptInner {
    #[default]
    Nothing,
    /// A pull source: the cursor that becomes the position on commit.
    Position(Option<String>),
    Mqtt(Vec<rumqttc::Publish>),
    Push(Vec<crate::push::Waiter>),
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ReceiptInner::Nothing => f.write_str("Receipt(nothing)"),
            ReceiptInner::Position(_) => f.write_str("Receipt(position)"),
            ReceiptInner::Mqtt(p) => write!(f, "Receipt({} MQTT packets)", p.len()),
            ReceiptInner::Push(w) => write!(f, "Receipt({} pushed records)", w.len()),
        }
    }
}

/// One batch of records from a source.
#[derive(Debug, Default)]
pub struct Batch {
    /// Records exactly as the department sent them, to be mapped with the source's format.
    pub records: Vec<RawRecord>,
    /// Records the source refused before mapping; dead-letter them with their reason.
    pub rejected: Vec<Rejected>,
    /// Save this as the connector's cursor once the batch is produced (`None`: nothing new to
    /// save). Opaque text: a page token, a keyset position, a debouncer snapshot.
    pub cursor: Option<String>,
    /// More records are ready at once (a full page): ask again without waiting.
    pub more: bool,
    /// Give this back to [`Source::commit`].
    pub receipt: Receipt,
}

/// What became of one record of a batch, reported back to the source in
/// [`Source::commit`]: a pushed record's sender is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Produced to the feed topic.
    Produced,
    /// Valid, but nothing to act on (for example a welfare row whose person was contacted
    /// recently); counted, not dead-lettered.
    Skipped { reason: String },
    /// Could not be mapped; written to the dead-letter topic with this reason.
    DeadLettered { reason: String },
}

/// Why a source could not deliver a batch. [`SourceError::is_transient`] tells the hub
/// whether to retry with backoff or to show that an operator must act.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The departmental system refused our credentials (HTTP 401/403, database
    /// authentication, MQTT "not authorised"): an operator must fix the configuration.
    #[error("{origin}: credentials refused: {detail}")]
    Unauthorized { origin: String, detail: String },
    /// The system is down, slow or unreachable; retrying with backoff will get through.
    #[error("{origin}: unavailable: {detail}")]
    Unavailable { origin: String, detail: String },
    /// The system answered with something unusable as a whole (not one bad record); retried,
    /// since such answers are usually a passing fault of the system.
    #[error("{origin}: unusable answer: {detail}")]
    BadAnswer { origin: String, detail: String },
    /// The connector's configuration or saved cursor is wrong (unknown table, bad topic, a
    /// cursor that is not this source's): retrying will not help.
    #[error("{origin}: {detail}")]
    Misconfigured { origin: String, detail: String },
    /// The source was shut down (for a push source: the hub is stopping).
    #[error("{origin}: closed")]
    Closed { origin: String },
}

impl SourceError {
    /// Whether an automatic retry may succeed (outages yes, bad credentials or configuration
    /// no: those wait for an operator, retried slowly so a fix is picked up).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SourceError::Unavailable { .. } | SourceError::BadAnswer { .. }
        )
    }

    /// A stable label for health and metrics: `unauthorized`, `unavailable`, `bad_answer`,
    /// `misconfigured`, `closed`.
    pub fn label(&self) -> &'static str {
        match self {
            SourceError::Unauthorized { .. } => "unauthorized",
            SourceError::Unavailable { .. } => "unavailable",
            SourceError::BadAnswer { .. } => "bad_answer",
            SourceError::Misconfigured { .. } => "misconfigured",
            SourceError::Closed { .. } => "closed",
        }
    }
}

/// A source of departmental records; see the module documentation for the loop driving it.
///
/// `next_batch` may be cancelled (for example by shutdown): nothing is acknowledged before
/// `commit`, so whatever was in flight is delivered again after a restart.
#[async_trait]
pub trait Source: Send {
    /// Kind of source, for logs and health.
    fn kind(&self) -> SourceKind;

    /// Resume from the cursor the hub last saved for this connector (`None`: from the
    /// beginning, or from now for a stream). Called once, before the first batch.
    async fn start(&mut self, cursor: Option<String>) -> Result<(), SourceError>;

    /// The next batch. Pull sources fetch one page; stream and push sources wait until at
    /// least one record is there (or a short linger passes) and return what they have.
    async fn next_batch(&mut self) -> Result<Batch, SourceError>;

    /// The batch's records are produced (or dead-lettered) and its cursor is saved:
    /// acknowledge upstream and move on. `outcomes[i]` belongs to `records[i]`.
    async fn commit(&mut self, receipt: Receipt, outcomes: &[Outcome]) -> Result<(), SourceError>;
}
