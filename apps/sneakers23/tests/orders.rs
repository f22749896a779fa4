//! Purchases are orders, against the real store binary: a replayed checkout form buys once
//! and answers with the same order; the completion page names the order and thanks nobody
//! without one; a COMMIT whose answer is lost is looked up before the shopper is answered; a
//! black-holed database fails a checkout cleanly within a bounded time, and the node serves
//! purchases again once the database answers, without a restart.

mod common;

use std::time::{Duration, Instant};

use common::process::{BIN, StoreProcess};
use common::web::{Browser, Response, hidden_input};
use common::{Backend, Fault, FaultProxy, TestDb, insert_fixture, pg_server_addr};
use sneakers23::cart::CartSigner;
use sneakers23::tokens::CartTokens;
use tokio::process::Command;

const SECRET: &str = "orders test secret key base, long enough for every signer";

/// The store binary over `database_url` with `env` added.
async fn store(database_url: &str, env: &[(&str, &str)]) -> (StoreProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", database_url)
        .env("SECRET_KEY_BASE", SECRET)
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false")
        .env("POOL_SIZE", "4")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    (StoreProcess::spawn(command).await, dir)
}

/// Opens the checkout page of `ids`: (browser with its session, csrf token, cart, order key).
async fn checkout_form(store: &StoreProcess, ids: &[i64]) -> (Browser, String, String, String) {
    let cart = CartTokens::new(SECRET).expect("signer").sign(ids);
    let mut browser = Browser::new(store.addr);
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    (browser, csrf, cart, key)
}

async fn post(browser: &mut Browser, csrf: &str, cart: &str, key: &str) -> Response {
    browser.purchase(cart, csrf, key).await
}

async fn count(t: &TestDb, item: i64) -> i32 {
    t.db.get_availability(item)
        .await
        .expect("availability")
        .map_or(0, |a| a.available_count)
}

async fn a_replayed_checkout_buys_once_and_names_its_order(backend: Backend) {
    let t = TestDb::new(backend).await;
    let f = insert_fixture(&t.db, true).await;
    let (store, _dir) = store(&t.url, &[]).await;
    let (mut browser, csrf, cart, key) = checkout_form(&store, &[f.i2, f.i3]).await;
    // The same form posted 20 times: 10 at once, then 10 one after the other.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let mut replay = Browser::new(store.addr);
        replay.cookie = browser.cookie.clone();
        let (csrf, cart, key) = (csrf.clone(), cart.clone(), key.clone());
        tasks.spawn(async move { post(&mut replay, &csrf, &cart, &key).await });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.expect("a replay task"));
    }
    for _ in 0..10 {
        answers.push(post(&mut browser, &csrf, &cart, &key).await);
    }
    let expected = format!("/checkout/complete?order={key}");
    for answer in &answers {
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert_eq!(answer.header("location"), Some(expected.as_str()));
    }
    assert_eq!(count(&t, f.i2).await, 1, "one unit of i2 sold, not 20");
    assert_eq!(count(&t, f.i3).await, 2, "one unit of i3 sold, not 20");
    let order =
        t.db.find_order(&key)
            .await
            .expect("lookup")
            .expect("the order row");
    assert_eq!(order.item_ids, vec![f.i2, f.i3]);
    let done = browser.get(&expected).await;
    assert_eq!(done.status, 200);
    assert!(
        done.body
            .contains(&format!("data-order-id=\"{}\"", order.id)),
        "{}",
        done.body
    );
    assert!(done.body.contains("Thanks for your order"));
}

