//! The state of a broker adapter's link: up or down (and why), the status it gives
//! [`AdapterStatus`], the traffic counters behind [`AdapterStats`], and rate-limited logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::time::Instant;

use super::url::redact;
use crate::adapter::{AdapterStats, AdapterStatus};

/// Why frames to other nodes were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DropCause {
    /// The link is down.
    #[error("broker unreachable")]
    Unreachable,
    /// The send queue holds its most frames.
    #[error("send queue full")]
    QueueFull,
    /// The send queue holds its most bytes.
    #[error("send queue full (bytes)")]
    QueueBytes,
    /// The sender task ended (the adapter is being dropped).
    #[error("sender task stopped")]
    SenderStopped,
    /// The broker refused or the link broke while publishing.
    #[error("publish failed")]
    PublishFailed,
}

/// Drops are logged at most this often.
const DROP_LOG_PERIOD: Duration = Duration::from_secs(5);

#[derive(Default)]
struct DropLog {
    last: Option<Instant>,
    unlogged: u64,
}

struct Link {
    /// `None`: up. `Some(reason)`: down.
    down: Option<String>,
    ever_up: bool,
}

/// Status, counters and logs of one broker adapter, shared by its handle and its task.
pub(crate) struct LinkState {
    kind: &'static str,
    url: String,
    link: Mutex<Link>,
    status: watch::Sender<AdapterStatus>,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    dropped: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) queued_bytes: AtomicU64,
    reconnects: AtomicU64,
    drop_log: Mutex<DropLog>,
}

impl LinkState {
    /// A link not connected yet, of the adapter `kind` for `url`.
    pub(crate) fn new(kind: &'static str, url: &str) -> LinkState {
        let reason = format!("connecting to {}", redact(url));
        let (status, _) = watch::channel(AdapterStatus::Disconnected(reason.clone()));
        LinkState {
            kind,
            url: redact(url),
            link: Mutex::new(Link {
                down: Some(reason),
                ever_up: false,
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
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        self.kind
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

    fn publish_status(&self, link: &Link) {
        let next = match &link.down {
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

    /// The link is (again) established.
    pub(crate) fn up(&self) {
        let mut link = self.link.lock();
        if link.down.is_none() {
            return;
        }
        link.down = None;
        if link.ever_up {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        link.ever_up = true;
        self.publish_status(&link);
    }

    /// The link was lost (or could not be established) because of `reason`.
    pub(crate) fn down(&self, reason: impl std::fmt::Display) {
        let mut link = self.link.lock();
        let reason = reason.to_string();
        if link.down.as_deref() == Some(reason.as_str()) {
            return;
        }
        if link.down.is_some() {
            tracing::debug!(broker = self.kind, url = %self.url, %reason, "pubsub: broker still unreachable");
        }
        link.down = Some(reason);
        self.publish_status(&link);
    }

    /// Counts `n` frames lost and logs it (rate-limited).
    pub(crate) fn dropped(&self, n: u64, cause: DropCause) {
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
                %cause,
                "pubsub: frames to other nodes dropped"
            );
            log.last = Some(now);
            log.unlogged = 0;
        }
    }

    /// One frame of `bytes` (envelopes included) handed to the broker.
    pub(crate) fn sent(&self, bytes: usize) {
        self.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A broker message of `bytes` received.
    pub(crate) fn received_bytes(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A frame from another node delivered.
    pub(crate) fn received_frame(&self) {
        self.frames_received.fetch_add(1, Ordering::Relaxed);
    }
}
