//! The server's metrics, as Phoenix's telemetry events would report them, rendered by a real
//! Prometheus recorder: connects by result, joins by route pattern and result, a `handle_in`
//! histogram by event, pushes and broadcasts, malformed frames; every series described.

mod common;

use std::time::Duration;

use channels::codec::{JsonObject, OutPayload};
use channels::server::EndpointConfig;
use common::{Client, start};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn what_the_server_does_is_counted_and_every_series_is_described() {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let server = start(EndpointConfig::default()).await;
    let mut client = Client::connect(&server).await;
    let join_ref = client.join("room:secret-topic-42").await;
    // A second join on the same route counts on the same (kept) counter.
    client.join("room:another").await;
    client
        .send(Some(&join_ref), "room:secret-topic-42", "echo", json!({}))
        .await;
    client.recv(LIMIT).await;
    client.send(None, "nowhere:1", "phx_join", json!({})).await;
    client.recv(LIMIT).await;
    client.send_raw("junk").await;
    let payload = OutPayload::Json(JsonObject::serialize(&json!({"x": 1})).expect("an object"));
    server
        .endpoint
        .broadcast("room:secret-topic-42", "news", &payload);
    client.recv(LIMIT).await;
    // The junk frame was read before the broadcast was answered; a heartbeat round trip orders
    // it for certain.
    let r = client.send(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(client.recv(LIMIT).await[1], json!(r));

    let text = handle.render();
    for expected in [
        r#"channels_socket_connects_total{result="ok"} 1"#,
        r#"channels_channel_joins_total{route="room:*",result="ok"} 2"#,
        r#"channels_channel_joins_total{route="unmatched",result="unmatched"} 1"#,
        r#"channels_handle_in_duration_seconds_count{event="echo"} 1"#,
        "channels_broadcasts_delivered_total 1",
        "channels_malformed_frames_total 1",
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    assert!(
        !text.contains("secret-topic-42"),
        "a topic leaked into a label:\n{text}"
    );
    let names: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|line| line.starts_with("channels_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| {
            ["_count", "_sum", "_bucket"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
        })
        .collect();
    assert!(!names.is_empty());
    for name in names {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP for {name}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}"
        );
    }
}
