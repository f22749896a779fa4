//! Serving HTTP connections with the limits a public server needs, so that no single client
//! can take the node down by holding connections open:
//!
//! - **header-read timeout** ([`ConnectionLimits::header_read_timeout`]): hyper's HTTP/1
//!   `header_read_timeout`, which starts when the connection is accepted (and again when a
//!   keep-alive connection waits for its next request). A connection that sends no complete
//!   request head in time — silent, or a slowloris trickling an upgrade request — is closed.
//! - **connections per source address** ([`ConnectionLimits::max_per_ip`]): an accepted
//!   connection over the cap is closed at once, before a byte is read; the count includes
//!   upgraded WebSockets (the connection's slot is released when its socket closes). Loopback
//!   addresses are exempt unless [`ConnectionLimits::limit_loopback`]: behind a reverse proxy
//!   on the same host every client is loopback (the proxy must cap per client then), and the
//!   load generator runs over loopback.
//!
//! Refusals are counted in `/metrics` (`store_connections_refused_per_ip_total`) and logged,
//! rate-limited ([`sneakers23_core::logs`]). Requests carry `ConnectInfo<SocketAddr>` as with
//! `axum::serve`. Graceful shutdown finishes the requests in flight; upgraded WebSockets are
//! the channels endpoint's to drain.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::Service;

use crate::listener::FdLimitListener;

/// Counter of connections closed at accept because their source address had too many open.
pub const REFUSED_PER_IP_TOTAL: &str = "store_connections_refused_per_ip_total";

/// The limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest wait for a complete request head (`HEADER_READ_TIMEOUT_MS`).
    pub header_read_timeout: Duration,
    /// Most connections open at once per source address; 0: no cap
    /// (`MAX_CONNECTIONS_PER_IP`).
    pub max_per_ip: usize,
    /// Apply the cap to loopback addresses too (`PER_IP_LIMIT_LOOPBACK`).
    pub limit_loopback: bool,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_per_ip: 256,
            limit_loopback: false,
        }
    }
}

/// Open connections by source address.
#[derive(Debug)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
    limit_loopback: bool,
}

impl PerIp {
    /// A slot for one more connection from `ip`, or `None` when it has `max` open.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Option<IpSlot>> {
        if self.max == 0 || (ip.is_loopback() && !self.limit_loopback) {
            return Some(None);
        }
        let mut open = self.open.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Some(IpSlot {
            per_ip: self.clone(),
            ip,
        }))
    }
}

/// One open connection's place in its address's count; released when dropped.
#[derive(Debug)]
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock();
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection holding its slot for as long as it (or the WebSocket it becomes) is open.
#[derive(Debug)]
struct Counted {
    stream: TcpStream,
    _slot: Option<IpSlot>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves, then stops accepting
/// and waits for the requests in flight.
pub async fn serve(
    mut listener: FdLimitListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    metrics::describe_counter!(
        REFUSED_PER_IP_TOTAL,
        "Connections closed at accept because their source address had too many open"
    );
    metrics::counter!(REFUSED_PER_IP_TOTAL).increment(0);
    let per_ip = Arc::new(PerIp {
        open: Mutex::new(HashMap::new()),
        max: limits.max_per_ip,
        limit_loopback: limits.limit_loopback,
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Closed when shutdown begins; every connection task holds a receiver until it ends.
    let (signal_tx, signal_rx) = watch::channel(());
    let (close_tx, close_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Some(slot) = per_ip.admit(remote.ip()) else {
            metrics::counter!(REFUSED_PER_IP_TOTAL).increment(1);
            sneakers23_core::logs::client_warning_with(
                "connection refused: too many open from one address (MAX_CONNECTIONS_PER_IP)",
                &remote.ip(),
            );
            drop(stream);
            continue;
        };
        let io = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            let mut app = app.clone();
            async move {
                let response = app.call(request.map(Body::new)).await;
                Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
            }
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut signal_rx = signal_rx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::trace!(%error, "connection ended with an error");
                    }
                }
                _ = signal_rx.changed() => {
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::trace!(%error, "connection ended with an error");
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(listener);
    let _ = signal_tx.send(());
    drop(signal_rx);
    drop(close_rx);
    close_tx.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_open_connections_per_address_and_spares_loopback() {
        let per_ip = Arc::new(PerIp {
            open: Mutex::new(HashMap::new()),
            max: 2,
            limit_loopback: false,
        });
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let first = per_ip.admit(a).flatten();
        let second = per_ip.admit(a).flatten();
        assert!(first.is_some() && second.is_some());
        assert!(per_ip.admit(a).is_none(), "a third from the same address");
        assert!(per_ip.admit(b).flatten().is_some(), "another address");
        drop(first);
        assert!(per_ip.admit(a).is_some(), "a slot was released");
        let loopback: IpAddr = "127.0.0.1".parse().expect("address");
        for _ in 0..5 {
            assert!(
                matches!(per_ip.admit(loopback), Some(None)),
                "loopback exempt"
            );
        }
    }
}
