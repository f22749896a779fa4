//! The broker envelope decoder and chunk reassembly (`pubsub::internals::envelope::{open,
//! Reassembler}`), fed a sequence of broker messages the way a Redis or NATS receiver is.
//!
//! The input is a series of records `[advance: u8][len: u8][len bytes]`: the clock moves forward
//! `advance` seconds (so incomplete messages expire), then the message is handled. Checks: a
//! reassembled frame is never larger than the bytes received, and what the reassembler holds stays
//! within its documented budget.
#![no_main]

use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pubsub::internals::envelope::{Envelope, MAX_REASSEMBLY_BYTES, Reassembler, open};
use tokio::time::Instant;

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut reassembler = Reassembler::new();
    let mut received = 0usize;
    let mut rest = data;
    while let [advance, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (message, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_secs(u64::from(*advance));
        received += message.len();
        let Ok(envelope) = open(Bytes::copy_from_slice(message)) else {
            continue;
        };
        let frame = match envelope {
            Envelope::Whole { frame, .. } => frame,
            Envelope::Chunk {
                origin,
                id,
                index,
                count,
                part,
            } => match reassembler.push(origin, id, index, count, part, now) {
                Some(frame) => frame,
                None => continue,
            },
        };
        assert!(
            frame.len() <= received,
            "a frame larger than what was received"
        );
        assert!(reassembler.pending_bytes() <= MAX_REASSEMBLY_BYTES);
    }
});
