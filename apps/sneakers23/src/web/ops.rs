//! The node's control API (spec §16): what the operator CLI calls so that a release or a sale
//! goes through the running node — its database, its cache, its replication and its clients —
//! instead of changing the database behind the node's back.
//!
//! Two locks on the door: the request must come from a loopback address, and carry
//! `Authorization: Bearer <token>` where the token is derived from `SECRET_KEY_BASE`
//! ([`sneakers23_core::tokens::ops_token`]), which the CLI computes from the same secret.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `POST /ops/release/{product_id}` | [`sneakers23_core::inventory::Inventory::release`] | `{"released": id}` |
//! | `POST /ops/sell/{item_id}?units=N` or `?leave=N` | sells N units (default 1), or until N are left | `{"item_id", "sold", "available"}` |
//! | `POST /ops/sell-random-until-gone?per_tick=&tick_ms=&wait=` | the reducer (§6.8), in the background unless `wait=true` | `{"started": true}` or the report |
//! | `GET /ops/presence` | — | the CartTracker list `{cart id: {"metas": […]}}` |
//! | `GET /ops/inventory` | — | products, items and counts from the cache |
//!
//! The paths, queries and answers are typed in [`sneakers23_core::control_api`], shared with the CLI's
//! client.
//!
//! Errors are `{"error": "<what failed, with what input, what to do>"}` with 404 (unknown id),
//! 409 (nothing left to sell), 503 (database unavailable) or 500.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http::StatusCode;
use http::header::AUTHORIZATION;
use serde_json::json;
use subtle::ConstantTimeEq;

use channels::presence::Presence;

use crate::sockets::CART_TRACKER_TOPIC;
use sneakers23_core::control_api::{
    INVENTORY_PATH, InventoryReport, ItemReport, PRESENCE_PATH, ProductReport, ReducerDone,
    ReducerQuery, ReducerStarted, Released, SELL_RANDOM_UNTIL_GONE_PATH, SellQuery, SellReport,
};
use sneakers23_core::db::DbError;
use sneakers23_core::inventory::Inventory;
use sneakers23_core::model::{ItemId, ProductId};
use sneakers23_core::reducer::{self, ReducerOptions, ReducerReport};
use sneakers23_core::tokens::ops_token;

/// Most units one `sell` request may sell.
pub const MAX_UNITS_PER_REQUEST: u32 = 100_000;

/// What the control API acts on, and the token it requires. Cheap to clone.
#[derive(Clone)]
pub struct ControlState {
    inventory: Inventory,
    cart_tracker: Presence,
    /// Bearer token of the control API, derived from the secret.
    token: Arc<str>,
}

impl ControlState {
    /// The control API over `inventory` and `cart_tracker`, answering the token derived from
    /// `secret_key_base` (see [`sneakers23_core::tokens::ops_token`]).
    pub fn new(inventory: Inventory, cart_tracker: Presence, secret_key_base: &str) -> Self {
        Self {
            inventory,
            cart_tracker,
            token: Arc::from(ops_token(secret_key_base)),
        }
    }
}

