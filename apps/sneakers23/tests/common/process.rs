//! The store as a real process: `sneakers23 serve` started by a test, its address read from the
//! `listening on http://ADDR` line it prints, its log collected.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The store binary Cargo built for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_sneakers23");

/// A running store process, killed when dropped.
pub struct StoreProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub child: Child,
    /// Everything it wrote to stderr so far (its log), and its output after the address.
    pub log: Arc<Mutex<String>>,
}

impl StoreProcess {
    /// Spawns `command` (which must end up running `sneakers23 serve`) with piped output and
    /// waits up to 30 s for it to print its address; panics with its log otherwise.
    pub async fn spawn(mut command: Command) -> StoreProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("starting the store");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("listening on http://") {
                    return url.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the store did not start:\n{}", log.lock()));
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
        StoreProcess { addr, child, log }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().clone()
    }
}
