//! Property tests of the dashboard aggregate: whatever sequence of joins, updates and leaves the
//! CartTracker reports (several tabs per cart, null pages, item lists, diffs batched together),
//! the incrementally maintained counters equal a recomputation from the full presence list.

mod common;

use std::sync::Arc;

use common::admin::apply_delta;
use proptest::prelude::*;
use serde_json::json;
use sneakers23::admin::aggregate::{CartAggregate, Counts};
use sneakers23::inventory::InventorySnapshot;
use sneakers23::model::{Availability, Item, Product};
use tracker::{Meta, PhxRef, PresenceEntry, TopicDiff};

/// One thing a shopper's tab can do.
#[derive(Debug, Clone)]
enum Op {
    /// A tab of cart `key` opens on `page` with `items`.
    Join {
        key: u8,
        page: Option<u8>,
        items: Vec<i64>,
    },
    /// The `tab`-th open tab (modulo) changes its items (an update: leave + join).
    Update { tab: usize, items: Vec<i64> },
    /// The `tab`-th open tab (modulo) closes.
    Leave { tab: usize },
    /// The diff collected so far is delivered (otherwise ops accumulate in one batch).
    Flush,
}

fn items() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0i64..8, 0..5)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..6, prop::option::of(0u8..4), items())
            .prop_map(|(key, page, items)| Op::Join { key, page, items }),
        3 => (any::<usize>(), items()).prop_map(|(tab, items)| Op::Update { tab, items }),
        2 => any::<usize>().prop_map(|tab| Op::Leave { tab }),
        3 => Just(Op::Flush),
    ]
}

/// The tracker as the test sees it: open tabs in the order their current version joined.
struct Model {
    list: Vec<PresenceEntry>,
    pending: TopicDiff,
    next_ref: u64,
}

impl Model {
    fn new_ref(&mut self) -> PhxRef {
        self.next_ref += 1;
        PhxRef::new(self.next_ref, 7, 0)
    }

    fn meta(page: Option<String>, items: &[i64]) -> Meta {
        Meta::new(json!({"page_loaded_at": 1_700_000_000_000_i64, "page": page, "items": items}))
            .unwrap_or_default()
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Join { key, page, items } => {
                let presence = PresenceEntry::new(
                    Arc::from(format!("cart-{key}")),
                    Self::meta(page.map(|p| format!("/page/{p}")), &items),
                    self.new_ref(),
                    None,
                );
                self.list.push(presence.clone());
                self.pending.joins.push(presence);
            }
            Op::Update { tab, items } if !self.list.is_empty() => {
                let old = self.list.remove(tab % self.list.len());
                let page = old.meta.to_value()["page"].as_str().map(str::to_owned);
                let new = PresenceEntry::new(
                    old.key.clone(),
                    Self::meta(page, &items),
                    self.new_ref(),
                    Some(old.phx_ref),
                );
                self.list.push(new.clone());
                self.pending.joins.push(new);
                self.pending.leaves.push(old);
            }
            Op::Leave { tab } if !self.list.is_empty() => {
                let old = self.list.remove(tab % self.list.len());
                self.pending.leaves.push(old);
            }
            Op::Update { .. } | Op::Leave { .. } | Op::Flush => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The incremental aggregate equals the recomputation from the full presence list after every
    /// delivered diff, batched or not, and an empty tracker leaves empty counters.
    #[test]
    fn aggregate_equals_recomputation_from_the_presence_list(
        ops in prop::collection::vec(op(), 1..120)
    ) {
        let mut model = Model { list: Vec::new(), pending: TopicDiff::default(), next_ref: 0 };
        let mut aggregate = CartAggregate::new();
        for op in ops {
            let flush = matches!(op, Op::Flush);
            model.apply(op);
            if flush {
                aggregate.apply(&std::mem::take(&mut model.pending));
                prop_assert_eq!(aggregate.counts(), Counts::recompute(&model.list));
            }
        }
        aggregate.apply(&std::mem::take(&mut model.pending));
        prop_assert_eq!(aggregate.counts(), Counts::recompute(&model.list));
        prop_assert_eq!(aggregate.unknown_leaves(), 0);

        // Closing every tab empties every counter.
        let everyone = TopicDiff { joins: Vec::new(), leaves: std::mem::take(&mut model.list) };
        aggregate.apply(&everyone);
        prop_assert_eq!(aggregate.counts(), Counts::default());
    }

    /// Applying the published deltas to the published snapshot gives the next snapshot, whatever
    /// happens between publications (what every admin's browser does).
    #[test]
    fn snapshot_plus_deltas_equals_the_next_snapshot(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut model = Model { list: Vec::new(), pending: TopicDiff::default(), next_ref: 0 };
        let mut aggregate = CartAggregate::new();
        aggregate.set_inventory(&catalog());
        let mut client = serde_json::to_value(aggregate.snapshot()).unwrap_or_default();
        let mut now = 0;
        for op in ops {
            let flush = matches!(op, Op::Flush);
            model.apply(op);
            aggregate.apply(&std::mem::take(&mut model.pending));
            if flush {
                now += 250;
                if let Some(delta) = aggregate.publish(now) {
                    let delta = serde_json::to_value(&delta).unwrap_or_default();
                    apply_delta(&mut client, &delta);
                }
                let mut expected = serde_json::to_value(aggregate.snapshot()).unwrap_or_default();
                strip_time(&mut expected);
                let mut got = client.clone();
                strip_time(&mut got);
                prop_assert_eq!(got, expected);
            }
        }
    }
}

/// One product with items 0–5 (carts may also hold 6 and 7, which the dashboard ignores).
fn catalog() -> InventorySnapshot {
    let product = Product {
        id: 1,
        sku: "P1".into(),
        order: 0,
        brand: "b".into(),
        name: "n".into(),
        color: "c".into(),
        price_usd: 100,
        main_image_url: "/images/1.png".into(),
        released: true,
    };
    let items = (0..6)
        .map(|id| Item {
            id,
            sku: format!("I{id}"),
            size: id.to_string(),
            product_id: 1,
        })
        .collect();
    let availability = (0..6)
        .map(|item_id| Availability {
            item_id,
            available_count: 100 * item_id as i32,
        })
        .collect();
    InventorySnapshot::from_rows(vec![product], items, availability)
}

fn strip_time(value: &mut serde_json::Value) {
    if let Some(object) = value.as_object_mut() {
        object.remove("at");
        object.remove("history");
    }
}
