//! The HTTP listener, and what it does when the process runs out of file descriptors.
//!
//! # The problem
//!
//! Every shopper holds a WebSocket, and every socket is a file descriptor. When the process has
//! as many open as its limit allows (`ulimit -n`; [`crate::node`] raises the soft limit to the
//! hard one at start), `accept(2)` fails with `EMFILE` (`ENFILE` when the whole system's table is
//! full) and the connection stays queued in the kernel: the listening socket stays readable, so
//! an accept loop either spins on the error or, as axum's default listener does, logs a terse
//! `accept error` and sleeps a full second for every failure while the queued clients wait for a
//! server that will not answer them.
//!
//! # What [`FdLimitListener`] does
//!
//! It keeps one spare descriptor open (`/dev/null`). When an accept fails for lack of
//! descriptors, it closes the spare, accepts the queued connections and closes them at once (the
//! client sees its connection closed and retries — the phoenix client does so by itself, through
//! a load balancer possibly on another node), reopens the spare, and waits [`NO_FDS_BACKOFF`]
//! before accepting again. This is libuv's "EMFILE trick": refusing explicitly instead of leaving
//! clients hanging, and never spinning.
//!
//! It counts in `/metrics`:
//!
//! - [`REFUSED_NO_FDS_TOTAL`]: connections closed unserved for lack of descriptors;
//! - [`NO_FDS_ERRORS_TOTAL`]: accepts that failed with `EMFILE`/`ENFILE` (one per attempt: it
//!   also counts when even the spare was gone and nothing could be refused).
//!
//! and logs, at most every [`LOG_INTERVAL`], `out of file descriptors: N connections refused;
//! raise the limit or add nodes` with the current limit, then once when connections are accepted
//! again. The process never stops because of it.
//!
//! Other accept errors are handled as axum handles them: a connection reset or aborted before it
//! was accepted is skipped; anything else is logged and retried after [`OTHER_ERROR_BACKOFF`].

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};

/// Counter of connections closed unserved because no file descriptor was left.
pub const REFUSED_NO_FDS_TOTAL: &str = "store_accept_refused_no_fds_total";
/// Counter of `accept` calls that failed with `EMFILE` or `ENFILE`.
pub const NO_FDS_ERRORS_TOTAL: &str = "store_accept_no_fds_errors_total";
/// Pause after running out of descriptors, before accepting again.
pub const NO_FDS_BACKOFF: Duration = Duration::from_millis(50);
/// Pause after any other unexpected accept error (axum's default).
pub const OTHER_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// Shortest interval between two "out of file descriptors" errors in the log.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Most queued connections refused in one round, so that a flood cannot keep the loop busy.
const MAX_REFUSED_PER_ROUND: u32 = 1024;

/// `EMFILE` ("Too many open files": the process's limit). Same value on Linux, macOS and the
/// BSDs.
const EMFILE: i32 = 24;
/// `ENFILE` ("Too many open files in system"). Same value on Linux, macOS and the BSDs.
const ENFILE: i32 = 23;

/// Whether `error` says that no file descriptor is left (`EMFILE` or `ENFILE`).
pub fn is_out_of_fds(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}

/// A [`TcpListener`] that refuses connections cleanly, counts them and logs a clear error when
/// the process runs out of file descriptors (see the module docs). The node serves it with
/// [`crate::server::serve`]; it also implements `axum::serve::Listener`.
#[derive(Debug)]
pub struct FdLimitListener {
    inner: TcpListener,
    spare: Option<File>,
    /// Refused since the last log line.
    unlogged: u64,
    /// Refused since descriptors ran out (reset once a connection is accepted again).
    episode: u64,
    /// Whether the last accept failed for lack of descriptors.
    exhausted: bool,
    last_log: Option<Instant>,
}

impl FdLimitListener {
    /// Wraps `inner`, opens the spare descriptor, and registers the counters (at 0) so that
    /// `/metrics` shows them before anything is refused.
    pub fn new(inner: TcpListener) -> FdLimitListener {
        metrics::describe_counter!(
            REFUSED_NO_FDS_TOTAL,
            "Connections closed unserved because the process had no file descriptor left"
        );
        metrics::describe_counter!(
            NO_FDS_ERRORS_TOTAL,
            "accept() calls that failed with EMFILE or ENFILE"
        );
        metrics::counter!(REFUSED_NO_FDS_TOTAL).increment(0);
        metrics::counter!(NO_FDS_ERRORS_TOTAL).increment(0);
        FdLimitListener {
            inner,
            spare: open_spare(),
            unlogged: 0,
            episode: 0,
            exhausted: false,
            last_log: None,
        }
    }

