//! The ProductSocket's channels on a real node, driven in process with the channel test kit
//! (spec §10, §14.4, §19; §20.2 items 7–13): product broadcasts, cart join, add and remove with
//! every error reply, multi-tab synchronisation, out-of-stock alerts, presence, and a completed
//! purchase emptying every tab. The wire itself (WebSocket, frames, the browser's client) is
//! tested by the web, cluster and JS suites.

mod common;

use channels::testing::{TestChannel, TestSocket};
use common::Backend;
use common::web::{TestNode, cart_id, cart_id_of, hidden_input, item_ids};
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

/// Joins `cart:<id>`; returns the channel and the `cart` pushed after the join.
async fn join_cart(client: &TestSocket, id: &str, params: Value) -> (TestChannel, Value) {
    let topic = format!("cart:{id}");
    let (_, cart) = client
        .join(&topic, params)
        .await
        .unwrap_or_else(|e| panic!("join {topic}: {e}"));
    let pushed = cart.assert_push("cart").await;
    (cart, pushed)
}

/// Joins `topic`, which must succeed.
async fn join_ok(client: &TestSocket, topic: &str) -> TestChannel {
    let (_, channel) = client
        .join(topic, json!({}))
        .await
        .unwrap_or_else(|e| panic!("join {topic}: {e}"));
    channel
}

/// Pushes `event` and returns the reply's response, asserting its status.
async fn call(channel: &TestChannel, event: &str, payload: Value, status: &str) -> Value {
    let ref_ = channel.push(event, payload);
    channel.assert_reply(&ref_, status).await
}

