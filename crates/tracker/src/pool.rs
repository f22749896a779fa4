//! The public handle: a pool of shards, topics hashed to shards, and tracked processes.
//!
//! A [`Tracker`] runs `pool_size` independent shards; a topic always lives on shard
//! `fnv1a(topic) % pool_size`, on every node (which is why pool sizes must be equal cluster-wide).
//! Each shard replicates with the same shard of the other nodes over the pubsub topic
//! `phx_presence:<name>_shard<N>`.
//!
//! A tracked process is represented by a [`Process`] handle. Erlang links become `Drop`: when the
//! handle is dropped (the channel ended, its task was aborted, a panic unwound through it), every
//! shard it was tracked on is told at once, and its presences become leaves, without any polling.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use pubsub::PubSub;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::engine::{Engine, ReplicaEvent};
use crate::options::{Options, OptionsError};
use crate::presence::{Meta, PhxRef, Pid, PresenceEntry};
use crate::replica::{ReplicaRef, Status};
use crate::shard::{self, Control, DiffHandler, Shard, ShardTask};
use crate::state::NoPresence;

/// Why `track` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    /// The process is already tracked under this topic and key; use `update` to change its meta.
    #[error(
        "process already tracked on topic {topic:?} with key {key:?}; use update to change its meta"
    )]
    AlreadyTracked {
        /// The topic.
        topic: String,
        /// The key.
        key: String,
    },
    /// The meta's JSON text is longer than [`Options::max_meta_bytes`]; nothing was tracked.
    #[error(
        "presence meta of {size} bytes is over the limit of {max} bytes (Options::max_meta_bytes); keep metas small"
    )]
    MetaTooLarge {
        /// Length of the meta's compact JSON text.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The tracker was shut down with `graceful_permdown`.
    #[error("tracker stopped (graceful_permdown was called); start a new one")]
    Stopped,
}

/// Why `update` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The process is not tracked under this topic and key; `track` it first.
    #[error("no presence of this process on topic {topic:?} with key {key:?}; track it first")]
    NoPresence {
        /// The topic.
        topic: String,
        /// The key.
        key: String,
    },
    /// The new meta's JSON text is longer than [`Options::max_meta_bytes`]; the presence keeps
    /// its current meta.
    #[error(
        "presence meta of {size} bytes is over the limit of {max} bytes (Options::max_meta_bytes); keep metas small"
    )]
    MetaTooLarge {
        /// Length of the meta's compact JSON text.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The tracker was shut down with `graceful_permdown`.
    #[error("tracker stopped (graceful_permdown was called); start a new one")]
    Stopped,
}

impl From<NoPresence> for UpdateError {
    fn from(e: NoPresence) -> Self {
        UpdateError::NoPresence {
            topic: e.topic,
            key: e.key,
        }
    }
}

/// The liveness handle of one tracked process (in this project, a channel instance).
///
/// Get one from [`Tracker::process`] and keep it for as long as the process lives. Dropping it
/// turns every presence it still has, on every tracker it was tracked on, into a leave.
pub struct Process {
    pid: Pid,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Pid>>>,
}

impl Process {
    /// The process id, unique across the cluster.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    fn watch(&self, exits: &mpsc::UnboundedSender<Pid>) {
        let mut w = self.watchers.lock();
        if !w.iter().any(|x| x.same_channel(exits)) {
            w.push(exits.clone());
        }
    }
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process").field("pid", &self.pid).finish()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        for w in self.watchers.get_mut().drain(..) {
            let _ = w.send(self.pid);
        }
    }
}

/// What one node's tracker knows about another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// The node and its incarnation.
    pub replica: ReplicaRef,
    /// Up, or down on at least one shard.
    pub status: Status,
}

/// Process-wide pid counter: pids of all trackers of this program are distinct.
static NEXT_PID: AtomicU64 = AtomicU64::new(1);
/// Trackers started by this program, mixed into the vsn so that restarting a tracker on the same
/// pubsub node still yields a new, greater incarnation.
static STARTS: AtomicU64 = AtomicU64::new(0);

struct Inner {
    name: Arc<str>,
    me: ReplicaRef,
    shards: Vec<Arc<Shard>>,
    controls: Vec<mpsc::UnboundedSender<Control>>,
    node_hash: u16,
    ref_counter: AtomicU16,
    events: broadcast::Sender<ReplicaEvent>,
    max_meta_bytes: usize,
}

