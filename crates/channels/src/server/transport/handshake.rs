//! What both transports do before a connection exists: origin check, serializer negotiation, the
//! socket's `connect`, with every refusal logged and counted.

use std::net::SocketAddr;

use axum::extract::ConnectInfo as AxumConnectInfo;
use base64::Engine;
use http::header::{HOST, ORIGIN, SEC_WEBSOCKET_PROTOCOL};
use http::request::Parts;

use crate::codec::Serializer;
use crate::server::assigns::Assigns;
use crate::server::metrics;
use crate::server::socket::{ConnectInfo, Params};
use crate::server::transport::Mount;

/// The prefix phoenix.js puts before its base64 token in `Sec-WebSocket-Protocol`.
const AUTH_TOKEN_PREFIX: &str = "base64url.bearer.phx.";

/// A connect that may proceed.
pub(crate) struct Accepted {
    pub(crate) serializer: Serializer,
    pub(crate) assigns: Assigns,
}

/// Why a connect was refused (answered with 403, or 503 while draining).
pub(crate) enum Refused {
    Forbidden,
    Draining,
}

pub(crate) fn query_params(query: Option<&str>) -> Params {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn websocket_auth_token(parts: &Parts) -> Option<String> {
    let header = parts.headers.get(SEC_WEBSOCKET_PROTOCOL)?.to_str().ok()?;
    let encoded = header
        .split(',')
        .map(str::trim)
        .find_map(|p| p.strip_prefix(AUTH_TOKEN_PREFIX))?;
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Runs the checks and the socket's `connect` for a request.
pub(crate) async fn accept(
    mount: &Mount,
    parts: &Parts,
    params: &Params,
    auth_token: Option<String>,
) -> Result<Accepted, Refused> {
    let endpoint = &mount.endpoint;
    if endpoint.is_draining() {
        metrics::connection_refused("draining");
        return Err(Refused::Draining);
    }
    let origin = parts.headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    let host = parts.headers.get(HOST).and_then(|v| v.to_str().ok());
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    if !endpoint.config().check_origin.allows(origin, host, scheme) {
        metrics::connection_refused("origin");
        tracing::warn!(
            origin,
            "connect refused: origin not allowed by check_origin"
        );
        return Err(Refused::Forbidden);
    }
    let serializer = match Serializer::from_vsn(params.get("vsn").map(String::as_str)) {
        Ok(serializer) => serializer,
        Err(error) => {
            metrics::connection_refused("vsn");
            tracing::warn!(%error, "connect refused: unsupported protocol version");
            return Err(Refused::Forbidden);
        }
    };
    let info = ConnectInfo {
        peer: parts
            .extensions
            .get::<AxumConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        headers: parts.headers.clone(),
        uri: parts.uri.to_string(),
        auth_token: auth_token.or_else(|| websocket_auth_token(parts)),
    };
    match mount.socket.connect(params, &info).await {
        Ok(assigns) => Ok(Accepted {
            serializer,
            assigns,
        }),
        Err(error) => {
            metrics::connection_refused("connect");
            tracing::warn!(peer = ?info.peer, %error, "connect refused by the socket");
            Err(Refused::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_phoenix_auth_subprotocol() {
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.headers.insert(
            SEC_WEBSOCKET_PROTOCOL,
            "phoenix, base64url.bearer.phx.c2VjcmV0LXRva2Vu"
                .parse()
                .expect("header"),
        );
        assert_eq!(
            websocket_auth_token(&parts).as_deref(),
            Some("secret-token")
        );
    }

    #[test]
    fn query_strings_become_params() {
        let params = query_params(Some("token=a%20b&vsn=2.0.0&user[id]=7"));
        assert_eq!(params.get("token").map(String::as_str), Some("a b"));
        assert_eq!(params.get("user[id]").map(String::as_str), Some("7"));
    }
}
