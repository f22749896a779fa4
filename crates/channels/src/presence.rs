//! Presence: who is on a topic, replicated across the cluster by the tracker, and told to clients
//! in the shapes phoenix.js `Presence` consumes.
//!
//! A channel [`track`](Presence::track)s itself with a key (a user id, a cart id) and a meta object;
//! the returned [`Tracked`] guard is the presence's lifetime: keep it in the channel, and when the
//! channel ends — leave, closed connection, panic — the guard drops and every node reports the
//! leave. Changes reach clients as `presence_diff` broadcasts on the tracked topic:
//! `{"joins": {key: {"metas": [...]}}, "leaves": {...}}`, sent by every node to its own
//! subscribers only (each node learns the changes through the tracker's replication, so a
//! cluster-wide broadcast would deliver them twice). A channel pushes the current
//! [`list`](Presence::list) as `presence_state` after joining, which the JavaScript client needs
//! before it applies any diff.
//!
//! Every meta carries a `phx_ref` unique to that version of the presence; an
//! [`update`](Presence::update) reports a leave of the old version and a join of the new one, whose
//! meta also carries `phx_ref_prev`.

use std::fmt::Write as _;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use tracker::{DiffHandler, Meta, Tracker};

use crate::codec::{JsonObject, OutPayload};
use crate::server::Endpoint;

/// The event carrying presence changes.
pub const PRESENCE_DIFF: &str = "presence_diff";
/// The event carrying the full presence list, pushed by a channel after it joins.
pub const PRESENCE_STATE: &str = "presence_state";

/// Adds application data to presence lists and diffs (Phoenix's `fetch/2`), e.g. a user's name
/// next to the metas of their id. Runs once per list and once per diff, off the tracker's shards.
pub trait Fetch: Send + Sync + 'static {
    /// Edits `grouped` (`{key: {"metas": [...]}}`) in place; the `metas` of each key must stay.
    fn fetch(&self, topic: &str, grouped: &mut Map<String, Value>);
}

