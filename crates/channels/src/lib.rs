//! A Phoenix Channels server, wire-compatible with the `phoenix` JavaScript
//! client.
//!
//! The pure building blocks come from the `channels-protocol` crate (which a
//! client can use without this server) and are re-exported here:
//!
//! * [`codec`]: the wire protocol (V1 JSON objects, V2 JSON arrays and V2
//!   binary frames), serializer negotiation and encode-once broadcast frames.
//! * [`token`]: `Phoenix.Token`-compatible signed tokens, byte-for-byte
//!   interoperable with a Phoenix application sharing the same secret.
//!
//! On them, with I/O:
//!
//! * [`server`]: sockets, channels, the connection state machine and the
//!   WebSocket and LongPoll transports (axum).
//! * [`presence`]: Phoenix.Presence on the tracker crate: `presence_state`
//!   and `presence_diff` exactly as phoenix.js `Presence` consumes them.
//! * [`assets`]: the official JavaScript client, embedded for browsers.
//! * [`testing`]: a channel test kit (Phoenix's `ChannelTest`): in-process connections to assert
//!   on replies, pushes and broadcasts, and a server on a free port for end-to-end tests.

pub use channels_protocol::{codec, token};

pub mod assets;
pub mod presence;
pub mod server;
pub mod testing;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
