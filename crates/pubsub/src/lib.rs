//! Topic publish/subscribe inside one node, and across nodes through an [`Adapter`].
//!
//! Subscribers are mailboxes: a client connection makes one [`Mailbox`]/[`Inbox`] pair and subscribes
//! the mailbox to every topic it cares about. A publisher hands over bytes it encoded once; every
//! local subscriber receives the same `Arc<Message>`, and other nodes receive one frame each through
//! the adapter, which re-dispatches it to their own subscribers.
//!
//! Publishing never waits for a subscriber. Each mailbox is bounded; a subscriber whose mailbox is
//! full is unsubscribed from everything and learns it through [`Closed::Lagged`] (see [`mailbox`]).
//!
//! The operations mirror Phoenix.PubSub: [`broadcast`](PubSub::broadcast) (every node),
//! [`broadcast_from`](PubSub::broadcast_from) (every node, not the sender),
//! [`local_broadcast`](PubSub::local_broadcast) (this node only) and
//! [`direct_broadcast`](PubSub::direct_broadcast) (one named node).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! let pubsub = pubsub::PubSub::new("app");
//! let (mailbox, mut inbox) = pubsub.mailbox(64);
//! pubsub.subscribe("room:lobby", &mailbox);
//! pubsub.broadcast("room:lobby", Bytes::from_static(b"hello"));
//! let message = inbox.recv().await.unwrap();
//! assert_eq!(&message.payload[..], b"hello");
//! # }
//! ```
//!
//! # A cluster
//!
//! [`connect`] picks the adapter from a URL, the way the store's `PUBSUB_URL` does: none or
//! `local` for a single node, `redis://…` for Redis pub/sub, `nats://…` for NATS (see
//! [`adapter::broker`] for the URL parameters, the envelope and what happens when the broker is
//! away). Every node of a cluster uses the same URL (same broker, same `cluster=` name) and its own
//! node name.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `redis` | off | the Redis adapter (`redis://…` URLs), with the `redis` client |
//! | `nats` | off | the NATS adapter (`nats://…` URLs), with the `async-nats` client |
//!
//! Without them, a single node ([`Local`]) and the in-process [`memory`] network for tests are
//! all there is, and no broker client is compiled.

pub mod adapter;
pub mod mailbox;
mod message;
mod node;
mod queue;
mod registry;

pub use adapter::memory;
pub use adapter::{Adapter, AdapterKind, AdapterStats, AdapterStatus, Inbound, Local};
pub use mailbox::{Closed, Inbox, Mailbox, MailboxId};
pub use message::Message;
pub use node::Node;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::watch;

use registry::Registry;

