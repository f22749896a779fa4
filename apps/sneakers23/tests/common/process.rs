//! The store as a real process: `sneakers23 serve` started by a test, its address read from the
//! `listening on http://ADDR` line it prints, its log collected (the workspace's
//! `test_support::ListeningProcess`).

/// A running store process, killed when dropped.
pub type StoreProcess = test_support::ListeningProcess;

/// The store binary Cargo built for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_sneakers23");
