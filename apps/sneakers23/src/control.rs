//! The operator CLI's side of the node control API ([`crate::web::ops`]), with the messages
//! typed in [`crate::control_api`].
//!
//! A deliberately small HTTP/1.1 client: the API is on loopback, the requests carry no body,
//! and the answers are small JSON documents, so one request per connection
//! (`Connection: close`) read to the end is all it takes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sneakers23::control::ControlError> {
//! use sneakers23::control::ControlClient;
//! let client = ControlClient::new("http://127.0.0.1:4000", "the-ops-token")?;
//! let answer = client.release(2).await?;
//! assert_eq!(answer.released, 2);
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::control_api::{
    INVENTORY_PATH, InventoryReport, PRESENCE_PATH, ReducerDone, ReducerQuery, ReducerStarted,
    Released, SELL_RANDOM_UNTIL_GONE_PATH, SellQuery, SellReport, release_path, sell_path,
};
use crate::model::{ItemId, ProductId};

/// What the random seller answered: started in the background, or run to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReducerAnswer {
    /// Started (the request did not wait).
    Started(ReducerStarted),
    /// Done (the request waited), with its report.
    Done(ReducerDone),
}

/// Default URL of the node the CLI talks to.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:4000";

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The URL is not `http://host:port`.
    #[error("invalid node URL `{0}`: expected http://HOST:PORT, e.g. http://127.0.0.1:4000")]
    InvalidUrl(String),
    /// Nothing answers at the URL.
    #[error(
        "could not reach the node at {url}: {cause}; is `sneakers23 serve` running there? \
         (set --node-url or NODE_URL)"
    )]
    Connect {
        /// The node URL.
        url: String,
        /// I/O error.
        cause: std::io::Error,
    },
    /// The node answered something that is not HTTP with a JSON body.
    #[error("the node at {url} sent an unreadable answer to {path}: {reason}")]
    Protocol {
        /// The node URL.
        url: String,
        /// The request path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The node refused or failed the request.
    #[error("{path} failed with HTTP {status}: {message}")]
    Refused {
        /// The request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The node's error message.
        message: String,
    },
}

/// Talks to one node's control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    url: String,
    host: String,
    port: u16,
    token: String,
}

impl ControlClient {
    /// A client for the node at `url` (`http://host:port`) using `token`.
    pub fn new(url: &str, token: &str) -> Result<Self, ControlError> {
        let invalid = || ControlError::InvalidUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(invalid)?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().map_err(|_| invalid())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            token: token.to_owned(),
        })
    }

    /// Releases a product.
    pub async fn release(&self, product_id: ProductId) -> Result<Released, ControlError> {
        let path = release_path(product_id);
        self.typed("POST", &path).await
    }

    /// Sells units of an item as `query` says.
    pub async fn sell(
        &self,
        item_id: ItemId,
        query: SellQuery,
    ) -> Result<SellReport, ControlError> {
        let path = format!("{}?{}", sell_path(item_id), query.to_query());
        self.typed("POST", &path).await
    }

    /// Starts the random seller, or with `query.wait` runs it to the end and returns its
    /// report.
    pub async fn sell_random_until_gone(
        &self,
        query: ReducerQuery,
    ) -> Result<ReducerAnswer, ControlError> {
        let path = format!("{SELL_RANDOM_UNTIL_GONE_PATH}?{}", query.to_query());
        if query.wait {
            self.typed("POST", &path).await.map(ReducerAnswer::Done)
        } else {
            self.typed("POST", &path).await.map(ReducerAnswer::Started)
        }
    }

    /// The CartTracker's presence list (Phoenix's `list` JSON).
    pub async fn presence(&self) -> Result<Value, ControlError> {
        self.get(PRESENCE_PATH).await
    }

    /// The node's inventory cache.
    pub async fn inventory(&self) -> Result<InventoryReport, ControlError> {
        self.typed("GET", INVENTORY_PATH).await
    }

    /// `method path`, its JSON answer read as `T`.
    async fn typed<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
    ) -> Result<T, ControlError> {
        let json = self.request(method, path).await?;
        serde_json::from_value(json).map_err(|error| ControlError::Protocol {
            url: self.url.clone(),
            path: path.to_owned(),
            reason: format!("unexpected answer: {error}"),
        })
    }

    /// `GET path`, returning the JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, ControlError> {
        self.request("GET", path).await
    }

    /// `POST path` (no body), returning the JSON answer.
    pub async fn post(&self, path: &str) -> Result<Value, ControlError> {
        self.request("POST", path).await
    }

    async fn request(&self, method: &str, path: &str) -> Result<Value, ControlError> {
        let connect_error = |cause| ControlError::Connect {
            url: self.url.clone(),
            cause,
        };
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(connect_error)?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Bearer {}\r\n\
             Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.host, self.port, self.token
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(connect_error)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(connect_error)?;
        let protocol = |reason: &str| ControlError::Protocol {
            url: self.url.clone(),
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let (status, body) = parse_response(&raw).map_err(protocol)?;
        let json: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| protocol(&format!("body is not JSON: {e}")))?
        };
        if (200..300).contains(&status) {
            Ok(json)
        } else {
            let message = json.get("error").and_then(Value::as_str).map_or_else(
                || String::from_utf8_lossy(&body).into_owned(),
                str::to_owned,
            );
            Err(ControlError::Refused {
                path: path.to_owned(),
                status,
                message,
            })
        }
    }
}

/// Splits a raw HTTP/1.1 response into its status and (de-chunked) body.
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), &'static str> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or("no status line")?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..end]).map_err(|_| "bad chunk size")?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| "bad chunk size")?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_host_port() {
        assert!(ControlClient::new("http://127.0.0.1:4000", "t").is_ok());
        assert!(ControlClient::new("http://localhost:4000/", "t").is_ok());
        assert!(matches!(
            ControlClient::new("https://x:1", "t"),
            Err(ControlError::InvalidUrl(_))
        ));
        assert!(ControlClient::new("http://:4000", "t").is_err());
        assert!(ControlClient::new("http://h:port", "t").is_err());
    }

    #[test]
    fn responses_parse_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Ok((200, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((404, b"{\"a\":1}".to_vec())));
        assert!(parse_response(b"garbage").is_err());
    }
}
