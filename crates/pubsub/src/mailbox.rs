//! Mailboxes: where a subscriber's messages wait, and how a slow subscriber is cut off.
//!
//! A subscriber (typically one client connection) owns one [`Inbox`] and hands clones of its
//! [`Mailbox`] to [`PubSub::subscribe`](crate::PubSub::subscribe) for as many topics as it likes;
//! messages of all those topics arrive in the one inbox, in publish order per publisher.
//!
//! The queue is bounded. A publisher never waits for a subscriber: when a mailbox is full the
//! subscriber is considered unable to keep up, it is unsubscribed from everything, and its next
//! [`Inbox::recv`] answers [`Closed::Lagged`] so its owner can disconnect the client and say why.
//! Dropping the inbox unsubscribes the mailbox from every topic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use tokio::sync::mpsc;

use crate::message::Message;
use crate::registry::Registry;

/// A cluster-wide unique name for a mailbox, carried with `*_from` broadcasts so that the sender is
/// skipped on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailboxId {
    /// The incarnation of the node that made the mailbox.
    pub node: u64,
    /// A counter local to that node.
    pub local: u64,
}

/// Why an inbox yields no more messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    /// The queue overflowed: the subscriber fell behind and was unsubscribed from every topic.
    #[error("subscriber could not keep up: its queue of messages was full and it was unsubscribed")]
    Lagged,
    /// Every mailbox handle was dropped; nothing can arrive any more.
    #[error("mailbox closed: every handle to it was dropped")]
    Dropped,
}

pub(crate) struct MailboxShared {
    pub(crate) id: MailboxId,
    pub(crate) tx: mpsc::Sender<Arc<Message>>,
    lagged: AtomicBool,
    pub(crate) topics: Mutex<FxHashSet<Arc<str>>>,
}

impl MailboxShared {
    pub(crate) fn mark_lagged(&self) -> bool {
        !self.lagged.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}

/// The sending side of a subscriber's queue: what topics are subscribed with.
#[derive(Clone)]
pub struct Mailbox {
    pub(crate) shared: Arc<MailboxShared>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Mailbox {
    /// This mailbox's cluster-wide id (what [`Message::from`] is compared with).
    pub fn id(&self) -> MailboxId {
        self.shared.id
    }

    /// True once the subscriber was cut off for falling behind.
    pub fn is_lagged(&self) -> bool {
        self.shared.is_lagged()
    }

    /// The topics this mailbox is subscribed to right now.
    pub fn topics(&self) -> Vec<Arc<str>> {
        self.shared.topics.lock().iter().cloned().collect()
    }
}

/// The receiving side of a subscriber's queue.
pub struct Inbox {
    rx: mpsc::Receiver<Arc<Message>>,
    shared: Arc<MailboxShared>,
    registry: Arc<Registry>,
}

impl Inbox {
    pub(crate) fn new(id: MailboxId, capacity: usize, registry: Arc<Registry>) -> (Mailbox, Inbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(MailboxShared {
            id,
            tx,
            lagged: AtomicBool::new(false),
            topics: Mutex::new(FxHashSet::default()),
        });
        let mailbox = Mailbox {
            shared: shared.clone(),
        };
        (
            mailbox,
            Inbox {
                rx,
                shared,
                registry,
            },
        )
    }

    /// The next message, or why none will come.
    ///
    /// Cancel-safe: dropping the future loses no message, so it can sit in a `tokio::select!`.
    pub async fn recv(&mut self) -> Result<Arc<Message>, Closed> {
        if self.shared.is_lagged() {
            return Err(Closed::Lagged);
        }
        self.rx.recv().await.ok_or(Closed::Dropped)
    }

    /// A message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Arc<Message>, Closed>> {
        if self.shared.is_lagged() {
            return Some(Err(Closed::Lagged));
        }
        match self.rx.try_recv() {
            Ok(message) => Some(Ok(message)),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => Some(Err(Closed::Dropped)),
        }
    }

    /// The mailbox feeding this inbox.
    pub fn mailbox(&self) -> Mailbox {
        Mailbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.registry.unsubscribe_all(&self.shared);
    }
}
