//! Inventory against a real database of each backend (spec §18.1 "Inventory", "SingleItem"):
//! loading, ordering and enrichment, release, single-item sales, cart purchases, replication
//! between two nodes over pubsub's in-process network, and the reducer.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, Note, TestDb, insert_fixture, recorded_inventory};
use pubsub::memory::Network;
use sneakers23::db::DbError;
use sneakers23::inventory::{Inventory, StockChange};
use sneakers23::level::AvailabilityLevel;
use sneakers23::reducer::{self, ReducerOptions};
use sneakers23::replication::{REPLICATION_TOPIC, Replication, ReplicationEvent};

backend_tests!(
    loader_loads_an_empty_database,
    loader_orders_products_and_enriches_items,
    release_updates_database_cache_and_notifies,
    release_of_an_unknown_product_fails_without_effects,
    selling_the_last_unit_empties_cache_and_database,
    a_sale_within_the_same_level_broadcasts_no_stock_change,
    a_level_change_is_broadcast,
    purchase_sells_one_of_each_item_after_commit,
    a_failed_purchase_sells_nothing,
    replication_brings_releases_and_sales_to_the_other_node,
    replication_survives_undecodable_events,
    the_reducer_sells_until_everything_is_gone,
);

async fn loader_loads_an_empty_database(backend: Backend) {
    let t = TestDb::new(backend).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    assert_eq!(inventory.snapshot().product_count(), 0);
    assert_eq!(inventory.snapshot().items().count(), 0);
}

async fn loader_orders_products_and_enriches_items(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, false).await;
    let (inventory, _, _) = recorded_inventory(&t.db).await;
    let snapshot = inventory.snapshot();
    let listing: Vec<_> = snapshot
        .products()
        .map(|p| {
            let items: Vec<_> = p.items.iter().map(|i| (i.id, i.available_count)).collect();
            (p.product.id, items)
        })
        .collect();
    assert_eq!(
        listing,
        [(f.p2, vec![(f.i3, 3)]), (f.p1, vec![(f.i1, 1), (f.i2, 2)])]
    );
    let p1 = snapshot.product(f.p1).expect("p1 in the cache");
    assert_eq!(p1.product.sku, "P1");
    assert_eq!(p1.product.order, 1);
    assert!(!p1.product.released);
    let entry = snapshot.item(f.i2).expect("i2 in the cache");
    assert_eq!(entry.product.id, f.p1);
    assert_eq!(entry.item.size, "7");
    assert_eq!(snapshot.level(f.i3), AvailabilityLevel::Low);
}

async fn release_updates_database_cache_and_notifies(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, false).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    inventory.release(f.p1).await.expect("release");

    let stored = t.db.get_product(f.p1).await.expect("read").expect("p1");
    assert!(stored.released);
    let snapshot = inventory.snapshot();
    assert_eq!(
        snapshot.product(f.p1).map(|p| p.product.released),
        Some(true)
    );
    assert_eq!(
        snapshot.product(f.p2).map(|p| p.product.released),
        Some(false)
    );
    assert_eq!(recorder.notes(), [Note::Released(f.p1, true)]);
    assert_eq!(
        sink.events(),
        [ReplicationEvent::Release { product_id: f.p1 }]
    );

    // Releasing again is harmless and broadcasts again.
    inventory.release(f.p1).await.expect("second release");
    assert_eq!(recorder.notes().len(), 2);
}

async fn release_of_an_unknown_product_fails_without_effects(backend: Backend) {
    let t = TestDb::new(backend).await;
    insert_fixture(&t.db, false).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    let err = inventory.release(999).await.expect_err("unknown product");
    assert!(
        matches!(err, DbError::ProductNotFound { product_id: 999 }),
        "{err}"
    );
    assert!(err.to_string().contains("999"), "{err}");
    assert!(!err.is_unavailable());
    assert!(recorder.notes().is_empty());
    assert!(sink.events().is_empty());
}

