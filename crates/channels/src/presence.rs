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
///
/// The usual channel: track its user in `after_join`, keep the [`Tracked`] guard in the channel
/// (its drop is the leave), and push the [`list`](Presence::list) as `presence_state`; every member
/// then receives `presence_diff` broadcasts as members come and go.
///
/// ```
/// use std::sync::Arc;
/// use channels::presence::{PRESENCE_STATE, Presence, Tracked};
/// use channels::server::{Channel, ConnectInfo, Context, Endpoint, Params, Routes, StopReason};
/// use serde_json::json;
///
/// struct Room { presence: Presence, tracked: Option<Tracked> }
///
/// #[async_trait::async_trait]
/// impl Channel for Room {
///     async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
///         let topic = ctx.topic().to_owned();
///         let user = "alice"; // in an app: from ctx.assigns()
///         let tracked = self.presence.track(&topic, user, json!({"online_at": 1_700_000_000}))
///             .map_err(|error| StopReason::Error(error.to_string()))?;
///         self.tracked = Some(tracked);
///         ctx.push(PRESENCE_STATE, self.presence.list(&topic));
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let endpoint = Endpoint::new(pubsub::PubSub::new("node-a"), Default::default());
/// let presence = Presence::start(endpoint.clone(), "presence", tracker::Options::default()).unwrap();
/// let socket = Arc::new(Routes::new().route("room:*", move |_| {
///     Box::new(Room { presence: presence.clone(), tracked: None })
/// }));
///
/// let client = channels::testing::connect(&endpoint, socket, &Params::new(), ConnectInfo::default())
///     .await
///     .unwrap();
/// let (_, room) = client.join("room:lobby", json!({})).await.unwrap();
/// let state = room.assert_push("presence_state").await;
/// assert_eq!(state["alice"]["metas"][0]["online_at"], 1_700_000_000);
/// let diff = room.assert_push("presence_diff").await;
/// assert!(diff["joins"]["alice"].is_object());
/// # });
/// ```
#[derive(Clone)]
pub struct Presence {
    tracker: Tracker,
    fetch: Option<Arc<dyn Fetch>>,
}

/// Configures a [`Presence`] before it starts: see [`Presence::builder`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct PresenceBuilder {
    endpoint: Endpoint,
    name: String,
    options: tracker::Options,
    fetch: Option<Arc<dyn Fetch>>,
    subscribers: FxHashMap<Arc<str>, Vec<Arc<dyn DiffSubscriber>>>,
}

impl PresenceBuilder {
    /// The tracker's options (Phoenix's defaults when not set).
    pub fn options(mut self, options: tracker::Options) -> Self {
        self.options = options;
        self
    }

    /// Adds application data to every list and diff (Phoenix's `fetch/2`).
    pub fn fetch(mut self, fetch: Arc<dyn Fetch>) -> Self {
        self.fetch = Some(fetch);
        self
    }

    /// Hands every change of `topic` to `subscriber` as well, after its `presence_diff` went out.
    /// A topic may have several subscribers; they are called in the order they were added.
    pub fn subscribe(mut self, topic: &str, subscriber: Arc<dyn DiffSubscriber>) -> Self {
        self.subscribers
            .entry(Arc::from(topic))
            .or_default()
            .push(subscriber);
        self
    }

    /// Starts the tracker; its diffs flow to the clients and the subscribers from the first one.
    pub fn start(self) -> Result<Presence, tracker::OptionsError> {
        let handler = Arc::new(Broadcaster {
            endpoint: self.endpoint.clone(),
            fetch: self.fetch.clone(),
            subscribers: self.subscribers,
            entries: metrics::gauge!("presence_entries"),
        });
        let tracker = Tracker::start(
            self.endpoint.pubsub().clone(),
            &self.name,
            self.options,
            handler,
        )?;
        Ok(Presence {
            tracker,
            fetch: self.fetch,
        })
    }
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

/// Receives the presence changes of one topic, in order, right after they were broadcast to the
/// topic's clients as `presence_diff`. Subscribed with [`PresenceBuilder::subscribe`] before
/// anything is tracked, so replaying what it receives always gives the current list: server-side
/// aggregates (counts, a dashboard) are built this way without listing the presences.
///
/// Runs on the tracker's diff dispatcher, never while a shard is locked; keep it quick.
pub trait DiffSubscriber: Send + Sync + 'static {
    /// `changes` holds the joins and leaves of `topic` in one diff.
    fn handle_diff(&self, topic: &str, changes: &tracker::TopicDiff);
}

struct Broadcaster {
    endpoint: Endpoint,
    fetch: Option<Arc<dyn Fetch>>,
    subscribers: FxHashMap<Arc<str>, Vec<Arc<dyn DiffSubscriber>>>,
    /// `presence_entries`, registered once: every diff moves it.
    entries: metrics::Gauge,
}

impl DiffHandler for Broadcaster {
    fn handle_diff(&self, diff: tracker::Diff) {
        for (topic, changes) in &diff.topics {
            let joins = changes.joins.len() as f64;
            let leaves = changes.leaves.len() as f64;
            self.entries.increment(joins - leaves);
            // Nobody on this node listens to the topic (the store's CartTracker topic has only
            // the dashboard's admins): the diff would be rendered and re-parsed for no one.
            if self.endpoint.pubsub().subscriber_count(topic) == 0 {
                continue;
            }
            let payload = diff_payload(
                topic,
                &changes.joins,
                &changes.leaves,
                self.fetch.as_deref(),
            );
            self.endpoint
                .local_broadcast(topic, PRESENCE_DIFF, &OutPayload::Json(payload));
        }
        if self.subscribers.is_empty() {
            return;
        }
        for (topic, changes) in &diff.topics {
            for subscriber in self.subscribers.get(&**topic).into_iter().flatten() {
                subscriber.handle_diff(topic, changes);
            }
        }
    }
}

