//! A small chat on the channels crates, the example to copy when starting an app.
//!
//! Read it in this order:
//!
//! 1. [`Chat`] (this file): the endpoint, the presence registry, the token signer, and the axum
//!    router that mounts the socket and the page.
//! 2. [`socket`]: `UserSocket`, which accepts a connection only with a valid token and routes
//!    `room:*` topics to the room channel.
//! 3. [`room`]: `RoomChannel`, who is in the room (Presence) and the `new_msg` broadcast.
//! 4. [`page`]: the HTML page, which signs a token for a user name and talks to the socket with
//!    the official `phoenix` JavaScript client.

pub mod page;
pub mod room;
pub mod socket;

use std::sync::Arc;

use axum::Router;
use channels::presence::Presence;
use channels::server::transport::{Transports, socket_router};
use channels::server::{Endpoint, EndpointConfig};
use channels::token::Signer;

/// The salt of the socket's tokens: a token signed for another purpose does not open a socket.
pub const TOKEN_SALT: &str = "user socket";

/// Everything the chat shares between connections. Cheap to clone.
#[derive(Clone)]
pub struct Chat {
    /// Options and broadcasts shared by every connection.
    pub endpoint: Endpoint,
    /// Who is in which room, replicated across nodes when the pubsub has an adapter.
    pub presence: Presence,
    /// Signs the page's tokens and verifies them when a socket connects.
    pub signer: Signer,
}

impl Chat {
    /// A single-node chat whose tokens are signed with `secret_key_base` (at least 20 bytes).
    ///
    /// For a cluster, build the pubsub with `pubsub::connect(node, Some("redis://…"))` instead:
    /// broadcasts and presence then reach every node.
    pub fn new(secret_key_base: &str) -> anyhow::Result<Chat> {
        let pubsub = pubsub::PubSub::new("chat");
        let endpoint = Endpoint::new(pubsub, EndpointConfig::default());
        let presence = Presence::start(endpoint.clone(), "chat_presence", Default::default())?;
        let signer = Signer::new(secret_key_base, TOKEN_SALT)?;
        Ok(Chat {
            endpoint,
            presence,
            signer,
        })
    }

    /// The socket that serves `/socket`.
    pub fn socket(&self) -> Arc<socket::UserSocket> {
        Arc::new(socket::UserSocket::new(
            self.signer.clone(),
            self.presence.clone(),
        ))
    }

    /// The whole app: the page at `/`, the JavaScript client at `/js/phoenix.mjs`, and the
    /// socket at `/socket/websocket` (and `/socket/longpoll`).
    pub fn router(&self) -> Router {
        page::routes(self.signer.clone()).nest(
            "/socket",
            socket_router(self.endpoint.clone(), self.socket(), Transports::all()),
        )
    }
}
