//! How messages leave this node: the [`Adapter`] trait and the frames adapters carry.
//!
//! PubSub delivers to local subscribers itself; an adapter only moves opaque frames to other nodes
//! and hands frames from other nodes to [`Inbound::deliver`]. Adapters therefore need no knowledge
//! of topics or subscribers, and a new broker is one small trait implementation.
//!
//! Adapters never block the publisher: `broadcast` and `direct` queue the frame (or drop it, counting
//! the loss, when the broker is away). Delivery across nodes is at most once, as in Phoenix.
//!
//! Adapters of this crate:
//!
//! * [`Local`]: a single node, nothing leaves;
//! * [`memory`]: an in-process network of nodes with injectable faults, for tests;
//! * `redis` (feature `redis`): Redis `PUBLISH`/`SUBSCRIBE`, one channel per node plus one for
//!   the cluster;
//! * `nats` (feature `nats`): NATS core subjects, one per node plus one for the cluster.
//!
//! The broker adapters are one [`broker::BrokerAdapter`] over a small driver per broker: the
//! envelope frames travel in (origin node, chunking of frames larger than the broker accepts), the
//! bounded send queue, reconnection with back-off, and the status and counters behind
//! [`AdapterStatus`] and [`AdapterStats`] are written once.

pub mod broker;
pub(crate) mod frame;
pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "redis")]
pub mod redis;

use std::sync::Weak;

use bytes::Bytes;
use tokio::sync::watch;

use crate::node::Node;
use crate::{Inner, message::Message};

/// Whether an adapter can currently reach the other nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterStatus {
    /// Frames are flowing (or there is nobody else to talk to).
    Connected,
    /// The broker is unreachable; frames to other nodes are being dropped. Carries the last error.
    Disconnected(String),
}

impl std::fmt::Display for AdapterStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdapterStatus::Connected => f.write_str("connected"),
            AdapterStatus::Disconnected(reason) => write!(f, "disconnected: {reason}"),
        }
    }
}

/// Traffic counters of an adapter since start, for metrics and wire-cost measurements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    /// Frames handed to the broker.
    pub frames_sent: u64,
    /// Bytes handed to the broker (envelopes included; one count per frame, not per receiver).
    pub bytes_sent: u64,
    /// Frames received from other nodes and delivered.
    pub frames_received: u64,
    /// Bytes received from the broker (envelopes included).
    pub bytes_received: u64,
    /// Frames lost on the way out: queue full, broker unreachable, or a failed publish.
    pub dropped: u64,
    /// Frames waiting in the send queue right now.
    pub queued: u64,
    /// Times the connection to the broker was established again after a loss.
    pub reconnects: u64,
}

/// Moves frames between the nodes of a cluster.
pub trait Adapter: Send + Sync + 'static {
    /// Called once when the [`PubSub`](crate::PubSub) is built: frames from other nodes go to `inbound`.
    fn start(&self, node: &Node, inbound: Inbound);
    /// Sends `frame` to every other node. Must not block.
    fn broadcast(&self, frame: Bytes);
    /// Sends `frame` to the node named `node`. Must not block.
    fn direct(&self, node: &str, frame: Bytes);
    /// Whether other nodes are reachable right now (for logs, metrics and health checks).
    fn status(&self) -> AdapterStatus {
        AdapterStatus::Connected
    }
    /// Follows [`status`](Adapter::status) as it changes; `None` when it never changes.
    fn status_changes(&self) -> Option<watch::Receiver<AdapterStatus>> {
        None
    }
    /// Traffic counters since start (all zero for adapters that do not count).
    fn stats(&self) -> AdapterStats {
        AdapterStats::default()
    }
    /// What kind of adapter this is (single node, in-process cluster, broker…), for deciding
    /// single-node behaviour, logs and health checks.
    fn kind(&self) -> AdapterKind {
        AdapterKind::Custom("custom")
    }
}

/// The kind of an [`Adapter`]: whether other nodes can exist at all, and its short name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// [`Local`]: a single node; nothing ever leaves it.
    Local,
    /// [`memory::Network`]'s adapters: nodes of one process (tests, simulations).
    Memory,
    /// A message broker, by its driver's name (`redis`, `nats`…).
    Broker(&'static str),
    /// Any other adapter, by its name.
    Custom(&'static str),
}

impl AdapterKind {
    /// The short name: `local`, `memory`, or the broker's or adapter's name (`redis`, `nats`…).
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Local => "local",
            AdapterKind::Memory => "memory",
            AdapterKind::Broker(name) | AdapterKind::Custom(name) => name,
        }
    }

    /// Whether this node is alone by construction (no other node can ever be reached).
    pub fn is_single_node(self) -> bool {
        self == AdapterKind::Local
    }
}

impl std::fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The single-node adapter: there are no other nodes, so nothing leaves.
#[derive(Debug, Default)]
pub struct Local;

impl Adapter for Local {
    fn start(&self, _node: &Node, _inbound: Inbound) {}
    fn broadcast(&self, _frame: Bytes) {}
    fn direct(&self, _node: &str, _frame: Bytes) {}
    fn kind(&self) -> AdapterKind {
        AdapterKind::Local
    }
}

/// The door through which an adapter delivers frames that arrived from other nodes.
#[derive(Clone)]
pub struct Inbound {
    pub(crate) inner: Weak<Inner>,
}

impl Inbound {
    /// Decodes a frame from another node and delivers it to this node's subscribers.
    ///
    /// Returns false (and logs) when the frame is malformed or the node has shut down; a bad frame
    /// never disturbs anything else.
    pub fn deliver(&self, frame: Bytes) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        match frame::decode(frame) {
            Ok(decoded) => {
                inner
                    .registry
                    .dispatch(Message::new(decoded.topic, decoded.payload, decoded.from));
                true
            }
            Err(error) => {
                tracing::warn!(%error, "dropped a malformed frame from another node");
                false
            }
        }
    }
}
