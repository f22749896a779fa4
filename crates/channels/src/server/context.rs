//! What a channel callback can do: the [`Context`] it is handed, and the handles it can keep to act
//! later from other tasks ([`ChannelHandle`], [`ReplyRef`]).

use std::any::Any;
use std::sync::Arc;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use pubsub::Mailbox;

use crate::codec::{self, Frame, OutPayload, Ref, Serializer};
use crate::server::assigns::Assigns;
use crate::server::endpoint::Endpoint;
use crate::server::reply::Reply;

/// A request from outside the connection task, queued to it.
pub(crate) enum ConnEvent {
    Info {
        topic: Arc<str>,
        join_ref: Option<Ref>,
        info: Box<dyn Any + Send>,
    },
    Push {
        topic: Arc<str>,
        join_ref: Option<Ref>,
        event: String,
        payload: OutPayload,
    },
    Reply {
        topic: Arc<str>,
        join_ref: Option<Ref>,
        ref_: Option<Ref>,
        reply: Reply,
    },
}

/// What one running callback owns of its connection: everything a [`Context`] needs, so that a
/// callback that awaits holds no borrow of the connection, whose task goes on serving the socket's
/// other channels, its heartbeats and its broadcasts meanwhile. The connection applies what the
/// callback did (frames to send, subscriptions) when it returns.
pub(crate) struct Scope {
    pub(crate) serializer: Serializer,
    pub(crate) endpoint: Endpoint,
    pub(crate) mailbox: Mailbox,
    pub(crate) assigns: Assigns,
    /// Frames pushed by the callback, sent when it returns.
    pub(crate) out: Vec<Frame>,
    /// `(topic, subscribe?)` requests, applied in order when the callback returns.
    pub(crate) subscriptions: Vec<(String, bool)>,
    /// The connection's queue for [`ChannelHandle`]s, when it has one.
    pub(crate) events: Option<mpsc::UnboundedSender<ConnEvent>>,
    /// A queue this callback had to create because the connection had none yet.
    pub(crate) new_events: Option<mpsc::UnboundedReceiver<ConnEvent>>,
}

impl Scope {
    fn events(&mut self) -> mpsc::UnboundedSender<ConnEvent> {
        if let Some(tx) = &self.events {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(tx.clone());
        self.new_events = Some(rx);
        tx
    }
}

/// The view a channel callback has of its channel and connection.
pub struct Context<'a> {
    pub(crate) topic: &'a Arc<str>,
    pub(crate) join_ref: Option<&'a Ref>,
    pub(crate) msg_ref: Option<&'a Ref>,
    pub(crate) scope: &'a mut Scope,
}

