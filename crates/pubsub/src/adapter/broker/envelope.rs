//! The envelope a frame travels in on the broker, and the reassembly of chunked frames.
//!
//! ```text
//! whole: version u8 = 1 | kind u8 = 0 | origin u64 BE | frame…
//! chunk: version u8 = 1 | kind u8 = 1 | origin u64 BE | message id u64 BE | index u32 BE | count u32 BE | part…
//! ```
//!
//! The origin is the sending node's incarnation, so that a node ignores its own broadcasts coming
//! back from the broker. A frame larger than one broker message may carry (`max_payload`) is split
//! into numbered chunks. Reassembly is bounded: a message whose chunks do not all arrive within
//! [`REASSEMBLY_TIMEOUT`] is forgotten, and at most [`MAX_REASSEMBLY_BYTES`] wait at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::Instant;

/// How long the chunks of one message may take to arrive before the message is forgotten.
pub const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of incomplete messages kept at once (pieces plus a small fixed cost per piece);
/// a chunk that would go beyond is dropped with the rest of its message.
pub const MAX_REASSEMBLY_BYTES: usize = 512 * 1024 * 1024;

/// Most chunks one message may have.
pub const MAX_CHUNKS: u32 = 1 << 16;

const VERSION: u8 = 1;
const WHOLE: u8 = 0;
const CHUNK: u8 = 1;
const WHOLE_HEADER: usize = 10;
const CHUNK_HEADER: usize = 26;

/// Why bytes from the broker were not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Shorter than its header.
    #[error("broker message truncated: {0} bytes")]
    Truncated(usize),
    /// Written by an incompatible version.
    #[error("broker envelope version {0} is not supported (this node speaks {VERSION})")]
    Version(u8),
    /// Unknown kind byte.
    #[error("broker envelope kind {0} is unknown")]
    Kind(u8),
    /// A chunk numbered outside its message, or a message of too many chunks.
    #[error("broker chunk {index} of {count} is out of range")]
    ChunkRange {
        /// Index given.
        index: u32,
        /// Count given.
        count: u32,
    },
}

/// A broker message taken apart.
#[derive(Debug, PartialEq, Eq)]
pub enum Envelope {
    /// A frame in one piece.
    Whole {
        /// Incarnation of the sending node.
        origin: u64,
        /// The frame.
        frame: Bytes,
    },
    /// One piece of a frame.
    Chunk {
        /// Incarnation of the sending node.
        origin: u64,
        /// Message id, unique per origin.
        id: u64,
        /// Position of this piece.
        index: u32,
        /// Number of pieces.
        count: u32,
        /// The piece.
        part: Bytes,
    },
}

impl Envelope {
    /// The sender's incarnation.
    pub fn origin(&self) -> u64 {
        match self {
            Envelope::Whole { origin, .. } | Envelope::Chunk { origin, .. } => *origin,
        }
    }
}

/// The broker messages carrying `frame` from `origin`: one when it fits in `max_payload` bytes,
/// otherwise chunks of message `id`.
pub fn seal(origin: u64, id: u64, frame: &[u8], max_payload: usize) -> Vec<Bytes> {
    if frame.len() + WHOLE_HEADER <= max_payload {
        let mut buf = BytesMut::with_capacity(WHOLE_HEADER + frame.len());
        buf.put_u8(VERSION);
        buf.put_u8(WHOLE);
        buf.put_u64(origin);
        buf.put_slice(frame);
        return vec![buf.freeze()];
    }
    let piece = max_payload.saturating_sub(CHUNK_HEADER).max(1);
    let count = frame.len().div_ceil(piece);
    frame
        .chunks(piece)
        .enumerate()
        .map(|(index, part)| {
            let mut buf = BytesMut::with_capacity(CHUNK_HEADER + part.len());
            buf.put_u8(VERSION);
            buf.put_u8(CHUNK);
            buf.put_u64(origin);
            buf.put_u64(id);
            buf.put_u32(index as u32);
            buf.put_u32(count as u32);
            buf.put_slice(part);
            buf.freeze()
        })
        .collect()
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Takes a broker message apart without copying its payload.
pub fn open(message: Bytes) -> Result<Envelope, EnvelopeError> {
    let len = message.len();
    let header = message
        .get(..WHOLE_HEADER)
        .ok_or(EnvelopeError::Truncated(len))?;
    if header[0] != VERSION {
        return Err(EnvelopeError::Version(header[0]));
    }
    let origin = be_u64(&header[2..10]);
    match header[1] {
        WHOLE => Ok(Envelope::Whole {
            origin,
            frame: message.slice(WHOLE_HEADER..),
        }),
        CHUNK => {
            let chunk = message
                .get(WHOLE_HEADER..CHUNK_HEADER)
                .ok_or(EnvelopeError::Truncated(len))?;
            let id = be_u64(&chunk[0..8]);
            let index = be_u32(&chunk[8..12]);
            let count = be_u32(&chunk[12..16]);
            if count == 0 || index >= count || count > MAX_CHUNKS {
                return Err(EnvelopeError::ChunkRange { index, count });
            }
            Ok(Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part: message.slice(CHUNK_HEADER..),
            })
        }
        kind => Err(EnvelopeError::Kind(kind)),
    }
}

