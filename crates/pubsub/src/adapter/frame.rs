//! The byte layout of a message travelling between nodes.
//!
//! `version: u8 = 1 | flags: u8 | [from.node: u64 BE, from.local: u64 BE if flags & 1] |
//! topic_len: u16 BE | topic | payload…`. The payload runs to the end of the frame, so it is passed
//! on as a zero-copy slice of what the broker handed over.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::mailbox::MailboxId;

const VERSION: u8 = 1;
const HAS_FROM: u8 = 1;

/// Why a frame from another node was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ended before its header did.
    #[error("frame truncated: {0} bytes is shorter than its header")]
    Truncated(usize),
    /// The frame was written by an incompatible version of this software.
    #[error("frame version {0} is not supported (this node speaks version {VERSION})")]
    Version(u8),
    /// The topic was not UTF-8.
    #[error("frame topic is not valid UTF-8")]
    Topic,
}

/// A frame taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Topic to deliver on.
    pub topic: Arc<str>,
    /// Sender to skip, for `broadcast_from`.
    pub from: Option<MailboxId>,
    /// The publisher's bytes.
    pub payload: Bytes,
}

/// Builds the frame for one message. Topics longer than 65535 bytes are a programming error and are
/// truncated to that length by the caller's contract (`PubSub` refuses them before encoding).
pub fn encode(topic: &str, from: Option<MailboxId>, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + 16 + topic.len() + payload.len());
    buf.put_u8(VERSION);
    buf.put_u8(if from.is_some() { HAS_FROM } else { 0 });
    if let Some(from) = from {
        buf.put_u64(from.node);
        buf.put_u64(from.local);
    }
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    buf.put_slice(payload);
    buf.freeze()
}

/// Takes a frame apart without copying the payload.
pub fn decode(frame: Bytes) -> Result<Decoded, FrameError> {
    let len = frame.len();
    let header = frame.get(..2).ok_or(FrameError::Truncated(len))?;
    if header[0] != VERSION {
        return Err(FrameError::Version(header[0]));
    }
    let mut at = 2;
    let from = if header[1] & HAS_FROM != 0 {
        let raw = frame.get(at..at + 16).ok_or(FrameError::Truncated(len))?;
        at += 16;
        let (node, local) = raw.split_at(8);
        Some(MailboxId {
            node: u64::from_be_bytes(node.try_into().map_err(|_| FrameError::Truncated(len))?),
            local: u64::from_be_bytes(local.try_into().map_err(|_| FrameError::Truncated(len))?),
        })
    } else {
        None
    };
    let topic_len = frame.get(at..at + 2).ok_or(FrameError::Truncated(len))?;
    let topic_len = u16::from_be_bytes([topic_len[0], topic_len[1]]) as usize;
    at += 2;
    let topic = frame
        .get(at..at + topic_len)
        .ok_or(FrameError::Truncated(len))?;
    let topic: Arc<str> = Arc::from(std::str::from_utf8(topic).map_err(|_| FrameError::Topic)?);
    let payload = frame.slice(at + topic_len..);
    Ok(Decoded {
        topic,
        from,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_sender() {
        let from = MailboxId { node: 7, local: 9 };
        for from in [None, Some(from)] {
            let frame = encode("room:lobby", from, b"{\"a\":1}");
            let decoded = decode(frame).expect("valid frame");
            assert_eq!(&*decoded.topic, "room:lobby");
            assert_eq!(decoded.from, from);
            assert_eq!(&decoded.payload[..], b"{\"a\":1}");
        }
    }

    #[test]
    fn refuses_every_truncation_and_foreign_versions() {
        let frame = encode("t", Some(MailboxId { node: 1, local: 2 }), b"");
        for cut in 0..frame.len() {
            assert!(decode(frame.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut other = frame.to_vec();
        other[0] = 9;
        assert_eq!(decode(Bytes::from(other)), Err(FrameError::Version(9)));
    }

    #[test]
    fn refuses_a_topic_that_is_not_utf8() {
        let frame = Bytes::from_static(&[1, 0, 0, 2, 0xff, 0xfe]);
        assert_eq!(decode(frame), Err(FrameError::Topic));
    }
}
