//! Tracker options, with Phoenix's defaults, and their validation.
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `broadcast_period` | 1 500 ms | tick: deltas are broadcast, transfers decided, downs detected |
//! | `max_silent_periods` | 10 | quiet ticks before an empty heartbeat |
//! | `down_period` | `broadcast_period × max_silent_periods × 2` (30 s) | silence before a peer is down |
//! | `permdown_period` | 20 min | silence before a peer's data is deleted |
//! | `clock_sample_periods` | 2 | ticks between transfer decisions |
//! | `max_delta_sizes` | `[100, 1000, 10000]` | caps of the delta generations |
//! | `pool_size` | 1 | shards; must be equal on every node |
//! | `max_meta_bytes` | 4 096 | longest meta (compact JSON text) `track` and `update` accept |
//!
//! One deliberate difference: an idle shard heartbeats at least twice per `down_period` whatever
//! `max_silent_periods` says, so that short down periods (tests, fast failover) never mark healthy
//! idle peers down. With the defaults this changes nothing.

use std::time::Duration;

use crate::engine::EngineConfig;

/// How a tracker replicates and detects failures. See the module docs for the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Tick period.
    pub broadcast_period: Duration,
    /// Quiet ticks before an empty heartbeat is sent.
    pub max_silent_periods: u32,
    /// Silence before a peer is marked down; `None` = `broadcast_period × max_silent_periods × 2`.
    pub down_period: Option<Duration>,
    /// Silence before a peer is removed for good.
    pub permdown_period: Duration,
    /// Ticks between transfer decisions.
    pub clock_sample_periods: u32,
    /// Caps (values + dots) of the delta generations, smallest first.
    pub max_delta_sizes: Vec<usize>,
    /// Number of shards (topics are hashed to shards); must be equal on every node.
    pub pool_size: usize,
    /// Longest meta, in bytes of compact JSON text, that `track` and `update` accept; longer ones
    /// are refused with `MetaTooLarge`. Every node holds a copy of every meta and sends it to
    /// every admin listing its topic, so one client must not be able to make it large. Not
    /// applied to metas received from peers (each node enforces its own limit on its own
    /// presences).
    pub max_meta_bytes: usize,
}

/// The default of [`Options::max_meta_bytes`]: 4 KiB, ten times what a typical meta (a user's
/// name, a status, a few ids) takes, and small enough that 100k presences stay under 400 MB.
pub const DEFAULT_MAX_META_BYTES: usize = 4096;

impl Default for Options {
    fn default() -> Self {
        Options {
            broadcast_period: Duration::from_millis(1500),
            max_silent_periods: 10,
            down_period: None,
            permdown_period: Duration::from_secs(20 * 60),
            clock_sample_periods: 2,
            max_delta_sizes: vec![100, 1000, 10_000],
            pool_size: 1,
            max_meta_bytes: DEFAULT_MAX_META_BYTES,
        }
    }
}

/// Why options were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// A zero tick period would spin.
    #[error("broadcast_period must be greater than zero; the Phoenix default is 1500 ms")]
    ZeroBroadcastPeriod,
    /// Peers would be marked down between two heartbeats.
    #[error(
        "down_period ({down:?}) must be at least twice broadcast_period ({broadcast:?}); raise down_period or lower broadcast_period"
    )]
    DownPeriodTooShort {
        /// The down period given or derived.
        down: Duration,
        /// The broadcast period.
        broadcast: Duration,
    },
    /// Data would be deleted before the peer is even marked down.
    #[error(
        "permdown_period ({permdown:?}) must be longer than down_period ({down:?}); raise permdown_period"
    )]
    PermdownNotAfterDown {
        /// The permdown period.
        permdown: Duration,
        /// The down period.
        down: Duration,
    },
    /// A tracker needs at least one shard.
    #[error("pool_size must be at least 1 (and equal on every node)")]
    ZeroPoolSize,
    /// Delta generations need at least one cap.
    #[error("max_delta_sizes must list at least one size, e.g. [100, 1000, 10000]")]
    EmptyMaxDeltaSizes,
    /// Even the empty meta `{}` would be refused.
    #[error("max_meta_bytes is {0}; it must be at least 2 (the empty meta {{}}), e.g. 4096")]
    MaxMetaBytesTooSmall(usize),
}

