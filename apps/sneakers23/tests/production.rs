//! Production refuses what would silently hurt it, against the real binary: a weak admin
//! password or secret, a missing or empty database (never a fresh seeded shop); and it serves
//! `/health` and `/metrics` on their own loopback address, not on the public one. A database
//! that stops accepting writes makes `/health` degraded, and the pool recovers by itself when
//! writes work again; a SQLite file deleted under a running node is noticed.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::process::{BIN, StoreProcess};
use common::web::{Browser, try_get};
use common::{Backend, EVENT_TIMEOUT, TestDb, eventually, insert_fixture};
use sqlx::Connection;
use tokio::process::Command;

/// Concurrent `/health` requests: enough to make the pool open several connections.
const PROBES: usize = 4;

const SECRET: &str = "Zr4Xq9Lm2Vt7Bn8Kc3Hs6Jd1Wf5Gy0Pa-production-test-secret";
const PASSWORD: &str = "correct horse battery staple";

fn prod_command(database_url: &str, dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--env", "prod"])
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("OPS_LISTEN", "127.0.0.1:0")
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY_BASE", SECRET)
        .env("SECRET_KEY_FILE", dir.join("secret"))
        .env("ADMIN_USER", "ops")
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "info")
        .env_remove("SEED_IF_EMPTY");
    command
}

