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
//!
//! ## Files
//!
//! Imports go one way. The values (`error.rs`, `options.rs`, `records.rs`, `health.rs`) import
//! nothing else from here; `mod.rs` holds the [`Db`] handle (its pool, ping, close, the file
//! check, the write probe) and re-exports the values; the files that add to the handle
//! (`connect.rs`, `schema.rs`, `catalog.rs`, `orders.rs`) import both, and nothing imports them.
//!
//! | file | what it holds |
//! |---|---|
//! | `error.rs` | [`DbError`]; which driver errors mean "unreachable" |
//! | `options.rs` | [`DbOptions`], [`DEFAULT_DATABASE_URL`], [`redact_url`] |
//! | `records.rs` | [`Order`], [`Purchase`], [`InsertedProduct`] |
//! | `health.rs` | what the node has seen of its writes; connections replaced after a refusal |
//! | `connect.rs` | a pool from a URL, for either backend; the SQLite file |
//! | `schema.rs` | the embedded migrations, `migrate` and `reset` |
//! | `catalog.rs` | products, items and availabilities: insert, load, read, release |
//! | `orders.rs` | the one-unit sale; the cart purchase as an idempotent order; a lost commit |

mod catalog;
mod connect;
mod error;
mod health;
mod options;
mod orders;
mod records;
mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

pub use error::DbError;
pub use options::{DEFAULT_DATABASE_URL, DbOptions, redact_url};
pub use records::{InsertedProduct, Order, Purchase};

use health::WriteHealth;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The pool of the backend the URL named; every query runs on it through [`on_pool!`].
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
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
// By path, so that the submodules import it like any other item.
use on_pool;

impl Db {
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
        self.writes.last_error()
    }

    /// Records the outcome of a write (see [`WriteHealth`]).
    pub(super) fn note_write<T>(&self, result: Result<T, DbError>) -> Result<T, DbError> {
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
}
