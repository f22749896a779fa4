//! `RoomChannel`: one `room:<name>` topic on one connection. Members see who else is in the room
//! (Presence) and every message sent to it (`new_msg`).
//!
//! The client's view, in the events of the `phoenix` JavaScript client:
//!
//! * join `room:lobby` → `ok`, then a `presence_state` push listing the members;
//! * `presence_diff` broadcasts as members come and go;
//! * push `new_msg` `{"body": "hi"}` → reply `ok`, and every member (the sender included) gets a
//!   `new_msg` broadcast `{"user": "alice", "body": "hi"}`;
//! * a `new_msg` without a `body` string gets an `error` reply whose `reason` says what was wrong
//!   (``invalid payload: missing field `body` ``), an empty or too long body one that says so;
//! * any other event is a bug in the client: it gets an `error` reply (`unhandled event`) and the
//!   channel crashes (`phx_error`), as in Phoenix; the client rejoins.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::presence::{PRESENCE_STATE, Presence, Tracked};
use channels::server::{Channel, Context, Outcome, Reply, StopReason, parse_event, to_object};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::socket::User;

/// The longest message body accepted, in characters.
pub const MAX_BODY_CHARS: usize = 2000;

/// The longest room name accepted (the part after `room:`), in bytes.
pub const MAX_ROOM_BYTES: usize = 64;

/// The events a client pushes, each with its payload; any other event is unhandled.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoomIn {
    /// `new_msg` `{"body": "hi"}`.
    NewMsg { body: String },
}

/// What every member receives as `new_msg`.
#[derive(Serialize)]
struct Message<'a> {
    user: &'a str,
    body: &'a str,
}

/// The channel of one room, for one connection.
pub struct RoomChannel {
    presence: Presence,
    /// This member's presence: dropping the channel (leave, closed tab, crash) drops it, and the
    /// other members get a `presence_diff` with the leave.
    tracked: Option<Tracked>,
}

impl RoomChannel {
    /// A channel tracking its member in `presence`.
    pub fn new(presence: Presence) -> Self {
        RoomChannel {
            presence,
            tracked: None,
        }
    }
}

fn user_name(ctx: &Context<'_>) -> String {
    ctx.assigns()
        .get::<User>()
        .map(|user| user.name.clone())
        .unwrap_or_default()
}

#[async_trait]
impl Channel for RoomChannel {
    /// Anyone connected may join any room with a sensible name.
    async fn join(
        &mut self,
        topic: &str,
        _params: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let room = topic.strip_prefix("room:").unwrap_or_default();
        if room.is_empty() || room.len() > MAX_ROOM_BYTES {
            return Err(to_object(&json!({"reason": "invalid room"})).into());
        }
        if ctx.assigns().get::<User>().is_none() {
            return Err(to_object(&json!({"reason": "unauthorized"})).into());
        }
        Ok(OutPayload::empty())
    }

    /// Tracks the member, then tells the client who is there. The client's `Presence` needs
    /// this `presence_state` before it applies any `presence_diff`.
    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        let topic = ctx.topic().to_owned();
        let online_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tracked = self
            .presence
            .track(&topic, &user_name(ctx), json!({ "online_at": online_at }))
            .map_err(|error| StopReason::Error(error.to_string()))?;
        self.tracked = Some(tracked);
        ctx.push(PRESENCE_STATE, self.presence.list(&topic));
        Ok(())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
        let message = match parse_event::<RoomIn>(event, payload) {
            Ok(message) => message,
            Err(error) => return error.into_outcome(event, ctx),
        };
        match message {
            RoomIn::NewMsg { body } => {
                let body = body.trim();
                if body.is_empty() || body.chars().count() > MAX_BODY_CHARS {
                    return Reply::error_reason("body must hold 1 to 2000 characters").into();
                }
                let user = user_name(ctx);
                ctx.broadcast("new_msg", to_object(&Message { user: &user, body }));
                Reply::ok(OutPayload::empty()).into()
            }
        }
    }
}
