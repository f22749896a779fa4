//! A small HTTP/1.1 client on hyper, for the workspace's own tools and tests.
//!
//! The operator CLI (`sneakers23 release …`), the load tester's dashboard check
//! (`shopper-bench --check-admin`) and the store's tests all talk plain HTTP to a node on the
//! local network. Each used to carry its own request writer and response parser (chunked
//! decoding included); they now share this one, which leaves the protocol to hyper and stays
//! below every app crate, so that the load tester uses it without pulling in the store.
//!
//! What it does, on purpose, and nothing more: `http://` only (no TLS), one request per
//! connection (`Connection: close`, no pool), no redirects followed, no cookie jar (a caller that
//! keeps a session sets the `Cookie` header itself), the whole body read into memory, an
//! optional time limit on the whole exchange and an optional local address to connect from.
//!
//! ```no_run
//! # async fn demo() -> Result<(), http_client::Error> {
//! use std::time::Duration;
//! let response = http_client::Request::get("http://127.0.0.1:4000/admin/aggregate.json")?
//!     .basic_auth("admin", "password")
//!     .timeout(Duration::from_secs(5))
//!     .send()
//!     .await?;
//! println!("{} {}", response.status, response.text());
//! # Ok(()) }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST};
use http::{HeaderName, HeaderValue, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

pub use http::{HeaderMap, Method, StatusCode};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not `http://host[:port][/path]`.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A header name or value, or the path, cannot be sent.
    #[error("invalid request: {0}")]
    InvalidRequest(#[from] http::Error),
    /// No connection could be opened.
    #[error("could not connect to {authority}: {source}")]
    Connect {
        /// `host:port` tried.
        authority: String,
        /// Why.
        source: io::Error,
    },
    /// The connection opened but the exchange failed (reset, closed early, not HTTP).
    #[error("the exchange with {authority} failed: {}", chain(source))]
    Exchange {
        /// `host:port` of the server.
        authority: String,
        /// hyper's account of it.
        source: hyper::Error,
    },
    /// The whole exchange took longer than the request's time limit.
    #[error("no answer from {authority} within {:.1} s", limit.as_secs_f64())]
    Timeout {
        /// `host:port` of the server.
        authority: String,
        /// The time limit.
        limit: Duration,
    },
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Where requests go: the scheme-less `host:port` of an `http://` URL, parsed once so that a
/// client of one server (the CLI's node) checks its URL up front and then only adds paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The host as written in the URL (an IPv6 address keeps its brackets).
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url` (`http://host[:port][/anything]`; the port defaults to 80); any path
    /// is ignored.
    pub fn parse(url: &str) -> Result<Self, Error> {
        parse_url(url).map(|(origin, _)| origin)
    }

    /// The origin of a server at `addr`.
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            host: match addr.ip() {
                IpAddr::V4(ip) => ip.to_string(),
                IpAddr::V6(ip) => format!("[{ip}]"),
            },
            port: addr.port(),
        }
    }

    /// `host:port`, as the `Host` header carries it.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A request for `path_and_query` (starting with `/`) on this origin.
    pub fn request(&self, method: Method, path_and_query: &str) -> Request {
        Request::to(self.clone(), method, path_and_query)
    }
}

/// `url` taken apart: its origin and its path and query (`/` when it has none).
fn parse_url(url: &str) -> Result<(Origin, String), Error> {
    let invalid = |reason| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("expected http://HOST[:PORT][/PATH]"))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid("only http:// is supported"));
    }
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.host().is_empty() {
        return Err(invalid("no host"));
    }
    if authority.as_str().contains('@') {
        return Err(invalid("credentials in the URL are not supported"));
    }
    let after_host = authority
        .as_str()
        .get(authority.host().len()..)
        .unwrap_or_default();
    let port = match after_host.strip_prefix(':') {
        None if after_host.is_empty() => 80,
        None => return Err(invalid("expected http://HOST[:PORT][/PATH]")),
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| invalid("the port is not a number from 0 to 65535"))?,
    };
    let origin = Origin {
        host: authority.host().to_owned(),
        port,
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    Ok((origin, path.to_owned()))
}

/// One request, built step by step and sent with [`Request::send`].
#[derive(Debug)]
pub struct Request {
    origin: Origin,
    builder: http::request::Builder,
    body: Bytes,
    timeout: Option<Duration>,
    local_address: Option<IpAddr>,
}