async fn selling_the_last_unit_empties_cache_and_database(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;

    inventory
        .sell_item(f.i1)
        .await
        .expect("selling the only unit");
    assert_eq!(inventory.snapshot().available_count(f.i1), 0);
    let stored = t.db.get_availability(f.i1).await.expect("read");
    assert_eq!(stored.map(|a| a.available_count), Some(0));
    assert_eq!(
        recorder.notes(),
        [
            Note::StockChange(StockChange {
                product_id: f.p1,
                item_id: f.i1,
                level: AvailabilityLevel::Out
            }),
            Note::ItemOut(f.i1),
        ]
    );
    assert_eq!(
        sink.events(),
        [ReplicationEvent::ItemSold { item_id: f.i1 }]
    );

    let err = inventory.sell_item(f.i1).await.expect_err("nothing left");
    assert!(matches!(err, DbError::NotAvailable { item_id } if item_id == f.i1));
    let stored = t.db.get_availability(f.i1).await.expect("read");
    assert_eq!(stored.map(|a| a.available_count), Some(0));
    assert_eq!(recorder.notes().len(), 2, "a refused sale notifies nobody");

    let err = inventory.sell_item(4242).await.expect_err("unknown item");
    assert!(matches!(err, DbError::NotAvailable { item_id: 4242 }));
}

async fn a_sale_within_the_same_level_broadcasts_no_stock_change(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    inventory.sell_item(f.i3).await.expect("sale");
    assert_eq!(inventory.snapshot().available_count(f.i3), 2);
    assert!(recorder.notes().is_empty(), "{:?}", recorder.notes());
    assert_eq!(
        sink.events(),
        [ReplicationEvent::ItemSold { item_id: f.i3 }]
    );
}

async fn a_level_change_is_broadcast(backend: Backend) {
    let t = TestDb::new(backend).await;
    let item = common::insert_single_item(&t.db, 150).await;
    let (inventory, recorder, _) = recorded_inventory(&t.db).await;
    assert_eq!(inventory.snapshot().level(item), AvailabilityLevel::Medium);
    inventory.sell_item(item).await.expect("sale");
    let product_id = inventory.snapshot().item(item).map(|e| e.product.id);
    assert_eq!(
        recorder.notes(),
        [Note::StockChange(StockChange {
            product_id: product_id.expect("item in cache"),
            item_id: item,
            level: AvailabilityLevel::Low,
        })]
    );
}

async fn purchase_sells_one_of_each_item_after_commit(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    inventory
        .purchase(&[f.i3, f.i1, f.i2])
        .await
        .expect("purchase");
    for (item, left) in [(f.i1, 0), (f.i2, 1), (f.i3, 2)] {
        let stored = t.db.get_availability(item).await.expect("read");
        assert_eq!(stored.map(|a| a.available_count), Some(left), "item {item}");
        assert_eq!(
            inventory.snapshot().available_count(item),
            left,
            "item {item}"
        );
    }
    assert!(recorder.notes().contains(&Note::ItemOut(f.i1)));
    assert_eq!(sink.events().len(), 3);
}

async fn a_failed_purchase_sells_nothing(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (inventory, recorder, sink) = recorded_inventory(&t.db).await;
    // i1 has one unit: the second sale of it fails and rolls back the whole cart.
    let err = inventory
        .purchase(&[f.i3, f.i1, f.i1])
        .await
        .expect_err("i1 cannot be sold twice");
    assert!(
        matches!(&err, DbError::PurchaseFailed { failed_item_id, .. } if *failed_item_id == f.i1),
        "{err}"
    );
    let err = inventory
        .purchase(&[f.i2, 31337])
        .await
        .expect_err("unknown item");
    assert!(matches!(
        err,
        DbError::PurchaseFailed {
            failed_item_id: 31337,
            ..
        }
    ));
    for (item, left) in [(f.i1, 1), (f.i2, 2), (f.i3, 3)] {
        let stored = t.db.get_availability(item).await.expect("read");
        assert_eq!(stored.map(|a| a.available_count), Some(left), "item {item}");
        assert_eq!(inventory.snapshot().available_count(item), left);
    }
    assert!(recorder.notes().is_empty());
    assert!(sink.events().is_empty());
}

/// Two nodes ("app" and "back") sharing one database, each with its own cache.
struct Cluster {
    app: Inventory,
    app_notes: Arc<common::Recorder>,
    back: Inventory,
    back_notes: Arc<common::Recorder>,
    network: Network,
    _listeners: Vec<tokio::task::JoinHandle<()>>,
}

