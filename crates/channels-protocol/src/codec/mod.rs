//! The Phoenix Channels wire format: turning WebSocket/LongPoll frames into
//! [`Message`]s and server events into [`Frame`]s.
//!
//! # Concepts
//!
//! A browser socket multiplexes many *channels* (one per topic) over one
//! connection. Every frame names its `topic` and `event`, carries a `payload`,
//! and two correlation ids chosen by the client:
//!
//! * `ref` identifies one client message; the server echoes it in the matching
//!   `phx_reply`. Server pushes and broadcasts carry no ref.
//! * `join_ref` is the `ref` of the `phx_join` that opened the channel. The
//!   server echoes it on everything it sends for that channel, so that a client
//!   which re-joined can drop frames addressed to its previous incarnation.
//!   Broadcasts are encoded once for every subscriber and therefore carry none.
//!
//! How these five fields are laid out depends on the [`Serializer`], chosen per
//! connection from the `vsn` query parameter ([`Serializer::from_vsn`]):
//!
//! | Serializer | Text frame | Binary frame |
//! |---|---|---|
//! | [`Serializer::V1`] (`vsn` absent or `1.0.x`) | `{"topic":..,"event":..,"payload":..,"ref":..}` | the same JSON, inbound only (Phoenix's V1 serializer ignores the opcode) |
//! | [`Serializer::V2`] (`vsn=2.0.x`, phoenix.js default) | `[join_ref, ref, topic, event, payload]` | kind byte + one-byte lengths + strings + raw payload |
//!
//! # Inbound and outbound are asymmetric
//!
//! Clients may send any JSON value as a payload, so an inbound [`Message`]
//! holds a [`Payload`] (`serde_json::Value` or raw bytes). The server, like
//! Phoenix, only ever sends JSON *objects*; an [`OutPayload`] therefore holds a
//! [`JsonObject`]: JSON text that was checked to be an object once, when it was
//! built, and is copied verbatim into every frame afterwards. Reusing the same
//! [`JsonObject`] (it is a cheaply clonable [`Bytes`]) avoids serializing a
//! payload more than once.
//!
//! Outbound events are [`Reply`], [`Push`] and [`Broadcast`]; each one encodes
//! into a [`Frame`]: a [`FrameKind`] (text or binary opcode) and the frame's
//! bytes. A binary [`OutPayload`] produces a binary frame (V2 only).
//!
//! # Fastlane
//!
//! A broadcast to a topic reaches every subscriber with identical bytes, so it
//! should be encoded once per serializer and the resulting [`Frame`] cloned
//! (a reference-count increment) into each subscriber's queue. Nodes may carry
//! the V2 encoding between them and derive the V1 form lazily with
//! [`v2_to_v1`].
//!
//! ```
//! use channels_protocol::codec::{Broadcast, FrameKind, JsonObject, OutPayload, Serializer};
//!
//! let payload = OutPayload::Json(JsonObject::from_json(r#"{"body":"hi"}"#)?);
//! let frame = Broadcast { topic: "room:lobby", event: "new_msg", payload: &payload }
//!     .encode(Serializer::V2)?;
//! assert_eq!(frame.kind, FrameKind::Text);
//! assert_eq!(&frame.data[..], br#"[null,null,"room:lobby","new_msg",{"body":"hi"}]"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Decoding never panics: any malformed input yields a [`DecodeError`] saying
//! what is wrong. Frame size limits are left to the transport (WebSocket
//! `max_message_size`, LongPoll body limits), which sees the bytes first.

mod binary;
pub mod client;
mod convert;
mod error;
mod json;
mod payload;
mod refs;
mod v1;
mod v2;
mod vsn;

use bytes::Bytes;

pub use convert::v2_to_v1;
pub use error::{DecodeError, EncodeError, VsnError};
pub use payload::{JsonObject, OutPayload, Payload};
pub use refs::{Ref, RefStr};

/// Topic of socket-level messages (heartbeats), which no channel handles.
pub const PHOENIX_TOPIC: &str = "phoenix";
/// Event a client sends on [`PHOENIX_TOPIC`] to keep the connection alive.
pub const HEARTBEAT: &str = "heartbeat";
/// Event a client sends to join a topic; its `ref` becomes the `join_ref`.
pub const PHX_JOIN: &str = "phx_join";
/// Event a client sends to leave a topic.
pub const PHX_LEAVE: &str = "phx_leave";
/// Event of every server reply; the payload is `{"status":..,"response":..}`.
pub const PHX_REPLY: &str = "phx_reply";
/// Event telling the client a channel ended gracefully (it will not rejoin).
pub const PHX_CLOSE: &str = "phx_close";
/// Event telling the client a channel crashed (it rejoins with backoff).
pub const PHX_ERROR: &str = "phx_error";

