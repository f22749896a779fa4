//! No single client takes a node down by holding connections, against the real binary under
//! a reduced descriptor budget: one address opens far more silent connections than the node
//! has descriptors; the node closes those over the per-address cap at once and the rest when
//! the header-read timeout passes (a slowloris trickling its request head included), counts
//! the refusals, and meanwhile a shopper from another address loads the page and opens a
//! WebSocket.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::process::{BIN, StoreProcess};
use common::web::{PhxSocket, try_get};
use common::{Backend, EVENT_TIMEOUT, TestDb, eventually, insert_fixture};
use sneakers23::server::REFUSED_PER_IP_TOTAL;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;
use tokio::task::JoinSet;

/// The node's open-file limit (soft and hard).
const FD_LIMIT: u32 = 256;
/// Silent connections the attacker opens: well over the limit.
const SILENT: usize = 600;
/// The per-address cap the node runs with.
const PER_IP: usize = 40;
/// The header-read timeout the node runs with.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

async fn connect_from(source: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("binding the source address");
    tokio::time::timeout(EVENT_TIMEOUT, socket.connect(to))
        .await
        .expect("the handshake in time")
        .expect("connecting")
}

fn counter(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_and_timed_out_while_a_shopper_gets_in() {
    let t = TestDb::new(Backend::Sqlite).await;
    insert_fixture(&t.db, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" serve"))
        .arg(BIN)
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", &t.url)
        .env(
            "SECRET_KEY_BASE",
            "connection limits test secret key base, long enough",
        )
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false")
        .env("POOL_SIZE", "2")
        .env("MAX_CONNECTIONS_PER_IP", PER_IP.to_string())
        .env("PER_IP_LIMIT_LOOPBACK", "true")
        .env(
            "HEADER_READ_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        )
        .env("RUST_LOG", "info");
    let mut store = StoreProcess::spawn(command).await;

    // The attacker: many silent connections and a few slowloris request heads, all held.
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut held = JoinSet::new();
    let opened = Instant::now();
    for n in 0..SILENT {
        let mut stream = connect_from(ATTACKER, store.addr).await;
        let closed = closed_tx.clone();
        held.spawn(async move {
            let mut buf = [0u8; 256];
            if n % 100 == 0 {
                // Slowloris: a request head one byte at a time, never finished.
                for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
                    if stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            } else {
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            let _ = closed.send(opened.elapsed());
            std::future::pending::<()>().await;
        });
    }

    // A shopper from another address gets the page and a WebSocket meanwhile.
    let page = try_get(store.addr, "/").await.expect("the product page");
    assert_eq!(page.status, 200);
    let mut socket = PhxSocket::connect(store.addr).await;
    socket.join_ok("product:1", serde_json::json!({})).await;

    // Every attacker connection is closed: the ones over the cap at once, the others by the
    // header-read timeout.
    let mut closed = Vec::new();
    while closed.len() < SILENT {
        match tokio::time::timeout(EVENT_TIMEOUT * 2, closed_rx.recv()).await {
            Ok(Some(at)) => closed.push(at),
            _ => panic!(
                "only {} of {SILENT} silent connections were closed:\n{}",
                closed.len(),
                store.log()
            ),
        }
    }
    let late = closed.iter().filter(|at| **at >= HEADER_TIMEOUT).count();
    assert!(
        late <= PER_IP,
        "at most the capped {PER_IP} waited for the timeout, {late} did"
    );
    assert!(late > 0, "the admitted ones were closed by the timeout");

    let metrics = try_get(store.addr, "/metrics").await.expect("metrics");
    let refused = counter(&metrics.body, REFUSED_PER_IP_TOTAL).unwrap_or_default();
    assert!(
        refused >= (SILENT - PER_IP) as f64,
        "{refused} refusals counted:\n{}",
        metrics.body
    );
    assert!(store.is_running());
    // The shopper's socket is still served.
    socket.join_ok("product:2", serde_json::json!({})).await;
    // The refusals are logged, but not one line each.
    let log = store.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("too many open from one address"))
        .count();
    assert!(
        (1..=sneakers23::logs::BURST as usize).contains(&lines),
        "{lines} lines"
    );
    held.abort_all();
    assert!(
        eventually(EVENT_TIMEOUT, || async {
            try_get(store.addr, "/health").await.is_some()
        })
        .await
    );
}