/// The `reason` of an error reply to `event`.
async fn error(channel: &TestChannel, event: &str, payload: Value) -> String {
    let response = call(channel, event, payload, "error").await;
    response["reason"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_channels_get_released_and_stock_changes() {
    let t = TestNode::start(SQLITE, false).await;
    let client = t.channel_client().await;
    let p1 = join_ok(&client, &format!("product:{}", t.fx.p1)).await;
    let p2 = join_ok(&client, &format!("product:{}", t.fx.p2)).await;
    join_ok(&client, "product:anything").await;

    t.node
        .state()
        .inventory
        .release(t.fx.p1)
        .await
        .expect("release");
    let released = p1.assert_push("released").await;
    let html = released["size_html"].as_str().unwrap_or_default();
    assert_eq!(html.matches("size-container__entry ").count(), 2, "{html}");
    for item in [t.fx.i1, t.fx.i2] {
        assert!(html.contains(&format!("value=\"{item}\"")), "{html}");
    }
    p2.refute_push("released").await;

    let inventory = &t.node.state().inventory;
    inventory.release(t.fx.p2).await.expect("release p2");
    p2.assert_push("released").await;
    inventory.sell_item(t.fx.i3).await.expect("sale 3 → 2");
    p2.refute_push("stock_change").await;
    inventory.sell_item(t.fx.i1).await.expect("sale 1 → 0");
    let change = p1.assert_push("stock_change").await;
    assert_eq!(
        change,
        json!({"product_id": t.fx.p1, "item_id": t.fx.i1, "level": "out"})
    );
    let refused = client.join("product:3", json!("not an object")).await;
    assert!(
        refused.is_err(),
        "a join with a non-object payload is refused"
    );
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_joins_need_a_64_byte_id_and_restore_the_serialized_cart() {
    let t = TestNode::start(SQLITE, true).await;
    let client = t.channel_client().await;
    assert!(client.join("cart:short", json!({})).await.is_err());
    let long = format!("cart:{}x", cart_id(1));
    assert!(client.join(&long, json!({})).await.is_err());

    let (_one, empty) = join_cart(&client, &cart_id(1), json!({})).await;
    assert_eq!(item_ids(&empty), Vec::<i64>::new());
    assert!(
        empty["serialized"]
            .as_str()
            .is_some_and(|s| s.starts_with("SFMyNTY."))
    );

    let serialized = t.serialized(&[t.fx.i3, t.fx.i1]);
    let (_two, restored) = join_cart(
        &client,
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
    let (_three, tampered) = join_cart(
        &client,
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
    let client = t.channel_client().await;
    let id = cart_id(1);
    let (cart, _) = join_cart(&client, &id, json!({})).await;

    let add = |item: Value| json!({ "item_id": item });
    let added = call(&cart, "add_item", add(json!(t.fx.i1.to_string())), "ok").await;
    assert_eq!(item_ids(&added), [t.fx.i1]);
    let reply = error(&cart, "add_item", add(json!(t.fx.i1.to_string()))).await;
    assert_eq!(reply, "duplicate_item");
    for bad in [
        json!({"item_id": "abc"}),
        json!({}),
        json!({"item_id": "999"}),
    ] {
        assert_eq!(
            error(&cart, "add_item", bad.clone()).await,
            "invalid_item",
            "{bad}"
        );
    }
    inventory.sell_item(t.fx.i2).await.expect("sale");
    inventory.sell_item(t.fx.i2).await.expect("sale");
    assert_eq!(
        error(&cart, "add_item", add(json!(t.fx.i2))).await,
        "out_of_stock"
    );
    let added = call(&cart, "add_item", add(json!(t.fx.i3)), "ok").await;
    assert_eq!(item_ids(&added), [t.fx.i1, t.fx.i3]);
    assert_eq!(
        error(&cart, "add_item", add(json!(999))).await,
        "invalid_item"
    );
    call(&cart, "remove_item", add(json!(t.fx.i3)), "ok").await;
    t.node.shutdown().await;

    let t = TestNode::start_with(SQLITE, false, |config| config.max_cart_items = 1).await;
    let client = t.channel_client().await;
    let (cart, _) = join_cart(&client, &id, json!({"serialized": t.serialized(&[77])})).await;
    assert_eq!(
        error(&cart, "add_item", add(json!(t.fx.i3))).await,
        "not_released"
    );
    t.node
        .state()
        .inventory
        .release(t.fx.p2)
        .await
        .expect("release");
    assert_eq!(
        error(&cart, "add_item", add(json!(t.fx.i3))).await,
        "cart_full"
    );
    call(&cart, "explode", json!({}), "error").await;
    // Unknown events do not crash the channel.
    cart.refute_push("phx_error").await;
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tabs_share_the_cart_through_cart_updated() {
    let t = TestNode::start(SQLITE, true).await;
    let id = cart_id(7);
    let tab1 = t.channel_client().await;
    let tab2 = t.channel_client().await;
    let (cart1, _) = join_cart(&tab1, &id, json!({"page": "/"})).await;
    let (cart2, _) = join_cart(&tab2, &id, json!({"page": "/checkout"})).await;

    let item = |id: i64| json!({ "item_id": id.to_string() });
    let added = call(&cart1, "add_item", item(t.fx.i3), "ok").await;
    assert_eq!(item_ids(&added), [t.fx.i3]);
    assert_eq!(item_ids(&cart2.assert_push("cart").await), [t.fx.i3]);
    cart1.refute_push("cart").await;
    cart1.refute_push("cart_updated").await;
    cart2.refute_push("cart_updated").await;

    let added = call(&cart2, "add_item", item(t.fx.i2), "ok").await;
    assert_eq!(item_ids(&added), [t.fx.i2, t.fx.i3]);
    assert_eq!(
        item_ids(&cart1.assert_push("cart").await),
        [t.fx.i2, t.fx.i3]
    );
    let metas = presence(&t)[&id]["metas"].clone();
    assert_eq!(metas.as_array().map(Vec::len), Some(2), "one meta per tab");
    for meta in metas.as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([t.fx.i2, t.fx.i3]), "{meta}");
    }

    let removed = call(&cart1, "remove_item", item(t.fx.i3), "ok").await;
    assert_eq!(item_ids(&removed), [t.fx.i2]);
    assert_eq!(item_ids(&cart2.assert_push("cart").await), [t.fx.i2]);
    assert_eq!(
        error(&cart1, "remove_item", item(t.fx.i3)).await,
        "not_found"
    );
    assert_eq!(
        error(&cart1, "remove_item", json!({"item_id": "x"})).await,
        "invalid_item"
    );
    for meta in presence(&t)[&id]["metas"].as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([t.fx.i2]), "{meta}");
    }

    // tab2 learnt about i2 from tab1's broadcast only: its item_out subscription follows.
    let inventory = &t.node.state().inventory;
    inventory.sell_item(t.fx.i2).await.expect("sale");
    inventory.sell_item(t.fx.i2).await.expect("sale");
    for cart in [&cart1, &cart2] {
        let pushed = cart.assert_push("cart").await;
        assert_eq!(pushed["items"][0]["out_of_stock"], true, "{pushed}");
    }
    tab2.close().await;
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
    let client = t.channel_client().await;
    let id = cart_id(3);
    let (cart, _) = join_cart(
        &client,
        &id,
        json!({"serialized": t.serialized(&[t.fx.i3])}),
    )
    .await;

    inventory.sell_item(t.fx.i1).await.expect("sell out i1");
    cart.refute_push("cart").await;
    call(&cart, "add_item", json!({"item_id": t.fx.i2}), "ok").await;
    call(&cart, "remove_item", json!({"item_id": t.fx.i3}), "ok").await;
    for _ in 0..3 {
        inventory.sell_item(t.fx.i3).await.expect("sale of i3");
    }
    cart.refute_push("cart").await;
    inventory.sell_item(t.fx.i2).await.expect("sale");
    cart.refute_push("cart").await;
    inventory.sell_item(t.fx.i2).await.expect("sell out i2");
    let pushed = cart.assert_push("cart").await;
    assert_eq!(item_ids(&pushed), [t.fx.i2]);
    assert_eq!(pushed["items"][0]["out_of_stock"], true);
    t.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_purchase_empties_every_tab_of_the_cart() {
    let t = TestNode::start(SQLITE, true).await;
    let mut browser = t.browser();
    let home = browser.get("/").await;
    let id = cart_id_of(&home.body);
    let serialized = t.serialized(&[t.fx.i3]);
    let tab1 = t.channel_client().await;
    let tab2 = t.channel_client().await;
    let (cart1, _) = join_cart(&tab1, &id, json!({"serialized": serialized})).await;
    let (cart2, _) = join_cart(&tab2, &id, json!({"serialized": serialized})).await;

    let page = browser
        .get(&format!("/checkout?serialized_cart={serialized}"))
        .await;
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    let posted = browser.purchase(&serialized, &csrf, &key).await;
    let complete = format!("/checkout/complete?order={key}");
    assert_eq!(posted.header("location"), Some(complete.as_str()));
    for cart in [&cart1, &cart2] {
        let pushed = cart.assert_push("cart").await;
        assert_eq!(item_ids(&pushed), Vec::<i64>::new(), "{pushed}");
    }
    for meta in presence(&t)[&id]["metas"].as_array().into_iter().flatten() {
        assert_eq!(meta["items"], json!([]), "{meta}");
    }
    assert_eq!(t.db_count(t.fx.i3).await, 2);
    t.node.shutdown().await;
}
