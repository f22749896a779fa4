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
//!
//! The queue is a plain deque behind a lock with a waker beside it rather than a channel: an idle
//! subscriber (most client connections, most of the time) then costs a few dozen bytes and no
//! pre-allocated slots; the deque grows only while messages actually wait.

use std::sync::Arc;
use std::task::{Context, Poll};

pub use crate::message::MailboxId;
use crate::message::Message;
use crate::queue::MailboxShared;
use crate::registry::Registry;

/// Why an inbox yields no more messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    /// The queue overflowed: the subscriber fell behind and was unsubscribed from every topic.
    #[error("subscriber could not keep up: its queue of messages was full and it was unsubscribed")]
    Lagged,
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
    shared: Arc<MailboxShared>,
    registry: Arc<Registry>,
}

impl Inbox {
    pub(crate) fn new(id: MailboxId, capacity: usize, registry: Arc<Registry>) -> (Mailbox, Inbox) {
        let shared = Arc::new(MailboxShared::new(id, capacity));
        let mailbox = Mailbox {
            shared: shared.clone(),
        };
        (mailbox, Inbox { shared, registry })
    }

    /// The next message, or why none will come.
    ///
    /// Cancel-safe: dropping the future loses no message, so it can sit in a `tokio::select!`.
    /// The inbox holds its own mailbox, so it waits for as long as it lives: the only end of its
    /// messages is [`Closed::Lagged`].
    pub async fn recv(&mut self) -> Result<Arc<Message>, Closed> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Arc<Message>, Closed>> {
        if let Some(ready) = self.try_recv() {
            return Poll::Ready(ready);
        }
        self.shared.register_waker(cx.waker());
        // A message or the lag may have come between the first look and the registration.
        match self.try_recv() {
            Some(ready) => Poll::Ready(ready),
            None => Poll::Pending,
        }
    }

    /// A message if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Result<Arc<Message>, Closed>> {
        if self.shared.is_lagged() {
            return Some(Err(Closed::Lagged));
        }
        self.shared.pop().map(Ok)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::PubSub;

    fn message() -> Bytes {
        Bytes::from_static(b"x")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_inbox_is_woken_by_a_publish_from_another_task() {
        let pubsub = PubSub::new("a");
        let (mailbox, mut inbox) = pubsub.mailbox(8);
        pubsub.subscribe("t", &mailbox);
        let receiver = tokio::spawn(async move {
            let mut got = 0;
            while got < 1_000 {
                inbox.recv().await.expect("a message");
                got += 1;
            }
            got
        });
        for _ in 0..1_000 {
            pubsub.broadcast("t", message());
            // Publish no faster than the receiver drains, so the mailbox never lags.
            while mailbox.shared.queue.lock().len() >= 4 {
                tokio::task::yield_now().await;
            }
        }
        let got = tokio::time::timeout(Duration::from_secs(10), receiver)
            .await
            .expect("every publish woke the receiver")
            .expect("receiver task");
        assert_eq!(got, 1_000);
    }

    #[tokio::test]
    async fn a_cancelled_recv_loses_no_message() {
        let pubsub = PubSub::new("a");
        let (mailbox, mut inbox) = pubsub.mailbox(8);
        pubsub.subscribe("t", &mailbox);
        tokio::select! {
            biased;
            _ = inbox.recv() => panic!("nothing was published yet"),
            () = tokio::task::yield_now() => {}
        }
        pubsub.broadcast("t", message());
        assert!(inbox.recv().await.is_ok());
        assert!(inbox.try_recv().is_none());
    }

    #[tokio::test]
    async fn an_idle_mailbox_holds_no_queue_and_gives_a_burst_back() {
        let pubsub = PubSub::new("a");
        let (mailbox, mut inbox) = pubsub.mailbox(1_000);
        pubsub.subscribe("t", &mailbox);
        assert_eq!(mailbox.shared.queue.lock().capacity(), 0);
        for _ in 0..500 {
            pubsub.broadcast("t", message());
        }
        assert!(mailbox.shared.queue.lock().capacity() >= 500);
        for _ in 0..500 {
            assert!(inbox.recv().await.is_ok());
        }
        assert_eq!(mailbox.shared.queue.lock().capacity(), 0);
    }

    #[tokio::test]
    async fn a_lag_wakes_the_waiting_inbox() {
        let pubsub = PubSub::new("a");
        let (mailbox, mut inbox) = pubsub.mailbox(1);
        pubsub.subscribe("t", &mailbox);
        let shared = mailbox.shared.clone();
        let waiting = tokio::spawn(async move { inbox.recv().await });
        tokio::task::yield_now().await;
        assert!(shared.mark_lagged());
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the lag woke the inbox")
            .expect("task");
        assert_eq!(answer.err(), Some(Closed::Lagged));
    }
}
