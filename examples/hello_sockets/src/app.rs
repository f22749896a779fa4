//! `hello_sockets serve`: the endpoint with its three sockets, the pages, `/metrics` and the
//! console API, on one port.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use channels::server::transport::{Transports, socket_router};
use channels::server::{Endpoint, EndpointConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::auth_socket::{AuthSocket, Tokens};
use crate::pipeline::Producer;
use crate::statix::Statix;
use crate::stats_socket::StatsSocket;
use crate::user_socket::user_socket;
use crate::user_tracker::UserTracker;
use crate::{console, pages};

/// What `serve` needs to know.
pub struct ServeConfig {
    /// Port to listen on (0: any).
    pub port: u16,
    /// Secret the auth socket's tokens are signed with.
    pub secret_key_base: String,
    /// This node's name, unique in its cluster.
    pub node_name: String,
    /// The cluster's broker (`redis://…`, `nats://…`), or `None` for a single node.
    pub pubsub_url: Option<String>,
    /// Where StatsD metrics go, if anywhere.
    pub statsd_addr: Option<String>,
}

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Broadcasts to every node's clients.
    pub endpoint: Endpoint,
    /// The auth socket's tokens.
    pub tokens: Tokens,
    /// The push pipeline.
    pub producer: Producer,
    /// The UserTracker.
    pub user_tracker: UserTracker,
    prometheus: PrometheusHandle,
}

fn install_prometheus() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    Ok(handle)
}

/// Serves until the process is stopped.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let prometheus = install_prometheus()?;
    let statix = Statix::new(config.statsd_addr.as_deref())?;
    let pubsub = pubsub::connect(&config.node_name, config.pubsub_url.as_deref())?;
    // The channel limits (MAX_FRAME_SIZE, MAX_CHANNELS, CHANNEL_BACKLOG, JOIN_TIMEOUT_MS).
    let endpoint_config = EndpointConfig::from_env().map_err(anyhow::Error::msg)?;
    let endpoint = Endpoint::new(pubsub.clone(), endpoint_config);
    let user_tracker = UserTracker::start(pubsub, tracker::Options::default())?;
    let tokens = Tokens::new(&config.secret_key_base)?;
    let producer = Producer::start(endpoint.clone(), statix.clone());
    let state = AppState {
        endpoint: endpoint.clone(),
        tokens: tokens.clone(),
        producer,
        user_tracker: user_tracker.clone(),
        prometheus,
    };
    let user_socket = Arc::new(user_socket());
    let auth_socket = Arc::new(AuthSocket::new(tokens, statix.clone(), user_tracker));
    let stats_socket = Arc::new(StatsSocket::new(statix));
    let app = Router::new()
        .merge(pages::routes())
        .merge(console::routes())
        .route(
            "/metrics",
            get(
                |axum::extract::State(app): axum::extract::State<AppState>| async move {
                    app.prometheus.render()
                },
            ),
        )
        .with_state(state)
        .nest(
            "/socket",
            socket_router(endpoint.clone(), user_socket, Transports::all()),
        )
        .nest(
            "/auth_socket",
            socket_router(endpoint.clone(), auth_socket, Transports::websocket_only()),
        )
        .nest(
            "/stats_socket",
            socket_router(endpoint, stats_socket, Transports::websocket_only()),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    tracing::info!(node = config.node_name, "Running HelloSockets at {addr}");
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
