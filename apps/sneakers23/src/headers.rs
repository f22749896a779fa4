//! Response headers that more than one area's router sets.

/// Adds `X-Content-Type-Options: nosniff`: a browser must not run a static file as anything
/// but its declared type.
pub async fn nosniff(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}
