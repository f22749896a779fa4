//! shopper-bench: opens thousands of Sneakers23 shopper connections, as the book's bench does, and
//! reports what it measured.
//!
//! Each shopper opens a WebSocket to `/product_socket`, joins `cart:<random 64-char id>` with page
//! `/bench/<1..4>`, adds one random item, then stays connected (heartbeating, optionally churning its
//! cart) for the hold time. More shoppers than one process can hold (its open-file limit) are spread
//! over worker processes; connections are spread over several 127.0.0.x source addresses so that
//! tens of thousands fit in the ephemeral port range.
//!
//! With `--check-admin URL` (once per node of a cluster) the bench checks, after the hold and
//! while its shoppers are still connected, that every node's admin dashboard
//! (`/admin/aggregate.json`) counts at least the shoppers it holds (see [`admin`]); workers keep
//! their shoppers connected until the check is over.

mod admin;
mod cli;
mod plot;
mod ports;
mod report;
mod shopper;
mod timeline;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use admin::AdminReport;
use cli::{Cli, RunArgs, WorkerCommand, items, to_flags, validate};
use ports::Ports;
use report::{Summary, Tally, WireTally};
use shopper::Plan;
use timeline::{Timeline, WireTimeline};

/// The ramp's shortest sleep: shoppers due within one tick start together.
const RAMP_TICK: Duration = Duration::from_millis(5);

/// Shoppers per worker process when `--workers` is 0 (open files and ports of one process).
const PER_WORKER: u64 = 15_000;
/// New shoppers per second per worker process when `--workers` is 0: at 0.1–0.2 ms of CPU per
/// shopper (docs/BENCHMARKS.md), a one-thread worker keeps well under its one core.
const RATE_PER_WORKER: f64 = 4_000.0;

/// What a worker reported: its tally, shoppers held, ramp seconds and timeline.
type WorkerResult = (WireTally, u64, f64, WireTimeline);

/// A line a worker prints.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WorkerLine {
    /// Shoppers joined so far.
    Joined(u64),
    /// The ramp is over (every shopper joined or failed) with this many joined.
    Ramped(u64),
    /// The hold is over with this many shoppers connected; the worker keeps them until its
    /// stdin ends (the parent checks the dashboards meanwhile).
    Holding(u64),
    /// The worker's measurements, after its shoppers disconnected; `ramp_s` is the time its
    /// ramp took (every shopper joined or failed).
    Done {
        tally: Box<WireTally>,
        held: u64,
        ramp_s: f64,
        #[serde(default)]
        timeline: WireTimeline,
    },
}

/// One plan per `--url`: shopper `n` uses plan `n % len`.
fn plans(args: &RunArgs) -> anyhow::Result<Vec<Arc<Plan>>> {
    let items = items(&args.items)?;
    args.url
        .iter()
        .map(|url| plan(url, &items, args).map(Arc::new))
        .collect()
}

fn plan(url: &str, items: &[u32], args: &RunArgs) -> anyhow::Result<Plan> {
    let base = url.trim_end_matches('/');
    let host_port = base
        .strip_prefix("http://")
        .with_context(|| format!("--url {base:?}: expected http://host:port"))?;
    let server: SocketAddr = host_port
        .to_socket_addrs()
        .with_context(|| format!("--url {base:?}: cannot resolve {host_port}"))?
        .next()
        .with_context(|| format!("--url {base:?}: no address for {host_port}"))?;
    Ok(Plan {
        server,
        host: host_port.to_owned(),
        items: items.to_vec(),
        churn_per_minute: args.churn_per_minute,
        reply_timeout: Duration::from_secs_f64(args.reply_timeout_secs),
        products: args.products.clone(),
    })
}

fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(0),
    }
}

/// What [`run_here`] measured: the tally, the shoppers connected at the end of the hold, the
/// ramp's duration, the result of its `release` callback, and the run second by second.
type HereResult<R> = (Tally, u64, Duration, R, Timeline);