/// The longest join_ref, ref, topic, event or status a binary frame can carry:
/// each length is a single byte.
pub const MAX_BINARY_FIELD_LEN: usize = 255;

/// Which wire format a connection speaks, negotiated once at connect time.
///
/// The choice comes from the `vsn` query parameter; see [`Serializer::from_vsn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// Legacy JSON objects (`vsn` absent or `~> 1.0.0`); no `join_ref` on
    /// output and no binary frames.
    V1,
    /// JSON arrays plus binary frames (`vsn` `~> 2.0.0`); what phoenix.js uses.
    V2,
}

impl Serializer {
    /// Chooses the serializer for a connection from its `vsn` query parameter,
    /// the way Phoenix does: an absent `vsn` means `"1.0.0"`; the value is
    /// parsed as a semantic version and must match `~> 1.0.0` (V1) or
    /// `~> 2.0.0` (V2).
    ///
    /// An error should be answered with HTTP 403, as Phoenix does.
    ///
    /// ```
    /// use channels_protocol::codec::Serializer;
    /// assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
    /// assert_eq!(Serializer::from_vsn(Some("2.0.0")), Ok(Serializer::V2));
    /// assert!(Serializer::from_vsn(Some("3.0.0")).is_err());
    /// ```
    pub fn from_vsn(vsn: Option<&str>) -> Result<Self, VsnError> {
        vsn::negotiate(vsn.unwrap_or("1.0.0"))
    }

    /// The canonical `vsn` value of this serializer (`"1.0.0"` or `"2.0.0"`),
    /// e.g. for clients and logs.
    pub fn vsn(self) -> &'static str {
        match self {
            Serializer::V1 => "1.0.0",
            Serializer::V2 => "2.0.0",
        }
    }

    /// Whether this serializer can carry binary payloads (only V2 can).
    pub fn supports_binary(self) -> bool {
        self == Serializer::V2
    }

    /// Decodes one frame received from a client.
    ///
    /// `data` is the whole frame: a text frame's UTF-8 bytes or a binary
    /// frame's bytes. A binary payload is returned as a slice of `data`
    /// without copying.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use channels_protocol::codec::{FrameKind, Payload, Serializer};
    ///
    /// let frame = Bytes::from_static(br#"["3","4","room:lobby","new_msg",{"body":"hi"}]"#);
    /// let msg = Serializer::V2.decode(FrameKind::Text, frame)?;
    /// assert_eq!(msg.join_ref.as_deref(), Some("3"));
    /// assert_eq!(msg.ref_.as_deref(), Some("4"));
    /// assert_eq!(msg.event, "new_msg");
    /// assert_eq!(msg.payload, Payload::Json(serde_json::json!({"body": "hi"})));
    /// # Ok::<(), channels_protocol::codec::DecodeError>(())
    /// ```
    pub fn decode(self, kind: FrameKind, data: Bytes) -> Result<Message, DecodeError> {
        match (self, kind) {
            (Serializer::V1, FrameKind::Text) => v1::decode(&data),
            (Serializer::V2, FrameKind::Text) => v2::decode(&data),
            (Serializer::V2, FrameKind::Binary) => binary::decode_client_push(data),
            // Phoenix's V1 serializer decodes any frame as JSON text, whatever its opcode.
            (Serializer::V1, FrameKind::Binary) => v1::decode(&data),
        }
    }

    /// Encodes the frame answering a client heartbeat:
    /// `[null, ref, "phoenix", "phx_reply", {"status":"ok","response":{}}]`.
    pub fn heartbeat_reply(self, ref_: Option<RefStr<'_>>) -> Frame {
        self.text_frame(None, ref_, PHOENIX_TOPIC, PHX_REPLY, REPLY_OK_EMPTY)
    }

    /// Encodes the `phx_close` frame sent when a channel ends gracefully
    /// (leave, duplicate join, normal stop): `[join_ref, join_ref, topic,
    /// "phx_close", {}]`. The client will not rejoin.
    pub fn close(self, join_ref: Option<RefStr<'_>>, topic: &str) -> Frame {
        self.text_frame(join_ref, join_ref, topic, PHX_CLOSE, b"{}")
    }

    /// Encodes the `phx_error` frame sent when a channel crashed:
    /// `[join_ref, join_ref, topic, "phx_error", {"reason":"channel_crash"}]`.
    /// The client rejoins with backoff.
    pub fn channel_error(self, join_ref: Option<RefStr<'_>>, topic: &str) -> Frame {
        self.text_frame(
            join_ref,
            join_ref,
            topic,
            PHX_ERROR,
            br#"{"reason":"channel_crash"}"#,
        )
    }

    /// Encodes a JSON frame whose payload is known-valid JSON object text.
    fn text_frame(
        self,
        join_ref: Option<RefStr<'_>>,
        ref_: Option<RefStr<'_>>,
        topic: &str,
        event: &str,
        payload: &[u8],
    ) -> Frame {
        let fields = json::Fields {
            join_ref,
            ref_,
            topic,
            event,
        };
        let data = match self {
            Serializer::V1 => {
                v1::encode(&fields, payload.len(), |out| out.extend_from_slice(payload))
            }
            Serializer::V2 => {
                v2::encode(&fields, payload.len(), |out| out.extend_from_slice(payload))
            }
        };
        Frame::text(data)
    }
}

