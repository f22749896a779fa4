//! The admin login and the browser-facing headers, against the real binary: failed logins are
//! counted, logged (user and address, never the password) and throttled per address; the admin
//! page has a Content-Security-Policy whose nonce admits its one inline script; static files
//! are `nosniff`; a huge `serialized_cart` is not echoed into the checkout redirect.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::process::{BIN, StoreProcess};
use common::web::{Browser, get_from, hidden_input};
use common::{Backend, TestDb, eventually, insert_fixture};
use tokio::process::Command;

const SECRET: &str = "access test secret key base, long enough for every signer";
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

async fn store() -> (StoreProcess, common::Fixture, TestDb, tempfile::TempDir) {
    let t = TestDb::new(Backend::Sqlite).await;
    let f = insert_fixture(&t.db, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", &t.url)
        .env("SECRET_KEY_BASE", SECRET)
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false")
        .env("ADMIN_USER", "admin")
        .env("ADMIN_PASSWORD", "the right one")
        .env("RUST_LOG", "info");
    (StoreProcess::spawn(command).await, f, t, dir)
}

fn basic(user_password: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_password))
}

fn counter(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_logins_are_counted_logged_and_throttled_per_address() {
    let (store, _f, _t, _dir) = store().await;
    let wrong = basic("admin:guess-number-one");
    let right = basic("admin:the right one");
    let burst = sneakers23::admin::auth::LOGIN_BURST;
    for _ in 0..burst {
        let page = get_from(LOCAL, store.addr, "/admin", &[("Authorization", &wrong)]).await;
        assert_eq!(page.status, 401);
    }
    // The allowance is used up: even the right password waits now, from this address.
    for auth in [&wrong, &right] {
        let page = get_from(LOCAL, store.addr, "/admin", &[("Authorization", auth)]).await;
        assert_eq!(page.status, 429, "{}", page.body);
        let retry: u64 = page
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((1..=6).contains(&retry), "{retry}");
    }
    let json = get_from(
        LOCAL,
        store.addr,
        "/admin/aggregate.json",
        &[("Authorization", &right)],
    )
    .await;
    assert_eq!(json.status, 429, "the JSON view is throttled too");
    // Another address is not.
    let page = get_from(OTHER, store.addr, "/admin", &[("Authorization", &right)]).await;
    assert_eq!(page.status, 200);
    // No credentials at all (the browser's first request) is not a failure.
    let page = get_from(OTHER, store.addr, "/admin", &[]).await;
    assert_eq!(page.status, 401);

    let metrics = get_from(LOCAL, store.addr, "/metrics", &[]).await;
    assert_eq!(
        counter(&metrics.body, "store_admin_login_failures_total"),
        Some(f64::from(burst)),
        "{}",
        metrics.body
    );
    assert_eq!(
        counter(&metrics.body, "store_admin_login_throttled_total"),
        Some(3.0)
    );
    let logged = eventually(common::EVENT_TIMEOUT, || {
        std::future::ready(store.log().contains("admin login failed"))
    })
    .await;
    assert!(logged, "{}", store.log());
    let log = store.log();
    let line = log
        .lines()
        .find(|l| l.contains("admin login failed"))
        .unwrap_or_default();
    assert!(line.contains("user=\"admin\""), "{line}");
    assert!(line.contains("address=127.0.0.1"), "{line}");
    assert!(
        !log.contains("guess-number-one"),
        "the password is never logged"
    );
    assert!(
        !log.contains("the right one"),
        "the password is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_has_a_csp_and_static_files_are_nosniff() {
    let (store, _f, _t, _dir) = store().await;
    let right = basic("admin:the right one");
    let page = get_from(LOCAL, store.addr, "/admin", &[("Authorization", &right)]).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce");
    assert!(
        page.body
            .contains(&format!("<script nonce=\"{nonce}\">window.adminToken")),
        "{}",
        page.body
    );
    let again = get_from(LOCAL, store.addr, "/admin", &[("Authorization", &right)]).await;
    assert!(
        !again.body.contains(&format!("nonce=\"{nonce}\"")),
        "a fresh nonce per page"
    );
    for path in [
        "/js/app.js",
        "/css/app.css",
        "/images/hopman.png",
        "/js/admin.js",
    ] {
        let asset = get_from(LOCAL, store.addr, path, &[]).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(
            asset.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_serialized_cart_is_not_echoed_into_the_redirect() {
    let (store, f, _t, _dir) = store().await;
    let cart = {
        use sneakers23::cart::CartSigner;
        sneakers23::tokens::CartTokens::new(SECRET)
            .expect("signer")
            .sign(&[f.i3])
    };
    let mut browser = Browser::new(store.addr);
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    let huge = "A".repeat(1024 * 1024);
    let posted = browser.purchase(&huge, &csrf, &key).await;
    assert_eq!(posted.status, 303);
    let location = posted.header("location").unwrap_or_default();
    assert!(location.len() < 5000, "{} bytes", location.len());
    assert_eq!(location, "/checkout");
}
