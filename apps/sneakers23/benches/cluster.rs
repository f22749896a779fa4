//! Cluster benchmarks of the CartTracker's protocol over the real brokers: tracker replicas on
//! several pubsub nodes in this process, every frame between them going through Redis or NATS
//! over TCP (the brokers of this machine, 127.0.0.1:6379 and 127.0.0.1:4222).
//!
//! ```text
//! cargo bench -p sneakers23 --bench cluster -- \
//!     [--broker redis|nats|both] [--period-ms 100] [--singles 200] [--burst 10000] [--full 100000]
//! ```
//!
//! Measured, per broker:
//!
//! 1. **single joins**: one `track` on node A at a random moment, time until node B's diff handler
//!    reports it (p50/p99). Dominated by the wait for A's next tick (uniform in one broadcast
//!    period), plus transport and merge.
//! 2. **10k joins at once**: 10 000 `track`s on A in a burst; time until B has seen 50 %, 99 % and
//!    all of them; then the same for the 10 000 leaves.
//! 3. **bytes on the wire per presence change**: bytes A published (envelopes included, counted
//!    once however many nodes receive them) per join and per leave during the burst, and per
//!    heartbeat carrying one join.
//! 4. **full-state transfer**: A holds 100 000 presences; a fresh node C joins the cluster; time
//!    until C lists all of them, and the bytes it received (NATS: chunked under 1 MB).
//! 5. **dead node detection**: node B is dropped abruptly (its connections close, it stops
//!    heartbeating); time until A reports it down, against the down period (20 broadcast periods,
//!    Phoenix's ratio).
//!
//! Default broadcast period 100 ms (Phoenix: 1 500 ms): latencies that are dominated by the tick
//! scale with it.

#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pubsub::PubSub;
use serde_json::json;
use tokio::sync::Notify;
use tracker::{Diff, Meta, Options, Process, ReplicaEvent, Tracker};

const TOPIC: &str = "bench:presence";

struct Args {
    brokers: Vec<&'static str>,
    period: Duration,
    singles: usize,
    burst: usize,
    full: usize,
}

fn args() -> Args {
    let mut a = Args {
        brokers: vec!["redis", "nats"],
        period: Duration::from_millis(100),
        singles: 200,
        burst: 10_000,
        full: 100_000,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--broker" => {
                a.brokers = match value.as_str() {
                    "redis" => vec!["redis"],
                    "nats" => vec!["nats"],
                    _ => vec!["redis", "nats"],
                };
                i += 1;
            }
            "--period-ms" => {
                a.period = Duration::from_millis(value.parse().unwrap());
                i += 1;
            }
            "--singles" => {
                a.singles = value.parse().unwrap();
                i += 1;
            }
            "--burst" => {
                a.burst = value.parse().unwrap();
                i += 1;
            }
            "--full" => {
                a.full = value.parse().unwrap();
                i += 1;
            }
            _ => {} // `--bench` and friends, from cargo
        }
        i += 1;
    }
    a
}

/// What a node's diff handler saw: when each key joined, how many joins and leaves.
#[derive(Default)]
struct Seen {
    joined_at: Mutex<HashMap<Arc<str>, Instant>>,
    joins: AtomicUsize,
    leaves: AtomicUsize,
    changed: Notify,
}

