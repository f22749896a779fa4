//! The console commands the book types into `iex`, reachable over HTTP on the running node.
//!
//! | command | iex in the book | request |
//! |---|---|---|
//! | `hello_sockets broadcast <topic> <event> <json>` | `HelloSocketsWeb.Endpoint.broadcast/3` | `POST /console/broadcast` |
//! | `hello_sockets dedupe <n,n,…> --times <k>` | `DedupeChannel.broadcast/2` | `POST /console/dedupe` |
//! | `hello_sockets push <user_id> <json> [--timed]` | `Producer.push/1`, `push_timed/1` | `POST /console/push` |
//! | `hello_sockets tracker list [--topic tracked]` | `UserTracker.list/0` | `GET /console/tracker?topic=` |
//! | `hello_sockets token <user_id>` | `Phoenix.Token.sign(Endpoint, "salt identifier", id)` | `GET /console/token?user_id=` |
//!
//! The node answers these only to clients on its own machine (loopback), as an `iex` session
//! would be. The client side sends one request per connection with the workspace's
//! [`http_client`], a JSON body both ways.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use channels::codec::{JsonObject, OutPayload};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::dedupe_channel;

/// A console request refused by the node.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn loopback_only(peer: SocketAddr) -> Result<(), Refused> {
    if peer.ip().is_loopback() {
        Ok(())
    } else {
        Err(Refused(
            StatusCode::FORBIDDEN,
            "the console answers only on the node's own machine".to_owned(),
        ))
    }
}

#[derive(Deserialize)]
struct BroadcastBody {
    topic: String,
    event: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct DedupeBody {
    numbers: Vec<Value>,
    times: u32,
}

#[derive(Deserialize)]
struct PushBody {
    user_id: String,
    data: Value,
    #[serde(default)]
    timed: bool,
}

#[derive(Deserialize)]
struct TopicQuery {
    topic: Option<String>,
}

#[derive(Deserialize)]
struct UserQuery {
    user_id: String,
}

/// The console's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/broadcast", post(broadcast))
        .route("/console/dedupe", post(dedupe))
        .route("/console/push", post(push))
        .route("/console/tracker", get(tracker_list))
        .route("/console/token", get(token))
}

async fn broadcast(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<BroadcastBody>,
) -> Result<Json<Value>, Refused> {
    loopback_only(peer)?;
    let payload = match &body.payload {
        Value::Null => JsonObject::empty(),
        value => JsonObject::from_value(value).map_err(|_| {
            Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the payload must be a JSON object, got {value}"),
            )
        })?,
    };
    app.endpoint
        .broadcast(&body.topic, &body.event, &OutPayload::Json(payload));
    Ok(Json(json!({"ok": true})))
}

async fn dedupe(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<DedupeBody>,
) -> Result<Json<Value>, Refused> {
    loopback_only(peer)?;
    dedupe_channel::broadcast(&app.endpoint, &body.numbers, body.times);
    let sent = body.numbers.len() as u64 * u64::from(body.times);
    Ok(Json(json!({"broadcasts": sent})))
}

async fn push(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<PushBody>,
) -> Result<Json<Value>, Refused> {
    loopback_only(peer)?;
    let pushed = if body.timed {
        app.producer.push_timed(&body.user_id, body.data)
    } else {
        app.producer.push(&body.user_id, body.data)
    };
    pushed.map_err(|full| Refused(StatusCode::SERVICE_UNAVAILABLE, full.to_string()))?;
    Ok(Json(json!({"ok": true})))
}

async fn tracker_list(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<TopicQuery>,
) -> Result<Json<Value>, Refused> {
    loopback_only(peer)?;
    let topic = query.topic.as_deref().unwrap_or(crate::user_tracker::TOPIC);
    Ok(Json(Value::Array(app.user_tracker.list(topic))))
}

async fn token(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<UserQuery>,
) -> Result<Json<Value>, Refused> {
    loopback_only(peer)?;
    let token = app
        .tokens
        .sign(&query.user_id)
        .map_err(|e| Refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(json!({ "token": token })))
}

/// Why a console command failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The URL is not `http://host:port`.
    #[error("invalid node URL {0:?}: expected http://HOST:PORT, e.g. http://127.0.0.1:4000")]
    InvalidUrl(String),
    /// Nothing answers there.
    #[error(
        "could not reach the node at {url}: {cause}; is `hello_sockets serve` running there? (set --node-url or NODE_URL, or PORT)"
    )]
    Unreachable {
        /// The node URL.
        url: String,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The answer was not HTTP with a JSON body.
    #[error("the node at {url} sent an unreadable answer: {reason}")]
    Protocol {
        /// The node URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The node refused the command.
    #[error("the node refused: HTTP {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The node's message.
        message: String,
    },
}

/// Sends one console request to the node at `url`; returns its JSON answer.
pub async fn request(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, ConsoleError> {
    let invalid_url = || ConsoleError::InvalidUrl(url.to_owned());
    let base = url.trim_end_matches('/');
    if base
        .strip_prefix("http://")
        .is_none_or(|a| a.is_empty() || a.contains('/'))
    {
        return Err(invalid_url());
    }
    let origin = http_client::Origin::parse(base).map_err(|_| invalid_url())?;
    let protocol = |reason: String| ConsoleError::Protocol {
        url: url.to_owned(),
        reason,
    };
    let method = http_client::Method::from_bytes(method.as_bytes())
        .map_err(|_| protocol(format!("{method:?} is not an HTTP method")))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let answer = origin
        .request(method, path)
        .body("application/json", body)
        .send()
        .await
        .map_err(|error| match error {
            http_client::Error::Connect { source, .. } => ConsoleError::Unreachable {
                url: url.to_owned(),
                cause: source,
            },
            other => protocol(other.to_string()),
        })?;
    let text = String::from_utf8(answer.body.to_vec()).map_err(|_| protocol("not UTF-8".into()))?;
    if !answer.status.is_success() {
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| text.trim().to_owned());
        return Err(ConsoleError::Refused {
            status: answer.status.as_u16(),
            message,
        });
    }
    serde_json::from_str(&text).map_err(|_| protocol("the body is not JSON".into()))
}
