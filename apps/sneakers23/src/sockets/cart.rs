//! `cart:<cart id>`: one shopper's cart in one tab (spec §10.2–10.5, §14.4, §19).
//!
//! Every open tab of a shopper joins the same topic, named after the 64-character cart id of
//! their session. The knowledge of that id is the capability: there is no other check.
//!
//! **Join.** The topic suffix must be exactly 64 bytes, otherwise the join is refused. The
//! params carry `serialized` (the signed cart from localStorage; missing, tampered or expired
//! gives an empty cart) and `page` (the tab's path); params over the limits of
//! [`sneakers23_core::cart_meta::JoinParams`] (a page over 120 bytes, a cart token over 4 KiB, not an
//! object) refuse the join with the reason, and nothing is tracked. Right after the ok reply the channel
//! pushes `cart`, subscribes to `item_out:<id>` for each item, and tracks itself in the
//! CartTracker under the cart id with meta `{page_loaded_at, page, items}`.
//!
//! **add_item / remove_item** `{item_id}` change this tab's cart (checked against the cache;
//! a refusal is the error reply `{"reason": code}` with the code `duplicate_item`,
//! `invalid_item`, `not_released`, `out_of_stock`, `cart_full`, or `not_found` for a remove), reply with the rendered cart, and broadcast the whole new cart as
//! `cart_updated` to the other tabs (any node) with `broadcast_from`.
//!
//! **cart_updated** is intercepted, never delivered as is: a tab receiving it replaces its cart
//! with the one in the message and pushes `cart`. A completed checkout sends one with an empty
//! cart to every tab ([`clear_cart_everywhere`]).
//!
//! **`item_out:<id>`** messages (node-local) re-render the cart so the sold-out item greys out.
//!
//! After every change the `item_out` subscriptions are recomputed from the cart's contents (set
//! difference, §19.3) and the presence meta's `items` updated.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use channels::codec::{OutPayload, Payload};
use channels::presence::Tracked;
use channels::server::{Channel, Context, Endpoint, Info, Outcome, Reply, StopReason, to_object};
use channels::token::now_ms;
use metrics::Counter;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::Serialize;
use serde_json::{Value, json};

use super::{CART_TRACKER_TOPIC, ChannelDeps};
use crate::notifier::item_out_topic;
use sneakers23_core::cart::{
    Cart, CartError, CartSigner, RenderedCart, item_id_from_payload, render,
};
use sneakers23_core::cart_meta::{CartMeta, JoinParams};
use sneakers23_core::model::ItemId;

/// Length of a cart id in bytes.
pub const CART_ID_LEN: usize = 64;
/// Server → client event carrying the rendered cart.
pub const CART: &str = "cart";
/// The internal broadcast between the tabs of one cart.
pub const CART_UPDATED: &str = "cart_updated";

/// The topic of a cart.
pub fn cart_topic(cart_id: &str) -> String {
    format!("cart:{cart_id}")
}

/// The `cart_updated` payload (spec §10.4).
#[derive(Debug, Serialize)]
struct CartUpdated<'a> {
    serialized: &'a str,
    added: &'a [ItemId],
    removed: &'a [ItemId],
}

/// Tells every tab of `cart_id`, on every node, that its cart is now empty (spec §19.8: after a
/// completed purchase).
pub fn clear_cart_everywhere(endpoint: &Endpoint, signer: &dyn CartSigner, cart_id: &str) {
    let serialized = Cart::new().serialize(signer);
    let payload = CartUpdated {
        serialized: &serialized,
        added: &[],
        removed: &[],
    };
    endpoint.broadcast(
        &cart_topic(cart_id),
        CART_UPDATED,
        &OutPayload::Json(to_object(&payload)),
    );
}

/// The cart channel's counters, registered once per socket: every join and every cart
/// operation counts one, and looking a labelled counter up in the recorder each time cost more
/// than counting.
pub struct CartMetrics {
    joins: Counter,
    /// `store_cart_operations_total` by (op, result): two ops times a handful of results.
    operations: Mutex<FxHashMap<(&'static str, &'static str), Counter>>,
}

