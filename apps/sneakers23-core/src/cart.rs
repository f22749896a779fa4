//! The shopping cart (spec §3.4, §10.2–10.4, §12, §19.1–19.2).
//!
//! A cart is nothing more than an ordered list of unique item ids, newest first. It lives in the
//! shopper's browser as a signed token (see [`CartSigner`]) and in the cart channels of that
//! shopper's open tabs; the server stores no carts.
//!
//! - [`Cart::add_item`] prepends an id, refusing duplicates and a cart already holding the
//!   maximum number of items; it does not look at the inventory (the original's behaviour).
//! - [`Cart::add_checked`] is what the cart channel uses: the same plus the §19.2 checks
//!   against the inventory cache ([`validate_add`]).
//! - [`item_id_from_payload`] reads the client's `item_id` (a string of digits or an integer).
//! - [`render`] builds the `cart` payload: item details from the cache plus a fresh token.
//!
//! ```
//! use sneakers23_core::cart::{Cart, CartError};
//! let mut cart = Cart::new();
//! cart.add_item(1, 10)?;
//! cart.add_item(2, 10)?;
//! assert_eq!(cart.item_ids(), &[2, 1]);
//! assert_eq!(cart.add_item(1, 10), Err(CartError::DuplicateItem));
//! cart.remove_item(2)?;
//! assert_eq!(cart.remove_item(2), Err(CartError::NotFound));
//! # Ok::<(), CartError>(())
//! ```

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::inventory::InventorySnapshot;
use crate::model::ItemId;

/// Default maximum number of items in a cart (`MAX_CART_ITEMS`, spec §19.1).
pub const DEFAULT_MAX_CART_ITEMS: usize = 10;

/// Salt (namespace) of cart tokens (spec §12).
pub const CART_TOKEN_SALT: &str = "shopping cart serialization";

/// Validity of a cart token: 7 days (spec §12).
pub const CART_TOKEN_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Why a cart operation was refused. [`CartError::code`] is the string the client receives as
/// `{"reason": code}`, Phoenix's shape for an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CartError {
    /// The item is already in the cart.
    #[error("duplicate_item")]
    DuplicateItem,
    /// The cart already holds the maximum number of items.
    #[error("cart_full")]
    CartFull,
    /// The item to remove is not in the cart.
    #[error("not_found")]
    NotFound,
    /// The id is malformed, missing, or names no item of the inventory.
    #[error("invalid_item")]
    InvalidItem,
    /// The item's product is not released yet.
    #[error("not_released")]
    NotReleased,
    /// The item is sold out.
    #[error("out_of_stock")]
    OutOfStock,
}

impl CartError {
    /// The wire code: `duplicate_item`, `cart_full`, `not_found`, `invalid_item`,
    /// `not_released` or `out_of_stock`.
    pub fn code(self) -> &'static str {
        match self {
            Self::DuplicateItem => "duplicate_item",
            Self::CartFull => "cart_full",
            Self::NotFound => "not_found",
            Self::InvalidItem => "invalid_item",
            Self::NotReleased => "not_released",
            Self::OutOfStock => "out_of_stock",
        }
    }

    /// The error reply payload: `{"reason": "<code>"}`.
    pub fn reply(self) -> Value {
        serde_json::json!({ "reason": self.code() })
    }
}

/// Turns a cart's item ids into a signed token and back (spec §12).
///
/// The production implementation is Phoenix.Token-compatible (salt [`CART_TOKEN_SALT`], max
/// age [`CART_TOKEN_MAX_AGE`]); `verify` returns `None` for anything tampered with, expired or
/// malformed.
pub trait CartSigner: Send + Sync {
    /// Signs the item ids (order preserved).
    fn sign(&self, item_ids: &[ItemId]) -> String;
    /// The item ids of a valid, unexpired token.
    fn verify(&self, token: &str) -> Option<Vec<ItemId>>;
}

/// An ordered set of item ids, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cart {
    items: Vec<ItemId>,
}

impl Cart {
    /// An empty cart.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cart holding `item_ids` in the given order (newest first); later duplicates dropped.
    pub fn from_item_ids(item_ids: impl IntoIterator<Item = ItemId>) -> Self {
        let mut items: Vec<ItemId> = Vec::new();
        for id in item_ids {
            if !items.contains(&id) {
                items.push(id);
            }
        }
        Self { items }
    }

