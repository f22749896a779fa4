//! The NATS adapter: nodes exchange frames over NATS core subjects.
//!
//! Each node subscribes to two subjects:
//!
//! * `pubsub.<cluster>.all`, where every node publishes its broadcasts;
//! * `pubsub.<cluster>.node.<name>`, where other nodes publish the frames addressed to it.
//!
//! One NATS connection per node, opened with `no_echo` (the server does not hand a node its own
//! broadcasts; the envelope's origin check is a second guard). The `async-nats` client reconnects
//! by itself, with this adapter's back-off, and re-subscribes; its connection events drive the
//! adapter's status. While it is disconnected the sender task drops frames rather than let the
//! client buffer them (see [`broker`](super::broker)).
//!
//! # Message size
//!
//! A NATS server refuses messages larger than its `max_payload` (1 MB by default, announced in
//! its INFO). Frames larger than the smaller of that and the adapter's `max_payload` are sent in
//! chunks and reassembled by the receiver, so a full-state tracker transfer of 100k presences
//! (several MB) crosses a default server unchanged. Raising the server's `max_payload` is not
//! needed.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), pubsub::ConnectError> {
//! let pubsub = pubsub::connect("app1", Some("nats://127.0.0.1:4222/?cluster=shop"))?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::broker::{
    self, BrokerOptions, LinkKind, Outgoing, Queue, QueueRx, Receiver, Shared, Target,
};
use super::{Adapter, AdapterStats, AdapterStatus, Inbound};
use crate::node::Node;

/// Most frames taken from the queue at once.
const BATCH: usize = 512;

/// Commands the NATS client may buffer before its `publish` waits.
const CLIENT_CAPACITY: usize = 65_536;

/// Cross-node traffic through a NATS server. Build it with [`NatsAdapter::new`] or, more simply,
/// [`crate::connect`].
pub struct NatsAdapter {
    addr: async_nats::ServerAddr,
    url: String,
    options: BrokerOptions,
    shared: Arc<Shared>,
    queue: Queue,
    rx: Mutex<Option<QueueRx>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    prefix: String,
}

/// Why a NATS URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum NatsUrlError {
    /// This crate's parameters were wrong.
    #[error(transparent)]
    Url(#[from] broker::UrlError),
    /// The NATS client refused the address.
    #[error("PUBSUB_URL {url} is not a NATS address the client accepts: {cause}")]
    Client {
        /// The URL (password redacted).
        url: String,
        /// The client's message.
        cause: String,
    },
}

impl NatsAdapter {
    /// An adapter for `url` (`nats://[user:password@]host[:port][?cluster=…&…]`). Connects only
    /// once [`start`](Adapter::start)ed by a [`PubSub`](crate::PubSub).
    pub fn new(url: &str) -> Result<Self, NatsUrlError> {
        let (client_url, options) = broker::parse_url(url)?;
        let addr: async_nats::ServerAddr =
            client_url
                .as_str()
                .parse()
                .map_err(|e: std::io::Error| NatsUrlError::Client {
                    url: broker::redact(url),
                    cause: e.to_string(),
                })?;
        let shared = Shared::new("nats", url, 1);
        let (queue, rx) = broker::queue(shared.clone(), &options);
        Ok(NatsAdapter {
            addr,
            url: broker::redact(url),
            prefix: format!("pubsub.{}.", options.cluster),
            options,
            shared,
            queue,
            rx: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn cluster_subject(prefix: &str) -> String {
        format!("{prefix}all")
    }

    fn node_subject(prefix: &str, name: &str) -> String {
        format!("{prefix}node.{}", broker::name_token(name))
    }
}

impl Drop for NatsAdapter {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
            task.abort();
        }
    }
}

impl Adapter for NatsAdapter {
    fn start(&self, node: &Node, inbound: Inbound) {
        let Some(rx) = self.rx.lock().take() else {
            tracing::error!("nats adapter started twice; the second start is ignored");
            return;
        };
        let task = Task {
            addr: self.addr.clone(),
            url: self.url.clone(),
            options: self.options.clone(),
            shared: self.shared.clone(),
            rx,
            origin: node.incarnation,
            node_name: node.name.to_string(),
            prefix: self.prefix.clone(),
            receiver: Some(Receiver::new(
                node.incarnation,
                inbound,
                self.shared.clone(),
            )),
            tasks: Vec::new(),
        };
        self.tasks.lock().push(tokio::spawn(task.run()));
    }

    fn broadcast(&self, frame: Bytes) {
        self.queue.push(Target::Cluster, frame);
    }

    fn direct(&self, node: &str, frame: Bytes) {
        self.queue.push(Target::Node(Arc::from(node)), frame);
    }

    fn status(&self) -> AdapterStatus {
        self.shared.status()
    }

    fn status_changes(&self) -> Option<tokio::sync::watch::Receiver<AdapterStatus>> {
        Some(self.shared.status_changes())
    }

