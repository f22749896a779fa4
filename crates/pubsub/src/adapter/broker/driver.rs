//! What a broker client must provide to become a [`BrokerAdapter`](super::BrokerAdapter): connect
//! (subscribed to this node's channels), publish a batch, and hand over what arrives as a stream.
//!
//! Everything else (the envelope, chunking and reassembly, the send queue, the status, the
//! counters, reconnection with back-off) is the adapter's, and the same for every broker.

use std::future::Future;

use bytes::Bytes;
use futures::stream::BoxStream;

/// A boxed error of a broker client, kept as the cause of a [`LinkError`].
pub type ClientError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a link to the broker could not be made, or was lost.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting took longer than `connect_timeout_ms` (twice, to be lenient).
    #[error("cannot connect: timed out")]
    ConnectTimeout,
    /// The client could not connect.
    #[error("cannot connect: {0}")]
    Connect(#[source] ClientError),
    /// The client connected but could not subscribe.
    #[error("cannot subscribe: {0}")]
    Subscribe(#[source] ClientError),
    /// Publishing failed: the link is taken down and made again.
    #[error("link lost: publish failed: {0}")]
    Publish(#[source] ClientError),
    /// A liveness probe failed.
    #[error("link lost: {0}")]
    Probe(#[source] ClientError),
    /// A liveness probe was not answered within two `ping_ms`.
    #[error("link lost: no answer to a liveness probe")]
    ProbeTimeout,
    /// The client reported the connection lost.
    #[error("link lost: {0}")]
    Lost(#[source] ClientError),
    /// The stream of incoming messages ended.
    #[error("link lost: connection closed")]
    Closed,
}

/// Broker messages arriving on a link's channels; an error or the end of the stream means the
/// link is lost.
pub type Incoming = BoxStream<'static, Result<Bytes, LinkError>>;

/// A broker client.
pub trait Driver: Send + Sync + 'static {
    /// The sending side of one connection (or set of connections) to the broker.
    type Link: Link;

    /// A short name for logs, metrics and health checks (`redis`, `nats`).
    const KIND: &'static str;

    /// The separator of channel names on this broker (`:` for Redis channels, `.` for NATS
    /// subjects): a node listens on `pubsub<sep><cluster><sep>all` and
    /// `pubsub<sep><cluster><sep>node<sep><name>`.
    const SEPARATOR: char;

    /// Connects, subscribes to `channels`, and returns once messages published on them from now on
    /// are received. The adapter bounds the wait by `connect_timeout_ms`.
    fn connect(
        &self,
        channels: Vec<String>,
    ) -> impl Future<Output = Result<(Self::Link, Incoming), LinkError>> + Send;
}

/// The sending side of a connection made by a [`Driver`].
pub trait Link: Send + 'static {
    /// Publishes each `(channel, message)` in order. An error takes the link down (the whole batch
    /// counts as dropped) and the adapter connects again.
    fn publish(
        &mut self,
        batch: &[(String, Bytes)],
    ) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// Checks the connection is alive (called every `ping_ms`; bounded by two of them).
    fn probe(&mut self) -> impl Future<Output = Result<(), LinkError>> + Send;

    /// The largest message the broker accepts, when it says so (NATS announces it).
    fn max_payload(&self) -> Option<usize> {
        None
    }
}
