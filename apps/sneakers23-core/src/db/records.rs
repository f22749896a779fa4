//! The values the handle returns beyond the catalogue's rows: an order, the outcome of a
//! purchase, the ids an inserted product was given.

use crate::model::{ItemId, ProductId};

/// One order: the purchase of a cart, named by its number on the completion page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The order number.
    pub id: i64,
    /// The idempotency key the checkout form carried.
    pub key: String,
    /// The items bought, one unit each.
    pub item_ids: Vec<ItemId>,
}

/// The result of [`Db::purchase_order`](super::Db::purchase_order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// The order was written now, with the stock it took.
    New(Order),
    /// An order with this key already existed (a replayed form): nothing was sold again.
    Existing(Order),
}

impl Purchase {
    /// The order, new or existing.
    pub fn order(&self) -> &Order {
        match self {
            Self::New(order) | Self::Existing(order) => order,
        }
    }
}

/// Ids assigned by [`Db::insert_catalog`](super::Db::insert_catalog) to one product and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertedProduct {
    /// The product's id.
    pub id: ProductId,
    /// Its items' ids, in the order given.
    pub item_ids: Vec<ItemId>,
}
