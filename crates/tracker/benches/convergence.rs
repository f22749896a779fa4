//! Convergence of a peer: how long after node A tracks 10,000 presences node B has reported every
//! one of them as a join, with `broadcast_period` = 100 ms.
//!
//! Two trackers run on the in-process network (`pubsub::memory`), every option but the period at
//! Phoenix's default (`pool_size` 1, `max_delta_sizes` `[100, 1000, 10000]`, ...). Once each has
//! seen the other (a membership event, not a sleep), every round:
//!
//! 1. waits a random fraction of a period (see below);
//! 2. tracks 10,000 presences on A as fast as it can (a new [`Process`] per presence), noting when
//!    the first `track` started and when the last one returned;
//! 3. waits until B's diff handler has been handed all 10,000 joins; the handler timestamps each
//!    diff itself, so the figure is the moment the last join reached B's application code;
//! 4. drops the processes and waits until B has reported the 10,000 leaves, so that every round
//!    starts from the same, empty, state. Each round uses fresh topics.
//!
//! **Why the random wait.** A round ends when B sees A's leaves, which arrive just after one of A's
//! ticks. Starting the next round at once would always track just after a tick and always measure
//! the worst phase (almost a full period of waiting). The delta is broadcast on the tick, so the
//! honest figure is over a uniformly random phase.
//!
//! A third node subscribes to the shard's gossip topic as a silent observer and timestamps A's
//! heartbeats. That splits the latency into *waiting for A's tick* (last track → A's last delta
//! heartbeat) and *delivery* (that heartbeat → B's handler: encode, deliver, decode, merge,
//! dispatch), and shows how many heartbeats carried the joins and how big they were.
//!
//! ```text
//! cargo bench -p phoenix-tracker --bench convergence            # 20 rounds per layout
//! cargo bench -p phoenix-tracker --bench convergence -- 50      # 50 rounds
//! ```
//!
//! Two layouts: 10k joins in one topic, and 10k joins spread over 1,000 topics.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pubsub::memory::Network;
use serde_json::json;
use tokio::sync::mpsc;

use tracker::{Diff, Meta, Options, Process, ReplicaEvent, Tracker};

/// Presences tracked per round.
const N: usize = 10_000;
/// The broadcast period under test.
const PERIOD: Duration = Duration::from_millis(100);
/// Rounds per layout unless a number is given on the command line.
const DEFAULT_ROUNDS: usize = 20;
/// Guards every wait against a hang; never reached when the tracker works.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for the observer to catch up with heartbeats B has already merged.
const OBSERVER_GRACE: Duration = Duration::from_millis(500);
/// The tracker's name; its single shard gossips on `phx_presence:bench_shard0`.
const NAME: &str = "bench";

/// What B's diff handler saw in one diff, timestamped in the handler.
struct Seen {
    at: Instant,
    joins: usize,
    leaves: usize,
}

/// One of A's gossip frames, timestamped by the observer.
struct Frame {
    at: Instant,
    len: usize,
}

/// Per-round measurements, in milliseconds except where named.
struct Round {
    after_last: f64,
    after_first: f64,
    tracking: f64,
    tick_wait: Option<f64>,
    delivery: Option<f64>,
    heartbeats: usize,
    bytes: usize,
}

/// How presence `i` of a round is placed.
#[derive(Clone, Copy)]
enum Layout {
    OneTopic,
    Spread(usize),
}

impl Layout {
    /// How the layout is named in the report.
    fn label(self) -> String {
        match self {
            Layout::OneTopic => "10k joins, one topic".into(),
            Layout::Spread(t) => format!("10k joins over {t} topics"),
        }
    }

    /// The topic of presence `i` in round `round` (fresh topics every round).
    fn topic(self, round: usize, i: usize) -> String {
        match self {
            Layout::OneTopic => format!("r{round}:lobby"),
            Layout::Spread(t) => format!("r{round}:room:{}", i % t),
        }
    }
}

/// The period under test, every other option at Phoenix's default.
fn options() -> Options {
    Options {
        broadcast_period: PERIOD,
        ..Options::default()
    }
}

