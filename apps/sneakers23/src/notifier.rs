//! How inventory changes reach browsers (spec §6.2, §6.5, §6.6): the [`InventoryNotifier`] of a
//! serving node.
//!
//! | inventory says | clients hear | scope |
//! |---|---|---|
//! | `released(product)` | `released` `{size_html}` on `product:<id>` | cluster |
//! | `stock_change(change)` | `stock_change` `{product_id, item_id, level}` on `product:<id>` | cluster |
//! | `item_out(item)` | pubsub message on `item_out:<id>` for the cart channels holding it | this node |
//!
//! The `item_out` message is not a channel broadcast: cart channels subscribed to the topic
//! receive it in `handle_info` and re-render their cart (spec §10.5). It is node-local because
//! every node emits it itself once its own cache shows the sell-out.

use bytes::Bytes;
use channels::codec::OutPayload;
use channels::server::{Endpoint, to_object};
use serde_json::json;

use crate::fragments::size_selector_html;
use sneakers23_core::inventory::{
    CompleteProduct, InventoryNotifier, ReplicationEvent, StockChange,
};
use sneakers23_core::model::{ItemId, ProductId};

/// Event carrying a released product's size selector.
pub const RELEASED: &str = "released";
/// Event carrying an item's new stock level.
pub const STOCK_CHANGE: &str = "stock_change";

/// The channel topic of a product.
pub fn product_topic(product_id: ProductId) -> String {
    format!("product:{product_id}")
}

/// The node-local topic announcing that an item sold out.
pub fn item_out_topic(item_id: ItemId) -> String {
    format!("item_out:{item_id}")
}

/// Broadcasts inventory changes to the channels of this node and of the cluster.
#[derive(Debug, Clone)]
pub struct ChannelNotifier {
    endpoint: Endpoint,
}

impl ChannelNotifier {
    /// A notifier broadcasting through `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }
}

impl InventoryNotifier for ChannelNotifier {
    fn released(&self, product: &CompleteProduct) {
        let payload = to_object(&json!({ "size_html": size_selector_html(product) }));
        self.endpoint.broadcast(
            &product_topic(product.product.id),
            RELEASED,
            &OutPayload::Json(payload),
        );
        metrics::counter!("store_releases_total").increment(1);
    }

    fn stock_change(&self, change: StockChange) {
        self.endpoint.broadcast(
            &product_topic(change.product_id),
            STOCK_CHANGE,
            &OutPayload::Json(to_object(&change)),
        );
        metrics::counter!("store_stock_changes_total", "level" => change.level.as_str())
            .increment(1);
    }

    fn item_out(&self, item_id: ItemId) {
        self.endpoint
            .pubsub()
            .local_broadcast(&item_out_topic(item_id), Bytes::from(item_id.to_string()));
        metrics::counter!("store_items_sold_out_total").increment(1);
    }

    fn replicated(&self, event: ReplicationEvent) {
        let kind = match event {
            ReplicationEvent::Release { .. } => "release",
            ReplicationEvent::ItemSold { .. } => "item_sold",
        };
        metrics::counter!("store_replicated_events_total", "event" => kind).increment(1);
    }
}
