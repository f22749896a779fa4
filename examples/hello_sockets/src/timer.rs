//! A task that lives exactly as long as the channel that started it.
//!
//! Phoenix channels schedule work with `Process.send_after(self(), …)`: the message dies with the
//! channel process. Here a channel keeps a [`Timer`]; dropping the channel (leave, crash, closed
//! connection) drops the timer, which aborts its task.

use std::future::Future;

use tokio::task::JoinHandle;

/// A spawned task aborted when this value is dropped.
pub struct Timer(JoinHandle<()>);

impl Timer {
    /// Spawns `work` on the runtime.
    pub fn spawn(work: impl Future<Output = ()> + Send + 'static) -> Timer {
        Timer(tokio::spawn(work))
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.0.abort();
    }
}
