//! Storage: the database is the source of truth for release state and availability (spec §3.1).
//!
//! Two backends sit behind one handle, [`Db`]:
//!
//! - **SQLite** (the default): a file under `./data/` ([`DEFAULT_DATABASE_URL`]); the directory and
//!   the file are created on first use; WAL journal, a busy timeout, foreign keys on.
//! - **PostgreSQL** when the URL starts with `postgres://` or `postgresql://`.
//!
//! Each backend has its own embedded migration folder (`migrations/sqlite`, `migrations/postgres`),
//! and every query is written once with `$N` placeholders (both drivers accept them) and run on
//! whichever pool the handle holds.
//!
//! ## Never oversell
//!
//! Selling one unit is a single conditional statement:
//! `UPDATE item_availabilities SET available_count = available_count - 1
//!  WHERE item_id = $1 AND available_count > 0`.
//! Exactly one changed row means sold; anything else is [`DbError::NotAvailable`]. A cart purchase
//! runs that statement for every item inside one transaction and rolls everything back when any
//! item fails ([`DbError::PurchaseFailed`]).
//!
//! ## Outages
//!
//! The pools create connections on demand, test a pooled connection before handing it out and
//! give up on an acquire after a short timeout ([`DbOptions::acquire_timeout`]). So while the
//! database is away every call fails fast with [`DbError::Unavailable`], and once it is back the
//! next call opens a fresh connection: nothing has to be restarted.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::model::{Availability, Item, ItemId, NewProduct, Product, ProductId};

/// Database used when no URL is configured: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sneakers23.db";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Tables dropped by [`Db::reset`], children first.
const TABLES: [&str; 6] = [
    "orders",
    "health_probe",
    "item_availabilities",
    "items",
    "products",
    "_sqlx_migrations",
];

/// Errors of the storage layer.
///
/// [`DbError::Unavailable`] means the database could not be reached (down, unreachable, pool
/// exhausted past the acquire timeout): retrying later can succeed. The other variants are
/// configuration errors, query errors or business outcomes.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL `{url}`: use sqlite://<path>, postgres:// or postgresql:// \
         (set --database-url or DATABASE_URL)"
    )]
    UnsupportedUrl {
        /// The URL as given.
        url: String,
    },
    /// The URL could not be parsed by the driver.
    #[error("invalid database URL `{url}`: {cause}")]
    InvalidUrl {
        /// The URL as given (password masked).
        url: String,
        /// Driver error.
        cause: sqlx::Error,
    },
    /// The directory for the SQLite file could not be created.
    #[error("could not create {} for the SQLite database: {cause}", path.display())]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// I/O error.
        cause: std::io::Error,
    },
    /// The database could not be reached; the operation did not happen.
    #[error(
        "database unavailable while {action}: {cause}; check that the database is running and \
         reachable, the store reconnects by itself when it is back"
    )]
    Unavailable {
        /// What was being done, with its input.
        action: String,
        /// Driver error.
        cause: sqlx::Error,
    },
    /// The database answered with an error.
    #[error("database error while {action}: {cause}")]
    Query {
        /// What was being done, with its input.
        action: String,
        /// Driver error.
        cause: sqlx::Error,
    },
    /// Applying the embedded migrations failed.
    #[error("running database migrations failed: {0}")]
    Migrate(#[from] MigrateError),
    /// No product has this id.
    #[error("product {product_id} does not exist")]
    ProductNotFound {
        /// The id asked for.
        product_id: ProductId,
    },
    /// The item is sold out or unknown: nothing was sold.
    #[error("item {item_id} is not available (sold out or unknown)")]
    NotAvailable {
        /// The item asked for.
        item_id: ItemId,
    },
    /// A cart purchase failed on one item and was rolled back entirely.
    #[error(
        "purchase of items {item_ids:?} failed: item {failed_item_id} is not available; \
         nothing was sold"
    )]
    PurchaseFailed {
        /// The whole cart.
        item_ids: Vec<ItemId>,
        /// The first item that could not be sold.
        failed_item_id: ItemId,
    },
    /// A step of a write did not finish within [`DbOptions::transaction_timeout`]; it was
    /// abandoned before its commit, so nothing was written.
    #[error(
        "database did not answer within {} ms while {action}; nothing was written",
        after.as_millis()
    )]
    TimedOut {
        /// What was being done.
        action: String,
        /// The bound that expired.
        after: Duration,
    },
    /// A purchase's COMMIT failed or did not answer, and looking its order up afterwards
    /// failed too: whether it was written is not known yet. The completion page of the
    /// order looks again.
    #[error(
        "the outcome of order {key} is not known yet (its commit did not answer: {cause}); \
         look it up again later"
    )]
    CommitUnknown {
        /// The order's idempotency key.
        key: String,
        /// Why the commit's answer was lost.
        cause: String,
    },
    /// The SQLite file the node opened has been deleted or replaced: writes would go to a file
    /// nobody will ever read again.
    #[error(
        "the SQLite database file {} is gone (deleted or replaced while the node runs); \
         restore it and restart the node",
        path.display()
    )]
    FileGone {
        /// The file.
        path: PathBuf,
    },
    /// Seeding was asked for on a database that already has products.
    #[error("cannot seed: the database already holds {products} product(s); run `reset` first")]
    NotEmpty {
        /// Number of products found.
        products: i64,
    },
}

