//! How messages leave this node: the [`Adapter`] trait and the frames adapters carry.
//!
//! PubSub delivers to local subscribers itself; an adapter only moves opaque frames to other nodes
//! and hands frames from other nodes to [`Inbound::deliver`]. Adapters therefore need no knowledge
//! of topics or subscribers, and a new broker is one small trait implementation.
//!
//! Adapters never block the publisher: `broadcast` and `direct` queue the frame (or drop it, counting
//! the loss, when the broker is away). Delivery across nodes is at most once, as in Phoenix.

pub mod frame;
pub mod memory;

use std::sync::Weak;

use bytes::Bytes;

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
}

/// The single-node adapter: there are no other nodes, so nothing leaves.
#[derive(Debug, Default)]
pub struct Local;

impl Adapter for Local {
    fn start(&self, _node: &Node, _inbound: Inbound) {}
    fn broadcast(&self, _frame: Bytes) {}
    fn direct(&self, _node: &str, _frame: Bytes) {}
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
