//! The command line: every command and flag (each with its environment variable), and what
//! the flags become — database options, a node's configuration, a control API client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sneakers23::config::{self, Env};
use sneakers23::control::{ControlClient, DEFAULT_NODE_URL};
use sneakers23::db::{self, Db, DbOptions};
use sneakers23::node::{self, NodeConfig};
use sneakers23::{cart, tokens};

/// Sneakers23: the real-time sneaker store.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Database connection flags of the commands that use the database.
#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// Database URL: sqlite://<path> (created on first use) or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL)]
    database_url: String,
    /// Maximum database connections.
    #[arg(long, env = "POOL_SIZE", default_value_t = 10)]
    pool_size: u32,
    /// Milliseconds a query waits for a database connection before failing.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000)]
    db_acquire_timeout_ms: u64,
}

impl DbArgs {
    fn options(&self) -> DbOptions {
        DbOptions {
            max_connections: self.pool_size,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            ..DbOptions::default()
        }
    }

    pub(crate) async fn connect(&self) -> anyhow::Result<Db> {
        Db::connect_with(&self.database_url, &self.options())
            .await
            .with_context(|| format!("connecting to {}", db::redact_url(&self.database_url)))
    }
}

/// Where the signing secret comes from.
#[derive(Debug, Args)]
pub(crate) struct SecretArgs {
    /// Signing secret of sessions and tokens; the same on every node (required with --env prod).
    #[arg(long, env = "SECRET_KEY_BASE", hide_env_values = true)]
    secret_key_base: Option<String>,
    /// Development only: file where a generated secret is kept between runs [default:
    /// ~/.local/share/sneakers23/secret_key_base, shared by every folder the store runs from].
    #[arg(long, env = "SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
}

/// The development secret file when none is given: one per user, so that the operator
/// commands find it from any folder.
fn default_secret_key_file() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| PathBuf::from(home).join(".local").join("share"))
        });
    match data_home {
        Some(dir) => dir.join("sneakers23").join("secret_key_base"),
        None => PathBuf::from("data/secret_key_base"),
    }
}

/// How an operator command reaches the running node.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// URL of the node (its control API answers on loopback only) [default:
    /// http://127.0.0.1:$PORT when PORT is set, as for `serve`, else http://127.0.0.1:4000].
    #[arg(long, env = "NODE_URL")]
    node_url: Option<String>,
    /// The node's SECRET_KEY_BASE [default: the development secret a node on this machine
    /// generated].
    #[arg(long, env = "SECRET_KEY_BASE", hide_env_values = true)]
    secret_key_base: Option<String>,
    /// The development secret file the node uses, when not the default one.
    #[arg(long, env = "SECRET_KEY_FILE")]
    secret_key_file: Option<PathBuf>,
}

impl NodeArgs {
    /// The node's URL: `--node-url`/`NODE_URL`, else the `PORT` a `serve` in this environment
    /// would listen on, else the default port.
    fn node_url(&self) -> String {
        if let Some(url) = &self.node_url {
            return url.clone();
        }
        match std::env::var("PORT").ok().filter(|p| !p.trim().is_empty()) {
            Some(port) => format!("http://127.0.0.1:{}", port.trim()),
            None => DEFAULT_NODE_URL.to_owned(),
        }
    }

    pub(crate) fn client(&self) -> anyhow::Result<ControlClient> {
        let file = self
            .secret_key_file
            .clone()
            .unwrap_or_else(default_secret_key_file);
        let secret = config::read_secret_key_base(self.secret_key_base.as_deref(), &file)?;
        Ok(ControlClient::new(
            &self.node_url(),
            &tokens::ops_token(&secret),
        )?)
    }
}

