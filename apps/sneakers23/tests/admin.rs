//! The admin dashboard on a real node (spec §14; §20.2 items 9, 14, 15, 17): `/admin` and
//! `/admin/aggregate.json` behind Basic auth, the admin socket's token check, the raw CartTracker stream (`presence_state`,
//! then `presence_diff`s following every cart's join, update and leave), and the aggregate
//! stream (`aggregate`, then `aggregate_delta`s following carts, releases and sales).
//!
//! One file of more than 600 lines on purpose: the page, the socket and both streams share the
//! waiting helpers of this file, and each file under `tests/` is one more binary linking the
//! whole store.

mod common;

use std::time::Duration;

use channels::token::{Signer, Term, now_ms};
use common::Backend;
use common::admin::{
    DashboardMirror, PresenceMirror, admin_page, admin_socket, admin_socket_with, admin_token_of,
    aggregate_json, basic, get_authorized, refused_status,
};
use common::web::{PhxSocket, TestNode, cart_id};
use serde_json::{Value, json};
use sneakers23::admin::aggregate::Counts;
use sneakers23::admin::channel::MAX_RAW_PRESENCES;
use sneakers23::admin::{AGGREGATE, AGGREGATE_DELTA, DASHBOARD_TOPIC};
use sneakers23::sockets::CART_TRACKER_TOPIC;

const SQLITE: Backend = Backend::Sqlite;

/// How long to wait for the dashboard to show something.
const WAIT: Duration = Duration::from_secs(10);

/// `path` answers 401 with a Basic challenge, and nothing of `secret`, to a request without
/// the admin credentials, with wrong ones, or with another scheme.
async fn assert_needs_admin_credentials(t: &TestNode, path: &str, secret: &str) {
    let anonymous = get_authorized(t, path, None).await;
    assert_eq!(anonymous.status, 401, "{path}");
    let challenge = anonymous.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Basic "), "{path}: {challenge}");
    assert!(!anonymous.body.contains(secret), "{path}");
    for wrong in ["admin:wrong", "root:password", "admin", ""] {
        let response = get_authorized(t, path, Some(&basic(wrong))).await;
        assert_eq!(response.status, 401, "{path}: credentials {wrong:?}");
        assert!(response.header("www-authenticate").is_some(), "{path}");
        assert!(!response.body.contains(secret), "{path}");
    }
    let bearer = get_authorized(t, path, Some("Bearer x")).await;
    assert_eq!(bearer.status, 401, "{path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_requires_basic_credentials() {
    let t = TestNode::start(SQLITE, true).await;

    assert_needs_admin_credentials(&t, "/admin", "adminToken").await;

    let page = admin_page(&t, Some(&basic("admin:password"))).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("window.adminToken = \""));
    assert!(page.body.contains("Admin Dashboard"));
    assert!(
        page.body
            .contains(&format!("id=\"admin-item-cart-count-{}\"", t.fx.i1))
    );
    assert!(page.body.contains("/js/admin.js?v="));
    assert!(
        !page.body.contains("cart-container"),
        "no cart on the admin page"
    );
    assert!(
        page.header("cache-control")
            .is_some_and(|v| v.contains("no-store"))
    );
    // Each load signs its own token: it verifies as the admin's, and a load in a later
    // millisecond carries a different one. (A Phoenix.Token is `{data, signed_at_ms, max_age}`:
    // two loads within one millisecond may embed the same token, which grants nothing more.)
    let secret = t.secret_key_base.clone();
    let admin_salt = Signer::new(&secret, "admin socket").expect("signer");
    let first = admin_token_of(&page.body);
    assert_eq!(
        admin_salt
            .verify(Some(&first), None)
            .expect("the page's token verifies"),
        Term::from("admin")
    );
    let signed_by = now_ms();
    while now_ms() <= signed_by {
        tokio::task::yield_now().await;
    }
    let again = admin_page(&t, Some(&basic("admin:password"))).await;
    assert_ne!(admin_token_of(&again.body), first);

    let mut browser = t.browser();
    let script = browser.get("/js/admin.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script
            .header("content-type")
            .is_some_and(|v| v.contains("javascript"))
    );
    assert!(script.body.contains("admin:dashboard"));
    let css = browser.get("/css/admin.css").await;
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .is_some_and(|v| v.contains("text/css"))
    );
}

