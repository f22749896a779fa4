//! The [`Channel`] trait: what an application writes to handle one topic on one connection.
//!
//! A connection multiplexes many channels. For every topic a client joins, the socket's router
//! builds a fresh value implementing [`Channel`]; the connection then calls its callbacks in order:
//! [`join`](Channel::join) once, [`after_join`](Channel::after_join) right after the join reply
//! went out, then [`handle_in`](Channel::handle_in) for every client message,
//! [`handle_out`](Channel::handle_out) for intercepted broadcasts,
//! [`handle_info`](Channel::handle_info) for messages from elsewhere in the server, and
//! [`terminate`](Channel::terminate) when the channel ends gracefully. Dropping the value is the
//! channel's death: anything it owns (a presence, a subscription guard) goes with it, whether it
//! left, its connection closed, or one of its callbacks panicked.
//!
//! Callbacks receive a [`Context`] through which they push to their client, broadcast to the
//! topic, subscribe to other topics, or obtain a [`ChannelHandle`] to act later from another task.
//!
//! A panic inside a callback ends that channel only: the client gets `phx_error` for the topic and
//! rejoins; the connection and its other channels carry on.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec::{OutPayload, Payload};
use crate::server::context::Context;
use crate::server::reply::{Reply, to_object};

/// How a channel's life ended, passed to [`Channel::terminate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The client sent `phx_leave`.
    Left,
    /// The connection closed (client went away, timeout, server drain).
    Closed,
    /// The client joined the same topic again; the new join replaces this one.
    DuplicateJoin,
    /// The channel asked to stop normally: the client gets `phx_close` and does not rejoin.
    Normal,
    /// The channel asked to stop because something went wrong: the client gets `phx_error` and
    /// rejoins after a backoff.
    Error(String),
}

impl StopReason {
    /// True when the client should be told `phx_close` (no rejoin) rather than `phx_error`.
    pub fn is_graceful(&self) -> bool {
        !matches!(self, StopReason::Error(_))
    }
}

/// What a channel wants after handling a client message.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing to answer (the client's push will time out unless the reply comes later through a
    /// [`ReplyRef`](crate::server::ReplyRef)).
    NoReply,
    /// Answer the message.
    Reply(Reply),
    /// End the channel, optionally answering the message first.
    Stop(StopReason, Option<Reply>),
}

impl From<Reply> for Outcome {
    fn from(reply: Reply) -> Self {
        Outcome::Reply(reply)
    }
}

/// A message for a channel from elsewhere in the server, delivered to [`Channel::handle_info`].
pub enum Info {
    /// A message published on a topic the channel subscribed to with [`Context::subscribe`].
    PubSub(Arc<pubsub::Message>),
    /// A value sent through a [`ChannelHandle`](crate::server::ChannelHandle).
    Custom(Box<dyn Any + Send>),
}

impl std::fmt::Debug for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Info::PubSub(message) => f.debug_tuple("PubSub").field(&message.topic).finish(),
            Info::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What the default [`Channel::handle_in`] does with an event: answers it
/// `{"reason":"unhandled event"}` and crashes the channel (`phx_error`). A `handle_in` that matches
/// the events it knows ends with `_ => unhandled(event, ctx)` to keep that behaviour.
pub fn unhandled(event: &str, ctx: &Context<'_>) -> Outcome {
    crate::server::log_limit::limited_warn!(
        topic = ctx.topic(),
        event,
        "unhandled event; the channel crashes"
    );
    Outcome::Stop(
        StopReason::Error(format!("unhandled event {event:?}")),
        Some(Reply::error_reason("unhandled event")),
    )
}

/// A client payload that does not have the shape a channel expects, from [`parse`].
///
/// It becomes the error reply `{"reason":"invalid payload: <what was wrong>"}`: returned from
/// `handle_in` (`Outcome::from`) or from `join` (through `?`, as an `OutPayload`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid payload: {0}")]
pub struct InvalidPayload(String);

impl InvalidPayload {
    /// `message` says what was wrong; the reply prefixes it with `invalid payload: `.
    pub(crate) fn new(message: String) -> Self {
        InvalidPayload(message)
    }

    /// The error reply for the client.
    pub fn reply(&self) -> Reply {
        Reply::error_reason(&self.to_string())
    }
}

impl From<InvalidPayload> for Outcome {
    fn from(invalid: InvalidPayload) -> Self {
        Outcome::Reply(invalid.reply())
    }
}