/// A duration in milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Signed `b - a` in ms.
fn diff_ms(a: Instant, b: Instant) -> f64 {
    if b >= a { ms(b - a) } else { -ms(a - b) }
}

/// Nearest-rank percentile of sorted `v` (`q` in (0, 1]).
fn percentile(v: &[f64], q: f64) -> f64 {
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// The 1, 5 and 15 minute load averages, to print beside the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Receives B's diffs until `count` of them add up to `target`; returns when the last one was seen
/// and how many diffs contributed.
async fn until_total(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    target: usize,
    count: impl Fn(&Seen) -> usize,
    what: &str,
) -> (Instant, usize) {
    let mut total = 0;
    let mut diffs = 0;
    loop {
        let seen = tokio::time::timeout(TIMEOUT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what} ({total}/{target} seen)"))
            .expect("B's dispatcher is alive");
        let n = count(&seen);
        if n > 0 {
            total += n;
            diffs += 1;
        }
        assert!(total <= target, "{what}: {total} seen, expected {target}");
        if total == target {
            return (seen.at, diffs);
        }
    }
}

/// Waits until each tracker has seen the other up (membership events, not a sleep).
async fn until_peers(a: &Tracker, b: &Tracker) {
    for (me, peer) in [(a, b), (b, a)] {
        let mut events = me.replica_events();
        let peer = peer.replica().clone();
        let up = |t: &Tracker| t.replicas().iter().any(|r| r.replica == peer);
        while !up(me) {
            match tokio::time::timeout(TIMEOUT, events.recv()).await {
                Ok(Ok(ReplicaEvent::Up(r))) if r == peer => break,
                Ok(_) => {}
                Err(_) => panic!("{} never saw {} up", me.replica().name, peer.name),
            }
        }
    }
}

/// One round: track on A, wait for B's joins, then drop and wait for B's leaves.
async fn round(
    a: &Tracker,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    frames: &mut mpsc::UnboundedReceiver<Frame>,
    layout: Layout,
    r: usize,
) -> Round {
    let phase = rand::random_range(0..PERIOD.as_micros() as u64);
    tokio::time::sleep(Duration::from_micros(phase)).await;
    let topics: Vec<String> = (0..N).map(|i| layout.topic(r, i)).collect();
    let keys: Vec<String> = (0..N).map(|i| format!("user:{i}")).collect();
    let meta = Meta::new(json!({"online_at": "1700000000"})).unwrap();
    while frames.try_recv().is_ok() {}
    let mut procs: Vec<Process> = Vec::with_capacity(N);

    let first = Instant::now();
    for (topic, key) in topics.iter().zip(&keys) {
        let p = a.process();
        a.track(&p, topic, key, meta.clone()).unwrap();
        procs.push(p);
    }
    let last = Instant::now();

    let (done, join_diffs) = until_total(seen, N, |s| s.joins, "B's joins").await;

    // Each of A's delta heartbeats became one diff on B: wait for the observer to have them all.
    let mut beats: Vec<Frame> = Vec::new();
    let deadline = tokio::time::Instant::now() + OBSERVER_GRACE;
    while beats.len() < join_diffs {
        match tokio::time::timeout_at(deadline, frames.recv()).await {
            Ok(Some(f)) if f.at >= first => beats.push(f),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let complete = beats.len() == join_diffs;
    let last_beat = beats.last().map(|f| f.at.min(done));

    drop(procs);
    until_total(seen, N, |s| s.leaves, "B's leaves").await;

    Round {
        after_last: diff_ms(last, done),
        after_first: diff_ms(first, done),
        tracking: ms(last - first),
        tick_wait: last_beat.filter(|_| complete).map(|b| diff_ms(last, b)),
        delivery: last_beat.filter(|_| complete).map(|b| diff_ms(b, done)),
        heartbeats: join_diffs,
        bytes: beats.iter().map(|f| f.len).sum(),
    }
}

/// Prints p50, p90 and max of `v` (ms), and in broadcast periods if `periods`.
fn summary_row(name: &str, mut v: Vec<f64>, periods: bool) {
    if v.is_empty() {
        println!("  {name:<40} (no data)");
        return;
    }
    v.sort_by(f64::total_cmp);
    let p = PERIOD.as_secs_f64() * 1e3;
    let (p50, p90, max) = (percentile(&v, 0.5), percentile(&v, 0.9), v[v.len() - 1]);
    let n = v.len();
    let mut line = format!("  {name:<40} {n:>3} {p50:>8.1} {p90:>8.1} {max:>8.1} ms");
    if periods {
        line += &format!(
            "   = {:.2} / {:.2} / {:.2} periods",
            p50 / p,
            p90 / p,
            max / p
        );
    }
    println!("{line}");
}

/// Starts A, B and the observer on a fresh network, runs `rounds` rounds and prints the summary.
async fn run(layout: Layout, rounds: usize) {
    let net = Network::new();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let a_pubsub = net.node("a");
    // A's shard broadcasts with a mailbox of A's pubsub node, whose id carries that incarnation.
    let a_node = a_pubsub.node().incarnation;
    let a = Tracker::start(a_pubsub, NAME, options(), Arc::new(|_d: Diff| {})).unwrap();
    let b = Tracker::start(
        net.node("b"),
        NAME,
        options(),
        Arc::new(move |d: Diff| {
            let at = Instant::now();
            let joins = d.topics.values().map(|t| t.joins.len()).sum();
            let leaves = d.topics.values().map(|t| t.leaves.len()).sum();
            let _ = tx.send(Seen { at, joins, leaves });
        }),
    )
    .unwrap();

    // The silent observer: timestamps every gossip frame A broadcasts.
    let observer = net.node("observer");
    let (mailbox, mut inbox) = observer.mailbox(4096);
    observer.subscribe(&format!("phx_presence:{NAME}_shard0"), &mailbox);
    let (ftx, mut frames) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        let _keep = mailbox;
        while let Ok(m) = inbox.recv().await {
            let at = Instant::now();
            if m.from.is_some_and(|id| id.node == a_node) {
                let _ = ftx.send(Frame {
                    at,
                    len: m.payload.len(),
                });
            }
        }
    });

    until_peers(&a, &b).await;

    let load_before = load_average();
    let mut all = Vec::with_capacity(rounds);
    for r in 0..rounds {
        all.push(round(&a, &mut seen, &mut frames, layout, r).await);
    }
    let load_after = load_average();
    watcher.abort();

    println!(
        "\n{} — broadcast period {} ms, {rounds} rounds (load average before: {load_before}, after: {load_after})",
        layout.label(),
        PERIOD.as_millis()
    );
    println!(
        "  {:<40} {:>3} {:>8} {:>8} {:>8}",
        "", "n", "p50", "p90", "max"
    );
    summary_row(
        "peer sees all joins, after last track",
        all.iter().map(|r| r.after_last).collect(),
        true,
    );
    summary_row(
        "peer sees all joins, after first track",
        all.iter().map(|r| r.after_first).collect(),
        true,
    );
    summary_row(
        "tracking 10k on A (first → last)",
        all.iter().map(|r| r.tracking).collect(),
        false,
    );
    summary_row(
        "waiting for A's tick (last track → hb)",
        all.iter().filter_map(|r| r.tick_wait).collect(),
        true,
    );
    summary_row(
        "delivery (A's last hb → B's handler)",
        all.iter().filter_map(|r| r.delivery).collect(),
        false,
    );
    let beats: Vec<usize> = all.iter().map(|r| r.heartbeats).collect();
    let bytes: Vec<usize> = all.iter().map(|r| r.bytes).collect();
    println!(
        "  delta heartbeats carrying the joins per round: {}..{}; their bytes per round: {}..{}",
        beats.iter().min().unwrap(),
        beats.iter().max().unwrap(),
        bytes.iter().min().unwrap(),
        bytes.iter().max().unwrap(),
    );
    let per_round: Vec<String> = all.iter().map(|r| format!("{:.0}", r.after_last)).collect();
    println!("  per round, ms after last track: {}", per_round.join(" "));
}

/// Runs both layouts; the first numeric argument, if any, is the number of rounds.
fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run(Layout::OneTopic, rounds).await;
        run(Layout::Spread(1_000), rounds).await;
    });
}
