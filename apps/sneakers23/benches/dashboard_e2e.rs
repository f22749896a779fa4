//! End to end: how long after a shopper's `add_item` an admin sees it in the dashboard.
//!
//! Starts a real node (SQLite in a temporary directory), an admin on `admin:dashboard` and
//! `SHOPPERS` carts generating `LOAD_OPS` add/remove per second in the background on two items;
//! a probe cart then adds and removes a third item, one change at a time at random moments, and
//! measures from the push to the `aggregate_delta` that shows the new count. Prints p50/p90/p99/max and the bytes
//! per second the admin received. Deltas are published at most every 250 ms, so the expected
//! latency is uniform over 0–250 ms plus the pipeline.
//!
//! `cargo bench -p sneakers23 --bench dashboard_e2e` (environment: `E2E_SAMPLES`, `E2E_SHOPPERS`,
//! `E2E_LOAD_OPS`, and `E2E_TRACKED`: carts tracked directly in the CartTracker beforehand, to
//! measure with e.g. 100k carts present).
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Backend;
use common::admin::{DashboardMirror, admin_socket};
use common::web::{PhxSocket, TestNode, cart_id};
use serde_json::json;
use sneakers23::admin::{AGGREGATE, AGGREGATE_DELTA, DASHBOARD_TOPIC};
use sneakers23::sockets::CART_TRACKER_TOPIC;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// One background shopper: toggles `items` in its cart, paced to `per_second`.
async fn shopper(
    t_addr: std::net::SocketAddr,
    id: String,
    items: [i64; 2],
    per_second: f64,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) {
    let mut socket = PhxSocket::connect(t_addr).await;
    let topic = format!("cart:{id}");
    socket.join_ok(&topic, json!({"page": "/bench/1"})).await;
    let mut held = [false, false];
    let mut n = 0usize;
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.1));
    let mut tick = tokio::time::interval(period);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let k = n % 2;
        n += 1;
        let event = if held[k] { "remove_item" } else { "add_item" };
        let reply = socket
            .push(&topic, event, json!({"item_id": items[k].to_string()}))
            .await;
        if reply["status"] == "ok" {
            held[k] = !held[k];
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let samples = env("E2E_SAMPLES", 200);
    let shoppers = env("E2E_SHOPPERS", 200);
    let load_ops = env("E2E_LOAD_OPS", 1000);
    let t = TestNode::start(Backend::Sqlite, true).await;
    let (i1, i2, i3) = (t.fx.i1, t.fx.i2, t.fx.i3);

    // Carts tracked straight in the CartTracker (no sockets), to measure at scale.
    let tracked = env("E2E_TRACKED", 0);
    let presence = t.node.state().cart_tracker.clone();
    let mut guards = Vec::with_capacity(tracked);
    let tracking = Instant::now();
    for n in 0..tracked {
        let item = if n % 2 == 0 { i1 } else { i2 };
        let meta = json!({
            "page_loaded_at": 1_700_000_000_000_i64,
            "page": format!("/bench/{}", 1 + n % 4),
            "items": [item],
        });
        let key = format!("tracked{n:0>57}");
        guards.push(
            presence
                .track(CART_TRACKER_TOPIC, &key, meta)
                .expect("track"),
        );
    }
    while t.node.state().dashboard.snapshot().shoppers < tracked as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if tracked > 0 {
        println!(
            "{tracked} carts tracked and aggregated in {:.0} ms",
            tracking.elapsed().as_secs_f64() * 1000.0
        );
    }

    let mut admin = admin_socket(&t).await;
    let joining = Instant::now();
    admin.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let snapshot = admin.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    println!(
        "admin join -> aggregate snapshot: {:.1} ms, {} bytes ({} shoppers)",
        joining.elapsed().as_secs_f64() * 1000.0,
        snapshot.to_string().len(),
        snapshot["shoppers"]
    );
    let mut mirror = DashboardMirror::from_snapshot(snapshot);

    // The background load.
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 0..shoppers {
        let id = format!("{n:0>64}");
        tasks.push(tokio::spawn(shopper(
            t.addr(),
            id,
            [i1, i2],
            load_ops as f64 / shoppers.max(1) as f64,
            stop.clone(),
            ops.clone(),
        )));
    }

    // The probe.
    let probe_id = cart_id(99);
    let probe_topic = format!("cart:{probe_id}");
    let mut probe = PhxSocket::connect(t.addr()).await;
    probe.join_ok(&probe_topic, json!({"page": "/probe"})).await;
    let key = i3.to_string();
    let count = |m: &DashboardMirror| m.state["carts"][&key].as_u64().unwrap_or(0);
    let started = Instant::now();
    let ops_before = ops.load(Ordering::Relaxed);
    let mut bytes = 0usize;
    let mut latencies = Vec::with_capacity(samples);
    for n in 0..samples {
        let (event, want) = if n % 2 == 0 {
            ("add_item", 1)
        } else {
            ("remove_item", 0)
        };
        // A random pause, so that pushes are not in phase with the 250 ms publication tick
        // (a closed loop would otherwise always wait a whole period).
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..250))).await;
        let sent = Instant::now();
        let reply = probe
            .push(&probe_topic, event, json!({"item_id": key}))
            .await;
        assert_eq!(reply["status"], "ok", "{reply}");
        while count(&mirror) != want {
            let delta = admin.expect(DASHBOARD_TOPIC, AGGREGATE_DELTA).await;
            bytes += delta.to_string().len() + 48;
            mirror.apply(&delta);
        }
        latencies.push(sent.elapsed());
    }
    let elapsed = started.elapsed();
    let load = (ops.load(Ordering::Relaxed) - ops_before) as f64 / elapsed.as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "add_item -> aggregate at the admin, {samples} samples, {shoppers} shoppers, \
         {load:.0} background ops/s: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         admin received {:.0} bytes/s",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        bytes as f64 / elapsed.as_secs_f64(),
    );
    drop(guards);
    t.node.shutdown().await;
}
