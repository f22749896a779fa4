//! Server behaviour that needs real sockets: slow consumers and broadcast fan-out.

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
        write_timeout: Duration::from_millis(300),
        ..EndpointConfig::default()
    })
    .await;
    let topic = "room:lobby";

    let mut slow = Client::connect(&server).await;
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
                for n in 0..broadcasts {
                    let frame = client.recv(Duration::from_secs(30)).await;
                    assert_eq!(frame[3], "big", "broadcast {n}: {}", frame[3]);
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
