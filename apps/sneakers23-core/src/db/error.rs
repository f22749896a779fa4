//! The storage layer's errors, and which driver errors mean "the database could not be reached"
//! (retry later) rather than "it refused this statement".

use std::path::PathBuf;
use std::time::Duration;

use sqlx::migrate::MigrateError;

use crate::model::{ItemId, ProductId};

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
    /// A step of a write did not finish within the transaction timeout
    /// ([`DbOptions::transaction_timeout`](super::DbOptions::transaction_timeout)); it was
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
    pub(super) fn refuses_writes_on_connection(&self) -> bool {
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
    pub(super) fn from_sqlx(action: String, cause: sqlx::Error) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(DbError::from_sqlx("x".into(), io).is_unavailable());
        assert!(DbError::from_sqlx("x".into(), sqlx::Error::PoolTimedOut).is_unavailable());
        assert!(!DbError::from_sqlx("x".into(), sqlx::Error::RowNotFound).is_unavailable());
        assert!(!DbError::NotAvailable { item_id: 1 }.is_unavailable());
    }
}
