//! Phoenix.Tracker in Rust: a presence registry replicated across nodes by a delta-CRDT.
//!
//! A tracker answers "who is on this topic?" for the whole cluster. Each node registers its own
//! processes (`track(process, topic, key, meta)`); every node can list every topic; every node is told
//! what joined and left ([`DiffHandler`]). There is no leader and no consensus: nodes gossip, and
//! the data structure guarantees they end up agreeing.
//!
//! # The CRDT, from the ground up
//!
//! **Dots.** Every node (more precisely every *replica*: one boot of one node, `(name, vsn)`) keeps a
//! counter. Each add bumps it; the pair `(replica, n)` is the add's *dot*, a cluster-unique name for
//! that one presence version. Removes also bump the counter, so every change has a dot.
//!
//! **Causal context.** What a replica has seen is, per replica, a contiguous clock ("all dots up to
//! n": the *context*) plus the dots seen out of order (the *clouds*). A dot that is in the causal
//! context but whose presence is absent was removed: no tombstones are needed.
//!
//! **Add-wins, observed-remove.** Only the owner of a presence adds or removes it. Merging what a
//! peer sent gives *joins* (values of known replicas whose dot we have not seen) and *leaves* (our
//! copies of others' presences whose dot the peer has seen but no longer holds). A remove can only
//! delete the dots it observed; a concurrent add has a new dot and survives.
//!
//! **Deltas and ranges.** Instead of the whole state, each tick a replica broadcasts its *delta*: the
//! dots it created or removed since the last one, with the *range* `(start, end]` of its own clock it
//! covers. Leaves learned from peers are added to the delta too, so removals are relayed to nodes
//! that heard the add but missed the remove.
//!
//! **Delta generations.** Sent and received deltas are also merged into a few windows of growing
//! size (`max_delta_sizes`). Merging requires contiguous ranges, so a window never hides a gap. A peer
//! that fell behind is sent the smallest window that covers what it misses, or the full state.
//!
//! **Heartbeats and transfers.** Every `broadcast_period` a shard broadcasts its delta (or, after
//! `max_silent_periods` quiet ticks, an empty heartbeat) with its clock. Every
//! `clock_sample_periods` ticks it compares the clocks it heard with its own and sends a
//! *transfer request* to peers that know more; the answer is a window or the full state. This one
//! mechanism does the initial sync of a new node and repairs every lost message.
//!
//! **Down, permdown, restarts.** A peer silent for `down_period` is *down*: its presences are hidden
//! and reported as leaves, but kept (a healed netsplit re-announces them as joins). Silent for
//! `permdown_period` it is *permdown*: its data is deleted. A peer heard with a new `vsn` has
//! restarted: the previous incarnation is permdowned at once, so its presences leave immediately.
//! `graceful_permdown` asks every peer to do that now, for a clean shutdown.
//!
//! # Layout
//!
//! The public API is [`Tracker`], [`Process`], [`Options`] and what they take and return. The
//! rest is private (reachable by this crate's benchmarks and simulation tests through a hidden
//! `internals` module, which is not API):
//!
//! * `state`: the CRDT itself, pure and deterministic; `clock`, `replica`, `delta`: its pure
//!   helpers (version vectors, peer bookkeeping, deltas and generations).
//! * `engine`: the shard protocol (ticks, heartbeats, transfers, down detection) as a pure state
//!   machine, driven by the shard at run time and by the property tests in simulation.
//! * `wire`: the binary encoding of inter-node messages.
//! * `shard`: a running shard, the only writer of its engine; `pool`: the public [`Tracker`]
//!   handle; `options`: tuning ([`Options`]).
//!
//! # Differences from Phoenix (deliberate)
//!
//! * Requesters are not sent back their own presences in transfers (quirk Q1); permdowned replicas
//!   are deleted from the replica map (Q2); idle heartbeats come every `max_silent_periods` ticks
//!   (Q3) and at least twice per `down_period`.
//! * Joins and leaves of presences owned by a replica marked down are not reported (they are hidden
//!   from lists); they are reported when it comes back up. Replaying a tracker's diffs therefore
//!   always gives exactly its lists.
//! * Messages from an older incarnation of a known node are ignored.
//! * Heard clocks are compared on the replicas we know only, and received deltas are kept in the
//!   generations only for those: a peer that knows a node we cannot reach yet does not trigger
//!   useless full transfers every sampling period.
//! * Tracked processes are [`Process`] handles: dropping one is the process exit.
//! * Inter-node messages are a compact binary encoding (`wire`), not Erlang terms: a Rust
//!   cluster shares Phoenix's semantics, not its distribution protocol.
//!
//! # Cost
//!
//! Local operations take a shard's write lock for a few hundred nanoseconds (no mailbox round
//! trip); queries take its read lock. A presence costs about 330 bytes of memory and about 55 bytes
//! on the wire per replicated join (see `tests/footprint.rs` and `benches/tracker.rs`).

mod clock;
mod delta;
mod engine;
mod options;
mod pool;
mod presence;
mod replica;
mod shard;
mod state;
mod wire;

pub use engine::ReplicaEvent;
pub use options::{DEFAULT_MAX_META_BYTES, Options, OptionsError};
pub use pool::{Process, ReplicaInfo, TrackError, Tracker, UpdateError};
pub use presence::{
    Diff, Key, Meta, MetaError, PhxRef, Pid, PresenceEntry, PresenceInfo, Topic, TopicDiff,
};
pub use replica::{ReplicaRef, Status};
pub use shard::DiffHandler;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The CRDT, the shard protocol and the wire encoding, for this crate's benchmarks and
/// simulation tests only: not part of the API, and changed without notice (the way
/// phoenix_pubsub hides `State`, `Shard` and `Clock`).
#[doc(hidden)]
pub mod internals {
    /// See the crate's `clock` module.
    pub mod clock {
        pub use crate::clock::*;
    }
    /// See the crate's `delta` module.
    pub mod delta {
        pub use crate::delta::*;
    }
    /// See the crate's `engine` module.
    pub mod engine {
        pub use crate::engine::*;
    }
    /// See the crate's `presence` module.
    pub mod presence {
        pub use crate::presence::*;
    }
    /// See the crate's `replica` module.
    pub mod replica {
        pub use crate::replica::*;
    }
    /// See the crate's `state` module.
    pub mod state {
        pub use crate::state::*;
    }
    /// See the crate's `wire` module.
    pub mod wire {
        pub use crate::wire::*;
    }
}