impl CartMetrics {
    /// Registers the counters with the recorder installed now.
    pub fn register() -> Self {
        Self {
            joins: metrics::counter!("store_cart_joins_total"),
            operations: Mutex::new(FxHashMap::default()),
        }
    }

    fn operation(&self, op: &'static str, error: Option<CartError>) {
        let result = error.map_or("ok", CartError::code);
        self.operations
            .lock()
            .entry((op, result))
            .or_insert_with(
                || metrics::counter!("store_cart_operations_total", "op" => op, "result" => result),
            )
            .increment(1);
    }
}

/// One tab's cart channel.
pub struct CartChannel {
    deps: Arc<ChannelDeps>,
    metrics: Arc<CartMetrics>,
    cart_id: String,
    cart: Cart,
    page: Option<String>,
    page_loaded_at: i64,
    /// Items whose `item_out` topic this channel is subscribed to.
    subscribed: BTreeSet<ItemId>,
    tracked: Option<Tracked>,
}

impl CartChannel {
    /// A channel not joined yet.
    pub fn new(deps: Arc<ChannelDeps>, metrics: Arc<CartMetrics>) -> Self {
        Self {
            deps,
            metrics,
            cart_id: String::new(),
            cart: Cart::new(),
            page: None,
            page_loaded_at: 0,
            subscribed: BTreeSet::new(),
            tracked: None,
        }
    }

    fn render(&self) -> RenderedCart {
        render(
            &self.deps.inventory.snapshot(),
            &self.cart,
            self.deps.cart_signer.as_ref(),
        )
    }

    /// Subscribes to the `item_out` topics of the items in the cart and unsubscribes from the
    /// others.
    fn sync_subscriptions(&mut self, ctx: &mut Context<'_>) {
        let wanted: BTreeSet<ItemId> = self.cart.item_ids().iter().copied().collect();
        for &id in wanted.difference(&self.subscribed) {
            ctx.subscribe(&item_out_topic(id));
        }
        for &id in self.subscribed.difference(&wanted) {
            ctx.unsubscribe(&item_out_topic(id));
        }
        self.subscribed = wanted;
    }

    /// The tab's presence meta, serialized by the tracker straight to the text it stores.
    fn meta(&self) -> CartMeta {
        CartMeta {
            page_loaded_at: self.page_loaded_at,
            page: self.page.clone(),
            items: self.cart.item_ids().to_vec(),
        }
    }

    fn track(&mut self) {
        match self
            .deps
            .cart_tracker
            .track(CART_TRACKER_TOPIC, &self.cart_id, self.meta())
        {
            Ok(tracked) => self.tracked = Some(tracked),
            Err(error) => {
                sneakers23_core::logs::client_warning_with("could not track a cart", &error);
            }
        }
    }

    fn update_presence(&self) {
        if let Some(tracked) = &self.tracked
            && let Err(error) = self.deps.cart_tracker.update(tracked, self.meta())
        {
            sneakers23_core::logs::client_warning_with(
                "could not update a cart's presence",
                &error,
            );
        }
    }

    /// After this tab changed the cart: subscriptions, presence, tell the other tabs; returns
    /// the reply.
    fn changed(&mut self, ctx: &mut Context<'_>, added: &[ItemId], removed: &[ItemId]) -> Reply {
        self.sync_subscriptions(ctx);
        let rendered = self.render();
        let update = CartUpdated {
            serialized: &rendered.serialized,
            added,
            removed,
        };
        ctx.broadcast_from(CART_UPDATED, to_object(&update));
        self.update_presence();
        Reply::ok(to_object(&rendered))
    }

