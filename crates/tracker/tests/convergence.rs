//! Property tests of replication: several replicas driven through the pure protocol engine over a
//! simulated network (loss, duplication, reordering, partitions, restarts, permdowns) and a
//! simulated clock. No tokio, no sleeps: every case is deterministic given its seed.
//!
//! Run more cases with `TRACKER_PROPTEST_CASES=100000 cargo test -p phoenix-tracker --test convergence`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;

use tracker::internals::engine::{Engine, EngineConfig, Outbound, Output};
use tracker::internals::presence::{Entry, Meta, PhxRef, Pid, PresenceEntry};
use tracker::internals::replica::ReplicaRef;
use tracker::internals::wire;

const PERIOD: u64 = 10;
const TOPICS: [&str; 3] = ["room:a", "room:b", "room:c"];
const KEYS: [&str; 3] = ["u1", "u2", "u3"];
const PROCS: usize = 3;

fn config() -> EngineConfig {
    EngineConfig {
        down_period: 10 * PERIOD,
        permdown_period: 40 * PERIOD,
        max_silent_periods: 3,
        clock_sample_periods: 2,
        // Tiny generations so that windows restart, fall back and full states all happen.
        max_delta_sizes: vec![3, 12, 40],
    }
}

fn cases() -> u32 {
    std::env::var("TRACKER_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[derive(Debug, Clone)]
enum Op {
    Track {
        node: usize,
        proc_: usize,
        topic: usize,
        key: usize,
        meta: u8,
    },
    Untrack {
        node: usize,
        proc_: usize,
        topic: usize,
        key: usize,
    },
    Update {
        node: usize,
        proc_: usize,
        topic: usize,
        key: usize,
        meta: u8,
    },
    Exit {
        node: usize,
        proc_: usize,
    },
    Tick {
        node: usize,
    },
    TickAll,
    Advance {
        periods: u8,
    },
    Deliver {
        pick: usize,
    },
    DeliverAll,
    Lose {
        pick: usize,
    },
    Duplicate {
        pick: usize,
    },
    Partition {
        a: usize,
        b: usize,
    },
    Heal,
    Kill {
        node: usize,
    },
    Restart {
        node: usize,
    },
    GracefulPermdown {
        node: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0usize..5;
    let p = 0usize..PROCS;
    let t = 0usize..TOPICS.len();
    let k = 0usize..KEYS.len();
    prop_oneof![
        8 => (n.clone(), p.clone(), t.clone(), k.clone(), any::<u8>())
            .prop_map(|(node, proc_, topic, key, meta)| Op::Track { node, proc_, topic, key, meta }),
        3 => (n.clone(), p.clone(), t.clone(), k.clone())
            .prop_map(|(node, proc_, topic, key)| Op::Untrack { node, proc_, topic, key }),
        3 => (n.clone(), p.clone(), t.clone(), k.clone(), any::<u8>())
            .prop_map(|(node, proc_, topic, key, meta)| Op::Update { node, proc_, topic, key, meta }),
        2 => (n.clone(), p.clone()).prop_map(|(node, proc_)| Op::Exit { node, proc_ }),
        6 => n.clone().prop_map(|node| Op::Tick { node }),
        4 => Just(Op::TickAll),
        2 => (1u8..15).prop_map(|periods| Op::Advance { periods }),
        10 => any::<usize>().prop_map(|pick| Op::Deliver { pick }),
        2 => Just(Op::DeliverAll),
        3 => any::<usize>().prop_map(|pick| Op::Lose { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Duplicate { pick }),
        2 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Partition { a, b }),
        1 => Just(Op::Heal),
        1 => n.clone().prop_map(|node| Op::Kill { node }),
        1 => n.clone().prop_map(|node| Op::Restart { node }),
        1 => n.prop_map(|node| Op::GracefulPermdown { node }),
    ]
}

/// Identity of a presence version in a replayed diff: (topic, key, phx_ref) -> meta.
type Seen = BTreeMap<(String, String, PhxRef), String>;

struct Node {
    name: String,
    engine: Option<Engine>,
    procs: [u64; PROCS],
    /// The presences this node owns (what every up replica must end up listing).
    own: BTreeMap<(Pid, usize, usize), PresenceEntry>,
    /// The node's diffs replayed since its boot.
    seen: Seen,
}

struct Sim {
    nodes: Vec<Node>,
    now: u64,
    next_vsn: u64,
    next_pid: u64,
    next_ref: u64,
    in_flight: Vec<(usize, usize, Vec<u8>)>,
    cut: BTreeSet<(usize, usize)>,
}

fn entry_id(e: &Entry) -> (String, String, PhxRef) {
    (
        e.topic.to_string(),
        e.presence.key.to_string(),
        e.presence.phx_ref,
    )
}

impl Sim {
    fn new(n: usize) -> Sim {
        let mut sim = Sim {
            nodes: Vec::new(),
            now: 0,
            next_vsn: 1000,
            next_pid: 1,
            next_ref: 1,
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
        };
        for i in 0..n {
            sim.nodes.push(Node {
                name: format!("n{i}"),
                engine: None,
                procs: [0; PROCS],
                own: BTreeMap::new(),
                seen: Seen::new(),
            });
            sim.boot(i);
        }
        sim
    }

    fn boot(&mut self, i: usize) {
        self.next_vsn += 1;
        let me = ReplicaRef::new(self.nodes[i].name.as_str(), self.next_vsn);
        let node = &mut self.nodes[i];
        node.engine = Some(Engine::new(me, config()));
        node.own.clear();
        node.seen.clear();
        for p in 0..PROCS {
            node.procs[p] = self.next_pid;
            self.next_pid += 1;
        }
    }

    fn pid(&self, i: usize, p: usize) -> Pid {
        let vsn = self.nodes[i]
            .engine
            .as_ref()
            .map_or(0, |e| e.state().replica().vsn);
        Pid {
            node: vsn,
            id: self.nodes[i].procs[p],
        }
    }

    fn new_ref(&mut self) -> PhxRef {
        self.next_ref += 1;
        PhxRef::new(self.next_ref, 0, 0)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn replay(seen: &mut Seen, name: &str, joins: &[Entry], leaves: &[Entry]) {
        for e in joins {
            let prev = seen.insert(entry_id(e), e.presence.meta.as_json().to_string());
            assert!(prev.is_none(), "{name}: duplicate join of {e:?}");
        }
        for e in leaves {
            assert!(
                seen.remove(&entry_id(e)).is_some(),
                "{name}: leave of a presence never joined: {e:?}"
            );
        }
    }

    fn apply(&mut self, from: usize, out: Output) {
        let node = &mut self.nodes[from];
        Self::replay(
            &mut node.seen,
            &node.name,
            &out.changes.joins,
            &out.changes.leaves,
        );
        for m in out.messages {
            match m {
                Outbound::Broadcast(msg) => {
                    let bytes = wire::encode(&msg);
                    for to in 0..self.nodes.len() {
                        if to != from && self.connected(from, to) {
                            self.in_flight.push((from, to, bytes.clone()));
                        }
                    }
                }
                Outbound::Direct { to, message } => {
                    let Some(to) = self.nodes.iter().position(|n| *n.name == *to) else {
                        continue;
                    };
                    if self.connected(from, to) {
                        self.in_flight.push((from, to, wire::encode(&message)));
                    }
                }
            }
        }
    }

    fn tick(&mut self, i: usize) {
        let now = self.now;
        if let Some(e) = self.nodes[i].engine.as_mut() {
            let out = e.tick(now);
            self.apply(i, out);
        }
    }

    fn deliver(&mut self, idx: usize) {
        let (from, to, bytes) = self.in_flight.remove(idx);
        if !self.connected(from, to) {
            return;
        }
        let now = self.now;
        let Some(e) = self.nodes[to].engine.as_mut() else {
            return;
        };
        let msg = wire::decode(&bytes).expect("our own encoding decodes");
        let out = e.handle(msg, now);
        self.apply(to, out);
    }

    fn run(&mut self, op: &Op) {
        let n = self.nodes.len();
        match *op {
            Op::Track {
                node,
                proc_,
                topic,
                key,
                meta,
            } => {
                let i = node % n;
                if self.nodes[i].engine.is_none() {
                    return;
                }
                let pid = self.pid(i, proc_);
                let r = self.new_ref();
                let m = Meta::new(json!({ "m": meta })).expect("object");
                let node = &mut self.nodes[i];
                let e = node.engine.as_mut().expect("alive");
                let res = e.state_mut().join(pid, TOPICS[topic], KEYS[key], m, r);
                let tracked = node.own.contains_key(&(pid, topic, key));
                match res {
                    Ok(entry) => {
                        assert!(!tracked, "track of a tracked triple succeeded");
                        node.own.insert((pid, topic, key), entry.presence.clone());
                        Self::replay(&mut node.seen, &node.name, &[entry], &[]);
                    }
                    Err(_) => assert!(tracked, "track refused a new triple"),
                }
            }
            Op::Untrack {
                node,
                proc_,
                topic,
                key,
            } => {
                let i = node % n;
                if self.nodes[i].engine.is_none() {
                    return;
                }
                let pid = self.pid(i, proc_);
                let node = &mut self.nodes[i];
                let e = node.engine.as_mut().expect("alive");
                let res = e.state_mut().leave(pid, TOPICS[topic], KEYS[key]);
                let had = node.own.remove(&(pid, topic, key));
                assert_eq!(res.is_some(), had.is_some());
                if let Some(entry) = res {
                    Self::replay(&mut node.seen, &node.name, &[], &[entry]);
                }
            }
            Op::Update {
                node,
                proc_,
                topic,
                key,
                meta,
            } => {
                let i = node % n;
                if self.nodes[i].engine.is_none() {
                    return;
                }
                let pid = self.pid(i, proc_);
                let r = self.new_ref();
                let node = &mut self.nodes[i];
                let e = node.engine.as_mut().expect("alive");
                let res = e.state_mut().leave_join(
                    pid,
                    TOPICS[topic],
                    KEYS[key],
                    |_| Meta::new(json!({ "m": meta })).expect("object"),
                    r,
                );
                match res {
                    Ok((new, old)) => {
                        let prev = node
                            .own
                            .insert((pid, topic, key), new.presence.clone())
                            .expect("update of an untracked triple succeeded");
                        assert_eq!(prev, old.presence);
                        assert_eq!(new.presence.phx_ref_prev, Some(old.presence.phx_ref));
                        Self::replay(&mut node.seen, &node.name, &[new], &[old]);
                    }
                    Err(_) => assert!(!node.own.contains_key(&(pid, topic, key))),
                }
            }
            Op::Exit { node, proc_ } => {
                let i = node % n;
                if self.nodes[i].engine.is_none() {
                    return;
                }
                let pid = self.pid(i, proc_);
                let node = &mut self.nodes[i];
                let e = node.engine.as_mut().expect("alive");
                let gone = e.state_mut().leave_pid(pid);
                let before = node.own.len();
                node.own.retain(|(p, _, _), _| *p != pid);
                assert_eq!(gone.len(), before - node.own.len());
                Self::replay(&mut node.seen, &node.name, &[], &gone);
                node.procs[proc_] = self.next_pid;
                self.next_pid += 1;
            }
            Op::Tick { node } => self.tick(node % n),
            Op::TickAll => {
                self.now += PERIOD;
                for i in 0..n {
                    self.tick(i);
                }
            }
            Op::Advance { periods } => self.now += periods as u64 * PERIOD,
            Op::Deliver { pick } => {
                if !self.in_flight.is_empty() {
                    let idx = pick % self.in_flight.len();
                    self.deliver(idx);
                }
            }
            Op::DeliverAll => self.deliver_all(),
            Op::Lose { pick } => {
                if !self.in_flight.is_empty() {
                    let idx = pick % self.in_flight.len();
                    self.in_flight.remove(idx);
                }
            }
            Op::Duplicate { pick } => {
                if !self.in_flight.is_empty() {
                    let idx = pick % self.in_flight.len();
                    let copy = self.in_flight[idx].clone();
                    self.in_flight.push(copy);
                }
            }
            Op::Partition { a, b } => {
                let (a, b) = (a % n, b % n);
                if a != b {
                    self.cut.insert((a.min(b), a.max(b)));
                }
            }
            Op::Heal => self.cut.clear(),
            Op::Kill { node } => self.nodes[node % n].engine = None,
            Op::Restart { node } => self.boot(node % n),
            Op::GracefulPermdown { node } => {
                let i = node % n;
                if let Some(e) = self.nodes[i].engine.take() {
                    let msg = e.graceful_permdown();
                    let out = Output {
                        messages: vec![Outbound::Broadcast(msg)],
                        ..Output::default()
                    };
                    self.apply(i, out);
                }
            }
        }
    }

    fn deliver_all(&mut self) {
        let mut budget = 100_000;
        while !self.in_flight.is_empty() {
            self.deliver(0);
            budget -= 1;
            assert!(budget > 0, "message storm");
        }
    }

    /// Heals the network and lets every live node tick until well past `permdown_period`.
    fn quiesce(&mut self) {
        self.cut.clear();
        self.deliver_all();
        let rounds = config().permdown_period / PERIOD + 10;
        for _ in 0..rounds {
            self.now += PERIOD;
            for i in 0..self.nodes.len() {
                self.tick(i);
            }
            self.deliver_all();
        }
    }

    fn alive(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.engine.is_some())
    }

    /// What every up replica must list for `topic`: the presences owned by live nodes.
    fn model(&self, topic: usize) -> Vec<PresenceEntry> {
        let mut v: Vec<PresenceEntry> = self
            .alive()
            .flat_map(|n| n.own.iter())
            .filter(|((_, t, _), _)| *t == topic)
            .map(|(_, p)| p.clone())
            .collect();
        v.sort_by_key(|p| p.phx_ref);
        v
    }

    fn list(node: &Node, topic: usize) -> Vec<PresenceEntry> {
        let mut v = node
            .engine
            .as_ref()
            .expect("alive")
            .state()
            .get_by_topic(TOPICS[topic]);
        v.sort_by_key(|p| p.phx_ref);
        v
    }
}

fn run_case(n: usize, ops: &[Op]) -> Sim {
    let mut sim = Sim::new(n);
    for op in ops {
        sim.run(op);
        for node in sim.alive() {
            node.engine
                .as_ref()
                .expect("alive")
                .state()
                .assert_consistent();
        }
    }
    sim.quiesce();
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// After faults stop and anti-entropy runs, every live replica lists, for every topic, exactly
    /// the presences owned by live nodes: nothing missing, no ghost of a dead or restarted node.
    #[test]
    fn lists_converge_after_heal(n in 3usize..=5, ops in prop::collection::vec(op(), 1..80)) {
        let sim = run_case(n, &ops);
        for (t, topic) in TOPICS.iter().enumerate() {
            let model = sim.model(t);
            for node in sim.alive() {
                prop_assert_eq!(&Sim::list(node, t), &model, "node {} topic {}", node.name, topic);
            }
        }
    }

    /// The joins and leaves each replica reported since its boot, replayed in order, never join a
    /// presence twice, never leave one that was not joined, and end equal to its final lists.
    #[test]
    fn diffs_replay_to_final_lists(n in 3usize..=5, ops in prop::collection::vec(op(), 1..80)) {
        let sim = run_case(n, &ops);
        for node in sim.alive() {
            let mut listed = Seen::new();
            for (t, topic) in TOPICS.iter().enumerate() {
                for p in Sim::list(node, t) {
                    listed.insert((topic.to_string(), p.key.to_string(), p.phx_ref), p.meta.as_json().to_string());
                }
            }
            prop_assert_eq!(&node.seen, &listed, "node {}", node.name);
        }
    }

    /// Once every peer of a replica is gone for good (killed and silent past `permdown_period`, or
    /// gracefully permdowned), nothing of theirs is left in its state: no elements, no context
    /// entries, no replica records (the fix of Phoenix's quirk Q2).
    #[test]
    fn permdowned_replicas_leave_no_trace(n in 3usize..=5, ops in prop::collection::vec(op(), 1..60)) {
        let mut sim = run_case(n, &ops);
        // Kill all but the first live node and let time pass.
        let survivor = sim.nodes.iter().position(|n| n.engine.is_some());
        let Some(s) = survivor else { return Ok(()); };
        for i in 0..sim.nodes.len() {
            if i != s { sim.nodes[i].engine = None; }
        }
        sim.quiesce();
        let node = &sim.nodes[s];
        let e = node.engine.as_ref().expect("alive");
        let me = e.state().replica().clone();
        prop_assert_eq!(e.state().replicas(), vec![(me.clone(), true)]);
        prop_assert_eq!(e.replicas().iter().count(), 0);
        prop_assert_eq!(e.state().len(), node.own.len());
        for w in e.generations().windows() {
            prop_assert!(w.parts.keys().all(|r| *r == me));
        }
    }
}

/// A hand-written scenario kept as a regression test: a node restarts while a partition hides the
/// restart from one peer, which must still drop the old incarnation's presences once healed.
#[test]
fn restart_behind_a_partition_leaves_no_ghost() {
    let ops = vec![
        Op::Track {
            node: 0,
            proc_: 0,
            topic: 0,
            key: 0,
            meta: 1,
        },
        Op::TickAll,
        Op::DeliverAll,
        Op::TickAll,
        Op::TickAll,
        Op::DeliverAll,
        Op::Partition { a: 0, b: 2 },
        Op::Restart { node: 0 },
        Op::Track {
            node: 0,
            proc_: 1,
            topic: 0,
            key: 1,
            meta: 2,
        },
        Op::TickAll,
        Op::DeliverAll,
    ];
    let sim = run_case(3, &ops);
    let model = sim.model(0);
    assert_eq!(model.len(), 1);
    for node in sim.alive() {
        assert_eq!(Sim::list(node, 0), model, "{}", node.name);
    }
}
