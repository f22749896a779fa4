//! Running trackers on an in-process cluster (`pubsub::memory::Network`) with short periods.
//!
//! Every wait is on an event (a diff or a membership change delivered through a channel) with a
//! generous timeout that only guards against a hang; nothing sleeps and hopes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use pubsub::memory::Network;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use tracker::{
    Diff, Meta, Options, PresenceEntry, ReplicaEvent, ReplicaRef, TrackError, Tracker, UpdateError,
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Short periods, for the tests of failure detection.
fn options() -> Options {
    Options {
        broadcast_period: Duration::from_millis(20),
        down_period: Some(Duration::from_millis(100)),
        permdown_period: Duration::from_millis(300),
        ..Options::default()
    }
}

/// Fast ticks but a long down period: tests that are not about failure detection must not see a
/// peer flap down because a loaded machine paused a task for 100 ms.
fn steady() -> Options {
    Options {
        down_period: Some(Duration::from_secs(30)),
        permdown_period: Duration::from_secs(60),
        ..options()
    }
}

fn meta(v: serde_json::Value) -> Meta {
    Meta::new(v).unwrap()
}

struct Node {
    tracker: Tracker,
    diffs: mpsc::UnboundedReceiver<Diff>,
    events: broadcast::Receiver<ReplicaEvent>,
    log: Vec<Diff>,
}

fn start_with(net: &Network, name: &str, options: Options) -> Node {
    let (tx, diffs) = mpsc::unbounded_channel();
    let tracker = Tracker::start(
        net.node(name),
        "presence",
        options,
        Arc::new(move |d: Diff| {
            let _ = tx.send(d);
        }),
    )
    .unwrap();
    let events = tracker.replica_events();
    Node {
        tracker,
        diffs,
        events,
        log: Vec::new(),
    }
}

fn start(net: &Network, name: &str) -> Node {
    start_with(net, name, steady())
}

fn keys(list: &[PresenceEntry]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|p| p.key.to_string()).collect();
    v.sort();
    v
}

