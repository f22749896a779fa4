//! DedupeChannel (chapter 5): intercepts the broadcast `number {number}`, buffers what it sees,
//! and one second after the first buffered number pushes each distinct number once, in the
//! order first seen, as `number {value}`.

use std::time::Duration;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Endpoint, Info, Outcome, StopReason, to_object};
use serde_json::{Value, json};

/// The topic and the intercepted event.
pub const TOPIC: &str = "dupe";
/// The event broadcast (`{number}`) and pushed (`{value}`).
pub const NUMBER: &str = "number";
/// How long numbers are buffered after the first one.
pub const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// The message the channel's timer sends itself.
struct SendBuffer;

/// The per-client buffer; see the module docs.
#[derive(Default)]
pub struct DedupeChannel {
    buffer: Vec<Value>,
    /// Whether the flush is scheduled (`Process.send_after(self(), :send_buffer, 1_000)`).
    scheduled: bool,
}

/// Each distinct value once, in the order first seen.
pub fn unique_in_order(values: &[Value]) -> Vec<Value> {
    let mut seen: Vec<&Value> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen.into_iter().cloned().collect()
}

/// The book's `DedupeChannel.broadcast/2`: broadcasts every number of `numbers`, `times` times.
pub fn broadcast(endpoint: &Endpoint, numbers: &[Value], times: u32) {
    for _ in 0..times {
        for number in numbers {
            let payload = to_object(&json!({ "number": number }));
            endpoint.broadcast(TOPIC, NUMBER, &OutPayload::Json(payload));
        }
    }
}

#[async_trait]
impl Channel for DedupeChannel {
    async fn handle_in(&mut self, _: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        Outcome::NoReply
    }

    fn intercepts(&self) -> &'static [&'static str] {
        &[NUMBER]
    }

    async fn handle_out(
        &mut self,
        _: &str,
        payload: Value,
        ctx: &mut Context<'_>,
    ) -> Result<(), StopReason> {
        let Some(number) = payload.get("number") else {
            tracing::warn!(%payload, "dupe: a number broadcast without a number is ignored");
            return Ok(());
        };
        self.buffer.push(number.clone());
        if !self.scheduled {
            ctx.send_after(FLUSH_AFTER, SendBuffer);
            self.scheduled = true;
        }
        Ok(())
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        if let Info::Custom(message) = info
            && message.is::<SendBuffer>()
        {
            for value in unique_in_order(&self.buffer) {
                ctx.push(NUMBER, to_object(&json!({ "value": value })));
            }
            self.buffer.clear();
            self.scheduled = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_go_and_first_seen_order_stays() {
        let values: Vec<Value> = [1, 2, 3, 2, 1, 3, 4].iter().map(|n| json!(n)).collect();
        assert_eq!(
            unique_in_order(&values),
            vec![json!(1), json!(2), json!(3), json!(4)]
        );
        assert!(unique_in_order(&[]).is_empty());
    }
}
