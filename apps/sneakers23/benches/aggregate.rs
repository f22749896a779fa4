//! The dashboard aggregate fed directly with CartTracker diffs, at 10k and 100k tracked carts.
//!
//! - `aggregate/update_diff/N`: applying one `add_item` (an update: leave of the old meta, join
//!   of the new one) to an aggregate holding N carts: the cost per diff.
//! - `aggregate/publish/N`: one 250 ms publication after 250 updates (1,000 add_item/s).
//! - `aggregate/snapshot/N`: building and encoding the first payload an admin receives.
//!
//! Before the timings it prints the sizes that matter for admins: the first payload
//! (`aggregate`, history full) against Phoenix's `presence_state`, and the bytes one admin
//! receives per second under 1,000 add_item/s against the raw `presence_diff` stream.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sneakers23::admin::aggregate::{CartAggregate, HISTORY_LEN, HISTORY_STEP_MS};
use sneakers23::inventory::InventorySnapshot;
use sneakers23::model::{Availability, Item, Product};
use tracker::{Meta, PhxRef, PresenceEntry, TopicDiff};

/// The seed catalog's shape: 2 products of 13 sizes, items 1–26.
fn catalog() -> InventorySnapshot {
    let products = (1..=2)
        .map(|id| Product {
            id,
            sku: format!("SHU6{id}00"),
            order: id as i32,
            brand: "Snks 23".into(),
            name: format!("Shoe {id}"),
            color: "yellow/blue".into(),
            price_usd: 120,
            main_image_url: "/images/hopman.png".into(),
            released: true,
        })
        .collect();
    let items = (1..=26)
        .map(|id| Item {
            id,
            sku: format!("SHU{id}"),
            size: id.to_string(),
            product_id: if id <= 13 { 1 } else { 2 },
        })
        .collect();
    let availability = (1..=26)
        .map(|item_id| Availability {
            item_id,
            available_count: 500 + item_id as i32,
        })
        .collect();
    InventorySnapshot::from_rows(products, items, availability)
}

struct Fixture {
    aggregate: CartAggregate,
    shoppers: Shoppers,
}

/// The simulated shoppers: the current presence of each cart.
struct Shoppers {
    carts: Vec<PresenceEntry>,
    rng: StdRng,
    next_ref: u64,
}

fn cart_key(n: usize) -> Arc<str> {
    // A 64-character cart id, as the store's.
    Arc::from(format!("{n:0>64}"))
}

fn meta(page: &str, items: &[i64]) -> Meta {
    Meta::new(json!({"page_loaded_at": 1_700_000_000_000_i64, "page": page, "items": items}))
        .unwrap_or_default()
}

impl Fixture {
    /// `n` carts of one tab each, on the bench's four pages, with one random item each.
    fn new(n: usize) -> Fixture {
        let mut fixture = Fixture {
            aggregate: CartAggregate::new(),
            shoppers: Shoppers {
                carts: Vec::with_capacity(n),
                rng: StdRng::seed_from_u64(23),
                next_ref: 0,
            },
        };
        fixture.aggregate.set_inventory(&catalog());
        let mut joins = Vec::with_capacity(n);
        let shoppers = &mut fixture.shoppers;
        for i in 0..n {
            let page = format!("/bench/{}", 1 + i % 4);
            let item = shoppers.rng.random_range(1..=26);
            let presence =
                PresenceEntry::new(cart_key(i), meta(&page, &[item]), shoppers.phx_ref(), None);
            joins.push(presence.clone());
            shoppers.carts.push(presence);
        }
        fixture.aggregate.apply(&TopicDiff {
            joins,
            leaves: Vec::new(),
        });
        for t in 0..HISTORY_LEN as i64 {
            fixture.aggregate.sample_history(t * HISTORY_STEP_MS);
        }
        fixture.aggregate.publish(0);
        fixture
    }
}

impl Shoppers {
    fn phx_ref(&mut self) -> PhxRef {
        self.next_ref += 1;
        PhxRef::new(self.next_ref, 1, 0)
    }

