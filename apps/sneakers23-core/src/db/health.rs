//! What the node has seen of its writes, so that connections the database refused writes on
//! are replaced and `/health` can report the last write's error.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::DbError;

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

    /// The last write's error, if no write succeeded since.
    pub(super) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
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
