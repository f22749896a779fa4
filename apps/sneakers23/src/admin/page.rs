//! `GET /admin`: the dashboard page (spec §14.2). Its script and stylesheet (`assets/admin.js`,
//! `assets/admin.css`) are static assets ([`crate::web::assets`]), linked by fingerprinted URL.
//!
//! The page is rendered from this node's inventory cache: one block per product with a line
//! per size, `Size <size>: <N> in cart / <M> available`, whose numbers `admin.js` keeps live
//! (`#admin-item-cart-count-<id>`, `#admin-item-available-<id>`), and "Not released." for
//! unreleased products (the size lines are rendered hidden and shown on release). It embeds a
//! fresh admin token as `window.adminToken`; `admin.js` (no build step, ES module importing the
//! official client from `/js/phoenix.mjs`) connects `/admin_socket` with it and joins
//! `admin:dashboard`. With `?presence=1` it also joins `admin:cart_tracker` and exposes the
//! phoenix.js `Presence` as `window.presence`, as the book's dashboard did.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{ADMIN_TOKEN_DATA, AdminState, auth};
use crate::fragments::js_string;
use sneakers23_core::inventory::CompleteProduct;

/// The dashboard page.
#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage<'a> {
    /// Products in display order.
    pub products: Vec<&'a CompleteProduct>,
    /// The admin token as a JavaScript string literal.
    pub token_js: String,
    /// The Content-Security-Policy nonce of the page's one inline script.
    pub nonce: String,
    /// The fingerprinted URLs of the page's stylesheets and script.
    pub links: AdminLinks,
}

/// The fingerprinted URLs the dashboard page links (cached for a year by the browser).
pub struct AdminLinks {
    /// The shop's stylesheet.
    pub app_css: String,
    /// The dashboard's stylesheet.
    pub admin_css: String,
    /// The dashboard's script.
    pub admin_js: String,
}

impl AdminLinks {
    /// The URLs of the assets embedded in this binary.
    pub fn current() -> Self {
        use crate::web::assets::url;
        Self {
            app_css: url("/css/app.css"),
            admin_css: url("/css/admin.css"),
            admin_js: url("/js/admin.js"),
        }
    }
}

/// The Content-Security-Policy of the admin page: its own script, stylesheet, images and
/// socket only, the inline token script by its nonce, no framing.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `GET /admin`: 401 with a Basic challenge without the admin credentials, the page otherwise.
pub async fn show(
    State(state): State<AdminState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let ip = auth::client_ip(&extensions);
    if let Some(refused) = auth::authorize(&headers, &state.credentials, &state.logins, ip) {
        return refused;
    }
    let token = match state.signer.sign_string(ADMIN_TOKEN_DATA) {
        Ok(token) => token,
        Err(error) => {
            tracing::error!(%error, "could not sign an admin token");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not sign an admin token\n",
            )
                .into_response();
        }
    };
    let snapshot = state.inventory.snapshot();
    let nonce = sneakers23_core::checkout::new_order_key();
    let page = AdminPage {
        products: snapshot.products().collect(),
        token_js: js_string(&token),
        nonce: nonce.clone(),
        links: AdminLinks::current(),
    };
    match page.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, must-revalidate"),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&nonce)) {
                headers.insert(header::CONTENT_SECURITY_POLICY, csp);
            }
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "admin page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "admin page did not render\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sneakers23_core::test_support::fixture_with;

    #[test]
    fn renders_released_and_unreleased_products() -> Result<(), askama::Error> {
        let released = fixture_with(true);
        let page = AdminPage {
            products: released.products().collect(),
            token_js: js_string("SFMyNTY.x</script>"),
            nonce: "n0nce".into(),
            links: AdminLinks::current(),
        };
        let html = page.render()?;
        assert!(html.contains("window.adminToken = \"SFMyNTY.x\\u003c/script\\u003e\";"));
        assert!(html.contains("<script nonce=\"n0nce\">"));
        assert!(html.contains("<script type=\"module\" src=\"/js/admin.js?v="));
        assert!(html.contains("href=\"/css/admin.css?v="));
        assert!(html.contains("id=\"admin-item-cart-count-1\""));
        assert!(html.contains("id=\"admin-item-available-3\">3<"));
        assert!(!html.contains("<p class=\"product-soon-1\">"));
        let unreleased = fixture_with(false);
        let html = AdminPage {
            products: unreleased.products().collect(),
            token_js: js_string("t"),
            nonce: "n0nce".into(),
            links: AdminLinks::current(),
        }
        .render()?;
        assert!(html.contains("<p class=\"product-soon-1\">Not released.</p>"));
        Ok(())
    }
}
