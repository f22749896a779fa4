//! The chat end to end: the whole router on a free port (`channels::testing::TestServer`), a
//! browser's requests (the page, the JavaScript client) and phoenix.js's V2 frames over a real
//! WebSocket. The channel's behaviour in detail is tested in process in `room.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use channels::testing::TestServer;

const SECRET: &str = "chat-test-secret-key-base-0123456789-0123456789";
const WAIT: Duration = Duration::from_secs(5);

/// Serves a fresh chat on a free port; the server stops when the `TestServer` drops.
async fn start() -> (TestServer, SocketAddr, chat::Chat) {
    let chat = chat::Chat::new(SECRET).expect("chat starts");
    let server = TestServer::start(chat.router())
        .await
        .expect("bind a free port");
    let addr = server.addr();
    (server, addr, chat)
}

/// `GET path`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = http_client::Origin::from_addr(addr)
        .request(http_client::Method::GET, path)
        .timeout(WAIT)
        .send()
        .await
        .expect("a response in time");
    (response.status.as_u16(), response.text())
}

/// The token the chat page embeds for `name`.
async fn token_from_page(addr: SocketAddr, name: &str) -> String {
    let (status, body) = get(addr, &format!("/?name={name}")).await;
    assert_eq!(status, 200, "{body}");
    let start = body
        .find(r#"<meta name="user-token" content=""#)
        .expect("the page embeds a token")
        + r#"<meta name="user-token" content=""#.len();
    let end = start + body[start..].find('"').expect("attribute closes");
    body[start..end].to_owned()
}

/// phoenix.js over a WebSocket, protocol V2: `[join_ref, ref, topic, event, payload]`.
struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

impl Client {
    async fn connect(addr: SocketAddr, token: &str) -> Client {
        let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        Client { ws, next_ref: 1 }
    }

    async fn send(&mut self, topic: &str, event: &str, payload: Value) -> String {
        let r = self.next_ref.to_string();
        self.next_ref += 1;
        let frame = json!(["1", r, topic, event, payload]).to_string();
        self.ws.send(Message::text(frame)).await.expect("sent");
        r
    }

    async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("connection open")
                .expect("frame read");
            if let Message::Text(text) = message {
                return serde_json::from_str(&text).expect("frames are JSON");
            }
        }
    }

    /// The next frame whose event is `event`, skipping others (presence traffic, say).
    async fn recv_event(&mut self, event: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame[3] == event {
                return frame;
            }
        }
    }

    /// The next `presence_diff` for which `wanted` holds, skipping the others (a member also
    /// receives the diff of its own join).
    async fn recv_diff(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let diff = self.recv_event("presence_diff").await;
            if wanted(&diff[4]) {
                return diff[4].clone();
            }
        }
    }

    /// The reply to the message sent with `r`.
    async fn reply(&mut self, r: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame[3] == "phx_reply" && frame[1] == r {
                return frame[4].clone();
            }
        }
    }

    /// Joins `topic`; returns the join reply.
    async fn join(&mut self, topic: &str) -> Value {
        let r = self.send(topic, "phx_join", json!({})).await;
        self.reply(&r).await
    }
}

#[tokio::test]
async fn the_page_asks_for_a_name_then_embeds_a_token_for_it() {
    let (_server, addr, chat) = start().await;

    let (status, form) = get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"<input name="name""#), "{form}");
    assert!(!form.contains("user-token"));

    let (status, refused) = get(addr, "/?name=%3Cscript%3E").await;
    assert_eq!(status, 200);
    assert!(refused.contains("role=alert"), "{refused}");
    assert!(!refused.contains("<script>"), "{refused}");

    let token = token_from_page(addr, "alice").await;
    assert_eq!(
        chat.signer.verify_string(Some(&token), None),
        Ok("alice".to_owned())
    );

    let (status, js) = get(addr, "/js/phoenix.mjs").await;
    assert_eq!(status, 200);
    assert!(
        js == channels::assets::PHOENIX_MIN_JS,
        "the embedded phoenix client is served"
    );
}

#[tokio::test]
async fn a_socket_without_a_valid_token_is_refused() {
    let (_server, addr, chat) = start().await;
    for query in ["", "&token=nope"] {
        let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0{query}");
        match tokio_tungstenite::connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403)
            }
            other => panic!("expected 403 for {query:?}, got {other:?}"),
        }
    }
    // A token signed for another purpose does not open the socket either.
    let other = channels::token::Signer::new(SECRET, "not the user socket").expect("signer");
    let token = other.sign_string("alice").expect("signed");
    let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0&token={token}");
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    assert_eq!(chat.endpoint.connection_count(), 0);
}

#[tokio::test]
async fn members_see_each_other_and_every_message() {
    let (_server, addr, _chat) = start().await;
    let mut alice = Client::connect(addr, &token_from_page(addr, "alice").await).await;
    let mut bob = Client::connect(addr, &token_from_page(addr, "bob").await).await;

    assert_eq!(alice.join("room:lobby").await["status"], "ok");
    let state = alice.recv_event("presence_state").await;
    let members: Vec<&String> = state[4].as_object().expect("an object").keys().collect();
    assert_eq!(members, ["alice"]);

    assert_eq!(bob.join("room:lobby").await["status"], "ok");
    let state = bob.recv_event("presence_state").await;
    assert!(
        state[4]["alice"]["metas"][0]["online_at"].is_u64(),
        "{state}"
    );
    assert!(
        state[4]["bob"]["metas"][0]["phx_ref"].is_string(),
        "{state}"
    );
    let diff = alice.recv_diff(|d| d["joins"]["bob"].is_object()).await;
    assert_eq!(diff["leaves"], json!({}));

    let r = bob
        .send("room:lobby", "new_msg", json!({"body": " hello "}))
        .await;
    assert_eq!(bob.reply(&r).await["status"], "ok");
    for client in [&mut alice, &mut bob] {
        let msg = client.recv_event("new_msg").await;
        assert_eq!(msg[2], "room:lobby");
        assert_eq!(msg[4], json!({"user": "bob", "body": "hello"}));
    }

    // bob leaves: alice is told, with bob's meta.
    let r = bob.send("room:lobby", "phx_leave", json!({})).await;
    assert_eq!(bob.reply(&r).await["status"], "ok");
    let diff = alice.recv_diff(|d| d["leaves"]["bob"].is_object()).await;
    assert!(
        diff["leaves"]["bob"]["metas"][0]["phx_ref"].is_string(),
        "{diff}"
    );
    assert_eq!(diff["joins"], json!({}));
}
