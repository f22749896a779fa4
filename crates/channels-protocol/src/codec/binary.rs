//! V2 binary frames.
//!
//! A kind byte, one length byte per string field, the strings, then the raw
//! payload up to the end of the frame. The layouts differ by direction and
//! kind (note that a server push has no ref field):
//!
//! | kind | direction | header |
//! |---|---|---|
//! | 0 push | client -> server | `0, join_ref_len, ref_len, topic_len, event_len` |
//! | 0 push | server -> client | `0, join_ref_len, topic_len, event_len` |
//! | 1 reply | server -> client | `1, join_ref_len, ref_len, topic_len, status_len` |
//! | 2 broadcast | server -> client | `2, topic_len, event_len` |
//!
//! A missing join_ref or ref is written with length 0, and a length-0 field
//! is read back as `None`.

use bytes::Bytes;

use super::refs::{Ref, RefStr};
use super::{
    Broadcast, DecodeError, EncodeError, Frame, MAX_BINARY_FIELD_LEN, Message, Payload, Push, Reply,
};

pub(crate) const KIND_PUSH: u8 = 0;
pub(crate) const KIND_REPLY: u8 = 1;
pub(crate) const KIND_BROADCAST: u8 = 2;

/// Decodes the only binary frame a client sends: a push (kind 0).
pub(crate) fn decode_client_push(data: Bytes) -> Result<Message, DecodeError> {
    match data.first() {
        Some(&KIND_PUSH) => {}
        kind => {
            return Err(DecodeError::BadBinaryKind {
                kind: kind.copied(),
            });
        }
    }
    let mut reader = Reader::new(&data, 4)?;
    let join_ref = reader.opt_string("join_ref")?;
    let ref_ = reader.opt_string("ref")?;
    let topic = reader.string("topic")?;
    let event = reader.string("event")?;
    let payload = data.slice(reader.offset..);
    Ok(Message {
        join_ref: join_ref.map(Ref::string),
        ref_: ref_.map(Ref::string),
        topic,
        event,
        payload: Payload::Binary(payload),
    })
}

/// Reads the length-prefixed string fields of a binary frame.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    /// Lengths of the string fields, in order, from the header.
    lengths: &'a [u8],
    next_len: usize,
    /// Where the next string starts.
    pub(crate) offset: usize,
}

impl<'a> Reader<'a> {
    /// Validates that the frame holds a kind byte, `fields` length bytes and
    /// the strings they announce.
    pub(crate) fn new(data: &'a [u8], fields: usize) -> Result<Self, DecodeError> {
        let header = 1 + fields;
        let lengths = data.get(1..header).ok_or(DecodeError::Truncated {
            needed: header,
            len: data.len(),
        })?;
        let needed = header + lengths.iter().map(|&l| usize::from(l)).sum::<usize>();
        if data.len() < needed {
            return Err(DecodeError::Truncated {
                needed,
                len: data.len(),
            });
        }
        Ok(Reader {
            data,
            lengths,
            next_len: 0,
            offset: header,
        })
    }

    fn next_bytes(&mut self) -> &'a [u8] {
        let len = self
            .lengths
            .get(self.next_len)
            .map_or(0, |&l| usize::from(l));
        self.next_len += 1;
        let start = self.offset;
        self.offset += len;
        // In bounds: `new` checked the sum of all lengths against the frame.
        self.data.get(start..self.offset).unwrap_or_default()
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        std::str::from_utf8(self.next_bytes())
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { field })
    }

    pub(crate) fn opt_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        let s = self.string(field)?;
        Ok((!s.is_empty()).then_some(s))
    }
}

/// Checks a field fits a one-byte length and returns that byte.
fn field_len(field: &'static str, value: &str) -> Result<u8, EncodeError> {
    // MAX_BINARY_FIELD_LEN is u8::MAX: exactly what fits a length byte.
    debug_assert_eq!(MAX_BINARY_FIELD_LEN, usize::from(u8::MAX));
    u8::try_from(value.len()).map_err(|_| EncodeError::FieldTooLong {
        field,
        len: value.len(),
    })
}

/// Builds a frame from a kind byte, string fields and the payload.
fn build(kind: u8, fields: &[(&'static str, &str)], payload: &[u8]) -> Result<Frame, EncodeError> {
    let strings: usize = fields.iter().map(|(_, s)| s.len()).sum();
    let mut out = Vec::with_capacity(1 + fields.len() + strings + payload.len());
    out.push(kind);
    for (field, value) in fields {
        out.push(field_len(field, value)?);
    }
    for (_, value) in fields {
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(payload);
    Ok(Frame::binary(out))
}

pub(crate) fn encode_push(push: &Push<'_>, payload: &[u8]) -> Result<Frame, EncodeError> {
    build(
        KIND_PUSH,
        &[
            ("join_ref", push.join_ref.map_or("", RefStr::as_str)),
            ("topic", push.topic),
            ("event", push.event),
        ],
        payload,
    )
}

pub(crate) fn encode_reply(reply: &Reply<'_>, payload: &[u8]) -> Result<Frame, EncodeError> {
    build(
        KIND_REPLY,
        &[
            ("join_ref", reply.join_ref.map_or("", RefStr::as_str)),
            ("ref", reply.ref_.map_or("", RefStr::as_str)),
            ("topic", reply.topic),
            ("status", reply.status),
        ],
        payload,
    )
}

pub(crate) fn encode_broadcast(
    broadcast: &Broadcast<'_>,
    payload: &[u8],
) -> Result<Frame, EncodeError> {
    build(
        KIND_BROADCAST,
        &[("topic", broadcast.topic), ("event", broadcast.event)],
        payload,
    )
}

/// Encodes a client push (kind 0 with a ref field), for client-side code.
pub(crate) fn encode_client_push(msg: &Message, payload: &[u8]) -> Result<Frame, EncodeError> {
    build(
        KIND_PUSH,
        &[
            ("join_ref", msg.join_ref.as_deref().unwrap_or("")),
            ("ref", msg.ref_.as_deref().unwrap_or("")),
            ("topic", &msg.topic),
            ("event", &msg.event),
        ],
        payload,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_lengths_past_the_end() {
        // Header announces a 9-byte topic but only 3 bytes follow.
        let frame = [0u8, 0, 0, 9, 1, b'a', b'b', b'c'];
        match decode_client_push(Bytes::copy_from_slice(&frame)) {
            Err(DecodeError::Truncated { needed: 15, len: 8 }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn field_len_accepts_255_and_refuses_256() {
        assert_eq!(field_len("topic", &"t".repeat(255)).unwrap(), 255);
        assert!(matches!(
            field_len("topic", &"t".repeat(256)),
            Err(EncodeError::FieldTooLong {
                field: "topic",
                len: 256
            })
        ));
    }
}
