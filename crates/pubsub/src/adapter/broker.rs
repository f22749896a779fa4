//! What the broker adapters ([`redis`](super::redis), [`nats`](super::nats)) share.
//!
//! # Channels
//!
//! A cluster is a *name* (`?cluster=` in the URL, default [`DEFAULT_CLUSTER`]). Every node listens
//! on two broker channels (Redis channels, NATS subjects): one for the whole cluster, which carries
//! `broadcast`s, and one of its own, which carries the `direct_broadcast`s addressed to it, the way
//! phoenix_pubsub_redis does. Clusters with different names on one broker never see each other.
//!
//! # Envelope
//!
//! A [`frame`](super::frame) travels inside an envelope that names its origin (the node's
//! incarnation, so that a node ignores its own broadcasts coming back from the broker) and, when
//! the frame is larger than what one broker message may carry (`max_payload`: NATS refuses
//! messages over 1 MB by default), splits it into numbered chunks that the receiver reassembles:
//!
//! ```text
//! whole: version u8 = 1 | kind u8 = 0 | origin u64 BE | frame…
//! chunk: version u8 = 1 | kind u8 = 1 | origin u64 BE | message id u64 BE | index u32 BE | count u32 BE | part…
//! ```
//!
//! Reassembly is bounded: a message whose chunks do not all arrive within
//! [`REASSEMBLY_TIMEOUT`] is forgotten, and at most [`MAX_REASSEMBLY_BYTES`] wait at once.
//!
//! # Never blocking the publisher
//!
//! `broadcast` and `direct` put the envelope in a bounded queue (frames and bytes) read by one
//! sender task per node. When the queue is full, or the broker is unreachable, the frame is dropped
//! at once and counted ([`AdapterStats::dropped`]); drops are logged at most every few seconds.
//! Delivery is at most once, as with Phoenix's adapters; the tracker repairs what was lost by
//! anti-entropy, and the store reloads its inventory cache when the broker comes back.
//!
//! # Losing the broker
//!
//! Each connection to the broker is a *link* (Redis: one to publish, one to subscribe; NATS: one).
//! A lost link is retried with exponential back-off (from 100 ms up to `backoff_max_ms`, with
//! jitter); while any link is down the adapter's status is [`AdapterStatus::Disconnected`] with the
//! reason, which the node logs, exports as a metric and reports in its health check. The node goes
//! on serving its own clients meanwhile.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::{AdapterStats, AdapterStatus, Inbound};

/// The cluster name used when the URL names none.
pub const DEFAULT_CLUSTER: &str = "pubsub";

/// How long the chunks of one message may take to arrive before the message is forgotten.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of incomplete messages kept at once (pieces plus a small fixed cost per piece);
/// a chunk that would go beyond is dropped with the rest of its message.
pub const MAX_REASSEMBLY_BYTES: usize = 512 * 1024 * 1024;

/// Most chunks one message may have.
pub const MAX_CHUNKS: u32 = 1 << 16;

const VERSION: u8 = 1;
const WHOLE: u8 = 0;
const CHUNK: u8 = 1;
const WHOLE_HEADER: usize = 10;
const CHUNK_HEADER: usize = 26;

