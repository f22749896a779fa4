//! The admin dashboard of live shoppers (spec §14), made to stay light at 100k shoppers.
//!
//! # What an admin sees, and how it gets there
//!
//! Every cart channel (every shopper tab) is tracked in the CartTracker presence on topic
//! `admin:cart_tracker` with meta `{page_loaded_at, page, items}` (see [`crate::sockets::cart`]).
//! The dashboard reads that presence in two ways, both on the token-protected
//! [`socket::AdminSocket`] at `/admin_socket`:
//!
//! | topic | what the client gets | for |
//! |---|---|---|
//! | `admin:cart_tracker` | `presence_state`, then every `presence_diff`, exactly Phoenix's (spec §14.3) | compatibility: phoenix.js `Presence`, the book's dashboard, debugging (`/admin?presence=1` exposes `window.presence`) |
//! | `admin:dashboard` | `aggregate` (the current state), then `aggregate_delta` every 250 ms when something changed | the dashboard page: a few hundred bytes a second whatever the number of shoppers |
//!
//! The aggregate ([`aggregate::CartAggregate`], payloads documented there) is computed
//! incrementally from the tracker's own diffs: [`Dashboard::observer`] is attached to the
//! CartTracker topic when the node starts it (`node::start`), so replaying what it receives always
//! equals the tracker's list, and no admin ever causes the 100k presences to be listed. Like
//! `presence_diff`, deltas are broadcast node-locally: every node's tracker sees the whole
//! cluster, so each node computes the same aggregate for its own admins.
//!
//! Availability and release states come from this node's inventory cache, sampled at each
//! publication tick (an `Arc` comparison when nothing changed), so the dashboard follows
//! `released` and `stock_change` — local or replicated — live (§19.9).
//!
//! # Access
//!
//! `GET /admin` requires HTTP Basic credentials ([`auth`]); the page ([`page`]) embeds a fresh
//! Phoenix.Token (salt `"admin socket"`, data `"admin"`) as `window.adminToken`, which the admin
//! socket requires, at most one day old. `GET /admin/aggregate.json` ([`json`]), behind the same
//! credentials, answers the aggregate snapshot for programs (shopper-bench's `--check-admin`).
//!
//! [`router`] mounts all of it: `/admin`, `/admin/aggregate.json`, `/admin_socket/websocket`
//! (the page's script and stylesheet are static assets, [`crate::web::assets`]).

pub mod aggregate;
pub mod auth;
pub mod channel;
pub mod json;
pub mod page;
pub mod socket;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use channels::codec::OutPayload;
use channels::presence::{DiffSubscriber, Presence};
use channels::server::transport::{Transports, socket_router};
use channels::server::{Endpoint, to_object};
use channels::token::{KeyError, Signer, now_ms};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracker::TopicDiff;

use crate::config::AdminCredentials;
use crate::headers::nosniff;
use aggregate::{AggregateSnapshot, CartAggregate};
use sneakers23_core::inventory::{Inventory, InventorySnapshot};

/// The topic of the aggregate view.
pub const DASHBOARD_TOPIC: &str = "admin:dashboard";
/// Event carrying a full [`AggregateSnapshot`] (after join, and as the reply to `snapshot`).
pub const AGGREGATE: &str = "aggregate";
/// Event carrying an [`AggregateDelta`](aggregate::AggregateDelta).
pub const AGGREGATE_DELTA: &str = "aggregate_delta";
/// Shortest interval between two deltas.
pub const PUBLISH_PERIOD: Duration = Duration::from_millis(250);
/// Salt of the admin socket's token (spec §12).
pub const ADMIN_TOKEN_SALT: &str = "admin socket";
/// The data the admin page signs.
pub const ADMIN_TOKEN_DATA: &str = "admin";
/// Validity of an admin token: one day.
pub const ADMIN_TOKEN_MAX_AGE_SECS: i64 = 86_400;

/// Where publications go and where the inventory comes from, set by
/// [`Dashboard::spawn_publisher`].
struct Source {
    endpoint: Endpoint,
    catalog: Box<dyn Fn() -> Arc<InventorySnapshot> + Send + Sync>,
}

struct State {
    aggregate: CartAggregate,
    /// The inventory snapshot last given to the aggregate (compared by pointer).
    last_catalog: Option<Arc<InventorySnapshot>>,
}

struct Shared {
    state: Mutex<State>,
    source: OnceLock<Source>,
}

/// The live aggregate of the CartTracker. Cheap to clone.
///
/// Fed by [`Dashboard::observer`] (attach it to the CartTracker before anything is tracked) and
/// published by [`Dashboard::spawn_publisher`].
#[derive(Clone)]
pub struct Dashboard {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("shoppers", &self.shared.state.lock().aggregate.shoppers())
            .finish()
    }
}

impl Default for Dashboard {
    fn default() -> Self {
        Self::new()
    }
}

/// Applies the CartTracker topic's diffs to the aggregate.
struct Observer {
    shared: Weak<Shared>,
}

impl DiffSubscriber for Observer {
    fn handle_diff(&self, _topic: &str, changes: &TopicDiff) {
        if let Some(shared) = self.shared.upgrade() {
            shared.state.lock().aggregate.apply(changes);
        }
    }
}

