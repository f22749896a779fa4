//! Memory per presence and bytes on the wire per replicated join, measured and bounded.
//!
//! `cargo test -p phoenix-tracker --release --test footprint -- --nocapture` prints the figures.

#![allow(clippy::unwrap_used)]

use serde_json::json;

use tracker::internals::engine::{Engine, EngineConfig, Outbound};
use tracker::internals::presence::{Meta, PhxRef, Pid};
use tracker::internals::replica::ReplicaRef;
use tracker::internals::state::State;
use tracker::internals::wire;

/// Resident memory of this process in bytes (Linux), everything included: the allocator's own
/// overhead and fragmentation count, as they would in production.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

const N: usize = 100_000;

/// Measurements read the whole process's memory: tests of this file take turns.
static EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A replica holding 100k presences (each with its own key and meta) grows the process by ~400
/// bytes per presence or less, everything included (store, indexes, key, meta, refs, allocator).
#[test]
fn memory_per_presence_is_about_400_bytes() {
    let _turn = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let keys: Vec<String> = (0..N).map(|i| format!("user:{i}")).collect();
    let Some(before) = rss() else {
        println!("no /proc/self/status: memory not measured");
        return;
    };
    let mut s = State::new(ReplicaRef::new("a", 1));
    for (i, key) in keys.iter().enumerate() {
        let meta = Meta::new(json!({"online_at": "1700000000"})).unwrap();
        s.join(
            Pid {
                node: 1,
                id: i as u64,
            },
            &format!("room:{}", i % 10),
            key,
            meta,
            PhxRef::new(i as u64, 1, 0),
        )
        .unwrap();
        // A tick broadcasts and drops the pending delta now and then, as the shard does.
        if i % 1000 == 999 {
            s.reset_delta();
        }
    }
    s.reset_delta();
    let own = (rss().unwrap_or(before) - before) as f64 / N as f64;

    println!("memory per presence (resident, everything included): {own:.0} B");
    assert!(own < 400.0, "{own} bytes per presence");
    drop(s);
}

/// A heartbeat carrying 10k joins costs under 70 bytes per join on the wire.
#[test]
fn wire_bytes_per_replicated_join_are_under_70() {
    let _turn = EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner());
    let config = EngineConfig {
        down_period: 30_000,
        permdown_period: 1_200_000,
        max_silent_periods: 10,
        clock_sample_periods: 2,
        max_delta_sizes: vec![100, 1000, 10_000],
    };
    let mut e = Engine::new(
        ReplicaRef::new("node-a", 1_700_000_000_000_000 << 16),
        config,
    );
    let n = 10_000u64;
    let vsn = e.state().replica().vsn;
    for i in 0..n {
        let meta = Meta::new(json!({"online_at": "1700000000"})).unwrap();
        e.state_mut()
            .join(
                Pid {
                    node: vsn,
                    id: 1_000_000 + i,
                },
                "room:lobby",
                &format!("user:{i}"),
                meta,
                PhxRef::new(1_700_000_000_000_000_000 + i * 1000, 0xabcd, i as u16),
            )
            .unwrap();
    }
    let out = e.tick(0);
    let bytes: usize = out
        .messages
        .iter()
        .map(|m| match m {
            Outbound::Broadcast(msg) => wire::encode(msg).len(),
            Outbound::Direct { message, .. } => wire::encode(message).len(),
        })
        .sum();
    let per_join = bytes as f64 / n as f64;
    println!(
        "wire bytes per replicated join: {per_join:.1} (heartbeat of {n} joins = {bytes} bytes; \
         key \"user:N\", meta {{\"online_at\":\"1700000000\"}})"
    );
    assert!(per_join < 70.0, "{per_join} bytes per join");
}
