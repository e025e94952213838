//! Cache coherence between replicas that share one PostgreSQL database.
//!
//! Each replica caches what its hot paths read (API keys, principals, the
//! federation index, signing keys; see `docs/operations.md`). A replica that
//! changes something calls `App::changed`, which applies the change locally
//! and NOTIFYs the store's channel ([`crate::store::ChangeFeed`]). This module
//! LISTENs on that channel in every replica and applies what arrives with
//! `App::apply` — never `App::changed`, which would publish it again. Each
//! payload is `"<origin> <change>"`; a replica skips its own (it applied them
//! already, and a second `issuer:` would drop the IdP keys it just fetched).
//! A bare `<change>` (e.g. an operator's `pg_notify`) is applied everywhere.
//! Every change is an idempotent invalidation or reload, so applying one
//! twice would be harmless anyway.
//!
//! NOTIFY is fire-and-forget: what is sent while a listener is disconnected
//! is lost. So the listener reconnects with backoff and, after every
//! subscription (the first one included, which closes the gap between loading
//! the caches at start and subscribing), resynchronises everything. A
//! periodic resync ([`RESYNC_INTERVAL`]) bounds the staleness left by a loss
//! nobody noticed, e.g. a half-open TCP connection.
//!
//! SQLite has no LISTEN/NOTIFY. There, publishing appends a row to table
//! `changes`, and every server on the file polls it every [`POLL_INTERVAL`]
//! for rows other processes appended (`fedgate keys rotate`, a second server
//! on the same file), applying them like notifications, beside the same
//! periodic resync.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::task::JoinHandle;

use crate::state::{App, Change};
use crate::store::{ChangeFeed, StoreResult};

/// How often every replica re-reads the federation index and the signing
/// keys, and forgets its cached API keys and principals, whether or not a
/// notification said so.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(60);
/// How often a server on SQLite looks for changes other processes made.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How long `start` waits for the first subscription before going on (the
/// background task keeps trying).
const FIRST_SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The running listener and resync tasks; dropping it stops them.
pub struct Replication {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Replication {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Subscribes this replica to the store's change feed, if it has one, and
/// returns once subscribed (or after [`FIRST_SUBSCRIBE_TIMEOUT`]), so that a
/// replica hears every change made after it starts serving. The tasks hold
/// only a weak reference to `app` and end when it is gone.
///
/// `log_end` is [`crate::store::Store::change_log_end`] as read before the
/// caches were loaded: a poller (SQLite) applies every change after it.
pub async fn start(app: &Arc<App>, log_end: StoreResult<Option<i64>>) -> Option<Replication> {
    let Some(feed) = app.store.change_feed() else {
        return start_polling(app, log_end);
    };
    // A pool of its own (same connect options: schema, application_name), so
    // that a reconnect never waits behind requests for a connection.
    let feed = ChangeFeed {
        pool: PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with((*feed.pool.connect_options()).clone()),
        channel: feed.channel,
        origin: feed.origin,
    };
    let first = match tokio::time::timeout(FIRST_SUBSCRIBE_TIMEOUT, subscribe(&feed)).await {
        Ok(Ok(listener)) => {
            tracing::info!(channel = %feed.channel, "listening for changes from other replicas");
            resync(app, Resync::Full).await;
            Some(listener)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for changes yet; retrying in the background");
            None
        }
        Err(_) => {
            tracing::warn!("cannot listen for changes yet (timeout); retrying in the background");
            None
        }
    };
    let weak = Arc::downgrade(app);
    let listener = tokio::spawn(listen_forever(feed, weak.clone(), first));
    let periodic = tokio::spawn(resync_periodically(weak));
    Some(Replication {
        tasks: vec![listener, periodic],
    })
}

/// The SQLite half of [`start`]: polls the store's `changes` table from
/// where it ended before the caches were loaded, so that a change another
/// process publishes while they load is applied, not lost.
fn start_polling(app: &Arc<App>, log_end: StoreResult<Option<i64>>) -> Option<Replication> {
    let last = match log_end {
        Ok(None) => return None,
        Ok(Some(end)) => Some(end),
        Err(e) => {
            // The first successful poll then rereads everything.
            tracing::warn!(error = %e, "cannot read the change log yet; retrying");
            None
        }
    };
    let weak = Arc::downgrade(app);
    let poller = tokio::spawn(poll_forever(weak.clone(), last));
    let periodic = tokio::spawn(resync_periodically(weak));
    Some(Replication {
        tasks: vec![poller, periodic],
    })
}

/// Applies what other processes published, every [`POLL_INTERVAL`], until
/// `app` is gone.
async fn poll_forever(app: Weak<App>, mut last: Option<i64>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures: u32 = 0;
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        match app.store.poll_changes(last.unwrap_or(0)).await {
            Ok(None) => return,
            Ok(Some((seq, changes))) => {
                if last.is_none() {
                    // Unknown start: whatever happened meanwhile, reread it all.
                    resync(&app, Resync::Full).await;
                } else {
                    for payload in &changes {
                        let (_, change) = split_origin(payload);
                        match Change::decode(change) {
                            Some(change) => {
                                tracing::debug!(change = %payload, "change from another process");
                                app.apply(&change).await;
                            }
                            None => tracing::warn!(
                                payload = %crate::model::truncate(payload, 80),
                                "ignoring an unknown change (a newer fedgate?)"
                            ),
                        }
                    }
                }
                last = Some(seq);
                failures = 0;
            }
            Err(e) => {
                if failures.is_multiple_of(60) {
                    tracing::warn!(error = %e, "cannot read the change log; retrying");
                }
                failures = failures.saturating_add(1);
            }
        }
    }
}

async fn subscribe(feed: &ChangeFeed) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&feed.pool).await?;
    // A lost connection must surface here, so that we resync after
    // reconnecting; sqlx would otherwise reconnect silently.
    listener.eager_reconnect(false);
    listener.listen(&feed.channel).await?;
    Ok(listener)
}

