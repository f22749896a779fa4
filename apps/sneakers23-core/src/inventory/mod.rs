//! The per-node inventory: a cache of products, items and availability over the database
//! (spec §5, §6, §7).
//!
//! Every read is served from an in-memory [`InventorySnapshot`] held in an atomically swapped
//! `Arc`: thousands of connections read it concurrently without taking a lock, and a writer
//! never waits for readers. The cache is "correct or close to correct"; decisions that must be
//! exact (selling, purchasing) are taken by the database.
//!
//! Writes follow the spec's order, and announce their effects through two traits so that this
//! module knows nothing of websockets or of the cluster bus:
//!
//! - [`InventoryNotifier`]: what clients must hear (`released`, `stock_change`) and the
//!   node-local `item_out` that cart channels subscribe to;
//! - [`ReplicationSink`]: the event other nodes apply to their own caches
//!   ([`ReplicationEvent`], carried between nodes by [`crate::replication`]).
//!
//! | operation | database | cache | replicate | notify |
//! |---|---|---|---|---|
//! | [`Inventory::release`] | set `released` | set `released` | `release` | `released` |
//! | [`Inventory::sell_item`], [`Inventory::purchase`] | conditional decrement, then re-read | re-read value | `item_sold` | `stock_change` when the level changes or is `out`; `item_out` at 0 |
//! | [`Inventory::apply_replicated`] | re-read | re-read value | — | `item_out` at 0 only |
//!
//! While the database is away reads keep working from the cache and writes fail with
//! [`DbError::Unavailable`]; they work again as soon as it is back.

mod event;
mod snapshot;

use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::Serialize;

pub use event::ReplicationEvent;
pub use snapshot::{CompleteItem, CompleteProduct, InventorySnapshot, ItemEntry};

use crate::db::{Db, DbError};
use crate::level::AvailabilityLevel;
use crate::model::{ItemId, ProductId};

/// Payload of the `stock_change` event on `product:<product_id>` (spec §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StockChange {
    /// Product of the item.
    pub product_id: ProductId,
    /// The item whose level changed.
    pub item_id: ItemId,
    /// Its new level.
    pub level: AvailabilityLevel,
}

/// Receives what clients of this node and of the cluster must be told about inventory changes.
///
/// Calls are made on the task performing the change, after the local cache is updated; an
/// implementation must not block (queue or broadcast and return).
pub trait InventoryNotifier: Send + Sync + 'static {
    /// A product was released on this node (broadcast `released` with the product's size
    /// selector on `product:<id>`, cluster-wide). Not called for replicated releases.
    fn released(&self, product: &CompleteProduct);
    /// An item's level changed, or it is `out` (broadcast `stock_change` on `product:<id>`,
    /// cluster-wide). Not called for replicated sales.
    fn stock_change(&self, change: StockChange);
    /// An item sold out: deliver `item_out` on `item_out:<item_id>` to this node's subscribers
    /// only. Called on every node, after that node's cache shows the item sold out.
    fn item_out(&self, item_id: ItemId);
    /// An event from another node was applied to this node's cache (after any `item_out`).
    /// An observability hook (metrics, tests); does nothing by default.
    fn replicated(&self, _event: ReplicationEvent) {}
}

/// Carries inventory events to the other nodes of the cluster.
pub trait ReplicationSink: Send + Sync + 'static {
    /// Publishes `event` to every other node (never back to this one).
    fn publish(&self, event: ReplicationEvent);
}

/// A notifier that tells nobody (operator commands, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopNotifier;

impl InventoryNotifier for NoopNotifier {
    fn released(&self, _product: &CompleteProduct) {}
    fn stock_change(&self, _change: StockChange) {}
    fn item_out(&self, _item_id: ItemId) {}
}

/// A replication sink for a node alone (no cluster).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplication;

impl ReplicationSink for NoReplication {
    fn publish(&self, _event: ReplicationEvent) {}
}

/// Where a change comes from: this node's own operation, or another node's replicated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Local,
    Replicated,
}

/// Number of locks that serialize "re-read availability then store it" per item, so that a
/// slower re-read never overwrites a fresher one.
const ITEM_LOCK_SHARDS: usize = 64;

struct Inner {
    db: Db,
    cache: ArcSwap<InventorySnapshot>,
    /// Serializes copy-edit-swap of the snapshot (held briefly, never across an await).
    write: Mutex<()>,
    item_locks: Box<[tokio::sync::Mutex<()>]>,
    notifier: Arc<dyn InventoryNotifier>,
    replication: Arc<dyn ReplicationSink>,
}

/// Handle on this node's inventory (cheap to clone; clones share the cache).
#[derive(Clone)]
pub struct Inventory {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("products", &self.inner.cache.load().product_count())
            .finish_non_exhaustive()
    }
}

