//! Opening the database: a URL names the backend, [`DbOptions`] tune its pool, and the SQLite
//! file is created (or, in production, required) here so that a file deleted under a running
//! node is noticed rather than silently replaced.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::error::DbError;
use super::health::WriteHealth;
use super::{Db, Pool};

/// Database used when no URL is configured: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sneakers23.db";

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
}
