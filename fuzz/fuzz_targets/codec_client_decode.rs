//! What a client (the load tester, the integration tests' socket) decodes from a server: text and
//! binary frames under each serializer. The first byte picks the serializer and frame kind.
#![no_main]

use bytes::Bytes;
use channels_protocol::codec::client::{self, Received};
use channels_protocol::codec::{FrameKind, Payload, Serializer};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (serializer, kind) = match mode % 4 {
        0 => (Serializer::V1, FrameKind::Text),
        1 => (Serializer::V2, FrameKind::Text),
        2 => (Serializer::V2, FrameKind::Binary),
        _ => (Serializer::V1, FrameKind::Binary),
    };
    let frame = Bytes::copy_from_slice(rest);
    match client::decode(serializer, kind, frame) {
        Ok(Received::Reply(reply)) => {
            // A binary reply's response is the rest of the frame, never more than was received.
            if let Payload::Binary(bytes) = &reply.response {
                assert!(bytes.len() <= rest.len());
            }
        }
        Ok(Received::Message(msg)) => {
            if let Payload::Binary(bytes) = &msg.payload {
                assert!(bytes.len() <= rest.len());
            }
        }
        Err(_) => {}
    }
});
