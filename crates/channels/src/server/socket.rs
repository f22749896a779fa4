//! The [`Socket`] trait: who may connect, what the connection is called, and which channel serves
//! which topic.
//!
//! ```
//! use channels::server::{Assigns, ConnectError, ConnectInfo, Params, Routes, Socket, Channel};
//!
//! struct PublicSocket { routes: Routes }
//!
//! #[async_trait::async_trait]
//! impl Socket for PublicSocket {
//!     async fn connect(&self, _params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
//!         Ok(Assigns::none())
//!     }
//!     fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
//!         self.routes.channel(topic)
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use http::HeaderMap;

use crate::server::assigns::Assigns;
use crate::server::channel::Channel;

/// The connect parameters: the query string of the connect request (phoenix.js sends its `params`
/// there, plus `vsn`). Nested objects arrive flattened as `parent[child]` keys.
pub type Params = HashMap<String, String>;

/// Facts about the connect request beyond its parameters.
#[derive(Clone, Debug, Default)]
pub struct ConnectInfo {
    /// The client's address as seen by this server.
    pub peer: Option<SocketAddr>,
    /// The request headers (origin, user agent, `x-` headers…).
    pub headers: HeaderMap,
    /// The request path and query.
    pub uri: String,
    /// The token phoenix.js sends with its `authToken` option (WebSocket subprotocol or LongPoll
    /// header), already decoded.
    pub auth_token: Option<String>,
}

/// Why a connection was refused. The client gets HTTP 403; the reason is logged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("connection refused: {0}")]
pub struct ConnectError(pub String);

impl ConnectError {
    /// A refusal with a reason for the logs.
    pub fn new(reason: impl Into<String>) -> Self {
        ConnectError(reason.into())
    }
}

/// A kind of connection an application accepts (Phoenix's `UserSocket`).
///
/// A socket that opens only with a signed token (Phoenix's `connect/3` with
/// `Phoenix.Token.verify`), names its connections after their user (`id/1`), and routes `room:*`
/// to a channel:
///
/// ```
/// use std::sync::Arc;
/// use channels::server::{Assigns, Channel, ConnectError, ConnectInfo, Params, Routes, Socket};
/// use channels::token::{MaxAge, Signer};
///
/// struct UserId(String);
///
/// struct UserSocket {
///     signer: Signer,
///     routes: Routes,
/// }
///
/// #[async_trait::async_trait]
/// impl Socket for UserSocket {
///     async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
///         let token = params.get("token").map(String::as_str);
///         match self.signer.verify_string(token, Some(MaxAge::Seconds(86_400))) {
///             Ok(user_id) => Ok(Assigns::new(UserId(user_id))),
///             Err(error) => Err(ConnectError::new(format!("user socket: {error}"))),
///         }
///     }
///
///     fn id(&self, assigns: &Assigns) -> Option<String> {
///         assigns.get::<UserId>().map(|user| format!("user_socket:{}", user.0))
///     }
///
///     fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
///         self.routes.channel(topic)
///     }
/// }
///
/// # struct Room;
/// # impl Channel for Room {}
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let signer = Signer::new("a secret_key_base of at least 20 bytes", "user socket").unwrap();
/// let socket = Arc::new(UserSocket {
///     signer: signer.clone(),
///     routes: Routes::new().route("room:*", |_| Box::new(Room)),
/// });
///
/// let endpoint = channels::server::Endpoint::new(pubsub::PubSub::new("test"), Default::default());
/// let with_token = Params::from([("token".to_owned(), signer.sign_string("42").unwrap())]);
/// let info = ConnectInfo::default();
/// assert!(channels::testing::connect(&endpoint, socket.clone(), &with_token, info.clone()).await.is_ok());
/// assert!(channels::testing::connect(&endpoint, socket, &Params::new(), info).await.is_err());
/// # });
/// ```
#[async_trait]
pub trait Socket: Send + Sync + 'static {
    /// Accepts or refuses a connection. Refusals become HTTP 403 and a log line with the reason.
    async fn connect(&self, params: &Params, info: &ConnectInfo) -> Result<Assigns, ConnectError>;

    /// Names the connection so that a `disconnect` broadcast to that name closes it
    /// ([`Endpoint::disconnect`](crate::server::Endpoint::disconnect)). `None`: anonymous.
    fn id(&self, _assigns: &Assigns) -> Option<String> {
        None
    }

    /// A fresh channel for `topic`, or `None` when no channel serves it ("unmatched topic").
    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>>;

    /// The route that serves `topic`, as a metrics label: never the topic itself, which is
    /// chosen by clients. The default is the topic's prefix up to its first `:` followed by `*`
    /// (`cart:4f2` gives `cart:*`), or `other`; a socket built on [`Routes`] can answer
    /// [`Routes::pattern`] instead.
    fn route(&self, topic: &str) -> String {
        match topic.split_once(':') {
            Some((prefix, _)) if prefix.len() <= 64 => format!("{prefix}:*"),
            _ => "other".to_owned(),
        }
    }
}

