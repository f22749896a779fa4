//! An in-process broker behind a [`Driver`], so that the adapter's envelope, queue and
//! reconnection are tested without a broker server (the live Redis and NATS tests in `tests/`
//! cover the real drivers). Like Redis, it hands a node its own broadcasts back.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::driver::{Driver, Incoming, Link, LinkError};
use super::{BrokerAdapter, BrokerOptions};
use crate::{AdapterStatus, Inbox, PubSub};

#[derive(Debug, thiserror::Error)]
#[error("stub broker is down")]
struct Down;

type Subscriber = (Vec<String>, mpsc::UnboundedSender<Result<Bytes, LinkError>>);

#[derive(Default)]
struct State {
    up: bool,
    subscribers: Vec<Subscriber>,
    messages: u64,
}

/// The broker: channels, subscribers, and the faults a test injects.
#[derive(Clone)]
struct Broker {
    state: Arc<Mutex<State>>,
    /// While true, publishes wait.
    stalled: watch::Sender<bool>,
    /// Publishes that started (a test waits on it to know the adapter's task is inside one).
    publishing: watch::Sender<u64>,
}

impl Broker {
    fn new() -> Broker {
        Broker {
            state: Arc::new(Mutex::new(State {
                up: true,
                ..State::default()
            })),
            stalled: watch::channel(false).0,
            publishing: watch::channel(0).0,
        }
    }

    /// Every connection is cut and new ones are refused.
    fn cut(&self) {
        let mut state = self.state.lock();
        state.up = false;
        state.subscribers.clear();
    }

    fn restore(&self) {
        self.state.lock().up = true;
    }

    fn adapter(&self, options: BrokerOptions) -> Arc<BrokerAdapter<StubDriver>> {
        Arc::new(BrokerAdapter::with_driver(
            StubDriver {
                broker: self.clone(),
            },
            "stub://broker",
            options,
        ))
    }
}

struct StubDriver {
    broker: Broker,
}

struct StubLink {
    broker: Broker,
}

impl Driver for StubDriver {
    type Link = StubLink;
    const KIND: &'static str = "stub";
    const SEPARATOR: char = '.';

    async fn connect(&self, channels: Vec<String>) -> Result<(StubLink, Incoming), LinkError> {
        let mut state = self.broker.state.lock();
        if !state.up {
            return Err(LinkError::Connect(Box::new(Down)));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        state.subscribers.push((channels, tx));
        let incoming =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
                .boxed();
        let link = StubLink {
            broker: self.broker.clone(),
        };
        Ok((link, incoming))
    }
}

impl Link for StubLink {
    async fn publish(&mut self, batch: &[(String, Bytes)]) -> Result<(), LinkError> {
        self.broker.publishing.send_modify(|n| *n += 1);
        let mut stalled = self.broker.stalled.subscribe();
        let _ = stalled.wait_for(|s| !*s).await;
        let mut state = self.broker.state.lock();
        if !state.up {
            return Err(LinkError::Publish(Box::new(Down)));
        }
        for (channel, message) in batch {
            state.messages += 1;
            for (channels, tx) in &state.subscribers {
                if channels.contains(channel) {
                    let _ = tx.send(Ok(message.clone()));
                }
            }
        }
        Ok(())
    }

