//! Codec benchmarks: the three hot paths of a Channels server.
//!
//! * decoding a typical client push (every inbound message);
//! * encoding a reply (one per client message);
//! * encoding a broadcast (once per topic fan-out, then shared by every
//!   subscriber), plus deriving its V1 form from the V2 bytes.
//!
//! Run with `cargo bench -p phoenix-channels-protocol --bench codec`.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use channels_protocol::codec::{
    Broadcast, FrameKind, JsonObject, OutPayload, Reply, Serializer, v2_to_v1,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CLIENT_PUSH: &[u8] = br#"["3","17","room:lobby","new_msg",{"body":"hello there, how is everybody doing today?","client_id":"b6c1f9"}]"#;

const PRESENCE_DIFF: &str = r#"{"joins":{"user:42":{"metas":[{"phx_ref":"F5uR6cW1P7zA9QgB","online_at":"1700000000","page":"/products/air-max-90","cart_items":3}]}},"leaves":{}}"#;

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let frame = Bytes::from_static(CLIENT_PUSH);
    group.throughput(Throughput::Bytes(CLIENT_PUSH.len() as u64));
    group.bench_function("v2_text_client_push", |b| {
        b.iter(|| Serializer::V2.decode(FrameKind::Text, black_box(frame.clone())))
    });

    let mut binary = vec![0u8, 1, 2, 10, 6];
    binary.extend_from_slice(b"317room:lobbyupload");
    binary.extend_from_slice(&[7; 256]);
    let binary = Bytes::from(binary);
    group.bench_function("v2_binary_client_push", |b| {
        b.iter(|| Serializer::V2.decode(FrameKind::Binary, black_box(binary.clone())))
    });
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let empty = OutPayload::empty();
    group.bench_function("v2_reply_ok_empty", |b| {
        b.iter(|| {
            black_box(Reply {
                join_ref: Some("3".into()),
                ref_: Some("17".into()),
                topic: "room:lobby",
                status: "ok",
                response: &empty,
            })
            .encode(Serializer::V2)
        })
    });
    let response = OutPayload::Json(
        JsonObject::from_json(
            r#"{"cart":"SFMyNTY.g2gDawADAwIBbgYAAGjlz4sBYgABUYA.x","items":[3,2,1]}"#,
        )
        .unwrap_or_default(),
    );
    group.bench_function("v2_reply_with_response", |b| {
        b.iter(|| {
            black_box(Reply {
                join_ref: Some("3".into()),
                ref_: Some("17".into()),
                topic: "cart:b6c1f9",
                status: "ok",
                response: &response,
            })
            .encode(Serializer::V2)
        })
    });

    let diff = OutPayload::Json(JsonObject::from_json(PRESENCE_DIFF).unwrap_or_default());
    let broadcast = Broadcast {
        topic: "room:lobby",
        event: "presence_diff",
        payload: &diff,
    };
    group.throughput(Throughput::Bytes(PRESENCE_DIFF.len() as u64));
    group.bench_function("v2_broadcast_presence_diff", |b| {
        b.iter(|| black_box(broadcast).encode(Serializer::V2))
    });
    group.bench_function("v1_broadcast_presence_diff", |b| {
        b.iter(|| black_box(broadcast).encode(Serializer::V1))
    });
    if let Ok(v2) = broadcast.encode(Serializer::V2) {
        group.bench_function("v2_to_v1_presence_diff", |b| {
            b.iter(|| v2_to_v1(black_box(&v2)))
        });
    }
    let binary = OutPayload::Binary(Bytes::from(vec![7u8; 256]));
    group.bench_function("v2_binary_broadcast_256b", |b| {
        b.iter(|| {
            black_box(Broadcast {
                topic: "room:lobby",
                event: "frame",
                payload: &binary,
            })
            .encode(Serializer::V2)
        })
    });
    group.finish();
}

fn config() -> Criterion {
    // Short runs: the build machine has two cores shared by several people.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode
}
criterion_main!(benches);
