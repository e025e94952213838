//! The shared store for several replicas: PostgreSQL.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::impl_sql_store;
use super::*;

/// The NOTIFY channel replicas listen on.
pub const CHANNEL: &str = "fedgate_changes";

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// Connects to `url` and migrates the schema (`options=-c search_path=…`
    /// in the URL selects a schema, which the tests use for isolation).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// The pool, for the change listener.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

impl_sql_store!(PgStore);

#[async_trait::async_trait]
impl ChangeBus for PgStore {
    async fn publish(&self, change: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