    async fn probe(&mut self) -> Result<(), LinkError> {
        if self.broker.state.lock().up {
            Ok(())
        } else {
            Err(LinkError::Probe(Box::new(Down)))
        }
    }
}

fn options() -> BrokerOptions {
    BrokerOptions {
        max_payload: 1024,
        ping: Duration::from_millis(50),
        backoff_max: Duration::from_millis(100),
        ..BrokerOptions::default()
    }
}

const DEADLINE: Duration = Duration::from_secs(10);

async fn wait_status(pubsub: &PubSub, connected: bool) {
    let mut changes = pubsub.status_changes();
    let waited = tokio::time::timeout(
        DEADLINE,
        changes.wait_for(|s| (*s == AdapterStatus::Connected) == connected),
    )
    .await;
    assert!(
        waited.is_ok(),
        "status stayed {:?}",
        pubsub.adapter_status()
    );
}

async fn recv(inbox: &mut Inbox) -> Bytes {
    tokio::time::timeout(DEADLINE, inbox.recv())
        .await
        .expect("a message in time")
        .expect("an open inbox")
        .payload
        .clone()
}

#[tokio::test]
async fn frames_cross_whole_and_chunked_and_own_broadcasts_are_not_heard_twice() {
    let broker = Broker::new();
    let a = PubSub::with_adapter("a", broker.adapter(options()));
    let b = PubSub::with_adapter("b", broker.adapter(options()));
    wait_status(&a, true).await;
    wait_status(&b, true).await;
    let (ma, mut ia) = a.mailbox(16);
    let (mb, mut ib) = b.mailbox(16);
    a.subscribe("t", &ma);
    b.subscribe("t", &mb);

    a.broadcast("t", Bytes::from_static(b"hello"));
    assert_eq!(&recv(&mut ib).await[..], b"hello");
    assert_eq!(&recv(&mut ia).await[..], b"hello");
    b.direct_broadcast("a", "t", Bytes::from_static(b"to a"));
    assert_eq!(&recv(&mut ia).await[..], b"to a");

    let before = broker.state.lock().messages;
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    a.broadcast("t", Bytes::from(big.clone()));
    assert_eq!(recv(&mut ib).await, Bytes::from(big.clone()));
    assert_eq!(recv(&mut ia).await, Bytes::from(big));
    assert!(
        broker.state.lock().messages - before >= 10,
        "a 10 kB frame crosses a 1 kB broker in chunks"
    );
    assert!(ia.try_recv().is_none() && ib.try_recv().is_none());
    let stats = a.adapter_stats();
    assert_eq!((stats.frames_sent, stats.dropped), (2, 0));
    assert_eq!(b.adapter_stats().frames_received, 2);
    assert_eq!(a.adapter_kind().as_str(), "stub");
}

#[tokio::test]
async fn a_lost_broker_drops_without_blocking_and_the_link_comes_back() {
    let broker = Broker::new();
    let a = PubSub::with_adapter("a", broker.adapter(options()));
    let b = PubSub::with_adapter("b", broker.adapter(options()));
    wait_status(&a, true).await;
    wait_status(&b, true).await;
    let (ma, mut ia) = a.mailbox(2048);
    let (mb, mut ib) = b.mailbox(16);
    a.subscribe("t", &ma);
    b.subscribe("t", &mb);

    broker.cut();
    wait_status(&a, false).await;
    wait_status(&b, false).await;
    let AdapterStatus::Disconnected(reason) = a.adapter_status() else {
        unreachable!("waited for it");
    };
    assert!(
        reason.contains("link lost") || reason.contains("cannot connect"),
        "{reason}"
    );
    for _ in 0..1000 {
        a.broadcast("t", Bytes::from_static(b"during"));
    }
    for _ in 0..1000 {
        assert_eq!(
            &recv(&mut ia).await[..],
            b"during",
            "local subscribers still hear"
        );
    }
    assert!(a.adapter_stats().dropped >= 1000, "{:?}", a.adapter_stats());

    broker.restore();
    wait_status(&a, true).await;
    wait_status(&b, true).await;
    assert_eq!(a.adapter_stats().reconnects, 1);
    a.broadcast("t", Bytes::from_static(b"again"));
    assert_eq!(&recv(&mut ib).await[..], b"again");
}

#[tokio::test]
async fn a_full_send_queue_drops_what_does_not_fit_and_counts_it() {
    let broker = Broker::new();
    let small = BrokerOptions {
        queue: 4,
        ..options()
    };
    let a = PubSub::with_adapter("a", broker.adapter(small));
    let b = PubSub::with_adapter("b", broker.adapter(options()));
    wait_status(&a, true).await;
    wait_status(&b, true).await;
    let (mb, mut ib) = b.mailbox(64);
    b.subscribe("t", &mb);

    // The adapter's task blocks inside a publish; then the queue holds 4 frames and no more.
    broker.stalled.send_replace(true);
    let mut publishing = broker.publishing.subscribe();
    let started = *publishing.borrow_and_update();
    a.broadcast("t", Bytes::from_static(b"first"));
    tokio::time::timeout(DEADLINE, publishing.wait_for(|n| *n > started))
        .await
        .expect("the first frame is being published")
        .expect("broker alive");
    for _ in 0..10 {
        a.broadcast("t", Bytes::from_static(b"queued"));
    }
    let stats = a.adapter_stats();
    assert_eq!((stats.queued, stats.dropped), (4, 6), "{stats:?}");

    broker.stalled.send_replace(false);
    assert_eq!(&recv(&mut ib).await[..], b"first");
    for _ in 0..4 {
        assert_eq!(&recv(&mut ib).await[..], b"queued");
    }
    assert_eq!(a.adapter_stats().queued, 0);
}