    /// The listening address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Accepts the next connection, handling every error (see the module docs).
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            if self.spare.is_none() {
                self.spare = open_spare();
            }
            match self.inner.accept().await {
                Ok(accepted) => {
                    self.recovered();
                    return accepted;
                }
                Err(error) if is_out_of_fds(&error) => {
                    self.out_of_fds(&error);
                    tokio::time::sleep(NO_FDS_BACKOFF).await;
                }
                Err(error) if is_connection_error(&error) => {}
                Err(error) => {
                    tracing::error!(%error, "accept error; retrying in 1 s");
                    tokio::time::sleep(OTHER_ERROR_BACKOFF).await;
                }
            }
        }
    }

    /// An accept failed with `error` for lack of descriptors: refuse what is queued, count, log.
    fn out_of_fds(&mut self, error: &io::Error) {
        metrics::counter!(NO_FDS_ERRORS_TOTAL).increment(1);
        self.exhausted = true;
        let refused = match self.spare.take() {
            Some(spare) => {
                drop(spare);
                let refused = self.refuse_queued();
                self.spare = open_spare();
                refused
            }
            None => 0,
        };
        if refused > 0 {
            metrics::counter!(REFUSED_NO_FDS_TOTAL).increment(u64::from(refused));
            self.unlogged += u64::from(refused);
            self.episode += u64::from(refused);
        }
        let due = self
            .last_log
            .is_none_or(|last| last.elapsed() >= LOG_INTERVAL);
        if due {
            let limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft.to_string())
                .unwrap_or_else(|_| "unknown".to_owned());
            tracing::error!(
                refused = self.unlogged,
                open_file_limit = %limit,
                %error,
                "out of file descriptors: {} connections refused; raise the limit (ulimit -n, \
                 currently {limit}) or add nodes",
                self.unlogged
            );
            self.unlogged = 0;
            self.last_log = Some(Instant::now());
        }
    }

    /// Accepts and closes the connections already queued (at most [`MAX_REFUSED_PER_ROUND`]),
    /// without waiting for more. Returns how many were closed.
    fn refuse_queued(&mut self) -> u32 {
        let mut cx = Context::from_waker(Waker::noop());
        let mut refused = 0;
        while refused < MAX_REFUSED_PER_ROUND {
            match self.inner.poll_accept(&mut cx) {
                Poll::Ready(Ok((stream, _))) => {
                    // Closed at once: no byte is read, the client sees its connection end.
                    drop(stream);
                    refused += 1;
                }
                Poll::Ready(Err(error)) if is_connection_error(&error) => {}
                // Still no descriptor (another thread took the spare's), or nothing queued.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        refused
    }

    /// A connection was accepted: if descriptors had run out, say that it is over.
    fn recovered(&mut self) {
        if !self.exhausted {
            return;
        }
        self.exhausted = false;
        tracing::warn!(
            refused = self.episode,
            "file descriptors available again after {} connections were refused",
            self.episode
        );
        self.episode = 0;
        self.unlogged = 0;
    }
}

impl axum::serve::Listener for FdLimitListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        FdLimitListener::accept(self).await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        FdLimitListener::local_addr(self)
    }
}

/// The spare descriptor, or `None` when none is left (the next round tries again).
fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Errors of one connection that ended before it was accepted (skipped, as axum does).
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_descriptor_exhaustion_only() {
        let emfile = io::Error::from_raw_os_error(EMFILE);
        let enfile = io::Error::from_raw_os_error(ENFILE);
        assert!(is_out_of_fds(&emfile));
        assert!(is_out_of_fds(&enfile));
        #[cfg(target_os = "linux")]
        {
            assert!(
                emfile.to_string().contains("Too many open files"),
                "{emfile}"
            );
            assert!(enfile.to_string().contains("in system"), "{enfile}");
        }
        assert!(!is_out_of_fds(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
        assert!(!is_out_of_fds(&io::Error::other("EMFILE")));
    }

    #[tokio::test]
    async fn accepts_like_a_plain_listener() {
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut listener = FdLimitListener::new(inner);
        let addr = listener.local_addr().expect("address");
        let client = tokio::spawn(TcpStream::connect(addr));
        let (_stream, peer) = listener.accept().await;
        let client = client.await.expect("join").expect("connect");
        assert_eq!(Some(peer), client.local_addr().ok());
        assert!(listener.spare.is_some(), "the spare descriptor is held");
    }

    #[tokio::test]
    async fn refusing_closes_queued_connections_only() {
        use tokio::io::AsyncReadExt;
        let inner = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut listener = FdLimitListener::new(inner);
        let addr = listener.local_addr().expect("address");
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        // Both are queued once the handshake completed; refuse them as on EMFILE.
        let mut refused = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while refused < 2 && Instant::now() < deadline {
            refused += listener.refuse_queued();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(refused, 2);
        for stream in [&mut first, &mut second] {
            let mut buf = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0)) | Ok(Err(_))),
                "a refused connection is closed: {read:?}"
            );
        }
        assert_eq!(listener.refuse_queued(), 0, "nothing left to refuse");
    }
}
