//! Fixtures shared by the integration tests: a fresh database of either backend per test, the
//! spec §18.1 inventory fixture, a notifier and a replication sink that record what they are
//! told, and a TCP proxy whose faults a test switches (the plain one that can cut the database
//! off is `test_support::TcpProxy`).
//!
//! PostgreSQL tests use the server at [`PG_ADMIN_URL`] (override with `S23_TEST_PG_URL`): each
//! test creates its own database `s23_test_<random>` and drops it when done, even on panic.
#![allow(dead_code)]

/// The admin page and socket, and mirrors of the admin streams.
pub mod admin;
/// The store as a real process (`sneakers23 serve`).
pub mod process;
/// A real node, an HTTP client and a WebSocket client for the web tests.
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sneakers23::db::{Db, DbOptions};
use sneakers23::inventory::{
    CompleteProduct, Inventory, InventoryNotifier, ReplicationSink, StockChange,
};
use sneakers23::model::{ItemId, NewItem, NewProduct, ProductId};
use sneakers23::replication::ReplicationEvent;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Server used by the PostgreSQL tests (trust auth, user postgres).
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// How long a test waits for an expected event before failing.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs each named `async fn name(backend: Backend)` of the calling file once per backend, as
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the local PostgreSQL server.
    Postgres,
}

/// A migrated, empty database that disappears with the value.
pub struct TestDb {
    /// Handle on it.
    pub db: Db,
    /// Its URL.
    pub url: String,
    /// PostgreSQL database name, when it is one.
    pub pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

fn pg_admin_url() -> String {
    std::env::var("S23_TEST_PG_URL").unwrap_or_else(|_| PG_ADMIN_URL.to_owned())
}

/// Address of the PostgreSQL server the tests use (host and port of the admin URL).
pub async fn pg_server_addr() -> SocketAddr {
    let admin = pg_admin_url();
    let after_scheme = admin
        .split_once("://")
        .map_or(admin.as_str(), |(_, rest)| rest);
    let host_port = after_scheme
        .rsplit_once('@')
        .map_or(after_scheme, |(_, rest)| rest);
    let host_port = host_port.split('/').next().unwrap_or(host_port);
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    tokio::net::lookup_host(&host_port)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve the PostgreSQL server {host_port} of {admin}"))
}

/// The URL of database `name` on the server of `admin_url`, optionally through another port.
fn pg_url(admin_url: &str, name: &str, port: Option<u16>) -> String {
    let (base, _) = admin_url.rsplit_once('/').unwrap_or((admin_url, ""));
    let base = match port {
        Some(port) => match base.rsplit_once(':') {
            Some((host, _)) => format!("{host}:{port}"),
            None => format!("{base}:{port}"),
        },
        None => base.to_owned(),
    };
    format!("{base}/{name}")
}

impl TestDb {
    /// A fresh migrated database with default pool options.
    pub async fn new(backend: Backend) -> Self {
        Self::with_options(backend, &test_options()).await
    }

    /// A fresh migrated database.
    pub async fn with_options(backend: Backend, options: &DbOptions) -> Self {
        let (url, pg_name, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}/store.db", dir.path().display());
                (url, None, Some(dir))
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("s23_test_{:016x}", rand::random::<u64>());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "PostgreSQL for the tests is unreachable at {admin}: {e}. Start it \
                         (scripts/setup.sh does) or point S23_TEST_PG_URL at one."
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("creating database {name} at {admin}: {e}"));
                let _ = conn.close().await;
                (pg_url(&admin, &name, None), Some(name), None)
            }
        };
        // From here on, Drop cleans up even if migrating fails.
        let test_db = TestDb {
            db: Db::connect_lazy_with(&url, options).expect("building the pool"),
            url,
            pg_name,
            _dir: dir,
        };
        test_db
            .db
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e}", test_db.url));
        test_db
    }

    /// The URL of this PostgreSQL database reached through another local port (a proxy).
    pub fn pg_url_via_port(&self, port: u16) -> String {
        let name = self.pg_name.as_deref().expect("a PostgreSQL test database");
        pg_url(&pg_admin_url(), name, Some(port))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context we may block: use a thread with its own runtime.
        let admin = pg_admin_url();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime for dropping the test database");
            rt.block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("warning: could not drop a test database: {e}");
        }
    }
}

