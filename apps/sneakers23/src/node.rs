//! Starting and stopping a serving node: the `serve` command's wiring (spec §5).
//!
//! [`start`] brings the parts up in the book's order — database (migrated, seeded when empty),
//! pubsub, channels endpoint, CartTracker presence, inventory cache, replication listener — then
//! binds the HTTP listener and serves [`crate::web::router`]. While the database cannot be
//! reached it retries with a growing delay and says so in the log (spec §17.3): a node cannot
//! serve its product page before its cache is loaded.
//!
//! In a cluster (`pubsub_url`: Redis or NATS) the node waits briefly for the broker at start, then
//! serves whether or not it is there; [`crate::cluster::watch`] catches the node up whenever the
//! broker comes back.
//!
//! [`Node::shutdown`] drains first, in batches like Phoenix's drainer (every WebSocket is closed
//! with code 1012 so that browsers reconnect, elsewhere if there is an elsewhere; new ones are
//! refused), then, with `permdown_on_shutdown`, tells the other nodes to drop this node's carts at
//! once (tracker `graceful_permdown`) instead of after the down period, then stops accepting
//! requests, finishes the ones in flight and closes the database. Every step is bounded: the drain
//! by `drain.shutdown`, the permdown by [`PERMDOWN_TIMEOUT`], requests by 5 s.
//!
//! The listener raises the open-file limit to the hard limit first (every shopper holds a
//! socket), queues up to 8192 pending connections, and is wrapped in
//! [`FdLimitListener`]: when descriptors run out anyway, connections are refused cleanly, counted
//! in `/metrics` and reported in the log, and the node keeps serving the others.
//!
//! Connections are served by [`crate::server::serve`] with the [`Limits`]: a header-read
//! timeout and a cap on connections per source address. With [`Limits::ops_listen`] (the
//! production default is loopback), `/health` and `/metrics` are served on that address only,
//! not on the public one.
//!
//! In production the database must exist and hold the catalog: a missing SQLite file or an
//! empty database stops the node with an error instead of starting a fresh, seeded shop.
//!
//! Tests start nodes in-process with [`NodeConfig::for_tests`] on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use channels::presence::Presence;
use channels::server::{CheckOrigin, DrainOptions, Endpoint, EndpointConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState, Dashboard};
use crate::config::{AdminCredentials, ConfigError, Env};
use crate::listener::FdLimitListener;
use crate::notifier::ChannelNotifier;
use crate::sockets::{CART_TRACKER_NAME, CART_TRACKER_TOPIC};
use crate::web::health::{self, HealthState};
use crate::web::ops::{self, ControlState};
use crate::web::session::SessionKeys;
use crate::web::{self, ShopState};
use sneakers23_core::db::{Db, DbError, DbOptions, redact_url};
use sneakers23_core::inventory::Inventory;
use sneakers23_core::replication::Replication;
use sneakers23_core::seed;
use sneakers23_core::tokens::CartTokens;

/// How long shutdown waits for requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for the tracker's graceful permdown to be sent.
pub const PERMDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a starting node waits for its pubsub broker before serving without it.
const BROKER_START_WAIT: Duration = Duration::from_secs(5);

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Pool settings.
    pub db_options: DbOptions,
    /// Insert the seed catalog when the database has no product.
    pub seed_if_empty: bool,
    /// RNG seed of the seed catalog's stock (reproducible demos and tests).
    pub rng_seed: Option<u64>,
    /// Longest wait between two attempts to reach the database at start.
    pub db_retry_max_delay: Duration,
    /// Signing secret (at least 20 bytes; the same on every node).
    pub secret_key_base: String,
    /// This node's name in the cluster.
    pub node_name: String,
    /// Development or production.
    pub env: Env,
    /// Which page origins may open the socket.
    pub check_origin: CheckOrigin,
    /// Most items per cart.
    pub max_cart_items: usize,
    /// Admin dashboard credentials.
    pub admin: AdminCredentials,
    /// CartTracker timing and pool size.
    pub tracker: tracker::Options,
    /// Mark the session cookie `Secure` (HTTPS deployments).
    pub cookie_secure: bool,
    /// The cluster's pubsub broker (`redis://…`, `nats://…`); `None` or `local`: a single node.
    pub pubsub_url: Option<String>,
    /// On shutdown, tell the other nodes to drop this node's presences at once.
    pub permdown_on_shutdown: bool,
    /// How shutdown drains the sockets.
    pub drain: DrainOptions,
    /// Connection limits and the operations address.
    pub limits: Limits,
}

