//! Source: a departmental REST API paged by an opaque cursor, with token auth.
//!
//! `GET {base_url}{path}?{cursor_param}=<cursor>&limit=<page_size>` with
//! `Authorization: Bearer <token>`; the response is a JSON object holding the records at
//! `items_pointer` and the cursor to resume from at `cursor_pointer`. Records are kept as the
//! exact bytes the department sent, so a dead-lettered record can be replayed unchanged.
//!
//! A page is read incrementally and at most [`HttpPollConfig::max_body_bytes`] of it: a
//! system (or a proxy in front of it) that answers with a giant or endless body is refused
//! as soon as it announces a larger `Content-Length`, or as soon as more has arrived, and
//! the connector retries with backoff like any other unusable answer.

use std::fmt;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::value::RawValue;

use serde::Deserialize;

use crate::config::{duration, RateLimitConfig};
use crate::rate_limit::TokenBucket;
use crate::source::{Batch, Outcome, Receipt, ReceiptInner, Source, SourceError, SourceKind};
use crate::{RawRecord, Secret};

/// The default [`HttpPollConfig::max_body_bytes`]: 16 MiB, hundreds of times a normal page
/// (a page of 100 records is a few dozen KiB), small enough that a runaway answer cannot
/// exhaust the hub's memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One departmental REST feed, as `[[connectors]] kind = "http_poll"` configures it. `Debug`
/// shows the token's variable, never a token.
///
/// [`Default`] holds the configuration defaults (page size 100, `cursor`, `/items`,
/// `/next_cursor`, 10 s, polls 2 s apart, [`DEFAULT_MAX_BODY_BYTES`]) with no URL, for
/// `HttpPollConfig { base_url, path, ..Default::default() }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpPollConfig {
    /// The connector (also the `source_system` of its events).
    pub name: String,
    pub department: String,
    pub rate_limit: Option<RateLimitConfig>,
    pub base_url: String,
    pub path: String,
    /// Name of the environment variable holding the bearer token.
    pub token_env: String,
    pub page_size: u32,
    pub cursor_param: String,
    /// JSON pointer (object keys only) to the array of records, e.g. `/items` or `/data/list`.
    pub items_pointer: String,
    /// JSON pointer to the next cursor (a string; null or absent means "stay where you are").
    pub cursor_pointer: String,
    #[serde(rename = "timeout_ms", deserialize_with = "duration::ms::deserialize")]
    pub timeout: Duration,
    /// Pause after a page that left nothing waiting.
    #[serde(
        rename = "poll_interval_ms",
        deserialize_with = "duration::ms::deserialize"
    )]
    pub poll_interval: Duration,
    /// The largest page body read, in bytes. A page announced (`Content-Length`) or found
    /// to be larger is refused as an unusable answer naming the URL and this limit.
    pub max_body_bytes: usize,
}

impl Default for HttpPollConfig {
    fn default() -> Self {
        HttpPollConfig {
            name: String::new(),
            department: String::new(),
            rate_limit: None,
            base_url: String::new(),
            path: String::new(),
            token_env: String::new(),
            page_size: 100,
            cursor_param: "cursor".into(),
            items_pointer: "/items".into(),
            cursor_pointer: "/next_cursor".into(),
            timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(2),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// One page of records and the cursor that resumes right after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<RawRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Wrong or expired credentials: retrying soon will not help; an operator must act.
    #[error("{url}: credentials refused (HTTP {status}); check the connector's token")]
    Unauthorized { url: String, status: u16 },
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("{url}: unusable page: {reason}")]
    BadPage { url: String, reason: String },
    /// The body is larger than [`HttpPollConfig::max_body_bytes`]: a runaway or endless
    /// answer, not read any further.
    #[error("{url}: {}", too_large_detail(*.limit, .size))]
    BodyTooLarge {
        url: String,
        limit: usize,
        size: BodySize,
    },
}

/// How a too-large body showed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodySize {
    /// Announced by `Content-Length`, refused before reading any of it.
    Declared(u64),
    /// More than the limit arrived (a chunked body, or one delimited by closing the
    /// connection).
    Exceeded,
}

fn too_large_detail(limit: usize, size: &BodySize) -> String {
    let what = match size {
        BodySize::Declared(n) => format!("Content-Length announces {n} bytes"),
        BodySize::Exceeded => format!("more than {limit} bytes arrived"),
    };
    format!("page body over the limit of {limit} bytes (max_body_bytes): {what}; not read further")
}

impl PollError {
    /// Whether an automatic retry may succeed (outages yes, bad credentials no).
    pub fn is_transient(&self) -> bool {
        match self {
            PollError::Unauthorized { .. } => false,
            PollError::Status { status, .. } => *status >= 500 || *status == 429,
            PollError::Transport { .. } => true,
            PollError::BadPage { .. } => true,
            // A passing fault of the system or a proxy, most likely: retried with backoff,
            // and shown in health meanwhile.
            PollError::BodyTooLarge { .. } => true,
        }
    }
}

