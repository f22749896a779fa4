//! The server's counters, recorded through the `metrics` facade; an application installs a
//! recorder (e.g. a Prometheus exporter) before it creates its [`Endpoint`](crate::Endpoint), and
//! the endpoint registers them once: a heartbeat or a broadcast then only adds to a counter,
//! where looking the name up in the recorder's registry each time cost more than the rest of
//! the bookkeeping.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `channels_connections` | gauge | open connections |
//! | `channels_connections_total` | counter | connections accepted |
//! | `channels_connections_refused_total` | counter | connect refusals (origin, vsn, `connect`) |
//! | `channels_joins_total` | counter | successful joins |
//! | `channels_crashes_total` | counter | channel callbacks that panicked |
//! | `channels_messages_in_total` | counter | frames received |
//! | `channels_messages_out_total` | counter | frames sent |
//! | `channels_malformed_frames_total` | counter | frames that could not be decoded |
//! | `channels_backlog` | gauge | client messages, intercepted broadcasts and infos waiting for a channel whose callback is still running |
//! | `channels_backlog_overflows_total` | counter | connections closed because a channel's backlog was full |
//! | `channels_closes_total` | counter | WebSocket connections ended, by `reason`: the server's close reason (`idle timeout`, `too slow: message queue overflowed`, `disconnected`, `service restart`, `frame too large`), or `client closed` (a close frame), `client went away` (the socket ended without one), `read failed` (a protocol error), `write failed` |

use metrics::{Counter, Gauge};

/// Handles to the server's counters, registered with the recorder installed when the endpoint
/// was created.
pub(crate) struct Metrics {
    connections: Gauge,
    connections_total: Counter,
    joins: Counter,
    crashes: Counter,
    messages_in: Counter,
    messages_out: Counter,
    malformed_frames: Counter,
    backlog: Gauge,
    backlog_overflows: Counter,
}

impl Metrics {
    pub(crate) fn register() -> Metrics {
        Metrics {
            connections: metrics::gauge!("channels_connections"),
            connections_total: metrics::counter!("channels_connections_total"),
            joins: metrics::counter!("channels_joins_total"),
            crashes: metrics::counter!("channels_crashes_total"),
            messages_in: metrics::counter!("channels_messages_in_total"),
            messages_out: metrics::counter!("channels_messages_out_total"),
            malformed_frames: metrics::counter!("channels_malformed_frames_total"),
            backlog: metrics::gauge!("channels_backlog"),
            backlog_overflows: metrics::counter!("channels_backlog_overflows_total"),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.increment(1.0);
        self.connections_total.increment(1);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections.decrement(1.0);
    }

    pub(crate) fn joined(&self) {
        self.joins.increment(1);
    }

    pub(crate) fn channel_crashed(&self) {
        self.crashes.increment(1);
    }

    pub(crate) fn message_in(&self) {
        self.messages_in.increment(1);
    }

    pub(crate) fn messages_out(&self, n: usize) {
        self.messages_out.increment(n as u64);
    }

    pub(crate) fn malformed_frame(&self) {
        self.malformed_frames.increment(1);
    }

    pub(crate) fn backlog_queued(&self) {
        self.backlog.increment(1.0);
    }

    pub(crate) fn backlog_drained(&self, n: usize) {
        self.backlog.decrement(n as f64);
    }

    pub(crate) fn backlog_overflowed(&self) {
        self.backlog_overflows.increment(1);
    }
}

/// Refusals are rare and labelled by reason, so they are looked up when they happen.
pub(crate) fn connection_refused(reason: &'static str) {
    metrics::counter!("channels_connections_refused_total", "reason" => reason).increment(1);
}

/// A WebSocket connection ended, for `reason` (see the table above): one label per cause, so a
/// wave of closes says what caused it.
pub(crate) fn closed(reason: &'static str) {
    metrics::counter!("channels_closes_total", "reason" => reason).increment(1);
}
