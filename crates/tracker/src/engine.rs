//! The shard protocol as a deterministic state machine: what to send and what changed, given a tick
//! or a message and the current time.
//!
//! [`Engine`] bundles the pieces a shard replica needs: the CRDT [`State`], the bookkeeping of remote
//! [`Replicas`], the delta [`Generations`] and the [`ClockSet`] of clocks heard since the last
//! transfer decision. It performs no I/O and reads no clock: the running shard
//! (`shard.rs`) feeds it ticks and decoded messages with a timestamp and sends what it returns;
//! the property tests feed it a simulated network and a simulated clock.
//!
//! # The tick (every `broadcast_period`)
//!
//! 1. **Broadcast**: a pending delta goes out in a heartbeat (and into the generations, while any
//!    peer is known: alone, a node keeps no windows); with nothing to say for `max_silent_periods`
//!    ticks an empty heartbeat goes out, so peers know we are alive.
//! 2. **Clock sampling** (every `clock_sample_periods` ticks): from the clocks heard in heartbeats,
//!    keep those that ours does not dominate and send each of their replicas a transfer request.
//!    This is both the initial sync with a new peer and the repair of lost deltas.
//! 3. **Down detection**: a peer silent for `down_period` is *down* (its presences leave); silent
//!    for `permdown_period` it is *permdown* (its data is deleted).
//!
//! # Receiving
//!
//! A heartbeat first updates the sender's record: a first contact or a heal marks it up (a heal
//! re-announces its presences), a new vsn for a known name means the node restarted: the old
//! incarnation is downed and permdowned at once, so its presences leave immediately. Then the delta
//! is merged. Messages from an incarnation older than the one known are stale and ignored.

use std::sync::Arc;

use crate::clock::{Clock, ClockSet};
use crate::delta::Generations;
use crate::replica::{ReplicaRef, Replicas, Status, Transition};
use crate::state::{Changes, State};
use crate::wire::{Message, Transfer};

/// The protocol parameters, in ticks and milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Silence after which a peer is marked down (ms).
    pub down_period: u64,
    /// Silence after which a peer is removed for good (ms).
    pub permdown_period: u64,
    /// Quiet ticks before an empty heartbeat is sent.
    pub max_silent_periods: u32,
    /// Ticks between transfer decisions.
    pub clock_sample_periods: u32,
    /// Caps of the delta generations.
    pub max_delta_sizes: Vec<usize>,
}

/// Where a message produced by the engine must go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// To the shard of every other node.
    Broadcast(Message),
    /// To the shard of the node called `to`.
    Direct {
        /// Node name.
        to: Arc<str>,
        /// The message.
        message: Message,
    },
}

/// A membership change, for logs and observers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaEvent {
    /// First heard from, or heard again after being down.
    Up(ReplicaRef),
    /// Silent for `down_period`.
    Down(ReplicaRef),
    /// Removed for good (silence, restart under a new vsn, or graceful permdown).
    Permdown(ReplicaRef),
}

/// What one step of the engine produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Messages to send.
    pub messages: Vec<Outbound>,
    /// Presences that became visible or invisible.
    pub changes: Changes,
    /// Membership changes.
    pub events: Vec<ReplicaEvent>,
}

/// One shard replica's protocol state (see the module docs).
#[derive(Debug)]
pub struct Engine {
    state: State,
    replicas: Replicas,
    generations: Generations,
    clockset: ClockSet,
    silent_periods: u32,
    sample_countdown: u32,
    next_request: u64,
    config: EngineConfig,
}

impl Engine {
    /// A fresh replica `me`.
    pub fn new(me: ReplicaRef, config: EngineConfig) -> Engine {
        Engine {
            state: State::new(me),
            replicas: Replicas::new(),
            generations: Generations::new(&config.max_delta_sizes),
            clockset: ClockSet::new(),
            silent_periods: config.max_silent_periods,
            sample_countdown: config.clock_sample_periods,
            next_request: 0,
            config,
        }
    }

    /// The CRDT state (queries).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The CRDT state (local operations: join, leave, leave_join, leave_pid).
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// The remote replicas known and their status.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// The delta generations.
    pub fn generations(&self) -> &Generations {
        &self.generations
    }

    fn me(&self) -> ReplicaRef {
        self.state.replica().clone()
    }

