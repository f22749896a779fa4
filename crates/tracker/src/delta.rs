//! Deltas and delta generations: what replicas send each other instead of their whole state.
//!
//! A [`Delta`] is a fragment of a replica's state: per replica, a *cloud* of dots it covers and the
//! *values* (presences) of those dots that are still alive. A dot in the cloud without a value is a
//! removal ("I have seen that presence and it is gone"). Its *range* `(start, end]` says which dots
//! of which replicas it covers completely: `end[r]` is the last dot of `r` it contains and `start[r]`
//! the last one before it. Two deltas can be merged only if their ranges touch or overlap
//! ([`Delta::merge`]), so a merged delta never hides a gap.
//!
//! Every delta a shard sends or receives is also folded into a few *generations* ([`Generations`]),
//! windows of growing size capped by `max_delta_sizes` (default 100, 1 000, 10 000 dots+values). When
//! a replica that is behind asks for a transfer, the smallest generation that starts at or before
//! what it has and reaches beyond it is sent ([`Generations::extract`]); when none fits the full state
//! is sent instead. That keeps catch-up after a short loss small, and makes full transfers rare.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::clock::{self, Clock};
use crate::presence::Entry;
use crate::replica::ReplicaRef;

/// The dots of one replica carried by a delta or a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Part {
    /// Dots covered (added or removed), beyond the sender's contiguous context for snapshots.
    pub cloud: BTreeSet<u64>,
    /// Presences alive, by dot.
    pub values: BTreeMap<u64, Entry>,
}

impl Part {
    fn is_empty(&self) -> bool {
        self.cloud.is_empty() && self.values.is_empty()
    }
}

/// Two deltas whose ranges leave a gap between them cannot be merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("delta ranges are not contiguous")]
pub struct NotContiguous;

/// A delta-state fragment: the changes of a range of dots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Last dot per replica *before* the range.
    pub start: Clock,
    /// Last dot per replica *in* the range.
    pub end: Clock,
    /// Dots and values per replica.
    pub parts: BTreeMap<ReplicaRef, Part>,
}

impl Delta {
    /// An empty delta of `replica` positioned at its clock `at`.
    pub fn empty_at(replica: &ReplicaRef, at: u64) -> Delta {
        let c: Clock = [(replica.clone(), at)].into_iter().collect();
        Delta {
            start: c.clone(),
            end: c,
            parts: BTreeMap::new(),
        }
    }

    /// Number of values plus number of dots in clouds (what `max_delta_sizes` caps).
    pub fn size(&self) -> usize {
        self.parts
            .values()
            .map(|p| p.cloud.len() + p.values.len())
            .sum()
    }

    /// Whether it covers no dot at all.
    pub fn is_empty(&self) -> bool {
        self.parts.values().all(|p| p.cloud.is_empty())
    }

    /// Whether `a` and `b` may be merged: each range's end reaches the other's start
    /// (`b.end >= a.start` and `a.end >= b.start`, compared on the left side's replicas). This is
    /// Phoenix's rule without the redundant second half of its test (quirk Q5).
    pub fn contiguous(a: &Delta, b: &Delta) -> bool {
        clock::dominates_or_equal(&b.end, &a.start) && clock::dominates_or_equal(&a.end, &b.start)
    }

    /// Merges two deltas whose ranges touch (see [`Delta::contiguous`]). Clouds are united; a value
    /// survives unless the other side covers its dot without holding it (it was removed there).
    pub fn merge(a: &Delta, b: &Delta) -> Result<Delta, NotContiguous> {
        if !Delta::contiguous(a, b) {
            return Err(NotContiguous);
        }
        let mut out = a.clone();
        out.merge_in_place(b);
        Ok(out)
    }

    /// [`Delta::merge`] into `self`, without the contiguity check; costs O(|b| log |self|).
    fn merge_in_place(&mut self, b: &Delta) {
        for (r, bp) in &b.parts {
            let ap = self.parts.entry(r.clone()).or_default();
            for d in &bp.cloud {
                if !bp.values.contains_key(d) {
                    ap.values.remove(d);
                }
            }
            for (d, v) in &bp.values {
                if !ap.values.contains_key(d) && !ap.cloud.contains(d) {
                    ap.values.insert(*d, v.clone());
                }
            }
            ap.cloud.extend(bp.cloud.iter().copied());
            if ap.is_empty() {
                self.parts.remove(r);
            }
        }
        self.start = clock::lowerbound(&self.start, &b.start);
        self.end = clock::upperbound(&self.end, &b.end);
    }

    /// The size `merge(self, b)` would have, computed without building it.
    fn merged_size(&self, b: &Delta) -> usize {
        let empty = Part::default();
        let mut size = self.size();
        for (r, bp) in &b.parts {
            let ap = self.parts.get(r).unwrap_or(&empty);
            for d in &bp.cloud {
                if !ap.cloud.contains(d) {
                    size += 1;
                }
                if !bp.values.contains_key(d) && ap.values.contains_key(d) {
                    size -= 1;
                }
            }
            for d in bp.values.keys() {
                if !ap.values.contains_key(d) && !ap.cloud.contains(d) {
                    size += 1;
                }
            }
        }
        size
    }

