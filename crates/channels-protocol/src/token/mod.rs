//! Signed tokens interchangeable with `Phoenix.Token.sign/verify`.
//!
//! # Concepts
//!
//! A token lets a server hand data to a client (a user id for the socket, a
//! shopping cart) and later trust it back: the data is readable by anyone but
//! cannot be altered without the server's secret. Phoenix builds one as
//! follows, and so does [`Signer`], byte for byte:
//!
//! 1. The payload is the Erlang term `{data, signed_at_ms, max_age_seconds}`
//!    in External Term Format ([`etf`]), with `max_age_seconds` defaulting to
//!    86 400 (one day).
//! 2. The key is PBKDF2-HMAC-SHA256 of the application's `secret_key_base`
//!    with a *salt* naming the purpose (`"user socket"`, `"cart"`), 1000
//!    iterations, 32 bytes ([`derive_key`]). A token signed for one salt does
//!    not verify under another.
//! 3. The token is `"SFMyNTY." + base64url(payload) + "." +
//!    base64url(HMAC-SHA256(key, "SFMyNTY." + base64url(payload)))`, base64
//!    without padding. `SFMyNTY` is base64 for `HS256`.
//!
//! Verification recomputes the MAC (constant-time comparison; `SFMzODQ`/HS384
//! and `SFM1MTI`/HS512 headers are accepted too), decodes the term, and checks
//! its age: the verifier's `max_age`, when given, overrides the one in the
//! token; a max age `<= 0` means expired; a token signed in the future is
//! invalid; one older than its max age is expired. Phoenix's legacy payload
//! shapes `{data, signed_at_ms}` and `%{data: data, signed: signed_at_ms}` are
//! accepted with the default max age.
//!
//! ```
//! use channels_protocol::token::{Signer, Term, TokenError};
//!
//! let signer = Signer::new("a".repeat(64), "user auth")?;
//! let token = signer.sign_at(&Term::from(1_i64), 1_700_000_000_000)?;
//! assert_eq!(token, "SFMyNTY.g2gDYQFuBgAAaOXPiwFiAAFRgA.9gShOaPCMVYklRMi2bi1jGGGEQ1n5rsnhPvGUJk-QLQ");
//!
//! // One hour later it is still valid, two days later it has expired.
//! let hour = 3_600_000;
//! assert_eq!(signer.verify_at(Some(&token), None, 1_700_000_000_000 + hour)?, Term::from(1_i64));
//! assert_eq!(signer.verify_at(Some(&token), None, 1_700_000_000_000 + 48 * hour), Err(TokenError::Expired));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every failure is one of three [`TokenError`]s, like Phoenix's
//! `{:error, :missing | :invalid | :expired}`; the cause of an `Invalid` is
//! deliberately not reported to callers, who should not tell an attacker
//! which check failed.

pub mod etf;
mod key;
mod term;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

pub use etf::TermError;
pub use key::derive_key;
pub use term::Term;

use key::{Algorithm, Keyed};

/// The max age Phoenix embeds when none is given: one day, in seconds.
pub const DEFAULT_MAX_AGE_SECS: i64 = 86_400;

/// The shortest `secret_key_base` Phoenix accepts, in bytes.
pub const MIN_SECRET_KEY_BASE_LEN: usize = 20;

/// Why a token was not accepted (Phoenix's `:missing`, `:invalid`,
/// `:expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TokenError {
    /// No token was given.
    #[error("token missing")]
    Missing,
    /// The token is malformed, was tampered with, was signed with another
    /// secret or salt, carries an unexpected payload, or is dated in the
    /// future.
    #[error("token invalid")]
    Invalid,
    /// The token is older than its max age.
    #[error("token expired")]
    Expired,
}

/// Why a [`Signer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The secret is shorter than [`MIN_SECRET_KEY_BASE_LEN`] bytes.
    #[error(
        "secret_key_base is {len} bytes; at least 20 are required (generate one with 64 random bytes)"
    )]
    SecretTooShort {
        /// Its length in bytes.
        len: usize,
    },
}

/// How long a token stays valid after it was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaxAge {
    /// This many seconds (`<= 0` makes every token expired).
    Seconds(i64),
    /// Forever (Elixir's `:infinity`).
    Infinity,
}

