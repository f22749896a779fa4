//! What a database is opened with: its URL (the default one, and the URL as logs may show it)
//! and the pool's options.

use std::time::Duration;

/// Database used when no URL is configured: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/sneakers23.db";

/// Connection pool settings.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Maximum open connections (`POOL_SIZE`).
    pub max_connections: u32,
    /// How long a query waits for a connection before failing with
    /// [`DbError::Unavailable`](super::DbError::Unavailable).
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

#[cfg(test)]
mod tests {
    use super::*;

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
