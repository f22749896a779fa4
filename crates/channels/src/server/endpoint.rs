//! The [`Endpoint`]: what every connection of a server shares — pubsub, options, and the
//! broadcast operations that reach clients on every node.
//!
//! A broadcast travels through pubsub as the V2 wire frame it will become, behind a small header
//! that names the event. Subscribers speaking V2 write those bytes to their socket unchanged;
//! V1 subscribers derive their form once per node and message ([`pubsub::Message::derived`]).
//! Either way a broadcast to 100k clients is encoded once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pubsub::{Mailbox, PubSub};
use tokio::sync::watch;

use crate::codec::{Broadcast, Frame, FrameKind, JsonObject, OutPayload, Serializer};
use crate::server::metrics::Metrics;
use crate::server::origin::CheckOrigin;

/// The event that, broadcast on a socket id, closes every connection with that id.
pub const DISCONNECT: &str = "disconnect";

const MAGIC: u8 = 0xB7;

/// Options of a channels server. `Default` gives Phoenix's behaviour where Phoenix has one.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Which `Origin` headers may open a socket.
    pub check_origin: CheckOrigin,
    /// The largest frame a client may send; larger ones close the connection (code 1009).
    pub max_frame_size: usize,
    /// A connection that sends nothing for this long is closed (clients heartbeat every 30 s).
    pub idle_timeout: Duration,
    /// A connection whose socket does not accept the frames of one write (those produced by
    /// one event: usually one, a few at most) within this long is closed: the client stopped
    /// reading.
    pub write_timeout: Duration,
    /// Messages that may wait for one connection before it counts as unable to keep up.
    pub mailbox_capacity: usize,
    /// Channels one connection may have joined at once.
    pub max_channels: usize,
    /// A WebSocket connection that has joined no channel this long after it opened is closed
    /// (code 1008, "no channel joined"): a socket nobody uses still holds a descriptor.
    pub join_timeout: Duration,
    /// Messages that may wait for one channel while its callback runs; one more closes the
    /// connection (code 1013), as a client that cannot keep up would be.
    pub channel_backlog: usize,
    /// How long a LongPoll request waits for messages before answering 204.
    pub longpoll_window: Duration,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            check_origin: CheckOrigin::Disabled,
            max_frame_size: 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            mailbox_capacity: 1024,
            max_channels: 100,
            channel_backlog: 128,
            join_timeout: Duration::from_secs(60),
            longpoll_window: Duration::from_secs(10),
        }
    }
}

/// The environment variables [`EndpointConfig::from_env`] reads, with the field each sets.
pub const ENV_SETTINGS: &[(&str, &str)] = &[
    ("MAX_FRAME_SIZE", "max_frame_size (bytes)"),
    ("MAX_CHANNELS", "max_channels"),
    ("CHANNEL_BACKLOG", "channel_backlog"),
    ("JOIN_TIMEOUT_MS", "join_timeout (milliseconds)"),
];

impl EndpointConfig {
    /// The defaults, with the limits an operator may set from the environment
    /// ([`ENV_SETTINGS`]): `MAX_FRAME_SIZE`, `MAX_CHANNELS`, `CHANNEL_BACKLOG`,
    /// `JOIN_TIMEOUT_MS`. Each must be a positive integer; an unset variable keeps the default.
    pub fn from_env() -> Result<EndpointConfig, String> {
        EndpointConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](EndpointConfig::from_env) over any source of variables.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<EndpointConfig, String> {
        let read = |name: &str| -> Result<Option<u64>, String> {
            match var(name) {
                None => Ok(None),
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => Err(format!("{name} must be a positive integer, got {text:?}")),
                },
            }
        };
        let size = |n: u64| usize::try_from(n).map_err(|_| format!("{n} is too large"));
        let mut config = EndpointConfig::default();
        if let Some(n) = read("MAX_FRAME_SIZE")? {
            config.max_frame_size = size(n)?;
        }
        if let Some(n) = read("MAX_CHANNELS")? {
            config.max_channels = size(n)?;
        }
        if let Some(n) = read("CHANNEL_BACKLOG")? {
            config.channel_backlog = size(n)?;
        }
        if let Some(n) = read("JOIN_TIMEOUT_MS")? {
            config.join_timeout = Duration::from_millis(n);
        }
        Ok(config)
    }
}