impl From<PollError> for SourceError {
    fn from(e: PollError) -> Self {
        match e {
            PollError::Unauthorized { url, status } => SourceError::Unauthorized {
                origin: url,
                detail: format!("HTTP {status}; check the connector's token"),
            },
            PollError::Status { url, status, body } if status >= 500 || status == 429 => {
                SourceError::Unavailable {
                    origin: url,
                    detail: format!("HTTP {status}: {body}"),
                }
            }
            // Other 4xx: the request itself is wrong (path, parameters): an operator must act.
            PollError::Status { url, status, body } => SourceError::Misconfigured {
                origin: url,
                detail: format!(
                    "HTTP {status}: {body}; check the connector's path and page layout"
                ),
            },
            PollError::Transport { url, source } => SourceError::Unavailable {
                origin: url,
                detail: transport_detail(&source),
            },
            PollError::BadPage { url, reason } => SourceError::BadAnswer {
                origin: url,
                detail: reason,
            },
            PollError::BodyTooLarge { url, limit, size } => SourceError::BadAnswer {
                origin: url,
                detail: too_large_detail(limit, &size),
            },
        }
    }
}

/// reqwest's Display omits the cause ("error sending request"); the cause is what tells an
/// operator whether it was a refused connection, DNS or a timeout.
fn transport_detail(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

pub struct HttpPoller {
    client: reqwest::Client,
    config: HttpPollConfig,
    /// Sent as a bearer token; never logged.
    token: Secret,
}

impl fmt::Debug for HttpPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPoller")
            .field("config", &self.config)
            .finish()
    }
}

impl HttpPoller {
    pub fn new(config: HttpPollConfig, token: Secret) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(HttpPoller {
            client,
            config,
            token,
        })
    }

    pub fn config(&self) -> &HttpPollConfig {
        &self.config
    }

    /// Fetch the page that starts at `cursor` (`None`: from the beginning).
    pub async fn fetch_page(&self, cursor: Option<&str>) -> Result<Page, PollError> {
        let c = &self.config;
        let url = format!("{}{}", c.base_url.trim_end_matches('/'), c.path);
        let mut query: Vec<(&str, String)> = vec![("limit", c.page_size.to_string())];
        if let Some(cursor) = cursor {
            query.push((c.cursor_param.as_str(), cursor.to_owned()));
        }
        let response = self
            .client
            .get(&url)
            .bearer_auth(self.token.expose())
            .query(&query)
            .send()
            .await
            .map_err(|source| PollError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(PollError::Unauthorized { url, status });
        }
        if !(200..300).contains(&status) {
            // Only the start of an error page is shown; the rest is not read (and a body
            // that cannot be read leaves the status to speak for itself).
            let body: Vec<u8> = read_body(response, c.max_body_bytes, Some(ERROR_BODY_SHOWN))
                .await
                .unwrap_or_default();
            let shown = &body[..body.len().min(ERROR_BODY_SHOWN)];
            let body = String::from_utf8_lossy(shown).into_owned();
            return Err(PollError::Status { url, status, body });
        }
        let body = match read_body(response, c.max_body_bytes, None).await {
            Ok(body) => body,
            Err(BodyError::Transport(source)) => return Err(PollError::Transport { url, source }),
            Err(BodyError::TooLarge(size)) => {
                return Err(PollError::BodyTooLarge {
                    url,
                    limit: c.max_body_bytes,
                    size,
                })
            }
        };
        parse_page(&body, &c.items_pointer, &c.cursor_pointer, &url)
            .map_err(|reason| PollError::BadPage { url, reason })
    }
}

/// How much of an error page (non-2xx) is read and shown.
const ERROR_BODY_SHOWN: usize = 200;

enum BodyError {
    Transport(reqwest::Error),
    TooLarge(BodySize),
}

/// Read a response body chunk by chunk, refusing it once it is announced or found to be
/// larger than `limit`. With `enough`, stop (without error) once that many bytes are in.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
    enough: Option<usize>,
) -> Result<Vec<u8>, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if enough.is_none() {
        if let Some(declared) = response.content_length() {
            if declared > limit_u64 {
                return Err(BodyError::TooLarge(BodySize::Declared(declared)));
            }
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge(BodySize::Exceeded));
        }
        body.extend_from_slice(&chunk);
        if enough.is_some_and(|n| body.len() >= n) {
            break;
        }
    }
    Ok(body)
}

/// [`HttpPoller`] as a [`Source`]: keeps the position, moves it on commit, and spaces its
/// requests with an optional rate limit.
pub struct HttpPollSource {
    poller: HttpPoller,
    position: Option<String>,
    limiter: Option<TokenBucket>,
}