async fn cluster(t: &TestDb) -> Cluster {
    let network = Network::new();
    let mut listeners = Vec::new();
    let mut node = async |name: &str| {
        let replication = Replication::new(network.node(name));
        let notes = common::Recorder::new();
        let inventory = Inventory::load(t.db.clone(), notes.clone(), replication.sink())
            .await
            .expect("loading a node's inventory");
        listeners.push(tokio::spawn(replication.run(inventory.clone())));
        (inventory, notes)
    };
    let (app, app_notes) = node("app").await;
    let (back, back_notes) = node("back").await;
    Cluster {
        app,
        app_notes,
        back,
        back_notes,
        network,
        _listeners: listeners,
    }
}

async fn replication_brings_releases_and_sales_to_the_other_node(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, false).await;
    let c = cluster(&t).await;

    c.back.release(f.p1).await.expect("release on back");
    c.app_notes
        .wait_for(Note::Replicated(ReplicationEvent::Release {
            product_id: f.p1,
        }))
        .await;
    let released = |i: &Inventory| i.snapshot().product(f.p1).map(|p| p.product.released);
    assert_eq!(released(&c.app), Some(true));
    assert_eq!(released(&c.back), Some(true));

    c.back.sell_item(f.i1).await.expect("sale on back");
    let app_notes = c.app_notes.wait_for(Note::ItemOut(f.i1)).await;
    assert_eq!(c.app.snapshot().available_count(f.i1), 0);
    c.app_notes
        .wait_for(Note::Replicated(ReplicationEvent::ItemSold {
            item_id: f.i1,
        }))
        .await;

    // The receiving node only updates its cache and its local item_out subscribers: clients
    // heard `released` and `stock_change` from the originating node.
    assert!(
        !app_notes
            .iter()
            .any(|n| matches!(n, Note::Released(..) | Note::StockChange(_))),
        "{app_notes:?}"
    );
    let back_notes = c.back_notes.notes();
    assert!(back_notes.contains(&Note::Released(f.p1, true)));
    assert!(back_notes.contains(&Note::ItemOut(f.i1)));
    assert!(
        !back_notes.iter().any(|n| matches!(n, Note::Replicated(_))),
        "the sender does not process its own events: {back_notes:?}"
    );

    // And the other way round.
    c.app.sell_item(f.i3).await.expect("sale on app");
    c.back_notes
        .wait_for(Note::Replicated(ReplicationEvent::ItemSold {
            item_id: f.i3,
        }))
        .await;
    assert_eq!(c.back.snapshot().available_count(f.i3), 2);
    let traffic = c.network.traffic();
    assert!(traffic.0 > 0, "events crossed the network: {traffic:?}");
}

async fn replication_survives_undecodable_events(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let c = cluster(&t).await;
    let intruder = c.network.node("intruder");
    for garbage in [&b"\xff\x00garbage"[..], b"{}", br#"{"event":"nuke"}"#] {
        intruder.broadcast(REPLICATION_TOPIC, bytes::Bytes::from_static(garbage));
    }
    // A valid event after the garbage is still applied, on both nodes.
    t.db.sell_item(f.i2)
        .await
        .expect("sale behind the caches' back");
    let event = ReplicationEvent::ItemSold { item_id: f.i2 };
    intruder.broadcast(REPLICATION_TOPIC, event.encode());
    c.app_notes.wait_for(Note::Replicated(event)).await;
    c.back_notes.wait_for(Note::Replicated(event)).await;
    assert_eq!(c.app.snapshot().available_count(f.i2), 1);
    assert_eq!(c.back.snapshot().available_count(f.i2), 1);
}

async fn the_reducer_sells_until_everything_is_gone(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let c = cluster(&t).await;
    let options = ReducerOptions {
        per_tick: 4,
        tick: Duration::from_millis(1),
    };
    let report = reducer::sell_random_until_gone(&c.back, options)
        .await
        .expect("reducer");
    assert_eq!(report.sold, 6, "{report:?}");
    for item in [f.i1, f.i2, f.i3] {
        let stored = t.db.get_availability(item).await.expect("read");
        assert_eq!(stored.map(|a| a.available_count), Some(0));
        assert_eq!(c.back.snapshot().available_count(item), 0);
        // Every node learns about every sell-out, without a refresh.
        c.app_notes.wait_for(Note::ItemOut(item)).await;
        assert_eq!(c.app.snapshot().available_count(item), 0);
    }
    let report = reducer::sell_random(&c.back, 10).await.expect("one-shot");
    assert_eq!(report.sold, 0);
}