/// Why a presence operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The meta was not a JSON object.
    #[error("presence meta must be a JSON object: {0}")]
    Meta(#[from] tracker::MetaError),
    /// This exact (topic, key) is already tracked by that guard's process.
    #[error(transparent)]
    Track(#[from] tracker::TrackError),
    /// The presence no longer exists.
    #[error(transparent)]
    Update(#[from] tracker::UpdateError),
}

/// A presence registry on one tracker. Cheap to clone.
#[derive(Clone)]
pub struct Presence {
    tracker: Tracker,
    fetch: Option<Arc<dyn Fetch>>,
}

/// A tracked presence; dropping it removes the presence on every node.
pub struct Tracked {
    process: tracker::Process,
    topic: Arc<str>,
    key: Arc<str>,
}

impl Tracked {
    /// The topic tracked on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The key tracked under.
    pub fn key(&self) -> &str {
        &self.key
    }
}

struct Broadcaster {
    endpoint: Endpoint,
    fetch: Option<Arc<dyn Fetch>>,
    observer: Option<Arc<dyn DiffHandler>>,
}

impl DiffHandler for Broadcaster {
    fn handle_diff(&self, diff: tracker::Diff) {
        for (topic, changes) in &diff.topics {
            let joins = changes.joins.len() as f64;
            let leaves = changes.leaves.len() as f64;
            metrics::gauge!("presence_entries").increment(joins - leaves);
            let payload = diff_payload(
                topic,
                &changes.joins,
                &changes.leaves,
                self.fetch.as_deref(),
            );
            self.endpoint
                .local_broadcast(topic, PRESENCE_DIFF, &OutPayload::Json(payload));
        }
        if let Some(observer) = &self.observer {
            observer.handle_diff(diff);
        }
    }
}

impl Presence {
    /// Starts a tracker called `name` whose changes are broadcast as `presence_diff` through
    /// `endpoint`.
    pub fn start(
        endpoint: Endpoint,
        name: &str,
        options: tracker::Options,
    ) -> Result<Presence, tracker::OptionsError> {
        Self::start_with_fetch(endpoint, name, options, None)
    }

    /// [`start`](Presence::start) with a [`Fetch`] hook.
    pub fn start_with_fetch(
        endpoint: Endpoint,
        name: &str,
        options: tracker::Options,
        fetch: Option<Arc<dyn Fetch>>,
    ) -> Result<Presence, tracker::OptionsError> {
        Self::start_with_observer(endpoint, name, options, fetch, None)
    }

    /// [`start_with_fetch`](Presence::start_with_fetch) with an `observer` that also receives
    /// every diff of every topic, in order, right after its `presence_diff` was broadcast: from
    /// the tracker's diff dispatcher, never while a shard is locked. Because it is attached
    /// before anything is tracked, replaying what it receives always gives the current lists
    /// (server-side aggregates are built this way, without listing the presences). Keep it
    /// quick, as any [`DiffHandler`].
    pub fn start_with_observer(
        endpoint: Endpoint,
        name: &str,
        options: tracker::Options,
        fetch: Option<Arc<dyn Fetch>>,
        observer: Option<Arc<dyn DiffHandler>>,
    ) -> Result<Presence, tracker::OptionsError> {
        let handler = Arc::new(Broadcaster {
            endpoint: endpoint.clone(),
            fetch: fetch.clone(),
            observer,
        });
        let tracker = Tracker::start(endpoint.pubsub().clone(), name, options, handler)?;
        Ok(Presence { tracker, fetch })
    }

    /// The underlying tracker, for its replication details and raw queries.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Tracks a presence of `key` on `topic` with `meta` (a JSON object) until the guard drops.
    pub fn track(&self, topic: &str, key: &str, meta: Value) -> Result<Tracked, PresenceError> {
        let meta = Meta::new(meta)?;
        let process = self.tracker.process();
        self.tracker.track(&process, topic, key, meta)?;
        Ok(Tracked {
            process,
            topic: Arc::from(topic),
            key: Arc::from(key),
        })
    }

    /// Replaces the meta of a tracked presence.
    pub fn update(&self, tracked: &Tracked, meta: Value) -> Result<(), PresenceError> {
        let meta = Meta::new(meta)?;
        self.tracker
            .update(&tracked.process, &tracked.topic, &tracked.key, meta)?;
        Ok(())
    }

    /// The presences of `topic` grouped by key: `{key: {"metas": [...]}}`, the `presence_state`
    /// payload.
    pub fn list(&self, topic: &str) -> JsonObject {
        let presences = self.tracker.list(topic);
        group(topic, presences.iter(), self.fetch.as_deref())
    }

    /// The metas of one key (`{"metas": [...]}` plus fetched fields), or `None` when absent.
    pub fn get_by_key(&self, topic: &str, key: &str) -> Option<Value> {
        let presences: Vec<tracker::PresenceEntry> = self
            .tracker
            .get_by_key(topic, key)
            .into_iter()
            .map(|(_, presence)| presence)
            .collect();
        if presences.is_empty() {
            return None;
        }
        let grouped = group(topic, presences.iter(), self.fetch.as_deref()).to_value();
        grouped.get(key).cloned()
    }
}

/// Writes `{key: {"metas": [...]}}` for `presences`, keys in first-seen order.
fn group<'a>(
    topic: &str,
    presences: impl Iterator<Item = &'a tracker::PresenceEntry>,
    fetch: Option<&dyn Fetch>,
) -> JsonObject {
    let mut order: Vec<(&str, Vec<&tracker::PresenceEntry>)> = Vec::new();
    let mut index: FxHashMap<&str, usize> = FxHashMap::default();
    for presence in presences {
        let key: &str = &presence.key;
        match index.get(key) {
            Some(&i) => order[i].1.push(presence),
            None => {
                index.insert(key, order.len());
                order.push((key, vec![presence]));
            }
        }
    }
    let mut out = String::with_capacity(64 * order.len() + 2);
    out.push('{');
    for (n, (key, metas)) in order.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", Value::String((*key).to_owned()));
        out.push_str(":{\"metas\":[");
        for (m, presence) in metas.iter().enumerate() {
            if m > 0 {
                out.push(',');
            }
            presence.write_meta_json(&mut out);
        }
        out.push_str("]}");
    }
    out.push('}');
    let object = JsonObject::from_json(out).unwrap_or_else(|error| {
        tracing::error!(%error, topic, "presence list did not form a JSON object");
        JsonObject::empty()
    });
    match fetch {
        None => object,
        Some(fetch) => {
            let Value::Object(mut map) = object.to_value() else {
                return object;
            };
            fetch.fetch(topic, &mut map);
            JsonObject::from_map(&map)
        }
    }
}

fn diff_payload(
    topic: &str,
    joins: &[tracker::PresenceEntry],
    leaves: &[tracker::PresenceEntry],
    fetch: Option<&dyn Fetch>,
) -> JsonObject {
    let joins = group(topic, joins.iter(), fetch);
    let leaves = group(topic, leaves.iter(), fetch);
    let text = format!(
        "{{\"joins\":{},\"leaves\":{}}}",
        joins.as_str(),
        leaves.as_str()
    );
    JsonObject::from_json(text).unwrap_or_else(|_| JsonObject::empty())
}
