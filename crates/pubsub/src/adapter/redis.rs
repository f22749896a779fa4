//! The Redis adapter: nodes exchange frames through Redis `PUBLISH`/`SUBSCRIBE`, like
//! phoenix_pubsub_redis.
//!
//! Each node subscribes to two Redis channels:
//!
//! * `pubsub:<cluster>:all`, where every node publishes its broadcasts;
//! * `pubsub:<cluster>:node:<name>`, where other nodes publish the frames addressed to it
//!   (`direct_broadcast`; the tracker's transfer requests and answers).
//!
//! Two connections per node: one multiplexed connection fed by the sender task (frames are
//! published in pipelined batches) and one in subscribe mode read by the receiver task. Both are
//! probed every `ping_ms` when idle and re-established with back-off when lost (see
//! [`broker`](super::broker) for the envelope, the queue, the status and the URL parameters).
//!
//! Redis has no limit on a PUBLISH below its 512 MB bulk-string limit, but a subscriber whose
//! output buffer passes `client-output-buffer-limit pubsub` (32 MB hard, 8 MB for 60 s by default)
//! is disconnected; frames are therefore chunked at `max_payload` (1 MiB) here too, and a node
//! that falls that far behind reconnects and lets the tracker repair what it missed.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), pubsub::ConnectError> {
//! let pubsub = pubsub::connect("app1", Some("redis://127.0.0.1:6379/?cluster=shop"))?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::broker::{
    self, Backoff, BrokerOptions, LinkKind, Outgoing, Queue, QueueRx, Receiver, Shared, Target,
};
use super::{Adapter, AdapterStats, AdapterStatus, Inbound};
use crate::node::Node;

/// Most frames published in one pipelined round trip.
const BATCH: usize = 512;

/// Cross-node traffic through a Redis server. Build it with [`RedisAdapter::new`] or, more simply,
/// [`crate::connect`].
pub struct RedisAdapter {
    client: redis::Client,
    options: BrokerOptions,
    shared: Arc<Shared>,
    queue: Queue,
    rx: Mutex<Option<QueueRx>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    prefix: String,
}

/// Why a Redis URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    /// This crate's parameters were wrong.
    #[error(transparent)]
    Url(#[from] broker::UrlError),
    /// The redis client refused the URL.
    #[error("PUBSUB_URL {url} is not a Redis URL the client accepts: {cause}")]
    Client {
        /// The URL (password redacted).
        url: String,
        /// The client's message.
        cause: redis::RedisError,
    },
}

impl RedisAdapter {
    /// An adapter for `url` (`redis://[user:password@]host[:port][/db][?cluster=…&…]`). Connects
    /// only once [`start`](Adapter::start)ed by a [`PubSub`](crate::PubSub).
    pub fn new(url: &str) -> Result<Self, RedisUrlError> {
        let (client_url, options) = broker::parse_url(url)?;
        let client =
            redis::Client::open(client_url.as_str()).map_err(|cause| RedisUrlError::Client {
                url: broker::redact(url),
                cause,
            })?;
        let shared = Shared::new("redis", url, 2);
        let (queue, rx) = broker::queue(shared.clone(), &options);
        Ok(RedisAdapter {
            client,
            prefix: format!("pubsub:{}:", options.cluster),
            options,
            shared,
            queue,
            rx: Mutex::new(Some(rx)),
            tasks: Mutex::new(Vec::new()),
        })
    }

    fn cluster_channel(&self) -> String {
        format!("{}all", self.prefix)
    }

    fn node_channel(prefix: &str, name: &str) -> String {
        format!("{prefix}node:{}", broker::name_token(name))
    }
}

impl Drop for RedisAdapter {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().drain(..) {
            task.abort();
        }
    }
}

impl Adapter for RedisAdapter {
    fn start(&self, node: &Node, inbound: Inbound) {
        let Some(rx) = self.rx.lock().take() else {
            tracing::error!("redis adapter started twice; the second start is ignored");
            return;
        };
        let sender = Sender {
            client: self.client.clone(),
            options: self.options.clone(),
            shared: self.shared.clone(),
            rx,
            origin: node.incarnation,
            cluster: self.cluster_channel(),
            prefix: self.prefix.clone(),
            next_id: 0,
        };
        let receiver = Subscriber {
            client: self.client.clone(),
            options: self.options.clone(),
            shared: self.shared.clone(),
            channels: vec![
                self.cluster_channel(),
                Self::node_channel(&self.prefix, &node.name),
            ],
            receiver: Receiver::new(node.incarnation, inbound, self.shared.clone()),
        };
        let mut tasks = self.tasks.lock();
        tasks.push(tokio::spawn(sender.run()));
        tasks.push(tokio::spawn(receiver.run()));
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
        "redis"
    }
}

