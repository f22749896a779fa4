//! Inventory replication between the nodes of a cluster (spec §7).
//!
//! Each node keeps its own inventory cache. When a node releases a product or sells an item it
//! publishes a [`ReplicationEvent`] on the pubsub topic [`REPLICATION_TOPIC`] with
//! `broadcast_from`, so every *other* node receives it and the sender does not process its own
//! event. A receiving node applies it with [`Inventory::apply_replicated`]: re-read the
//! database, update its cache, notify its own `item_out` subscribers. It never re-publishes
//! (no loops) and never broadcasts to clients (the origin node's broadcast already reached
//! them).
//!
//! Events travel as small JSON objects (`{"event":"item_sold","item_id":7}`); a payload that
//! does not decode is logged and dropped.
//!
//! If this node's listener falls behind and is cut off by pubsub, it subscribes again and
//! reloads the whole cache from the database, since events were lost.
//!
//! ```no_run
//! # async fn demo(db: sneakers23_core::db::Db, pubsub: pubsub::PubSub) -> Result<(), sneakers23_core::db::DbError> {
//! use std::sync::Arc;
//! use sneakers23_core::inventory::{Inventory, NoopNotifier};
//! use sneakers23_core::replication::Replication;
//!
//! let replication = Replication::new(pubsub);
//! let inventory = Inventory::load(db, Arc::new(NoopNotifier), replication.sink()).await?;
//! let listener = tokio::spawn(replication.run(inventory.clone()));
//! # drop(listener); Ok(()) }
//! ```

use std::sync::Arc;

use parking_lot::Mutex;
use pubsub::{Closed, Inbox, Mailbox, PubSub};
use tokio::sync::Semaphore;

pub use crate::inventory::ReplicationEvent;
use crate::inventory::{Inventory, ReplicationSink};

/// The cluster-wide topic replication events travel on.
pub const REPLICATION_TOPIC: &str = "inventory_replication";

/// Capacity of the listener's pubsub mailbox.
const MAILBOX_CAPACITY: usize = 16_384;

/// At most this many replicated events are applied at once (each re-reads the database).
const MAX_CONCURRENT_APPLIES: usize = 32;

/// This node's end of inventory replication over pubsub: a sink that publishes events and a
/// listener ([`Replication::run`]) that applies the other nodes' events.
///
/// Both share one mailbox so that `broadcast_from` skips this node's own events.
#[derive(Clone)]
pub struct Replication {
    shared: Arc<Shared>,
}

struct Shared {
    pubsub: PubSub,
    /// The listener's current mailbox (replaced when it is cut off for lagging).
    mailbox: Mutex<Mailbox>,
    inbox: Mutex<Option<Inbox>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("pubsub", &self.shared.pubsub)
            .finish_non_exhaustive()
    }
}

impl Replication {
    /// Subscribes this node to [`REPLICATION_TOPIC`]. Events published from now on are queued
    /// until [`Replication::run`] applies them.
    pub fn new(pubsub: PubSub) -> Self {
        let (mailbox, inbox) = pubsub.mailbox(MAILBOX_CAPACITY);
        pubsub.subscribe(REPLICATION_TOPIC, &mailbox);
        Self {
            shared: Arc::new(Shared {
                pubsub,
                mailbox: Mutex::new(mailbox),
                inbox: Mutex::new(Some(inbox)),
            }),
        }
    }

    /// The sink to give to [`Inventory::load`].
    pub fn sink(&self) -> Arc<dyn ReplicationSink> {
        Arc::new(self.clone())
    }

    /// Applies the other nodes' events to `inventory`, for as long as the task runs (spawn it
    /// and abort it on shutdown). Call it once; a second call returns at once.
    pub async fn run(self, inventory: Inventory) {
        let Some(mut inbox) = self.shared.inbox.lock().take() else {
            tracing::error!("replication listener started twice; the second one exits");
            return;
        };
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_APPLIES));
        loop {
            match inbox.recv().await {
                Ok(message) => {
                    let event = match ReplicationEvent::decode(&message.payload) {
                        Ok(event) => event,
                        Err(e) => {
                            tracing::warn!(error = %e, bytes = message.payload.len(),
                                "undecodable replication event dropped");
                            continue;
                        }
                    };
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let inventory = inventory.clone();
                    tokio::spawn(async move {
                        tracing::debug!(?event, "applying replicated event");
                        inventory.apply_replicated(event).await;
                        drop(permit);
                    });
                }
                Err(Closed::Lagged) => {
                    tracing::warn!(
                        "replication listener fell behind; resubscribing and reloading the cache"
                    );
                    inbox = self.resubscribe();
                    if let Err(e) = inventory.reload().await {
                        tracing::error!(error = %e, "cache reload after lost replication events failed");
                    }
                }
            }
        }
    }

    fn resubscribe(&self) -> Inbox {
        let (mailbox, inbox) = self.shared.pubsub.mailbox(MAILBOX_CAPACITY);
        self.shared.pubsub.subscribe(REPLICATION_TOPIC, &mailbox);
        *self.shared.mailbox.lock() = mailbox;
        inbox
    }
}

impl ReplicationSink for Replication {
    fn publish(&self, event: ReplicationEvent) {
        let mailbox = self.shared.mailbox.lock().clone();
        self.shared
            .pubsub
            .broadcast_from(&mailbox, REPLICATION_TOPIC, event.encode());
    }
}
