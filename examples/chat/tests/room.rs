//! The socket and the room channel with the channel test kit (`channels::testing`, Phoenix's
//! `ChannelTest`): in process, against the real connection state machine, no network.

use channels::server::{ConnectInfo, Params};
use channels::testing::{self, TestChannel, TestSocket};
use serde_json::{Value, json};

const SECRET: &str = "chat-test-secret-key-base-0123456789-0123456789";

fn chat() -> chat::Chat {
    chat::Chat::new(SECRET).expect("chat starts")
}

/// Connects as `name` with a token signed as the page signs it.
async fn connect(chat: &chat::Chat, name: &str) -> TestSocket {
    let token = chat.signer.sign_string(name).expect("token signed");
    let params = Params::from([("token".to_owned(), token)]);
    testing::connect(
        &chat.endpoint,
        chat.socket(),
        &params,
        ConnectInfo::default(),
    )
    .await
    .expect("a valid token connects")
}

/// Joins `topic` (subscribed, to see its broadcasts) and takes the `presence_state` push.
async fn join(socket: &TestSocket, topic: &str) -> (TestChannel, Value) {
    let (reply, room) = socket
        .subscribe_and_join(topic, json!({}))
        .await
        .expect("the room accepts");
    assert_eq!(reply, json!({}));
    let state = room.assert_push("presence_state").await;
    (room, state)
}

/// The next `presence_diff` on `room` for which `wanted` holds (a member also receives the diff
/// of its own join).
async fn diff(room: &TestChannel, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..10 {
        let diff = room.assert_push("presence_diff").await;
        if wanted(&diff) {
            return diff;
        }
    }
    panic!("no such presence_diff among the next ten");
}

#[tokio::test]
async fn a_socket_needs_a_token_signed_for_it() {
    let chat = chat();
    let other = channels::token::Signer::new(SECRET, "another purpose").expect("signer");
    for params in [
        Params::new(),
        Params::from([("token".to_owned(), "nope".to_owned())]),
        Params::from([(
            "token".to_owned(),
            other.sign_string("alice").expect("signed"),
        )]),
    ] {
        let refused = testing::connect(
            &chat.endpoint,
            chat.socket(),
            &params,
            ConnectInfo::default(),
        )
        .await;
        assert!(refused.is_err(), "{params:?} must be refused");
    }
    connect(&chat, "alice").await.close().await;
}

#[tokio::test]
async fn joining_lists_who_is_in_the_room_and_tells_the_others() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let (alice_room, state) = join(&alice, "room:lobby").await;
    let members: Vec<&String> = state.as_object().expect("an object").keys().collect();
    assert_eq!(members, ["alice"]);
    assert!(state["alice"]["metas"][0]["online_at"].is_u64(), "{state}");

    let bob = connect(&chat, "bob").await;
    let (bob_room, state) = join(&bob, "room:lobby").await;
    let mut members: Vec<&String> = state.as_object().expect("an object").keys().collect();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    let joined = diff(&alice_room, |d| d["joins"]["bob"].is_object()).await;
    assert_eq!(joined["leaves"], json!({}));

    // Leaving (or closing the tab) takes bob out of the room for everybody.
    let leave = bob_room.leave();
    bob_room.assert_reply(&leave, "ok").await;
    let left = diff(&alice_room, |d| d["leaves"]["bob"].is_object()).await;
    assert!(
        left["leaves"]["bob"]["metas"][0]["phx_ref"].is_string(),
        "{left}"
    );
    assert_eq!(chat.presence.get_by_key("room:lobby", "bob"), None);
    assert!(chat.presence.get_by_key("room:lobby", "alice").is_some());
}

#[tokio::test]
async fn a_message_is_broadcast_to_the_room_with_its_author() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let (room, _) = join(&alice, "room:lobby").await;

    let sent = room.push("new_msg", json!({"body": "  hello  "}));
    assert_eq!(room.assert_reply(&sent, "ok").await, json!({}));
    let expected = json!({"user": "alice", "body": "hello"});
    assert_eq!(room.assert_broadcast("new_msg").await, expected);
    assert_eq!(room.assert_push("new_msg").await, expected);
}

#[tokio::test]
async fn rooms_are_separate() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let bob = connect(&chat, "bob").await;
    let (room_a, _) = join(&alice, "room:a").await;
    let (room_b, state) = join(&bob, "room:b").await;
    assert_eq!(state.as_object().map(|o| o.len()), Some(1), "{state}");

    let sent = room_a.push("new_msg", json!({"body": "only in a"}));
    room_a.assert_reply(&sent, "ok").await;
    room_a.assert_push("new_msg").await;
    room_b.refute_push("new_msg").await;
    room_b.refute_broadcast("new_msg").await;
}

#[tokio::test]
async fn a_bad_message_gets_an_error_reply_and_reaches_nobody() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let (room, _) = join(&alice, "room:lobby").await;

    let too_long = "x".repeat(chat::room::MAX_BODY_CHARS + 1);
    for (payload, reason) in [
        (json!({}), "invalid payload: missing field `body`"),
        (
            json!({"body": 42}),
            "invalid payload: invalid type: integer `42`, expected a string",
        ),
        (json!({"body": "  "}), "body must hold 1 to 2000 characters"),
        (
            json!({"body": too_long}),
            "body must hold 1 to 2000 characters",
        ),
    ] {
        let sent = room.push("new_msg", payload);
        let reply = room.assert_reply(&sent, "error").await;
        assert_eq!(reply["reason"], reason);
    }
    room.refute_broadcast("new_msg").await;
}

#[tokio::test]
async fn an_unknown_event_crashes_the_channel_as_in_phoenix() {
    let chat = chat();
    let bob = connect(&chat, "bob").await;
    let (bob_room, _) = join(&bob, "room:lobby").await;
    let alice = connect(&chat, "alice").await;
    let (room, _) = join(&alice, "room:lobby").await;
    diff(&bob_room, |d| d["joins"]["alice"].is_object()).await;

    let sent = room.push("shout", json!({"body": "hi"}));
    let reply = room.assert_reply(&sent, "error").await;
    assert_eq!(reply["reason"], "unhandled event");
    room.assert_push("phx_error").await;
    // The crashed channel's presence went with it.
    let left = diff(&bob_room, |d| d["leaves"]["alice"].is_object()).await;
    assert_eq!(left["joins"], json!({}));
}

#[tokio::test]
async fn a_room_needs_a_name() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let refused = alice.join("room:", json!({})).await.err();
    assert_eq!(refused, Some(json!({"reason": "invalid room"})));
    let long = format!("room:{}", "r".repeat(chat::room::MAX_ROOM_BYTES + 1));
    assert!(alice.join(&long, json!({})).await.is_err());
}

#[tokio::test]
async fn disconnecting_a_user_closes_their_sockets_and_empties_their_seats() {
    let chat = chat();
    let alice = connect(&chat, "alice").await;
    let mut bob = connect(&chat, "bob").await;
    let (alice_room, _) = join(&alice, "room:lobby").await;
    let (_bob_room, _) = join(&bob, "room:lobby").await;
    diff(&alice_room, |d| d["joins"]["bob"].is_object()).await;

    chat.endpoint.disconnect("user_socket:bob");
    bob.assert_closed().await;
    diff(&alice_room, |d| d["leaves"]["bob"].is_object()).await;
}
