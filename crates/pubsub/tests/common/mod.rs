//! Shared by the broker adapter tests: unique cluster names, and the scenarios every broker must
//! pass (cutting a node off the broker goes through `test_support::TcpProxy`, without touching
//! the broker, which other tests use).
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use pubsub::{AdapterStatus, Inbox, PubSub};
use test_support::TcpProxy;

/// How long a test waits for something that must happen.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A cluster name no other test uses.
pub fn unique_cluster() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

/// Waits until `pubsub` reports `want` (compared by variant).
pub async fn wait_status(pubsub: &PubSub, connected: bool) {
    let mut changes = pubsub.status_changes();
    let waited = tokio::time::timeout(
        DEADLINE,
        changes.wait_for(|s| matches!(s, AdapterStatus::Connected) == connected),
    )
    .await;
    assert!(
        waited.is_ok(),
        "status did not become {} within {DEADLINE:?}: {:?}",
        if connected {
            "connected"
        } else {
            "disconnected"
        },
        pubsub.adapter_status()
    );
}

/// The next message of `inbox`, or a panic after `DEADLINE`.
#[track_caller]
pub fn recv(inbox: &mut Inbox) -> impl Future<Output = Bytes> + '_ {
    let caller = std::panic::Location::caller();
    async move {
        tokio::time::timeout(DEADLINE, inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("no message within {DEADLINE:?} (awaited at {caller})"))
            .expect("an open inbox")
            .payload
            .clone()
    }
}

/// Asserts nothing arrives in `inbox` for a short while.
pub async fn quiet(inbox: &mut Inbox) {
    let got = tokio::time::timeout(Duration::from_millis(300), inbox.recv()).await;
    assert!(got.is_err(), "unexpected message: {got:?}");
}

/// Publishes with `publish` every 50 ms until `inbox` hears `payload` (links come back one by one
/// after an outage, so the first attempts may be lost).
pub async fn until_heard(inbox: &mut Inbox, payload: &'static [u8], publish: impl Fn()) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        publish();
        if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(50), inbox.recv()).await
            && &message.payload[..] == payload
        {
            return;
        }
        assert!(Instant::now() < deadline, "traffic did not flow again");
    }
}

/// `url` (`scheme://host:port`) with the cluster parameter set.
pub fn with_cluster(base: &str, cluster: &str) -> String {
    format!("{base}/?cluster={cluster}&ping_ms=300&backoff_max_ms=500")
}

/// Broadcast, broadcast_from and direct between nodes a, b and c of one cluster, a frame bigger
/// than one broker message, and two clusters on one broker that do not hear each other.
pub async fn operations_cross_nodes(base: &str) {
    let cluster = unique_cluster();
    let url = with_cluster(base, &cluster);
    let a = pubsub::connect("a", Some(&url)).unwrap();
    let b = pubsub::connect("b", Some(&url)).unwrap();
    let c = pubsub::connect("c.with dots", Some(&url)).unwrap();
    let other = pubsub::connect("b", Some(&with_cluster(base, &unique_cluster()))).unwrap();
    for p in [&a, &b, &c, &other] {
        wait_status(p, true).await;
    }
    let (ma, mut ia) = a.mailbox(64);
    let (ma2, mut ia2) = a.mailbox(64);
    let (mb, mut ib) = b.mailbox(64);
    let (mc, mut ic) = c.mailbox(64);
    let (mo, mut io) = other.mailbox(64);
    a.subscribe("t", &ma);
    a.subscribe("t", &ma2);
    b.subscribe("t", &mb);
    c.subscribe("t", &mc);
    other.subscribe("t", &mo);

    // broadcast: everybody once, the publisher's node included (not twice: its own broadcast
    // coming back from the broker is ignored).
    a.broadcast("t", Bytes::from_static(b"all"));
    for inbox in [&mut ia, &mut ia2, &mut ib, &mut ic] {
        assert_eq!(&recv(inbox).await[..], b"all");
    }
    // broadcast_from: everybody but the sender mailbox.
    a.broadcast_from(&ma, "t", Bytes::from_static(b"from"));
    for inbox in [&mut ia2, &mut ib, &mut ic] {
        assert_eq!(&recv(inbox).await[..], b"from");
    }
    // direct: only the named node.
    a.direct_broadcast("c.with dots", "t", Bytes::from_static(b"direct"));
    assert_eq!(&recv(&mut ic).await[..], b"direct");
    b.direct_broadcast("a", "t", Bytes::from_static(b"to a"));
    assert_eq!(&recv(&mut ia).await[..], b"to a");
    assert_eq!(&recv(&mut ia2).await[..], b"to a");
    // A frame several times the broker's message size arrives whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    b.broadcast("t", Bytes::from(big.clone()));
    for inbox in [&mut ia, &mut ia2, &mut ic] {
        assert_eq!(recv(inbox).await, Bytes::from(big.clone()));
    }
    assert_eq!(recv(&mut ib).await.len(), big.len());
    for inbox in [&mut ia, &mut ia2, &mut ib, &mut ic, &mut io] {
        quiet(inbox).await;
    }
    let stats = a.adapter_stats();
    assert!(
        stats.frames_sent >= 3 && stats.frames_received >= 2,
        "{stats:?}"
    );
    assert!(b.adapter_stats().bytes_sent > 3_000_000);
    assert_eq!(stats.dropped, 0);
}

