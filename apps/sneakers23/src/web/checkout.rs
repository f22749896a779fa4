//! Checkout (spec §13, §19.8): `GET /checkout`, `POST /checkout`, `GET /checkout/complete`.
//!
//! The cart comes from the browser (`serialized_cart`, the signed token the cart panel posts);
//! the checks and the purchase are [`sneakers23_core::checkout`]'s. The purchase form carries the
//! session's CSRF token and an order key, fresh for every rendering of the page: posting the
//! same form again (a double click, a replay, a retry after a lost answer) answers with the
//! order it already made and sells nothing more. A completed purchase redirects to
//! `/checkout/complete?order=<key>`, which names the order; without a known order that page
//! thanks nobody. A completed purchase empties the cart in every open tab of the shopper: the
//! cart id of the session names the `cart:<id>` topic all of them joined.
//!
//! A submitted cart longer than [`MAX_SERIALIZED_CART`] is not echoed into the redirect's
//! `Location` (a valid one is far shorter).

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;

use super::ShopState;
use super::pages::{error_page, page};
use super::session::Session;
use super::views::{CheckoutView, CompletePage, Layout};
use crate::sockets::cart::clear_cart_everywhere;
use sneakers23_core::cart::Cart;
use sneakers23_core::checkout::{
    CheckoutOutcome, CheckoutPage, is_valid_order_key, new_order_key, purchase_order,
};
use sneakers23_core::db::Purchase;

/// `GET /checkout?serialized_cart=…`: no cart parameter ⇒ redirect home.
pub async fn show(
    State(state): State<ShopState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(serialized) = query.get("serialized_cart") else {
        return Redirect::to("/").into_response();
    };
    let cart = Cart::restore(state.cart_signer.as_ref(), Some(serialized));
    let checkout = CheckoutPage::new(&state.inventory.snapshot(), &cart);
    let csrf_token = session.csrf_token();
    let order_key = new_order_key();
    let view = CheckoutView {
        layout: Layout::new(session.cart_id().as_deref(), None),
        page: &checkout,
        error: session.take_flash(),
        csrf_token: &csrf_token,
        serialized_cart: serialized,
        order_key: &order_key,
    };
    page(StatusCode::OK, &view)
}

/// `POST /checkout` with `serialized_cart` and `_csrf_token`.
pub async fn purchase(
    State(state): State<ShopState>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !session.csrf_matches(form.get("_csrf_token").map(String::as_str)) {
        sneakers23_core::logs::client_error("checkout refused: missing or wrong CSRF token");
        return error_page(
            StatusCode::FORBIDDEN,
            &session,
            "This form has expired",
            "The purchase form was not sent by this page or has expired. Go back, reload the \
             checkout page and try again.",
        );
    }
    let submitted = form
        .get("serialized_cart")
        .map(String::as_str)
        .unwrap_or_default();
    let submitted = if submitted.len() > MAX_SERIALIZED_CART {
        sneakers23_core::logs::client_error("checkout refused: serialized_cart too long");
        ""
    } else {
        submitted
    };
    let Some(key) = form
        .get("order_key")
        .map(String::as_str)
        .filter(|k| is_valid_order_key(k))
    else {
        sneakers23_core::logs::client_error("checkout refused: missing or malformed order key");
        session.put_flash(FORM_EXPIRED);
        return Redirect::to(&checkout_url(submitted)).into_response();
    };
    let cart = Cart::restore(state.cart_signer.as_ref(), Some(submitted));
    let outcome = purchase_order(&state.inventory, key, &cart).await;
    metrics::counter!("store_checkouts_total", "outcome" => outcome_label(&outcome)).increment(1);
    match &outcome {
        CheckoutOutcome::Complete(purchase) => {
            if let Some(cart_id) = session.cart_id() {
                clear_cart_everywhere(&state.endpoint, state.cart_signer.as_ref(), &cart_id);
            }
            let order = purchase.order();
            tracing::info!(order = order.id, item_ids = ?order.item_ids, replay = !matches!(purchase, Purchase::New(_)), "purchase complete");
            Redirect::to(&complete_url(key)).into_response()
        }
        CheckoutOutcome::Unconfirmed { key } => Redirect::to(&complete_url(key)).into_response(),
        _ => {
            if let Some(message) = outcome.flash_message() {
                session.put_flash(message);
            }
            Redirect::to(&checkout_url(submitted)).into_response()
        }
    }
}

/// The flash of a purchase form without a valid order key (a page from an older version).
const FORM_EXPIRED: &str = "your purchase form has expired, please try again";

/// Longest `serialized_cart` echoed into a redirect: a signed cart of the largest allowed
/// size is a few hundred bytes.
pub const MAX_SERIALIZED_CART: usize = 4096;

fn complete_url(key: &str) -> String {
    format!("/checkout/complete?order={key}")
}

/// `GET /checkout/complete?order=<key>`: names the order; an unknown or missing order gets a
/// 404 page, and a database that cannot answer a 503 page asking to reload.
pub async fn complete(
    State(state): State<ShopState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let key = query
        .get("order")
        .map(String::as_str)
        .filter(|k| is_valid_order_key(k));
    let found = match key {
        Some(key) => state.db.find_order_bounded(key).await,
        None => Ok(None),
    };
    match found {
        Ok(Some(order)) => page(
            StatusCode::OK,
            &CompletePage {
                layout: Layout::new(session.cart_id().as_deref(), session.take_flash()),
                order_id: order.id,
            },
        ),
        Ok(None) => error_page(
            StatusCode::NOT_FOUND,
            &session,
            "No such order",
            "There is no order at this address. If you just bought something, check the \
             address you were sent to; nothing was bought by opening this page.",
        ),
        Err(error) => {
            tracing::warn!(%error, "could not look up an order for its completion page");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &session,
                "We could not confirm your order yet",
                "The store cannot reach its database right now, so it cannot tell whether \
                 this order went through. Reload this page in a moment: your order will not \
                 be placed twice.",
            )
        }
    }
}

fn outcome_label(outcome: &CheckoutOutcome) -> &'static str {
    match outcome {
        CheckoutOutcome::Complete(Purchase::New(_)) => "complete",
        CheckoutOutcome::Complete(Purchase::Existing(_)) => "replayed",
        CheckoutOutcome::Unconfirmed { .. } => "unconfirmed",
        CheckoutOutcome::EmptyCart => "empty_cart",
        CheckoutOutcome::OutOfStock => "out_of_stock",
        CheckoutOutcome::NotReleased => "not_released",
        CheckoutOutcome::PurchaseFailed(_) => "purchase_failed",
    }
}

/// The checkout page of a submitted cart (`/checkout` alone when nothing was submitted).
fn checkout_url(serialized: &str) -> String {
    if serialized.is_empty() {
        "/checkout".to_owned()
    } else {
        format!("/checkout?serialized_cart={}", percent_encode(serialized))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_carry_the_submitted_cart_encoded() {
        assert_eq!(checkout_url(""), "/checkout");
        assert_eq!(
            checkout_url("SFMyNTY.ab_c-d.x"),
            "/checkout?serialized_cart=SFMyNTY.ab_c-d.x"
        );
        assert_eq!(
            checkout_url("a b&c=/"),
            "/checkout?serialized_cart=a%20b%26c%3D%2F"
        );
    }
}