/// Pool options for tests: a short acquire timeout so that outage tests run quickly.
pub fn test_options() -> DbOptions {
    DbOptions {
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        ..DbOptions::default()
    }
}

/// Ids of the spec §18.1 fixture.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    /// Product 1: order 1, items i1 (count 1) and i2 (count 2).
    pub p1: ProductId,
    /// Product 2: order 0, item i3 (count 3).
    pub p2: ProductId,
    /// Item of p1 with 1 unit.
    pub i1: ItemId,
    /// Item of p1 with 2 units.
    pub i2: ItemId,
    /// Item of p2 with 3 units.
    pub i3: ItemId,
}

fn new_product(n: u32, order: i32, released: bool, items: Vec<(u32, i32)>) -> NewProduct {
    NewProduct {
        sku: format!("P{n}"),
        order,
        brand: format!("brand {n}"),
        name: format!("name {n}"),
        color: "blue".into(),
        price_usd: 100 * i32::try_from(n).unwrap_or(1),
        main_image_url: format!("/images/p{n}.png"),
        released,
        items: items
            .into_iter()
            .map(|(i, count)| NewItem {
                sku: format!("I{i}"),
                size: format!("{}", 5 + i),
                available_count: Some(count),
            })
            .collect(),
    }
}

/// Inserts the spec §18.1 fixture with both products' release state set to `released`.
pub async fn insert_fixture(db: &Db, released: bool) -> Fixture {
    let inserted = db
        .insert_catalog(&[
            new_product(1, 1, released, vec![(1, 1), (2, 2)]),
            new_product(2, 0, released, vec![(3, 3)]),
        ])
        .await
        .expect("inserting the fixture");
    Fixture {
        p1: inserted[0].id,
        p2: inserted[1].id,
        i1: inserted[0].item_ids[0],
        i2: inserted[0].item_ids[1],
        i3: inserted[1].item_ids[0],
    }
}

/// Inserts one released product with one item holding `count` units; returns the item id.
pub async fn insert_single_item(db: &Db, count: i32) -> ItemId {
    let inserted = db
        .insert_catalog(&[new_product(9, 0, true, vec![(9, count)])])
        .await
        .expect("inserting a single item");
    inserted[0].item_ids[0]
}

/// What an [`InventoryNotifier`] was told.
#[derive(Debug, Clone, PartialEq)]
pub enum Note {
    /// `released` with the product id and its release flag as the notifier saw it.
    Released(ProductId, bool),
    /// `stock_change`.
    StockChange(StockChange),
    /// `item_out`.
    ItemOut(ItemId),
    /// A replicated event was applied.
    Replicated(ReplicationEvent),
}

/// A notifier that records every call and lets a test wait for one.
pub struct Recorder {
    notes: watch::Sender<Vec<Note>>,
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            notes: watch::Sender::new(Vec::new()),
        })
    }

    /// Everything recorded so far.
    pub fn notes(&self) -> Vec<Note> {
        self.notes.borrow().clone()
    }

    fn push(&self, note: Note) {
        self.notes.send_modify(|notes| notes.push(note));
    }

    /// Waits (at most [`EVENT_TIMEOUT`]) until `note` has been recorded.
    pub async fn wait_for(&self, note: Note) -> Vec<Note> {
        let mut rx = self.notes.subscribe();
        let waited = tokio::time::timeout(EVENT_TIMEOUT, rx.wait_for(|n| n.contains(&note))).await;
        match waited {
            Ok(Ok(notes)) => notes.clone(),
            _ => panic!("timed out waiting for {note:?}; got {:?}", self.notes()),
        }
    }
}

impl InventoryNotifier for Recorder {
    fn released(&self, product: &CompleteProduct) {
        self.push(Note::Released(product.product.id, product.product.released));
    }
    fn stock_change(&self, change: StockChange) {
        self.push(Note::StockChange(change));
    }
    fn item_out(&self, item_id: ItemId) {
        self.push(Note::ItemOut(item_id));
    }
    fn replicated(&self, event: ReplicationEvent) {
        self.push(Note::Replicated(event));
    }
}

