//! Checkout (spec §13): the page model of `GET /checkout` and the purchase of `POST /checkout`.
//!
//! The web layer restores the [`Cart`] from the submitted `serialized_cart` (an invalid or
//! expired token gives an empty cart) and calls [`purchase`], which checks, in order:
//!
//! 1. the cart is empty ⇒ [`CheckoutOutcome::EmptyCart`];
//! 2. an item is out of stock in the cache ⇒ [`CheckoutOutcome::OutOfStock`];
//! 3. an item's product is unreleased in the cache ⇒ [`CheckoutOutcome::NotReleased`];
//! 4. the purchase transaction fails ⇒ [`CheckoutOutcome::PurchaseFailed`];
//! 5. its commit's answer was lost and the order could not be looked up ⇒
//!    [`CheckoutOutcome::Unconfirmed`] (the completion page looks again);
//! 6. otherwise the order is written and every item was decremented by one ⇒
//!    [`CheckoutOutcome::Complete`] — or, for a replayed form (same order key), the order
//!    written earlier, and nothing is sold again.
//!
//! Every purchase is an order named by an idempotency key ([`new_order_key`]) that the
//! checkout form carries; see [`crate::db::Db::purchase_order`].
//!
//! Checks 2–3 read the cache and only look at items it knows; the database transaction is the
//! authoritative check (an unknown id fails there). [`CheckoutOutcome::flash_message`] gives
//! the spec's flash text.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::cart::{Cart, CartItemView, cart_items};
use crate::db::{DbError, Purchase};
use crate::inventory::{Inventory, InventorySnapshot};

/// What `GET /checkout` shows for a cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutPage {
    /// The cart's items known to the inventory, ascending by id (empty ⇒ the page says
    /// "No items to checkout!").
    pub items: Vec<CartItemView>,
    /// Some item is sold out (it shows "Sorry, this shoe is sold out").
    pub any_out_of_stock: bool,
    /// Some item's product is not released.
    pub any_unreleased: bool,
}

impl CheckoutPage {
    /// Builds the page model from the cache.
    pub fn new(snapshot: &InventorySnapshot, cart: &Cart) -> Self {
        let items = cart_items(snapshot, cart);
        Self {
            any_out_of_stock: items.iter().any(|i| i.out_of_stock),
            any_unreleased: items.iter().any(|i| !i.released),
            items,
        }
    }

    /// True when there is nothing to check out ("No items to checkout!").
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the "PURCHASE" button is enabled; otherwise a disabled "SOME ITEMS NOT
    /// AVAILABLE" is shown.
    pub fn purchase_enabled(&self) -> bool {
        !self.is_empty() && !self.any_out_of_stock && !self.any_unreleased
    }

    /// Sum of the prices of all items shown, in whole dollars.
    pub fn total_usd(&self) -> i64 {
        self.items.iter().map(|i| i64::from(i.price_usd)).sum()
    }
}

/// Result of `POST /checkout`.
#[derive(Debug)]
pub enum CheckoutOutcome {
    /// Bought now, or earlier with the same order key: redirect to the order's completion
    /// page.
    Complete(Purchase),
    /// The commit's answer was lost and the order could not be looked up yet: the
    /// completion page of this order key looks again.
    Unconfirmed {
        /// The order key.
        key: String,
    },
    /// Empty or invalid cart: flash "Your cart is empty", redirect to `/checkout`.
    EmptyCart,
    /// Some item is sold out (cache): flash and redirect back to the checkout page.
    OutOfStock,
    /// Some item is unreleased (cache): flash and redirect back to the checkout page.
    NotReleased,
    /// The database refused or could not run the purchase; nothing was sold.
    PurchaseFailed(DbError),
}

impl CheckoutOutcome {
    /// The flash error to show, `None` on success.
    pub fn flash_message(&self) -> Option<&'static str> {
        match self {
            Self::Complete(_) | Self::Unconfirmed { .. } => None,
            Self::EmptyCart => Some("Your cart is empty"),
            Self::OutOfStock => Some("Your cart has out-of-stock shoes"),
            Self::NotReleased => Some("Your cart has unreleased shoes"),
            Self::PurchaseFailed(_) => Some("Your purchase could not be completed"),
        }
    }

    /// True for [`CheckoutOutcome::Complete`].
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete(_))
    }
}

/// The cache checks (1–3) of a purchase; `Ok` when the purchase may be attempted.
pub fn precheck(snapshot: &InventorySnapshot, cart: &Cart) -> Result<(), CheckoutOutcome> {
    if cart.is_empty() {
        return Err(CheckoutOutcome::EmptyCart);
    }
    let page = CheckoutPage::new(snapshot, cart);
    if page.any_out_of_stock {
        return Err(CheckoutOutcome::OutOfStock);
    }
    if page.any_unreleased {
        return Err(CheckoutOutcome::NotReleased);
    }
    Ok(())
}

