//! A TCP forwarder that can be stopped and restarted on the same port.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A TCP forwarder on a local port that can be stopped (every connection cut, the port
/// closed) and started again on the same port: an outage of the target without touching it.
pub struct TcpProxy {
    listen: SocketAddr,
    target: SocketAddr,
    running: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding a fresh local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let listen = listener.local_addr().expect("proxy address");
        TcpProxy {
            listen,
            target,
            running: Some(tokio::spawn(forward(listener, target))),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// Cuts every connection and closes the port.
    pub async fn stop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.listen)
            .await
            .expect("re-binding the proxy port");
        self.running = Some(tokio::spawn(forward(listener, self.target)));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
        }
    }
}

/// Accepts and forwards until aborted; aborting drops the set, which aborts every connection.
async fn forward(listener: TcpListener, target: SocketAddr) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut inbound, _)) = accepted else { continue };
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
