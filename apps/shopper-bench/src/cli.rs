//! The command line: the flags of a run, the hidden worker subcommand, and the checks and
//! conversions of those flags (a worker process is started with the same flags as its parent).

use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::plot;

#[derive(Parser)]
#[command(about = "Load tester: simulated Sneakers23 shoppers over the Phoenix Channels protocol")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) worker: Option<WorkerCommand>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Subcommand)]
pub(crate) enum WorkerCommand {
    /// (internal) one worker process of a multi-process run; prints JSON lines.
    #[command(hide = true)]
    Worker(RunArgs),
}

#[derive(Args, Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RunArgs {
    /// The store's base URL. Repeat once per node of a cluster: shoppers are spread over the
    /// nodes in turn.
    #[arg(long, env = "BENCH_URL", default_value = "http://127.0.0.1:4000")]
    pub(crate) url: Vec<String>,
    /// Shoppers to open.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub(crate) shoppers: u64,
    /// New shoppers per second while ramping up.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) ramp_rate: f64,
    /// Seconds to stay connected after the ramp.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) hold_secs: f64,
    /// Cart operations (add or remove) per shopper per minute while holding.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) churn_per_minute: f64,
    /// Product ids whose `product:<id>` channel every shopper joins, as a product page does
    /// (e.g. `1,2`); the summary tells when `stock_change` pushes arrived on them.
    #[arg(long, value_delimiter = ',')]
    pub(crate) products: Vec<u32>,
    /// Item ids shoppers pick from, as a range `FIRST-LAST` (the seeded store has 1-26).
    #[arg(long, default_value = "1-26")]
    pub(crate) items: String,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread connections over (about 50,000
    /// connections each).
    #[arg(long, default_value_t = 4)]
    pub(crate) sources: u8,
    /// (internal) this worker's share of the local ports: slice N of --port-slices.
    #[arg(long, hide = true, default_value_t = 0)]
    pub(crate) port_slice: u32,
    /// (internal) how many workers share the local ports.
    #[arg(long, hide = true, default_value_t = 1)]
    pub(crate) port_slices: u32,
    /// Worker processes (0 = one per 15,000 shoppers and per 4,000/s of --ramp-rate).
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: u32,
    /// Threads of each process (0 = one per core). One thread spends about a quarter less CPU per
    /// shopper (no wake-ups and hand-offs between threads) and measures latency best: the reply
    /// that wakes a shopper is read by the thread that waits for it; more processes
    /// (--workers) are the cheaper way to more cores.
    #[arg(long, default_value_t = 1)]
    pub(crate) threads: usize,
    /// Seconds to wait for any reply before counting a timeout.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) reply_timeout_secs: f64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write a chart of the run to this file: connected shoppers and round-trip latency
    /// percentiles, second by second. PNG or SVG, after the name's extension (.png, .svg).
    #[arg(long, value_name = "FILE")]
    pub(crate) plot: Option<std::path::PathBuf>,
    /// After the hold, with the shoppers still connected, check that the admin dashboard
    /// aggregate at this URL (the store's `/admin/aggregate.json`) counts at least the shoppers
    /// the bench holds. Repeat once per node of a cluster: every node must.
    #[arg(long, value_name = "URL")]
    pub(crate) check_admin: Vec<String>,
    /// Longest wait, in seconds, for every --check-admin dashboard to count the shoppers (the
    /// aggregate is published every 250 ms and replicated across nodes by the tracker).
    #[arg(long, env = "BENCH_CHECK_ADMIN_WAIT_SECS", default_value_t = 10.0)]
    pub(crate) check_admin_wait_secs: f64,
    /// Admin user for --check-admin.
    #[arg(long, env = "ADMIN_USER", default_value = "admin")]
    pub(crate) admin_user: String,
    /// Admin password for --check-admin.
    #[arg(
        long,
        env = "ADMIN_PASSWORD",
        hide_env_values = true,
        default_value = "password"
    )]
    pub(crate) admin_password: String,
    /// Fail (exit 1) unless every shopper joined and every first add_item was answered (ok or an
    /// error reply such as `out_of_stock`).
    #[arg(long)]
    pub(crate) strict: bool,
}

/// The item ids of `--items FIRST-LAST`.
pub(crate) fn items(spec: &str) -> anyhow::Result<Vec<u32>> {
    let (first, last) = spec
        .split_once('-')
        .with_context(|| format!("--items {spec:?}: expected FIRST-LAST, e.g. 1-26"))?;
    let first: u32 = first
        .trim()
        .parse()
        .with_context(|| format!("--items {spec:?}"))?;
    let last: u32 = last
        .trim()
        .parse()
        .with_context(|| format!("--items {spec:?}"))?;
    if first > last {
        bail!("--items {spec:?}: FIRST must not exceed LAST");
    }
    Ok((first..=last).collect())
}

/// The flags that make a worker run `args`.
pub(crate) fn to_flags(args: &RunArgs) -> Vec<String> {
    let mut flags: Vec<String> = args.url.iter().map(|url| format!("--url={url}")).collect();
    flags.extend([
        format!("--shoppers={}", args.shoppers),
        format!("--ramp-rate={}", args.ramp_rate),
        format!("--hold-secs={}", args.hold_secs),
        format!("--churn-per-minute={}", args.churn_per_minute),
        format!("--items={}", args.items),
        format!("--sources={}", args.sources),
        format!("--reply-timeout-secs={}", args.reply_timeout_secs),
        format!("--threads={}", args.threads),
        format!("--port-slice={}", args.port_slice),
        format!("--port-slices={}", args.port_slices),
        "--workers=1".to_owned(),
    ]);
    if !args.products.is_empty() {
        let products: Vec<String> = args.products.iter().map(u32::to_string).collect();
        flags.push(format!("--products={}", products.join(",")));
    }
    flags
}

/// Refuses durations that are negative or not numbers before anything starts.
pub(crate) fn validate(args: &RunArgs) -> anyhow::Result<()> {
    for (flag, value) in [
        ("--hold-secs", args.hold_secs),
        ("--reply-timeout-secs", args.reply_timeout_secs),
        ("--check-admin-wait-secs", args.check_admin_wait_secs),
    ] {
        if Duration::try_from_secs_f64(value).is_err() {
            bail!("{flag} {value}: expected a number of seconds >= 0");
        }
    }
    if let Some(path) = &args.plot {
        plot::format_of(path)?;
    }
    Ok(())
}
