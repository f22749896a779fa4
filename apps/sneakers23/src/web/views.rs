//! The server-rendered HTML: compile-checked askama templates (`templates/`) and the structs
//! that feed them.
//!
//! Every shop page extends `layout.html` (spec §8.3): title `Sneakers23`, a header linking
//! home, `app.css` and `app.js`, an optional flash alert, and, when the session has a cart id,
//! the empty `div#cart-container` plus `window.cartId`. The size selector (`_sizes.html`,
//! spec §11.2) is shared by the product page and the `released` broadcast
//! ([`crate::fragments`], re-exported here).

use askama::Template;

pub use crate::fragments::{SizeSelector, js_string, render, size_selector_html};
use sneakers23_core::checkout::CheckoutPage;
use sneakers23_core::inventory::CompleteProduct;

/// What every shop page's layout needs.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The cart id as a JavaScript string literal (`None`: no cart container).
    pub cart_id_js: Option<String>,
    /// A flash message shown as an alert at the top of the page.
    pub flash: Option<String>,
    /// The stylesheet's fingerprinted URL.
    pub app_css: String,
    /// The script's fingerprinted URL.
    pub app_js: String,
}

impl Layout {
    /// A layout for a session with `cart_id`, showing `flash` in the page header.
    pub fn new(cart_id: Option<&str>, flash: Option<String>) -> Self {
        Self {
            cart_id_js: cart_id.map(js_string),
            flash,
            app_css: super::assets::url("/css/app.css"),
            app_js: super::assets::url("/js/app.js"),
        }
    }
}

/// `GET /`: the product list (spec §11.1).
#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    /// Layout data.
    pub layout: Layout,
    /// Products in display order.
    pub products: Vec<&'a CompleteProduct>,
}

/// `GET /checkout` (spec §13).
#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutView<'a> {
    /// Layout data (its own flash stays empty: errors show as "Sorry, …." here).
    pub layout: Layout,
    /// The cart's items and what is wrong with them.
    pub page: &'a CheckoutPage,
    /// The flash error of a failed purchase.
    pub error: Option<String>,
    /// The session's CSRF token for the purchase form.
    pub csrf_token: &'a str,
    /// The serialized cart, posted back on purchase.
    pub serialized_cart: &'a str,
    /// The order key of this rendering of the form (a replayed post finds its order).
    pub order_key: &'a str,
}

/// `GET /checkout/complete`.
#[derive(Template)]
#[template(path = "complete.html")]
pub struct CompletePage {
    /// Layout data.
    pub layout: Layout,
    /// The order number.
    pub order_id: i64,
}

/// A plain error page (bad CSRF token, unexpected failures).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Layout data.
    pub layout: Layout,
    /// Heading.
    pub title: &'a str,
    /// What happened and what to do.
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sneakers23_core::test_support::fixture_with;

    #[test]
    fn the_index_lists_products_and_the_cart_container() -> Result<(), askama::Error> {
        let snapshot = fixture_with(false);
        let page = IndexPage {
            layout: Layout::new(Some("cart-id"), None),
            products: snapshot.products().collect(),
        };
        let html = page.render()?;
        assert!(html.contains("<title>Sneakers23</title>"));
        assert!(html.contains("class=\"product-soon product-soon-2\">coming soon...</h4>"));
        let first = html.find("data-product-id=\"2\"").unwrap_or(usize::MAX);
        let second = html.find("data-product-id=\"1\"").unwrap_or(0);
        assert!(first < second, "products in display order");
        assert!(html.contains("<div id=\"cart-container\"></div>"));
        assert!(html.contains("window.cartId = \"cart-id\";"));
        Ok(())
    }
}
