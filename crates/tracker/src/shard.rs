//! A running shard: one replica of the CRDT, its gossip with the same shard on other nodes, and
//! the delivery of its diffs.
//!
//! The shard's [`Engine`] sits behind a `RwLock`, the way Phoenix's shard owns an ETS table:
//!
//! * **local writes** (`track`, `untrack`, `update`) take the write lock for a few hundred
//!   nanoseconds, mutate, and queue their diff; they are *not* a round trip through a mailbox;
//! * **reads** (`list`, `get_by_key`) take the read lock and never queue behind a stream of writes;
//! * one **task** per shard runs the tick (delta heartbeats, transfer requests, down detection),
//!   handles messages from other nodes (decoded *outside* the lock), and turns ended processes into
//!   leaves in batches;
//! * one **dispatcher** task per shard hands diffs to the [`DiffHandler`], strictly in the order the
//!   state changed, so a slow handler never stalls replication. After a wake-up it yields once
//!   and takes every change queued meanwhile, so a burst costs one wake-up, not one each, and a
//!   lone change waits for no timer.
//!
//! Every change goes through a [`ShardWriter`], the shard's only write API: it holds the write
//! lock and queues the diff of each change before releasing it, which is what makes the dispatch
//! order equal to the order of the state changes. The engine itself is private to this module.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use pubsub::{Closed, PubSub};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::engine::{Engine, Outbound, Output, ReplicaEvent};
use crate::presence::{Diff, Entry, Meta, PhxRef, Pid};
use crate::state::{AlreadyTracked, NoPresence};
use crate::wire::{self, Message};

/// Receives the joins and leaves of a tracker, grouped by topic.
///
/// Called from a dispatcher task per shard, never while the shard's state is locked, one diff at a
/// time and in order. Keep it quick (e.g. broadcast and return); slow work belongs in a task of its
/// own.
pub trait DiffHandler: Send + Sync + 'static {
    /// Handles one batch of changes.
    fn handle_diff(&self, diff: Diff);
}

impl<F: Fn(Diff) + Send + Sync + 'static> DiffHandler for F {
    fn handle_diff(&self, diff: Diff) {
        self(diff)
    }
}

/// Messages from the [`Tracker`](crate::Tracker) handle to a shard task.
pub(crate) enum Control {
    /// Tell every peer to drop us, then stop.
    GracefulPermdown(oneshot::Sender<()>),
}

/// A change waiting for the dispatcher, in the cheapest form to queue (grouping by topic into a
/// [`Diff`] happens in the dispatcher, off the write path).
enum QueuedDiff {
    Join(Entry),
    Leave(Entry),
    Update {
        new: Entry,
        old: Entry,
    },
    Batch {
        joins: Vec<Entry>,
        leaves: Vec<Entry>,
    },
}

impl QueuedDiff {
    fn into_diff(self) -> Diff {
        match self {
            QueuedDiff::Join(e) => Diff::from_entries(vec![e], Vec::new()),
            QueuedDiff::Leave(e) => Diff::from_entries(Vec::new(), vec![e]),
            QueuedDiff::Update { new, old } => Diff::from_entries(vec![new], vec![old]),
            QueuedDiff::Batch { joins, leaves } => Diff::from_entries(joins, leaves),
        }
    }
}

/// The queue between a shard and its dispatcher task. Only a [`ShardWriter`] pushes (so only with
/// the shard's write lock held, which makes the queue order the state-change order), and it wakes
/// the dispatcher only when it is not already scheduled, so a burst of operations costs one
/// wake-up, not one per operation.
struct Dispatch {
    outbox: Mutex<Vec<QueuedDiff>>,
    scheduled: AtomicBool,
    notify: Notify,
    closed: AtomicBool,
}

