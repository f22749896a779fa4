//! The replicated presence set: a delta-state, add-wins, observed-remove set (AWORSet).
//!
//! # Model
//!
//! Every presence is created by exactly one replica (the node where its process runs) and tagged
//! with a *dot* `(replica, n)`: that replica's clock after it was bumped for this add. A dot is never
//! reused, so "the presence with dot d" names one add, cluster-wide.
//!
//! What a replica has seen is its *causal context*: per replica, a contiguous clock `n` ("every dot up
//! to n") plus a *cloud* of dots seen out of order. Removal keeps no tombstone: a dot that is in the
//! causal context but has no value was removed. Merging a remote state or delta therefore yields:
//!
//! * **joins**: remote values of known replicas whose dot we have not seen;
//! * **leaves**: our values (of other replicas) whose dot the remote has seen but no longer holds.
//!
//! Leaves learned this way are also put in our own pending delta, so a removal is relayed onward to
//! replicas that heard the add but not the remove (partial netsplits).
//!
//! # Invariants
//!
//! * Only the owner creates or removes its own elements; merges never touch our own elements.
//! * Every stored element's dot is in the causal context; a dot in the context without an element
//!   was removed (or belongs to a replica we could not take values from).
//! * At most one element per `(topic, pid, key)`.
//! * Remote values are accepted only from *known* replicas (announced by their own heartbeat), so a
//!   replica that was permanently removed cannot be resurrected by a third party's stale data.
//! * Elements of replicas marked down are kept but hidden from queries and from diffs; bringing the
//!   replica back up reports them as joins again. Hence the joins and leaves a replica reports, replayed
//!   in order, always equal what its queries return.
//!
//! # Storage
//!
//! Elements live in a slab of fixed-size chunks. Indexes: topic -> (presence, owner, id) items kept
//! contiguous, so `list` reads one array and bumps one reference count per presence; pid -> ids
//! (untrack and process exit in O(pid's entries)); for other replicas, dot -> id (merges and
//! down/up/permdown in O(that replica's entries)). The pending delta keeps our own dots as a range,
//! so a local operation appends instead of searching. Everything here is pure and deterministic:
//! no I/O, no clock reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::clock::Clock;
use crate::delta::{Delta, Part};
use crate::presence::{Entry, Key, Meta, PhxRef, Pid, PresenceEntry, Topic};
use crate::replica::ReplicaRef;

/// The full state of a replica as sent in a transfer: context, clouds and values of the replicas the
/// requester knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Contiguous clock per replica.
    pub context: Clock,
    /// Out-of-order dots and live values per replica.
    pub parts: BTreeMap<ReplicaRef, Part>,
}

/// What a merge or membership change did, as entries (topic, pid, presence).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Entries that became visible.
    pub joins: Vec<Entry>,
    /// Entries that stopped being visible.
    pub leaves: Vec<Entry>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }

    /// Appends `other`.
    pub fn extend(&mut self, other: Changes) {
        self.joins.extend(other.joins);
        self.leaves.extend(other.leaves);
    }
}

/// `track` of a `(pid, topic, key)` that is already tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("already tracked: {topic} / {key}")]
pub struct AlreadyTracked {
    /// The topic.
    pub topic: Topic,
    /// The key.
    pub key: Key,
}

/// `update` of a `(pid, topic, key)` that is not tracked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no presence for {topic} / {key}")]
pub struct NoPresence {
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: String,
}

struct Slot {
    id: ReplicaRef,
    up: bool,
    clock: u64,
    cloud: BTreeSet<u64>,
    owned: FxHashMap<u64, u32>,
}

impl Slot {
    fn covers(&self, dot: u64) -> bool {
        dot <= self.clock || self.cloud.contains(&dot)
    }

    fn compact(&mut self) {
        while let Some(&first) = self.cloud.first() {
            if first <= self.clock {
                self.cloud.pop_first();
            } else if first == self.clock + 1 {
                self.cloud.pop_first();
                self.clock += 1;
            } else {
                break;
            }
        }
    }
}

struct Element {
    topic: Topic,
    pid: Pid,
    presence: PresenceEntry,
    slot: u32,
    dot: u64,
    topic_pos: u32,
}

impl Element {
    fn entry(&self) -> Entry {
        Entry {
            topic: self.topic.clone(),
            pid: self.pid,
            presence: self.presence.clone(),
        }
    }
}

/// Elements per slab chunk: the slab grows a chunk at a time, never by doubling and copying.
const CHUNK: usize = 4096;

/// The element store: fixed-size chunks of slots, ids recycled through a free list.
#[derive(Default)]
struct Slab {
    chunks: Vec<Vec<Option<Element>>>,
    free: Vec<u32>,
}

impl Slab {
    fn get(&self, id: u32) -> Option<&Element> {
        let id = id as usize;
        self.chunks.get(id / CHUNK)?.get(id % CHUNK)?.as_ref()
    }

    fn get_mut(&mut self, id: u32) -> Option<&mut Element> {
        let id = id as usize;
        self.chunks
            .get_mut(id / CHUNK)?
            .get_mut(id % CHUNK)?
            .as_mut()
    }

    fn insert(&mut self, e: Element) -> u32 {
        if let Some(id) = self.free.pop() {
            let i = id as usize;
            self.chunks[i / CHUNK][i % CHUNK] = Some(e);
            return id;
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let n = self.chunks.len() - 1;
        let chunk = &mut self.chunks[n];
        chunk.push(Some(e));
        (n * CHUNK + chunk.len() - 1) as u32
    }

    fn remove(&mut self, id: u32) -> Option<Element> {
        let i = id as usize;
        let e = self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)?.take()?;
        self.free.push(id);
        Some(e)
    }

    fn iter(&self) -> impl Iterator<Item = (u32, &Element)> {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk
                .iter()
                .enumerate()
                .filter_map(move |(i, e)| e.as_ref().map(|e| ((c * CHUNK + i) as u32, e)))
        })
    }
}

