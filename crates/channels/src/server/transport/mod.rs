//! HTTP transports that carry a connection's frames to the browser:
//! WebSocket (`<mount>/websocket`) and LongPoll (`<mount>/longpoll`).
//!
//! [`socket_router`] builds the axum routes for one [`Socket`]; nest them under the socket's path:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use channels::server::{transport::{socket_router, Transports}, Endpoint, EndpointConfig, Socket};
//! # fn app(endpoint: Endpoint, socket: Arc<dyn Socket>) -> axum::Router {
//! axum::Router::new().nest("/socket", socket_router(endpoint, socket, Transports::all()))
//! # }
//! ```

mod handshake;
mod longpoll;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::server::endpoint::Endpoint;
use crate::server::socket::Socket;

/// Which transports a socket accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// `<mount>/websocket`.
    pub websocket: bool,
    /// `<mount>/longpoll` (for clients behind proxies that break WebSockets).
    pub longpoll: bool,
}

impl Transports {
    /// WebSocket and LongPoll.
    pub fn all() -> Self {
        Transports {
            websocket: true,
            longpoll: true,
        }
    }

    /// WebSocket only (the store's sockets: LongPoll is disabled there, as in the book).
    pub fn websocket_only() -> Self {
        Transports {
            websocket: true,
            longpoll: false,
        }
    }
}

pub(crate) struct Mount {
    pub(crate) endpoint: Endpoint,
    pub(crate) socket: Arc<dyn Socket>,
    pub(crate) sessions: longpoll::Sessions,
}

/// The routes of one socket: `/websocket` and/or `/longpoll`, to be nested under its path.
pub fn socket_router(
    endpoint: Endpoint,
    socket: Arc<dyn Socket>,
    transports: Transports,
) -> Router {
    let mount = Arc::new(Mount {
        endpoint,
        socket,
        sessions: longpoll::Sessions::default(),
    });
    let mut router = Router::new();
    if transports.websocket {
        router = router.route("/websocket", get(websocket::handle));
    }
    if transports.longpoll {
        router = router.route(
            "/longpoll",
            get(longpoll::poll)
                .post(longpoll::publish)
                .options(longpoll::preflight),
        );
    }
    router.with_state(mount)
}
