//! The ProductSocket's channels on a real node, spoken to over a WebSocket with the Phoenix V2
//! protocol (spec §10, §14.4, §19; §20.2 items 7–13): product broadcasts, cart join, add and
//! remove with every error reply, multi-tab synchronisation, out-of-stock alerts, presence,
//! and a completed purchase emptying every tab.

mod common;

use common::Backend;
use common::web::{PhxSocket, TestNode, cart_id, cart_id_of, hidden_input, item_ids};
use serde_json::{Value, json};
use sneakers23::sockets::CART_TRACKER_TOPIC;

const SQLITE: Backend = Backend::Sqlite;

fn presence(t: &TestNode) -> Value {
    t.node
        .state()
        .cart_tracker
        .list(CART_TRACKER_TOPIC)
        .to_value()
}

/// Joins `cart:<id>` and returns the `cart` pushed after the join.
async fn join_cart(socket: &mut PhxSocket, id: &str, params: Value) -> Value {
    let topic = format!("cart:{id}");
    socket.join_ok(&topic, params).await;
    socket.expect(&topic, "cart").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_channels_get_released_and_stock_changes() {
    let t = TestNode::start(SQLITE, false).await;
    let mut socket = t.socket().await;
    let p1 = format!("product:{}", t.fx.p1);
    let p2 = format!("product:{}", t.fx.p2);
    socket.join_ok(&p1, json!({})).await;
    socket.join_ok(&p2, json!({})).await;
    socket.join_ok("product:anything", json!({})).await;

    t.node
        .state()
        .inventory
        .release(t.fx.p1)
        .await
        .expect("release");
    let released = socket.expect(&p1, "released").await;
    let html = released["size_html"].as_str().unwrap_or_default();
    assert_eq!(html.matches("size-container__entry ").count(), 2, "{html}");
    for item in [t.fx.i1, t.fx.i2] {
        assert!(html.contains(&format!("value=\"{item}\"")), "{html}");
    }
    socket.expect_none(&p2, "released").await;

    let inventory = &t.node.state().inventory;
    inventory.release(t.fx.p2).await.expect("release p2");
    socket.expect(&p2, "released").await;
    inventory.sell_item(t.fx.i3).await.expect("sale 3 → 2");
    socket.expect_none(&p2, "stock_change").await;
    inventory.sell_item(t.fx.i1).await.expect("sale 1 → 0");
    let change = socket.expect(&p1, "stock_change").await;
    assert_eq!(
        change,
        json!({"product_id": t.fx.p1, "item_id": t.fx.i1, "level": "out"})
    );
    let refused = socket.join("product:3", json!("not an object")).await;
    assert_eq!(refused["status"], "error");
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_joins_need_a_64_byte_id_and_restore_the_serialized_cart() {
    let t = TestNode::start(SQLITE, true).await;
    let mut socket = t.socket().await;
    let refused = socket.join("cart:short", json!({})).await;
    assert_eq!(refused["status"], "error", "{refused}");
    let refused = socket
        .join(&format!("cart:{}x", cart_id(1)), json!({}))
        .await;
    assert_eq!(refused["status"], "error");

    let empty = join_cart(&mut socket, &cart_id(1), json!({})).await;
    assert_eq!(item_ids(&empty), Vec::<i64>::new());
    assert!(
        empty["serialized"]
            .as_str()
            .is_some_and(|s| s.starts_with("SFMyNTY."))
    );

    let serialized = t.serialized(&[t.fx.i3, t.fx.i1]);
    let restored = join_cart(
        &mut socket,
        &cart_id(2),
        json!({"serialized": serialized, "page": "/test"}),
    )
    .await;
    assert_eq!(item_ids(&restored), [t.fx.i1, t.fx.i3], "ascending by id");
    let item = &restored["items"][0];
    for field in [
        "brand",
        "color",
        "name",
        "price_usd",
        "main_image_url",
        "released",
        "id",
        "size",
        "sku",
        "out_of_stock",
    ] {
        assert!(item.get(field).is_some(), "{field} in {item}");
    }
    let tampered = join_cart(
        &mut socket,
        &cart_id(3),
        json!({"serialized": format!("{serialized}x")}),
    )
    .await;
    assert_eq!(item_ids(&tampered), Vec::<i64>::new());

    let list = presence(&t);
    let metas = &list[cart_id(2)]["metas"];
    assert_eq!(metas[0]["items"], json!([t.fx.i3, t.fx.i1]));
    assert_eq!(metas[0]["page"], "/test");
    assert!(metas[0]["page_loaded_at"].as_i64().is_some_and(|ms| ms > 0));
    assert_eq!(list[cart_id(1)]["metas"][0]["page"], Value::Null);
    assert_eq!(list[cart_id(1)]["metas"][0]["items"], json!([]));
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_item_replies_with_the_cart_or_each_error_of_decision_19() {
    let t = TestNode::start_with(SQLITE, true, |config| config.max_cart_items = 2).await;
    let inventory = t.node.state().inventory.clone();
    let mut socket = t.socket().await;
    let id = cart_id(1);
    let topic = format!("cart:{id}");
    join_cart(&mut socket, &id, json!({})).await;

    let added = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i1.to_string()}))
        .await;
    assert_eq!(added["status"], "ok");
    assert_eq!(item_ids(&added["response"]), [t.fx.i1]);
    let error = |reply: &Value| reply["response"]["error"].as_str().map(str::to_owned);
    let reply = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i1.to_string()}))
        .await;
    assert_eq!(error(&reply).as_deref(), Some("duplicate_item"));
    for bad in [
        json!({"item_id": "abc"}),
        json!({}),
        json!({"item_id": "999"}),
    ] {
        let reply = socket.push(&topic, "add_item", bad.clone()).await;
        assert_eq!(error(&reply).as_deref(), Some("invalid_item"), "{bad}");
    }
    inventory.sell_item(t.fx.i2).await.expect("sale");
    inventory.sell_item(t.fx.i2).await.expect("sale");
    let reply = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i2}))
        .await;
    assert_eq!(error(&reply).as_deref(), Some("out_of_stock"));
    let added = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i3}))
        .await;
    assert_eq!(item_ids(&added["response"]), [t.fx.i1, t.fx.i3]);
    let reply = socket
        .push(&topic, "add_item", json!({"item_id": 999}))
        .await;
    assert_eq!(error(&reply).as_deref(), Some("invalid_item"));
    socket
        .push(&topic, "remove_item", json!({"item_id": t.fx.i3}))
        .await;
    t.node.shutdown().await;

    let t = TestNode::start_with(SQLITE, false, |config| config.max_cart_items = 1).await;
    let mut socket = t.socket().await;
    join_cart(&mut socket, &id, json!({"serialized": t.serialized(&[77])})).await;
    let reply = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i3}))
        .await;
    assert_eq!(error(&reply).as_deref(), Some("not_released"));
    t.node
        .state()
        .inventory
        .release(t.fx.p2)
        .await
        .expect("release");
    let reply = socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i3}))
        .await;
    assert_eq!(error(&reply).as_deref(), Some("cart_full"), "{reply}");
    let reply = socket.push(&topic, "explode", json!({})).await;
    assert_eq!(
        reply["status"], "error",
        "unknown events do not crash the channel"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_share_the_cart_through_cart_updated() {
    let t = TestNode::start(SQLITE, true).await;
    let id = cart_id(7);
    let topic = format!("cart:{id}");
    let mut tab1 = t.socket().await;
    let mut tab2 = t.socket().await;
    join_cart(&mut tab1, &id, json!({"page": "/"})).await;
    join_cart(&mut tab2, &id, json!({"page": "/checkout"})).await;

    let added = tab1
        .push(&topic, "add_item", json!({"item_id": t.fx.i3.to_string()}))
        .await;
    assert_eq!(item_ids(&added["response"]), [t.fx.i3]);
    let synced = tab2.expect(&topic, "cart").await;
    assert_eq!(item_ids(&synced), [t.fx.i3]);
    tab1.expect_none(&topic, "cart").await;
    tab1.expect_none(&topic, "cart_updated").await;
    tab2.expect_none(&topic, "cart_updated").await;

    let added = tab2
        .push(&topic, "add_item", json!({"item_id": t.fx.i2.to_string()}))
        .await;
    assert_eq!(item_ids(&added["response"]), [t.fx.i2, t.fx.i3]);
    assert_eq!(
        item_ids(&tab1.expect(&topic, "cart").await),
        [t.fx.i2, t.fx.i3]
    );
    let metas = presence(&t)[&id]["metas"].clone();
    assert_eq!(metas.as_array().map(Vec::len), Some(2), "one meta per tab");
    for meta in metas.as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([t.fx.i2, t.fx.i3]), "{meta}");
    }

    let removed = tab1
        .push(
            &topic,
            "remove_item",
            json!({"item_id": t.fx.i3.to_string()}),
        )
        .await;
    assert_eq!(removed["status"], "ok");
    assert_eq!(item_ids(&removed["response"]), [t.fx.i2]);
    assert_eq!(item_ids(&tab2.expect(&topic, "cart").await), [t.fx.i2]);
    let reply = tab1
        .push(
            &topic,
            "remove_item",
            json!({"item_id": t.fx.i3.to_string()}),
        )
        .await;
    assert_eq!(reply["response"]["error"], "not_found");
    let reply = tab1
        .push(&topic, "remove_item", json!({"item_id": "x"}))
        .await;
    assert_eq!(reply["response"]["error"], "invalid_item");
    for meta in presence(&t)[&id]["metas"].as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([t.fx.i2]), "{meta}");
    }

    // tab2 learnt about i2 from tab1's broadcast only: its item_out subscription follows.
    let inventory = &t.node.state().inventory;
    inventory.sell_item(t.fx.i2).await.expect("sale");
    inventory.sell_item(t.fx.i2).await.expect("sale");
    for tab in [&mut tab1, &mut tab2] {
        let cart = tab.expect(&topic, "cart").await;
        assert_eq!(cart["items"][0]["out_of_stock"], true, "{cart}");
    }
    drop(tab2);
    assert!(
        common::eventually(common::EVENT_TIMEOUT, || async {
            presence(&t)[&id]["metas"].as_array().map(Vec::len) == Some(1)
        })
        .await,
        "a closed tab leaves the CartTracker"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_out_pushes_the_cart_only_for_items_in_it() {
    let t = TestNode::start(SQLITE, true).await;
    let inventory = t.node.state().inventory.clone();
    let mut socket = t.socket().await;
    let id = cart_id(3);
    let topic = format!("cart:{id}");
    join_cart(
        &mut socket,
        &id,
        json!({"serialized": t.serialized(&[t.fx.i3])}),
    )
    .await;

    inventory.sell_item(t.fx.i1).await.expect("sell out i1");
    socket.expect_none(&topic, "cart").await;
    socket
        .push(&topic, "add_item", json!({"item_id": t.fx.i2}))
        .await;
    socket
        .push(&topic, "remove_item", json!({"item_id": t.fx.i3}))
        .await;
    for _ in 0..3 {
        inventory.sell_item(t.fx.i3).await.expect("sale of i3");
    }
    socket.expect_none(&topic, "cart").await;
    inventory.sell_item(t.fx.i2).await.expect("sale");
    socket.expect_none(&topic, "cart").await;
    inventory.sell_item(t.fx.i2).await.expect("sell out i2");
    let cart = socket.expect(&topic, "cart").await;
    assert_eq!(item_ids(&cart), [t.fx.i2]);
    assert_eq!(cart["items"][0]["out_of_stock"], true);
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_purchase_empties_every_tab_of_the_cart() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let home = browser.get("/").await;
    let id = cart_id_of(&home.body);
    let topic = format!("cart:{id}");
    let serialized = t.serialized(&[t.fx.i3]);
    let mut tab1 = t.socket().await;
    let mut tab2 = t.socket().await;
    join_cart(&mut tab1, &id, json!({"serialized": serialized})).await;
    join_cart(&mut tab2, &id, json!({"serialized": serialized})).await;

    let page = browser
        .get(&format!("/checkout?serialized_cart={serialized}"))
        .await;
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    let posted = browser
        .post_form(
            "/checkout",
            &[
                ("serialized_cart", &serialized),
                ("_csrf_token", &csrf),
                ("order_key", &key),
            ],
        )
        .await;
    let complete = format!("/checkout/complete?order={key}");
    assert_eq!(posted.header("location"), Some(complete.as_str()));
    for tab in [&mut tab1, &mut tab2] {
        let cart = tab.expect(&topic, "cart").await;
        assert_eq!(item_ids(&cart), Vec::<i64>::new(), "{cart}");
    }
    for meta in presence(&t)[&id]["metas"].as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([]), "{meta}");
    }
    assert_eq!(t.db_count(t.fx.i3).await, 2);
    t.node.shutdown().await;
}
