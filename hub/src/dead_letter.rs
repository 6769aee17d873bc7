//! The dead-letter topic: every record the hub cannot map or decode is kept there with its
//! original bytes and the reason, and counted; the stream goes on.

use std::time::Duration;

use crate::kafka::Kafka;
use crate::telemetry;

/// Header names on dead-letter records (values are UTF-8 text).
pub const HEADER_STAGE: &str = "hub.dlq.stage";
pub const HEADER_REASON: &str = "hub.dlq.reason";
pub const HEADER_SOURCE: &str = "hub.dlq.source";
pub const HEADER_ORIGIN: &str = "hub.dlq.origin";

/// A record the hub refused.
pub struct DeadLetter<'a> {
    /// Where it was refused, e.g. `connector.mapping` or `router.decode`.
    pub stage: &'static str,
    /// The connector or topic it came from.
    pub source: &'a str,
    /// Where exactly: a page URL, or `topic/partition@offset`.
    pub origin: &'a str,
    pub key: &'a str,
    pub reason: &'a str,
    /// The bytes exactly as received.
    pub original: &'a [u8],
}

/// Write a dead letter, retrying until the broker takes it: losing it would drop the record.
pub async fn send(kafka: &Kafka, topic: &str, letter: &DeadLetter<'_>) {
    let headers: [(&str, &[u8]); 4] = [
        (HEADER_STAGE, letter.stage.as_bytes()),
        (HEADER_REASON, letter.reason.as_bytes()),
        (HEADER_SOURCE, letter.source.as_bytes()),
        (HEADER_ORIGIN, letter.origin.as_bytes()),
    ];
    let mut delay = Duration::from_millis(200);
    loop {
        match kafka
            .produce(topic, letter.key, letter.original, &headers)
            .await
        {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, topic, "dead-letter write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
    tracing::warn!(
        stage = letter.stage,
        source = letter.source,
        origin = letter.origin,
        reason = letter.reason,
        "record dead-lettered"
    );
    metrics::counter!(telemetry::DEAD_LETTERS, "stage" => letter.stage).increment(1);
}
