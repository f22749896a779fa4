//! The tracker's gossip decoder (`tracker::wire::decode`): heartbeats, transfer requests and acks,
//! permdowns sent by other nodes over pubsub. A message that decodes must re-encode to bytes that
//! decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracker::wire;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = wire::decode(data) else {
        return;
    };
    let bytes = wire::encode(&message);
    match wire::decode(&bytes) {
        Ok(again) => assert_eq!(again, message, "re-encoding changed the message"),
        Err(error) => panic!("re-encoded {message:?} does not decode: {error}"),
    }
});
