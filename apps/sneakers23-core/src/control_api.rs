//! The operator control API's messages (`/ops/*`, spec §8): the paths, queries and answers
//! that the node's handlers (the serving crate's `web::ops`) produce and the CLI's client
//! (`control::ControlClient` there) reads, typed once for both so that neither formats a URL
//! or reads an answer by hand.
//!
//! | request | answer |
//! |---|---|
//! | `POST` [`release_path`] | [`Released`] |
//! | `POST` [`sell_path`] with [`SellQuery`] | [`SellReport`] |
//! | `POST` [`SELL_RANDOM_UNTIL_GONE_PATH`] with [`ReducerQuery`] | [`ReducerStarted`] (`202`), or [`ReducerDone`] with `wait` |
//! | `GET` [`PRESENCE_PATH`] | the CartTracker's `list` (Phoenix's presence list JSON) |
//! | `GET` [`INVENTORY_PATH`] | [`InventoryReport`] |
//!
//! Errors are `{"error": "…"}` with a 4xx/5xx status. Field order follows what the handlers
//! answered before these types existed (alphabetical), so the wire text is unchanged.

use serde::{Deserialize, Serialize};

use crate::level::AvailabilityLevel;
use crate::model::{ItemId, ProductId};

/// `GET`: the CartTracker's presence list.
pub const PRESENCE_PATH: &str = "/ops/presence";
/// `GET`: this node's inventory cache.
pub const INVENTORY_PATH: &str = "/ops/inventory";
/// `POST`: start (or, with `wait`, run) the random seller.
pub const SELL_RANDOM_UNTIL_GONE_PATH: &str = "/ops/sell-random-until-gone";

/// `POST`: release a product.
pub fn release_path(product_id: ProductId) -> String {
    format!("/ops/release/{product_id}")
}

/// `POST`: sell units of an item.
pub fn sell_path(item_id: ItemId) -> String {
    format!("/ops/sell/{item_id}")
}

/// Answer of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Released {
    /// The product now released.
    pub released: ProductId,
}

/// Query of `POST /ops/sell/{item_id}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellQuery {
    /// Units to sell (default 1).
    pub units: Option<u32>,
    /// Sell until this many units are left (overrides `units`).
    pub leave: Option<u32>,
}

impl SellQuery {
    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(units) = self.units {
            pairs.push(format!("units={units}"));
        }
        if let Some(leave) = self.leave {
            pairs.push(format!("leave={leave}"));
        }
        pairs.join("&")
    }
}

/// Answer of `POST /ops/sell/{item_id}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SellReport {
    /// The item sold.
    pub item_id: ItemId,
    /// Units sold by this request.
    pub sold: u32,
    /// Units left afterwards, according to this node's cache.
    pub available: i32,
}

/// Query of `POST /ops/sell-random-until-gone`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerQuery {
    /// Sales per tick (default 200).
    pub per_tick: Option<usize>,
    /// Milliseconds between ticks (default 250).
    pub tick_ms: Option<u64>,
    /// Answer when done (with the report) rather than at once.
    #[serde(default)]
    pub wait: bool,
}

impl ReducerQuery {
    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut pairs = Vec::new();
        if let Some(per_tick) = self.per_tick {
            pairs.push(format!("per_tick={per_tick}"));
        }
        if let Some(tick_ms) = self.tick_ms {
            pairs.push(format!("tick_ms={tick_ms}"));
        }
        pairs.push(format!("wait={}", self.wait));
        pairs.join("&")
    }
}

/// Answer of the random seller started in the background (`202 Accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerStarted {
    /// Sales per tick.
    pub per_tick: usize,
    /// Always `true`.
    pub started: bool,
    /// Milliseconds between ticks.
    pub tick_ms: u64,
}

/// Answer of the random seller run to the end (`wait=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReducerDone {
    /// Attempts refused because the item was already gone.
    pub not_available: u64,
    /// Units sold.
    pub sold: u64,
    /// Ticks run.
    pub ticks: u64,
}

/// Answer of `GET /ops/inventory`: every product of the cache, in display order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReport {
    /// The products.
    pub products: Vec<ProductReport>,
}

/// One product of an [`InventoryReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductReport {
    /// Its id.
    pub id: ProductId,
    /// Its sizes, in ascending id.
    pub items: Vec<ItemReport>,
    /// Its name.
    pub name: String,
    /// Whether it is on sale.
    pub released: bool,
}

/// One item (size) of a [`ProductReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemReport {
    /// Units left according to the node's cache.
    pub available_count: i32,
    /// Its id.
    pub id: ItemId,
    /// Its availability level.
    pub level: AvailabilityLevel,
    /// The size.
    pub size: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_carry_only_what_is_set() {
        assert_eq!(SellQuery::default().to_query(), "");
        let sell = SellQuery {
            units: Some(3),
            leave: Some(1),
        };
        assert_eq!(sell.to_query(), "units=3&leave=1");
        let reducer = ReducerQuery {
            per_tick: Some(5),
            tick_ms: Some(10),
            wait: true,
        };
        assert_eq!(reducer.to_query(), "per_tick=5&tick_ms=10&wait=true");
    }

    #[test]
    fn answers_keep_their_wire_form() -> Result<(), serde_json::Error> {
        let done = ReducerDone {
            not_available: 1,
            sold: 2,
            ticks: 3,
        };
        assert_eq!(
            serde_json::to_string(&done)?,
            r#"{"not_available":1,"sold":2,"ticks":3}"#
        );
        let item = ItemReport {
            available_count: 4,
            id: 7,
            level: AvailabilityLevel::Low,
            size: "10".into(),
        };
        assert_eq!(
            serde_json::to_string(&item)?,
            r#"{"available_count":4,"id":7,"level":"low","size":"10"}"#
        );
        Ok(())
    }
}