impl DbError {
    /// True when the database could not be reached (the operation may succeed later).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable { .. }
            | Self::TimedOut { .. }
            | Self::CommitUnknown { .. }
            | Self::FileGone { .. } => true,
            Self::Migrate(MigrateError::Execute(e)) => is_connection_error(e),
            _ => false,
        }
    }

    /// True when the database refused a write because of how the connection was opened
    /// (read-only database, unreadable file): the connection is replaced.
    fn refuses_writes_on_connection(&self) -> bool {
        let cause = match self {
            Self::FileGone { .. } => return true,
            Self::Unavailable { cause, .. } | Self::Query { cause, .. } => cause,
            _ => return false,
        };
        let sqlx::Error::Database(db) = cause else {
            return false;
        };
        let code = db.code().unwrap_or_default();
        if db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_some()
        {
            // 25006 read_only_sql_transaction.
            code == "25006"
        } else {
            // SQLite READONLY, IOERR, CANTOPEN.
            matches!(
                code.parse::<i32>().map(|c| c & 0xff),
                Ok(8) | Ok(10) | Ok(14)
            )
        }
    }

    /// Wraps a driver error, classifying connection failures as [`DbError::Unavailable`].
    fn from_sqlx(action: String, cause: sqlx::Error) -> Self {
        if is_connection_error(&cause) {
            Self::Unavailable { action, cause }
        } else {
            Self::Query { action, cause }
        }
    }
}

/// Whether a driver error means "could not talk to the database" rather than "the database
/// refused this statement".
fn is_connection_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                // SQLSTATE classes 08 (connection exception), 57P (operator intervention:
                // shutdown, cannot connect now) and 53 (insufficient resources).
                code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
            } else {
                // SQLite primary result codes: BUSY, LOCKED, IOERR, CANTOPEN.
                matches!(
                    code.parse::<i32>().map(|c| c & 0xff),
                    Ok(5) | Ok(6) | Ok(10) | Ok(14)
                )
            }
        }
        _ => false,
    }
}

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Maximum open connections (`POOL_SIZE`).
    pub max_connections: u32,
    /// How long a query waits for a connection before failing with [`DbError::Unavailable`].
    /// Keep it short so requests fail fast while the database is away.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before giving up (`SQLITE_BUSY_TIMEOUT_MS`).
    pub sqlite_busy_timeout: Duration,
    /// PostgreSQL `statement_timeout`: the server cancels a statement running longer
    /// (`DB_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout: Duration,
    /// PostgreSQL `lock_timeout`: a statement waiting longer for a row lock fails
    /// (`DB_LOCK_TIMEOUT_MS`).
    pub lock_timeout: Duration,
    /// Client-side bound on each step of a purchase (its statements, its commit, the lookup
    /// of its order when the commit's answer is lost), so that a database that stops
    /// answering (a black hole, not a refusal) cannot hold a checkout
    /// (`DB_TRANSACTION_TIMEOUT_MS`).
    pub transaction_timeout: Duration,
    /// Create the SQLite file when it does not exist (development); production refuses to
    /// start on a missing file instead.
    pub create_if_missing: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_busy_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            lock_timeout: Duration::from_secs(2),
            transaction_timeout: Duration::from_secs(8),
            create_if_missing: true,
        }
    }
}