/// The `serve` command's settings.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Port to listen on (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 4000)]
    pub(crate) port: u16,
    /// Address to listen on [default: 127.0.0.1 in dev, :: (all interfaces) in prod].
    #[arg(long, env = "BIND")]
    bind: Option<IpAddr>,
    /// Development or production defaults (prod requires SECRET_KEY_BASE and admin credentials).
    #[arg(long, env = "APP_ENV", value_enum, default_value_t = Env::Dev)]
    pub(crate) env: Env,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    db: DbArgs,
    /// This node's name in the cluster: unique per node, stable across its restarts.
    #[arg(long, env = "NODE_NAME", default_value = "sneakers23")]
    node_name: String,
    /// Allowed page origins for the socket: `off`, `conn` (same host as the request) or a
    /// comma-separated list like `https://sneakers23.com,//*.sneakers23.com` [default: off in
    /// dev, conn in prod].
    #[arg(long, env = "CHECK_ORIGIN")]
    check_origin: Option<String>,
    /// Most items a cart may hold.
    #[arg(long, env = "MAX_CART_ITEMS", default_value_t = cart::DEFAULT_MAX_CART_ITEMS)]
    max_cart_items: usize,
    /// Admin dashboard user [default in dev: admin].
    #[arg(long, env = "ADMIN_USER")]
    pub(crate) admin_user: Option<String>,
    /// Admin dashboard password [default in dev: password].
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,
    /// CartTracker: milliseconds between presence broadcasts to other nodes.
    #[arg(long, env = "TRACKER_BROADCAST_PERIOD_MS", default_value_t = 1500)]
    tracker_broadcast_period_ms: u64,
    /// CartTracker: silence before a node counts as down [default: 20 broadcast periods].
    #[arg(long, env = "TRACKER_DOWN_PERIOD_MS")]
    tracker_down_period_ms: Option<u64>,
    /// CartTracker: silence before a down node's presences are deleted.
    #[arg(long, env = "TRACKER_PERMDOWN_PERIOD_MS", default_value_t = 1_200_000)]
    tracker_permdown_period_ms: u64,
    /// CartTracker shards [default: number of CPUs]; must be equal on every node.
    #[arg(long, env = "TRACKER_POOL_SIZE")]
    tracker_pool_size: Option<usize>,
    /// Seed the two shoes of the book when the database has no product [default: true in dev,
    /// false in prod, where a missing or empty database stops the node instead].
    #[arg(long, env = "SEED_IF_EMPTY", action = clap::ArgAction::Set)]
    seed_if_empty: Option<bool>,
    /// Seed of the random stock when seeding (reproducible data).
    #[arg(long, env = "RNG_SEED")]
    rng_seed: Option<u64>,
    /// Longest wait in milliseconds between attempts to reach the database at start.
    #[arg(long, env = "DB_RETRY_MAX_MS", default_value_t = 5000)]
    db_retry_max_ms: u64,
    /// Mark the session cookie Secure (only sent over HTTPS) [default: false in dev, true in
    /// prod].
    #[arg(long, env = "COOKIE_SECURE", action = clap::ArgAction::Set)]
    cookie_secure: Option<bool>,
    #[command(flatten)]
    limits: LimitArgs,
    /// The cluster's pubsub broker: `local` (a single node), `redis://host:6379/?cluster=NAME`
    /// or `nats://host:4222/?cluster=NAME`; the same on every node. See docs/OPERATIONS.md for
    /// the URL's tuning parameters.
    #[arg(long, env = "PUBSUB_URL", default_value = "local")]
    pubsub_url: String,
    /// On shutdown, tell the other nodes to drop this node's carts at once (tracker graceful
    /// permdown) instead of after TRACKER_DOWN_PERIOD_MS.
    #[arg(long, env = "PERMDOWN_ON_SHUTDOWN", default_value_t = false, action = clap::ArgAction::Set)]
    permdown_on_shutdown: bool,
    /// Shutdown: sockets closed per batch.
    #[arg(long, env = "DRAIN_BATCH_SIZE", default_value_t = 10_000)]
    drain_batch_size: usize,
    /// Shutdown: milliseconds between two batches of sockets closed.
    #[arg(long, env = "DRAIN_BATCH_INTERVAL_MS", default_value_t = 2000)]
    drain_batch_interval_ms: u64,
    /// Shutdown: longest the draining of sockets may take, in milliseconds.
    #[arg(long, env = "DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    drain_timeout_ms: u64,
}

/// The `serve` command's limits and timeouts (docs/OPERATIONS.md, "Limits and protections").
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// PostgreSQL statement_timeout in milliseconds.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 5000)]
    db_statement_timeout_ms: u64,
    /// PostgreSQL lock_timeout in milliseconds.
    #[arg(long, env = "DB_LOCK_TIMEOUT_MS", default_value_t = 2000)]
    db_lock_timeout_ms: u64,
    /// Client-side bound, in milliseconds, on each step of a purchase (a database that stops
    /// answering cannot hold a checkout longer).
    #[arg(long, env = "DB_TRANSACTION_TIMEOUT_MS", default_value_t = 8000)]
    db_transaction_timeout_ms: u64,
    /// SQLite busy timeout in milliseconds.
    #[arg(long, env = "SQLITE_BUSY_TIMEOUT_MS", default_value_t = 5000)]
    sqlite_busy_timeout_ms: u64,
    /// Milliseconds a new connection may take to send its request headers (and a keep-alive
    /// connection its next request's) before it is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_MS", default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    /// Most connections open at once from one source address (0: no limit).
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    max_connections_per_ip: usize,
    /// Most channels one WebSocket may join (a shop tab joins three).
    #[arg(long, env = "MAX_CHANNELS", default_value_t = node::DEFAULT_MAX_CHANNELS_PER_SOCKET)]
    max_channels_per_socket: usize,
    /// Apply MAX_CONNECTIONS_PER_IP to loopback addresses too (off by default: behind a
    /// reverse proxy on the same host every client is loopback).
    #[arg(long, env = "PER_IP_LIMIT_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set)]
    per_ip_limit_loopback: bool,
    /// Address serving /health and /metrics apart from the shop [default: none in dev (served
    /// on the shop's address), 127.0.0.1:9568 in prod]; `off` serves them on the shop's
    /// address in prod too.
    #[arg(long, env = "OPS_LISTEN")]
    ops_listen: Option<String>,
}

