//! Fixtures shared by the unit tests of this crate and of the serving crate (feature
//! `test-support`, which only its dev-dependency turns on).

use crate::inventory::InventorySnapshot;
use crate::model::{Availability, Item, ItemId, Product, ProductId};

/// A product row with derived fields.
pub fn product(id: ProductId, order: i32, released: bool) -> Product {
    Product {
        id,
        sku: format!("P{id}"),
        order,
        brand: format!("brand {id}"),
        name: format!("name {id}"),
        color: "red".into(),
        price_usd: 100 + i32::try_from(id).unwrap_or(0),
        main_image_url: format!("/images/{id}.png"),
        released,
    }
}

/// An item row with derived fields.
pub fn item(id: ItemId, product_id: ProductId) -> Item {
    Item {
        id,
        sku: format!("I{id}"),
        size: format!("{id}"),
        product_id,
    }
}

/// The spec §18.1 fixture: p1 (order 1; i1 count 1, i2 count 2), p2 (order 0; i3 count 3),
/// both unreleased.
pub fn fixture() -> InventorySnapshot {
    fixture_with(false)
}

/// The §18.1 fixture with both products' release state set to `released`.
pub fn fixture_with(released: bool) -> InventorySnapshot {
    InventorySnapshot::from_rows(
        vec![product(1, 1, released), product(2, 0, released)],
        vec![item(2, 1), item(3, 2), item(1, 1)],
        (1..=3)
            .map(|id| Availability {
                item_id: id,
                available_count: i32::try_from(id).unwrap_or(0),
            })
            .collect(),
    )
}

/// An unsigned "token" (`plain:<ids,comma-separated>`) for testing the pure cart logic only.
pub struct PlainSigner;

impl crate::cart::CartSigner for PlainSigner {
    fn sign(&self, item_ids: &[ItemId]) -> String {
        let ids: Vec<String> = item_ids.iter().map(ToString::to_string).collect();
        format!("plain:{}", ids.join(","))
    }

    fn verify(&self, token: &str) -> Option<Vec<ItemId>> {
        let ids = token.strip_prefix("plain:")?;
        if ids.is_empty() {
            return Some(Vec::new());
        }
        ids.split(',').map(|id| id.parse().ok()).collect()
    }
}

/// Sets an item's count in a fixture snapshot, for tests outside this crate (the snapshot's
/// setter is the inventory's alone).
pub fn set_available(snapshot: &mut InventorySnapshot, item_id: ItemId, count: i32) {
    snapshot.set_available(item_id, count);
}