/// The head (lower case) of the response to `GET path` from a browser that accepts gzip.
async fn gzip_response_head(t: &TestNode, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(t.addr())
        .await
        .expect("connecting");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        t.addr()
    );
    stream.write_all(request.as_bytes()).await.expect("writing");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("a response in time")
        .expect("reading");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_links_its_assets_fingerprinted_cached_for_a_year_and_compressed() {
    let t = TestNode::start(SQLITE, true).await;
    let page = admin_page(&t, Some(&basic("admin:password"))).await;
    assert_eq!(page.status, 200);
    let linked = |prefix: &str| {
        page.body
            .split('"')
            .find(|part| part.starts_with(prefix))
            .unwrap_or_else(|| panic!("the page links {prefix}…: {}", page.body))
            .to_owned()
    };
    let mut browser = t.browser();
    let mut script = String::new();
    for prefix in ["/css/app.css?v=", "/css/admin.css?v=", "/js/admin.js?v="] {
        let url = linked(prefix);
        let response = browser.get(&url).await;
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
        let head = gzip_response_head(&t, &url).await;
        assert!(head.contains("content-encoding: gzip"), "{url}: {head}");
        if prefix.starts_with("/js/") {
            script = response.body;
        }
    }
    // The dashboard script imports the client by its fingerprinted URL, as the shop's does.
    let client = script
        .split('"')
        .find(|part| part.starts_with("/js/phoenix.mjs?v="))
        .expect("a fingerprinted import")
        .to_owned();
    assert_eq!(client, sneakers23::web::assets::url("/js/phoenix.mjs"));
    assert!(!script.contains("from \"/js/phoenix.mjs\""));
    let imported = browser.get(&client).await;
    assert_eq!(
        imported.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // A stale version is revalidated, not cached for a year; the page itself is never cached.
    let stale = browser.get("/js/admin.js?v=0").await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.header("cache-control"), Some("no-cache"));
    assert!(
        page.header("cache-control")
            .is_some_and(|v| v.contains("no-store"))
    );
    t.node.shutdown().await;
}

/// `GET /admin/aggregate.json` with the admin credentials, parsed.
async fn read_aggregate(t: &TestNode) -> Value {
    let response = aggregate_json(t, Some(&basic("admin:password"))).await;
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).expect("the aggregate is JSON")
}