/// A presence tracker replicated across the cluster (Phoenix.Tracker). Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use tracker::{Meta, Options, Tracker};
///
/// let pubsub = pubsub::PubSub::new("app1");
/// let tracker = Tracker::start(pubsub, "presence", Options::default(), Arc::new(|_diff| {})).unwrap();
/// let process = tracker.process();
/// let meta = Meta::new(serde_json::json!({"online_at": 1})).unwrap();
/// tracker.track(&process, "room:lobby", "alice", meta).unwrap();
/// assert_eq!(tracker.list("room:lobby").len(), 1);
/// drop(process); // the presence leaves
/// # }
/// ```
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("name", &self.inner.name)
            .field("replica", &self.inner.me)
            .finish()
    }
}

/// FNV-1a: a hash that is the same on every node and every build, for topic -> shard.
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Tracker {
    /// Starts a tracker called `name` on `pubsub`'s node: validates `options`, then spawns, per
    /// shard, its task and its diff dispatcher. Must be called inside a tokio runtime with timers
    /// enabled. `handler` receives every diff (within about a millisecond of the change).
    ///
    /// The tracker runs until every clone of the handle is dropped (peers then see the node go
    /// silent and mark it down after `down_period`) or [`Tracker::graceful_permdown`] is called.
    pub fn start(
        pubsub: PubSub,
        name: &str,
        options: Options,
        handler: Arc<dyn DiffHandler>,
    ) -> Result<Tracker, OptionsError> {
        options.validate()?;
        let node = pubsub.node().clone();
        let vsn = node
            .incarnation
            .wrapping_add(STARTS.fetch_add(1, Ordering::Relaxed));
        let me = ReplicaRef::new(node.name.clone(), vsn);
        let config = options.engine_config();
        let epoch = tokio::time::Instant::now();
        let mut shards = Vec::with_capacity(options.pool_size);
        let mut controls = Vec::with_capacity(options.pool_size);
        let (events, _) = broadcast::channel(1024);
        for n in 0..options.pool_size {
            let engine = Engine::new(me.clone(), config.clone());
            let (shard, exits) = shard::new_shard(engine, handler.clone(), events.clone());
            let (control_tx, control_rx) = mpsc::unbounded_channel();
            let task = ShardTask {
                shard: shard.clone(),
                pubsub: pubsub.clone(),
                topic: Arc::from(format!("phx_presence:{name}_shard{n}")),
                period: options.broadcast_period,
                epoch,
                exits,
                control: control_rx,
            };
            tokio::spawn(task.run());
            shards.push(shard);
            controls.push(control_tx);
        }
        let node_hash = (stable_hash(&format!("{}/{}", me.name, me.vsn)) & 0xffff) as u16;
        Ok(Tracker {
            inner: Arc::new(Inner {
                name: Arc::from(name),
                me,
                shards,
                controls,
                node_hash,
                ref_counter: AtomicU16::new(0),
                events,
                max_meta_bytes: options.max_meta_bytes,
            }),
        })
    }

    /// The tracker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// This node's replica ref (node name and incarnation).
    pub fn replica(&self) -> &ReplicaRef {
        &self.inner.me
    }

    /// A new process handle with a cluster-unique pid.
    pub fn process(&self) -> Process {
        Process {
            pid: Pid {
                node: self.inner.me.vsn,
                id: NEXT_PID.fetch_add(1, Ordering::Relaxed),
            },
            watchers: Mutex::new(Vec::new()),
        }
    }

    fn shard(&self, topic: &str) -> &Arc<Shard> {
        let shards = &self.inner.shards;
        &shards[(stable_hash(topic) % shards.len() as u64) as usize]
    }

    /// `Err((size, limit))` when `meta` is over [`Options::max_meta_bytes`].
    fn check_meta(&self, meta: &Meta) -> Result<(), (usize, usize)> {
        let size = meta.as_json().len();
        let max = self.inner.max_meta_bytes;
        if size > max { Err((size, max)) } else { Ok(()) }
    }

    fn new_ref(&self) -> PhxRef {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let counter = self.inner.ref_counter.fetch_add(1, Ordering::Relaxed);
        PhxRef::new(nanos, self.inner.node_hash, counter)
    }

    /// Tracks `process` on `topic` under `key` with `meta`; the join is reported at once and
    /// replicated at the next tick. Returns the presence's `phx_ref`.
    pub fn track(
        &self,
        process: &Process,
        topic: &str,
        key: &str,
        meta: Meta,
    ) -> Result<PhxRef, TrackError> {
        let shard = self.shard(topic);
        if shard.stopped.load(Ordering::Acquire) {
            return Err(TrackError::Stopped);
        }
        self.check_meta(&meta)
            .map_err(|(size, max)| TrackError::MetaTooLarge { size, max })?;
        process.watch(&shard.exits);
        let phx_ref = self.new_ref();
        match shard.write().join(process.pid, topic, key, meta, phx_ref) {
            Ok(()) => Ok(phx_ref),
            Err(_) => Err(TrackError::AlreadyTracked {
                topic: topic.into(),
                key: key.into(),
            }),
        }
    }

    /// Stops tracking `process` on `topic` under `key` (nothing happens if it was not tracked).
    pub fn untrack(&self, process: &Process, topic: &str, key: &str) {
        self.shard(topic).write().leave(process.pid, topic, key);
    }

    /// Stops tracking `process` everywhere, on every shard.
    pub fn untrack_all(&self, process: &Process) {
        for shard in &self.inner.shards {
            shard.write().leave_pids([process.pid]);
        }
    }

    /// Replaces the meta of a tracked presence. Reported as a join (new meta, new `phx_ref`,
    /// `phx_ref_prev` = the old ref) and a leave (old meta) of the same key in one diff.
    pub fn update(
        &self,
        process: &Process,
        topic: &str,
        key: &str,
        meta: Meta,
    ) -> Result<PhxRef, UpdateError> {
        self.update_with(process, topic, key, move |_| meta)
    }

    /// Like [`Tracker::update`], computing the new meta from the current one.
    pub fn update_with(
        &self,
        process: &Process,
        topic: &str,
        key: &str,
        meta: impl FnOnce(&Meta) -> Meta,
    ) -> Result<PhxRef, UpdateError> {
        let shard = self.shard(topic);
        if shard.stopped.load(Ordering::Acquire) {
            return Err(UpdateError::Stopped);
        }
        let phx_ref = self.new_ref();
        let mut writer = shard.write();
        let no_presence = || UpdateError::NoPresence {
            topic: topic.into(),
            key: key.into(),
        };
        let current = writer
            .meta(process.pid, topic, key)
            .ok_or_else(no_presence)?;
        let meta = meta(&current);
        self.check_meta(&meta)
            .map_err(|(size, max)| UpdateError::MetaTooLarge { size, max })?;
        writer.leave_join(process.pid, topic, key, meta, phx_ref)?;
        Ok(phx_ref)
    }

    /// The presences of `topic` on nodes currently up, in no particular order.
    pub fn list(&self, topic: &str) -> Vec<PresenceEntry> {
        self.shard(topic).read().state().get_by_topic(topic)
    }

    /// The number of presences of `topic` on nodes currently up.
    pub fn count(&self, topic: &str) -> usize {
        self.shard(topic).read().state().count_by_topic(topic)
    }

    /// The presences of `key` in `topic` (nodes up only), with the pid of each.
    pub fn get_by_key(&self, topic: &str, key: &str) -> Vec<(Pid, PresenceEntry)> {
        self.shard(topic).read().state().get_by_key(topic, key)
    }

    /// The other nodes this tracker knows, with their status (down if down on any shard).
    pub fn replicas(&self) -> Vec<ReplicaInfo> {
        let mut all: BTreeMap<ReplicaRef, Status> = BTreeMap::new();
        for shard in &self.inner.shards {
            let engine = shard.read();
            for (r, rec) in engine.replicas().iter() {
                let e = all.entry(r).or_insert(rec.status);
                if rec.status == Status::Down {
                    *e = Status::Down;
                }
            }
        }
        all.into_iter()
            .map(|(replica, status)| ReplicaInfo { replica, status })
            .collect()
    }

    /// Membership changes seen by any shard from now on (a peer up, down or removed), for logs,
    /// metrics and tests. Each shard reports its own view, so with `pool_size > 1` an event comes
    /// once per shard. A receiver that falls more than 1024 events behind loses the oldest.
    pub fn replica_events(&self) -> broadcast::Receiver<ReplicaEvent> {
        self.inner.events.subscribe()
    }

    /// Tells every other node to drop this node's presences now (instead of after `down_period`),
    /// then stops the shards. Later `track`/`update` calls fail with `Stopped`.
    pub async fn graceful_permdown(&self) {
        let mut waits = Vec::new();
        for c in &self.inner.controls {
            let (tx, rx) = oneshot::channel();
            if c.send(Control::GracefulPermdown(tx)).is_ok() {
                waits.push(rx);
            }
        }
        for w in waits {
            let _ = w.await;
        }
        for s in &self.inner.shards {
            s.stopped.store(true, Ordering::Release);
        }
    }
}