/// Runs `args.shoppers` shoppers in this process, reporting joins as they happen. At the end of
/// the hold, `release` is called with the number of shoppers connected, and the shoppers
/// disconnect when it returns; its result is returned with the tally.
async fn run_here<R>(
    args: &RunArgs,
    on_joined: impl Fn(u64),
    on_ramped: impl FnOnce(u64),
    release: impl AsyncFnOnce(u64) -> R,
) -> anyhow::Result<HereResult<R>> {
    let plans = plans(args)?;
    let ramp_started = Instant::now();
    let mut timeline = Timeline::default();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let sources: Vec<IpAddr> = (1..=args.sources.max(1))
        .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .collect();
    let ports = Arc::new(Ports::new(&sources, args.port_slice, args.port_slices));
    let interval = Duration::from_secs_f64(1.0 / args.ramp_rate.max(0.001));
    let shoppers = args.shoppers;
    let spawner = {
        tokio::spawn(async move {
            let mut tasks = Vec::with_capacity(shoppers as usize);
            let start = tokio::time::Instant::now();
            let due = |n: u64| start + interval.mul_f64(n as f64);
            let mut n = 0u64;
            while n < shoppers {
                // Every shopper due by now starts; then sleep until the next is due, but at
                // least a tick: one timer wake-up (and the runtime's wake-up write) per tick
                // rather than per shopper. No shopper starts early, none more than a tick late.
                let now = tokio::time::Instant::now();
                while n < shoppers && due(n) <= now {
                    let source = sources[n as usize % sources.len()];
                    tasks.push(tokio::spawn(shopper::run(
                        plans[n as usize % plans.len()].clone(),
                        source,
                        ports.clone(),
                        events_tx.clone(),
                        stop.clone(),
                    )));
                    n += 1;
                }
                if n < shoppers {
                    tokio::time::sleep_until(due(n).max(now + RAMP_TICK)).await;
                }
            }
            tasks
        })
    };
    let mut tally = Tally::default();
    let mut settled = 0u64;
    while settled < shoppers {
        let Some(event) = events.recv().await else {
            break;
        };
        let done = matches!(
            event,
            report::Event::Push(_)
                | report::Event::Declined { first: true, .. }
                | report::Event::Connect(Err(_))
                | report::Event::Join(Err(_))
        );
        let joined = matches!(event, report::Event::Join(Ok(_)));
        timeline.record(&event, ramp_started.elapsed());
        tally.add(event);
        if joined {
            on_joined(tally.joined);
        }
        if done {
            settled += 1;
        }
    }
    let ramp = ramp_started.elapsed();
    on_ramped(tally.joined);
    let tasks = spawner.await.context("shopper spawner")?;
    let hold = Duration::from_secs_f64(args.hold_secs);
    let hold_end = tokio::time::Instant::now() + hold;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(hold_end) => break,
            event = events.recv() => match event {
                Some(event) => {
                    timeline.record(&event, ramp_started.elapsed());
                    tally.add(event);
                }
                None => break,
            },
        }
    }
    timeline.extend_to(ramp_started.elapsed());
    let held = tally.joined.saturating_sub(tally.dropped());
    let released = release(held).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    while let Ok(event) = events.try_recv() {
        tally.add(event);
    }
    Ok((tally, held, ramp, released, timeline))
}

