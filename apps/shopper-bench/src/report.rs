//! What a run measured: latency histograms, counts by outcome, and their summary.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::admin::AdminReport;

/// Why a step of a shopper failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No file descriptor for a new socket (the process's limit).
    NoDescriptor,
    /// No free local port on the chosen source address.
    NoPort,
    /// The TCP connection was refused or reset.
    ConnectRefused,
    /// The WebSocket upgrade was refused (e.g. 403, 503).
    UpgradeRefused,
    /// The server refused a join (an error reply to `phx_join`).
    Refused,
    /// No answer within the reply timeout.
    Timeout,
    /// The connection closed.
    Closed,
}

/// One measurement reported by a shopper.
#[derive(Debug)]
pub enum Event {
    /// TCP connect + WebSocket upgrade.
    Connect(Result<Duration, Outcome>),
    /// `phx_join` round trip.
    Join(Result<Duration, Outcome>),
    /// The first `add_item` round trip, right after joining.
    Push(Result<Duration, Outcome>),
    /// An `add_item`/`remove_item` round trip while holding (`--churn-per-minute`).
    Churn(Result<Duration, Outcome>),
    /// A cart operation the store answered with an error reply, such as `out_of_stock`: an
    /// ordinary business answer, not a failure of the run.
    Declined {
        /// Whether it was the first `add_item` (else a churn operation).
        first: bool,
        /// The reply's `reason` (or its status when it has none).
        reason: String,
        /// The round trip.
        took: Duration,
    },
    /// A `stock_change` push arrived on a watched product channel, at this wall-clock time.
    StockChange(std::time::SystemTime),
    /// A joined shopper lost its connection, and why (see [`drop_cause`]).
    Dropped(String),
}

/// Why a connection ended, as a short key for the report: the server's close code and reason
/// when it sent a close frame, else what the socket said.
pub fn drop_cause(
    message: Option<
        &Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
    >,
) -> String {
    use tokio_tungstenite::tungstenite::{Error, Message};
    match message {
        Some(Ok(Message::Close(Some(frame)))) => {
            format!("server closed {} {}", u16::from(frame.code), frame.reason)
        }
        Some(Ok(Message::Close(None))) => "server closed".to_owned(),
        Some(Ok(_)) => "unexpected message".to_owned(),
        Some(Err(Error::Io(error))) => format!("socket error: {:?}", error.kind()),
        Some(Err(Error::ConnectionClosed | Error::AlreadyClosed)) | None => {
            "connection ended without a close frame".to_owned()
        }
        Some(Err(_)) => "protocol error".to_owned(),
    }
}

/// Latencies of one step, in microseconds.
#[derive(Clone)]
pub struct Latency(pub Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(
            Histogram::new_with_bounds(1, 120_000_000, 3)
                .expect("constant histogram bounds are valid"),
        )
    }
}

