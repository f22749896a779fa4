//! The book's channel tests (chapter 5: `UserSocketTest` and its PingChannel, `AuthSocketTest`
//! with its log lines, `WildcardChannelTest`, `DedupeChannelTest`; chapter 6: the pipeline's
//! integration tests) written as the book writes them, with `Phoenix.ChannelTest`'s verbs: the
//! channel test kit drives the sockets and channels in process, no server and no network. What
//! needs the running binary (StatsD, the console, the wire's 403) is in `book.rs`.

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

/// The book's `UserSocketTest` (chapter 5): the socket accepts a connection without parameters.
mod user_socket_test {
    use super::*;

    #[tokio::test]
    async fn can_be_connected_to_without_parameters() {
        let (_, client) = connect().await;
        join(&client, "ping").await;
    }
}

/// The book's `AuthSocketTest` (chapter 5), with `capture_log`'s equivalent: the log lines the
/// socket writes while a connection is attempted on this test's thread.
mod auth_socket_test {
    use std::io::Write;
    use std::sync::Mutex;

    use channels::server::ConnectError;
    use channels::token::{Signer, Term};
    use hello_sockets::auth_socket::{AuthSocket, Tokens};
    use hello_sockets::statix::Statix;
    use hello_sockets::user_tracker::UserTracker;

    use super::*;

    const SECRET: &str = "auth socket test secret: sixty-four characters or more, as Phoenix's";

    /// Bytes written by a tracing subscriber.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Write for Logs {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn token(id: i64, salt: &str) -> String {
        Signer::new(SECRET, salt)
            .expect("signer")
            .sign(&Term::Integer(id.into()))
            .expect("token")
    }

    /// An endpoint and its AuthSocket, as the node wires them.
    pub(super) fn auth_node() -> (Endpoint, Arc<AuthSocket>) {
        let pubsub = pubsub::PubSub::new("auth_socket_test");
        let endpoint = Endpoint::new(pubsub.clone(), EndpointConfig::default());
        let socket = AuthSocket::new(
            Tokens::new(SECRET).expect("tokens"),
            Statix::new(None).expect("no statsd"),
            UserTracker::start(pubsub, tracker::Options::default()).expect("tracker"),
        );
        (endpoint, Arc::new(socket))
    }

    /// A user's connection to `socket`, with a valid token.
    pub(super) async fn connect_user(
        endpoint: &Endpoint,
        socket: &Arc<AuthSocket>,
        id: i64,
    ) -> TestSocket {
        let params = Params::from([("token".to_owned(), token(id, "salt identifier"))]);
        testing::connect(endpoint, socket.clone(), &params, ConnectInfo::default())
            .await
            .expect("a valid token connects")
    }

    /// Connects to a fresh AuthSocket with `params`; returns the outcome and the log lines.
    async fn connect_with(params: &[(&str, &str)]) -> (Result<TestSocket, ConnectError>, String) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _capture = tracing::subscriber::set_default(subscriber);
        let (endpoint, socket) = auth_node();
        let params: Params = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let result = testing::connect(&endpoint, socket, &params, ConnectInfo::default()).await;
        let text =
            String::from_utf8_lossy(&logs.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
        (result, text)
    }

    async fn refused_with_log(params: &[(&str, &str)], line: &str) {
        let (result, logs) = connect_with(params).await;
        assert!(result.is_err(), "{params:?} must be refused");
        assert!(
            logs.lines()
                .any(|l| l.contains("ERROR") && l.contains(line)),
            "no ERROR line with {line:?} in:\n{logs}"
        );
    }

    #[tokio::test]
    async fn can_be_connected_to_with_a_valid_token() {
        for id in [1, 2] {
            let (result, _) = connect_with(&[("token", &token(id, "salt identifier"))]).await;
            let client = result.expect("a valid token connects");
            join(&client, "ping").await;
        }
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_an_invalid_salt() {
        refused_with_log(
            &[("token", &token(1, "invalid"))],
            "AuthSocket connect error :invalid",
        )
        .await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_without_a_token() {
        refused_with_log(&[], "AuthSocket connect error missing params").await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_a_nonsense_token() {
        refused_with_log(
            &[("token", "nonsense")],
            "AuthSocket connect error :invalid",
        )
        .await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_a_token_older_than_a_day() {
        let two_days_ago = (std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis() as i64;
        let old = Signer::new(SECRET, "salt identifier")
            .expect("signer")
            .sign_at(&Term::Integer(1), two_days_ago)
            .expect("token");
        refused_with_log(&[("token", &old)], "AuthSocket connect error :expired").await;
    }
}

/// The pipeline's integration tests (chapter 6): items pushed into the producer reach the user's
/// channel through the consumers and workers, and no one else's.
mod pipeline_test {
    use hello_sockets::pipeline::Producer;
    use hello_sockets::statix::Statix;

    use super::auth_socket_test::{auth_node, connect_user};
    use super::*;

    #[tokio::test]
    async fn events_are_pushed_from_beginning_to_end_correctly() {
        let (endpoint, socket) = auth_node();
        let producer = Producer::start(endpoint.clone(), Statix::new(None).expect("no statsd"));
        let client = connect_user(&endpoint, &socket, 1).await;
        let user = join(&client, "user:1").await;
        for n in 1..=10 {
            producer.push_timed("1", json!({ "n": n })).expect("room");
            assert_eq!(user.assert_push("push_timed").await, json!({ "n": n }));
        }
        producer.push("1", json!({"hello": "world"})).expect("room");
        assert_eq!(user.assert_push("push").await, json!({"hello": "world"}));
    }

    #[tokio::test]
    async fn an_event_is_not_delivered_to_the_wrong_user() {
        let (endpoint, socket) = auth_node();
        let producer = Producer::start(endpoint.clone(), Statix::new(None).expect("no statsd"));
        let one = connect_user(&endpoint, &socket, 1).await;
        let one = join(&one, "user:1").await;
        let two = connect_user(&endpoint, &socket, 2).await;
        let two = join(&two, "user:2").await;
        producer
            .push_timed("1", json!({"test": true}))
            .expect("room");
        // Once user 1 has it, user 2 would have it too had it been sent there.
        assert_eq!(one.assert_push("push_timed").await, json!({"test": true}));
        two.refute_push("push_timed").await;
    }
}