impl Request {
    /// `method url` (`http://host[:port][/path][?query]`).
    pub fn new(method: Method, url: &str) -> Result<Self, Error> {
        let (origin, path) = parse_url(url)?;
        Ok(Self::to(origin, method, &path))
    }

    /// `GET url`.
    pub fn get(url: &str) -> Result<Self, Error> {
        Self::new(Method::GET, url)
    }

    fn to(origin: Origin, method: Method, path_and_query: &str) -> Self {
        let builder = http::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(HOST, origin.authority())
            .header(CONNECTION, "close");
        Self {
            origin,
            builder,
            body: Bytes::new(),
            timeout: None,
            local_address: None,
        }
    }

    /// Adds a header (an invalid name or value fails [`Request::send`]).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: Into<http::Error>,
        V: TryInto<HeaderValue>,
        V::Error: Into<http::Error>,
    {
        self.builder = self.builder.header(name, value);
        self
    }

    /// HTTP Basic credentials.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        use base64::Engine;
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header(AUTHORIZATION, format!("Basic {encoded}"))
    }

    /// A bearer token.
    pub fn bearer_auth(self, token: &str) -> Self {
        self.header(AUTHORIZATION, format!("Bearer {token}"))
    }

    /// A body of `content_type` (its `Content-Length` is set from it).
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.header(CONTENT_TYPE, content_type)
    }

    /// Fails with [`Error::Timeout`] when connecting, sending and reading the whole answer take
    /// longer than `limit` (no limit by default).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Connects from `ip` (any port) rather than from the address the system picks.
    pub fn local_address(mut self, ip: IpAddr) -> Self {
        self.local_address = Some(ip);
        self
    }

    /// Sends the request on a new connection and reads the whole answer, whatever its status.
    pub async fn send(self) -> Result<Response, Error> {
        let authority = self.origin.authority();
        match self.timeout {
            None => self.exchange().await,
            Some(limit) => tokio::time::timeout(limit, self.exchange())
                .await
                .map_err(|_| Error::Timeout { authority, limit })?,
        }
    }

    async fn exchange(self) -> Result<Response, Error> {
        let authority = self.origin.authority();
        let request = self.builder.body(Full::new(self.body))?;
        let stream = connect(&self.origin, self.local_address)
            .await
            .map_err(|source| Error::Connect {
                authority: authority.clone(),
                source,
            })?;
        let failed = |source| Error::Exchange {
            authority: authority.clone(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(failed)?;
        let answer = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        // The connection is driven here rather than on a task of its own, so that a request
        // given up (its future dropped, e.g. on a timeout) closes its socket at once.
        let mut answer = pin!(answer);
        let mut connection = pin!(connection);
        let mut driving = true;
        loop {
            tokio::select! {
                response = &mut answer => return response.map_err(failed),
                // When the connection ends (or fails), the answer ends too: it is read on.
                _ = &mut connection, if driving => driving = false,
            }
        }
    }
}

/// A TCP connection to `origin`, from `local_address` when given.
async fn connect(origin: &Origin, local_address: Option<IpAddr>) -> io::Result<TcpStream> {
    let host = origin.host.trim_start_matches('[').trim_end_matches(']');
    let Some(local) = local_address else {
        return TcpStream::connect((host, origin.port)).await;
    };
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, origin.port)).await? {
        if addr.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host} has no address of the family of {local}"),
        )
    }))
}

/// A whole answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// Its status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body, de-chunked.
    pub body: Bytes,
}

impl Response {
    /// The first value of header `name`, when it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_plain_http_with_a_host() {
        let (origin, path) = parse_url("http://127.0.0.1:4000/a/b?c=1").expect("valid");
        assert_eq!(
            (origin.authority(), path.as_str()),
            ("127.0.0.1:4000".into(), "/a/b?c=1")
        );
        let (origin, path) = parse_url("http://store").expect("valid");
        assert_eq!(
            (origin.authority(), path.as_str()),
            ("store:80".into(), "/")
        );
        let (origin, _) = parse_url("http://[::1]:9/").expect("valid");
        assert_eq!(origin.authority(), "[::1]:9");
        for bad in [
            "https://x:1",
            "http://:4000",
            "http://h:port",
            "http:///x",
            "x",
            "http://u:p@h/",
        ] {
            assert!(
                matches!(parse_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad} accepted"
            );
        }
    }
}
