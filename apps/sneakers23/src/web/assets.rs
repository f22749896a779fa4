//! Static assets, embedded in the binary at compile time (no build step, nothing to deploy
//! next to it): the shop's stylesheet and script, the official `phoenix` client, the shoe
//! pictures, the favicon and `robots.txt`.
//!
//! Each response carries a strong `ETag` (a hash of the content) and `Cache-Control: no-cache`,
//! so browsers revalidate cheaply (`304 Not Modified`) and never run a stale script after an
//! upgrade.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, StatusCode};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// URL path.
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The bytes.
    pub body: &'static [u8],
}

/// Every embedded asset.
pub const ASSETS: [Asset; 7] = [
    Asset {
        path: "/css/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/css/app.css"),
    },
    Asset {
        path: "/js/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/js/app.js"),
    },
    Asset {
        path: "/js/phoenix.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: channels::assets::PHOENIX_JS.as_bytes(),
    },
    Asset {
        path: "/images/hopman.png",
        content_type: "image/png",
        body: include_bytes!("../../assets/images/hopman.png"),
    },
    Asset {
        path: "/images/breezy.png",
        content_type: "image/png",
        body: include_bytes!("../../assets/images/breezy.png"),
    },
    Asset {
        path: "/favicon.ico",
        content_type: "image/x-icon",
        body: include_bytes!("../../assets/favicon.ico"),
    },
    Asset {
        path: "/robots.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!("../../assets/robots.txt"),
    },
];

fn etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn serve(asset: Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let matches = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let tag = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""));
    if matches {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (ETAG, tag),
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (ETAG, tag),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        asset.body,
    )
        .into_response()
}

/// The routes of every embedded asset.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, &asset| {
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move { serve(asset, &headers) }),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_pngs_and_scripts_import_the_embedded_client() {
        for asset in ASSETS.iter().filter(|a| a.content_type == "image/png") {
            assert!(
                asset.body.starts_with(b"\x89PNG\r\n\x1a\n"),
                "{}",
                asset.path
            );
        }
        let app_js = ASSETS
            .iter()
            .find(|a| a.path == "/js/app.js")
            .map(|a| String::from_utf8_lossy(a.body).into_owned())
            .unwrap_or_default();
        assert!(app_js.contains("from \"/js/phoenix.mjs\""));
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