    /// One `broadcast_period` elapsed at `now` (ms).
    pub fn tick(&mut self, now: u64) -> Output {
        let mut out = Output::default();
        let me = self.me();

        // 1. Broadcast the pending delta, or an empty heartbeat when silent for too long.
        if self.state.has_delta() {
            let delta = self.state.take_delta();
            if self.replicas.is_empty() {
                // No peer could ask for a catch-up from these windows: one that knew us is a
                // known replica until it is permdowned, and one that never did gets the full
                // state whatever the windows hold. Folding every local change into each window
                // would cost a node alone a merge per window for nothing, so they restart.
                self.generations.reset();
            } else {
                self.generations.push(&self.state.empty_delta(), &delta);
            }
            out.messages.push(Outbound::Broadcast(Message::Heartbeat {
                from: me.clone(),
                clocks: self.state.clocks(),
                delta: Some(delta),
            }));
            self.silent_periods = 0;
        } else {
            self.silent_periods = self.silent_periods.saturating_add(1);
            if self.silent_periods >= self.config.max_silent_periods {
                out.messages.push(Outbound::Broadcast(Message::Heartbeat {
                    from: me.clone(),
                    clocks: self.state.clocks(),
                    delta: None,
                }));
                self.silent_periods = 0;
            }
        }

        // 2. Clock sampling: ask replicas that know something we do not.
        self.sample_countdown = self.sample_countdown.saturating_sub(1);
        if self.sample_countdown == 0 {
            self.sample_countdown = self.config.clock_sample_periods.max(1);
            let mut set = std::mem::take(&mut self.clockset);
            let own = self.state.clocks();
            set.append(me.clone(), own.clone());
            for r in set.replicas() {
                if *r == me {
                    continue;
                }
                self.next_request += 1;
                out.messages.push(Outbound::Direct {
                    to: r.name.clone(),
                    message: Message::TransferReq {
                        id: self.next_request,
                        from: me.clone(),
                        clocks: own.clone(),
                    },
                });
            }
        }

        // 3. Down and permdown detection.
        let transitions =
            self.replicas
                .detect_down(now, self.config.down_period, self.config.permdown_period);
        for t in transitions {
            match t {
                Transition::Down(r) => self.down(&r, &mut out),
                Transition::Permdown { replica, was_up } => {
                    if was_up {
                        self.down(&replica, &mut out);
                    }
                    self.permdown(&replica, &mut out);
                }
            }
        }
        out
    }

    fn up(&mut self, r: &ReplicaRef, out: &mut Output) {
        out.changes.joins.extend(self.state.replica_up(r));
        out.events.push(ReplicaEvent::Up(r.clone()));
    }

    fn down(&mut self, r: &ReplicaRef, out: &mut Output) {
        out.changes.leaves.extend(self.state.replica_down(r));
        self.clockset.remove(r);
        out.events.push(ReplicaEvent::Down(r.clone()));
    }

    fn permdown(&mut self, r: &ReplicaRef, out: &mut Output) {
        out.changes.leaves.extend(self.state.remove_down_replica(r));
        self.generations.strip(r);
        self.clockset.remove(r);
        out.events.push(ReplicaEvent::Permdown(r.clone()));
    }

    /// Merges a received delta and folds it into the generations, keeping only replicas we know:
    /// dots of replicas we do not know (or no longer know) would be dead weight in the windows.
    fn merge_delta(&mut self, mut delta: crate::delta::Delta, out: &mut Output) {
        delta.retain_replicas(|r| self.state.knows(r));
        out.changes.extend(self.state.merge_delta(&delta));
        self.generations.push(&self.state.empty_delta(), &delta);
    }

    /// Whether a message from `from` must be ignored: our own, or from an incarnation older than the
    /// one we know for that name (a message delayed past a restart).
    fn is_stale(&self, from: &ReplicaRef) -> bool {
        if from.name == self.state.replica().name {
            return true;
        }
        self.replicas
            .get(&from.name)
            .is_some_and(|rec| from.vsn < rec.vsn)
    }

