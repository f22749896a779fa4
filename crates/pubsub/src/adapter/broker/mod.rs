//! The broker adapters: one [`BrokerAdapter`] over a small [`Driver`] per broker (Redis, NATS).
//!
//! # Modules
//!
//! * `url`: the URL's tuning parameters ([`BrokerOptions`]) and channel names;
//! * `envelope`: the envelope frames travel in, chunking and reassembly;
//! * `queue`: the bounded send queue between publishers and the adapter's task;
//! * `link`: the link's status, counters and rate-limited logs;
//! * `backoff`: the delay between reconnection attempts;
//! * `driver`: what a broker client provides ([`Driver`], [`Link`]);
//! * `adapter`: the generic [`BrokerAdapter`] that puts them together.
//!
//! # Channels
//!
//! A cluster is a *name* (`?cluster=` in the URL, default [`DEFAULT_CLUSTER`]). Every node listens
//! on two broker channels (Redis channels, NATS subjects): one for the whole cluster, which carries
//! `broadcast`s, and one of its own, which carries the `direct_broadcast`s addressed to it, the way
//! phoenix_pubsub_redis does. Clusters with different names on one broker never see each other.
//!
//! # Envelope
//!
//! A frame travels inside an envelope that names its origin (the node's incarnation, so that a
//! node ignores its own broadcasts coming back from the broker) and, when the frame is larger than
//! what one broker message may carry (`max_payload`: NATS refuses messages over 1 MB by default),
//! splits it into numbered chunks that the receiver reassembles:
//!
//! ```text
//! whole: version u8 = 1 | kind u8 = 0 | origin u64 BE | frame…
//! chunk: version u8 = 1 | kind u8 = 1 | origin u64 BE | message id u64 BE | index u32 BE | count u32 BE | part…
//! ```
//!
//! Reassembly is bounded: a message whose chunks do not all arrive within
//! [`REASSEMBLY_TIMEOUT`] is forgotten, and at most [`MAX_REASSEMBLY_BYTES`] wait at once.
//!
//! # Never blocking the publisher
//!
//! `broadcast` and `direct` put the frame in a bounded queue (frames and bytes) read by the
//! adapter's task. When the queue is full, or the broker is unreachable, the frame is dropped at
//! once and counted ([`AdapterStats::dropped`](crate::AdapterStats::dropped)); drops are logged at
//! most every few seconds. Delivery is at most once, as with Phoenix's adapters; the tracker
//! repairs what was lost by anti-entropy, and the store reloads its inventory cache when the broker
//! comes back.
//!
//! # Losing the broker
//!
//! The driver's connection (Redis: one to publish and one to subscribe; NATS: one) is the adapter's
//! *link*. It is probed every `ping_ms` while nothing is sent; when it is lost (a failed publish or
//! probe, the stream of incoming messages ending, the client reporting a disconnection) it is made
//! again with exponential back-off (from 100 ms up to `backoff_max_ms`, with jitter). Meanwhile the
//! adapter's status is [`AdapterStatus::Disconnected`](crate::AdapterStatus::Disconnected) with the
//! reason, which the node logs, exports as a metric and reports in its health check. The node goes
//! on serving its own clients.

mod adapter;
mod backoff;
pub mod driver;
mod envelope;
mod link;
mod queue;
mod url;

#[cfg(test)]
mod stub;

pub use adapter::BrokerAdapter;
pub use driver::{Driver, Incoming, Link, LinkError};
pub use envelope::{MAX_CHUNKS, MAX_REASSEMBLY_BYTES, REASSEMBLY_TIMEOUT};
pub use url::{BrokerOptions, DEFAULT_CLUSTER, UrlError, parse_url, redact};
