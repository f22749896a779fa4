//! The store's signed values, all derived from `SECRET_KEY_BASE` (spec §12, §19.12).
//!
//! - [`CartTokens`]: the serialized cart kept in the browser's localStorage, a Phoenix.Token of
//!   the item id list (salt `"shopping cart serialization"`, valid 7 days), so a cart minted
//!   by a Phoenix node with the same secret restores here and the other way round.
//! - [`ops_token`]: the bearer token of the node's loopback control API, which the operator
//!   CLI derives from the same secret.
//!
//! The session cookie has its own signer in the serving crate (`web::session`).

use channels_protocol::token::{KeyError, MaxAge, Signer, Term, derive_key, now_ms};

use crate::cart::{CART_TOKEN_MAX_AGE, CART_TOKEN_SALT, CartSigner};
use crate::model::ItemId;

/// Salt of the control API token.
const OPS_SALT: &[u8] = b"sneakers23 operator api";

/// Signs and verifies serialized carts (the production [`CartSigner`]).
#[derive(Debug, Clone)]
pub struct CartTokens {
    signer: Signer,
}

impl CartTokens {
    /// The cart signer of `secret_key_base` (at least 20 bytes).
    pub fn new(secret_key_base: &str) -> Result<Self, KeyError> {
        Ok(Self {
            signer: Signer::new(secret_key_base, CART_TOKEN_SALT)?,
        })
    }
}

fn max_age_secs() -> i64 {
    i64::try_from(CART_TOKEN_MAX_AGE.as_secs()).unwrap_or(i64::MAX)
}

impl CartSigner for CartTokens {
    fn sign(&self, item_ids: &[ItemId]) -> String {
        // Encoding a list of integers cannot fail; an empty string would restore as an empty
        // cart, the safe outcome.
        self.signer
            .sign_with(
                &Term::int_list(item_ids),
                now_ms(),
                MaxAge::Seconds(max_age_secs()),
            )
            .unwrap_or_default()
    }

    fn verify(&self, token: &str) -> Option<Vec<ItemId>> {
        self.signer
            .verify_int_list(Some(token), Some(MaxAge::Seconds(max_age_secs())))
            .ok()
    }
}

/// The control API's bearer token for `secret_key_base`: hex of a key derived with a salt of
/// its own, so it reveals nothing about the secret or the other tokens.
pub fn ops_token(secret_key_base: &str) -> String {
    derive_key(secret_key_base.as_bytes(), OPS_SALT)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cart::Cart;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn carts_round_trip_and_tampering_gives_an_empty_cart() -> Result<(), KeyError> {
        let tokens = CartTokens::new(SECRET)?;
        let cart = Cart::from_item_ids([3, 1, 2]);
        let token = cart.serialize(&tokens);
        assert!(token.starts_with("SFMyNTY."));
        assert_eq!(Cart::restore(&tokens, Some(&token)), cart);
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(Cart::restore(&tokens, Some(&tampered)), Cart::new());
        let other = CartTokens::new(&SECRET.replace('0', "1"))?;
        assert_eq!(Cart::restore(&other, Some(&token)), Cart::new());
        Ok(())
    }

    #[test]
    fn ops_tokens_depend_on_the_secret() {
        assert_eq!(ops_token(SECRET).len(), 64);
        assert_eq!(ops_token(SECRET), ops_token(SECRET));
        assert_ne!(ops_token(SECRET), ops_token(&SECRET.replace('0', "1")));
    }
}
