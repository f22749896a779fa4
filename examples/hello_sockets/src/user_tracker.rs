//! The book's UserTracker: users tracked on the `"user_tracker"` topic with `online_at` and
//! `user_id`, and a `handle_diff` that logs who came and went.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tracker::{Diff, DiffHandler, Meta, Options, Tracker};

/// The topic every user is tracked on.
pub const TOPIC: &str = "user_tracker";

/// Logs joins and leaves, as the book's `handle_diff` does.
pub struct LogDiffs {
    /// Which replica is logging.
    pub node: String,
}

impl DiffHandler for LogDiffs {
    fn handle_diff(&self, diff: Diff) {
        for (topic, changes) in &diff.topics {
            for join in &changes.joins {
                tracing::info!(node = %self.node, %topic, key = %join.key, meta = %join.meta.as_json(), "join");
            }
            for leave in &changes.leaves {
                tracing::info!(node = %self.node, %topic, key = %leave.key, "leave");
            }
        }
    }
}

/// The meta the book tracks users with.
pub fn user_meta(user_id: &str) -> Meta {
    let online_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Meta::new(json!({"online_at": online_at.to_string(), "user_id": user_id}))
        .unwrap_or_else(|_| Meta::empty())
}

fn keys(tracker: &Tracker) -> Vec<String> {
    let mut keys: Vec<String> = tracker
        .list(TOPIC)
        .iter()
        .map(|p| p.key.to_string())
        .collect();
    keys.sort();
    keys
}

/// Two replicas on an in-memory network track users and converge.
pub async fn demo() -> anyhow::Result<()> {
    let network = pubsub::memory::Network::new();
    let options = Options {
        broadcast_period: Duration::from_millis(100),
        ..Options::default()
    };
    let a = Tracker::start(
        network.node("a"),
        "user_tracker",
        options.clone(),
        Arc::new(LogDiffs { node: "a".into() }),
    )?;
    let b = Tracker::start(
        network.node("b"),
        "user_tracker",
        options,
        Arc::new(LogDiffs { node: "b".into() }),
    )?;
    let ann = a.process();
    let bob = b.process();
    a.track(&ann, TOPIC, "ann", user_meta("ann"))?;
    b.track(&bob, TOPIC, "bob", user_meta("bob"))?;
    let want = vec!["ann".to_owned(), "bob".to_owned()];
    wait_until("both replicas list ann and bob", || {
        keys(&a) == want && keys(&b) == want
    })
    .await?;
    println!("a lists {:?}; b lists {:?}", keys(&a), keys(&b));
    drop(bob);
    let want = vec!["ann".to_owned()];
    wait_until("bob's leave reaches a", || {
        keys(&a) == want && keys(&b) == want
    })
    .await?;
    println!(
        "after bob's process ended: a lists {:?}; b lists {:?}",
        keys(&a),
        keys(&b)
    );
    Ok(())
}

async fn wait_until(what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("replicas did not converge: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
