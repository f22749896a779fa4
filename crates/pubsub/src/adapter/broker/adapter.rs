//! The one broker adapter: a [`Driver`] plus everything brokers have in common.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::backoff::Backoff;
use super::driver::{Driver, Incoming, Link, LinkError};
use super::envelope::{self, Reassembler};
use super::link::{DropCause, LinkState};
use super::queue::{self, Outgoing, Queue, QueueRx, Target};
use super::url::{BrokerOptions, name_token};
use crate::adapter::{Adapter, AdapterKind, AdapterStats, AdapterStatus, Inbound};
use crate::node::Node;

/// Most frames taken from the send queue and published at once.
const BATCH: usize = 512;

/// Cross-node traffic through a message broker, whichever: the [`Driver`] `D` talks to the
/// broker, this adapter does the rest (see [the module](super)). Build one with
/// [`crate::connect`], or with a driver's own constructor.
pub struct BrokerAdapter<D: Driver> {
    driver: Arc<D>,
    options: BrokerOptions,
    link: Arc<LinkState>,
    queue: Queue,
    rx: Mutex<Option<QueueRx>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<D: Driver> BrokerAdapter<D> {
    /// An adapter over `driver`, tuned by `options`; `url` names the broker in logs and in the
    /// status (its password redacted). Connects only once started by a [`PubSub`](crate::PubSub).
    pub fn with_driver(driver: D, url: &str, options: BrokerOptions) -> Self {
        let link = Arc::new(LinkState::new(D::KIND, url));
        let (queue, rx) = queue::queue(link.clone(), &options);
        BrokerAdapter {
            driver: Arc::new(driver),
            options,
            link,
            queue,
            rx: Mutex::new(Some(rx)),
            task: Mutex::new(None),
        }
    }

    /// The tuning this adapter runs with.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }
}

impl<D: Driver> Drop for BrokerAdapter<D> {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

impl<D: Driver> Adapter for BrokerAdapter<D> {
    fn start(&self, node: &Node, inbound: Inbound) {
        let Some(rx) = self.rx.lock().take() else {
            tracing::error!(
                broker = D::KIND,
                "adapter started twice; the second start is ignored"
            );
            return;
        };
        let sep = D::SEPARATOR;
        let prefix = format!("pubsub{sep}{}{sep}", self.options.cluster);
        let runner = Runner {
            driver: self.driver.clone(),
            options: self.options.clone(),
            link: self.link.clone(),
            rx,
            origin: node.incarnation,
            own_channel: node_channel(&prefix, sep, &node.name),
            cluster_channel: format!("{prefix}all"),
            prefix,
            next_id: 0,
            inbound,
        };
        *self.task.lock() = Some(tokio::spawn(runner.run()));
    }

    fn broadcast(&self, frame: Bytes) {
        self.queue.push(Target::Cluster, frame);
    }

    fn direct(&self, node: &str, frame: Bytes) {
        self.queue.push(Target::Node(Arc::from(node)), frame);
    }

    fn status(&self) -> AdapterStatus {
        self.link.status()
    }

    fn status_changes(&self) -> Option<tokio::sync::watch::Receiver<AdapterStatus>> {
        Some(self.link.status_changes())
    }

    fn stats(&self) -> AdapterStats {
        self.link.stats()
    }

    fn kind(&self) -> AdapterKind {
        AdapterKind::Broker(D::KIND)
    }
}

fn node_channel(prefix: &str, sep: char, name: &str) -> String {
    format!("{prefix}node{sep}{}", name_token(name))
}

/// Aborts a task when dropped (the receiving task of a link ends with the link).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a link ended.
enum End {
    /// The adapter or its node is gone: stop.
    Stopped,
    /// The link was lost: connect again.
    Lost(LinkError),
}

/// The adapter's task: connects, publishes what the queue holds, starts a receiving task per
/// link, and connects again with back-off when the link is lost.
struct Runner<D: Driver> {
    driver: Arc<D>,
    options: BrokerOptions,
    link: Arc<LinkState>,
    rx: QueueRx,
    origin: u64,
    own_channel: String,
    cluster_channel: String,
    prefix: String,
    next_id: u64,
    inbound: Inbound,
}

impl<D: Driver> Runner<D> {
    async fn run(mut self) {
        let mut backoff = Backoff::new(self.options.backoff_max);
        let channels = vec![self.cluster_channel.clone(), self.own_channel.clone()];
        loop {
            if self.inbound.inner.strong_count() == 0 {
                return;
            }
            let attempt = self.driver.connect(channels.clone());
            let (mut link, incoming) =
                match timeout(self.options.connect_timeout * 2, attempt).await {
                    Ok(Ok(connected)) => connected,
                    Ok(Err(error)) => {
                        self.lost(error);
                        tokio::time::sleep(backoff.delay()).await;
                        continue;
                    }
                    Err(_) => {
                        self.lost(LinkError::ConnectTimeout);
                        tokio::time::sleep(backoff.delay()).await;
                        continue;
                    }
                };
            self.link.up();
            backoff.reset();
            let receiver = Receiver::new(self.origin, self.inbound.clone(), self.link.clone());
            let mut receiving = AbortOnDrop(tokio::spawn(receive(incoming, receiver)));
            let end = tokio::select! {
                end = self.send(&mut link) => end,
                end = &mut receiving.0 => end.unwrap_or(End::Lost(LinkError::Closed)),
            };
            drop(receiving);
            match end {
                End::Stopped => return,
                End::Lost(error) => self.lost(error),
            }
        }
    }

