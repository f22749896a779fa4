//! The public ProductSocket at `/product_socket` (spec §9.3) and its channels.
//!
//! Anyone may connect (the socket carries public data only; the origin check is the endpoint's).
//! Topics are routed as in the book:
//!
//! - `product:*` → [`product::ProductChannel`]: live `released` and `stock_change` events;
//! - `cart:*` → [`cart::CartChannel`]: one shopper's cart, shared by all their tabs, tracked in
//!   the CartTracker presence for the admin dashboard.

pub mod cart;
pub mod product;

use std::sync::Arc;

use channels::presence::Presence;
use channels::server::{Channel, Routes};

use sneakers23_core::cart::CartSigner;
use sneakers23_core::inventory::Inventory;

/// The CartTracker's presence topic (spec §14.4); only the admin dashboard subscribes to it.
pub const CART_TRACKER_TOPIC: &str = "admin:cart_tracker";

/// The CartTracker's tracker name (the same on every node).
pub const CART_TRACKER_NAME: &str = "cart_tracker";

/// What the store's channels need from the node.
#[derive(Clone)]
pub struct ChannelDeps {
    /// This node's inventory cache.
    pub inventory: Inventory,
    /// Signs and verifies serialized carts.
    pub cart_signer: Arc<dyn CartSigner>,
    /// The CartTracker presence.
    pub cart_tracker: Presence,
    /// Most items a cart may hold (`MAX_CART_ITEMS`).
    pub max_cart_items: usize,
}

/// The ProductSocket: public, anonymous (its routes accept everyone), WebSocket only; with its
/// `product:*` and `cart:*` routes.
pub fn product_socket(deps: ChannelDeps) -> Routes {
    let deps = Arc::new(deps);
    let metrics = Arc::new(cart::CartMetrics::register());
    Routes::new()
        .route("product:*", |_| {
            Box::new(product::ProductChannel) as Box<dyn Channel>
        })
        .route("cart:*", move |_| {
            Box::new(cart::CartChannel::new(deps.clone(), metrics.clone())) as Box<dyn Channel>
        })
}
