//! UserSocket (`/socket`, chapters 3 and 5): anyone may connect; no socket id.
//!
//! | topic | channel |
//! |---|---|
//! | `ping`, `ping:*` | [`PingChannel`] |
//! | `wild:*` | [`WildcardChannel`] |
//! | `dupe` | [`DedupeChannel`] |

use async_trait::async_trait;
use channels::server::{Assigns, Channel, ConnectError, ConnectInfo, Params, Routes, Socket};

use crate::dedupe_channel::{self, DedupeChannel};
use crate::ping_channel::PingChannel;
use crate::wildcard_channel::WildcardChannel;

/// The unauthenticated socket of the book's first chapters.
pub struct UserSocket {
    routes: Routes,
}

impl UserSocket {
    /// The socket with the book's routes.
    pub fn new() -> Self {
        UserSocket {
            routes: Routes::new()
                .route("ping", |_| Box::new(PingChannel) as Box<dyn Channel>)
                .route("ping:*", |_| Box::new(PingChannel) as Box<dyn Channel>)
                .route("wild:*", |_| Box::new(WildcardChannel) as Box<dyn Channel>)
                .route(dedupe_channel::TOPIC, |_| {
                    Box::new(DedupeChannel::default()) as Box<dyn Channel>
                }),
        }
    }
}

#[async_trait]
impl Socket for UserSocket {
    async fn connect(&self, _: &Params, _: &ConnectInfo) -> Result<Assigns, ConnectError> {
        Ok(Assigns::none())
    }

    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_without_parameters_and_has_no_identifier() {
        let socket = UserSocket::new();
        let assigns = socket
            .connect(&Params::new(), &ConnectInfo::default())
            .await
            .expect("anyone may connect");
        assert_eq!(socket.id(&assigns), None);
        assert!(socket.channel("ping:anything").is_some());
        assert!(socket.channel("other").is_none());
    }
}
