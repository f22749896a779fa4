//! The server-rendered HTML: compile-checked askama templates (`templates/`) and the structs
//! that feed them.
//!
//! Every shop page extends `layout.html` (spec §8.3): title `Sneakers23`, a header linking
//! home, `app.css` and `app.js`, an optional flash alert, and, when the session has a cart id,
//! the empty `div#cart-container` plus `window.cartId`. The size selector (`_sizes.html`,
//! spec §11.2) is shared by the product page and the `released` broadcast
//! ([`size_selector_html`]).

use askama::Template;

use crate::checkout::CheckoutPage;
use crate::inventory::CompleteProduct;

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

/// A string as a JavaScript literal that is safe inside an inline `<script>`.
pub fn js_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
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

/// The size selector of one product (the `released` payload's `size_html`).
#[derive(Template)]
#[template(path = "size_selector.html")]
pub struct SizeSelector<'a> {
    /// The product, with its items in ascending id.
    pub product: &'a CompleteProduct,
}

/// Renders a template, logging (and returning `None`) if it fails, which only a formatting
/// error inside a field's `Display` can cause.
pub fn render(template: &impl Template) -> Option<String> {
    match template.render() {
        Ok(html) => Some(html),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            None
        }
    }
}

/// The size selector HTML of `product` (spec §11.2).
pub fn size_selector_html(product: &CompleteProduct) -> String {
    render(&SizeSelector { product })
        .map(|html| html.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture_with;

    #[test]
    fn the_size_selector_has_a_button_per_item_with_its_level() {
        let mut snapshot = fixture_with(true);
        snapshot.set_available(2, 0);
        let product = snapshot.product(1).expect("product 1");
        let html = size_selector_html(product);
        assert!(html.starts_with("<form class=\"size-container\""), "{html}");
        for id in [1, 2] {
            assert!(html.contains(&format!("value=\"{id}\"")), "{html}");
        }
        let button = |id: u32| {
            html.split("<button")
                .find(|b| b.contains(&format!("value=\"{id}\"")))
                .unwrap_or_else(|| panic!("no button for item {id}: {html}"))
                .split("</button>")
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let low = button(1);
        assert!(low.contains("size-container__entry--level-low\""), "{low}");
        assert!(low.contains(", last few\""), "its name says the level: {low}");
        assert!(!low.contains(" disabled"), "{low}");
        let out = button(2);
        assert!(out.contains("size-container__entry--level-out\""), "{out}");
        assert!(out.contains(", sold out\""), "{out}");
        assert!(out.contains(" disabled>"), "{out}");
        assert_eq!(html.matches("size-container__entry ").count(), 2);
    }

    #[test]
    fn js_strings_cannot_close_the_script() {
        assert_eq!(js_string("a</script>"), "\"a\\u003c/script\\u003e\"");
        assert_eq!(js_string("ab+/"), "\"ab+/\"");
    }

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
