//! The store on a cluster of real processes: several `sneakers23 serve` binaries sharing one
//! PostgreSQL database (a fresh one per test) and one broker (the Redis at 127.0.0.1:6379 and the
//! NATS at 127.0.0.1:4222 of this machine; every test runs once with each, under its own cluster
//! name so that tests never hear each other).
//!
//! Each node reaches the broker through its own [`TcpProxy`], so a test can cut one node off (a
//! partition) or all of them (the broker restarting, as the nodes see it) without touching the
//! broker, which other tests and people use. Tracker periods are short (100 ms ticks, 1.5 s down
//! period) so that failures are detected in seconds.
//!
//! Scenarios:
//! - carts opened on every node appear in every node's presence list within a tick or two; a node
//!   killed with -9 leaves every other view after the down period while the others keep serving;
//!   restarted under the same name (a new incarnation) it brings no ghost and no duplicate;
//! - a node partitioned from the broker and healed: every list converges to the same set;
//! - the broker lost during a stream of joins and leaves: no node crashes, lists converge after;
//! - SIGTERM with `PERMDOWN_ON_SHUTDOWN`: sockets drained (1012), the other nodes drop the node's
//!   carts at once (long before the down period), the process exits within its bound;
//! - inventory across nodes: operator commands (`--node-url`) on one node, `released` and
//!   `stock_change` reaching clients of every node, `item_out` re-rendering carts of every node;
//! - concurrent purchases spread over two nodes sell exactly the stock;
//! - invalid cluster settings (tracker periods, `PUBSUB_URL`) are refused at start.
//!
//! The tests of this file take turns (a file-wide lock): a handful of node processes at a time is
//! what two cores can run with 100 ms ticks. Every wait is on a condition with a deadline.
//!
//! One file of more than 600 lines on purpose: every scenario uses the cluster harness defined
//! here (nodes, a proxy per node, the turn lock), and each file under `tests/` is one more binary
//! linking the whole store.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::StoreProcess;
use common::web::{PhxSocket, hidden_input, raw_request};
use common::{Backend, TestDb, insert_fixture, insert_single_item};
use parking_lot::Mutex;
use serde_json::{Value, json};
use sneakers23::cart::CartSigner;
use sneakers23::tokens::{CartTokens, ops_token};
use test_support::TcpProxy;
use tokio::process::{Child, Command};

const SECRET: &str = "cluster test secret key base, long enough for every signer of the store";
const BIN: &str = env!("CARGO_BIN_EXE_sneakers23");
const BROADCAST_MS: u64 = 100;
const DOWN_MS: u64 = 1500;
/// Deadline of conditions that depend on the tracker converging.
const CONVERGE: Duration = Duration::from_secs(20);

/// One node process at a time per test of this file (see the module docs).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs each named `async fn name(broker: Broker)` once per broker, as `redis::name` and
/// `nats::name`.
macro_rules! broker_tests {
    ($($name:ident),+ $(,)?) => {
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    super::$name(super::Broker::Redis).await;
                }
            )+
        }
        mod nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let _turn = super::TURN.lock().await;
                    super::$name(super::Broker::Nats).await;
                }
            )+
        }
    };
}

broker_tests!(
    carts_converge_and_a_killed_node_leaves_without_ghosts,
    a_partitioned_node_converges_after_healing,
    losing_the_broker_during_traffic_crashes_nothing_and_heals,
    sigterm_drains_and_permdowns_at_once,
    inventory_events_reach_the_clients_of_every_node,
    concurrent_purchases_on_two_nodes_sell_exactly_the_stock,
);

/// The broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    /// Redis at `REDIS_ADDR` (127.0.0.1:6379).
    Redis,
    /// NATS at `NATS_ADDR` (127.0.0.1:4222).
    Nats,
}

impl Broker {
    fn addr(self) -> SocketAddr {
        let (var, default) = match self {
            Broker::Redis => ("REDIS_ADDR", "127.0.0.1:6379"),
            Broker::Nats => ("NATS_ADDR", "127.0.0.1:4222"),
        };
        std::env::var(var)
            .unwrap_or_else(|_| default.to_owned())
            .parse()
            .expect("a broker address host:port")
    }

