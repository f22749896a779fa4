//! HTTP surface of a real node (spec §8, §13, §18.1, §20.2 items 16 and 18): the product page,
//! the session's cart id, the checkout flow with its flash messages and the database decrement,
//! assets, health, metrics and the control API.
//!
//! One file of more than 600 lines on purpose: these are the areas of one HTTP surface, each test
//! a short scenario on its own node, and each file under `tests/` is one more binary linking the
//! whole store.

mod common;

use std::time::Duration;

use common::web::{TestNode, cart_id_of, hidden_input, raw_request};
use common::{Backend, TestDb, insert_fixture, pg_server_addr};
use sneakers23::node::{self, NodeConfig};
use test_support::TcpProxy;

const SQLITE: Backend = Backend::Sqlite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_page_is_never_stored_and_lists_products_in_order() {
    let t = TestNode::start(SQLITE, false).await;
    let mut browser = t.browser();
    let page = browser.get("/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("cache-control"),
        Some("no-store, must-revalidate")
    );
    assert_eq!(page.header("x-frame-options"), Some("SAMEORIGIN"));
    assert!(page.body.contains("<title>Sneakers23</title>"));
    let p2 = page.body.find(&format!("data-product-id=\"{}\"", t.fx.p2));
    let p1 = page.body.find(&format!("data-product-id=\"{}\"", t.fx.p1));
    assert!(
        p2.is_some() && p1.is_some() && p2 < p1,
        "p2 (order 0) first"
    );
    assert!(
        page.body
            .contains(&format!("product-soon-{}\">coming soon...", t.fx.p1))
    );
    assert!(!page.body.contains("size-container"));
    assert!(page.body.contains("<div id=\"cart-container\"></div>"));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_products_show_their_sizes_with_levels() {
    let t = TestNode::start(SQLITE, true).await;
    t.node
        .state()
        .inventory
        .sell_item(t.fx.i1)
        .await
        .expect("selling the last unit");
    let page = t.browser().get("/").await;
    // The button of an item: from its value to the end of its opening tag.
    let button = |item: i64| -> String {
        let start = page
            .body
            .find(&format!("value=\"{item}\" class=\"size-container__entry"))
            .expect("the size button");
        let end = page.body[start..].find('>').expect("end of the tag") + start;
        page.body[start..=end].to_owned()
    };
    let sold_out = button(t.fx.i1);
    assert!(
        sold_out.contains("size-container__entry--level-out"),
        "{sold_out}"
    );
    assert!(sold_out.ends_with(" disabled>"), "{sold_out}");
    assert!(
        sold_out.contains(", sold out\""),
        "named with its level: {sold_out}"
    );
    let low = button(t.fx.i2);
    assert!(low.contains("size-container__entry--level-low"), "{low}");
    assert!(!low.contains("disabled"), "{low}");
    assert!(low.contains(", last few\""), "{low}");
    assert!(low.contains("aria-pressed=\"false\""), "{low}");
    assert!(!page.body.contains("coming soon"));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_gets_a_64_character_cart_id_that_is_kept() {
    let t = TestNode::start(SQLITE, false).await;
    let mut browser = t.browser();
    let first = browser.get("/").await;
    let cookie = first.header("set-cookie").expect("a session cookie");
    assert!(cookie.starts_with("_sneakers_23_key="), "{cookie}");
    assert!(cookie.contains("HttpOnly"));
    let cart_id = cart_id_of(&first.body);
    assert_eq!(cart_id.len(), 64);
    let again = browser.get("/").await;
    assert_eq!(again.header("set-cookie"), None, "unchanged session");
    assert_eq!(cart_id_of(&again.body), cart_id);
    let checkout = browser.get("/checkout?serialized_cart=x").await;
    assert_eq!(cart_id_of(&checkout.body), cart_id);
    let other = t.browser().get("/").await;
    assert_ne!(
        cart_id_of(&other.body),
        cart_id,
        "another browser, another cart"
    );
    let forged = raw_request(
        t.addr(),
        "GET",
        "/",
        Some("_sneakers_23_key=SFMyNTY.forged.x"),
        None,
        &[],
    )
    .await;
    assert_ne!(cart_id_of(&forged.body), cart_id);
    assert!(
        forged.header("set-cookie").is_some(),
        "a forged cookie is replaced"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_without_a_cart_goes_home_and_an_invalid_cart_has_no_items() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let home = browser.get("/checkout").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/"));
    let invalid = browser.get("/checkout?serialized_cart=garbage").await;
    assert_eq!(invalid.status, 200);
    assert!(invalid.body.contains("No items to checkout!"));
    assert!(!invalid.body.contains("PURCHASE"));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_page_lists_items_and_flags_sold_out_ones() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let cart = t.serialized(&[t.fx.i3, t.fx.i1]);
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    assert!(page.body.contains("Your Cart"));
    assert!(page.body.contains(&format!("data-item-id=\"{}\"", t.fx.i1)));
    assert!(page.body.contains(&format!("data-item-id=\"{}\"", t.fx.i3)));
    assert!(page.body.contains("Payment Information"));
    assert!(page.body.contains(">PURCHASE</button>"));
    assert!(!page.body.contains("Sorry, this shoe is sold out"));
    assert!(
        !page.body.contains("data-product-id"),
        "the checkout page joins no product:undefined (§19.7)"
    );
    t.node
        .state()
        .inventory
        .sell_item(t.fx.i1)
        .await
        .expect("selling out i1");
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    assert!(page.body.contains("Sorry, this shoe is sold out"));
    assert!(
        page.body
            .contains("disabled>SOME ITEMS NOT AVAILABLE</button>")
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreleased_items_cannot_be_purchased_from_the_page() {
    let t = TestNode::start(SQLITE, false).await;
    let cart = t.serialized(&[t.fx.i3]);
    let page = t
        .browser()
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    assert!(
        page.body
            .contains("disabled>SOME ITEMS NOT AVAILABLE</button>")
    );
    t.node.shutdown().await;
}

/// Opens the checkout page of `ids` and returns (browser, csrf token, serialized cart, order
/// key).
async fn checkout_form(
    t: &TestNode,
    ids: &[i64],
) -> (common::web::Browser, String, String, String) {
    let mut browser = t.browser();
    let cart = t.serialized(ids);
    let page = browser
        .get(&format!("/checkout?serialized_cart={cart}"))
        .await;
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    (browser, csrf, cart, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_needs_the_sessions_csrf_token() {
    let t = TestNode::start(SQLITE, true).await;
    let (mut browser, _csrf, cart, _key) = checkout_form(&t, &[t.fx.i3]).await;
    let missing = browser
        .post_form("/checkout", &[("serialized_cart", &cart)])
        .await;
    assert_eq!(missing.status, 403);
    let wrong = browser
        .post_form(
            "/checkout",
            &[("serialized_cart", &cart), ("_csrf_token", "nope")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert_eq!(t.db_count(t.fx.i3).await, 3, "nothing sold");
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchasing_an_empty_cart_flashes_your_cart_is_empty() {
    let t = TestNode::start(SQLITE, true).await;
    let (mut browser, csrf, _, key) = checkout_form(&t, &[t.fx.i3]).await;
    let posted = browser.purchase("garbage", &csrf, &key).await;
    assert_eq!(posted.status, 303);
    let location = posted.header("location").unwrap_or_default().to_owned();
    assert!(location.starts_with("/checkout"), "{location}");
    let page = browser.get(&location).await;
    assert!(
        page.body.contains("Sorry, Your cart is empty."),
        "{}",
        page.body
    );
    let again = browser.get(&location).await;
    assert!(
        !again.body.contains("Your cart is empty"),
        "a flash shows once"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchasing_sold_out_or_unreleased_shoes_flashes_and_returns_to_checkout() {
    let t = TestNode::start(SQLITE, true).await;
    t.node
        .state()
        .inventory
        .sell_item(t.fx.i1)
        .await
        .expect("selling out i1");
    let (mut browser, csrf, cart, key) = checkout_form(&t, &[t.fx.i1, t.fx.i3]).await;
    let posted = browser.purchase(&cart, &csrf, &key).await;
    assert_eq!(posted.status, 303);
    let location = posted.header("location").unwrap_or_default().to_owned();
    assert!(
        location.starts_with("/checkout?serialized_cart="),
        "{location}"
    );
    let page = browser.get(&location).await;
    assert!(
        page.body
            .contains("Sorry, Your cart has out-of-stock shoes.")
    );
    assert_eq!(t.db_count(t.fx.i3).await, 3, "nothing sold");
    t.node.shutdown().await;

    let t = TestNode::start(SQLITE, false).await;
    let (mut browser, csrf, cart, key) = checkout_form(&t, &[t.fx.i3]).await;
    let posted = browser.purchase(&cart, &csrf, &key).await;
    let location = posted.header("location").unwrap_or_default().to_owned();
    let page = browser.get(&location).await;
    assert!(page.body.contains("Sorry, Your cart has unreleased shoes."));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_purchase_transaction_flashes_and_sells_nothing() {
    let t = TestNode::start(SQLITE, true).await;
    // 404 is unknown to the cache (its checks pass) and to the database (the sale fails).
    let (mut browser, csrf, cart, key) = checkout_form(&t, &[t.fx.i3, 404]).await;
    let posted = browser.purchase(&cart, &csrf, &key).await;
    let location = posted.header("location").unwrap_or_default().to_owned();
    let page = browser.get(&location).await;
    assert!(
        page.body
            .contains("Sorry, Your purchase could not be completed.")
    );
    assert_eq!(t.db_count(t.fx.i3).await, 3, "rolled back");
    t.node.shutdown().await;
}

async fn a_valid_purchase_decrements_each_item_once(backend: Backend) {
    let t = TestNode::start(backend, true).await;
    let (mut browser, csrf, cart, key) = checkout_form(&t, &[t.fx.i2, t.fx.i3]).await;
    let posted = browser.purchase(&cart, &csrf, &key).await;
    assert_eq!(posted.status, 303);
    let location = format!("/checkout/complete?order={key}");
    assert_eq!(posted.header("location"), Some(location.as_str()));
    assert_eq!(t.db_count(t.fx.i1).await, 1);
    assert_eq!(t.db_count(t.fx.i2).await, 1);
    assert_eq!(t.db_count(t.fx.i3).await, 2);
    let done = browser.get(&location).await;
    assert!(done.body.contains("Order Complete!"));
    assert!(done.body.contains("data-order-id=\"1\""), "{}", done.body);
    assert!(
        done.body
            .contains("localStorage.removeItem(\"storedCart\")")
    );
    assert!(done.body.contains("href=\"/\">Go Home</a>"));
    t.node.shutdown().await;
}

backend_tests!(a_valid_purchase_decrements_each_item_once);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_embedded_with_types_and_etags() {
    let t = TestNode::start(SQLITE, false).await;
    let mut browser = t.browser();
    for (path, content_type) in [
        ("/css/app.css", "text/css; charset=utf-8"),
        ("/js/app.js", "text/javascript; charset=utf-8"),
        ("/js/phoenix.mjs", "text/javascript; charset=utf-8"),
        ("/images/hopman.png", "image/png"),
        ("/images/breezy.png", "image/png"),
        ("/favicon.ico", "image/x-icon"),
        ("/robots.txt", "text/plain; charset=utf-8"),
    ] {
        let response = browser.get(path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        let etag = response.header("etag").expect("etag").to_owned();
        let cached = raw_request(
            t.addr(),
            "GET",
            path,
            None,
            None,
            &[("If-None-Match", &etag)],
        )
        .await;
        assert_eq!(cached.status, 304, "{path}");
    }
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_link_fingerprinted_assets_cached_for_a_year_and_compressed() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let page = browser.get("/").await;
    let script = page
        .body
        .split('"')
        .find(|part| part.starts_with("/js/app.js?v="))
        .expect("the page links the fingerprinted script")
        .to_owned();
    assert!(page.body.contains("/css/app.css?v="));
    let response = browser.get(&script).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // The script imports the client by its fingerprinted URL too, also cached for a year.
    let client = response
        .body
        .split('"')
        .find(|part| part.starts_with("/js/phoenix.mjs?v="))
        .expect("a fingerprinted import")
        .to_owned();
    let imported = browser.get(&client).await;
    assert_eq!(
        imported.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // A stale version is not cached for a year: it is revalidated.
    let stale = browser.get("/js/app.js?v=0").await;
    assert_eq!(stale.header("cache-control"), Some("no-cache"));

    // With gzip accepted, the client travels compressed: far fewer bytes on the wire.
    let compressed = http_client::Origin::from_addr(t.addr())
        .request(http_client::Method::GET, &client)
        .header("accept-encoding", "gzip")
        .timeout(common::EVENT_TIMEOUT)
        .send()
        .await
        .expect("the client, compressed");
    assert_eq!(compressed.header("content-encoding"), Some("gzip"));
    // The client is the minified build of the same version.
    assert_eq!(imported.body, channels::assets::PHOENIX_MIN_JS);
    assert!(imported.body.starts_with("// phoenix 1.8.16,"));
    let plain_length = imported.body.len();
    assert!(
        plain_length < channels::assets::PHOENIX_JS.len() / 2,
        "{plain_length} bytes minified"
    );
    let compressed_length = compressed.body.len();
    assert!(
        compressed_length < plain_length / 2,
        "{compressed_length} bytes compressed for {plain_length}"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_address_gets_a_404_page_leading_home() {
    let t = TestNode::start(SQLITE, true).await;
    let response = t.browser().get("/no/such/page").await;
    assert_eq!(response.status, 404);
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/html"))
    );
    assert!(response.body.contains("<h1"), "{}", response.body);
    assert!(response.body.contains("Page not found"));
    assert!(response.body.contains("href=\"/\""));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_form_works_without_javascript() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let page = browser.get("/").await;
    assert!(page.body.contains("action=\"/cart/add\" method=\"POST\""));
    let item = t.fx.i2.to_string();
    let added = browser.post_form("/cart/add", &[("item_id", &item)]).await;
    assert_eq!(added.status, 303, "{}", added.body);
    let location = added.header("location").expect("a redirect").to_owned();
    assert!(
        location.starts_with("/checkout?serialized_cart="),
        "{location}"
    );
    let checkout = browser.get(&location).await;
    assert_eq!(checkout.status, 200);
    assert!(
        checkout.body.contains(&format!("data-item-id=\"{item}\"")),
        "the checkout lists the item"
    );
    assert!(checkout.body.contains("PURCHASE"));

    // A sold-out size brings the shopper back to the shop with the reason.
    let sold_out = t.fx.i1.to_string();
    t.node
        .state()
        .inventory
        .sell_item(t.fx.i1)
        .await
        .expect("selling the last unit");
    let refused = browser
        .post_form("/cart/add", &[("item_id", &sold_out)])
        .await;
    assert_eq!(refused.status, 303);
    assert_eq!(refused.header("location"), Some("/"));
    let home = browser.get("/").await;
    assert!(
        home.body.contains("Sorry, that size just sold out."),
        "{}",
        home.body
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_websocket_only_socket() {
    let t = TestNode::start(SQLITE, false).await;
    let mut browser = t.browser();
    let health = browser.get("/health").await;
    assert_eq!(health.status, 200);
    let json: serde_json::Value = serde_json::from_str(&health.body).expect("JSON");
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
    assert_eq!(json["pubsub"], "connected");
    let mut socket = t.socket().await;
    socket.join_ok("product:1", serde_json::json!({})).await;
    let metrics = browser.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("channels_joins_total"),
        "{}",
        metrics.body
    );
    // Every series is described: a `# HELP` and a `# TYPE` line for each name.
    for line in metrics
        .body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let series = line.split(['{', ' ']).next().unwrap_or(line);
        let name = ["_count", "_sum", "_bucket"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix))
            .filter(|base| metrics.body.contains(&format!("# TYPE {base} ")))
            .unwrap_or(series);
        for kind in ["HELP", "TYPE"] {
            assert!(
                metrics.body.contains(&format!("# {kind} {name} ")),
                "no # {kind} for {name} on /metrics"
            );
        }
    }
    // A socket that ends without a close frame (a tab killed) is counted by cause (the recorder
    // is shared by this file's tests, so only the label's presence is asserted).
    drop(socket);
    let closed = r#"channels_closes_total{reason="client went away"}"#;
    let counted = common::eventually(Duration::from_secs(5), || async {
        t.browser().get("/metrics").await.body.contains(closed)
    })
    .await;
    assert!(counted, "no {closed} in /metrics");
    let longpoll = browser.get("/product_socket/longpoll").await;
    assert_eq!(longpoll.status, 404, "long-polling is disabled");
    t.node.state().db.close().await;
    let degraded = browser.get("/health").await;
    assert_eq!(degraded.status, 503);
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_needs_the_token_and_acts_through_the_node() {
    let t = TestNode::start(SQLITE, false).await;
    let state = t.node.state();
    let refused = raw_request(t.addr(), "POST", "/ops/release/1", None, None, &[]).await;
    assert_eq!(refused.status, 401);
    let token = sneakers23::tokens::ops_token(&t.secret_key_base);
    let client = sneakers23::control::ControlClient::new(&format!("http://{}", t.addr()), &token)
        .expect("client");
    let released = client
        .post(&format!("/ops/release/{}", t.fx.p1))
        .await
        .expect("release");
    assert_eq!(released["released"], t.fx.p1);
    assert_eq!(
        state
            .inventory
            .snapshot()
            .product(t.fx.p1)
            .map(|p| p.product.released),
        Some(true)
    );
    let unknown = client.post("/ops/release/999").await;
    assert!(
        matches!(
            unknown,
            Err(sneakers23::control::ControlError::Refused { status: 404, .. })
        ),
        "{unknown:?}"
    );
    let sold = client
        .post(&format!("/ops/sell/{}?leave=1", t.fx.i3))
        .await
        .expect("sell");
    assert_eq!(
        (sold["sold"].as_i64(), sold["available"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(t.db_count(t.fx.i3).await, 1);
    let inventory = client.get("/ops/inventory").await.expect("inventory");
    assert_eq!(inventory["products"].as_array().map(Vec::len), Some(2));
    let report = client
        .post("/ops/sell-random-until-gone?per_tick=5&tick_ms=1&wait=true")
        .await
        .expect("reducer");
    assert_eq!(report["sold"], 4, "i1: 1, i2: 2 and i3: 1 unit were left");
    assert!(
        state
            .inventory
            .snapshot()
            .items()
            .all(|i| i.available_count == 0)
    );
    let presence = client.get("/ops/presence").await.expect("presence");
    assert_eq!(presence, serde_json::json!({}));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_control_client_reads_every_answer_of_the_node() {
    use sneakers23::control::ReducerAnswer;
    use sneakers23::control_api::{ReducerQuery, SellQuery};
    let t = TestNode::start(SQLITE, false).await;
    let token = sneakers23::tokens::ops_token(&t.secret_key_base);
    let client = sneakers23::control::ControlClient::new(&format!("http://{}", t.addr()), &token)
        .expect("client");
    let released = client.release(t.fx.p2).await.expect("release");
    assert_eq!(released.released, t.fx.p2);
    let sold = client
        .sell(
            t.fx.i2,
            SellQuery {
                units: Some(1),
                leave: None,
            },
        )
        .await
        .expect("sell");
    assert_eq!((sold.item_id, sold.sold, sold.available), (t.fx.i2, 1, 1));
    let inventory = client.inventory().await.expect("inventory");
    let p2 = inventory
        .products
        .iter()
        .find(|p| p.id == t.fx.p2)
        .expect("p2 listed");
    assert!(p2.released);
    let i2 = inventory
        .products
        .iter()
        .flat_map(|p| &p.items)
        .find(|i| i.id == t.fx.i2)
        .expect("i2 listed");
    assert_eq!(i2.available_count, 1);
    let started = client
        .sell_random_until_gone(ReducerQuery {
            per_tick: Some(5),
            tick_ms: Some(1),
            wait: false,
        })
        .await
        .expect("reducer started");
    assert!(
        matches!(started, ReducerAnswer::Started(s) if s.started && s.per_tick == 5 && s.tick_ms == 1),
        "{started:?}"
    );
    let refused = client.sell(999, SellQuery::default()).await;
    assert!(refused.is_err(), "{refused:?}");
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_while_the_database_is_down_serves_once_it_is_back() {
    let db = TestDb::new(Backend::Postgres).await;
    let fx = insert_fixture(&db.db, true).await;
    let mut proxy = TcpProxy::start(pg_server_addr().await).await;
    proxy.stop().await;
    let mut config = NodeConfig::for_tests(&db.pg_url_via_port(proxy.port()));
    config.db_retry_max_delay = Duration::from_millis(100);
    config.db_options.acquire_timeout = Duration::from_millis(300);
    let starting = tokio::spawn(node::start(config));
    // The node keeps retrying (it logs each attempt) instead of failing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!starting.is_finished(), "no cache yet, so no server yet");
    proxy.restart().await;
    let node = tokio::time::timeout(Duration::from_secs(10), starting)
        .await
        .expect("started once the database is back")
        .expect("start task")
        .expect("node");
    let page = raw_request(node.addr(), "GET", "/", None, None, &[]).await;
    assert!(
        page.body
            .contains(&format!("data-product-id=\"{}\"", fx.p1))
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_websockets_with_service_restart() {
    let t = TestNode::start(SQLITE, false).await;
    let mut socket = t.socket().await;
    socket.join_ok("product:1", serde_json::json!({})).await;
    t.node.shutdown().await;
    assert_eq!(socket.expect_close().await, Some(1012));
}