    /// The diff of one `add_item` by a random cart (or a remove when its cart is full).
    fn add_item_diff(&mut self) -> TopicDiff {
        let i = self.rng.random_range(0..self.carts.len());
        let old = self.carts[i].clone();
        let value = old.meta.to_value();
        let page = value["page"].as_str().unwrap_or("/").to_owned();
        let mut items: Vec<i64> = value["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        let item = self.rng.random_range(1..=26);
        if items.len() >= 10 || items.contains(&item) {
            items.retain(|&x| x != item);
        } else {
            items.insert(0, item);
        }
        let new = PresenceEntry::new(
            old.key.clone(),
            meta(&page, &items),
            self.phx_ref(),
            Some(old.phx_ref),
        );
        self.carts[i] = new.clone();
        TopicDiff {
            joins: vec![new],
            leaves: vec![old],
        }
    }
}

/// The `presence_diff` payload Phoenix would push for `diff` (one key per diff here).
fn presence_diff_bytes(diff: &TopicDiff) -> usize {
    let side = |presences: &[PresenceEntry]| -> String {
        let mut out = String::from("{");
        for (n, p) in presences.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{}:{{\"metas\":[{}]}}",
                json!(&*p.key),
                p.meta_json()
            ));
        }
        out.push('}');
        out
    };
    format!(
        "{{\"joins\":{},\"leaves\":{}}}",
        side(&diff.joins),
        side(&diff.leaves)
    )
    .len()
}

/// The `presence_state` payload Phoenix would push to a joining admin.
fn presence_state_bytes(carts: &[PresenceEntry]) -> usize {
    carts
        .iter()
        .map(|p| json!(&*p.key).to_string().len() + p.meta_json().len() + 13)
        .sum::<usize>()
        + 2
}

/// Frame overhead of a V2 push: `[null,null,"admin:dashboard","aggregate_delta",` + `]`.
const PUSH_OVERHEAD: usize = 48;

fn report_sizes() {
    for n in [10_000, 100_000] {
        let mut fixture = Fixture::new(n);
        let snapshot = serde_json::to_string(&fixture.aggregate.snapshot()).unwrap_or_default();
        println!(
            "carts={n}: first dashboard payload (aggregate) {} bytes; Phoenix presence_state {} bytes",
            snapshot.len(),
            presence_state_bytes(&fixture.shoppers.carts)
        );
        // Ten simulated seconds of 1,000 add_item/s, published every 250 ms.
        let (mut delta_bytes, mut raw_bytes, mut deltas) = (0usize, 0usize, 0usize);
        for period in 1..=40 {
            for _ in 0..250 {
                let diff = fixture.shoppers.add_item_diff();
                raw_bytes += presence_diff_bytes(&diff) + 50;
                fixture.aggregate.apply(&diff);
            }
            if let Some(delta) = fixture.aggregate.publish(period * 250) {
                delta_bytes +=
                    serde_json::to_string(&delta).unwrap_or_default().len() + PUSH_OVERHEAD;
                deltas += 1;
            }
        }
        println!(
            "carts={n}: under 1,000 add_item/s one admin receives {} bytes/s in {} deltas/s \
             (raw presence_diff stream: {} bytes/s in 1,000 messages/s)",
            delta_bytes / 10,
            deltas / 10,
            raw_bytes / 10
        );
    }
}

fn bench(c: &mut Criterion) {
    report_sizes();
    let mut group = c.benchmark_group("aggregate");
    for n in [10_000, 100_000] {
        let Fixture {
            mut aggregate,
            mut shoppers,
        } = Fixture::new(n);
        group.bench_function(BenchmarkId::new("update_diff", n), |b| {
            b.iter_batched(
                || shoppers.add_item_diff(),
                |diff| {
                    aggregate.apply(black_box(&diff));
                },
                criterion::BatchSize::SmallInput,
            )
        });
        let mut now = 0;
        group.bench_function(BenchmarkId::new("publish", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..250 {
                        let diff = shoppers.add_item_diff();
                        aggregate.apply(&diff);
                    }
                    now += 250;
                    let start = Instant::now();
                    let delta = aggregate.publish(now);
                    black_box(serde_json::to_string(&delta).unwrap_or_default());
                    total += start.elapsed();
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("snapshot", n), |b| {
            b.iter(|| black_box(serde_json::to_string(&aggregate.snapshot()).unwrap_or_default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