/// Why [`connect`] could not build a hub.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL or one of its parameters is wrong.
    #[error(transparent)]
    Url(#[from] adapter::broker::UrlError),
    /// The Redis client refused the URL.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] adapter::redis::RedisUrlError),
    /// The NATS client refused the URL.
    #[cfg(feature = "nats")]
    #[error(transparent)]
    Nats(#[from] adapter::nats::NatsUrlError),
}

/// A hub for the node called `node_name`, reaching the other nodes through the broker of `url`:
///
/// * `None`, `""` or `"local"`: a single node ([`Local`]);
/// * `redis://…`: the Redis adapter (feature `redis`);
/// * `nats://…`: the NATS adapter (feature `nats`).
///
/// A scheme whose feature is not compiled in is refused with [`UrlError::Disabled`](adapter::broker::UrlError::Disabled).
///
/// Returns at once, without waiting for the broker: the connection is made in the background and
/// retried for as long as it fails, [`PubSub::adapter_status`] telling how it goes (watch
/// [`PubSub::status_changes`] to wait for it). Must be called within a tokio runtime. Fails only
/// when the URL is wrong.
pub fn connect(node_name: &str, url: Option<&str>) -> Result<PubSub, ConnectError> {
    let url = url.map(str::trim).unwrap_or("");
    if url.is_empty() || url == "local" {
        return Ok(PubSub::new(node_name));
    }
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    let adapter: Arc<dyn Adapter> = match scheme {
        "redis" | "rediss" | "redis+unix" | "unix" => redis_adapter(url, scheme)?,
        "nats" | "tls" => nats_adapter(url, scheme)?,
        "" => {
            return Err(adapter::broker::UrlError::Invalid {
                url: adapter::broker::redact(url),
                cause: "no scheme".to_owned(),
            }
            .into());
        }
        other => {
            return Err(adapter::broker::UrlError::Scheme {
                scheme: other.to_owned(),
            }
            .into());
        }
    };
    Ok(PubSub::with_adapter(node_name, adapter))
}

#[cfg(feature = "redis")]
fn redis_adapter(url: &str, _scheme: &str) -> Result<Arc<dyn Adapter>, ConnectError> {
    Ok(Arc::new(adapter::redis::RedisAdapter::new(url)?))
}

#[cfg(not(feature = "redis"))]
fn redis_adapter(_url: &str, scheme: &str) -> Result<Arc<dyn Adapter>, ConnectError> {
    Err(adapter::broker::UrlError::Disabled {
        scheme: scheme.to_owned(),
        feature: "redis",
    }
    .into())
}

#[cfg(feature = "nats")]
fn nats_adapter(url: &str, _scheme: &str) -> Result<Arc<dyn Adapter>, ConnectError> {
    Ok(Arc::new(adapter::nats::NatsAdapter::new(url)?))
}

#[cfg(not(feature = "nats"))]
fn nats_adapter(_url: &str, scheme: &str) -> Result<Arc<dyn Adapter>, ConnectError> {
    Err(adapter::broker::UrlError::Disabled {
        scheme: scheme.to_owned(),
        feature: "nats",
    }
    .into())
}

/// The longest topic name accepted; longer ones are a programming error and are not published.
pub const MAX_TOPIC_LEN: usize = u16::MAX as usize;

pub(crate) struct Inner {
    node: Node,
    registry: Arc<Registry>,
    adapter: Arc<dyn Adapter>,
    next_mailbox: AtomicU64,
}

/// A node's publish/subscribe hub. Cheap to clone; all clones are the same hub.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use bytes::Bytes;
/// use pubsub::PubSub;
///
/// let pubsub = PubSub::new("node-a");
/// let (me, mut my_inbox) = pubsub.mailbox(16);
/// let (other, mut other_inbox) = pubsub.mailbox(16);
/// pubsub.subscribe("room:1", &me);
/// pubsub.subscribe("room:1", &other);
///
/// // Everybody but the sender, the way a channel relays what its client said.
/// pubsub.broadcast_from(&me, "room:1", Bytes::from_static(b"hi"));
/// assert_eq!(&other_inbox.recv().await.unwrap().payload[..], b"hi");
/// assert!(my_inbox.try_recv().is_none());
/// assert_eq!(pubsub.subscriber_count("room:1"), 2);
/// # }
/// ```
#[derive(Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("node", &self.inner.node)
            .finish()
    }
}

/// Fan-out counters of one node, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages dispatched to local subscribers (local and from other nodes).
    pub published: u64,
    /// Messages placed in a mailbox.
    pub delivered: u64,
    /// Subscribers cut off because their mailbox was full.
    pub lagged: u64,
}

impl PubSub {
    /// A single-node hub (the [`Local`] adapter).
    pub fn new(node_name: impl Into<Arc<str>>) -> Self {
        Self::with_adapter(node_name, Arc::new(Local))
    }

    /// A hub that reaches other nodes through `adapter`.
    pub fn with_adapter(node_name: impl Into<Arc<str>>, adapter: Arc<dyn Adapter>) -> Self {
        let node = Node::new(node_name);
        let inner = Arc::new(Inner {
            node,
            registry: Arc::new(Registry::new()),
            adapter,
            next_mailbox: AtomicU64::new(1),
        });
        inner.adapter.start(
            &inner.node,
            Inbound {
                inner: Arc::downgrade(&inner),
            },
        );
        PubSub { inner }
    }

    /// This node's identity.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// Whether other nodes are reachable.
    pub fn adapter_status(&self) -> AdapterStatus {
        self.inner.adapter.status()
    }

    /// Follows [`adapter_status`](PubSub::adapter_status) as it changes (for adapters whose status
    /// never changes, a receiver that holds the one status and never reports a change).
    pub fn status_changes(&self) -> watch::Receiver<AdapterStatus> {
        self.inner
            .adapter
            .status_changes()
            .unwrap_or_else(|| watch::channel(self.inner.adapter.status()).1)
    }

