//! Harnesses the integration tests of several crates share (a dev-dependency only).
//!
//! - [`TcpProxy`]: a local port forwarding to a server (a database, a broker) that a test stops
//!   and restarts, to cut a client off without touching the server other tests use.
//! - [`ListeningProcess`]: a server binary spawned by a test, its address read from the
//!   `listening on http://ADDR` line it prints, its output collected.
//!
//! Both panic on setup failures: they exist for tests, where a panic with the reason is the
//! clearest report.

mod process;
mod proxy;

pub use process::{ListeningProcess, START_TIMEOUT};
pub use proxy::TcpProxy;
