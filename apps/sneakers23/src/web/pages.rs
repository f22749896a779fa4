//! `GET /`: the product page (spec §11.1), rendered from this node's inventory cache, never
//! from the database, and never kept by the browser's back/forward cache (`Cache-Control:
//! no-store, must-revalidate`, the fix of the book's chapter 8).

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::StatusCode;
use http::header::CACHE_CONTROL;

use super::ShopState;
use super::session::Session;
use super::views::{ErrorPage, IndexPage, Layout};

/// The `Cache-Control` of every shop page.
pub const NO_STORE: &str = "no-store, must-revalidate";

/// A rendered page with the shop's cache policy, or a 500 page if rendering failed.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, [(CACHE_CONTROL, NO_STORE)], Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "page rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the server log",
            )
                .into_response()
        }
    }
}

/// An error page with `status`.
pub fn error_page(status: StatusCode, session: &Session, title: &str, message: &str) -> Response {
    page(
        status,
        &ErrorPage {
            layout: Layout::new(session.cart_id().as_deref(), None),
            title,
            message,
        },
    )
}

/// `GET /`.
pub async fn index(State(state): State<ShopState>, session: Session) -> Response {
    let snapshot = state.inventory.snapshot();
    let view = IndexPage {
        layout: Layout::new(session.cart_id().as_deref(), session.take_flash()),
        products: snapshot.products().collect(),
    };
    page(StatusCode::OK, &view)
}

/// Any path the store does not serve: a 404 page that leads back to the shop.
pub async fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            layout: Layout::new(None, None),
            title: "Page not found",
            message: "There is nothing at this address. The shoes are on the home page.",
        },
    )
}
