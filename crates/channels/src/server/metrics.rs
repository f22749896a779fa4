//! The server's metrics, recorded through the `metrics` facade: Phoenix's telemetry events
//! (`[:phoenix, :socket_connected]`, `[:phoenix, :channel_joined]`,
//! `[:phoenix, :channel_handled_in]`) as counters and a histogram. An application installs a
//! recorder (e.g. a Prometheus exporter) before it creates its [`Endpoint`](crate::Endpoint), and
//! the endpoint registers and describes them once: a heartbeat or a broadcast then only adds to
//! a counter, where looking the name up in the recorder's registry each time cost more than the
//! rest of the bookkeeping.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `channels_connections` | gauge | open connections |
//! | `channels_connections_total` | counter | connections accepted |
//! | `channels_connections_refused_total` | counter | connect refusals by `reason` (origin, vsn, `connect`, draining) |
//! | `channels_socket_connects_total` | counter | socket connects by `result`: `ok` or the refusal reason |
//! | `channels_joins_total` | counter | successful joins |
//! | `channels_channel_joins_total` | counter | joins by `route` (the topic pattern, e.g. `cart:*`; never the topic) and `result` (`ok`, `error`, `crashed`, `unmatched`, `too_many_channels`) |
//! | `channels_handle_in_duration_seconds` | histogram | time `handle_in` took, by `event` (the first [`MAX_EVENT_LABELS`] event names seen, then `other`) |
//! | `channels_crashes_total` | counter | channel callbacks that panicked |
//! | `channels_messages_in_total` | counter | frames received |
//! | `channels_messages_out_total` | counter | frames sent |
//! | `channels_pushes_total` | counter | pushes to one client (`push`, a channel handle's push) |
//! | `channels_broadcasts_delivered_total` | counter | broadcast frames queued to a client (fastlane) |
//! | `channels_malformed_frames_total` | counter | frames that could not be decoded (ignored) |
//! | `channels_backlog` | gauge | client messages, intercepted broadcasts and infos waiting for a channel whose callback is still running |
//! | `channels_backlog_overflows_total` | counter | connections closed because a channel's backlog was full |
//! | `channels_closes_total` | counter | WebSocket connections ended, by `reason`: the server's close reason (`idle timeout`, `too slow: message queue overflowed`, `too slow: channel backlog overflowed`, `no channel joined`, `disconnected`, `service restart`, `frame too large`, `invalid UTF-8`, `protocol error`), or `client closed` (a close frame), `client went away` (the socket ended without one), `read failed`, `write failed` |

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// Distinct `event` labels of the `handle_in` histogram; event names are chosen by clients, so
/// later ones share the label `other`.
pub(crate) const MAX_EVENT_LABELS: usize = 64;

/// Handles to the server's metrics, registered with the recorder installed when the endpoint
/// was created.
pub(crate) struct Metrics {
    connections: Gauge,
    connections_total: Counter,
    connects_ok: Counter,
    joins: Counter,
    crashes: Counter,
    messages_in: Counter,
    messages_out: Counter,
    pushes: Counter,
    broadcasts: Counter,
    malformed_frames: Counter,
    backlog: Gauge,
    backlog_overflows: Counter,
    handle_in: Mutex<FxHashMap<Box<str>, Histogram>>,
    /// `channels_channel_joins_total` by route, then by result: every join counts one, so the
    /// labelled handles are kept rather than looked up in the recorder each time.
    channel_joins: Mutex<FxHashMap<Box<str>, JoinCounters>>,
    /// `channels_closes_total` by reason (a fixed set of static strings).
    closes: Mutex<FxHashMap<&'static str, Counter>>,
}

