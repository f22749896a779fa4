//! A server binary run by a test, found by the address it prints.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, Command};

/// How long a server may take to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process, killed when dropped.
pub struct ListeningProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The process.
    pub child: Child,
    /// Everything it wrote to stderr so far (its log), and what it wrote to stdout after the
    /// address.
    pub log: Arc<Mutex<String>>,
}

impl ListeningProcess {
    /// Spawns `command` with piped output and waits up to [`START_TIMEOUT`] for it to print
    /// `listening on http://ADDR` on stdout; panics with its log otherwise.
    ///
    /// Both pipes are read for as long as the process runs, so that it never blocks on a full
    /// pipe nor fails writing into a closed one.
    pub async fn spawn(mut command: Command) -> ListeningProcess {
        let program = Path::new(command.as_std().get_program())
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        tokio::spawn(collect(BufReader::new(stderr).lines(), log.clone()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stdout = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = stdout.next_line().await {
                if let Some(url) = line.strip_prefix("listening on http://") {
                    return url.trim().parse::<SocketAddr>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{program} did not start:\n{}", log.lock()));
        tokio::spawn(collect(stdout, log.clone()));
        ListeningProcess { addr, child, log }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().clone()
    }

    /// Stops the process now.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Appends every line of `lines` to `log` until the output ends.
async fn collect(mut lines: Lines<impl AsyncBufRead + Unpin>, log: Arc<Mutex<String>>) {
    while let Ok(Some(line)) = lines.next_line().await {
        let mut log = log.lock();
        log.push_str(&line);
        log.push('\n');
    }
}
