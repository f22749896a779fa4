//! The pubsub frame decoder (`pubsub::internals::frame::decode`): topic, sender and payload of a
//! message another node published. A frame that decodes must re-encode to one that decodes the
//! same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pubsub::internals::frame;

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = frame::decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    assert!(decoded.payload.len() + decoded.topic.len() <= data.len());
    let again = frame::encode(&decoded.topic, decoded.from, &decoded.payload);
    assert_eq!(frame::decode(again).as_ref(), Ok(&decoded));
});