/// A replication sink that records what it is asked to publish.
#[derive(Default)]
pub struct RecordingSink {
    events: Mutex<Vec<ReplicationEvent>>,
}

impl RecordingSink {
    /// A new, empty sink.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Everything published so far.
    pub fn events(&self) -> Vec<ReplicationEvent> {
        self.events.lock().clone()
    }
}

impl ReplicationSink for RecordingSink {
    fn publish(&self, event: ReplicationEvent) {
        self.events.lock().push(event);
    }
}

/// An inventory over `db` whose notifications and replication are recorded.
pub async fn recorded_inventory(db: &Db) -> (Inventory, Arc<Recorder>, Arc<RecordingSink>) {
    let recorder = Recorder::new();
    let sink = RecordingSink::new();
    let inventory = Inventory::load(db.clone(), recorder.clone(), sink.clone())
        .await
        .expect("loading the inventory");
    (inventory, recorder, sink)
}

/// Polls `condition` every 20 ms until it holds or `deadline` passes; returns whether it held.
pub async fn eventually<F, Fut>(deadline: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What a [`FaultProxy`] does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards everything.
    None,
    /// A black hole: connections are accepted and kept, nothing is forwarded either way
    /// until [`Fault::None`] again (then what was held is delivered).
    Frozen,
    /// Once: the next PostgreSQL `COMMIT` is delivered to the server, its answer is never
    /// delivered and the connection is cut a moment later (the commit's outcome is unknown
    /// to the client). Then back to [`Fault::None`].
    CutAfterCommit,
    /// Like [`Fault::CutAfterCommit`], then [`Fault::Frozen`]: the client cannot look up what
    /// happened either.
    CutAfterCommitThenFreeze,
}

/// A TCP forwarder to a database whose faults a test switches: black hole, lost COMMIT.
pub struct FaultProxy {
    port: u16,
    fault: Arc<watch::Sender<Fault>>,
    task: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding a fresh local port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let fault = Arc::new(watch::channel(Fault::None).0);
        let task = tokio::spawn(fault_forward(listener, target, fault.clone()));
        Self { port, fault, task }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Switches the fault.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// The current fault ([`Fault::CutAfterCommit`] turns into [`Fault::None`] once it cut).
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fault_forward(
    listener: TcpListener,
    target: SocketAddr,
    fault: Arc<watch::Sender<Fault>>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                let fault = fault.clone();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (client_read, client_write) = inbound.into_split();
                    let (server_read, server_write) = outbound.into_split();
                    let committing = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let up = pump(client_read, server_write, fault.clone(), Some(committing.clone()));
                    let down = pump_down(server_read, client_write, fault, committing);
                    // Either direction ending (or cutting) ends the connection.
                    tokio::select! { () = up => {}, () = down => {} }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Waits while the proxy is frozen.
async fn while_frozen(fault: &watch::Sender<Fault>) {
    let mut rx = fault.subscribe();
    while *rx.borrow_and_update() == Fault::Frozen {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Client to server; with `committing`, watches for the COMMIT to lose.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<watch::Sender<Fault>>,
    committing: Option<Arc<std::sync::atomic::AtomicBool>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while_frozen(&fault).await;
        let current = *fault.borrow();
        let cut = matches!(
            current,
            Fault::CutAfterCommit | Fault::CutAfterCommitThenFreeze
        ) && buf[..n].windows(7).any(|w| w == b"COMMIT\0");
        if cut && let Some(committing) = &committing {
            // From now on the server's answers are dropped.
            committing.store(true, std::sync::atomic::Ordering::SeqCst);
            fault.send_replace(if current == Fault::CutAfterCommit {
                Fault::None
            } else {
                Fault::Frozen
            });
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        if cut {
            // Leave the server time to commit, then cut the connection.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return;
        }
    }
}

/// Server to client: dropped once the connection's COMMIT is to be lost.
async fn pump_down(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<watch::Sender<Fault>>,
    committing: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while_frozen(&fault).await;
        if committing.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
