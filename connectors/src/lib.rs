//! Connectors bring departmental records into the hub.
//!
//! Each connector has two halves: a *source* that fetches or receives raw records with a
//! resumable cursor ([`source::Source`], implemented by [`http_poll`], [`pg_poll`], [`mqtt`]
//! and [`push`]), and a pure *mapping* that turns one raw record into the canonical
//! [`CivicEvent`](hub_schemas::event::CivicEvent) or says precisely why it cannot
//! ([`mapping`]). The hub's ingest loop joins them to Kafka and the cursor store.
//!
//! Pure pieces the hub serves or uses directly: [`webhook`] (signature and replay checks),
//! [`debounce`] (sensor readings to overflow episodes), [`open311`] (GeoReport v2),
//! [`rate_limit`] (token bucket), [`privacy`] (masking personal data) and [`backoff`].

pub mod backoff;
pub mod config;
pub mod debounce;
pub mod http_poll;
pub mod mapping;
pub mod mqtt;
pub mod open311;
pub mod pg_poll;
pub mod privacy;
pub mod push;
pub mod rate_limit;
pub mod source;
pub mod webhook;

use std::fmt;

pub use config::{BuildError, BuiltSource, ConnectorConfig, PushParts, RateLimitConfig};
pub use source::{Batch, Outcome, Receipt, Rejected, Source, SourceError, SourceKind};

/// One record exactly as the departmental system sent it.
///
/// `Debug` shows where it came from, its size and digest, never its bytes: records carry
/// personal data (names, phone and ID numbers).
#[derive(Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The record's own bytes (a JSON object for REST feeds, the row as JSON for a database).
    pub bytes: Vec<u8>,
    /// Where it came from, for the raw-payload reference (the page URL, `table:id`, the MQTT
    /// topic). Never holds credentials.
    pub uri: String,
}

impl fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = mapping::sha256_hex(&self.bytes);
        f.debug_struct("RawRecord")
            .field("uri", &self.uri)
            .field("len", &self.bytes.len())
            .field("sha256", &&digest[..12])
            .finish()
    }
}

/// A credential (token, password, webhook secret). `Debug` and `Display` never show it;
/// [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is this secret. Both are hashed first and the digests compared
    /// in constant time, so neither the time taken nor an early exit tells a caller how
    /// much of a guess was right, or how long the secret is.
    pub fn matches(&self, presented: &str) -> bool {
        digests_equal(&token_digest(&self.0), &token_digest(presented))
    }
}

/// The SHA-256 digest of a token: what the hub keeps and compares instead of tokens.
pub fn token_digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests without an early exit.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_record_bytes_and_secrets() {
        let record = RawRecord {
            bytes: br#"{"name":"Zhang San","phone":"13800001234"}"#.to_vec(),
            uri: "http://dept/api".into(),
        };
        let shown = format!("{record:?}");
        assert!(
            shown.contains("http://dept/api") && shown.contains("len"),
            "{shown}"
        );
        assert!(
            !shown.contains("Zhang") && !shown.contains("13800001234"),
            "{shown}"
        );
        let secret = Secret::new("s3cr3t-token");
        assert_eq!(format!("{secret:?} {secret}"), "Secret(***) ***");
    }
}
