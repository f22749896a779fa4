//! UserTracker (chapter 10): a plain Tracker (not Presence) of the users who joined `tracked`.
//!
//! Clients receive nothing from it; `handle_diff` logs every change, and
//! `hello_sockets tracker list` shows the list, on any node of the cluster.

use std::sync::Arc;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracker::{Diff, Meta, Options, OptionsError, Process, TrackError, Tracker};

/// The default topic users are tracked on.
pub const TOPIC: &str = "tracked";

/// The book's UserTracker; cheap to clone.
#[derive(Clone)]
pub struct UserTracker {
    tracker: Tracker,
}

/// `{online_at, user_id}`: when and who, as the book tracks it.
pub fn user_meta(user_id: &str, now: OffsetDateTime) -> Value {
    let online_at = now.format(&Rfc3339).unwrap_or_default();
    json!({ "online_at": online_at, "user_id": user_id })
}

/// One line per change, as the book's `Logger.info inspect({"tracked changes", changes})`.
fn log_diff(diff: Diff) {
    for (topic, changes) in &diff.topics {
        for join in &changes.joins {
            tracing::info!(%topic, key = %join.key, meta = %join.meta_json(), "tracked changes: join");
        }
        for leave in &changes.leaves {
            tracing::info!(%topic, key = %leave.key, meta = %leave.meta_json(), "tracked changes: leave");
        }
    }
}

impl UserTracker {
    /// Starts the tracker on `pubsub` (every node of a cluster must start it).
    pub fn start(pubsub: pubsub::PubSub, options: Options) -> Result<UserTracker, OptionsError> {
        let tracker = Tracker::start(pubsub, "user_tracker", options, Arc::new(log_diff))?;
        Ok(UserTracker { tracker })
    }

    /// Tracks `user_id` on `topic` for as long as the returned process lives.
    pub fn track(&self, topic: &str, user_id: &str) -> Result<Process, TrackError> {
        let process = self.tracker.process();
        let meta = Meta::new(user_meta(user_id, OffsetDateTime::now_utc()))
            .unwrap_or_else(|_| Meta::empty());
        self.tracker.track(&process, topic, user_id, meta)?;
        Ok(process)
    }

    /// Who is tracked on `topic`: `[{key, meta}]`, the meta with its `phx_ref`.
    pub fn list(&self, topic: &str) -> Vec<Value> {
        let mut list: Vec<Value> = self
            .tracker
            .list(topic)
            .iter()
            .map(|p| json!({ "key": &*p.key, "meta": p.meta_value() }))
            .collect();
        list.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_iso8601_utc_and_the_user() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_070).expect("valid time");
        assert_eq!(
            user_meta("1", at),
            json!({"online_at": "2023-11-14T22:14:30Z", "user_id": "1"})
        );
    }
}
