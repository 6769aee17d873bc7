//! A fake urban-management system that *pushes* its cases to the hub's webhook, signed the
//! way the hub documents it:
//!
//! ```text
//! X-Hub-Timestamp: <Unix seconds>
//! X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//! ```
//!
//! The signing here is written independently of the hub's verifier (as a department's own
//! code would be), so a test that passes shows the two agree, not that one function agrees
//! with itself. Besides honest pushes it can replay, tamper and send stale requests.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What the hub answered to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub status: u16,
    pub body: String,
    /// The headers sent, so a test can replay them.
    pub timestamp: String,
    pub signature: String,
}

pub struct WebhookClient {
    client: reqwest::Client,
    url: String,
    secret: String,
}

impl std::fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookClient")
            .field("url", &self.url)
            .field("secret", &"***")
            .finish()
    }
}

/// `sha256=<hex>` for `body` signed at `timestamp` with `secret`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

impl WebhookClient {
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        WebhookClient {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client builds"),
            url: url.into(),
            secret: secret.into(),
        }
    }

    /// Push one record, signed now.
    pub async fn push(&self, record: &serde_json::Value) -> Result<Delivery, reqwest::Error> {
        self.push_at(record.to_string().as_bytes(), Utc::now().timestamp())
            .await
    }

    /// Push exact bytes signed at `timestamp` (a stale or future one for tests).
    pub async fn push_at(&self, body: &[u8], timestamp: i64) -> Result<Delivery, reqwest::Error> {
        let ts = timestamp.to_string();
        let sig = signature(&self.secret, &ts, body);
        self.send_raw(body, Some(&ts), Some(&sig)).await
    }

    /// Push like a department does: re-signed on every attempt, retried on 5xx and transport
    /// errors with a growing pause, up to `attempts` times.
    pub async fn push_with_retry(
        &self,
        record: &serde_json::Value,
        attempts: u32,
    ) -> Result<Delivery, String> {
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            match self.push(record).await {
                Ok(d) if d.status < 500 => return Ok(d),
                Ok(d) => last = format!("HTTP {}: {}", d.status, d.body),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50 * (1 << attempt.min(6)))).await;
        }
        Err(format!("gave up after {attempts} attempts: {last}"))
    }

    /// Send with exactly these headers (`None` leaves one out): replays and forgeries.
    pub async fn send_raw(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Delivery, reqwest::Error> {
        let mut request = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(ts) = timestamp {
            request = request.header("X-Hub-Timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("X-Hub-Signature", sig);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Delivery {
            status,
            body,
            timestamp: timestamp.unwrap_or_default().to_owned(),
            signature: signature.unwrap_or_default().to_owned(),
        })
    }
}