/// Node `a` reaches the broker through a proxy; stopping the proxy must leave `a` serving its
/// own subscribers, publishing without blocking, and reporting `Disconnected`; restarting it must
/// bring `Connected` and cross-node traffic back without any restart.
pub async fn broker_loss_is_survived(base: &str, broker_addr: &str) {
    let cluster = unique_cluster();
    let mut proxy = TcpProxy::start(broker_addr.parse().unwrap()).await;
    let scheme = base.split("://").next().unwrap();
    let via_proxy = with_cluster(&format!("{scheme}://127.0.0.1:{}", proxy.port()), &cluster);
    let a = pubsub::connect("a", Some(&via_proxy)).unwrap();
    let b = pubsub::connect("b", Some(&with_cluster(base, &cluster))).unwrap();
    wait_status(&a, true).await;
    wait_status(&b, true).await;
    let (ma, mut ia) = a.mailbox(100_000);
    let (mb, mut ib) = b.mailbox(100_000);
    a.subscribe("t", &ma);
    b.subscribe("t", &mb);
    a.broadcast("t", Bytes::from_static(b"before"));
    assert_eq!(&recv(&mut ib).await[..], b"before");
    assert_eq!(&recv(&mut ia).await[..], b"before");

    proxy.stop().await;
    wait_status(&a, false).await;
    assert!(
        matches!(a.adapter_status(), AdapterStatus::Disconnected(ref reason) if !reason.is_empty())
    );
    // Publishing does not wait for the broker, and local subscribers still hear everything.
    let started = Instant::now();
    for _ in 0..10_000 {
        a.broadcast("t", Bytes::from_static(b"during"));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "10k publishes took {took:?}"
    );
    for _ in 0..10_000 {
        assert_eq!(&recv(&mut ia).await[..], b"during");
    }
    assert!(
        a.adapter_stats().dropped >= 10_000,
        "{:?}",
        a.adapter_stats()
    );
    quiet(&mut ib).await;

    proxy.restart().await;
    wait_status(&a, true).await;
    assert!(a.adapter_stats().reconnects >= 1, "{:?}", a.adapter_stats());
    // Both directions flow again.
    until_heard(&mut ib, b"a again", || {
        a.broadcast("t", Bytes::from_static(b"a again"))
    })
    .await;
    until_heard(&mut ia, b"b again", || {
        b.broadcast("t", Bytes::from_static(b"b again"))
    })
    .await;
    until_heard(&mut ia, b"direct again", || {
        b.direct_broadcast("a", "t", Bytes::from_static(b"direct again"))
    })
    .await;
}

/// A URL with a bad parameter or scheme is refused at once; none/`local` is a single node.
pub fn urls_are_checked(base: &str) {
    assert!(pubsub::connect("a", Some(&format!("{base}/?queue=0"))).is_err());
    assert!(pubsub::connect("a", Some("kafka://127.0.0.1:9092")).is_err());
    assert!(pubsub::connect("a", Some("127.0.0.1:6379")).is_err());
}