/// Listens until `app` is gone, reconnecting with exponential backoff.
async fn listen_forever(feed: ChangeFeed, app: Weak<App>, mut listener: Option<PgListener>) {
    let mut backoff = MIN_BACKOFF;
    let mut failures: u32 = 0;
    loop {
        let mut l = match listener.take() {
            Some(l) => l,
            None => match subscribe(&feed).await {
                Ok(l) => {
                    let Some(app) = app.upgrade() else { return };
                    tracing::info!(
                        channel = %feed.channel,
                        "listening for changes again; resynchronising caches (notifications sent meanwhile are lost)"
                    );
                    resync(&app, Resync::Full).await;
                    backoff = MIN_BACKOFF;
                    failures = 0;
                    l
                }
                Err(e) => {
                    if app.strong_count() == 0 {
                        return;
                    }
                    if failures.is_multiple_of(20) {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot listen for changes; retrying");
                    }
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            },
        };
        let Some(reason) = receive(&mut l, &feed.origin, &app).await else {
            return;
        };
        tracing::warn!(reason = %reason, "change listener lost its connection; reconnecting");
        drop(l);
        tokio::time::sleep(backoff).await;
    }
}

/// Applies notifications until the connection is lost (returns why) or the
/// app is gone (returns `None`).
async fn receive(listener: &mut PgListener, own: &str, app: &Weak<App>) -> Option<String> {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => {
                let app = app.upgrade()?;
                let (origin, payload) = split_origin(n.payload());
                if origin == Some(own) {
                    continue;
                }
                match Change::decode(payload) {
                    Some(change) => {
                        tracing::debug!(change = %payload, "change from another replica");
                        app.apply(&change).await;
                    }
                    None => tracing::warn!(
                        payload = %crate::model::truncate(n.payload(), 80),
                        "ignoring an unknown change notification (a newer replica?)"
                    ),
                }
            }
            Ok(None) => return Some("connection closed".into()),
            Err(e) => return Some(e.to_string()),
        }
    }
}

/// `"<origin> <change>"` → (origin, change); a bare change has no origin.
fn split_origin(payload: &str) -> (Option<&str>, &str) {
    match payload.split_once(' ') {
        Some((origin, change)) => (Some(origin), change),
        None => (None, payload),
    }
}

async fn resync_periodically(app: Weak<App>) {
    let start = tokio::time::Instant::now() + RESYNC_INTERVAL;
    let mut tick = tokio::time::interval_at(start, RESYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        resync(&app, Resync::Periodic).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resync {
    /// After (re)subscribing: the database was just reachable.
    Full,
    /// The safety net: skipped while the database is unreachable, so the
    /// last good caches keep serving (exchanges need no database).
    Periodic,
}

/// Re-reads everything a missed notification could have made stale.
async fn resync(app: &App, kind: Resync) {
    if kind == Resync::Periodic
        && let Err(e) = app.store.ping().await
    {
        tracing::warn!(error = %e, "database unreachable; periodic resync skipped, caches keep serving");
        return;
    }
    app.auth.invalidate_all();
    app.apply(&Change::Federation).await;
    app.apply(&Change::SigningKeys).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_their_origin_or_are_bare_changes() {
        assert_eq!(
            split_origin("replica_abc principal:sa_1"),
            (Some("replica_abc"), "principal:sa_1")
        );
        assert_eq!(split_origin("signing_keys"), (None, "signing_keys"));
        let (_, change) = split_origin("replica_abc external:sa_2");
        assert_eq!(
            Change::decode(change),
            Some(Change::ExternalAccount("sa_2".into()))
        );
    }
}
