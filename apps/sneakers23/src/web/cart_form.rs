//! `POST /cart/add`: the size selector without JavaScript.
//!
//! The size buttons are a form posting `item_id` here; with JavaScript the shop script takes the
//! click over (the cart channel), without it this route adds the item to the cart the form
//! carries (`serialized_cart`, none for a first item) and opens the checkout page of the result,
//! from which the shopper can purchase. A refused item (sold out, not released…) brings the
//! shopper back to the shop with the reason shown at the top.

use std::collections::HashMap;

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::Value;

use super::ShopState;
use super::session::Session;
use sneakers23_core::cart::{Cart, CartError, parse_item_id};

/// What a shopper reads when an item cannot be added.
pub fn refusal(error: CartError) -> &'static str {
    match error {
        CartError::DuplicateItem => "That size is already in your cart.",
        CartError::CartFull => "Your cart is full: remove an item to add another.",
        CartError::NotFound => "That item is no longer in your cart.",
        CartError::InvalidItem => "That size does not exist.",
        CartError::NotReleased => "That shoe is not released yet.",
        CartError::OutOfStock => "Sorry, that size just sold out.",
    }
}

/// `POST /cart/add` with `item_id` (and optionally `serialized_cart`).
pub async fn add(
    State(state): State<ShopState>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let signer = state.cart_signer.as_ref();
    let mut cart = Cart::restore(signer, form.get("serialized_cart").map(String::as_str));
    let added = form
        .get("item_id")
        .ok_or(CartError::InvalidItem)
        .and_then(|id| parse_item_id(&Value::String(id.trim().to_owned())))
        .and_then(|id| cart.add_checked(&state.inventory.snapshot(), id, state.max_cart_items));
    match added {
        Ok(()) | Err(CartError::DuplicateItem) => {
            let token = cart.serialize(signer);
            Redirect::to(&format!("/checkout?serialized_cart={}", encode(&token))).into_response()
        }
        Err(error) => {
            session.put_flash(refusal(error));
            Redirect::to("/").into_response()
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