    /// Handles a message from another node, received at `now` (ms).
    pub fn handle(&mut self, message: Message, now: u64) -> Output {
        let mut out = Output::default();
        if self.is_stale(message.from()) {
            return out;
        }
        match message {
            Message::Heartbeat {
                from,
                clocks,
                delta,
            } => {
                let (old, _) = self.replicas.put_heartbeat(&from, now);
                match old {
                    None => self.up(&from, &mut out),
                    Some(old) if old.vsn == from.vsn => {
                        if old.status == Status::Down {
                            self.up(&from, &mut out);
                        }
                    }
                    Some(old) => {
                        let previous = ReplicaRef::new(from.name.clone(), old.vsn);
                        if old.status == Status::Up {
                            self.down(&previous, &mut out);
                        }
                        self.permdown(&previous, &mut out);
                        self.up(&from, &mut out);
                    }
                }
                if let Some(delta) = delta {
                    self.merge_delta(delta, &mut out);
                }
                // Only what we could take matters: replicas we know and consider up.
                let ours = self.state.clocks();
                let theirs: Clock = clocks
                    .into_iter()
                    .filter(|(r, _)| ours.contains_key(r))
                    .collect();
                self.clockset.append(from, theirs);
            }
            Message::TransferReq { id, from, clocks } => {
                out.messages.push(self.answer_transfer(id, &from, &clocks));
            }
            Message::TransferAck { transfer, .. } => match transfer {
                Transfer::Delta(delta) => self.merge_delta(delta, &mut out),
                Transfer::Full(snapshot) => {
                    out.changes.extend(self.state.merge_snapshot(&snapshot));
                    self.generations.reset();
                }
            },
            Message::GracefulPermdown { from } => {
                if let Some(rec) = self.replicas.fetch_by_ref(&from) {
                    let was_up = rec.status == Status::Up;
                    self.replicas.remove(&from.name);
                    if was_up {
                        self.down(&from, &mut out);
                    }
                    self.permdown(&from, &mut out);
                }
            }
        }
        out
    }

    /// The answer to a transfer request (a delta generation if one fits, else the full state). Only
    /// reads the state, so a shard can serve it under a read lock.
    pub fn answer_transfer(&self, id: u64, from: &ReplicaRef, clocks: &Clock) -> Outbound {
        let transfer = match self.generations.extract(from, clocks) {
            Some(delta) => Transfer::Delta(delta),
            None => Transfer::Full(self.state.extract(from, clocks)),
        };
        Outbound::Direct {
            to: from.name.clone(),
            message: Message::TransferAck {
                id,
                from: self.me(),
                transfer,
            },
        }
    }

    /// Whether `message` would be ignored (ours, or from an outdated incarnation).
    pub fn ignores(&self, message: &Message) -> bool {
        self.is_stale(message.from())
    }