/// What a node accepts from the network (docs/OPERATIONS.md, "Limits and protections").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for a request head (`HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Most open connections per source address, 0: no cap (`MAX_CONNECTIONS_PER_IP`).
    pub max_connections_per_ip: usize,
    /// Cap loopback addresses too (`PER_IP_LIMIT_LOOPBACK`).
    pub limit_loopback: bool,
    /// Serve `/health` and `/metrics` on this address instead of the public one
    /// (`OPS_LISTEN`).
    pub ops_listen: Option<SocketAddr>,
    /// Most channels one socket may join (`MAX_CHANNELS`). A shop tab joins three
    /// (two products, its cart); the cap bounds the fake carts one connection can add to the
    /// dashboard.
    pub max_channels_per_socket: usize,
}

/// Default of [`Limits::max_channels_per_socket`].
pub const DEFAULT_MAX_CHANNELS_PER_SOCKET: usize = 10;

impl Default for Limits {
    fn default() -> Self {
        let connections = crate::server::ConnectionLimits::default();
        Self {
            header_read_timeout: connections.header_read_timeout,
            max_connections_per_ip: connections.max_per_ip,
            limit_loopback: connections.limit_loopback,
            ops_listen: None,
            max_channels_per_socket: DEFAULT_MAX_CHANNELS_PER_SOCKET,
        }
    }
}

impl NodeConfig {
    /// A development node on `127.0.0.1:0` over `database_url`, with a fixed test secret, no
    /// seeding, and a fast CartTracker.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            db_options: DbOptions::default(),
            seed_if_empty: false,
            rng_seed: None,
            db_retry_max_delay: Duration::from_secs(1),
            secret_key_base: "test secret key base that is long enough for every signer".into(),
            node_name: "test".into(),
            env: Env::Dev,
            check_origin: CheckOrigin::Disabled,
            max_cart_items: sneakers23_core::cart::DEFAULT_MAX_CART_ITEMS,
            admin: AdminCredentials::development(),
            tracker: tracker::Options {
                broadcast_period: Duration::from_millis(100),
                ..tracker::Options::default()
            },
            cookie_secure: false,
            pubsub_url: None,
            permdown_on_shutdown: false,
            drain: DrainOptions::default(),
            limits: Limits::default(),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database failed for another reason than being unreachable.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The secret cannot key a signer.
    #[error("SECRET_KEY_BASE cannot be used: {0}")]
    Secret(#[from] channels::token::KeyError),
    /// The CartTracker refused its options.
    #[error("the CartTracker could not start: {0}")]
    Tracker(#[from] tracker::OptionsError),
    /// A channels limit in the environment (`MAX_FRAME_SIZE`, ...) is wrong.
    #[error("{0}")]
    Endpoint(String),
    /// `PUBSUB_URL` is wrong.
    #[error("PUBSUB_URL: {0}")]
    PubSub(#[from] pubsub::ConnectError),
    /// Production found no database file.
    #[error(
        "the database file {} does not exist: in production the node never creates an empty \
         shop; restore the file, or create it on purpose with `sneakers23 migrate` and \
         `sneakers23 seed`",
        path.display()
    )]
    MissingDatabase {
        /// The file.
        path: std::path::PathBuf,
    },
    /// Production found a database without products.
    #[error(
        "the database holds no product: in production the node never seeds an empty shop by \
         itself; check DATABASE_URL, restore the data, or seed on purpose with \
         `sneakers23 seed` (or SEED_IF_EMPTY=true)"
    )]
    EmptyDatabase,
    /// The listen address is taken or not ours.
    #[error(
        "could not listen on {addr}: {cause}; is another server using that port? Set PORT \
         (0 picks a free one)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// I/O error.
        cause: std::io::Error,
    },
}

/// The long-lived parts a started node runs on, for its owner (the CLI, tests, benchmarks):
/// each area's state holds clones of the ones it needs. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// This node's inventory cache and its write operations.
    pub inventory: Inventory,
    /// The database.
    pub db: Db,
    /// The channels endpoint: broadcasts, pubsub, drain.
    pub endpoint: Endpoint,
    /// The CartTracker presence (topic [`CART_TRACKER_TOPIC`]).
    pub cart_tracker: Presence,
    /// The admin dashboard's live aggregate of the CartTracker.
    pub dashboard: Dashboard,
    /// Signs and verifies serialized carts.
    pub cart_signer: Arc<CartTokens>,
    /// What the store's channels are built with (the shop's own), for serving them elsewhere,
    /// e.g. in process with the channel test kit.
    pub channel_deps: crate::sockets::ChannelDeps,
}

