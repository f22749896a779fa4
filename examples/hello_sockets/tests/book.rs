//! The book's own tests (chapters 5 and 6) that need the running server, through
//! [`common::Client`]: `UserSocketTest`'s connect, `AuthSocketTest` (with its log lines), the
//! StatsChannel's metrics and slow pings, `Integration.PipelineTest` and the console. The
//! channel tests that need no server (PingChannel, `WildcardChannelTest`, `DedupeChannelTest`)
//! are in `channels.rs`, on the channel test kit. Each test starts its
//! own server, so log lines and metrics belong to it.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use channels::token::{Signer, Term};
use common::{Client, Server, TIMEOUT, refused_status};
use serde_json::{Value, json};

/// The secret `hello_sockets serve` signs with when none is given.
const DEV_SECRET: &str = "hello-sockets-development-secret-key-base-0123456789";

/// The book's `generate_token(id, salt: …)`.
fn generate_token(id: i64, salt: &str) -> String {
    Signer::new(DEV_SECRET, salt)
        .expect("signer")
        .sign(&Term::Integer(id.into()))
        .expect("token")
}

async fn user_socket(server: &Server) -> Client {
    Client::connect(server.addr, "/socket", &[])
        .await
        .expect("connect to /socket")
}

async fn auth_socket(server: &Server, id: i64) -> Client {
    let token = generate_token(id, "salt identifier");
    Client::connect(server.addr, "/auth_socket", &[("token", &token)])
        .await
        .expect("connect to /auth_socket")
}

fn ok(response: Value) -> Value {
    json!({"status": "ok", "response": response})
}

fn error(response: Value) -> Value {
    json!({"status": "error", "response": response})
}

/// A StatsD server: the lines the node sends to it.
struct StatsD {
    socket: UdpSocket,
    lines: Vec<String>,
}

impl StatsD {
    fn bind() -> StatsD {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        StatsD {
            socket,
            lines: Vec::new(),
        }
    }

    fn addr(&self) -> String {
        self.socket.local_addr().expect("addr").to_string()
    }

    /// Waits for a line matching `matches`; returns it.
    async fn expect(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.lines.iter().find(|l| matches(l)) {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no StatsD {what}; received {:?}",
                self.lines
            );
            let mut buf = [0u8; 2048];
            let socket = self.socket.try_clone().expect("clone");
            let got = tokio::task::spawn_blocking(move || {
                socket.recv(&mut buf).map(|n| buf[..n].to_vec())
            })
            .await
            .expect("recv task");
            if let Ok(bytes) = got {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                self.lines.extend(text.lines().map(str::to_owned));
            }
        }
    }
}

/// `value|type` of a StatsD line `name:value|type…` when its name is `name`.
fn statsd_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.strip_prefix(name)?.strip_prefix(':')
}

mod user_socket_test {
    use super::*;

    #[tokio::test]
    async fn can_be_connected_to_without_parameters() {
        let server = Server::start(&[]).await;
        let mut client = user_socket(&server).await;
        assert_eq!(client.join("ping", json!({})).await, ok(json!({})));
    }
}

mod auth_socket_test {
    use super::*;

    async fn refused(server: &Server, params: &[(&str, &str)]) {
        let error = Client::connect(server.addr, "/auth_socket", params)
            .await
            .err();
        assert_eq!(
            error.as_ref().and_then(refused_status),
            Some(403),
            "{params:?} must be refused"
        );
    }