/// One route's `channels_channel_joins_total` counters, by result.
type JoinCounters = Vec<(&'static str, Counter)>;

/// Distinct routes whose join counters are kept; routes are the application's patterns, so this
/// is only a bound against a socket whose `route` echoes topics.
const MAX_ROUTE_LABELS: usize = 256;

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!("channels_connections", "Open channel connections.");
    describe_counter!("channels_connections_total", "Connections accepted.");
    describe_counter!(
        "channels_connections_refused_total",
        "Connect attempts refused, by reason."
    );
    describe_counter!(
        "channels_socket_connects_total",
        "Socket connects by result: ok or the refusal reason."
    );
    describe_counter!("channels_joins_total", "Successful channel joins.");
    describe_counter!(
        "channels_channel_joins_total",
        "Channel joins by route pattern and result."
    );
    describe_histogram!(
        "channels_handle_in_duration_seconds",
        Unit::Seconds,
        "Time a channel's handle_in took, by event."
    );
    describe_counter!("channels_crashes_total", "Channel callbacks that panicked.");
    describe_counter!(
        "channels_messages_in_total",
        "Frames received from clients."
    );
    describe_counter!("channels_messages_out_total", "Frames sent to clients.");
    describe_counter!("channels_pushes_total", "Pushes to one client.");
    describe_counter!(
        "channels_broadcasts_delivered_total",
        "Broadcast frames queued to a client."
    );
    describe_counter!(
        "channels_malformed_frames_total",
        "Client frames that could not be decoded and were ignored."
    );
    describe_gauge!(
        "channels_backlog",
        "Messages waiting for a channel whose callback is still running."
    );
    describe_counter!(
        "channels_backlog_overflows_total",
        "Connections closed because a channel's backlog was full."
    );
    describe_counter!(
        "channels_closes_total",
        "WebSocket connections ended, by reason."
    );
    describe_gauge!(
        "presence_entries",
        "Presence entries (one per tracked key and meta) on this node."
    );
}

impl Metrics {
    pub(crate) fn register() -> Metrics {
        describe();
        Metrics {
            connections: metrics::gauge!("channels_connections"),
            connections_total: metrics::counter!("channels_connections_total"),
            connects_ok: metrics::counter!("channels_socket_connects_total", "result" => "ok"),
            joins: metrics::counter!("channels_joins_total"),
            crashes: metrics::counter!("channels_crashes_total"),
            messages_in: metrics::counter!("channels_messages_in_total"),
            messages_out: metrics::counter!("channels_messages_out_total"),
            pushes: metrics::counter!("channels_pushes_total"),
            broadcasts: metrics::counter!("channels_broadcasts_delivered_total"),
            malformed_frames: metrics::counter!("channels_malformed_frames_total"),
            backlog: metrics::gauge!("channels_backlog"),
            backlog_overflows: metrics::counter!("channels_backlog_overflows_total"),
            handle_in: Mutex::new(FxHashMap::default()),
            channel_joins: Mutex::new(FxHashMap::default()),
            closes: Mutex::new(FxHashMap::default()),
        }
    }

    pub(crate) fn connection_opened(&self) {
        self.connections.increment(1.0);
        self.connections_total.increment(1);
        self.connects_ok.increment(1);
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

    pub(crate) fn pushed(&self) {
        self.pushes.increment(1);
    }

    pub(crate) fn broadcast_delivered(&self) {
        self.broadcasts.increment(1);
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

    /// Records how long `handle_in` took for `event`.
    pub(crate) fn handle_in(&self, event: &str, took: Duration) {
        let mut histograms = self.handle_in.lock();
        let histogram = match histograms.get(event) {
            Some(histogram) => histogram,
            None => {
                let label = if histograms.len() < MAX_EVENT_LABELS {
                    event
                } else {
                    "other"
                };
                histograms.entry(Box::from(label)).or_insert_with(|| {
                    metrics::histogram!(
                        "channels_handle_in_duration_seconds",
                        "event" => label.to_owned()
                    )
                })
            }
        };
        histogram.record(took.as_secs_f64());
    }

    /// A join ended with `result` on a topic served by `route` (a pattern, never the topic).
    pub(crate) fn channel_join(&self, route: &str, result: &'static str) {
        let mut routes = self.channel_joins.lock();
        if let Some(results) = routes.get_mut(route)
            && let Some((_, counter)) = results.iter().find(|(known, _)| *known == result)
        {
            return counter.increment(1);
        }
        // The first join of this route with this result: register its counter, and keep it
        // unless the route would be one too many.
        let counter = metrics::counter!(
            "channels_channel_joins_total",
            "route" => route.to_owned(),
            "result" => result
        );
        counter.increment(1);
        if routes.len() < MAX_ROUTE_LABELS || routes.contains_key(route) {
            routes
                .entry(Box::from(route))
                .or_default()
                .push((result, counter));
        }
    }

    /// A WebSocket connection ended, for `reason` (see the table above): one label per cause, so
    /// a wave of closes says what caused it.
    pub(crate) fn closed(&self, reason: &'static str) {
        self.closes
            .lock()
            .entry(reason)
            .or_insert_with(|| metrics::counter!("channels_closes_total", "reason" => reason))
            .increment(1);
    }
}

/// Refusals are rare and labelled by reason, so they are looked up when they happen.
pub(crate) fn connection_refused(reason: &'static str) {
    metrics::counter!("channels_connections_refused_total", "reason" => reason).increment(1);
    metrics::counter!("channels_socket_connects_total", "result" => reason).increment(1);
}
