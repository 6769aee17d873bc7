//! Verifying records a department pushes to the hub's webhook endpoint. Pure: the caller
//! passes the two headers, the body and the current Unix time.
//!
//! # The signature scheme (what a department implements)
//!
//! ```text
//! X-Hub-Timestamp: 1763691780                      (Unix seconds, when the request was signed)
//! X-Hub-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, "1763691780" + "." + body)>
//! ```
//!
//! The body is signed as the exact bytes sent. A request is refused when a header is missing
//! or malformed, when its timestamp is outside the tolerance window (default ±5 minutes),
//! when the signature does not match any configured secret, or when the same signature was
//! already accepted (a replay). A department retrying a failed delivery signs it again with a
//! fresh timestamp. Each refusal has its own [`WebhookError`] variant and metric label; the
//! hub answers all of them with 401.
//!
//! Several secrets may be configured at once, so a department can move to a new secret
//! without a window of refused deliveries.
//!
//! The replay cache is per process and bounded. Where several hub processes take webhooks,
//! a replay sent to another process passes this check, and is then absorbed by the
//! idempotent task creation (the record's own id is unchanged).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Secret;

pub const TIMESTAMP_HEADER: &str = "X-Hub-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";
const SCHEME: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// Why a pushed request was refused. `reason()` is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing {TIMESTAMP_HEADER} header")]
    MissingTimestamp,
    #[error("{TIMESTAMP_HEADER} `{value}` is not Unix seconds")]
    MalformedTimestamp { value: String },
    #[error("missing {SIGNATURE_HEADER} header")]
    MissingSignature,
    #[error("{SIGNATURE_HEADER} is malformed: {problem} (expected `sha256=<64 hex digits>`)")]
    MalformedSignature { problem: &'static str },
    #[error("{TIMESTAMP_HEADER} is {skew_secs} s from the hub's clock, outside the allowed ±{tolerance_secs} s (a replay, or a sender clock that is off)")]
    OutsideWindow { skew_secs: i64, tolerance_secs: i64 },
    #[error("signature does not match: wrong secret, or the body was changed after signing")]
    BadSignature,
    #[error("this signed request was already accepted (replay)")]
    Replayed,
}

impl WebhookError {
    /// Label for `hub_connector_webhook_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            WebhookError::MissingTimestamp => "missing_timestamp",
            WebhookError::MalformedTimestamp { .. } => "malformed_timestamp",
            WebhookError::MissingSignature => "missing_signature",
            WebhookError::MalformedSignature { .. } => "malformed_signature",
            WebhookError::OutsideWindow { .. } => "outside_window",
            WebhookError::BadSignature => "bad_signature",
            WebhookError::Replayed => "replayed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook: at least one non-empty secret is needed")]
    NoSecret,
    #[error("webhook: tolerance must be between 1 s and 1 day")]
    Tolerance,
    #[error("webhook: replay cache capacity must be at least 1")]
    Capacity,
}

/// Verification settings with sensible defaults: ±300 s, 100,000 remembered signatures
/// (enough for 330 requests a second inside the window).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secrets: Vec<Secret>,
    pub tolerance: Duration,
    pub replay_capacity: usize,
}

impl WebhookConfig {
    pub fn new(secrets: Vec<Secret>) -> Self {
        WebhookConfig {
            secrets,
            tolerance: Duration::from_secs(300),
            replay_capacity: 100_000,
        }
    }
}

/// A request that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The signed timestamp (Unix seconds).
    pub timestamp: i64,
    /// Which configured secret matched (0 = the first), so operators can see when the old
    /// secret of a rotation is no longer used.
    pub secret_index: usize,
    signature: [u8; 32],
}

pub struct Verifier {
    macs: Vec<HmacSha256>,
    tolerance_secs: i64,
    seen: ReplayCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &format_args!("{} x ***", self.macs.len()))
            .field("tolerance_secs", &self.tolerance_secs)
            .field("remembered", &self.seen.len())
            .finish()
    }
}

impl Verifier {
    pub fn new(config: &WebhookConfig) -> Result<Self, WebhookConfigError> {
        let secrets: Vec<&Secret> = config.secrets.iter().filter(|s| !s.is_empty()).collect();
        if secrets.is_empty() {
            return Err(WebhookConfigError::NoSecret);
        }
        let tolerance = config.tolerance.as_secs();
        if !(1..=86_400).contains(&tolerance) {
            return Err(WebhookConfigError::Tolerance);
        }
        if config.replay_capacity == 0 {
            return Err(WebhookConfigError::Capacity);
        }
        let macs = secrets
            .iter()
            .map(|s| {
                HmacSha256::new_from_slice(s.expose().as_bytes())
                    .map_err(|_| WebhookConfigError::NoSecret)
            })
            .collect::<Result<_, _>>()?;
        Ok(Verifier {
            macs,
            tolerance_secs: tolerance as i64,
            seen: ReplayCache::new(config.replay_capacity),
        })
    }

