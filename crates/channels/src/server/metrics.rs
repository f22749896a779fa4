//! The server's counters, recorded through the `metrics` facade; an application installs a
//! recorder (e.g. a Prometheus exporter) to publish them.
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

pub(crate) fn connection_opened() {
    metrics::gauge!("channels_connections").increment(1.0);
    metrics::counter!("channels_connections_total").increment(1);
}

pub(crate) fn connection_closed() {
    metrics::gauge!("channels_connections").decrement(1.0);
}

pub(crate) fn connection_refused(reason: &'static str) {
    metrics::counter!("channels_connections_refused_total", "reason" => reason).increment(1);
}

pub(crate) fn joined() {
    metrics::counter!("channels_joins_total").increment(1);
}

pub(crate) fn channel_crashed() {
    metrics::counter!("channels_crashes_total").increment(1);
}

pub(crate) fn message_in() {
    metrics::counter!("channels_messages_in_total").increment(1);
}

pub(crate) fn messages_out(n: usize) {
    metrics::counter!("channels_messages_out_total").increment(n as u64);
}

pub(crate) fn malformed_frame() {
    metrics::counter!("channels_malformed_frames_total").increment(1);
}
