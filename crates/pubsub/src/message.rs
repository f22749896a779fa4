//! What subscribers receive.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// One published message, shared by every local subscriber of its topic.
///
/// A broadcast is wrapped in one `Arc<Message>` and the same allocation is handed to every mailbox
/// (Phoenix calls this fastlane): the payload is encoded once by the publisher, never per subscriber.
#[derive(Debug)]
pub struct Message {
    /// The topic it was published on.
    pub topic: Arc<str>,
    /// The opaque bytes the publisher gave.
    pub payload: Bytes,
    /// The mailbox that published it with a `*_from` operation; that mailbox does not receive it.
    pub from: Option<MailboxId>,
    derived: OnceLock<Bytes>,
}

impl Message {
    pub(crate) fn new(topic: Arc<str>, payload: Bytes, from: Option<MailboxId>) -> Self {
        Message {
            topic,
            payload,
            from,
            derived: OnceLock::new(),
        }
    }

    /// A second encoding of the payload, computed by the first subscriber that asks and then shared.
    ///
    /// A fan-out to subscribers that need another form of the payload (say, an older wire format)
    /// thereby converts once per node rather than once per subscriber. Every caller must pass the
    /// same conversion for a given message.
    pub fn derived(&self, convert: impl FnOnce(&Bytes) -> Bytes) -> Bytes {
        self.derived.get_or_init(|| convert(&self.payload)).clone()
    }
}

/// A cluster-wide unique name for a mailbox, carried with `*_from` broadcasts so that the sender is
/// skipped on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MailboxId {
    /// The incarnation of the node that made the mailbox.
    pub node: u64,
    /// A counter local to that node.
    pub local: u64,
}
