//! Who the other replicas are and whether they are alive.
//!
//! A replica is one boot of one node's shard: `(name, vsn)`. The name is stable across restarts; the
//! `vsn` (incarnation) is fresh at every start and grows from one boot to the next, so a restarted node
//! shows up as a *new* replica with the same name, and its previous life can be dropped at once.
//!
//! [`Replicas`] keeps, per remote **name**, the last vsn heard, when it was last heard from and a
//! status. Heartbeats refresh it ([`Replicas::put_heartbeat`]); the periodic [`Replicas::detect_down`]
//! turns silence into `down` (after `down_period`: presences hidden, leaves reported) and into
//! `permdown` (after `permdown_period`: data deleted, record removed). Time is always a parameter:
//! nothing here reads a clock.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The identity of one replica: node name and incarnation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplicaRef {
    /// The node's stable name.
    pub name: Arc<str>,
    /// The incarnation of this boot; greater for later boots of the same name.
    pub vsn: u64,
}

impl ReplicaRef {
    /// A replica ref.
    pub fn new(name: impl Into<Arc<str>>, vsn: u64) -> Self {
        ReplicaRef {
            name: name.into(),
            vsn,
        }
    }
}

impl fmt::Debug for ReplicaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.vsn)
    }
}

/// Liveness of a known remote replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Heard from within `down_period`: its presences are visible.
    Up,
    /// Silent for longer than `down_period`: its presences are hidden but kept.
    Down,
}

/// What is known about one remote node name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The incarnation last heard from.
    pub vsn: u64,
    /// When it was last heard from (milliseconds on the caller's clock).
    pub last_heartbeat_at: u64,
    /// Up or down.
    pub status: Status,
}

/// A status change found by [`Replicas::detect_down`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Was up, now down.
    Down(ReplicaRef),
    /// Silent past `permdown_period`: the record was removed. `was_up` tells whether it went
    /// straight from up (its leaves have not been reported yet).
    Permdown {
        /// The replica removed.
        replica: ReplicaRef,
        /// Whether it was still up.
        was_up: bool,
    },
}

/// The bookkeeping of remote replicas, keyed by node name.
#[derive(Clone, Debug, Default)]
pub struct Replicas {
    records: BTreeMap<Arc<str>, Record>,
}

impl Replicas {
    /// No replica known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a heartbeat from `replica` at `now`: an unknown name becomes `up`; a known one takes
    /// the new vsn, becomes `up` and is touched. Returns the previous record (if any) and the new one,
    /// from which the caller tells a first contact, a heal (down -> up) and a restart (vsn change).
    pub fn put_heartbeat(&mut self, replica: &ReplicaRef, now: u64) -> (Option<Record>, Record) {
        let new = Record {
            vsn: replica.vsn,
            last_heartbeat_at: now,
            status: Status::Up,
        };
        let old = self.records.insert(replica.name.clone(), new.clone());
        (old, new)
    }

    /// Whether no remote replica is known (a node alone, or every peer permdowned).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of a node name.
    pub fn get(&self, name: &str) -> Option<&Record> {
        self.records.get(name)
    }

    /// The record of `replica` if its vsn is the one known.
    pub fn fetch_by_ref(&self, replica: &ReplicaRef) -> Option<&Record> {
        self.records
            .get(&replica.name)
            .filter(|r| r.vsn == replica.vsn)
    }

    /// Forgets a node name (after a graceful permdown).
    pub fn remove(&mut self, name: &str) -> Option<Record> {
        self.records.remove(name)
    }

    /// Every known replica with its record.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaRef, &Record)> {
        self.records
            .iter()
            .map(|(n, r)| (ReplicaRef::new(n.clone(), r.vsn), r))
    }

    /// Applies silence rules at `now`: silent longer than `permdown_period` -> removed; longer than
    /// `down_period` -> down. Returns the transitions in name order.
    pub fn detect_down(
        &mut self,
        now: u64,
        down_period: u64,
        permdown_period: u64,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        self.records.retain(|name, rec| {
            let silence = now.saturating_sub(rec.last_heartbeat_at);
            let replica = ReplicaRef::new(name.clone(), rec.vsn);
            if silence > permdown_period {
                out.push(Transition::Permdown {
                    replica,
                    was_up: rec.status == Status::Up,
                });
                false
            } else {
                if silence > down_period && rec.status == Status::Up {
                    rec.status = Status::Down;
                    out.push(Transition::Down(replica));
                }
                true
            }
        });
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn put_heartbeat_reports_old_and_new() {
        let mut reps = Replicas::new();
        let a1 = ReplicaRef::new("a", 1);
        let (old, new) = reps.put_heartbeat(&a1, 10);
        assert_eq!(old, None);
        assert_eq!(new.status, Status::Up);
        let (old, new) = reps.put_heartbeat(&ReplicaRef::new("a", 2), 20);
        assert_eq!(old.unwrap().vsn, 1);
        assert_eq!(new.vsn, 2);
        assert!(reps.fetch_by_ref(&a1).is_none());
        assert!(reps.fetch_by_ref(&ReplicaRef::new("a", 2)).is_some());
    }

    #[test]
    fn silence_turns_into_down_then_permdown() {
        let mut reps = Replicas::new();
        let a = ReplicaRef::new("a", 1);
        reps.put_heartbeat(&a, 0);
        assert!(reps.detect_down(100, 100, 1000).is_empty());
        assert_eq!(
            reps.detect_down(101, 100, 1000),
            vec![Transition::Down(a.clone())]
        );
        assert!(reps.detect_down(500, 100, 1000).is_empty(), "already down");
        assert_eq!(reps.get("a").unwrap().status, Status::Down);
        // heard again: back up
        let (old, new) = reps.put_heartbeat(&a, 600);
        assert_eq!(old.unwrap().status, Status::Down);
        assert_eq!(new.status, Status::Up);
        assert_eq!(
            reps.detect_down(1601, 100, 1000),
            vec![Transition::Permdown {
                replica: a,
                was_up: true
            }]
        );
        assert!(reps.get("a").is_none());
    }
}