    /// The cart in a token, or an empty cart when the token is missing, invalid, tampered
    /// with or expired (spec §10.2, §19.12).
    pub fn restore<S: CartSigner + ?Sized>(signer: &S, token: Option<&str>) -> Self {
        token
            .and_then(|t| signer.verify(t))
            .map(Self::from_item_ids)
            .unwrap_or_default()
    }

    /// A freshly signed token of this cart.
    pub fn serialize<S: CartSigner + ?Sized>(&self, signer: &S) -> String {
        signer.sign(&self.items)
    }

    /// The item ids, newest first.
    pub fn item_ids(&self) -> &[ItemId] {
        &self.items
    }

    /// Whether the item is in the cart.
    pub fn contains(&self, item_id: ItemId) -> bool {
        self.items.contains(&item_id)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the cart holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds an item in front. Errors: [`CartError::DuplicateItem`], [`CartError::CartFull`]
    /// when `max_items` are already in. Any id is accepted (no inventory check).
    pub fn add_item(&mut self, item_id: ItemId, max_items: usize) -> Result<(), CartError> {
        if self.contains(item_id) {
            return Err(CartError::DuplicateItem);
        }
        if self.items.len() >= max_items {
            return Err(CartError::CartFull);
        }
        self.items.insert(0, item_id);
        Ok(())
    }

    /// Adds an item after checking it against the inventory cache (spec §19.2). Checks in
    /// order: duplicate, [`validate_add`] (invalid / not released / out of stock), cart full.
    pub fn add_checked(
        &mut self,
        snapshot: &InventorySnapshot,
        item_id: ItemId,
        max_items: usize,
    ) -> Result<(), CartError> {
        if self.contains(item_id) {
            return Err(CartError::DuplicateItem);
        }
        validate_add(snapshot, item_id)?;
        self.add_item(item_id, max_items)
    }

    /// Removes an item. Error: [`CartError::NotFound`].
    pub fn remove_item(&mut self, item_id: ItemId) -> Result<(), CartError> {
        let pos = self
            .items
            .iter()
            .position(|&id| id == item_id)
            .ok_or(CartError::NotFound)?;
        self.items.remove(pos);
        Ok(())
    }
}

/// Whether a shopper may add this item (spec §19.2): it must be an item of the inventory
/// ([`CartError::InvalidItem`]), of a released product ([`CartError::NotReleased`]), and not
/// sold out ([`CartError::OutOfStock`]).
pub fn validate_add(snapshot: &InventorySnapshot, item_id: ItemId) -> Result<(), CartError> {
    let entry = snapshot.item(item_id).ok_or(CartError::InvalidItem)?;
    if !entry.product.released {
        return Err(CartError::NotReleased);
    }
    if entry.item.is_out_of_stock() {
        return Err(CartError::OutOfStock);
    }
    Ok(())
}

/// Reads an item id sent by a client: a string of ASCII digits (what browsers send) or a
/// non-negative JSON integer. Anything else is [`CartError::InvalidItem`].
pub fn parse_item_id(value: &Value) -> Result<ItemId, CartError> {
    match value {
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<ItemId>().map_err(|_| CartError::InvalidItem)
        }
        Value::Number(n) => n
            .as_i64()
            .filter(|&id| id >= 0)
            .ok_or(CartError::InvalidItem),
        _ => Err(CartError::InvalidItem),
    }
}

/// Reads `item_id` from an `add_item` / `remove_item` payload (see [`parse_item_id`]); a
/// missing field or a payload that is not an object is [`CartError::InvalidItem`].
pub fn item_id_from_payload(payload: &Value) -> Result<ItemId, CartError> {
    payload
        .get("item_id")
        .ok_or(CartError::InvalidItem)
        .and_then(parse_item_id)
}

/// One cart line as the browser renders it (spec §10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CartItemView {
    /// Product brand.
    pub brand: String,
    /// Product colour.
    pub color: String,
    /// Product name.
    pub name: String,
    /// Price in whole dollars.
    pub price_usd: i32,
    /// Product image path.
    pub main_image_url: String,
    /// Whether the product is released.
    pub released: bool,
    /// Item id.
    pub id: ItemId,
    /// Displayed size.
    pub size: String,
    /// Item SKU.
    pub sku: String,
    /// True when the local cache shows no unit left.
    pub out_of_stock: bool,
}

