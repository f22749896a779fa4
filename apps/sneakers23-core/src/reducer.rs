//! The inventory reducer: a demo and load tool that sells stock at random (spec §6.8).
//!
//! [`sell_random_until_gone`] ticks every [`ReducerOptions::tick`]; each tick picks
//! [`ReducerOptions::per_tick`] random items among those the local cache shows as available
//! (with replacement) and sells one unit of each through [`Inventory::sell_item`], so every
//! sale goes through the database and produces the usual replication and notifications.
//! `not_available` (another node or shopper was faster) is ignored. It returns once the cache
//! shows nothing available. [`sell_random`] is the one-shot variant.

use std::time::Duration;

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::db::DbError;
use crate::inventory::Inventory;
use crate::model::ItemId;

/// Default number of sales per tick.
pub const DEFAULT_PER_TICK: usize = 200;
/// Default time between ticks.
pub const DEFAULT_TICK: Duration = Duration::from_millis(250);
/// Default number of sales of [`sell_random`].
pub const DEFAULT_SELL_RANDOM: usize = 100;

/// Settings of [`sell_random_until_gone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReducerOptions {
    /// Sales attempted per tick.
    pub per_tick: usize,
    /// Time between ticks.
    pub tick: Duration,
}

impl Default for ReducerOptions {
    fn default() -> Self {
        Self {
            per_tick: DEFAULT_PER_TICK,
            tick: DEFAULT_TICK,
        }
    }
}

/// What a reducer run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReducerReport {
    /// Units sold.
    pub sold: u64,
    /// Attempts refused because the item was already gone.
    pub not_available: u64,
    /// Ticks run.
    pub ticks: u64,
}

/// Sells random available items, tick after tick, until the local cache shows nothing left.
/// Stops early with the error when a sale fails for another reason than `not_available`
/// (e.g. the database is unreachable).
pub async fn sell_random_until_gone(
    inventory: &Inventory,
    options: ReducerOptions,
) -> Result<ReducerReport, DbError> {
    let mut report = ReducerReport::default();
    let mut interval = tokio::time::interval(options.tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let picks = pick_available(inventory, options.per_tick);
        if picks.is_empty() {
            tracing::info!(sold = report.sold, ticks = report.ticks, "sold out!");
            return Ok(report);
        }
        sell_each(inventory, &picks, &mut report).await?;
        report.ticks += 1;
        tracing::info!(sold = report.sold, "still selling...");
    }
}

/// Sells `n` random available items once (fewer when the cache shows nothing available).
pub async fn sell_random(inventory: &Inventory, n: usize) -> Result<ReducerReport, DbError> {
    let mut report = ReducerReport::default();
    let picks = pick_available(inventory, n);
    sell_each(inventory, &picks, &mut report).await?;
    report.ticks = 1;
    Ok(report)
}

/// `n` ids drawn uniformly, with replacement, among the items the cache shows as available.
fn pick_available(inventory: &Inventory, n: usize) -> Vec<ItemId> {
    let snapshot = inventory.snapshot();
    let available: Vec<ItemId> = snapshot
        .items()
        .filter(|i| !i.is_out_of_stock())
        .map(|i| i.id)
        .collect();
    let mut rng = rand::rng();
    pick(&available, n, &mut rng)
}

fn pick(available: &[ItemId], n: usize, rng: &mut impl Rng) -> Vec<ItemId> {
    if available.is_empty() {
        return Vec::new();
    }
    (0..n)
        .filter_map(|_| available.choose(rng).copied())
        .collect()
}

async fn sell_each(
    inventory: &Inventory,
    picks: &[ItemId],
    report: &mut ReducerReport,
) -> Result<(), DbError> {
    for &item_id in picks {
        match inventory.sell_item(item_id).await {
            Ok(()) => report.sold += 1,
            Err(DbError::NotAvailable { .. }) => report.not_available += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    #[test]
    fn picks_only_available_ids_with_replacement() {
        let mut rng = StdRng::seed_from_u64(1);
        let picks = pick(&[4, 9], 50, &mut rng);
        assert_eq!(picks.len(), 50);
        assert!(picks.iter().all(|id| [4, 9].contains(id)));
        assert!(picks.contains(&4) && picks.contains(&9));
        assert!(pick(&[], 50, &mut rng).is_empty());
    }
}
