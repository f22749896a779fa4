//! Phoenix's concurrency model: the messages of one channel are handled one at a time and in
//! order, while a handler that awaits holds up nothing else of its socket.

mod common;

use std::time::Duration;

use channels::codec::{JsonObject, OutPayload};
use channels::server::EndpointConfig;
use common::{Client, start};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);

/// One socket, two channels: while a handler of one sleeps for seconds, the other channel's reply,
/// the heartbeat reply and a broadcast to the busy channel all arrive; the slow channel's later
/// messages are answered after it, in the order they were sent.
#[tokio::test]
async fn a_slow_handler_holds_up_only_its_own_channel() {
    let server = start(EndpointConfig::default()).await;
    let mut client = Client::connect(&server).await;
    let slow = client.join("slow:a").await;
    let other = client.join("room:b").await;

    let sleeping = client
        .send(Some(&slow), "slow:a", "sleep", json!({"ms": 3000, "n": 1}))
        .await;
    let second = client
        .send(Some(&slow), "slow:a", "ping", json!({"n": 2}))
        .await;
    let third = client
        .send(Some(&slow), "slow:a", "ping", json!({"n": 3}))
        .await;
    let echo = client
        .send(Some(&other), "room:b", "echo", json!({"hi": 1}))
        .await;
    let heartbeat = client.send(None, "phoenix", "heartbeat", json!({})).await;

    // Everything but the slow channel's replies comes first, whatever the order among them.
    let mut early: Vec<Value> = Vec::new();
    for _ in 0..2 {
        early.push(client.recv(LONG).await);
    }
    let payload = OutPayload::Json(JsonObject::serialize(&json!({"b": 1})).expect("an object"));
    server.endpoint.broadcast("slow:a", "news", &payload);
    early.push(client.recv(LONG).await);

    let find = |r: &str| early.iter().find(|f| f[1] == json!(r)).cloned();
    let echoed = find(&echo).unwrap_or_else(|| panic!("echo reply came early: {early:?}"));
    assert_eq!(echoed[4]["response"]["echo"], json!({"hi": 1}));
    let beat = find(&heartbeat).unwrap_or_else(|| panic!("heartbeat came early: {early:?}"));
    assert_eq!(beat[2], "phoenix");
    assert!(
        early
            .iter()
            .any(|f| f[2] == "slow:a" && f[3] == "news" && f[1].is_null()),
        "the broadcast to the busy channel came before its handler finished: {early:?}"
    );

    for (r, n) in [(sleeping, 1), (second, 2), (third, 3)] {
        let reply = client.recv(LONG).await;
        assert_eq!(reply[1], json!(r), "slow channel replies in order: {reply}");
        assert_eq!(reply[0], json!(slow));
        assert_eq!(reply[4]["response"]["n"], json!(n));
    }
}

/// More messages waiting for a busy channel than its backlog holds close the connection, like a
/// client that cannot keep up, and are counted.
#[tokio::test]
async fn a_channel_backlog_overflow_closes_the_connection() {
    let server = start(EndpointConfig {
        channel_backlog: 2,
        ..EndpointConfig::default()
    })
    .await;
    let mut client = Client::connect(&server).await;
    let slow = client.join("slow:a").await;
    client
        .send(
            Some(&slow),
            "slow:a",
            "sleep",
            json!({"ms": 10_000, "n": 0}),
        )
        .await;
    for n in 1..=3 {
        client
            .send(Some(&slow), "slow:a", "ping", json!({"n": n}))
            .await;
    }
    let (code, reason) = client.closed(LONG).await;
    assert_eq!(code, 1013);
    assert_eq!(reason, "too slow: channel backlog overflowed");
}

/// A channel whose handler is asleep still leaves in order: the leave is answered after the
/// messages sent before it, then `phx_close`.
#[tokio::test]
async fn a_leave_waits_for_the_channels_earlier_messages() {
    let server = start(EndpointConfig::default()).await;
    let mut client = Client::connect(&server).await;
    let slow = client.join("slow:a").await;
    let sleeping = client
        .send(Some(&slow), "slow:a", "sleep", json!({"ms": 500, "n": 1}))
        .await;
    let leave = client
        .send(Some(&slow), "slow:a", "phx_leave", json!({}))
        .await;
    let reply = client.recv(LONG).await;
    assert_eq!(reply[1], json!(sleeping), "{reply}");
    let reply = client.recv(LONG).await;
    assert_eq!(reply[1], json!(leave), "{reply}");
    assert_eq!(reply[4]["status"], "ok");
    let close = client.recv(LONG).await;
    assert_eq!(close[3], "phx_close", "{close}");
}