    /// Marks the link down and drops what waits in the queue (the broker is away).
    fn lost(&mut self, error: LinkError) {
        self.link.down(error);
        let mut waiting = Vec::new();
        let n = self.rx.try_recv_many(&mut waiting, usize::MAX);
        self.link.dropped(n as u64, DropCause::Unreachable);
    }

    fn channel(&self, target: &Target) -> String {
        match target {
            Target::Cluster => self.cluster_channel.clone(),
            Target::Node(name) => node_channel(&self.prefix, D::SEPARATOR, name),
        }
    }

    /// Publishes queued frames in batches until the link fails or the adapter is gone; probes
    /// the link when nothing was sent for `ping_ms`.
    async fn send(&mut self, link: &mut D::Link) -> End {
        let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
        let mut messages: Vec<(String, Bytes)> = Vec::with_capacity(BATCH);
        let mut sizes: Vec<usize> = Vec::with_capacity(BATCH);
        loop {
            batch.clear();
            let n = match timeout(self.options.ping, self.rx.recv_many(&mut batch, BATCH)).await {
                Ok(0) => return End::Stopped,
                Ok(n) => n,
                Err(_) => match timeout(self.options.ping * 2, link.probe()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(error)) => return End::Lost(error),
                    Err(_) => return End::Lost(LinkError::ProbeTimeout),
                },
            };
            let max_payload = link
                .max_payload()
                .filter(|m| *m > 0)
                .map_or(self.options.max_payload, |m| {
                    m.min(self.options.max_payload)
                });
            messages.clear();
            sizes.clear();
            for out in batch.drain(..) {
                let channel = self.channel(&out.target);
                self.next_id += 1;
                let pieces = envelope::seal(self.origin, self.next_id, &out.frame, max_payload);
                sizes.push(pieces.iter().map(Bytes::len).sum());
                messages.extend(pieces.into_iter().map(|piece| (channel.clone(), piece)));
            }
            if let Err(error) = link.publish(&messages).await {
                self.link.dropped(n as u64, DropCause::PublishFailed);
                return End::Lost(error);
            }
            for size in &sizes {
                self.link.sent(*size);
            }
        }
    }
}

/// The receiving task of one link: hands every message to `receiver` until the link ends.
async fn receive(mut incoming: Incoming, mut receiver: Receiver) -> End {
    while let Some(message) = incoming.next().await {
        match message {
            Ok(message) => {
                receiver.handle(message);
                if !receiver.node_alive() {
                    return End::Stopped;
                }
            }
            Err(error) => return End::Lost(error),
        }
    }
    End::Lost(LinkError::Closed)
}

/// Turns broker messages into deliveries: drops our own, reassembles chunks, counts.
pub(crate) struct Receiver {
    origin: u64,
    inbound: Inbound,
    link: Arc<LinkState>,
    reassembler: Reassembler,
}

impl Receiver {
    pub(crate) fn new(origin: u64, inbound: Inbound, link: Arc<LinkState>) -> Self {
        Receiver {
            origin,
            inbound,
            link,
            reassembler: Reassembler::new(),
        }
    }

    /// Whether the node this adapter serves still exists.
    pub(crate) fn node_alive(&self) -> bool {
        self.inbound.inner.strong_count() > 0
    }

    /// Handles one broker message.
    pub(crate) fn handle(&mut self, message: Bytes) {
        self.link.received_bytes(message.len());
        let envelope = match envelope::open(message) {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(broker = self.link.kind(), %error, "dropped a malformed broker message");
                return;
            }
        };
        if envelope.origin() == self.origin {
            return;
        }
        let frame = match envelope {
            envelope::Envelope::Whole { frame, .. } => frame,
            envelope::Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part,
            } => match self
                .reassembler
                .push(origin, id, index, count, part, Instant::now())
            {
                Some(frame) => frame,
                None => return,
            },
        };
        if self.inbound.deliver(frame) {
            self.link.received_frame();
        }
    }
}
