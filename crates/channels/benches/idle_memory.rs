//! Server memory per idle connection with one joined channel.
//!
//! The process that runs this bench is the server: an [`Endpoint`] and a WebSocket
//! [`socket_router`] on axum, a socket that accepts everyone and a channel that accepts every join.
//! The clients run in a second process (this same executable, started again with
//! `IDLE_MEMORY_ROLE=client`) so that their memory is not counted: each of its N connections
//! speaks protocol 2.0.0, joins one channel, then only heartbeats every 30 s as phoenix.js does.
//!
//! The server reads its own resident memory (`VmRSS` and its anonymous part `RssAnon`, from
//! `/proc/self/status`) once it listens, waits until its channel has seen N joins and the client
//! process has received N join replies, lets things settle, reads it again and prints the
//! difference divided by N. Kernel socket buffers are not part of a process's RSS, so the figure is
//! what the server's own heap, tasks and runtime pay per connection.
//!
//! Run with `cargo bench -p phoenix-channels-server --bench idle_memory`. Environment:
//!
//! * `IDLE_CONNECTIONS` (default 10000): N. Each process holds N sockets, so N is bounded by the
//!   open-file limit (the soft limit is raised to the hard one when needed).
//! * `IDLE_TOPIC` (`shared`, default, or `unique`): every connection joins `room:lobby`, or each
//!   joins its own `room:<i>` (one pubsub topic per connection, as a cart channel does).
//! * `IDLE_SETTLE_SECS` (default 3): how long to wait once everything is joined before reading.
//! * `IDLE_ROUNDS` (default 2): how many times the N clients connect, idle and leave. The figure
//!   is the first round's; later rounds show whether the memory of closed connections is reused.
//! * `MALLOC_ARENA_MAX`: read by glibc at start and printed with the results, since glibc's
//!   per-thread arenas can inflate RSS (here they did not: 2 and unset give the same figure).
//!
//! Linux only (`/proc`). Every connection goes from 127.0.0.1 to one port, which the default
//! ephemeral port range (~28,000 ports) allows well beyond the open-file limit.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::server::transport::{Transports, socket_router};
use channels::server::{
    Channel, Context, Endpoint, EndpointConfig, Outcome, Reply, Routes, StopReason,
};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ROLE: &str = "IDLE_MEMORY_ROLE";
const SERVER_ADDR: &str = "IDLE_MEMORY_SERVER";
const RAISED: &str = "IDLE_MEMORY_FD_RAISED";
/// Connections the client process opens at once.
const CONNECT_CONCURRENCY: usize = 128;
/// Open files a process needs beyond its N sockets (listener, runtime, std streams).
const SPARE_FDS: u64 = 64;
const READY_TIMEOUT: Duration = Duration::from_secs(600);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not valid; unset it or fix it")),
        Err(_) => default,
    }
}

fn connections() -> usize {
    env_or("IDLE_CONNECTIONS", 10_000usize).max(1)
}

fn unique_topics() -> bool {
    match std::env::var("IDLE_TOPIC").as_deref() {
        Err(_) | Ok("shared") => false,
        Ok("unique") => true,
        Ok(other) => panic!("IDLE_TOPIC={other:?}: expected `shared` or `unique`"),
    }
}

fn topic(i: usize, unique: bool) -> String {
    if unique {
        format!("room:{i}")
    } else {
        "room:lobby".to_owned()
    }
}

/// `(soft, hard)` limit on open files, from `/proc/self/limits`.
fn fd_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read /proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("/proc/self/limits has a `Max open files` line");
    let mut fields = line["Max open files".len()..].split_whitespace();
    let mut next = || match fields.next() {
        Some("unlimited") => u64::MAX,
        Some(n) => n.parse().expect("open-file limit is a number"),
        None => panic!("malformed `Max open files` line: {line}"),
    };
    (next(), next())
}

/// Makes sure this process may hold `needed` open files: when the soft limit is lower and the
/// hard one allows it, runs this executable again through `sh -c 'ulimit -S -n HARD; exec …'`
/// (the workspace forbids `unsafe`, and this avoids a dependency for one system call).
fn ensure_fd_limit(needed: u64) {
    let (soft, hard) = fd_limits();
    if soft >= needed {
        return;
    }
    if hard < needed || std::env::var_os(RAISED).is_some() {
        eprintln!(
            "idle_memory: {needed} open files needed, the limit is {soft} (hard {hard}); \
             lower IDLE_CONNECTIONS or raise `ulimit -n`"
        );
        std::process::exit(2);
    }
    let exe = std::env::current_exe().expect("path of this executable");
    let limit = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n \"$0\" && exec \"$@\"")
        .arg(limit)
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(RAISED, "1")
        .status()
        .expect("run sh to raise the open-file limit");
    std::process::exit(status.code().unwrap_or(1));
}