/// One entry of a topic's index: enough to answer `list` from contiguous memory.
struct TopicItem {
    presence: PresenceEntry,
    slot: u32,
    id: u32,
}

/// The element ids of one pid (usually one).
/// `Many` is boxed on purpose: it keeps `Ids` (and each pid index entry) at 16 bytes, since most
/// pids have a single element.
#[allow(clippy::box_collection)]
enum Ids {
    One(u32),
    Many(Box<Vec<u32>>),
}

impl Ids {
    fn as_slice(&self) -> &[u32] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

const ME: u32 = 0;

/// The delta being accumulated between two broadcasts, kept in the cheapest form to update: our
/// own dots are exactly `(start, own clock]` plus the older own dots removed since (`removed`), so
/// a local operation appends instead of searching maps keyed by replica.
#[derive(Default)]
struct UnsentDelta {
    start: u64,
    removed: BTreeSet<u64>,
    values: BTreeMap<u64, Entry>,
    relayed: BTreeMap<ReplicaRef, BTreeSet<u64>>,
}

/// A topic's canonical name and the index of its elements.
struct TopicIndex {
    name: Topic,
    items: Vec<TopicItem>,
}

/// One replica of the presence CRDT (one shard of one node).
pub struct State {
    slots: Vec<Option<Slot>>,
    free_slots: Vec<u32>,
    index: FxHashMap<ReplicaRef, u32>,
    elements: Slab,
    topics: FxHashMap<Topic, TopicIndex>,
    pids: FxHashMap<Pid, Ids>,
    pending: UnsentDelta,
    len: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("replica", self.replica())
            .field("len", &self.len)
            .field("context", &self.context())
            .finish()
    }
}

impl State {
    /// An empty state for the local replica `me`.
    pub fn new(me: ReplicaRef) -> State {
        let mut index = FxHashMap::default();
        index.insert(me.clone(), ME);
        State {
            slots: vec![Some(Slot {
                id: me,
                up: true,
                clock: 0,
                cloud: BTreeSet::new(),
                owned: FxHashMap::default(),
            })],
            free_slots: Vec::new(),
            index,
            elements: Slab::default(),
            topics: FxHashMap::default(),
            pids: FxHashMap::default(),
            pending: UnsentDelta::default(),
            len: 0,
        }
    }

    fn slot(&self, s: u32) -> &Slot {
        self.slots[s as usize]
            .as_ref()
            .expect("slot ids in use always hold a slot")
    }

    fn slot_mut(&mut self, s: u32) -> &mut Slot {
        self.slots[s as usize]
            .as_mut()
            .expect("slot ids in use always hold a slot")
    }

    fn element(&self, id: u32) -> &Element {
        self.elements
            .get(id)
            .expect("indexed element ids always hold an element")
    }

    /// The local replica.
    pub fn replica(&self) -> &ReplicaRef {
        &self.slot(ME).id
    }

    /// The local replica's own clock (number of dots it has created).
    pub fn own_clock(&self) -> u64 {
        self.slot(ME).clock
    }

    /// Number of stored elements, visible or not.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contiguous causal context of every known replica (down ones included).
    pub fn context(&self) -> Clock {
        self.slots
            .iter()
            .flatten()
            .map(|s| (s.id.clone(), s.clock))
            .collect()
    }

