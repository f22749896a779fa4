//! RecurringChannel (chapter 5): pushes `new_token {token}` every five seconds, a fresh token
//! for the connection's user, for as long as the channel is joined.

use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Info, Outcome, StopReason, to_object};
use serde_json::json;

use crate::auth_socket::{Tokens, UserId};
use crate::timer::Timer;

/// Time between two `new_token` pushes.
pub const SEND_AFTER: Duration = Duration::from_secs(5);

/// The message the channel's timer sends itself.
struct SendToken;

/// See the module docs.
pub struct RecurringChannel {
    tokens: Tokens,
    timer: Option<Timer>,
}

impl RecurringChannel {
    /// A channel signing with `tokens`.
    pub fn new(tokens: Tokens) -> Self {
        RecurringChannel {
            tokens,
            timer: None,
        }
    }
}

#[async_trait]
impl Channel for RecurringChannel {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let handle = ctx.handle();
        self.timer = Some(Timer::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + SEND_AFTER, SEND_AFTER);
            loop {
                ticks.tick().await;
                if !handle.send_info(SendToken) {
                    return;
                }
            }
        }));
        Ok(OutPayload::empty())
    }

    async fn handle_in(&mut self, event: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        panic!("RecurringChannel has no handle_in for event {event:?}")
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        if let Info::Custom(message) = info
            && message.is::<SendToken>()
        {
            let user = ctx
                .assigns()
                .get::<UserId>()
                .map(|u| u.0.clone())
                .unwrap_or_default();
            match self.tokens.sign(&user) {
                Ok(token) => ctx.push("new_token", to_object(&json!({ "token": token }))),
                Err(error) => tracing::error!(%error, user, "recurring: could not sign a token"),
            }
        }
        Ok(())
    }
}
