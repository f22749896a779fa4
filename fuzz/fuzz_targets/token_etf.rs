//! The Erlang External Term Format decoder behind Phoenix.Token, reached two ways: directly, and
//! through `Signer::verify_at` on a correctly signed token carrying the fuzzed bytes as payload
//! (what a Phoenix node sharing the secret could send). A term that decodes and re-encodes must
//! decode to itself.
#![no_main]

use std::sync::LazyLock;

use channels_protocol::token::{MaxAge, Signer, derive_key, etf};
use libfuzzer_sys::fuzz_target;
use sneakers23_fuzz::{NOW_MS, SECRET_KEY_BASE, TOKEN_SALT as SALT, sign_raw};

static KEYS: LazyLock<Option<(Signer, [u8; 32])>> = LazyLock::new(|| {
    let signer = Signer::new(SECRET_KEY_BASE, SALT).ok()?;
    Some((
        signer,
        derive_key(SECRET_KEY_BASE.as_bytes(), SALT.as_bytes()),
    ))
});

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    if let Ok(term) = etf::decode(data) {
        if let Ok(bytes) = etf::encode(&term) {
            match etf::decode(&bytes) {
                Ok(again) => assert_eq!(again, term, "re-encoding changed the term"),
                Err(error) => panic!("re-encoded {term:?} does not decode: {error}"),
            }
        }
    }
    let Some((signer, key)) = KEYS.as_ref() else {
        return;
    };
    let token = sign_raw(key, data);
    for max_age in [None, Some(MaxAge::Infinity), Some(MaxAge::Seconds(60))] {
        let _ = signer.verify_at(Some(&token), max_age, NOW_MS);
    }
});
