//! `fedgate backup`: one consistent, self-contained copy of the embedded
//! store, taken while servers keep running and writing.
//!
//! A plain `cp` of a SQLite file in WAL mode is not a backup: recent
//! transactions live in `fedgate.db-wal` until a checkpoint, and a copy of
//! the main file alone can miss whole tables. `VACUUM INTO` writes, from one
//! read transaction, a new database holding everything committed before it
//! began: no WAL to carry along, and writers are not blocked meanwhile (WAL
//! readers do not block writers). The copy is then opened and checked
//! (`PRAGMA integrity_check`) before the command reports success.
//!
//! PostgreSQL has its own tools (`pg_dump`); the command says what to run.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// What `fedgate backup` prints.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub backup: String,
    pub bytes: u64,
    pub integrity: String,
    pub organizations: i64,
    pub signing_keys: i64,
    /// Whether the private signing keys in the copy are encrypted
    /// (`--key-encryption-key-file`); if not, the copy is a secret.
    pub signing_keys_encrypted: bool,
}

/// Writes a backup of the store at `database_url` to `out`, which must not exist.
pub async fn backup(database_url: &str, out: &Path) -> anyhow::Result<BackupReport> {
    if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        anyhow::bail!(
            "fedgate backup is for the embedded SQLite store; for PostgreSQL run \
             `pg_dump --format=custom --file=OUT \"$FEDGATE_DATABASE_URL\"` \
             (add --schema=SCHEMA if fedgate has its own schema) and restore with \
             `pg_restore --clean --if-exists --dbname=URL OUT` (docs/operations.md)"
        );
    }
    if !database_url.starts_with("sqlite:") {
        anyhow::bail!("unsupported --database-url: use sqlite://PATH (or pg_dump for PostgreSQL)");
    }
    let source = SqliteConnectOptions::from_str(database_url)?;
    if !source.get_filename().exists() {
        anyhow::bail!(
            "no database at {}: nothing to back up",
            source.get_filename().display()
        );
    }
    if out.exists() {
        anyhow::bail!("{} exists already: back up to a new file", out.display());
    }
    // Created empty and private first: VACUUM INTO fills an empty file and
    // keeps its mode, and the copy holds the private signing keys.
    crate::store::sqlite::create_private(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let written = vacuum_into(source, out).await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    verify(out).await
}

async fn vacuum_into(source: SqliteConnectOptions, out: &Path) -> anyhow::Result<()> {
    let target = out
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("{}: not a UTF-8 path", out.display()))?;
    let mut conn = source
        .busy_timeout(std::time::Duration::from_secs(30))
        .connect()
        .await?;
    sqlx::query("VACUUM INTO $1")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("VACUUM INTO {}: {e}", out.display()))?;
    conn.close().await?;
    Ok(())
}

async fn verify(out: &Path) -> anyhow::Result<BackupReport> {
    let mut conn = SqliteConnectOptions::new()
        .filename(out)
        .read_only(true)
        .connect()
        .await?;
    let (integrity,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?;
    if integrity != "ok" {
        anyhow::bail!(
            "the backup {} fails its integrity check: {integrity}",
            out.display()
        );
    }
    let (organizations,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orgs")
        .fetch_one(&mut conn)
        .await?;
    let (signing_keys, sealed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN private_key LIKE 'enc:%' THEN 1 ELSE 0 END), 0) FROM signing_keys",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(BackupReport {
        backup: out.display().to_string(),
        bytes: std::fs::metadata(out)?.len(),
        integrity,
        organizations,
        signing_keys,
        signing_keys_encrypted: signing_keys > 0 && sealed == signing_keys,
    })
}
