//! The topic → subscribers table, split into shards so that subscribing 100k connections does not
//! serialize on one lock, and the local fan-out of a message.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use rustc_hash::{FxBuildHasher, FxHashMap};

use crate::message::MailboxId;
use crate::message::Message;
use crate::queue::{Full, MailboxShared};

const SHARDS: usize = 64;

type Subscribers = FxHashMap<MailboxId, Arc<MailboxShared>>;

/// Counters a node exposes about its fan-out.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) lagged: AtomicU64,
}

pub(crate) struct Registry {
    shards: Vec<RwLock<FxHashMap<Arc<str>, Subscribers>>>,
    pub(crate) counters: Counters,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(FxHashMap::default()))
                .collect(),
            counters: Counters::default(),
        }
    }

    fn shard(&self, topic: &str) -> &RwLock<FxHashMap<Arc<str>, Subscribers>> {
        &self.shards[(FxBuildHasher.hash_one(topic) as usize) % SHARDS]
    }

    pub(crate) fn subscribe(&self, topic: &str, mailbox: &Arc<MailboxShared>) {
        if mailbox.is_lagged() {
            return;
        }
        let topic: Arc<str> = {
            let mut topics = mailbox.topics.lock();
            match topics.get(topic) {
                Some(_) => return,
                None => {
                    let topic: Arc<str> = Arc::from(topic);
                    topics.insert(topic.clone());
                    topic
                }
            }
        };
        let mut shard = self.shard(&topic).write();
        shard
            .entry(topic)
            .or_default()
            .insert(mailbox.id, mailbox.clone());
    }

    pub(crate) fn unsubscribe(&self, topic: &str, mailbox: &MailboxShared) {
        if mailbox.topics.lock().remove(topic) {
            self.remove_entry(topic, mailbox.id);
        }
    }

    pub(crate) fn unsubscribe_all(&self, mailbox: &MailboxShared) {
        let topics: Vec<Arc<str>> = mailbox.topics.lock().drain().collect();
        for topic in topics {
            self.remove_entry(&topic, mailbox.id);
        }
    }

    fn remove_entry(&self, topic: &str, id: MailboxId) {
        let mut shard = self.shard(topic).write();
        if let Some(subscribers) = shard.get_mut(topic) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                shard.remove(topic);
            }
        }
    }

    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic).read().get(topic).map_or(0, |s| s.len())
    }

    /// Hands `message` to every local subscriber of its topic except its sender.
    pub(crate) fn dispatch(&self, message: Message) {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        let message = Arc::new(message);
        let mut cut_off: Vec<Arc<MailboxShared>> = Vec::new();
        let mut delivered = 0u64;
        {
            let shard = self.shard(&message.topic).read();
            let Some(subscribers) = shard.get(&message.topic) else {
                return;
            };
            for (id, mailbox) in subscribers {
                if Some(*id) == message.from {
                    continue;
                }
                match mailbox.try_push(message.clone()) {
                    Ok(()) => delivered += 1,
                    Err(Full) => {
                        if mailbox.mark_lagged() {
                            cut_off.push(mailbox.clone());
                        }
                    }
                }
            }
        }
        self.counters
            .delivered
            .fetch_add(delivered, Ordering::Relaxed);
        for mailbox in cut_off {
            if mailbox.is_lagged() {
                self.counters.lagged.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    topic = %message.topic,
                    mailbox = ?mailbox.id,
                    "subscriber dropped: its queue was full"
                );
            }
            self.unsubscribe_all(&mailbox);
        }
    }
}
