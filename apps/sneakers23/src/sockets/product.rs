//! `product:<id>`: the live view of one product (spec §10.1).
//!
//! The channel itself does almost nothing: joining subscribes the client to the topic, and the
//! node's [`ChannelNotifier`](crate::notifier::ChannelNotifier) broadcasts `released` and
//! `stock_change` there. Any suffix may be joined; the params must be an object (the client
//! sends `{}`). Clients send nothing on this topic; a message gets an `unknown event` error
//! reply rather than crashing the channel.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Outcome, Reply, to_object};
use serde_json::json;

/// One client's subscription to a product's events.
pub struct ProductChannel;

#[async_trait]
impl Channel for ProductChannel {
    async fn join(
        &mut self,
        _topic: &str,
        params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        match params {
            Payload::Json(value) if value.is_object() => Ok(OutPayload::empty()),
            _ => Err(OutPayload::Json(to_object(
                &json!({"reason": "join params must be an object"}),
            ))),
        }
    }

    async fn handle_in(
        &mut self,
        event: &str,
        _payload: Payload,
        ctx: &mut Context<'_>,
    ) -> Outcome {
        tracing::debug!(
            topic = ctx.topic(),
            event,
            "unexpected event on a product channel"
        );
        Reply::error_reason("unknown event").into()
    }
}
