//! One client connection, independent of its transport: the socket rules of the Phoenix protocol
//! (spec §2.6) as a state machine that takes inbound frames, pubsub messages and queued events, and
//! leaves the frames to send in [`Link::out`].
//!
//! The WebSocket and LongPoll transports own a [`Connection`] each and only move bytes: they feed
//! it, then write out what it produced.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use pubsub::{Inbox, Mailbox};
use rustc_hash::FxHashMap;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::codec::{
    self, Frame, FrameKind, HEARTBEAT, JsonObject, Message, OutPayload, PHOENIX_TOPIC, PHX_JOIN,
    PHX_LEAVE, Payload, Serializer,
};
use crate::server::channel::{Channel, Info, Outcome, Reply, StopReason};
use crate::server::context::{ConnEvent, Context};
use crate::server::endpoint::{self, DISCONNECT, Endpoint};
use crate::server::socket::{Assigns, Socket};

/// Why a connection is being closed, as a WebSocket close code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseReason {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
}

impl CloseReason {
    /// `disconnect` broadcast to the socket id; 1001 so that phoenix.js reconnects.
    pub(crate) const DISCONNECTED: CloseReason = CloseReason {
        code: 1001,
        reason: "disconnected",
    };
    /// Nothing received for the idle timeout.
    pub(crate) const IDLE: CloseReason = CloseReason {
        code: 1001,
        reason: "idle timeout",
    };
    /// The server is draining for a restart; the client reconnects (elsewhere).
    pub(crate) const DRAIN: CloseReason = CloseReason {
        code: 1012,
        reason: "service restart",
    };
    /// The client could not keep up with its messages.
    pub(crate) const LAGGED: CloseReason = CloseReason {
        code: 1013,
        reason: "too slow: message queue overflowed",
    };
}

/// What the transport should do after feeding the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Continue,
    Close(CloseReason),
}

/// The connection-wide facilities a channel callback reaches through its [`Context`].
pub(crate) struct Link {
    pub(crate) serializer: Serializer,
    pub(crate) endpoint: Endpoint,
    pub(crate) mailbox: Mailbox,
    pub(crate) assigns: Assigns,
    /// Frames waiting to be written by the transport.
    pub(crate) out: Vec<Frame>,
    /// Topics subscribed by channels beyond their own, to the channel topics that asked.
    extra: FxHashMap<Arc<str>, Vec<Arc<str>>>,
    events_tx: Option<mpsc::UnboundedSender<ConnEvent>>,
    pub(crate) events_rx: Option<mpsc::UnboundedReceiver<ConnEvent>>,
}

impl Link {
    fn send(&mut self, frame: Result<Frame, codec::EncodeError>, what: &str, topic: &str) {
        match frame {
            Ok(frame) => self.out.push(frame),
            Err(error) => tracing::error!(%error, topic, what, "frame could not be encoded"),
        }
    }

    pub(crate) fn push(
        &mut self,
        join_ref: Option<Arc<str>>,
        topic: &str,
        event: &str,
        payload: &OutPayload,
    ) {
        let frame = codec::Push {
            join_ref: join_ref.as_deref(),
            topic,
            event,
            payload,
        }
        .encode(self.serializer);
        self.send(frame, event, topic);
    }

    fn reply(&mut self, join_ref: Option<&str>, ref_: Option<&str>, topic: &str, reply: &Reply) {
        let frame = codec::Reply {
            join_ref,
            ref_,
            topic,
            status: reply.status,
            response: &reply.payload,
        }
        .encode(self.serializer);
        self.send(frame, "phx_reply", topic);
    }

    pub(crate) fn subscribe_extra(&mut self, channel_topic: &Arc<str>, topic: &str) {
        let askers = self.extra.entry(Arc::from(topic)).or_default();
        if !askers.contains(channel_topic) {
            askers.push(channel_topic.clone());
        }
        self.endpoint.pubsub().subscribe(topic, &self.mailbox);
    }