    /// What is gossiped in heartbeats: the context without replicas marked down (so a replaced node
    /// does not make peers request transfers for 20 minutes; phoenix_pubsub#135).
    pub fn clocks(&self) -> Clock {
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.up)
            .map(|s| (s.id.clone(), s.clock))
            .collect()
    }

    /// Every known replica (in the causal context) with whether it is up.
    pub fn replicas(&self) -> Vec<(ReplicaRef, bool)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .flatten()
            .map(|s| (s.id.clone(), s.up))
            .collect();
        v.sort();
        v
    }

    /// Whether `replica` is known (its dots are accepted).
    pub fn knows(&self, replica: &ReplicaRef) -> bool {
        self.index.contains_key(replica)
    }

    // ---------------------------------------------------------------- storage helpers

    fn find(&self, pid: Pid, topic: &str, key: &str) -> Option<u32> {
        let ids = self.pids.get(&pid)?;
        self.find_in(ids, topic, key)
    }

    fn find_in(&self, ids: &Ids, topic: &str, key: &str) -> Option<u32> {
        ids.as_slice().iter().copied().find(|&id| {
            let e = self.element(id);
            &*e.topic == topic && &*e.presence.key == key
        })
    }

    /// The canonical `Arc` of `topic` (shared by all its elements), creating its index if needed.
    fn topic_index(&mut self, topic: &str) -> &mut TopicIndex {
        if !self.topics.contains_key(topic) {
            let name: Topic = Arc::from(topic);
            self.topics.insert(
                name.clone(),
                TopicIndex {
                    name,
                    items: Vec::new(),
                },
            );
        }
        self.topics.get_mut(topic).expect("just ensured")
    }

    fn insert_element(
        &mut self,
        topic: &str,
        pid: Pid,
        presence: PresenceEntry,
        slot: u32,
        dot: u64,
    ) -> Topic {
        let index = self.topic_index(topic);
        let topic = index.name.clone();
        let topic_pos = index.items.len() as u32;
        let id = self.elements.insert(Element {
            topic: topic.clone(),
            pid,
            presence: presence.clone(),
            slot,
            dot,
            topic_pos,
        });
        self.topics
            .get_mut(&*topic)
            .expect("index created above")
            .items
            .push(TopicItem { presence, slot, id });
        match self.pids.entry(pid) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Ids::One(id));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let ids = o.get_mut();
                match ids {
                    Ids::One(first) => *ids = Ids::Many(Box::new(vec![*first, id])),
                    Ids::Many(v) => v.push(id),
                }
            }
        }
        // Our own elements are never looked up by dot: only other replicas' are indexed so.
        if slot != ME {
            self.slot_mut(slot).owned.insert(dot, id);
        }
        self.len += 1;
        topic
    }

    /// Removes an element from the store and every index (the pid index too unless
    /// `pid_index_done`, when the caller already took the pid's ids out).
    fn remove_element_with(&mut self, id: u32, pid_index_done: bool) -> Element {
        let e = self
            .elements
            .remove(id)
            .expect("removing an indexed element");
        self.len -= 1;
        if let Some(index) = self.topics.get_mut(&e.topic) {
            let pos = e.topic_pos as usize;
            index.items.swap_remove(pos);
            if let Some(moved) = index.items.get(pos)
                && let Some(m) = self.elements.get_mut(moved.id)
            {
                m.topic_pos = pos as u32;
            }
            if index.items.is_empty() {
                self.topics.remove(&e.topic);
            }
        }
        if !pid_index_done && let Some(ids) = self.pids.get_mut(&e.pid) {
            match ids {
                Ids::One(_) => {
                    self.pids.remove(&e.pid);
                }
                Ids::Many(v) => {
                    v.retain(|&x| x != id);
                    if v.len() == 1 {
                        *ids = Ids::One(v[0]);
                    }
                }
            }
        }
        if e.slot != ME
            && let Some(slot) = self.slots[e.slot as usize].as_mut()
        {
            slot.owned.remove(&e.dot);
        }
        e
    }

    fn remove_element(&mut self, id: u32) -> Element {
        self.remove_element_with(id, false)
    }

    fn bump(&mut self) -> u64 {
        let me = self.slot_mut(ME);
        me.clock += 1;
        me.clock
    }

    /// Records the removal of our own element with dot `dot` in the pending delta, then consumes a
    /// dot for the removal itself (so the delta is non-empty and ranges advance).
    fn record_own_removal(&mut self, dot: u64) {
        if dot <= self.pending.start {
            self.pending.removed.insert(dot);
        } else {
            self.pending.values.remove(&dot);
        }
        self.bump();
    }

    // ---------------------------------------------------------------- local operations

    /// Adds a presence of the local replica (`track`). Fails if `(pid, topic, key)` is tracked.
    pub fn join(
        &mut self,
        pid: Pid,
        topic: &str,
        key: &str,
        meta: Meta,
        phx_ref: PhxRef,
    ) -> Result<Entry, AlreadyTracked> {
        if self.find(pid, topic, key).is_some() {
            return Err(AlreadyTracked {
                topic: topic.into(),
                key: key.into(),
            });
        }
        let dot = self.bump();
        let presence = PresenceEntry::new(Arc::from(key), meta, phx_ref, None);
        let topic = self.insert_element(topic, pid, presence.clone(), ME, dot);
        let entry = Entry {
            topic,
            pid,
            presence,
        };
        self.pending.values.insert(dot, entry.clone());
        Ok(entry)
    }

    /// Removes one presence of the local replica (`untrack`); `None` if it was not tracked.
    pub fn leave(&mut self, pid: Pid, topic: &str, key: &str) -> Option<Entry> {
        let id = self.find(pid, topic, key)?;
        if self.element(id).slot != ME {
            return None;
        }
        let e = self.remove_element(id);
        self.record_own_removal(e.dot);
        Some(Entry {
            topic: e.topic,
            pid: e.pid,
            presence: e.presence,
        })
    }

    /// Removes every local presence of `pid` (untrack all, or the process ended).
    pub fn leave_pid(&mut self, pid: Pid) -> Vec<Entry> {
        let mut out = Vec::new();
        self.leave_pid_into(pid, &mut out);
        out
    }

    /// [`State::leave_pid`], appending the leaves to `out` (no allocation for the common case of a
    /// process with one presence).
    pub fn leave_pid_into(&mut self, pid: Pid, out: &mut Vec<Entry>) {
        let Some(ids) = self.pids.remove(&pid) else {
            return;
        };
        match ids {
            Ids::One(id) => {
                if self.element(id).slot == ME {
                    out.push(self.remove_own(id));
                } else {
                    self.pids.insert(pid, Ids::One(id));
                }
            }
            Ids::Many(ids) => {
                let mut kept = Vec::new();
                for id in *ids {
                    if self.element(id).slot == ME {
                        out.push(self.remove_own(id));
                    } else {
                        kept.push(id);
                    }
                }
                match kept.len() {
                    0 => {}
                    1 => {
                        self.pids.insert(pid, Ids::One(kept[0]));
                    }
                    _ => {
                        self.pids.insert(pid, Ids::Many(Box::new(kept)));
                    }
                }
            }
        }
    }

    /// Removes one of our own elements whose pid index entry the caller already took out.
    fn remove_own(&mut self, id: u32) -> Entry {
        let e = self.remove_element_with(id, true);
        self.record_own_removal(e.dot);
        Entry {
            topic: e.topic,
            pid: e.pid,
            presence: e.presence,
        }
    }

    /// Replaces the meta of a local presence (`update`): a removal of the old dot and an add with a
    /// new dot, applied in place so readers never see the key missing. `meta` computes the new meta
    /// from the old one. Returns `(new, old)`; the new presence's `phx_ref_prev` is the old `phx_ref`.
    pub fn leave_join(
        &mut self,
        pid: Pid,
        topic: &str,
        key: &str,
        meta: impl FnOnce(&Meta) -> Meta,
        phx_ref: PhxRef,
    ) -> Result<(Entry, Entry), NoPresence> {
        let no = || NoPresence {
            topic: topic.into(),
            key: key.into(),
        };
        let id = self.find(pid, topic, key).ok_or_else(no)?;
        if self.element(id).slot != ME {
            return Err(no());
        }
        let old_dot = self.element(id).dot;
        let old = self.element(id).entry();
        let new_meta = meta(&old.presence.meta);
        self.record_own_removal(old_dot);
        let dot = self.bump();
        let presence = PresenceEntry::new(
            old.presence.key.clone(),
            new_meta,
            phx_ref,
            Some(old.presence.phx_ref),
        );
        let el = self.elements.get_mut(id).expect("found element exists");
        el.dot = dot;
        el.presence = presence.clone();
        let pos = el.topic_pos as usize;
        if let Some(item) = self
            .topics
            .get_mut(&el.topic)
            .and_then(|index| index.items.get_mut(pos))
        {
            item.presence = presence.clone();
        }
        let new = Entry {
            topic: el.topic.clone(),
            pid,
            presence,
        };
        self.pending.values.insert(dot, new.clone());
        Ok((new, old))
    }

    // ---------------------------------------------------------------- pending delta

    /// Whether local changes (or relayed removals) wait to be broadcast.
    pub fn has_delta(&self) -> bool {
        self.own_clock() > self.pending.start || !self.pending.relayed.is_empty()
    }

    /// Size of the pending delta (values + dots).
    pub fn delta_size(&self) -> usize {
        (self.own_clock() - self.pending.start) as usize
            + self.pending.removed.len()
            + self.pending.values.len()
            + self
                .pending
                .relayed
                .values()
                .map(BTreeSet::len)
                .sum::<usize>()
    }

    /// The pending delta (a copy; see [`State::take_delta`]).
    pub fn delta(&self) -> Delta {
        let mut d = self.empty_delta();
        d.start.insert(self.replica().clone(), self.pending.start);
        let own = Part {
            cloud: (self.pending.start + 1..=self.own_clock())
                .chain(self.pending.removed.iter().copied())
                .collect(),
            values: self.pending.values.clone(),
        };
        if !own.cloud.is_empty() {
            d.parts.insert(self.replica().clone(), own);
        }
        for (r, dots) in &self.pending.relayed {
            d.parts.insert(
                r.clone(),
                Part {
                    cloud: dots.clone(),
                    values: BTreeMap::new(),
                },
            );
        }
        d
    }

    /// An empty delta positioned at the current own clock (what the pending delta is after a reset).
    pub fn empty_delta(&self) -> Delta {
        Delta::empty_at(self.replica(), self.own_clock())
    }

    /// Takes the pending delta for broadcast and starts a new one at the current own clock.
    pub fn take_delta(&mut self) -> Delta {
        let me = self.replica().clone();
        let clock = self.own_clock();
        let pending = std::mem::replace(
            &mut self.pending,
            UnsentDelta {
                start: clock,
                ..UnsentDelta::default()
            },
        );
        let mut d = Delta::empty_at(&me, clock);
        d.start.insert(me.clone(), pending.start);
        let mut cloud = pending.removed;
        cloud.extend(pending.start + 1..=clock);
        if !cloud.is_empty() {
            d.parts.insert(
                me,
                Part {
                    cloud,
                    values: pending.values,
                },
            );
        }
        for (r, dots) in pending.relayed {
            d.parts.insert(
                r,
                Part {
                    cloud: dots,
                    values: BTreeMap::new(),
                },
            );
        }
        d
    }

    /// Drops the pending delta.
    pub fn reset_delta(&mut self) {
        self.pending = UnsentDelta {
            start: self.own_clock(),
            ..UnsentDelta::default()
        };
    }

    // ---------------------------------------------------------------- merge

    /// Merges a delta received from another replica.
    pub fn merge_delta(&mut self, delta: &Delta) -> Changes {
        self.merge(&Clock::new(), &delta.parts)
    }

    /// Merges a full state extracted by another replica.
    pub fn merge_snapshot(&mut self, snapshot: &Snapshot) -> Changes {
        self.merge(&snapshot.context, &snapshot.parts)
    }

    fn merge(&mut self, context: &Clock, parts: &BTreeMap<ReplicaRef, Part>) -> Changes {
        let mut changes = Changes::default();
        let mut replicas: Vec<&ReplicaRef> = context.keys().chain(parts.keys()).collect();
        replicas.sort();
        replicas.dedup();
        let empty = Part::default();
        for r in replicas {
            let Some(&s) = self.index.get(r) else {
                continue;
            };
            if s == ME {
                continue;
            }
            let rc = context.get(r).copied().unwrap_or(0);
            let part = parts.get(r).unwrap_or(&empty);
            let up = self.slot(s).up;

            // Leaves: our elements of `r` that the remote has seen but no longer holds.
            let removed: Vec<u64> = {
                let slot = self.slot(s);
                let gone =
                    |d: &u64| (*d <= rc || part.cloud.contains(d)) && !part.values.contains_key(d);
                if rc == 0 && part.cloud.len() <= slot.owned.len() {
                    part.cloud
                        .iter()
                        .filter(|d| slot.owned.contains_key(d) && gone(d))
                        .copied()
                        .collect()
                } else {
                    let mut v: Vec<u64> = slot.owned.keys().filter(|d| gone(d)).copied().collect();
                    v.sort_unstable();
                    v
                }
            };
            for d in removed {
                if let Some(&id) = self.slot(s).owned.get(&d) {
                    let e = self.remove_element(id);
                    self.pending.relayed.entry(r.clone()).or_default().insert(d);
                    if up {
                        changes.leaves.push(Entry {
                            topic: e.topic,
                            pid: e.pid,
                            presence: e.presence,
                        });
                    }
                }
            }

            // Joins: values whose dot we have not seen.
            for (&d, v) in &part.values {
                if self.slot(s).covers(d) {
                    continue;
                }
                if let Some(id) = self.find(v.pid, &v.topic, &v.presence.key) {
                    let old = self.element(id);
                    if old.slot == s && old.dot > d {
                        continue; // a newer version of the same presence is already here
                    }
                    let old_up = self.slot(old.slot).up;
                    let old = self.remove_element(id);
                    if old_up {
                        changes.leaves.push(Entry {
                            topic: old.topic,
                            pid: old.pid,
                            presence: old.presence,
                        });
                    }
                }
                self.insert_element(&v.topic, v.pid, v.presence.clone(), s, d);
                if up {
                    changes.joins.push(v.clone());
                }
            }

            // Causal context: union the clouds, advance the contiguous clock, compact.
            let slot = self.slot_mut(s);
            let base = slot.clock.max(rc);
            slot.clock = base;
            slot.cloud
                .extend(part.cloud.iter().copied().filter(|&d| d > base));
            slot.compact();
        }
        changes
    }

    // ---------------------------------------------------------------- transfers

    /// The full state for a transfer to `requester`, whose clock is `known`: only replicas the
    /// requester knows, never the requester's own elements (fix of Phoenix's quirk Q1).
    pub fn extract(&self, requester: &ReplicaRef, known: &Clock) -> Snapshot {
        let mut snap = Snapshot::default();
        for r in known.keys() {
            if r == requester {
                continue;
            }
            let Some(&s) = self.index.get(r) else {
                continue;
            };
            let slot = self.slot(s);
            snap.context.insert(r.clone(), slot.clock);
            let part = Part {
                cloud: slot.cloud.clone(),
                values: self.dots_of(s).map(|(d, e)| (d, e.entry())).collect(),
            };
            if !part.cloud.is_empty() || !part.values.is_empty() {
                snap.parts.insert(r.clone(), part);
            }
        }
        snap
    }

    // ---------------------------------------------------------------- membership

    /// The elements of replica slot `s` with their dots (our own are found by a scan, others
    /// through their dot index).
    fn dots_of(&self, s: u32) -> Box<dyn Iterator<Item = (u64, &Element)> + '_> {
        if s == ME {
            Box::new(
                self.elements
                    .iter()
                    .filter(|(_, e)| e.slot == ME)
                    .map(|(_, e)| (e.dot, e)),
            )
        } else {
            Box::new(
                self.slot(s)
                    .owned
                    .iter()
                    .map(|(&d, &id)| (d, self.element(id))),
            )
        }
    }

    fn owned_entries(&self, s: u32) -> Vec<Entry> {
        let mut v: Vec<(u64, Entry)> = self.dots_of(s).map(|(d, e)| (d, e.entry())).collect();
        v.sort_unstable_by_key(|(d, _)| *d);
        v.into_iter().map(|(_, e)| e).collect()
    }

    /// Marks `replica` up, adding it to the causal context if new. Returns its stored elements as
    /// joins when it was down (a healed netsplit); nothing for a new or already-up replica.
    pub fn replica_up(&mut self, replica: &ReplicaRef) -> Vec<Entry> {
        match self.index.get(replica) {
            Some(&s) => {
                if self.slot(s).up {
                    return Vec::new();
                }
                self.slot_mut(s).up = true;
                self.owned_entries(s)
            }
            None => {
                let slot = Slot {
                    id: replica.clone(),
                    up: true,
                    clock: 0,
                    cloud: BTreeSet::new(),
                    owned: FxHashMap::default(),
                };
                let s = match self.free_slots.pop() {
                    Some(s) => {
                        self.slots[s as usize] = Some(slot);
                        s
                    }
                    None => {
                        self.slots.push(Some(slot));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(replica.clone(), s);
                Vec::new()
            }
        }
    }

    /// Marks `replica` down: its elements are kept but hidden. Returns them as leaves (nothing if it
    /// was already down or unknown).
    pub fn replica_down(&mut self, replica: &ReplicaRef) -> Vec<Entry> {
        match self.index.get(replica) {
            Some(&s) if s != ME && self.slot(s).up => {
                self.slot_mut(s).up = false;
                self.owned_entries(s)
            }
            _ => Vec::new(),
        }
    }

    /// Forgets `replica` entirely (permdown): its elements, its causal context and clouds, its entry
    /// in the replica map (fix of Phoenix's quirk Q2) and its traces in the pending delta. Returns the
    /// elements removed that were still visible (none if it had been marked down first).
    pub fn remove_down_replica(&mut self, replica: &ReplicaRef) -> Vec<Entry> {
        let Some(&s) = self.index.get(replica) else {
            return Vec::new();
        };
        if s == ME {
            return Vec::new();
        }
        let visible = if self.slot(s).up {
            self.owned_entries(s)
        } else {
            Vec::new()
        };
        let ids: Vec<u32> = self.slot(s).owned.values().copied().collect();
        for id in ids {
            self.remove_element(id);
        }
        self.slots[s as usize] = None;
        self.free_slots.push(s);
        self.index.remove(replica);
        self.pending.relayed.remove(replica);
        visible
    }

    // ---------------------------------------------------------------- queries

    /// The presences of `topic` whose owner is up, in no particular order.
    pub fn get_by_topic(&self, topic: &str) -> Vec<PresenceEntry> {
        let Some(TopicIndex { items, .. }) = self.topics.get(topic) else {
            return Vec::new();
        };
        let up: Vec<bool> = self
            .slots
            .iter()
            .map(|s| s.as_ref().is_some_and(|s| s.up))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        // In blocks: plain loads first (their cache misses overlap), then the clones, whose atomic
        // increments would otherwise wait for one miss at a time.
        for block in items.chunks(16) {
            let mut touched = 0usize;
            for i in block {
                touched = touched.wrapping_add(i.presence.prefetch());
            }
            std::hint::black_box(touched);
            out.extend(
                block
                    .iter()
                    .filter(|i| up[i.slot as usize])
                    .map(|i| i.presence.clone()),
            );
        }
        out
    }

    /// Number of presences of `topic` whose owner is up.
    pub fn count_by_topic(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |index| {
            index.items.iter().filter(|i| self.slot(i.slot).up).count()
        })
    }

    /// The presences of `key` in `topic` whose owner is up, with their pids (a scan of the topic).
    pub fn get_by_key(&self, topic: &str, key: &str) -> Vec<(Pid, PresenceEntry)> {
        let Some(TopicIndex { items, .. }) = self.topics.get(topic) else {
            return Vec::new();
        };
        items
            .iter()
            .filter(|i| &*i.presence.key == key && self.slot(i.slot).up)
            .map(|i| (self.element(i.id).pid, i.presence.clone()))
            .collect()
    }

    /// Every entry of `pid`, up or down.
    pub fn get_by_pid(&self, pid: Pid) -> Vec<Entry> {
        self.pids.get(&pid).map_or_else(Vec::new, |ids| {
            ids.as_slice()
                .iter()
                .map(|&id| self.element(id).entry())
                .collect()
        })
    }

    /// The entry of `(pid, topic, key)`, up or down.
    pub fn get(&self, pid: Pid, topic: &str, key: &str) -> Option<Entry> {
        self.find(pid, topic, key)
            .map(|id| self.element(id).entry())
    }

    /// Every visible entry (owner up), in no particular order.
    pub fn online_list(&self) -> Vec<Entry> {
        self.elements
            .iter()
            .map(|(_, e)| e)
            .filter(|e| self.slot(e.slot).up)
            .map(Element::entry)
            .collect()
    }

    /// The topics that have at least one stored element.
    pub fn topics(&self) -> impl Iterator<Item = &Topic> {
        self.topics.keys()
    }

    /// Checks every internal index against the element store; panics with a description when one
    /// disagrees. For tests.
    #[doc(hidden)]
    pub fn assert_consistent(&self) {
        let mut count = 0;
        for (id, e) in self.elements.iter() {
            count += 1;
            let item = &self.topics[&e.topic].items[e.topic_pos as usize];
            assert_eq!(item.presence, e.presence, "topic index presence");
            assert_eq!(item.slot, e.slot, "topic index slot");
            assert_eq!(item.id, id, "topic index");
            assert!(self.pids[&e.pid].as_slice().contains(&id), "pid index");
            let slot = self.slot(e.slot);
            if e.slot != ME {
                assert_eq!(slot.owned.get(&e.dot), Some(&id), "dot index");
            }
            assert!(slot.covers(e.dot), "element dot outside causal context");
        }
        assert_eq!(count, self.len);
        let indexed: usize = self.topics.values().map(|i| i.items.len()).sum();
        assert_eq!(indexed, self.len, "topic index size");
        let owned: usize = self.slots.iter().flatten().map(|s| s.owned.len()).sum();
        let own = self.elements.iter().filter(|(_, e)| e.slot == ME).count();
        assert_eq!(owned + own, self.len, "dot index size");
        for (r, &s) in &self.index {
            assert_eq!(&self.slot(s).id, r, "replica index");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rr(name: &str) -> ReplicaRef {
        ReplicaRef::new(name, 1)
    }

    fn pid(n: u64) -> Pid {
        Pid { node: 7, id: n }
    }

    fn meta(v: serde_json::Value) -> Meta {
        Meta::new(v).unwrap()
    }

    fn r(n: u16) -> PhxRef {
        PhxRef::new(n as u64, 1, n)
    }

    fn keys(s: &State, topic: &str) -> Vec<String> {
        let mut v: Vec<String> = s
            .get_by_topic(topic)
            .into_iter()
            .map(|p| p.key.to_string())
            .collect();
        v.sort();
        v
    }

    /// Two replicas that know each other.
    fn pair() -> (State, State) {
        let mut a = State::new(rr("a"));
        let mut b = State::new(rr("b"));
        a.replica_up(&rr("b"));
        b.replica_up(&rr("a"));
        (a, b)
    }

    fn send(from: &mut State, to: &mut State) -> Changes {
        let d = from.take_delta();
        let c = to.merge_delta(&d);
        to.assert_consistent();
        c
    }

    #[test]
    fn join_then_duplicate_is_refused() {
        let mut a = State::new(rr("a"));
        let e = a.join(pid(1), "t", "k", Meta::empty(), r(1)).unwrap();
        assert_eq!(&*e.topic, "t");
        assert_eq!(
            a.join(pid(1), "t", "k", Meta::empty(), r(2)),
            Err(AlreadyTracked {
                topic: "t".into(),
                key: "k".into()
            })
        );
        // same pid, other key / topic: fine
        a.join(pid(1), "t", "k2", Meta::empty(), r(3)).unwrap();
        a.join(pid(1), "u", "k", Meta::empty(), r(4)).unwrap();
        assert_eq!(a.own_clock(), 3);
        assert_eq!(a.delta_size(), 6);
        assert_eq!(keys(&a, "t"), vec!["k", "k2"]);
        a.assert_consistent();
    }

    #[test]
    fn leave_and_leave_pid_remove_and_consume_dots() {
        let mut a = State::new(rr("a"));
        a.join(pid(1), "t", "k", Meta::empty(), r(1)).unwrap();
        a.join(pid(1), "u", "k", Meta::empty(), r(2)).unwrap();
        a.join(pid(2), "t", "j", Meta::empty(), r(3)).unwrap();
        assert!(a.leave(pid(1), "t", "nope").is_none());
        let gone = a.leave(pid(2), "t", "j").unwrap();
        assert_eq!(&*gone.presence.key, "j");
        assert_eq!(a.own_clock(), 4);
        let gone = a.leave_pid(pid(1));
        assert_eq!(gone.len(), 2);
        assert_eq!(a.own_clock(), 6);
        assert!(a.is_empty());
        assert!(a.get_by_pid(pid(1)).is_empty());
        // The pending delta covers all six dots and holds no value.
        let d = a.delta();
        assert_eq!(d.parts[&rr("a")].cloud.len(), 6);
        assert!(d.parts[&rr("a")].values.is_empty());
        a.assert_consistent();
    }

    #[test]
    fn delta_replicates_joins_and_leaves() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k1", Meta::empty(), r(1)).unwrap();
        a.join(pid(2), "t", "k2", Meta::empty(), r(2)).unwrap();
        let c = send(&mut a, &mut b);
        assert_eq!(c.joins.len(), 2);
        assert!(c.leaves.is_empty());
        assert_eq!(keys(&b, "t"), vec!["k1", "k2"]);
        assert_eq!(b.context()[&rr("a")], 2);
        a.leave(pid(1), "t", "k1").unwrap();
        let c = send(&mut a, &mut b);
        assert!(c.joins.is_empty());
        assert_eq!(c.leaves.len(), 1);
        assert_eq!(keys(&b, "t"), vec!["k2"]);
        // merging the same delta twice changes nothing
        let d = {
            a.join(pid(3), "t", "k3", Meta::empty(), r(3)).unwrap();
            a.take_delta()
        };
        assert_eq!(b.merge_delta(&d).joins.len(), 1);
        assert!(b.merge_delta(&d).is_empty());
    }

    #[test]
    fn update_is_a_leave_and_a_join_of_the_same_key_in_one_diff() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k", meta(json!({"s": "on"})), r(1))
            .unwrap();
        send(&mut a, &mut b);
        let (new, old) = a
            .leave_join(pid(1), "t", "k", |_| meta(json!({"s": "away"})), r(2))
            .unwrap();
        assert_eq!(new.presence.phx_ref_prev, Some(r(1)));
        assert_eq!(old.presence.meta, meta(json!({"s": "on"})));
        assert_eq!(a.own_clock(), 3, "an update consumes two dots");
        assert_eq!(a.get_by_topic("t").len(), 1);
        let c = send(&mut a, &mut b);
        assert_eq!(c.joins.len(), 1);
        assert_eq!(c.leaves.len(), 1);
        assert_eq!(c.joins[0].presence.key, c.leaves[0].presence.key);
        assert_eq!(c.joins[0].presence.meta, meta(json!({"s": "away"})));
        assert_eq!(c.leaves[0].presence.meta, meta(json!({"s": "on"})));
        let got = b.get_by_key("t", "k");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.phx_ref_prev, Some(r(1)));
        assert!(a.leave_join(pid(9), "t", "k", |m| m.clone(), r(3)).is_err());
    }

    #[test]
    fn removal_is_relayed_onward_after_a_partial_partition() {
        // A tracks; B and C learn. A removes; only B hears. C learns the removal from B.
        let mut a = State::new(rr("a"));
        let mut b = State::new(rr("b"));
        let mut c = State::new(rr("c"));
        for (s, others) in [
            (&mut a, ["b", "c"]),
            (&mut b, ["a", "c"]),
            (&mut c, ["a", "b"]),
        ] {
            for o in others {
                s.replica_up(&rr(o));
            }
        }
        a.join(pid(1), "t", "k", Meta::empty(), r(1)).unwrap();
        let d1 = a.take_delta();
        b.merge_delta(&d1);
        c.merge_delta(&d1);
        assert_eq!(keys(&c, "t"), vec!["k"]);
        a.leave(pid(1), "t", "k").unwrap();
        let d2 = a.take_delta();
        let bc = b.merge_delta(&d2);
        assert_eq!(bc.leaves.len(), 1);
        // B's own pending delta now carries A's removed dot.
        assert!(b.has_delta());
        let relayed = b.take_delta();
        assert!(relayed.parts[&rr("a")].cloud.contains(&1));
        let cc = c.merge_delta(&relayed);
        assert_eq!(cc.leaves.len(), 1);
        assert!(keys(&c, "t").is_empty());
        c.assert_consistent();
    }

    #[test]
    fn values_of_unknown_replicas_are_ignored() {
        let mut a = State::new(rr("a"));
        let mut b = State::new(rr("b"));
        a.join(pid(1), "t", "k", Meta::empty(), r(1)).unwrap();
        let c = b.merge_delta(&a.take_delta());
        assert!(c.is_empty());
        assert!(b.is_empty());
        assert!(!b.knows(&rr("a")));
    }

    #[test]
    fn out_of_order_deltas_leave_gaps_until_filled() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k1", Meta::empty(), r(1)).unwrap();
        let d1 = a.take_delta();
        a.join(pid(2), "t", "k2", Meta::empty(), r(2)).unwrap();
        let d2 = a.take_delta();
        b.merge_delta(&d2);
        assert_eq!(b.context()[&rr("a")], 0, "gap: context does not advance");
        assert_eq!(keys(&b, "t"), vec!["k2"]);
        b.merge_delta(&d1);
        assert_eq!(b.context()[&rr("a")], 2);
        assert_eq!(keys(&b, "t"), vec!["k1", "k2"]);
    }

    #[test]
    fn extract_excludes_unknown_replicas_and_the_requesters_own_elements() {
        let mut a = State::new(rr("a"));
        let mut b = State::new(rr("b"));
        let mut c = State::new(rr("c"));
        for s in [&mut a, &mut b, &mut c] {
            for o in ["a", "b", "c"] {
                s.replica_up(&rr(o));
            }
        }
        a.join(pid(1), "t", "a1", Meta::empty(), r(1)).unwrap();
        b.join(pid(2), "t", "b1", Meta::empty(), r(2)).unwrap();
        c.join(pid(3), "t", "c1", Meta::empty(), r(3)).unwrap();
        let (da, db) = (a.take_delta(), b.take_delta());
        c.merge_delta(&da);
        c.merge_delta(&db);
        assert_eq!(keys(&c, "t"), vec!["a1", "b1", "c1"]);
        // A requester that knows only itself and `c`: gets c's elements, never its own nor b's.
        let known: Clock = [(rr("a"), 1), (rr("c"), 0)].into_iter().collect();
        let snap = c.extract(&rr("a"), &known);
        assert_eq!(
            snap.context.keys().cloned().collect::<Vec<_>>(),
            vec![rr("c")]
        );
        assert_eq!(
            snap.parts.keys().cloned().collect::<Vec<_>>(),
            vec![rr("c")]
        );
        // A requester knowing everyone gets a's and c's values but not its own (b's).
        let known = b.clocks();
        let snap = c.extract(&rr("b"), &known);
        assert_eq!(
            snap.parts.keys().cloned().collect::<Vec<_>>(),
            vec![rr("a"), rr("c")]
        );
        let changes = b.merge_snapshot(&snap);
        assert_eq!(changes.joins.len(), 2);
        assert_eq!(keys(&b, "t"), vec!["a1", "b1", "c1"]);
        b.assert_consistent();
    }

    #[test]
    fn snapshot_context_removes_what_the_remote_has_seen_gone() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k1", Meta::empty(), r(1)).unwrap();
        a.join(pid(2), "t", "k2", Meta::empty(), r(2)).unwrap();
        send(&mut a, &mut b);
        a.leave(pid(1), "t", "k1").unwrap();
        a.reset_delta(); // the delta is lost
        let snap = a.extract(&rr("b"), &b.clocks());
        let c = b.merge_snapshot(&snap);
        assert_eq!(c.leaves.len(), 1);
        assert!(c.joins.is_empty());
        assert_eq!(keys(&b, "t"), vec!["k2"]);
        assert_eq!(b.context()[&rr("a")], 3);
    }

    #[test]
    fn down_hides_up_reannounces_and_merges_stay_silent_while_down() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k1", Meta::empty(), r(1)).unwrap();
        send(&mut a, &mut b);
        let leaves = b.replica_down(&rr("a"));
        assert_eq!(leaves.len(), 1);
        assert!(b.replica_down(&rr("a")).is_empty());
        assert!(b.get_by_topic("t").is_empty());
        assert!(!b.clocks().contains_key(&rr("a")));
        assert!(b.context().contains_key(&rr("a")));
        // A join of a down replica is stored but not reported.
        a.join(pid(2), "t", "k2", Meta::empty(), r(2)).unwrap();
        let c = send(&mut a, &mut b);
        assert!(c.is_empty());
        let joins = b.replica_up(&rr("a"));
        assert_eq!(joins.len(), 2);
        assert_eq!(keys(&b, "t"), vec!["k1", "k2"]);
    }

    #[test]
    fn permdown_strips_replica_from_context_clouds_values_delta_and_replicas() {
        let mut a = State::new(rr("a"));
        let mut b = State::new(rr("b"));
        let mut c = State::new(rr("c"));
        for s in [&mut a, &mut b, &mut c] {
            for o in ["a", "b", "c"] {
                s.replica_up(&rr(o));
            }
        }
        a.join(pid(1), "t", "k1", Meta::empty(), r(1)).unwrap();
        let d1 = a.take_delta();
        a.join(pid(2), "t", "k2", Meta::empty(), r(2)).unwrap();
        let _lost = a.take_delta();
        a.join(pid(3), "t", "k3", Meta::empty(), r(3)).unwrap();
        let d3 = a.take_delta();
        b.merge_delta(&d1);
        b.merge_delta(&d3);
        c.merge_delta(&d1);
        c.merge_delta(&d3);
        // c relays a removal of one of a's dots through b's pending delta
        a.leave(pid(1), "t", "k1").unwrap();
        b.merge_delta(&a.take_delta());
        assert!(b.delta().parts.contains_key(&rr("a")));
        assert_eq!(b.context()[&rr("a")], 1);
        assert_eq!(b.len(), 1);
        let visible = b.remove_down_replica(&rr("a"));
        assert_eq!(visible.len(), 1);
        assert!(b.is_empty());
        assert!(!b.context().contains_key(&rr("a")));
        assert!(!b.knows(&rr("a")));
        assert!(b.replicas().iter().all(|(r, _)| r != &rr("a")));
        assert!(!b.delta().parts.contains_key(&rr("a")));
        assert!(!b.delta().end.contains_key(&rr("a")));
        b.assert_consistent();
        // stale data about `a` from a third party is now ignored
        let snap = c.extract(&rr("b"), &c.context());
        assert!(b.merge_snapshot(&snap).is_empty());
        assert!(b.is_empty());
        // and permdown of a replica already down reports nothing
        c.replica_down(&rr("a"));
        assert!(c.remove_down_replica(&rr("a")).is_empty());
        assert!(c.is_empty());
    }

    #[test]
    fn remote_update_with_missed_removal_replaces_the_old_version() {
        let (mut a, mut b) = pair();
        a.join(pid(1), "t", "k", Meta::empty(), r(1)).unwrap();
        send(&mut a, &mut b);
        a.leave_join(pid(1), "t", "k", |_| meta(json!({"v": 2})), r(2))
            .unwrap();
        // Only the add part reaches b (the removal dot is missing from what it receives).
        let mut d = a.take_delta();
        d.parts.get_mut(&rr("a")).unwrap().cloud.remove(&1);
        let c = b.merge_delta(&d);
        assert_eq!(c.joins.len(), 1);
        assert_eq!(
            c.leaves.len(),
            1,
            "the replaced version is reported as a leave"
        );
        assert_eq!(b.get_by_topic("t").len(), 1);
        b.assert_consistent();
    }

    #[test]
    fn lists_filter_by_topic_and_key() {
        let mut a = State::new(rr("a"));
        for i in 0..10 {
            a.join(
                pid(i),
                if i % 2 == 0 { "even" } else { "odd" },
                "k",
                Meta::empty(),
                r(i as u16),
            )
            .unwrap();
        }
        assert_eq!(a.get_by_topic("even").len(), 5);
        assert_eq!(a.count_by_topic("odd"), 5);
        assert_eq!(a.get_by_key("odd", "k").len(), 5);
        assert!(a.get_by_key("odd", "x").is_empty());
        assert!(a.get_by_topic("none").is_empty());
        for i in 0..10 {
            a.leave_pid(pid(i));
        }
        assert_eq!(a.topics().count(), 0);
        a.assert_consistent();
    }
}
