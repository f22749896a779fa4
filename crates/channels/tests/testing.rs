//! The channel test kit itself: each verb against channels whose behaviour is known, and the
//! failures it must report.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::transport::{Transports, socket_router};
use channels::server::{
    Assigns, Channel, ConnectError, ConnectInfo, Context, Endpoint, EndpointConfig, Info, Outcome,
    Params, Reply, Routes, Socket, StopReason, to_object,
};
use channels::testing::{self, TestSocket, Timeouts};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn endpoint() -> Endpoint {
    Endpoint::new(pubsub::PubSub::new("kit"), EndpointConfig::default())
}

/// Joins when `{"ok": true}`; answers `echo`, pushes `later` from a spawned task, panics on
/// `crash`, stops on `stop`, broadcasts `shout`; records how it ended.
struct Probe {
    ended: Arc<Mutex<Vec<StopReason>>>,
}

#[async_trait]
impl Channel for Probe {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let user = ctx.assigns().get::<String>().cloned();
        match params {
            Payload::Json(p) if p["ok"] == json!(true) => {
                Ok(to_object(&json!({"topic": topic, "user": user})).into())
            }
            _ => Err(to_object(&json!({"reason": "unauthorized"})).into()),
        }
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        ctx.push("welcome", to_object(&json!({"n": 1})));
        Ok(())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
        let Payload::Json(payload) = payload else {
            return Outcome::NoReply;
        };
        match event {
            "echo" => Reply::ok_json(&payload).into(),
            "later" => {
                let handle = ctx.handle();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    handle.push("later", to_object(&json!({"done": true})));
                });
                Outcome::NoReply
            }
            "shout" => {
                ctx.broadcast("shout", to_object(&payload));
                Outcome::NoReply
            }
            "stop" => Outcome::Stop(StopReason::Normal, Some(Reply::ok(OutPayload::empty()))),
            "crash" => panic!("asked to crash"),
            _ => Reply::error_reason("unknown").into(),
        }
    }

    async fn handle_info(&mut self, _info: Info, _ctx: &mut Context<'_>) -> Result<(), StopReason> {
        Ok(())
    }

    async fn terminate(&mut self, reason: &StopReason, _ctx: &mut Context<'_>) {
        self.ended.lock().push(reason.clone());
    }
}

/// Accepts `user=<name>` (assigned, and the socket's id), refuses everyone else.
struct Users {
    routes: Routes,
}

#[async_trait]
impl Socket for Users {
    async fn connect(&self, params: &Params, info: &ConnectInfo) -> Result<Assigns, ConnectError> {
        if info.auth_token.as_deref() == Some("banned") {
            return Err(ConnectError::new("banned"));
        }
        match params.get("user") {
            Some(user) => Ok(Assigns::new(user.clone())),
            None => Err(ConnectError::new("no user")),
        }
    }
    fn id(&self, assigns: &Assigns) -> Option<String> {
        assigns.get::<String>().map(|u| format!("user:{u}"))
    }
    fn channel(&self, topic: &str) -> Option<Box<dyn Channel>> {
        self.routes.channel(topic)
    }
}

fn users(ended: &Arc<Mutex<Vec<StopReason>>>) -> Arc<dyn Socket> {
    let ended = ended.clone();
    Arc::new(Users {
        routes: Routes::new().route("probe:*", move |_| {
            Box::new(Probe {
                ended: ended.clone(),
            })
        }),
    })
}

async fn connect_ann(endpoint: &Endpoint, ended: &Arc<Mutex<Vec<StopReason>>>) -> TestSocket {
    let params = Params::from([("user".to_owned(), "ann".to_owned())]);
    testing::connect(endpoint, users(ended), &params, ConnectInfo::default())
        .await
        .expect("ann may connect")
}

#[tokio::test]
async fn connect_runs_the_sockets_connect_with_params_and_info() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let refused = testing::connect(
        &endpoint,
        users(&ended),
        &Params::new(),
        ConnectInfo::default(),
    )
    .await
    .err();
    assert_eq!(refused, Some(ConnectError::new("no user")));
    let banned = ConnectInfo {
        auth_token: Some("banned".to_owned()),
        ..ConnectInfo::default()
    };
    let params = Params::from([("user".to_owned(), "bob".to_owned())]);
    let refused = testing::connect(&endpoint, users(&ended), &params, banned)
        .await
        .err();
    assert_eq!(refused, Some(ConnectError::new("banned")));

    let client = connect_ann(&endpoint, &ended).await;
    let (reply, _probe) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    assert_eq!(reply, json!({"topic": "probe:1", "user": "ann"}));
}

#[tokio::test]
async fn a_refused_join_returns_the_error_response() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let client = connect_ann(&endpoint, &ended).await;
    let refused = client.join("probe:1", json!({})).await.err();
    assert_eq!(refused, Some(json!({"reason": "unauthorized"})));
    let unmatched = client.join("nowhere", json!({})).await.err();
    assert_eq!(unmatched, Some(json!({"reason": "unmatched topic"})));
}