impl Context<'_> {
    /// The channel's topic.
    pub fn topic(&self) -> &str {
        self.topic
    }

    /// The `ref` of the join that opened this channel instance.
    pub fn join_ref(&self) -> Option<&str> {
        self.join_ref.map(Ref::as_str)
    }

    /// What the socket's `connect` stored for this connection.
    pub fn assigns(&self) -> &Assigns {
        &self.scope.assigns
    }

    /// The endpoint, for broadcasts to other topics and access to pubsub.
    pub fn endpoint(&self) -> &Endpoint {
        &self.scope.endpoint
    }

    /// Sends `event` to this channel's client only. The frame leaves when the callback returns,
    /// in order with its reply; a callback that awaits for long and must tell its client
    /// something first pushes through a [`handle`](Context::handle) instead.
    pub fn push(&mut self, event: &str, payload: impl Into<OutPayload>) {
        let payload = payload.into();
        let frame = codec::Push {
            join_ref: self.join_ref.map(Ref::view),
            topic: self.topic,
            event,
            payload: &payload,
        }
        .encode(self.scope.serializer);
        match frame {
            Ok(frame) => {
                self.scope.endpoint.metrics().pushed();
                self.scope.out.push(frame);
            }
            Err(error) => {
                tracing::error!(%error, topic = %self.topic, event, "frame could not be encoded")
            }
        }
    }

    /// Sends `event` to every subscriber of this topic on every node, this client included.
    pub fn broadcast(&self, event: &str, payload: impl Into<OutPayload>) {
        self.scope
            .endpoint
            .broadcast(self.topic, event, &payload.into());
    }

    /// Sends `event` to every subscriber of this topic on every node except this client.
    pub fn broadcast_from(&self, event: &str, payload: impl Into<OutPayload>) {
        self.scope
            .endpoint
            .broadcast_from(&self.scope.mailbox, self.topic, event, &payload.into());
    }

    /// Delivers messages published on `topic` to this channel's
    /// [`handle_info`](crate::server::Channel::handle_info) until it ends or unsubscribes
    /// (from when the callback returns).
    pub fn subscribe(&mut self, topic: &str) {
        self.scope.subscriptions.push((topic.to_owned(), true));
    }

    /// Stops what [`subscribe`](Context::subscribe) started.
    pub fn unsubscribe(&mut self, topic: &str) {
        self.scope.subscriptions.push((topic.to_owned(), false));
    }

    /// A handle to reach this channel instance later from any task.
    pub fn handle(&mut self) -> ChannelHandle {
        ChannelHandle {
            tx: self.scope.events(),
            topic: self.topic.clone(),
            join_ref: self.join_ref.cloned(),
        }
    }

    /// Delivers `info` to this channel's [`handle_info`](crate::server::Channel::handle_info)
    /// as [`Info::Custom`](crate::server::Info) after `delay` (Phoenix's
    /// `Process.send_after(self(), info, delay)`). A channel that must act again and again
    /// re-arms it from `handle_info`. The message is dropped when the channel has ended by then
    /// (left, crashed, rejoined); the timer stops with the connection. Dropping the returned
    /// [`Timer`] does not cancel it; [`Timer::cancel`] does.
    pub fn send_after(&mut self, delay: Duration, info: impl Any + Send) -> Timer {
        let handle = self.handle();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    handle.send_info(info);
                }
                () = handle.tx.closed() => {}
            }
        });
        Timer(task.abort_handle())
    }

    /// A handle to answer the message being handled later (return
    /// [`Outcome::NoReply`](crate::server::Outcome::NoReply) now). `None` outside `handle_in`.
    pub fn reply_ref(&mut self) -> Option<ReplyRef> {
        let ref_ = self.msg_ref?.clone();
        Some(ReplyRef {
            handle: self.handle(),
            ref_,
        })
    }
}

/// Reaches one channel instance from any task: send it a message or push to its client.
///
/// Messages for an instance that has since ended (or been replaced by a rejoin) are dropped.
#[derive(Clone)]
pub struct ChannelHandle {
    tx: mpsc::UnboundedSender<ConnEvent>,
    topic: Arc<str>,
    join_ref: Option<Ref>,
}

impl ChannelHandle {
    /// Delivers `info` to the channel's `handle_info` as [`Info::Custom`](crate::server::Info).
    /// Returns false when the connection is gone.
    pub fn send_info(&self, info: impl Any + Send) -> bool {
        self.tx
            .send(ConnEvent::Info {
                topic: self.topic.clone(),
                join_ref: self.join_ref.clone(),
                info: Box::new(info),
            })
            .is_ok()
    }

    /// Pushes `event` to the channel's client. Returns false when the connection is gone.
    pub fn push(&self, event: &str, payload: impl Into<OutPayload>) -> bool {
        self.tx
            .send(ConnEvent::Push {
                topic: self.topic.clone(),
                join_ref: self.join_ref.clone(),
                event: event.to_owned(),
                payload: payload.into(),
            })
            .is_ok()
    }
}

/// A message scheduled with [`Context::send_after`].
#[derive(Debug)]
pub struct Timer(AbortHandle);

impl Timer {
    /// Cancels the message if it was not delivered yet.
    pub fn cancel(&self) {
        self.0.abort();
    }
}

/// Answers one client message later (Phoenix's `socket_ref` + `reply/2`).
#[derive(Clone)]
pub struct ReplyRef {
    handle: ChannelHandle,
    ref_: Ref,
}

impl ReplyRef {
    /// Sends the reply. Returns false when the connection is gone.
    pub fn reply(&self, reply: Reply) -> bool {
        self.handle
            .tx
            .send(ConnEvent::Reply {
                topic: self.handle.topic.clone(),
                join_ref: self.handle.join_ref.clone(),
                ref_: Some(self.ref_.clone()),
                reply,
            })
            .is_ok()
    }
}