    pub(crate) fn unsubscribe_extra(&mut self, channel_topic: &Arc<str>, topic: &str) {
        if let Some(askers) = self.extra.get_mut(topic) {
            askers.retain(|t| t != channel_topic);
            if askers.is_empty() {
                self.extra.remove(topic);
                self.endpoint.pubsub().unsubscribe(topic, &self.mailbox);
            }
        }
    }

    fn unsubscribe_all_extra(&mut self, channel_topic: &Arc<str>) {
        let topics: Vec<Arc<str>> = self
            .extra
            .iter()
            .filter(|(_, askers)| askers.contains(channel_topic))
            .map(|(topic, _)| topic.clone())
            .collect();
        for topic in topics {
            self.unsubscribe_extra(channel_topic, &topic);
        }
    }

    pub(crate) fn events(&mut self) -> mpsc::UnboundedSender<ConnEvent> {
        if let Some(tx) = &self.events_tx {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.events_tx = Some(tx.clone());
        self.events_rx = Some(rx);
        tx
    }
}

struct Joined {
    join_ref: Option<Arc<str>>,
    channel: Box<dyn Channel>,
}

/// One client connection's channels and the rules that govern them.
pub(crate) struct Connection {
    pub(crate) link: Link,
    channels: FxHashMap<Arc<str>, Joined>,
    socket: Arc<dyn Socket>,
    socket_id: Option<Arc<str>>,
}

fn reason_payload(reason: &str) -> OutPayload {
    let mut map = serde_json::Map::new();
    map.insert("reason".to_owned(), Value::String(reason.to_owned()));
    OutPayload::Json(JsonObject::from_map(&map))
}

fn same_join(msg_join_ref: Option<&str>, joined: &Joined) -> bool {
    msg_join_ref.is_none_or(|r| joined.join_ref.as_deref() == Some(r))
}

impl Connection {
    /// A connection whose `connect` succeeded; returns it with the inbox the transport must poll.
    pub(crate) fn new(
        endpoint: Endpoint,
        socket: Arc<dyn Socket>,
        serializer: Serializer,
        assigns: Assigns,
    ) -> (Connection, Inbox) {
        let (mailbox, inbox) = endpoint
            .pubsub()
            .mailbox(endpoint.config().mailbox_capacity);
        let socket_id = socket.id(&assigns).map(Arc::<str>::from);
        if let Some(id) = &socket_id {
            endpoint.pubsub().subscribe(id, &mailbox);
        }
        endpoint.metrics().connection_opened();
        endpoint.connection_opened();
        let connection = Connection {
            link: Link {
                serializer,
                endpoint,
                mailbox,
                assigns,
                out: Vec::new(),
                extra: FxHashMap::default(),
                events_tx: None,
                events_rx: None,
            },
            channels: FxHashMap::default(),
            socket,
            socket_id,
        };
        (connection, inbox)
    }

    /// Handles one frame from the client.
    pub(crate) async fn handle_frame(&mut self, kind: FrameKind, data: Bytes) -> Control {
        self.link.endpoint.metrics().message_in();
        let message = match self.link.serializer.decode(kind, data) {
            Ok(message) => message,
            Err(error) => {
                // Nothing in the frame can be trusted to address a reply; the connection and its
                // channels stay up.
                self.link.endpoint.metrics().malformed_frame();
                tracing::warn!(%error, "malformed frame from client ignored");
                return Control::Continue;
            }
        };
        if message.topic == PHOENIX_TOPIC && message.event == HEARTBEAT {
            self.link.out.push(
                self.link
                    .serializer
                    .heartbeat_reply(message.ref_.as_deref()),
            );
            return Control::Continue;
        }
        match message.event.as_str() {
            PHX_JOIN => self.join(message).await,
            PHX_LEAVE => self.leave(message).await,
            _ => self.handle_in(message).await,
        }
        Control::Continue
    }