#[tokio::test]
async fn pushes_replies_and_broadcasts_are_asserted() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let client = connect_ann(&endpoint, &ended).await;
    let (_, probe) = client
        .subscribe_and_join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    assert_eq!(probe.assert_push("welcome").await, json!({"n": 1}));

    let first = probe.push("echo", json!({"a": 1}));
    let second = probe.push("what", json!({}));
    // Replies are matched by ref, whatever order they are asserted in.
    assert_eq!(
        probe.assert_reply(&second, "error").await,
        json!({"reason": "unknown"})
    );
    assert_eq!(probe.assert_reply(&first, "ok").await, json!({"a": 1}));

    let later = probe.push("later", json!({}));
    assert_eq!(probe.assert_push("later").await, json!({"done": true}));
    probe.refute_reply(&later).await;

    probe.push("shout", json!({"body": "hi"}));
    assert_eq!(probe.assert_broadcast("shout").await, json!({"body": "hi"}));
    assert_eq!(probe.assert_push("shout").await, json!({"body": "hi"}));
    probe.refute_broadcast("shout").await;
    probe.refute_push("shout").await;

    // Another client's broadcast reaches this one too.
    let other = connect_ann(&endpoint, &ended).await;
    let (_, theirs) = other
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    theirs.push("shout", json!({"body": "from bob"}));
    assert_eq!(
        probe.assert_push("shout").await,
        json!({"body": "from bob"})
    );
}

#[tokio::test]
async fn leave_close_crash_and_stop_end_the_channel() {
    let endpoint = endpoint();
    let ended: Arc<Mutex<Vec<StopReason>>> = Arc::default();
    let client = connect_ann(&endpoint, &ended).await;
    let (_, one) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    let leave = one.leave();
    one.assert_reply(&leave, "ok").await;
    one.assert_push("phx_close").await;

    let (_, two) = client
        .join("probe:2", json!({"ok": true}))
        .await
        .expect("joins");
    two.push("crash", json!({}));
    two.assert_push("phx_error").await;

    let (_, three) = client
        .join("probe:3", json!({"ok": true}))
        .await
        .expect("joins");
    let stop = three.push("stop", json!({}));
    three.assert_reply(&stop, "ok").await;
    three.assert_push("phx_close").await;

    let (_, _four) = client
        .join("probe:4", json!({"ok": true}))
        .await
        .expect("joins");
    client.close().await;
    assert_eq!(
        *ended.lock(),
        vec![StopReason::Left, StopReason::Normal, StopReason::Closed]
    );
}

#[tokio::test]
async fn the_server_closing_the_connection_is_asserted() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let mut client = connect_ann(&endpoint, &ended).await;
    let (_, _probe) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    endpoint.disconnect("user:ann");
    client.assert_closed().await;
}

#[tokio::test]
#[should_panic(expected = "no push \"never\" on probe:1")]
async fn a_missing_push_fails_the_test_after_the_timeout() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let mut client = connect_ann(&endpoint, &ended).await;
    client.set_timeouts(Timeouts {
        assert: Duration::from_millis(50),
        refute: Duration::from_millis(10),
    });
    let (_, probe) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    probe.assert_push("never").await;
}

#[tokio::test]
#[should_panic(expected = "unexpected push \"welcome\"")]
async fn an_unwanted_push_fails_the_refutation() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let client = connect_ann(&endpoint, &ended).await;
    let (_, probe) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    probe.refute_push("welcome").await;
}

#[tokio::test]
async fn the_test_server_serves_the_real_transports_until_dropped() {
    let endpoint = endpoint();
    let socket: Arc<dyn Socket> = Arc::new(Routes::new().route("room:*", |_| Box::new(Open)));
    let app = axum::Router::new().nest(
        "/socket",
        socket_router(endpoint, socket, Transports::websocket_only()),
    );
    let server = testing::TestServer::start(app).await.expect("binds");
    let url = server.ws_url("/socket/websocket?vsn=2.0.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("connects");
    ws.send(WsMessage::text(r#"["1","1","room:a","phx_join",{}]"#))
        .await
        .expect("sends");
    let reply = ws.next().await.expect("a frame").expect("readable");
    let reply: Value = serde_json::from_str(reply.to_text().expect("text")).expect("json");
    assert_eq!(
        reply,
        json!(["1", "1", "room:a", "phx_reply", {"status": "ok", "response": {}}])
    );
    let addr = server.addr();
    drop(server);
    // The listener is gone with the server.
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the server still accepts connections after drop");
}

/// A channel with every default: joins with `{}`.
struct Open;

#[async_trait]
impl Channel for Open {
    async fn handle_in(&mut self, _: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        Outcome::NoReply
    }
}

#[tokio::test]
#[should_panic(expected = "unexpected reply to ref")]
async fn an_unwanted_reply_fails_the_refutation() {
    let endpoint = endpoint();
    let ended = Arc::default();
    let client = connect_ann(&endpoint, &ended).await;
    let (_, probe) = client
        .join("probe:1", json!({"ok": true}))
        .await
        .expect("joins");
    let echo = probe.push("echo", json!({}));
    probe.refute_reply(&echo).await;
}
