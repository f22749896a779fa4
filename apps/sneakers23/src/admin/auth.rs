//! HTTP Basic authentication of the admin pages (spec §14.1).
//!
//! The browser sends `Authorization: Basic base64(user:password)`; anything else — no header,
//! another scheme, bad base64, wrong credentials — is answered `401 Unauthorized` with a
//! `WWW-Authenticate: Basic` challenge, which makes the browser ask for credentials.
//!
//! Credentials are compared in constant time: both sides are hashed (SHA-256, so that neither
//! the content nor the length of the expected values leaks through timing) and the digests
//! compared with `subtle`; the user and password checks are combined without short-circuit.
//!
//! Failed logins (credentials sent and wrong) are counted in `/metrics`
//! (`store_admin_login_failures_total`), logged with the user name and the client's address —
//! never the password — (rate-limited, [`sneakers23_core::logs`]), and throttled per address by
//! [`LoginThrottle`]: [`LOGIN_BURST`] failures, then one more every [`LOGIN_REFILL`]; meanwhile
//! the address gets `429 Too Many Requests` with `Retry-After`, without its credentials being
//! checked (`store_admin_login_throttled_total`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminCredentials;

/// The challenge sent with every 401.
pub const CHALLENGE: &str = "Basic realm=\"Sneakers23 admin\", charset=\"UTF-8\"";

/// The user and password of an `Authorization: Basic` header, if it is one.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether `headers` carry the expected credentials (constant-time comparison).
pub fn is_authorized(headers: &HeaderMap, expected: &AdminCredentials) -> bool {
    let Some((user, password)) = basic_credentials(headers) else {
        return false;
    };
    let user_ok = digest(&user).ct_eq(&digest(&expected.user));
    let password_ok = digest(&password).ct_eq(&digest(&expected.password));
    bool::from(user_ok & password_ok)
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

/// Failed logins an address may make at once.
pub const LOGIN_BURST: u32 = 10;
/// One more failed login is allowed per address every this long.
pub const LOGIN_REFILL: Duration = Duration::from_secs(6);
/// Addresses remembered at most; beyond, those whose allowance is whole again are forgotten.
const MAX_TRACKED: usize = 10_000;

/// Failed-login allowance by client address: a token bucket of [`LOGIN_BURST`] refilled one
/// per [`LOGIN_REFILL`]. Only failures take from it.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl LoginThrottle {
    fn allowance(tokens: f64, since: Instant, now: Instant) -> f64 {
        let refilled = now.duration_since(since).as_secs_f64() / LOGIN_REFILL.as_secs_f64();
        (tokens + refilled).min(f64::from(LOGIN_BURST))
    }

    /// How long `ip` must wait before its credentials are checked again, if it must.
    pub fn wait(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock();
        let (tokens, since) = buckets.get(&ip)?;
        let tokens = Self::allowance(*tokens, *since, now);
        (tokens < 1.0).then(|| LOGIN_REFILL.mul_f64(1.0 - tokens))
    }

    /// Takes one failure from `ip`'s allowance.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock();
        if buckets.len() >= MAX_TRACKED {
            buckets.retain(|_, (tokens, since)| {
                Self::allowance(*tokens, *since, now) < f64::from(LOGIN_BURST)
            });
        }
        let (tokens, since) = buckets.entry(ip).or_insert((f64::from(LOGIN_BURST), now));
        *tokens = (Self::allowance(*tokens, *since, now) - 1.0).max(0.0);
        *since = now;
    }
}

/// The client address axum's `ConnectInfo` carries (unspecified when served without it).
pub fn client_ip(extensions: &Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
}

/// Checks the admin credentials of a request from `ip`: `None` when they are right; otherwise
/// the response to send (401 challenge, or 429 while the address is throttled), the failure
/// counted, logged and taken from the address's allowance.
pub fn authorize(
    headers: &HeaderMap,
    expected: &AdminCredentials,
    throttle: &LoginThrottle,
    ip: IpAddr,
) -> Option<Response> {
    let now = Instant::now();
    if let Some(wait) = throttle.wait(ip, now) {
        metrics::counter!("store_admin_login_throttled_total").increment(1);
        sneakers23_core::logs::client_warning_with(
            "admin login throttled",
            &format_args!("address={ip}"),
        );
        let seconds = wait.as_secs().max(1).to_string();
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins from this address; try again later\n",
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Some(response);
    }
    if is_authorized(headers, expected) {
        return None;
    }
    if headers.contains_key(header::AUTHORIZATION) {
        throttle.failed(ip, now);
        metrics::counter!("store_admin_login_failures_total").increment(1);
        let user = basic_credentials(headers).map(|(user, _)| user);
        let user: String = user
            .as_deref()
            .unwrap_or("(unreadable credentials)")
            .chars()
            .take(64)
            .collect();
        sneakers23_core::logs::client_warning_with(
            "admin login failed",
            &format_args!("user={user:?} address={ip}"),
        );
    }
    Some(unauthorized())
}

/// `401 Unauthorized` with the Basic challenge.
pub fn unauthorized() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "Authentication required\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::AUTHORIZATION, value);
        }
        headers
    }

    fn basic(user_password: &str) -> HeaderMap {
        headers(&format!("Basic {}", STANDARD.encode(user_password)))
    }

    #[test]
    fn accepts_only_the_expected_credentials() {
        let expected = AdminCredentials::development();
        assert!(is_authorized(&basic("admin:password"), &expected));
        assert!(is_authorized(
            &headers(&format!("basic  {}", STANDARD.encode("admin:password"))),
            &expected
        ));
        assert!(!is_authorized(&basic("admin:passwordx"), &expected));
        assert!(!is_authorized(&basic("admin:"), &expected));
        assert!(!is_authorized(&basic("adminpassword"), &expected));
        assert!(!is_authorized(&basic("root:password"), &expected));
        assert!(!is_authorized(&headers("Basic !!!"), &expected));
        assert!(!is_authorized(&headers("Bearer abc"), &expected));
        assert!(!is_authorized(&HeaderMap::new(), &expected));
    }

    #[test]
    fn passwords_may_contain_colons() {
        let expected = AdminCredentials {
            user: "ops".into(),
            password: "a:b".into(),
        };
        assert!(is_authorized(&basic("ops:a:b"), &expected));
    }

    #[test]
    fn failures_are_throttled_per_address_and_refill() {
        let throttle = LoginThrottle::default();
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let now = Instant::now();
        for _ in 0..LOGIN_BURST {
            assert_eq!(throttle.wait(a, now), None);
            throttle.failed(a, now);
        }
        assert!(throttle.wait(a, now).is_some(), "the burst is used up");
        assert_eq!(throttle.wait(b, now), None, "another address");
        assert_eq!(throttle.wait(a, now + LOGIN_REFILL), None, "one more later");
    }

    #[test]
    fn unauthorized_carries_the_challenge() {
        let response = unauthorized();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static(CHALLENGE))
        );
    }
}
