//! Fixtures of the web tests: a real node started in-process on a free port, a browser-like HTTP
//! client (on the workspace's `http_client`) that keeps the session cookie, and a Phoenix V2
//! WebSocket client.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use channels::server::{ConnectInfo, Params};
use channels::testing::{self, TestSocket, Timeouts};
use futures::{SinkExt, StreamExt};
use http_client::{Method, Origin};
use serde_json::{Value, json};
use sneakers23::cart::CartSigner;
use sneakers23::model::ItemId;
use sneakers23::node::{self, Node, NodeConfig};
use sneakers23::sockets::product_socket;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Backend, EVENT_TIMEOUT, Fixture, TestDb, insert_fixture};

/// How long a test waits to be sure something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A node over a fresh database holding the §18.1 fixture.
pub struct TestNode {
    /// The running node.
    pub node: Node,
    /// Fixture ids.
    pub fx: Fixture,
    /// The database (kept alive for the node).
    pub db: TestDb,
    /// The node's `SECRET_KEY_BASE` (to check what it signs).
    pub secret_key_base: String,
}

impl TestNode {
    /// A node over the fixture with both products `released` or not.
    pub async fn start(backend: Backend, released: bool) -> Self {
        Self::start_with(backend, released, |_| {}).await
    }

    /// Same, with the configuration adjusted by `configure`.
    pub async fn start_with(
        backend: Backend,
        released: bool,
        configure: impl FnOnce(&mut NodeConfig),
    ) -> Self {
        let db = TestDb::new(backend).await;
        let fx = insert_fixture(&db.db, released).await;
        let mut config = NodeConfig::for_tests(&db.url);
        configure(&mut config);
        let secret_key_base = config.secret_key_base.clone();
        let node = node::start(config).await.expect("starting the node");
        Self {
            node,
            fx,
            db,
            secret_key_base,
        }
    }

    /// The node's address.
    pub fn addr(&self) -> SocketAddr {
        self.node.addr()
    }

    /// A signed cart token of `ids`, as the node signs them.
    pub fn serialized(&self, ids: &[ItemId]) -> String {
        self.node.state().cart_signer.sign(ids)
    }

    /// A browser-like HTTP client for this node.
    pub fn browser(&self) -> Browser {
        Browser {
            addr: self.addr(),
            cookie: None,
        }
    }

    /// A WebSocket connected to `/product_socket`.
    pub async fn socket(&self) -> PhxSocket {
        PhxSocket::connect(self.addr()).await
    }

    /// A ProductSocket client connected in process with the channel test kit, for tests of the
    /// channels' behaviour (joins, replies, pushes) rather than of the wire. Refutations wait
    /// [`QUIET`], long enough for an event to cross the database and the replication listener.
    pub async fn channel_client(&self) -> TestSocket {
        let state = self.node.state();
        let socket = Arc::new(product_socket(state.channel_deps.clone()));
        let mut client = testing::connect(
            &state.endpoint,
            socket,
            &Params::new(),
            ConnectInfo::default(),
        )
        .await
        .expect("the ProductSocket accepts everyone");
        client.set_timeouts(Timeouts {
            assert: EVENT_TIMEOUT,
            refute: QUIET,
        });
        client
    }

    /// Available count of an item in the database.
    pub async fn db_count(&self, item_id: ItemId) -> i32 {
        self.db
            .db
            .get_availability(item_id)
            .await
            .expect("reading availability")
            .map_or(0, |a| a.available_count)
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Response {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<http_client::Response> for Response {
    fn from(response: http_client::Response) -> Self {
        let headers = response
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        Self {
            status: response.status.as_u16(),
            headers,
            body: response.text(),
        }
    }
}

/// A minimal browser: one request per connection, keeps the session cookie.
pub struct Browser {
    addr: SocketAddr,
    /// `name=value` of the session cookie, once the server set one.
    pub cookie: Option<String>,
}

impl Browser {
    /// A browser without a session for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, cookie: None }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, None).await
    }

    /// `POST path` with an urlencoded form.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.request("POST", path, Some(body.join("&"))).await
    }

    /// The checkout page's PURCHASE: `POST /checkout` with the cart, the CSRF token and the order
    /// key the page carried.
    pub async fn purchase(&mut self, cart: &str, csrf: &str, order_key: &str) -> Response {
        self.post_form(
            "/checkout",
            &[
                ("serialized_cart", cart),
                ("_csrf_token", csrf),
                ("order_key", order_key),
            ],
        )
        .await
    }

    /// Any request; stores a `Set-Cookie` for later requests.
    pub async fn request(&mut self, method: &str, path: &str, form: Option<String>) -> Response {
        let response =
            raw_request(self.addr, method, path, self.cookie.as_deref(), form, &[]).await;
        if let Some(set) = response.header("set-cookie") {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        response
    }
}

/// Percent-encodes a form value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends one request and reads the whole response (a `POST` carries `form`, possibly empty, as
/// `application/x-www-form-urlencoded`).
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<String>,
    extra_headers: &[(&str, &str)],
) -> Response {
    let method = Method::from_bytes(method.as_bytes()).expect("an HTTP method");
    let post = method == Method::POST;
    let mut request = Origin::from_addr(addr)
        .request(method, path)
        .timeout(EVENT_TIMEOUT);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    for (name, value) in extra_headers {
        request = request.header(*name, *value);
    }
    if post {
        let form = form.unwrap_or_default();
        request = request.body("application/x-www-form-urlencoded", form);
    }
    let response = request.send().await;
    response.unwrap_or_else(|e| panic!("{path}: {e}")).into()
}

/// `GET path` with `headers`, from the local address `source`.
pub async fn get_from(
    source: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = Origin::from_addr(addr)
        .request(Method::GET, path)
        .local_address(source)
        .timeout(EVENT_TIMEOUT);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await;
    response.unwrap_or_else(|e| panic!("{path}: {e}")).into()
}

/// `GET path` that tolerates a refused, closed or silent connection (`None`), for servers that
/// may not answer yet.
pub async fn try_get(addr: SocketAddr, path: &str) -> Option<Response> {
    let request = Origin::from_addr(addr)
        .request(Method::GET, path)
        .timeout(EVENT_TIMEOUT);
    request.send().await.ok().map(Response::from)
}

/// The value of `window.cartId` in a page.
pub fn cart_id_of(page: &str) -> String {
    let start = page
        .find("window.cartId = \"")
        .expect("window.cartId in the page")
        + 17;
    let end = page[start..].find('"').expect("end of the cart id") + start;
    page[start..end].to_owned()
}

/// The value of the hidden input `name` in a page.
pub fn hidden_input(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("input {name} in {page}"))
        + marker.len();
    let end = page[start..].find('"').expect("end of the value") + start;
    page[start..end].to_owned()
}