/// Tuning of a broker adapter, read from the query string of its URL.
///
/// | parameter | default | meaning |
/// |---|---|---|
/// | `cluster` | `pubsub` | cluster name: channel/subject prefix; nodes with the same name talk |
/// | `queue` | 65 536 | frames the send queue holds before dropping |
/// | `queue_bytes` | 256 MiB | bytes the send queue holds before dropping |
/// | `max_payload` | 1 MiB | largest broker message; bigger frames are chunked (NATS: at most the server's `max_payload`) |
/// | `ping_ms` | 2 000 | liveness probe of an idle link; a link silent for two probes is reconnected |
/// | `connect_timeout_ms` | 2 000 | one connection attempt |
/// | `backoff_max_ms` | 5 000 | longest wait between reconnection attempts |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerOptions {
    /// Cluster name.
    pub cluster: String,
    /// Send queue capacity in frames.
    pub queue: usize,
    /// Send queue capacity in bytes.
    pub queue_bytes: usize,
    /// Largest broker message (envelope included).
    pub max_payload: usize,
    /// Liveness probe period.
    pub ping: Duration,
    /// Timeout of one connection attempt.
    pub connect_timeout: Duration,
    /// Longest back-off between attempts.
    pub backoff_max: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            cluster: DEFAULT_CLUSTER.to_owned(),
            queue: 65_536,
            queue_bytes: 256 * 1024 * 1024,
            max_payload: 1024 * 1024,
            ping: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why a pubsub URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error(
        "PUBSUB_URL {url:?} is not a URL ({cause}); expected e.g. redis://127.0.0.1:6379 or nats://127.0.0.1:4222"
    )]
    Invalid {
        /// The URL given.
        url: String,
        /// Parser message.
        cause: String,
    },
    /// A scheme no adapter handles.
    #[error("PUBSUB_URL scheme {scheme:?} is not supported: use local, redis://… or nats://…")]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// A tuning parameter that is not a positive number, or a cluster name with odd characters.
    #[error("PUBSUB_URL parameter {name}={value:?} is invalid: {expected}")]
    Parameter {
        /// Parameter name.
        name: String,
        /// Value given.
        value: String,
        /// What is expected.
        expected: &'static str,
    },
}

/// Splits `url` into the URL the broker client is given (without this crate's parameters) and the
/// [`BrokerOptions`] they set.
pub fn parse_url(url: &str) -> Result<(url::Url, BrokerOptions), UrlError> {
    let mut parsed = url::Url::parse(url).map_err(|e| UrlError::Invalid {
        url: redact(url),
        cause: e.to_string(),
    })?;
    let mut options = BrokerOptions::default();
    let mut kept: Vec<(String, String)> = Vec::new();
    for (name, value) in parsed.query_pairs() {
        let number = |expected| {
            value
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| UrlError::Parameter {
                    name: name.to_string(),
                    value: value.to_string(),
                    expected,
                })
        };
        match &*name {
            "cluster" => {
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(UrlError::Parameter {
                        name: name.to_string(),
                        value: value.to_string(),
                        expected: "letters, digits, '_' or '-'",
                    });
                }
                options.cluster = value.to_string();
            }
            "queue" => options.queue = number("a positive number of frames")? as usize,
            "queue_bytes" => {
                options.queue_bytes = number("a positive number of bytes")? as usize;
            }
            "max_payload" => {
                let n = number("a number of bytes, at least 1024")?;
                if n < 1024 {
                    return Err(UrlError::Parameter {
                        name: name.to_string(),
                        value: value.to_string(),
                        expected: "a number of bytes, at least 1024",
                    });
                }
                options.max_payload = n as usize;
            }
            "ping_ms" => options.ping = Duration::from_millis(number("milliseconds > 0")?),
            "connect_timeout_ms" => {
                options.connect_timeout = Duration::from_millis(number("milliseconds > 0")?);
            }
            "backoff_max_ms" => {
                options.backoff_max = Duration::from_millis(number("milliseconds > 0")?);
            }
            _ => kept.push((name.to_string(), value.to_string())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed, options))
}

/// `url` without its password, for logs and error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// A node name made safe for a channel or subject token: ASCII letters, digits, `-` and `_` are
/// kept, every other byte becomes `~xx` (hex). Different names stay different.
pub fn name_token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02x}"));
        }
    }
    out
}

// ------------------------------------------------------------------------------------ envelope

/// Why bytes from the broker were not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its header.
    #[error("broker message truncated: {0} bytes")]
    Truncated(usize),
    /// Written by an incompatible version.
    #[error("broker envelope version {0} is not supported (this node speaks {VERSION})")]
    Version(u8),
    /// Unknown kind byte.
    #[error("broker envelope kind {0} is unknown")]
    Kind(u8),
    /// A chunk numbered outside its message, or a message of too many chunks.
    #[error("broker chunk {index} of {count} is out of range")]
    ChunkRange {
        /// Index given.
        index: u32,
        /// Count given.
        count: u32,
    },
}

/// A broker message taken apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    /// A frame in one piece.
    Whole {
        /// Incarnation of the sending node.
        origin: u64,
        /// The frame.
        frame: Bytes,
    },
    /// One piece of a frame.
    Chunk {
        /// Incarnation of the sending node.
        origin: u64,
        /// Message id, unique per origin.
        id: u64,
        /// Position of this piece.
        index: u32,
        /// Number of pieces.
        count: u32,
        /// The piece.
        part: Bytes,
    },
}

