//! The run second by second, for the plot: how many shoppers were connected, and the latency
//! percentiles of the round trips (joins and cart operations) that ended in that second.
//!
//! Each process keeps its own timeline from its own start; worker timelines are added bucket by
//! bucket (their starts differ by the few milliseconds it takes to start a process).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::{Event, Latency};

/// Width of one bucket.
pub const STEP: Duration = Duration::from_secs(1);

#[derive(Clone, Default)]
struct Bucket {
    /// Shoppers that joined minus shoppers that dropped in this second.
    net: i64,
    /// Round trips that ended in this second.
    latency: Latency,
}

/// One process's timeline (see the module docs).
#[derive(Clone, Default)]
pub struct Timeline {
    buckets: Vec<Bucket>,
}

/// One second of the run, as plotted.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Seconds since the start of the run (the end of the bucket).
    pub t_s: f64,
    /// Shoppers connected at the end of that second.
    pub connected: u64,
    /// Round trips that ended in that second.
    pub round_trips: u64,
    /// Their median, 90th and 99th percentile, ms (0 without round trips).
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// A timeline on the wire (in a worker's last line): per bucket, the net joins and the
/// encoded latency histogram.
#[derive(Serialize, Deserialize, Default)]
pub struct WireTimeline(Vec<(i64, String)>);

impl Timeline {
    fn bucket(&mut self, at: Duration) -> &mut Bucket {
        let index = (at.as_millis() / STEP.as_millis()) as usize;
        if self.buckets.len() <= index {
            self.buckets.resize_with(index + 1, Bucket::default);
        }
        &mut self.buckets[index]
    }

    /// Notes `event`, received `at` after the start of this process's run.
    pub fn record(&mut self, event: &Event, at: Duration) {
        match event {
            Event::Join(Ok(d)) => {
                let bucket = self.bucket(at);
                bucket.net += 1;
                bucket.latency.record(*d);
            }
            Event::Push(Ok(d)) | Event::Churn(Ok(d)) | Event::Declined { took: d, .. } => {
                self.bucket(at).latency.record(*d)
            }
            Event::Dropped(_) => self.bucket(at).net -= 1,
            _ => {}
        }
    }

    /// Makes the timeline reach `at` (so that a quiet hold still shows on the plot).
    pub fn extend_to(&mut self, at: Duration) {
        self.bucket(at);
    }

    /// The transferable form.
    pub fn to_wire(&self) -> WireTimeline {
        WireTimeline(
            self.buckets
                .iter()
                .map(|b| (b.net, b.latency.encode()))
                .collect(),
        )
    }

    /// Adds a worker's timeline, bucket by bucket.
    pub fn merge(&mut self, other: &WireTimeline) {
        for (index, (net, latency)) in other.0.iter().enumerate() {
            let bucket = self.bucket(STEP * index as u32);
            bucket.net += net;
            if let Some(latency) = Latency::decode(latency) {
                bucket.latency.add(&latency);
            }
        }
    }

    /// The plotted points, one per second.
    pub fn points(&self) -> Vec<Point> {
        let mut connected = 0i64;
        self.buckets
            .iter()
            .enumerate()
            .map(|(index, bucket)| {
                connected += bucket.net;
                let p = bucket.latency.summary();
                Point {
                    t_s: (index + 1) as f64 * STEP.as_secs_f64(),
                    connected: connected.max(0) as u64,
                    round_trips: p.count,
                    p50_ms: p.p50_ms,
                    p90_ms: p.p90_ms,
                    p99_ms: p.p99_ms,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_and_percentiles_follow_the_events_and_survive_a_merge() {
        let ms = Duration::from_millis;
        let mut worker = Timeline::default();
        worker.record(&Event::Join(Ok(ms(2))), ms(100));
        worker.record(&Event::Join(Ok(ms(4))), ms(900));
        worker.record(&Event::Dropped("reset".to_owned()), ms(2500));
        let mut lead = Timeline::default();
        lead.record(&Event::Join(Ok(ms(10))), ms(1500));
        lead.extend_to(ms(3200));
        let wire = serde_json::to_string(&worker.to_wire()).expect("encodes");
        lead.merge(&serde_json::from_str(&wire).expect("decodes"));
        let points = lead.points();
        assert_eq!(
            points.iter().map(|p| p.connected).collect::<Vec<_>>(),
            vec![2, 3, 2, 2]
        );
        assert_eq!(points[0].round_trips, 2);
        assert!((points[0].p99_ms - 4.0).abs() < 0.01, "{:?}", points[0]);
        assert!((points[1].p50_ms - 10.0).abs() < 0.01);
        assert_eq!(points[3].round_trips, 0);
        assert_eq!(points[3].t_s, 4.0);
    }
}
