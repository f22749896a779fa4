//! The browser pipeline (spec §8.2): signed session cookie, cart id, CSRF token, flash, secure
//! browser headers.
//!
//! The session lives entirely in the cookie `_sneakers_23_key`: a small JSON object signed (not
//! encrypted) with an HMAC key derived from `SECRET_KEY_BASE`, so any node of the cluster can
//! read it and nobody can forge it. [`browser_pipeline`] runs on every page:
//!
//! 1. read and verify the cookie (a missing or forged one starts a new session);
//! 2. give the session a cart id when it has none (the book's CartIdPlug: 48 random bytes,
//!    base64, exactly 64 characters) and a CSRF token;
//! 3. hand the handler a [`Session`] (an extractor) to read the cart id, check the CSRF token and
//!    read or set the flash;
//! 4. write the cookie back when the session changed, and add the secure browser headers.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use channels::token::{KeyError, MaxAge, Signer};
use http::header::{COOKIE, SET_COOKIE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::ShopState;
#[cfg(test)]
use crate::sockets::cart::CART_ID_LEN;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "_sneakers_23_key";

/// Salt of the session cookie's key.
const SESSION_SALT: &str = "sneakers23 session cookie";

/// A new cart id: 48 cryptographically strong random bytes in standard base64, which is
/// exactly 64 characters of `A–Z a–z 0–9 + /`.
pub fn new_cart_id() -> String {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

fn new_csrf_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs and reads session cookies.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    signer: Signer,
    secure: bool,
}

impl SessionKeys {
    /// Keys derived from `secret_key_base`; `secure` adds the `Secure` attribute (HTTPS only).
    pub fn new(secret_key_base: &str, secure: bool) -> Result<Self, KeyError> {
        Ok(Self {
            signer: Signer::new(secret_key_base, SESSION_SALT)?,
            secure,
        })
    }

    /// The session stored in `headers`' cookie, if it is there and genuine.
    pub fn read(&self, headers: &HeaderMap) -> Option<SessionData> {
        let value = cookie_value(headers, SESSION_COOKIE)?;
        let json = self
            .signer
            .verify_string(Some(value), Some(MaxAge::Infinity))
            .ok()?;
        serde_json::from_str(&json).ok()
    }

    /// The `Set-Cookie` value storing `data`.
    pub fn cookie(&self, data: &SessionData) -> Option<HeaderValue> {
        let json = serde_json::to_string(data).ok()?;
        let token = self.signer.sign_string(&json).ok()?;
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
    }
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// What the session cookie holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    /// The shopper's cart id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart_id: Option<String>,
    /// The token forms must post back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// A message for the next page shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash: Option<String>,
}

/// The current request's session (extractor; requires [`browser_pipeline`]).
#[derive(Clone, Debug)]
pub struct Session(Arc<Mutex<SessionData>>);

impl Session {
    /// The cart id (always set inside the pipeline).
    pub fn cart_id(&self) -> Option<String> {
        self.0.lock().cart_id.clone()
    }

    /// The CSRF token forms must carry.
    pub fn csrf_token(&self) -> String {
        self.0.lock().csrf_token.clone().unwrap_or_default()
    }

    /// Whether `given` is this session's CSRF token (constant-time comparison).
    pub fn csrf_matches(&self, given: Option<&str>) -> bool {
        let expected = self.csrf_token();
        match given {
            Some(given) if !expected.is_empty() => {
                bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
            }
            _ => false,
        }
    }

    /// Shows `message` on the next page rendered.
    pub fn put_flash(&self, message: &str) {
        self.0.lock().flash = Some(message.to_owned());
    }

    /// The pending flash message, removed from the session.
    pub fn take_flash(&self) -> Option<String> {
        self.0.lock().flash.take()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or((
            StatusCode::INTERNAL_SERVER_ERROR,
            "this route is missing the browser pipeline (web::session::browser_pipeline)",
        ))
    }
}

/// The secure browser headers Phoenix's `put_secure_browser_headers` sets.
const SECURE_HEADERS: [(&str, &str); 5] = [
    ("x-frame-options", "SAMEORIGIN"),
    ("x-content-type-options", "nosniff"),
    ("x-permitted-cross-domain-policies", "none"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "content-security-policy",
        "base-uri 'self'; frame-ancestors 'self';",
    ),
];

/// The browser pipeline middleware (see the module docs).
pub async fn browser_pipeline(
    State(state): State<ShopState>,
    mut request: Request,
    next: Next,
) -> Response {
    let stored = state.sessions.read(request.headers());
    let mut data = stored.clone().unwrap_or_default();
    if data.cart_id.is_none() {
        data.cart_id = Some(new_cart_id());
    }
    if data.csrf_token.is_none() {
        data.csrf_token = Some(new_csrf_token());
    }
    let session = Session(Arc::new(Mutex::new(data)));
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await.into_response();
    let after = session.0.lock().clone();
    let headers = response.headers_mut();
    if stored.as_ref() != Some(&after)
        && let Some(cookie) = state.sessions.cookie(&after)
    {
        headers.append(SET_COOKIE, cookie);
    }
    for (name, value) in SECURE_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::new(&"k".repeat(64), false).expect("keys")
    }

    fn headers_with_cookie(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(cookie).expect("header"));
        headers
    }

    #[test]
    fn cart_ids_are_64_base64_characters() {
        let id = new_cart_id();
        assert_eq!(id.len(), CART_ID_LEN);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        );
        assert_ne!(id, new_cart_id());
    }

    #[test]
    fn a_signed_session_round_trips_through_the_cookie() {
        let keys = keys();
        let data = SessionData {
            cart_id: Some("test".into()),
            csrf_token: Some("t".into()),
            flash: None,
        };
        let set_cookie = keys.cookie(&data).expect("cookie");
        let set_cookie = set_cookie.to_str().expect("ascii");
        assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("Path=/"));
        let pair = set_cookie.split(';').next().expect("pair");
        let read = keys.read(&headers_with_cookie(&format!("other=1; {pair}")));
        assert_eq!(read, Some(data));
    }

    #[test]
    fn forged_or_foreign_cookies_are_ignored() {
        let keys = keys();
        let data = SessionData {
            cart_id: Some("x".repeat(64)),
            ..SessionData::default()
        };
        let set_cookie = keys.cookie(&data).expect("cookie");
        let pair = set_cookie
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let other = SessionKeys::new(&"o".repeat(64), false).expect("keys");
        assert_eq!(other.read(&headers_with_cookie(&pair)), None);
        let tampered = pair.replacen('.', ".x", 1);
        assert_eq!(keys.read(&headers_with_cookie(&tampered)), None);
        assert_eq!(
            keys.read(&headers_with_cookie("_sneakers_23_key=garbage")),
            None
        );
    }
}
