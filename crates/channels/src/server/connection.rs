//! One client connection, independent of its transport: the socket rules of the Phoenix protocol
//! (spec §2.6) as a state machine that takes inbound frames, pubsub messages and queued events, and
//! leaves the frames to send in [`Link::out`].
//!
//! The WebSocket and LongPoll transports own a [`Connection`] each and only move bytes: they feed
//! it, then write out what it produced. The channel test kit (`crate::testing`) drives one the
//! same way through in-memory queues.
//!
//! # Every channel runs on its own
//!
//! Phoenix runs each channel as a process: messages to one channel are handled one at a time, in
//! order, and a slow `handle_in` delays nothing else. Here a channel's callbacks (`after_join`,
//! `handle_in`, `handle_out`, `handle_info`) run as futures that own the channel and a [`Scope`]
//! (what the [`Context`] needs), never a borrow of the connection. Starting one, the connection
//! polls it once in place: a callback that does not await (nearly all of them) completes there and
//! costs no more than a direct call. One that awaits is parked in [`Connection::running`], a
//! `FuturesUnordered` the transport's task polls beside the socket, the pubsub inbox and its
//! timers, so heartbeats, broadcasts and the other channels go on. While a channel's callback is
//! parked, its further work waits in its own backlog (bounded by
//! [`EndpointConfig::channel_backlog`](crate::server::EndpointConfig); an overflow closes the
//! connection like a slow consumer) and runs, in order, when the callback returns.
//!
//! A task per channel would give the same independence, but at a task and a queue per joined
//! topic, paid by every idle shopper; this way an idle channel costs a few words in its table
//! entry, and a connection the `FuturesUnordered` only once one of its callbacks has awaited.
//! Broadcasts that the channel does not intercept go straight to the client, as Phoenix's
//! fastlane does, even while the channel is busy. `join` and `terminate` run in place, as in
//! Phoenix, where the socket waits for a channel's join.
//!
//! Why one file of about 950 lines: the socket rules are one state machine over one table of
//! joined channels, and each transition (join, leave, inbound event, reply, broadcast, heartbeat,
//! timeout, close) reads and updates that table and the outbound queue together. What stands apart
//! already lives beside it: the channel trait ([`channel`](super::channel)), the callbacks' handle
//! ([`context`](super::context)), the socket's `connect` ([`socket`](super::socket)), limits and
//! metrics.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};
use pubsub::{Inbox, Mailbox};
use rustc_hash::FxHashMap;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::codec::{
    self, Frame, FrameKind, HEARTBEAT, JsonObject, Message, OutPayload, PHOENIX_TOPIC, PHX_JOIN,
    PHX_LEAVE, Payload, Ref, Serializer,
};
use crate::server::assigns::Assigns;
use crate::server::channel::{Channel, Info, Outcome, StopReason};
use crate::server::context::{ConnEvent, Context, Scope};
use crate::server::endpoint::{self, DISCONNECT, Endpoint};
use crate::server::log_limit::limited_warn;
use crate::server::reply::Reply;
use crate::server::socket::Socket;

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
    /// The connection joined no channel within the join timeout.
    pub(crate) const NO_JOIN: CloseReason = CloseReason {
        code: 1008,
        reason: "no channel joined",
    };
    /// A channel's callback could not keep up with the work queued for it.
    pub(crate) const BACKLOG: CloseReason = CloseReason {
        code: 1013,
        reason: "too slow: channel backlog overflowed",
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
    pub(crate) events_tx: Option<mpsc::UnboundedSender<ConnEvent>>,
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
        join_ref: Option<&Ref>,
        topic: &str,
        event: &str,
        payload: &OutPayload,
    ) {
        let frame = codec::Push {
            join_ref: join_ref.map(Ref::view),
            topic,
            event,
            payload,
        }
        .encode(self.serializer);
        self.send(frame, event, topic);
    }

    fn reply(&mut self, join_ref: Option<&Ref>, ref_: Option<&Ref>, topic: &str, reply: &Reply) {
        let frame = codec::Reply {
            join_ref: join_ref.map(Ref::view),
            ref_: ref_.map(Ref::view),
            topic,
            status: reply.status,
            response: &reply.payload,
        }
        .encode(self.serializer);
        self.send(frame, "phx_reply", topic);
    }

    /// What a callback about to run needs of the connection.
    fn scope(&self) -> Scope {
        Scope {
            serializer: self.serializer,
            endpoint: self.endpoint.clone(),
            mailbox: self.mailbox.clone(),
            assigns: self.assigns.clone(),
            out: Vec::new(),
            subscriptions: Vec::new(),
            events: self.events_tx.clone(),
            new_events: None,
        }
    }

    /// Applies what a callback of `topic` did: its frames, its subscriptions, the handle queue
    /// it created.
    fn absorb(&mut self, topic: &Arc<str>, scope: Scope) {
        let Scope {
            mut out,
            subscriptions,
            events,
            new_events,
            ..
        } = scope;
        self.out.append(&mut out);
        for (other, subscribe) in subscriptions {
            if subscribe {
                self.subscribe_extra(topic, &other);
            } else {
                self.unsubscribe_extra(topic, &other);
            }
        }
        if let Some(rx) = new_events {
            match (&self.events_tx, events) {
                (None, Some(tx)) => {
                    self.events_tx = Some(tx);
                    self.events_rx = Some(rx);
                }
                // Two callbacks running at once each made a queue: the later one's handles
                // are forwarded to the connection's.
                (Some(tx), _) => {
                    let tx = tx.clone();
                    let mut rx = rx;
                    tokio::spawn(async move {
                        while let Some(event) = rx.recv().await {
                            if tx.send(event).is_err() {
                                break;
                            }
                        }
                    });
                }
                (None, None) => {}
            }
        }
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
}

