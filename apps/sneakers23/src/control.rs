//! The operator CLI's side of the node control API ([`crate::web::ops`]), with the messages
//! typed in [`crate::control_api`].
//!
//! The transport is the workspace's [`http_client`]: one request per connection to the node,
//! whose answers are small JSON documents.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sneakers23::control::ControlError> {
//! use sneakers23::control::ControlClient;
//! let client = ControlClient::new("http://127.0.0.1:4000", "the-ops-token")?;
//! let answer = client.release(2).await?;
//! assert_eq!(answer.released, 2);
//! # Ok(()) }
//! ```

use http_client::{Method, Origin};
use serde::de::DeserializeOwned;
use serde_json::Value;

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
        /// Why.
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
    origin: Origin,
    token: String,
}

impl ControlClient {
    /// A client for the node at `url` (`http://host:port`) using `token`.
    pub fn new(url: &str, token: &str) -> Result<Self, ControlError> {
        let origin = Origin::parse(url).map_err(|_| ControlError::InvalidUrl(url.to_owned()))?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            origin,
            token: token.to_owned(),
        })
    }

    /// Releases a product.
    pub async fn release(&self, product_id: ProductId) -> Result<Released, ControlError> {
        let path = release_path(product_id);
        self.typed(Method::POST, &path).await
    }

    /// Sells units of an item as `query` says.
    pub async fn sell(
        &self,
        item_id: ItemId,
        query: SellQuery,
    ) -> Result<SellReport, ControlError> {
        let path = format!("{}?{}", sell_path(item_id), query.to_query());
        self.typed(Method::POST, &path).await
    }

    /// Starts the random seller, or with `query.wait` runs it to the end and returns its
    /// report.
    pub async fn sell_random_until_gone(
        &self,
        query: ReducerQuery,
    ) -> Result<ReducerAnswer, ControlError> {
        let path = format!("{SELL_RANDOM_UNTIL_GONE_PATH}?{}", query.to_query());
        if query.wait {
            self.typed(Method::POST, &path)
                .await
                .map(ReducerAnswer::Done)
        } else {
            self.typed(Method::POST, &path)
                .await
                .map(ReducerAnswer::Started)
        }
    }

    /// The CartTracker's presence list (Phoenix's `list` JSON).
    pub async fn presence(&self) -> Result<Value, ControlError> {
        self.get(PRESENCE_PATH).await
    }

    /// The node's inventory cache.
    pub async fn inventory(&self) -> Result<InventoryReport, ControlError> {
        self.typed(Method::GET, INVENTORY_PATH).await
    }

    /// `method path`, its JSON answer read as `T`.
    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
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
        self.request(Method::GET, path).await
    }

    /// `POST path` (no body), returning the JSON answer.
    pub async fn post(&self, path: &str) -> Result<Value, ControlError> {
        self.request(Method::POST, path).await
    }

    async fn request(&self, method: Method, path: &str) -> Result<Value, ControlError> {
        let protocol = |reason: String| ControlError::Protocol {
            url: self.url.clone(),
            path: path.to_owned(),
            reason,
        };
        let response = self
            .origin
            .request(method, path)
            .bearer_auth(&self.token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| match error {
                http_client::Error::Connect { source, .. } => ControlError::Connect {
                    url: self.url.clone(),
                    cause: source,
                },
                other => protocol(other.to_string()),
            })?;
        let json: Value = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body)
                .map_err(|e| protocol(format!("body is not JSON: {e}")))?
        };
        if response.status.is_success() {
            Ok(json)
        } else {
            let message = json
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| response.text(), str::to_owned);
            Err(ControlError::Refused {
                path: path.to_owned(),
                status: response.status.as_u16(),
                message,
            })
        }
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
}