backend_tests!(a_replayed_checkout_buys_once_and_names_its_order);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_page_thanks_nobody_without_a_known_order() {
    let t = TestDb::new(Backend::Sqlite).await;
    insert_fixture(&t.db, true).await;
    let (store, _dir) = store(&t.url, &[]).await;
    let mut browser = Browser::new(store.addr);
    for path in [
        "/checkout/complete",
        "/checkout/complete?order=AAAAAAAAAAAAAAAAAAAAAA",
        "/checkout/complete?order=%27%3B--",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("Thanks"), "{path}: {}", page.body);
        assert!(!page.body.contains("Order Complete"), "{path}");
        assert!(page.body.contains("No such order"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_an_order_key_buys_nothing() {
    let t = TestDb::new(Backend::Sqlite).await;
    let f = insert_fixture(&t.db, true).await;
    let (store, _dir) = store(&t.url, &[]).await;
    let (mut browser, csrf, cart, _key) = checkout_form(&store, &[f.i3]).await;
    for key in ["", "short", "not a key with spaces!!"] {
        let posted = post(&mut browser, &csrf, &cart, key).await;
        assert_eq!(posted.status, 303);
        let location = posted.header("location").unwrap_or_default().to_owned();
        assert!(
            location.starts_with("/checkout?serialized_cart="),
            "{location}"
        );
        let page = browser.get(&location).await;
        assert!(
            page.body.contains("purchase form has expired"),
            "{}",
            page.body
        );
    }
    assert_eq!(count(&t, f.i3).await, 3, "nothing sold");
}

/// The COMMIT reaches PostgreSQL, which commits, but its answer is lost and the connection
/// cut: the node looks the order up and reports the purchase complete (it was), instead of
/// telling the shopper it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_answer_is_lost_is_looked_up_before_answering() {
    let t = TestDb::new(Backend::Postgres).await;
    let f = insert_fixture(&t.db, true).await;
    let proxy = FaultProxy::start(pg_server_addr().await).await;
    let (store, _dir) = store(&t.pg_url_via_port(proxy.port()), &[]).await;
    let (mut browser, csrf, cart, key) = checkout_form(&store, &[f.i3]).await;
    proxy.set(Fault::CutAfterCommit);
    let posted = post(&mut browser, &csrf, &cart, &key).await;
    assert_eq!(
        proxy.fault(),
        Fault::None,
        "the COMMIT was cut:\n{}",
        store.log()
    );
    assert_eq!(posted.status, 303);
    let expected = format!("/checkout/complete?order={key}");
    assert_eq!(
        posted.header("location"),
        Some(expected.as_str()),
        "{}",
        store.log()
    );
    assert_eq!(count(&t, f.i3).await, 2, "sold once");
    let done = browser.get(&expected).await;
    assert_eq!(done.status, 200);
    assert!(done.body.contains("Thanks for your order"));
    assert!(
        store.log().contains("the lost commit had succeeded"),
        "{}",
        store.log()
    );
}

/// The COMMIT's answer is lost and then the database stops answering: the node cannot tell
/// whether the order was written, so it sends the shopper to the order's completion page, which
/// says so (503, "reload") instead of thanking or failing; once the database answers, the same
/// page names the order, which was written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_order_is_confirmed_by_its_page_once_the_database_answers() {
    let t = TestDb::new(Backend::Postgres).await;
    let f = insert_fixture(&t.db, true).await;
    let proxy = FaultProxy::start(pg_server_addr().await).await;
    let (store, _dir) = store(
        &t.pg_url_via_port(proxy.port()),
        &[
            ("DB_TRANSACTION_TIMEOUT_MS", "1000"),
            ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let (mut browser, csrf, cart, key) = checkout_form(&store, &[f.i3]).await;
    proxy.set(Fault::CutAfterCommitThenFreeze);
    let posted = post(&mut browser, &csrf, &cart, &key).await;
    assert_eq!(proxy.fault(), Fault::Frozen, "the COMMIT was cut");
    let expected = format!("/checkout/complete?order={key}");
    assert_eq!(
        posted.header("location"),
        Some(expected.as_str()),
        "{}",
        store.log()
    );
    let pending = browser.get(&expected).await;
    assert_eq!(pending.status, 503, "{}", pending.body);
    assert!(
        pending.body.contains("could not confirm your order yet"),
        "{}",
        pending.body
    );
    assert!(!pending.body.contains("Thanks for your order"));

    proxy.set(Fault::None);
    let confirmed = common::eventually(Duration::from_secs(20), || async {
        let mut browser = Browser::new(store.addr);
        browser
            .get(&expected)
            .await
            .body
            .contains("Thanks for your order")
    })
    .await;
    assert!(confirmed, "{}", store.log());
    assert_eq!(count(&t, f.i3).await, 2, "sold once");
    // Posting the form again changes nothing.
    let again = post(&mut browser, &csrf, &cart, &key).await;
    assert_eq!(again.header("location"), Some(expected.as_str()));
    assert_eq!(count(&t, f.i3).await, 2, "still sold once");
}

/// PostgreSQL stops answering (packets go nowhere): a checkout gets a clean answer within the
/// bound, not a hang; once the database answers again, checkouts work without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_database_fails_a_checkout_within_a_bounded_time() {
    let t = TestDb::new(Backend::Postgres).await;
    let f = insert_fixture(&t.db, true).await;
    let proxy = FaultProxy::start(pg_server_addr().await).await;
    let (store, _dir) = store(
        &t.pg_url_via_port(proxy.port()),
        &[
            ("DB_TRANSACTION_TIMEOUT_MS", "1000"),
            ("DB_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let (mut browser, csrf, cart, key) = checkout_form(&store, &[f.i3]).await;
    proxy.set(Fault::Frozen);
    let started = Instant::now();
    let posted = post(&mut browser, &csrf, &cart, &key).await;
    let took = started.elapsed();
    // Lookup of a replay (1 s), the purchase's steps (1 s each) and the lost commit's lookup
    // (1 s) at most, with room for a slow machine.
    assert!(took < Duration::from_secs(8), "answered after {took:?}");
    assert_eq!(posted.status, 303);
    let location = posted.header("location").unwrap_or_default().to_owned();
    let page = browser.get(&location).await;
    assert!(
        !page.body.contains("Thanks for your order"),
        "{}",
        page.body
    );
    let health = browser.get("/health").await;
    assert_eq!(health.status, 503, "{}", health.body);

    proxy.set(Fault::None);
    let recovered = common::eventually(Duration::from_secs(20), || async {
        let (mut browser, csrf, cart, key) = checkout_form(&store, &[f.i2]).await;
        let posted = post(&mut browser, &csrf, &cart, &key).await;
        posted.header("location") == Some(format!("/checkout/complete?order={key}").as_str())
    })
    .await;
    assert!(recovered, "checkouts work again:\n{}", store.log());
    assert_eq!(count(&t, f.i3).await, 3, "the frozen purchase sold nothing");
    assert_eq!(count(&t, f.i2).await, 1);
}