/// What the node has seen of its writes: the last write error, and when connections must be
/// replaced because the database refused writes on them (read-only, file gone).
///
/// A connection opened while a database is read-only stays read-only after the database is
/// writable again (SQLite opens the file read-only; PostgreSQL keeps
/// `default_transaction_read_only` for the session). Every connection older than the last such
/// refusal is therefore dropped at its next acquire, so the pool recovers by itself.
#[derive(Debug, Default)]
struct WriteHealth {
    /// Connections created before this instant are replaced.
    evict_before: Mutex<Option<Instant>>,
    /// The last write's error, cleared by the next successful write.
    last_error: Mutex<Option<String>>,
}

impl WriteHealth {
    fn succeeded(&self) {
        *self.last_error.lock() = None;
    }

    fn failed(&self, error: &DbError) {
        *self.last_error.lock() = Some(error.to_string());
        if error.refuses_writes_on_connection() {
            *self.evict_before.lock() = Some(Instant::now());
        }
    }

    /// Whether a connection of this age may be handed out again.
    fn keep(&self, age: Duration) -> bool {
        match *self.evict_before.lock() {
            None => true,
            Some(before) => Instant::now()
                .checked_sub(age)
                .is_some_and(|created| created > before),
        }
    }
}

/// One order: the purchase of a cart, named by its number on the completion page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The order number.
    pub id: i64,
    /// The idempotency key the checkout form carried.
    pub key: String,
    /// The items bought, one unit each.
    pub item_ids: Vec<ItemId>,
}

/// The result of [`Db::purchase_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// The order was written now, with the stock it took.
    New(Order),
    /// An order with this key already existed (a replayed form): nothing was sold again.
    Existing(Order),
}

impl Purchase {
    /// The order, new or existing.
    pub fn order(&self) -> &Order {
        match self {
            Self::New(order) | Self::Existing(order) => order,
        }
    }
}