impl fmt::Debug for HttpPollSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPollSource")
            .field("poller", &self.poller)
            .field("position", &self.position)
            .finish()
    }
}

impl HttpPollSource {
    pub fn new(poller: HttpPoller) -> Self {
        HttpPollSource {
            poller,
            position: None,
            limiter: None,
        }
    }

    /// At most `burst` requests at once and `per_second` on average to this system.
    pub fn with_rate_limit(mut self, limiter: TokenBucket) -> Self {
        self.limiter = Some(limiter);
        self
    }

    pub fn poller(&self) -> &HttpPoller {
        &self.poller
    }
}

#[async_trait]
impl Source for HttpPollSource {
    fn kind(&self) -> SourceKind {
        SourceKind::HttpPoll
    }

    async fn start(&mut self, cursor: Option<String>) -> Result<(), SourceError> {
        self.position = cursor;
        Ok(())
    }

    async fn next_batch(&mut self) -> Result<Batch, SourceError> {
        if let Some(limiter) = &mut self.limiter {
            if let Err(wait) = limiter.try_acquire(Instant::now()) {
                tokio::time::sleep(wait).await;
                // The wait was computed for exactly one token; taking it now cannot fail
                // except under clock skew, in which case the next call waits again.
                let _ = limiter.try_acquire(Instant::now());
            }
        }
        let page = self.poller.fetch_page(self.position.as_deref()).await?;
        let full = page.records.len() as u32 >= self.poller.config().page_size;
        let next = page
            .next_cursor
            .filter(|n| Some(n) != self.position.as_ref());
        Ok(Batch {
            records: page.records,
            rejected: Vec::new(),
            cursor: next.clone(),
            more: full && next.is_some(),
            receipt: Receipt(ReceiptInner::Position(next)),
        })
    }

    async fn commit(&mut self, receipt: Receipt, _: &[Outcome]) -> Result<(), SourceError> {
        if let ReceiptInner::Position(Some(next)) = receipt.0 {
            self.position = Some(next);
        }
        Ok(())
    }
}

/// Split a page into its records (original bytes) and next cursor.
pub fn parse_page(
    body: &[u8],
    items_pointer: &str,
    cursor_pointer: &str,
    uri: &str,
) -> Result<Page, String> {
    let items_raw = find_raw(body, items_pointer)?
        .ok_or_else(|| format!("no records array at `{items_pointer}`"))?;
    let items: Vec<&RawValue> = serde_json::from_str(items_raw.get())
        .map_err(|e| format!("`{items_pointer}` is not an array: {e}"))?;
    let next_cursor = match find_raw(body, cursor_pointer)? {
        None => None,
        Some(raw) => match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::Null) => None,
            Ok(serde_json::Value::String(s)) => Some(s),
            Ok(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => return Err(format!("cursor at `{cursor_pointer}` is not a string")),
        },
    };
    let records = items
        .into_iter()
        .map(|item| RawRecord {
            bytes: item.get().as_bytes().to_vec(),
            uri: uri.to_owned(),
        })
        .collect();
    Ok(Page {
        records,
        next_cursor,
    })
}

/// Walk a pointer of object keys without re-serialising anything, so the leaves keep their
/// original bytes.
fn find_raw<'a>(body: &'a [u8], pointer: &str) -> Result<Option<&'a RawValue>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("page is not UTF-8: {e}"))?;
    let mut current: &'a RawValue =
        serde_json::from_str(text).map_err(|e| format!("page is not JSON: {e}"))?;
    for key in pointer.split('/').filter(|k| !k.is_empty()) {
        let object: std::collections::HashMap<&str, &'a RawValue> =
            match serde_json::from_str(current.get()) {
                Ok(o) => o,
                Err(_) => return Ok(None),
            };
        match object.get(key) {
            Some(v) => current = v,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_exact_bytes_and_cursor_is_read() {
        let body = br#"{"data":{"list":[{"a": 1,  "b":"x"},{"c":[1,2]}],"nextCursor":"c:2"}}"#;
        let page = parse_page(body, "/data/list", "/data/nextCursor", "u").unwrap();
        assert_eq!(page.records.len(), 2);
        assert_eq!(page.records[0].bytes, br#"{"a": 1,  "b":"x"}"#.to_vec());
        assert_eq!(page.next_cursor.as_deref(), Some("c:2"));
    }

    #[test]
    fn missing_cursor_means_stay_and_missing_items_is_an_error() {
        let page = parse_page(br#"{"items":[]}"#, "/items", "/next", "u").unwrap();
        assert_eq!(page.next_cursor, None);
        let err = parse_page(br#"{"rows":[]}"#, "/items", "/next", "u").unwrap_err();
        assert!(err.contains("/items"), "{err}");
        let err = parse_page(b"<html>", "/items", "/next", "u").unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }
}