fn main() {
    let n = connections();
    ensure_fd_limit(n as u64 + SPARE_FDS);
    if std::env::var(ROLE).as_deref() == Ok("client") {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("client runtime");
        std::process::exit(runtime.block_on(client(n)));
    }
    // The store's runtime: `#[tokio::main]`, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    runtime.block_on(server(n));
}

// ---------------------------------------------------------------------------------------------
// Server side: the measured process.

/// Accepts every join and counts it once its subscription is in place.
struct Idle {
    joined: Arc<watch::Sender<usize>>,
}

#[async_trait]
impl Channel for Idle {
    async fn join(
        &mut self,
        _: &str,
        _: Payload,
        _: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        Ok(OutPayload::empty())
    }
    async fn after_join(&mut self, _: &mut Context<'_>) -> Result<(), StopReason> {
        self.joined.send_modify(|n| *n += 1);
        Ok(())
    }
    async fn handle_in(&mut self, _: &str, _: Payload, _: &mut Context<'_>) -> Outcome {
        Reply::ok(OutPayload::empty()).into()
    }
}

/// `VmRSS` and `RssAnon` of this process, in bytes.
#[derive(Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
}

fn rss() -> Rss {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("/proc/self/status has no {name} line"))
    };
    Rss {
        total: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn per_connection(after: u64, before: u64, n: usize) -> String {
    let bytes = after.saturating_sub(before) as f64 / n as f64;
    format!("{bytes:.0} B ({:.2} KiB)", bytes / 1024.0)
}

async fn server(n: usize) {
    let unique = unique_topics();
    let settle = Duration::from_secs(env_or("IDLE_SETTLE_SECS", 3u64));
    let rounds = env_or("IDLE_ROUNDS", 2usize).max(1);
    let endpoint = Endpoint::new(pubsub::PubSub::new("idle"), EndpointConfig::default());
    let (joined, mut joins) = watch::channel(0usize);
    let joined = Arc::new(joined);
    let routes = Routes::new().route("room:*", move |_| {
        Box::new(Idle {
            joined: joined.clone(),
        }) as Box<dyn Channel>
    });
    let app = axum::Router::new().nest(
        "/socket",
        socket_router(
            endpoint.clone(),
            Arc::new(routes),
            Transports::websocket_only(),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port on 127.0.0.1");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server runs");
    });
    let before = rss();

    let mut rows = Vec::new();
    let mut summary = String::new();
    for round in 1..=rounds {
        let exe = std::env::current_exe().expect("path of this executable");
        let mut child = tokio::process::Command::new(exe)
            .env(ROLE, "client")
            .env(SERVER_ADDR, addr.to_string())
            .env("IDLE_CONNECTIONS", n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the client process");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("client stdout")).lines();
        let started = Instant::now();
        let target = n * round;

        // Wait on the two events, not on time: the channel counted N more joins, and the client
        // process received N join replies. A client failure ends the wait at once.
        let ready = async {
            let mut replied = None;
            loop {
                if let Some(line) = &replied
                    && *joins.borrow() >= target
                {
                    return String::clone(line);
                }
                tokio::select! {
                    line = lines.next_line(), if replied.is_none() => {
                        match line.expect("read the client's output") {
                            Some(line) if line.starts_with("joined ") => replied = Some(line),
                            Some(line) => panic!("client process: {line}"),
                            None => panic!("the client process ended before joining"),
                        }
                    }
                    changed = joins.changed() => changed.expect("join counter alive"),
                }
            }
        };
        let line = tokio::time::timeout(READY_TIMEOUT, ready)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "round {round}: {} of {target} joins after {READY_TIMEOUT:?}; giving up",
                    *joins.borrow()
                )
            });
        let join_time = started.elapsed();
        assert_eq!(endpoint.connection_count(), n, "open connections");
        if !unique {
            assert_eq!(
                endpoint.pubsub().subscriber_count("room:lobby"),
                n,
                "subscribers of room:lobby"
            );
        }
        tokio::time::sleep(settle).await;
        let during = rss();
        assert_eq!(
            endpoint.connection_count(),
            n,
            "connections still open after settling"
        );
        if round == 1 {
            summary = format!("{} in {:.1} s", line.trim(), join_time.as_secs_f64());
        }

        // The clients leave; what stays resident afterwards is what the allocator keeps for reuse
        // (the next round shows whether it is reused or leaked).
        drop(stdin);
        let _ = child.kill().await;
        let closing = Instant::now();
        while endpoint.connection_count() > 0 && closing.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let open = endpoint.connection_count();
        tokio::time::sleep(settle).await;
        rows.push((during, rss(), open));
    }

    let arenas = std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "unset".to_owned());
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "idle_memory: {n} WebSocket connections, vsn 2.0.0, one joined channel each ({}), \
         {workers} runtime workers, MALLOC_ARENA_MAX {arenas}; {summary}, settled {} s",
        if unique {
            "own topic room:<i>"
        } else {
            "all on room:lobby"
        },
        settle.as_secs()
    );
    println!("| server process | VmRSS | RssAnon |");
    println!("|---|---|---|");
    println!(
        "| listening, no connections | {} | {} |",
        mib(before.total),
        mib(before.anon)
    );
    for (i, (during, after, open)) in rows.iter().enumerate() {
        let round = i + 1;
        println!(
            "| round {round}: {n} idle joined connections | {} | {} |",
            mib(during.total),
            mib(during.anon)
        );
        if round == 1 {
            println!(
                "| **per idle connection** | **{}** | {} |",
                per_connection(during.total, before.total, n),
                per_connection(during.anon, before.anon, n)
            );
        }
        println!(
            "| round {round}: after the clients left ({open} still open) | {} | {} |",
            mib(after.total),
            mib(after.anon)
        );
    }
    let (first, _, _) = rows[0];
    println!(
        "idle_memory_per_connection_bytes {:.0}",
        first.total.saturating_sub(before.total) as f64 / n as f64
    );
}

