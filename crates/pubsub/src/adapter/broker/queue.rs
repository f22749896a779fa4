//! The bounded send queue between publishers (who never wait) and the adapter's task.
//!
//! Bounded in frames and in bytes; a frame that does not fit, or that is published while the
//! broker is unreachable, is dropped at once and counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::link::{DropCause, LinkState};
use super::url::BrokerOptions;

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
    link: Arc<LinkState>,
    max_bytes: u64,
}

/// The sender task's side of the send queue.
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Outgoing>,
    link: Arc<LinkState>,
}

pub(crate) fn queue(link: Arc<LinkState>, options: &BrokerOptions) -> (Queue, QueueRx) {
    let (tx, rx) = mpsc::channel(options.queue.max(1));
    (
        Queue {
            tx,
            link: link.clone(),
            max_bytes: options.queue_bytes as u64,
        },
        QueueRx { rx, link },
    )
}

impl Queue {
    /// Queues `frame` for `target`, or drops it (counted) without waiting.
    pub(crate) fn push(&self, target: Target, frame: Bytes) {
        if !self.link.is_connected() {
            self.link.dropped(1, DropCause::Unreachable);
            return;
        }
        let len = frame.len() as u64;
        let queued = self.link.queued_bytes.fetch_add(len, Ordering::AcqRel);
        if queued + len > self.max_bytes && queued > 0 {
            self.link.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.link.dropped(1, DropCause::QueueBytes);
            return;
        }
        self.link.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(error) = self.tx.try_send(Outgoing { target, frame }) {
            self.link.queued_bytes.fetch_sub(len, Ordering::AcqRel);
            self.link.queued.fetch_sub(1, Ordering::Relaxed);
            let cause = match error {
                mpsc::error::TrySendError::Full(_) => DropCause::QueueFull,
                mpsc::error::TrySendError::Closed(_) => DropCause::SenderStopped,
            };
            self.link.dropped(1, cause);
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
        self.link
            .queued
            .fetch_sub(frames.len() as u64, Ordering::Relaxed);
        self.link.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}
