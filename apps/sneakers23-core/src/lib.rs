//! The core of Sneakers23, the real-time sneaker store of *Real-Time Phoenix*: its business
//! logic, free of any web framework, so that the serving crate (`sneakers23`: web, admin,
//! sockets, node), the operator CLI and the tests all drive the same code.
//!
//! Modules, from the bottom up (see `docs/ARCHITECTURE.md`); no two import each other:
//!
//! - [`model`]: the catalogue's rows; [`level`]: availability levels (`out`, `low`, `medium`,
//!   `high`);
//! - [`db`]: storage (SQLite by default, PostgreSQL by URL), embedded migrations, the
//!   never-oversell conditional sale and the all-or-nothing cart purchase; [`seed`]: the
//!   book's two shoes with random stock;
//! - [`inventory`]: the per-node cache every read is served from, the release / sell /
//!   purchase operations with their notifications, and the events it replicates;
//!   [`replication`]: those events between nodes over pubsub;
//! - [`cart`]: the cart and its `cart` payload; [`cart_meta`]: a tab's bounded CartTracker
//!   meta; [`tokens`]: the signed cart and control token;
//! - [`checkout`]: the checkout checks and page model; [`logs`]: rate-limited log lines for
//!   clients' bad input;
//! - [`control_api`]: the operator control API's paths, queries and answers;
//! - [`reducer`]: sell stock at random (demo and load tool).
//!
//! The crate renders no HTML: the templates, and the size selector both the pages and the
//! broadcasts carry, are the serving crate's.

pub mod cart;
pub mod cart_meta;
pub mod checkout;
pub mod control_api;
pub mod db;
pub mod inventory;
pub mod level;
pub mod logs;
pub mod model;
pub mod reducer;
pub mod replication;
pub mod seed;
pub mod tokens;

#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod test_support;
