//! The cached inventory: an immutable snapshot of products, items and availability.
//!
//! A snapshot is built from database rows ([`InventorySnapshot::from_rows`]) into the "complete
//! product" view of spec §3.2: products in ascending display `order` (ties by id), each with its
//! items in ascending id, each item enriched with its `available_count` (0 when it has no
//! availability row). Readers get an `Arc` of a snapshot and never block writers; a writer
//! copies, edits and swaps (see [`super::Inventory`]). Products are shared between successive
//! snapshots through `Arc`, so an edit only copies the product it touches.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::level::AvailabilityLevel;
use crate::model::{Availability, Item, ItemId, Product, ProductId};

/// An item of a product with its current availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompleteItem {
    /// Item id.
    pub id: ItemId,
    /// Item SKU.
    pub sku: String,
    /// Displayed size.
    pub size: String,
    /// Owning product.
    pub product_id: ProductId,
    /// Units left according to this node's cache.
    pub available_count: i32,
}

impl CompleteItem {
    /// The stock level shown for this item.
    pub fn level(&self) -> AvailabilityLevel {
        AvailabilityLevel::from_count(i64::from(self.available_count))
    }

    /// True when no unit is left.
    pub fn is_out_of_stock(&self) -> bool {
        self.available_count <= 0
    }
}

/// A product with its items (spec §3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompleteProduct {
    /// The product row.
    #[serde(flatten)]
    pub product: Product,
    /// Its items, ascending by id.
    pub items: Vec<CompleteItem>,
}

/// An item together with the product it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct ItemEntry<'a> {
    /// The owning product.
    pub product: &'a Product,
    /// The item.
    pub item: &'a CompleteItem,
}

/// Immutable view of the whole inventory (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct InventorySnapshot {
    products: Vec<Arc<CompleteProduct>>,
    product_index: HashMap<ProductId, usize>,
    /// item id → (product position, item position)
    item_index: HashMap<ItemId, (usize, usize)>,
    /// Availability rows, including those of items this snapshot does not know.
    availability: HashMap<ItemId, i32>,
}

impl InventorySnapshot {
    /// An inventory with nothing in it.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds the complete-product view from database rows. Items whose product is missing are
    /// ignored; items without an availability row count 0.
    pub fn from_rows(
        mut products: Vec<Product>,
        mut items: Vec<Item>,
        availabilities: Vec<Availability>,
    ) -> Self {
        products.sort_by_key(|p| (p.order, p.id));
        items.sort_by_key(|i| i.id);
        let availability: HashMap<ItemId, i32> = availabilities
            .into_iter()
            .map(|a| (a.item_id, a.available_count))
            .collect();
        let product_index: HashMap<ProductId, usize> = products
            .iter()
            .enumerate()
            .map(|(pos, p)| (p.id, pos))
            .collect();
        let mut complete: Vec<CompleteProduct> = products
            .into_iter()
            .map(|product| CompleteProduct {
                product,
                items: Vec::new(),
            })
            .collect();
        let mut item_index = HashMap::with_capacity(items.len());
        for item in items {
            let Some(&ppos) = product_index.get(&item.product_id) else {
                tracing::warn!(
                    item_id = item.id,
                    product_id = item.product_id,
                    "item of an unknown product ignored"
                );
                continue;
            };
            let list = &mut complete[ppos].items;
            item_index.insert(item.id, (ppos, list.len()));
            list.push(CompleteItem {
                available_count: availability.get(&item.id).copied().unwrap_or(0),
                id: item.id,
                sku: item.sku,
                size: item.size,
                product_id: item.product_id,
            });
        }
        Self {
            products: complete.into_iter().map(Arc::new).collect(),
            product_index,
            item_index,
            availability,
        }
    }

    /// All products in display order, with items and availability.
    pub fn products(&self) -> impl ExactSizeIterator<Item = &CompleteProduct> + '_ {
        self.products.iter().map(|p| p.as_ref())
    }

    /// Number of products.
    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// One product by id.
    pub fn product(&self, product_id: ProductId) -> Option<&CompleteProduct> {
        self.product_index
            .get(&product_id)
            .map(|&pos| self.products[pos].as_ref())
    }

    /// One item (with its product) by id.
    pub fn item(&self, item_id: ItemId) -> Option<ItemEntry<'_>> {
        self.item_index.get(&item_id).map(|&(ppos, ipos)| {
            let product = &self.products[ppos];
            ItemEntry {
                product: &product.product,
                item: &product.items[ipos],
            }
        })
    }

    /// Every item of every product, in display order.
    pub fn items(&self) -> impl Iterator<Item = &CompleteItem> + '_ {
        self.products.iter().flat_map(|p| p.items.iter())
    }

    /// Units left of an item according to this cache (0 when unknown).
    pub fn available_count(&self, item_id: ItemId) -> i32 {
        self.availability.get(&item_id).copied().unwrap_or(0)
    }

    /// The stock level of an item (`out` when unknown).
    pub fn level(&self, item_id: ItemId) -> AvailabilityLevel {
        AvailabilityLevel::from_count(i64::from(self.available_count(item_id)))
    }

    /// Sets a product's release state. Returns false when the product is not in this snapshot.
    pub(crate) fn set_released(&mut self, product_id: ProductId, released: bool) -> bool {
        match self.product_index.get(&product_id) {
            Some(&pos) => {
                Arc::make_mut(&mut self.products[pos]).product.released = released;
                true
            }
            None => false,
        }
    }

    /// Replaces an item's availability; returns the previous count (0 when there was none).
    pub(crate) fn set_available(&mut self, item_id: ItemId, count: i32) -> i32 {
        let old = self.availability.insert(item_id, count).unwrap_or(0);
        if let Some(&(ppos, ipos)) = self.item_index.get(&item_id) {
            Arc::make_mut(&mut self.products[ppos]).items[ipos].available_count = count;
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixture, item, product};

    #[test]
    fn products_are_ordered_by_order_and_items_by_id() {
        let s = fixture();
        let ids: Vec<_> = s.products().map(|p| p.product.id).collect();
        assert_eq!(ids, [2, 1]);
        let p1 = s
            .product(1)
            .map(|p| p.items.iter().map(|i| i.id).collect::<Vec<_>>());
        assert_eq!(p1, Some(vec![1, 2]));
        let counts: Vec<_> = s.items().map(|i| (i.id, i.available_count)).collect();
        assert_eq!(counts, [(3, 3), (1, 1), (2, 2)]);
    }

    #[test]
    fn missing_availability_reads_as_zero() {
        let s = InventorySnapshot::from_rows(vec![product(1, 0, true)], vec![item(7, 1)], vec![]);
        assert_eq!(s.available_count(7), 0);
        assert_eq!(s.item(7).map(|e| e.item.available_count), Some(0));
        assert_eq!(s.level(7), AvailabilityLevel::Out);
        assert_eq!(s.available_count(99), 0);
        assert!(s.item(99).is_none());
    }

    #[test]
    fn edits_do_not_touch_earlier_snapshots() {
        let before = fixture();
        let mut after = before.clone();
        assert!(after.set_released(1, true));
        assert!(!after.set_released(42, true));
        assert_eq!(after.set_available(1, 0), 1);
        assert_eq!(before.product(1).map(|p| p.product.released), Some(false));
        assert_eq!(before.available_count(1), 1);
        assert_eq!(after.product(1).map(|p| p.product.released), Some(true));
        assert_eq!(after.item(1).map(|e| e.item.available_count), Some(0));
        assert!(after.item(1).is_some_and(|e| e.item.is_out_of_stock()));
    }
}
