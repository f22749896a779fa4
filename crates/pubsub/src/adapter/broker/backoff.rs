//! Exponential back-off with jitter between reconnection attempts.

use std::time::Duration;

/// Exponential back-off with jitter between reconnection attempts.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            next: BACKOFF_MIN.min(max),
            max,
        }
    }

    /// The delay before the next attempt (half to all of the current step), doubling the step.
    pub(crate) fn delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        step.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_MIN.min(self.max);
    }
}
