//! The dashboard's aggregate of the CartTracker: a handful of counters, maintained from the
//! tracker's diffs, instead of 100k presences in every admin's browser.
//!
//! # Why
//!
//! Phoenix's dashboard (spec §14.5) receives the whole CartTracker as `presence_state` and then
//! every `presence_diff`, and counts in the browser. With 100k carts the state is megabytes and
//! every `add_item` of any shopper is a diff sent to every admin. The dashboard only shows a
//! few numbers, so this module computes them on the server:
//!
//! - **shoppers**: distinct keys (cart ids) with at least one meta;
//! - **tabs**: metas (one per tracked cart channel, i.e. per open tab);
//! - **pages**: per `page` value, the number of metas on it, over all metas of all keys (a
//!   shopper with two tabs on two pages counts on both, as in the book); a `null` page is its own
//!   bucket (shown as "(unknown)");
//! - **carts** per item: for each key, the items of its **first** meta only, as the book does
//!   (the tabs of a cart are kept in sync, so any meta would do; first is defined below); an item
//!   counts once per cart;
//! - **stock** (available count and level) per item and **released** per product, from the
//!   inventory cache, so the dashboard follows releases and sales live (§19.9).
//!
//! # Incremental, from diffs
//!
//! [`CartAggregate::apply`] takes one [`TopicDiff`] of the tracker: joins first, then leaves, the
//! order phoenix.js `Presence.syncDiff` uses, which is what makes an update (a join of the new
//! meta and a leave of the old one in the same diff) a replacement. Every operation is a few hash
//! lookups and the parsing of one small meta: the cost does not depend on how many carts are
//! tracked, and the full presence list is never read.
//!
//! **First meta.** Per key, metas are kept in the order they joined (an update's new meta joins
//! last); the first is the oldest one still present. This is exactly the order phoenix.js keeps
//! `metas` in when it follows the same diff stream, so the counts equal what the book's
//! dashboard would show. [`Counts::recompute`] states the definition over a full list in join
//! order, and the property tests check that the incremental counters always equal it.
//!
//! # Publishing: `aggregate` then `aggregate_delta`
//!
//! The counters change with every diff; admins get them at a bounded rate. The caller (the
//! dashboard task) calls [`CartAggregate::publish`] on a timer: when anything changed since the
//! last call it returns an [`AggregateDelta`] with a new sequence number and **only the entries
//! whose value changed**, as absolute values; otherwise `None`. An admin that joins gets
//! [`CartAggregate::snapshot`]: the state as of the last publication (never the unpublished
//! changes, so that the next delta applies to it exactly) with its sequence number, plus the
//! history of shopper counts for the chart. A client applies a delta whose `seq` is its own + 1,
//! ignores older ones and asks for a new snapshot on a gap.
//!
//! The payloads are small and bounded whatever the number of carts: at most [`MAX_PAGES`] page
//! buckets (later pages are counted in `other_pages`), page labels cut at [`MAX_PAGE_LEN`] bytes,
//! counts only for the items of the catalog, [`HISTORY_LEN`] history points.
//!
//! ```text
//! aggregate:       {"seq":7,"at":1700000000000,"shoppers":2,"tabs":3,
//!                   "pages":[["/",2],[null,1]],"other_pages":0,
//!                   "carts":{"1":2,"14":1},
//!                   "stock":{"1":{"available":540,"level":"high"}, ...},
//!                   "released":{"1":true,"2":false},
//!                   "history":{"step_ms":2000,"end":1700000000000,"shoppers":[0,1,2]}}
//! aggregate_delta: {"seq":8,"at":1700000000250,"shoppers":3,"pages":[["/",3]],"carts":{"1":3}}
//! ```
//!
//! In a snapshot `carts` lists non-zero counts only (every other catalog item is 0); in a delta a
//! changed count may be 0 and a page whose count became 0 is gone. Map keys are item and product
//! ids as strings (JSON object keys). A delta carries `shoppers`, `tabs`, `pages`, `other_pages`,
//! `carts`, `stock` and `released` only when they changed.
//!
//! This module is pure: no clock (times are arguments), no I/O, no locks.
//!
//! This file counts. `payload.rs` holds the payloads and the published state (it imports
//! nothing else from here); `publish.rs` adds the publishing methods to [`CartAggregate`]
//! (deltas, snapshot, history, stock), which this file only declares.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use tracker::{Key, PhxRef, PresenceEntry, TopicDiff};

use sneakers23_core::model::ItemId;

mod payload;
mod publish;

pub use payload::{
    AggregateDelta, AggregateSnapshot, HISTORY_LEN, HISTORY_STEP_MS, HistoryPayload, Stock,
};
use payload::{Catalog, History, View};

/// Most distinct page buckets reported; tabs on further pages count in `other_pages`.
pub const MAX_PAGES: usize = 64;
pub use sneakers23_core::cart_meta::{CartMeta, MAX_PAGE_LEN};