impl Node {
    /// Waits, diff by diff, until `cond` holds.
    async fn until(&mut self, what: &str, cond: impl Fn(&Tracker) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond(&self.tracker) {
            tokio::select! {
                d = self.diffs.recv() => self.log.push(d.expect("dispatcher alive")),
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }

    /// Waits until `topic` lists exactly `expected` keys.
    async fn until_keys(&mut self, topic: &str, expected: &[&str]) {
        let what = format!("{topic} to list {expected:?}");
        self.until(&what, |t| keys(&t.list(topic)) == expected)
            .await;
    }

    /// Waits for the next diff.
    async fn next_diff(&mut self) -> Diff {
        let d = tokio::time::timeout(TIMEOUT, self.diffs.recv())
            .await
            .expect("timed out waiting for a diff")
            .expect("dispatcher alive");
        self.log.push(d.clone());
        d
    }

    /// Waits for a membership event matching `pred`; returns it.
    async fn until_event(
        &mut self,
        what: &str,
        pred: impl Fn(&ReplicaEvent) -> bool,
    ) -> ReplicaEvent {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            tokio::select! {
                e = self.events.recv() => {
                    let e = e.expect("event stream open");
                    if pred(&e) {
                        return e;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

fn is_name(r: &ReplicaRef, name: &str) -> bool {
    &*r.name == name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_converge() {
    let net = Network::new();
    let mut a = start(&net, "a");
    let mut b = start(&net, "b");
    let pa = a.tracker.process();
    let pb = b.tracker.process();
    a.tracker
        .track(&pa, "room:1", "alice", meta(json!({"n": 1})))
        .unwrap();
    b.tracker
        .track(&pb, "room:1", "bob", meta(json!({"n": 2})))
        .unwrap();
    a.until_keys("room:1", &["alice", "bob"]).await;
    b.until_keys("room:1", &["alice", "bob"]).await;
    let bob = a.tracker.get_by_key("room:1", "bob");
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].0, pb.pid());
    assert_eq!(bob[0].1.meta, meta(json!({"n": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_operations_report_at_once_and_check_their_preconditions() {
    let net = Network::new();
    let mut a = start(&net, "a");
    let p = a.tracker.process();
    let r1 = a.tracker.track(&p, "room:1", "k", meta(json!({}))).unwrap();
    let d = a.next_diff().await;
    assert_eq!(d.topics["room:1"].joins[0].phx_ref, r1);
    assert_eq!(
        a.tracker.track(&p, "room:1", "k", Meta::empty()),
        Err(TrackError::AlreadyTracked {
            topic: "room:1".into(),
            key: "k".into()
        })
    );
    assert_eq!(
        a.tracker.update(&p, "room:1", "nobody", Meta::empty()),
        Err(UpdateError::NoPresence {
            topic: "room:1".into(),
            key: "nobody".into()
        })
    );
    a.tracker.untrack(&p, "room:1", "k");
    let d = a.next_diff().await;
    assert_eq!(d.topics["room:1"].leaves[0].phx_ref, r1);
    assert!(a.tracker.list("room:1").is_empty());
    // untrack_all removes every topic of the process
    a.tracker.track(&p, "room:1", "k", Meta::empty()).unwrap();
    a.tracker.track(&p, "room:2", "k", Meta::empty()).unwrap();
    a.tracker.untrack_all(&p);
    assert_eq!(a.tracker.count("room:1") + a.tracker.count("room:2"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metas_over_the_limit_are_refused_and_change_nothing() {
    let net = Network::new();
    let limit = 64;
    let mut a = start_with(
        &net,
        "a",
        Options {
            max_meta_bytes: limit,
            ..steady()
        },
    );
    let p = a.tracker.process();
    let big = meta(json!({"page": "x".repeat(limit)}));
    let size = big.as_json().len();
    assert_eq!(
        a.tracker.track(&p, "room:1", "k", big.clone()),
        Err(TrackError::MetaTooLarge { size, max: limit })
    );
    assert_eq!(a.tracker.count("room:1"), 0);
    // Exactly at the limit is accepted.
    let fits = meta(json!({"page": "x".repeat(limit - 11)}));
    assert_eq!(fits.as_json().len(), limit);
    let r = a.tracker.track(&p, "room:1", "k", fits.clone()).unwrap();
    assert_eq!(a.next_diff().await.topics["room:1"].joins[0].phx_ref, r);
    // An update over the limit keeps the presence as it was and reports nothing.
    assert_eq!(
        a.tracker.update_with(&p, "room:1", "k", |_| big.clone()),
        Err(UpdateError::MetaTooLarge { size, max: limit })
    );
    let now = a.tracker.get_by_key("room:1", "k");
    assert_eq!((now[0].1.phx_ref, &now[0].1.meta), (r, &fits));
    a.tracker.untrack(&p, "room:1", "k");
    let d = a.next_diff().await;
    assert!(
        d.topics["room:1"].joins.is_empty(),
        "no update was reported: {d:?}"
    );
    // The default is 4 KiB.
    assert_eq!(
        Options::default().max_meta_bytes,
        tracker::DEFAULT_MAX_META_BYTES
    );
    assert_eq!(tracker::DEFAULT_MAX_META_BYTES, 4096);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_and_dropped_processes_leave_everywhere() {
    let net = Network::new();
    let mut nodes = vec![start(&net, "a"), start(&net, "b"), start(&net, "c")];
    let mut procs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let p = n.tracker.process();
        n.tracker
            .track(&p, "lobby", &format!("u{i}"), Meta::empty())
            .unwrap();
        n.tracker
            .track(&p, "other", &format!("u{i}"), Meta::empty())
            .unwrap();
        procs.push(p);
    }
    for n in &mut nodes {
        n.until_keys("lobby", &["u0", "u1", "u2"]).await;
        n.until_keys("other", &["u0", "u1", "u2"]).await;
    }
    // The process on b ends (its handle is dropped): leaves on b at once, then everywhere.
    drop(procs.remove(1));
    for n in &mut nodes {
        n.until_keys("lobby", &["u0", "u2"]).await;
        n.until_keys("other", &["u0", "u2"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_update_is_one_diff_with_a_join_and_a_leave_carrying_phx_ref_prev() {
    let net = Network::new();
    let a = start(&net, "a");
    let mut b = start(&net, "b");
    let p = a.tracker.process();
    let r1 = a
        .tracker
        .track(&p, "room", "alice", meta(json!({"status": "online"})))
        .unwrap();
    b.until_keys("room", &["alice"]).await;
    let r2 = a
        .tracker
        .update_with(&p, "room", "alice", |old| {
            let mut v = old.to_value();
            v["status"] = json!("away");
            meta(v)
        })
        .unwrap();
    let d = loop {
        let d = b.next_diff().await;
        if d.topics.get("room").is_some_and(|t| !t.leaves.is_empty()) {
            break d;
        }
    };
    let room = &d.topics["room"];
    assert_eq!(room.joins.len(), 1);
    assert_eq!(room.leaves.len(), 1);
    assert_eq!(room.joins[0].phx_ref, r2);
    assert_eq!(room.joins[0].phx_ref_prev, Some(r1));
    assert_eq!(room.joins[0].meta, meta(json!({"status": "away"})));
    assert_eq!(room.leaves[0].phx_ref, r1);
    assert_eq!(room.leaves[0].meta, meta(json!({"status": "online"})));
    let rendered: serde_json::Value = serde_json::from_str(&room.joins[0].meta_json()).unwrap();
    assert_eq!(rendered["phx_ref_prev"], json!(r1.to_string()));
    assert_eq!(b.tracker.list("room").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_goes_down_then_permdown_and_comes_back_after_the_heal() {
    let net = Network::new();
    let mut a = start_with(&net, "a", options());
    let b = start_with(&net, "b", options());
    let p = b.tracker.process();
    b.tracker.track(&p, "room", "bob", Meta::empty()).unwrap();
    a.until_keys("room", &["bob"]).await;
    net.partition(&["a"], &["b"]);
    a.until_event(
        "b down",
        |e| matches!(e, ReplicaEvent::Down(r) if is_name(r, "b")),
    )
    .await;
    a.until_keys("room", &[]).await;
    assert!(
        a.tracker
            .replicas()
            .iter()
            .any(|r| is_name(&r.replica, "b") && r.status == tracker::Status::Down)
    );
    a.until_event(
        "b permdown",
        |e| matches!(e, ReplicaEvent::Permdown(r) if is_name(r, "b")),
    )
    .await;
    assert!(a.tracker.replicas().is_empty(), "permdown forgets the node");
    net.heal();
    a.until_event(
        "b up again",
        |e| matches!(e, ReplicaEvent::Up(r) if is_name(r, "b")),
    )
    .await;
    a.until_keys("room", &["bob"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_replaces_its_old_incarnation_without_ghosts() {
    let net = Network::new();
    // A long down period: the old incarnation's presences must go because of the new vsn,
    // not because of silence.
    let slow = steady();
    let mut a = start_with(&net, "a", slow.clone());
    let b = start_with(&net, "b", slow.clone());
    let p = b.tracker.process();
    b.tracker.track(&p, "room", "old", Meta::empty()).unwrap();
    a.until_keys("room", &["old"]).await;
    let old_vsn = b.tracker.replica().vsn;
    std::mem::forget(p); // the process never says goodbye: the node dies
    drop(b);
    let b2 = start_with(&net, "b", slow);
    assert!(b2.tracker.replica().vsn > old_vsn);
    let p2 = b2.tracker.process();
    b2.tracker.track(&p2, "room", "new", Meta::empty()).unwrap();
    a.until_event(
        "old b permdown",
        |e| matches!(e, ReplicaEvent::Permdown(r) if is_name(r, "b") && r.vsn == old_vsn),
    )
    .await;
    a.until_keys("room", &["new"]).await;
    // Every leave a reported matches a join it reported: replay the log.
    while let Ok(d) = a.diffs.try_recv() {
        a.log.push(d);
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in &a.log {
        for t in d.topics.values() {
            for j in &t.joins {
                assert!(seen.insert(j.phx_ref), "duplicate join");
            }
            for l in &t.leaves {
                assert!(seen.remove(&l.phx_ref), "leave without join");
            }
        }
    }
    assert_eq!(seen.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_permdown_drops_presences_at_once() {
    let net = Network::new();
    let slow = steady();
    let mut a = start_with(&net, "a", slow.clone());
    let b = start_with(&net, "b", slow);
    let p = b.tracker.process();
    b.tracker.track(&p, "room", "bob", Meta::empty()).unwrap();
    a.until_keys("room", &["bob"]).await;
    b.tracker.graceful_permdown().await;
    a.until_event(
        "b permdown",
        |e| matches!(e, ReplicaEvent::Permdown(r) if is_name(r, "b")),
    )
    .await;
    a.until_keys("room", &[]).await;
    assert!(a.tracker.replicas().is_empty());
    assert_eq!(
        b.tracker.track(&p, "room", "again", Meta::empty()),
        Err(TrackError::Stopped)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_shards_replicates_every_topic() {
    let net = Network::new();
    let pooled = Options {
        pool_size: 4,
        ..steady()
    };
    let mut a = start_with(&net, "a", pooled.clone());
    let b = start_with(&net, "b", pooled);
    let p = b.tracker.process();
    for t in 0..20 {
        b.tracker
            .track(&p, &format!("topic:{t}"), "k", Meta::empty())
            .unwrap();
    }
    for t in 0..20 {
        a.until_keys(&format!("topic:{t}"), &["k"]).await;
    }
    drop(p);
    for t in 0..20 {
        a.until_keys(&format!("topic:{t}"), &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_messages_are_repaired_by_transfers() {
    let net = Network::new();
    let mut a = start(&net, "a");
    let b = start(&net, "b");
    let p = b.tracker.process();
    b.tracker.track(&p, "room", "first", Meta::empty()).unwrap();
    a.until_keys("room", &["first"]).await;
    // Frames are lost while the presences are tracked and while the nodes catch up.
    net.set_drop_rate(0.3);
    let procs: Vec<_> = (0..30)
        .map(|i| {
            let q = b.tracker.process();
            b.tracker
                .track(&q, "room", &format!("k{i:02}"), Meta::empty())
                .unwrap();
            q
        })
        .collect();
    let expected: Vec<String> = std::iter::once("first".to_string())
        .chain((0..30).map(|i| format!("k{i:02}")))
        .collect();
    a.until("all 31 presences", |t| {
        let mut k = keys(&t.list("room"));
        k.sort();
        let mut e = expected.clone();
        e.sort();
        k == e
    })
    .await;
    net.set_drop_rate(0.0);
    drop(procs);
    a.until_keys("room", &["first"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_loses_one_diff_not_the_following_ones() {
    let net = Network::new();
    let (tx, mut diffs) = mpsc::unbounded_channel();
    let t = Tracker::start(
        net.node("a"),
        "presence",
        steady(),
        Arc::new(move |d: Diff| {
            if d.topics.contains_key("boom") {
                panic!("handler bug");
            }
            let _ = tx.send(d);
        }),
    )
    .unwrap();
    let p = t.process();
    t.track(&p, "boom", "k", Meta::empty()).unwrap();
    // Each change is its own diff, so the panic on the first cannot swallow the second.
    t.track(&p, "fine", "k", Meta::empty()).unwrap();
    let d = tokio::time::timeout(TIMEOUT, diffs.recv())
        .await
        .expect("a later diff arrives")
        .unwrap();
    assert!(d.topics.contains_key("fine"));
}
