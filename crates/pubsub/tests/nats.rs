//! The NATS adapter against the NATS server of this machine (127.0.0.1:4222, or `NATS_ADDR`):
//! cross-node operations, chunked frames, and a node cut off from NATS by a proxy and healed.
//! Every test uses its own cluster name, so tests (and other users of the server) do not meet.

mod common;

fn addr() -> String {
    std::env::var("NATS_ADDR").unwrap_or_else(|_| "127.0.0.1:4222".to_owned())
}

fn base() -> String {
    format!("nats://{}", addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_broadcast_from_and_direct_cross_nodes_through_nats() {
    common::operations_cross_nodes(&base()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_keeps_publishing_and_reconnects() {
    common::broker_loss_is_survived(&base(), &addr()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_urls_are_checked() {
    common::urls_are_checked(&base());
    let local = pubsub::connect("a", Some("local")).expect("local");
    assert_eq!(local.adapter_status(), pubsub::AdapterStatus::Connected);
    assert!(pubsub::connect("a", None).is_ok());
}
