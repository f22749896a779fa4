//! join-floor: the least server that performs a shopper's join as `shopper-bench` exchanges it,
//! on the store's stack (tokio, axum's WebSocket over tungstenite, the same buffer sizes), so
//! that the store's cost per join can be measured against what the exchange itself costs.
//!
//! It upgrades `/product_socket/websocket`, answers every `phx_join` with an empty ok reply,
//! every other channel event (the shopper's `add_item`) with a canned reply shaped and sized like
//! the store's rendered cart, and `phoenix` heartbeats with an empty ok reply. No tracker, no
//! pubsub, no store: the only shared state is a count of joined sockets, served as
//! `{"shoppers": N}` at `/admin/aggregate.json` so that `shopper-bench --check-admin` and
//! `scripts/bench-store.sh` know when every shopper has joined, as they do with the store.
//!
//! ```text
//! PORT=6201 join-floor        # then: FLOOR=1 PRODUCTS= bash scripts/bench-store.sh
//! ```

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::value::RawValue;

/// The store's WebSocket buffers (`channels`' transport): the read buffer is held for the whole
/// life of a connection, so it decides much of the memory per idle shopper.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 4 * 1024;

/// The store's listen backlog (`sneakers23::node`).
const LISTEN_BACKLOG: u32 = 8192;

/// The `response` of the reply to a cart event: the store's rendered cart after one `add_item`
/// (one item and a freshly signed cart token), byte for byte in shape and within a byte in size.
const CART_REPLY: &str = r#"{"items":[{"brand":"Snks 23","color":"yellow/blue","name":"Hop Man 3","price_usd":120,"main_image_url":"/images/hopman.png","released":true,"id":2,"size":"6.5","sku":"SHU6002","out_of_stock":false}],"serialized":"SFMyNTY.g2gDawABAm4GABKkskmiAWIACTqA.pjwGtRMkWtoq3Wq5-XaW_b5iKl79vxjJ8CwLE3aJL1Y"}"#;

/// Sockets that joined a channel and are still open.
static JOINED: AtomicU64 = AtomicU64::new(0);

/// A V2 client frame `[join_ref, ref, topic, event, payload]`; the refs and the topic are echoed
/// as they came, the payload is never read.
type Frame<'a> = (
    &'a RawValue,
    &'a RawValue,
    &'a RawValue,
    Cow<'a, str>,
    &'a RawValue,
);

/// The reply to `text`, or `None` for a frame that is not a V2 client frame.
fn answer(text: &str, joined: &mut bool) -> Option<String> {
    let (join_ref, ref_, topic, event, _payload): Frame<'_> = serde_json::from_str(text).ok()?;
    let response = match event.as_ref() {
        "phx_join" => {
            if !*joined {
                *joined = true;
                JOINED.fetch_add(1, Ordering::Relaxed);
            }
            "{}"
        }
        "heartbeat" | "phx_leave" => "{}",
        _ => CART_REPLY,
    };
    Some(format!(
        r#"[{join_ref},{ref_},{topic},"phx_reply",{{"status":"ok","response":{response}}}]"#
    ))
}

async fn connection(mut ws: WebSocket) {
    let mut joined = false;
    while let Some(Ok(message)) = ws.recv().await {
        let reply = match message {
            Message::Text(text) => answer(text.as_str(), &mut joined),
            Message::Close(_) => break,
            _ => None,
        };
        if let Some(reply) = reply
            && ws
                .send(Message::Text(Utf8Bytes::from(reply)))
                .await
                .is_err()
        {
            break;
        }
    }
    if joined {
        JOINED.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn upgrade(upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .protocols(["phoenix"])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(connection)
}

async fn aggregate() -> String {
    format!(r#"{{"shoppers":{}}}"#, JOINED.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    // As the store does: the soft limit of open files up to the hard one.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("PORT={port:?}: expected a port number"),
            )
        })?,
        Err(_) => 4000,
    };
    let app = Router::new()
        .route("/product_socket/websocket", get(upgrade))
        .route("/admin/aggregate.json", get(aggregate));
    // The store's listen backlog: with the default 1024, an arrival of 10,000 connections a
    // second overflows the accept queue and the refused clients retry their SYN after a second,
    // so the floor would be measured at a lower arrival rate than the store.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    let listener = socket.listen(LISTEN_BACKLOG)?;
    println!("join-floor listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> serde_json::Value {
        let mut joined = false;
        let reply = answer(text, &mut joined).expect("a reply");
        serde_json::from_str(&reply).expect("the reply is JSON")
    }

    #[test]
    fn a_join_gets_an_empty_ok_reply_with_its_refs_and_topic() {
        let reply = reply(r#"[null,"1","cart:a/b+c","phx_join",{"page":"/bench/1"}]"#);
        assert_eq!(
            reply,
            serde_json::json!([null, "1", "cart:a/b+c", "phx_reply", {"status": "ok", "response": {}}])
        );
    }

    #[test]
    fn a_cart_event_gets_the_canned_cart_and_a_heartbeat_an_empty_reply() {
        let cart = reply(r#"["1","2","cart:x","add_item",{"item_id":"3"}]"#);
        assert_eq!(cart[1], "2");
        assert_eq!(cart[4]["status"], "ok");
        assert_eq!(cart[4]["response"]["items"][0]["id"], 2);
        let beat = reply(r#"[null,"9","phoenix","heartbeat",{}]"#);
        assert_eq!(beat[4]["response"], serde_json::json!({}));
    }

    #[test]
    fn a_frame_that_is_not_a_v2_array_gets_no_reply() {
        let mut joined = false;
        assert_eq!(answer(r#"{"topic":"x"}"#, &mut joined), None);
        assert_eq!(answer("not json", &mut joined), None);
        assert!(!joined);
    }
}
