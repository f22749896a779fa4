//! UserSocket (`/socket`, chapters 3 and 5): anyone may connect; no socket id.
//!
//! | topic | channel |
//! |---|---|
//! | `ping`, `ping:*` | [`PingChannel`] |
//! | `wild:*` | [`WildcardChannel`] |
//! | `dupe` | [`DedupeChannel`] |

use channels::server::{Channel, Routes};

use crate::dedupe_channel::{self, DedupeChannel};
use crate::ping_channel::PingChannel;
use crate::wildcard_channel::WildcardChannel;

/// The unauthenticated socket of the book's first chapters: routes alone, which accept everyone.
pub fn user_socket() -> Routes {
    Routes::new()
        .route("ping", |_| Box::new(PingChannel) as Box<dyn Channel>)
        .route("ping:*", |_| Box::new(PingChannel) as Box<dyn Channel>)
        .route("wild:*", |_| Box::new(WildcardChannel) as Box<dyn Channel>)
        .route(dedupe_channel::TOPIC, |_| {
            Box::new(DedupeChannel::default()) as Box<dyn Channel>
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use channels::server::{ConnectInfo, Params, Socket};

    #[tokio::test]
    async fn connects_without_parameters_and_has_no_identifier() {
        let socket = user_socket();
        let assigns = socket
            .connect(&Params::new(), &ConnectInfo::default())
            .await
            .expect("anyone may connect");
        assert_eq!(socket.id(&assigns), None);
        assert!(socket.channel("ping:anything").is_some());
        assert!(socket.channel("other").is_none());
    }
}