    /// Check one request: headers as received (`None` when absent), the exact body, and the
    /// hub's clock in Unix seconds.
    pub fn verify(
        &mut self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Verified, WebhookError> {
        let ts_text = timestamp.ok_or(WebhookError::MissingTimestamp)?.trim();
        let ts = parse_timestamp(ts_text).ok_or_else(|| WebhookError::MalformedTimestamp {
            value: ts_text.chars().take(40).collect(),
        })?;
        let signature = parse_signature(signature.ok_or(WebhookError::MissingSignature)?)?;
        let skew = ts - now_unix;
        if skew.abs() > self.tolerance_secs {
            return Err(WebhookError::OutsideWindow {
                skew_secs: skew,
                tolerance_secs: self.tolerance_secs,
            });
        }
        // Only authentic requests reach the replay cache, so forged traffic cannot flush it.
        let secret_index = self
            .macs
            .iter()
            .position(|mac| {
                let mut mac = mac.clone();
                mac.update(ts_text.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&signature).is_ok()
            })
            .ok_or(WebhookError::BadSignature)?;
        if !self
            .seen
            .insert(signature, ts, now_unix - self.tolerance_secs)
        {
            return Err(WebhookError::Replayed);
        }
        Ok(Verified {
            timestamp: ts,
            secret_index,
            signature,
        })
    }

    /// Forget a verified request the hub then did *not* take (it answered 503 because it was
    /// busy or stopping), so the sender's retry with the same headers is not a replay.
    pub fn forget(&mut self, verified: &Verified) {
        self.seen.remove(&verified.signature);
    }
}

/// The `X-Hub-Signature` value for `body` signed at `timestamp` (what a department sends).
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(SCHEME.len() + 64);
    out.push_str(SCHEME);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_signature(header: &str) -> Result<[u8; 32], WebhookError> {
    let header = header.trim();
    let hex = header
        .strip_prefix(SCHEME)
        .ok_or(WebhookError::MalformedSignature {
            problem: "it does not start with `sha256=`",
        })?;
    if hex.len() != 64 {
        return Err(WebhookError::MalformedSignature {
            problem: "the digest is not 64 hex digits",
        });
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let hi = hex_value(pair[0]);
        let lo = hex_value(pair[1]);
        match (hi, lo) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => {
                return Err(WebhookError::MalformedSignature {
                    problem: "the digest has a character that is not hex",
                })
            }
        }
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Signatures accepted inside the tolerance window. Entries older than the window are
/// dropped (their requests would be refused as stale anyway); when still full, the oldest
/// entry goes, which only matters under a flood of *authentic* requests.
#[derive(Debug)]
struct ReplayCache {
    capacity: usize,
    by_signature: HashMap<[u8; 32], i64>,
    order: VecDeque<([u8; 32], i64)>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity,
            by_signature: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        self.by_signature.len()
    }

    fn remove(&mut self, signature: &[u8; 32]) {
        if self.by_signature.remove(signature).is_some() {
            self.order.retain(|(s, _)| s != signature);
        }
    }

    /// Remember `signature`; false when it was already there.
    fn insert(&mut self, signature: [u8; 32], timestamp: i64, expired_before: i64) -> bool {
        while let Some((sig, ts)) = self.order.front() {
            if *ts >= expired_before {
                break;
            }
            self.by_signature.remove(sig);
            self.order.pop_front();
        }
        if self.by_signature.contains_key(&signature) {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some((sig, _)) = self.order.pop_front() {
                self.by_signature.remove(&sig);
            }
        }
        self.by_signature.insert(signature, timestamp);
        self.order.push_back((signature, timestamp));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_763_691_780;
    const BODY: &str = r#"{"caseNo":"CG1","eventTypeName":"暴露垃圾"}"#;

    fn verifier() -> Verifier {
        Verifier::new(&WebhookConfig::new(vec![Secret::new("whsec-test-0001")])).unwrap()
    }

    #[test]
    fn signature_matches_an_independent_implementation() {
        // Python: hmac.new(b"whsec-test-0001", b"1763691780." + body, hashlib.sha256).hexdigest()
        assert_eq!(
            sign(&Secret::new("whsec-test-0001"), NOW, BODY.as_bytes()),
            "sha256=2c9573f3ca30092295cb52c6ab8eee6f713beefe2499a614aab74840f9f98f43"
        );
    }

    #[test]
    fn authentic_request_passes_once_and_its_replay_is_refused() {
        let mut v = verifier();
        let sig = sign(&Secret::new("whsec-test-0001"), NOW, BODY.as_bytes());
        let ok = v
            .verify(Some("1763691780"), Some(&sig), BODY.as_bytes(), NOW + 2)
            .unwrap();
        assert_eq!(ok.timestamp, NOW);
        let again = v.verify(Some("1763691780"), Some(&sig), BODY.as_bytes(), NOW + 3);
        assert_eq!(again, Err(WebhookError::Replayed));
        assert_eq!(again.unwrap_err().reason(), "replayed");
    }

    #[test]
    fn a_request_the_hub_did_not_take_may_be_sent_again_unchanged() {
        let mut v = verifier();
        let sig = sign(&Secret::new("whsec-test-0001"), NOW, BODY.as_bytes());
        let first = v
            .verify(Some("1763691780"), Some(&sig), BODY.as_bytes(), NOW)
            .unwrap();
        // The hub was busy and answered 503.
        v.forget(&first);
        assert!(v
            .verify(Some("1763691780"), Some(&sig), BODY.as_bytes(), NOW)
            .is_ok());
        assert_eq!(
            v.verify(Some("1763691780"), Some(&sig), BODY.as_bytes(), NOW),
            Err(WebhookError::Replayed)
        );
    }

    #[test]
    fn each_kind_of_bad_request_has_its_own_error() {
        let mut v = verifier();
        let secret = Secret::new("whsec-test-0001");
        let sig = sign(&secret, NOW, BODY.as_bytes());
        let body = BODY.as_bytes();
        // (timestamp header, signature header, body, expected refusal)
        type Case<'a> = (Option<&'a str>, Option<String>, &'a [u8], WebhookError);
        let cases: Vec<Case> = vec![
            (
                None,
                Some(sig.clone()),
                body,
                WebhookError::MissingTimestamp,
            ),
            (
                Some("yesterday"),
                Some(sig.clone()),
                body,
                WebhookError::MalformedTimestamp {
                    value: "yesterday".into(),
                },
            ),
            (
                Some("1763691780"),
                None,
                body,
                WebhookError::MissingSignature,
            ),
            (
                Some("1763691780"),
                Some(sig.replace("sha256=", "sha1=")),
                body,
                WebhookError::MalformedSignature {
                    problem: "it does not start with `sha256=`",
                },
            ),
            (
                Some("1763691780"),
                Some(format!("{}zz", &sig[..sig.len() - 2])),
                body,
                WebhookError::MalformedSignature {
                    problem: "the digest has a character that is not hex",
                },
            ),
            // The body changed after signing.
            (
                Some("1763691780"),
                Some(sig.clone()),
                br#"{"caseNo":"CG2"}"#,
                WebhookError::BadSignature,
            ),
            // Signed with another secret.
            (
                Some("1763691780"),
                Some(sign(&Secret::new("guess"), NOW, body)),
                body,
                WebhookError::BadSignature,
            ),
        ];
        for (ts, sig, body, expected) in cases {
            assert_eq!(
                v.verify(ts, sig.as_deref(), body, NOW),
                Err(expected.clone()),
                "{expected}"
            );
        }
        // A valid signature over an old timestamp: captured and replayed later.
        let old = sign(&secret, NOW - 301, body);
        let err = v
            .verify(Some(&(NOW - 301).to_string()), Some(&old), body, NOW)
            .unwrap_err();
        assert_eq!(err.reason(), "outside_window");
        assert!(err.to_string().contains("-301 s"), "{err}");
        // Upper-case hex is the same digest.
        assert!(v
            .verify(
                Some("1763691780"),
                Some(&sig.to_uppercase().replace("SHA256=", "sha256=")),
                body,
                NOW
            )
            .is_ok());
    }

    #[test]
    fn a_rotated_secret_still_verifies_and_says_which_matched() {
        let mut v = Verifier::new(&WebhookConfig::new(vec![
            Secret::new("new-secret"),
            Secret::new("old-secret"),
        ]))
        .unwrap();
        let sig = sign(&Secret::new("old-secret"), NOW, b"{}");
        let ok = v
            .verify(Some(&NOW.to_string()), Some(&sig), b"{}", NOW)
            .unwrap();
        assert_eq!(ok.secret_index, 1);
        let shown = format!("{v:?}");
        assert!(
            !shown.contains("old-secret") && !shown.contains("new-secret"),
            "{shown}"
        );
        assert_eq!(
            Verifier::new(&WebhookConfig::new(vec![Secret::new("")])).unwrap_err(),
            WebhookConfigError::NoSecret
        );
    }

    #[test]
    fn replay_cache_stays_bounded_and_forgets_expired_signatures() {
        let mut cache = ReplayCache::new(3);
        for i in 0..10u8 {
            assert!(cache.insert([i; 32], NOW, NOW - 300));
            assert!(cache.len() <= 3);
        }
        // Within capacity, a repeat is caught.
        assert!(!cache.insert([9; 32], NOW, NOW - 300));
        // Expired entries are dropped as time moves on.
        assert!(cache.insert([42; 32], NOW + 1000, NOW + 700));
        assert_eq!(cache.len(), 1);
    }
}