impl Envelope {
    /// The sender's incarnation.
    pub fn origin(&self) -> u64 {
        match self {
            Envelope::Whole { origin, .. } | Envelope::Chunk { origin, .. } => *origin,
        }
    }
}

/// The broker messages carrying `frame` from `origin`: one when it fits in `max_payload` bytes,
/// otherwise chunks of message `id`.
pub fn wrap(origin: u64, id: u64, frame: &[u8], max_payload: usize) -> Vec<Bytes> {
    if frame.len() + WHOLE_HEADER <= max_payload {
        let mut buf = BytesMut::with_capacity(WHOLE_HEADER + frame.len());
        buf.put_u8(VERSION);
        buf.put_u8(WHOLE);
        buf.put_u64(origin);
        buf.put_slice(frame);
        return vec![buf.freeze()];
    }
    let piece = max_payload.saturating_sub(CHUNK_HEADER).max(1);
    let count = frame.len().div_ceil(piece);
    frame
        .chunks(piece)
        .enumerate()
        .map(|(index, part)| {
            let mut buf = BytesMut::with_capacity(CHUNK_HEADER + part.len());
            buf.put_u8(VERSION);
            buf.put_u8(CHUNK);
            buf.put_u64(origin);
            buf.put_u64(id);
            buf.put_u32(index as u32);
            buf.put_u32(count as u32);
            buf.put_slice(part);
            buf.freeze()
        })
        .collect()
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Takes a broker message apart without copying its payload.
pub fn unwrap(message: Bytes) -> Result<Envelope, EnvelopeError> {
    let len = message.len();
    let header = message
        .get(..WHOLE_HEADER)
        .ok_or(EnvelopeError::Truncated(len))?;
    if header[0] != VERSION {
        return Err(EnvelopeError::Version(header[0]));
    }
    let origin = be_u64(&header[2..10]);
    match header[1] {
        WHOLE => Ok(Envelope::Whole {
            origin,
            frame: message.slice(WHOLE_HEADER..),
        }),
        CHUNK => {
            let chunk = message
                .get(WHOLE_HEADER..CHUNK_HEADER)
                .ok_or(EnvelopeError::Truncated(len))?;
            let id = be_u64(&chunk[0..8]);
            let index = be_u32(&chunk[8..12]);
            let count = be_u32(&chunk[12..16]);
            if count == 0 || index >= count || count > MAX_CHUNKS {
                return Err(EnvelopeError::ChunkRange { index, count });
            }
            Ok(Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part: message.slice(CHUNK_HEADER..),
            })
        }
        kind => Err(EnvelopeError::Kind(kind)),
    }
}

/// What one stored piece costs beyond its bytes (its map entry), charged to the budget so that
/// empty pieces are not free.
const PIECE_OVERHEAD: usize = 64;

struct Partial {
    /// The pieces received so far, by index. Filled as they come (no table sized by the announced
    /// count), so a first chunk announcing [`MAX_CHUNKS`] pieces costs no more than any other.
    parts: BTreeMap<u32, Bytes>,
    count: u32,
    /// What this message is charged: its pieces plus [`PIECE_OVERHEAD`] each.
    bytes: usize,
    started: Instant,
}

