//! HTTP Basic authentication of the admin pages (spec §14.1).
//!
//! The browser sends `Authorization: Basic base64(user:password)`; anything else — no header,
//! another scheme, bad base64, wrong credentials — is answered `401 Unauthorized` with a
//! `WWW-Authenticate: Basic` challenge, which makes the browser ask for credentials.
//!
//! Credentials are compared in constant time: both sides are hashed (SHA-256, so that neither
//! the content nor the length of the expected values leaks through timing) and the digests
//! compared with `subtle`; the user and password checks are combined without short-circuit.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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
    fn unauthorized_carries_the_challenge() {
        let response = unauthorized();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE),
            Some(&HeaderValue::from_static(CHALLENGE))
        );
    }
}
