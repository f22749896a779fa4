//! Operations endpoints: `GET /health` and `GET /metrics`.
//!
//! `/health` answers `200` with `{"status":"ok",…}` when the database answers a trivial query
//! and accepts a write (one row of `health_probe` rewritten; the SQLite file must still be the
//! one the node opened), `503` with `"status":"degraded"` otherwise (pages keep being served from the cache, but
//! purchases and releases fail), and reports the pubsub adapter's state and this node's name.
//! While the pubsub broker is unreachable it answers `200` with `"status":"degraded"`: the node
//! serves its own clients, but they miss what happens on other nodes. The `cluster` object tells
//! the adapter (`local`, `redis`, `nats`), its status and traffic, and the other nodes the
//! CartTracker knows with their status (`up`/`down`).
//!
//! `/metrics` is the Prometheus text of every counter recorded in the process: the channels
//! server's `channels_*` (connections, joins, frames, crashes), the presence's
//! `presence_entries`, the pubsub hub's `pubsub_*` and its adapter's `pubsub_adapter_*`
//! (connected 0/1, frames and bytes sent and received, dropped, queued, reconnects), and the
//! store's `store_*` (releases, stock changes, sell-outs, replicated events, cart operations by
//! result, checkouts by outcome, connections refused for lack of file descriptors — see
//! [`crate::listener`]).

use std::sync::OnceLock;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use channels::presence::Presence;
use channels::server::Endpoint;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pubsub::AdapterStatus;
use serde_json::json;

use sneakers23_core::db::Db;
use sneakers23_core::inventory::Inventory;

/// What `/health` and `/metrics` read. Cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    /// The database, probed for reads and writes.
    pub db: Db,
    /// The channels endpoint: pubsub status and counters, connections.
    pub endpoint: Endpoint,
    /// The inventory cache (its size is reported).
    pub inventory: Inventory,
    /// The CartTracker presence, whose tracker knows the other nodes.
    pub cart_tracker: Presence,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// `/health` and `/metrics`: merged into the application's router, or served alone on the
