//! This node in a cluster (spec §7, §17.6): what it does when the pubsub broker goes away and
//! comes back.
//!
//! The nodes of a cluster share one PostgreSQL database and one broker (`PUBSUB_URL`: Redis or
//! NATS, see [`pubsub::connect`]). Through the broker travel the inventory replication events,
//! the `released`/`stock_change` broadcasts to every node's clients, and the CartTracker's
//! heartbeats and transfers.
//!
//! While the broker is unreachable a node keeps serving its own clients from its cache; what other
//! nodes published meanwhile is lost (delivery is at most once). [`watch`] follows the adapter's
//! status and, when the broker is back:
//!
//! 1. reloads the inventory cache from the database, which holds every sale and release the
//!    node missed;
//! 2. tells this node's clients what changed while they could not hear it, with **node-local**
//!    broadcasts (the other nodes' clients heard the originals): `released` for products released
//!    meanwhile, `stock_change` for items whose level changed (and `out` ones), and the node-local
//!    `item_out` to the cart channels holding an item that sold out.
//!
//! The CartTracker needs nothing: its anti-entropy (heartbeats, clock sampling, transfers)
//! converges every node's presence list once messages flow again.
//!
//! It also keeps the gauge `pubsub_adapter_connected` (1 or 0) current for `/metrics`.

use std::sync::Arc;

use channels::codec::OutPayload;
use channels::server::{Endpoint, to_object};
use pubsub::{AdapterStatus, PubSub};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::fragments::size_selector_html;
use crate::notifier::{RELEASED, STOCK_CHANGE, product_topic};
use sneakers23_core::inventory::Inventory;
use sneakers23_core::inventory::{InventoryNotifier, InventorySnapshot, StockChange};
use sneakers23_core::level::AvailabilityLevel;

/// Follows `pubsub`'s adapter status for as long as the task runs (abort it on shutdown); see the
/// module docs.
pub fn watch(
    pubsub: PubSub,
    inventory: Inventory,
    endpoint: Endpoint,
    notifier: Arc<dyn InventoryNotifier>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut changes = pubsub.status_changes();
        let mut connected = matches!(*changes.borrow_and_update(), AdapterStatus::Connected);
        gauge(connected);
        while changes.changed().await.is_ok() {
            let now = matches!(*changes.borrow_and_update(), AdapterStatus::Connected);
            gauge(now);
            if now && !connected {
                tracing::info!(
                    adapter = %pubsub.adapter_kind(),
                    "broker back: reloading the inventory and catching this node's clients up"
                );
                resync(&inventory, &endpoint, notifier.as_ref()).await;
            }
            connected = now;
        }
    })
}

fn gauge(connected: bool) {
    metrics::gauge!("pubsub_adapter_connected").set(if connected { 1.0 } else { 0.0 });
}

/// Reloads the cache and replays, to this node's clients only, what changed meanwhile.
async fn resync(inventory: &Inventory, endpoint: &Endpoint, notifier: &dyn InventoryNotifier) {
    let before = inventory.snapshot();
    if let Err(error) = inventory.reload().await {
        tracing::error!(%error, "inventory reload after the broker came back failed; \
            the cache stays as it was until the next replicated event or restart");
        return;
    }
    let after = inventory.snapshot();
    let missed = differences(&before, &after);
    for product_id in &missed.released {
        if let Some(product) = after.product(*product_id) {
            let payload = to_object(&json!({ "size_html": size_selector_html(product) }));
            endpoint.local_broadcast(
                &product_topic(*product_id),
                RELEASED,
                &OutPayload::Json(payload),
            );
        }
    }
    for change in &missed.stock_changes {
        endpoint.local_broadcast(
            &product_topic(change.product_id),
            STOCK_CHANGE,
            &OutPayload::Json(to_object(change)),
        );
    }
    for item_id in &missed.sold_out {
        notifier.item_out(*item_id);
    }
    tracing::info!(
        released = missed.released.len(),
        stock_changes = missed.stock_changes.len(),
        sold_out = missed.sold_out.len(),
        "inventory caught up after the broker outage"
    );
}

/// What changed between two snapshots, as this node's clients must hear it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Missed {
    released: Vec<sneakers23_core::model::ProductId>,
    stock_changes: Vec<StockChange>,
    sold_out: Vec<sneakers23_core::model::ItemId>,
}

fn differences(before: &InventorySnapshot, after: &InventorySnapshot) -> Missed {
    let mut missed = Missed::default();
    for product in after.products() {
        let id = product.product.id;
        let was_released = before.product(id).is_some_and(|p| p.product.released);
        if product.product.released && !was_released {
            missed.released.push(id);
        }
        for item in &product.items {
            let old = before.item(item.id).map(|e| e.item.available_count);
            let old_level = old.map(|c| AvailabilityLevel::from_count(i64::from(c)));
            let level = item.level();
            if old_level != Some(level) {
                missed.stock_changes.push(StockChange {
                    product_id: id,
                    item_id: item.id,
                    level,
                });
            }
            if item.available_count <= 0 && old.is_some_and(|c| c > 0) {
                missed.sold_out.push(item.id);
            }
        }
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;
    use sneakers23_core::model::{Availability, Item, Product};

    fn snapshot(released: bool, counts: &[(i64, i32)]) -> InventorySnapshot {
        let product = Product {
            id: 1,
            sku: "P1".into(),
            order: 0,
            brand: "b".into(),
            name: "n".into(),
            color: "c".into(),
            price_usd: 100,
            main_image_url: "/i.png".into(),
            released,
        };
        let items: Vec<Item> = counts
            .iter()
            .map(|(id, _)| Item {
                id: *id,
                sku: format!("I{id}"),
                size: "6".into(),
                product_id: 1,
            })
            .collect();
        let availability: Vec<Availability> = counts
            .iter()
            .map(|(id, count)| Availability {
                item_id: *id,
                available_count: *count,
            })
            .collect();
        InventorySnapshot::from_rows(vec![product], items, availability)
    }

    #[test]
    fn what_clients_missed_is_the_releases_level_changes_and_sell_outs() {
        let before = snapshot(false, &[(1, 1), (2, 50), (3, 0)]);
        let after = snapshot(true, &[(1, 0), (2, 49), (3, 0)]);
        let missed = differences(&before, &after);
        assert_eq!(missed.released, vec![1]);
        assert_eq!(missed.sold_out, vec![1]);
        assert_eq!(
            missed.stock_changes,
            vec![StockChange {
                product_id: 1,
                item_id: 1,
                level: AvailabilityLevel::Out
            }]
        );
        assert_eq!(differences(&after, &after), Missed::default());
    }
}
