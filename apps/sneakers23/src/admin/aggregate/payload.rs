//! The aggregate's values: the `aggregate` snapshot and `aggregate_delta` payloads admins
//! receive (see the parent module's docs), and the state they are computed from — the view as
//! last published, the catalogue's stock and the shopper-count history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use sneakers23_core::level::AvailabilityLevel;
use sneakers23_core::model::{ItemId, ProductId};

/// Interval of the shopper-count history, in milliseconds.
pub const HISTORY_STEP_MS: i64 = 2_000;
/// Points kept in the shopper-count history (ten minutes at [`HISTORY_STEP_MS`]).
pub const HISTORY_LEN: usize = 300;

/// Stock of one item as the dashboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stock {
    /// Units left according to this node's inventory cache.
    pub available: i32,
    /// The level shoppers see.
    pub level: AvailabilityLevel,
}

/// The whole dashboard state as last sent (or to be sent) to admins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct View {
    pub(super) shoppers: u64,
    pub(super) tabs: u64,
    pub(super) pages: BTreeMap<Option<Arc<str>>, u64>,
    pub(super) other_pages: u64,
    pub(super) carts: BTreeMap<ItemId, u64>,
    pub(super) stock: BTreeMap<ItemId, Stock>,
    pub(super) released: BTreeMap<ProductId, bool>,
}

/// The item catalog and its live stock, from the inventory cache.
#[derive(Debug, Clone, Default)]
pub(super) struct Catalog {
    pub(super) stock: BTreeMap<ItemId, Stock>,
    pub(super) released: BTreeMap<ProductId, bool>,
}

/// Shopper counts sampled every [`HISTORY_STEP_MS`], newest last.
#[derive(Debug, Clone, Default)]
pub(super) struct History {
    pub(super) points: VecDeque<u64>,
    pub(super) end: i64,
}

/// The `aggregate` payload: the full dashboard state as of delta `seq` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregateSnapshot {
    /// Sequence number of the last delta this state includes (0 before the first).
    pub seq: u64,
    /// Server time of that state, Unix milliseconds.
    pub at: i64,
    /// Distinct carts.
    pub shoppers: u64,
    /// Tracked tabs.
    pub tabs: u64,
    /// `[page or null, tabs]`, by page.
    pub pages: Vec<(Option<Arc<str>>, u64)>,
    /// Tabs on pages beyond the page buckets.
    pub other_pages: u64,
    /// Carts per catalog item, non-zero counts only.
    pub carts: BTreeMap<ItemId, u64>,
    /// Stock per catalog item.
    pub stock: BTreeMap<ItemId, Stock>,
    /// Release state per product.
    pub released: BTreeMap<ProductId, bool>,
    /// Recent shopper counts, for the chart.
    pub history: HistoryPayload,
}

/// The shopper-count history in a snapshot: `shoppers[i]` was sampled at
/// `end - (len - 1 - i) * step_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryPayload {
    /// Sampling interval, milliseconds.
    pub step_ms: i64,
    /// Time of the last sample, Unix milliseconds (0 when there is none).
    pub end: i64,
    /// Samples, oldest first.
    pub shoppers: Vec<u64>,
}

/// The `aggregate_delta` payload: what changed since delta `seq - 1` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregateDelta {
    /// This delta's sequence number.
    pub seq: u64,
    /// Server time of the new state, Unix milliseconds.
    pub at: i64,
    /// New number of distinct carts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shoppers: Option<u64>,
    /// New number of tabs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tabs: Option<u64>,
    /// Changed page buckets, `[page or null, tabs]`; 0 removes the bucket.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<(Option<Arc<str>>, u64)>,
    /// New count of tabs beyond the page buckets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_pages: Option<u64>,
    /// Changed carts-per-item counts (possibly 0).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub carts: BTreeMap<ItemId, u64>,
    /// Changed stock entries.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stock: BTreeMap<ItemId, Stock>,
    /// Changed release states.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub released: BTreeMap<ProductId, bool>,
}
