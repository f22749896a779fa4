//! WildcardChannel (chapter 3): `wild:<a>:<b>` may be joined only when b = 2a.
//!
//! The book's version crashes on a topic that is not two integers (`wild:invalid`) and suggests,
//! as an exercise, refusing it instead; we refuse it with the same `{}` error.

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::{Channel, Context, Outcome, Reply};
use serde_json::json;

/// Joins `wild:a:b` when b = 2a; answers `ping` with `pong`.
pub struct WildcardChannel;

/// Whether the part of the topic after `wild:` is exactly two integers, the second twice the first.
pub fn numbers_correct(numbers: &str) -> bool {
    let parsed: Result<Vec<i64>, _> = numbers.split(':').map(str::parse::<i64>).collect();
    match parsed.as_deref() {
        Ok([a, b]) => a.checked_mul(2) == Some(*b),
        _ => false,
    }
}

#[async_trait]
impl Channel for WildcardChannel {
    async fn join(
        &mut self,
        topic: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        match topic.strip_prefix("wild:") {
            Some(numbers) if numbers_correct(numbers) => Ok(OutPayload::empty()),
            _ => Err(OutPayload::empty()),
        }
    }

    async fn handle_in(&mut self, event: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        match event {
            "ping" => Reply::ok_json(&json!({"ping": "pong"})).into(),
            other => panic!("WildcardChannel has no handle_in for event {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::numbers_correct;

    #[test]
    fn b_must_be_twice_a() {
        assert!(numbers_correct("1:2"));
        assert!(numbers_correct("20:40"));
        assert!(numbers_correct("-3:-6"));
        assert!(!numbers_correct("1:3"));
        assert!(!numbers_correct("2:4:6"));
        assert!(!numbers_correct("invalid"));
        assert!(!numbers_correct("1:"));
        assert!(!numbers_correct("9223372036854775807:0"));
    }
}
