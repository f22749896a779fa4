//! Protocol fidelity against Phoenix's serializers and RFC 6455, over real sockets: refs echoed
//! as the JSON values the client sent, V1 JSON in binary frames, the close handshake, and the
//! close codes of protocol violations.

mod common;

use std::time::Duration;

use common::{Client, start};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};

const LIMIT: Duration = Duration::from_secs(10);

/// A number stays a number, a string a string and null null, in the join reply, a reply,
/// a heartbeat reply, the leave reply and `phx_close` (V2).
#[tokio::test]
async fn v2_refs_come_back_as_the_json_values_sent() {
    let server = start(Default::default()).await;
    for (join_ref, ref_) in [(json!(1), json!(2)), (json!("1"), json!("2"))] {
        let mut client = Client::connect(&server).await;
        let join = json!([join_ref, join_ref, "room:r", "phx_join", {}]);
        client.send_raw(&join.to_string()).await;
        let reply = client.recv(LIMIT).await;
        assert_eq!((&reply[0], &reply[1]), (&join_ref, &join_ref), "{reply}");

        let push = json!([join_ref, ref_, "room:r", "echo", {"a": 1}]);
        client.send_raw(&push.to_string()).await;
        let reply = client.recv(LIMIT).await;
        assert_eq!((&reply[0], &reply[1]), (&join_ref, &ref_), "{reply}");
        assert_eq!(reply[4]["response"]["echo"], json!({"a": 1}));

        let heartbeat = json!([null, ref_, "phoenix", "heartbeat", {}]);
        client.send_raw(&heartbeat.to_string()).await;
        let reply = client.recv(LIMIT).await;
        assert_eq!((&reply[0], &reply[1]), (&Value::Null, &ref_), "{reply}");

        let leave = json!([join_ref, ref_, "room:r", "phx_leave", {}]);
        client.send_raw(&leave.to_string()).await;
        let reply = client.recv(LIMIT).await;
        assert_eq!((&reply[0], &reply[1]), (&join_ref, &ref_), "{reply}");
        let close = client.recv(LIMIT).await;
        assert_eq!(close[3], "phx_close");
        assert_eq!((&close[0], &close[1]), (&join_ref, &join_ref), "{close}");
    }
}

/// A join whose join_ref is null is answered with a null join_ref, as is a push to a topic
/// that was never joined.
#[tokio::test]
async fn null_join_refs_stay_null() {
    let server = start(Default::default()).await;
    let mut client = Client::connect(&server).await;
    client.send_raw(r#"[null,7,"room:r","phx_join",{}]"#).await;
    let reply = client.recv(LIMIT).await;
    assert_eq!((&reply[0], &reply[1]), (&Value::Null, &json!(7)), "{reply}");
    assert_eq!(reply[4]["status"], "ok");

    client.send_raw(r#"["3",8,"room:other","echo",{}]"#).await;
    let reply = client.recv(LIMIT).await;
    assert_eq!((&reply[0], &reply[1]), (&Value::Null, &json!(8)), "{reply}");
    assert_eq!(reply[4]["response"]["reason"], "unmatched topic");
}

/// V1: numeric and string refs are echoed as sent, and JSON arriving in a binary frame is read
/// like a text frame, as Phoenix's V1 serializer does.
#[tokio::test]
async fn v1_refs_round_trip_and_binary_frames_carry_json() {
    let server = start(Default::default()).await;
    let mut client = Client::connect_vsn(&server, "1.0.0").await;
    client
        .send_raw(r#"{"topic":"room:r","event":"phx_join","payload":{},"ref":5}"#)
        .await;
    let reply = client.recv(LIMIT).await;
    assert_eq!(reply["ref"], json!(5), "{reply}");
    assert_eq!(reply["payload"]["status"], "ok");

    let push = r#"{"topic":"room:r","event":"echo","payload":{"b":2},"ref":"six"}"#;
    client
        .ws
        .send(Message::binary(push.as_bytes().to_vec()))
        .await
        .expect("binary frame sent");
    let reply = client.recv(LIMIT).await;
    assert_eq!(reply["ref"], json!("six"), "{reply}");
    assert_eq!(reply["payload"]["response"]["echo"], json!({"b": 2}));

    client
        .send_raw(r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}"#)
        .await;
    let reply = client.recv(LIMIT).await;
    assert_eq!(reply["ref"], Value::Null, "{reply}");
}

/// The client's close frame is answered with a close frame: a disconnect is clean (1000).
#[tokio::test]
async fn the_close_handshake_completes() {
    let server = start(Default::default()).await;
    let mut client = Client::connect(&server).await;
    client.join("room:r").await;
    client
        .ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await
        .expect("close sent");
    let (code, _) = client.closed(LIMIT).await;
    assert_eq!(code, 1000);
    let end = tokio::time::timeout(LIMIT, client.ws.next())
        .await
        .expect("the server ends the connection");
    assert!(end.is_none(), "nothing after the close: {end:?}");
}

async fn send_frame(client: &mut Client, opcode: OpCode, data: &[u8]) {
    let frame = Frame::message(data.to_vec(), opcode, true);
    client
        .ws
        .send(Message::Frame(frame))
        .await
        .expect("frame sent");
}

/// A text frame that is not UTF-8 closes the connection with 1007.
#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let server = start(Default::default()).await;
    let mut client = Client::connect(&server).await;
    client.join("room:r").await;
    send_frame(
        &mut client,
        OpCode::Data(Data::Text),
        b"[\"1\",\"2\",\"\xff\xfe\"]",
    )
    .await;
    let (code, reason) = client.closed(LIMIT).await;
    assert_eq!((code, reason.as_str()), (1007, "invalid UTF-8"));
}

/// A continuation frame with nothing to continue is a protocol violation: 1002.
#[tokio::test]
async fn a_protocol_violation_closes_with_1002() {
    let server = start(Default::default()).await;
    let mut client = Client::connect(&server).await;
    send_frame(&mut client, OpCode::Data(Data::Continue), b"x").await;
    let (code, _) = client.closed(LIMIT).await;
    assert_eq!(code, 1002);
}

/// A malformed frame is dropped and counted; the connection and its channels stay up.
#[tokio::test]
async fn a_malformed_frame_is_ignored() {
    let server = start(Default::default()).await;
    let mut client = Client::connect(&server).await;
    let join_ref = client.join("room:r").await;
    for _ in 0..100 {
        client.send_raw("not json").await;
    }
    let r = client
        .send(Some(&join_ref), "room:r", "echo", json!({"c": 3}))
        .await;
    let reply = client.recv(LIMIT).await;
    assert_eq!(reply[1], json!(r), "{reply}");
}

/// A WebSocket that joins nothing within `join_timeout` is closed with 1008 and a reason; one
/// that joined in time stays open past that deadline.
#[tokio::test]
async fn a_socket_that_joins_nothing_is_closed() {
    let server = start(channels::server::EndpointConfig {
        join_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut joined = Client::connect(&server).await;
    joined.join("room:r").await;
    let mut silent = Client::connect(&server).await;
    let (code, reason) = silent.closed(LIMIT).await;
    assert_eq!((code, reason.as_str()), (1008, "no channel joined"));
    // The silent one was closed after the deadline; the joined one still answers.
    let r = joined.send(None, "phoenix", "heartbeat", json!({})).await;
    let reply = joined.recv(LIMIT).await;
    assert_eq!(reply[1], json!(r), "{reply}");
}
