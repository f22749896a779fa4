//! The store's HTTP surface (spec §8): pages, assets, the ProductSocket, the operator control
//! API, health and metrics, assembled by [`router`] over one [`AppState`].
//!
//! | path | module | what |
//! |---|---|---|
//! | `GET /` | [`pages`] | product page from the inventory cache (`no-store`) |
//! | `GET/POST /checkout`, `GET /checkout/complete` | [`checkout`] | checkout flow (CSRF-checked purchase) |
//! | `/css/*`, `/js/*`, `/images/*`, `/favicon.ico`, `/robots.txt` | [`assets`] | static files embedded in the binary |
//! | `WS /product_socket/websocket` | [`crate::sockets`] | `product:*` and `cart:*` channels |
//! | `/ops/*` | [`ops`] | loopback-only control API used by the CLI |
//! | `GET /health`, `GET /metrics` | [`health`] | database/pubsub status, Prometheus text |
//!
//! Browser pages go through the [`session`] pipeline: signed session cookie `_sneakers_23_key`
//! holding the cart id, the CSRF token and the flash; secure browser headers.

pub mod assets;
pub mod checkout;
pub mod health;
pub mod ops;
pub mod pages;
pub mod session;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use channels::presence::Presence;
use channels::server::Endpoint;
use channels::server::transport::{Transports, socket_router};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::cart::CartSigner;
use crate::config::{AdminCredentials, Env};
use crate::db::Db;
use crate::inventory::Inventory;
use crate::sockets::{ChannelDeps, product_socket};
use crate::tokens::CartTokens;

/// Everything the web layer (and the admin dashboard) shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// This node's inventory cache (all reads) and its write operations.
    pub inventory: Inventory,
    /// The database (health checks; writes go through [`AppState::inventory`]).
    pub db: Db,
    /// The channels endpoint: broadcasts, pubsub, drain.
    pub endpoint: Endpoint,
    /// The CartTracker presence (topic [`crate::sockets::CART_TRACKER_TOPIC`]).
    pub cart_tracker: Presence,
    /// The admin dashboard's live aggregate of the CartTracker.
    pub dashboard: crate::admin::Dashboard,
    /// Signs and verifies serialized carts.
    pub cart_signer: Arc<CartTokens>,
    /// Signs the session cookie.
    pub sessions: session::SessionKeys,
    /// `SECRET_KEY_BASE`, for signers with other salts (e.g. the admin socket's token).
    pub secret_key_base: Arc<str>,
    /// The admin dashboard's HTTP Basic credentials.
    pub admin: Arc<AdminCredentials>,
    /// Development or production.
    pub env: Env,
    /// Most items a cart may hold.
    pub max_cart_items: usize,
    /// Bearer token of the control API.
    pub ops_token: Arc<str>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

impl AppState {
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

/// The whole application: browser pages (session pipeline), assets, health, metrics, the
/// control API and `/product_socket`.
pub fn router(state: AppState) -> Router {
    let browser = Router::new()
        .route("/", get(pages::index))
        .route("/checkout", get(checkout::show).post(checkout::purchase))
        .route("/checkout/complete", get(checkout::complete))
        .layer(from_fn_with_state(state.clone(), session::browser_pipeline));
    let socket = Arc::new(product_socket(state.channel_deps()));
    Router::new()
        .merge(browser)
        .merge(assets::router())
        .merge(ops::router(state.clone()))
        .merge(crate::admin::router(state.clone()))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .with_state(state.clone())
        .nest(
            "/product_socket",
            socket_router(state.endpoint.clone(), socket, Transports::websocket_only()),
        )
}
