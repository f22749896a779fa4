//! RecurringChannel (chapter 5): pushes `new_token {token}` every five seconds, a fresh token
//! for the connection's user, for as long as the channel is joined.

use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Info, StopReason, to_object};
use serde_json::json;

use crate::auth_socket::{Tokens, UserId};

/// Time between two `new_token` pushes.
pub const SEND_AFTER: Duration = Duration::from_secs(5);

/// The message the channel's timer sends itself.
struct SendToken;

/// See the module docs.
pub struct RecurringChannel {
    tokens: Tokens,
}

impl RecurringChannel {
    /// A channel signing with `tokens`.
    pub fn new(tokens: Tokens) -> Self {
        RecurringChannel { tokens }
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
        // The book's schedule_send_token(): Process.send_after(self(), :send_token, 5_000).
        ctx.send_after(SEND_AFTER, SendToken);
        Ok(OutPayload::empty())
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        if let Info::Custom(message) = info
            && message.is::<SendToken>()
        {
            ctx.send_after(SEND_AFTER, SendToken);
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
