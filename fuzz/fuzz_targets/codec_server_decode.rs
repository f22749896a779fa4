//! What a server decodes from a client: a WebSocket/LongPoll frame under each serializer, the
//! `vsn` query parameter, and V2-to-V1 conversion of a frame relayed by another node.
//!
//! The first byte picks the entry point; the rest is the input. A frame that decodes must survive
//! a re-encode (as phoenix.js would send it) and decode to the same fields.
#![no_main]

use bytes::Bytes;
use channels_protocol::codec::{Frame, FrameKind, Payload, Serializer, client, v2_to_v1};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let frame = Bytes::copy_from_slice(rest);
    match mode % 6 {
        0 => decode(Serializer::V1, FrameKind::Text, frame),
        1 => decode(Serializer::V2, FrameKind::Text, frame),
        2 => decode(Serializer::V2, FrameKind::Binary, frame),
        3 => decode(Serializer::V1, FrameKind::Binary, frame),
        4 => {
            if let Ok(vsn) = std::str::from_utf8(rest) {
                let _ = Serializer::from_vsn(Some(vsn));
            }
        }
        _ => {
            let kind = if mode & 0x80 == 0 {
                FrameKind::Text
            } else {
                FrameKind::Binary
            };
            let _ = v2_to_v1(&Frame { kind, data: frame });
        }
    }
});

fn decode(serializer: Serializer, kind: FrameKind, frame: Bytes) {
    let Ok(msg) = serializer.decode(kind, frame) else {
        return;
    };
    // Fields longer than a binary frame can carry cannot be re-encoded; that is an EncodeError.
    let Ok(again) = client::encode(serializer, &msg) else {
        return;
    };
    let back = match serializer.decode(again.kind, again.data) {
        Ok(back) => back,
        Err(error) => panic!("re-encoded {msg:?} does not decode: {error}"),
    };
    assert_eq!(back.join_ref, msg.join_ref);
    assert_eq!(back.ref_, msg.ref_);
    assert_eq!(back.topic, msg.topic);
    assert_eq!(back.event, msg.event);
    if let Payload::Binary(bytes) = &msg.payload {
        assert_eq!(back.payload, Payload::Binary(bytes.clone()));
    }
}