/// Where a tab's page was counted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PageSlot {
    /// The meta's page was `null` (or missing, or not a string).
    Null,
    /// A named page bucket.
    Named(Arc<str>),
    /// All buckets were taken when the tab joined.
    Other,
}

/// What one meta (one tab) contributes.
#[derive(Debug)]
struct Tab {
    phx_ref: PhxRef,
    page: PageSlot,
    items: Box<[ItemId]>,
}

/// The presence counters in a form that is easy to compare: what the dashboard shows about carts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Counts {
    /// Distinct keys.
    pub shoppers: u64,
    /// Metas.
    pub tabs: u64,
    /// Metas per page bucket (`None` = null page); zero counts are absent.
    pub pages: BTreeMap<Option<String>, u64>,
    /// Metas on pages beyond the [`MAX_PAGES`] buckets.
    pub other_pages: u64,
    /// Keys whose first meta holds the item, per item id (every id, catalog or not); zero counts
    /// are absent.
    pub carts: BTreeMap<ItemId, u64>,
}

impl Counts {
    /// The definition of the counters, computed from scratch: `presences` are the tracked metas
    /// in the order they joined (an updated meta counts as joining when it was updated). Page
    /// buckets are not capped here: with more than [`MAX_PAGES`] distinct pages the incremental
    /// counters put the excess in `other_pages`, depending on arrival order.
    pub fn recompute<'a>(presences: impl IntoIterator<Item = &'a PresenceEntry>) -> Counts {
        let mut counts = Counts::default();
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for presence in presences {
            let meta = CartMeta::parse(&presence.meta).unwrap_or_default();
            counts.tabs += 1;
            *counts.pages.entry(meta.page).or_default() += 1;
            if seen.insert(&presence.key) {
                counts.shoppers += 1;
                for item in meta.items {
                    *counts.carts.entry(item).or_default() += 1;
                }
            }
        }
        counts
    }
}

/// The CartTracker aggregate (see the module docs).
#[derive(Debug, Default)]
pub struct CartAggregate {
    carts: FxHashMap<Key, Vec<Tab>>,
    tabs: u64,
    pages: FxHashMap<Arc<str>, u64>,
    null_page: u64,
    other_pages: u64,
    carts_by_item: FxHashMap<ItemId, u64>,
    catalog: Catalog,
    /// Whether anything changed since the last publication.
    dirty: bool,
    published: View,
    published_at: i64,
    seq: u64,
    history: History,
    /// Leaves of metas this aggregate never saw joining (should stay 0).
    unknown_leaves: u64,
}

impl CartAggregate {
    /// An empty aggregate with no catalog.
    pub fn new() -> CartAggregate {
        CartAggregate::default()
    }

    /// Applies one diff of the CartTracker topic: joins, then leaves.
    pub fn apply(&mut self, diff: &TopicDiff) {
        for presence in &diff.joins {
            self.join(presence);
        }
        for presence in &diff.leaves {
            self.leave(presence);
        }
    }

    /// A meta joined (a new tab, or the new version of an updated one).
    pub fn join(&mut self, presence: &PresenceEntry) {
        let meta = CartMeta::parse(&presence.meta).unwrap_or_default();
        let page = self.count_page(meta.page.as_deref());
        let tab = Tab {
            phx_ref: presence.phx_ref,
            page,
            items: meta.items.into_boxed_slice(),
        };
        let tabs = self.carts.entry(presence.key.clone()).or_default();
        if tabs.iter().any(|t| t.phx_ref == tab.phx_ref) {
            // The same version twice: the tracker never reports that; keep the counts right.
            let page = tab.page;
            self.uncount_page(&page);
            return;
        }
        if tabs.is_empty() {
            for &item in &tab.items {
                *self.carts_by_item.entry(item).or_default() += 1;
            }
        }
        tabs.push(tab);
        self.tabs += 1;
        self.dirty = true;
    }

    /// A meta left (a closed tab, or the old version of an updated one).
    pub fn leave(&mut self, presence: &PresenceEntry) {
        let Some(tabs) = self.carts.get_mut(&presence.key) else {
            self.unknown_leaves += 1;
            return;
        };
        let Some(position) = tabs.iter().position(|t| t.phx_ref == presence.phx_ref) else {
            self.unknown_leaves += 1;
            return;
        };
        let tab = tabs.remove(position);
        if position == 0 {
            let next = tabs.first().map(|t| &t.items[..]).unwrap_or(&[]);
            for &item in &tab.items {
                decrement(&mut self.carts_by_item, &item);
            }
            for &item in next {
                *self.carts_by_item.entry(item).or_default() += 1;
            }
        }
        if tabs.is_empty() {
            self.carts.remove(&presence.key);
        }
        self.uncount_page(&tab.page);
        self.tabs -= 1;
        self.dirty = true;
    }

