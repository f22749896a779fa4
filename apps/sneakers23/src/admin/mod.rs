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
//! | `admin:dashboard` | `aggregate`, then `aggregate_delta` at most every 250 ms, only when something changed | the dashboard page: a few hundred bytes a second whatever the number of shoppers |
//!
//! The aggregate ([`aggregate::CartAggregate`], payloads documented there) is computed
//! incrementally from the tracker's own diffs: [`Dashboard::observer`] is attached to the
//! CartTracker when it starts ([`start_cart_tracker`]), so replaying what it receives always
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
//! [`router`] mounts all of it: `/admin`, `/admin/aggregate.json`, `/admin_socket/websocket`,
//! `/js/admin.js`, `/css/admin.css`.

pub mod aggregate;
pub mod auth;
pub mod channel;
pub mod json;
pub mod page;
pub mod socket;

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use channels::codec::OutPayload;
use channels::server::transport::{Transports, socket_router};
use channels::server::{Endpoint, to_object};
use channels::token::{KeyError, Signer};
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracker::{Diff, DiffHandler};

use crate::inventory::InventorySnapshot;
use crate::sockets::CART_TRACKER_TOPIC;
use crate::web::AppState;
use aggregate::{AggregateDelta, AggregateSnapshot, CartAggregate};

/// The topic of the aggregate view.
pub const DASHBOARD_TOPIC: &str = "admin:dashboard";
/// Event carrying a full [`AggregateSnapshot`] (after join, and as the reply to `snapshot`).
pub const AGGREGATE: &str = "aggregate";
/// Event carrying an [`AggregateDelta`].
pub const AGGREGATE_DELTA: &str = "aggregate_delta";
/// Shortest interval between two deltas.
pub const PUBLISH_PERIOD: Duration = Duration::from_millis(250);
/// Salt of the admin socket's token (spec §12).
pub const ADMIN_TOKEN_SALT: &str = "admin socket";
/// The data the admin page signs.
pub const ADMIN_TOKEN_DATA: &str = "admin";
/// Validity of an admin token: one day.
pub const ADMIN_TOKEN_MAX_AGE_SECS: i64 = 86_400;

struct Shared {
    aggregate: Mutex<CartAggregate>,
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
            .field("shoppers", &self.shared.aggregate.lock().shoppers())
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

impl DiffHandler for Observer {
    fn handle_diff(&self, diff: Diff) {
        let Some(changes) = diff.topics.get(CART_TRACKER_TOPIC) else {
            return;
        };
        if let Some(shared) = self.shared.upgrade() {
            shared.aggregate.lock().apply(changes);
        }
    }
}

impl Dashboard {
    /// An empty aggregate, not yet attached to anything.
    pub fn new() -> Dashboard {
        Dashboard {
            shared: Arc::new(Shared {
                aggregate: Mutex::new(CartAggregate::new()),
            }),
        }
    }

    /// The diff handler that keeps this aggregate up to date: pass it to
    /// [`Presence::start_with_observer`] for the CartTracker. Diffs of other topics are ignored.
    pub fn observer(&self) -> Arc<dyn DiffHandler> {
        Arc::new(Observer {
            shared: Arc::downgrade(&self.shared),
        })
    }

    /// The state admins joining now receive (as of the last publication).
    pub fn snapshot(&self) -> AggregateSnapshot {
        self.shared.aggregate.lock().snapshot()
    }

    /// Runs one publication step at `now_ms`: takes `catalog` when it is a new inventory
    /// snapshot, samples the history, and returns the delta to send, if anything changed.
    fn step(&self, catalog: Option<&InventorySnapshot>, now_ms: i64) -> Option<AggregateDelta> {
        let mut aggregate = self.shared.aggregate.lock();
        if let Some(catalog) = catalog {
            aggregate.set_inventory(catalog);
        }
        aggregate.sample_history(now_ms);
        aggregate.publish(now_ms)
    }

    /// Starts the task that, every [`PUBLISH_PERIOD`], reads the inventory through `catalog`
    /// and broadcasts `aggregate_delta` on [`DASHBOARD_TOPIC`] to this node's admins when
    /// something changed (and sets the gauges `dashboard_shoppers` and `dashboard_tabs`). The
    /// task ends when every clone of this dashboard is dropped.
    pub fn spawn_publisher(
        &self,
        endpoint: Endpoint,
        catalog: impl Fn() -> Arc<InventorySnapshot> + Send + 'static,
    ) -> JoinHandle<()> {
        let shared = Arc::downgrade(&self.shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_PERIOD);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut last: Option<Arc<InventorySnapshot>> = None;
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let dashboard = Dashboard { shared };
                let inventory = catalog();
                let fresh = last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &inventory));
                let delta = dashboard.step(fresh.then_some(&*inventory), now_ms());
                last = Some(inventory);
                if let Some(delta) = delta {
                    if let Some(shoppers) = delta.shoppers {
                        metrics::gauge!("dashboard_shoppers").set(shoppers as f64);
                    }
                    if let Some(tabs) = delta.tabs {
                        metrics::gauge!("dashboard_tabs").set(tabs as f64);
                    }
                    let payload = OutPayload::Json(to_object(&delta));
                    metrics::counter!("dashboard_deltas_total").increment(1);
                    endpoint.local_broadcast(DASHBOARD_TOPIC, AGGREGATE_DELTA, &payload);
                }
            }
        })
    }
}

/// The signer of admin tokens for `secret_key_base`.
pub fn admin_signer(secret_key_base: &str) -> Result<Signer, KeyError> {
    Signer::new(secret_key_base, ADMIN_TOKEN_SALT)
}

/// Wall-clock Unix time in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The admin routes: `GET /admin` and `GET /admin/aggregate.json` (Basic auth),
/// `/admin_socket/websocket`, and the dashboard's script and stylesheet. Merge into the
/// application router.
pub fn router<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    let signer = match admin_signer(&state.secret_key_base) {
        Ok(signer) => signer,
        Err(error) => {
            // The secret was validated at start; this cannot happen with a running node.
            tracing::error!(%error, "admin dashboard disabled: no admin token signer");
            return Router::new();
        }
    };
    let socket = Arc::new(socket::AdminSocket::new(
        signer.clone(),
        state.cart_tracker.clone(),
        state.dashboard.clone(),
    ));
    let sockets = socket_router(state.endpoint.clone(), socket, Transports::websocket_only());
    Router::new()
        .route("/admin", get(page::show))
        .route("/admin/aggregate.json", get(json::aggregate))
        .route("/js/admin.js", get(page::script))
        .route("/css/admin.css", get(page::stylesheet))
        .with_state(page::PageState { app: state, signer })
        .layer(axum::middleware::map_response(crate::web::nosniff))
        .nest_service("/admin_socket", sockets)
}
