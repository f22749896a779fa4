//! An in-process cluster: several [`PubSub`] nodes in one program, with faults on demand.
//!
//! Tests of replication (tracker shards, inventory events) need several nodes and a network that
//! misbehaves: partitions that heal, lost frames, delays, nodes that die. This adapter gives them all
//! without sockets, so those tests are fast and deterministic in what they inject.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use bytes::Bytes;
//! let network = pubsub::memory::Network::new();
//! let a = network.node("a");
//! let b = network.node("b");
//! let (mailbox, mut inbox) = b.mailbox(8);
//! b.subscribe("t", &mailbox);
//! a.broadcast("t", Bytes::from_static(b"hi"));
//! assert_eq!(&inbox.recv().await.unwrap().payload[..], b"hi");
//! network.partition(&["a"], &["b"]);
//! a.broadcast("t", Bytes::from_static(b"lost"));
//! assert!(inbox.try_recv().is_none());
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};

use super::{Adapter, AdapterKind, Inbound};
use crate::PubSub;
use crate::node::Node;

#[derive(Default)]
struct Faults {
    /// Unordered pairs of node names that cannot reach each other.
    cut: FxHashSet<(Arc<str>, Arc<str>)>,
    /// Probability in [0, 1] that any one frame is lost.
    drop_rate: f64,
    /// Extra latency of every frame.
    delay: Option<Duration>,
}

struct Member {
    generation: u64,
    inbound: Inbound,
}

#[derive(Default)]
struct NetworkInner {
    members: RwLock<FxHashMap<Arc<str>, Member>>,
    faults: RwLock<Faults>,
    generations: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// An in-process network connecting [`PubSub`] nodes by name.
#[derive(Clone, Default)]
pub struct Network {
    inner: Arc<NetworkInner>,
}

impl Network {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a node called `name` on this network. A node already running under that name is
    /// replaced (as if it had been killed and restarted): it can neither send nor receive any more.
    pub fn node(&self, name: &str) -> PubSub {
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed) + 1;
        PubSub::with_adapter(
            name,
            Arc::new(MemoryAdapter {
                network: self.inner.clone(),
                name: Arc::from(name),
                generation,
            }),
        )
    }

    /// Disconnects node `name` for good, like a process killed with -9.
    pub fn kill(&self, name: &str) {
        self.inner.members.write().remove(name);
    }

    /// Cuts every link between a node of `left` and a node of `right`.
    pub fn partition(&self, left: &[&str], right: &[&str]) {
        let mut faults = self.inner.faults.write();
        for l in left {
            for r in right {
                faults.cut.insert(pair(l, r));
            }
        }
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.inner.faults.write().cut.clear();
    }

    /// Loses each frame with probability `rate` (0 = none, 1 = all).
    pub fn set_drop_rate(&self, rate: f64) {
        self.inner.faults.write().drop_rate = rate.clamp(0.0, 1.0);
    }

    /// Delays every frame by `delay` (`None` = deliver at once).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.inner.faults.write().delay = delay;
    }

    /// Frames and bytes handed to the network so far (before faults), for wire-cost measurements.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.inner.frames.load(Ordering::Relaxed),
            self.inner.bytes.load(Ordering::Relaxed),
        )
    }
}

fn pair(a: &str, b: &str) -> (Arc<str>, Arc<str>) {
    if a <= b {
        (Arc::from(a), Arc::from(b))
    } else {
        (Arc::from(b), Arc::from(a))
    }
}

struct MemoryAdapter {
    network: Arc<NetworkInner>,
    name: Arc<str>,
    generation: u64,
}

impl MemoryAdapter {
    fn is_current(&self) -> bool {
        self.network
            .members
            .read()
            .get(&self.name)
            .is_some_and(|m| m.generation == self.generation)
    }

    fn send_to(&self, targets: Vec<Inbound>, frame: Bytes) {
        let (delay, drop_rate) = {
            let faults = self.network.faults.read();
            (faults.delay, faults.drop_rate)
        };
        for inbound in targets {
            self.network.frames.fetch_add(1, Ordering::Relaxed);
            self.network
                .bytes
                .fetch_add(frame.len() as u64, Ordering::Relaxed);
            if drop_rate > 0.0 && rand::random::<f64>() < drop_rate {
                continue;
            }
            let frame = frame.clone();
            match delay {
                None => {
                    inbound.deliver(frame);
                }
                Some(delay) => {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        inbound.deliver(frame);
                    });
                }
            }
        }
    }

    fn reachable(&self, other: &Arc<str>, faults: &Faults) -> bool {
        other != &self.name && !faults.cut.contains(&pair(&self.name, other))
    }
}

