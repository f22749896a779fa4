//! Re-encoding V2 frames for V1 connections without touching the payload.

use serde_json::value::RawValue;

use super::error::json_type;
use super::{DecodeError, Frame, FrameKind};

/// Converts an encoded V2 text frame (typically a broadcast) into the V1 form
/// of the same message, copying the topic, event, payload and ref JSON text
/// verbatim (no payload re-serialization).
///
/// This lets the pubsub layer carry only the V2 encoding of a broadcast
/// between nodes and derive the V1 frame lazily, once per node, when a V1
/// subscriber exists. `[join_ref, ref, topic, event, payload]` becomes
/// `{"topic":..,"event":..,"payload":..,"ref":..}` (V1 has no join_ref).
///
/// Binary frames have no V1 form ([`DecodeError::BinaryNotSupported`]); a
/// frame that is not a well-formed V2 server frame (an array of at least five
/// elements whose topic and event are strings and whose payload is an
/// object) is refused with the matching [`DecodeError`].
///
/// ```
/// use channels_protocol::codec::{Broadcast, JsonObject, OutPayload, Serializer, v2_to_v1};
///
/// let payload = OutPayload::Json(JsonObject::from_json(r#"{"body":"hi"}"#)?);
/// let broadcast = Broadcast { topic: "room:lobby", event: "new_msg", payload: &payload };
/// let v1 = v2_to_v1(&broadcast.encode(Serializer::V2)?)?;
/// assert_eq!(v1, broadcast.encode(Serializer::V1)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn v2_to_v1(frame: &Frame) -> Result<Frame, DecodeError> {
    if frame.kind == FrameKind::Binary {
        return Err(DecodeError::BinaryNotSupported);
    }
    let text: &[u8] = &frame.data;
    if text.trim_ascii_start().first() != Some(&b'[') {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(DecodeError::InvalidJson)?;
        return Err(DecodeError::NotAnArray {
            found: json_type(&value),
        });
    }
    let elements: Vec<&RawValue> =
        serde_json::from_slice(text).map_err(DecodeError::InvalidJson)?;
    let [_join_ref, ref_, topic, event, payload, ..] = elements.as_slice() else {
        return Err(DecodeError::TooFewElements {
            found: elements.len(),
        });
    };
    let check = |raw: &RawValue, field: &'static str, allowed: &[u8], expected: &'static str| {
        let first = raw.get().as_bytes().first().copied().unwrap_or(b' ');
        if allowed.contains(&first) {
            Ok(())
        } else {
            Err(DecodeError::WrongType {
                field,
                expected,
                found: raw_type(first),
            })
        }
    };
    check(ref_, "ref", b"\"n", "a string or null")?;
    check(topic, "topic", b"\"", "a string")?;
    check(event, "event", b"\"", "a string")?;
    check(payload, "payload", b"{", "an object")?;
    let len = topic.get().len() + event.get().len() + payload.get().len() + ref_.get().len() + 40;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(br#"{"topic":"#);
    out.extend_from_slice(topic.get().as_bytes());
    out.extend_from_slice(br#","event":"#);
    out.extend_from_slice(event.get().as_bytes());
    out.extend_from_slice(br#","payload":"#);
    out.extend_from_slice(payload.get().as_bytes());
    out.extend_from_slice(br#","ref":"#);
    out.extend_from_slice(ref_.get().as_bytes());
    out.push(b'}');
    Ok(Frame::text(out))
}

fn raw_type(first: u8) -> &'static str {
    match first {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b'n' => "null",
        b't' | b'f' => "a boolean",
        _ => "a number",
    }
}
