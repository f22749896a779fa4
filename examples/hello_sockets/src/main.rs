//! hello_sockets: the first examples of *Real-Time Phoenix*, on this project's stack.
//!
//! - `hello_sockets demo`: two tracker replicas in one process (an in-memory network between
//!   them) track users and converge; the UserTracker logs every join and leave it sees.
//! - `hello_sockets serve`: a server with the book's sockets — `/socket` (a `ping` channel),
//!   `/auth_socket` (token-authenticated, `user:<id>` channels), `/tracked_socket` (the `tracked`
//!   channel that tracks its user after joining) — and a page at `/tracked?user_id=…` showing who
//!   is online, live.

mod sockets;
mod user_tracker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "The first examples of Real-Time Phoenix, in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Two in-process tracker replicas converging on the same user list.
    Demo,
    /// Serve the book's sockets and the tracked page.
    Serve {
        /// Port to listen on (0 = any free port).
        #[arg(long, env = "PORT", default_value_t = 4000)]
        port: u16,
        /// Secret the auth socket's tokens are signed with (at least 20 bytes).
        #[arg(
            long,
            env = "SECRET_KEY_BASE",
            default_value = "hello-sockets-development-secret-key-base-0123456789"
        )]
        secret_key_base: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Demo => user_tracker::demo().await,
        Command::Serve {
            port,
            secret_key_base,
        } => sockets::serve(port, &secret_key_base).await,
    }
}