impl Options {
    /// The effective down period.
    pub fn down_period(&self) -> Duration {
        self.down_period
            .unwrap_or_else(|| self.broadcast_period * self.max_silent_periods.max(1) * 2)
    }

    /// Checks the rules Phoenix enforces at shard start, plus a few that would make the shard
    /// misbehave.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.broadcast_period.is_zero() {
            return Err(OptionsError::ZeroBroadcastPeriod);
        }
        let down = self.down_period();
        if down < self.broadcast_period * 2 {
            return Err(OptionsError::DownPeriodTooShort {
                down,
                broadcast: self.broadcast_period,
            });
        }
        if self.permdown_period <= down {
            return Err(OptionsError::PermdownNotAfterDown {
                permdown: self.permdown_period,
                down,
            });
        }
        if self.pool_size == 0 {
            return Err(OptionsError::ZeroPoolSize);
        }
        if self.max_delta_sizes.is_empty() {
            return Err(OptionsError::EmptyMaxDeltaSizes);
        }
        if self.max_meta_bytes < 2 {
            return Err(OptionsError::MaxMetaBytesTooSmall(self.max_meta_bytes));
        }
        Ok(())
    }

    /// The protocol parameters for each shard's engine.
    pub(crate) fn engine_config(&self) -> EngineConfig {
        let period = self.broadcast_period.as_millis().max(1) as u64;
        let down = self.down_period().as_millis() as u64;
        // Heartbeat at least twice per down period when idle.
        let cap = (down / (2 * period)).max(1) as u32;
        let mut sizes = self.max_delta_sizes.clone();
        sizes.sort_unstable();
        EngineConfig {
            down_period: down,
            permdown_period: self.permdown_period.as_millis() as u64,
            max_silent_periods: self.max_silent_periods.clamp(1, cap),
            clock_sample_periods: self.clock_sample_periods.max(1),
            max_delta_sizes: sizes,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_phoenixs() {
        let o = Options::default();
        assert_eq!(o.down_period(), Duration::from_secs(30));
        assert_eq!(o.validate(), Ok(()));
        let c = o.engine_config();
        assert_eq!(c.max_silent_periods, 10);
        assert_eq!(c.down_period, 30_000);
        assert_eq!(c.permdown_period, 1_200_000);
        assert_eq!(c.max_delta_sizes, vec![100, 1000, 10_000]);
    }

    #[test]
    fn bad_options_are_refused_with_a_reason() {
        let ms = Duration::from_millis;
        let short = Options {
            down_period: Some(ms(2999)),
            ..Options::default()
        };
        let err = short.validate().unwrap_err();
        assert!(matches!(err, OptionsError::DownPeriodTooShort { .. }));
        assert!(err.to_string().contains("raise down_period"));
        let permdown = Options {
            permdown_period: ms(30_000),
            ..Options::default()
        };
        assert!(matches!(
            permdown.validate(),
            Err(OptionsError::PermdownNotAfterDown { .. })
        ));
        let pool = Options {
            pool_size: 0,
            ..Options::default()
        };
        assert_eq!(pool.validate(), Err(OptionsError::ZeroPoolSize));
        let sizes = Options {
            max_delta_sizes: vec![],
            ..Options::default()
        };
        assert_eq!(sizes.validate(), Err(OptionsError::EmptyMaxDeltaSizes));
        let zero = Options {
            broadcast_period: ms(0),
            ..Options::default()
        };
        assert_eq!(zero.validate(), Err(OptionsError::ZeroBroadcastPeriod));
        let metas = Options {
            max_meta_bytes: 1,
            ..Options::default()
        };
        assert_eq!(metas.validate(), Err(OptionsError::MaxMetaBytesTooSmall(1)));
    }

    #[test]
    fn idle_heartbeats_come_twice_per_down_period() {
        let o = Options {
            broadcast_period: Duration::from_millis(20),
            down_period: Some(Duration::from_millis(100)),
            permdown_period: Duration::from_millis(300),
            ..Options::default()
        };
        assert_eq!(o.validate(), Ok(()));
        assert_eq!(o.engine_config().max_silent_periods, 2);
    }
}
