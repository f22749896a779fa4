//! Opening the database: a URL names the backend, the options tune its pool, and the SQLite
//! file is created (or, in production, required) here so that a file deleted under a running
//! node is noticed rather than silently replaced.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::error::DbError;
use super::health::WriteHealth;
use super::options::{DbOptions, redact_url};
use super::{Db, Pool};

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
}