    fn count_page(&mut self, page: Option<&str>) -> PageSlot {
        let Some(page) = page else {
            self.null_page += 1;
            return PageSlot::Null;
        };
        if let Some(count) = self.pages.get_mut(page) {
            *count += 1;
            if let Some((label, _)) = self.pages.get_key_value(page) {
                return PageSlot::Named(label.clone());
            }
        }
        if self.pages.len() >= MAX_PAGES {
            self.other_pages += 1;
            return PageSlot::Other;
        }
        let label: Arc<str> = Arc::from(page);
        self.pages.insert(label.clone(), 1);
        PageSlot::Named(label)
    }

    fn uncount_page(&mut self, page: &PageSlot) {
        match page {
            PageSlot::Null => self.null_page = self.null_page.saturating_sub(1),
            PageSlot::Other => self.other_pages = self.other_pages.saturating_sub(1),
            PageSlot::Named(label) => decrement(&mut self.pages, label),
        }
    }

    /// The presence counters (for tests and diagnostics).
    pub fn counts(&self) -> Counts {
        let mut pages: BTreeMap<Option<String>, u64> = self
            .pages
            .iter()
            .map(|(label, &count)| (Some(label.to_string()), count))
            .collect();
        if self.null_page > 0 {
            pages.insert(None, self.null_page);
        }
        Counts {
            shoppers: self.carts.len() as u64,
            tabs: self.tabs,
            pages,
            other_pages: self.other_pages,
            carts: self
                .carts_by_item
                .iter()
                .map(|(&item, &count)| (item, count))
                .collect(),
        }
    }

    /// Distinct carts right now.
    pub fn shoppers(&self) -> u64 {
        self.carts.len() as u64
    }

    /// Leaves of metas that never joined; non-zero means the diff stream was incomplete.
    pub fn unknown_leaves(&self) -> u64 {
        self.unknown_leaves
    }
}

fn decrement<K, Q>(map: &mut FxHashMap<K, u64>, key: &Q)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use tracker::Meta;

    pub(super) fn presence(key: &str, n: u64, meta: Value) -> PresenceEntry {
        let meta = Meta::new(meta).unwrap_or_default();
        PresenceEntry::new(Arc::from(key), meta, PhxRef::new(n, 1, 0), None)
    }

    pub(super) fn meta(page: Option<&str>, items: &[ItemId]) -> Value {
        json!({"page_loaded_at": 1, "page": page, "items": items})
    }

    pub(super) fn diff(joins: Vec<PresenceEntry>, leaves: Vec<PresenceEntry>) -> TopicDiff {
        TopicDiff { joins, leaves }
    }

    #[test]
    fn counts_shoppers_tabs_pages_and_first_meta_items() {
        let mut agg = CartAggregate::new();
        let a1 = presence("a", 1, meta(Some("/"), &[1, 2]));
        let a2 = presence("a", 2, meta(Some("/checkout"), &[1, 2]));
        let b1 = presence("b", 3, meta(None, &[2]));
        agg.apply(&diff(vec![a1.clone(), a2.clone(), b1.clone()], vec![]));
        let counts = agg.counts();
        assert_eq!(counts.shoppers, 2);
        assert_eq!(counts.tabs, 3);
        assert_eq!(
            counts.pages,
            BTreeMap::from([
                (None, 1),
                (Some("/".to_owned()), 1),
                (Some("/checkout".to_owned()), 1)
            ])
        );
        assert_eq!(counts.carts, BTreeMap::from([(1, 1), (2, 2)]));

        // Update of a's first tab: the new meta joins last, so a2 becomes first.
        let a1b = presence("a", 4, meta(Some("/"), &[3, 1, 2]));
        agg.apply(&diff(vec![a1b.clone()], vec![a1]));
        assert_eq!(agg.counts().carts, BTreeMap::from([(1, 1), (2, 2)]));
        agg.apply(&diff(vec![], vec![a2]));
        assert_eq!(agg.counts().carts, BTreeMap::from([(1, 1), (2, 2), (3, 1)]));
        agg.apply(&diff(vec![], vec![a1b, b1]));
        assert_eq!(agg.counts(), Counts::default());
        assert_eq!(agg.unknown_leaves(), 0);
    }

    #[test]
    fn a_meta_of_another_shape_counts_as_a_tab_without_page_or_items() {
        let mut agg = CartAggregate::new();
        let odd = presence("a", 1, json!({"page": 3, "items": [1, "x"]}));
        agg.apply(&diff(vec![odd], vec![]));
        let counts = agg.counts();
        assert_eq!((counts.shoppers, counts.tabs), (1, 1));
        assert!(counts.carts.is_empty());
    }

    #[test]
    fn pages_beyond_the_cap_count_as_other() {
        let mut agg = CartAggregate::new();
        let tabs: Vec<PresenceEntry> = (0..MAX_PAGES as u64 + 3)
            .map(|n| presence(&format!("k{n}"), n, meta(Some(&format!("/p{n}")), &[])))
            .collect();
        agg.apply(&diff(tabs.clone(), vec![]));
        let counts = agg.counts();
        assert_eq!(counts.pages.len(), MAX_PAGES);
        assert_eq!(counts.other_pages, 3);
        agg.apply(&diff(vec![], tabs));
        assert_eq!(agg.counts(), Counts::default());
    }
}
