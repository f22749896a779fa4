//! Log lines caused by a client's bad input, rate-limited: a client that sends a thousand bad
//! requests a second must not be able to fill the disk or drown the lines an operator needs.
//!
//! Each kind of line (its message, a `&'static str`) may be written at most [`BURST`] times per
//! [`WINDOW`]; the rest are counted, and the next line written after a quiet spell says how
//! many were suppressed. Every occurrence, written or not, is counted in `/metrics` as
//! `store_client_errors_total{kind="…"}`.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lines of one kind written per window.
pub const BURST: u32 = 10;
/// The rate-limiting window.
pub const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u64,
}

/// The windows by message kind.
fn windows() -> &'static Mutex<HashMap<&'static str, Window>> {
    static WINDOWS: OnceLock<Mutex<HashMap<&'static str, Window>>> = OnceLock::new();
    WINDOWS.get_or_init(Default::default)
}

/// Whether a line of `kind` may be written now, and how many were suppressed before it.
fn admit(kind: &'static str, now: Instant) -> Option<u64> {
    let mut windows = windows().lock();
    let window = windows.entry(kind).or_insert(Window {
        started: now,
        written: 0,
        suppressed: 0,
    });
    if now.duration_since(window.started) >= WINDOW {
        window.started = now;
        window.written = 0;
    }
    if window.written < BURST {
        window.written += 1;
        Some(std::mem::take(&mut window.suppressed))
    } else {
        window.suppressed += 1;
        None
    }
}

/// Logs (info level, rate-limited) that a client's input was refused.
pub fn client_error(kind: &'static str) {
    metrics::counter!("store_client_errors_total", "kind" => kind).increment(1);
    if let Some(suppressed) = admit(kind, Instant::now()) {
        tracing::info!(suppressed, "{kind}");
    }
}

/// [`client_error`] with a detail (the client's address, the offending value's size…).
pub fn client_error_with(kind: &'static str, detail: &dyn Display) {
    metrics::counter!("store_client_errors_total", "kind" => kind).increment(1);
    if let Some(suppressed) = admit(kind, Instant::now()) {
        tracing::info!(suppressed, %detail, "{kind}");
    }
}

/// [`client_error_with`] at warn level, for refusals an operator should see (failed logins).
pub fn client_warning_with(kind: &'static str, detail: &dyn Display) {
    metrics::counter!("store_client_errors_total", "kind" => kind).increment(1);
    if let Some(suppressed) = admit(kind, Instant::now()) {
        tracing::warn!(suppressed, %detail, "{kind}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_written_then_counted_then_reported() {
        let kind = "test: a burst of bad input";
        let start = Instant::now();
        for _ in 0..BURST {
            assert_eq!(admit(kind, start), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(admit(kind, start), None);
        }
        assert_eq!(
            admit(kind, start + WINDOW),
            Some(5),
            "the suppressed are reported"
        );
        assert_eq!(admit(kind, start + WINDOW), Some(0));
    }
}