    #[tokio::test]
    async fn can_be_connected_to_with_a_valid_token() {
        let server = Server::start(&[]).await;
        for id in [1, 2] {
            let mut client = auth_socket(&server, id).await;
            assert_eq!(client.join("ping", json!({})).await, ok(json!({})));
        }
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_an_invalid_salt() {
        let server = Server::start(&[]).await;
        refused(&server, &[("token", &generate_token(1, "invalid"))]).await;
        server
            .wait_log(&["ERROR", "AuthSocket connect error :invalid"])
            .await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_without_a_token() {
        let server = Server::start(&[]).await;
        refused(&server, &[]).await;
        server
            .wait_log(&["ERROR", "AuthSocket connect error missing params"])
            .await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_a_nonsense_token() {
        let server = Server::start(&[]).await;
        refused(&server, &[("token", "nonsense")]).await;
        server
            .wait_log(&["ERROR", "AuthSocket connect error :invalid"])
            .await;
    }

    #[tokio::test]
    async fn cannot_be_connected_to_with_a_token_older_than_a_day() {
        let server = Server::start(&[]).await;
        let two_days_ago = (std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_millis() as i64;
        let old = Signer::new(DEV_SECRET, "salt identifier")
            .expect("signer")
            .sign_at(&Term::Integer(1), two_days_ago)
            .expect("token");
        refused(&server, &[("token", &old)]).await;
        server
            .wait_log(&["ERROR", "AuthSocket connect error :expired"])
            .await;
    }

    /// `AuthSocket.id(socket) == "auth_socket:1"`: a `disconnect` broadcast to that id closes
    /// user 1's connection and not user 2's.
    #[tokio::test]
    async fn an_identifier_is_based_on_the_connected_id() {
        let server = Server::start(&[]).await;
        let mut one = auth_socket(&server, 1).await;
        let mut two = auth_socket(&server, 2).await;
        one.join("ping", json!({})).await;
        two.join("ping", json!({})).await;
        server
            .console(&["broadcast", "auth_socket:1", "disconnect", "{}"])
            .await;
        assert_eq!(
            one.expect_push_within("ping", "never", TIMEOUT).await,
            None,
            "closed"
        );
        let r = two.push("ping", "ping", json!({})).await;
        assert_eq!(two.reply("ping", &r).await, ok(json!({"ping": "pong"})));
    }

    #[tokio::test]
    async fn a_user_joins_only_its_own_user_topic() {
        let server = Server::start(&[]).await;
        let mut client = auth_socket(&server, 1).await;
        assert_eq!(
            client.join("user:2", json!({})).await,
            error(json!({"reason": "unauthorized"}))
        );
        server
            .wait_log(&["ERROR", "AuthChannel failed 2 != 1"])
            .await;
        assert_eq!(client.join("user:1", json!({})).await, ok(json!({})));
    }

    #[tokio::test]
    async fn recurring_pushes_a_fresh_token_every_five_seconds() {
        let server = Server::start(&[]).await;
        let mut client = auth_socket(&server, 1).await;
        let joined = Instant::now();
        assert_eq!(client.join("recurring", json!({})).await, ok(json!({})));
        let pushed = client.expect_push("recurring", "new_token").await;
        assert!(
            joined.elapsed() >= Duration::from_millis(4900),
            "not before five seconds"
        );
        let token = pushed["token"].as_str().expect("a token");
        let mut again = Client::connect(server.addr, "/auth_socket", &[("token", token)])
            .await
            .expect("the new token opens the socket");
        assert_eq!(
            again.join("user:1", json!({})).await,
            ok(json!({})),
            "for the same user"
        );
    }
}

/// The console's `dedupe` command end to end (the DedupeChannel itself is tested in process in
/// `channels.rs`).
mod dedupe_console_test {
    use super::*;

    #[tokio::test]
    async fn the_buffer_drains_with_unique_values_in_the_correct_order() {
        let server = Server::start(&[]).await;
        let mut client = user_socket(&server).await;
        assert_eq!(client.join("dupe", json!({})).await, ok(json!({})));
        server
            .console(&["dedupe", "1,2,3,2", "--times", "100"])
            .await;
        let pushed = client
            .pushes_within("dupe", "number", Duration::from_millis(2500))
            .await;
        assert_eq!(
            pushed,
            vec![
                json!({"value": 1}),
                json!({"value": 2}),
                json!({"value": 3})
            ]
        );
    }
}

mod stats_channel_test {
    use super::*;

    #[tokio::test]
    async fn connections_joins_and_pings_are_measured_to_statsd_and_metrics() {
        let mut statsd = StatsD::bind();
        let server = Server::start(&[("STATSD_ADDR", &statsd.addr())]).await;
        let mut client = Client::connect(server.addr, "/stats_socket", &[])
            .await
            .expect("connect");
        statsd
            .expect("socket_connect", |l| {
                l == "socket_connect:1|c|#status:success,socket:StatsSocket"
            })
            .await;
        assert_eq!(
            client.join("invalid", json!({})).await,
            error(json!({"reason": "always fails"}))
        );
        statsd
            .expect("failed join", |l| {
                l == "channel_join:1|c|#status:fail,channel:StatsChannel"
            })
            .await;
        assert_eq!(client.join("valid", json!({})).await, ok(json!({})));
        statsd
            .expect("join", |l| {
                l == "channel_join:1|c|#status:success,channel:StatsChannel"
            })
            .await;
        let r = client.push("valid", "ping", json!({})).await;
        assert_eq!(client.reply("valid", &r).await, ok(json!({"ping": "pong"})));
        let line = statsd
            .expect("ping timing", |l| {
                statsd_value(l, "stats_channel.ping").is_some()
            })
            .await;
        let value = statsd_value(&line, "stats_channel.ping").unwrap_or_default();
        let ms: u64 = value
            .strip_suffix("|ms")
            .and_then(|v| v.parse().ok())
            .expect("n|ms");
        assert!(ms <= 1100, "a ping waits at most a second: {line}");

        let metrics = server.console_get("/metrics").await;
        assert!(
            metrics.contains(r#"channel_join{status="success",channel="StatsChannel"} 1"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"channel_join{status="fail",channel="StatsChannel"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains("stats_channel_ping_count 1"), "{metrics}");
    }

    /// slow_ping runs in the channel, so a second one waits for the first (the book's five take
    /// ~15 s; two show it); parallel_slow_ping answers from spawned tasks, so five take ~3 s.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_pings_are_serial_and_parallel_slow_pings_are_not() {
        let server = Server::start(&[]).await;
        let serial = async {
            let mut client = Client::connect(server.addr, "/stats_socket", &[])
                .await
                .expect("connect");
            client.join("valid", json!({})).await;
            let sent = Instant::now();
            let refs = [
                client.push("valid", "slow_ping", json!({})).await,
                client.push("valid", "slow_ping", json!({})).await,
            ];
            for r in &refs {
                assert_eq!(client.reply("valid", r).await, ok(json!({"ping": "pong"})));
            }
            sent.elapsed()
        };
        let parallel = async {
            let mut client = Client::connect(server.addr, "/stats_socket", &[])
                .await
                .expect("connect");
            client.join("valid", json!({})).await;
            let sent = Instant::now();
            let mut refs = Vec::new();
            for _ in 0..5 {
                refs.push(client.push("valid", "parallel_slow_ping", json!({})).await);
            }
            for r in &refs {
                assert_eq!(client.reply("valid", r).await, ok(json!({"ping": "pong"})));
            }
            sent.elapsed()
        };
        let (serial, parallel) = tokio::join!(serial, parallel);
        assert!(
            serial >= Duration::from_millis(5900),
            "two slow pings one after the other: {serial:?}"
        );
        assert!(
            parallel >= Duration::from_millis(2900),
            "each takes 3 s: {parallel:?}"
        );
        assert!(
            parallel < Duration::from_millis(5900),
            "five at once, not one by one: {parallel:?}"
        );
    }
}

mod pipeline_test {
    use super::*;

    async fn connect_auth_socket(server: &Server, user_id: i64) -> Client {
        let mut client = auth_socket(server, user_id).await;
        let topic = format!("user:{user_id}");
        assert_eq!(client.join(&topic, json!({})).await, ok(json!({})));
        client
    }

    #[tokio::test]
    async fn events_are_pushed_from_beginning_to_end_correctly() {
        let server = Server::start(&[]).await;
        let mut client = connect_auth_socket(&server, 1).await;
        for n in 1..=10 {
            let data = json!({ "n": n }).to_string();
            server.console(&["push", "1", &data, "--timed"]).await;
            assert_eq!(
                client.expect_push("user:1", "push_timed").await,
                json!({ "n": n })
            );
        }
    }

    #[tokio::test]
    async fn an_event_is_not_delivered_to_the_wrong_user() {
        let server = Server::start(&[]).await;
        let mut client = connect_auth_socket(&server, 2).await;
        server
            .console(&["push", "1", r#"{"test":true}"#, "--timed"])
            .await;
        client.refute_push("user:2", "push_timed").await;
    }

    #[tokio::test]
    async fn events_are_timed_on_delivery() {
        let mut statsd = StatsD::bind();
        let server = Server::start(&[("STATSD_ADDR", &statsd.addr())]).await;
        let mut client = connect_auth_socket(&server, 1).await;
        server
            .console(&["push", "1", r#"{"test":true}"#, "--timed"])
            .await;
        assert_eq!(
            client.expect_push("user:1", "push_timed").await,
            json!({"test": true})
        );
        statsd
            .expect("push_delivered", |l| {
                statsd_value(l, "pipeline.push_delivered").is_some_and(|v| v.ends_with("|h"))
            })
            .await;
        statsd
            .expect("worker time", |l| {
                statsd_value(l, "pipeline.worker.process_time").is_some_and(|v| v.ends_with("|ms"))
            })
            .await;
    }

    #[tokio::test]
    async fn an_untimed_push_arrives_as_push_with_its_data() {
        let server = Server::start(&[]).await;
        let mut client = connect_auth_socket(&server, 1).await;
        server.console(&["push", "1", r#"{"hello":"world"}"#]).await;
        assert_eq!(
            client.expect_push("user:1", "push").await,
            json!({"hello": "world"})
        );
    }

    /// Untimed workers take a second each, ten at a time: 10,011 pushes sent at once overflow the
    /// 10,000 buffer; the refusal is an error for the caller and a counted metric. The console
    /// sends them one request at a time, about a millisecond each on a loaded machine, while the
    /// workers drain ten a second: 12,000 leave a margin of ~1,800 where 10,100 left none (the
    /// workers drained ~100 in those ~10 s and the buffer never overflowed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_buffer_refuses_cleanly_and_is_counted() {
        let server = Server::start(&[]).await;
        let url = server.url();
        let output = common::console_command(
            &["push", "nobody", "{}", "--count", "12000"],
            &[("NODE_URL", &url)],
        )
        .await;
        assert!(
            !output.status.success(),
            "the push must be refused at some point"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("HTTP 503: the pipeline's buffer is full (10000 items waiting)"),
            "{stderr}"
        );
        let metrics = server.console_get("/metrics").await;
        assert!(metrics.contains("pipeline_refused 1"), "{metrics}");
    }
}

mod console_test {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_node_is_a_clear_error() {
        let output =
            common::console_command(&["tracker", "list"], &[("NODE_URL", "http://127.0.0.1:1")])
                .await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("could not reach the node at http://127.0.0.1:1"),
            "{stderr}"
        );
        assert!(
            stderr.contains("is `hello_sockets serve` running there?"),
            "{stderr}"
        );
    }

    #[tokio::test]
    async fn port_finds_the_node_and_bad_json_is_refused_before_sending() {
        let server = Server::start(&[]).await;
        let port = server.addr.port().to_string();
        let output =
            common::console_command(&["broadcast", "ping", "x", "{}"], &[("PORT", &port)]).await;
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output =
            common::console_command(&["push", "1", "{oops", "--node-url", &server.url()], &[])
                .await;
        assert!(!output.status.success());
        assert!(String::from_utf8_lossy(&output.stderr).contains("the data is not valid JSON"));
    }

    #[tokio::test]
    async fn tracker_list_shows_who_joined_tracked_until_they_leave() {
        let server = Server::start(&[]).await;
        let mut one = auth_socket(&server, 1).await;
        assert_eq!(one.join("tracked", json!({})).await, ok(json!({})));
        let listed = server.console(&["tracker", "list"]).await;
        let line = listed.lines().next().expect("one line");
        let (key, meta) = line.split_once(' ').expect("key and meta");
        assert_eq!(key, "1");
        let meta: Value = serde_json::from_str(meta).expect("meta JSON");
        assert_eq!(meta["user_id"], "1");
        assert!(
            meta["online_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
            "{meta}"
        );
        assert!(meta["phx_ref"].is_string(), "{meta}");
        server.wait_log(&["tracked changes: join", "key=1"]).await;
        drop(one);
        server.wait_log(&["tracked changes: leave", "key=1"]).await;
        assert_eq!(server.console(&["tracker", "list"]).await, "");
    }
}
