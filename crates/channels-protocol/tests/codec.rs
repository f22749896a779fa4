//! Codec conformance: the exact frames of the protocol spec (§2.2, §2.3,
//! §2.4, §2.9), round trips of every kind through both serializers, and the
//! rejection of malformed input.
//!
//! Why one file of about 1,100 lines: it is the conformance table of the protocol spec, one test per
//! frame the spec prints, in the spec's order; split, the spec's sections would no longer be
//! checkable against one file.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use channels_protocol::codec::client::{self, Received, ReceivedReply};
use channels_protocol::codec::{
    Broadcast, DecodeError, EncodeError, Frame, FrameKind, JsonObject, Message, OutPayload,
    Payload, Push, Ref, Reply, Serializer, VsnError, v2_to_v1,
};
use serde_json::json;

fn text(frame: &Frame) -> &str {
    assert_eq!(frame.kind, FrameKind::Text);
    frame.as_text().unwrap()
}

fn obj(text: &str) -> OutPayload {
    OutPayload::Json(JsonObject::from_json(text.to_owned()).unwrap())
}

fn decode_text(serializer: Serializer, frame: &str) -> Result<Message, DecodeError> {
    serializer.decode(FrameKind::Text, Bytes::copy_from_slice(frame.as_bytes()))
}

fn decode_binary(frame: &[u8]) -> Result<Message, DecodeError> {
    Serializer::V2.decode(FrameKind::Binary, Bytes::copy_from_slice(frame))
}

fn msg(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    event: &str,
    payload: Payload,
) -> Message {
    Message {
        join_ref: join_ref.map(Ref::from),
        ref_: ref_.map(Ref::from),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload,
    }
}

// ---------------------------------------------------------------- negotiation

#[test]
fn vsn_negotiation_follows_phoenix() {
    assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
    assert_eq!(Serializer::from_vsn(Some("1.0.0")), Ok(Serializer::V1));
    assert_eq!(Serializer::from_vsn(Some("2.0.0")), Ok(Serializer::V2));
    assert_eq!(Serializer::from_vsn(Some("2.0.9")), Ok(Serializer::V2));
    assert_eq!(
        Serializer::from_vsn(Some("3.0.0")),
        Err(VsnError::Unsupported {
            vsn: "3.0.0".into()
        })
    );
    assert_eq!(
        Serializer::from_vsn(Some("2.1.0")),
        Err(VsnError::Unsupported {
            vsn: "2.1.0".into()
        })
    );
    assert_eq!(
        Serializer::from_vsn(Some("two")),
        Err(VsnError::Invalid { vsn: "two".into() })
    );
    assert_eq!(Serializer::V2.vsn(), "2.0.0");
    assert_eq!(Serializer::V1.vsn(), "1.0.0");
    assert!(Serializer::V2.supports_binary() && !Serializer::V1.supports_binary());
}

// ------------------------------------------------------- spec frames, decoded

