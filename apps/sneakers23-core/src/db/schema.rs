//! The schema: each backend's embedded migrations (`migrations/sqlite`, `migrations/postgres`
//! beside this crate's manifest), applying them, and dropping everything to start again.

use sqlx::migrate::Migrator;

use super::error::DbError;
use super::{Db, Pool, on_pool};

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

impl Db {
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
}
