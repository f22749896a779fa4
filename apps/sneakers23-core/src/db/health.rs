//! What the node has seen of its writes, so that connections the database refused writes on
//! are replaced and `/health` can report the last write's error and probe a write.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Db, DbError, on_pool};

/// What the node has seen of its writes: the last write error, and when connections must be
/// replaced because the database refused writes on them (read-only, file gone).
///
/// A connection opened while a database is read-only stays read-only after the database is
/// writable again (SQLite opens the file read-only; PostgreSQL keeps
/// `default_transaction_read_only` for the session). Every connection older than the last such
/// refusal is therefore dropped at its next acquire, so the pool recovers by itself.
#[derive(Debug, Default)]
pub(super) struct WriteHealth {
    /// Connections created before this instant are replaced.
    evict_before: Mutex<Option<Instant>>,
    /// The last write's error, cleared by the next successful write.
    last_error: Mutex<Option<String>>,
}

impl WriteHealth {
    pub(super) fn succeeded(&self) {
        *self.last_error.lock() = None;
    }

    pub(super) fn failed(&self, error: &DbError) {
        *self.last_error.lock() = Some(error.to_string());
        if error.refuses_writes_on_connection() {
            *self.evict_before.lock() = Some(Instant::now());
        }
    }

    /// Whether a connection of this age may be handed out again.
    pub(super) fn keep(&self, age: Duration) -> bool {
        match *self.evict_before.lock() {
            None => true,
            Some(before) => Instant::now()
                .checked_sub(age)
                .is_some_and(|created| created > before),
        }
    }
}

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
        self.writes.last_error.lock().clone()
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
}
