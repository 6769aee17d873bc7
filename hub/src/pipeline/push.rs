//! The receiving side of a webhook connector, as the pipeline hands it to the HTTP layer
//! (`crate::http::push` serves it): the signature check, the queue into the connector's
//! ingest loop, the rate limit.

use std::sync::Mutex;

use hub_connectors::push::PushHandle;
use hub_connectors::rate_limit::TokenBucket;
use hub_connectors::webhook::Verifier;
use hub_connectors::PushParts;

/// The receiving side of one webhook connector.
pub struct PushEndpoint {
    pub(crate) name: String,
    pub(crate) path: Option<String>,
    /// Checks signatures and remembers them (replays are refused).
    pub(crate) verifier: Mutex<Verifier>,
    /// Hands a record to the connector's ingest loop and waits for its outcome.
    pub(crate) handle: PushHandle,
    pub(crate) limiter: Option<Mutex<TokenBucket>>,
}

impl PushEndpoint {
    pub fn new(name: String, parts: PushParts) -> Self {
        PushEndpoint {
            name,
            path: parts.path,
            verifier: Mutex::new(parts.verifier),
            handle: parts.handle,
            limiter: parts.limiter.map(Mutex::new),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl PushEndpoint {
    /// The connector's own path, if configured.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}