/// A Phoenix Channels client speaking the V2 JSON protocol.
pub struct PhxSocket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
    join_refs: std::collections::HashMap<String, String>,
    /// Frames received but not consumed yet.
    pending: VecDeque<Value>,
}

impl PhxSocket {
    /// Connects to `/product_socket/websocket?vsn=2.0.0`.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_to(addr, "/product_socket/websocket?vsn=2.0.0")
            .await
            .expect("websocket connect")
    }

    /// Connects to `path_and_query` (e.g. `/admin_socket/websocket?vsn=2.0.0&token=…`); a
    /// refused connect is the handshake's error (`Http` with the status).
    pub async fn connect_to(
        addr: SocketAddr,
        path_and_query: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let url = format!("ws://{addr}{path_and_query}");
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self {
            ws,
            next_ref: 0,
            join_refs: Default::default(),
            pending: VecDeque::new(),
        })
    }

    async fn send(&mut self, topic: &str, event: &str, payload: Value, join: bool) -> String {
        self.next_ref += 1;
        let ref_ = self.next_ref.to_string();
        if join {
            self.join_refs.insert(topic.to_owned(), ref_.clone());
        }
        let join_ref = self.join_refs.get(topic).cloned();
        let frame = json!([join_ref, ref_, topic, event, payload]);
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("sending a frame");
        ref_
    }

    async fn recv(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next.expect("websocket frame") {
                Message::Text(text) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON frame"));
                }
                Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    async fn reply(&mut self, topic: &str, ref_: &str) -> Value {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        if let Some(pos) = self.pending.iter().position(|f| is_reply(f, topic, ref_)) {
            return self
                .pending
                .remove(pos)
                .map(|f| f[4].clone())
                .unwrap_or_default();
        }
        while let Some(frame) = self.recv(deadline).await {
            if is_reply(&frame, topic, ref_) {
                return frame[4].clone();
            }
            self.pending.push_back(frame);
        }
        panic!(
            "no reply to ref {ref_} on {topic}; received {:?}",
            self.pending
        );
    }

    /// Joins `topic`; returns the reply `{status, response}`.
    pub async fn join(&mut self, topic: &str, params: Value) -> Value {
        let ref_ = self.send(topic, "phx_join", params, true).await;
        self.reply(topic, &ref_).await
    }

    /// Joins and asserts the reply is ok.
    pub async fn join_ok(&mut self, topic: &str, params: Value) {
        let reply = self.join(topic, params).await;
        assert_eq!(reply["status"], "ok", "join {topic}: {reply}");
    }

    /// Pushes `event`; returns the reply `{status, response}`.
    pub async fn push(&mut self, topic: &str, event: &str, payload: Value) -> Value {
        let ref_ = self.send(topic, event, payload, false).await;
        self.reply(topic, &ref_).await
    }

    /// The payload of the next `event` on `topic` (earlier unconsumed frames included).
    pub async fn expect(&mut self, topic: &str, event: &str) -> Value {
        self.try_expect(topic, event, EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no {event} on {topic}; received {:?}", self.pending))
    }

    /// Asserts no `event` arrives on `topic` within [`QUIET`].
    pub async fn expect_none(&mut self, topic: &str, event: &str) {
        if let Some(payload) = self.try_expect(topic, event, QUIET).await {
            panic!("unexpected {event} on {topic}: {payload}");
        }
    }

    async fn try_expect(&mut self, topic: &str, event: &str, within: Duration) -> Option<Value> {
        let matches = |f: &Value| f[2] == topic && f[3] == event;
        if let Some(pos) = self.pending.iter().position(matches) {
            return self.pending.remove(pos).map(|f| f[4].clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        while let Some(frame) = self.recv(deadline).await {
            if matches(&frame) {
                return Some(frame[4].clone());
            }
            self.pending.push_back(frame);
        }
        None
    }
}

impl PhxSocket {
    /// Waits for the server to close the connection; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server closes the connection in time");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

fn is_reply(frame: &Value, topic: &str, ref_: &str) -> bool {
    frame[1] == ref_ && frame[2] == topic && frame[3] == "phx_reply"
}

/// The item ids of a rendered cart payload.
pub fn item_ids(cart: &Value) -> Vec<i64> {
    cart["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["id"].as_i64()).collect())
        .unwrap_or_default()
}

/// A 64-character cart id for channel tests.
pub fn cart_id(n: u8) -> String {
    format!("{:0>64}", format!("cart{n}"))
}