impl From<InvalidPayload> for OutPayload {
    fn from(invalid: InvalidPayload) -> Self {
        invalid.reply().payload
    }
}

/// Reads a client's JSON payload (join params or an event's payload) into `T` with serde. To
/// read the event name and its payload together into one enum, see
/// [`parse_event`](crate::server::parse_event).
///
/// ```
/// use channels::codec::{OutPayload, Payload};
/// use channels::server::{parse, Channel, Context, Outcome, Reply};
///
/// #[derive(serde::Deserialize)]
/// struct Move { x: u32, y: u32 }
///
/// struct Board;
///
/// #[async_trait::async_trait]
/// impl Channel for Board {
///     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
///         match event {
///             "move" => match parse::<Move>(payload) {
///                 Ok(m) => Reply::ok_json(&serde_json::json!({"at": [m.x, m.y]})).into(),
///                 // {"status":"error","response":{"reason":"invalid payload: missing field `y`"}}
///                 Err(invalid) => invalid.into(),
///             },
///             _ => channels::server::unhandled(event, ctx),
///         }
///     }
/// }
/// ```
pub fn parse<T: DeserializeOwned>(payload: Payload) -> Result<T, InvalidPayload> {
    match payload {
        Payload::Json(value) => {
            serde_json::from_value(value).map_err(|error| InvalidPayload(error.to_string()))
        }
        Payload::Binary(_) => Err(InvalidPayload("expected JSON, got binary data".to_owned())),
    }
}

