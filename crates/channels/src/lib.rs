//! A Phoenix Channels server, wire-compatible with the `phoenix` JavaScript
//! client.
//!
//! The pure building blocks live here and carry no I/O:
//!
//! * [`codec`]: the wire protocol (V1 JSON objects, V2 JSON arrays and V2
//!   binary frames), serializer negotiation and encode-once broadcast frames.
//! * [`token`]: `Phoenix.Token`-compatible signed tokens, byte-for-byte
//!   interoperable with a Phoenix application sharing the same secret.

pub mod codec;
pub mod token;