    async fn join(&mut self, message: Message) {
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        let join_ref: Option<Arc<str>> = message
            .join_ref
            .as_deref()
            .or(message.ref_.as_deref())
            .map(Arc::from);
        let ref_ = message.ref_.as_deref();
        if let Some(existing) = self.channels.remove(&topic) {
            tracing::debug!(%topic, "duplicate join: closing the previous channel");
            self.end(&topic, existing, StopReason::DuplicateJoin).await;
        }
        if self.channels.len() >= self.link.endpoint.config().max_channels {
            let reply = Reply::error(reason_payload("too many channels joined"));
            self.link.reply(join_ref.as_deref(), ref_, &topic, &reply);
            return;
        }
        let Some(mut channel) = self.socket.channel(&topic) else {
            tracing::warn!(%topic, "join refused: no channel serves this topic");
            let reply = Reply::error(reason_payload("unmatched topic"));
            self.link.reply(None, ref_, &topic, &reply);
            return;
        };
        let joined = {
            let mut ctx = Context {
                topic: &topic,
                join_ref: join_ref.as_ref(),
                msg_ref: ref_,
                link: &mut self.link,
            };
            AssertUnwindSafe(channel.join(&topic, message.payload, &mut ctx))
                .catch_unwind()
                .await
        };
        match joined {
            Ok(Ok(response)) => {
                self.link.endpoint.metrics().joined();
                self.link
                    .endpoint
                    .pubsub()
                    .subscribe(&topic, &self.link.mailbox);
                self.link
                    .reply(join_ref.as_deref(), ref_, &topic, &Reply::ok(response));
                let mut joined = Joined { join_ref, channel };
                let after = {
                    let mut ctx = Context {
                        topic: &topic,
                        join_ref: joined.join_ref.as_ref(),
                        msg_ref: None,
                        link: &mut self.link,
                    };
                    AssertUnwindSafe(joined.channel.after_join(&mut ctx))
                        .catch_unwind()
                        .await
                };
                self.channels.insert(topic.clone(), joined);
                self.settle(&topic, after).await;
            }
            Ok(Err(response)) => {
                self.link.unsubscribe_all_extra(&topic);
                self.link
                    .reply(join_ref.as_deref(), ref_, &topic, &Reply::error(response));
            }
            Err(_) => {
                self.link.endpoint.metrics().channel_crashed();
                tracing::error!(%topic, "channel panicked while joining");
                self.link.unsubscribe_all_extra(&topic);
                let reply = Reply::error(reason_payload("join crashed"));
                self.link.reply(join_ref.as_deref(), ref_, &topic, &reply);
            }
        }
    }

    async fn leave(&mut self, message: Message) {
        let ref_ = message.ref_.as_deref();
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        let current = self
            .channels
            .get(&topic)
            .map(|joined| same_join(message.join_ref.as_deref(), joined));
        match current {
            Some(true) => {
                let Some(joined) = self.channels.remove(&topic) else {
                    return;
                };
                let join_ref = joined.join_ref.clone();
                self.link.reply(
                    join_ref.as_deref(),
                    ref_,
                    &topic,
                    &Reply::ok(OutPayload::empty()),
                );
                self.end(&topic, joined, StopReason::Left).await;
            }
            // A leave for an older join of this topic: the client raced a server close.
            Some(false) => {}
            None => self.link.reply(
                message.join_ref.as_deref(),
                ref_,
                &topic,
                &Reply::ok(OutPayload::empty()),
            ),
        }
    }

    async fn handle_in(&mut self, message: Message) {
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        let ref_ = message.ref_.as_deref();
        let Some(joined) = self.channels.get_mut(&topic) else {
            let reply = Reply::error(reason_payload("unmatched topic"));
            self.link
                .reply(message.join_ref.as_deref(), ref_, &topic, &reply);
            return;
        };
        if !same_join(message.join_ref.as_deref(), joined) {
            // Addressed to an earlier join of this topic: stale, dropped as Phoenix does.
            return;
        }
        let join_ref = joined.join_ref.clone();
        let outcome = {
            let mut ctx = Context {
                topic: &topic,
                join_ref: join_ref.as_ref(),
                msg_ref: ref_,
                link: &mut self.link,
            };
            AssertUnwindSafe(
                joined
                    .channel
                    .handle_in(&message.event, message.payload, &mut ctx),
            )
            .catch_unwind()
            .await
        };
        match outcome {
            Ok(Outcome::NoReply) => {}
            Ok(Outcome::Reply(reply)) => {
                self.link.reply(join_ref.as_deref(), ref_, &topic, &reply);
            }
            Ok(Outcome::Stop(reason, reply)) => {
                if let Some(reply) = reply {
                    self.link.reply(join_ref.as_deref(), ref_, &topic, &reply);
                }
                if let Some(joined) = self.channels.remove(&topic) {
                    self.end(&topic, joined, reason).await;
                }
            }
            Err(_) => self.crashed(&topic, &message.event),
        }
    }