/// The payload of a reply meaning "ok, nothing to say".
const REPLY_OK_EMPTY: &[u8] = br#"{"status":"ok","response":{}}"#;

/// A message received from a client, whatever serializer carried it.
///
/// `join_ref` and `ref_` are `None` when the client sent `null` (or, in a
/// binary frame, an empty string). phoenix.js always sends strings; other
/// clients send numbers, which are kept as numbers ([`Ref`]) so that replies
/// echo the very JSON value the client sent, as Phoenix does.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The `ref` of the join that opened the channel this message is for.
    pub join_ref: Option<Ref>,
    /// This message's own id; replies echo it.
    pub ref_: Option<Ref>,
    /// The channel topic, e.g. `"room:lobby"`, or `"phoenix"` for heartbeats.
    pub topic: String,
    /// The event name, e.g. `"phx_join"` or an application event.
    pub event: String,
    /// What the client sent along.
    pub payload: Payload,
}

/// Whether a [`Frame`] must be sent with the WebSocket text or binary opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// UTF-8 JSON text.
    Text,
    /// A V2 binary frame.
    Binary,
}

/// An encoded frame, ready to be written unchanged to any number of sockets.
///
/// Cloning is cheap (the bytes are reference counted), which is what makes
/// fastlane broadcasts encode-once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The opcode to send `data` with.
    pub kind: FrameKind,
    /// The frame's bytes; valid UTF-8 whenever `kind` is [`FrameKind::Text`].
    pub data: Bytes,
}

impl Frame {
    fn text(data: Vec<u8>) -> Frame {
        Frame {
            kind: FrameKind::Text,
            data: Bytes::from(data),
        }
    }

    fn binary(data: Vec<u8>) -> Frame {
        Frame {
            kind: FrameKind::Binary,
            data: Bytes::from(data),
        }
    }

    /// The frame as text, for transports that need a string (LongPoll
    /// messages, WebSocket text messages). `None` for binary frames.
    pub fn as_text(&self) -> Option<&str> {
        match self.kind {
            FrameKind::Text => std::str::from_utf8(&self.data).ok(),
            FrameKind::Binary => None,
        }
    }
}

/// A server reply to one client message (`phx_reply`), e.g. the result of a
/// join or of a `handle_in` returning `{:reply, ...}`.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The channel's join_ref (`None` for socket-level replies).
    pub join_ref: Option<RefStr<'a>>,
    /// The `ref` of the message being answered.
    pub ref_: Option<RefStr<'a>>,
    /// The topic of the message being answered.
    pub topic: &'a str,
    /// The outcome, conventionally `"ok"` or `"error"`.
    pub status: &'a str,
    /// The response body: a JSON object or binary data.
    pub response: &'a OutPayload,
}