impl Seen {
    fn record(&self, diff: Diff) {
        let now = Instant::now();
        let mut joined = 0;
        let mut left = 0;
        {
            let mut at = self.joined_at.lock();
            for change in diff.topics.values() {
                for p in &change.joins {
                    at.entry(p.key.clone()).or_insert(now);
                    joined += 1;
                }
                left += change.leaves.len();
            }
        }
        self.joins.fetch_add(joined, Ordering::Relaxed);
        self.leaves.fetch_add(left, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    async fn until(&self, what: impl Fn(&Seen) -> bool, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if what(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return what(self);
            }
        }
    }
}

struct BenchNode {
    pubsub: PubSub,
    tracker: Tracker,
    seen: Arc<Seen>,
}

async fn start_node(url: &str, name: &str, options: &Options) -> BenchNode {
    let pubsub = pubsub::connect(name, Some(url)).unwrap();
    assert!(
        pubsub.wait_connected(Duration::from_secs(10)).await,
        "broker of {url} unreachable"
    );
    let seen = Arc::new(Seen::default());
    let sink = seen.clone();
    let tracker = Tracker::start(
        pubsub.clone(),
        "bench",
        options.clone(),
        Arc::new(move |diff: Diff| sink.record(diff)),
    )
    .unwrap();
    BenchNode {
        pubsub,
        tracker,
        seen,
    }
}

fn meta() -> Meta {
    Meta::new(json!({"online_at": 1_700_000_000, "page": "/", "items": [3, 14]})).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        return format!("{:.0} µs", d.as_secs_f64() * 1e6);
    }
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn knows(a: &BenchNode, b: &BenchNode) -> bool {
    let name = b.tracker.replica().name.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if a.tracker
            .replicas()
            .iter()
            .any(|r| r.replica.name == name && r.status == tracker::Status::Up)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn bench(broker: &'static str, args: &Args) -> Vec<(String, String)> {
    let base = match broker {
        "redis" => "redis://127.0.0.1:6379",
        _ => "nats://127.0.0.1:4222",
    };
    let url = format!("{base}/?cluster=bench{:x}", rand::random::<u32>());
    let options = Options {
        broadcast_period: args.period,
        down_period: Some(args.period * 20),
        permdown_period: args.period * 200,
        pool_size: 1,
        ..Options::default()
    };
    let mut rows = Vec::new();
    let a = start_node(&url, "a", &options).await;
    let b = start_node(&url, "b", &options).await;
    assert!(knows(&a, &b).await && knows(&b, &a).await, "a and b meet");

    // 0. The broker alone: one small broadcast from a, heard on b.
    let (mailbox, mut inbox) = b.pubsub.mailbox(1024);
    b.pubsub.subscribe("bench:ping", &mailbox);
    let mut hops = Vec::with_capacity(1000);
    for n in 0..1000u32 {
        let t0 = Instant::now();
        a.pubsub
            .broadcast("bench:ping", bytes::Bytes::from(n.to_be_bytes().to_vec()));
        let got = tokio::time::timeout(Duration::from_secs(5), inbox.recv())
            .await
            .expect("ping arrives")
            .expect("open inbox");
        assert_eq!(&got.payload[..], &n.to_be_bytes());
        hops.push(t0.elapsed());
    }
    hops.sort();
    rows.push((
        "one pubsub broadcast → other node (n=1000, 4-byte payload)".into(),
        format!(
            "p50 {} · p99 {}",
            ms(percentile(&hops, 0.5)),
            ms(percentile(&hops, 0.99))
        ),
    ));

    // 1. Single joins.
    let mut processes: Vec<Process> = Vec::new();
    let mut latencies = Vec::with_capacity(args.singles);
    let sent_before = a.pubsub.adapter_stats().bytes_sent;
    for n in 0..args.singles {
        let key: Arc<str> = Arc::from(format!("single:{n}"));
        let process = a.tracker.process();
        let t0 = Instant::now();
        a.tracker.track(&process, TOPIC, &key, meta()).unwrap();
        processes.push(process);
        let arrived = b
            .seen
            .until(
                |s| s.joined_at.lock().contains_key(&key),
                Duration::from_secs(10),
            )
            .await;
        assert!(arrived, "single join {n} reached b");
        let at = b.seen.joined_at.lock()[&key];
        latencies.push(at.duration_since(t0));
        let pause = rand::random_range(0..args.period.as_millis() as u64);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let single_bytes =
        (a.pubsub.adapter_stats().bytes_sent - sent_before) as f64 / args.singles as f64;
    latencies.sort();
    rows.push((
        format!("single join → other node (n={})", args.singles),
        format!(
            "p50 {} · p99 {} · max {}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            ms(*latencies.last().unwrap())
        ),
    ));
    rows.push((
        "bytes published per single join (its heartbeat, idle heartbeats included)".into(),
        format!("{single_bytes:.0} B"),
    ));
    drop(processes);
    let singles = args.singles;
    b.seen
        .until(
            |s| s.leaves.load(Ordering::Relaxed) >= singles,
            Duration::from_secs(10),
        )
        .await;

    // 2. A burst of joins, then of leaves.
    let joins_before = b.seen.joins.load(Ordering::Relaxed);
    let leaves_before = b.seen.leaves.load(Ordering::Relaxed);
    let stats_before = a.pubsub.adapter_stats();
    let t0 = Instant::now();
    let mut burst: Vec<Process> = Vec::with_capacity(args.burst);
    for n in 0..args.burst {
        let process = a.tracker.process();
        a.tracker
            .track(&process, TOPIC, &format!("burst:{n}"), meta())
            .unwrap();
        burst.push(process);
    }
    let issued = t0.elapsed();
    let mut marks = Vec::new();
    for fraction in [0.5, 0.99, 1.0] {
        let want = joins_before + ((args.burst as f64) * fraction).ceil() as usize;
        let ok = b
            .seen
            .until(
                |s| s.joins.load(Ordering::Relaxed) >= want,
                Duration::from_secs(60),
            )
            .await;
        assert!(ok, "burst reached b");
        marks.push(t0.elapsed());
    }
    let join_bytes =
        (a.pubsub.adapter_stats().bytes_sent - stats_before.bytes_sent) as f64 / args.burst as f64;
    rows.push((
        format!("{} joins at once → other node", args.burst),
        format!(
            "p50 {} · p99 {} · all {} (issued in {})",
            ms(marks[0]),
            ms(marks[1]),
            ms(marks[2]),
            ms(issued)
        ),
    ));
    let stats_mid = a.pubsub.adapter_stats();
    let t0 = Instant::now();
    drop(burst);
    for fraction in [0.5, 0.99, 1.0] {
        let want = leaves_before + ((args.burst as f64) * fraction).ceil() as usize;
        let ok = b
            .seen
            .until(
                |s| s.leaves.load(Ordering::Relaxed) >= want,
                Duration::from_secs(60),
            )
            .await;
        assert!(ok, "burst leaves reached b");
        marks.push(t0.elapsed());
    }
    let leave_bytes =
        (a.pubsub.adapter_stats().bytes_sent - stats_mid.bytes_sent) as f64 / args.burst as f64;
    rows.push((
        format!("{} leaves at once → other node", args.burst),
        format!(
            "p50 {} · p99 {} · all {}",
            ms(marks[3]),
            ms(marks[4]),
            ms(marks[5])
        ),
    ));
    rows.push((
        "bytes published per change in a burst".into(),
        format!("join {join_bytes:.1} B · leave {leave_bytes:.1} B"),
    ));

    // 4. Full-state transfer to a new node.
    let mut holders: Vec<Process> = Vec::with_capacity(args.full);
    for n in 0..args.full {
        let process = a.tracker.process();
        a.tracker
            .track(&process, TOPIC, &format!("full:{n}"), meta())
            .unwrap();
        holders.push(process);
    }
    let full = args.full;
    let b_joins = b.seen.joins.load(Ordering::Relaxed);
    assert!(
        b.seen
            .until(
                |s| s.joins.load(Ordering::Relaxed) >= b_joins + full
                    || s.joined_at.lock().len() >= full,
                Duration::from_secs(120)
            )
            .await
            || b.tracker.count(TOPIC) >= full,
        "b gets the 100k by delta"
    );
    while b.tracker.count(TOPIC) < full {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t0 = Instant::now();
    let c = start_node(&url, "c", &options).await;
    let connected = t0.elapsed();
    let mut c_events = c.tracker.replica_events();
    let mut a_up = None;
    let mut listed = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        while let Ok(event) = c_events.try_recv() {
            if matches!(event, ReplicaEvent::Up(ref r) if &*r.name == "a") && a_up.is_none() {
                a_up = Some(t0.elapsed());
            }
        }
        if c.tracker.count(TOPIC) >= full {
            listed = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let listed = listed.expect("c receives the full state");
    let a_up = a_up.unwrap_or(connected);
    let c_stats = c.pubsub.adapter_stats();
    rows.push((
        format!("full state of {full} presences → new node"),
        format!(
            "{} from first hearing the holder to listing all; {} from start (broker connect {}, \
             holder's next heartbeat {}); {:.1} MB received ({} frames after reassembly of \
             1 MiB chunks)",
            ms(listed.saturating_sub(a_up)),
            ms(listed),
            ms(connected),
            ms(a_up),
            c_stats.bytes_received as f64 / 1e6,
            c_stats.frames_received
        ),
    ));
    drop(c);

    // 5. Dead node detection.
    let mut events = a.tracker.replica_events();
    // b is killed right after a heard from it (a probe presence in its latest heartbeat), so
    // the time measured is the full silence a needs: down period plus tick granularity.
    let probe = b.tracker.process();
    b.tracker.track(&probe, TOPIC, "probe", meta()).unwrap();
    assert!(
        a.seen
            .until(
                |s| s.joined_at.lock().contains_key("probe"),
                Duration::from_secs(10)
            )
            .await
    );
    let BenchNode {
        pubsub, tracker, ..
    } = b;
    let killed = Instant::now();
    drop(probe);
    drop(tracker);
    drop(pubsub);
    let down = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(ReplicaEvent::Down(r)) if &*r.name == "b" => return killed.elapsed(),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return Duration::MAX,
            }
        }
    })
    .await
    .expect("b detected down");
    let idle_heartbeat = args.period * 10;
    rows.push((
        "dead node detected down".into(),
        format!(
            "{} after its last heartbeat (down period {}; a crash between two idle heartbeats \
             is detected up to {} sooner)",
            ms(down),
            ms(options.down_period()),
            ms(idle_heartbeat)
        ),
    ));
    drop(holders);
    rows
}

fn main() {
    let args = args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "tracker over real brokers, broadcast period {} (down period 20 periods), 1 shard",
        ms(args.period)
    );
    for broker in &args.brokers {
        let rows = runtime.block_on(bench(broker, &args));
        println!("\n## {broker}\n");
        println!("| measure | result |\n|---|---|");
        for (what, value) in rows {
            println!("| {what} | {value} |");
        }
    }
}
