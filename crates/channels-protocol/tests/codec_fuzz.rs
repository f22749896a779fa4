//! Property tests of the codec: no input makes a decoder panic, and what a
//! client encodes the server decodes unchanged (and vice versa).
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use channels_protocol::codec::client::{self, Received, ReceivedReply};
use channels_protocol::codec::{
    Broadcast, Frame, FrameKind, JsonObject, Message, OutPayload, Payload, Push, Ref, RefStr,
    Reply, Serializer, v2_to_v1,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const SERIALIZERS: [Serializer; 2] = [Serializer::V1, Serializer::V2];
const KINDS: [FrameKind; 2] = [FrameKind::Text, FrameKind::Binary];

/// Runs every decoding entry point on `data`; only their not panicking matters.
fn decode_everything(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    for serializer in SERIALIZERS {
        for kind in KINDS {
            let _ = serializer.decode(kind, bytes.clone());
            let _ = client::decode(serializer, kind, bytes.clone());
            let _ = v2_to_v1(&Frame {
                kind,
                data: bytes.clone(),
            });
        }
    }
}

/// Short strings, often non-ASCII or needing JSON escapes.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z:0-9]{0,12}",
        "\\PC{0,8}",
        any::<String>().prop_map(|s| s.chars().take(20).collect()),
    ]
}

/// A string that fits a binary frame's one-byte length.
fn short_text() -> impl Strategy<Value = String> {
    text().prop_filter("fits 255 bytes", |s| s.len() <= 255)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        // Decimal fractions: serde_json's default float parser is not exact
        // for every f64 (that needs its float_roundtrip feature), which is a
        // property of serde_json, not of the framing tested here.
        any::<i32>().prop_map(|i| json!(f64::from(i) / 1000.0)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), json_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn client_message(binary: bool) -> impl Strategy<Value = Message> {
    let payload = if binary {
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| Payload::Binary(Bytes::from(b)))
            .boxed()
    } else {
        json_value().prop_map(Payload::Json).boxed()
    };
    // Binary frames read an empty join_ref/ref as None, so generate
    // non-empty ones there.
    let id = || prop::option::of(short_text().prop_filter("non-empty", |s| !s.is_empty()));
    (id(), id(), short_text(), short_text(), payload).prop_map(
        |(join_ref, ref_, topic, event, payload)| Message {
            join_ref: join_ref.map(Ref::from),
            ref_: ref_.map(Ref::from),
            topic,
            event,
            payload,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// No byte sequence panics any decoder.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(data in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_everything(&data);
    }

    /// Binary frames with a plausible header (valid kind, small lengths) reach
    /// the string and payload paths; they must not panic either.
    #[test]
    fn plausible_binary_frames_never_panic_the_decoder(
        kind in 0u8..4,
        lengths in prop::collection::vec(0u8..12, 4),
        rest in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut data = vec![kind];
        data.extend(lengths);
        data.extend(rest);
        decode_everything(&data);
    }

    /// JSON of any shape (arrays of the wrong arity or types, objects missing
    /// keys) yields a value or a DecodeError, never a panic.
    #[test]
    fn arbitrary_json_never_panics_the_decoder(value in json_value()) {
        decode_everything(value.to_string().as_bytes());
    }

    /// Nearly-valid V2 frames: five elements of arbitrary JSON.
    #[test]
    fn five_element_arrays_never_panic_the_decoder(elements in prop::collection::vec(json_value(), 5)) {
        decode_everything(Value::Array(elements).to_string().as_bytes());
    }

    /// decode(encode(msg)) == msg for JSON client pushes, both serializers.
    #[test]
    fn json_client_pushes_round_trip(msg in client_message(false)) {
        for serializer in SERIALIZERS {
            let frame = client::encode(serializer, &msg).unwrap();
            prop_assert_eq!(frame.kind, FrameKind::Text);
            prop_assert_eq!(serializer.decode(frame.kind, frame.data).unwrap(), msg.clone());
        }
    }

    /// decode(encode(msg)) == msg for binary client pushes (V2).
    #[test]
    fn binary_client_pushes_round_trip(msg in client_message(true)) {
        let frame = client::encode(Serializer::V2, &msg).unwrap();
        prop_assert_eq!(frame.kind, FrameKind::Binary);
        prop_assert_eq!(Serializer::V2.decode(frame.kind, frame.data).unwrap(), msg);
    }

    /// Server replies, pushes and broadcasts decode back, by the client, to
    /// what was encoded; and the V2 -> V1 conversion equals direct V1 encoding.
    #[test]
    fn server_frames_round_trip(
        join_ref in prop::option::of(short_text().prop_filter("non-empty", |s| !s.is_empty())),
        ref_ in prop::option::of(short_text().prop_filter("non-empty", |s| !s.is_empty())),
        topic in short_text(),
        event in short_text(),
        status in short_text(),
        object in json_object(),
        binary in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        let json_payload = OutPayload::Json(JsonObject::from_value(&object).unwrap());
        let binary_payload = OutPayload::Binary(Bytes::from(binary.clone()));
        for (payload, expected) in [
            (&json_payload, Payload::Json(object.clone())),
            (&binary_payload, Payload::Binary(Bytes::from(binary.clone()))),
        ] {
            let reply = Reply { join_ref: join_ref.as_deref().map(RefStr::from), ref_: ref_.as_deref().map(RefStr::from), topic: &topic, status: &status, response: payload };
            let frame = reply.encode(Serializer::V2).unwrap();
            prop_assert_eq!(
                client::decode(Serializer::V2, frame.kind, frame.data.clone()).unwrap(),
                Received::Reply(ReceivedReply {
                    join_ref: join_ref.clone(),
                    ref_: ref_.clone(),
                    topic: topic.clone(),
                    status: status.clone(),
                    response: expected.clone(),
                })
            );

            let push = Push { join_ref: join_ref.as_deref().map(RefStr::from), topic: &topic, event: &event, payload };
            let frame = push.encode(Serializer::V2).unwrap();
            prop_assert_eq!(
                client::decode(Serializer::V2, frame.kind, frame.data.clone()).unwrap(),
                Received::Message(Message {
                    join_ref: join_ref.clone().map(Ref::from),
                    ref_: None,
                    topic: topic.clone(),
                    event: event.clone(),
                    payload: expected.clone(),
                })
            );

            let broadcast = Broadcast { topic: &topic, event: &event, payload };
            let frame = broadcast.encode(Serializer::V2).unwrap();
            if frame.kind == FrameKind::Text {
                prop_assert_eq!(v2_to_v1(&frame).unwrap(), broadcast.encode(Serializer::V1).unwrap());
                prop_assert_eq!(v2_to_v1(&push.encode(Serializer::V2).unwrap()).unwrap(), push.encode(Serializer::V1).unwrap());
                prop_assert_eq!(v2_to_v1(&reply.encode(Serializer::V2).unwrap()).unwrap(), reply.encode(Serializer::V1).unwrap());
            }
            prop_assert_eq!(
                client::decode(Serializer::V2, frame.kind, frame.data).unwrap(),
                Received::Message(Message {
                    join_ref: None,
                    ref_: None,
                    topic: topic.clone(),
                    event: event.clone(),
                    payload: expected,
                })
            );
        }
    }
}