/// Runs a command expected to refuse to start; returns its exit success and its output.
async fn refused(mut command: Command) -> (bool, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("the store exits by itself")
        .expect("running the store");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_weak_admin_passwords_and_secrets() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/store.db", dir.path().display());
    let mut command = prod_command(&url, dir.path());
    command.env("ADMIN_PASSWORD", "password");
    let (ok, output) = refused(command).await;
    assert!(!ok, "{output}");
    assert!(output.contains("ADMIN_PASSWORD is too weak"), "{output}");
    let mut command = prod_command(&url, dir.path());
    command.env("SECRET_KEY_BASE", "a".repeat(20));
    let (ok, output) = refused(command).await;
    assert!(!ok, "{output}");
    assert!(output.contains("SECRET_KEY_BASE is too weak"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_never_starts_a_fresh_shop_on_a_missing_or_empty_database() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let missing = dir.path().join("gone.db");
    let url = format!("sqlite://{}", missing.display());
    let (ok, output) = refused(prod_command(&url, dir.path())).await;
    assert!(!ok, "{output}");
    assert!(output.contains("does not exist"), "{output}");
    assert!(!missing.exists(), "no empty database was created");

    let empty = TestDb::new(Backend::Sqlite).await;
    let (ok, output) = refused(prod_command(&empty.url, dir.path())).await;
    assert!(!ok, "{output}");
    assert!(output.contains("holds no product"), "{output}");
    assert_eq!(empty.db.count_products().await.ok(), Some(0), "not seeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_serves_health_and_metrics_on_their_own_address_only() {
    let t = TestDb::new(Backend::Sqlite).await;
    insert_fixture(&t.db, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = StoreProcess::spawn(prod_command(&t.url, dir.path())).await;
    let mut ops = None;
    assert!(
        eventually(EVENT_TIMEOUT, || {
            ops = store.log().lines().find_map(|line| {
                line.strip_prefix("health and metrics on http://")
                    .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
            });
            std::future::ready(ops.is_some())
        })
        .await,
        "{}",
        store.log()
    );
    let ops = ops.expect("the operations address");
    assert!(ops.ip().is_loopback());
    for path in ["/health", "/metrics"] {
        let public = try_get(store.addr, path).await.expect("an answer");
        assert_eq!(public.status, 404, "{path} is not public");
        let private = try_get(ops, path).await.expect("an answer");
        assert_eq!(private.status, 200, "{path} on the operations address");
    }
    let mut browser = Browser::new(store.addr);
    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    let cookie = page.header("set-cookie").unwrap_or_default();
    assert!(
        cookie.contains("Secure"),
        "production cookies are Secure: {cookie}"
    );
}

/// PostgreSQL turned read-only, with the node's connections re-opened meanwhile (they are
/// read-only sessions from then on): `/health` says degraded; once the database is writable
/// again the node writes again without a restart, on every connection of its pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_writes_degrades_health_and_the_pool_recovers() {
    let t = TestDb::new(Backend::Postgres).await;
    insert_fixture(&t.db, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", &t.url)
        .env("SECRET_KEY_BASE", SECRET)
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false");
    let store = StoreProcess::spawn(command).await;
    let health = try_get(store.addr, "/health").await.expect("health");
    assert_eq!(health.status, 200, "{}", health.body);

    let name = t.pg_name.clone().expect("a PostgreSQL database");
    let admin_url =
        std::env::var("S23_TEST_PG_URL").unwrap_or_else(|_| common::PG_ADMIN_URL.to_owned());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("admin connection");
    let set_read_only = |on: bool| {
        format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = {}",
            if on { "on" } else { "off" }
        )
    };
    let kick = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    sqlx::query(&set_read_only(true))
        .execute(&mut admin)
        .await
        .expect("read-only");
    let refuses_writes = || async {
        try_get(store.addr, "/health")
            .await
            .is_some_and(|h| h.status == 503 && h.body.contains("read-only"))
    };
    sqlx::query(&kick).execute(&mut admin).await.expect("kick");
    let degraded = eventually(EVENT_TIMEOUT, refuses_writes).await;
    assert!(degraded, "{:?}", try_get(store.addr, "/health").await);
    // A backend still starting when the first kick ran can escape it and keep a writable
    // session, which would let the node look recovered without replacing anything. Now that
    // the setting is long committed, a second kick leaves the pool nothing but read-only
    // sessions, several of them (concurrent probes): each must be replaced to recover.
    sqlx::query(&kick).execute(&mut admin).await.expect("kick");
    let all_refuse = eventually(EVENT_TIMEOUT, || async {
        let probes = futures::future::join_all((0..PROBES).map(|_| refuses_writes())).await;
        probes.into_iter().all(|refused| refused)
    })
    .await;
    assert!(all_refuse, "{:?}", try_get(store.addr, "/health").await);

    sqlx::query(&set_read_only(false))
        .execute(&mut admin)
        .await
        .expect("writable");
    // Recovered means every connection handed out accepts writes: several rounds of
    // concurrent probes all healthy, not one lucky answer.
    let healthy = || async {
        let probes =
            futures::future::join_all((0..PROBES).map(|_| try_get(store.addr, "/health"))).await;
        probes
            .into_iter()
            .all(|h| h.is_some_and(|h| h.status == 200))
    };
    let recovered = eventually(EVENT_TIMEOUT, || async {
        for _ in 0..3 {
            if !healthy().await {
                return false;
            }
        }
        true
    })
    .await;
    assert!(
        recovered,
        "{:?}\n{}",
        try_get(store.addr, "/health").await,
        store.log()
    );
    let _ = admin.close().await;
}

/// The SQLite file is deleted while the node runs: `/health` is degraded and a checkout is
/// refused instead of "completing" into a file nobody will read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_sqlite_file_is_noticed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("store.db");
    let url = format!("sqlite://{}", file.display());
    let db = sneakers23::db::Db::connect(&url).await.expect("database");
    db.migrate().await.expect("migrate");
    let f = insert_fixture(&db, true).await;
    db.close().await;
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", &url)
        .env("SECRET_KEY_BASE", SECRET)
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false");
    let store = StoreProcess::spawn(command).await;
    let mut browser = Browser::new(store.addr);
    let cart = {
        use sneakers23::cart::CartSigner;
        sneakers23::tokens::CartTokens::new(SECRET)
            .expect("signer")
            .sign(&[f.i3])
    };
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    let csrf = common::web::hidden_input(&page.body, "_csrf_token");
    let key = common::web::hidden_input(&page.body, "order_key");

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    let health = try_get(store.addr, "/health").await.expect("health");
    assert_eq!(health.status, 503, "{}", health.body);
    assert!(health.body.contains("is gone"), "{}", health.body);
    let posted = browser.purchase(&cart, &csrf, &key).await;
    let location = posted.header("location").unwrap_or_default().to_owned();
    assert!(location.starts_with("/checkout?"), "{location}");
    let page = browser.get(&location).await;
    assert!(
        page.body.contains("Your purchase could not be completed"),
        "{}",
        page.body
    );
    assert!(!file.exists(), "no new empty database was created");
}