impl Dashboard {
    /// An empty aggregate, not yet attached to anything.
    pub fn new() -> Dashboard {
        Dashboard {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    aggregate: CartAggregate::new(),
                    last_catalog: None,
                }),
                source: OnceLock::new(),
            }),
        }
    }

    /// The diff subscriber that keeps this aggregate up to date: subscribe it to the CartTracker
    /// topic with `channels::presence::PresenceBuilder::subscribe`.
    pub fn observer(&self) -> Arc<dyn DiffSubscriber> {
        Arc::new(Observer {
            shared: Arc::downgrade(&self.shared),
        })
    }

    /// The state an admin joining now receives: the current one, not the last periodic
    /// publication. When something changed since that publication (a release a moment ago),
    /// the change is published first, so the admins already watching get it as the delta whose
    /// `seq` the returned snapshot carries, and the delta stream stays gap-free for everyone.
    pub fn snapshot(&self) -> AggregateSnapshot {
        let mut state = self.shared.state.lock();
        self.publish_locked(&mut state, now_ms());
        state.aggregate.snapshot()
    }

    /// Runs one publication step at `now_ms` under the lock: takes the inventory when it is a
    /// new snapshot, samples the history, and broadcasts the delta, if anything changed. The
    /// broadcast happens under the lock so that deltas leave in `seq` order.
    fn publish_locked(&self, state: &mut State, now_ms: i64) {
        let source = self.shared.source.get();
        if let Some(source) = source {
            let inventory = (source.catalog)();
            let fresh = state
                .last_catalog
                .as_ref()
                .is_none_or(|l| !Arc::ptr_eq(l, &inventory));
            if fresh {
                state.aggregate.set_inventory(&inventory);
                state.last_catalog = Some(inventory);
            }
        }
        state.aggregate.sample_history(now_ms);
        let Some(delta) = state.aggregate.publish(now_ms) else {
            return;
        };
        if let Some(shoppers) = delta.shoppers {
            metrics::gauge!("dashboard_shoppers").set(shoppers as f64);
        }
        if let Some(tabs) = delta.tabs {
            metrics::gauge!("dashboard_tabs").set(tabs as f64);
        }
        if let Some(source) = source {
            let payload = OutPayload::Json(to_object(&delta));
            metrics::counter!("dashboard_deltas_total").increment(1);
            source
                .endpoint
                .local_broadcast(DASHBOARD_TOPIC, AGGREGATE_DELTA, &payload);
        }
    }

    /// Starts the task that, every [`PUBLISH_PERIOD`], reads the inventory through `catalog`
    /// and broadcasts `aggregate_delta` on [`DASHBOARD_TOPIC`] to this node's admins when
    /// something changed (and sets the gauges `dashboard_shoppers` and `dashboard_tabs`); an
    /// admin joining in between publishes at once (see [`Dashboard::snapshot`]). The task ends
    /// when every clone of this dashboard is dropped. Call it once per dashboard.
    pub fn spawn_publisher(
        &self,
        endpoint: Endpoint,
        catalog: impl Fn() -> Arc<InventorySnapshot> + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        if self
            .shared
            .source
            .set(Source {
                endpoint,
                catalog: Box::new(catalog),
            })
            .is_err()
        {
            tracing::error!("the dashboard publisher was started twice; keeping the first");
        }
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_PERIOD);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let dashboard = Dashboard { shared };
                let mut state = dashboard.shared.state.lock();
                dashboard.publish_locked(&mut state, now_ms());
            }
        })
    }
}

/// The signer of admin tokens for `secret_key_base`.
pub fn admin_signer(secret_key_base: &str) -> Result<Signer, KeyError> {
    Signer::new(secret_key_base, ADMIN_TOKEN_SALT)
}

/// What the admin routes share. Cheap to clone. Built by [`AdminState::new`], which fails
/// (and with it the node's start) when the admin token signer cannot be keyed; the secret
/// itself is not kept.
#[derive(Clone)]
pub struct AdminState {
    /// This node's inventory cache (the page's products).
    pub inventory: Inventory,
    /// The channels endpoint the admin socket runs on.
    pub endpoint: Endpoint,
    /// The CartTracker presence (`admin:cart_tracker`).
    pub cart_tracker: Presence,
    /// The live aggregate of the CartTracker.
    pub dashboard: Dashboard,
    /// The HTTP Basic credentials.
    pub credentials: Arc<AdminCredentials>,
    /// Failed logins by client address (throttling).
    pub logins: Arc<auth::LoginThrottle>,
    /// Signs the page's admin token and verifies it on the socket.
    pub signer: Signer,
}

impl AdminState {
    /// The admin area over these parts, with its token signer keyed by `secret_key_base`.
    pub fn new(
        inventory: Inventory,
        endpoint: Endpoint,
        cart_tracker: Presence,
        dashboard: Dashboard,
        credentials: AdminCredentials,
        secret_key_base: &str,
    ) -> Result<AdminState, KeyError> {
        Ok(AdminState {
            inventory,
            endpoint,
            cart_tracker,
            dashboard,
            credentials: Arc::new(credentials),
            logins: Arc::default(),
            signer: admin_signer(secret_key_base)?,
        })
    }
}

/// The admin routes: `GET /admin` and `GET /admin/aggregate.json` (Basic auth),
/// and `/admin_socket/websocket`. Merge into the application router (which serves the
/// dashboard's script and stylesheet with the other assets).
pub fn router(state: AdminState) -> Router {
    let socket = Arc::new(socket::AdminSocket::new(
        state.signer.clone(),
        state.cart_tracker.clone(),
        state.dashboard.clone(),
    ));
    let sockets = socket_router(state.endpoint.clone(), socket, Transports::websocket_only());
    Router::new()
        .route("/admin", get(page::show))
        .route("/admin/aggregate.json", get(json::aggregate))
        .with_state(state)
        .layer(axum::middleware::map_response(nosniff))
        .nest_service("/admin_socket", sockets)
}
