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
//!   state changed, so a slow handler never stalls replication. After a wake-up it lets changes
//!   accumulate for 1 ms, so a burst of operations costs one cross-thread wake-up, not one each.
//!
//! A diff is queued while the write lock is held, which is what makes the dispatch order equal to
//! the order of the state changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

use bytes::Bytes;
use parking_lot::RwLock;
use pubsub::{Closed, PubSub};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::engine::{Engine, Outbound, Output, ReplicaEvent};
use crate::presence::{Diff, Entry, Pid};
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
pub(crate) enum Pending {
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

impl Pending {
    fn into_diff(self) -> Diff {
        match self {
            Pending::Join(e) => Diff::from_entries(vec![e], Vec::new()),
            Pending::Leave(e) => Diff::from_entries(Vec::new(), vec![e]),
            Pending::Update { new, old } => Diff::from_entries(vec![new], vec![old]),
            Pending::Batch { joins, leaves } => Diff::from_entries(joins, leaves),
        }
    }
}

/// The queue between a shard and its dispatcher task. Writers push under the shard's write lock
/// (so the queue order is the state-change order) and wake the dispatcher only when it is not
/// already scheduled, so a burst of operations costs one wake-up, not one per operation.
struct Dispatch {
    outbox: Mutex<Vec<Pending>>,
    scheduled: AtomicBool,
    notify: Notify,
    closed: AtomicBool,
}

impl Dispatch {
    fn push(&self, p: Pending) {
        self.outbox.lock().push(p);
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.notify.notify_one();
        }
    }

    async fn run(&self, handler: Arc<dyn DiffHandler>) {
        loop {
            self.notify.notified().await;
            // Let a burst accumulate: while we wait, writers see `scheduled` and skip the wake-up,
            // so a stream of operations costs one wake-up per window instead of one each.
            if !self.closed.load(Ordering::Acquire) {
                tokio::time::sleep(DISPATCH_WINDOW).await;
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
pub(crate) struct Shard {
    pub(crate) engine: RwLock<Engine>,
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

/// How long the dispatcher lets diffs accumulate after a wake-up (the most a diff is delayed).
const DISPATCH_WINDOW: Duration = Duration::from_millis(1);

/// Most ended processes handled under one write lock.
const EXIT_BATCH: usize = 4096;

/// Capacity of the shard's pubsub mailbox (peer messages waiting to be handled).
const MAILBOX: usize = 65_536;

impl Shard {
    /// Queues a change for the handler (call with the write lock held).
    pub(crate) fn report(&self, p: Pending) {
        self.dispatch.push(p);
    }

    /// Queues joins and leaves, if any (call with the write lock held).
    pub(crate) fn report_changes(&self, joins: Vec<Entry>, leaves: Vec<Entry>) {
        if joins.is_empty() && leaves.is_empty() {
            return;
        }
        self.report(Pending::Batch { joins, leaves });
    }

    fn report_output(&self, out: &mut Output) {
        let changes = std::mem::take(&mut out.changes);
        self.report_changes(changes.joins, changes.leaves);
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
                    let mut out = {
                        let mut engine = self.shard.engine.write();
                        let mut out = engine.tick(now);
                        self.shard.report_output(&mut out);
                        out
                    };
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
                                let engine = self.shard.engine.read();
                                (!engine.ignores(&decoded))
                                    .then(|| engine.answer_transfer(*id, from, clocks))
                            };
                            self.send(&mailbox, answer.into_iter().collect());
                            continue;
                        }
                        let mut out = {
                            let mut engine = self.shard.engine.write();
                            let mut out = engine.handle(decoded, now);
                            self.shard.report_output(&mut out);
                            out
                        };
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
                    let mut engine = self.shard.engine.write();
                    let mut leaves = Vec::new();
                    for pid in pids.drain(..) {
                        engine.state_mut().leave_pid_into(pid, &mut leaves);
                    }
                    self.shard.report_changes(Vec::new(), leaves);
                }
                control = self.control.recv() => match control {
                    None => break,
                    Some(Control::GracefulPermdown(done)) => {
                        self.shard.stopped.store(true, Ordering::Release);
                        let message: Message = self.shard.engine.read().graceful_permdown();
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