/// The `cart` payload: `{items: [...], serialized: "<token>"}` (spec §10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedCart {
    /// Known items, ascending by id.
    pub items: Vec<CartItemView>,
    /// A freshly signed token of the whole cart (unknown ids included).
    pub serialized: String,
}

/// The cart's items as looked up in the cache: ascending by id; ids the inventory does not
/// know are left out (they stay in the cart).
pub fn cart_items(snapshot: &InventorySnapshot, cart: &Cart) -> Vec<CartItemView> {
    let mut ids = cart.item_ids().to_vec();
    ids.sort_unstable();
    ids.into_iter()
        .filter_map(|id| snapshot.item(id))
        .map(|entry| CartItemView {
            brand: entry.product.brand.clone(),
            color: entry.product.color.clone(),
            name: entry.product.name.clone(),
            price_usd: entry.product.price_usd,
            main_image_url: entry.product.main_image_url.clone(),
            released: entry.product.released,
            id: entry.item.id,
            size: entry.item.size.clone(),
            sku: entry.item.sku.clone(),
            out_of_stock: entry.item.is_out_of_stock(),
        })
        .collect()
}

/// The `cart` payload for `cart`, re-signed now.
pub fn render<S: CartSigner + ?Sized>(
    snapshot: &InventorySnapshot,
    cart: &Cart,
    signer: &S,
) -> RenderedCart {
    RenderedCart {
        items: cart_items(snapshot, cart),
        serialized: cart.serialize(signer),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{PlainSigner, fixture, fixture_with};

    #[test]
    fn a_new_cart_is_empty() {
        let cart = Cart::new();
        assert!(cart.is_empty());
        assert_eq!(cart.len(), 0);
        assert_eq!(cart.item_ids(), &[] as &[ItemId]);
    }

    #[test]
    fn adding_prepends() -> Result<(), CartError> {
        let mut cart = Cart::new();
        cart.add_item(1, DEFAULT_MAX_CART_ITEMS)?;
        assert_eq!(cart.item_ids(), &[1]);
        cart.add_item(2, DEFAULT_MAX_CART_ITEMS)?;
        assert_eq!(cart.item_ids(), &[2, 1]);
        Ok(())
    }

    #[test]
    fn a_duplicate_is_refused_and_changes_nothing() -> Result<(), CartError> {
        let mut cart = Cart::new();
        cart.add_item(1, DEFAULT_MAX_CART_ITEMS)?;
        assert_eq!(
            cart.add_item(1, DEFAULT_MAX_CART_ITEMS),
            Err(CartError::DuplicateItem)
        );
        assert_eq!(cart.item_ids(), &[1]);
        Ok(())
    }

    #[test]
    fn any_item_can_be_added_once_including_out_of_stock() -> Result<(), CartError> {
        let mut cart = Cart::new();
        cart.add_item(999_999, DEFAULT_MAX_CART_ITEMS)?;
        assert_eq!(cart.item_ids(), &[999_999]);
        Ok(())
    }

    #[test]
    fn the_cart_is_full_at_max_items() -> Result<(), CartError> {
        let mut cart = Cart::new();
        for id in 1..=3 {
            cart.add_item(id, 3)?;
        }
        assert_eq!(cart.add_item(4, 3), Err(CartError::CartFull));
        assert_eq!(cart.add_item(3, 3), Err(CartError::DuplicateItem));
        assert_eq!(cart.len(), 3);
        Ok(())
    }

    #[test]
    fn remove_takes_out_only_that_item() -> Result<(), CartError> {
        let mut cart = Cart::from_item_ids([3, 2, 1]);
        cart.remove_item(2)?;
        assert_eq!(cart.item_ids(), &[3, 1]);
        assert_eq!(cart.remove_item(2), Err(CartError::NotFound));
        assert_eq!(cart.item_ids(), &[3, 1]);
        Ok(())
    }

    #[test]
    fn from_item_ids_keeps_order_and_drops_duplicates() {
        assert_eq!(Cart::from_item_ids([3, 1, 3, 2, 1]).item_ids(), &[3, 1, 2]);
    }

    #[test]
    fn serialize_then_restore_round_trips() {
        let cart = Cart::from_item_ids([2, 1]);
        let token = cart.serialize(&PlainSigner);
        assert_eq!(Cart::restore(&PlainSigner, Some(&token)), cart);
    }

    #[test]
    fn restore_of_nothing_or_garbage_is_an_empty_cart() {
        assert_eq!(Cart::restore(&PlainSigner, None), Cart::new());
        assert_eq!(Cart::restore(&PlainSigner, Some("garbage")), Cart::new());
        assert_eq!(Cart::restore(&PlainSigner, Some("")), Cart::new());
    }

    #[test]
    fn item_ids_parse_from_digit_strings_and_integers() {
        assert_eq!(parse_item_id(&json!("12")), Ok(12));
        assert_eq!(parse_item_id(&json!("007")), Ok(7));
        assert_eq!(parse_item_id(&json!(12)), Ok(12));
        assert_eq!(item_id_from_payload(&json!({"item_id": "3"})), Ok(3));
    }

    #[test]
    fn anything_else_is_an_invalid_item() {
        for bad in [
            json!(""),
            json!("1a"),
            json!(" 1"),
            json!("-1"),
            json!("+1"),
            json!("99999999999999999999"),
            json!(-1),
            json!(1.5),
            json!(null),
            json!(true),
            json!([1]),
            json!({"id": 1}),
        ] {
            assert_eq!(parse_item_id(&bad), Err(CartError::InvalidItem), "{bad}");
        }
        assert_eq!(
            item_id_from_payload(&json!({})),
            Err(CartError::InvalidItem)
        );
        assert_eq!(
            item_id_from_payload(&json!("1")),
            Err(CartError::InvalidItem)
        );
    }

    #[test]
    fn validation_follows_decision_19_2() {
        let unreleased = fixture();
        assert_eq!(validate_add(&unreleased, 1), Err(CartError::NotReleased));
        assert_eq!(validate_add(&unreleased, 42), Err(CartError::InvalidItem));
        let mut released = fixture_with(true);
        assert_eq!(validate_add(&released, 1), Ok(()));
        released.set_available(1, 0);
        assert_eq!(validate_add(&released, 1), Err(CartError::OutOfStock));
    }

    #[test]
    fn add_checked_reports_duplicate_before_stock() -> Result<(), CartError> {
        let mut snapshot = fixture_with(true);
        let mut cart = Cart::new();
        cart.add_checked(&snapshot, 1, 10)?;
        snapshot.set_available(1, 0);
        assert_eq!(
            cart.add_checked(&snapshot, 1, 10),
            Err(CartError::DuplicateItem)
        );
        assert_eq!(
            cart.add_checked(&snapshot, 9, 10),
            Err(CartError::InvalidItem)
        );
        cart.add_checked(&snapshot, 2, 2)?;
        assert_eq!(cart.add_checked(&snapshot, 3, 2), Err(CartError::CartFull));
        assert_eq!(cart.item_ids(), &[2, 1]);
        Ok(())
    }

    #[test]
    fn error_codes_are_the_wire_strings() {
        assert_eq!(CartError::CartFull.reply(), json!({"reason": "cart_full"}));
        assert_eq!(CartError::DuplicateItem.to_string(), "duplicate_item");
        assert_eq!(CartError::OutOfStock.code(), "out_of_stock");
    }

    #[test]
    fn render_sorts_known_items_and_keeps_unknown_ids_in_the_token() {
        let mut snapshot = fixture_with(true);
        snapshot.set_available(2, 0);
        let cart = Cart::from_item_ids([3, 77, 2, 1]);
        let rendered = render(&snapshot, &cart, &PlainSigner);
        let ids: Vec<_> = rendered.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(
            Cart::restore(&PlainSigner, Some(&rendered.serialized)).item_ids(),
            &[3, 77, 2, 1]
        );
        let out: Vec<_> = rendered.items.iter().map(|i| i.out_of_stock).collect();
        assert_eq!(out, [false, true, false]);
    }

    #[test]
    fn rendered_items_have_the_wire_fields() -> Result<(), serde_json::Error> {
        let snapshot = fixture_with(true);
        let rendered = render(&snapshot, &Cart::from_item_ids([3]), &PlainSigner);
        let json = serde_json::to_value(&rendered)?;
        assert_eq!(
            json,
            json!({
                "items": [{
                    "brand": "brand 2", "color": "red", "name": "name 2", "price_usd": 102,
                    "main_image_url": "/images/2.png", "released": true,
                    "id": 3, "size": "3", "sku": "I3", "out_of_stock": false
                }],
                "serialized": "plain:3"
            })
        );
        Ok(())
    }
}