    fn url(self, port: u16, cluster: &str) -> String {
        let scheme = match self {
            Broker::Redis => "redis",
            Broker::Nats => "nats",
        };
        format!("{scheme}://127.0.0.1:{port}/?cluster={cluster}&ping_ms=500&backoff_max_ms=500")
    }
}

/// A running `sneakers23 serve` process.
struct NodeProc {
    name: String,
    addr: SocketAddr,
    child: Child,
    proxy: TcpProxy,
    log: Arc<Mutex<String>>,
}

impl NodeProc {
    /// Whether the process is still running.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Nodes over one database and one broker.
struct Cluster {
    broker: Broker,
    cluster: String,
    db: TestDb,
    dir: tempfile::TempDir,
    nodes: BTreeMap<String, NodeProc>,
    extra_env: Vec<(String, String)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in self.nodes.values() {
                let log = node.log.lock();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- log of {} (last lines) ----", node.name);
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

impl Cluster {
    /// A fresh PostgreSQL database with the §18.1 fixture (released or not) and no node yet.
    async fn new(broker: Broker, released: bool) -> (Cluster, common::Fixture) {
        let db = TestDb::new(Backend::Postgres).await;
        let fx = insert_fixture(&db.db, released).await;
        let cluster = Cluster {
            broker,
            cluster: format!("c{:016x}", rand::random::<u64>()),
            db,
            dir: tempfile::tempdir().expect("temporary directory"),
            nodes: BTreeMap::new(),
            extra_env: Vec::new(),
        };
        (cluster, fx)
    }

    /// Starts node `name` (again, if it ran before: a new incarnation under the same name).
    async fn start(&mut self, name: &str) {
        let proxy = match self.nodes.remove(name) {
            Some(mut old) => {
                let _ = old.child.kill().await;
                old.proxy
            }
            None => TcpProxy::start(self.broker.addr()).await,
        };
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .env("PORT", "0")
            .env("DATABASE_URL", &self.db.url)
            .env("SECRET_KEY_BASE", SECRET)
            .env("SECRET_KEY_FILE", self.dir.path().join("secret"))
            .env("NODE_NAME", name)
            .env("PUBSUB_URL", self.broker.url(proxy.port(), &self.cluster))
            .env("SEED_IF_EMPTY", "false")
            .env("TRACKER_BROADCAST_PERIOD_MS", BROADCAST_MS.to_string())
            .env("TRACKER_DOWN_PERIOD_MS", DOWN_MS.to_string())
            .env("TRACKER_PERMDOWN_PERIOD_MS", "600000")
            .env("TRACKER_POOL_SIZE", "2")
            .env("POOL_SIZE", "4")
            .env("RUST_LOG", "info")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let StoreProcess { addr, child, log } = StoreProcess::spawn(command).await;
        self.nodes.insert(
            name.to_owned(),
            NodeProc {
                name: name.to_owned(),
                addr,
                child,
                proxy,
                log,
            },
        );
    }

    fn node(&mut self, name: &str) -> &mut NodeProc {
        self.nodes
            .get_mut(name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.nodes[name].addr
    }

    /// Kills node `name` with SIGKILL and forgets its process (its proxy is kept for a restart).
    async fn kill9(&mut self, name: &str) {
        let node = self.node(name);
        node.child.kill().await.expect("kill -9");
    }

    /// The CartTracker list of a node: cart id → number of tabs (metas).
    async fn presence(&self, name: &str) -> Option<BTreeMap<String, usize>> {
        let token = format!("Bearer {}", ops_token(SECRET));
        let addr = self.addr(name);
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            raw_request(
                addr,
                "GET",
                "/ops/presence",
                None,
                None,
                &[("Authorization", &token)],
            ),
        )
        .await
        .ok()?;
        let list: Value = serde_json::from_str(&response.body).ok()?;
        Some(
            list.as_object()?
                .iter()
                .map(|(k, v)| (k.clone(), v["metas"].as_array().map_or(0, Vec::len)))
                .collect(),
        )
    }

    /// `GET /health` of a node.
    async fn health(&self, name: &str) -> Value {
        let response = raw_request(self.addr(name), "GET", "/health", None, None, &[]).await;
        serde_json::from_str(&response.body).unwrap_or(Value::Null)
    }

    /// Waits until every node of `names` lists exactly the carts of `want`, one tab each; returns
    /// how long it took.
    async fn wait_lists(&self, names: &[&str], want: &BTreeSet<String>, what: &str) -> Duration {
        let started = Instant::now();
        let expected: BTreeMap<String, usize> = want.iter().map(|c| (c.clone(), 1)).collect();
        loop {
            let mut all = true;
            let mut seen = Vec::new();
            for name in names {
                let list = self.presence(name).await;
                all &= list.as_ref() == Some(&expected);
                seen.push((name.to_string(), list.map(|l| l.len())));
            }
            if all {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < CONVERGE,
                "{what}: lists did not converge to {} carts within {CONVERGE:?}: {seen:?}",
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the operator CLI against node `name`.
    async fn cli(&self, name: &str, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .args(args)
            .args(["--node-url", &format!("http://{}", self.addr(name))])
            .env("SECRET_KEY_BASE", SECRET)
            .output()
            .await
            .expect("running the CLI");
        assert!(
            output.status.success(),
            "sneakers23 {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// A 64-character cart id.
fn cart(n: u32) -> String {
    format!("{:0>64}", format!("cluster-cart-{n}"))
}

/// A tab: one socket with the cart channel of `cart_id` joined.
async fn open_cart(addr: SocketAddr, cart_id: &str) -> PhxSocket {
    let mut socket = PhxSocket::connect(addr).await;
    socket
        .join_ok(
            &format!("cart:{cart_id}"),
            json!({"serialized": null, "page": "/"}),
        )
        .await;
    socket
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

async fn carts_converge_and_a_killed_node_leaves_without_ghosts(broker: Broker) {
    let (mut c, _fx) = Cluster::new(broker, true).await;
    for name in ["a", "b", "c"] {
        c.start(name).await;
    }
    // Every node knows the two others before carts are opened (tracker heartbeats).
    for name in ["a", "b", "c"] {
        let deadline = Instant::now() + CONVERGE;
        while c.health(name).await["cluster"]["nodes"]
            .as_array()
            .map_or(0, Vec::len)
            < 2
        {
            assert!(Instant::now() < deadline, "{name} does not see its peers");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Two carts per node, opened at once; every node lists all six.
    let mut tabs: BTreeMap<String, Vec<PhxSocket>> = BTreeMap::new();
    let mut ids = Vec::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        for k in 0..2 {
            let id = cart((i * 2 + k) as u32);
            tabs.entry(name.to_owned())
                .or_default()
                .push(open_cart(c.addr(name), &id).await);
            ids.push(id);
        }
    }
    let all = set(ids.clone());
    let took = c.wait_lists(&["a", "b", "c"], &all, "joins").await;
    eprintln!("[{broker:?}] six carts on three nodes converged in {took:?}");
    assert!(
        took < Duration::from_millis(BROADCAST_MS * 10),
        "convergence took {took:?}"
    );

    // kill -9 of c: its carts leave the other views after the down period.
    c.kill9("c").await;
    tabs.remove("c");
    let survivors = set(ids[..4].to_vec());
    let took = c.wait_lists(&["a", "b"], &survivors, "after kill -9").await;
    eprintln!("[{broker:?}] dead node's carts gone in {took:?} (down period {DOWN_MS} ms)");
    assert!(
        took < Duration::from_millis(DOWN_MS + 3000),
        "leaves took {took:?}"
    );
    // The others keep serving: a new cart on a appears on b.
    let extra = cart(100);
    tabs.get_mut("a")
        .expect("tabs of a")
        .push(open_cart(c.addr("a"), &extra).await);
    let mut now = survivors.clone();
    now.insert(extra.clone());
    c.wait_lists(&["a", "b"], &now, "serving after the kill")
        .await;

    // c restarts under the same name: no ghost of its previous life, and once its shoppers
    // reconnect, each cart is listed once everywhere.
    c.start("c").await;
    c.wait_lists(&["a", "b", "c"], &now, "restart without ghosts")
        .await;
    let mut back = Vec::new();
    for id in &ids[4..] {
        back.push(open_cart(c.addr("c"), id).await);
    }
    now.extend(ids[4..].iter().cloned());
    let took = c
        .wait_lists(&["a", "b", "c"], &now, "restart without duplicates")
        .await;
    eprintln!("[{broker:?}] restarted node's carts converged in {took:?}");
    for name in ["a", "b", "c"] {
        assert!(c.node(name).alive(), "{name} is running");
    }
    drop(back);
    drop(tabs);
}

async fn a_partitioned_node_converges_after_healing(broker: Broker) {
    let (mut c, _fx) = Cluster::new(broker, true).await;
    for name in ["a", "b", "c"] {
        c.start(name).await;
    }
    let mut tabs = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let id = cart(i as u32);
        tabs.push(open_cart(c.addr(name), &id).await);
        ids.insert(id);
    }
    c.wait_lists(&["a", "b", "c"], &ids, "before the partition")
        .await;

    // Cut c off the broker.
    c.node("c").proxy.stop().await;
    let deadline = Instant::now() + CONVERGE;
    while c.health("c").await["cluster"]["connected"] != json!(false) {
        assert!(Instant::now() < deadline, "c reports the broker lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.health("c").await["status"], "degraded");
    // Each side goes on alone: new carts on a and c, each side sees its own.
    let on_a = cart(10);
    let on_c = cart(11);
    tabs.push(open_cart(c.addr("a"), &on_a).await);
    tabs.push(open_cart(c.addr("c"), &on_c).await);
    let ab = set([cart(0), cart(1), on_a.clone()]);
    c.wait_lists(&["a", "b"], &ab, "majority side").await;
    let alone = set([cart(2), on_c.clone()]);
    c.wait_lists(&["c"], &alone, "partitioned node").await;

    // Heal: every list converges to every cart.
    c.node("c").proxy.restart().await;
    let mut everything = ab.clone();
    everything.extend(alone);
    let took = c
        .wait_lists(&["a", "b", "c"], &everything, "after healing")
        .await;
    eprintln!("[{broker:?}] partition healed, lists converged in {took:?}");
    assert_eq!(c.health("c").await["cluster"]["connected"], json!(true));
    drop(tabs);
}

async fn losing_the_broker_during_traffic_crashes_nothing_and_heals(broker: Broker) {
    let (mut c, _fx) = Cluster::new(broker, true).await;
    for name in ["a", "b", "c"] {
        c.start(name).await;
    }
    let names = ["a", "b", "c"];
    // A stream of shoppers: every 30 ms one opens a cart on the next node, and one of the
    // oldest leaves; the test knows which carts are open.
    let mut open: Vec<(String, PhxSocket)> = Vec::new();
    let mut next = 0u32;
    let mut step = |open: &mut Vec<(String, PhxSocket)>, c: &Cluster| {
        let id = cart(next);
        let addr = c.addr(names[next as usize % 3]);
        next += 1;
        let close = open.len() >= 12;
        if close {
            open.remove(0);
        }
        async move { (id.clone(), open_cart(addr, &id).await) }
    };
    for _ in 0..12 {
        let tab = step(&mut open, &c).await;
        open.push(tab);
    }
    // The broker goes away for every node (as when it restarts), for longer than the down
    // period, while shoppers keep coming and going.
    for name in names {
        c.node(name).proxy.stop().await;
    }
    let outage = Instant::now();
    while outage.elapsed() < Duration::from_millis(DOWN_MS + 700) {
        let tab = step(&mut open, &c).await;
        open.push(tab);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for name in names {
        assert_eq!(c.health(name).await["cluster"]["connected"], json!(false));
    }
    for name in names {
        c.node(name).proxy.restart().await;
    }
    // Traffic goes on while the nodes reconnect.
    let back = Instant::now();
    while back.elapsed() < Duration::from_millis(500) {
        let tab = step(&mut open, &c).await;
        open.push(tab);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let want = set(open.iter().map(|(id, _)| id.clone()));
    let took = c
        .wait_lists(&names, &want, "after the broker came back")
        .await;
    eprintln!("[{broker:?}] broker back, lists converged in {took:?}");
    for name in names {
        assert!(c.node(name).alive(), "{name} survived the outage");
        assert_eq!(c.health(name).await["cluster"]["connected"], json!(true));
    }
}

async fn sigterm_drains_and_permdowns_at_once(broker: Broker) {
    let (mut c, _fx) = Cluster::new(broker, true).await;
    c.start("a").await;
    c.extra_env = vec![
        ("PERMDOWN_ON_SHUTDOWN".into(), "true".into()),
        // A long down period: only the graceful permdown can remove c's carts quickly.
        ("TRACKER_DOWN_PERIOD_MS".into(), "30000".into()),
        ("DRAIN_BATCH_SIZE".into(), "2".into()),
        ("DRAIN_BATCH_INTERVAL_MS".into(), "200".into()),
    ];
    c.start("c").await;
    let on_a = cart(1);
    let _tab_a = open_cart(c.addr("a"), &on_a).await;
    let mut tabs_c = Vec::new();
    let mut ids = set([on_a.clone()]);
    for n in 2..6 {
        let id = cart(n);
        tabs_c.push(open_cart(c.addr("c"), &id).await);
        ids.insert(id);
    }
    c.wait_lists(&["a", "c"], &ids, "before shutdown").await;

    let pid = c.node("c").child.id().expect("pid of c");
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    // Four sockets, two per batch, 200 ms apart: all closed with "service restart".
    for tab in &mut tabs_c {
        assert_eq!(tab.expect_close().await, Some(1012));
    }
    let exit = tokio::time::timeout(Duration::from_secs(20), c.node("c").child.wait())
        .await
        .expect("c exits within its bound")
        .expect("exit status");
    let exited = started.elapsed();
    assert!(exit.success(), "clean exit: {exit:?}");
    let took = c
        .wait_lists(&["a"], &set([on_a]), "graceful permdown")
        .await;
    eprintln!(
        "[{broker:?}] SIGTERM: drained and exited in {exited:?}; a dropped c's carts {took:?} later"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "carts left at once, not after the 30 s down period"
    );
    let log = c.node("c").log.lock().clone();
    assert!(log.contains("sockets drained"), "{log}");
    assert!(log.contains("graceful permdown"), "{log}");
}

async fn inventory_events_reach_the_clients_of_every_node(broker: Broker) {
    let (mut c, fx) = Cluster::new(broker, false).await;
    c.start("a").await;
    c.start("b").await;
    let p1 = format!("product:{}", fx.p1);
    let mut viewers = Vec::new();
    for name in ["a", "b"] {
        let mut socket = PhxSocket::connect(c.addr(name)).await;
        socket.join_ok(&p1, json!({})).await;
        viewers.push(socket);
    }
    // Released from the CLI against b: viewers on both nodes get the size selector, and a's
    // cache (replicated) shows it released.
    c.cli("b", &["release", &fx.p1.to_string()]).await;
    for viewer in &mut viewers {
        let released = viewer.expect(&p1, "released").await;
        assert!(
            released["size_html"]
                .as_str()
                .is_some_and(|h| h.contains("size-container")),
            "{released}"
        );
    }
    let deadline = Instant::now() + CONVERGE;
    loop {
        let inventory: Value = serde_json::from_str(&c.cli("a", &["inventory", "--json"]).await)
            .expect("inventory JSON");
        let released = inventory["products"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == json!(fx.p1)))
            .is_some_and(|p| p["released"] == json!(true));
        if released {
            break;
        }
        assert!(Instant::now() < deadline, "a's cache shows the release");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A cart holding i1 (one unit left) on each node.
    let signer = CartTokens::new(SECRET).expect("signer");
    let serialized = signer.sign(&[fx.i1]);
    let mut carts = Vec::new();
    for (n, name) in ["a", "b"].into_iter().enumerate() {
        let mut socket = PhxSocket::connect(c.addr(name)).await;
        let topic = format!("cart:{}", cart(n as u32));
        socket
            .join_ok(&topic, json!({"serialized": serialized, "page": "/"}))
            .await;
        let first = socket.expect(&topic, "cart").await;
        assert_eq!(first["items"][0]["out_of_stock"], false, "{first}");
        carts.push((topic, socket));
    }
    // Sold out through a: stock_change `out` on both nodes' product viewers; both nodes'
    // carts re-render the item as sold out (item_out is node-local, each node emits its own).
    let sold = c.cli("a", &["sell", &fx.i1.to_string()]).await;
    assert!(sold.contains("0 left"), "{sold}");
    for viewer in &mut viewers {
        let change = viewer.expect(&p1, "stock_change").await;
        assert_eq!(change["item_id"], json!(fx.i1));
        assert_eq!(change["level"], "out");
    }
    for (topic, socket) in &mut carts {
        let cart = socket.expect(topic, "cart").await;
        assert_eq!(cart["items"][0]["out_of_stock"], true, "{cart}");
    }
    let health = c.health("b").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(
        health["cluster"]["adapter"],
        match broker {
            Broker::Redis => "redis",
            Broker::Nats => "nats",
        }
    );
}

/// Buys `item` on node `addr` through the checkout pages; true when the purchase completed.
async fn buy(addr: SocketAddr, serialized: &str) -> bool {
    let path = format!("/checkout?serialized_cart={serialized}");
    let page = raw_request(addr, "GET", &path, None, None, &[]).await;
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    let csrf = hidden_input(&page.body, "_csrf_token");
    let key = hidden_input(&page.body, "order_key");
    let form = format!(
        "serialized_cart={}&_csrf_token={}&order_key={key}",
        common::web::encode(serialized),
        common::web::encode(&csrf)
    );
    let posted = raw_request(
        addr,
        "POST",
        "/checkout",
        cookie.as_deref(),
        Some(form),
        &[],
    )
    .await;
    assert_eq!(posted.status, 303, "{}", posted.body);
    posted.header("location") == Some(format!("/checkout/complete?order={key}").as_str())
}

async fn concurrent_purchases_on_two_nodes_sell_exactly_the_stock(broker: Broker) {
    let (mut c, _fx) = Cluster::new(broker, true).await;
    const STOCK: i32 = 15;
    let item = insert_single_item(&c.db.db, STOCK).await;
    c.start("a").await;
    c.start("b").await;
    let serialized = CartTokens::new(SECRET).expect("signer").sign(&[item]);
    let buyers: Vec<_> = (0..40)
        .map(|n| {
            let addr = c.addr(if n % 2 == 0 { "a" } else { "b" });
            let serialized = serialized.clone();
            tokio::spawn(async move { buy(addr, &serialized).await })
        })
        .collect();
    let mut completed = 0;
    for buyer in buyers {
        if buyer.await.expect("buyer task") {
            completed += 1;
        }
    }
    assert_eq!(completed, STOCK, "exactly the stock was sold");
    let left =
        c.db.db
            .get_availability(item)
            .await
            .expect("availability")
            .map(|a| a.available_count);
    assert_eq!(left, Some(0));
    // Both caches end at zero (each node's own sales, and the other's replicated).
    for name in ["a", "b"] {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let inventory: Value =
                serde_json::from_str(&c.cli(name, &["inventory", "--json"]).await)
                    .expect("inventory JSON");
            let count = inventory["products"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["items"].as_array().cloned().unwrap_or_default())
                .find(|i| i["id"] == json!(item))
                .map(|i| i["available_count"].clone());
            if count == Some(json!(0)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s cache shows {count:?} left"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs `sneakers23 serve` with `env` and expects it to refuse to start, saying `expected`.
async fn refused(env: &[(&str, &str)], expected: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(BIN)
            .arg("serve")
            .env("PORT", "0")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}/store.db", dir.path().display()),
            )
            .env("SECRET_KEY_BASE", SECRET)
            .env("SEED_IF_EMPTY", "false")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("serve gives up at once")
    .expect("running serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve started with {env:?}");
    assert!(stderr.contains(expected), "{env:?}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_cluster_settings_are_refused_at_start() {
    refused(
        &[
            ("TRACKER_BROADCAST_PERIOD_MS", "1500"),
            ("TRACKER_DOWN_PERIOD_MS", "2000"),
        ],
        "TRACKER_DOWN_PERIOD_MS=2000",
    )
    .await;
    refused(
        &[
            ("TRACKER_DOWN_PERIOD_MS", "30000"),
            ("TRACKER_PERMDOWN_PERIOD_MS", "30000"),
        ],
        "permdown_period",
    )
    .await;
    refused(&[("PUBSUB_URL", "kafka://127.0.0.1:9092")], "PUBSUB_URL").await;
    refused(
        &[("PUBSUB_URL", "redis://127.0.0.1:6379/?cluster=a.b")],
        "cluster",
    )
    .await;
}