/// How [`Endpoint::drain_in_batches`] closes a node's connections: Phoenix's endpoint drainer.
///
/// Closing every connection of a busy node at once sends all its clients to the other nodes in
/// the same second (a reconnect storm); draining them in batches spreads the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainOptions {
    /// Connections closed per batch (Phoenix: 10 000).
    pub batch_size: usize,
    /// Time between two batches (Phoenix: 2 s).
    pub batch_interval: Duration,
    /// Longest the whole drain may take; connections still open then are left to the caller
    /// (Phoenix: 30 s).
    pub shutdown: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            batch_size: 10_000,
            batch_interval: Duration::from_millis(2000),
            shutdown: Duration::from_secs(30),
        }
    }
}

/// What [`Endpoint::drain_in_batches`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the drain started.
    pub initial: usize,
    /// Batches released.
    pub batches: u32,
    /// Connections still open when the drain returned (0 unless `shutdown` ran out).
    pub remaining: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// Where draining stands: connections whose ticket is below `released` must close.
#[derive(Clone, Copy, Debug, Default)]
struct DrainState {
    draining: bool,
    released: u64,
}

struct Inner {
    pubsub: PubSub,
    config: EndpointConfig,
    drain: watch::Sender<DrainState>,
    /// Tickets handed to connections as they notice the drain: their place in the batches.
    tickets: Arc<AtomicU64>,
    /// Open connections.
    live: AtomicUsize,
    metrics: Metrics,
}

/// A connection's view of draining: resolves when its batch is released.
pub(crate) struct DrainSignal {
    rx: watch::Receiver<DrainState>,
    tickets: Arc<AtomicU64>,
    ticket: Option<u64>,
}