impl Default for MaxAge {
    fn default() -> Self {
        MaxAge::Seconds(DEFAULT_MAX_AGE_SECS)
    }
}

/// Signs and verifies tokens for one (`secret_key_base`, salt) pair.
///
/// Building one derives the key (1000 PBKDF2 rounds, around a millisecond),
/// so build it once per salt and keep it: it is the key cache. It is `Clone`,
/// `Send` and `Sync`. `Debug` does not print the key.
#[derive(Clone)]
pub struct Signer {
    key: Keyed,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// Derives the key for `salt` from `secret_key_base`, which must be at
    /// least [`MIN_SECRET_KEY_BASE_LEN`] bytes.
    pub fn new(
        secret_key_base: impl AsRef<[u8]>,
        salt: impl AsRef<[u8]>,
    ) -> Result<Self, KeyError> {
        let secret = secret_key_base.as_ref();
        if secret.len() < MIN_SECRET_KEY_BASE_LEN {
            return Err(KeyError::SecretTooShort { len: secret.len() });
        }
        Ok(Signer {
            key: Keyed::new(derive_key(secret, salt.as_ref())),
        })
    }

    /// Signs `data` now with the default max age (one day).
    pub fn sign(&self, data: &Term) -> Result<String, TermError> {
        self.sign_at(data, now_ms())
    }

    /// Signs `data` as if at `signed_at_ms` (Unix milliseconds) with the
    /// default max age.
    pub fn sign_at(&self, data: &Term, signed_at_ms: i64) -> Result<String, TermError> {
        self.sign_with(data, signed_at_ms, MaxAge::default())
    }

    /// Signs `data` at `signed_at_ms` with an explicit max age to embed.
    ///
    /// Fails only if `data` cannot be encoded (see [`TermError`]).
    pub fn sign_with(
        &self,
        data: &Term,
        signed_at_ms: i64,
        max_age: MaxAge,
    ) -> Result<String, TermError> {
        let max_age = match max_age {
            MaxAge::Seconds(secs) => Term::from(secs),
            MaxAge::Infinity => Term::atom("infinity"),
        };
        let encoded = etf::encode_tuple(&[data, &Term::from(signed_at_ms), &max_age])?;
        let alg = Algorithm::Hs256;
        let mut token = String::with_capacity(encoded.len() * 4 / 3 + 64);
        token.push_str(alg.header());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&encoded, &mut token);
        let mac = self.key.mac(alg, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&mac, &mut token);
        Ok(token)
    }

    /// Verifies `token` now. `max_age`, when given, overrides the max age
    /// embedded in the token (Phoenix's `:max_age` option).
    pub fn verify(&self, token: Option<&str>, max_age: Option<MaxAge>) -> Result<Term, TokenError> {
        self.verify_at(token, max_age, now_ms())
    }

    /// Verifies `token` as if the time were `now_ms` (Unix milliseconds) and
    /// returns the signed data.
    pub fn verify_at(
        &self,
        token: Option<&str>,
        max_age: Option<MaxAge>,
        now_ms: i64,
    ) -> Result<Term, TokenError> {
        let token = token.ok_or(TokenError::Missing)?;
        let message = self.authenticate(token).ok_or(TokenError::Invalid)?;
        let term = etf::decode(&message).map_err(|_| TokenError::Invalid)?;
        let (data, signed_at_ms, embedded) = payload_parts(term).ok_or(TokenError::Invalid)?;
        let limit_ms = match max_age {
            Some(MaxAge::Infinity) => None,
            Some(MaxAge::Seconds(secs)) => {
                if secs <= 0 {
                    return Err(TokenError::Expired);
                }
                Some(i128::from(secs) * 1000)
            }
            None => embedded.limit_ms()?,
        };
        let Some(limit_ms) = limit_ms else {
            return Ok(data);
        };
        let now_ms = i128::from(now_ms);
        if signed_at_ms > now_ms {
            return Err(TokenError::Invalid);
        }
        if signed_at_ms.saturating_add(limit_ms) < now_ms {
            return Err(TokenError::Expired);
        }
        Ok(data)
    }

    /// Checks the token's structure and MAC; returns the decoded ETF bytes.
    fn authenticate(&self, token: &str) -> Option<Vec<u8>> {
        let mut parts = token.split('.');
        let (header, payload, mac) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let alg = Algorithm::from_header(header)?;
        let signed = token.get(..header.len() + 1 + payload.len())?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let expected = self.key.mac(alg, signed.as_bytes());
        if !bool::from(expected.ct_eq(&given)) {
            return None;
        }
        URL_SAFE_NO_PAD.decode(payload).ok()
    }

    /// Signs a string now (e.g. an admin's user name), default max age.
    pub fn sign_string(&self, value: &str) -> Result<String, TermError> {
        self.sign(&Term::from(value))
    }

    /// Verifies a token made by [`Signer::sign_string`] (or by Phoenix for a
    /// string); data of any other type is [`TokenError::Invalid`].
    pub fn verify_string(
        &self,
        token: Option<&str>,
        max_age: Option<MaxAge>,
    ) -> Result<String, TokenError> {
        let data = self.verify(token, max_age)?;
        data.as_str().map(str::to_owned).ok_or(TokenError::Invalid)
    }

    /// Signs a list of integers now (e.g. a cart's item ids), default max age.
    pub fn sign_int_list(&self, values: &[i64]) -> Result<String, TermError> {
        self.sign(&Term::int_list(values))
    }

    /// Verifies a token made by [`Signer::sign_int_list`] (or by Phoenix for
    /// a list of integers); data of any other type is [`TokenError::Invalid`].
    pub fn verify_int_list(
        &self,
        token: Option<&str>,
        max_age: Option<MaxAge>,
    ) -> Result<Vec<i64>, TokenError> {
        let data = self.verify(token, max_age)?;
        data.to_int_list().ok_or(TokenError::Invalid)
    }
}