    /// The part of this delta a requester can use: replicas it knows (`known`'s keys), never its own
    /// (it has its own dots already; fix of Phoenix's quirk Q1).
    pub fn restrict(&self, requester: &ReplicaRef, known: &Clock) -> Delta {
        let keep = |r: &ReplicaRef| r != requester && known.contains_key(r);
        Delta {
            start: filter_clock(&self.start, keep),
            end: filter_clock(&self.end, keep),
            parts: self
                .parts
                .iter()
                .filter(|(r, _)| keep(r))
                .map(|(r, p)| (r.clone(), p.clone()))
                .collect(),
        }
    }

    /// Keeps only the replicas for which `keep` holds (range and parts).
    pub fn retain_replicas(&mut self, keep: impl Fn(&ReplicaRef) -> bool) {
        self.start.retain(|r, _| keep(r));
        self.end.retain(|r, _| keep(r));
        self.parts.retain(|r, _| keep(r));
    }

    /// Removes every trace of `replica` (it was permanently removed).
    pub fn strip(&mut self, replica: &ReplicaRef) {
        self.start.remove(replica);
        self.end.remove(replica);
        self.parts.remove(replica);
    }
}

fn filter_clock(c: &Clock, keep: impl Fn(&ReplicaRef) -> bool) -> Clock {
    c.iter()
        .filter(|(r, _)| keep(r))
        .map(|(r, v)| (r.clone(), *v))
        .collect()
}

/// Windows of recent deltas, from small to large, used to answer transfer requests cheaply.
#[derive(Clone, Debug)]
pub struct Generations {
    caps: Vec<usize>,
    gens: Vec<Arc<Delta>>,
}

impl Generations {
    /// Generations capped by `max_delta_sizes` (one generation per cap, ascending).
    pub fn new(max_delta_sizes: &[usize]) -> Self {
        Generations {
            caps: max_delta_sizes.to_vec(),
            gens: Vec::new(),
        }
    }

    /// The current windows (empty before the first push or after a reset).
    pub fn windows(&self) -> impl Iterator<Item = &Delta> {
        self.gens.iter().map(|g| &**g)
    }

    /// Folds `delta` into every generation. `origin` is an empty delta of the local replica at its
    /// current clock, used to (re)start the windows.
    ///
    /// For generation `i`: if `delta` is contiguous with it and the result fits its cap, it becomes
    /// the result; if the result is too big, the window restarts from the previous generation's new
    /// value (for the first, `delta` alone); if not contiguous it is left unchanged. Windows share
    /// their memory when equal, and a merge costs O(|delta| log |window|).
    pub fn push(&mut self, origin: &Delta, delta: &Delta) {
        if self.gens.is_empty() {
            // Every window starts as the same (shared) empty delta.
            self.gens = std::iter::repeat_n(Arc::new(origin.clone()), self.caps.len()).collect();
        }
        let alone = Arc::new(delta.clone());
        let mut prev = alone.clone();
        let delta_size = delta.size();
        for (gen_, cap) in self.gens.iter_mut().zip(&self.caps) {
            if Delta::contiguous(gen_, delta) {
                let fits = delta_size <= *cap && gen_.merged_size(delta) <= *cap;
                if fits {
                    Arc::make_mut(gen_).merge_in_place(delta);
                } else {
                    *gen_ = prev.clone();
                }
            }
            prev = gen_.clone();
        }
    }

    /// Forgets every window (after a full-state transfer replaced our knowledge wholesale).
    pub fn reset(&mut self) {
        self.gens.clear();
    }

    /// Removes a permanently removed replica from every window.
    pub fn strip(&mut self, replica: &ReplicaRef) {
        for g in &mut self.gens {
            if g.parts.contains_key(replica)
                || g.start.contains_key(replica)
                || g.end.contains_key(replica)
            {
                Arc::make_mut(g).strip(replica);
            }
        }
    }

