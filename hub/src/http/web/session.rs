//! Console sessions: a person signs in once with their account's token and the browser then
//! carries a session cookie (HttpOnly, SameSite=Strict) instead of the token.
//!
//! The cookie is signed, not stored: `v1.<account, hex>.<expiry, unix seconds>.<mac, hex>`,
//! the MAC (HMAC-SHA256 under the process's session key) covering the account, the expiry
//! and the digest of the account's current token, so a changed or removed token ends its
//! sessions at once. Hub processes behind one address share sessions when they share the key
//! (`HUB_SESSION_KEY`); without one each process makes its own and sessions end with it.
//!
//! Every change made from the console is a POST carrying the session's CSRF token in the
//! `x-csrf-token` header (htmx sends it from the page's `hx-headers`); the token is a MAC of
//! the cookie, so another site can neither read nor forge it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::messages::ZH;
use crate::context::access::{Access, Identity};
use crate::http::auth::AuthState;

type HmacSha256 = Hmac<Sha256>;

pub const COOKIE: &str = "hub_session";
/// The secret console sessions are signed with, shared by the hub processes of a city.
pub const KEY_VAR: &str = "HUB_SESSION_KEY";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A working day and a bit: a dispatcher signs in once per shift.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// The key sessions are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// From the secret [`KEY_VAR`] (any text of 32 characters or more), else a random key
    /// for this process.
    pub fn from_secret(secret: Option<String>) -> Self {
        use sha2::Digest;
        if let Some(s) = secret.as_ref().filter(|s| s.trim().len() < 32) {
            tracing::warn!(
                length = s.trim().len(),
                "{KEY_VAR} is shorter than 32 characters; console sessions use a random key"
            );
        }
        match secret.filter(|s| s.trim().len() >= 32) {
            Some(s) => SessionKey(Sha256::digest(s.trim().as_bytes()).into()),
            None => SessionKey(rand::random()),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

/// A verified session: who, and the cookie it came with (for its CSRF token).
#[derive(Clone)]
pub struct Session {
    pub who: Identity,
    cookie: String,
}

impl Session {
    pub fn csrf(&self, key: &SessionKey) -> String {
        csrf_of(key, &self.cookie)
    }
}

fn csrf_of(key: &SessionKey, cookie: &str) -> String {
    hex(&key.mac(&[b"csrf", cookie.as_bytes()])[..16])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The cookie value of a new session for `account` (whose token has `digest`).
pub fn issue(key: &SessionKey, account: &str, digest: &[u8; 32]) -> String {
    let expiry = (unix_now() + LIFETIME.as_secs()).to_string();
    let name = hex(account.as_bytes());
    let mac = key.mac(&[name.as_bytes(), expiry.as_bytes(), digest]);
    format!("v1.{name}.{expiry}.{}", hex(&mac))
}

/// The session a cookie value stands for, if it is genuine, unexpired and its account still
/// has the token it was opened with.
pub fn verify(key: &SessionKey, access: &Access, cookie: &str) -> Option<Session> {
    let mut parts = cookie.split('.');
    let (Some("v1"), Some(name), Some(expiry), Some(mac), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if expiry.parse::<u64>().ok()? < unix_now() {
        return None;
    }
    let account = String::from_utf8(unhex(name)?).ok()?;
    let (digest, who) = access.by_name(&account)?;
    let expected = key.mac(&[name.as_bytes(), expiry.as_bytes(), digest]);
    let presented: [u8; 32] = unhex(mac)?.try_into().ok()?;
    if !hub_connectors::digests_equal(&expected, &presented) {
        return None;
    }
    Some(Session {
        who: who.clone(),
        cookie: cookie.to_owned(),
    })
}

pub fn set_cookie(value: &str) -> HeaderValue {
    let v = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    );
    HeaderValue::from_str(&v).expect("the cookie is ASCII")
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("hub_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Runs before every console page: no valid session → to the sign-in page (a full page) or
/// 401 (a fragment or a form post, with `HX-Redirect` so htmx goes there); a POST without
/// the session's CSRF token → 403. Hands the page the [`Session`], and the API's
/// extractors the [`Identity`], so pages read inside the account's scope exactly as the API.
pub async fn require(State(auth): State<AuthState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let access = auth.access.current();
    let session = cookie_value(&parts.headers).and_then(|c| verify(&auth.sessions, &access, c));
    let Some(session) = session else {
        let target = parts
            .uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let login = format!("/login?next={}", super::url_encode(&target));
        let from_htmx = parts.headers.contains_key("hx-request");
        if parts.method == Method::GET && !from_htmx {
            return Redirect::to(&login).into_response();
        }
        let mut r = (StatusCode::UNAUTHORIZED, ZH.sign_in_again).into_response();
        if let Ok(v) = HeaderValue::from_str(&login) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    };
    if parts.method != Method::GET {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Compared as digests, in constant time, whatever was presented.
        use sha2::Digest;
        let digest = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
        if !hub_connectors::digests_equal(
            &digest(presented),
            &digest(&session.csrf(&auth.sessions)),
        ) {
            return (StatusCode::FORBIDDEN, ZH.form_expired).into_response();
        }
    }
    parts.extensions.insert(session.who.clone());
    parts.extensions.insert(auth);
    parts.extensions.insert(session);
    next.run(Request::from_parts(parts, body)).await
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 512 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_garbage() {
        assert_eq!(
            unhex(&hex("社区-1".as_bytes())).unwrap(),
            "社区-1".as_bytes()
        );
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn csrf_differs_per_session() {
        let key = SessionKey([7; 32]);
        assert_ne!(csrf_of(&key, "v1.61.1.00"), csrf_of(&key, "v1.62.1.00"));
        assert_eq!(csrf_of(&key, "v1.61.1.00").len(), 32);
    }
}