impl Reply<'_> {
    /// Encodes the reply: V2 text
    /// `[join_ref, ref, topic, "phx_reply", {"status":status,"response":response}]`,
    /// V2 binary kind 1 when `response` is binary, V1 the equivalent object.
    ///
    /// Fails if the response is binary and the serializer is V1, or if a
    /// binary frame's field exceeds [`MAX_BINARY_FIELD_LEN`] bytes.
    pub fn encode(&self, serializer: Serializer) -> Result<Frame, EncodeError> {
        let fields = json::Fields {
            join_ref: self.join_ref,
            ref_: self.ref_,
            topic: self.topic,
            event: PHX_REPLY,
        };
        let write_payload = |out: &mut Vec<u8>| {
            out.extend_from_slice(br#"{"status":"#);
            json::write_str(out, self.status);
            out.extend_from_slice(br#","response":"#);
            if let OutPayload::Json(response) = self.response {
                out.extend_from_slice(response.as_bytes());
            }
            out.push(b'}');
        };
        let payload_len = self.status.len() + self.response.len() + 24;
        match (serializer, self.response) {
            (Serializer::V1, OutPayload::Json(_)) => {
                Ok(Frame::text(v1::encode(&fields, payload_len, write_payload)))
            }
            (Serializer::V2, OutPayload::Json(_)) => {
                Ok(Frame::text(v2::encode(&fields, payload_len, write_payload)))
            }
            (Serializer::V2, OutPayload::Binary(bytes)) => binary::encode_reply(self, bytes),
            (Serializer::V1, OutPayload::Binary(_)) => Err(EncodeError::BinaryNotSupported),
        }
    }
}

/// A server push to one client on one of its channels (Phoenix's `push/3`),
/// including pushes built by intercepted broadcasts.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    /// The channel's join_ref.
    pub join_ref: Option<RefStr<'a>>,
    /// The channel topic.
    pub topic: &'a str,
    /// The event name.
    pub event: &'a str,
    /// A JSON object or binary data.
    pub payload: &'a OutPayload,
}

impl Push<'_> {
    /// Encodes the push: V2 text `[join_ref, null, topic, event, payload]`,
    /// V2 binary kind 0 (which has no ref field) when the payload is binary,
    /// V1 the equivalent object with `"ref":null`.
    pub fn encode(&self, serializer: Serializer) -> Result<Frame, EncodeError> {
        let fields = json::Fields {
            join_ref: self.join_ref,
            ref_: None,
            topic: self.topic,
            event: self.event,
        };
        encode_json_or_binary(serializer, &fields, self.payload, |bytes| {
            binary::encode_push(self, bytes)
        })
    }
}

/// A message for every subscriber of a topic, encoded once and shared
/// (fastlane); it carries neither join_ref nor ref.
#[derive(Debug, Clone, Copy)]
pub struct Broadcast<'a> {
    /// The topic broadcast to.
    pub topic: &'a str,
    /// The event name.
    pub event: &'a str,
    /// A JSON object or binary data.
    pub payload: &'a OutPayload,
}

impl Broadcast<'_> {
    /// Encodes the broadcast: V2 text `[null, null, topic, event, payload]`,
    /// V2 binary kind 2 when the payload is binary, V1 the equivalent object
    /// with `"ref":null`.
    pub fn encode(&self, serializer: Serializer) -> Result<Frame, EncodeError> {
        let fields = json::Fields {
            join_ref: None,
            ref_: None,
            topic: self.topic,
            event: self.event,
        };
        encode_json_or_binary(serializer, &fields, self.payload, |bytes| {
            binary::encode_broadcast(self, bytes)
        })
    }
}

fn encode_json_or_binary(
    serializer: Serializer,
    fields: &json::Fields<'_>,
    payload: &OutPayload,
    binary: impl FnOnce(&Bytes) -> Result<Frame, EncodeError>,
) -> Result<Frame, EncodeError> {
    match (serializer, payload) {
        (Serializer::V1, OutPayload::Json(object)) => {
            Ok(Frame::text(v1::encode(fields, object.len(), |out| {
                out.extend_from_slice(object.as_bytes())
            })))
        }
        (Serializer::V2, OutPayload::Json(object)) => {
            Ok(Frame::text(v2::encode(fields, object.len(), |out| {
                out.extend_from_slice(object.as_bytes())
            })))
        }
        (Serializer::V2, OutPayload::Binary(bytes)) => binary(bytes),
        (Serializer::V1, OutPayload::Binary(_)) => Err(EncodeError::BinaryNotSupported),
    }
}