    /// The smallest window that can bring `requester` (whose clock is `known`) up to date: its range,
    /// on the requester's replicas, is non-empty, starts at or before `known` and ends beyond it.
    /// `None` means: send the full state.
    pub fn extract(&self, requester: &ReplicaRef, known: &Clock) -> Option<Delta> {
        for g in &self.gens {
            let keep = |r: &ReplicaRef| r != requester && known.contains_key(r);
            let start = filter_clock(&g.start, keep);
            let end = filter_clock(&g.end, keep);
            if end.is_empty() {
                continue;
            }
            let known_here = filter_clock(known, keep);
            if clock::dominates_or_equal(&known_here, &start)
                && !clock::dominates(&known_here, &end)
            {
                return Some(g.restrict(requester, known));
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::presence::{Meta, PhxRef, Pid, PresenceEntry};

    fn a() -> ReplicaRef {
        ReplicaRef::new("a", 1)
    }

    fn entry(n: u64) -> Entry {
        Entry {
            topic: "t".into(),
            pid: Pid { node: 1, id: n },
            presence: PresenceEntry::new(
                n.to_string().into(),
                Meta::empty(),
                PhxRef::new(n, 0, 0),
                None,
            ),
        }
    }

    /// A delta of `a` covering dots (start, end], with values for `alive`.
    fn delta(start: u64, end: u64, alive: &[u64]) -> Delta {
        let mut d = Delta::empty_at(&a(), start);
        d.end.insert(a(), end);
        let part = d.parts.entry(a()).or_default();
        part.cloud.extend(start + 1..=end);
        for n in alive {
            part.values.insert(*n, entry(*n));
        }
        d
    }

    #[test]
    fn merge_refuses_a_gap() {
        assert_eq!(
            Delta::merge(&delta(0, 2, &[1]), &delta(3, 4, &[4])),
            Err(NotContiguous)
        );
        assert_eq!(
            Delta::merge(&delta(3, 4, &[4]), &delta(0, 2, &[1])),
            Err(NotContiguous)
        );
    }

    #[test]
    fn merge_unites_contiguous_ranges_and_applies_removals() {
        // 1 and 2 added; then 1 removed by dot 3, 4 added.
        let m = Delta::merge(&delta(0, 2, &[1, 2]), &delta(2, 4, &[4])).unwrap();
        assert_eq!(m.start[&a()], 0);
        assert_eq!(m.end[&a()], 4);
        let p = &m.parts[&a()];
        assert_eq!(p.cloud, (1..=4).collect());
        // 1 and 2 are not covered by the second delta's cloud: kept.
        assert_eq!(p.values.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
        // A later delta whose cloud covers 2 without a value removes it.
        let mut rm = delta(4, 5, &[]);
        rm.parts.get_mut(&a()).unwrap().cloud.insert(2);
        let m2 = Delta::merge(&m, &rm).unwrap();
        assert_eq!(
            m2.parts[&a()].values.keys().copied().collect::<Vec<_>>(),
            vec![1, 4]
        );
        assert_eq!(m2.size(), 5 + 2);
        assert_eq!(m.merged_size(&rm), m2.size());
        assert_eq!(
            delta(0, 2, &[1, 2]).merged_size(&delta(2, 4, &[4])),
            m.size()
        );
    }

    #[test]
    fn generations_restart_when_full_and_skip_gaps() {
        let origin = Delta::empty_at(&a(), 0);
        let mut g = Generations::new(&[2, 6]);
        g.push(&origin, &delta(0, 1, &[1]));
        let w = |g: &Generations, i: usize| g.windows().nth(i).unwrap().clone();
        assert_eq!(w(&g, 0).size(), 2);
        g.push(&origin, &delta(1, 2, &[2]));
        // gen0 would hold 4 > 2: restarts with the new delta alone; gen1 holds both.
        assert_eq!(w(&g, 0).start[&a()], 1);
        assert_eq!(w(&g, 1).start[&a()], 0);
        assert_eq!(w(&g, 1).size(), 4);
        // a gap (2 -> 5 missing 3..5): nothing changes
        let before: Vec<Delta> = g.windows().cloned().collect();
        g.push(&origin, &delta(4, 5, &[5]));
        assert_eq!(g.windows().cloned().collect::<Vec<_>>(), before);
    }

    #[test]
    fn extract_picks_smallest_window_that_reaches_the_requester() {
        let origin = Delta::empty_at(&a(), 0);
        let mut g = Generations::new(&[2, 100]);
        for n in 0..5 {
            g.push(&origin, &delta(n, n + 1, &[n + 1]));
        }
        let b = ReplicaRef::new("b", 1);
        let known = |n: u64| -> Clock { [(a(), n), (b.clone(), 0)].into_iter().collect() };
        // requester at 4: the small window (4, 5] fits
        assert_eq!(g.extract(&b, &known(4)).unwrap().start[&a()], 4);
        // requester at 1: only the large window (0, 5] starts early enough
        assert_eq!(g.extract(&b, &known(1)).unwrap().start[&a()], 0);
        // requester up to date: nothing to send from windows
        assert!(g.extract(&b, &known(5)).is_none());
        // requester that does not know `a`: nothing it could use
        let only_b: Clock = [(b.clone(), 0)].into_iter().collect();
        assert!(g.extract(&b, &only_b).is_none());
        // the requester's own replica is never sent back (quirk Q1)
        let d = g.extract(&a(), &known(1));
        assert!(d.is_none());
    }

    #[test]
    fn strip_removes_a_replica_everywhere() {
        let origin = Delta::empty_at(&a(), 0);
        let mut g = Generations::new(&[100]);
        g.push(&origin, &delta(0, 1, &[1]));
        g.strip(&a());
        let w = g.windows().next().unwrap();
        assert!(w.parts.is_empty());
        assert!(w.start.is_empty());
        assert!(w.end.is_empty());
    }
}