impl Inventory {
    /// Loads the whole inventory from the database and starts serving it. Fails while the
    /// database is unreachable (a node cannot start without its cache, spec §17.3).
    pub async fn load(
        db: Db,
        notifier: Arc<dyn InventoryNotifier>,
        replication: Arc<dyn ReplicationSink>,
    ) -> Result<Self, DbError> {
        let snapshot = load_snapshot(&db).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                cache: ArcSwap::from_pointee(snapshot),
                write: Mutex::new(()),
                item_locks: (0..ITEM_LOCK_SHARDS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                notifier,
                replication,
            }),
        })
    }

    /// The current cache contents. Lock-free; the snapshot never changes once handed out.
    pub fn snapshot(&self) -> Arc<InventorySnapshot> {
        self.inner.cache.load_full()
    }

    /// The database this inventory writes to.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Rebuilds the cache from the database (what a restarted cache does). A sale processed
    /// while the reload reads may be overwritten by the slightly older rows it read; the next
    /// sale of that item corrects it.
    pub async fn reload(&self) -> Result<(), DbError> {
        let snapshot = load_snapshot(&self.inner.db).await?;
        let _write = self.inner.write.lock();
        self.inner.cache.store(Arc::new(snapshot));
        Ok(())
    }

    /// Replaces the cache contents without touching the database (tests and demos: e.g. force
    /// an item `out` on one node, spec §18.5).
    pub fn replace_cache(&self, snapshot: InventorySnapshot) {
        let _write = self.inner.write.lock();
        self.inner.cache.store(Arc::new(snapshot));
    }

    /// Releases a product (spec §6.2): database, then cache, then replication, then the
    /// `released` notification. Errors: [`DbError::ProductNotFound`], [`DbError::Unavailable`].
    pub async fn release(&self, product_id: ProductId) -> Result<(), DbError> {
        self.inner.db.mark_product_released(product_id).await?;
        let product = match self.set_released(product_id, true) {
            Some(product) => Some(product),
            // Released in the database but unknown to this cache (created after start):
            // refresh everything rather than guess its rows.
            None => {
                self.reload().await?;
                self.snapshot().product(product_id).cloned()
            }
        };
        self.inner
            .replication
            .publish(ReplicationEvent::Release { product_id });
        if let Some(product) = product {
            self.inner.notifier.released(&product);
        }
        tracing::info!(product_id, "product released");
        Ok(())
    }

    /// Sells one unit of an item (spec §6.3) with a conditional database update, then runs
    /// the item-sold processing (§6.4) before returning, so the caller's next read sees the
    /// sale. Errors: [`DbError::NotAvailable`] (sold out or unknown: nothing sold),
    /// [`DbError::Unavailable`].
    pub async fn sell_item(&self, item_id: ItemId) -> Result<(), DbError> {
        self.inner.db.sell_item(item_id).await?;
        self.item_sold(item_id, Origin::Local).await;
        Ok(())
    }

    /// Purchases a cart (spec §6.7): one transaction selling one unit of every item; any
    /// failure rolls everything back ([`DbError::PurchaseFailed`]). After the commit, each
    /// item goes through the item-sold processing (§19.4).
    pub async fn purchase(&self, item_ids: &[ItemId]) -> Result<(), DbError> {
        self.inner.db.purchase(item_ids).await?;
        for &item_id in item_ids {
            self.item_sold(item_id, Origin::Local).await;
        }
        Ok(())
    }

    /// Purchases a cart as order `key` (see [`crate::db::Db::purchase_order`]): a replayed
    /// key answers with the existing order and sells nothing; a new order goes through the
    /// item-sold processing like [`Inventory::purchase`].
    pub async fn purchase_order(
        &self,
        key: &str,
        item_ids: &[ItemId],
    ) -> Result<crate::db::Purchase, DbError> {
        let purchase = self.inner.db.purchase_order(key, item_ids).await?;
        if let crate::db::Purchase::New(order) = &purchase {
            for &item_id in &order.item_ids {
                self.item_sold(item_id, Origin::Local).await;
            }
        }
        Ok(purchase)
    }

    /// Applies an event replicated from another node (spec §7): re-reads the database, updates
    /// the cache and, for a sell-out, notifies this node's `item_out` subscribers. Never
    /// replicates again and never broadcasts to clients.
    pub async fn apply_replicated(&self, event: ReplicationEvent) {
        match event {
            ReplicationEvent::Release { product_id } => {
                self.apply_replicated_release(product_id).await;
            }
            ReplicationEvent::ItemSold { item_id } => {
                self.item_sold(item_id, Origin::Replicated).await;
            }
        }
        self.inner.notifier.replicated(event);
    }

    async fn apply_replicated_release(&self, product_id: ProductId) {
        let released = match self.inner.db.get_product(product_id).await {
            Ok(Some(product)) => product.released,
            Ok(None) => {
                tracing::warn!(
                    product_id,
                    "replicated release of an unknown product ignored"
                );
                return;
            }
            Err(e) => {
                // The originating node committed the release before replicating it.
                tracing::warn!(product_id, error = %e,
                    "could not re-read a replicated release; trusting the event");
                true
            }
        };
        if self.set_released(product_id, released).is_none()
            && let Err(e) = self.reload().await
        {
            tracing::warn!(product_id, error = %e,
                "replicated release of a product this cache lacks; reload failed");
        }
    }

    /// Sets the release flag in the cache; returns the updated product, or `None` when the
    /// cache does not know it.
    fn set_released(&self, product_id: ProductId, released: bool) -> Option<CompleteProduct> {
        let _write = self.inner.write.lock();
        let mut next = InventorySnapshot::clone(&self.inner.cache.load());
        if !next.set_released(product_id, released) {
            return None;
        }
        let product = next.product(product_id).cloned();
        self.inner.cache.store(Arc::new(next));
        product
    }

    /// Stores a fresh availability count; returns the previous one.
    fn set_available(&self, item_id: ItemId, count: i32) -> i32 {
        let _write = self.inner.write.lock();
        let mut next = InventorySnapshot::clone(&self.inner.cache.load());
        let old = next.set_available(item_id, count);
        self.inner.cache.store(Arc::new(next));
        old
    }

    /// Item-sold processing (spec §6.4): re-read from the database, update the cache, and
    /// (local origin only) replicate and emit `stock_change`; on every node emit `item_out`
    /// when the new count is 0. Failures are logged: the sale itself already happened.
    async fn item_sold(&self, item_id: ItemId, origin: Origin) {
        let lock = &self.inner.item_locks[shard_of(item_id)];
        let _serialized = lock.lock().await;
        let fresh = match self.inner.db.get_availability(item_id).await {
            Ok(row) => Some(row.map_or(0, |a| a.available_count)),
            Err(e) => {
                tracing::warn!(item_id, error = %e,
                    "could not re-read availability after a sale; cache left as is");
                None
            }
        };
        let old_count = fresh.map(|count| self.set_available(item_id, count));
        if origin == Origin::Local {
            // Other nodes re-read the database themselves, so replicate even when our own
            // re-read failed.
            self.inner
                .replication
                .publish(ReplicationEvent::ItemSold { item_id });
        }
        let (Some(new_count), Some(old_count)) = (fresh, old_count) else {
            return;
        };
        if origin == Origin::Local
            && let Some(change) = stock_change(&self.snapshot(), item_id, old_count, new_count)
        {
            self.inner.notifier.stock_change(change);
        }
        if new_count <= 0 {
            self.inner.notifier.item_out(item_id);
        }
    }
}