    /// Waits until the adapter reports [`AdapterStatus::Connected`], at most `limit`; returns
    /// whether it did.
    pub async fn wait_connected(&self, limit: std::time::Duration) -> bool {
        let mut changes = self.status_changes();
        let connected = changes.wait_for(|s| *s == AdapterStatus::Connected);
        matches!(tokio::time::timeout(limit, connected).await, Ok(Ok(_)))
            || self.adapter_status() == AdapterStatus::Connected
    }

    /// The adapter's kind (its short name is [`AdapterKind::as_str`]: `local`, `memory`,
    /// `redis`, `nats`…).
    pub fn adapter_kind(&self) -> AdapterKind {
        self.inner.adapter.kind()
    }

    /// The adapter's traffic counters (frames and bytes to and from other nodes, drops).
    pub fn adapter_stats(&self) -> AdapterStats {
        self.inner.adapter.stats()
    }

    /// Fan-out counters since start.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.registry.counters;
        Stats {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
        }
    }

    /// A new subscriber queue holding at most `capacity` messages.
    pub fn mailbox(&self, capacity: usize) -> (Mailbox, Inbox) {
        let id = MailboxId {
            node: self.inner.node.incarnation,
            local: self.inner.next_mailbox.fetch_add(1, Ordering::Relaxed),
        };
        Inbox::new(id, capacity, self.inner.registry.clone())
    }

    /// Delivers `topic`'s messages to `mailbox` from now on. Subscribing twice is the same as once.
    pub fn subscribe(&self, topic: &str, mailbox: &Mailbox) {
        self.inner.registry.subscribe(topic, &mailbox.shared);
    }

    /// Stops delivering `topic`'s messages to `mailbox`.
    pub fn unsubscribe(&self, topic: &str, mailbox: &Mailbox) {
        self.inner.registry.unsubscribe(topic, &mailbox.shared);
    }

    /// How many local mailboxes are subscribed to `topic`.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.registry.subscriber_count(topic)
    }

    /// Publishes to every subscriber of `topic` on every node.
    pub fn broadcast(&self, topic: &str, payload: Bytes) {
        self.publish(topic, None, payload, Scope::Cluster);
    }

    /// Publishes to every subscriber of `topic` on every node except `from` itself.
    pub fn broadcast_from(&self, from: &Mailbox, topic: &str, payload: Bytes) {
        self.publish(topic, Some(from.id()), payload, Scope::Cluster);
    }

    /// Publishes to the subscribers of `topic` on this node only.
    pub fn local_broadcast(&self, topic: &str, payload: Bytes) {
        self.publish(topic, None, payload, Scope::Local);
    }

    /// Publishes to the subscribers of `topic` on this node only, except `from` itself.
    pub fn local_broadcast_from(&self, from: &Mailbox, topic: &str, payload: Bytes) {
        self.publish(topic, Some(from.id()), payload, Scope::Local);
    }

    /// Publishes to the subscribers of `topic` on the node called `node` only (which may be this one).
    pub fn direct_broadcast(&self, node: &str, topic: &str, payload: Bytes) {
        if node == &*self.inner.node.name {
            self.publish(topic, None, payload, Scope::Local);
        } else if self.topic_fits(topic) {
            self.inner
                .adapter
                .direct(node, adapter::frame::encode(topic, None, &payload));
        }
    }

    fn topic_fits(&self, topic: &str) -> bool {
        if topic.len() > MAX_TOPIC_LEN {
            tracing::error!(
                len = topic.len(),
                "topic too long to publish; message dropped"
            );
            return false;
        }
        true
    }

    fn publish(&self, topic: &str, from: Option<MailboxId>, payload: Bytes, scope: Scope) {
        if !self.topic_fits(topic) {
            return;
        }
        if scope == Scope::Cluster {
            self.inner
                .adapter
                .broadcast(adapter::frame::encode(topic, from, &payload));
        }
        self.inner
            .registry
            .dispatch(Message::new(Arc::from(topic), payload, from));
    }
}

/// The byte layouts other nodes send (the frame, the broker envelope and its reassembly), for
/// this crate's fuzz targets and tests only: not part of the API, and changed without notice.
#[doc(hidden)]
pub mod internals {
    /// See the crate's `adapter::frame` module.
    pub mod frame {
        pub use crate::adapter::frame::*;
    }
    /// See the crate's `adapter::broker::envelope` module.
    pub mod envelope {
        pub use crate::adapter::broker::envelope::*;
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Local,
    Cluster,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bytes(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn delivers_to_every_subscriber_the_same_allocation() {
        let pubsub = PubSub::new("a");
        let (m1, mut i1) = pubsub.mailbox(8);
        let (m2, mut i2) = pubsub.mailbox(8);
        pubsub.subscribe("t", &m1);
        pubsub.subscribe("t", &m2);
        pubsub.broadcast("t", bytes("x"));
        let a = i1.recv().await.expect("first subscriber");
        let b = i2.recv().await.expect("second subscriber");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a.topic, "t");
    }