/// What one stored piece costs beyond its bytes (its map entry), charged to the budget so that
/// empty pieces are not free.
const PIECE_OVERHEAD: usize = 64;

struct Partial {
    /// The pieces received so far, by index. Filled as they come (no table sized by the announced
    /// count), so a first chunk announcing [`MAX_CHUNKS`] pieces costs no more than any other.
    parts: BTreeMap<u32, Bytes>,
    count: u32,
    /// What this message is charged: its pieces plus [`PIECE_OVERHEAD`] each.
    bytes: usize,
    started: Instant,
}

/// Puts chunked messages back together (one per receiving task; not shared).
pub struct Reassembler {
    partial: HashMap<(u64, u64), Partial>,
    bytes: usize,
    budget: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::with_budget(MAX_REASSEMBLY_BYTES)
    }
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_budget(budget: usize) -> Self {
        Reassembler {
            partial: HashMap::new(),
            bytes: 0,
            budget,
        }
    }

    /// Bytes held for incomplete messages (their pieces plus a small fixed cost per piece); never
    /// more than [`MAX_REASSEMBLY_BYTES`].
    pub fn pending_bytes(&self) -> usize {
        self.bytes
    }

    /// Adds one chunk received at `now`; returns the whole frame once its last chunk arrived.
    /// Incomplete messages older than [`REASSEMBLY_TIMEOUT`] are forgotten on the way. A chunk
    /// that would take the pending bytes over [`MAX_REASSEMBLY_BYTES`] is dropped together with
    /// the rest of its message, which could never complete.
    pub fn push(
        &mut self,
        origin: u64,
        id: u64,
        index: u32,
        count: u32,
        part: Bytes,
        now: Instant,
    ) -> Option<Bytes> {
        self.expire(now);
        if count == 1 {
            return Some(part);
        }
        if index >= count {
            return None;
        }
        let key = (origin, id);
        let conflicting = self
            .partial
            .get(&key)
            .is_some_and(|entry| entry.count != count || entry.parts.contains_key(&index));
        if conflicting {
            return None;
        }
        let cost = part.len() + PIECE_OVERHEAD;
        if self.bytes + cost > self.budget {
            if let Some(dropped) = self.partial.remove(&key) {
                self.bytes -= dropped.bytes;
            }
            tracing::warn!(
                origin,
                id,
                pending_bytes = self.bytes,
                "too many incomplete chunked messages from other nodes; dropping one"
            );
            return None;
        }
        let entry = self.partial.entry(key).or_insert_with(|| Partial {
            parts: BTreeMap::new(),
            count,
            bytes: 0,
            started: now,
        });
        entry.parts.insert(index, part);
        entry.bytes += cost;
        self.bytes += cost;
        if entry.parts.len() < count as usize {
            return None;
        }
        let done = self.partial.remove(&key)?;
        self.bytes -= done.bytes;
        let mut frame = BytesMut::with_capacity(done.parts.values().map(Bytes::len).sum());
        for part in done.parts.into_values() {
            frame.put_slice(&part);
        }
        Some(frame.freeze())
    }

    fn expire(&mut self, now: Instant) {
        if self.partial.is_empty() {
            return;
        }
        let before = self.partial.len();
        let mut freed = 0;
        self.partial.retain(|_, p| {
            let keep = now.duration_since(p.started) < REASSEMBLY_TIMEOUT;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        if self.partial.len() < before {
            tracing::warn!(
                lost = before - self.partial.len(),
                "chunked messages from other nodes never completed; forgotten"
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_chunks_announcing_many_pieces_are_charged_to_the_budget() {
        // Each 26-byte chunk used to allocate a table of MAX_CHUNKS slots (2 MiB) that the budget
        // did not count: a few hundred of them held gigabytes.
        let budget = 10 * PIECE_OVERHEAD;
        let mut r = Reassembler::with_budget(budget);
        let now = Instant::now();
        for id in 0..1000 {
            assert!(r.push(1, id, 0, MAX_CHUNKS, Bytes::new(), now).is_none());
        }
        assert_eq!(r.partial.len(), 10);
        assert_eq!(r.pending_bytes(), budget);
        // A message outgrowing the budget is dropped whole and its bytes given back.
        let mut r = Reassembler::with_budget(3 * PIECE_OVERHEAD + 300);
        let piece = Bytes::from(vec![0u8; 100]);
        for index in 0..3 {
            assert!(r.push(1, 7, index, 4, piece.clone(), now).is_none());
        }
        assert_eq!(r.pending_bytes(), 3 * PIECE_OVERHEAD + 300);
        assert!(r.push(1, 7, 3, 4, piece, now).is_none());
        assert_eq!(r.pending_bytes(), 0);
        assert!(r.partial.is_empty());
    }

    #[test]
    fn chunks_out_of_their_message_are_ignored() {
        let mut r = Reassembler::new();
        let now = Instant::now();
        assert!(r.push(1, 1, 5, 2, Bytes::from_static(b"x"), now).is_none());
        assert!(r.push(1, 1, 0, 2, Bytes::from_static(b"a"), now).is_none());
        // Another count for the same message, or a duplicate, is ignored.
        assert!(r.push(1, 1, 1, 3, Bytes::from_static(b"z"), now).is_none());
        assert!(r.push(1, 1, 0, 2, Bytes::from_static(b"z"), now).is_none());
        assert_eq!(
            r.push(1, 1, 1, 2, Bytes::from_static(b"b"), now),
            Some(Bytes::from_static(b"ab"))
        );
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn small_frames_travel_whole_and_big_ones_in_chunks_that_reassemble() {
        let small = seal(7, 1, b"hello", 1024);
        assert_eq!(small.len(), 1);
        assert_eq!(
            open(small[0].clone()).unwrap(),
            Envelope::Whole {
                origin: 7,
                frame: Bytes::from_static(b"hello")
            }
        );
        let big: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let pieces = seal(7, 42, &big, 1024);
        assert_eq!(pieces.len(), big.len().div_ceil(1024 - CHUNK_HEADER));
        assert!(pieces.iter().all(|p| p.len() <= 1024));
        let mut r = Reassembler::new();
        let now = Instant::now();
        let mut out = None;
        // Out of order and with a duplicate.
        let mut order: Vec<usize> = (0..pieces.len()).rev().collect();
        order.insert(1, pieces.len() - 1);
        for i in order {
            let Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part,
            } = open(pieces[i].clone()).unwrap()
            else {
                panic!("chunk expected");
            };
            if let Some(frame) = r.push(origin, id, index, count, part, now) {
                assert!(out.is_none(), "delivered once");
                out = Some(frame);
            }
        }
        assert_eq!(out.unwrap(), Bytes::from(big));
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn incomplete_messages_expire() {
        let pieces = seal(1, 9, &[0u8; 5000], 1024);
        let mut r = Reassembler::new();
        let t0 = Instant::now();
        let Envelope::Chunk {
            origin,
            id,
            index,
            count,
            part,
        } = open(pieces[0].clone()).unwrap()
        else {
            panic!("chunk expected");
        };
        assert!(r.push(origin, id, index, count, part, t0).is_none());
        assert!(r.pending_bytes() > 0);
        let later = t0 + REASSEMBLY_TIMEOUT + Duration::from_secs(1);
        assert_eq!(
            r.push(2, 1, 0, 1, Bytes::from_static(b"x"), later),
            Some(Bytes::from_static(b"x"))
        );
        assert_eq!(r.pending_bytes(), 0);
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let whole = seal(1, 1, b"x", 1024).remove(0);
        for cut in 0..WHOLE_HEADER {
            assert!(open(whole.slice(..cut)).is_err());
        }
        let mut other = whole.to_vec();
        other[0] = 2;
        assert_eq!(open(Bytes::from(other)), Err(EnvelopeError::Version(2)));
        let mut bad = seal(1, 1, &[0u8; 3000], 1024).remove(0).to_vec();
        bad[22..26].copy_from_slice(&0u32.to_be_bytes());
        assert!(matches!(
            open(Bytes::from(bad)),
            Err(EnvelopeError::ChunkRange { .. })
        ));
    }
}
