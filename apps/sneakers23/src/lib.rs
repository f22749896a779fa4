//! Sneakers23: the real-time sneaker store of *Real-Time Phoenix*, in Rust — the serving node.
//!
//! The store is two crates (see `docs/ARCHITECTURE.md`). Its business logic, free of any web
//! framework, is `sneakers23-core` (catalogue, storage, inventory and its replication, cart,
//! checkout, control API messages), re-exported here under the same names ([`db`],
//! [`inventory`], [`cart`], …) so the CLI, tests and benchmarks reach it through one crate. This
//! crate serves it; a module imports only from the core or from modules below it here, and no
//! two modules import each other:
//!
//! - [`fragments`]: HTML both the pages and the broadcasts carry (the size selector), below
//!   [`web`], [`notifier`], [`cluster`] and [`admin`], which all render it;
//! - [`node`]: starting and stopping a node (`serve`), building each area's state (no state
//!   holds the secret), [`config`]: its settings;
//! - [`listener`]: accepting connections, and refusing them cleanly when file descriptors run
//!   out; [`server`]: serving them with a header-read timeout and a cap per source address;
//! - [`cluster`]: the node in a cluster (catching up after a broker outage);
//! - [`web`]: pages, checkout, assets, control API, health and metrics, one state per area
//!   ([`web::ShopState`], [`web::ops::ControlState`], [`web::health::HealthState`]);
//!   [`headers`]: response headers several routers set;
//! - [`sockets`]: the ProductSocket with its `product:*` and `cart:*` channels;
//! - [`notifier`]: inventory changes to browsers;
//! - [`control`]: the operator CLI's client of the control API;
//! - [`admin`]: the admin dashboard of live shoppers (CartTracker presence and its aggregate).

pub mod admin;
pub mod cluster;
pub mod config;
pub mod control;
pub mod fragments;
pub mod headers;
pub mod listener;
pub mod node;
pub mod notifier;
pub mod server;
pub mod sockets;
pub mod web;

pub use sneakers23_core::{
    cart, cart_meta, checkout, control_api, db, inventory, level, logs, model, reducer,
    replication, seed, tokens,
};
