//! V2 JSON text frames: `[join_ref, ref, topic, event, payload]`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

use super::error::json_type;
use super::json::{self, Fields};
use super::{DecodeError, Message, Payload, Ref};

/// Decodes a client frame. Elements past the fifth are ignored, as Phoenix
/// does; the payload may be any JSON value.
///
/// A well-formed frame is read straight into its parts; anything else is
/// read again as a JSON value, which names what is wrong. Both readings
/// accept the same frames, so the error path costs nothing to valid ones
/// (a heartbeat is read without building the array, its strings twice over,
/// or the refs' intermediate strings).
pub(crate) fn decode(text: &[u8]) -> Result<Message, DecodeError> {
    match serde_json::from_slice::<Parts>(text) {
        Ok(Parts(message)) => Ok(message),
        Err(_) => decode_value(text),
    }
}

/// A frame read element by element (see [`decode`]).
struct Parts(Message);

impl<'de> Deserialize<'de> for Parts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(PartsVisitor)
    }
}

struct PartsVisitor;

impl<'de> Visitor<'de> for PartsVisitor {
    type Value = Parts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[join_ref, ref, topic, event, payload]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parts, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            index: usize,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| de::Error::invalid_length(index, &PartsVisitor))
        }
        let WireRef(join_ref) = next(&mut seq, 0)?;
        let WireRef(ref_) = next(&mut seq, 1)?;
        let topic = next(&mut seq, 2)?;
        let event = next(&mut seq, 3)?;
        let payload = next(&mut seq, 4)?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Parts(Message {
            join_ref,
            ref_,
            topic,
            event,
            payload: Payload::Json(payload),
        }))
    }
}

/// A ref as [`json::read_ref`] reads it: null, a string or a number.
struct WireRef(Option<Ref>);

impl<'de> Deserialize<'de> for WireRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WireRefVisitor)
    }
}

struct WireRefVisitor;

impl Visitor<'_> for WireRefVisitor {
    type Value = WireRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<WireRef, E> {
        Ok(WireRef(None))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<WireRef, E> {
        Ok(WireRef(Some(Ref::string(text))))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<WireRef, E> {
        Ok(WireRef(Some(Ref::number(&n.into()))))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<WireRef, E> {
        Ok(WireRef(Some(Ref::number(&n.into()))))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<WireRef, E> {
        match serde_json::Number::from_f64(n) {
            Some(number) => Ok(WireRef(Some(Ref::number(&number)))),
            None => Err(E::custom("a number JSON cannot hold")),
        }
    }
}

/// The frame read as one JSON value first: slower, but says what is wrong.
fn decode_value(text: &[u8]) -> Result<Message, DecodeError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The direct reading and the reading through a JSON value agree on every frame: the same
    /// message, or both an error.
    fn agree(text: &str) {
        let direct = serde_json::from_slice::<Parts>(text.as_bytes()).map(|Parts(m)| m);
        let through_value = decode_value(text.as_bytes());
        match (direct, through_value) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("{text}: direct {a:?}, through a value {b:?}"),
        }
    }

    #[test]
    fn both_readings_agree_on_valid_and_invalid_frames() {
        for text in [
            r#"[null,"9","phoenix","heartbeat",{}]"#,
            r#"["1","2","room:lobby","phx_join",{"token":"abc"}]"#,
            r#"[1,2.5,"room:\u00e9","new_msg",{"a":[1,2]},"extra",{}]"#,
            r#"[-3,18446744073709551615,"t","e",null]"#,
            r#"[null,null,"t","e","a string payload"]"#,
            r#"["a\"b","\ud83d\ude00","t","e",[]]"#,
            r#"[null,"1","t","e"]"#,
            r#"[true,"1","t","e",{}]"#,
            r#"[null,{},"t","e",{}]"#,
            r#"[null,"1",3,"e",{}]"#,
            r#"[null,"1","t",null,{}]"#,
            r#"{"topic":"t"}"#,
            r#"[null,"1","t","e",{}] trailing"#,
            "",
            "[",
        ] {
            agree(text);
        }
    }

    #[test]
    fn a_frame_the_direct_reading_refuses_still_gets_the_precise_error() {
        assert!(matches!(
            decode(br#"[null,"1","t","e"]"#),
            Err(DecodeError::TooFewElements { found: 4 })
        ));
        assert!(matches!(
            decode(br#"[null,"1",3,"e",{}]"#),
            Err(DecodeError::WrongType { field: "topic", .. })
        ));
    }

    proptest! {
        #[test]
        fn both_readings_agree_on_generated_frames(
            join_ref in prop_oneof![Just("null".to_owned()), any::<u32>().prop_map(|n| n.to_string()), "[a-z0-9\"]{0,6}".prop_map(|s| format!("{s:?}"))],
            ref_ in prop_oneof![Just("null".to_owned()), any::<i64>().prop_map(|n| n.to_string()), any::<f64>().prop_map(|n| n.to_string()), "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap())],
            topic in "\\PC{0,12}",
            event in "\\PC{0,12}",
            payload in prop_oneof![Just("{}".to_owned()), Just("[1,{\"a\":null}]".to_owned()), "\\PC{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap())],
            extra in prop::option::of(Just(",0")),
        ) {
            let text = format!(
                "[{join_ref},{ref_},{},{},{payload}{}]",
                serde_json::to_string(&topic).unwrap(),
                serde_json::to_string(&event).unwrap(),
                extra.unwrap_or(""),
            );
            agree(&text);
        }
    }
}