/// Work for a channel: run now if the channel is idle, queued in its backlog if not.
enum Job {
    AfterJoin,
    In {
        event: String,
        payload: Payload,
        ref_: Option<Ref>,
    },
    Out {
        event: String,
        payload: Value,
    },
    Info(Info),
    Leave {
        ref_: Option<Ref>,
    },
}

/// What a callback returned.
enum Ran {
    In { outcome: Outcome, ref_: Option<Ref> },
    Settled(Result<(), StopReason>),
}

type Panic = Box<dyn std::any::Any + Send>;

/// A finished callback: the channel it owned, the scope it used, and its result.
pub(crate) struct Done {
    topic: Arc<str>,
    id: u64,
    channel: Box<dyn Channel>,
    scope: Scope,
    result: Result<Ran, Panic>,
}

/// A callback that awaited, polled by the connection's task until it is [`Done`].
pub(crate) type Running = Pin<Box<dyn Future<Output = Done> + Send>>;

/// Runs one job's callback on a channel it owns meanwhile.
fn run(
    topic: Arc<str>,
    id: u64,
    join_ref: Option<Ref>,
    mut channel: Box<dyn Channel>,
    mut scope: Scope,
    job: Job,
) -> Running {
    Box::pin(async move {
        let result = {
            let msg_ref = match &job {
                Job::In { ref_, .. } => ref_.clone(),
                _ => None,
            };
            let mut ctx = Context {
                topic: &topic,
                join_ref: join_ref.as_ref(),
                msg_ref: msg_ref.as_ref(),
                scope: &mut scope,
            };
            let channel = &mut channel;
            AssertUnwindSafe(async move {
                match job {
                    Job::AfterJoin => Ran::Settled(channel.after_join(&mut ctx).await),
                    Job::In {
                        event,
                        payload,
                        ref_,
                    } => {
                        let started = Instant::now();
                        let outcome = channel.handle_in(&event, payload, &mut ctx).await;
                        let took = started.elapsed();
                        ctx.scope.endpoint.metrics().handle_in(&event, took);
                        Ran::In { outcome, ref_ }
                    }
                    Job::Out { event, payload } => {
                        Ran::Settled(channel.handle_out(&event, payload, &mut ctx).await)
                    }
                    Job::Info(info) => Ran::Settled(channel.handle_info(info, &mut ctx).await),
                    // Leaves are handled by the connection, never run here.
                    Job::Leave { .. } => Ran::Settled(Ok(())),
                }
            })
            .catch_unwind()
            .await
        };
        Done {
            topic,
            id,
            channel,
            scope,
            result,
        }
    })
}

struct Joined {
    /// Tells this instance from a later join of the same topic (join_refs may be null).
    id: u64,
    join_ref: Option<Ref>,
    intercepts: &'static [&'static str],
    /// `None` while one of its callbacks runs.
    channel: Option<Box<dyn Channel>>,
    /// Work waiting for that callback to return.
    backlog: VecDeque<Job>,
}