async fn worker(args: RunArgs) -> anyhow::Result<()> {
    raise_fd_limit();
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let progress = out.clone();
    let ramped = out.clone();
    let holding = out.clone();
    let (tally, held, ramp, (), timeline) = run_here(
        &args,
        move |joined| {
            if joined % 100 == 0
                && let Ok(mut out) = progress.lock()
            {
                let line = serde_json::to_string(&WorkerLine::Joined(joined)).unwrap_or_default();
                let _ = writeln!(out, "{line}");
            }
        },
        move |joined| {
            if let Ok(mut out) = ramped.lock() {
                let line = serde_json::to_string(&WorkerLine::Ramped(joined)).unwrap_or_default();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        },
        async |held| {
            if let Ok(mut out) = holding.lock() {
                let line = serde_json::to_string(&WorkerLine::Holding(held)).unwrap_or_default();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            // Hold until the parent is done checking: it closes our stdin (or dies).
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let mut line = String::new();
            let _ = tokio::io::AsyncBufReadExt::read_line(&mut stdin, &mut line).await;
        },
    )
    .await?;
    let line = serde_json::to_string(&WorkerLine::Done {
        tally: Box::new(tally.to_wire()),
        held,
        ramp_s: ramp.as_secs_f64(),
        timeline: timeline.to_wire(),
    })?;
    let mut out = out
        .lock()
        .map_err(|_| anyhow::anyhow!("stdout lock poisoned"))?;
    writeln!(out, "{line}")?;
    Ok(())
}

/// The progress shown while the bench runs: joins during the ramp, then the hold counting down.
fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} joined {pos}/{len} [{bar:40}] {rate} {elapsed}")
            .map(|style| {
                style.with_key(
                    "rate",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0} joins/s", state.per_sec());
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Switches `bar` from the ramp to the hold: `joined` shoppers held for `hold`, counted down
/// until the bar is finished (the hold's end).
fn start_hold(bar: &ProgressBar, joined: u64, hold: Duration) {
    if bar.is_hidden() || bar.is_finished() {
        return;
    }
    bar.set_style(
        ProgressStyle::with_template("{spinner} holding {msg} [{bar:40}] {left}")
            .map(|style| {
                style.with_key(
                    "left",
                    |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let left = state.len().unwrap_or(0).saturating_sub(state.pos());
                        let _ = write!(w, "{:.0} s left", left as f64 / 1000.0);
                    },
                )
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{joined} shoppers"));
    let millis = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
    bar.set_length(millis);
    bar.set_position(0);
    let bar = bar.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        while !bar.is_finished() {
            let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            bar.set_position(elapsed.min(millis));
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}

async fn run(args: RunArgs) -> anyhow::Result<Summary> {
    let fd_limit = raise_fd_limit();
    let workers = match args.workers {
        0 => args
            .shoppers
            .div_ceil(PER_WORKER)
            .max((args.ramp_rate / RATE_PER_WORKER).ceil() as u64)
            .min(args.shoppers)
            .max(1),
        n => u64::from(n),
    };
    let bar = progress_bar(args.shoppers, args.json);
    let hold = Duration::from_secs_f64(args.hold_secs);
    let joined_total = Arc::new(AtomicU64::new(0));
    let (tally, held, elapsed, ramp, admin, timeline) = if workers == 1 {
        if fd_limit > 0 && args.shoppers + 64 > fd_limit {
            bail!(
                "{} shoppers need more open files than this process may have ({fd_limit}); \
                 use --workers N to spread them over processes",
                args.shoppers
            );
        }
        let progress = bar.clone();
        let ramped = bar.clone();
        let started = Instant::now();
        let (tally, held, ramp, (elapsed, admin), timeline) = run_here(
            &args,
            move |joined| progress.set_position(joined),
            move |joined| start_hold(&ramped, joined, hold),
            async |held| {
                let elapsed = started.elapsed();
                bar.finish_and_clear();
                (elapsed, check_admin(&args, held).await)
            },
        )
        .await?;
        (tally, held, elapsed, ramp, admin, timeline)
    } else {
        let started = Instant::now();
        let exe = std::env::current_exe().context("finding this executable to start workers")?;
        let per = args.shoppers / workers;
        let mut handles = Vec::new();
        // Closing a worker's stdin lets its shoppers go (see `WorkerLine::Holding`).
        let mut stdins = Vec::new();
        // Each worker's reader sends `Some(held)` when the worker holds, `None` if it ended first.
        let (holding_tx, mut holding_rx) = mpsc::unbounded_channel::<Option<u64>>();
        let ramped_workers = Arc::new(AtomicU64::new(0));
        for w in 0..workers {
            let mut worker_args = args.clone();
            worker_args.shoppers = per + u64::from(w < args.shoppers % workers);
            worker_args.ramp_rate = args.ramp_rate / workers as f64;
            worker_args.port_slice = u32::try_from(w).unwrap_or(u32::MAX);
            worker_args.port_slices = u32::try_from(workers).unwrap_or(u32::MAX);
            let mut child = Command::new(&exe)
                .arg("worker")
                .args(to_flags(&worker_args))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting a worker process")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            stdins.push(child.stdin.take().context("worker stdin")?);
            let bar = bar.clone();
            let joined_total = joined_total.clone();
            let ramped_workers = ramped_workers.clone();
            let holding_tx = holding_tx.clone();
            handles.push(std::thread::spawn(
                move || -> anyhow::Result<WorkerResult> {
                    let mut holding = false;
                    let read = || -> anyhow::Result<WorkerResult> {
                        let mut last = 0u64;
                        for line in BufReader::new(stdout).lines() {
                            let line = line?;
                            match serde_json::from_str::<WorkerLine>(&line) {
                                Ok(WorkerLine::Joined(n)) => {
                                    let total = joined_total.fetch_add(n - last, Ordering::Relaxed)
                                        + n
                                        - last;
                                    last = n;
                                    bar.set_position(total);
                                }
                                Ok(WorkerLine::Ramped(n)) => {
                                    let total = joined_total.fetch_add(n - last, Ordering::Relaxed)
                                        + n
                                        - last;
                                    last = n;
                                    bar.set_position(total);
                                    if ramped_workers.fetch_add(1, Ordering::Relaxed) + 1 == workers
                                    {
                                        start_hold(&bar, total, hold);
                                    }
                                }
                                Ok(WorkerLine::Holding(held)) => {
                                    holding = true;
                                    let _ = holding_tx.send(Some(held));
                                }
                                Ok(WorkerLine::Done {
                                    tally,
                                    held,
                                    ramp_s,
                                    timeline,
                                }) => {
                                    let _ = child.wait();
                                    return Ok((*tally, held, ramp_s, timeline));
                                }
                                Err(_) => {}
                            }
                        }
                        let status = child.wait()?;
                        bail!("worker ended without a result ({status})")
                    };
                    let result = read();
                    if !holding {
                        let _ = holding_tx.send(None);
                    }
                    result
                },
            ));
        }
        drop(holding_tx);
        let mut holding = 0;
        let mut every_worker_holds = true;
        for _ in 0..workers {
            match holding_rx.recv().await {
                Some(Some(held)) => holding += held,
                Some(None) | None => every_worker_holds = false,
            }
        }
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        // A failed worker fails the run below; checking the dashboards would only delay that.
        let admin = if every_worker_holds {
            check_admin(&args, holding).await
        } else {
            None
        };
        drop(stdins);
        let mut tally = Tally::default();
        let mut timeline = Timeline::default();
        let mut held = 0;
        let mut ramp = Duration::ZERO;
        for handle in handles {
            let (wire, h, ramp_s, worker_timeline) = handle
                .join()
                .map_err(|_| anyhow::anyhow!("worker reader thread panicked"))??;
            tally.merge(&wire);
            timeline.merge(&worker_timeline);
            held += h;
            // The workers ramp side by side: the run's ramp ends with the slowest.
            ramp = ramp.max(Duration::from_secs_f64(ramp_s.max(0.0)));
        }
        (tally, held, elapsed, ramp, admin, timeline)
    };
    bar.finish_and_clear();
    let mut summary = tally.summary(args.shoppers, held, elapsed, ramp);
    summary.admin_check = admin;
    if let Some(path) = &args.plot {
        plot::write(path, &timeline.points(), args.shoppers)?;
    }
    Ok(summary)
}

/// With `--check-admin`, checks every dashboard against the `held` shoppers (still connected).
async fn check_admin(args: &RunArgs, held: u64) -> Option<AdminReport> {
    if args.check_admin.is_empty() {
        return None;
    }
    if !args.json {
        eprintln!(
            "checking {} admin dashboard(s) for {held} shoppers (up to {} s)",
            args.check_admin.len(),
            args.check_admin_wait_secs
        );
    }
    let credentials = admin::Credentials {
        user: args.admin_user.clone(),
        password: args.admin_password.clone(),
    };
    let wait = Duration::try_from_secs_f64(args.check_admin_wait_secs).unwrap_or_default();
    Some(admin::check(&args.check_admin, &credentials, held, wait).await)
}

fn main() -> std::process::ExitCode {
    match run_cli() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The error and its causes on one line, never a backtrace: these are a user's
            // mistakes and the store's answers, not the bench's bugs.
            eprintln!("shopper-bench: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_cli() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.worker {
        Some(WorkerCommand::Worker(args)) => args.threads,
        None => cli.run.threads,
    };
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    // The run is a task of the runtime rather than the future `block_on` polls: the shoppers'
    // events then wake it through the runtime's own queue, where waking `block_on`'s future
    // would write to the runtime's wake-up descriptor (a `write` and an `epoll_wait` more).
    runtime.block_on(async move {
        let run = match cli.worker {
            Some(WorkerCommand::Worker(args)) => tokio::spawn(worker(args)),
            None => tokio::spawn(lead(cli.run)),
        };
        run.await.context("the run's task")?
    })
}

/// The run as the user asked for it: alone or over worker processes, then the summary.
async fn lead(args: RunArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let summary = run(args.clone()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{summary}");
    }
    if args.shoppers > 0 && summary.shoppers_joined == 0 {
        bail!(nobody_joined(&args, &summary));
    }
    if let Some(failure) = summary.admin_check.as_ref().and_then(AdminReport::failure) {
        bail!(failure);
    }
    if args.strict
        && (summary.shoppers_joined != args.shoppers || summary.add_item_answered < args.shoppers)
    {
        bail!(
            "strict: {} of {} shoppers joined and {} add_item were answered",
            summary.shoppers_joined,
            args.shoppers,
            summary.add_item_answered
        );
    }
    Ok(())
}

/// Why a run in which no shopper joined failed, in the user's terms.
fn nobody_joined(args: &RunArgs, summary: &Summary) -> String {
    let urls = args.url.join(", ");
    let most = summary
        .errors
        .iter()
        .max_by_key(|(_, count)| **count)
        .map(|(error, count)| format!("{count} × {error}"))
        .unwrap_or_else(|| "no answer".to_owned());
    let hint = if most.contains("connect:") {
        format!("is the store running at {urls}? (start it with `sneakers23 serve`)")
    } else if most.contains("join:") {
        format!("the store at {urls} refused the cart channel joins")
    } else {
        format!("check the store at {urls}")
    };
    format!("no shopper joined: 0 of {} ({most}); {hint}", args.shoppers)
}