/// A running node.
pub struct Node {
    addr: SocketAddr,
    ops_addr: Option<SocketAddr>,
    ops_server: Option<JoinHandle<std::io::Result<()>>>,
    state: Services,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
    replication: JoinHandle<()>,
    cluster: JoinHandle<()>,
    permdown_on_shutdown: bool,
    drain: DrainOptions,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// The address the node accepts connections on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address serving `/health` and `/metrics`, when apart from [`Node::addr`].
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// The parts the node runs on (inventory, endpoint, CartTracker…).
    pub fn state(&self) -> &Services {
        &self.state
    }

    /// Drains the sockets in batches, permdowns this node's presences on the other nodes (when
    /// configured), stops accepting, waits (briefly) for requests in flight, and closes the
    /// database. See the module docs for the bounds.
    pub async fn shutdown(mut self) {
        let report = self.state.endpoint.drain_in_batches(self.drain).await;
        tracing::info!(
            connections = report.initial,
            batches = report.batches,
            remaining = report.remaining,
            elapsed_ms = u64::try_from(report.elapsed.as_millis()).unwrap_or(u64::MAX),
            "sockets drained"
        );
        // Whatever is still open after the drain's bound closes now.
        self.state.endpoint.drain();
        if self.permdown_on_shutdown {
            let permdown = self.state.cart_tracker.tracker().graceful_permdown();
            match tokio::time::timeout(PERMDOWN_TIMEOUT, permdown).await {
                Ok(()) => tracing::info!(
                    "told the other nodes to drop this node's presences (graceful permdown)"
                ),
                Err(_) => tracing::warn!(
                    "graceful permdown did not finish in time; the other nodes drop this \
                     node's presences after their down period"
                ),
            }
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "HTTP server stopped with an error"),
            Ok(Err(error)) => tracing::warn!(%error, "HTTP server task failed"),
            Err(_) => {
                tracing::warn!("requests still running after the grace period; stopping anyway");
                self.server.abort();
            }
        }
        if let Some(ops) = self.ops_server.take() {
            ops.abort();
        }
        self.replication.abort();
        self.cluster.abort();
        self.state.db.close().await;
        tracing::info!("node stopped");
    }

    /// Waits until the server stops by itself (it only does on an I/O error).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.server).await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}

/// Starts a node (see the module docs). Returns once it accepts connections.
pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
    if config.max_cart_items == 0 {
        return Err(ConfigError::ZeroMaxCartItems.into());
    }
    let cart_signer = Arc::new(CartTokens::new(&config.secret_key_base)?);
    let sessions = SessionKeys::new(&config.secret_key_base, config.cookie_secure)?;
    let metrics = health::install_metrics();

    let db = open_database(&config).await?;

    let pubsub = pubsub::connect(&config.node_name, config.pubsub_url.as_deref())?;
    if !pubsub.adapter_kind().is_single_node() {
        if pubsub.wait_connected(BROKER_START_WAIT).await {
            tracing::info!(adapter = %pubsub.adapter_kind(), node = %config.node_name, "pubsub broker connected");
        } else {
            tracing::warn!(
                adapter = %pubsub.adapter_kind(),
                status = %pubsub.adapter_status(),
                "pubsub broker unreachable; serving this node's clients alone until it answers"
            );
        }
    }
    let endpoint = Endpoint::new(
        pubsub.clone(),
        EndpointConfig {
            check_origin: config.check_origin.clone(),
            max_channels: config.limits.max_channels_per_socket,
            ..EndpointConfig::from_env().map_err(NodeError::Endpoint)?
        },
    );
    // The dashboard observes the CartTracker from its first diff (see `crate::admin`).
    let dashboard = Dashboard::new();
    let cart_tracker = Presence::builder(endpoint.clone(), CART_TRACKER_NAME)
        .options(config.tracker.clone())
        .subscribe(CART_TRACKER_TOPIC, dashboard.observer())
        .start()?;
    let replication = Replication::new(pubsub.clone());
    let notifier = Arc::new(ChannelNotifier::new(endpoint.clone()));
    let inventory = retry("loading the inventory", config.db_retry_max_delay, || {
        Inventory::load(db.clone(), notifier.clone(), replication.sink())
    })
    .await?;
    let replication = tokio::spawn(replication.run(inventory.clone()));
    let cluster = crate::cluster::watch(
        pubsub,
        inventory.clone(),
        endpoint.clone(),
        notifier.clone(),
    );
    let catalog = inventory.clone();
    dashboard.spawn_publisher(endpoint.clone(), move || catalog.snapshot());

    // Each area gets its own state; the secret keys their signers here and is not kept.
    let shop = ShopState {
        inventory: inventory.clone(),
        db: db.clone(),
        endpoint: endpoint.clone(),
        cart_tracker: cart_tracker.clone(),
        cart_signer: cart_signer.clone(),
        sessions,
        max_cart_items: config.max_cart_items,
    };
    let admin = AdminState::new(
        inventory.clone(),
        endpoint.clone(),
        cart_tracker.clone(),
        dashboard.clone(),
        config.admin.clone(),
        &config.secret_key_base,
    )?;
    let control = ControlState::new(
        inventory.clone(),
        cart_tracker.clone(),
        &config.secret_key_base,
    );
    let health = HealthState {
        db: db.clone(),
        endpoint: endpoint.clone(),
        inventory: inventory.clone(),
        cart_tracker: cart_tracker.clone(),
        metrics,
    };
    let state = Services {
        inventory,
        db,
        endpoint,
        cart_tracker,
        dashboard,
        cart_signer,
        channel_deps: shop.channel_deps(),
    };
    let ops_apart = config.limits.ops_listen.is_some();
    let mut app = web::router(shop)
        .merge(ops::router(control))
        .merge(admin::router(admin));
    if !ops_apart {
        app = app.merge(health::router(health.clone()));
    }
    raise_open_file_limit();
    let listener = listen(config.listen).map_err(|cause| NodeError::Bind {
        addr: config.listen,
        cause,
    })?;
    let addr = listener.local_addr().map_err(|cause| NodeError::Bind {
        addr: config.listen,
        cause,
    })?;
    let connection_limits = crate::server::ConnectionLimits {
        header_read_timeout: config.limits.header_read_timeout,
        max_per_ip: config.limits.max_connections_per_ip,
        limit_loopback: config.limits.limit_loopback,
    };
    let (ops_addr, ops_server) = match config.limits.ops_listen {
        Some(ops) => {
            let listener = listen(ops).map_err(|cause| NodeError::Bind { addr: ops, cause })?;
            let ops_addr = listener
                .local_addr()
                .map_err(|cause| NodeError::Bind { addr: ops, cause })?;
            let router = health::router(health);
            let limits = connection_limits.clone();
            let server = tokio::spawn(crate::server::serve(
                FdLimitListener::new(listener),
                router,
                limits,
                std::future::pending(),
            ));
            tracing::info!(%ops_addr, "health and metrics served apart");
            (Some(ops_addr), Some(server))
        }
        None => (None, None),
    };
    let listener = FdLimitListener::new(listener);
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::server::serve(
        listener,
        app,
        connection_limits,
        async {
            let _ = rx.await;
        },
    ));
    tracing::info!(%addr, node = %config.node_name, "node started");
    Ok(Node {
        addr,
        ops_addr,
        ops_server,
        state,
        shutdown: Some(tx),
        server,
        replication,
        cluster,
        permdown_on_shutdown: config.permdown_on_shutdown,
        drain: config.drain,
    })
}

