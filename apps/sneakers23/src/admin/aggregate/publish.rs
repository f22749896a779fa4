//! Publishing the aggregate (see the parent module's docs): the stock and release states taken
//! from the inventory cache, the delta of the counters since the last publication, the
//! snapshot an admin joins with, and the shopper-count history.

use std::collections::BTreeMap;
use std::sync::Arc;

use sneakers23_core::inventory::InventorySnapshot;

use super::CartAggregate;
use super::payload::{
    AggregateDelta, AggregateSnapshot, Catalog, HISTORY_LEN, HISTORY_STEP_MS, HistoryPayload,
    Stock, View,
};

impl CartAggregate {
    /// Takes the catalog, the stock and the release states from the inventory cache (cheap: one
    /// entry per item). Items the cache no longer has are dropped from the dashboard.
    pub fn set_inventory(&mut self, snapshot: &InventorySnapshot) {
        let mut catalog = Catalog::default();
        for product in snapshot.products() {
            catalog
                .released
                .insert(product.product.id, product.product.released);
            for item in &product.items {
                catalog.stock.insert(
                    item.id,
                    Stock {
                        available: item.available_count,
                        level: item.level(),
                    },
                );
            }
        }
        if catalog.stock != self.catalog.stock || catalog.released != self.catalog.released {
            self.catalog = catalog;
            self.dirty = true;
        }
    }

    fn current_view(&self) -> View {
        let mut pages: BTreeMap<Option<Arc<str>>, u64> = self
            .pages
            .iter()
            .map(|(label, &count)| (Some(label.clone()), count))
            .collect();
        if self.null_page > 0 {
            pages.insert(None, self.null_page);
        }
        let carts = self
            .catalog
            .stock
            .keys()
            .filter_map(|item| {
                let count = self.carts_by_item.get(item).copied().unwrap_or(0);
                (count > 0).then_some((*item, count))
            })
            .collect();
        View {
            shoppers: self.carts.len() as u64,
            tabs: self.tabs,
            pages,
            other_pages: self.other_pages,
            carts,
            stock: self.catalog.stock.clone(),
            released: self.catalog.released.clone(),
        }
    }

    /// Publishes the changes since the last call, if any, as the next delta (at `now_ms`).
    pub fn publish(&mut self, now_ms: i64) -> Option<AggregateDelta> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        let view = self.current_view();
        let old = &self.published;
        let delta = AggregateDelta {
            seq: self.seq + 1,
            at: now_ms,
            shoppers: (view.shoppers != old.shoppers).then_some(view.shoppers),
            tabs: (view.tabs != old.tabs).then_some(view.tabs),
            pages: changed(&old.pages, &view.pages, 0),
            other_pages: (view.other_pages != old.other_pages).then_some(view.other_pages),
            carts: changed(&old.carts, &view.carts, 0).into_iter().collect(),
            stock: changed_entries(&old.stock, &view.stock),
            released: changed_entries(&old.released, &view.released),
        };
        let empty = delta.shoppers.is_none()
            && delta.tabs.is_none()
            && delta.pages.is_empty()
            && delta.other_pages.is_none()
            && delta.carts.is_empty()
            && delta.stock.is_empty()
            && delta.released.is_empty();
        if empty {
            // Changes that cancelled out (a tab opened and closed within one period).
            return None;
        }
        self.seq = delta.seq;
        self.published = view;
        self.published_at = now_ms;
        Some(delta)
    }

    /// The full state as of the last [`publish`](CartAggregate::publish), with the history.
    pub fn snapshot(&self) -> AggregateSnapshot {
        let view = &self.published;
        AggregateSnapshot {
            seq: self.seq,
            at: self.published_at,
            shoppers: view.shoppers,
            tabs: view.tabs,
            pages: view
                .pages
                .iter()
                .map(|(page, &count)| (page.clone(), count))
                .collect(),
            other_pages: view.other_pages,
            carts: view.carts.clone(),
            stock: view.stock.clone(),
            released: view.released.clone(),
            history: HistoryPayload {
                step_ms: HISTORY_STEP_MS,
                end: self.history.end,
                shoppers: self.history.points.iter().copied().collect(),
            },
        }
    }

    /// Records the current shopper count in the history if a step has passed since the last
    /// sample (call it at least every [`HISTORY_STEP_MS`]). After a long pause the history
    /// restarts rather than inventing the missing points.
    pub fn sample_history(&mut self, now_ms: i64) {
        let history = &mut self.history;
        if !history.points.is_empty() {
            let elapsed = now_ms - history.end;
            if elapsed < HISTORY_STEP_MS {
                return;
            }
            if elapsed >= 2 * HISTORY_STEP_MS * HISTORY_LEN as i64 {
                history.points.clear();
            }
        }
        history.points.push_back(self.carts.len() as u64);
        while history.points.len() > HISTORY_LEN {
            history.points.pop_front();
        }
        history.end = now_ms;
    }
}