// ---------------------------------------------------------------------------------------------
// Client side: not measured.

async fn client(n: usize) -> i32 {
    let addr = std::env::var(SERVER_ADDR).expect("server address from the parent");
    let unique = unique_topics();
    // Exit when the parent goes away (its end of our stdin closes).
    tokio::spawn(async {
        let mut sink = Vec::new();
        let _ = tokio::io::stdin().read_to_end(&mut sink).await;
        std::process::exit(0);
    });
    let (done, mut dones) = mpsc::unbounded_channel::<Result<(), String>>();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    for i in 0..n {
        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
        let url = format!("ws://{addr}/socket/websocket?vsn=2.0.0");
        let topic = topic(i, unique);
        let done = done.clone();
        tokio::spawn(async move {
            let ws = match join(&url, &topic).await {
                Ok(ws) => ws,
                Err(error) => {
                    let _ = done.send(Err(format!("connection {i}: {error}")));
                    return;
                }
            };
            drop(permit);
            let _ = done.send(Ok(()));
            idle(ws).await;
        });
    }
    drop(done);
    let mut joined = 0;
    while let Some(result) = dones.recv().await {
        match result {
            Ok(()) => joined += 1,
            Err(error) => {
                println!("failed {error}");
                return 1;
            }
        }
        if joined == n {
            break;
        }
    }
    println!("joined {joined}");
    std::future::pending::<()>().await;
    0
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects, joins `topic` and waits for the ok reply.
async fn join(url: &str, topic: &str) -> Result<Ws, String> {
    // Small client buffers: 10k connections with the default 128 KiB would need 1.3 GB here.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut attempt = 0;
    let (mut ws, _) = loop {
        match tokio_tungstenite::connect_async_with_config(url, Some(config), true).await {
            Ok(connected) => break connected,
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
            Err(error) => return Err(format!("connect: {error}")),
        }
    };
    let frame = format!(r#"["1","1","{topic}","phx_join",{{}}]"#);
    ws.send(Message::text(frame))
        .await
        .map_err(|e| format!("send join: {e}"))?;
    let reply = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Text(text)) => return Ok(text.to_string()),
                Ok(_) => continue,
                Err(error) => return Err(format!("read join reply: {error}")),
            }
        }
        Err("closed before the join reply".to_owned())
    })
    .await
    .map_err(|_| "no join reply within 60 s".to_owned())??;
    if reply.contains(r#""phx_reply""#) && reply.contains(r#""status":"ok""#) {
        Ok(ws)
    } else {
        Err(format!("join refused: {reply}"))
    }
}

/// Heartbeats every 30 s like phoenix.js, and reads (then drops) whatever the server sends.
async fn idle(mut ws: Ws) {
    let period = Duration::from_secs(30);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut next_ref = 2u64;
    loop {
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
            _ = beat.tick() => {
                let frame = format!(r#"[null,"{next_ref}","phoenix","heartbeat",{{}}]"#);
                next_ref += 1;
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
            }
        }
    }
}
