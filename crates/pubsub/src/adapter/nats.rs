//! The NATS adapter: nodes exchange frames over NATS core subjects.
//!
//! Each node subscribes to two subjects:
//!
//! * `pubsub.<cluster>.all`, where every node publishes its broadcasts;
//! * `pubsub.<cluster>.node.<name>`, where other nodes publish the frames addressed to it.
//!
//! The [`NatsDriver`] opens one NATS connection per link, with `no_echo` (the server does not
//! hand a node its own broadcasts; the envelope's origin check is a second guard). When the client
//! reports the connection lost, the link ends and the
//! [`BrokerAdapter`] makes a new one with its back-off, rather than
//! let the client buffer frames while it reconnects (see [`broker`]).
//!
//! Compiled with the `nats` feature.
//!
//! # Message size
//!
//! A NATS server refuses messages larger than its `max_payload` (1 MB by default, announced in
//! its INFO). Frames larger than the smaller of that and the adapter's `max_payload` are sent in
//! chunks and reassembled by the receiver, so a full-state tracker transfer of 100k presences
//! (several MB) crosses a default server unchanged. Raising the server's `max_payload` is not
//! needed.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), pubsub::ConnectError> {
//! let pubsub = pubsub::connect("app1", Some("nats://127.0.0.1:4222/?cluster=shop"))?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::broker::{self, BrokerAdapter, BrokerOptions, Driver, Incoming, Link, LinkError};

/// Commands the NATS client may buffer before its `publish` waits.
const CLIENT_CAPACITY: usize = 65_536;

/// Cross-node traffic through a NATS server. Build it with [`NatsAdapter::new`] or, more simply,
/// [`crate::connect`].
pub type NatsAdapter = BrokerAdapter<NatsDriver>;

/// Why a NATS URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum NatsUrlError {
    /// This crate's parameters were wrong.
    #[error(transparent)]
    Url(#[from] broker::UrlError),
    /// The NATS client refused the address.
    #[error("PUBSUB_URL {url} is not a NATS address the client accepts: {cause}")]
    Client {
        /// The URL (password redacted).
        url: String,
        /// The client's message.
        cause: std::io::Error,
    },
}

impl BrokerAdapter<NatsDriver> {
    /// An adapter for `url` (`nats://[user:password@]host[:port][?cluster=…&…]`). Connects only
    /// once started by a [`PubSub`](crate::PubSub).
    pub fn new(url: &str) -> Result<Self, NatsUrlError> {
        let (client_url, options) = broker::parse_url(url)?;
        let addr: async_nats::ServerAddr =
            client_url
                .as_str()
                .parse()
                .map_err(|cause| NatsUrlError::Client {
                    url: broker::redact(url),
                    cause,
                })?;
        let driver = NatsDriver {
            addr,
            options: options.clone(),
        };
        Ok(BrokerAdapter::with_driver(driver, url, options))
    }
}

/// The `async-nats` client as a broker [`Driver`].
pub struct NatsDriver {
    addr: async_nats::ServerAddr,
    options: BrokerOptions,
}

/// A link to NATS: one client connection.
pub struct NatsLink {
    client: async_nats::Client,
}

/// The client reported its connection lost or closed.
#[derive(Debug, thiserror::Error)]
#[error("the NATS client reports the connection {0}")]
struct ConnectionEvent(&'static str);

impl Driver for NatsDriver {
    type Link = NatsLink;
    const KIND: &'static str = "nats";
    const SEPARATOR: char = '.';

    async fn connect(&self, channels: Vec<String>) -> Result<(NatsLink, Incoming), LinkError> {
        let (events, lost) = mpsc::unbounded_channel::<LinkError>();
        let connect = async_nats::ConnectOptions::new()
            .name("pubsub")
            .no_echo()
            // One quick attempt of the client's own after a loss (then it closes): the adapter
            // drops the link at the first loss and makes a new one with its back-off.
            .max_reconnects(1)
            .reconnect_delay_callback(|_| Duration::ZERO)
            .connection_timeout(self.options.connect_timeout)
            .ping_interval(self.options.ping)
            .client_capacity(CLIENT_CAPACITY)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let lost = match event {
                        async_nats::Event::Disconnected => "lost",
                        async_nats::Event::Closed => "closed",
                        other => {
                            tracing::debug!(event = %other, "nats client event");
                            return;
                        }
                    };
                    let _ = events.send(LinkError::Lost(Box::new(ConnectionEvent(lost))));
                }
            });
        let client = connect
            .connect(self.addr.clone())
            .await
            .map_err(|e| LinkError::Connect(Box::new(e)))?;
        let mut subscribers = Vec::with_capacity(channels.len());
        for subject in channels {
            let subscriber = client
                .subscribe(subject)
                .await
                .map_err(|e| LinkError::Subscribe(Box::new(e)))?;
            subscribers.push(subscriber);
        }
        // A round trip after the subscriptions (the server handles a connection's commands in
        // order): once it is answered, frames other nodes publish from now on reach us. A request
        // nobody answers comes back at once as "no responders".
        let probe = format!("pubsub.probe.{}", client.new_inbox());
        let round_trip = client.request(probe, Bytes::new());
        if tokio::time::timeout(self.options.connect_timeout * 2, round_trip)
            .await
            .is_err()
        {
            tracing::debug!("nats round trip after subscribing timed out; going on");
        }
        let messages = futures::stream::select_all(subscribers).map(|m| Ok(m.payload));
        let lost = futures::stream::unfold(lost, |mut lost| async move {
            lost.recv().await.map(|error| (Err(error), lost))
        });
        let incoming = futures::stream::select(messages, lost).boxed();
        Ok((NatsLink { client }, incoming))
    }
}

impl Link for NatsLink {
    async fn publish(&mut self, batch: &[(String, Bytes)]) -> Result<(), LinkError> {
        for (subject, message) in batch {
            self.probe().await?;
            self.client
                .publish(subject.clone(), message.clone())
                .await
                .map_err(|e| LinkError::Publish(Box::new(e)))?;
        }
        Ok(())
    }

    async fn probe(&mut self) -> Result<(), LinkError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err(LinkError::Lost(Box::new(ConnectionEvent("lost")))),
        }
    }

    fn max_payload(&self) -> Option<usize> {
        Some(self.client.server_info().max_payload)
    }
}
