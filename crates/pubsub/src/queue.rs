//! The bounded queue behind a mailbox: what publishers push into and the inbox pops from.
//!
//! Apart from [`mailbox`](crate::mailbox) because the registry pushes into it while the inbox, on
//! drop, asks the registry to forget it: each of the two depends on this, neither on the other.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::task::AtomicWaker;
use parking_lot::Mutex;
use rustc_hash::FxHashSet;

use crate::message::{MailboxId, Message};

/// Why [`MailboxShared::try_push`] refused a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// A deque this long after a burst is given back once it empties.
const SHRINK_ABOVE: usize = 64;

pub(crate) struct MailboxShared {
    pub(crate) id: MailboxId,
    pub(crate) queue: Mutex<VecDeque<Arc<Message>>>,
    capacity: usize,
    /// The inbox's task, woken when a message arrives or the mailbox lags.
    waker: AtomicWaker,
    lagged: AtomicBool,
    pub(crate) topics: Mutex<FxHashSet<Arc<str>>>,
}

impl MailboxShared {
    /// An empty queue of at most `capacity` messages (at least one).
    pub(crate) fn new(id: MailboxId, capacity: usize) -> Self {
        MailboxShared {
            id,
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            waker: AtomicWaker::new(),
            lagged: AtomicBool::new(false),
            topics: Mutex::new(FxHashSet::default()),
        }
    }

    /// Wakes the inbox's task `waker` at the next message or lag.
    pub(crate) fn register_waker(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    /// Queues `message` unless `capacity` messages already wait; never blocks on the consumer.
    pub(crate) fn try_push(&self, message: Arc<Message>) -> Result<(), Full> {
        {
            let mut queue = self.queue.lock();
            if queue.len() >= self.capacity {
                return Err(Full);
            }
            queue.push_back(message);
        }
        self.waker.wake();
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<Arc<Message>> {
        let mut queue = self.queue.lock();
        let message = queue.pop_front();
        if queue.is_empty() && queue.capacity() > SHRINK_ABOVE {
            *queue = VecDeque::new();
        }
        message
    }

    pub(crate) fn mark_lagged(&self) -> bool {
        let first = !self.lagged.swap(true, Ordering::AcqRel);
        self.waker.wake();
        first
    }

    pub(crate) fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }
}