/// Longest order key accepted from a form.
pub const MAX_ORDER_KEY_LEN: usize = 64;

/// A fresh order key for a checkout form: 16 random bytes, URL-safe base64 (22 characters).
pub fn new_order_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `key` looks like an order key (16 to [`MAX_ORDER_KEY_LEN`] URL-safe base64
/// characters): anything else from a form is refused before it reaches the database.
pub fn is_valid_order_key(key: &str) -> bool {
    (16..=MAX_ORDER_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Purchases the cart as a new order with a fresh key. See [`purchase_order`].
pub async fn purchase(inventory: &Inventory, cart: &Cart) -> CheckoutOutcome {
    purchase_order(inventory, &new_order_key(), cart).await
}

/// Purchases the cart as order `key`: a replayed key answers with the order written earlier
/// (before the cache checks, which a completed order's sold-out items would fail); otherwise
/// [`precheck`], then one database transaction writing the order and selling one unit of
/// every item (see [`Inventory::purchase_order`]).
pub async fn purchase_order(inventory: &Inventory, key: &str, cart: &Cart) -> CheckoutOutcome {
    if let Ok(Some(order)) = inventory.db().find_order_bounded(key).await {
        return CheckoutOutcome::Complete(Purchase::Existing(order));
    }
    if let Err(outcome) = precheck(&inventory.snapshot(), cart) {
        return outcome;
    }
    match inventory.purchase_order(key, cart.item_ids()).await {
        Ok(purchase) => CheckoutOutcome::Complete(purchase),
        Err(DbError::CommitUnknown { key, cause }) => {
            tracing::warn!(order = %key, %cause, "purchase outcome unknown");
            CheckoutOutcome::Unconfirmed { key }
        }
        Err(e) => {
            crate::logs::client_error_with("checkout purchase failed", &e);
            CheckoutOutcome::PurchaseFailed(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixture, fixture_with};

    #[test]
    fn an_empty_cart_is_refused_first() {
        let outcome = precheck(&fixture(), &Cart::new());
        assert!(matches!(outcome, Err(CheckoutOutcome::EmptyCart)));
    }

    #[test]
    fn out_of_stock_is_checked_before_unreleased() {
        let mut snapshot = fixture();
        snapshot.set_available(1, 0);
        let cart = Cart::from_item_ids([1, 2]);
        assert!(matches!(
            precheck(&snapshot, &cart),
            Err(CheckoutOutcome::OutOfStock)
        ));
        let cart = Cart::from_item_ids([2]);
        assert!(matches!(
            precheck(&snapshot, &cart),
            Err(CheckoutOutcome::NotReleased)
        ));
    }

    #[test]
    fn unknown_ids_pass_the_cache_checks() {
        let cart = Cart::from_item_ids([404]);
        assert!(precheck(&fixture_with(true), &cart).is_ok());
    }

    #[test]
    fn the_page_disables_purchase_when_something_is_unavailable() {
        let mut snapshot = fixture_with(true);
        let cart = Cart::from_item_ids([3, 1]);
        let page = CheckoutPage::new(&snapshot, &cart);
        assert!(page.purchase_enabled());
        assert_eq!(page.total_usd(), 101 + 102);
        snapshot.set_available(3, 0);
        let page = CheckoutPage::new(&snapshot, &cart);
        assert!(page.any_out_of_stock && !page.purchase_enabled());
        let page = CheckoutPage::new(&fixture(), &cart);
        assert!(page.any_unreleased && !page.purchase_enabled());
        let page = CheckoutPage::new(&fixture(), &Cart::from_item_ids([404]));
        assert!(page.is_empty() && !page.purchase_enabled());
    }

    #[test]
    fn order_keys_are_checked_before_the_database() {
        let key = new_order_key();
        assert_eq!(key.len(), 22);
        assert!(is_valid_order_key(&key));
        assert_ne!(key, new_order_key());
        assert!(!is_valid_order_key("short"));
        assert!(!is_valid_order_key(&"a".repeat(MAX_ORDER_KEY_LEN + 1)));
        assert!(!is_valid_order_key("0123456789abcdef'; DROP"));
    }

    #[test]
    fn flash_messages_are_the_spec_texts() {
        assert_eq!(
            CheckoutOutcome::Unconfirmed { key: "k".into() }.flash_message(),
            None
        );
        assert_eq!(
            CheckoutOutcome::EmptyCart.flash_message(),
            Some("Your cart is empty")
        );
        assert_eq!(
            CheckoutOutcome::OutOfStock.flash_message(),
            Some("Your cart has out-of-stock shoes")
        );
        assert_eq!(
            CheckoutOutcome::NotReleased.flash_message(),
            Some("Your cart has unreleased shoes")
        );
        assert_eq!(
            CheckoutOutcome::PurchaseFailed(DbError::NotAvailable { item_id: 1 }).flash_message(),
            Some("Your purchase could not be completed")
        );
    }
}
