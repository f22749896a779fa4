//! Checkout against a real database of each backend (spec §13, §18.1 "Checkout"), and the
//! anti-oversell guarantee under concurrent purchases.

mod common;

use common::{Backend, Note, TestDb, insert_fixture, insert_single_item, recorded_inventory};
use sneakers23::cart::Cart;
use sneakers23::checkout::{self, CheckoutOutcome, CheckoutPage};
use sneakers23::db::DbError;

backend_tests!(
    an_empty_cart_is_refused,
    a_cart_with_an_out_of_stock_item_is_refused_from_the_cache,
    a_cart_with_an_unreleased_item_is_refused,
    purchase_of_an_unknown_item_fails,
    purchase_of_a_sold_out_item_fails_in_the_database,
    purchase_of_one_valid_item_completes,
    purchase_of_several_valid_items_completes,
    the_page_reflects_a_sale,
    concurrent_purchases_never_oversell,
);

async fn count(t: &TestDb, item: i64) -> Option<i32> {
    let row =
        t.db.get_availability(item)
            .await
            .expect("reading availability");
    row.map(|a| a.available_count)
}

async fn an_empty_cart_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    insert_fixture(&t.db, true).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    let outcome = checkout::purchase(&inventory, &Cart::new()).await;
    assert!(matches!(outcome, CheckoutOutcome::EmptyCart), "{outcome:?}");
    assert_eq!(outcome.flash_message(), Some("Your cart is empty"));
}

async fn a_cart_with_an_out_of_stock_item_is_refused_from_the_cache(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    inventory.sell_item(f.i1).await.expect("selling i1 out");
    let outcome = checkout::purchase(&inventory, &Cart::from_item_ids([f.i3, f.i1])).await;
    assert!(
        matches!(outcome, CheckoutOutcome::OutOfStock),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.flash_message(),
        Some("Your cart has out-of-stock shoes")
    );
    assert_eq!(count(&t, f.i3).await, Some(3), "nothing was sold");
}

async fn a_cart_with_an_unreleased_item_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, false).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    inventory.release(f.p2).await.expect("release p2 only");
    let outcome = checkout::purchase(&inventory, &Cart::from_item_ids([f.i3, f.i2])).await;
    assert!(
        matches!(outcome, CheckoutOutcome::NotReleased),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.flash_message(),
        Some("Your cart has unreleased shoes")
    );
    assert_eq!(count(&t, f.i2).await, Some(2));
    assert_eq!(count(&t, f.i3).await, Some(3));
}

async fn purchase_of_an_unknown_item_fails(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, _) = recorded_inventory(&t.db).await;
    let outcome = checkout::purchase(&inventory, &Cart::from_item_ids([f.i3, 9999])).await;
    assert!(
        matches!(
            outcome,
            CheckoutOutcome::PurchaseFailed(DbError::PurchaseFailed {
                failed_item_id: 9999,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(
        outcome.flash_message(),
        Some("Your purchase could not be completed")
    );
    assert_eq!(count(&t, f.i3).await, Some(3), "rolled back");
    assert!(recorder.notes().is_empty());
}

async fn purchase_of_a_sold_out_item_fails_in_the_database(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    // Sold out in the database while this node's cache still shows it available.
    t.db.sell_item(f.i1)
        .await
        .expect("sale behind the cache's back");
    assert_eq!(inventory.snapshot().available_count(f.i1), 1);
    let outcome = checkout::purchase(&inventory, &Cart::from_item_ids([f.i1, f.i2])).await;
    assert!(
        matches!(outcome, CheckoutOutcome::PurchaseFailed(_)),
        "{outcome:?}"
    );
    assert_eq!(count(&t, f.i2).await, Some(2), "rolled back");
}

async fn purchase_of_one_valid_item_completes(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    let outcome = checkout::purchase(&inventory, &Cart::from_item_ids([f.i2])).await;
    assert!(outcome.is_complete(), "{outcome:?}");
    assert_eq!(outcome.flash_message(), None);
    assert_eq!(count(&t, f.i2).await, Some(1));
    assert_eq!(inventory.snapshot().available_count(f.i2), 1);
}

async fn purchase_of_several_valid_items_completes(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, _) = recorded_inventory(&t.db).await;
    let cart = Cart::from_item_ids([f.i3, f.i2, f.i1]);
    let outcome = checkout::purchase(&inventory, &cart).await;
    assert!(outcome.is_complete(), "{outcome:?}");
    for (item, left) in [(f.i1, 0), (f.i2, 1), (f.i3, 2)] {
        assert_eq!(count(&t, item).await, Some(left), "item {item}");
    }
    assert!(recorder.notes().contains(&Note::ItemOut(f.i1)));
}

async fn the_page_reflects_a_sale(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    let cart = Cart::from_item_ids([f.i1, f.i3]);
    let page = CheckoutPage::new(&inventory.snapshot(), &cart);
    assert!(page.purchase_enabled());
    assert_eq!(page.items.len(), 2);
    inventory.sell_item(f.i1).await.expect("sale");
    let page = CheckoutPage::new(&inventory.snapshot(), &cart);
    assert!(page.any_out_of_stock);
    assert!(!page.purchase_enabled());
    let sold: Vec<_> = page.items.iter().filter(|i| i.out_of_stock).collect();
    assert_eq!(sold.len(), 1);
    assert_eq!(sold[0].id, f.i1);
}

/// 200 shoppers buy the same item with 50 units at once, straight to the database (no cache
/// pre-check): exactly 50 succeed, the others fail cleanly, and the count ends at 0.
async fn concurrent_purchases_never_oversell(backend: Backend) {
    let t = TestDb::new(backend).await;
    let item = insert_single_item(&t.db, 50).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let inventory = inventory.clone();
        tasks.spawn(async move { inventory.purchase(&[item]).await });
    }
    let (mut complete, mut failed) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.expect("purchase task") {
            Ok(()) => complete += 1,
            Err(DbError::PurchaseFailed { .. }) => failed += 1,
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!((complete, failed), (50, 150));
    assert_eq!(count(&t, item).await, Some(0));
    assert_eq!(inventory.snapshot().available_count(item), 0);
    assert!(recorder.notes().contains(&Note::ItemOut(item)));
    assert_eq!(sink.events().len(), 50, "one item_sold per sale");
}