/// Reads the aggregate until `condition` holds (it is published every 250 ms).
async fn aggregate_until(t: &TestNode, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let aggregate = read_aggregate(t).await;
        if condition(&aggregate) {
            return aggregate;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "aggregate.json never showed {what}: {aggregate}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregate_json_requires_credentials_and_follows_carts() {
    let t = TestNode::start(SQLITE, true).await;

    assert_needs_admin_credentials(&t, "/admin/aggregate.json", "shoppers").await;

    let response = aggregate_json(&t, Some(&basic("admin:password"))).await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    let i1 = t.fx.i1.to_string();
    let empty = aggregate_until(&t, "the catalog", |a| a["stock"].get(&i1).is_some()).await;
    assert_eq!((&empty["shoppers"], &empty["tabs"]), (&json!(0), &json!(0)));

    // A cart channel joins: the counts follow.
    let id = cart_id(9);
    let mut tab = t.socket().await;
    tab.join_ok(
        &format!("cart:{id}"),
        json!({"serialized": t.serialized(&[t.fx.i1]), "page": "/json"}),
    )
    .await;
    let one = aggregate_until(&t, "one shopper", |a| a["shoppers"] == 1).await;
    assert_eq!(one["tabs"], 1);
    assert_eq!(one["pages"], json!([["/json", 1]]));
    assert_eq!(one["carts"], json!({ &i1: 1 }));
    assert!(one["seq"].as_u64() > empty["seq"].as_u64());

    // It is the `aggregate` an admin joining the dashboard receives.
    let mut admin = admin_socket(&t).await;
    admin.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let pushed = admin.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    let read = read_aggregate(&t).await;
    for field in [
        "seq", "shoppers", "tabs", "pages", "carts", "stock", "released",
    ] {
        assert_eq!(read[field], pushed[field], "{field}");
    }

    // The cart leaves.
    drop(tab);
    aggregate_until(&t, "no shopper", |a| {
        a["shoppers"] == 0 && a["tabs"] == 0 && a["carts"] == json!({})
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_socket_accepts_only_a_valid_admin_token() {
    let t = TestNode::start(SQLITE, true).await;
    let secret = t.secret_key_base.clone();

    // The page's token, and any value signed with the admin salt.
    let mut from_page = admin_socket(&t).await;
    from_page.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    let admin_salt = Signer::new(&secret, "admin socket").expect("signer");
    let any_value = admin_salt.sign(&Term::from(42_i64)).expect("signing");
    assert!(admin_socket_with(&t, Some(&any_value)).await.is_ok());

    let wrong_salt = Signer::new(&secret, "user socket")
        .expect("signer")
        .sign_string("admin")
        .expect("signing");
    let other_secret = Signer::new("another secret key base, long enough", "admin socket")
        .expect("signer")
        .sign_string("admin")
        .expect("signing");
    let expired = admin_salt
        .sign_at(&Term::from(1_i64), now_ms() - 2 * 86_400_000)
        .expect("signing");
    let mut tampered = admin_token_of(&admin_page(&t, Some(&basic("admin:password"))).await.body);
    tampered.insert(10, 'x');
    for (case, token) in [
        ("missing", None),
        ("wrong salt", Some(wrong_salt.as_str())),
        ("other secret", Some(other_secret.as_str())),
        ("garbage", Some("garbage")),
        ("empty", Some("")),
        ("tampered", Some(tampered.as_str())),
        ("expired", Some(expired.as_str())),
    ] {
        let refused = admin_socket_with(&t, token).await;
        let status = refused.as_ref().err().and_then(refused_status);
        assert_eq!(status, Some(403), "{case} token must be refused with 403");
    }

    // A shopper's socket cannot join admin topics.
    let mut shopper = t.socket().await;
    let reply = shopper.join(CART_TRACKER_TOPIC, json!({})).await;
    assert_eq!(reply["status"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_join_pushes_presence_state_empty_then_populated() {
    let t = TestNode::start(SQLITE, true).await;
    let mut admin = admin_socket(&t).await;
    admin.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    assert_eq!(
        admin.expect(CART_TRACKER_TOPIC, "presence_state").await,
        json!({})
    );

    let id = cart_id(1);
    let mut shopper = t.socket().await;
    let serialized = t.serialized(&[t.fx.i1, t.fx.i2]);
    shopper
        .join_ok(
            &format!("cart:{id}"),
            json!({"serialized": serialized, "page": "page"}),
        )
        .await;
    let diff = admin.expect(CART_TRACKER_TOPIC, "presence_diff").await;
    assert_eq!(diff["leaves"], json!({}));
    assert_eq!(
        diff["joins"][&id]["metas"].as_array().map(Vec::len),
        Some(1)
    );

    let mut second = admin_socket(&t).await;
    second.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    let state = second.expect(CART_TRACKER_TOPIC, "presence_state").await;
    let keys: Vec<&String> = state
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, [&id]);
    let metas = state[&id]["metas"].as_array().cloned().unwrap_or_default();
    assert_eq!(metas.len(), 1);
    let meta = &metas[0];
    assert_eq!(
        meta["items"],
        json!([t.fx.i1, t.fx.i2]),
        "the restored cart, in its order"
    );
    assert_eq!(meta["page"], "page");
    assert!(
        meta["page_loaded_at"]
            .as_i64()
            .is_some_and(|ms| ms > 1_600_000_000_000)
    );
    assert!(meta["phx_ref"].as_str().is_some_and(|r| !r.is_empty()));

    // Shoppers never receive presence traffic.
    shopper
        .expect_none(CART_TRACKER_TOPIC, "presence_diff")
        .await;
}

/// Waits until the mirror of the raw stream satisfies `done`, applying every `presence_diff`.
async fn presence_until(
    admin: &mut PhxSocket,
    mirror: &mut PresenceMirror,
    what: &str,
    done: impl Fn(&PresenceMirror) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(mirror) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {what}; {mirror:?}"
        );
        let diff = admin.expect(CART_TRACKER_TOPIC, "presence_diff").await;
        mirror.sync_diff(&diff);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_presence_follows_join_update_and_leave() {
    let t = TestNode::start(SQLITE, true).await;
    let mut admin = admin_socket(&t).await;
    admin.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    let mut mirror = PresenceMirror::default();
    mirror.sync_state(&admin.expect(CART_TRACKER_TOPIC, "presence_state").await);

    // Join without params: items [], page null.
    let id = cart_id(2);
    let topic = format!("cart:{id}");
    let mut tab1 = t.socket().await;
    tab1.join_ok(&topic, json!({})).await;
    presence_until(&mut admin, &mut mirror, "first tab tracked", |m| {
        m.metas(&id).len() == 1
    })
    .await;
    let first = mirror.metas(&id)[0].clone();
    assert_eq!(first["items"], json!([]));
    assert_eq!(first["page"], Value::Null);

    // add_item: an update, the new meta refers to the old one.
    let reply = tab1
        .push(&topic, "add_item", json!({"item_id": t.fx.i2.to_string()}))
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    let diff = admin.expect(CART_TRACKER_TOPIC, "presence_diff").await;
    mirror.sync_diff(&diff);
    let joined = &diff["joins"][&id]["metas"][0];
    assert_eq!(joined["items"], json!([t.fx.i2]));
    assert_eq!(joined["phx_ref_prev"], first["phx_ref"]);
    assert_eq!(
        joined["page_loaded_at"], first["page_loaded_at"],
        "other fields kept"
    );
    assert_eq!(diff["leaves"][&id]["metas"][0]["phx_ref"], first["phx_ref"]);

    // A second tab on another page, then a removal in the first: both metas follow.
    let mut tab2 = t.socket().await;
    tab2.join_ok(
        &topic,
        json!({"serialized": t.serialized(&[t.fx.i2]), "page": "/checkout"}),
    )
    .await;
    presence_until(&mut admin, &mut mirror, "second tab tracked", |m| {
        m.metas(&id).len() == 2
    })
    .await;
    let reply = tab1
        .push(
            &topic,
            "remove_item",
            json!({"item_id": t.fx.i2.to_string()}),
        )
        .await;
    assert_eq!(reply["status"], "ok", "{reply}");
    presence_until(&mut admin, &mut mirror, "both tabs emptied", |m| {
        let metas = m.metas(&id);
        metas.len() == 2 && metas.iter().all(|meta| meta["items"] == json!([]))
    })
    .await;
    let pages: Vec<Value> = mirror
        .metas(&id)
        .iter()
        .map(|m| m["page"].clone())
        .collect();
    assert!(pages.contains(&json!("/checkout")) && pages.contains(&Value::Null));

    // Leaving the channel, then closing the other tab's connection: the key disappears.
    tab1.push(&topic, "phx_leave", json!({})).await;
    presence_until(&mut admin, &mut mirror, "first tab left", |m| {
        m.metas(&id).len() == 1
    })
    .await;
    drop(tab2);
    presence_until(&mut admin, &mut mirror, "second tab closed", |m| {
        m.state.is_empty()
    })
    .await;
}

/// Waits until the dashboard mirror satisfies `done`, applying every `aggregate_delta`; returns
/// the sizes of the deltas received.
async fn dashboard_until(
    admin: &mut PhxSocket,
    mirror: &mut DashboardMirror,
    what: &str,
    done: impl Fn(&DashboardMirror) -> bool,
) -> Vec<usize> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut sizes = Vec::new();
    while !done(mirror) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: {what}; {:?}",
            mirror.state
        );
        let delta = admin.expect(DASHBOARD_TOPIC, AGGREGATE_DELTA).await;
        sizes.push(delta.to_string().len());
        mirror.apply(&delta);
    }
    sizes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_gets_a_snapshot_then_small_deltas() {
    let t = TestNode::start(SQLITE, false).await;
    let (p1, i1, i3) = (
        t.fx.p1.to_string(),
        t.fx.i1.to_string(),
        t.fx.i3.to_string(),
    );
    let mut admin = admin_socket(&t).await;
    admin.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let snapshot = admin.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    assert_eq!(snapshot["shoppers"], 0);
    assert_eq!(snapshot["pages"], json!([]));
    assert_eq!(snapshot["carts"], json!({}));
    assert!(snapshot["history"]["shoppers"].is_array());
    let mut mirror = DashboardMirror::from_snapshot(snapshot);
    dashboard_until(&mut admin, &mut mirror, "catalog", |m| {
        m.state["released"][&p1] == json!(false)
            && m.state["stock"][&i1] == json!({"available": 1, "level": "low"})
    })
    .await;

    // A release reaches the dashboard live.
    t.node
        .state()
        .inventory
        .release(t.fx.p1)
        .await
        .expect("release");
    dashboard_until(&mut admin, &mut mirror, "release", |m| {
        m.state["released"][&p1] == json!(true)
    })
    .await;

    // One shopper, two tabs on two pages; another shopper with no page.
    let (a, b) = (cart_id(3), cart_id(4));
    let mut tab1 = t.socket().await;
    tab1.join_ok(
        &format!("cart:{a}"),
        json!({"serialized": t.serialized(&[t.fx.i1]), "page": "/"}),
    )
    .await;
    let mut tab2 = t.socket().await;
    tab2.join_ok(
        &format!("cart:{a}"),
        json!({"serialized": t.serialized(&[t.fx.i1]), "page": "/checkout"}),
    )
    .await;
    let mut other = t.socket().await;
    other
        .join_ok(
            &format!("cart:{b}"),
            json!({"serialized": t.serialized(&[t.fx.i3])}),
        )
        .await;
    let mut sizes = dashboard_until(&mut admin, &mut mirror, "three tabs", |m| {
        m.state["shoppers"] == 2
            && m.state["tabs"] == 3
            && m.pages()
                == json!({"/": 1, "/checkout": 1, "null": 1})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            && m.state["carts"] == json!({ &i1: 1, &i3: 1 })
    })
    .await;

    // A sale changes the stock line.
    t.node
        .state()
        .inventory
        .sell_item(t.fx.i1)
        .await
        .expect("sale");
    sizes.extend(
        dashboard_until(&mut admin, &mut mirror, "sold out", |m| {
            m.state["stock"][&i1] == json!({"available": 0, "level": "out"})
        })
        .await,
    );

    // Everyone leaves.
    drop((tab1, tab2, other));
    sizes.extend(
        dashboard_until(&mut admin, &mut mirror, "empty", |m| {
            m.state["shoppers"] == 0
                && m.state["pages"] == json!([])
                && m.state["carts"] == json!({})
        })
        .await,
    );
    assert!(
        sizes.iter().all(|&n| n < 1024),
        "deltas stay small: {sizes:?}"
    );

    // A new admin's snapshot equals what the first one built from deltas.
    let mut late = admin_socket(&t).await;
    late.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let fresh = late.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    for field in ["shoppers", "tabs", "pages", "carts", "stock", "released"] {
        assert_eq!(fresh[field], mirror.state[field], "{field}");
    }
    // ... and so does the reply to `snapshot`.
    let reply = late.push(DASHBOARD_TOPIC, "snapshot", json!({})).await;
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["response"]["carts"], fresh["carts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_joining_right_after_a_release_gets_it_in_the_first_aggregate() {
    let t = TestNode::start(SQLITE, false).await;
    let p1 = t.fx.p1.to_string();
    let mut watching = admin_socket(&t).await;
    watching.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let first = watching.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    assert_eq!(first["released"][&p1], json!(false));
    let mut mirror = DashboardMirror::from_snapshot(first);

    t.node
        .state()
        .inventory
        .release(t.fx.p1)
        .await
        .expect("release");
    // No wait for the periodic publication: the joining admin and the JSON see the release.
    let mut joining = admin_socket(&t).await;
    joining.join_ok(DASHBOARD_TOPIC, json!({})).await;
    let fresh = joining.expect(DASHBOARD_TOPIC, AGGREGATE).await;
    assert_eq!(fresh["released"][&p1], json!(true), "{fresh}");
    assert_eq!(read_aggregate(&t).await["released"][&p1], json!(true));

    // The admin already watching gets the same state as a gap-free delta.
    dashboard_until(&mut watching, &mut mirror, "release", |m| {
        m.state["released"][&p1] == json!(true)
    })
    .await;
    assert!(mirror.state["seq"].as_u64() >= fresh["seq"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_counts_equal_a_recount_of_the_tracker_list() {
    let t = TestNode::start(SQLITE, true).await;
    let presence = t.node.state().cart_tracker.clone();
    let tracker = presence.tracker().clone();
    // 300 carts, some with two tabs, updated and partly closed, straight through the tracker.
    let mut tabs = Vec::new();
    for n in 0..300_u32 {
        let key = format!("{n:0>64}");
        let page = ["/", "/checkout", "/bench/1"]
            .get((n % 4) as usize)
            .copied();
        let items = [t.fx.i1, t.fx.i2, t.fx.i3][..(n % 3) as usize].to_vec();
        let meta = json!({"page_loaded_at": 1, "page": page, "items": items});
        tabs.push((
            key.clone(),
            presence
                .track(CART_TRACKER_TOPIC, &key, meta.clone())
                .expect("track"),
        ));
        if n % 5 == 0 {
            tabs.push((
                key.clone(),
                presence
                    .track(CART_TRACKER_TOPIC, &key, meta)
                    .expect("track"),
            ));
        }
    }
    for (n, (_key, tracked)) in tabs.iter().enumerate().filter(|(n, _)| n % 7 == 0) {
        let meta = json!({"page_loaded_at": 1, "page": "/", "items": [t.fx.i3, n as i64]});
        presence.update(tracked, meta).expect("update");
    }
    tabs.retain(|(key, _)| !key.ends_with('3'));

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = tracker.list(CART_TRACKER_TOPIC);
        let expected = Counts::recompute(&list);
        let snapshot = t.node.state().dashboard.snapshot();
        let pages: Vec<(Option<String>, u64)> = expected
            .pages
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        let shown: Vec<(Option<String>, u64)> = snapshot
            .pages
            .iter()
            .map(|(p, n)| (p.as_deref().map(str::to_owned), *n))
            .collect();
        // Items are counted from each cart's first tab; tabs of one cart hold the same items
        // here only for carts that were not updated, so compare the order-independent counts.
        if snapshot.shoppers == expected.shoppers
            && snapshot.tabs == expected.tabs
            && shown == pages
            && snapshot.shoppers
                == tabs
                    .iter()
                    .map(|(k, _)| k)
                    .collect::<std::collections::HashSet<_>>()
                    .len() as u64
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dashboard {:?} never matched the list's counts {expected:?}",
            (snapshot.shoppers, snapshot.tabs, shown)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The raw presence stream is one `presence_state` frame, so it is capped: with
/// `MAX_RAW_PRESENCES` tabs tracked an admin still gets the whole list; one tab more and the
/// join is refused with a reason naming the aggregate view (which still works); back at the
/// cap, the join works again. The tabs are tracked on the node's CartTracker directly: the cap
/// counts tracked tabs, however they joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raw_presence_stream_refuses_admins_beyond_its_cap() {
    let t = TestNode::start(SQLITE, true).await;
    let cart_tracker = t.node.state().cart_tracker.clone();
    let track = |key: String| {
        cart_tracker
            .track(CART_TRACKER_TOPIC, &key, json!({"page": "/", "items": []}))
            .expect("tracking a tab")
    };
    let mut tabs: Vec<_> = (0..MAX_RAW_PRESENCES)
        .map(|n| track(format!("cart-{n}")))
        .collect();
    let tracked = || cart_tracker.tracker().count(CART_TRACKER_TOPIC);
    assert_eq!(tracked(), MAX_RAW_PRESENCES);

    let mut admin = admin_socket(&t).await;
    admin.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    let state = admin.expect(CART_TRACKER_TOPIC, "presence_state").await;
    assert_eq!(state.as_object().map(|o| o.len()), Some(MAX_RAW_PRESENCES));

    tabs.push(track("one-too-many".to_owned()));
    assert_eq!(tracked(), MAX_RAW_PRESENCES + 1);
    let mut late = admin_socket(&t).await;
    let refused = late.join(CART_TRACKER_TOPIC, json!({})).await;
    assert_eq!(refused["status"], "error", "{refused}");
    let reason = refused["response"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with(&format!("{} tabs are tracked", MAX_RAW_PRESENCES + 1))
            && reason.contains(DASHBOARD_TOPIC),
        "{reason}"
    );
    late.expect_none(CART_TRACKER_TOPIC, "presence_state").await;
    late.join_ok(DASHBOARD_TOPIC, json!({})).await;
    late.expect(DASHBOARD_TOPIC, AGGREGATE).await;

    drop(tabs.pop());
    assert!(
        common::eventually(WAIT, || std::future::ready(tracked() == MAX_RAW_PRESENCES)).await,
        "{} tracked",
        tracked()
    );
    late.join_ok(CART_TRACKER_TOPIC, json!({})).await;
    let state = late.expect(CART_TRACKER_TOPIC, "presence_state").await;
    assert_eq!(state.as_object().map(|o| o.len()), Some(MAX_RAW_PRESENCES));
}