impl Dispatch {
    fn push(&self, p: QueuedDiff) {
        self.outbox.lock().push(p);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    async fn run(&self, handler: Arc<dyn DiffHandler>) {
        loop {
            self.notify.notified().await;
            // Let a burst accumulate: while the tasks already runnable (the writers of the same
            // burst) run, writers see `scheduled` and skip the wake-up. A timed window here would
            // make a lone change wait for a timer and, on a quiet node, cost a park and an unpark.
            if !self.closed.load(Ordering::Acquire) {
                tokio::task::yield_now().await;
            }
            self.scheduled.store(false, Ordering::Release);
            let batch = std::mem::take(&mut *self.outbox.lock());
            for p in batch {
                let diff = p.into_diff();
                let call = std::panic::AssertUnwindSafe(|| handler.handle_diff(diff));
                if std::panic::catch_unwind(call).is_err() {
                    // A panicking handler loses that one diff, not every later one.
                    tracing::error!("tracker diff handler panicked; the diff was dropped");
                }
            }
            if self.closed.load(Ordering::Acquire) && self.outbox.lock().is_empty() {
                break;
            }
        }
    }
}

/// The shared part of a shard: its state and the queues into its tasks.
///
/// The engine is private to this module: reads go through [`Shard::read`], and every change goes
/// through a [`ShardWriter`], which mutates and queues the resulting diff under the same lock.
pub(crate) struct Shard {
    engine: RwLock<Engine>,
    dispatch: Arc<Dispatch>,
    pub(crate) exits: mpsc::UnboundedSender<Pid>,
    pub(crate) stopped: AtomicBool,
    events: broadcast::Sender<ReplicaEvent>,
}

impl Drop for Shard {
    fn drop(&mut self) {
        self.dispatch.closed.store(true, Ordering::Release);
        self.dispatch.notify.notify_one();
    }
}

/// Most ended processes handled under one write lock.
const EXIT_BATCH: usize = 4096;

/// Capacity of the shard's pubsub mailbox (peer messages waiting to be handled).
const MAILBOX: usize = 65_536;

impl Shard {
    /// The engine for queries (the read lock: many readers, never behind a queue of writes).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Engine> {
        self.engine.read()
    }

    /// The engine for one change: the write lock, held until the writer is dropped.
    pub(crate) fn write(&self) -> ShardWriter<'_> {
        ShardWriter {
            engine: self.engine.write(),
            dispatch: &self.dispatch,
        }
    }
}

/// The only way to change a shard: holds its write lock, and each operation queues its diff
/// before the lock is released, so the dispatch order is the order of the state changes by
/// construction.
pub(crate) struct ShardWriter<'a> {
    engine: RwLockWriteGuard<'a, Engine>,
    dispatch: &'a Dispatch,
}

impl ShardWriter<'_> {
    /// Adds a local presence (`track`) and queues its join.
    pub(crate) fn join(
        &mut self,
        pid: Pid,
        topic: &str,
        key: &str,
        meta: Meta,
        phx_ref: PhxRef,
    ) -> Result<(), AlreadyTracked> {
        let entry = self
            .engine
            .state_mut()
            .join(pid, topic, key, meta, phx_ref)?;
        self.dispatch.push(QueuedDiff::Join(entry));
        Ok(())
    }

    /// Removes a local presence (`untrack`) and queues its leave; false if it was not tracked.
    pub(crate) fn leave(&mut self, pid: Pid, topic: &str, key: &str) -> bool {
        match self.engine.state_mut().leave(pid, topic, key) {
            Some(entry) => {
                self.dispatch.push(QueuedDiff::Leave(entry));
                true
            }
            None => false,
        }
    }

    /// Removes every local presence of the `pids` (untrack all, processes ended) and queues the
    /// leaves as one diff.
    pub(crate) fn leave_pids(&mut self, pids: impl IntoIterator<Item = Pid>) {
        let mut leaves = Vec::new();
        for pid in pids {
            self.engine.state_mut().leave_pid_into(pid, &mut leaves);
        }
        self.queue_changes(Vec::new(), leaves);
    }

    /// Replaces the meta of a local presence (`update`) with what `meta` computes from the
    /// current one, and queues the join and leave as one diff. When `meta` refuses, nothing
    /// changes and its error is returned.
    pub(crate) fn leave_join<E: From<NoPresence>>(
        &mut self,
        pid: Pid,
        topic: &str,
        key: &str,
        meta: impl FnOnce(&Meta) -> Result<Meta, E>,
        phx_ref: PhxRef,
    ) -> Result<(), E> {
        let (new, old) = self
            .engine
            .state_mut()
            .try_leave_join(pid, topic, key, meta, phx_ref)?;
        self.dispatch.push(QueuedDiff::Update { new, old });
        Ok(())
    }

    /// One tick of the protocol at `now`; the changes it made are queued, the rest returned.
    pub(crate) fn tick(&mut self, now: u64) -> Output {
        let out = self.engine.tick(now);
        self.queue_output(out)
    }

    /// A message from a peer at `now`; the changes it made are queued, the rest returned.
    pub(crate) fn handle(&mut self, message: Message, now: u64) -> Output {
        let out = self.engine.handle(message, now);
        self.queue_output(out)
    }

    fn queue_output(&mut self, mut out: Output) -> Output {
        let changes = std::mem::take(&mut out.changes);
        self.queue_changes(changes.joins, changes.leaves);
        out
    }

    fn queue_changes(&mut self, joins: Vec<Entry>, leaves: Vec<Entry>) {
        if !joins.is_empty() || !leaves.is_empty() {
            self.dispatch.push(QueuedDiff::Batch { joins, leaves });
        }
    }
}

/// Everything a shard task needs.
pub(crate) struct ShardTask {
    pub(crate) shard: Arc<Shard>,
    pub(crate) pubsub: PubSub,
    pub(crate) topic: Arc<str>,
    pub(crate) period: Duration,
    pub(crate) epoch: Instant,
    pub(crate) exits: mpsc::UnboundedReceiver<Pid>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
}