/// One client connection's channels and the rules that govern them.
pub(crate) struct Connection {
    pub(crate) link: Link,
    channels: FxHashMap<Arc<str>, Joined>,
    /// Callbacks that awaited; created when the first one does.
    pub(crate) running: Option<FuturesUnordered<Running>>,
    next_id: u64,
    /// Whether a join ever succeeded (for the join deadline).
    joined_once: bool,
    socket: Arc<dyn Socket>,
    socket_id: Option<Arc<str>>,
}

fn reason_payload(reason: &str) -> OutPayload {
    let mut map = serde_json::Map::new();
    map.insert("reason".to_owned(), Value::String(reason.to_owned()));
    OutPayload::Json(JsonObject::from_map(&map))
}

fn same_join(msg_join_ref: Option<&Ref>, joined: &Joined) -> bool {
    msg_join_ref.is_none_or(|r| joined.join_ref.as_deref() == Some(r.as_str()))
}

/// Waits for the next parked callback to finish; never resolves when none is parked.
pub(crate) async fn next_done(running: &mut Option<FuturesUnordered<Running>>) -> Done {
    if let Some(running) = running
        && let Some(done) = running.next().await
    {
        return done;
    }
    std::future::pending().await
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
            running: None,
            next_id: 0,
            joined_once: false,
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
                // Nothing in the frame can be trusted to address a reply. Phoenix's socket crashes
                // on such a frame, taking every channel of the connection with it; here the frame
                // is dropped, counted, and logged at a bounded rate, and the connection and its
                // channels stay up: a client bug in one message costs that message only.
                self.link.endpoint.metrics().malformed_frame();
                limited_warn!(%error, "malformed frame from client ignored");
                return Control::Continue;
            }
        };
        if message.topic == PHOENIX_TOPIC && message.event == HEARTBEAT {
            self.link.out.push(
                self.link
                    .serializer
                    .heartbeat_reply(message.ref_.as_ref().map(Ref::view)),
            );
            return Control::Continue;
        }
        match message.event.as_str() {
            PHX_JOIN => {
                self.join(message).await;
                Control::Continue
            }
            PHX_LEAVE => self.leave(message).await,
            _ => self.handle_in(message).await,
        }
    }

    /// Whether a join ever succeeded on this connection.
    pub(crate) fn ever_joined(&self) -> bool {
        self.joined_once
    }

    /// Removes a channel from the table, forgetting its backlog.
    fn remove(&mut self, topic: &str) -> Option<Joined> {
        let joined = self.channels.remove(topic)?;
        if !joined.backlog.is_empty() {
            self.link
                .endpoint
                .metrics()
                .backlog_drained(joined.backlog.len());
        }
        Some(joined)
    }

    async fn join(&mut self, message: Message) {
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        // The reply echoes the join's own join_ref, null included; the channel goes by it, or by
        // the join's ref when it is null (V1 clients send none), as Phoenix does.
        let reply_join_ref = message.join_ref.as_ref();
        let join_ref: Option<Ref> = message.join_ref.clone().or_else(|| message.ref_.clone());
        let ref_ = message.ref_.as_ref();
        if let Some(existing) = self.remove(&topic) {
            tracing::debug!(%topic, "duplicate join: closing the previous channel");
            self.end(&topic, existing, StopReason::DuplicateJoin).await;
        }
        if self.channels.len() >= self.link.endpoint.config().max_channels {
            self.link
                .endpoint
                .metrics()
                .channel_join(&self.socket.route(&topic), "too_many_channels");
            let reply = Reply::error(reason_payload("too many channels joined"));
            self.link.reply(reply_join_ref, ref_, &topic, &reply);
            return;
        }
        let Some(mut channel) = self.socket.channel(&topic) else {
            limited_warn!(%topic, "join refused: no channel serves this topic");
            self.link
                .endpoint
                .metrics()
                .channel_join("unmatched", "unmatched");
            let reply = Reply::error(reason_payload("unmatched topic"));
            self.link.reply(None, ref_, &topic, &reply);
            return;
        };
        let mut scope = self.link.scope();
        let joined = {
            let mut ctx = Context {
                topic: &topic,
                join_ref: join_ref.as_ref(),
                msg_ref: ref_,
                scope: &mut scope,
            };
            AssertUnwindSafe(channel.join(&topic, message.payload, &mut ctx))
                .catch_unwind()
                .await
        };
        self.link.absorb(&topic, scope);
        let result = match &joined {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "crashed",
        };
        self.link
            .endpoint
            .metrics()
            .channel_join(&self.socket.route(&topic), result);
        match joined {
            Ok(Ok(response)) => {
                self.joined_once = true;
                self.link.endpoint.metrics().joined();
                self.link
                    .endpoint
                    .pubsub()
                    .subscribe(&topic, &self.link.mailbox);
                self.link
                    .reply(reply_join_ref, ref_, &topic, &Reply::ok(response));
                let id = self.next_id;
                self.next_id += 1;
                let joined = Joined {
                    id,
                    join_ref,
                    intercepts: channel.intercepts(),
                    channel: Some(channel),
                    backlog: VecDeque::new(),
                };
                self.channels.insert(topic.clone(), joined);
                self.start(&topic, Job::AfterJoin).await;
            }
            Ok(Err(response)) => {
                self.link.unsubscribe_all_extra(&topic);
                self.link
                    .reply(reply_join_ref, ref_, &topic, &Reply::error(response));
            }
            Err(_) => {
                self.link.endpoint.metrics().channel_crashed();
                tracing::error!(%topic, "channel panicked while joining");
                self.link.unsubscribe_all_extra(&topic);
                let reply = Reply::error(reason_payload("join crashed"));
                self.link.reply(reply_join_ref, ref_, &topic, &reply);
            }
        }
    }

    async fn leave(&mut self, message: Message) -> Control {
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        let current = self
            .channels
            .get(&topic)
            .map(|joined| same_join(message.join_ref.as_ref(), joined));
        match current {
            // In order with the channel's other messages.
            Some(true) => {
                self.dispatch(&topic, Job::Leave { ref_: message.ref_ })
                    .await
            }
            // A leave for an older join of this topic: the client raced a server close.
            Some(false) => Control::Continue,
            None => {
                self.link.reply(
                    message.join_ref.as_ref(),
                    message.ref_.as_ref(),
                    &topic,
                    &Reply::ok(OutPayload::empty()),
                );
                Control::Continue
            }
        }
    }

    async fn handle_in(&mut self, message: Message) -> Control {
        let topic: Arc<str> = Arc::from(message.topic.as_str());
        let Some(joined) = self.channels.get(&topic) else {
            // Phoenix answers a push to a topic not joined with a null join_ref.
            let reply = Reply::error(reason_payload("unmatched topic"));
            self.link.reply(None, message.ref_.as_ref(), &topic, &reply);
            return Control::Continue;
        };
        if !same_join(message.join_ref.as_ref(), joined) {
            // Addressed to an earlier join of this topic: stale, dropped as Phoenix does.
            return Control::Continue;
        }
        let job = Job::In {
            event: message.event,
            payload: message.payload,
            ref_: message.ref_,
        };
        self.dispatch(&topic, job).await
    }

    /// Runs `job` on the channel of `topic` now if it is idle, or queues it behind the callback
    /// that is running; a full backlog closes the connection.
    async fn dispatch(&mut self, topic: &Arc<str>, job: Job) -> Control {
        let Some(joined) = self.channels.get_mut(topic) else {
            return Control::Continue;
        };
        if joined.channel.is_some() && joined.backlog.is_empty() {
            self.start(topic, job).await;
            return Control::Continue;
        }
        let limit = self.link.endpoint.config().channel_backlog;
        if joined.backlog.len() >= limit {
            self.link.endpoint.metrics().backlog_overflowed();
            limited_warn!(%topic, limit, "channel backlog overflowed; closing the connection");
            return Control::Close(CloseReason::BACKLOG);
        }
        joined.backlog.push_back(job);
        self.link.endpoint.metrics().backlog_queued();
        Control::Continue
    }

    /// Runs `job`, then the channel's backlog, for as long as the callbacks complete without
    /// waiting; the first that waits is parked in [`Connection::running`].
    async fn start(&mut self, topic: &Arc<str>, mut job: Job) {
        loop {
            let Some(joined) = self.channels.get_mut(topic) else {
                return;
            };
            let Some(channel) = joined.channel.take() else {
                joined.backlog.push_front(job);
                self.link.endpoint.metrics().backlog_queued();
                return;
            };
            if let Job::Leave { ref_ } = job {
                joined.channel = Some(channel);
                self.leave_now(topic, ref_.as_ref()).await;
                return;
            }
            let mut running = run(
                topic.clone(),
                joined.id,
                joined.join_ref.clone(),
                channel,
                self.link.scope(),
                job,
            );
            match futures::poll!(running.as_mut()) {
                Poll::Ready(done) => self.complete(done).await,
                Poll::Pending => {
                    self.running
                        .get_or_insert_with(FuturesUnordered::new)
                        .push(running);
                    return;
                }
            }
            match self.next_job(topic) {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// The next job of an idle channel's backlog.
    fn next_job(&mut self, topic: &Arc<str>) -> Option<Job> {
        let joined = self.channels.get_mut(topic)?;
        joined.channel.as_ref()?;
        let job = joined.backlog.pop_front()?;
        self.link.endpoint.metrics().backlog_drained(1);
        Some(job)
    }

    /// A parked callback finished: apply it, then go on with its channel's backlog.
    pub(crate) async fn finished(&mut self, done: Done) -> Control {
        let topic = done.topic.clone();
        self.complete(done).await;
        if let Some(job) = self.next_job(&topic) {
            self.start(&topic, job).await;
        }
        Control::Continue
    }

    /// Applies a finished callback: puts its channel back and acts on its result.
    async fn complete(&mut self, done: Done) {
        let Done {
            topic,
            id,
            channel,
            scope,
            result,
        } = done;
        let Some(joined) = self.channels.get_mut(&topic).filter(|j| j.id == id) else {
            // The channel was replaced or closed while its callback ran: the instance ends here.
            return;
        };
        joined.channel = Some(channel);
        let join_ref = joined.join_ref.clone();
        self.link.absorb(&topic, scope);
        match result {
            Ok(Ran::In { outcome, ref_ }) => match outcome {
                Outcome::NoReply => {}
                Outcome::Reply(reply) => {
                    self.link
                        .reply(join_ref.as_ref(), ref_.as_ref(), &topic, &reply);
                }
                Outcome::Stop(reason, reply) => {
                    if let Some(reply) = reply {
                        self.link
                            .reply(join_ref.as_ref(), ref_.as_ref(), &topic, &reply);
                    }
                    if let Some(joined) = self.remove(&topic) {
                        Box::pin(self.end(&topic, joined, reason)).await;
                    }
                }
            },
            Ok(Ran::Settled(Ok(()))) => {}
            Ok(Ran::Settled(Err(reason))) => {
                if let Some(joined) = self.remove(&topic) {
                    Box::pin(self.end(&topic, joined, reason)).await;
                }
            }
            Err(_) => self.crashed(&topic),
        }
    }

    /// The client's `phx_leave`, when the channel's earlier messages are done.
    async fn leave_now(&mut self, topic: &Arc<str>, ref_: Option<&Ref>) {
        let Some(joined) = self.remove(topic) else {
            return;
        };
        let join_ref = joined.join_ref.clone();
        self.link.reply(
            join_ref.as_ref(),
            ref_,
            topic,
            &Reply::ok(OutPayload::empty()),
        );
        Box::pin(self.end(topic, joined, StopReason::Left)).await;
    }

    /// A callback panicked: the channel is gone, its client is told `phx_error` and will rejoin.
    fn crashed(&mut self, topic: &Arc<str>) {
        self.link.endpoint.metrics().channel_crashed();
        tracing::error!(%topic, "channel panicked; sending phx_error");
        if let Some(joined) = self.remove(topic) {
            self.forget(topic);
            let frame = self
                .link
                .serializer
                .channel_error(joined.join_ref.as_ref().map(Ref::view), topic);
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

    /// Ends a channel that was removed from the table: `terminate` on graceful ends (unless a
    /// callback of it is still running, which then ends with it), then `phx_close` or
    /// `phx_error` to the client.
    async fn end(&mut self, topic: &Arc<str>, joined: Joined, reason: StopReason) {
        if let (true, Some(mut channel)) = (reason.is_graceful(), joined.channel) {
            let mut scope = self.link.scope();
            let terminated = {
                let mut ctx = Context {
                    topic,
                    join_ref: joined.join_ref.as_ref(),
                    msg_ref: None,
                    scope: &mut scope,
                };
                AssertUnwindSafe(channel.terminate(&reason, &mut ctx))
                    .catch_unwind()
                    .await
            };
            if terminated.is_err() {
                tracing::error!(%topic, "channel panicked in terminate");
            }
            self.link.absorb(topic, scope);
        }
        self.forget(topic);
        let frame = if reason.is_graceful() {
            self.link
                .serializer
                .close(joined.join_ref.as_ref().map(Ref::view), topic)
        } else {
            tracing::warn!(%topic, ?reason, "channel stopped with an error");
            self.link
                .serializer
                .channel_error(joined.join_ref.as_ref().map(Ref::view), topic)
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
        if self.channels.contains_key(&topic)
            && let Control::Close(reason) = self.deliver_broadcast(&topic, &message).await
        {
            return Control::Close(reason);
        }
        let Some(askers) = self.link.extra.get(&topic).cloned() else {
            return Control::Continue;
        };
        for asker in askers {
            let info = Info::PubSub(message.clone());
            if let Control::Close(reason) = self.info(&asker, None, info).await {
                return Control::Close(reason);
            }
        }
        Control::Continue
    }

    async fn deliver_broadcast(&mut self, topic: &Arc<str>, message: &pubsub::Message) -> Control {
        let Some(broadcast) = endpoint::decode(&message.payload) else {
            tracing::warn!(%topic, "message on a channel topic is not a broadcast; ignored");
            return Control::Continue;
        };
        let Some(joined) = self.channels.get(topic) else {
            return Control::Continue;
        };
        let intercepted = broadcast.frame.kind == FrameKind::Text
            && joined.intercepts.contains(&broadcast.event());
        if intercepted {
            let event = broadcast.event().to_owned();
            let payload = match Serializer::V2.decode(broadcast.frame.kind, broadcast.frame.data) {
                Ok(Message {
                    payload: Payload::Json(value),
                    ..
                }) => value,
                _ => return Control::Continue,
            };
            return Box::pin(self.dispatch(topic, Job::Out { event, payload })).await;
        }
        match (self.link.serializer, broadcast.frame.kind) {
            (Serializer::V2, _) => {
                self.link.endpoint.metrics().broadcast_delivered();
                self.link.out.push(broadcast.frame);
            }
            (Serializer::V1, FrameKind::Text) => {
                let data = message.derived(|payload| {
                    endpoint::decode(payload)
                        .and_then(|b| codec::v2_to_v1(&b.frame).ok())
                        .map(|f| f.data)
                        .unwrap_or_default()
                });
                if !data.is_empty() {
                    self.link.endpoint.metrics().broadcast_delivered();
                    self.link.out.push(Frame {
                        kind: FrameKind::Text,
                        data,
                    });
                }
            }
            (Serializer::V1, FrameKind::Binary) => {}
        }
        Control::Continue
    }

    async fn info(&mut self, topic: &Arc<str>, join_ref: Option<&Ref>, info: Info) -> Control {
        let Some(joined) = self.channels.get(topic) else {
            return Control::Continue;
        };
        if join_ref.is_some() && join_ref != joined.join_ref.as_ref() {
            return Control::Continue;
        }
        Box::pin(self.dispatch(topic, Job::Info(info))).await
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
                    self.link.endpoint.metrics().pushed();
                    self.link.push(join_ref.as_ref(), &topic, &event, &payload);
                }
                Control::Continue
            }
            ConnEvent::Reply {
                topic,
                join_ref,
                ref_,
                reply,
            } => {
                if self.is_current(&topic, join_ref.as_ref()) {
                    self.link
                        .reply(join_ref.as_ref(), ref_.as_ref(), &topic, &reply);
                }
                Control::Continue
            }
        }
    }

    fn is_current(&self, topic: &str, join_ref: Option<&Ref>) -> bool {
        self.channels
            .get(topic)
            .is_some_and(|j| j.join_ref.as_ref() == join_ref)
    }

    /// Ends every channel because the connection is going away; callbacks still running are
    /// dropped with their channels.
    pub(crate) async fn close(&mut self) {
        self.running = None;
        let topics: Vec<Arc<str>> = self.channels.keys().cloned().collect();
        for topic in topics {
            if let Some(joined) = self.remove(&topic) {
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
        for joined in self.channels.values() {
            if !joined.backlog.is_empty() {
                self.link
                    .endpoint
                    .metrics()
                    .backlog_drained(joined.backlog.len());
            }
        }
        self.link.endpoint.metrics().connection_closed();
        self.link.endpoint.connection_closed();
    }
}
