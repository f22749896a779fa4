//! The conveniences of the Channel API, through the test kit: default callbacks, typed payloads,
//! `send_after` timers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{
    Channel, ConnectInfo, Context, Endpoint, EndpointConfig, Info, Outcome, Params, Reply, Routes,
    StopReason, Timer, parse, unhandled,
};
use channels::testing::{self, TestSocket};
use serde::Deserialize;
use serde_json::json;

async fn connect(routes: Routes) -> TestSocket {
    let endpoint = Endpoint::new(pubsub::PubSub::new("ergonomics"), EndpointConfig::default());
    testing::connect(
        &endpoint,
        Arc::new(routes),
        &Params::new(),
        ConnectInfo::default(),
    )
    .await
    .expect("Routes accept everyone")
}

/// Every callback left to its default.
struct Bare;

impl Channel for Bare {}

#[tokio::test]
async fn default_callbacks_join_with_empty_reply_and_crash_on_any_event() {
    let client = connect(Routes::new().route("bare:*", |_| Box::new(Bare))).await;
    let (reply, bare) = client
        .join("bare:1", json!({"any": 1}))
        .await
        .expect("joins");
    assert_eq!(reply, json!({}));
    let ping = bare.push("ping", json!({}));
    assert_eq!(
        bare.assert_reply(&ping, "error").await,
        json!({"reason": "unhandled event"})
    );
    bare.assert_push("phx_error").await;
    // The channel is gone: a further push is for a topic not joined.
    let again = bare.push("ping", json!({}));
    assert_eq!(
        bare.assert_reply(&again, "error").await,
        json!({"reason": "unmatched topic"})
    );
}

#[derive(Deserialize)]
struct JoinParams {
    nick: String,
}

#[derive(Deserialize)]
struct Move {
    x: u32,
    y: u32,
}

/// Typed join params and payloads; `later` schedules `{"tick"}` with `send_after`, `cancel`
/// cancels it.
struct Board {
    nick: String,
    timer: Option<Timer>,
}

struct Tick(u32);

#[async_trait]
impl Channel for Board {
    async fn join(
        &mut self,
        _topic: &str,
        params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let params: JoinParams = parse(params)?;
        self.nick = params.nick;
        Ok(OutPayload::empty())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
        match event {
            "move" => match parse::<Move>(payload) {
                Ok(m) => Reply::ok_json(&json!({"by": self.nick, "at": [m.x, m.y]})).into(),
                Err(invalid) => invalid.into(),
            },
            "later" => {
                self.timer = Some(ctx.send_after(Duration::from_millis(30), Tick(1)));
                Outcome::NoReply
            }
            "cancel" => {
                if let Some(timer) = self.timer.take() {
                    timer.cancel();
                }
                Reply::ok(OutPayload::empty()).into()
            }
            _ => unhandled(event, ctx),
        }
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        if let Info::Custom(message) = info
            && let Ok(tick) = message.downcast::<Tick>()
        {
            ctx.push("tick", channels::server::to_object(&json!({"n": tick.0})));
        }
        Ok(())
    }
}

fn board() -> Routes {
    Routes::new().route("board:*", |_| {
        Box::new(Board {
            nick: String::new(),
            timer: None,
        })
    })
}

#[tokio::test]
async fn typed_params_and_payloads_reply_a_clear_error_on_bad_input() {
    let client = connect(board()).await;
    let refused = client.join("board:1", json!({"name": "ann"})).await.err();
    assert_eq!(
        refused,
        Some(json!({"reason": "invalid payload: missing field `nick`"}))
    );
    let (_, board) = client
        .join("board:1", json!({"nick": "ann"}))
        .await
        .expect("joins");
    let good = board.push("move", json!({"x": 1, "y": 2}));
    assert_eq!(
        board.assert_reply(&good, "ok").await,
        json!({"by": "ann", "at": [1, 2]})
    );
    let bad = board.push("move", json!({"x": -1, "y": 2}));
    let reason = board.assert_reply(&bad, "error").await;
    let reason = reason["reason"].as_str().expect("a reason");
    assert!(
        reason.starts_with("invalid payload: invalid value: integer `-1`"),
        "{reason}"
    );
    // Bad input loses nothing: the channel still serves.
    let again = board.push("move", json!({"x": 3, "y": 4}));
    board.assert_reply(&again, "ok").await;
    // An event the channel does not know crashes it, as the default does.
    board.push("fly", json!({}));
    board.assert_push("phx_error").await;
}

#[tokio::test]
async fn send_after_delivers_to_handle_info_unless_cancelled_or_the_channel_ended() {
    let client = connect(board()).await;
    let (_, board) = client
        .join("board:1", json!({"nick": "ann"}))
        .await
        .expect("joins");
    board.push("later", json!({}));
    assert_eq!(board.assert_push("tick").await, json!({"n": 1}));

    board.push("later", json!({}));
    let cancel = board.push("cancel", json!({}));
    board.assert_reply(&cancel, "ok").await;
    board.refute_push("tick").await;

    // A timer of a channel that left does not reach its successor on the same topic.
    board.push("later", json!({}));
    let leave = board.leave();
    board.assert_reply(&leave, "ok").await;
    let (_, rejoined) = client
        .join("board:1", json!({"nick": "ann"}))
        .await
        .expect("joins again");
    rejoined.refute_push("tick").await;
}
