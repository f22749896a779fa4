//! The cart channel bounds what a client can make the node track, against the real binary:
//! join params over the limits are refused with a reason (nothing tracked), and one socket
//! can add at most `MAX_CHANNELS` tabs to the dashboard.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::process::{BIN, StoreProcess};
use common::web::{PhxSocket, cart_id, get_from};
use common::{Backend, EVENT_TIMEOUT, TestDb, eventually, insert_fixture};
use serde_json::{Value, json};
use sneakers23::cart_meta::{MAX_PAGE_LEN, MAX_SERIALIZED_LEN};
use tokio::process::Command;

const PER_SOCKET: usize = 4;

async fn store() -> (StoreProcess, TestDb, tempfile::TempDir) {
    let t = TestDb::new(Backend::Sqlite).await;
    insert_fixture(&t.db, true).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env("PORT", "0")
        .env("BIND", "127.0.0.1")
        .env("DATABASE_URL", &t.url)
        .env(
            "SECRET_KEY_BASE",
            "cart limits test secret key base, long enough",
        )
        .env("SECRET_KEY_FILE", dir.path().join("secret"))
        .env("SEED_IF_EMPTY", "false")
        .env("MAX_CHANNELS", PER_SOCKET.to_string())
        .env("RUST_LOG", "info");
    (StoreProcess::spawn(command).await, t, dir)
}

/// The dashboard's tab count.
async fn tabs(store: &StoreProcess) -> Option<u64> {
    let auth = format!("Basic {}", STANDARD.encode("admin:password"));
    let json = get_from(
        std::net::IpAddr::from([127, 0, 0, 1]),
        store.addr,
        "/admin/aggregate.json",
        &[("Authorization", &auth)],
    )
    .await;
    let value: Value = serde_json::from_str(&json.body).ok()?;
    value["tabs"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_join_params_are_refused_and_nothing_is_tracked() {
    let (store, _t, _dir) = store().await;
    let mut socket = PhxSocket::connect(store.addr).await;
    for (params, reason) in [
        (json!({"page": "/".repeat(10 * 1024)}), "page too long"),
        (
            json!({"page": "/", "serialized": "a".repeat(MAX_SERIALIZED_LEN + 1)}),
            "serialized cart too long",
        ),
        (json!({"page": ["/"]}), "must be strings"),
        (json!("a string"), "must be a JSON object"),
    ] {
        let reply = socket.join(&format!("cart:{}", cart_id(1)), params).await;
        assert_eq!(reply["status"], "error", "{reply}");
        let got = reply["response"]["reason"].as_str().unwrap_or_default();
        assert!(got.contains(reason), "{got}");
    }
    let longest = "/".repeat(MAX_PAGE_LEN);
    let reply = socket
        .join(&format!("cart:{}", cart_id(2)), json!({ "page": longest }))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    assert!(
        eventually(EVENT_TIMEOUT, || async { tabs(&store).await == Some(1) }).await,
        "only the valid join is tracked: {:?}",
        tabs(&store).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_socket_adds_at_most_its_channel_cap_to_the_dashboard() {
    let (store, _t, _dir) = store().await;
    let mut socket = PhxSocket::connect(store.addr).await;
    let mut joined = 0;
    for n in 0..(PER_SOCKET as u8 + 6) {
        let reply = socket
            .join(&format!("cart:{}", cart_id(n)), json!({"page": "/"}))
            .await;
        if reply["status"] == "ok" {
            joined += 1;
        } else {
            assert_eq!(reply["response"]["reason"], "too many channels joined");
        }
    }
    assert_eq!(joined, PER_SOCKET);
    assert!(
        eventually(EVENT_TIMEOUT, || async {
            tabs(&store).await == Some(PER_SOCKET as u64)
        })
        .await,
        "{:?}",
        tabs(&store).await
    );
}
