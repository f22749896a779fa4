//! Fixtures of the admin dashboard tests: the admin page and socket of a [`TestNode`], and
//! client-side mirrors of the two admin streams, applied the way the browsers apply them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::web::{PhxSocket, Response, TestNode, encode, raw_request};

/// `Authorization` header value for `user:password`.
pub fn basic(user_password: &str) -> String {
    format!("Basic {}", STANDARD.encode(user_password))
}

/// `GET path`, with an `Authorization` header when given.
pub async fn get_authorized(t: &TestNode, path: &str, authorization: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| vec![("Authorization", value)])
        .unwrap_or_default();
    raw_request(t.addr(), "GET", path, None, None, &headers).await
}

/// `GET /admin`, with an `Authorization` header when given.
pub async fn admin_page(t: &TestNode, authorization: Option<&str>) -> Response {
    get_authorized(t, "/admin", authorization).await
}

/// `GET /admin/aggregate.json`, with an `Authorization` header when given.
pub async fn aggregate_json(t: &TestNode, authorization: Option<&str>) -> Response {
    get_authorized(t, "/admin/aggregate.json", authorization).await
}

/// The value of `window.adminToken` in the admin page.
pub fn admin_token_of(page: &str) -> String {
    let start = page
        .find("window.adminToken = \"")
        .expect("window.adminToken in the page")
        + 21;
    let end = page[start..].find('"').expect("end of the token") + start;
    page[start..end].to_owned()
}

/// Connects `/admin_socket` with `token` (none: no token parameter).
pub async fn admin_socket_with(
    t: &TestNode,
    token: Option<&str>,
) -> Result<PhxSocket, tokio_tungstenite::tungstenite::Error> {
    let mut path = "/admin_socket/websocket?vsn=2.0.0".to_owned();
    if let Some(token) = token {
        path.push_str("&token=");
        path.push_str(&encode(token));
    }
    PhxSocket::connect_to(t.addr(), &path).await
}

/// Signs in on `/admin` with the development credentials and connects the admin socket with
/// the page's token.
pub async fn admin_socket(t: &TestNode) -> PhxSocket {
    let page = admin_page(t, Some(&basic("admin:password"))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    admin_socket_with(t, Some(&admin_token_of(&page.body)))
        .await
        .expect("admin socket connects with the page's token")
}

/// The HTTP status of a refused WebSocket handshake.
pub fn refused_status(error: &tokio_tungstenite::tungstenite::Error) -> Option<u16> {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// A presence state kept as phoenix.js `Presence` keeps it: `presence_state` replaces it,
/// `presence_diff` applies joins (appended) then leaves (by `phx_ref`).
#[derive(Debug, Default, Clone)]
pub struct PresenceMirror {
    /// key -> metas, in arrival order.
    pub state: Map<String, Value>,
}

impl PresenceMirror {
    /// Replaces the state with a `presence_state` payload.
    pub fn sync_state(&mut self, state: &Value) {
        self.state = state.as_object().cloned().unwrap_or_default();
    }

    /// Applies a `presence_diff` payload.
    pub fn sync_diff(&mut self, diff: &Value) {
        for (key, presence) in diff["joins"].as_object().into_iter().flatten() {
            let joined = presence["metas"].as_array().cloned().unwrap_or_default();
            let refs: Vec<&Value> = joined.iter().map(|m| &m["phx_ref"]).collect();
            let mut metas: Vec<Value> = self
                .state
                .get(key)
                .and_then(|p| p["metas"].as_array())
                .map(|m| {
                    m.iter()
                        .filter(|meta| !refs.contains(&&meta["phx_ref"]))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            metas.extend(joined.iter().cloned());
            self.state.insert(key.clone(), json!({ "metas": metas }));
        }
        for (key, presence) in diff["leaves"].as_object().into_iter().flatten() {
            let refs: Vec<Value> = presence["metas"]
                .as_array()
                .map(|m| m.iter().map(|meta| meta["phx_ref"].clone()).collect())
                .unwrap_or_default();
            if let Some(entry) = self.state.get_mut(key) {
                if let Some(metas) = entry["metas"].as_array_mut() {
                    metas.retain(|meta| !refs.contains(&meta["phx_ref"]));
                }
                if entry["metas"].as_array().is_none_or(Vec::is_empty) {
                    self.state.remove(key);
                }
            }
        }
    }

    /// The metas of `key` (empty when absent).
    pub fn metas(&self, key: &str) -> Vec<Value> {
        self.state
            .get(key)
            .and_then(|p| p["metas"].as_array())
            .cloned()
            .unwrap_or_default()
    }
}

/// The dashboard state as `admin.js` keeps it: an `aggregate` snapshot, then the
/// `aggregate_delta`s applied in sequence.
#[derive(Debug, Default, Clone)]
pub struct DashboardMirror {
    /// The snapshot with the deltas applied (`history` and `at` as of the snapshot).
    pub state: Value,
    /// Deltas applied.
    pub deltas: usize,
}

impl DashboardMirror {
    /// Starts from a snapshot.
    pub fn from_snapshot(snapshot: Value) -> Self {
        Self {
            state: snapshot,
            deltas: 0,
        }
    }

    /// Applies a delta; panics on a sequence gap (the tests never lose a message).
    pub fn apply(&mut self, delta: &Value) {
        let seq = delta["seq"].as_u64().expect("delta seq");
        let current = self.state["seq"].as_u64().expect("state seq");
        if seq <= current {
            return;
        }
        assert_eq!(seq, current + 1, "gap in the delta sequence: {delta}");
        apply_delta(&mut self.state, delta);
        self.deltas += 1;
    }

    /// `[page, tabs]` pairs as a map (`null` page under the key `"null"`).
    pub fn pages(&self) -> Map<String, Value> {
        self.state["pages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|pair| {
                let label = pair[0].as_str().unwrap_or("null").to_owned();
                (label, pair[1].clone())
            })
            .collect()
    }
}

/// Applies an `aggregate_delta` to an `aggregate` snapshot (what `admin.js` does).
pub fn apply_delta(snapshot: &mut Value, delta: &Value) {
    snapshot["seq"] = delta["seq"].clone();
    for field in ["shoppers", "tabs", "other_pages"] {
        if let Some(value) = delta.get(field) {
            snapshot[field] = value.clone();
        }
    }
    if let Some(pages) = delta.get("pages").and_then(Value::as_array) {
        let mut current: Vec<(Value, Value)> = snapshot["pages"]
            .as_array()
            .map(|a| a.iter().map(|p| (p[0].clone(), p[1].clone())).collect())
            .unwrap_or_default();
        for page in pages {
            current.retain(|(label, _)| *label != page[0]);
            if page[1] != json!(0) {
                current.push((page[0].clone(), page[1].clone()));
            }
        }
        current.sort_by_key(|(label, _)| label.as_str().map(str::to_owned));
        snapshot["pages"] = current
            .into_iter()
            .map(|(label, count)| json!([label, count]))
            .collect();
    }
    if let Some(carts) = delta.get("carts").and_then(Value::as_object) {
        for (item, count) in carts {
            if count == &json!(0) {
                if let Some(map) = snapshot["carts"].as_object_mut() {
                    map.remove(item);
                }
            } else {
                snapshot["carts"][item] = count.clone();
            }
        }
    }
    for field in ["stock", "released"] {
        if let Some(entries) = delta.get(field).and_then(Value::as_object) {
            for (key, value) in entries {
                snapshot[field][key] = value.clone();
            }
        }
    }
}