fn shard_of(item_id: ItemId) -> usize {
    // rem_euclid keeps negative ids (never stored, but user-supplied) in range.
    usize::try_from(item_id.rem_euclid(ITEM_LOCK_SHARDS as i64)).unwrap_or(0)
}

/// The `stock_change` to broadcast when an item goes from `old` to `new` units (spec §6.5):
/// none when the level is unchanged and not `out`; `out` is always re-broadcast.
fn stock_change(
    snapshot: &InventorySnapshot,
    item_id: ItemId,
    old: i32,
    new: i32,
) -> Option<StockChange> {
    let old_level = AvailabilityLevel::from_count(i64::from(old));
    let new_level = AvailabilityLevel::from_count(i64::from(new));
    if old_level == new_level && !new_level.is_out() {
        return None;
    }
    let entry = snapshot.item(item_id)?;
    Some(StockChange {
        product_id: entry.product.id,
        item_id,
        level: new_level,
    })
}

async fn load_snapshot(db: &Db) -> Result<InventorySnapshot, DbError> {
    let products = db.load_products().await?;
    let items = db.load_items().await?;
    let availabilities = db.load_availabilities().await?;
    Ok(InventorySnapshot::from_rows(
        products,
        items,
        availabilities,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fixture;

    #[test]
    fn unchanged_level_is_not_broadcast() {
        let s = fixture();
        assert_eq!(stock_change(&s, 1, 600, 599), None);
        assert_eq!(stock_change(&s, 1, 3, 2), None);
    }

    #[test]
    fn level_change_is_broadcast_with_the_product() {
        let s = fixture();
        assert_eq!(
            stock_change(&s, 3, 500, 499),
            Some(StockChange {
                product_id: 2,
                item_id: 3,
                level: AvailabilityLevel::Medium
            })
        );
    }

    #[test]
    fn out_is_always_broadcast() {
        let s = fixture();
        let out = Some(StockChange {
            product_id: 1,
            item_id: 1,
            level: AvailabilityLevel::Out,
        });
        assert_eq!(stock_change(&s, 1, 1, 0), out);
        assert_eq!(stock_change(&s, 1, 0, 0), out);
    }

    #[test]
    fn stock_change_payload_matches_the_wire_shape() -> Result<(), serde_json::Error> {
        let json = serde_json::to_value(StockChange {
            product_id: 1,
            item_id: 2,
            level: AvailabilityLevel::Out,
        })?;
        assert_eq!(
            json,
            serde_json::json!({"product_id": 1, "item_id": 2, "level": "out"})
        );
        Ok(())
    }

    #[test]
    fn shards_are_in_range_for_any_id() {
        for id in [-65, -1, 0, 1, 63, 64, i64::MAX, i64::MIN] {
            assert!(shard_of(id) < ITEM_LOCK_SHARDS);
        }
    }
}