    fn stats(&self) -> AdapterStats {
        self.shared.stats()
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

struct Task {
    addr: async_nats::ServerAddr,
    url: String,
    options: BrokerOptions,
    shared: Arc<Shared>,
    rx: QueueRx,
    origin: u64,
    node_name: String,
    prefix: String,
    receiver: Option<Receiver>,
    /// The receiving and status tasks, aborted with this one.
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Task {
    fn drop(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Task {
    async fn run(mut self) {
        let shared = self.shared.clone();
        // Connected counts only once our subscriptions exist (the client re-creates them on
        // every reconnection before it reports the connection).
        let ready = Arc::new(AtomicBool::new(false));
        let ready_events = ready.clone();
        let backoff_max = self.options.backoff_max;
        let connect = async_nats::ConnectOptions::new()
            .name(format!("pubsub {}", self.node_name))
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(self.options.connect_timeout)
            .ping_interval(self.options.ping)
            .client_capacity(CLIENT_CAPACITY)
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, backoff_max))
            .event_callback(move |event| {
                let shared = shared.clone();
                let ready = ready_events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            if ready.load(Ordering::Acquire) {
                                shared.link_up(LinkKind::Publish)
                            }
                        }
                        async_nats::Event::Disconnected => {
                            shared.link_down(LinkKind::Publish, "connection lost")
                        }
                        async_nats::Event::Closed => {
                            shared.link_down(LinkKind::Publish, "connection closed")
                        }
                        other => tracing::debug!(event = %other, "nats client event"),
                    }
                }
            });
        let client = match connect.connect(self.addr.clone()).await {
            Ok(client) => client,
            Err(e) => {
                // Only configuration errors end up here (retry_on_initial_connect).
                tracing::error!(url = %self.url, error = %e, "pubsub: cannot start the NATS client");
                self.shared
                    .link_down(LinkKind::Publish, format!("nats client failed: {e}"));
                return;
            }
        };
        let subjects = [
            NatsAdapter::cluster_subject(&self.prefix),
            NatsAdapter::node_subject(&self.prefix, &self.node_name),
        ];
        let mut subscribers = Vec::new();
        for subject in &subjects {
            match client.subscribe(subject.clone()).await {
                Ok(s) => subscribers.push(s),
                Err(e) => {
                    tracing::error!(%subject, error = %e, "pubsub: cannot subscribe on NATS");
                    self.shared
                        .link_down(LinkKind::Publish, format!("cannot subscribe: {e}"));
                    return;
                }
            }
        }
        // A round trip after the subscriptions (the server handles a connection's commands in
        // order): once it is answered, frames other nodes publish from now on reach us. A request
        // nobody answers comes back at once as "no responders".
        let probe = format!("{}probe.{}", self.prefix, client.new_inbox());
        let round_trip = client.request(probe, Bytes::new());
        if tokio::time::timeout(self.options.connect_timeout * 5, round_trip)
            .await
            .is_err()
        {
            tracing::debug!("nats round trip after subscribing timed out; going on");
        }
        ready.store(true, Ordering::Release);
        if client.connection_state() == async_nats::connection::State::Connected {
            self.shared.link_up(LinkKind::Publish);
        }
        if let Some(mut receiver) = self.receiver.take() {
            let mut messages = futures::stream::select_all(subscribers);
            self.tasks.push(tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    receiver.handle(message.payload);
                    if !receiver.node_alive() {
                        return;
                    }
                }
            }));
        }
        // The client's events are the main source of status; this catches a missed one.
        let state_client = client.clone();
        let shared = self.shared.clone();
        let period = self.options.ping.min(Duration::from_millis(500));
        self.tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                match state_client.connection_state() {
                    async_nats::connection::State::Connected => shared.link_up(LinkKind::Publish),
                    async_nats::connection::State::Disconnected => {
                        shared.link_down(LinkKind::Publish, "connection lost")
                    }
                    async_nats::connection::State::Pending => {}
                }
            }
        }));
        self.send_loop(client).await;
    }

    async fn send_loop(&mut self, client: async_nats::Client) {
        let cluster = NatsAdapter::cluster_subject(&self.prefix);
        let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
        let mut next_id = 0u64;
        loop {
            batch.clear();
            if self.rx.recv_many(&mut batch, BATCH).await == 0 {
                return; // the adapter is gone
            }
            let connected = client.connection_state() == async_nats::connection::State::Connected;
            if !connected {
                self.shared
                    .dropped(batch.len() as u64, "broker unreachable");
                continue;
            }
            let server_max = client.server_info().max_payload;
            let max_payload = if server_max > 0 {
                self.options.max_payload.min(server_max)
            } else {
                self.options.max_payload
            };
            let mut failed = 0u64;
            for out in batch.drain(..) {
                let subject = match &out.target {
                    Target::Cluster => cluster.clone(),
                    Target::Node(name) => NatsAdapter::node_subject(&self.prefix, name),
                };
                next_id += 1;
                let pieces = broker::wrap(self.origin, next_id, &out.frame, max_payload);
                let size = pieces.iter().map(Bytes::len).sum::<usize>();
                let mut ok = true;
                for piece in pieces {
                    if let Err(e) = client.publish(subject.clone(), piece).await {
                        tracing::debug!(error = %e, %subject, "nats publish failed");
                        ok = false;
                        break;
                    }
                }
                if ok {
                    self.shared.sent(size);
                } else {
                    failed += 1;
                }
            }
            self.shared.dropped(failed, "publish failed");
        }
    }
}

/// Back-off between reconnection attempts: 0 for the first, then 100 ms doubling up to `max`.
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exp = (attempts - 2).min(16) as u32;
    let step = Duration::from_millis(100).saturating_mul(1 << exp).min(max);
    step.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}