impl Presence {
    /// Starts a tracker called `name` whose changes are broadcast as `presence_diff` through
    /// `endpoint`. See [`builder`](Presence::builder) for a [`Fetch`] hook or diff subscribers.
    ///
    /// ```
    /// use channels::presence::Presence;
    /// use channels::server::{Endpoint, EndpointConfig};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = Endpoint::new(pubsub::PubSub::new("node1"), EndpointConfig::default());
    /// let presence = Presence::start(endpoint, "room_presence", tracker::Options::default())?;
    /// // In a channel's `after_join`: keep the guard in the channel; dropping it is the leave.
    /// let _tracked = presence.track("room:lobby", "alice", serde_json::json!({"online_at": 0}))?;
    /// assert!(presence.get_by_key("room:lobby", "alice").is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(
        endpoint: Endpoint,
        name: &str,
        options: tracker::Options,
    ) -> Result<Presence, tracker::OptionsError> {
        Self::builder(endpoint, name).options(options).start()
    }

    /// A presence with more than the defaults: tracker options, a [`Fetch`] hook, and any number
    /// of [`DiffSubscriber`]s per topic.
    pub fn builder(endpoint: Endpoint, name: &str) -> PresenceBuilder {
        PresenceBuilder {
            endpoint,
            name: name.to_owned(),
            options: tracker::Options::default(),
            fetch: None,
            subscribers: FxHashMap::default(),
        }
    }

    /// The underlying tracker, for its replication details and raw queries.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Tracks a presence of `key` on `topic` with `meta` until the guard drops.
    ///
    /// `meta` is anything that serializes to a JSON object: a `json!({...})` value, or a struct of
    /// the application's, which is written straight to the stored text (no [`Value`] built).
    pub fn track(
        &self,
        topic: &str,
        key: &str,
        meta: impl serde::Serialize,
    ) -> Result<Tracked, PresenceError> {
        let meta = Meta::from_serialize(&meta)?;
        let process = self.tracker.process();
        self.tracker.track(&process, topic, key, meta)?;
        Ok(Tracked {
            process,
            topic: Arc::from(topic),
            key: Arc::from(key),
        })
    }

    /// Replaces the meta of a tracked presence (any value [`Presence::track`] takes).
    pub fn update(
        &self,
        tracked: &Tracked,
        meta: impl serde::Serialize,
    ) -> Result<(), PresenceError> {
        let meta = Meta::from_serialize(&meta)?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::server::EndpointConfig;

    /// Forwards what it receives, labelled, to the test.
    struct Recorder {
        label: &'static str,
        tx: mpsc::UnboundedSender<(&'static str, String, usize, usize)>,
    }

    impl DiffSubscriber for Recorder {
        fn handle_diff(&self, topic: &str, changes: &tracker::TopicDiff) {
            let _ = self.tx.send((
                self.label,
                topic.to_owned(),
                changes.joins.len(),
                changes.leaves.len(),
            ));
        }
    }

    #[tokio::test]
    async fn a_diff_is_published_only_to_a_topic_with_a_local_subscriber() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let endpoint = Endpoint::new(pubsub::PubSub::new("n1"), EndpointConfig::default());
        let presence = Presence::builder(endpoint.clone(), "test_presence")
            .subscribe("room:a", Arc::new(Recorder { label: "seen", tx }))
            .start()
            .unwrap();
        let seen = async |rx: &mut mpsc::UnboundedReceiver<_>| {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap()
        };

        let _alice = presence
            .track("room:a", "alice", serde_json::json!({}))
            .unwrap();
        assert_eq!(seen(&mut rx).await, ("seen", "room:a".to_owned(), 1, 0));
        assert_eq!(endpoint.pubsub().stats().published, 0, "nobody listens");

        let (mailbox, mut inbox) = endpoint.pubsub().mailbox(16);
        endpoint.pubsub().subscribe("room:a", &mailbox);
        let _bob = presence
            .track("room:a", "bob", serde_json::json!({}))
            .unwrap();
        assert_eq!(seen(&mut rx).await, ("seen", "room:a".to_owned(), 1, 0));
        let message = tokio::time::timeout(Duration::from_secs(10), inbox.recv())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&message.payload).into_owned();
        assert!(
            text.contains(PRESENCE_DIFF) && text.contains("bob") && !text.contains("alice"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn every_subscriber_of_a_topic_gets_its_diffs_in_order_and_no_other_topics() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let recorder = |label| {
            Arc::new(Recorder {
                label,
                tx: tx.clone(),
            })
        };
        let endpoint = Endpoint::new(pubsub::PubSub::new("n1"), EndpointConfig::default());
        let presence = Presence::builder(endpoint, "test_presence")
            .subscribe("room:a", recorder("first"))
            .subscribe("room:a", recorder("second"))
            .subscribe("room:b", recorder("other"))
            .start()
            .unwrap();

        let tracked = presence
            .track("room:a", "alice", serde_json::json!({}))
            .unwrap();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap()
        };
        assert_eq!(next().await, ("first", "room:a".to_owned(), 1, 0));
        assert_eq!(next().await, ("second", "room:a".to_owned(), 1, 0));
        drop(tracked);
        assert_eq!(next().await, ("first", "room:a".to_owned(), 0, 1));
        assert_eq!(next().await, ("second", "room:a".to_owned(), 0, 1));
        assert!(rx.try_recv().is_err(), "room:b's subscriber saw room:a");
    }
}
