//! The official `phoenix` JavaScript client, embedded so any server built on this crate can serve
//! it to browsers without a build step (`import {Socket, Presence} from "/js/phoenix.mjs"`).

/// `phoenix.mjs` of the npm package `phoenix` 1.8.16, as an ES module.
pub const PHOENIX_JS: &str = include_str!("../assets/phoenix.mjs");