/// The sender task: publishes queued frames in pipelined batches.
struct Sender {
    client: redis::Client,
    options: BrokerOptions,
    shared: Arc<Shared>,
    rx: QueueRx,
    origin: u64,
    cluster: String,
    prefix: String,
    next_id: u64,
}

impl Sender {
    async fn connect(&self) -> Result<redis::aio::MultiplexedConnection, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.options.connect_timeout)
            .set_response_timeout(self.options.connect_timeout.max(self.options.ping));
        match timeout(
            self.options.connect_timeout * 2,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("cannot connect to publish: {e}")),
            Err(_) => Err("cannot connect to publish: timed out".to_owned()),
        }
    }

    /// Drops whatever waits in the queue (the broker is away).
    fn discard_queued(&mut self) {
        let mut batch = Vec::new();
        let n = self.rx.try_recv_many(&mut batch, usize::MAX);
        self.shared.dropped(n as u64, "broker unreachable");
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.backoff_max);
        let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
        loop {
            let mut conn = match self.connect().await {
                Ok(conn) => conn,
                Err(reason) => {
                    self.shared.link_down(LinkKind::Publish, reason);
                    self.discard_queued();
                    tokio::time::sleep(backoff.delay()).await;
                    continue;
                }
            };
            self.shared.link_up(LinkKind::Publish);
            backoff.reset();
            loop {
                batch.clear();
                let n = match timeout(self.options.ping, self.rx.recv_many(&mut batch, BATCH)).await
                {
                    Ok(0) => return, // the adapter is gone
                    Ok(n) => n,
                    Err(_) => {
                        // Idle: make sure the broker is still there.
                        let ping: redis::RedisResult<redis::Value> =
                            redis::cmd("PING").query_async(&mut conn).await;
                        if let Err(e) = ping {
                            self.shared
                                .link_down(LinkKind::Publish, format!("publish link lost: {e}"));
                            break;
                        }
                        continue;
                    }
                };
                let mut pipe = redis::pipe();
                let mut sizes = Vec::with_capacity(n);
                for out in batch.drain(..) {
                    let channel = match &out.target {
                        Target::Cluster => self.cluster.clone(),
                        Target::Node(name) => RedisAdapter::node_channel(&self.prefix, name),
                    };
                    self.next_id += 1;
                    let pieces = broker::wrap(
                        self.origin,
                        self.next_id,
                        &out.frame,
                        self.options.max_payload,
                    );
                    sizes.push(pieces.iter().map(Bytes::len).sum::<usize>());
                    for piece in pieces {
                        pipe.cmd("PUBLISH").arg(&channel).arg(&piece[..]).ignore();
                    }
                }
                match pipe.query_async::<()>(&mut conn).await {
                    Ok(()) => {
                        for size in sizes {
                            self.shared.sent(size);
                        }
                    }
                    Err(e) => {
                        self.shared.dropped(n as u64, "publish failed");
                        self.shared
                            .link_down(LinkKind::Publish, format!("publish link lost: {e}"));
                        break;
                    }
                }
            }
        }
    }
}

/// The receiver task: a connection in subscribe mode on the cluster and node channels.
struct Subscriber {
    client: redis::Client,
    options: BrokerOptions,
    shared: Arc<Shared>,
    channels: Vec<String>,
    receiver: Receiver,
}

impl Subscriber {
    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let attempt = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channels).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match timeout(self.options.connect_timeout * 2, attempt).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(e)) => Err(format!("cannot subscribe: {e}")),
            Err(_) => Err("cannot subscribe: timed out".to_owned()),
        }
    }

    async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.backoff_max);
        while self.receiver.node_alive() {
            let pubsub = match self.subscribe().await {
                Ok(pubsub) => pubsub,
                Err(reason) => {
                    self.shared.link_down(LinkKind::Subscribe, reason);
                    tokio::time::sleep(backoff.delay()).await;
                    continue;
                }
            };
            self.shared.link_up(LinkKind::Subscribe);
            backoff.reset();
            let (mut sink, mut stream) = pubsub.split();
            let mut probe = tokio::time::interval(self.options.ping);
            probe.reset();
            let reason = loop {
                tokio::select! {
                    message = stream.next() => match message {
                        Some(message) => {
                            probe.reset();
                            self.receiver
                                .handle(Bytes::copy_from_slice(message.get_payload_bytes()));
                        }
                        None => break "subscribe link lost: connection closed".to_owned(),
                    },
                    _ = probe.tick() => {
                        if !self.receiver.node_alive() {
                            return;
                        }
                        match timeout(self.options.ping * 2, sink.ping::<redis::Value>()).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => break format!("subscribe link lost: {e}"),
                            Err(_) => break "subscribe link lost: no answer to PING".to_owned(),
                        }
                    }
                }
            };
            self.shared.link_down(LinkKind::Subscribe, reason);
        }
    }
}
