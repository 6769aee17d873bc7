//! Connectors bring departmental records into the hub.
//!
//! Each connector has two halves: a *source* that fetches raw records with a resumable cursor
//! (here: [`http_poll`]), and a pure *mapping* that turns one raw record into the canonical
//! [`CivicEvent`](hub_schemas::event::CivicEvent) or says precisely why it cannot
//! ([`mapping`]). The hub's ingest loop joins them to Kafka and the cursor store.

pub mod backoff;
pub mod http_poll;
pub mod mapping;

/// One record exactly as the departmental system sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The record's own bytes (a JSON object for REST feeds).
    pub bytes: Vec<u8>,
    /// Where it came from, for the raw-payload reference (e.g. the page URL).
    pub uri: String,
}