/// Connects, migrates and (when asked and empty) seeds, waiting for an unreachable database.
async fn open_database(config: &NodeConfig) -> Result<Db, NodeError> {
    let db = Db::connect_lazy_with(&config.database_url, &config.db_options)?;
    tracing::info!(database = %redact_url(&config.database_url), "opening the database");
    if let Err(DbError::FileGone { path }) = db.check_file() {
        return Err(NodeError::MissingDatabase { path });
    }
    retry("migrating the database", config.db_retry_max_delay, || {
        db.migrate()
    })
    .await?;
    if config.seed_if_empty || config.env == Env::Prod {
        let products = retry("counting products", config.db_retry_max_delay, || {
            db.count_products()
        })
        .await?;
        if products == 0 && !config.seed_if_empty {
            return Err(NodeError::EmptyDatabase);
        }
        if products == 0 {
            let inserted = seed::seed(&db, config.rng_seed).await?;
            tracing::info!(
                products = inserted.len(),
                "empty database seeded with the two shoes of the book (both unreleased)"
            );
        }
    }
    Ok(db)
}

/// Runs `op` until it succeeds or fails with something else than an unreachable database,
/// waiting 250 ms, 500 ms, 1 s… (at most `max_delay`) between attempts.
async fn retry<T, F, Fut>(what: &str, max_delay: Duration, mut op: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DbError>>,
{
    let mut delay = Duration::from_millis(250).min(max_delay);
    let mut attempt = 1u32;
    loop {
        match op().await {
            Ok(value) => {
                if attempt > 1 {
                    tracing::info!(what, attempt, "database reachable again");
                }
                return Ok(value);
            }
            Err(error) if error.is_unavailable() => {
                tracing::warn!(
                    what,
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    %error,
                    "database unreachable; the node will serve once it answers"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(max_delay);
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Pending connections the kernel may queue before the server accepts them. Launches open
/// thousands of connections within seconds; the usual 1024 overflows and clients wait for SYN
/// retransmits (1 s, 3 s, 7 s…). The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 8192;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft limit of open files to the hard limit: every shopper holds a socket.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open file limit"),
    }
}