/// Creates a shard and its dispatcher task; the caller spawns [`ShardTask::run`].
pub(crate) fn new_shard(
    engine: Engine,
    handler: Arc<dyn DiffHandler>,
    events: broadcast::Sender<ReplicaEvent>,
) -> (Arc<Shard>, mpsc::UnboundedReceiver<Pid>) {
    let dispatch = Arc::new(Dispatch {
        outbox: Mutex::new(Vec::new()),
        scheduled: AtomicBool::new(false),
        notify: Notify::new(),
        closed: AtomicBool::new(false),
    });
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    let d = dispatch.clone();
    tokio::spawn(async move { d.run(handler).await });
    let shard = Arc::new(Shard {
        engine: RwLock::new(engine),
        dispatch,
        exits: exit_tx,
        stopped: AtomicBool::new(false),
        events,
    });
    (shard, exit_rx)
}

impl ShardTask {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn send(&self, from: &pubsub::Mailbox, messages: Vec<Outbound>) {
        for m in messages {
            match m {
                Outbound::Broadcast(msg) => {
                    let bytes = Bytes::from(wire::encode(&msg));
                    self.pubsub.broadcast_from(from, &self.topic, bytes);
                }
                Outbound::Direct { to, message } => {
                    let bytes = Bytes::from(wire::encode(&message));
                    self.pubsub.direct_broadcast(&to, &self.topic, bytes);
                }
            }
        }
    }

    fn log_events(&self, events: &[ReplicaEvent]) {
        for e in events {
            let _ = self.shard.events.send(e.clone());
            match e {
                ReplicaEvent::Up(r) => {
                    tracing::info!(topic = %self.topic, replica = ?r, "replica up")
                }
                ReplicaEvent::Down(r) => {
                    tracing::warn!(topic = %self.topic, replica = ?r, "replica down")
                }
                ReplicaEvent::Permdown(r) => {
                    tracing::info!(topic = %self.topic, replica = ?r, "replica permdown")
                }
            }
        }
    }

    /// Runs until the tracker is dropped or gracefully permdowned.
    pub(crate) async fn run(mut self) {
        let (mut mailbox, mut inbox) = self.pubsub.mailbox(MAILBOX);
        self.pubsub.subscribe(&self.topic, &mailbox);
        let jitter_max = (self.period.as_millis() as u64) / 4;
        let jitter = Duration::from_millis(rand::random_range(0..=jitter_max));
        let mut ticks = tokio::time::interval_at(Instant::now() + jitter, self.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pids = Vec::with_capacity(EXIT_BATCH);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let now = self.now();
                    let mut out = self.shard.write().tick(now);
                    self.log_events(&out.events);
                    self.send(&mailbox, std::mem::take(&mut out.messages));
                }
                received = inbox.recv() => match received {
                    Ok(message) => {
                        let decoded = match wire::decode(&message.payload) {
                            Ok(m) => m,
                            Err(error) => {
                                tracing::warn!(topic = %self.topic, %error, "dropping undecodable tracker message");
                                continue;
                            }
                        };
                        let now = self.now();
                        if let Message::TransferReq { id, from, clocks } = &decoded {
                            // Answering only reads: queries keep running meanwhile.
                            let answer = {
                                let engine = self.shard.read();
                                (!engine.ignores(&decoded))
                                    .then(|| engine.answer_transfer(*id, from, clocks))
                            };
                            self.send(&mailbox, answer.into_iter().collect());
                            continue;
                        }
                        let mut out = self.shard.write().handle(decoded, now);
                        self.log_events(&out.events);
                        self.send(&mailbox, std::mem::take(&mut out.messages));
                    }
                    Err(Closed::Lagged) => {
                        tracing::warn!(topic = %self.topic, "tracker shard fell behind peer messages; resubscribing (anti-entropy repairs what was lost)");
                        let (m, i) = self.pubsub.mailbox(MAILBOX);
                        self.pubsub.subscribe(&self.topic, &m);
                        mailbox = m;
                        inbox = i;
                    }
                },
                count = self.exits.recv_many(&mut pids, EXIT_BATCH) => {
                    if count == 0 {
                        continue;
                    }
                    self.shard.write().leave_pids(pids.drain(..));
                }
                control = self.control.recv() => match control {
                    None => break,
                    Some(Control::GracefulPermdown(done)) => {
                        self.shard.stopped.store(true, Ordering::Release);
                        let message: Message = self.shard.read().graceful_permdown();
                        self.send(&mailbox, vec![Outbound::Broadcast(message)]);
                        let _ = done.send(());
                        break;
                    }
                },
            }
        }
        self.pubsub.unsubscribe(&self.topic, &mailbox);
    }
}