fn encode_item_ids(item_ids: &[ItemId]) -> String {
    item_ids
        .iter()
        .map(ItemId::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn decode_item_ids(text: &str) -> Vec<ItemId> {
    text.split(',').filter_map(|id| id.parse().ok()).collect()
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle on the store's database (cheap to clone; clones share the pool).
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    writes: Arc<WriteHealth>,
    /// The SQLite file, to notice it being deleted under the node.
    sqlite_file: Option<PathBuf>,
    transaction_timeout: Duration,
}

/// Runs `$body` with `$pool` bound to the concrete pool of either backend.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// The statement that sells one unit of an item if one is left.
const SELL_ONE: &str = "UPDATE item_availabilities \
     SET available_count = available_count - 1, updated_at = CURRENT_TIMESTAMP \
     WHERE item_id = $1 AND available_count > 0";

type ProductRow = (i64, String, i32, String, String, String, i32, String, bool);

fn product_from_row(r: ProductRow) -> Product {
    let (id, sku, order, brand, name, color, price_usd, main_image_url, released) = r;
    Product {
        id,
        sku,
        order,
        brand,
        name,
        color,
        price_usd,
        main_image_url,
        released,
    }
}

const SELECT_PRODUCT: &str = "SELECT id, sku, \"order\", brand, name, color, price_usd, \
     main_image_url, released FROM products";

/// Ids assigned by [`Db::insert_catalog`] to one product and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsertedProduct {
    /// The product's id.
    pub id: ProductId,
    /// Its items' ids, in the order given.
    pub item_ids: Vec<ItemId>,
}

impl Db {
    /// Connects to `url` with default [`DbOptions`]. See [`Db::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        Self::connect_with(url, &DbOptions::default()).await
    }

    /// Connects to `url`: `sqlite://<path>` (directory and file created when missing; WAL mode)
    /// or `postgres://…` / `postgresql://…`. Fails with [`DbError::Unavailable`] when the
    /// database cannot be reached now. Does not run migrations (see [`Db::migrate`]).
    pub async fn connect_with(url: &str, options: &DbOptions) -> Result<Self, DbError> {
        let db = Self::connect_lazy_with(url, options)?;
        db.ping().await?;
        Ok(db)
    }

    /// Builds the pool without opening a connection: the first query connects. Useful for a
    /// process that must start while the database is still away.
    pub fn connect_lazy_with(url: &str, options: &DbOptions) -> Result<Self, DbError> {
        let invalid = |cause| DbError::InvalidUrl {
            url: redact_url(url),
            cause,
        };
        let writes = Arc::new(WriteHealth::default());
        let keep = {
            let writes = writes.clone();
            move |meta: sqlx::pool::PoolConnectionMetadata| writes.keep(meta.age)
        };
        let mut sqlite_file = None;
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(invalid)?.options([
                (
                    "statement_timeout",
                    options.statement_timeout.as_millis().to_string(),
                ),
                ("lock_timeout", options.lock_timeout.as_millis().to_string()),
                (
                    "idle_in_transaction_session_timeout",
                    options.transaction_timeout.as_millis().to_string(),
                ),
            ]);
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(true)
                    .before_acquire(move |_conn, meta| {
                        let keep = keep(meta);
                        Box::pin(async move { Ok(keep) })
                    })
                    .connect_lazy_with(connect),
            )
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .create_if_missing(false)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.sqlite_busy_timeout)
                .foreign_keys(true);
            let file = connect.get_filename().to_owned();
            if !is_in_memory(&file) {
                if options.create_if_missing {
                    create_file(&file)?;
                }
                sqlite_file = Some(file);
            }
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(true)
                    .before_acquire(move |_conn, meta| {
                        let keep = keep(meta);
                        Box::pin(async move { Ok(keep) })
                    })
                    .connect_lazy_with(connect),
            )
        } else {
            return Err(DbError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
        Ok(Self {
            pool,
            writes,
            sqlite_file,
            transaction_timeout: options.transaction_timeout,
        })
    }

    /// Fails with [`DbError::FileGone`] when the SQLite file this node opened no longer
    /// exists at its path (no-op for PostgreSQL and in-memory databases).
    pub fn check_file(&self) -> Result<(), DbError> {
        match &self.sqlite_file {
            Some(path) if !path.exists() => Err(DbError::FileGone { path: path.clone() }),
            _ => Ok(()),
        }
    }

    /// The last write's error, if no write succeeded since.
    pub fn last_write_error(&self) -> Option<String> {
        self.writes.last_error.lock().clone()
    }

    /// Records the outcome of a write (see [`WriteHealth`]).
    fn note_write<T>(&self, result: Result<T, DbError>) -> Result<T, DbError> {
        match &result {
            Ok(_) => self.writes.succeeded(),
            Err(DbError::NotAvailable { .. } | DbError::PurchaseFailed { .. }) => {}
            Err(DbError::ProductNotFound { .. }) => {}
            Err(error) => self.writes.failed(error),
        }
        result
    }

    /// Rewrites the one row of `health_probe` (bounded by the transaction timeout): proves
    /// that the database still accepts writes, for `/health`.
    pub async fn probe_write(&self) -> Result<(), DbError> {
        let result = async {
            self.check_file()?;
            let write = async {
                on_pool!(self, pool => sqlx::query(
                    "UPDATE health_probe SET checked_at = CURRENT_TIMESTAMP WHERE id = 1",
                )
                .execute(pool)
                .await
                .map(|r| r.rows_affected()))
                .map_err(|e| DbError::from_sqlx("writing the health probe".into(), e))
            };
            match tokio::time::timeout(self.transaction_timeout, write).await {
                Ok(Ok(1)) => Ok(()),
                Ok(Ok(_)) => Err(DbError::Query {
                    action: "writing the health probe".into(),
                    cause: sqlx::Error::RowNotFound,
                }),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(DbError::TimedOut {
                    action: "writing the health probe".into(),
                    after: self.transaction_timeout,
                }),
            }
        }
        .await;
        self.note_write(result)
    }

    /// The backend this handle talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Round-trips a trivial query (health check).
    pub async fn ping(&self) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
            .map_err(|e| DbError::from_sqlx("checking the database connection".into(), e))
    }

    /// Closes every connection; later calls fail with [`DbError::Unavailable`].
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match &self.pool {
            Pool::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Drops every table of the store and migrates again: all data is lost and ids restart at 1.
    pub async fn reset(&self) -> Result<(), DbError> {
        for table in TABLES {
            let sql = format!("DROP TABLE IF EXISTS {table}");
            on_pool!(self, pool => sqlx::query(&sql).execute(pool).await.map(|_| ()))
                .map_err(|e| DbError::from_sqlx(format!("dropping table {table}"), e))?;
        }
        self.migrate().await
    }

    /// Number of products stored.
    pub async fn count_products(&self) -> Result<i64, DbError> {
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM products")
            .fetch_one(pool)
            .await)
        .map_err(|e| DbError::from_sqlx("counting products".into(), e))
    }

    /// Inserts products with their items and availabilities in one transaction (all or
    /// nothing). Returns the ids assigned, in the order given.
    pub async fn insert_catalog(
        &self,
        products: &[NewProduct],
    ) -> Result<Vec<InsertedProduct>, DbError> {
        let err = |e| DbError::from_sqlx("inserting the catalog".into(), e);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(err)?;
            let mut inserted = Vec::with_capacity(products.len());
            for p in products {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO products \
                     (sku, \"order\", brand, name, color, price_usd, main_image_url, released) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                )
                .bind(&p.sku)
                .bind(p.order)
                .bind(&p.brand)
                .bind(&p.name)
                .bind(&p.color)
                .bind(p.price_usd)
                .bind(&p.main_image_url)
                .bind(p.released)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| DbError::from_sqlx(format!("inserting product {}", p.sku), e))?;
                let mut item_ids = Vec::with_capacity(p.items.len());
                for item in &p.items {
                    let item_id: i64 = sqlx::query_scalar(
                        "INSERT INTO items (sku, size, product_id) VALUES ($1, $2, $3) \
                         RETURNING id",
                    )
                    .bind(&item.sku)
                    .bind(&item.size)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| DbError::from_sqlx(format!("inserting item {}", item.sku), e))?;
                    if let Some(count) = item.available_count {
                        sqlx::query(
                            "INSERT INTO item_availabilities (item_id, available_count) \
                             VALUES ($1, $2)",
                        )
                        .bind(item_id)
                        .bind(count)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            DbError::from_sqlx(
                                format!("inserting availability {count} of item {}", item.sku),
                                e,
                            )
                        })?;
                    }
                    item_ids.push(item_id);
                }
                inserted.push(InsertedProduct { id, item_ids });
            }
            tx.commit().await.map_err(err)?;
            Ok(inserted)
        })
    }

    /// All products, ordered by display order then id.
    pub async fn load_products(&self) -> Result<Vec<Product>, DbError> {
        let sql = format!("{SELECT_PRODUCT} ORDER BY \"order\", id");
        let rows: Vec<ProductRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
                .map_err(|e| DbError::from_sqlx("loading products".into(), e))?;
        Ok(rows.into_iter().map(product_from_row).collect())
    }

    /// All items, ordered by id.
    pub async fn load_items(&self) -> Result<Vec<Item>, DbError> {
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, sku, size, product_id FROM items ORDER BY id",
        )
        .fetch_all(pool)
        .await)
        .map_err(|e| DbError::from_sqlx("loading items".into(), e))?;
        Ok(rows
            .into_iter()
            .map(|(id, sku, size, product_id)| Item {
                id,
                sku,
                size,
                product_id,
            })
            .collect())
    }

    /// All availability rows, ordered by item id.
    pub async fn load_availabilities(&self) -> Result<Vec<Availability>, DbError> {
        let rows: Vec<(i64, i32)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT item_id, available_count FROM item_availabilities ORDER BY item_id",
        )
        .fetch_all(pool)
        .await)
        .map_err(|e| DbError::from_sqlx("loading item availabilities".into(), e))?;
        Ok(rows
            .into_iter()
            .map(|(item_id, available_count)| Availability {
                item_id,
                available_count,
            })
            .collect())
    }

    /// One product, if it exists.
    pub async fn get_product(&self, product_id: ProductId) -> Result<Option<Product>, DbError> {
        let sql = format!("{SELECT_PRODUCT} WHERE id = $1");
        let row: Option<ProductRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(product_id)
            .fetch_optional(pool)
            .await)
        .map_err(|e| DbError::from_sqlx(format!("reading product {product_id}"), e))?;
        Ok(row.map(product_from_row))
    }

    /// The availability row of one item, if it has one.
    pub async fn get_availability(&self, item_id: ItemId) -> Result<Option<Availability>, DbError> {
        let count: Option<i32> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT available_count FROM item_availabilities WHERE item_id = $1",
        )
        .bind(item_id)
        .fetch_optional(pool)
        .await)
        .map_err(|e| {
            DbError::from_sqlx(format!("reading the availability of item {item_id}"), e)
        })?;
        Ok(count.map(|available_count| Availability {
            item_id,
            available_count,
        }))
    }

    /// Marks a product released (idempotent). Fails with [`DbError::ProductNotFound`] for an
    /// unknown id.
    pub async fn mark_product_released(&self, product_id: ProductId) -> Result<(), DbError> {
        let result = on_pool!(self, pool => sqlx::query(
            "UPDATE products SET released = TRUE, updated_at = CURRENT_TIMESTAMP WHERE id = $1",
        )
        .bind(product_id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| DbError::from_sqlx(format!("releasing product {product_id}"), e));
        let result = self.note_write(result)?;
        if result == 0 {
            return Err(DbError::ProductNotFound { product_id });
        }
        Ok(())
    }

    /// Sells one unit of an item with one conditional UPDATE: [`DbError::NotAvailable`] when
    /// the item is sold out or unknown.
    pub async fn sell_item(&self, item_id: ItemId) -> Result<(), DbError> {
        let changed = on_pool!(self, pool => sqlx::query(SELL_ONE)
            .bind(item_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| DbError::from_sqlx(format!("selling item {item_id}"), e));
        let changed = self.note_write(changed)?;
        if changed == 1 {
            Ok(())
        } else {
            Err(DbError::NotAvailable { item_id })
        }
    }

    /// Sells one unit of every item in one transaction, as a new order with a fresh key. If
    /// any item cannot be sold, nothing is sold and [`DbError::PurchaseFailed`] names the
    /// first failing item. See [`Db::purchase_order`].
    pub async fn purchase(&self, item_ids: &[ItemId]) -> Result<(), DbError> {
        let key = format!("internal-{:032x}", rand::random::<u128>());
        self.purchase_order(&key, item_ids).await.map(drop)
    }

    /// Purchases a cart as order `key`: in one transaction, the order row (unique key) and
    /// one unit of every item.
    ///
    /// - An order with this key already exists (a replayed form): nothing is sold,
    ///   [`Purchase::Existing`].
    /// - Any item cannot be sold: nothing is written, [`DbError::PurchaseFailed`].
    /// - The statements do not finish within the transaction timeout: abandoned before the
    ///   commit, [`DbError::TimedOut`].
    /// - The COMMIT fails or does not answer: the outcome is unknown, so the order is looked
    ///   up on another connection: found ⇒ [`Purchase::New`], absent ⇒ the purchase did not
    ///   happen ([`DbError::Unavailable`]), lookup impossible ⇒ [`DbError::CommitUnknown`].
    pub async fn purchase_order(
        &self,
        key: &str,
        item_ids: &[ItemId],
    ) -> Result<Purchase, DbError> {
        let result = self.purchase_order_once(key, item_ids).await;
        self.note_write(result)
    }

    async fn purchase_order_once(
        &self,
        key: &str,
        item_ids: &[ItemId],
    ) -> Result<Purchase, DbError> {
        self.check_file()?;
        let bound = self.transaction_timeout;
        let timed_out = |action: &str| DbError::TimedOut {
            action: format!("{action} order {key}"),
            after: bound,
        };
        let err = |action: &str, e| DbError::from_sqlx(format!("{action} {item_ids:?}"), e);
        let encoded = encode_item_ids(item_ids);
        // The statements, up to (not including) the commit.
        macro_rules! write_order {
            ($tx:ident) => {{
                let inserted: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO orders (idempotency_key, item_ids) VALUES ($1, $2) \
                     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                )
                .bind(key)
                .bind(&encoded)
                .fetch_optional(&mut *$tx)
                .await
                .map_err(|e| err("recording the order of", e))?;
                let Some(id) = inserted else {
                    return Ok(None);
                };
                for &item_id in item_ids {
                    let changed = sqlx::query(SELL_ONE)
                        .bind(item_id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(|e| err("selling the items of the cart", e))?
                        .rows_affected();
                    if changed != 1 {
                        return Err(DbError::PurchaseFailed {
                            item_ids: item_ids.to_vec(),
                            failed_item_id: item_id,
                        });
                    }
                }
                Ok(Some(id))
            }};
        }
        macro_rules! run {
            ($tx:ident) => {{
                let written: Result<Option<i64>, DbError> =
                    match tokio::time::timeout(bound, async { write_order!($tx) }).await {
                        Ok(written) => written,
                        Err(_) => Err(timed_out("writing")),
                    };
                match written {
                    Ok(Some(id)) => {
                        match tokio::time::timeout(bound, $tx.commit()).await {
                            Ok(Ok(())) => Ok(Purchase::New(Order {
                                id,
                                key: key.to_owned(),
                                item_ids: item_ids.to_vec(),
                            })),
                            Ok(Err(e)) => self.confirm_after_lost_commit(key, e.to_string()).await,
                            Err(_) => {
                                self.confirm_after_lost_commit(
                                    key,
                                    format!("no answer within {} ms", bound.as_millis()),
                                )
                                .await
                            }
                        }
                    }
                    Ok(None) => {
                        // Replayed: the existing order, written by an earlier request.
                        drop($tx);
                        match self.find_order(key).await? {
                            Some(order) => Ok(Purchase::Existing(order)),
                            None => Err(DbError::Query {
                                action: format!("reading back order {key}"),
                                cause: sqlx::Error::RowNotFound,
                            }),
                        }
                    }
                    Err(e) => {
                        // Dropping the transaction would roll back too; do it explicitly
                        // (bounded) so the connection goes back to the pool clean.
                        if let Ok(Err(rollback)) =
                            tokio::time::timeout(bound, $tx.rollback()).await
                        {
                            tracing::warn!(error = %rollback, ?item_ids, "rollback of a failed purchase");
                        }
                        Err(e)
                    }
                }
            }};
        }
        let begin = |e| err("starting the purchase of", e);
        match &self.pool {
            Pool::Sqlite(pool) => {
                // Take the write lock up front so concurrent purchases queue on the busy
                // timeout instead of failing to upgrade a read transaction.
                let mut tx = tokio::time::timeout(bound, pool.begin_with("BEGIN IMMEDIATE"))
                    .await
                    .map_err(|_| timed_out("starting"))?
                    .map_err(begin)?;
                run!(tx)
            }
            Pool::Postgres(pool) => {
                let mut tx = tokio::time::timeout(bound, pool.begin())
                    .await
                    .map_err(|_| timed_out("starting"))?
                    .map_err(begin)?;
                run!(tx)
            }
        }
    }

    /// The COMMIT of order `key` failed with `cause` or did not answer: looks the order up on
    /// another connection, a few times within the transaction timeout.
    async fn confirm_after_lost_commit(
        &self,
        key: &str,
        cause: String,
    ) -> Result<Purchase, DbError> {
        tracing::warn!(order = key, %cause, "a purchase's commit got no answer; looking the order up");
        let deadline = Instant::now() + self.transaction_timeout;
        let mut delay = Duration::from_millis(100);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.find_order(key)).await {
                Ok(Ok(Some(order))) => {
                    tracing::info!(order = key, id = order.id, "the lost commit had succeeded");
                    return Ok(Purchase::New(order));
                }
                Ok(Ok(None)) => {
                    return Err(DbError::Unavailable {
                        action: format!("committing order {key} (it was not written)"),
                        cause: sqlx::Error::Protocol(cause),
                    });
                }
                Ok(Err(_)) | Err(_) if Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Ok(Err(_)) | Err(_) => {
                    return Err(DbError::CommitUnknown {
                        key: key.to_owned(),
                        cause,
                    });
                }
            }
        }
    }

    /// The order with idempotency key `key`, if it exists.
    pub async fn find_order(&self, key: &str) -> Result<Option<Order>, DbError> {
        let row: Option<(i64, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, item_ids FROM orders WHERE idempotency_key = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await)
        .map_err(|e| DbError::from_sqlx(format!("reading order {key}"), e))?;
        Ok(row.map(|(id, items)| Order {
            id,
            key: key.to_owned(),
            item_ids: decode_item_ids(&items),
        }))
    }

    /// [`Db::find_order`] bounded by the transaction timeout.
    pub async fn find_order_bounded(&self, key: &str) -> Result<Option<Order>, DbError> {
        tokio::time::timeout(self.transaction_timeout, self.find_order(key))
            .await
            .unwrap_or_else(|_| {
                Err(DbError::TimedOut {
                    action: format!("reading order {key}"),
                    after: self.transaction_timeout,
                })
            })
    }
}

/// `url` with its password masked, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn is_in_memory(file: &Path) -> bool {
    file.as_os_str().is_empty() || file.to_string_lossy().starts_with(":memory:")
}

/// Creates the SQLite file (an empty file is an empty database) and its directory when
/// missing. The pool itself never creates it, so that a file deleted while the node runs is
/// noticed instead of silently replaced.
fn create_file(file: &Path) -> Result<(), DbError> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|cause| DbError::CreateDir {
            path: dir.to_owned(),
            cause,
        })?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map(drop)
        .map_err(|cause| DbError::CreateDir {
            path: file.to_owned(),
            cause,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_urls_are_rejected_with_the_url() {
        let err = Db::connect_lazy_with("mysql://localhost/x", &DbOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("mysql://localhost/x"), "{err}");
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn connection_errors_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(DbError::from_sqlx("x".into(), io).is_unavailable());
        assert!(DbError::from_sqlx("x".into(), sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!DbError::from_sqlx("x".into(), sqlx::Error::RowNotFound).is_unavailable());
        assert!(!DbError::NotAvailable { item_id: 1 }.is_unavailable());
    }
}