impl DrainSignal {
    /// Waits until this connection must close. Cancel-safe (its place in line is kept).
    pub(crate) async fn turn(&mut self) {
        loop {
            let state = *self.rx.borrow_and_update();
            if state.draining {
                let tickets = &self.tickets;
                let ticket = *self
                    .ticket
                    .get_or_insert_with(|| tickets.fetch_add(1, Ordering::Relaxed));
                if ticket < state.released {
                    return;
                }
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Shared by every connection of a server. Cheap to clone.
///
/// Phoenix's `MyAppWeb.Endpoint` as far as channels go: it is built on a pubsub (local, or a
/// cluster through Redis or NATS), every socket is mounted with it, and anything in the
/// application — a controller, a background job — broadcasts through it
/// (`Endpoint.broadcast/3`) or closes a user's sockets ([`disconnect`](Endpoint::disconnect)).
///
/// ```
/// use std::sync::Arc;
/// use channels::codec::OutPayload;
/// use channels::server::transport::{Transports, socket_router};
/// use channels::server::{Channel, ConnectInfo, Endpoint, EndpointConfig, Params, Routes, to_object};
/// use serde_json::json;
///
/// struct Room;
/// impl Channel for Room {}
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let endpoint = Endpoint::new(pubsub::PubSub::new("node-a"), EndpointConfig::default());
/// let socket = Arc::new(Routes::new().route("room:*", |_| Box::new(Room)));
///
/// // Mounted in the app: ws://…/socket/websocket and /socket/longpoll.
/// let app: axum::Router =
///     axum::Router::new().nest("/socket", socket_router(endpoint.clone(), socket.clone(), Transports::all()));
///
/// // From anywhere in the application: every client joined to the topic, on every node.
/// let client = channels::testing::connect(&endpoint, socket, &Params::new(), ConnectInfo::default())
///     .await
///     .unwrap();
/// let (_, room) = client.join("room:lobby", json!({})).await.unwrap();
/// endpoint.broadcast("room:lobby", "announcement", &to_object(&json!({"text": "hi"})).into());
/// assert_eq!(room.assert_push("announcement").await, json!({"text": "hi"}));
/// # let _ = (app, OutPayload::empty());
/// # });
/// ```
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("node", &self.inner.pubsub.node().name)
            .finish()
    }
}

impl Endpoint {
    /// An endpoint publishing through `pubsub`.
    pub fn new(pubsub: PubSub, config: EndpointConfig) -> Self {
        let (drain, _) = watch::channel(DrainState::default());
        Endpoint {
            inner: Arc::new(Inner {
                pubsub,
                config,
                drain,
                tickets: Arc::new(AtomicU64::new(0)),
                live: AtomicUsize::new(0),
                metrics: Metrics::register(),
            }),
        }
    }

    /// The pubsub hub broadcasts travel through.
    pub fn pubsub(&self) -> &PubSub {
        &self.inner.pubsub
    }

    /// The options.
    pub fn config(&self) -> &EndpointConfig {
        &self.inner.config
    }

    /// Sends `event` to every client joined to `topic`, on every node.
    pub fn broadcast(&self, topic: &str, event: &str, payload: &OutPayload) {
        if let Some(bytes) = encode(topic, event, payload) {
            self.inner.pubsub.broadcast(topic, bytes);
        }
    }

    /// Sends `event` to every client joined to `topic` on every node, except the connection that
    /// owns `from`.
    pub fn broadcast_from(&self, from: &Mailbox, topic: &str, event: &str, payload: &OutPayload) {
        if let Some(bytes) = encode(topic, event, payload) {
            self.inner.pubsub.broadcast_from(from, topic, bytes);
        }
    }

    /// Sends `event` to the clients joined to `topic` on this node only.
    pub fn local_broadcast(&self, topic: &str, event: &str, payload: &OutPayload) {
        if let Some(bytes) = encode(topic, event, payload) {
            self.inner.pubsub.local_broadcast(topic, bytes);
        }
    }

    /// Closes every connection whose socket id is `socket_id`, on every node (code 1001, so the
    /// client reconnects and authenticates again).
    pub fn disconnect(&self, socket_id: &str) {
        self.broadcast(
            socket_id,
            DISCONNECT,
            &OutPayload::Json(JsonObject::empty()),
        );
    }

    /// Asks every connection of this node to close at once with code 1012 ("service restart")
    /// so that clients reconnect elsewhere. Connections opened afterwards are refused. See
    /// [`drain_in_batches`](Endpoint::drain_in_batches) to spread the reconnections.
    pub fn drain(&self) {
        self.inner.drain.send_replace(DrainState {
            draining: true,
            released: u64::MAX,
        });
    }

    /// Closes this node's connections (code 1012) `batch_size` at a time every `batch_interval`,
    /// refusing new ones, until none is left or `shutdown` has passed, like Phoenix's endpoint
    /// drainer. Returns what it did; connections still open afterwards are the caller's to end.
    pub async fn drain_in_batches(&self, options: DrainOptions) -> DrainReport {
        let started = tokio::time::Instant::now();
        let deadline = started + options.shutdown;
        let initial = self.connection_count();
        self.inner.drain.send_modify(|s| s.draining = true);
        let mut batches = 0u32;
        let mut released = 0u64;
        let batch = options.batch_size.max(1) as u64;
        while self.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            released = released.saturating_add(batch);
            batches += 1;
            self.inner
                .drain
                .send_modify(|s| s.released = s.released.max(released));
            tracing::info!(
                batch = batches,
                open = self.connection_count(),
                "draining connections"
            );
            let next = (tokio::time::Instant::now() + options.batch_interval).min(deadline);
            while self.connection_count() > 0 && tokio::time::Instant::now() < next {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        DrainReport {
            initial,
            batches,
            remaining: self.connection_count(),
            elapsed: started.elapsed(),
        }
    }

    /// Whether [`drain`](Endpoint::drain) or [`drain_in_batches`](Endpoint::drain_in_batches)
    /// was called.
    pub fn is_draining(&self) -> bool {
        self.inner.drain.borrow().draining
    }

    /// Connections open on this node right now (WebSocket and LongPoll).
    pub fn connection_count(&self) -> usize {
        self.inner.live.load(Ordering::Acquire)
    }

    /// The server's counters, registered when the endpoint was created.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn connection_opened(&self) {
        self.inner.live.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn connection_closed(&self) {
        self.inner.live.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn drain_signal(&self) -> DrainSignal {
        DrainSignal {
            rx: self.inner.drain.subscribe(),
            tickets: self.inner.tickets.clone(),
            ticket: None,
        }
    }
}

fn encode(topic: &str, event: &str, payload: &OutPayload) -> Option<Bytes> {
    let frame = match (Broadcast {
        topic,
        event,
        payload,
    })
    .encode(Serializer::V2)
    {
        Ok(frame) => frame,
        Err(error) => {
            tracing::error!(%error, topic, event, "broadcast could not be encoded; not sent");
            return None;
        }
    };
    let Ok(event_len) = u16::try_from(event.len()) else {
        tracing::error!(topic, "broadcast event name too long; not sent");
        return None;
    };
    let mut buf = BytesMut::with_capacity(4 + event.len() + frame.data.len());
    buf.put_u8(MAGIC);
    buf.put_u8(match frame.kind {
        FrameKind::Text => 0,
        FrameKind::Binary => 1,
    });
    buf.put_u16(event_len);
    buf.put_slice(event.as_bytes());
    buf.put_slice(&frame.data);
    Some(buf.freeze())
}

/// A broadcast taken out of its pubsub envelope: the event name and the V2 frame.
pub(crate) struct Decoded {
    pub(crate) event: Bytes,
    pub(crate) frame: Frame,
}

impl Decoded {
    pub(crate) fn event(&self) -> &str {
        std::str::from_utf8(&self.event).unwrap_or("")
    }
}

/// Reads a broadcast envelope; `None` for anything else published on a channel topic.
pub(crate) fn decode(payload: &Bytes) -> Option<Decoded> {
    let header = payload.get(..4)?;
    if header[0] != MAGIC {
        return None;
    }
    let kind = match header[1] {
        0 => FrameKind::Text,
        1 => FrameKind::Binary,
        _ => return None,
    };
    let event_len = u16::from_be_bytes([header[2], header[3]]) as usize;
    let event = payload.get(4..4 + event_len)?;
    std::str::from_utf8(event).ok()?;
    Some(Decoded {
        event: payload.slice(4..4 + event_len),
        frame: Frame {
            kind,
            data: payload.slice(4 + event_len..),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_from_the_environment_and_bad_values_named() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = EndpointConfig::from_vars(vars(&[
            ("MAX_FRAME_SIZE", "2048"),
            ("MAX_CHANNELS", "7"),
            ("CHANNEL_BACKLOG", "9"),
            ("JOIN_TIMEOUT_MS", "1500"),
        ]))
        .expect("valid settings");
        assert_eq!(config.max_frame_size, 2048);
        assert_eq!(config.max_channels, 7);
        assert_eq!(config.channel_backlog, 9);
        assert_eq!(config.join_timeout, Duration::from_millis(1500));
        let defaults = EndpointConfig::from_vars(vars(&[])).expect("no settings");
        assert_eq!(
            defaults.max_channels,
            EndpointConfig::default().max_channels
        );
        let error =
            EndpointConfig::from_vars(vars(&[("MAX_CHANNELS", "0")])).expect_err("zero refused");
        assert!(error.contains("MAX_CHANNELS"), "{error}");
        assert!(EndpointConfig::from_vars(vars(&[("MAX_FRAME_SIZE", "big")])).is_err());
    }

    #[test]
    fn envelope_round_trips_and_carries_the_v2_frame() {
        let payload = OutPayload::Json(JsonObject::from_json(r#"{"a":1}"#).expect("object"));
        let bytes = encode("room:1", "new_msg", &payload).expect("encodes");
        let decoded = decode(&bytes).expect("decodes");
        assert_eq!(decoded.event(), "new_msg");
        assert_eq!(decoded.frame.kind, FrameKind::Text);
        assert_eq!(
            &decoded.frame.data[..],
            br#"[null,null,"room:1","new_msg",{"a":1}]"#
        );
    }

    #[test]
    fn foreign_payloads_are_not_broadcasts() {
        assert!(decode(&Bytes::from_static(b"hello")).is_none());
        assert!(decode(&Bytes::from_static(&[MAGIC, 0, 0, 9, b'x'])).is_none());
        assert!(decode(&Bytes::from_static(&[MAGIC, 7, 0, 0])).is_none());
    }
}
