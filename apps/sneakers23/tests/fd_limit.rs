//! Running out of file descriptors is an error and a metric, never a crash: the real store binary
//! under `ulimit -n 64` (soft and hard, so that raising the soft limit at start cannot lift it)
//! is sent more connections than it has descriptors for and held there. The connections it cannot
//! accept are closed (the client sees them end), the process keeps running, logs a clear error,
//! counts them in `/metrics`, and serves again once the connections are released.

mod common;

use std::time::Duration;

use common::EVENT_TIMEOUT;
use common::process::{BIN, StoreProcess};
use common::web::{Response, try_get};
use sneakers23::listener::REFUSED_NO_FDS_TOTAL;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::task::JoinSet;

/// The open-file limit the store runs under.
const FD_LIMIT: u32 = 64;
/// Connections opened and held: well over the limit.
const CONNECTIONS: usize = 150;
/// How long to wait for the store to come back after the connections are released.
const RECOVERY: Duration = Duration::from_secs(20);

/// The value of the unlabelled counter `name` in a Prometheus text, if present.
fn counter(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// Reads `path` until the store answers it, for at most `deadline`.
async fn get_eventually(store: &StoreProcess, path: &str, deadline: Duration) -> Response {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(response) = try_get(store.addr, path).await {
            return response;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "GET {path} never answered within {deadline:?}:\n{}",
            store.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_refuses_counts_and_recovers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" serve"))
        .arg(BIN)
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/store.db", dir.path().display()),
        )
        .env(
            "SECRET_KEY_BASE",
            "fd limit test secret key base, long enough for every signer",
        )
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("POOL_SIZE", "2")
        .env("RUST_LOG", "warn");
    let mut store = StoreProcess::spawn(command).await;

    let metrics = get_eventually(&store, "/metrics", EVENT_TIMEOUT).await;
    assert_eq!(
        counter(&metrics.body, REFUSED_NO_FDS_TOTAL),
        Some(0.0),
        "the counter is shown, at 0, before anything is refused:\n{}",
        metrics.body
    );

    // Open and hold many more connections than the store has descriptors for. Each holder
    // reports when the store closes its connection (a refusal: no request was ever sent).
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut held = JoinSet::new();
    for n in 0..CONNECTIONS {
        let stream = tokio::time::timeout(EVENT_TIMEOUT, TcpStream::connect(store.addr))
            .await
            .expect("the kernel completes the handshake in time")
            .expect("connecting");
        let closed = closed_tx.clone();
        held.spawn(async move {
            let mut stream = stream;
            let mut buf = [0u8; 64];
            if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                let _ = closed.send(n);
            }
            // Keep the (closed) stream until released, like the open ones.
            std::future::pending::<()>().await;
        });
    }
    let first = tokio::time::timeout(EVENT_TIMEOUT, closed_rx.recv())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no connection was refused although {CONNECTIONS} were opened under a limit of \
                 {FD_LIMIT}:\n{}",
                store.log()
            )
        });
    assert!(first.is_some());
    assert!(store.is_running(), "the store died:\n{}", store.log());

    // The error is in the log, saying what to do.
    let until = tokio::time::Instant::now() + EVENT_TIMEOUT;
    while !store.log().contains("out of file descriptors") {
        assert!(
            tokio::time::Instant::now() < until,
            "no clear error in the log:\n{}",
            store.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = store.log();
    assert!(
        log.contains("connections refused") && log.contains("raise the limit"),
        "{log}"
    );

    // Release every connection: the store serves again and has counted the refusals.
    held.abort_all();
    while held.join_next().await.is_some() {}
    let mut refused_by_client = 1;
    while closed_rx.try_recv().is_ok() {
        refused_by_client += 1;
    }
    let metrics = get_eventually(&store, "/metrics", RECOVERY).await;
    assert_eq!(metrics.status, 200);
    let refused = counter(&metrics.body, REFUSED_NO_FDS_TOTAL).unwrap_or(0.0);
    assert!(
        refused > 0.0,
        "{REFUSED_NO_FDS_TOTAL} is {refused} after {refused_by_client} connections were seen \
         refused:\n{}",
        metrics.body
    );
    let health = get_eventually(&store, "/health", RECOVERY).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let page = get_eventually(&store, "/", RECOVERY).await;
    assert_eq!(page.status, 200);
    assert!(store.is_running(), "the store died:\n{}", store.log());
}
