//! Rows of the persistent schema (spec §3.1) and the shape of new catalog entries.
//!
//! These are plain data: the database module reads and writes them, the inventory cache builds
//! its "complete product" view from them, and the seed builds [`NewProduct`]s.

use serde::{Deserialize, Serialize};

/// Identifier of a product (a shoe model).
pub type ProductId = i64;
/// Identifier of an item (one size of a product: the unit that is sold and put in carts).
pub type ItemId = i64;

/// A product row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Primary key.
    pub id: ProductId,
    /// Unique stock-keeping unit, e.g. `SHU6000`.
    pub sku: String,
    /// Display order on the product page (ascending).
    pub order: i32,
    /// Brand, e.g. `Snks 23`.
    pub brand: String,
    /// Model name, e.g. `Hop Man 3`.
    pub name: String,
    /// Colour description, e.g. `yellow/blue`.
    pub color: String,
    /// Price in whole US dollars.
    pub price_usd: i32,
    /// Path of the product image, e.g. `/images/hopman.png`.
    pub main_image_url: String,
    /// Whether the product can be bought (irreversible once true).
    pub released: bool,
}

/// An item row: one size of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Primary key.
    pub id: ItemId,
    /// Unique stock-keeping unit, e.g. `SHU6001`.
    pub sku: String,
    /// Shoe size as displayed, e.g. `6`, `6.5`, `12`.
    pub size: String,
    /// Product this item belongs to.
    pub product_id: ProductId,
}

/// The availability row of one item: how many units are left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// The item counted.
    pub item_id: ItemId,
    /// Units left (never negative).
    pub available_count: i32,
}

/// A product to insert, with its items (see [`crate::db::Db::insert_catalog`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    /// Unique SKU.
    pub sku: String,
    /// Display order.
    pub order: i32,
    /// Brand.
    pub brand: String,
    /// Model name.
    pub name: String,
    /// Colour description.
    pub color: String,
    /// Price in whole US dollars.
    pub price_usd: i32,
    /// Image path.
    pub main_image_url: String,
    /// Initial release state.
    pub released: bool,
    /// Items in insertion order (ids are assigned in this order).
    pub items: Vec<NewItem>,
}

/// An item to insert, with its initial availability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// Unique SKU.
    pub sku: String,
    /// Displayed size.
    pub size: String,
    /// Initial units available; `None` inserts no availability row (read as 0).
    pub available_count: Option<i32>,
}