impl LimitArgs {
    fn db_options(&self, base: DbOptions, env: Env) -> DbOptions {
        DbOptions {
            statement_timeout: Duration::from_millis(self.db_statement_timeout_ms.max(1)),
            lock_timeout: Duration::from_millis(self.db_lock_timeout_ms.max(1)),
            transaction_timeout: Duration::from_millis(self.db_transaction_timeout_ms.max(1)),
            sqlite_busy_timeout: Duration::from_millis(self.sqlite_busy_timeout_ms),
            create_if_missing: env == Env::Dev,
            ..base
        }
    }

    fn node_limits(&self, env: Env) -> anyhow::Result<node::Limits> {
        let ops_listen = match (self.ops_listen.as_deref(), env) {
            (Some("off"), _) | (None, Env::Dev) => None,
            (None, Env::Prod) => Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9568))),
            (Some(text), _) => Some(
                text.parse()
                    .with_context(|| format!("OPS_LISTEN={text}: expected ADDRESS:PORT or off"))?,
            ),
        };
        Ok(node::Limits {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.max(1)),
            max_connections_per_ip: self.max_connections_per_ip,
            limit_loopback: self.per_ip_limit_loopback,
            ops_listen,
            max_channels_per_socket: self.max_channels_per_socket.max(1),
        })
    }
}

impl ServeArgs {
    pub(crate) fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let db = &self.db;
        let env = self.env;
        let secret_key_file = self
            .secret
            .secret_key_file
            .clone()
            .unwrap_or_else(default_secret_key_file);
        let secret_key_base = config::resolve_secret_key_base(
            self.secret.secret_key_base.as_deref(),
            env,
            &secret_key_file,
        )?;
        let admin = config::admin_credentials(
            self.admin_user.as_deref(),
            self.admin_password.as_deref(),
            env,
        )?;
        let tracker = config::tracker_options(
            self.tracker_broadcast_period_ms,
            self.tracker_down_period_ms,
            self.tracker_permdown_period_ms,
            self.tracker_pool_size.unwrap_or_else(config::cpu_count),
        )?;
        let check_origin = match (&self.check_origin, env) {
            (Some(text), _) => text
                .parse()
                .with_context(|| format!("CHECK_ORIGIN={text}"))?,
            (None, Env::Dev) => channels::server::CheckOrigin::Disabled,
            (None, Env::Prod) => channels::server::CheckOrigin::SameAsRequest,
        };
        let bind = self.bind.unwrap_or(match env {
            Env::Dev => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Env::Prod => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        Ok(NodeConfig {
            listen: SocketAddr::new(bind, self.port),
            database_url: db.database_url.clone(),
            db_options: self.limits.db_options(db.options(), env),
            seed_if_empty: self.seed_if_empty.unwrap_or(env == Env::Dev),
            rng_seed: self.rng_seed,
            db_retry_max_delay: Duration::from_millis(self.db_retry_max_ms.max(1)),
            secret_key_base,
            node_name: self.node_name.clone(),
            env,
            check_origin,
            max_cart_items: self.max_cart_items,
            admin,
            tracker,
            cookie_secure: self.cookie_secure.unwrap_or(env == Env::Prod),
            limits: self.limits.node_limits(env)?,
            pubsub_url: Some(self.pubsub_url.clone()),
            permdown_on_shutdown: self.permdown_on_shutdown,
            drain: channels::server::DrainOptions {
                batch_size: self.drain_batch_size.max(1),
                batch_interval: Duration::from_millis(self.drain_batch_interval_ms.max(1)),
                shutdown: Duration::from_millis(self.drain_timeout_ms),
            },
        })
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum PresenceCommand {
    /// Print the CartTracker list: every connected cart with its tabs' metas.
    List {
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the store: pages, sockets, control API (prints `listening on http://ADDR`).
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations.
    Migrate(DbArgs),
    /// Drop every table and migrate again (all data lost; ids restart at 1).
    Reset(DbArgs),
    /// Insert the two seed products and their 26 items into an empty database.
    Seed {
        /// Seed of the random availability counts, for reproducible data.
        #[arg(long, env = "RNG_SEED")]
        rng_seed: Option<u64>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Release a product on the running node (its pages update live).
    Release {
        /// Product id (1 and 2 in the seed data).
        product_id: i64,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Sell units of one item through the running node.
    Sell {
        /// Item id (1–26 in the seed data).
        item_id: i64,
        /// Units to sell.
        #[arg(long, default_value_t = 1, conflicts_with = "leave")]
        units: u32,
        /// Sell until this many units are left instead.
        #[arg(long)]
        leave: Option<u32>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Sell random available items, tick after tick, until everything is sold out.
    SellRandomUntilGone {
        /// Sales per tick.
        #[arg(long, default_value_t = 200)]
        per_tick: usize,
        /// Milliseconds between ticks.
        #[arg(long, default_value_t = 250)]
        tick_ms: u64,
        /// Wait until sold out and print the totals (otherwise it runs in the node's background).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Inspect the CartTracker presence of the running node.
    Presence {
        #[command(subcommand)]
        command: PresenceCommand,
    },
    /// Print the running node's cached inventory: products, items, counts and levels.
    Inventory {
        /// Print the JSON document instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
}
