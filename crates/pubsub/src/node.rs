//! Who a node is: a stable name chosen by the operator and an incarnation drawn at every boot.
//!
//! Peers use the pair to tell a restarted node (same name, new incarnation) from one that merely went
//! quiet, which is what lets the tracker drop the presences of a node's previous life at once.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The identity of one running node of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// The operator-chosen name, stable across restarts (e.g. `app1`).
    pub name: Arc<str>,
    /// A number unique to this boot of the node: microseconds since the epoch plus a random offset.
    pub incarnation: u64,
}

impl Node {
    /// A node called `name` with a fresh incarnation.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        // The random low bits separate two boots within the same microsecond (tests start many nodes).
        let salt: u64 = rand::random::<u16>() as u64;
        Node {
            name: name.into(),
            incarnation: (micros << 16) | salt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_boots_of_one_name_have_different_incarnations() {
        let a = Node::new("app");
        let b = Node::new("app");
        assert_eq!(a.name, b.name);
        assert_ne!(a.incarnation, b.incarnation);
    }
}
