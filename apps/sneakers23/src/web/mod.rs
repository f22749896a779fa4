//! The store's HTTP surface (spec §8): pages, assets, the ProductSocket, the operator control
//! API, health and metrics. Each area has its own state, holding only what it needs and built
//! validated by `node::start`, which merges their routers (with the admin dashboard's,
//! [`crate::admin::router`]):
//!
//! | area | state | router |
//! |---|---|---|
//! | the shop: pages, checkout, cart form, assets, `/product_socket` | [`ShopState`] | [`router`] |
//! | the operator control API `/ops/*` | [`ops::ControlState`] | [`ops::router`] |
//! | `/health`, `/metrics` | [`health::HealthState`] | [`health::router`] |
//!
//! | path | module | what |
//! |---|---|---|
//! | `GET /` | [`pages`] | product page from the inventory cache (`no-store`) |
//! | `GET/POST /checkout`, `GET /checkout/complete` | [`checkout`] | checkout flow (CSRF-checked purchase) |
//! | `POST /cart/add` | [`cart_form`] | the size selector without JavaScript |
//! | any other path | [`pages::not_found`] | a 404 page leading back to the shop |
//! | `/css/*`, `/js/*`, `/images/*`, `/favicon.ico`, `/robots.txt` | [`assets`] | static files embedded in the binary |
//! | `WS /product_socket/websocket` | [`crate::sockets`] | `product:*` and `cart:*` channels |
//! | `/ops/*` | [`ops`] | loopback-only control API used by the CLI |
//! | `GET /health`, `GET /metrics` | [`health`] | database/pubsub status, Prometheus text |
//!
//! Browser pages go through the [`session`] pipeline: signed session cookie `_sneakers_23_key`
//! holding the cart id, the CSRF token and the flash; secure browser headers.

pub mod assets;
pub mod cart_form;
pub mod checkout;
pub mod health;
pub mod ops;
pub mod pages;
pub mod session;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use channels::presence::Presence;
use channels::server::Endpoint;
use channels::server::transport::{Transports, socket_router};

use crate::headers::nosniff;
use crate::sockets::{ChannelDeps, product_socket};
use sneakers23_core::cart::CartSigner;
use sneakers23_core::db::Db;
use sneakers23_core::inventory::Inventory;
use sneakers23_core::tokens::CartTokens;

/// What the shop's pages, checkout and channels share. Cheap to clone. Its signers are built
/// from the secret by `node::start`, which refuses to start when they cannot be; the secret
/// itself is not kept.
#[derive(Clone)]
pub struct ShopState {
    /// This node's inventory cache (all reads) and its write operations.
    pub inventory: Inventory,
    /// The database (the completed-order page reads it; writes go through
    /// [`ShopState::inventory`]).
    pub db: Db,
    /// The channels endpoint: broadcasts, pubsub, drain.
    pub endpoint: Endpoint,
    /// The CartTracker presence (topic [`crate::sockets::CART_TRACKER_TOPIC`]).
    pub cart_tracker: Presence,
    /// Signs and verifies serialized carts.
    pub cart_signer: Arc<CartTokens>,
    /// Signs the session cookie.
    pub sessions: session::SessionKeys,
    /// Most items a cart may hold.
    pub max_cart_items: usize,
}

impl ShopState {
    /// What the store's channels need.
    pub fn channel_deps(&self) -> ChannelDeps {
        ChannelDeps {
            inventory: self.inventory.clone(),
            cart_signer: self.cart_signer.clone() as Arc<dyn CartSigner>,
            cart_tracker: self.cart_tracker.clone(),
            max_cart_items: self.max_cart_items,
        }
    }
}

/// The shop: browser pages (session pipeline), assets, `/product_socket`, and the 404 page
/// for any path no other area's router claims (merge the others into this one).
pub fn router(state: ShopState) -> Router {
    let browser = Router::new()
        .route("/", get(pages::index))
        .route("/checkout", get(checkout::show).post(checkout::purchase))
        .route("/checkout/complete", get(checkout::complete))
        .route("/cart/add", post(cart_form::add))
        .layer(from_fn_with_state(state.clone(), session::browser_pipeline));
    let socket = Arc::new(product_socket(state.channel_deps()));
    Router::new()
        .merge(browser)
        .merge(assets::router().layer(axum::middleware::map_response(nosniff)))
        .fallback(pages::not_found)
        .with_state(state.clone())
        .nest(
            "/product_socket",
            socket_router(state.endpoint.clone(), socket, Transports::websocket_only()),
        )
}
