//! The inventory's replication event: what one node's write tells the others (spec §7).
//!
//! It lives with the inventory, which emits it through its [`super::ReplicationSink`] port and
//! applies it in [`super::Inventory::apply_replicated`]; [`crate::replication`] only carries it
//! over pubsub.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::model::{ItemId, ProductId};

/// An inventory change made on one node that the other nodes apply to their caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReplicationEvent {
    /// A product was released.
    Release {
        /// The product.
        product_id: ProductId,
    },
    /// At least one unit of an item was sold.
    ItemSold {
        /// The item.
        item_id: ItemId,
    },
}

impl ReplicationEvent {
    /// The wire form of the event.
    pub fn encode(&self) -> Bytes {
        // Serializing a fieldless-string, integer-only enum cannot fail.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses the wire form.
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_compactly() -> Result<(), serde_json::Error> {
        for event in [
            ReplicationEvent::Release { product_id: 2 },
            ReplicationEvent::ItemSold { item_id: 26 },
        ] {
            assert_eq!(ReplicationEvent::decode(&event.encode())?, event);
        }
        assert_eq!(
            &ReplicationEvent::ItemSold { item_id: 7 }.encode()[..],
            br#"{"event":"item_sold","item_id":7}"#
        );
        Ok(())
    }

    #[test]
    fn garbage_does_not_decode() {
        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            br#"{"event":"explode","item_id":1}"#,
            br#"{"event":"item_sold","item_id":"x"}"#,
        ] {
            assert!(ReplicationEvent::decode(garbage).is_err());
        }
    }
}
