//! `UserSocket`: who may connect (Phoenix's `connect/3` and `id/1`) and which channel serves
//! which topic (Phoenix's `channel "room:*", RoomChannel`).

use async_trait::async_trait;
use channels::presence::Presence;
use channels::server::{Assigns, Channel, ConnectError, ConnectInfo, Params, Routes, Socket};
use channels::token::{MaxAge, Signer};

use crate::room::RoomChannel;

/// How long a page's token opens sockets: a day, Phoenix.Token's default.
const TOKEN_MAX_AGE: MaxAge = MaxAge::Seconds(86_400);

/// The user a connection belongs to, decided once at connect and read by every channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The name the page signed a token for.
    pub name: String,
}

/// Accepts connections that carry a valid `token` parameter.
pub struct UserSocket {
    signer: Signer,
    routes: Routes,
}

impl UserSocket {
    /// A socket verifying tokens with `signer` and tracking room members in `presence`.
    pub fn new(signer: Signer, presence: Presence) -> Self {
        let routes = Routes::new().route("room:*", move |_topic| {
            Box::new(RoomChannel::new(presence.clone())) as Box<dyn Channel>
        });
        UserSocket { signer, routes }
    }
}

#[async_trait]
impl Socket for UserSocket {
    /// Verifies the token the page embedded; the client gets HTTP 403 without a valid one.
    async fn connect(&self, params: &Params, _info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        let token = params.get("token").map(String::as_str);
        match self.signer.verify_string(token, Some(TOKEN_MAX_AGE)) {
            Ok(name) => Ok(Assigns::new(User { name })),
            Err(error) => Err(ConnectError::new(format!("user socket: {error}"))),
        }
    }

    /// Names the connection after its user, so that `endpoint.disconnect("user_socket:alice")`
    /// closes every socket of alice (after she logs out, say).
    fn id(&self, assigns: &Assigns) -> Option<String> {
        assigns
            .get::<User>()
            .map(|user| format!("user_socket:{}", user.name))
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }

    fn route(&self, topic: &str) -> String {
        self.routes.pattern(topic).unwrap_or("other").to_owned()
    }
}