/// One joined topic on one connection (a Phoenix channel). See the [`server`](crate::server) docs
/// for the life cycle.
///
/// Every callback but `handle_in` has a default; `join` accepts with `{}` and `handle_in` treats
/// every event as unhandled (the channel crashes, see [`unhandled`]). What the book's channels
/// do, and how it reads here:
///
/// | Phoenix | here |
/// |---|---|
/// | `join/3` returning `{:ok, reply, socket}` / `{:error, reply}` | [`join`](Channel::join) returning `Ok(reply)` / `Err(reply)`; typed params with [`parse`] |
/// | `handle_in/3` with `{:reply, {:ok, map}, socket}`, `{:noreply, socket}`, `{:stop, reason, socket}` | [`handle_in`](Channel::handle_in) returning [`Outcome`] |
/// | `push/3`, `broadcast!/3`, `broadcast_from!/3` | [`Context::push`], [`Context::broadcast`], [`Context::broadcast_from`] |
/// | `intercept ["event"]` + `handle_out/3` | [`intercepts`](Channel::intercepts) + [`handle_out`](Channel::handle_out) |
/// | `Process.send_after(self(), msg, ms)` + `handle_info/2` | [`Context::send_after`] + [`handle_info`](Channel::handle_info) ([`Info::Custom`]) |
/// | `Phoenix.PubSub.subscribe` + `handle_info/2` | [`Context::subscribe`] + `handle_info` ([`Info::PubSub`]) |
/// | `send(channel_pid, msg)` from another process | [`Context::handle`] → [`ChannelHandle::send_info`](crate::server::ChannelHandle::send_info) / [`push`](crate::server::ChannelHandle::push) from any task |
/// | `socket_ref(socket)` + `reply(ref, {:ok, map})` | [`Context::reply_ref`] → [`ReplyRef::reply`](crate::server::ReplyRef::reply) from any task |
/// | `terminate/2` | [`terminate`](Channel::terminate) (not after a crash) |
///
/// ```
/// use std::time::Duration;
/// use channels::codec::{OutPayload, Payload};
/// use channels::server::{parse, to_object, unhandled, Channel, Context, Info, Outcome, Reply, StopReason};
/// use serde_json::{json, Value};
///
/// #[derive(serde::Deserialize)]
/// struct Join { nick: String }
///
/// struct Flush;
///
/// struct Room { nick: String }
///
/// #[async_trait::async_trait]
/// impl Channel for Room {
///     async fn join(&mut self, _topic: &str, params: Payload, _ctx: &mut Context<'_>)
///         -> Result<OutPayload, OutPayload> {
///         self.nick = parse::<Join>(params)?.nick; // bad params: {"reason": "invalid payload: ..."}
///         Ok(OutPayload::empty())
///     }
///
///     async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
///         match event {
///             "shout" => {
///                 ctx.broadcast("shout", to_object(&json!({"from": self.nick})));
///                 Outcome::NoReply
///             }
///             "later" => {
///                 ctx.send_after(Duration::from_millis(10), Flush);
///                 Reply::ok(OutPayload::empty()).into()
///             }
///             "slow" => {
///                 // Answer from another task; the channel goes on meanwhile.
///                 let Some(reply) = ctx.reply_ref() else { return Outcome::NoReply };
///                 tokio::spawn(async move { reply.reply(Reply::ok_json(&json!({"slow": true}))) });
///                 Outcome::NoReply
///             }
///             _ => unhandled(event, ctx),
///         }
///     }
///
///     fn intercepts(&self) -> &'static [&'static str] {
///         &["shout"]
///     }
///
///     async fn handle_out(&mut self, event: &str, payload: Value, ctx: &mut Context<'_>)
///         -> Result<(), StopReason> {
///         // Every subscriber sees the broadcast through its own channel.
///         ctx.push(event, to_object(&json!({"heard": payload, "by": self.nick})));
///         Ok(())
///     }
///
///     async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
///         if let Info::Custom(message) = info && message.is::<Flush>() {
///             ctx.push("flushed", OutPayload::empty());
///         }
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use channels::server::{ConnectInfo, Endpoint, EndpointConfig, Params, Routes};
/// let endpoint = Endpoint::new(pubsub::PubSub::new("doc"), EndpointConfig::default());
/// let routes = Routes::new().route("room:*", |_| Box::new(Room { nick: String::new() }));
/// let client = channels::testing::connect(&endpoint, Arc::new(routes), &Params::new(), ConnectInfo::default())
///     .await
///     .unwrap();
/// assert_eq!(
///     client.join("room:1", json!({})).await.err(),
///     Some(json!({"reason": "invalid payload: missing field `nick`"}))
/// );
/// let (_, room) = client.join("room:1", json!({"nick": "ann"})).await.unwrap();
/// room.push("shout", json!({}));
/// assert_eq!(room.assert_push("shout").await, json!({"heard": {"from": "ann"}, "by": "ann"}));
/// room.push("later", json!({}));
/// room.assert_push("flushed").await;
/// let slow = room.push("slow", json!({}));
/// assert_eq!(room.assert_reply(&slow, "ok").await, json!({"slow": true}));
/// let unknown = room.push("dance", json!({}));
/// assert_eq!(room.assert_reply(&unknown, "error").await, json!({"reason": "unhandled event"}));
/// room.assert_push("phx_error").await;
/// # });
/// ```
#[async_trait]
pub trait Channel: Send + 'static {
    /// Decides whether the client may join `topic` with `params`. `Ok` carries the reply's response
    /// (usually `{}`); `Err` carries the error response, and the channel is dropped.
    ///
    /// The default accepts every join with `{}`: the route already chose this channel for the
    /// topic, and the socket's `connect` already decided who may connect.
    async fn join(
        &mut self,
        _topic: &str,
        _params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    /// Runs right after the successful join reply was queued: the place to push initial state or
    /// start tracking presence.
    async fn after_join(&mut self, _ctx: &mut Context<'_>) -> Result<(), StopReason> {
        Ok(())
    }

    /// Handles one message the client pushed on this topic.
    ///
    /// The default treats every event as unhandled, as Phoenix does for an event no `handle_in`
    /// clause matches: the channel crashes, so the client gets `phx_error` and rejoins. Unlike
    /// Phoenix, whose push then times out on the client, the push is first answered with
    /// `{"status":"error","response":{"reason":"unhandled event"}}` so that the client sees why.
    /// [`terminate`](Channel::terminate) is not called.
    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        ctx: &mut Context<'_>,
    ) -> Outcome {
        unhandled(event, ctx)
    }

    /// Broadcast events this channel wants to see before they reach its client; the others go
    /// straight to the client, encoded once for all subscribers. Binary broadcasts are never
    /// intercepted.
    fn intercepts(&self) -> &'static [&'static str] {
        &[]
    }

    /// Handles an intercepted broadcast (see [`intercepts`](Channel::intercepts)). The default
    /// pushes it unchanged.
    async fn handle_out(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut Context<'_>,
    ) -> Result<(), StopReason> {
        ctx.push(event, to_object(&payload));
        Ok(())
    }

    /// Handles a message from elsewhere in the server. The default ignores it.
    async fn handle_info(&mut self, _info: Info, _ctx: &mut Context<'_>) -> Result<(), StopReason> {
        Ok(())
    }

    /// Runs when the channel ends gracefully (not after a panic). Pushes made here still reach the
    /// client when the connection is open.
    async fn terminate(&mut self, _reason: &StopReason, _ctx: &mut Context<'_>) {}
}
