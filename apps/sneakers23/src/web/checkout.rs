//! Checkout (spec §13, §19.8): `GET /checkout`, `POST /checkout`, `GET /checkout/complete`.
//!
//! The cart comes from the browser (`serialized_cart`, the signed token the cart panel posts);
//! the checks and the purchase are [`crate::checkout`]'s. The purchase form carries the
//! session's CSRF token. A completed purchase empties the cart in every open tab of the
//! shopper: the cart id of the session names the `cart:<id>` topic all of them joined.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use http::StatusCode;

use super::AppState;
use super::pages::{error_page, page};
use super::session::Session;
use super::views::{CheckoutView, CompletePage, Layout};
use crate::cart::Cart;
use crate::checkout::{CheckoutOutcome, CheckoutPage, purchase as purchase_cart};
use crate::sockets::cart::clear_cart_everywhere;

/// `GET /checkout?serialized_cart=…`: no cart parameter ⇒ redirect home.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(serialized) = query.get("serialized_cart") else {
        return Redirect::to("/").into_response();
    };
    let cart = Cart::restore(state.cart_signer.as_ref(), Some(serialized));
    let checkout = CheckoutPage::new(&state.inventory.snapshot(), &cart);
    let csrf_token = session.csrf_token();
    let view = CheckoutView {
        layout: Layout::new(session.cart_id().as_deref(), None),
        page: &checkout,
        error: session.take_flash(),
        csrf_token: &csrf_token,
        serialized_cart: serialized,
    };
    page(StatusCode::OK, &view)
}

/// `POST /checkout` with `serialized_cart` and `_csrf_token`.
pub async fn purchase(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !session.csrf_matches(form.get("_csrf_token").map(String::as_str)) {
        tracing::info!("checkout refused: missing or wrong CSRF token");
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
    let cart = Cart::restore(state.cart_signer.as_ref(), Some(submitted));
    let outcome = purchase_cart(&state.inventory, &cart).await;
    metrics::counter!("store_checkouts_total", "outcome" => outcome_label(&outcome)).increment(1);
    match outcome.flash_message() {
        None => {
            if let Some(cart_id) = session.cart_id() {
                clear_cart_everywhere(&state.endpoint, state.cart_signer.as_ref(), &cart_id);
            }
            tracing::info!(item_ids = ?cart.item_ids(), "purchase complete");
            Redirect::to("/checkout/complete").into_response()
        }
        Some(message) => {
            session.put_flash(message);
            Redirect::to(&checkout_url(submitted)).into_response()
        }
    }
}

/// `GET /checkout/complete`.
pub async fn complete(session: Session) -> Response {
    page(
        StatusCode::OK,
        &CompletePage {
            layout: Layout::new(session.cart_id().as_deref(), session.take_flash()),
        },
    )
}

fn outcome_label(outcome: &CheckoutOutcome) -> &'static str {
    match outcome {
        CheckoutOutcome::Complete => "complete",
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
