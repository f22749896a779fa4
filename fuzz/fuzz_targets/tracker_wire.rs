//! The tracker's gossip decoder (`tracker::wire`): heartbeats, transfer requests and acks,
//! permdowns sent by other nodes over pubsub. A message that decodes must re-encode to bytes that
//! decode to the same message.
//!
//! Clouds are run-length encoded, so a few bytes may announce up to `wire::MAX_DOTS` (50 million)
//! dots, which takes seconds and hundreds of megabytes to expand: that bound is by design (see
//! docs/FUZZING.md), so the target decodes with a ceiling of [`MAX_DOTS`] instead, keeping every
//! other path fast enough to explore.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker::internals::wire;

/// The dot ceiling while fuzzing.
const MAX_DOTS: u64 = 100_000;

#[global_allocator]
static ALLOC: sneakers23_fuzz::CappedAlloc = sneakers23_fuzz::CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = wire::decode_with_max_dots(data, MAX_DOTS) else {
        return;
    };
    let bytes = wire::encode(&message);
    match wire::decode_with_max_dots(&bytes, MAX_DOTS) {
        Ok(again) => assert_eq!(again, message, "re-encoding changed the message"),
        Err(error) => panic!("re-encoded {message:?} does not decode: {error}"),
    }
});
