//! Rate-limited log lines for what clients cause: one client sending 200,000 junk frames must not
//! write 200,000 lines. Each call site lets [`LINES_PER_SECOND`] lines through per second; the
//! first line after a second with suppressed ones says how many were left out. The events
//! themselves are still counted in full by the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lines a call site may write per second.
pub(crate) const LINES_PER_SECOND: u64 = 10;

/// The budget of one call site.
pub(crate) struct LogLimit {
    /// The second (since the epoch) the counts are for, shifted left 32 bits, plus the lines
    /// written in it.
    state: AtomicU64,
    /// Lines left out since the last one written.
    suppressed: AtomicU64,
}

impl LogLimit {
    /// A fresh budget, for a `static`.
    pub(crate) const fn new() -> LogLimit {
        LogLimit {
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out before this one)` when this line may be written, `None` when it is
    /// over the budget (and then counted as left out).
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let admitted = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |state| {
                let (second, lines) = (state >> 32, state & 0xffff_ffff);
                if second != now & 0xffff_ffff {
                    Some(((now & 0xffff_ffff) << 32) | 1)
                } else if lines < LINES_PER_SECOND {
                    Some(state + 1)
                } else {
                    None
                }
            })
            .is_ok();
        if admitted {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `tracing::warn!` with a per-call-site budget of [`LINES_PER_SECOND`] lines per second; the
/// line written after suppressed ones carries `suppressed = n`.
macro_rules! limited_warn {
    ($($arg:tt)+) => {{
        static LIMIT: $crate::server::log_limit::LogLimit =
            $crate::server::log_limit::LogLimit::new();
        if let Some(suppressed) = LIMIT.admit() {
            tracing::warn!(suppressed, $($arg)+);
        }
    }};
}

pub(crate) use limited_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_cut_to_the_budget_and_the_rest_counted() {
        let limit = LogLimit::new();
        let admitted = (0..1000).filter(|_| limit.admit().is_some()).count() as u64;
        // The burst may straddle a second boundary: at most two seconds' budgets.
        assert!(
            (LINES_PER_SECOND..=2 * LINES_PER_SECOND).contains(&admitted),
            "{admitted}"
        );
        assert!(limit.suppressed.load(Ordering::Relaxed) > 0);
    }
}