#[test]
fn guide_client_frames_decode() {
    // §2.2, from the official "writing a channels client" guide.
    assert_eq!(
        decode_text(
            Serializer::V2,
            r#"["0","0","miami:weather","phx_join",{"some":"param"}]"#
        )
        .unwrap(),
        msg(
            Some("0"),
            Some("0"),
            "miami:weather",
            "phx_join",
            Payload::Json(json!({"some": "param"}))
        )
    );
    assert_eq!(
        decode_text(
            Serializer::V2,
            r#"["0","1","miami:weather","phx_leave",{}]"#
        )
        .unwrap(),
        msg(
            Some("0"),
            Some("1"),
            "miami:weather",
            "phx_leave",
            Payload::Json(json!({}))
        )
    );
    assert_eq!(
        decode_text(Serializer::V2, r#"[null,"2","phoenix","heartbeat",{}]"#).unwrap(),
        msg(
            None,
            Some("2"),
            "phoenix",
            "heartbeat",
            Payload::Json(json!({}))
        )
    );
}

#[test]
fn client_payloads_may_be_any_json_value() {
    for payload in [
        json!(null),
        json!(1),
        json!("s"),
        json!([1, {"a": 2}]),
        json!(true),
    ] {
        let frame = json!(["1", "2", "t", "e", payload]).to_string();
        assert_eq!(
            decode_text(Serializer::V2, &frame).unwrap().payload,
            Payload::Json(payload)
        );
    }
}

#[test]
fn v2_extra_elements_are_ignored() {
    let m = decode_text(Serializer::V2, r#"["1","2","t","e",{},"extra",[1]]"#).unwrap();
    assert_eq!(
        m,
        msg(Some("1"), Some("2"), "t", "e", Payload::Json(json!({})))
    );
}

/// Refs come back as the JSON values the client sent: a number stays a number, a string a string,
/// null null, in V1 and V2, in replies, `phx_close` and `phx_error`.
#[test]
fn refs_round_trip_as_the_json_values_sent() {
    for (join_ref, ref_) in [
        ("7", "12"),
        (r#""7""#, r#""12""#),
        ("null", "null"),
        ("1.5", r#""x""#),
    ] {
        let m = decode_text(
            Serializer::V2,
            &format!(r#"[{join_ref},{ref_},"t","e",{{}}]"#),
        )
        .unwrap();
        let reply = Reply {
            join_ref: m.join_ref.as_ref().map(Ref::view),
            ref_: m.ref_.as_ref().map(Ref::view),
            topic: "t",
            status: "ok",
            response: &OutPayload::empty(),
        };
        let v2 = reply.encode(Serializer::V2).unwrap();
        let v2 = text(&v2);
        assert_eq!(
            v2,
            format!(r#"[{join_ref},{ref_},"t","phx_reply",{{"status":"ok","response":{{}}}}]"#)
        );
        let v1 = reply.encode(Serializer::V1).unwrap();
        let v1 = text(&v1);
        assert_eq!(
            v1,
            format!(
                r#"{{"topic":"t","event":"phx_reply","payload":{{"status":"ok","response":{{}}}},"ref":{ref_}}}"#
            )
        );
        let close = Serializer::V2.close(m.join_ref.as_ref().map(Ref::view), "t");
        let close = text(&close);
        assert_eq!(
            close,
            format!(r#"[{join_ref},{join_ref},"t","phx_close",{{}}]"#)
        );
        let error = Serializer::V2.channel_error(m.join_ref.as_ref().map(Ref::view), "t");
        let error = text(&error);
        assert!(
            error.starts_with(&format!(r#"[{join_ref},{join_ref},"t","phx_error","#)),
            "{error}"
        );
        let heartbeat = Serializer::V1.heartbeat_reply(m.ref_.as_ref().map(Ref::view));
        let heartbeat = text(&heartbeat);
        assert!(
            heartbeat.ends_with(&format!(r#""ref":{ref_}}}"#)),
            "{heartbeat}"
        );
    }
    let m = decode_text(
        Serializer::V1,
        r#"{"topic":"t","event":"e","payload":{},"ref":3,"join_ref":"4"}"#,
    )
    .unwrap();
    assert!(m.ref_.as_ref().is_some_and(Ref::is_number));
    assert!(m.join_ref.as_ref().is_some_and(|r| !r.is_number()));
}

#[test]
fn numeric_refs_read_as_their_decimal_text() {
    let m = decode_text(Serializer::V2, r#"[7,12,"t","e",{}]"#).unwrap();
    assert_eq!(
        (m.join_ref.as_deref(), m.ref_.as_deref()),
        (Some("7"), Some("12"))
    );
    let m = decode_text(
        Serializer::V1,
        r#"{"topic":"t","event":"e","payload":{},"ref":3,"join_ref":1.5}"#,
    )
    .unwrap();
    assert_eq!(
        (m.join_ref.as_deref(), m.ref_.as_deref()),
        (Some("1.5"), Some("3"))
    );
}

#[test]
fn v1_objects_decode_with_optional_join_ref() {
    assert_eq!(
        decode_text(
            Serializer::V1,
            r#"{"topic":"room:1","event":"phx_join","payload":{"a":1},"ref":"1"}"#
        )
        .unwrap(),
        msg(
            None,
            Some("1"),
            "room:1",
            "phx_join",
            Payload::Json(json!({"a": 1}))
        )
    );
    assert_eq!(
        decode_text(
            Serializer::V1,
            r#"{"ref":null,"payload":[],"event":"e","topic":"t","join_ref":"4","other":1}"#
        )
        .unwrap(),
        msg(Some("4"), None, "t", "e", Payload::Json(json!([])))
    );
}

#[test]
fn binary_client_push_decodes_without_copying_the_payload() {
    // u8 0, join_ref_len, ref_len, topic_len, event_len, strings, payload.
    let mut frame = vec![0, 2, 1, 10, 6];
    frame.extend_from_slice(b"125room:lobbyupload");
    frame.extend_from_slice(&[0, 1, 2, 255]);
    let m = decode_binary(&frame).unwrap();
    assert_eq!(
        m,
        msg(
            Some("12"),
            Some("5"),
            "room:lobby",
            "upload",
            Payload::Binary(Bytes::from_static(&[0, 1, 2, 255]))
        )
    );
    // Empty join_ref and ref read as None; an empty payload is allowed.
    let mut frame = vec![0, 0, 0, 1, 1];
    frame.extend_from_slice(b"te");
    assert_eq!(
        decode_binary(&frame).unwrap(),
        msg(None, None, "t", "e", Payload::Binary(Bytes::new()))
    );
}

// --------------------------------------------------- spec frames, encoded (V2)

#[test]
fn worked_example_session_frames_are_byte_exact() {
    // §2.9: every server frame of the worked session.
    let ok = OutPayload::empty();
    let join_reply = Reply {
        join_ref: Some("3".into()),
        ref_: Some("3".into()),
        topic: "room:lobby",
        status: "ok",
        response: &ok,
    };
    assert_eq!(
        text(&join_reply.encode(Serializer::V2).unwrap()),
        r#"["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]"#
    );

    let state = obj(r#"{"7":{"metas":[{"phx_ref":"F1…","online_at":"1700000000"}]}}"#);
    let push = Push {
        join_ref: Some("3".into()),
        topic: "room:lobby",
        event: "presence_state",
        payload: &state,
    };
    assert_eq!(
        text(&push.encode(Serializer::V2).unwrap()),
        r#"["3",null,"room:lobby","presence_state",{"7":{"metas":[{"phx_ref":"F1…","online_at":"1700000000"}]}}]"#
    );

    let diff = obj(
        r#"{"joins":{"7":{"metas":[{"phx_ref":"F1…","online_at":"1700000000"}]}},"leaves":{}}"#,
    );
    let broadcast = Broadcast {
        topic: "room:lobby",
        event: "presence_diff",
        payload: &diff,
    };
    assert_eq!(
        text(&broadcast.encode(Serializer::V2).unwrap()),
        r#"[null,null,"room:lobby","presence_diff",{"joins":{"7":{"metas":[{"phx_ref":"F1…","online_at":"1700000000"}]}},"leaves":{}}]"#
    );

    let msg_reply = Reply {
        join_ref: Some("3".into()),
        ref_: Some("4".into()),
        topic: "room:lobby",
        status: "ok",
        response: &ok,
    };
    assert_eq!(
        text(&msg_reply.encode(Serializer::V2).unwrap()),
        r#"["3","4","room:lobby","phx_reply",{"status":"ok","response":{}}]"#
    );
    let body = obj(r#"{"body":"hi"}"#);
    let new_msg = Broadcast {
        topic: "room:lobby",
        event: "new_msg",
        payload: &body,
    };
    assert_eq!(
        text(&new_msg.encode(Serializer::V2).unwrap()),
        r#"[null,null,"room:lobby","new_msg",{"body":"hi"}]"#
    );

    assert_eq!(
        text(&Serializer::V2.heartbeat_reply(Some("5".into()))),
        r#"[null,"5","phoenix","phx_reply",{"status":"ok","response":{}}]"#
    );
    let leave_reply = Reply {
        join_ref: Some("3".into()),
        ref_: Some("6".into()),
        topic: "room:lobby",
        status: "ok",
        response: &ok,
    };
    assert_eq!(
        text(&leave_reply.encode(Serializer::V2).unwrap()),
        r#"["3","6","room:lobby","phx_reply",{"status":"ok","response":{}}]"#
    );
    assert_eq!(
        text(&Serializer::V2.close(Some("3".into()), "room:lobby")),
        r#"["3","3","room:lobby","phx_close",{}]"#
    );
    assert_eq!(
        text(&Serializer::V2.channel_error(Some("3".into()), "room:lobby")),
        r#"["3","3","room:lobby","phx_error",{"reason":"channel_crash"}]"#
    );
}

#[test]
fn error_replies_carry_status_and_response() {
    let reason = obj(r#"{"reason":"unmatched topic"}"#);
    let reply = Reply {
        join_ref: None,
        ref_: Some("9".into()),
        topic: "nope",
        status: "error",
        response: &reason,
    };
    assert_eq!(
        text(&reply.encode(Serializer::V2).unwrap()),
        r#"[null,"9","nope","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
    );
}

#[test]
fn strings_are_json_escaped() {
    let payload = OutPayload::empty();
    let push = Push {
        join_ref: Some("a\"b".into()),
        topic: "room:\\é\n",
        event: "e\u{1}",
        payload: &payload,
    };
    let frame = push.encode(Serializer::V2).unwrap();
    assert_eq!(text(&frame), r#"["a\"b",null,"room:\\é\n","e\u0001",{}]"#);
    let value: serde_json::Value = serde_json::from_slice(&frame.data).unwrap();
    assert_eq!(value, json!(["a\"b", null, "room:\\é\n", "e\u{1}", {}]));
}

// ----------------------------------------------------------------- V1 output

#[test]
fn v1_frames_are_objects_without_join_ref() {
    let ok = OutPayload::empty();
    let reply = Reply {
        join_ref: Some("3".into()),
        ref_: Some("4".into()),
        topic: "room:lobby",
        status: "ok",
        response: &ok,
    };
    assert_eq!(
        text(&reply.encode(Serializer::V1).unwrap()),
        r#"{"topic":"room:lobby","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"4"}"#
    );
    let body = obj(r#"{"body":"hi"}"#);
    let push = Push {
        join_ref: Some("3".into()),
        topic: "room:lobby",
        event: "new_msg",
        payload: &body,
    };
    assert_eq!(
        text(&push.encode(Serializer::V1).unwrap()),
        r#"{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}"#
    );
    let broadcast = Broadcast {
        topic: "room:lobby",
        event: "new_msg",
        payload: &body,
    };
    assert_eq!(
        text(&broadcast.encode(Serializer::V1).unwrap()),
        r#"{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}"#
    );
    assert_eq!(
        text(&Serializer::V1.heartbeat_reply(Some("5".into()))),
        r#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"5"}"#
    );
    assert_eq!(
        text(&Serializer::V1.close(Some("3".into()), "room:lobby")),
        r#"{"topic":"room:lobby","event":"phx_close","payload":{},"ref":"3"}"#
    );
    assert_eq!(
        text(&Serializer::V1.channel_error(Some("3".into()), "room:lobby")),
        r#"{"topic":"room:lobby","event":"phx_error","payload":{"reason":"channel_crash"},"ref":"3"}"#
    );
}

#[test]
fn v1_cannot_carry_binary() {
    let bin = OutPayload::Binary(Bytes::from_static(b"\x01"));
    let push = Push {
        join_ref: None,
        topic: "t",
        event: "e",
        payload: &bin,
    };
    assert!(matches!(
        push.encode(Serializer::V1),
        Err(EncodeError::BinaryNotSupported)
    ));
    let reply = Reply {
        join_ref: None,
        ref_: None,
        topic: "t",
        status: "ok",
        response: &bin,
    };
    assert!(matches!(
        reply.encode(Serializer::V1),
        Err(EncodeError::BinaryNotSupported)
    ));
    let broadcast = Broadcast {
        topic: "t",
        event: "e",
        payload: &bin,
    };
    assert!(matches!(
        broadcast.encode(Serializer::V1),
        Err(EncodeError::BinaryNotSupported)
    ));
    // Phoenix's V1 serializer reads any frame as JSON text, whatever its opcode.
    assert!(matches!(
        Serializer::V1.decode(FrameKind::Binary, Bytes::from_static(&[0, 0, 0, 0, 0])),
        Err(DecodeError::InvalidJson(_))
    ));
    let m = Serializer::V1
        .decode(
            FrameKind::Binary,
            Bytes::from_static(br#"{"topic":"t","event":"e","payload":{},"ref":"1"}"#),
        )
        .unwrap();
    assert_eq!((m.topic.as_str(), m.ref_.as_deref()), ("t", Some("1")));
}

// ------------------------------------------------------------ binary output

#[test]
fn binary_frames_follow_the_spec_layouts() {
    let bin = OutPayload::Binary(Bytes::from_static(&[9, 8, 7]));

    // Push, kind 0: no ref field.
    let push = Push {
        join_ref: Some("12".into()),
        topic: "room:1",
        event: "img",
        payload: &bin,
    };
    let frame = push.encode(Serializer::V2).unwrap();
    assert_eq!(frame.kind, FrameKind::Binary);
    assert_eq!(&frame.data[..], b"\x00\x02\x06\x0312room:1img\x09\x08\x07");
    assert_eq!(frame.as_text(), None);

    // Reply, kind 1.
    let reply = Reply {
        join_ref: Some("12".into()),
        ref_: Some("13".into()),
        topic: "room:1",
        status: "ok",
        response: &bin,
    };
    assert_eq!(
        &reply.encode(Serializer::V2).unwrap().data[..],
        b"\x01\x02\x02\x06\x021213room:1ok\x09\x08\x07"
    );

    // Broadcast, kind 2.
    let broadcast = Broadcast {
        topic: "room:1",
        event: "img",
        payload: &bin,
    };
    assert_eq!(
        &broadcast.encode(Serializer::V2).unwrap().data[..],
        b"\x02\x06\x03room:1img\x09\x08\x07"
    );

    // Missing join_ref/ref are written with length 0.
    let push = Push {
        join_ref: None,
        topic: "t",
        event: "e",
        payload: &bin,
    };
    assert_eq!(
        &push.encode(Serializer::V2).unwrap().data[..],
        b"\x00\x00\x01\x01te\x09\x08\x07"
    );
}

#[test]
fn binary_fields_longer_than_255_bytes_are_refused() {
    let bin = OutPayload::Binary(Bytes::new());
    let long = "x".repeat(256);
    let max = "x".repeat(255);
    let field_of = |result: Result<Frame, EncodeError>| match result {
        Err(EncodeError::FieldTooLong { field, len: 256 }) => field,
        other => panic!("expected FieldTooLong, got {other:?}"),
    };

    assert_eq!(
        field_of(
            Push {
                join_ref: Some(long.as_str().into()),
                topic: "t",
                event: "e",
                payload: &bin
            }
            .encode(Serializer::V2)
        ),
        "join_ref"
    );
    assert_eq!(
        field_of(
            Push {
                join_ref: None,
                topic: &long,
                event: "e",
                payload: &bin
            }
            .encode(Serializer::V2)
        ),
        "topic"
    );
    assert_eq!(
        field_of(
            Push {
                join_ref: None,
                topic: "t",
                event: &long,
                payload: &bin
            }
            .encode(Serializer::V2)
        ),
        "event"
    );
    assert_eq!(
        field_of(
            Reply {
                join_ref: None,
                ref_: Some(long.as_str().into()),
                topic: "t",
                status: "ok",
                response: &bin
            }
            .encode(Serializer::V2)
        ),
        "ref"
    );
    assert_eq!(
        field_of(
            Reply {
                join_ref: None,
                ref_: None,
                topic: "t",
                status: &long,
                response: &bin
            }
            .encode(Serializer::V2)
        ),
        "status"
    );
    assert_eq!(
        field_of(
            Broadcast {
                topic: "t",
                event: &long,
                payload: &bin
            }
            .encode(Serializer::V2)
        ),
        "event"
    );

    // 255 bytes is fine, and JSON frames have no such limit.
    let frame = Broadcast {
        topic: &max,
        event: &max,
        payload: &bin,
    }
    .encode(Serializer::V2)
    .unwrap();
    assert_eq!(frame.data.len(), 3 + 2 * 255);
    let json = OutPayload::empty();
    assert!(
        Broadcast {
            topic: &long,
            event: &long,
            payload: &json
        }
        .encode(Serializer::V2)
        .is_ok()
    );
}

// ----------------------------------------------------------------- round trips

fn assert_client_round_trip(serializer: Serializer, m: Message) {
    let frame = client::encode(serializer, &m).unwrap();
    let back = serializer.decode(frame.kind, frame.data.clone()).unwrap();
    assert_eq!(back, m, "{serializer:?} {:?}", frame.data);
}

#[test]
fn client_messages_round_trip_through_both_serializers() {
    let json_msg = msg(
        Some("1"),
        Some("2"),
        "room:ü",
        "shout",
        Payload::Json(json!({"x": [1, "y", null]})),
    );
    let no_refs = msg(None, None, "phoenix", "heartbeat", Payload::Json(json!({})));
    let binary = msg(
        Some("1"),
        Some("2"),
        "room:1",
        "upload",
        Payload::Binary(Bytes::from_static(b"\0\xff")),
    );
    for m in [json_msg.clone(), no_refs.clone(), binary] {
        assert_client_round_trip(Serializer::V2, m);
    }
    for m in [json_msg, no_refs] {
        assert_client_round_trip(Serializer::V1, m);
    }
}

fn received_reply(
    join_ref: Option<&str>,
    ref_: Option<&str>,
    topic: &str,
    status: &str,
    response: Payload,
) -> Received {
    Received::Reply(ReceivedReply {
        join_ref: join_ref.map(str::to_owned),
        ref_: ref_.map(str::to_owned),
        topic: topic.to_owned(),
        status: status.to_owned(),
        response,
    })
}

fn client_decode(serializer: Serializer, frame: &Frame) -> Received {
    client::decode(serializer, frame.kind, frame.data.clone()).unwrap()
}

#[test]
fn server_frames_round_trip_through_the_client_decoder() {
    let json_payload = obj(r#"{"a":1}"#);
    let bin_payload = OutPayload::Binary(Bytes::from_static(b"\x00\x01"));
    let json_value = Payload::Json(json!({"a": 1}));
    let bin_value = Payload::Binary(Bytes::from_static(b"\x00\x01"));

    for (payload, value) in [(&json_payload, &json_value), (&bin_payload, &bin_value)] {
        let reply = Reply {
            join_ref: Some("1".into()),
            ref_: Some("2".into()),
            topic: "t",
            status: "ok",
            response: payload,
        };
        assert_eq!(
            client_decode(Serializer::V2, &reply.encode(Serializer::V2).unwrap()),
            received_reply(Some("1"), Some("2"), "t", "ok", value.clone())
        );
        let push = Push {
            join_ref: Some("1".into()),
            topic: "t",
            event: "e",
            payload,
        };
        assert_eq!(
            client_decode(Serializer::V2, &push.encode(Serializer::V2).unwrap()),
            Received::Message(msg(Some("1"), None, "t", "e", value.clone()))
        );
        let broadcast = Broadcast {
            topic: "t",
            event: "e",
            payload,
        };
        assert_eq!(
            client_decode(Serializer::V2, &broadcast.encode(Serializer::V2).unwrap()),
            Received::Message(msg(None, None, "t", "e", value.clone()))
        );
    }

    // V1: no join_ref on the wire.
    let reply = Reply {
        join_ref: Some("1".into()),
        ref_: Some("2".into()),
        topic: "t",
        status: "error",
        response: &json_payload,
    };
    assert_eq!(
        client_decode(Serializer::V1, &reply.encode(Serializer::V1).unwrap()),
        received_reply(None, Some("2"), "t", "error", json_value.clone())
    );
    let push = Push {
        join_ref: Some("1".into()),
        topic: "t",
        event: "e",
        payload: &json_payload,
    };
    assert_eq!(
        client_decode(Serializer::V1, &push.encode(Serializer::V1).unwrap()),
        Received::Message(msg(None, None, "t", "e", json_value.clone()))
    );

    // Special frames.
    assert_eq!(
        client_decode(
            Serializer::V2,
            &Serializer::V2.heartbeat_reply(Some("5".into()))
        ),
        received_reply(None, Some("5"), "phoenix", "ok", Payload::Json(json!({})))
    );
    assert_eq!(
        client_decode(Serializer::V2, &Serializer::V2.close(Some("3".into()), "t")),
        Received::Message(msg(
            Some("3"),
            Some("3"),
            "t",
            "phx_close",
            Payload::Json(json!({}))
        ))
    );
    assert_eq!(
        client_decode(
            Serializer::V2,
            &Serializer::V2.channel_error(Some("3".into()), "t")
        ),
        Received::Message(msg(
            Some("3"),
            Some("3"),
            "t",
            "phx_error",
            Payload::Json(json!({"reason": "channel_crash"}))
        ))
    );
}

// ------------------------------------------------------------------ fastlane

#[test]
fn v2_frames_convert_to_the_v1_encoding() {
    let body = obj(r#"{"body":"h\"i","n":[1,2]}"#);
    let ok = OutPayload::empty();
    let broadcast = Broadcast {
        topic: "room:\"q\"",
        event: "new_msg",
        payload: &body,
    };
    let push = Push {
        join_ref: Some("3".into()),
        topic: "t",
        event: "e",
        payload: &body,
    };
    let reply = Reply {
        join_ref: Some("3".into()),
        ref_: Some("4".into()),
        topic: "t",
        status: "ok",
        response: &ok,
    };
    let frames = [
        (
            broadcast.encode(Serializer::V2).unwrap(),
            broadcast.encode(Serializer::V1).unwrap(),
        ),
        (
            push.encode(Serializer::V2).unwrap(),
            push.encode(Serializer::V1).unwrap(),
        ),
        (
            reply.encode(Serializer::V2).unwrap(),
            reply.encode(Serializer::V1).unwrap(),
        ),
        (
            Serializer::V2.close(Some("3".into()), "t"),
            Serializer::V1.close(Some("3".into()), "t"),
        ),
    ];
    for (v2, v1) in frames {
        assert_eq!(v2_to_v1(&v2).unwrap(), v1);
    }
}

#[test]
fn v2_to_v1_refuses_what_it_cannot_convert() {
    let bin = OutPayload::Binary(Bytes::from_static(b"x"));
    let frame = Broadcast {
        topic: "t",
        event: "e",
        payload: &bin,
    }
    .encode(Serializer::V2)
    .unwrap();
    assert!(matches!(
        v2_to_v1(&frame),
        Err(DecodeError::BinaryNotSupported)
    ));
    let bad = |s: &'static str| Frame {
        kind: FrameKind::Text,
        data: Bytes::from_static(s.as_bytes()),
    };
    assert!(matches!(
        v2_to_v1(&bad(r#"{"a":1}"#)),
        Err(DecodeError::NotAnArray { found: "an object" })
    ));
    assert!(matches!(
        v2_to_v1(&bad(r#"[null,null,"t","e"]"#)),
        Err(DecodeError::TooFewElements { found: 4 })
    ));
    assert!(matches!(
        v2_to_v1(&bad(r#"[null,null,"t","e",[1]]"#)),
        Err(DecodeError::WrongType {
            field: "payload",
            ..
        })
    ));
    assert!(matches!(
        v2_to_v1(&bad(r#"[null,null,1,"e",{}]"#)),
        Err(DecodeError::WrongType { field: "topic", .. })
    ));
    assert!(matches!(
        v2_to_v1(&bad(r#"[null,null,"t","e",{}"#)),
        Err(DecodeError::InvalidJson(_))
    ));
    assert!(matches!(
        v2_to_v1(&bad("")),
        Err(DecodeError::InvalidJson(_))
    ));
}

#[test]
fn encoded_broadcasts_are_shared_not_copied() {
    let body = obj(r#"{"body":"hi"}"#);
    let frame = Broadcast {
        topic: "t",
        event: "e",
        payload: &body,
    }
    .encode(Serializer::V2)
    .unwrap();
    let copies: Vec<Frame> = (0..1000).map(|_| frame.clone()).collect();
    assert!(
        copies
            .iter()
            .all(|c| c.data.as_ptr() == frame.data.as_ptr())
    );
}

// ------------------------------------------------------------------ rejection

#[test]
fn malformed_v2_text_frames_are_rejected_with_the_reason() {
    let err = |s: &str| decode_text(Serializer::V2, s).unwrap_err();
    assert!(matches!(
        err(r#"{"topic":"t"}"#),
        DecodeError::NotAnArray { found: "an object" }
    ));
    assert!(matches!(
        err("\"s\""),
        DecodeError::NotAnArray { found: "a string" }
    ));
    assert!(matches!(
        err(r#"["1","2","t","e"]"#),
        DecodeError::TooFewElements { found: 4 }
    ));
    assert!(matches!(
        err("[]"),
        DecodeError::TooFewElements { found: 0 }
    ));
    assert!(matches!(
        err(r#"["1","2",3,"e",{}]"#),
        DecodeError::WrongType {
            field: "topic",
            expected: "a string",
            found: "a number"
        }
    ));
    assert!(matches!(
        err(r#"["1","2","t",null,{}]"#),
        DecodeError::WrongType {
            field: "event",
            found: "null",
            ..
        }
    ));
    assert!(matches!(
        err(r#"["1",{},"t","e",{}]"#),
        DecodeError::WrongType {
            field: "ref",
            found: "an object",
            ..
        }
    ));
    assert!(matches!(
        err(r#"[true,"2","t","e",{}]"#),
        DecodeError::WrongType {
            field: "join_ref",
            found: "a boolean",
            ..
        }
    ));
    assert!(matches!(
        err(r#"["1","2","t","e",{}"#),
        DecodeError::InvalidJson(_)
    ));
    assert!(matches!(err(""), DecodeError::InvalidJson(_)));
    assert!(matches!(
        Serializer::V2.decode(
            FrameKind::Text,
            Bytes::from_static(b"[\"\xff\",\"2\",\"t\",\"e\",{}]")
        ),
        Err(DecodeError::InvalidJson(_))
    ));
    // The message says what is wrong.
    assert_eq!(
        err(r#"["1","2","t","e"]"#).to_string(),
        "V2 frame must have 5 elements [join_ref, ref, topic, event, payload], found 4"
    );
}

#[test]
fn malformed_v1_text_frames_are_rejected_with_the_reason() {
    let err = |s: &str| decode_text(Serializer::V1, s).unwrap_err();
    assert!(matches!(
        err(r#"["1","2","t","e",{}]"#),
        DecodeError::NotAnObject { found: "an array" }
    ));
    assert!(matches!(
        err(r#"{"event":"e","payload":{},"ref":null}"#),
        DecodeError::MissingField { field: "topic" }
    ));
    assert!(matches!(
        err(r#"{"topic":"t","event":"e","payload":{}}"#),
        DecodeError::MissingField { field: "ref" }
    ));
    assert!(matches!(
        err(r#"{"topic":"t","event":"e","ref":null}"#),
        DecodeError::MissingField { field: "payload" }
    ));
    assert!(matches!(
        err(r#"{"topic":"t","payload":{},"ref":null}"#),
        DecodeError::MissingField { field: "event" }
    ));
    assert!(matches!(
        err(r#"{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":[]}"#),
        DecodeError::WrongType {
            field: "join_ref",
            ..
        }
    ));
}

#[test]
fn malformed_binary_frames_are_rejected_with_the_reason() {
    assert!(matches!(
        decode_binary(&[]),
        Err(DecodeError::BadBinaryKind { kind: None })
    ));
    assert!(matches!(
        decode_binary(&[1, 0, 0, 1, 1, b't', b'e']),
        Err(DecodeError::BadBinaryKind { kind: Some(1) })
    ));
    assert!(matches!(
        decode_binary(&[7]),
        Err(DecodeError::BadBinaryKind { kind: Some(7) })
    ));
    // Header cut short.
    assert!(matches!(
        decode_binary(&[0, 1, 1]),
        Err(DecodeError::Truncated { needed: 5, len: 3 })
    ));
    // Lengths announce more bytes than present.
    assert!(matches!(
        decode_binary(&[0, 1, 1, 5, 1, b'1', b'2', b'r', b'o']),
        Err(DecodeError::Truncated { needed: 13, len: 9 })
    ));
    assert!(matches!(
        decode_binary(&[0, 255, 255, 255, 255]),
        Err(DecodeError::Truncated {
            needed: 1025,
            len: 5
        })
    ));
    // Strings must be UTF-8.
    assert!(matches!(
        decode_binary(&[0, 0, 0, 1, 1, 0xff, b'e']),
        Err(DecodeError::InvalidUtf8 { field: "topic" })
    ));
    // Client decoder: same checks for server kinds.
    assert!(matches!(
        client::decode(
            Serializer::V2,
            FrameKind::Binary,
            Bytes::from_static(&[1, 1, 1, 1])
        ),
        Err(DecodeError::Truncated { needed: 5, len: 4 })
    ));
    assert!(matches!(
        client::decode(Serializer::V2, FrameKind::Binary, Bytes::from_static(&[3])),
        Err(DecodeError::BadBinaryKind { kind: Some(3) })
    ));
}

#[test]
fn outbound_json_payloads_must_be_objects() {
    assert!(matches!(
        JsonObject::from_json("[1]"),
        Err(EncodeError::NotAnObject { found: "an array" })
    ));
    assert!(matches!(
        JsonObject::from_value(&json!("s")),
        Err(EncodeError::NotAnObject { found: "a string" })
    ));
    assert!(matches!(
        JsonObject::serialize(&42),
        Err(EncodeError::NotAnObject { found: "a number" })
    ));
    assert!(matches!(
        JsonObject::from_json("{"),
        Err(EncodeError::Json(_))
    ));
    let object = JsonObject::try_from(json!({"ok": true})).unwrap();
    assert_eq!(object.as_str(), r#"{"ok":true}"#);
}