/// The control routes, behind the loopback + token check.
pub fn router(state: ControlState) -> Router {
    Router::new()
        .route("/ops/release/{product_id}", post(release))
        .route("/ops/sell/{item_id}", post(sell))
        .route(SELL_RANDOM_UNTIL_GONE_PATH, post(sell_random_until_gone))
        .route(PRESENCE_PATH, get(presence))
        .route(INVENTORY_PATH, get(inventory))
        .layer(from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn db_error(e: &DbError) -> Response {
    let status = match e {
        DbError::ProductNotFound { .. } => StatusCode::NOT_FOUND,
        DbError::NotAvailable { .. } => StatusCode::CONFLICT,
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Refuses anything but a loopback client presenting the control token.
async fn authorize(State(state): State<ControlState>, request: Request, next: Next) -> Response {
    let loopback = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(addr)| addr.ip().is_loopback());
    if !loopback {
        return error(
            StatusCode::FORBIDDEN,
            "the control API only answers on the loopback interface; run the command on the node's machine",
        );
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(given.as_bytes().ct_eq(state.token.as_bytes())) {
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong or missing control token: give the CLI the node's SECRET_KEY_BASE \
             (or run it from the node's directory, where the development secret is stored)",
        );
    }
    next.run(request).await
}

async fn release(State(state): State<ControlState>, Path(product_id): Path<ProductId>) -> Response {
    match state.inventory.release(product_id).await {
        Ok(()) => Json(Released {
            released: product_id,
        })
        .into_response(),
        Err(e) => db_error(&e),
    }
}

async fn sell(
    State(state): State<ControlState>,
    Path(item_id): Path<ItemId>,
    Query(query): Query<SellQuery>,
) -> Response {
    let available = |state: &ControlState| state.inventory.snapshot().available_count(item_id);
    let units = match query.leave {
        Some(leave) => u32::try_from(available(&state))
            .unwrap_or(0)
            .saturating_sub(leave),
        None => query.units.unwrap_or(1),
    };
    if units > MAX_UNITS_PER_REQUEST {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_UNITS_PER_REQUEST} units per request; asked for {units}"),
        );
    }
    let mut sold = 0;
    for _ in 0..units {
        match state.inventory.sell_item(item_id).await {
            Ok(()) => sold += 1,
            Err(DbError::NotAvailable { .. }) if sold > 0 => break,
            Err(e) => return db_error(&e),
        }
    }
    Json(SellReport {
        item_id,
        sold,
        available: available(&state),
    })
    .into_response()
}

fn report_json(report: &ReducerReport) -> ReducerDone {
    ReducerDone {
        not_available: report.not_available,
        sold: report.sold,
        ticks: report.ticks,
    }
}

async fn sell_random_until_gone(
    State(state): State<ControlState>,
    Query(query): Query<ReducerQuery>,
) -> Response {
    let defaults = ReducerOptions::default();
    let options = ReducerOptions {
        per_tick: query.per_tick.unwrap_or(defaults.per_tick),
        tick: query.tick_ms.map_or(defaults.tick, Duration::from_millis),
    };
    if options.per_tick == 0 || options.tick.is_zero() {
        return error(
            StatusCode::BAD_REQUEST,
            "per_tick and tick_ms must be greater than zero",
        );
    }
    let inventory = state.inventory.clone();
    let run = async move { reducer::sell_random_until_gone(&inventory, options).await };
    if query.wait {
        return match run.await {
            Ok(report) => Json(report_json(&report)).into_response(),
            Err(e) => db_error(&e),
        };
    }
    tokio::spawn(async move {
        if let Err(e) = run.await {
            tracing::error!(error = %e, "sell-random-until-gone stopped");
        }
    });
    (
        StatusCode::ACCEPTED,
        Json(ReducerStarted {
            per_tick: options.per_tick,
            started: true,
            tick_ms: u64::try_from(options.tick.as_millis()).unwrap_or(u64::MAX),
        }),
    )
        .into_response()
}

async fn presence(State(state): State<ControlState>) -> Response {
    let list = state.cart_tracker.list(CART_TRACKER_TOPIC);
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        list.as_str().to_owned(),
    )
        .into_response()
}

async fn inventory(State(state): State<ControlState>) -> Response {
    let snapshot = state.inventory.snapshot();
    let products = snapshot
        .products()
        .map(|p| ProductReport {
            id: p.product.id,
            items: p
                .items
                .iter()
                .map(|i| ItemReport {
                    available_count: i.available_count,
                    id: i.id,
                    level: i.level(),
                    size: i.size.clone(),
                })
                .collect(),
            name: p.product.name.clone(),
            released: p.product.released,
        })
        .collect();
    Json(InventoryReport { products }).into_response()
}