/// The max age found inside a token.
enum Embedded {
    Infinity,
    /// Whole seconds, or a float number of seconds (Plug truncates
    /// `max_age * 1000`).
    Seconds(i128),
    FloatSeconds(f64),
}

impl Embedded {
    /// The validity window in milliseconds (`None` = forever), or `Expired`
    /// for a non-positive max age.
    fn limit_ms(&self) -> Result<Option<i128>, TokenError> {
        match *self {
            Embedded::Infinity => Ok(None),
            Embedded::Seconds(secs) if secs <= 0 => Err(TokenError::Expired),
            Embedded::Seconds(secs) => Ok(Some(secs.saturating_mul(1000))),
            Embedded::FloatSeconds(secs) if secs <= 0.0 => Err(TokenError::Expired),
            // `as` saturates for floats too large for i128.
            Embedded::FloatSeconds(secs) => Ok(Some((secs * 1000.0).trunc() as i128)),
        }
    }
}

/// Splits a decoded payload into (data, signed_at_ms, max age), accepting the
/// current shape and the two legacy ones.
fn payload_parts(term: Term) -> Option<(Term, i128, Embedded)> {
    let legacy = Embedded::Seconds(DEFAULT_MAX_AGE_SECS.into());
    match term {
        Term::Tuple(items) => {
            let mut items = items.into_iter();
            let (data, signed, max_age) = (items.next()?, items.next()?, items.next());
            if items.next().is_some() {
                return None;
            }
            let Term::Integer(signed) = signed else {
                return None;
            };
            let max_age = match max_age {
                None => legacy,
                Some(Term::Integer(secs)) => Embedded::Seconds(secs),
                Some(Term::Float(secs)) => Embedded::FloatSeconds(secs),
                Some(Term::Atom(name)) if name == "infinity" => Embedded::Infinity,
                Some(_) => return None,
            };
            Some((data, signed, max_age))
        }
        Term::Map(pairs) if pairs.len() == 2 => {
            let mut data = None;
            let mut signed = None;
            for (key, value) in pairs {
                match (key.as_atom(), value) {
                    (Some("data"), value) => data = Some(value),
                    (Some("signed"), Term::Integer(at)) => signed = Some(at),
                    _ => return None,
                }
            }
            Some((data?, signed?, legacy))
        }
        _ => None,
    }
}

/// Wall-clock Unix time in milliseconds: the clock tokens are signed and checked by, and the
/// one place the stack reads it in that unit (0 before 1970, saturating far in the future).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}
