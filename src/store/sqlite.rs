//! The embedded store: one SQLite file, WAL mode.
//!
//! The file holds fedgate's private signing keys, so a new one is created
//! mode 0600 (SQLite gives its `-wal` and `-shm` files the same mode), and a
//! warning names an existing one that other local users can read.
//!
//! SQLite has no LISTEN/NOTIFY: changes are published as rows of table
//! `changes`, which every server using the file polls (`crate::replication`),
//! so a `fedgate keys rotate` or a second process on the same file is heard
//! within about a second.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::impl_sql_store;
use super::*;

/// How long published changes are kept for pollers (which poll every second).
const CHANGE_RETENTION_MS: i64 = 10 * 60 * 1000;

/// SQLite-backed [`Store`].
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    /// Tags this store's published changes, so its own server skips them.
    /// Drawn on first use, not when the store opens: the first random
    /// draw waits for aws-lc to seed its generator (tens of milliseconds of
    /// CPU jitter sampling, started beside the store's loading by
    /// `crate::build`), and the store must not wait for it before it can
    /// load anything.
    origin: std::sync::OnceLock<String>,
}

impl SqliteStore {
    /// This process's tag in the change log, drawn on first use.
    fn origin(&self) -> &str {
        self.origin.get_or_init(|| crate::secrets::new_id("proc"))
    }

    /// Opens (creating if missing, mode 0600) the database at `url` and migrates it.
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
        secure_file(opts.get_filename())?;
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(|e| cannot_open(e.to_string()));
        // Closed once the pool has its own connection: closing the last
        // connection to a WAL database checkpoints it and deletes its -wal
        // and -shm files, which the pool's first connection would create again.
        let _ = sqlx::Connection::close(first).await;
        let pool = pool?;
        Ok(SqliteStore {
            pool,
            origin: std::sync::OnceLock::new(),
        })
    }
}

/// Creates the database file mode 0600 if it does not exist yet; warns when
/// an existing one (or its `-wal`/`-shm`) is readable or writable by others.
fn secure_file(path: &Path) -> anyhow::Result<()> {
    let name = path.to_string_lossy();
    if name.is_empty() || name == ":memory:" {
        return Ok(());
    }
    create_private(path)
        .map_err(|e| anyhow::anyhow!("cannot create the database file {name}: {e}"))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{name}{suffix}");
        if let Some(mode) = others_can_access(Path::new(&file)) {
            tracing::warn!(
                file = %file,
                mode = format!("{mode:o}"),
                "the store is readable by other local users, and it holds fedgate's private signing keys; run: chmod 600 {file}"
            );
        }
    }
    Ok(())
}

/// Creates an empty file only its owner can read, unless it exists.
pub fn create_private(path: &Path) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// The file's permission bits when others may read or write it.
#[cfg(unix)]
fn others_can_access(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o006 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn others_can_access(_: &Path) -> Option<u32> {
    None
}

impl_sql_store!(SqliteStore, sqlx::Sqlite);

fn now_ms() -> i64 {
    crate::clock::Clock::now_ms(&crate::clock::SystemClock)
}

#[async_trait::async_trait]
impl ChangeBus for SqliteStore {
    async fn publish(&self, change: &str) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("INSERT INTO changes (payload, at) VALUES ($1, $2)")
            .bind(format!("{} {change}", self.origin()))
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(now - CHANGE_RETENTION_MS)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn poll(&self, after: i64) -> StoreResult<Option<(i64, Vec<String>)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, payload FROM changes WHERE seq > $1 ORDER BY seq LIMIT 1000",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        let last = rows.last().map_or(after, |r| r.0);
        let own = format!("{} ", self.origin());
        let changes = rows
            .into_iter()
            .filter(|(_, p)| !p.starts_with(&own))
            .map(|(_, p)| p)
            .collect();
        Ok(Some((last, changes)))
    }

    async fn log_end(&self) -> StoreResult<Option<i64>> {
        let (end,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(end))
    }
}