/// operations address (`OPS_LISTEN`).
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle (later calls,
/// e.g. a second node in one test process, share it).
pub fn install_metrics() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// `GET /health`.
pub async fn health(State(state): State<HealthState>) -> Response {
    // A database that answers reads but refuses writes (read-only, its file deleted) cannot
    // sell: probe a write, not just a read.
    let db = match state.db.ping().await {
        Ok(()) => state.db.probe_write().await,
        Err(e) => Err(e),
    };
    let pubsub = match state.endpoint.pubsub().adapter_status() {
        AdapterStatus::Connected => "connected".to_owned(),
        AdapterStatus::Disconnected(error) => format!("disconnected: {error}"),
    };
    let snapshot = state.inventory.snapshot();
    let pubsub_ok = state.endpoint.pubsub().adapter_status() == AdapterStatus::Connected;
    let stats = state.endpoint.pubsub().adapter_stats();
    let nodes: Vec<serde_json::Value> = state
        .cart_tracker
        .tracker()
        .replicas()
        .into_iter()
        .map(|r| {
            json!({
                "name": &*r.replica.name,
                "status": match r.status {
                    tracker::Status::Up => "up",
                    tracker::Status::Down => "down",
                },
            })
        })
        .collect();
    let body = json!({
        "status": if db.is_ok() && pubsub_ok { "ok" } else { "degraded" },
        "node": &*state.endpoint.pubsub().node().name,
        "database": match &db { Ok(()) => "ok".to_owned(), Err(e) => e.to_string() },
        "pubsub": pubsub,
        "products": snapshot.product_count(),
        "draining": state.endpoint.is_draining(),
        "cluster": {
            "adapter": state.endpoint.pubsub().adapter_kind().as_str(),
            "connected": pubsub_ok,
            "nodes": nodes,
            "frames_sent": stats.frames_sent,
            "frames_received": stats.frames_received,
            "dropped": stats.dropped,
            "reconnects": stats.reconnects,
        },
        "connections": state.endpoint.connection_count(),
    });
    let status = if db.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<HealthState>) -> Response {
    let stats = state.endpoint.pubsub().stats();
    metrics::gauge!("pubsub_published").set(stats.published as f64);
    metrics::gauge!("pubsub_delivered").set(stats.delivered as f64);
    metrics::gauge!("pubsub_lagged").set(stats.lagged as f64);
    let pubsub = state.endpoint.pubsub();
    let adapter = pubsub.adapter_stats();
    metrics::gauge!("pubsub_adapter_connected").set(
        if pubsub.adapter_status() == AdapterStatus::Connected {
            1.0
        } else {
            0.0
        },
    );
    metrics::gauge!("pubsub_adapter_frames_sent").set(adapter.frames_sent as f64);
    metrics::gauge!("pubsub_adapter_bytes_sent").set(adapter.bytes_sent as f64);
    metrics::gauge!("pubsub_adapter_frames_received").set(adapter.frames_received as f64);
    metrics::gauge!("pubsub_adapter_bytes_received").set(adapter.bytes_received as f64);
    metrics::gauge!("pubsub_adapter_dropped").set(adapter.dropped as f64);
    metrics::gauge!("pubsub_adapter_queued").set(adapter.queued as f64);
    metrics::gauge!("pubsub_adapter_reconnects").set(adapter.reconnects as f64);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
        .into_response()
}

/// Gives every series the node records outside the channels server (which describes its own) a
/// `# HELP` line on `/metrics`.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    for (name, help) in [
        (
            "pubsub_published",
            "Messages dispatched to local subscribers (local and from other nodes).",
        ),
        (
            "pubsub_delivered",
            "Messages placed in a subscriber's mailbox.",
        ),
        (
            "pubsub_lagged",
            "Subscribers cut off because their mailbox overflowed.",
        ),
        (
            "pubsub_adapter_connected",
            "1 while the cluster broker is connected.",
        ),
        (
            "pubsub_adapter_frames_sent",
            "Frames sent to the cluster broker.",
        ),
        (
            "pubsub_adapter_bytes_sent",
            "Bytes sent to the cluster broker.",
        ),
        (
            "pubsub_adapter_frames_received",
            "Frames received from the cluster broker.",
        ),
        (
            "pubsub_adapter_bytes_received",
            "Bytes received from the cluster broker.",
        ),
        (
            "pubsub_adapter_dropped",
            "Frames dropped on the way to the broker.",
        ),
        (
            "pubsub_adapter_queued",
            "Frames waiting to be sent to the broker.",
        ),
        (
            "pubsub_adapter_reconnects",
            "Reconnections to the cluster broker.",
        ),
        (
            "dashboard_shoppers",
            "Unique carts the admin dashboard counts.",
        ),
        ("dashboard_tabs", "Shopper tabs the admin dashboard counts."),
    ] {
        describe_gauge!(name, help);
    }
    for (name, help) in [
        (
            "dashboard_deltas_total",
            "Aggregate deltas the dashboard broadcast to admins.",
        ),
        ("store_releases_total", "Sneaker releases."),
        (
            "store_stock_changes_total",
            "Stock level changes, by level.",
        ),
        ("store_items_sold_out_total", "Items that sold out."),
        (
            "store_replicated_events_total",
            "Inventory events replicated from other nodes, by event.",
        ),
        ("store_cart_joins_total", "Cart channel joins."),
        (
            "store_cart_operations_total",
            "Cart operations by op and result.",
        ),
        ("store_checkouts_total", "Checkouts by outcome."),
        (
            "store_cart_joins_refused_total",
            "Cart channel joins refused for bad or oversized params.",
        ),
        (
            "store_client_errors_total",
            "Requests refused for a client's bad input, by kind (their log lines are rate-limited).",
        ),
        (
            "store_admin_login_failures_total",
            "Failed admin logins (wrong user or password).",
        ),
        (
            "store_admin_login_throttled_total",
            "Admin logins refused with 429 because the address failed too often.",
        ),
    ] {
        describe_counter!(name, help);
    }
}