    #[tokio::test]
    async fn broadcast_from_skips_the_sender_only() {
        let pubsub = PubSub::new("a");
        let (m1, mut i1) = pubsub.mailbox(8);
        let (m2, mut i2) = pubsub.mailbox(8);
        pubsub.subscribe("t", &m1);
        pubsub.subscribe("t", &m2);
        pubsub.broadcast_from(&m1, "t", bytes("x"));
        assert_eq!(&i2.recv().await.expect("other").payload[..], b"x");
        assert!(i1.try_recv().is_none());
    }

    #[tokio::test]
    async fn one_mailbox_hears_many_topics_and_unsubscribe_stops_one() {
        let pubsub = PubSub::new("a");
        let (m, mut inbox) = pubsub.mailbox(8);
        pubsub.subscribe("t1", &m);
        pubsub.subscribe("t2", &m);
        pubsub.subscribe("t2", &m);
        pubsub.unsubscribe("t1", &m);
        pubsub.broadcast("t1", bytes("one"));
        pubsub.broadcast("t2", bytes("two"));
        let got = inbox.recv().await.expect("t2");
        assert_eq!(&*got.topic, "t2");
        assert!(
            inbox.try_recv().is_none(),
            "t1 unsubscribed, t2 delivered once"
        );
    }

    #[tokio::test]
    async fn a_full_mailbox_is_cut_off_without_blocking_others() {
        let pubsub = PubSub::new("a");
        let (slow, mut slow_inbox) = pubsub.mailbox(2);
        let (fast, mut fast_inbox) = pubsub.mailbox(100);
        pubsub.subscribe("t", &slow);
        pubsub.subscribe("t", &fast);
        for _ in 0..10 {
            pubsub.broadcast("t", bytes("x"));
        }
        for _ in 0..10 {
            assert!(fast_inbox.recv().await.is_ok());
        }
        assert_eq!(slow_inbox.recv().await.err(), Some(Closed::Lagged));
        assert!(slow.is_lagged());
        assert_eq!(pubsub.subscriber_count("t"), 1);
        assert_eq!(pubsub.stats().lagged, 1);
        assert!(slow.topics().is_empty());
    }

    #[tokio::test]
    async fn dropping_the_inbox_unsubscribes_everywhere() {
        let pubsub = PubSub::new("a");
        let (m, inbox) = pubsub.mailbox(8);
        pubsub.subscribe("t1", &m);
        pubsub.subscribe("t2", &m);
        assert_eq!(pubsub.subscriber_count("t1"), 1);
        drop(inbox);
        assert_eq!(pubsub.subscriber_count("t1"), 0);
        assert_eq!(pubsub.subscriber_count("t2"), 0);
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn a_broker_left_out_of_the_build_is_a_clear_error() {
        let error = connect("a", Some("redis://127.0.0.1:6379")).unwrap_err();
        assert!(matches!(
            error,
            ConnectError::Url(adapter::broker::UrlError::Disabled {
                feature: "redis",
                ..
            })
        ));
        assert!(error.to_string().contains("`redis` feature"), "{error}");
    }

    #[tokio::test]
    async fn derived_encoding_is_computed_once_per_message() {
        let pubsub = PubSub::new("a");
        let (m1, mut i1) = pubsub.mailbox(8);
        let (m2, mut i2) = pubsub.mailbox(8);
        pubsub.subscribe("t", &m1);
        pubsub.subscribe("t", &m2);
        pubsub.broadcast("t", bytes("x"));
        let calls = std::sync::atomic::AtomicUsize::new(0);
        for inbox in [&mut i1, &mut i2] {
            let message = inbox.recv().await.expect("delivered");
            let derived = message.derived(|p| {
                calls.fetch_add(1, Ordering::SeqCst);
                Bytes::from([&p[..], b"!"].concat())
            });
            assert_eq!(&derived[..], b"x!");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
