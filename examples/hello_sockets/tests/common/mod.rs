//! What the example's tests share: the real `hello_sockets serve` process, a small Phoenix
//! Channels client over WebSocket, the console commands, and waiting on conditions.
//!
//! The book's tests use `Phoenix.ChannelTest` (`connect`, `subscribe_and_join`, `push`,
//! `assert_reply`, `assert_push`, `broadcast_from`); [`Client`] offers the same verbs against
//! the running server, so that the tests read like the book's and can move to a channel test kit
//! verb for verb.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use test_support::ListeningProcess;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_hello_sockets");
/// How long any expected event may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long we listen to be sure something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A running `hello_sockets serve`, killed when dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    process: ListeningProcess,
}

impl Server {
    /// Starts a server on a free port with `env` added to its environment.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env("PORT", "0")
            .env_remove("PUBSUB_URL")
            .env_remove("STATSD_ADDR")
            .env_remove("NODE_NAME")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied());
        let process = ListeningProcess::spawn(command).await;
        Server {
            addr: process.addr,
            process,
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until a log line contains every one of `parts`; returns that line.
    pub async fn wait_log(&self, parts: &[&str]) -> String {
        let found = eventually(TIMEOUT, || {
            self.process
                .log
                .lock()
                .lines()
                .find(|line| parts.iter().all(|p| line.contains(p)))
                .map(str::to_owned)
        })
        .await;
        found.unwrap_or_else(|| panic!("no log line with {parts:?} in:\n{}", self.log()))
    }

    /// The node URL the console commands take.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs a console command (`hello_sockets <args>`) against this node; returns its stdout.
    pub async fn console(&self, args: &[&str]) -> String {
        let output = console_command(args, &[("NODE_URL", &self.url())]).await;
        assert!(
            output.status.success(),
            "hello_sockets {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The body of `GET path` on this node, whatever the status.
    pub async fn console_get(&self, path: &str) -> String {
        let request = http_client::Request::get(&format!("{}{path}", self.url()))
            .expect("a node URL")
            .timeout(TIMEOUT);
        request.send().await.expect("answer").text()
    }

    /// Stops the process now.
    pub async fn kill(&mut self) {
        self.process.kill().await;
    }
}

/// Runs `hello_sockets <args>` with `env`; returns its output whatever the exit status.
pub async fn console_command(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NODE_URL")
        .env_remove("PORT")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running hello_sockets")
}

/// Polls `check` until it returns `Some` or `limit` passes.
pub async fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What arrived on a WebSocket.
#[derive(Debug, PartialEq)]
pub enum Received {
    /// A text frame, parsed.
    Frame(Value),
    /// The server closed with this code.
    Closed(Option<u16>),
}

/// A WebSocket speaking raw text frames: what `wscat` does.
pub struct Wire {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Why a WebSocket could not be opened.
pub type ConnectError = tokio_tungstenite::tungstenite::Error;

impl Wire {
    /// Opens `ws://addr{path}` (e.g. `/socket/websocket?vsn=2.0.0`).
    pub async fn connect(addr: SocketAddr, path: &str) -> Result<Wire, ConnectError> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await?;
        Ok(Wire { ws })
    }

    /// Sends one text frame as typed.
    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("sending a frame");
    }

    /// The next frame or close within `limit`; `None` if nothing came.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    return Some(Received::Frame(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Received::Closed(
                        frame.map(|f: CloseFrame| u16::from(f.code)),
                    ));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Some(Received::Closed(None)),
            }
        }
    }

    /// The next frame; panics when none comes in time.
    pub async fn recv(&mut self) -> Value {
        match self.recv_within(TIMEOUT).await {
            Some(Received::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Asserts nothing arrives for [`QUIET`].
    pub async fn expect_silence(&mut self) {
        if let Some(received) = self.recv_within(QUIET).await {
            panic!("expected nothing, got {received:?}");
        }
    }
}

/// The HTTP status of a refused WebSocket handshake.
pub fn refused_status(error: &ConnectError) -> Option<u16> {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// A channels client with the verbs of `Phoenix.ChannelTest`: join, push and the reply, pushes
/// from the server.
pub struct Client {
    wire: Wire,
    next_ref: u64,
    join_refs: std::collections::HashMap<String, String>,
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    /// `connect(Socket, params)`: opens `path` (`/socket`, `/auth_socket`…) with `params` in
    /// the query string.
    pub async fn connect(
        addr: SocketAddr,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Client, ConnectError> {
        let mut query = String::from("vsn=2.0.0");
        for (k, v) in params {
            query.push_str(&format!("&{k}={v}"));
        }
        let wire = Wire::connect(addr, &format!("{path}/websocket?{query}")).await?;
        Ok(Client {
            wire,
            next_ref: 0,
            join_refs: Default::default(),
            pending: Default::default(),
        })
    }

    async fn send(&mut self, topic: &str, event: &str, payload: Value, join: bool) -> String {
        self.next_ref += 1;
        let ref_ = self.next_ref.to_string();
        if join {
            self.join_refs.insert(topic.to_owned(), ref_.clone());
        }
        let join_ref = self.join_refs.get(topic).cloned();
        self.wire
            .send(&json!([join_ref, ref_, topic, event, payload]).to_string())
            .await;
        ref_
    }

    async fn next_matching(
        &mut self,
        limit: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(at) = self.pending.iter().position(&matches) {
            return self.pending.remove(at);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.wire.recv_within(left).await {
                Some(Received::Frame(frame)) if matches(&frame) => return Some(frame),
                Some(Received::Frame(frame)) => self.pending.push_back(frame),
                Some(Received::Closed(_)) | None => return None,
            }
        }
    }

    /// `subscribe_and_join(topic, params)`: the reply `{status, response}`.
    pub async fn join(&mut self, topic: &str, params: Value) -> Value {
        let ref_ = self.send(topic, "phx_join", params, true).await;
        self.reply(topic, &ref_).await
    }

    /// `push(socket, event, payload)`: the ref to wait the reply of.
    pub async fn push(&mut self, topic: &str, event: &str, payload: Value) -> String {
        self.send(topic, event, payload, false).await
    }

    /// `assert_reply ref`: the reply `{status, response}` to `ref_`.
    pub async fn reply(&mut self, topic: &str, ref_: &str) -> Value {
        let (topic_owned, ref_owned) = (topic.to_owned(), ref_.to_owned());
        self.next_matching(TIMEOUT, |f| {
            f[1] == ref_owned.as_str() && f[2] == topic_owned.as_str() && f[3] == "phx_reply"
        })
        .await
        .map(|f| f[4].clone())
        .unwrap_or_else(|| panic!("no reply to {ref_} on {topic}"))
    }

    /// `assert_push event, payload`: the payload of the next `event` on `topic`.
    pub async fn expect_push(&mut self, topic: &str, event: &str) -> Value {
        self.expect_push_within(topic, event, TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no {event} on {topic}; other frames: {:?}", self.pending))
    }

    /// The payload of the next `event` on `topic` within `limit`, if any.
    pub async fn expect_push_within(
        &mut self,
        topic: &str,
        event: &str,
        limit: Duration,
    ) -> Option<Value> {
        let (topic, event) = (topic.to_owned(), event.to_owned());
        self.next_matching(limit, |f| f[2] == topic.as_str() && f[3] == event.as_str())
            .await
            .map(|f| f[4].clone())
    }

    /// `refute_push event`: asserts no `event` arrives on `topic` for [`QUIET`].
    pub async fn refute_push(&mut self, topic: &str, event: &str) {
        if let Some(payload) = self.expect_push_within(topic, event, QUIET).await {
            panic!("unexpected {event} on {topic}: {payload}");
        }
    }

    /// Every `event` on `topic` that arrives within `limit`, in order.
    pub async fn pushes_within(&mut self, topic: &str, event: &str, limit: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.expect_push_within(topic, event, left).await {
                Some(payload) => out.push(payload),
                None => return out,
            }
        }
    }
}

/// A token for `user_id` signed by the node (the book's `generate_token/1`).
pub async fn token(server: &Server, user_id: &str) -> String {
    server.console(&["token", user_id]).await.trim().to_owned()
}
