//! Broadcast fan-out: one `Endpoint::broadcast` to N local subscribers, each handed the same
//! encoded frame, then drained — the cost a topic with N joined clients pays per message, minus the
//! socket writes.
//!
//! Run with `cargo bench -p phoenix-channels-server --bench fanout`.

#![allow(missing_docs)] // criterion_group! generates undocumented functions.

use std::time::Duration;

use channels::codec::{JsonObject, OutPayload};
use channels::server::{Endpoint, EndpointConfig};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    let payload = OutPayload::Json(
        JsonObject::from_json(r#"{"product_id":1,"item_id":7,"level":"low"}"#).expect("object"),
    );
    let mut group = c.benchmark_group("broadcast_fanout");
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(20);
    for subscribers in [10_000usize, 100_000] {
        let endpoint = Endpoint::new(pubsub::PubSub::new("bench"), EndpointConfig::default());
        let pubsub = endpoint.pubsub().clone();
        let mut inboxes: Vec<_> = (0..subscribers)
            .map(|_| {
                let (mailbox, inbox) = pubsub.mailbox(16);
                pubsub.subscribe("product:1", &mailbox);
                (mailbox, inbox)
            })
            .collect();
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(format!("{subscribers}_subscribers"), |b| {
            b.iter_batched(
                || (),
                |()| {
                    endpoint.broadcast("product:1", "stock_change", &payload);
                    for (_, inbox) in &mut inboxes {
                        let delivered = inbox.try_recv();
                        assert!(matches!(delivered, Some(Ok(_))));
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
