//! PingChannel (chapter 3): the book's first channel, on `ping` and `ping:*` of both sockets.
//!
//! | event in | reply |
//! |---|---|
//! | `ping` with `{"ack_phrase": p}` | ok `{"ping": p}` |
//! | `ping` | ok `{"ping": "pong"}` |
//! | `ping:<phrase>` | ok `{"ping": <phrase>}` |
//! | `pong` | none |
//! | `ding` | ok `{"msg": "shutting down"}`, then `phx_close` |
//! | `param_ping` with `{"error": true}` | error `{"reason": "You asked for this!"}` |
//! | `param_ping` | ok, the payload sent |
//! | anything else | the channel crashes: the client gets `phx_error` and rejoins |
//!
//! It intercepts the broadcast `request_ping` and pushes `send_ping` with `from_node` added.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Outcome, Reply, StopReason, to_object};
use serde_json::{Value, json};

/// The intercepted broadcast that asks clients to ping.
pub const REQUEST_PING: &str = "request_ping";

/// Answers pings; see the module docs for every event.
pub struct PingChannel;

/// The reply to `ping`: the `ack_phrase` when one is given, else `pong`.
fn ping_reply(payload: &Payload) -> Value {
    let phrase = match payload {
        Payload::Json(Value::Object(map)) => map.get("ack_phrase").cloned(),
        _ => None,
    };
    json!({ "ping": phrase.unwrap_or_else(|| Value::from("pong")) })
}

#[async_trait]
impl Channel for PingChannel {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, _: &mut Context<'_>) -> Outcome {
        if let Some(phrase) = event.strip_prefix("ping:") {
            return Reply::ok_json(&json!({ "ping": phrase })).into();
        }
        match event {
            "ping" => Reply::ok_json(&ping_reply(&payload)).into(),
            "pong" => Outcome::NoReply,
            "ding" => Outcome::Stop(
                StopReason::Normal,
                Some(Reply::ok_json(&json!({"msg": "shutting down"}))),
            ),
            "param_ping" => match payload {
                Payload::Json(value) if value.get("error") == Some(&Value::Bool(true)) => {
                    Reply::error_json(&json!({"reason": "You asked for this!"})).into()
                }
                Payload::Json(value) => Reply::ok(to_object(&value)).into(),
                Payload::Binary(data) => Reply::ok(OutPayload::Binary(data)).into(),
            },
            // The book's PingChannel has no clause for other events: it crashes, and the
            // client sees `phx_error` for the topic. We keep that lesson.
            other => panic!("PingChannel has no handle_in for event {other:?}"),
        }
    }

    fn intercepts(&self) -> &'static [&'static str] {
        &[REQUEST_PING]
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut Context<'_>,
    ) -> Result<(), StopReason> {
        if event == REQUEST_PING {
            let mut payload = match payload {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            let node = ctx.endpoint().pubsub().node().name.to_string();
            payload.insert("from_node".to_owned(), Value::String(node));
            ctx.push("send_ping", to_object(&payload));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_answers_the_ack_phrase_or_pong() {
        let with = Payload::Json(json!({"ack_phrase": "hooray!"}));
        assert_eq!(ping_reply(&with), json!({"ping": "hooray!"}));
        assert_eq!(
            ping_reply(&Payload::Json(json!({}))),
            json!({"ping": "pong"})
        );
        assert_eq!(
            ping_reply(&Payload::Json(json!([1]))),
            json!({"ping": "pong"})
        );
    }
}
