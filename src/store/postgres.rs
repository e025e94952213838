//! The shared store for several replicas: PostgreSQL.
//!
//! Besides the SQL of [`super::sql`], this store carries the replicas' change
//! feed: `publish` is a `NOTIFY` on the schema's channel, which
//! `crate::replication` LISTENs to on every replica.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::sql::impl_sql_store;
use super::*;

/// The NOTIFY channel replicas listen on when the store lives in schema
/// `public`; a store in another schema uses `fedgate_changes:<schema>` (see
/// [`channel_for`]), because channels are per database, not per schema.
pub const CHANNEL: &str = "fedgate_changes";

/// `application_name` of fedgate's connections unless the URL sets one, so
/// operators can find them in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "fedgate";

/// PostgreSQL-backed [`Store`].
pub struct PgStore {
    pool: sqlx::PgPool,
    channel: String,
    /// Tags this store's notifications (`"<origin> <change>"`), so the
    /// replica that made a change, which has applied it already, skips it.
    /// Drawn on first use, not when the store opens: the first random
    /// draw waits for aws-lc to seed its generator (tens of milliseconds of
    /// CPU jitter sampling, started beside the store's loading by
    /// `crate::build`), and the store must not wait for it before it can
    /// load anything.
    origin: std::sync::OnceLock<String>,
}

impl PgStore {
    /// This process's tag in the change log, drawn on first use.
    fn origin(&self) -> &str {
        self.origin
            .get_or_init(|| crate::secrets::new_id("replica"))
    }

    /// Connects to `url` and migrates the schema (`options=-c search_path=…`
    /// in the URL selects a schema, which the tests use for isolation).
    ///
    /// Every replica runs the migrations at start; sqlx serialises them with
    /// a PostgreSQL advisory lock, so replicas starting together are safe.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let mut opts: PgConnectOptions = url.parse().map_err(|e| {
            anyhow::anyhow!("the store URL is not a PostgreSQL URL ({e}): use postgres://USER@HOST:PORT/DATABASE")
        })?;
        if opts.get_application_name().is_none() {
            opts = opts.application_name(APPLICATION_NAME);
        }
        // One direct connection first: the pool would only report "pool
        // timed out", while this names the cause (refused, unknown host,
        // authentication, missing database).
        let target = format!(
            "PostgreSQL at {}:{} (database {:?}, user {:?})",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("postgres"),
            opts.get_username()
        );
        let check = |cause: String| {
            anyhow::anyhow!(
                "cannot connect to {target}: {cause}; check that the server is running and reachable from here, and the URL in --database-url (FEDGATE_DATABASE_URL)"
            )
        };
        match tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::ConnectOptions::connect(&opts),
        )
        .await
        {
            Ok(Ok(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            Ok(Err(e)) => return Err(check(e.to_string())),
            Err(_) => return Err(check("no answer within 10 s".into())),
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A request waits this long for a connection, then answers 503.
            .acquire_timeout(Duration::from_secs(3))
            // Ping a pooled connection before handing it out: one killed by
            // the server (`pg_terminate_backend`, failover) is replaced
            // instead of failing the request that drew it.
            .test_before_acquire(true)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let (schema,): (Option<String>,) = sqlx::query_as("SELECT current_schema()::text")
            .fetch_one(&pool)
            .await?;
        let channel = channel_for(schema.as_deref().unwrap_or("public"));
        Ok(PgStore {
            pool,
            channel,
            origin: std::sync::OnceLock::new(),
        })
    }

    /// The pool, for the change listener.
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }

    /// The NOTIFY channel of this store's schema.
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

/// The change channel of a schema: [`CHANNEL`] for `public`, else
/// `fedgate_changes:<schema>`, hashed when that would exceed PostgreSQL's
/// 63-byte identifier limit. Deployments (or test runs) in different schemas
/// of one database thus never see each other's invalidations.
pub fn channel_for(schema: &str) -> String {
    if schema == "public" {
        return CHANNEL.to_string();
    }
    let named = format!("{CHANNEL}:{schema}");
    if named.len() <= 63 {
        named
    } else {
        let hash = crate::secrets::sha256_hex(schema.as_bytes());
        format!("{CHANNEL}:{}", &hash[..32])
    }
}

impl_sql_store!(PgStore, sqlx::Postgres);

#[async_trait::async_trait]
impl ChangeBus for PgStore {
    async fn publish(&self, change: &str) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(format!("{} {change}", self.origin()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn feed(&self) -> Option<ChangeFeed> {
        Some(ChangeFeed {
            pool: self.pool.clone(),
            channel: self.channel.clone(),
            origin: self.origin().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_postgres_identifiers() {
        assert_eq!(channel_for("public"), "fedgate_changes");
        assert_eq!(channel_for("t_1_2_abc"), "fedgate_changes:t_1_2_abc");
        let long = "s".repeat(63);
        let c = channel_for(&long);
        assert!(c.len() <= 63, "{c}");
        assert_ne!(c, channel_for(&"s".repeat(62)));
    }
}
