//! The store's serialized cart, as `CartTokens::verify` and `Cart::restore` in
//! apps/sneakers23-core read it from the cart channel's join params and the checkout form: a
//! Phoenix.Token with salt `"shopping cart serialization"`, verified with a 7-day max age, whose
//! data must be a list of integers (item ids), deduplicated in order.
//!
//! The store crate itself is not linked (its database, web and template dependencies would
//! multiply the instrumented build time); these are the exact calls it makes. The first byte
//! picks the input's role: a token string as a browser sends it, or the payload of a correctly
//! signed token (what a Phoenix node sharing the secret could mint).
#![no_main]

use std::sync::LazyLock;

use channels_protocol::token::{MaxAge, Signer, Term, TokenError, derive_key};
use libfuzzer_sys::fuzz_target;
use sneakers23_fuzz::{NOW_MS, SECRET_KEY_BASE, sign_raw};

/// `sneakers23::cart::CART_TOKEN_SALT`.
const CART_TOKEN_SALT: &str = "shopping cart serialization";
/// `sneakers23::cart::CART_TOKEN_MAX_AGE`, in seconds.
const CART_TOKEN_MAX_AGE_SECS: i64 = 7 * 24 * 60 * 60;

static KEYS: LazyLock<Option<(Signer, [u8; 32], String)>> = LazyLock::new(|| {
    let signer = Signer::new(SECRET_KEY_BASE, CART_TOKEN_SALT).ok()?;
    let key = derive_key(SECRET_KEY_BASE.as_bytes(), CART_TOKEN_SALT.as_bytes());
    let genuine = signer
        .sign_with(
            &Term::int_list(&[3, 1, 2]),
            NOW_MS - 1000,
            MaxAge::Seconds(CART_TOKEN_MAX_AGE_SECS),
        )
        .ok()?;
    Some((signer, key, genuine))
});

/// `CartTokens::verify` followed by `Cart::from_item_ids`, at a fixed time.
fn restore(signer: &Signer, token: &str) -> Result<Vec<i64>, TokenError> {
    let data = signer.verify_at(
        Some(token),
        Some(MaxAge::Seconds(CART_TOKEN_MAX_AGE_SECS)),
        NOW_MS,
    )?;
    let ids = data.to_int_list().ok_or(TokenError::Invalid)?;
    let mut items: Vec<i64> = Vec::new();
    for id in ids {
        if !items.contains(&id) {
            items.push(id);
        }
    }
    Ok(items)
}

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Some((signer, key, genuine)) = KEYS.as_ref() else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        if let Ok(items) = restore(signer, token) {
            assert_eq!(
                token, genuine,
                "accepted a cart the store never signed: {items:?}"
            );
            assert_eq!(items, [3, 1, 2]);
        }
    } else if let Ok(items) = restore(signer, &sign_raw(key, rest)) {
        let mut unique = items.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            items.len(),
            "a restored cart holds an item twice"
        );
    }
});
