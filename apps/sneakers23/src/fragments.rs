//! HTML fragments that both the web pages and the broadcasts carry, below both so that the
//! notifier and the cluster watcher render without reaching into the web layer.
//!
//! The size selector (`_sizes.html`, spec §11.2) is part of the product page and the
//! `size_html` of the `released` broadcast; [`js_string`] makes a value safe inside an inline
//! `<script>` for the shop's layout and the admin page.

use askama::Template;

use sneakers23_core::inventory::CompleteProduct;

/// A string as a JavaScript literal that is safe inside an inline `<script>`.
pub fn js_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned())
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
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
    use sneakers23_core::test_support::{fixture_with, set_available};

    #[test]
    fn the_size_selector_has_a_button_per_item_with_its_level() {
        let mut snapshot = fixture_with(true);
        set_available(&mut snapshot, 2, 0);
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
        assert!(
            low.contains(", last few\""),
            "its name says the level: {low}"
        );
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
}
