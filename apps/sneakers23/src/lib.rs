//! Sneakers23: the real-time sneaker store of *Real-Time Phoenix*, in Rust.
//!
//! The crate has two layers (see `docs/ARCHITECTURE.md`); a module imports only from its own
//! layer or the one below, and no two modules import each other. The core holds the store's
//! business logic, free of any web framework, so that the web layer, the operator CLI and the
//! tests all drive the same code:
//!
//! - [`db`]: storage (SQLite by default, PostgreSQL by URL), embedded migrations, the
//!   never-oversell conditional sale and the all-or-nothing cart purchase;
//! - [`seed`]: the book's two shoes with random stock;
//! - [`level`]: availability levels (`out`, `low`, `medium`, `high`);
//! - [`inventory`]: the per-node cache every read is served from, and the release / sell /
//!   purchase operations with their notifications;
//! - [`replication`]: inventory events between nodes over pubsub;
//! - [`cart`]: the cart and its rendering; [`cart_meta`]: a tab's bounded CartTracker meta; [`checkout`]: the checkout checks and page model;
//! - [`fragments`]: HTML both the pages and the broadcasts carry (the size selector);
//! - [`control_api`]: the operator control API's paths, queries and answers;
//! - [`reducer`]: sell stock at random (demo and load tool).
//!
//! On the core, the serving node (no state holds the secret; [`node`] builds each area's state):
//!
//! - [`node`]: starting and stopping a node (`serve`), [`config`]: its settings;
//! - [`listener`]: accepting connections, and refusing them cleanly when file descriptors run
//!   out; [`server`]: serving them with a header-read timeout and a cap per source address;
//! - [`cluster`]: the node in a cluster (catching up after a broker outage);
//! - [`web`]: pages, checkout, assets, control API, health and metrics, one state per area
//!   ([`web::ShopState`], [`web::ops::ControlState`], [`web::health::HealthState`]);
//!   [`headers`]: response headers several routers set;
//! - [`sockets`]: the ProductSocket with its `product:*` and `cart:*` channels;
//! - [`notifier`]: inventory changes to browsers; [`tokens`]: the signed cart and control token;
//! - [`control`]: the operator CLI's client of the control API; [`logs`]: rate-limited log
//!   lines for clients' bad input;
//! - [`admin`]: the admin dashboard of live shoppers (CartTracker presence and its aggregate).

pub mod admin;
pub mod cart;
pub mod cart_meta;
pub mod checkout;
pub mod cluster;
pub mod config;
pub mod control;
pub mod control_api;
pub mod db;
pub mod fragments;
pub mod headers;
pub mod inventory;
pub mod level;
pub mod listener;
pub mod logs;
pub mod model;
pub mod node;
pub mod notifier;
pub mod reducer;
pub mod replication;
pub mod seed;
pub mod server;
pub mod sockets;
pub mod tokens;
pub mod web;

#[cfg(test)]
mod test_support;
