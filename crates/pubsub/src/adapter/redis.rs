//! The Redis adapter: nodes exchange frames through Redis `PUBLISH`/`SUBSCRIBE`, like
//! phoenix_pubsub_redis.
//!
//! Each node subscribes to two Redis channels:
//!
//! * `pubsub:<cluster>:all`, where every node publishes its broadcasts;
//! * `pubsub:<cluster>:node:<name>`, where other nodes publish the frames addressed to it
//!   (`direct_broadcast`; the tracker's transfer requests and answers).
//!
//! The [`RedisDriver`] makes two connections per link: one multiplexed connection on which
//! frames are published in pipelined batches, and one in subscribe mode whose messages are the
//! link's incoming stream. Both are probed every `ping_ms` when idle; the
//! [`BrokerAdapter`] does the rest (see [`broker`]
//! for the envelope, the queue, the status and the URL parameters).
//!
//! Compiled with the `redis` feature.
//!
//! Redis has no limit on a PUBLISH below its 512 MB bulk-string limit, but a subscriber whose
//! output buffer passes `client-output-buffer-limit pubsub` (32 MB hard, 8 MB for 60 s by default)
//! is disconnected; frames are therefore chunked at `max_payload` (1 MiB) here too, and a node
//! that falls that far behind reconnects and lets the tracker repair what it missed.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), pubsub::ConnectError> {
//! let pubsub = pubsub::connect("app1", Some("redis://127.0.0.1:6379/?cluster=shop"))?;
//! # Ok(()) }
//! ```

use bytes::Bytes;
use futures::StreamExt;

use super::broker::{self, BrokerAdapter, BrokerOptions, Driver, Incoming, Link, LinkError};

/// Cross-node traffic through a Redis server. Build it with [`RedisAdapter::new`] or, more simply,
/// [`crate::connect`].
pub type RedisAdapter = BrokerAdapter<RedisDriver>;

/// Why a Redis URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    /// This crate's parameters were wrong.
    #[error(transparent)]
    Url(#[from] broker::UrlError),
    /// The redis client refused the URL.
    #[error("PUBSUB_URL {url} is not a Redis URL the client accepts: {cause}")]
    Client {
        /// The URL (password redacted).
        url: String,
        /// The client's message.
        cause: redis::RedisError,
    },
}

impl BrokerAdapter<RedisDriver> {
    /// An adapter for `url` (`redis://[user:password@]host[:port][/db][?cluster=…&…]`). Connects
    /// only once started by a [`PubSub`](crate::PubSub).
    pub fn new(url: &str) -> Result<Self, RedisUrlError> {
        let (client_url, options) = broker::parse_url(url)?;
        let client =
            redis::Client::open(client_url.as_str()).map_err(|cause| RedisUrlError::Client {
                url: broker::redact(url),
                cause,
            })?;
        let driver = RedisDriver {
            client,
            options: options.clone(),
        };
        Ok(BrokerAdapter::with_driver(driver, url, options))
    }
}

/// The Redis client as a broker [`Driver`].
pub struct RedisDriver {
    client: redis::Client,
    options: BrokerOptions,
}

/// A link to Redis: the publishing connection and the subscribed connection's command side.
pub struct RedisLink {
    conn: redis::aio::MultiplexedConnection,
    subscribed: redis::aio::PubSubSink,
}

impl Driver for RedisDriver {
    type Link = RedisLink;
    const KIND: &'static str = "redis";
    const SEPARATOR: char = ':';

    async fn connect(&self, channels: Vec<String>) -> Result<(RedisLink, Incoming), LinkError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.options.connect_timeout)
            .set_response_timeout(self.options.connect_timeout.max(self.options.ping));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| LinkError::Connect(Box::new(e)))?;
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| LinkError::Connect(Box::new(e)))?;
        pubsub
            .subscribe(&channels)
            .await
            .map_err(|e| LinkError::Subscribe(Box::new(e)))?;
        let (subscribed, stream) = pubsub.split();
        let incoming = stream
            .map(|message| Ok(Bytes::copy_from_slice(message.get_payload_bytes())))
            .boxed();
        Ok((RedisLink { conn, subscribed }, incoming))
    }
}

impl Link for RedisLink {
    async fn publish(&mut self, batch: &[(String, Bytes)]) -> Result<(), LinkError> {
        let mut pipe = redis::pipe();
        for (channel, message) in batch {
            pipe.cmd("PUBLISH").arg(channel).arg(&message[..]).ignore();
        }
        pipe.query_async::<()>(&mut self.conn)
            .await
            .map_err(|e| LinkError::Publish(Box::new(e)))
    }

    async fn probe(&mut self) -> Result<(), LinkError> {
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut self.conn)
            .await
            .map_err(|e| LinkError::Probe(Box::new(e)))?;
        self.subscribed
            .ping::<redis::Value>()
            .await
            .map_err(|e| LinkError::Probe(Box::new(e)))?;
        Ok(())
    }
}
