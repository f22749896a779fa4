//! Static assets, embedded in the binary at compile time (no build step, nothing to deploy
//! next to it): the shop's and the dashboard's stylesheets and scripts, the official `phoenix`
//! client (minified), the shoe pictures, the favicon and `robots.txt`.
//!
//! Pages link their stylesheets and scripts by a fingerprinted URL ([`url`]:
//! `/js/app.js?v=<hash of the content>`, and `app.js` and `admin.js` import the client as
//! `/js/phoenix.mjs?v=<hash>`), served with `Cache-Control: public, max-age=31536000,
//! immutable`: a browser loads each version once, and a new version has a new URL. The plain
//! paths stay available with a strong `ETag` and `Cache-Control: no-cache` (cheap `304 Not
//! Modified` revalidation). Responses are compressed when the browser accepts it (see
//! [`router`]).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::Query;
use tower_http::compression::CompressionLayer;

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
pub const ASSETS: [Asset; 9] = [
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
        path: "/css/admin.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../assets/admin.css"),
    },
    Asset {
        path: "/js/admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../assets/admin.js"),
    },
    Asset {
        path: "/js/phoenix.mjs",
        content_type: "text/javascript; charset=utf-8",
        body: channels::assets::PHOENIX_MIN_JS.as_bytes(),
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
    format!("\"{}\"", version_of(body))
}

fn version_of(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

/// The client import as the scripts write it, served in its fingerprinted form.
const PHOENIX_IMPORT: &str = "from \"/js/phoenix.mjs\"";

/// Scripts that import the client.
const IMPORTERS: [&str; 2] = ["/js/app.js", "/js/admin.js"];

/// An asset as served: its bytes (a script with its import fingerprinted) and version.
struct Served {
    asset: Asset,
    body: &'static [u8],
    version: String,
}

/// Every asset as served, built once.
static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    let phoenix = ASSETS
        .iter()
        .find(|a| a.path == "/js/phoenix.mjs")
        .map_or_else(String::new, |a| version_of(a.body));
    ASSETS
        .iter()
        .map(|&asset| {
            let body: &'static [u8] = if IMPORTERS.contains(&asset.path) {
                let text = String::from_utf8_lossy(asset.body).replace(
                    PHOENIX_IMPORT,
                    &format!("from \"/js/phoenix.mjs?v={phoenix}\""),
                );
                Box::leak(text.into_bytes().into_boxed_slice())
            } else {
                asset.body
            };
            Served {
                asset,
                body,
                version: version_of(body),
            }
        })
        .collect()
});

/// The fingerprinted URL of the asset at `path` (`path` itself if there is no such asset):
/// what pages link, cached for a year.
pub fn url(path: &str) -> String {
    SERVED
        .iter()
        .find(|s| s.asset.path == path)
        .map_or_else(|| path.to_owned(), |s| format!("{path}?v={}", s.version))
}

/// `Cache-Control` of a fingerprinted URL.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `?v=` of a request.
#[derive(Debug, serde::Deserialize)]
struct Version {
    v: Option<String>,
}

fn serve(served: &Served, version: Option<&str>, headers: &HeaderMap) -> Response {
    if version == Some(served.version.as_str()) {
        return (
            [
                (
                    CONTENT_TYPE,
                    HeaderValue::from_static(served.asset.content_type),
                ),
                (CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE)),
            ],
            served.body,
        )
            .into_response();
    }
    let asset = Asset {
        body: served.body,
        ..served.asset
    };
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

/// The routes of every embedded asset, gzip-compressed for browsers that accept it (the
/// images, already compressed, are sent as they are).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    SERVED
        .iter()
        .fold(Router::new(), |router, served| {
            router.route(
                served.asset.path,
                get(
                    move |Query(version): Query<Version>, headers: HeaderMap| async move {
                        serve(served, version.v.as_deref(), &headers)
                    },
                ),
            )
        })
        .layer(CompressionLayer::new())
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
        let served_client = format!("from \"{}\"", url("/js/phoenix.mjs"));
        for script in IMPORTERS {
            let written = ASSETS
                .iter()
                .find(|a| a.path == script)
                .map(|a| String::from_utf8_lossy(a.body).into_owned())
                .unwrap_or_default();
            assert!(written.contains(PHOENIX_IMPORT), "{script}");
            let served = SERVED
                .iter()
                .find(|s| s.asset.path == script)
                .map(|s| String::from_utf8_lossy(s.body).into_owned())
                .unwrap_or_default();
            assert!(served.contains(&served_client), "{script}");
            assert!(!served.contains(PHOENIX_IMPORT), "{script}");
        }
        assert!(url("/js/app.js").starts_with("/js/app.js?v="));
        assert_eq!(url("/nothing"), "/nothing");
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(etag(b"a"), etag(b"b"));
        assert_eq!(etag(b"a"), etag(b"a"));
    }
}
