//! `Signer::verify_at` on any string a client can send as a token (socket `token` param, session
//! cookie, serialized cart, admin token): splitting, base64, header and MAC checks.
//!
//! The first byte picks the max age the caller passes; the rest is the token. The seed corpus
//! holds the tokens of [`sneakers23_fuzz::signed_tokens`]; a token is accepted only if it is one of
//! them byte for byte: any other accepted string would mean tokens are malleable or forgeable.
#![no_main]

use std::sync::LazyLock;

use channels_protocol::token::{MaxAge, Signer};
use libfuzzer_sys::fuzz_target;
use sneakers23_fuzz::{NOW_MS, SECRET_KEY_BASE, TOKEN_SALT, signed_tokens};

static SIGNER: LazyLock<Option<(Signer, Vec<String>)>> = LazyLock::new(|| {
    let signer = Signer::new(SECRET_KEY_BASE, TOKEN_SALT).ok()?;
    let tokens = signed_tokens(&signer);
    Some((signer, tokens))
});

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Some((signer, genuine)) = SIGNER.as_ref() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(token) = std::str::from_utf8(rest) else {
        return;
    };
    let max_age = match mode % 4 {
        0 => None,
        1 => Some(MaxAge::Infinity),
        2 => Some(MaxAge::Seconds(86_400)),
        _ => Some(MaxAge::Seconds(i64::from(mode) - 200)),
    };
    if let Ok(term) = signer.verify_at(Some(token), max_age, NOW_MS) {
        assert!(
            genuine.iter().any(|t| t == token),
            "accepted a token this signer never made: {token:?} -> {term:?}"
        );
    }
});