type Factory = Arc<dyn Fn(&str) -> Box<dyn Channel> + Send + Sync>;

/// Topic patterns mapped to channel factories, matched in declaration order: an exact topic, or a
/// prefix ending in `*` (`"room:*"` matches every topic starting with `room:`).
#[derive(Clone, Default)]
pub struct Routes {
    routes: Vec<(String, Factory)>,
}

impl Routes {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves topics matching `pattern` with channels made by `factory` (given the topic).
    ///
    /// # Panics
    ///
    /// When `pattern` has a `*` anywhere but at its end (`"ping:*a"`): such a route could never
    /// match as written. Phoenix refuses it at compile time ("channels using splat patterns must
    /// end with *"); routes are built once at start, so this is where we refuse it.
    pub fn route(
        mut self,
        pattern: &str,
        factory: impl Fn(&str) -> Box<dyn Channel> + Send + Sync + 'static,
    ) -> Self {
        assert!(
            pattern.find('*').is_none_or(|at| at + 1 == pattern.len()),
            "channel route {pattern:?}: channels using splat patterns must end with *"
        );
        self.routes.push((pattern.to_owned(), Arc::new(factory)));
        self
    }

    /// The pattern of the first route matching `topic`.
    pub fn pattern(&self, topic: &str) -> Option<&str> {
        self.routes
            .iter()
            .find(|(pattern, _)| topic_matches(pattern, topic))
            .map(|(pattern, _)| pattern.as_str())
    }

    /// A channel for `topic` from the first matching route.
    pub fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes
            .iter()
            .find(|(pattern, _)| topic_matches(pattern, topic))
            .map(|(_, factory)| factory(topic))
    }
}

/// Routes alone are a socket that accepts every connection (with [`Assigns::none`]) and serves
/// topics by these routes: the socket of a public page, with no authentication.
#[async_trait]
impl Socket for Routes {
    async fn connect(
        &self,
        _params: &Params,
        _info: &ConnectInfo,
    ) -> Result<Assigns, ConnectError> {
        Ok(Assigns::none())
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        Routes::channel(self, topic)
    }

    fn route(&self, topic: &str) -> String {
        self.pattern(topic).unwrap_or("unmatched").to_owned()
    }
}

/// Whether `topic` matches a route `pattern` (exact, or prefix when the pattern ends in `*`).
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => topic.starts_with(prefix),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_by_prefix() {
        assert!(topic_matches("room:*", "room:lobby"));
        assert!(topic_matches("room:*", "room:"));
        assert!(!topic_matches("room:*", "rooms"));
        assert!(topic_matches("admin:cart_tracker", "admin:cart_tracker"));
        assert!(!topic_matches("admin:cart_tracker", "admin:cart_tracker2"));
        assert!(topic_matches("*", "anything"));
    }

    #[test]
    #[should_panic(expected = "channels using splat patterns must end with *")]
    fn a_splat_before_the_end_is_refused() {
        let _ = Routes::new().route("ping:*a", |_| unreachable!("never built"));
    }

    #[test]
    fn a_splat_at_the_end_is_accepted() {
        let routes = Routes::new().route("ping:*", |_| unreachable!("never built"));
        assert_eq!(routes.routes.len(), 1);
    }

    #[test]
    fn assigns_are_typed() {
        let assigns = Assigns::new(42_u32);
        assert_eq!(assigns.get::<u32>(), Some(&42));
        assert_eq!(assigns.get::<String>(), None);
        assert!(Assigns::none().get::<u32>().is_none());
    }
}