impl Adapter for MemoryAdapter {
    fn start(&self, _node: &Node, inbound: Inbound) {
        self.network.members.write().insert(
            self.name.clone(),
            Member {
                generation: self.generation,
                inbound,
            },
        );
    }

    fn broadcast(&self, frame: Bytes) {
        if !self.is_current() {
            return;
        }
        let targets: Vec<Inbound> = {
            let members = self.network.members.read();
            let faults = self.network.faults.read();
            members
                .iter()
                .filter(|(name, _)| self.reachable(name, &faults))
                .map(|(_, m)| m.inbound.clone())
                .collect()
        };
        self.send_to(targets, frame);
    }

    fn direct(&self, node: &str, frame: Bytes) {
        if !self.is_current() {
            return;
        }
        let target: Option<Inbound> = {
            let members = self.network.members.read();
            let faults = self.network.faults.read();
            members
                .get_key_value(node)
                .filter(|(name, _)| self.reachable(name, &faults))
                .map(|(_, m)| m.inbound.clone())
        };
        self.send_to(target.into_iter().collect(), frame);
    }

    fn kind(&self) -> AdapterKind {
        AdapterKind::Memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[tokio::test]
    async fn broadcast_reaches_other_nodes_and_from_is_skipped_everywhere() {
        let network = Network::new();
        let a = network.node("a");
        let c = network.node("c");
        let (ma, mut ia) = a.mailbox(8);
        let (mc, mut ic) = c.mailbox(8);
        a.subscribe("t", &ma);
        c.subscribe("t", &mc);
        a.broadcast_from(&ma, "t", b("x"));
        assert_eq!(&ic.recv().await.expect("remote").payload[..], b"x");
        assert!(ia.try_recv().is_none());
        a.local_broadcast("t", b("local"));
        assert_eq!(&ia.recv().await.expect("local").payload[..], b"local");
        assert!(ic.try_recv().is_none(), "local_broadcast stays on its node");
    }

    #[tokio::test]
    async fn direct_reaches_only_the_named_node() {
        let network = Network::new();
        let a = network.node("a");
        let b_node = network.node("b");
        let c = network.node("c");
        let (mb, mut ib) = b_node.mailbox(8);
        let (mc, mut ic) = c.mailbox(8);
        b_node.subscribe("t", &mb);
        c.subscribe("t", &mc);
        a.direct_broadcast("b", "t", b("only b"));
        assert_eq!(&ib.recv().await.expect("b").payload[..], b"only b");
        assert!(ic.try_recv().is_none());
    }

    #[tokio::test]
    async fn partitions_cut_and_heal_restores() {
        let network = Network::new();
        let a = network.node("a");
        let b_node = network.node("b");
        let (mb, mut ib) = b_node.mailbox(8);
        b_node.subscribe("t", &mb);
        network.partition(&["a"], &["b"]);
        a.broadcast("t", b("lost"));
        a.direct_broadcast("b", "t", b("lost too"));
        assert!(ib.try_recv().is_none());
        network.heal();
        a.broadcast("t", b("back"));
        assert_eq!(&ib.recv().await.expect("healed").payload[..], b"back");
    }

    #[tokio::test]
    async fn a_replaced_node_is_silent_and_deaf() {
        let network = Network::new();
        let old = network.node("a");
        let other = network.node("b");
        let (mo, mut io) = old.mailbox(8);
        old.subscribe("t", &mo);
        let _new = network.node("a");
        other.broadcast("t", b("x"));
        assert!(io.try_recv().is_none());
        let (mb, mut ib) = other.mailbox(8);
        other.subscribe("t", &mb);
        old.broadcast("t", b("ghost"));
        // Only the local copy of `other`'s own broadcast is in `ib`'s future; the ghost never arrives.
        assert!(ib.try_recv().is_none());
        network.kill("b");
        _new.broadcast("t", b("nobody"));
        assert!(ib.try_recv().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_frames_arrive_after_the_delay() {
        let network = Network::new();
        let a = network.node("a");
        let b_node = network.node("b");
        let (mb, mut ib) = b_node.mailbox(8);
        b_node.subscribe("t", &mb);
        network.set_delay(Some(Duration::from_millis(50)));
        a.broadcast("t", b("late"));
        assert!(ib.try_recv().is_none());
        let got = ib.recv().await.expect("arrives once time advances");
        assert_eq!(&got.payload[..], b"late");
    }

    #[tokio::test]
    async fn drop_rate_one_loses_everything() {
        let network = Network::new();
        let a = network.node("a");
        let b_node = network.node("b");
        let (mb, mut ib) = b_node.mailbox(8);
        b_node.subscribe("t", &mb);
        network.set_drop_rate(1.0);
        a.broadcast("t", b("x"));
        assert!(ib.try_recv().is_none());
        assert_eq!(network.traffic().0, 1);
    }
}
