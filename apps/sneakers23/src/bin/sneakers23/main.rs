//! The `sneakers23` binary: the store's server and its operator commands.
//!
//! - `serve` runs a node (see `sneakers23::node`), every setting a flag with an environment
//!   variable fallback;
//! - `release`, `sell`, `sell-random-until-gone`, `presence list` and `inventory` act through a
//!   running node's control API, so its cache, its replication and its browsers see the change;
//! - `migrate`, `reset` and `seed` act on the database directly (while a node runs, `reset` and
//!   `seed` leave its cache stale: restart it).
//!
//! `cli.rs` declares the commands and their flags; `commands.rs` runs them.

mod cli;
mod commands;

use clap::Parser;

use cli::Cli;

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sneakers23: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The error and its causes, never a backtrace (even with RUST_BACKTRACE=1): these
            // are the user's input and the environment's answers, not bugs of the program.
            eprintln!("sneakers23: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    commands::run(Cli::parse().command).await
}
