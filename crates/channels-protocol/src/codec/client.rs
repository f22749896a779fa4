//! The client's half of the codec: encoding what phoenix.js sends and decoding
//! what the server sends.
//!
//! The server never needs this module. It exists for code that *plays the
//! browser*: integration tests that drive a real server over a socket, and
//! the load tester, which opens thousands of sockets. It mirrors phoenix.js's
//! serializer, so frames built here are the frames a browser would send.
//!
//! ```
//! use bytes::Bytes;
//! use channels_protocol::codec::client::{self, Received};
//! use channels_protocol::codec::{FrameKind, Message, Payload, Serializer};
//!
//! let join = Message {
//!     join_ref: Some("3".into()),
//!     ref_: Some("3".into()),
//!     topic: "room:lobby".into(),
//!     event: "phx_join".into(),
//!     payload: Payload::Json(serde_json::json!({"nick": "ann"})),
//! };
//! let frame = client::encode(Serializer::V2, &join)?;
//! assert_eq!(&frame.data[..], br#"["3","3","room:lobby","phx_join",{"nick":"ann"}]"#);
//!
//! let answer = Bytes::from_static(br#"["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]"#);
//! match client::decode(Serializer::V2, FrameKind::Text, answer)? {
//!     Received::Reply(reply) => assert_eq!(reply.status, "ok"),
//!     Received::Message(other) => panic!("not a reply: {other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use bytes::Bytes;
use serde_json::Value;

use super::binary::{self, KIND_BROADCAST, KIND_PUSH, KIND_REPLY, Reader};
use super::json::{self, Fields};
use super::refs::Ref;
use super::{
    DecodeError, EncodeError, Frame, FrameKind, Message, PHX_REPLY, Payload, Serializer, v1, v2,
};

/// A frame received from the server, as phoenix.js sees it: replies are told
/// apart from pushes and broadcasts.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// A `phx_reply` answering the client message with the same `ref`.
    Reply(ReceivedReply),
    /// A push (join_ref set, ref null), broadcast (both null), or
    /// `phx_close`/`phx_error` (ref = join_ref).
    Message(Message),
}

/// A decoded `phx_reply`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedReply {
    /// The channel's join_ref (`None` on V1 and for socket-level replies).
    pub join_ref: Option<String>,
    /// The ref of the message answered.
    pub ref_: Option<String>,
    /// The topic of the message answered.
    pub topic: String,
    /// `"ok"`, `"error"`, or any other status the server chose.
    pub status: String,
    /// The response: JSON (normally an object) or binary data.
    pub response: Payload,
}

/// Encodes a client message the way phoenix.js does: V2 text
/// `[join_ref, ref, topic, event, payload]` for JSON payloads, a V2 binary
/// push (kind 0, with ref) for binary ones. V1 writes an object and includes
/// `join_ref` only when set.
pub fn encode(serializer: Serializer, msg: &Message) -> Result<Frame, EncodeError> {
    let fields = Fields {
        join_ref: msg.join_ref.as_ref().map(Ref::view),
        ref_: msg.ref_.as_ref().map(Ref::view),
        topic: &msg.topic,
        event: &msg.event,
    };
    match (serializer, &msg.payload) {
        (Serializer::V2, Payload::Json(value)) => Ok(Frame::text(v2::encode(&fields, 64, |out| {
            write_value(out, value)
        }))),
        (Serializer::V1, Payload::Json(value)) => {
            let mut out = v1::encode(&fields, 64, |out| write_value(out, value));
            if let Some(join_ref) = &msg.join_ref {
                // Replace the closing `}` with the optional key.
                out.pop();
                out.extend_from_slice(br#","join_ref":"#);
                json::write_opt_ref(&mut out, Some(join_ref.view()));
                out.push(b'}');
            }
            Ok(Frame::text(out))
        }
        (Serializer::V2, Payload::Binary(bytes)) => binary::encode_client_push(msg, bytes),
        (Serializer::V1, Payload::Binary(_)) => Err(EncodeError::BinaryNotSupported),
    }
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    // Writing into a Vec cannot fail and a Value always serializes.
    let result = serde_json::to_writer(out, value);
    debug_assert!(result.is_ok(), "serializing a JSON value failed");
}

/// Decodes a frame sent by the server.
///
/// Text frames whose event is `phx_reply` and whose payload has a string
/// `status` become [`Received::Reply`] (a missing `response` reads as
/// `null`); binary frames are decoded by kind (0 push, 1 reply, 2 broadcast).
pub fn decode(
    serializer: Serializer,
    kind: FrameKind,
    data: Bytes,
) -> Result<Received, DecodeError> {
    match (serializer, kind) {
        (Serializer::V2, FrameKind::Text) => Ok(split_reply(v2::decode(&data)?)),
        (Serializer::V1, FrameKind::Text) => Ok(split_reply(v1::decode(&data)?)),
        (Serializer::V2, FrameKind::Binary) => decode_binary(data),
        (Serializer::V1, FrameKind::Binary) => Err(DecodeError::BinaryNotSupported),
    }
}

fn split_reply(msg: Message) -> Received {
    let is_reply = msg.event == PHX_REPLY
        && matches!(
            &msg.payload,
            Payload::Json(Value::Object(envelope))
                if matches!(envelope.get("status"), Some(Value::String(_)))
        );
    if !is_reply {
        return Received::Message(msg);
    }
    let Message {
        join_ref,
        ref_,
        topic,
        payload,
        ..
    } = msg;
    let (status, response) = match payload {
        Payload::Json(Value::Object(mut envelope)) => {
            let status = match envelope.remove("status") {
                Some(Value::String(status)) => status,
                _ => String::new(),
            };
            (status, envelope.remove("response").unwrap_or(Value::Null))
        }
        _ => (String::new(), Value::Null),
    };
    Received::Reply(ReceivedReply {
        join_ref: join_ref.map(|r| r.as_str().to_owned()),
        ref_: ref_.map(|r| r.as_str().to_owned()),
        topic,
        status,
        response: Payload::Json(response),
    })
}

fn decode_binary(data: Bytes) -> Result<Received, DecodeError> {
    match data.first().copied() {
        Some(KIND_PUSH) => {
            let mut reader = Reader::new(&data, 3)?;
            let join_ref = reader.opt_string("join_ref")?;
            let topic = reader.string("topic")?;
            let event = reader.string("event")?;
            let payload = Payload::Binary(data.slice(reader.offset..));
            Ok(Received::Message(Message {
                join_ref: join_ref.map(Ref::string),
                ref_: None,
                topic,
                event,
                payload,
            }))
        }
        Some(KIND_REPLY) => {
            let mut reader = Reader::new(&data, 4)?;
            let join_ref = reader.opt_string("join_ref")?;
            let ref_ = reader.opt_string("ref")?;
            let topic = reader.string("topic")?;
            let status = reader.string("status")?;
            let response = Payload::Binary(data.slice(reader.offset..));
            Ok(Received::Reply(ReceivedReply {
                join_ref,
                ref_,
                topic,
                status,
                response,
            }))
        }
        Some(KIND_BROADCAST) => {
            let mut reader = Reader::new(&data, 2)?;
            let topic = reader.string("topic")?;
            let event = reader.string("event")?;
            let payload = Payload::Binary(data.slice(reader.offset..));
            Ok(Received::Message(Message {
                join_ref: None,
                ref_: None,
                topic,
                event,
                payload,
            }))
        }
        kind => Err(DecodeError::BadBinaryKind { kind }),
    }
}
