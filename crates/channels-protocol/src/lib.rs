//! The Phoenix Channels wire protocol and `Phoenix.Token`, with no server and no I/O.
//!
//! A Rust client (a load tester, a bot, a native app) needs to speak the protocol without
//! compiling a web server, a tracker and a pubsub; a server needs exactly the same encoding. Both
//! depend on this crate:
//!
//! * [`codec`]: the wire protocol (V1 JSON objects, V2 JSON arrays and V2 binary frames),
//!   serializer negotiation, encode-once broadcast frames, and the client side
//!   ([`codec::client`]).
//! * [`token`]: `Phoenix.Token`-compatible signed tokens, byte-for-byte interoperable with a
//!   Phoenix application sharing the same secret.

pub mod codec;
pub mod token;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
