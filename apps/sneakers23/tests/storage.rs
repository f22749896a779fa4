//! Storage: seeding and reset on each backend, the SQLite file layout, and surviving a
//! PostgreSQL outage without a restart (spec §4, §17.3, §18.3 M3).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Note, TestDb, eventually, insert_fixture, recorded_inventory};
use sneakers23::db::{Db, DbError, DbOptions};
use sneakers23::inventory::Inventory;
use sneakers23::seed::{self, COUNT_RANGE, SIZES};
use sqlx::Connection;
use test_support::TcpProxy;

backend_tests!(
    seed_assigns_the_book_ids_and_reset_restarts_them,
    seeding_twice_is_refused,
);

async fn seed_assigns_the_book_ids_and_reset_restarts_them(backend: Backend) {
    let t = TestDb::new(backend).await;
    let inserted = seed::seed(&t.db, Some(23)).await.expect("seed");
    let ids: Vec<_> = inserted
        .iter()
        .map(|p| (p.id, p.item_ids.clone()))
        .collect();
    assert_eq!(
        ids,
        [(1, (1..=13).collect::<Vec<_>>()), (2, (14..=26).collect())]
    );

    let inventory = Inventory::load(
        t.db.clone(),
        std::sync::Arc::new(sneakers23::inventory::NoopNotifier),
        std::sync::Arc::new(sneakers23::inventory::NoReplication),
    )
    .await
    .expect("load");
    let snapshot = inventory.snapshot();
    let names: Vec<_> = snapshot
        .products()
        .map(|p| (p.product.id, p.product.name.as_str(), p.product.released))
        .collect();
    assert_eq!(
        names,
        [(1, "Hop Man 3", false), (2, "Breezy Boost 600", false)]
    );
    let first = snapshot.item(1).expect("item 1");
    assert_eq!(
        (first.item.sku.as_str(), first.item.size.as_str()),
        ("SHU6001", "6")
    );
    let last = snapshot.item(26).expect("item 26");
    assert_eq!((last.item.sku.as_str(), last.product.id), ("SHU6113", 2));
    let sizes: Vec<_> = snapshot
        .product(2)
        .map(|p| p.items.iter().map(|i| i.size.clone()).collect())
        .unwrap_or_default();
    assert_eq!(sizes, SIZES);
    let counts: Vec<i32> = snapshot.items().map(|i| i.available_count).collect();
    assert_eq!(counts.len(), 26);
    assert!(
        counts.iter().all(|c| *c == 0 || COUNT_RANGE.contains(c)),
        "{counts:?}"
    );

    t.db.reset().await.expect("reset");
    assert_eq!(t.db.count_products().await.expect("count"), 0);
    let again = seed::seed(&t.db, Some(23)).await.expect("seed after reset");
    assert_eq!(again.iter().map(|p| p.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(again[1].item_ids.first(), Some(&14));
    inventory.reload().await.expect("reload");
    let reloaded: Vec<i32> = inventory
        .snapshot()
        .items()
        .map(|i| i.available_count)
        .collect();
    assert_eq!(reloaded, counts, "the same RNG seed gives the same stock");
}

async fn seeding_twice_is_refused(backend: Backend) {
    let t = TestDb::new(backend).await;
    seed::seed(&t.db, None).await.expect("first seed");
    let err = seed::seed(&t.db, None).await.expect_err("second seed");
    assert!(matches!(err, DbError::NotEmpty { products: 2 }), "{err}");
    assert!(err.to_string().contains("reset"), "{err}");
    assert_eq!(t.db.count_products().await.expect("count"), 2);
}

#[tokio::test]
async fn sqlite_creates_its_directory_and_uses_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("nested/data/store.db");
    let url = format!("sqlite://{}", file.display());
    let db = Db::connect(&url).await.expect("connect creates the file");
    db.migrate().await.expect("migrate");
    insert_fixture(&db, true).await;
    db.close().await;
    assert!(file.exists(), "{} created", file.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("plain connection");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn an_unreachable_database_fails_fast_with_a_clear_error() {
    let options = DbOptions {
        acquire_timeout: Duration::from_millis(300),
        ..DbOptions::default()
    };
    let started = Instant::now();
    let err = Db::connect_with("postgres://postgres@127.0.0.1:1/none", &options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("database unavailable"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Spec §18.3 M3 with PostgreSQL behind a proxy: while the database is unreachable reads are
/// served from the cache and writes fail fast with the "unavailable" error; once it is back,
/// writes work again with the same pool and cache (nothing restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_keeps_reads_and_recovers_without_restart() {
    let t = TestDb::new(Backend::Postgres).await;
    let f = insert_fixture(&t.db, false).await;
    let mut proxy = TcpProxy::start(common::pg_server_addr().await).await;
    let options = DbOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_millis(500),
        ..DbOptions::default()
    };
    let db = Db::connect_with(&t.pg_url_via_port(proxy.port()), &options)
        .await
        .expect("connecting through the proxy");
    let (inventory, recorder, _) = recorded_inventory(&db).await;
    inventory.sell_item(f.i3).await.expect("a sale while up");

    proxy.stop().await;

    let snapshot = inventory.snapshot();
    assert_eq!(snapshot.product_count(), 2, "reads come from the cache");
    assert_eq!(snapshot.available_count(f.i3), 2);
    let started = Instant::now();
    let err = inventory.release(f.p1).await.expect_err("database away");
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("releasing product {}", f.p1)),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "fails fast: {:?}",
        started.elapsed()
    );
    let err = inventory.sell_item(f.i3).await.expect_err("database away");
    assert!(err.is_unavailable(), "{err}");
    let err = inventory
        .purchase(&[f.i2])
        .await
        .expect_err("database away");
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(
        inventory
            .snapshot()
            .product(f.p1)
            .map(|p| p.product.released),
        Some(false)
    );
    assert!(!recorder.notes().contains(&Note::Released(f.p1, true)));

    proxy.restart().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            db.ping().await.is_ok()
        })
        .await,
        "the pool reconnects by itself"
    );

    inventory
        .release(f.p1)
        .await
        .expect("release once the database is back");
    assert_eq!(
        inventory
            .snapshot()
            .product(f.p1)
            .map(|p| p.product.released),
        Some(true)
    );
    let stored = t.db.get_product(f.p1).await.expect("read").expect("p1");
    assert!(stored.released);
    assert!(recorder.notes().contains(&Note::Released(f.p1, true)));
    inventory
        .sell_item(f.i3)
        .await
        .expect("sale once the database is back");
    assert_eq!(inventory.snapshot().available_count(f.i3), 1);
    db.close().await;
}