/// Entries of `new` whose value differs from `old`, and entries of `old` absent from `new` with
/// the value `absent`.
fn changed<K: Ord + Clone>(
    old: &BTreeMap<K, u64>,
    new: &BTreeMap<K, u64>,
    absent: u64,
) -> Vec<(K, u64)> {
    let mut out: Vec<(K, u64)> = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, &value)| (key.clone(), value))
        .collect();
    out.extend(
        old.keys()
            .filter(|key| !new.contains_key(*key))
            .map(|key| (key.clone(), absent)),
    );
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Entries of `new` that are absent from `old` or differ.
fn changed_entries<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> BTreeMap<K, V> {
    new.iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sneakers23_core::test_support::fixture_with;

    use super::*;
    use crate::admin::aggregate::tests::{diff, meta, presence};

    #[test]
    fn deltas_carry_only_changes_and_snapshots_the_published_state() {
        let mut agg = CartAggregate::new();
        agg.set_inventory(&fixture_with(true));
        let first = agg.publish(10);
        let first = first
            .as_ref()
            .map(|d| (d.seq, d.stock.len(), d.released.len()));
        assert_eq!(first, Some((1, 3, 2)));
        assert_eq!(agg.publish(20), None, "nothing changed");

        let a = presence("a", 1, meta(Some("/"), &[1, 99]));
        agg.apply(&diff(vec![a.clone()], vec![]));
        let delta = agg.publish(30);
        let json = delta.as_ref().map(serde_json::to_value);
        assert_eq!(
            json.and_then(Result::ok),
            Some(json!({"seq": 2, "at": 30, "shoppers": 1, "tabs": 1,
                        "pages": [["/", 1]], "carts": {"1": 1}}))
        );
        // A tab that opens and closes within one period publishes nothing.
        let b = presence("b", 2, meta(None, &[2]));
        agg.apply(&diff(vec![b.clone()], vec![]));
        let snapshot = agg.snapshot();
        assert_eq!((snapshot.seq, snapshot.shoppers), (2, 1));
        agg.apply(&diff(vec![], vec![b]));
        assert_eq!(agg.publish(40), None);

        agg.apply(&diff(vec![], vec![a]));
        let delta = agg.publish(50).map(|d| serde_json::to_value(d).ok());
        assert_eq!(
            delta.flatten(),
            Some(json!({"seq": 3, "at": 50, "shoppers": 0, "tabs": 0,
                        "pages": [["/", 0]], "carts": {"1": 0}}))
        );
        let snapshot = serde_json::to_value(agg.snapshot()).ok();
        assert_eq!(
            snapshot
                .as_ref()
                .map(|s| (s["seq"].clone(), s["carts"].clone())),
            Some((json!(3), json!({})))
        );
    }

    #[test]
    fn history_samples_once_per_step() {
        let mut agg = CartAggregate::new();
        agg.sample_history(0);
        agg.sample_history(HISTORY_STEP_MS - 1);
        agg.apply(&diff(vec![presence("a", 1, meta(None, &[]))], vec![]));
        agg.sample_history(HISTORY_STEP_MS);
        let h = agg.snapshot().history;
        assert_eq!((h.end, h.shoppers), (HISTORY_STEP_MS, vec![0, 1]));
        for n in 0..(HISTORY_LEN as i64 + 5) {
            agg.sample_history(HISTORY_STEP_MS * (n + 2));
        }
        assert_eq!(agg.snapshot().history.shoppers.len(), HISTORY_LEN);
        agg.sample_history(i64::MAX / 2);
        assert_eq!(agg.snapshot().history.shoppers, vec![1]);
    }
}
