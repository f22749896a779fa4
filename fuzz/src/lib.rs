//! Helpers shared by the fuzz targets.
//!
//! A Phoenix.Token is authenticated before its payload is decoded, so random bytes never get past
//! the MAC check. [`sign_raw`] builds a correctly signed token around arbitrary payload bytes, the
//! way a node holding the secret (or a Phoenix application sharing it) could, so that the term
//! decoder and the age checks behind the MAC are fuzzed too.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A `secret_key_base` for the targets (the length Phoenix generates).
pub const SECRET_KEY_BASE: &str =
    "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";

/// The "current time" the targets verify at, in Unix milliseconds.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// An HS256 token whose payload is `payload` verbatim (not necessarily a valid term), signed with
/// `key` (see `channels_protocol::token::derive_key`).
pub fn sign_raw(key: &[u8; 32], payload: &[u8]) -> String {
    let mut token = String::from("SFMyNTY.");
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    // HMAC accepts keys of any length; a 32-byte key cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return token;
    };
    mac.update(token.as_bytes());
    let tag = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

/// The salt of the token targets' signer.
pub const TOKEN_SALT: &str = "user socket";

/// The only tokens the token targets' signer ever made (also the seeds of `token_verify`): an
/// integer, a string and an integer list signed a second before [`NOW_MS`], and one that never
/// expires. Signing cannot fail for these terms; a failure leaves the list shorter.
pub fn signed_tokens(signer: &channels_protocol::token::Signer) -> Vec<String> {
    use channels_protocol::token::{MaxAge, Term};
    let at = NOW_MS - 1000;
    [
        (Term::from(42_i64), MaxAge::Seconds(86_400)),
        (Term::from("user:1"), MaxAge::Seconds(86_400)),
        (Term::int_list(&[3, 1, 2]), MaxAge::Seconds(604_800)),
        (Term::from(7_i64), MaxAge::Infinity),
    ]
    .iter()
    .filter_map(|(term, max_age)| signer.sign_with(term, at, *max_age).ok())
    .collect()
}

/// A global allocator that aborts on any single allocation over [`CappedAlloc::LIMIT`].
///
/// libFuzzer's `-malloc_limit_mb` works only through a sanitizer's malloc hooks. Long runs go
/// without AddressSanitizer (`SANITIZER=none scripts/fuzz.sh long …`: the decoders hold no
/// `unsafe`, and the rate is several times higher), so this allocator keeps the "no unbounded
/// allocation" check: an oversized request aborts, and libFuzzer saves the input as a crash.
/// Each target installs it with `#[global_allocator]`.
pub struct CappedAlloc;

impl CappedAlloc {
    /// The largest single allocation a decoder may make: 256 MiB, as `-malloc_limit_mb` in the
    /// ASan runs.
    pub const LIMIT: usize = 256 << 20;
}

// SAFETY: every call is forwarded unchanged to the system allocator; requests over the limit
// abort before reaching it.
unsafe impl std::alloc::GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > Self::LIMIT {
            std::process::abort();
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract for `layout`.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > Self::LIMIT {
            std::process::abort();
        }
        // SAFETY: as in `alloc`.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` was returned by this allocator (hence by `System`) for `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > Self::LIMIT {
            std::process::abort();
        }
        // SAFETY: as in `dealloc`; `new_size` is non-zero per the caller's contract.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}