    fn add_item(&mut self, payload: &Value, ctx: &mut Context<'_>) -> Reply {
        let result = item_id_from_payload(payload).and_then(|id| {
            let snapshot = self.deps.inventory.snapshot();
            self.cart
                .add_checked(&snapshot, id, self.deps.max_cart_items)
                .map(|()| id)
        });
        self.metrics.operation("add_item", result.err());
        match result {
            Ok(id) => self.changed(ctx, &[id], &[]),
            Err(error) => Reply::error(to_object(&error.reply())),
        }
    }

    fn remove_item(&mut self, payload: &Value, ctx: &mut Context<'_>) -> Reply {
        let result =
            item_id_from_payload(payload).and_then(|id| self.cart.remove_item(id).map(|()| id));
        self.metrics.operation("remove_item", result.err());
        match result {
            Ok(id) => self.changed(ctx, &[], &[id]),
            Err(error) => Reply::error(to_object(&error.reply())),
        }
    }
}

#[async_trait]
impl Channel for CartChannel {
    async fn join(
        &mut self,
        topic: &str,
        params: Payload,
        _ctx: &mut Context<'_>,
    ) -> Result<OutPayload, OutPayload> {
        let cart_id = topic.strip_prefix("cart:").unwrap_or_default();
        if cart_id.len() != CART_ID_LEN {
            sneakers23_core::logs::client_error("cart join refused: the cart id is not 64 bytes");
            return Err(OutPayload::Json(to_object(&json!({
                "reason": "invalid cart id: expected 64 characters"
            }))));
        }
        let params = match JoinParams::parse(&params) {
            Ok(params) => params,
            Err(reason) => {
                sneakers23_core::logs::client_error_with(
                    "cart join refused: invalid params",
                    &reason,
                );
                metrics::counter!("store_cart_joins_refused_total").increment(1);
                return Err(OutPayload::Json(to_object(&json!({ "reason": reason }))));
            }
        };
        self.cart_id = cart_id.to_owned();
        let mut cart = Cart::restore(self.deps.cart_signer.as_ref(), params.serialized.as_deref());
        if cart.len() > self.deps.max_cart_items {
            // A token signed under a larger MAX_CART_ITEMS: keep the first ones.
            cart = Cart::from_item_ids(
                cart.item_ids()
                    .iter()
                    .copied()
                    .take(self.deps.max_cart_items),
            );
        }
        self.cart = cart;
        self.page = params.page;
        Ok(OutPayload::empty())
    }

    async fn after_join(&mut self, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        ctx.push(CART, to_object(&self.render()));
        self.sync_subscriptions(ctx);
        self.page_loaded_at = now_ms();
        self.track();
        self.metrics.joins.increment(1);
        Ok(())
    }

    async fn handle_in(&mut self, event: &str, payload: Payload, ctx: &mut Context<'_>) -> Outcome {
        let payload = match payload {
            Payload::Json(value) => value,
            Payload::Binary(_) => Value::Null,
        };
        match event {
            "add_item" => self.add_item(&payload, ctx).into(),
            "remove_item" => self.remove_item(&payload, ctx).into(),
            _ => Reply::error_reason("unknown event").into(),
        }
    }

    fn intercepts(&self) -> &'static [&'static str] {
        &[CART_UPDATED]
    }

    async fn handle_out(
        &mut self,
        event: &str,
        payload: Value,
        ctx: &mut Context<'_>,
    ) -> Result<(), StopReason> {
        if event != CART_UPDATED {
            return Ok(());
        }
        let serialized = payload.get("serialized").and_then(Value::as_str);
        self.cart = Cart::restore(self.deps.cart_signer.as_ref(), serialized);
        self.sync_subscriptions(ctx);
        ctx.push(CART, to_object(&self.render()));
        self.update_presence();
        Ok(())
    }

    async fn handle_info(&mut self, info: Info, ctx: &mut Context<'_>) -> Result<(), StopReason> {
        if let Info::PubSub(message) = info
            && message.topic.starts_with("item_out:")
        {
            ctx.push(CART, to_object(&self.render()));
        }
        Ok(())
    }
}
