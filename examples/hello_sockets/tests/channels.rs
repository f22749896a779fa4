//! The book's channel tests (chapter 5: `UserSocketTest`'s PingChannel, `WildcardChannelTest`,
//! `DedupeChannelTest`) written as the book writes them, with `Phoenix.ChannelTest`'s verbs: the
//! channel test kit drives the UserSocket's channels in process, no server and no network. The
//! tests that need a running node (logs, StatsD, the console, the pipeline) are in `book.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use channels::server::{ConnectInfo, Endpoint, EndpointConfig, Params};
use channels::testing::{self, TestChannel, TestSocket};
use hello_sockets::dedupe_channel;
use hello_sockets::user_socket::user_socket;
use serde_json::json;

/// The book's `socket(HelloSocketsWeb.UserSocket, nil, %{})`, with its endpoint.
async fn connect() -> (Endpoint, TestSocket) {
    let endpoint = Endpoint::new(pubsub::PubSub::new("book"), EndpointConfig::default());
    let client = testing::connect(
        &endpoint,
        Arc::new(user_socket()),
        &Params::new(),
        ConnectInfo::default(),
    )
    .await
    .expect("UserSocket accepts everyone");
    (endpoint, client)
}

async fn join(client: &TestSocket, topic: &str) -> TestChannel {
    let (reply, channel) = client
        .subscribe_and_join(topic, json!({}))
        .await
        .unwrap_or_else(|e| panic!("join {topic}: {e}"));
    assert_eq!(reply, json!({}));
    channel
}

mod ping_channel_test {
    use super::*;

    #[tokio::test]
    async fn ping_channel_answers_every_event_of_chapter_3() {
        let (_, client) = connect().await;
        let ping = join(&client, "ping").await;
        let r = ping.push("param_ping", json!({"error": true}));
        assert_eq!(
            ping.assert_reply(&r, "error").await,
            json!({"reason": "You asked for this!"})
        );
        let r = ping.push("param_ping", json!({"error": false, "arr": [1, 2]}));
        assert_eq!(
            ping.assert_reply(&r, "ok").await,
            json!({"error": false, "arr": [1, 2]})
        );
        let r = ping.push("ping:hooray!", json!({}));
        assert_eq!(
            ping.assert_reply(&r, "ok").await,
            json!({"ping": "hooray!"})
        );
        let pong = ping.push("pong", json!({}));
        let r = ping.push("ding", json!({}));
        assert_eq!(
            ping.assert_reply(&r, "ok").await,
            json!({"msg": "shutting down"})
        );
        assert_eq!(ping.assert_push("phx_close").await, json!({}));
        // `pong` is answered with nothing.
        ping.refute_reply(&pong).await;
    }

    #[tokio::test]
    async fn a_request_ping_broadcast_is_intercepted_and_pushed_as_send_ping() {
        let (endpoint, client) = connect().await;
        let ping = join(&client, "ping").await;
        endpoint.broadcast(
            "ping",
            hello_sockets::ping_channel::REQUEST_PING,
            &channels::server::to_object(&json!({})).into(),
        );
        let pushed = ping.assert_push("send_ping").await;
        assert_eq!(pushed["from_node"], "book");
        ping.refute_push(hello_sockets::ping_channel::REQUEST_PING)
            .await;
    }
}

mod wildcard_channel_test {
    use super::*;

    #[tokio::test]
    async fn ok_when_numbers_in_the_format_a_b_where_b_is_2a() {
        let (_, client) = connect().await;
        join(&client, "wild:2:4").await;
        join(&client, "wild:100:200").await;
    }

    #[tokio::test]
    async fn error_when_b_is_not_exactly_twice_a_or_3_numbers_or_not_numbers() {
        let (_, client) = connect().await;
        for topic in ["wild:1:3", "wild:1:2:3", "wild:invalid"] {
            assert_eq!(
                client.join(topic, json!({})).await.err(),
                Some(json!({})),
                "{topic}"
            );
        }
    }

    #[tokio::test]
    async fn a_pong_response_is_provided() {
        let (_, client) = connect().await;
        let wild = join(&client, "wild:2:4").await;
        let r = wild.push("ping", json!({}));
        assert_eq!(wild.assert_reply(&r, "ok").await, json!({"ping": "pong"}));
    }
}

mod dedupe_channel_test {
    use super::*;

    #[tokio::test]
    async fn a_buffer_is_kept_and_drained_1_second_after_the_first_number() {
        let (endpoint, client) = connect().await;
        let dupe = join(&client, dedupe_channel::TOPIC).await;
        let started = Instant::now();
        dedupe_channel::broadcast(&endpoint, &[json!(1), json!(1), json!(2)], 1);
        assert_eq!(dupe.assert_push("number").await, json!({"value": 1}));
        assert!(
            started.elapsed() >= Duration::from_millis(950),
            "held for a second"
        );
        assert_eq!(dupe.assert_push("number").await, json!({"value": 2}));
        dupe.refute_push("number").await;
    }

    #[tokio::test]
    async fn the_buffer_drains_with_unique_values_in_the_correct_order() {
        let (endpoint, client) = connect().await;
        let dupe = join(&client, dedupe_channel::TOPIC).await;
        let numbers = [json!(1), json!(2), json!(3), json!(2)];
        dedupe_channel::broadcast(&endpoint, &numbers, 100);
        for value in [1, 2, 3] {
            assert_eq!(dupe.assert_push("number").await, json!({ "value": value }));
        }
        dupe.refute_push("number").await;
    }
}
