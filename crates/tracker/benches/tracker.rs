//! Tracker benchmarks: local operations through the public handle, queries, process exits, CRDT
//! merges of deltas and full states, and the wire form of a heartbeat carrying a delta.
//!
//! `cargo bench -p phoenix-tracker --bench tracker`
//! (append `-- <filter>` to run a subset, e.g. `-- track/`).

#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use tracker::internals::presence::{Meta, PhxRef, Pid};
use tracker::internals::replica::ReplicaRef;
use tracker::internals::state::State;
use tracker::{Diff, Options, Process, Tracker};

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn meta() -> Meta {
    static META: std::sync::OnceLock<Meta> = std::sync::OnceLock::new();
    META.get_or_init(|| Meta::new(json!({"online_at": "1700000000"})).unwrap())
        .clone()
}

fn topic_of(i: usize, spread: bool) -> String {
    if spread {
        format!("room:{}", i % 1000)
    } else {
        "room:lobby".to_string()
    }
}

fn new_tracker(name: &str) -> Tracker {
    Tracker::start(
        pubsub::PubSub::new(name),
        "bench",
        Options::default(),
        Arc::new(|_d: Diff| {}),
    )
    .unwrap()
}

fn tracked(t: &Tracker, n: usize, spread: bool) -> Vec<(Process, String, String)> {
    (0..n)
        .map(|i| {
            let p = t.process();
            let topic = topic_of(i, spread);
            let key = format!("user:{i}");
            t.track(&p, &topic, &key, meta()).unwrap();
            (p, topic, key)
        })
        .collect()
}

fn local_ops(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    for spread in [false, true] {
        let layout = if spread { "1000_topics" } else { "one_topic" };
        let mut g = c.benchmark_group(format!("track/{layout}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        for n in SIZES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_batched(
                    || {
                        let t = new_tracker("a");
                        let items: Vec<_> = (0..n)
                            .map(|i| (t.process(), topic_of(i, spread), format!("user:{i}")))
                            .collect();
                        (t, items)
                    },
                    |(t, items)| {
                        for (p, topic, key) in &items {
                            t.track(p, topic, key, meta()).unwrap();
                        }
                        (t, items)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("update/{layout}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        for n in SIZES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_batched(
                    || {
                        let t = new_tracker("a");
                        let items = tracked(&t, n, spread);
                        (t, items)
                    },
                    |(t, items)| {
                        for (p, topic, key) in &items {
                            t.update(p, topic, key, meta()).unwrap();
                        }
                        (t, items)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("untrack/{layout}"));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        for n in SIZES {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_batched(
                    || {
                        let t = new_tracker("a");
                        let items = tracked(&t, n, spread);
                        (t, items)
                    },
                    |(t, items)| {
                        for (p, topic, key) in &items {
                            t.untrack(p, topic, key);
                        }
                        (t, items)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();

        let mut g = c.benchmark_group(format!("list/{layout}"));
        g.sample_size(20).measurement_time(Duration::from_secs(3));
        for n in SIZES {
            let t = new_tracker("a");
            let items = tracked(&t, n, spread);
            let topic = topic_of(0, spread);
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter_with_large_drop(|| t.list(&topic))
            });
            drop(items);
        }
        g.finish();
    }
}

/// Time from dropping 100k tracked processes at once until the handler has received every leave.
fn leaves_after_exit(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut g = c.benchmark_group("leaves_after_exit");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let n = 100_000;
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let leaves = Arc::new(AtomicUsize::new(0));
                let counter = leaves.clone();
                let t = Tracker::start(
                    pubsub::PubSub::new("a"),
                    "bench",
                    Options::default(),
                    Arc::new(move |d: Diff| {
                        let l: usize = d.topics.values().map(|t| t.leaves.len()).sum();
                        counter.fetch_add(l, Ordering::Release);
                    }),
                )
                .unwrap();
                let items = tracked(&t, n, false);
                let start = Instant::now();
                drop(items);
                while leaves.load(Ordering::Acquire) < n {
                    std::thread::yield_now();
                }
                total += start.elapsed();
                assert_eq!(t.count("room:lobby"), 0);
            }
            total
        })
    });
    g.finish();
}

fn state_with(me: &str, n: usize, peers: &[&str]) -> State {
    let mut s = State::new(ReplicaRef::new(me, 1));
    for p in peers {
        s.replica_up(&ReplicaRef::new(*p, 1));
    }
    let m = meta();
    for i in 0..n {
        s.join(
            Pid {
                node: 1,
                id: i as u64,
            },
            "room:lobby",
            &format!("user:{i}"),
            m.clone(),
            PhxRef::new(i as u64, 1, 0),
        )
        .unwrap();
    }
    s
}

/// The pure CRDT operations, without locks, handles or dispatch.
fn state_ops(c: &mut Criterion) {
    let mut g = c.benchmark_group("state");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    for n in [10_000usize, 100_000] {
        let keys: Vec<String> = (0..n).map(|i| format!("user:{i}")).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("join", n), &n, |b, &n| {
            b.iter_batched(
                || State::new(ReplicaRef::new("a", 1)),
                |mut s| {
                    let m = meta();
                    for (i, key) in keys.iter().enumerate().take(n) {
                        s.join(
                            Pid {
                                node: 1,
                                id: i as u64,
                            },
                            "room:lobby",
                            key,
                            m.clone(),
                            PhxRef::new(i as u64, 1, 0),
                        )
                        .unwrap();
                    }
                    s
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_with_input(BenchmarkId::new("leave_pid", n), &n, |b, &n| {
            b.iter_batched(
                || state_with("a", n, &[]),
                |mut s| {
                    for i in 0..n {
                        s.leave_pid(Pid {
                            node: 1,
                            id: i as u64,
                        });
                    }
                    s
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn merges(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10).measurement_time(Duration::from_secs(3));

    let mut a = state_with("a", 10_000, &["b"]);
    let delta = a.take_delta();
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("delta/10000", |b| {
        b.iter_batched(
            || state_with("b", 0, &["a"]),
            |mut s| {
                let changes = s.merge_delta(&delta);
                assert_eq!(changes.joins.len(), 10_000);
                s
            },
            BatchSize::PerIteration,
        )
    });

    let a = state_with("a", 100_000, &["b"]);
    let b0 = state_with("b", 100_000, &["a"]);
    let snapshot = a.extract(b0.replica(), &b0.clocks());
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("full/100000_into_100000", |b| {
        b.iter_batched(
            || state_with("b", 100_000, &["a"]),
            |mut s| {
                let changes = s.merge_snapshot(&snapshot);
                assert_eq!(changes.joins.len(), 100_000);
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("extract/100000", |b| {
        b.iter(|| a.extract(b0.replica(), &b0.clocks()))
    });
    g.finish();
}

/// What a peer pays before merging: a heartbeat with a 10k-join delta, to bytes and back.
fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut a = state_with("a", 10_000, &["b"]);
    let heartbeat = tracker::internals::wire::Message::Heartbeat {
        from: a.replica().clone(),
        clocks: a.clocks(),
        delta: Some(a.take_delta()),
    };
    let bytes = tracker::internals::wire::encode(&heartbeat);
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("encode_heartbeat/10000", |b| {
        b.iter(|| tracker::internals::wire::encode(&heartbeat))
    });
    g.bench_function("decode_heartbeat/10000", |b| {
        b.iter(|| tracker::internals::wire::decode(&bytes).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    local_ops,
    leaves_after_exit,
    state_ops,
    merges,
    wire
);
criterion_main!(benches);
