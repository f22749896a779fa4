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
use std::time::Duration;

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
const TABLES: [&str; 4] = [
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
    #[error("could not create the directory {} for the SQLite database: {cause}", path.display())]
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
            Self::Unavailable { .. } => true,
            Self::Migrate(MigrateError::Execute(e)) => is_connection_error(e),
            _ => false,
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
    /// How long SQLite waits on a locked database before giving up.
    pub sqlite_busy_timeout: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
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
        let pool = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url).map_err(invalid)?;
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(true)
                    .connect_lazy_with(connect),
            )
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.sqlite_busy_timeout)
                .foreign_keys(true);
            create_parent_dir(connect.get_filename())?;
            Pool::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(options.max_connections)
                    .min_connections(0)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(true)
                    .connect_lazy_with(connect),
            )
        } else {
            return Err(DbError::UnsupportedUrl {
                url: redact_url(url),
            });
        };
        Ok(Self { pool })
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
        .map_err(|e| DbError::from_sqlx(format!("releasing product {product_id}"), e))?;
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
        .map_err(|e| DbError::from_sqlx(format!("selling item {item_id}"), e))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(DbError::NotAvailable { item_id })
        }
    }

    /// Sells one unit of every item in one transaction. If any item cannot be sold, nothing is
    /// sold and [`DbError::PurchaseFailed`] names the first failing item.
    pub async fn purchase(&self, item_ids: &[ItemId]) -> Result<(), DbError> {
        let err = |action: &str, e| DbError::from_sqlx(format!("{action} {item_ids:?}"), e);
        macro_rules! sell_all {
            ($tx:ident) => {{
                for &item_id in item_ids {
                    let changed = sqlx::query(SELL_ONE)
                        .bind(item_id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(|e| err("selling the items of the cart", e))?
                        .rows_affected();
                    if changed != 1 {
                        // Dropping the transaction would roll back too; do it explicitly so
                        // the connection goes back to the pool clean.
                        if let Err(e) = $tx.rollback().await {
                            tracing::warn!(error = %e, ?item_ids, "rollback of a failed purchase");
                        }
                        return Err(DbError::PurchaseFailed {
                            item_ids: item_ids.to_vec(),
                            failed_item_id: item_id,
                        });
                    }
                }
                $tx.commit()
                    .await
                    .map_err(|e| err("committing the purchase of", e))
            }};
        }
        match &self.pool {
            Pool::Sqlite(pool) => {
                // Take the write lock up front so concurrent purchases queue on the busy
                // timeout instead of failing to upgrade a read transaction.
                let mut tx = pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(|e| err("starting the purchase of", e))?;
                sell_all!(tx)
            }
            Pool::Postgres(pool) => {
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(|e| err("starting the purchase of", e))?;
                sell_all!(tx)
            }
        }
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

/// Creates the directory that will hold the SQLite file (no-op for in-memory databases).
fn create_parent_dir(file: &Path) -> Result<(), DbError> {
    if file.as_os_str().is_empty() || file.to_string_lossy().starts_with(":memory:") {
        return Ok(());
    }
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|cause| DbError::CreateDir {
                path: dir.to_owned(),
                cause,
            })
        }
        _ => Ok(()),
    }
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
