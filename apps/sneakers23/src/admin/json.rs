//! `GET /admin/aggregate.json`: the dashboard's aggregate for programs (load testers, probes).
//!
//! The body is exactly the [`AggregateSnapshot`](super::aggregate::AggregateSnapshot) an admin
//! receives as the `aggregate` push after joining `admin:dashboard` — `shoppers` (distinct
//! carts), `tabs`, `pages`, `carts`, `stock`, `released`, `history`, with the sequence number
//! `seq` and server time `at` of the publication it reflects. Like that push it is the state as of
//! the last publication, so it lags the CartTracker by at most [`PUBLISH_PERIOD`](super::PUBLISH_PERIOD)
//! (plus, in a cluster, the tracker's replication delay): a client waiting for a count polls.
//!
//! It is behind the same HTTP Basic credentials as `/admin` ([`super::auth`]) and answered with
//! `Cache-Control: no-store`.
//!
//! ```text
//! $ curl -u admin:password http://127.0.0.1:4000/admin/aggregate.json
//! {"seq":7,"at":1700000000000,"shoppers":2,"tabs":3,"pages":[["/",2],[null,1]],...}
//! ```

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AdminState;
use super::auth;

/// `GET /admin/aggregate.json`: 401 with a Basic challenge without the admin credentials, the
/// current aggregate snapshot as JSON otherwise.
pub async fn aggregate(
    State(state): State<AdminState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
) -> Response {
    let ip = auth::client_ip(&extensions);
    if let Some(refused) = auth::authorize(&headers, &state.credentials, &state.logins, ip) {
        return refused;
    }
    let mut response = Json(state.dashboard.snapshot()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
