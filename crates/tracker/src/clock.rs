//! Version vectors: how replicas compare what they have seen.
//!
//! A [`Clock`] maps each replica to the highest clock value of it that has been seen *without gaps*
//! (the contiguous part of a causal context). Replicas gossip their clocks in heartbeats; a replica
//! whose clock is not dominated by ours has something we lack, so we ask it for a transfer.
//!
//! The comparison rules follow Phoenix's `Tracker.Clock` exactly, including its asymmetries:
//! [`dominates`] first refuses when the left clock knows fewer replicas, and [`dominates_or_equal`]
//! compares on the *left* clock's keys (used for delta ranges, where a missing key means 0).

use std::collections::BTreeMap;

use crate::replica::ReplicaRef;

/// A version vector: replica -> highest contiguous clock seen.
pub type Clock = BTreeMap<ReplicaRef, u64>;

fn at(clock: &Clock, r: &ReplicaRef) -> u64 {
    clock.get(r).copied().unwrap_or(0)
}

/// Whether `a` has seen everything `b` has: false if `a` knows fewer replicas, else `a[r] >= b[r]`
/// for every replica `r` of `b` (missing = 0).
pub fn dominates(a: &Clock, b: &Clock) -> bool {
    if a.len() < b.len() {
        return false;
    }
    b.iter().all(|(r, v)| at(a, r) >= *v)
}

/// `a >= b` on `a`'s replicas (missing in `b` = 0). Two empty clocks are equal; an empty `a` only
/// dominates an empty `b`.
pub fn dominates_or_equal(a: &Clock, b: &Clock) -> bool {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => true,
        (true, false) => false,
        _ => a.iter().all(|(r, v)| *v >= at(b, r)),
    }
}

/// Pointwise maximum over the union of replicas.
pub fn upperbound(a: &Clock, b: &Clock) -> Clock {
    let mut out = a.clone();
    for (r, v) in b {
        let e = out.entry(r.clone()).or_insert(*v);
        *e = (*e).max(*v);
    }
    out
}

/// Pointwise minimum over the union of replicas (a replica present on one side keeps its value).
pub fn lowerbound(a: &Clock, b: &Clock) -> Clock {
    let mut out = a.clone();
    for (r, v) in b {
        let e = out.entry(r.clone()).or_insert(*v);
        *e = (*e).min(*v);
    }
    out
}

/// The clocks heard from other replicas since the last transfer decision, minus those that another
/// entry already dominates: the replicas worth asking for a transfer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClockSet {
    entries: Vec<(ReplicaRef, Clock)>,
}

impl ClockSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `clock` heard from `replica`, keeping only clocks that no other entry dominates.
    pub fn append(&mut self, replica: ReplicaRef, clock: Clock) {
        if clock.is_empty() {
            return;
        }
        let big = self
            .entries
            .iter()
            .fold(Clock::new(), |acc, (_, c)| upperbound(&acc, c));
        if dominates(&clock, &big) {
            self.entries = vec![(replica, clock)];
            return;
        }
        if dominates(&big, &clock) {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(|(_, c)| !dominates(&clock, c));
        let dominated_some = self.entries.len() < before;
        if dominated_some || self.entries.iter().any(|(_, c)| !dominates(c, &clock)) {
            self.entries.retain(|(r, _)| *r != replica);
            self.entries.push((replica, clock));
        }
    }

    /// The replicas of the set.
    pub fn replicas(&self) -> impl Iterator<Item = &ReplicaRef> {
        self.entries.iter().map(|(r, _)| r)
    }

    /// Whether no clock is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Forgets every entry of `replica` (it went down or was replaced).
    pub fn remove(&mut self, replica: &ReplicaRef) {
        self.entries.retain(|(r, _)| r != replica);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(name: &str) -> ReplicaRef {
        ReplicaRef::new(name, 1)
    }

    fn clock(pairs: &[(&str, u64)]) -> Clock {
        pairs.iter().map(|(n, v)| (r(n), *v)).collect()
    }

    #[test]
    fn dominates_follows_phoenix() {
        assert!(dominates(
            &clock(&[("a", 2), ("b", 1)]),
            &clock(&[("a", 1)])
        ));
        assert!(!dominates(
            &clock(&[("a", 2)]),
            &clock(&[("a", 1), ("b", 0)])
        ));
        assert!(!dominates(
            &clock(&[("a", 0), ("c", 5)]),
            &clock(&[("a", 1), ("b", 0)])
        ));
        assert!(dominates(&clock(&[]), &clock(&[])));
    }

    #[test]
    fn dominates_or_equal_uses_left_keys() {
        assert!(dominates_or_equal(&clock(&[]), &clock(&[])));
        assert!(!dominates_or_equal(&clock(&[]), &clock(&[("a", 0)])));
        assert!(dominates_or_equal(
            &clock(&[("a", 3)]),
            &clock(&[("a", 3), ("b", 9)])
        ));
        assert!(!dominates_or_equal(
            &clock(&[("a", 2)]),
            &clock(&[("a", 3)])
        ));
    }

    #[test]
    fn bounds_are_pointwise_over_union() {
        let a = clock(&[("a", 1), ("b", 5)]);
        let b = clock(&[("b", 2), ("c", 3)]);
        assert_eq!(upperbound(&a, &b), clock(&[("a", 1), ("b", 5), ("c", 3)]));
        assert_eq!(lowerbound(&a, &b), clock(&[("a", 1), ("b", 2), ("c", 3)]));
    }

    #[test]
    fn clockset_keeps_only_non_dominated_clocks() {
        let mut set = ClockSet::new();
        set.append(r("x"), clock(&[]));
        assert!(set.is_empty());
        set.append(r("a"), clock(&[("a", 1), ("b", 1)]));
        set.append(r("b"), clock(&[("a", 1), ("b", 2)]));
        assert_eq!(set.replicas().cloned().collect::<Vec<_>>(), vec![r("b")]);
        // dominated: ignored
        set.append(r("a"), clock(&[("a", 1), ("b", 1)]));
        assert_eq!(set.replicas().count(), 1);
        // concurrent: both kept
        set.append(r("a"), clock(&[("a", 2), ("b", 1)]));
        let mut names: Vec<_> = set.replicas().map(|r| r.name.to_string()).collect();
        names.sort();
        assert_eq!(names, vec!["a", "b"]);
        set.clear();
        assert!(set.is_empty());
    }
}