/// Puts chunked messages back together (one per receiving task; not shared).
pub struct Reassembler {
    partial: HashMap<(u64, u64), Partial>,
    bytes: usize,
    budget: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::with_budget(MAX_REASSEMBLY_BYTES)
    }
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_budget(budget: usize) -> Self {
        Reassembler {
            partial: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Bytes held for incomplete messages (their pieces plus a small fixed cost per piece); never
    /// more than [`MAX_REASSEMBLY_BYTES`].
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one chunk received at `now`; returns the whole frame once its last chunk arrived.
    /// Incomplete messages older than [`REASSEMBLY_TIMEOUT`] are forgotten on the way. A chunk
    /// that would take the pending bytes over [`MAX_REASSEMBLY_BYTES`] is dropped together with
    /// the rest of its message, which could never complete.
    pub fn push(
        &mut self,
        origin: u64,
        id: u64,
        index: u32,
        count: u32,
        part: Bytes,
        now: Instant,
    ) -> Option<Bytes> {
        self.expire(now);
        if count == 1 {
            return Some(part);
        }
        if index >= count {
            return None;
        }
        let key = (origin, id);
        let conflicting = self
            .partial
            .get(&key)
            .is_some_and(|entry| entry.count != count || entry.parts.contains_key(&index));
        if conflicting {
            return None;
        }
        let cost = part.len() + PIECE_OVERHEAD;
        if self.bytes + cost > self.budget {
            if let Some(dropped) = self.partial.remove(&key) {
                self.bytes -= dropped.bytes;
            }
            tracing::warn!(
                origin,
                id,
                pending_bytes = self.bytes,
                "too many incomplete chunked messages from other nodes; dropping one"
            );
            return None;
        }
        let entry = self.partial.entry(key).or_insert_with(|| Partial {
            parts: BTreeMap::new(),
            count,
            bytes: 0,
            started: now,
        });
        entry.parts.insert(index, part);
        entry.bytes += cost;
        self.bytes += cost;
        if entry.parts.len() < count as usize {
            return None;
        }
        let done = self.partial.remove(&key)?;
        self.bytes -= done.bytes;
        let mut frame = BytesMut::with_capacity(done.parts.values().map(Bytes::len).sum());
        for part in done.parts.into_values() {
            frame.put_slice(&part);
        }
        Some(frame.freeze())
    }

    fn expire(&mut self, now: Instant) {
        if self.partial.is_empty() {
            return;
        }
        let before = self.partial.len();
        let mut freed = 0;
        self.partial.retain(|_, p| {
            let keep = now.duration_since(p.started) < REASSEMBLY_TIMEOUT;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        if self.partial.len() < before {
            tracing::warn!(
                lost = before - self.partial.len(),
                "chunked messages from other nodes never completed; forgotten"
            );
        }
    }
}

// ------------------------------------------------------------------------------------ status

/// Which connection to the broker a status change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// Sends (Redis) or sends and receives (NATS).
    Publish = 0,
    /// Receives (Redis only).
    Subscribe = 1,
}

struct Links {
    /// `None`: up. `Some(reason)`: down.
    down: [Option<String>; 2],
    ever_up: [bool; 2],
}

/// Status, counters and logs of one broker adapter.
pub(crate) struct Shared {
    kind: &'static str,
    url: String,
    links: Mutex<Links>,
    status: watch::Sender<AdapterStatus>,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    queued_bytes: AtomicU64,
    reconnects: AtomicU64,
    drop_log: Mutex<DropLog>,
}

#[derive(Default)]
struct DropLog {
    last: Option<Instant>,
    unlogged: u64,
}

/// Drops are logged at most this often.
const DROP_LOG_PERIOD: Duration = Duration::from_secs(5);

impl Shared {
    /// A new adapter state; `links` is 1 (NATS) or 2 (Redis).
    pub(crate) fn new(kind: &'static str, url: &str, links: usize) -> Arc<Shared> {
        let reason = format!("connecting to {}", redact(url));
        let mut down = [None, None];
        for slot in down.iter_mut().take(links) {
            *slot = Some(reason.clone());
        }
        let (status, _) = watch::channel(AdapterStatus::Disconnected(reason));
        Arc::new(Shared {
            kind,
            url: redact(url),
            links: Mutex::new(Links {
                down,
                ever_up: [false; 2],
            }),
            status,
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            queued_bytes: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            drop_log: Mutex::new(DropLog::default()),
        })
    }

    pub(crate) fn status(&self) -> AdapterStatus {
        self.status.borrow().clone()
    }

    pub(crate) fn status_changes(&self) -> watch::Receiver<AdapterStatus> {
        self.status.subscribe()
    }

    pub(crate) fn is_connected(&self) -> bool {
        matches!(*self.status.borrow(), AdapterStatus::Connected)
    }

    pub(crate) fn stats(&self) -> AdapterStats {
        AdapterStats {
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
        }
    }

    fn recompute(&self, links: &Links) {
        let next = match links.down.iter().flatten().next() {
            None => AdapterStatus::Connected,
            Some(reason) => AdapterStatus::Disconnected(reason.clone()),
        };
        let previous = self.status.send_replace(next.clone());
        match (&previous, &next) {
            (AdapterStatus::Connected, AdapterStatus::Disconnected(reason)) => {
                tracing::warn!(
                    broker = self.kind,
                    url = %self.url,
                    %reason,
                    "pubsub: lost the broker; this node keeps serving its own clients, \
                     messages to other nodes are dropped until it is back (retrying)"
                );
            }
            (AdapterStatus::Disconnected(_), AdapterStatus::Connected) => {
                tracing::info!(broker = self.kind, url = %self.url, "pubsub: connected to the broker");
            }
            _ => {}
        }
    }

    /// A link is (again) established.
    pub(crate) fn link_up(&self, link: LinkKind) {
        let mut links = self.links.lock();
        let i = link as usize;
        if links.down[i].is_none() {
            return;
        }
        links.down[i] = None;
        if links.ever_up[i] {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        links.ever_up[i] = true;
        self.recompute(&links);
    }

    /// A link was lost (or could not be established) because of `reason`.
    pub(crate) fn link_down(&self, link: LinkKind, reason: impl std::fmt::Display) {
        let mut links = self.links.lock();
        let i = link as usize;
        let reason = reason.to_string();
        if links.down[i].as_deref() == Some(reason.as_str()) {
            return;
        }
        let was_up = links.down[i].is_none();
        if !was_up {
            tracing::debug!(broker = self.kind, url = %self.url, %reason, "pubsub: broker still unreachable");
        }
        links.down[i] = Some(reason);
        self.recompute(&links);
    }

    /// Counts `n` frames lost and logs it (rate-limited).
    pub(crate) fn dropped(&self, n: u64, why: &str) {
        if n == 0 {
            return;
        }
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let mut log = self.drop_log.lock();
        log.unlogged += n;
        let now = Instant::now();
        if log
            .last
            .is_none_or(|t| now.duration_since(t) >= DROP_LOG_PERIOD)
        {
            tracing::warn!(
                broker = self.kind,
                dropped = log.unlogged,
                total,
                why,
                "pubsub: frames to other nodes dropped"
            );
            log.last = Some(now);
            log.unlogged = 0;
        }
    }

    pub(crate) fn sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn received_bytes(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn received_frame(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------------------------------ queue

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every other node.
    Cluster,
    /// One node, by name.
    Node(Arc<str>),
}

/// A frame waiting for the sender task.
pub(crate) struct Outgoing {
    pub(crate) target: Target,
    pub(crate) frame: Bytes,
}

/// The publisher's side of the send queue.
pub(crate) struct Queue {
    tx: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
    max_bytes: u64,
}

/// The sender task's side of the send queue.
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Outgoing>,
    shared: Arc<Shared>,
}

pub(crate) fn queue(shared: Arc<Shared>, options: &BrokerOptions) -> (Queue, QueueRx) {
    let (tx, rx) = mpsc::channel(options.queue.max(1));
    (
        Queue {
            tx,
            shared: shared.clone(),
            max_bytes: options.queue_bytes as u64,
        },
        QueueRx { rx, shared },
    )
}

impl Queue {
    /// Queues `frame` for `target`, or drops it (counted) without waiting.
    pub(crate) fn push(&self, target: Target, frame: Bytes) {
        if !self.shared.is_connected() {
            self.shared.dropped(1, "broker unreachable");
            return;
        }
        let len = frame.len() as u64;
        let queued = self.shared.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if queued + len > self.max_bytes && queued > 0 {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.shared.dropped(1, "send queue full (bytes)");
            return;
        }
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.tx.try_send(Outgoing { target, frame }) {
            self.shared.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            let why = match error {
                mpsc::error::TrySendError::Full(_) => "send queue full",
                mpsc::error::TrySendError::Closed(_) => "sender task stopped",
            };
            self.shared.dropped(1, why);
        }
    }
}

impl QueueRx {
    /// Waits for frames (at most `limit`), appended to `into`; 0 once the adapter is gone.
    pub(crate) async fn recv_many(&mut self, into: &mut Vec<Outgoing>, limit: usize) -> usize {
        let n = self.rx.recv_many(into, limit).await;
        self.taken(&into[into.len() - n..]);
        n
    }

    /// Frames waiting now, without waiting.
    pub(crate) fn try_recv_many(&mut self, into: &mut Vec<Outgoing>, limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            match self.rx.try_recv() {
                Ok(out) => {
                    self.taken(std::slice::from_ref(&out));
                    into.push(out);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }

    fn taken(&self, frames: &[Outgoing]) {
        let bytes: u64 = frames.iter().map(|o| o.frame.len() as u64).sum();
        self.shared
            .queued
            .fetch_sub(frames.len() as u64, Ordering::Relaxed);
        self.shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

// ------------------------------------------------------------------------------------ receiving

/// Turns broker messages into deliveries: drops our own, reassembles chunks, counts.
pub(crate) struct Receiver {
    origin: u64,
    inbound: Inbound,
    shared: Arc<Shared>,
    reassembler: Reassembler,
}

impl Receiver {
    pub(crate) fn new(origin: u64, inbound: Inbound, shared: Arc<Shared>) -> Self {
        Receiver {
            origin,
            inbound,
            shared,
            reassembler: Reassembler::new(),
        }
    }

    /// Whether the node this adapter serves still exists.
    pub(crate) fn node_alive(&self) -> bool {
        self.inbound.inner.strong_count() > 0
    }

    /// Handles one broker message.
    pub(crate) fn handle(&mut self, message: Bytes) {
        self.shared.received_bytes(message.len());
        let envelope = match unwrap(message) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(broker = self.shared.kind, %error, "dropped a malformed broker message");
                return;
            }
        };
        if envelope.origin() == self.origin {
            return;
        }
        let frame = match envelope {
            Envelope::Whole { frame, .. } => frame,
            Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part,
            } => match self
                .reassembler
                .push(origin, id, index, count, part, Instant::now())
            {
                Some(frame) => frame,
                None => return,
            },
        };
        if self.inbound.deliver(frame) {
            self.shared.received_frame();
        }
    }
}

// ------------------------------------------------------------------------------------ back-off

/// Exponential back-off with jitter between reconnection attempts.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            next: BACKOFF_MIN.min(max),
            max,
        }
    }

    /// The delay before the next attempt (half to all of the current step), doubling the step.
    pub(crate) fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN.min(self.max);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_travel_whole_and_big_ones_in_chunks_that_reassemble() {
        let small = wrap(7, 1, b"hello", 1024);
        assert_eq!(small.len(), 1);
        assert_eq!(
            unwrap(small[0].clone()).unwrap(),
            Envelope::Whole {
                origin: 7,
                frame: Bytes::from_static(b"hello")
            }
        );
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let pieces = wrap(7, 42, &big, 1024);
        assert_eq!(pieces.len(), big.len().div_ceil(1024 - CHUNK_HEADER));
        assert!(pieces.iter().all(|p| p.len() <= 1024));
        let mut r = Reassembler::new();
        let now = Instant::now();
        let mut out = None;
        // Out of order and with a duplicate.
        let mut order: Vec<usize> = (0..pieces.len()).rev().collect();
        order.insert(1, pieces.len() - 1);
        for i in order {
            let Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part,
            } = unwrap(pieces[i].clone()).unwrap()
            else {
                panic!("chunk expected");
            };
            if let Some(frame) = r.push(origin, id, index, count, part, now) {
                assert!(out.is_none(), "delivered once");
                out = Some(frame);
            }
        }
        assert_eq!(out.unwrap(), Bytes::from(big));
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn incomplete_messages_expire() {
        let pieces = wrap(1, 9, &[0u8; 5000], 1024);
        let mut r = Reassembler::new();
        let t0 = Instant::now();
        let Envelope::Chunk {
            origin,
            id,
            index,
            count,
            part,
        } = unwrap(pieces[0].clone()).unwrap()
        else {
            panic!("chunk expected");
        };
        assert!(r.push(origin, id, index, count, part, t0).is_none());
        assert!(r.pending_bytes() > 0);
        let later = t0 + REASSEMBLY_TIMEOUT + Duration::from_secs(1);
        assert_eq!(
            r.push(2, 1, 0, 1, Bytes::from_static(b"x"), later),
            Some(Bytes::from_static(b"x"))
        );
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn empty_chunks_announcing_many_pieces_are_charged_to_the_budget() {
        // Each 26-byte chunk used to allocate a table of MAX_CHUNKS slots (2 MiB) that the budget
        // did not count: a few hundred of them held gigabytes.
        let budget = 10 * PIECE_OVERHEAD;
        let mut r = Reassembler::with_budget(budget);
        let now = Instant::now();
        for id in 0..1000 {
            assert!(r.push(1, id, 0, MAX_CHUNKS, Bytes::new(), now).is_none());
        }
        assert_eq!(r.partial.len(), 10);
        assert_eq!(r.pending_bytes(), budget);
        // A message outgrowing the budget is dropped whole and its bytes given back.
        let mut r = Reassembler::with_budget(3 * PIECE_OVERHEAD + 300);
        let piece = Bytes::from(vec![0u8; 100]);
        for index in 0..3 {
            assert!(r.push(1, 7, index, 4, piece.clone(), now).is_none());
        }
        assert_eq!(r.pending_bytes(), 3 * PIECE_OVERHEAD + 300);
        assert!(r.push(1, 7, 3, 4, piece, now).is_none());
        assert_eq!(r.pending_bytes(), 0);
        assert!(r.partial.is_empty());
    }

    #[test]
    fn chunks_out_of_their_message_are_ignored() {
        let mut r = Reassembler::new();
        let now = Instant::now();
        assert!(r.push(1, 1, 5, 2, Bytes::from_static(b"x"), now).is_none());
        assert!(r.push(1, 1, 0, 2, Bytes::from_static(b"a"), now).is_none());
        // Another count for the same message, or a duplicate, is ignored.
        assert!(r.push(1, 1, 1, 3, Bytes::from_static(b"z"), now).is_none());
        assert!(r.push(1, 1, 0, 2, Bytes::from_static(b"z"), now).is_none());
        assert_eq!(
            r.push(1, 1, 1, 2, Bytes::from_static(b"b"), now),
            Some(Bytes::from_static(b"ab"))
        );
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let whole = wrap(1, 1, b"x", 1024).remove(0);
        for cut in 0..WHOLE_HEADER {
            assert!(unwrap(whole.slice(..cut)).is_err());
        }
        let mut other = whole.to_vec();
        other[0] = 2;
        assert_eq!(unwrap(Bytes::from(other)), Err(EnvelopeError::Version(2)));
        let mut bad = wrap(1, 1, &[0u8; 3000], 1024).remove(0).to_vec();
        bad[22..26].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(
            unwrap(Bytes::from(bad)),
            Err(EnvelopeError::ChunkRange { .. })
        ));
    }

    #[test]
    fn urls_keep_the_broker_part_and_yield_options() {
        let (url, o) = parse_url(
            "redis://:secret@127.0.0.1:6379/0?cluster=shop-1&queue=10&max_payload=4096&ping_ms=50&protocol=resp2",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "redis://:secret@127.0.0.1:6379/0?protocol=resp2"
        );
        assert_eq!(o.cluster, "shop-1");
        assert_eq!(o.queue, 10);
        assert_eq!(o.max_payload, 4096);
        assert_eq!(o.ping, Duration::from_millis(50));
        let (url, o) = parse_url("nats://127.0.0.1:4222").unwrap();
        assert_eq!(url.as_str(), "nats://127.0.0.1:4222");
        assert_eq!(o, BrokerOptions::default());
        assert!(matches!(
            parse_url("nats://h?cluster=a.b"),
            Err(UrlError::Parameter { .. })
        ));
        assert!(matches!(
            parse_url("nats://h?queue=0"),
            Err(UrlError::Parameter { .. })
        ));
        assert!(matches!(
            parse_url("not a url"),
            Err(UrlError::Invalid { .. })
        ));
        assert_eq!(
            redact("redis://:secret@h:1/"),
            "redis://:***@h:1/".to_owned()
        );
    }

    #[test]
    fn node_names_become_safe_distinct_tokens() {
        assert_eq!(name_token("app-1_b"), "app-1_b");
        assert_eq!(name_token("a.b"), "a~2eb");
        assert_ne!(name_token("a.b"), name_token("a~2eb"));
        assert_eq!(name_token("a*>"), "a~2a~3e");
    }
}
