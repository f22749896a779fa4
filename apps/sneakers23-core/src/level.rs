//! Availability levels: the coarse stock indicator shoppers see (spec §3.3).
//!
//! Shoppers never see exact counts. An item's remaining count maps to one of four levels, used
//! both by server-rendered HTML (`size-container__entry--level-<level>`) and by the `stock_change`
//! event payload:
//!
//! | count     | level    |
//! |-----------|----------|
//! | 0         | `out`    |
//! | 1–149     | `low`    |
//! | 150–499   | `medium` |
//! | ≥ 500     | `high`   |
//!
//! ```
//! use sneakers23_core::level::AvailabilityLevel;
//! assert_eq!(AvailabilityLevel::from_count(0), AvailabilityLevel::Out);
//! assert_eq!(AvailabilityLevel::from_count(150).as_str(), "medium");
//! assert_eq!(serde_json::to_string(&AvailabilityLevel::High).unwrap(), "\"high\"");
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// Lowest count shown as `medium`.
pub const MEDIUM_THRESHOLD: i64 = 150;
/// Lowest count shown as `high`.
pub const HIGH_THRESHOLD: i64 = 500;

/// Stock level of an item as shown to shoppers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AvailabilityLevel {
    /// Sold out (count 0, or unknown availability). Rendered disabled.
    Out,
    /// 1–149 left.
    Low,
    /// 150–499 left.
    Medium,
    /// 500 or more left.
    High,
}

impl AvailabilityLevel {
    /// The level of an item with `count` units left. Negative counts (never stored; the schema
    /// forbids them) are treated as sold out.
    pub fn from_count(count: i64) -> Self {
        match count {
            i64::MIN..=0 => Self::Out,
            1..MEDIUM_THRESHOLD => Self::Low,
            MEDIUM_THRESHOLD..HIGH_THRESHOLD => Self::Medium,
            _ => Self::High,
        }
    }

    /// The wire / CSS name: `"out"`, `"low"`, `"medium"` or `"high"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Out => "out",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    /// True for [`AvailabilityLevel::Out`].
    pub fn is_out(self) -> bool {
        self == Self::Out
    }
}

impl fmt::Display for AvailabilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_match_the_spec_table() {
        let cases = [
            (-1, AvailabilityLevel::Out),
            (0, AvailabilityLevel::Out),
            (1, AvailabilityLevel::Low),
            (149, AvailabilityLevel::Low),
            (150, AvailabilityLevel::Medium),
            (499, AvailabilityLevel::Medium),
            (500, AvailabilityLevel::High),
            (1200, AvailabilityLevel::High),
        ];
        for (count, level) in cases {
            assert_eq!(AvailabilityLevel::from_count(count), level, "count {count}");
        }
    }

    #[test]
    fn serde_uses_lowercase_names() -> Result<(), serde_json::Error> {
        for level in [
            AvailabilityLevel::Out,
            AvailabilityLevel::Low,
            AvailabilityLevel::Medium,
            AvailabilityLevel::High,
        ] {
            let json = serde_json::to_string(&level)?;
            assert_eq!(json, format!("\"{}\"", level.as_str()));
            assert_eq!(serde_json::from_str::<AvailabilityLevel>(&json)?, level);
            assert_eq!(level.to_string(), level.as_str());
        }
        Ok(())
    }
}