    /// Applies the result of a callback that may ask to stop, or may have panicked.
    ///
    /// Ending the channel runs in a boxed future: it is rare, and this function sits inside the
    /// broadcast path, whose future every idle connection's task reserves room for.
    async fn settle(
        &mut self,
        topic: &Arc<str>,
        result: Result<Result<(), StopReason>, Box<dyn std::any::Any + Send>>,
    ) {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                if let Some(joined) = self.channels.remove(topic) {
                    Box::pin(self.end(topic, joined, reason)).await;
                }
            }
            Err(_) => self.crashed(topic, "callback"),
        }
    }

    /// A callback panicked: the channel is gone, its client is told `phx_error` and will rejoin.
    fn crashed(&mut self, topic: &Arc<str>, during: &str) {
        self.link.endpoint.metrics().channel_crashed();
        tracing::error!(%topic, during, "channel panicked; sending phx_error");
        if let Some(joined) = self.channels.remove(topic) {
            self.forget(topic);
            let frame = self
                .link
                .serializer
                .channel_error(joined.join_ref.as_deref(), topic);
            self.link.out.push(frame);
            drop(joined);
        }
    }

    fn forget(&mut self, topic: &Arc<str>) {
        self.link.unsubscribe_all_extra(topic);
        if !self.link.extra.contains_key(topic) {
            self.link
                .endpoint
                .pubsub()
                .unsubscribe(topic, &self.link.mailbox);
        }
    }

    /// Ends a channel that was removed from the table: `terminate` on graceful ends, then
    /// `phx_close` or `phx_error` to the client.
    async fn end(&mut self, topic: &Arc<str>, mut joined: Joined, reason: StopReason) {
        if reason.is_graceful() {
            let terminated = {
                let mut ctx = Context {
                    topic,
                    join_ref: joined.join_ref.as_ref(),
                    msg_ref: None,
                    link: &mut self.link,
                };
                AssertUnwindSafe(joined.channel.terminate(&reason, &mut ctx))
                    .catch_unwind()
                    .await
            };
            if terminated.is_err() {
                tracing::error!(%topic, "channel panicked in terminate");
            }
        }
        self.forget(topic);
        let frame = if reason.is_graceful() {
            self.link
                .serializer
                .close(joined.join_ref.as_deref(), topic)
        } else {
            tracing::warn!(%topic, ?reason, "channel stopped with an error");
            self.link
                .serializer
                .channel_error(joined.join_ref.as_deref(), topic)
        };
        if reason != StopReason::Closed {
            self.link.out.push(frame);
        }
    }

    /// Handles a message published on a topic this connection subscribed to.
    pub(crate) async fn handle_message(&mut self, message: Arc<pubsub::Message>) -> Control {
        let topic = message.topic.clone();
        if self.socket_id.as_deref() == Some(&*topic) {
            if endpoint::decode(&message.payload).is_some_and(|b| b.event() == DISCONNECT) {
                return Control::Close(CloseReason::DISCONNECTED);
            }
            return Control::Continue;
        }
        if self.channels.contains_key(&topic) {
            self.deliver_broadcast(&topic, &message).await;
        }
        let askers = self.link.extra.get(&topic).cloned().unwrap_or_default();
        for asker in askers {
            self.info(&asker, None, Info::PubSub(message.clone())).await;
        }
        Control::Continue
    }

    async fn deliver_broadcast(&mut self, topic: &Arc<str>, message: &pubsub::Message) {
        let Some(broadcast) = endpoint::decode(&message.payload) else {
            tracing::warn!(%topic, "message on a channel topic is not a broadcast; ignored");
            return;
        };
        let Some(joined) = self.channels.get_mut(topic) else {
            return;
        };
        let event = broadcast.event().to_owned();
        let intercepted = broadcast.frame.kind == FrameKind::Text
            && joined.channel.intercepts().contains(&event.as_str());
        if intercepted {
            let payload = match Serializer::V2.decode(broadcast.frame.kind, broadcast.frame.data) {
                Ok(Message {
                    payload: Payload::Json(value),
                    ..
                }) => value,
                _ => return,
            };
            let join_ref = joined.join_ref.clone();
            let result = {
                let mut ctx = Context {
                    topic,
                    join_ref: join_ref.as_ref(),
                    msg_ref: None,
                    link: &mut self.link,
                };
                AssertUnwindSafe(joined.channel.handle_out(&event, payload, &mut ctx))
                    .catch_unwind()
                    .await
            };
            self.settle(topic, result).await;
            return;
        }
        match (self.link.serializer, broadcast.frame.kind) {
            (Serializer::V2, _) => self.link.out.push(broadcast.frame),
            (Serializer::V1, FrameKind::Text) => {
                let data = message.derived(|payload| {
                    endpoint::decode(payload)
                        .and_then(|b| codec::v2_to_v1(&b.frame).ok())
                        .map(|f| f.data)
                        .unwrap_or_default()
                });
                if !data.is_empty() {
                    self.link.out.push(Frame {
                        kind: FrameKind::Text,
                        data,
                    });
                }
            }
            (Serializer::V1, FrameKind::Binary) => {}
        }
    }

    async fn info(&mut self, topic: &Arc<str>, join_ref: Option<&Arc<str>>, info: Info) {
        let Some(joined) = self.channels.get_mut(topic) else {
            return;
        };
        if join_ref.is_some() && join_ref != joined.join_ref.as_ref() {
            return;
        }
        let own_join_ref = joined.join_ref.clone();
        let result = {
            let mut ctx = Context {
                topic,
                join_ref: own_join_ref.as_ref(),
                msg_ref: None,
                link: &mut self.link,
            };
            AssertUnwindSafe(joined.channel.handle_info(info, &mut ctx))
                .catch_unwind()
                .await
        };
        self.settle(topic, result).await;
    }

    /// Handles a request queued from another task through a channel handle.
    pub(crate) async fn handle_event(&mut self, event: ConnEvent) -> Control {
        match event {
            ConnEvent::Info {
                topic,
                join_ref,
                info,
            } => {
                self.info(&topic, join_ref.as_ref(), Info::Custom(info))
                    .await
            }
            ConnEvent::Push {
                topic,
                join_ref,
                event,
                payload,
            } => {
                if self.is_current(&topic, join_ref.as_ref()) {
                    self.link.push(join_ref, &topic, &event, &payload);
                }
            }
            ConnEvent::Reply {
                topic,
                join_ref,
                ref_,
                reply,
            } => {
                if self.is_current(&topic, join_ref.as_ref()) {
                    self.link
                        .reply(join_ref.as_deref(), ref_.as_deref(), &topic, &reply);
                }
            }
        }
        Control::Continue
    }

    fn is_current(&self, topic: &str, join_ref: Option<&Arc<str>>) -> bool {
        self.channels
            .get(topic)
            .is_some_and(|j| j.join_ref.as_ref() == join_ref)
    }

    /// Ends every channel because the connection is going away.
    pub(crate) async fn close(&mut self) {
        let topics: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for topic in topics {
            if let Some(joined) = self.channels.remove(&topic) {
                self.end(&topic, joined, StopReason::Closed).await;
            }
        }
    }

    /// The frames produced so far, to be written by the transport.
    pub(crate) fn take_output(&mut self) -> std::vec::Drain<'_, Frame> {
        self.link.out.drain(..)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.link.endpoint.metrics().connection_closed();
        self.link.endpoint.connection_closed();
    }
}
