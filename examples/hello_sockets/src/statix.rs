//! Measurements (chapter 6): the book's `HelloSockets.Statix`, counters, timings and histograms
//! with tags.
//!
//! Every measurement goes to the process's `metrics` recorder, which `/metrics` renders for
//! Prometheus (names with `.` become `_`: `stats_channel.ping` is `stats_channel_ping`), and,
//! when `STATSD_ADDR` is set, as a StatsD line over UDP through `cadence`, tags in the DogStatsD
//! form the book's output shows: `socket_connect:1|c|#status:success,socket:StatsSocket`.

use std::future::Future;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Instant;

use cadence::prelude::*;
use cadence::{StatsdClient, UdpMetricSink};
use metrics::Label;

/// Why the StatsD client could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("STATSD_ADDR {addr:?}: {source}")]
pub struct StatsdError {
    addr: String,
    source: cadence::MetricError,
}

/// Where measurements go; cheap to clone.
#[derive(Clone, Default)]
pub struct Statix {
    statsd: Option<Arc<StatsdClient>>,
}

fn prometheus_name(name: &str) -> String {
    name.replace('.', "_")
}

fn labels(tags: &[(&str, &str)]) -> Vec<Label> {
    tags.iter()
        .map(|(k, v)| Label::new((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Statix {
    /// Measurements for `/metrics`, and for the StatsD server at `statsd_addr` (`host:port`)
    /// when given.
    pub fn new(statsd_addr: Option<&str>) -> Result<Statix, StatsdError> {
        let Some(addr) = statsd_addr.filter(|a| !a.trim().is_empty()) else {
            return Ok(Statix::default());
        };
        let error = |source: cadence::MetricError| StatsdError {
            addr: addr.to_owned(),
            source,
        };
        let socket = UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| error(e.into()))?;
        let sink = UdpMetricSink::from(addr.trim(), socket).map_err(error)?;
        let client = StatsdClient::builder("", sink)
            .with_error_handler(|error| tracing::debug!(%error, "StatsD metric not sent"))
            .build();
        tracing::info!(addr, "sending StatsD metrics");
        Ok(Statix {
            statsd: Some(Arc::new(client)),
        })
    }

    /// Counts one occurrence of `name`.
    pub fn increment(&self, name: &str, tags: &[(&str, &str)]) {
        metrics::counter!(prometheus_name(name), labels(tags)).increment(1);
        if let Some(client) = &self.statsd {
            let mut metric = client.count_with_tags(name, 1);
            for (k, v) in tags {
                metric = metric.with_tag(k, v);
            }
            metric.send();
        }
    }

    /// Records that `name` took `ms` milliseconds.
    pub fn timing(&self, name: &str, ms: u64) {
        metrics::histogram!(prometheus_name(name)).record(ms as f64);
        if let Some(client) = &self.statsd {
            client.time_with_tags(name, ms).send();
        }
    }

    /// Records one value of the distribution `name`.
    pub fn histogram(&self, name: &str, value: u64) {
        metrics::histogram!(prometheus_name(name)).record(value as f64);
        if let Some(client) = &self.statsd {
            client.histogram_with_tags(name, value).send();
        }
    }

    /// Runs `work` and records how long it took as the timing `name` (Statix's `measure/2`).
    pub async fn measure<T>(&self, name: &str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let result = work.await;
        self.timing(name, started.elapsed().as_millis() as u64);
        result
    }
}

/// Milliseconds since the Unix epoch: the pipeline's clock, comparable between nodes (the
/// book's `Timing.unix_ms_now/0`).
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
