//! V1 JSON text frames: objects with `topic`, `event`, `payload` and `ref`
//! (plus an optional `join_ref` on input; never on output).

use serde_json::Value;

use super::error::json_type;
use super::json::{self, Fields};
use super::{DecodeError, Message, Payload};

/// Decodes a client frame. `topic`, `event`, `payload` and `ref` are required
/// (`ref` may be null); `join_ref` is optional; other keys are ignored.
pub(crate) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let value: Value = serde_json::from_slice(text).map_err(DecodeError::InvalidJson)?;
    let Value::Object(mut object) = value else {
        return Err(DecodeError::NotAnObject {
            found: json_type(&value),
        });
    };
    let mut take = |field: &'static str| {
        object
            .remove(field)
            .ok_or(DecodeError::MissingField { field })
    };
    let topic = json::read_string(take("topic")?, "topic")?;
    let event = json::read_string(take("event")?, "event")?;
    let payload = take("payload")?;
    let ref_ = json::read_ref(take("ref")?, "ref")?;
    let join_ref = match object.remove("join_ref") {
        Some(value) => json::read_ref(value, "join_ref")?,
        None => None,
    };
    Ok(Message {
        join_ref,
        ref_,
        topic,
        event,
        payload: Payload::Json(payload),
    })
}

/// Encodes `{"topic":..,"event":..,"payload":<payload>,"ref":..}`;
/// `write_payload` must append valid JSON. The join_ref is not part of V1
/// output.
pub(crate) fn encode(
    fields: &Fields<'_>,
    payload_len: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.capacity_hint(payload_len));
    out.extend_from_slice(br#"{"topic":"#);
    json::write_str(&mut out, fields.topic);
    out.extend_from_slice(br#","event":"#);
    json::write_str(&mut out, fields.event);
    out.extend_from_slice(br#","payload":"#);
    write_payload(&mut out);
    out.extend_from_slice(br#","ref":"#);
    json::write_opt_ref(&mut out, fields.ref_);
    out.push(b'}');
    out
}
