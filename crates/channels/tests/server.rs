//! Server behaviour that needs real sockets: slow consumers, broadcast fan-out, batched draining.

mod common;

use std::time::Duration;

use channels::codec::{JsonObject, OutPayload};
use channels::server::EndpointConfig;
use common::{Client, start};
use futures::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A client that stops reading is cut off, while every other subscriber — real sockets and
/// 10,000 in-process mailboxes — receives every broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_others_get_everything() {
    let server = start(EndpointConfig {
        // Long enough that a reader starved of CPU on a busy CI machine is not mistaken
        // for the client that stopped reading.
        write_timeout: Duration::from_secs(2),
        ..EndpointConfig::default()
    })
    .await;
    let topic = "room:lobby";

    let mut slow = Client::connect_with_small_receive_buffer(&server).await;
    slow.join(topic).await;

    let mut readers = Vec::new();
    for _ in 0..50 {
        let mut client = Client::connect(&server).await;
        client.join(topic).await;
        readers.push(client);
    }
    let pubsub = server.endpoint.pubsub().clone();
    let mut inboxes = Vec::new();
    for _ in 0..10_000 {
        let (mailbox, inbox) = pubsub.mailbox(1024);
        pubsub.subscribe(topic, &mailbox);
        inboxes.push((mailbox, inbox));
    }

    // 300 broadcasts of 32 KiB: ~10 MB, far more than the slow client's socket buffers hold.
    let blob = "x".repeat(32 * 1024);
    let payload =
        OutPayload::Json(JsonObject::serialize(&json!({ "blob": blob })).expect("an object"));
    let broadcasts = 300;
    let readers_done: Vec<_> = readers
        .drain(..)
        .map(|mut client| {
            tokio::spawn(async move {
                // The prefix identifies the broadcast without parsing 32 KiB of JSON per frame.
                let expected = format!(r#"[null,null,"{topic}","big","#);
                for n in 0..broadcasts {
                    let text = client.recv_text(Duration::from_secs(30)).await;
                    assert!(text.starts_with(&expected), "broadcast {n}: {:.80}", text);
                }
                client
            })
        })
        .collect();
    let drain = tokio::spawn(async move {
        for (_, inbox) in &mut inboxes {
            for _ in 0..broadcasts {
                inbox
                    .recv()
                    .await
                    .expect("in-process subscriber receives all");
            }
        }
        inboxes
    });
    for _ in 0..broadcasts {
        server.endpoint.broadcast(topic, "big", &payload);
        tokio::task::yield_now().await;
    }
    let mut readers = Vec::new();
    for reader in readers_done {
        readers.push(
            reader
                .await
                .expect("every reading client got every broadcast"),
        );
    }
    let inboxes = drain.await.expect("mailboxes drained");
    assert_eq!(inboxes.len(), 10_000);

    // The server gives up on the slow client once a write has waited `write_timeout`; only then
    // may it read, or it would unblock the server in time and get everything.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while server.endpoint.pubsub().subscriber_count(topic) > 50 + 10_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The slow client now reads what was buffered: the stream ends before all broadcasts.
    let mut received = 0;
    let mut closed_by_server = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), slow.ws.next()).await
    {
        match frame {
            Ok(Message::Text(_)) => received += 1,
            Ok(Message::Close(frame)) => {
                closed_by_server = Some(frame.map(|f| u16::from(f.code)));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    // The join reply was read already; fewer broadcasts than were sent made it.
    assert!(
        received < broadcasts,
        "slow client got {received} of {broadcasts}"
    );
    if let Some(Some(code)) = closed_by_server {
        assert_eq!(code, 1013, "closed as too slow");
    }
    assert_eq!(
        server.endpoint.pubsub().subscriber_count(topic),
        50 + 10_000,
        "only the slow client was unsubscribed"
    );
    drop((readers, inboxes));
}

/// A broadcast is delivered to V1 and V2 clients alike, each in its own format.
#[tokio::test]
async fn broadcasts_reach_v1_and_v2_clients_in_their_format() {
    let server = start(EndpointConfig::default()).await;
    let mut v2 = Client::connect(&server).await;
    v2.join("room:mixed").await;
    let url = format!("ws://{}/socket/websocket?vsn=1.0.0", server.addr);
    let (mut v1, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("v1 connects");
    use futures::SinkExt;
    v1.send(Message::text(
        json!({"topic": "room:mixed", "event": "phx_join", "payload": {}, "ref": "1"}).to_string(),
    ))
    .await
    .expect("join sent");
    let reply = v1.next().await.expect("reply").expect("frame");
    let reply: serde_json::Value =
        serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!(reply["payload"]["status"], "ok");

    let payload = OutPayload::Json(JsonObject::from_json(r#"{"n":1}"#).expect("object"));
    server.endpoint.broadcast("room:mixed", "tick", &payload);
    assert_eq!(
        v2.recv(Duration::from_secs(5)).await,
        json!([null, null, "room:mixed", "tick", {"n": 1}])
    );
    let frame = v1.next().await.expect("broadcast").expect("frame");
    let frame: serde_json::Value =
        serde_json::from_str(frame.to_text().expect("text")).expect("json");
    assert_eq!(
        frame,
        json!({"topic": "room:mixed", "event": "tick", "payload": {"n": 1}, "ref": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_in_batches_closes_connections_batch_by_batch() {
    let server = common::start(EndpointConfig::default()).await;
    let mut clients = Vec::new();
    for n in 0..5 {
        let mut client = common::Client::connect(&server).await;
        client.join(&format!("room:{n}")).await;
        clients.push(client);
    }
    assert_eq!(server.endpoint.connection_count(), 5);
    let interval = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    let closes: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                loop {
                    match tokio::time::timeout(Duration::from_secs(10), client.ws.next()).await {
                        Ok(Some(Ok(Message::Close(frame)))) => {
                            return (started.elapsed(), frame.map(|f| u16::from(f.code)));
                        }
                        Ok(Some(Ok(_))) => {}
                        other => panic!("expected a close frame, got {other:?}"),
                    }
                }
            })
        })
        .collect();
    let endpoint = server.endpoint.clone();
    let report = tokio::spawn(async move {
        endpoint
            .drain_in_batches(channels::server::DrainOptions {
                batch_size: 2,
                batch_interval: interval,
                shutdown: Duration::from_secs(10),
            })
            .await
    });
    let mut times = Vec::new();
    for close in closes {
        let (at, code) = close.await.expect("client task");
        assert_eq!(code, Some(1012));
        times.push(at);
    }
    times.sort();
    let report = report.await.expect("drain task");
    assert_eq!(report.initial, 5);
    assert_eq!(report.batches, 3, "{report:?}");
    assert_eq!(report.remaining, 0);
    // Two close at once, two one interval later, the last one after two intervals.
    assert!(times[1] < interval / 2, "{times:?}");
    assert!(
        times[2] >= interval * 3 / 4 && times[3] < interval * 3 / 2,
        "{times:?}"
    );
    assert!(times[4] >= interval * 7 / 4, "{times:?}");
    assert!(server.endpoint.is_draining());
    let refused = tokio_tungstenite::connect_async(format!(
        "ws://{}/socket/websocket?vsn=2.0.0",
        server.addr
    ))
    .await;
    assert!(
        refused.is_err(),
        "new connections are refused while draining"
    );
}

/// A client that sends nothing for the idle timeout is closed with 1001 (so phoenix.js
/// reconnects), while one that heartbeats more often than the timeout stays open well past it.
#[tokio::test]
async fn a_silent_client_is_closed_and_a_heartbeating_one_is_kept() {
    let idle_timeout = Duration::from_millis(300);
    let server = start(EndpointConfig {
        idle_timeout,
        ..EndpointConfig::default()
    })
    .await;
    let mut silent = Client::connect(&server).await;
    let mut lively = Client::connect(&server).await;
    let started = tokio::time::Instant::now();

    // The lively client heartbeats every 100 ms for four idle timeouts; each is answered.
    while started.elapsed() < idle_timeout * 4 {
        let r = lively.send(None, "phoenix", "heartbeat", json!({})).await;
        let reply = lively.recv(Duration::from_secs(5)).await;
        assert_eq!(reply[1], json!(r), "heartbeat reply: {reply}");
        assert_eq!(reply[4]["status"], "ok", "heartbeat reply: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // By now the silent one was closed, no sooner than the timeout after it connected.
    let closed = tokio::time::timeout(Duration::from_secs(5), silent.ws.next())
        .await
        .expect("the silent client is closed in time");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), "idle timeout");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(started.elapsed() >= idle_timeout);
}
