//! The `sneakers23` binary: operator commands over the store's library.
//!
//! Database commands (`migrate`, `reset`, `seed`) act on the database directly. Commands that
//! must reach a running node's cache and clients (`serve`, `release`, `sell`, `presence`) are
//! added with the web layer.

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sneakers23::db::{self, Db, DbOptions};
use sneakers23::seed;

/// Sneakers23: the real-time sneaker store.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: Command,
}

/// Database connection flags shared by every command.
#[derive(Debug, Args)]
struct DbArgs {
    /// Database URL: sqlite://<path> or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = db::DEFAULT_DATABASE_URL, global = true)]
    database_url: String,
    /// Maximum database connections.
    #[arg(long, env = "POOL_SIZE", default_value_t = 10, global = true)]
    pool_size: u32,
    /// Milliseconds a query waits for a database connection before failing.
    #[arg(
        long,
        env = "DB_ACQUIRE_TIMEOUT_MS",
        default_value_t = 3000,
        global = true
    )]
    db_acquire_timeout_ms: u64,
}

impl DbArgs {
    async fn connect(&self) -> anyhow::Result<Db> {
        let options = DbOptions {
            max_connections: self.pool_size,
            acquire_timeout: Duration::from_millis(self.db_acquire_timeout_ms),
            ..DbOptions::default()
        };
        Db::connect_with(&self.database_url, &options)
            .await
            .with_context(|| format!("connecting to {}", db::redact_url(&self.database_url)))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending database migrations.
    Migrate,
    /// Drop every table and migrate again (all data lost; ids restart at 1).
    Reset,
    /// Insert the two seed products and their 26 items into an empty database.
    Seed {
        /// Seed of the random availability counts, for reproducible data.
        #[arg(long, env = "RNG_SEED")]
        rng_seed: Option<u64>,
    },
    // Node commands (serve, release, sell, presence) are added by the web layer.
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            let db = cli.db.connect().await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
        }
        Command::Reset => {
            let db = cli.db.connect().await?;
            db.reset().await?;
            tracing::info!("database reset");
        }
        Command::Seed { rng_seed } => {
            let db = cli.db.connect().await?;
            db.migrate().await?;
            let inserted = seed::seed(&db, rng_seed).await?;
            let items: usize = inserted.iter().map(|p| p.item_ids.len()).sum();
            tracing::info!(products = inserted.len(), items, "database seeded");
        }
    }
    Ok(())
}