    /// The message telling every peer to drop this replica now (the caller stops the shard after).
    pub fn graceful_permdown(&self) -> Message {
        Message::GracefulPermdown { from: self.me() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::delta::Delta;
    use crate::presence::{Meta, PhxRef, Pid};

    fn config() -> EngineConfig {
        EngineConfig {
            down_period: 100,
            permdown_period: 300,
            max_silent_periods: 3,
            clock_sample_periods: 2,
            max_delta_sizes: vec![10, 100],
        }
    }

    fn heartbeats(out: &Output) -> usize {
        out.messages
            .iter()
            .filter(|m| matches!(m, Outbound::Broadcast(Message::Heartbeat { .. })))
            .count()
    }

    fn track(e: &mut Engine, id: u64, key: &str) {
        let vsn = e.state().replica().vsn;
        e.state_mut()
            .join(
                Pid { node: vsn, id },
                "t",
                key,
                Meta::empty(),
                PhxRef::new(id, 0, 0),
            )
            .unwrap();
    }

    /// Sends every broadcast of `out` to `to` (as if delivered at `now`).
    fn deliver(out: Output, to: &mut Engine, now: u64) -> Output {
        let mut all = Output::default();
        for m in out.messages {
            if let Outbound::Broadcast(msg) = m {
                let o = to.handle(msg, now);
                all.changes.extend(o.changes);
                all.events.extend(o.events);
                all.messages.extend(o.messages);
            }
        }
        all
    }

    #[test]
    fn idle_heartbeats_every_max_silent_periods_ticks() {
        let mut e = Engine::new(ReplicaRef::new("a", 1), config());
        let sent: Vec<usize> = (0..7).map(|t| heartbeats(&e.tick(t))).collect();
        // The first tick always sends; then one every 3 ticks (quirk Q3 fixed).
        assert_eq!(sent, vec![1, 0, 0, 1, 0, 0, 1]);
        track(&mut e, 1, "k");
        assert_eq!(
            heartbeats(&e.tick(8)),
            1,
            "a pending delta goes out at once"
        );
    }

    #[test]
    fn a_new_vsn_replaces_the_old_incarnation_and_stale_messages_are_ignored() {
        let mut a = Engine::new(ReplicaRef::new("a", 1), config());
        let mut b1 = Engine::new(ReplicaRef::new("b", 10), config());
        track(&mut b1, 1, "old");
        let first = b1.tick(0);
        let stale = first.clone();
        let o = deliver(first, &mut a, 0);
        assert_eq!(o.events, vec![ReplicaEvent::Up(ReplicaRef::new("b", 10))]);
        assert_eq!(o.changes.joins.len(), 1);
        let mut b2 = Engine::new(ReplicaRef::new("b", 11), config());
        let o = deliver(b2.tick(0), &mut a, 1);
        assert_eq!(o.changes.leaves.len(), 1);
        assert_eq!(
            o.events,
            vec![
                ReplicaEvent::Down(ReplicaRef::new("b", 10)),
                ReplicaEvent::Permdown(ReplicaRef::new("b", 10)),
                ReplicaEvent::Up(ReplicaRef::new("b", 11)),
            ]
        );
        assert!(a.state().get_by_topic("t").is_empty());
        // A delayed heartbeat of the old incarnation changes nothing.
        let o = deliver(stale, &mut a, 2);
        assert_eq!(o, Output::default());
        assert!(a.state().get_by_topic("t").is_empty());
        assert_eq!(a.replicas().get("b").unwrap().vsn, 11);
    }

    #[test]
    fn transfer_requests_go_to_peers_that_know_more() {
        let mut a = Engine::new(ReplicaRef::new("a", 1), config());
        let mut b = Engine::new(ReplicaRef::new("b", 1), config());
        track(&mut b, 1, "k1");
        let _lost = b.tick(0); // a never sees this delta
        assert!(b.tick(1).messages.is_empty(), "silent tick");
        assert!(b.tick(2).messages.is_empty(), "silent tick");
        let empty = b.tick(3);
        assert_eq!(heartbeats(&empty), 1);
        deliver(empty, &mut a, 2);
        assert!(a.state().get_by_topic("t").is_empty());
        // Clock sampling notices b is ahead and asks it.
        let mut asked = a.tick(3);
        asked.messages.extend(a.tick(4).messages);
        let req = asked
            .messages
            .into_iter()
            .find_map(|m| match m {
                Outbound::Direct { to, message } if &*to == "b" => Some(message),
                _ => None,
            })
            .expect("a transfer request to b");
        let ack = b.handle(req, 4);
        let Outbound::Direct { to, message } = &ack.messages[0] else {
            panic!("expected a direct answer");
        };
        assert_eq!(&**to, "a");
        let o = a.handle(message.clone(), 5);
        assert_eq!(o.changes.joins.len(), 1);
        assert_eq!(a.state().get_by_topic("t").len(), 1);
    }

    #[test]
    fn a_node_alone_keeps_no_delta_windows_and_starts_them_once_a_peer_is_known() {
        let mut a = Engine::new(ReplicaRef::new("a", 1), config());
        let mut b = Engine::new(ReplicaRef::new("b", 1), config());
        track(&mut a, 1, "k1");
        assert_eq!(heartbeats(&a.tick(0)), 1, "alone, the delta still goes out");
        assert_eq!(a.generations().windows().count(), 0, "alone: no windows");
        deliver(b.tick(0), &mut a, 1);
        assert!(!a.replicas().is_empty());
        // From the first tick with a peer known, a's changes are kept for catch-up: k1, from
        // before, is not in the windows (a peer that lacks it gets the full state).
        track(&mut a, 2, "k2");
        a.tick(1);
        assert_eq!(a.generations().windows().count(), 2);
        // (A join is a value and its dot: size 2.)
        let sizes = |e: &Engine| {
            e.generations()
                .windows()
                .map(Delta::size)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(&a), vec![2, 2]);
        track(&mut a, 3, "k3");
        a.tick(2);
        assert_eq!(sizes(&a), vec![4, 4]);
    }

    #[test]
    fn graceful_permdown_of_a_known_replica_removes_it_at_once() {
        let mut a = Engine::new(ReplicaRef::new("a", 1), config());
        let mut b = Engine::new(ReplicaRef::new("b", 1), config());
        track(&mut b, 1, "k");
        deliver(b.tick(0), &mut a, 0);
        assert_eq!(a.state().get_by_topic("t").len(), 1);
        // from an unknown incarnation: ignored
        let o = a.handle(
            Message::GracefulPermdown {
                from: ReplicaRef::new("b", 0),
            },
            1,
        );
        assert!(o.changes.is_empty());
        let o = a.handle(b.graceful_permdown(), 1);
        assert_eq!(o.changes.leaves.len(), 1);
        assert!(a.replicas().get("b").is_none());
        assert!(!a.state().knows(&ReplicaRef::new("b", 1)));
    }
}
