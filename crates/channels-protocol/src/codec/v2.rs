//! V2 JSON text frames: `[join_ref, ref, topic, event, payload]`.

use serde_json::Value;

use super::error::json_type;
use super::json::{self, Fields};
use super::{DecodeError, Message, Payload};

/// Decodes a client frame. Elements past the fifth are ignored, as Phoenix
/// does; the payload may be any JSON value.
pub(crate) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    let value: Value = serde_json::from_slice(text).map_err(DecodeError::InvalidJson)?;
    let Value::Array(elements) = value else {
        return Err(DecodeError::NotAnArray {
            found: json_type(&value),
        });
    };
    let found = elements.len();
    let mut elements = elements.into_iter();
    let (Some(join_ref), Some(ref_), Some(topic), Some(event), Some(payload)) = (
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
        elements.next(),
    ) else {
        return Err(DecodeError::TooFewElements { found });
    };
    Ok(Message {
        join_ref: json::read_ref(join_ref, "join_ref")?,
        ref_: json::read_ref(ref_, "ref")?,
        topic: json::read_string(topic, "topic")?,
        event: json::read_string(event, "event")?,
        payload: Payload::Json(payload),
    })
}

/// Encodes `[join_ref, ref, topic, event, <payload>]`; `write_payload` must
/// append valid JSON of about `payload_len` bytes.
pub(crate) fn encode(
    fields: &Fields<'_>,
    payload_len: usize,
    write_payload: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.capacity_hint(payload_len));
    out.push(b'[');
    json::write_opt_ref(&mut out, fields.join_ref);
    out.push(b',');
    json::write_opt_ref(&mut out, fields.ref_);
    out.push(b',');
    json::write_str(&mut out, fields.topic);
    out.push(b',');
    json::write_str(&mut out, fields.event);
    out.push(b',');
    write_payload(&mut out);
    out.push(b']');
    out
}
