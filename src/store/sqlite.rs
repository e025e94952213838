//! The embedded store: one SQLite file, WAL mode, for a single replica.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::impl_sql_store;
use super::*;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                anyhow::anyhow!(
                    "the store URL {url:?} is not a SQLite URL ({e}): use sqlite://PATH"
                )
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let path = opts.get_filename().to_path_buf();
        // SQLite creates the file, not its folder; say so instead of its
        // "(code: 14) unable to open database file".
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if !folder.is_dir() {
            anyhow::bail!(
                "cannot open the SQLite store {}: the folder {} does not exist; create it, or set --database-url (FEDGATE_DATABASE_URL) to a file in an existing folder",
                path.display(),
                folder.display()
            );
        }
        let cannot_open = |e: String| {
            anyhow::anyhow!(
                "cannot open the SQLite store {}: {e}; check that the file and its folder are writable by this user",
                path.display()
            )
        };
        // The first connection creates the file and switches it to WAL,
        // which fsyncs and can take seconds on a busy disk: it gets its own,
        // longer bound (the pool's 5 s is for requests waiting on a
        // connection), and the migrations run on it.
        let mut first = tokio::time::timeout(
            Duration::from_secs(60),
            sqlx::ConnectOptions::connect(&opts),
        )
        .await
        .map_err(|_| cannot_open("no answer within 60 s".into()))?
        .map_err(|e| cannot_open(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut first)
            .await?;
        let _ = sqlx::Connection::close(first).await;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| cannot_open(e.to_string()))?;
        Ok(SqliteStore { pool })
    }
}

impl_sql_store!(SqliteStore);

#[async_trait::async_trait]
impl ChangeBus for SqliteStore {
    async fn publish(&self, _change: &str) -> StoreResult<()> {
        Ok(())
    }
}
