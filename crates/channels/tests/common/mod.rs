//! Shared fixtures of the server tests: an in-process server with an echo channel, and a small V2
//! client over a real WebSocket.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::transport::{Transports, socket_router};
use channels::server::{Channel, Context, Endpoint, EndpointConfig, Outcome, Reply, Routes};
use channels::testing::TestServer;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Joins anything; answers `echo` with the payload.
struct Echo;

#[async_trait]
impl Channel for Echo {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }
    async fn handle_in(&mut self, _event: &str, payload: Payload, _: &mut Context<'_>) -> Outcome {
        match payload {
            Payload::Json(value) => Reply::ok_json(&json!({ "echo": value })).into(),
            Payload::Binary(bytes) => Reply::ok(OutPayload::Binary(bytes)).into(),
        }
    }
}

/// Joins anything. `sleep` waits `{"ms": ..}` before answering; every event is answered with
/// `{"n": payload.n}`, so that a test can tell the replies apart and check their order.
struct Slow;

#[async_trait]
impl Channel for Slow {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }
    async fn handle_in(&mut self, event: &str, payload: Payload, _: &mut Context<'_>) -> Outcome {
        let Payload::Json(value) = payload else {
            return Reply::error_reason("json only").into();
        };
        if event == "sleep" {
            let ms = value["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Reply::ok_json(&json!({ "n": value["n"] })).into()
    }
}

/// A running server: its address and endpoint; it stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    _server: TestServer,
}

/// Starts a server with `config` on a free port, socket mounted at `/socket`.
pub async fn start(config: EndpointConfig) -> Server {
    let endpoint = Endpoint::new(pubsub::PubSub::new("test"), config);
    let socket = Arc::new(
        Routes::new()
            .route("room:*", |_| Box::new(Echo) as Box<dyn Channel>)
            .route("slow:*", |_| Box::new(Slow) as Box<dyn Channel>),
    );
    let app = axum::Router::new().nest(
        "/socket",
        socket_router(endpoint.clone(), socket, Transports::all()),
    );
    let server = TestServer::start(app).await.expect("bind a free port");
    Server {
        addr: server.addr(),
        endpoint,
        _server: server,
    }
}

/// A V2 client over a real WebSocket.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

impl Client {
    /// Connects to `server` with protocol version 2.
    pub async fn connect(server: &Server) -> Client {
        Client::connect_vsn(server, "2.0.0").await
    }

    /// Connects to `server` with protocol version `vsn`.
    pub async fn connect_vsn(server: &Server, vsn: &str) -> Client {
        let url = format!("ws://{}/socket/websocket?vsn={vsn}", server.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client { ws, next_ref: 1 }
    }

    /// Sends one text frame as it is.
    pub async fn send_raw(&mut self, frame: &str) {
        self.ws
            .send(Message::text(frame.to_owned()))
            .await
            .expect("frame sent");
    }

    /// Connects like [`Client::connect`] over a socket whose receive buffer is a few KiB (no
    /// autotuning), so that a client that stops reading fills the server's side within a few
    /// megabytes instead of the kernel's 10 MB of loopback buffers.
    pub async fn connect_with_small_receive_buffer(server: &Server) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(server.addr).await.expect("tcp connects");
        let url = format!("ws://{}/socket/websocket?vsn=2.0.0", server.addr);
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket connects");
        Client { ws, next_ref: 1 }
    }

    /// Sends `[join_ref, ref, topic, event, payload]` and returns the ref used.
    pub async fn send(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        let frame = json!([join_ref, r, topic, event, payload]).to_string();
        self.ws
            .send(Message::text(frame))
            .await
            .expect("frame sent");
        r
    }

    /// The next text frame as JSON, failing the test after `limit`.
    pub async fn recv(&mut self, limit: Duration) -> Value {
        let text = self.recv_text(limit).await;
        serde_json::from_str(&text).expect("server frames are JSON")
    }

    /// The next text frame as it came, failing the test after `limit`.
    pub async fn recv_text(&mut self, limit: Duration) -> String {
        loop {
            let message = tokio::time::timeout(limit, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("connection open")
                .expect("frame read");
            if let Message::Text(text) = message {
                return text.to_string();
            }
        }
    }

    /// Joins `topic` and waits for the ok reply; returns the join_ref.
    pub async fn join(&mut self, topic: &str) -> String {
        let r = self.send(None, topic, "phx_join", json!({})).await;
        let reply = self.recv(Duration::from_secs(5)).await;
        assert_eq!(reply[1], json!(r), "join reply: {reply}");
        assert_eq!(reply[4]["status"], "ok", "join reply: {reply}");
        r
    }

    /// Waits for the close frame, failing the test after `limit`; returns its code and reason.
    pub async fn closed(&mut self, limit: Duration) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(limit, self.ws.next())
                .await
                .expect("the close frame arrives in time")
                .expect("a close frame before the stream ends")
                .expect("frame read");
            if let Message::Close(frame) = message {
                let frame = frame.expect("the close frame has a code");
                return (u16::from(frame.code), frame.reason.to_string());
            }
        }
    }
}