impl Latency {
    /// Adds one round trip.
    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record(d.as_micros().max(1) as u64);
    }

    /// Adds another histogram's samples.
    pub fn add(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// The histogram as base64 text (for a worker's last line).
    pub fn encode(&self) -> String {
        let mut bytes = Vec::new();
        let _ = V2Serializer::new().serialize(&self.0, &mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// The histogram [`Latency::encode`] wrote.
    pub fn decode(text: &str) -> Option<Latency> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?;
        Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .ok()
            .map(Latency)
    }

    /// Its percentiles.
    pub fn summary(&self) -> Percentiles {
        let h = &self.0;
        let ms = |v: u64| v as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Percentiles of one latency.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// Everything one process measured.
#[derive(Default)]
pub struct Tally {
    /// Connect + upgrade.
    pub connect: Latency,
    /// Join round trip.
    pub join: Latency,
    /// The first add_item round trip.
    pub push: Latency,
    /// add_item/remove_item round trips while holding.
    pub churn: Latency,
    /// `stock_change` pushes received on watched product channels.
    pub stock_changes: StockChanges,
    /// Failures by step and outcome.
    pub errors: BTreeMap<String, u64>,
    /// Shoppers whose join succeeded.
    pub joined: u64,
    /// Pushes answered ok.
    pub pushes_ok: u64,
    /// Pushes answered with an error reply (e.g. the item sold out).
    pub pushes_refused: u64,
    /// Cart operations (first or churn) answered with an error reply, by reason.
    pub declined: BTreeMap<String, u64>,
    /// Joined shoppers whose connection later dropped, by cause.
    pub drops: BTreeMap<String, u64>,
}

impl Tally {
    /// Joined shoppers whose connection later dropped.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }

    /// Adds one event.
    pub fn add(&mut self, event: Event) {
        match event {
            Event::Connect(Ok(d)) => self.connect.record(d),
            Event::Join(Ok(d)) => {
                self.joined += 1;
                self.join.record(d);
            }
            Event::Push(Ok(d)) => {
                self.pushes_ok += 1;
                self.push.record(d);
            }
            Event::Connect(Err(o)) => self.error("connect", o),
            Event::Join(Err(o)) => self.error("join", o),
            Event::Push(Err(o)) => self.error("push", o),
            Event::Churn(Ok(d)) => self.churn.record(d),
            Event::Declined {
                first,
                reason,
                took,
            } => {
                if first {
                    self.pushes_refused += 1;
                    self.push.record(took);
                } else {
                    self.churn.record(took);
                }
                *self.declined.entry(reason).or_default() += 1;
            }
            Event::Churn(Err(o)) => self.error("churn", o),
            Event::StockChange(at) => self.stock_changes.record(at),
            Event::Dropped(cause) => *self.drops.entry(cause).or_default() += 1,
        }
    }

    fn error(&mut self, step: &str, outcome: Outcome) {
        let key = format!(
            "{step}:{}",
            serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        *self.errors.entry(key).or_default() += 1;
    }

    /// The transferable form (a worker's last line).
    pub fn to_wire(&self) -> WireTally {
        WireTally {
            connect: self.connect.encode(),
            join: self.join.encode(),
            push: self.push.encode(),
            churn: self.churn.encode(),
            stock_changes: self.stock_changes,
            errors: self.errors.clone(),
            joined: self.joined,
            pushes_ok: self.pushes_ok,
            pushes_refused: self.pushes_refused,
            declined: self.declined.clone(),
            drops: self.drops.clone(),
        }
    }

    /// Adds what a worker measured.
    pub fn merge(&mut self, other: &WireTally) {
        for (mine, theirs) in [
            (&mut self.connect, &other.connect),
            (&mut self.join, &other.join),
            (&mut self.push, &other.push),
            (&mut self.churn, &other.churn),
        ] {
            if let Some(h) = Latency::decode(theirs) {
                let _ = mine.0.add(&h.0);
            }
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.stock_changes.merge(other.stock_changes);
        self.joined += other.joined;
        self.pushes_ok += other.pushes_ok;
        self.pushes_refused += other.pushes_refused;
        for (k, v) in &other.declined {
            *self.declined.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.drops {
            *self.drops.entry(k.clone()).or_default() += v;
        }
    }

    /// The final report.
    /// `elapsed` is ramp + hold; `ramp` is the time until every shopper joined or failed.
    pub fn summary(&self, requested: u64, held: u64, elapsed: Duration, ramp: Duration) -> Summary {
        Summary {
            shoppers_requested: requested,
            shoppers_joined: self.joined,
            connections_held_at_end: held,
            add_item_answered_ok: self.pushes_ok,
            add_item_answered: self.pushes_ok + self.pushes_refused,
            dropped_after_join: self.dropped(),
            drops: self.drops.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            ramp_s: ramp.as_secs_f64(),
            joins_per_second: self.joined as f64 / ramp.as_secs_f64().max(1e-9),
            connect: self.connect.summary(),
            join: self.join.summary(),
            add_item: self.push.summary(),
            churn: self.churn.summary(),
            stock_changes: (self.stock_changes.count > 0).then_some(self.stock_changes),
            declined: self.declined.clone(),
            errors: self.errors.clone(),
            admin_check: None,
        }
    }
}

/// When `stock_change` pushes arrived: with one stock change during a run, `last_unix_us` minus
/// the time it was made is the time to the last delivery.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct StockChanges {
    /// Pushes received, over every shopper.
    pub count: u64,
    /// Arrival of the first, Unix microseconds.
    pub first_unix_us: u64,
    /// Arrival of the last, Unix microseconds.
    pub last_unix_us: u64,
}

impl StockChanges {
    fn record(&mut self, at: std::time::SystemTime) {
        let us = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        self.merge(StockChanges {
            count: 1,
            first_unix_us: us,
            last_unix_us: us,
        });
    }

    fn merge(&mut self, other: StockChanges) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other;
            return;
        }
        self.count += other.count;
        self.first_unix_us = self.first_unix_us.min(other.first_unix_us);
        self.last_unix_us = self.last_unix_us.max(other.last_unix_us);
    }
}

/// A worker's tally on the wire.
#[derive(Serialize, Deserialize)]
pub struct WireTally {
    connect: String,
    join: String,
    push: String,
    #[serde(default)]
    churn: String,
    #[serde(default)]
    stock_changes: StockChanges,
    errors: BTreeMap<String, u64>,
    joined: u64,
    pushes_ok: u64,
    pushes_refused: u64,
    #[serde(default)]
    declined: BTreeMap<String, u64>,
    drops: BTreeMap<String, u64>,
}

/// The report of a run, printed as text or JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Shoppers asked for.
    pub shoppers_requested: u64,
    /// Shoppers that joined their cart channel.
    pub shoppers_joined: u64,
    /// Connections still open when the run ended.
    pub connections_held_at_end: u64,
    /// Cart operations answered `ok`.
    pub add_item_answered_ok: u64,
    /// Cart operations answered at all (`ok` or an error reply such as `out_of_stock`).
    pub add_item_answered: u64,
    /// Joined shoppers that lost their connection.
    pub dropped_after_join: u64,
    /// Those drops by cause: the server's close code and reason, or what the socket said.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drops: BTreeMap<String, u64>,
    /// Wall time of ramp + hold.
    pub elapsed_s: f64,
    /// Wall time of the ramp: until every shopper joined (and pushed its add_item) or failed.
    pub ramp_s: f64,
    /// Joined shoppers per second over the ramp.
    pub joins_per_second: f64,
    /// Connect + upgrade latency.
    pub connect: Percentiles,
    /// Join round trip.
    pub join: Percentiles,
    /// The first add_item round trip (during the ramp).
    pub add_item: Percentiles,
    /// add_item/remove_item round trips while holding (`--churn-per-minute`): the steady state.
    pub churn: Percentiles,
    /// `stock_change` deliveries on watched product channels (`--products`), when any arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock_changes: Option<StockChanges>,
    /// Cart operations the store answered with an error reply (`out_of_stock`, `cart_full`,
    /// …), by reason: what a shopper would see, not a failure of the run.
    #[serde(default)]
    pub declined: BTreeMap<String, u64>,
    /// Failures, `step:outcome` → count.
    pub errors: BTreeMap<String, u64>,
    /// What the `--check-admin` dashboards counted, when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_check: Option<AdminReport>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "shoppers requested      {}", self.shoppers_requested)?;
        writeln!(f, "shoppers joined         {}", self.shoppers_joined)?;
        writeln!(
            f,
            "connections held (end)  {}",
            self.connections_held_at_end
        )?;
        writeln!(
            f,
            "cart operations ok      {} (answered {})",
            self.add_item_answered_ok, self.add_item_answered
        )?;
        writeln!(f, "dropped after join      {}", self.dropped_after_join)?;
        for (cause, count) in &self.drops {
            writeln!(f, "  {count} × {cause}")?;
        }
        writeln!(
            f,
            "elapsed                 {:.1} s (ramp {:.1} s, {:.0} joins/s)",
            self.elapsed_s, self.ramp_s, self.joins_per_second
        )?;
        writeln!(
            f,
            "latency (ms)            count      p50      p90      p99      max"
        )?;
        for (name, p) in [
            ("connect", &self.connect),
            ("join", &self.join),
            ("add_item", &self.add_item),
            ("churn", &self.churn),
        ] {
            if name == "churn" && p.count == 0 {
                continue; // no churn was asked for (or none was answered)
            }
            writeln!(
                f,
                "  {name:<20} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
            )?;
        }
        if !self.declined.is_empty() {
            let reasons: Vec<String> = self
                .declined
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            writeln!(f, "declined by the store   {}", reasons.join(", "))?;
        }
        if self.errors.is_empty() {
            writeln!(f, "errors                  none")?;
        } else {
            writeln!(f, "errors")?;
            for (k, v) in &self.errors {
                writeln!(f, "  {k:<20} {v}")?;
            }
        }
        if let Some(admin) = &self.admin_check {
            write!(f, "{admin}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::{Error, Message};

    #[test]
    fn a_drop_names_the_servers_close_code_and_reason_or_the_socket_error() {
        let idle = Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "idle timeout".into(),
        }));
        assert_eq!(
            drop_cause(Some(&Ok(idle))),
            "server closed 1001 idle timeout"
        );
        let reset = Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            drop_cause(Some(&Err(reset))),
            "socket error: ConnectionReset"
        );
        assert_eq!(drop_cause(None), "connection ended without a close frame");
    }

    #[test]
    fn drops_by_cause_survive_the_trip_from_a_worker() {
        let mut worker = Tally::default();
        worker.add(Event::Dropped("server closed 1001 idle timeout".to_owned()));
        worker.add(Event::Dropped("server closed 1001 idle timeout".to_owned()));
        worker.add(Event::Dropped("socket error: ConnectionReset".to_owned()));
        let wire: WireTally =
            serde_json::from_str(&serde_json::to_string(&worker.to_wire()).expect("encodes"))
                .expect("decodes");

        let mut total = Tally::default();
        total.add(Event::Dropped("socket error: ConnectionReset".to_owned()));
        total.merge(&wire);
        let summary = total.summary(10, 6, Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(summary.dropped_after_join, 4);
        assert_eq!(summary.drops["server closed 1001 idle timeout"], 2);
        assert_eq!(summary.drops["socket error: ConnectionReset"], 2);
        assert!(
            summary
                .to_string()
                .contains("2 × server closed 1001 idle timeout")
        );
    }
}
