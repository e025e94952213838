//! The cache of each trusted issuer's verification keys ([`KeyCache`]):
//! TTL from `Cache-Control`, single-flight refresh on an unknown `kid`, last
//! good keys served while the IdP is down. The keys come from a
//! [`KeyFetcher`] (`fetch`) and are parsed by `keys`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;

use super::fetch::KeyFetcher;
use super::keys::VerifyingKey;
use super::{IssuerConfig, KeySource, excerpt};

/// Why no key could be given for a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The JWKS (even after a refresh) has no key for this `kid`/`alg`.
    #[error("no key of the issuer matches {} and alg {alg:?}", kid_text(.kid))]
    UnknownKid { kid: Option<String>, alg: Algorithm },
    /// No `kid`, and several keys could verify `alg`: refusing beats guessing.
    #[error("the token has no kid and several keys of the issuer fit alg {0:?}")]
    AmbiguousKey(Algorithm),
    /// The key named by `kid` cannot verify the header's `alg` (RFC 8725 §3.1).
    #[error("{0}")]
    AlgMismatch(String),
    /// No fetch succeeded and no usable cached keys: HTTP 503 `temporarily_unavailable`.
    #[error("the issuer's signing keys are unavailable: {0}")]
    Unavailable(String),
}

fn kid_text(kid: &Option<String>) -> String {
    match kid {
        Some(k) => format!("kid {:?}", excerpt(k, 64)),
        None => "a token without kid".to_owned(),
    }
}

impl KeyError {
    /// RFC 6749 §5.2 code for the token endpoint (503 for `temporarily_unavailable`).
    pub fn error_code(&self) -> &'static str {
        match self {
            KeyError::Unavailable(_) => "temporarily_unavailable",
            _ => "invalid_grant",
        }
    }
}

/// The usable keys of one fetch, and how many JWKs were refused.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
    dropped: usize,
}

impl KeySet {
    fn build(jwks: &JwkSet, unparsed: usize, issuer_id: &str) -> KeySet {
        let mut set = KeySet {
            keys: Vec::new(),
            dropped: unparsed,
        };
        for jwk in &jwks.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => set.keys.push(Arc::new(k)),
                Err(reason) => {
                    set.dropped += 1;
                    tracing::debug!(issuer_id, kid = ?jwk.common.key_id, %reason, "JWK dropped");
                }
            }
        }
        set
    }

    /// `Ok(None)` when nothing matches (a refresh may help).
    fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<Arc<VerifyingKey>>, KeyError> {
        let fits = |k: &VerifyingKey| k.family.accepts(alg) && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                let Some(first) = named.peek().map(|k| Arc::clone(k)) else {
                    return Ok(None);
                };
                if let Some(k) = named.find(|k| fits(k)) {
                    return Ok(Some(Arc::clone(k)));
                }
                let own = first
                    .alg
                    .map(|a| format!(" with alg {a:?}"))
                    .unwrap_or_default();
                Err(KeyError::AlgMismatch(format!(
                    "key {:?} is a {} key{own}; it cannot verify alg {alg:?} (RFC 8725 §3.1)",
                    excerpt(kid, 64),
                    first.family.name()
                )))
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| fits(k));
                match (fitting.next(), fitting.next()) {
                    (None, _) => Ok(None),
                    (Some(k), None) => Ok(Some(Arc::clone(k))),
                    (Some(_), Some(_)) => Err(KeyError::AmbiguousKey(alg)),
                }
            }
        }
    }
}

/// How long keys are trusted and how often an IdP may be asked again.
#[derive(Clone, Debug)]
pub struct CachePolicy {
    /// Floor for `Cache-Control: max-age` (an IdP saying 0 must not make us fetch per request).
    pub min_ttl: Duration,
    /// Ceiling for `max-age`, so rotated-out keys do not live for weeks.
    pub max_ttl: Duration,
    /// TTL when the IdP sends no `max-age`.
    pub default_ttl: Duration,
    /// At most one automatic fetch per issuer in this window (unknown kid, retry after failure).
    pub refresh_cooldown: Duration,
    /// How long after their fetch the last good keys keep serving while the IdP fails.
    pub max_stale: Duration,
    /// Upper bound on one fetch, whatever the fetcher does.
    pub fetch_timeout: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(15 * 60),
            refresh_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// What the admin API shows for an issuer's keys (never the keys themselves).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// `discovery`, `jwks_uri` or `static`.
    pub source: &'static str,
    /// `kid`s of the usable keys, so an admin can compare with a token's header.
    pub kids: Vec<String>,
    /// Usable keys, with or without a `kid`.
    pub keys: usize,
    /// Unix time of the last successful fetch (`None` for a static JWKS).
    pub last_fetch: Option<i64>,
    /// Why the last attempt failed, if it did; cleared by a success.
    pub last_error: Option<String>,
    /// Unix time after which the next request refetches (`None` for static).
    pub expires_at: Option<i64>,
    /// JWKs refused (wrong `use`, weak RSA, symmetric, unknown type, unparsable).
    pub dropped: usize,
}

#[derive(Clone, Debug, Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<i64>,
    expires_at: Option<i64>,
    last_error: Option<String>,
    last_attempt: Option<i64>,
    /// Bumped when an attempt completes: waiters for the flight lock see it moved and reuse the result.
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    issuer: String,
    source: KeySource,
    state: RwLock<State>,
    flight: tokio::sync::Mutex<()>,
    /// Set while a background refresh (expired TTL, known `kid`) is queued
    /// or running: one at a time per issuer.
    background: AtomicBool,
    fetches: AtomicU64,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Entry {
    fn new(issuer: &IssuerConfig, now: i64) -> Entry {
        let mut state = State::default();
        if let KeySource::Static(jwks) = &issuer.key_source {
            let set = KeySet::build(jwks, 0, &issuer.id);
            if set.keys.is_empty() {
                state.last_error = Some(format!(
                    "the static JWKS has no usable signing key ({} dropped)",
                    set.dropped
                ));
            }
            state.keys = Some(Arc::new(set));
            state.fetched_at = Some(now);
            state.expires_at = Some(i64::MAX);
        }
        Entry {
            issuer: issuer.issuer.clone(),
            source: issuer.key_source.clone(),
            state: RwLock::new(state),
            flight: tokio::sync::Mutex::new(()),
            background: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        }
    }

    fn matches(&self, issuer: &IssuerConfig) -> bool {
        self.issuer == issuer.issuer && self.source == issuer.key_source
    }

    fn status(&self) -> KeyStatus {
        let st = read(&self.state);
        let is_static = matches!(self.source, KeySource::Static(_));
        let keys = st.keys.as_deref();
        KeyStatus {
            source: match self.source {
                KeySource::Discovery => "discovery",
                KeySource::JwksUri(_) => "jwks_uri",
                KeySource::Static(_) => "static",
            },
            kids: keys
                .map(|s| s.keys.iter().filter_map(|k| k.kid.clone()).collect())
                .unwrap_or_default(),
            keys: keys.map_or(0, |s| s.keys.len()),
            last_fetch: if is_static { None } else { st.fetched_at },
            last_error: st.last_error.clone(),
            expires_at: if is_static { None } else { st.expires_at },
            dropped: keys.map_or(0, |s| s.dropped),
        }
    }
}

/// Keys per issuer id. The read path clones an `Arc` under a short std lock
/// and never holds a lock across `.await`; fetches are single flight per
/// issuer (a `tokio::sync::Mutex` plus a generation counter), at most one
/// automatic fetch per `refresh_cooldown`, and the last good keys serve
/// until `max_stale` when the IdP fails (DESIGN §3, STYLE habit 5). When the
/// TTL runs out, a token whose `kid` the cached set knows is served from it
/// at once while one refresh runs in the background: a slow IdP never
/// stalls the exchanges of keys it still publishes.
pub struct KeyCache {
    fetching: Arc<Fetching>,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

/// What a fetch needs, shared with background refreshes.
struct Fetching {
    fetcher: Arc<dyn KeyFetcher>,
    policy: CachePolicy,
}

impl KeyCache {
    /// A cache in front of `fetcher` (an `HttpFetcher` in production).
    pub fn new(fetcher: Arc<dyn KeyFetcher>, policy: CachePolicy) -> Self {
        KeyCache {
            fetching: Arc::new(Fetching { fetcher, policy }),
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn policy(&self) -> &CachePolicy {
        &self.fetching.policy
    }

    /// The key that must verify a token of `issuer` with header `kid`/`alg`.
    /// A fresh cached key costs no I/O, nor does a known `kid` of an expired
    /// set (one background refresh renews it); an unknown `kid` or a set
    /// with no such key costs at most one fetch shared by all concurrent callers.
    pub async fn key(
        &self,
        issuer: &IssuerConfig,
        kid: Option<&str>,
        alg: Algorithm,
        now: i64,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let entry = self.entry(issuer, now);
        let (keys, fetched_at, expires_at, seen) = {
            let st = read(&entry.state);
            (st.keys.clone(), st.fetched_at, st.expires_at, st.generation)
        };
        if let Some(set) = &keys {
            if expires_at.is_some_and(|e| now < e) {
                if let Some(k) = set.select(kid, alg)? {
                    crate::metrics::cache_lookup(crate::metrics::Cache::JwksKeys, true);
                    return Ok(k);
                }
            } else if now.saturating_sub(fetched_at.unwrap_or(i64::MIN))
                <= secs(self.policy().max_stale)
                && let Ok(Some(k)) = set.select(kid, alg)
            {
                crate::metrics::cache_lookup(crate::metrics::Cache::JwksKeys, true);
                self.refresh_in_background(&entry, issuer, now, seen);
                return Ok(k);
            }
        }
        crate::metrics::cache_lookup(crate::metrics::Cache::JwksKeys, false);
        self.auto_refresh(&entry, issuer, now, seen).await;
        let (keys, fetched_at, expires_at, last_error) = {
            let st = read(&entry.state);
            (
                st.keys.clone(),
                st.fetched_at,
                st.expires_at,
                st.last_error.clone(),
            )
        };
        let last_error = last_error.unwrap_or_else(|| "no keys fetched yet".to_owned());
        let Some(set) = keys else {
            return Err(KeyError::Unavailable(last_error));
        };
        let fresh = expires_at.is_some_and(|e| now < e);
        let age = now.saturating_sub(fetched_at.unwrap_or(i64::MIN));
        if !fresh && age > secs(self.policy().max_stale) {
            return Err(KeyError::Unavailable(format!(
                "{last_error}; the last good keys are {age} s old, over the {} s limit",
                secs(self.policy().max_stale)
            )));
        }
        set.select(kid, alg)?.ok_or_else(|| KeyError::UnknownKid {
            kid: kid.map(str::to_owned),
            alg,
        })
    }

    /// Fetches now, ignoring TTL and cooldown (admin "refresh", lint of an
    /// update). Unlike [`KeyCache::key`], a failure is returned even if old
    /// keys remain cached.
    pub async fn refresh(&self, issuer: &IssuerConfig, now: i64) -> Result<KeyStatus, KeyError> {
        self.fetch_now(issuer, now, true).await
    }

    /// [`KeyCache::refresh`] for an issuer that is not registered yet (the
    /// lint of a registration): not counted in metrics, so a refused
    /// registration leaves no series behind.
    pub async fn probe(&self, issuer: &IssuerConfig, now: i64) -> Result<KeyStatus, KeyError> {
        self.fetch_now(issuer, now, false).await
    }

    async fn fetch_now(
        &self,
        issuer: &IssuerConfig,
        now: i64,
        counted: bool,
    ) -> Result<KeyStatus, KeyError> {
        if let KeySource::Static(_) = issuer.key_source {
            self.forget(&issuer.id);
            let entry = self.entry(issuer, now);
            let status = entry.status();
            return match &status.last_error {
                Some(e) if status.keys == 0 => Err(KeyError::Unavailable(e.clone())),
                _ => Ok(status),
            };
        }
        let entry = self.entry(issuer, now);
        let _flight = entry.flight.lock().await;
        self.fetching
            .fetch_into(&entry, issuer, now, counted)
            .await
            .map_err(KeyError::Unavailable)?;
        Ok(entry.status())
    }

    /// Key status of an issuer, if it was ever used or refreshed.
    pub fn status(&self, issuer_id: &str) -> Option<KeyStatus> {
        let entry = read(&self.entries).get(issuer_id).cloned()?;
        Some(entry.status())
    }

    /// Drops an issuer's keys (issuer deleted or its key source changed).
    pub fn forget(&self, issuer_id: &str) {
        write(&self.entries).remove(issuer_id);
    }

    /// Fetch attempts for an issuer since it entered the cache (tests, metrics).
    pub fn fetch_count(&self, issuer_id: &str) -> u64 {
        read(&self.entries)
            .get(issuer_id)
            .map_or(0, |e| e.fetches.load(Ordering::Relaxed))
    }

    /// The issuer's entry; a changed `iss` or key source starts a new one.
    fn entry(&self, issuer: &IssuerConfig, now: i64) -> Arc<Entry> {
        if let Some(e) = read(&self.entries).get(&issuer.id)
            && e.matches(issuer)
        {
            return Arc::clone(e);
        }
        let mut map = write(&self.entries);
        if let Some(e) = map.get(&issuer.id)
            && e.matches(issuer)
        {
            return Arc::clone(e);
        }
        let e = Arc::new(Entry::new(issuer, now));
        map.insert(issuer.id.clone(), Arc::clone(&e));
        e
    }

    /// Starts one refresh of an expired set in the background, unless one
    /// is already queued or running, the cooldown forbids it, or there is
    /// no runtime to run it on (then the next caller fetches inline).
    fn refresh_in_background(
        &self,
        entry: &Arc<Entry>,
        issuer: &IssuerConfig,
        now: i64,
        seen: u64,
    ) {
        if matches!(entry.source, KeySource::Static(_))
            || self.fetching.cooling_down(entry, now)
            || entry.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            entry.background.store(false, Ordering::Release);
            return;
        };
        let (fetching, entry, issuer) = (
            Arc::clone(&self.fetching),
            Arc::clone(entry),
            issuer.clone(),
        );
        rt.spawn(async move {
            fetching.single_flight(&entry, &issuer, now, seen).await;
            entry.background.store(false, Ordering::Release);
        });
    }

    async fn auto_refresh(&self, entry: &Entry, issuer: &IssuerConfig, now: i64, seen: u64) {
        self.fetching.single_flight(entry, issuer, now, seen).await;
    }
}

impl Fetching {
    fn cooling_down(&self, entry: &Entry, now: i64) -> bool {
        read(&entry.state)
            .last_attempt
            .is_some_and(|t| now.saturating_sub(t) < secs(self.policy.refresh_cooldown))
    }

    /// Single flight: callers that saw generation `seen` queue on the flight
    /// lock; the first fetches, the others find the generation moved and
    /// reuse its result. The cooldown also spaces retries against a failing IdP.
    async fn single_flight(&self, entry: &Entry, issuer: &IssuerConfig, now: i64, seen: u64) {
        if matches!(entry.source, KeySource::Static(_)) {
            return;
        }
        let _flight = entry.flight.lock().await;
        if read(&entry.state).generation != seen || self.cooling_down(entry, now) {
            return;
        }
        // The outcome is recorded in the entry; `key` reads it from there.
        let _ = self.fetch_into(entry, issuer, now, true).await;
    }

    /// One fetch; the caller holds the flight lock. `counted`: whether the
    /// attempt shows in metrics (not for an issuer still being registered).
    async fn fetch_into(
        &self,
        entry: &Entry,
        issuer: &IssuerConfig,
        now: i64,
        counted: bool,
    ) -> Result<(), String> {
        entry.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched =
            tokio::time::timeout(self.policy.fetch_timeout, self.fetcher.fetch(issuer)).await;
        let timed_out = fetched.is_err();
        let outcome = match fetched {
            Err(_) => Err(format!(
                "fetch took longer than {:?}",
                self.policy.fetch_timeout
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(f)) => {
                let set = KeySet::build(&f.jwks, f.unparsed, &issuer.id);
                if set.keys.is_empty() {
                    Err(format!(
                        "the JWKS has no usable signing key ({} dropped)",
                        set.dropped
                    ))
                } else {
                    let ttl = f.max_age.map_or(self.policy.default_ttl, |d| {
                        d.clamp(self.policy.min_ttl, self.policy.max_ttl)
                    });
                    Ok((set, secs(ttl)))
                }
            }
        };
        if counted {
            crate::metrics::jwks_fetch(
                &issuer.id,
                match &outcome {
                    Ok(_) => "ok",
                    Err(_) if timed_out => "timeout",
                    Err(_) => "error",
                },
            );
        }
        let mut st = write(&entry.state);
        st.generation += 1;
        st.last_attempt = Some(now);
        match outcome {
            Ok((set, ttl)) => {
                tracing::info!(issuer_id = %issuer.id, keys = set.keys.len(), dropped = set.dropped, ttl, "issuer keys fetched");
                st.keys = Some(Arc::new(set));
                st.fetched_at = Some(now);
                st.expires_at = Some(now.saturating_add(ttl));
                st.last_error = None;
                Ok(())
            }
            Err(msg) => {
                tracing::warn!(issuer_id = %issuer.id, error = %msg, "issuer keys fetch failed");
                st.last_error = Some(msg.clone());
                Err(msg)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use async_trait::async_trait;

    use super::*;
    use crate::federation::fetch::{FetchError, Fetched};
    use crate::federation::keys::test_keys::{b64, ec256, ed25519, rsa};
    use crate::federation::keys::{EcCurve, KeyFamily};
    use crate::federation::test_issuer as issuer;

    fn set(keys: Vec<Value>) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    /// Counts calls, can fail, can sleep.
    struct Mock {
        calls: AtomicU64,
        jwks: Mutex<JwkSet>,
        fail: AtomicBool,
        delay: Duration,
        max_age: Option<Duration>,
        /// When set, each fetch waits for a permit: a slow IdP held still.
        gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    }

    impl Mock {
        fn new(jwks: JwkSet) -> Arc<Mock> {
            Arc::new(Mock {
                calls: AtomicU64::new(0),
                jwks: Mutex::new(jwks),
                fail: AtomicBool::new(false),
                delay: Duration::ZERO,
                max_age: None,
                gate: Mutex::new(None),
            })
        }
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyFetcher for Mock {
        async fn fetch(&self, _issuer: &IssuerConfig) -> Result<Fetched, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let gate = self.gate.lock().unwrap().clone();
            if let Some(gate) = gate {
                gate.acquire().await.unwrap().forget();
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(FetchError::Status {
                    url: "https://idp.example/jwks".into(),
                    status: 500,
                });
            }
            let jwks = self.jwks.lock().unwrap().clone();
            Ok(Fetched {
                jwks,
                unparsed: 0,
                max_age: self.max_age,
            })
        }
    }

    const T0: i64 = 1_800_000_000;

    fn cache(mock: &Arc<Mock>) -> KeyCache {
        KeyCache::new(
            Arc::clone(mock) as Arc<dyn KeyFetcher>,
            CachePolicy::default(),
        )
    }

    fn idp() -> IssuerConfig {
        issuer("i1", "https://idp.example", KeySource::Discovery)
    }

    /// Waits (bounded, never a timing assertion) for a background refresh to land.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..2000 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("gave up waiting for {what}");
    }

    /// Issue 10: a slow IdP must not stall exchanges when the TTL runs out.
    /// A known kid is served from the expired set at once while exactly one
    /// refresh runs in the background; its result replaces the set.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_set_serves_known_kids_while_one_refresh_runs() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = Arc::new(cache(&mock));
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *mock.gate.lock().unwrap() = Some(Arc::clone(&gate));
        *mock.jwks.lock().unwrap() = set(vec![
            rsa(0).jwk("a", json!({})),
            ec256().jwk("b", json!({})),
        ]);
        // TTL (900 s) over; the IdP hangs. Every call still answers.
        for i in 0..50 {
            let got = tokio::time::timeout(
                Duration::from_secs(60),
                cache.key(&idp(), Some("a"), Algorithm::RS256, T0 + 900 + i),
            )
            .await
            .expect("an expired set with a known kid must not wait for the IdP");
            assert_eq!(got.unwrap().kid.as_deref(), Some("a"));
        }
        until("the background fetch to start", || mock.calls() == 2).await;
        assert_eq!(mock.calls(), 2, "one background refresh, not one per call");
        assert_eq!(cache.status("i1").unwrap().last_fetch, Some(T0));
        gate.add_permits(1);
        until("the background fetch to land", || {
            cache.status("i1").unwrap().last_fetch == Some(T0 + 900)
        })
        .await;
        assert_eq!(
            cache.status("i1").unwrap().kids,
            vec!["a".to_owned(), "b".to_owned()]
        );
        // Fresh again: no fetch; the new key is known without one.
        cache
            .key(&idp(), Some("b"), Algorithm::ES256, T0 + 1000)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
    }

    #[tokio::test]
    async fn fresh_hit_does_not_fetch() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        let k = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        assert_eq!(k.kid.as_deref(), Some("a"));
        assert_eq!(k.family, KeyFamily::Rsa);
        for dt in [1, 100, 899] {
            cache
                .key(&idp(), Some("a"), Algorithm::PS256, T0 + dt)
                .await
                .unwrap();
        }
        assert_eq!(mock.calls(), 1);
        assert_eq!(cache.fetch_count("i1"), 1);
        // Default TTL (15 min) elapsed: one refetch, in the background.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 900)
            .await
            .unwrap();
        until("the refresh", || {
            cache.status("i1").unwrap().last_fetch == Some(T0 + 900)
        })
        .await;
        assert_eq!(mock.calls(), 2);
        let st = cache.status("i1").unwrap();
        assert_eq!(
            (st.kids, st.last_fetch, st.expires_at),
            (vec!["a".to_owned()], Some(T0 + 900), Some(T0 + 1800))
        );
    }

    #[tokio::test]
    async fn max_age_is_clamped_to_min_ttl() {
        let mut mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        Arc::get_mut(&mut mock).unwrap().max_age = Some(Duration::from_secs(5));
        let cache = cache(&mock);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 59)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 1);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 60)
            .await
            .unwrap();
        until("the refresh", || mock.calls() == 2).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unknown_kid_storm_is_one_fetch() {
        let mut mock = Mock::new(set(vec![rsa(0).jwk("old", json!({}))]));
        Arc::get_mut(&mut mock).unwrap().delay = Duration::from_millis(100);
        let cache = Arc::new(cache(&mock));
        let iss = Arc::new(idp());
        cache
            .key(&iss, Some("old"), Algorithm::RS256, T0)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 1);
        // The IdP rotated: every request now carries kid "new".
        *mock.jwks.lock().unwrap() = set(vec![
            rsa(0).jwk("old", json!({})),
            ec256().jwk("new", json!({})),
        ]);
        let now = T0 + 31;
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let (cache, iss) = (Arc::clone(&cache), Arc::clone(&iss));
                tokio::spawn(
                    async move { cache.key(&iss, Some("new"), Algorithm::ES256, now).await },
                )
            })
            .collect();
        for t in tasks {
            assert_eq!(
                t.await.unwrap().unwrap().family,
                KeyFamily::Ec(EcCurve::P256)
            );
        }
        assert_eq!(mock.calls(), 2);
    }

    #[tokio::test]
    async fn cooldown_limits_unknown_kid_refreshes() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        let err = cache
            .key(&idp(), Some("x"), Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::UnknownKid { .. }), "{err}");
        assert_eq!(mock.calls(), 1, "the first fetch already answered for x");
        let err = cache
            .key(&idp(), Some("y"), Algorithm::RS256, T0 + 29)
            .await
            .unwrap_err();
        assert_eq!(err.error_code(), "invalid_grant");
        assert_eq!(mock.calls(), 1, "within the cooldown");
        cache
            .key(&idp(), Some("z"), Algorithm::RS256, T0 + 30)
            .await
            .unwrap_err();
        assert_eq!(mock.calls(), 2, "cooldown over");
    }

    #[tokio::test]
    async fn idp_failure_serves_last_good_keys_until_max_stale() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let policy = CachePolicy {
            max_stale: Duration::from_secs(3600),
            ..CachePolicy::default()
        };
        let cache = KeyCache::new(Arc::clone(&mock) as Arc<dyn KeyFetcher>, policy);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        mock.fail.store(true, Ordering::SeqCst);
        // Expired (TTL 900 s), the refetch fails, the old key still serves.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1000)
            .await
            .unwrap();
        until("the failed refresh", || {
            cache.status("i1").unwrap().last_error.is_some()
        })
        .await;
        assert_eq!(mock.calls(), 2);
        let st = cache.status("i1").unwrap();
        assert!(
            st.last_error.as_deref().unwrap().contains("HTTP 500"),
            "{st:?}"
        );
        assert_eq!(st.last_fetch, Some(T0));
        // Within the cooldown no new attempt is made.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1010)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
        // The forced refresh reports the failure although keys remain.
        let err = cache.refresh(&idp(), T0 + 1020).await.unwrap_err();
        assert!(matches!(err, KeyError::Unavailable(_)));
        // Past max_stale: unavailable (503).
        let err = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 3601)
            .await
            .unwrap_err();
        assert_eq!(err.error_code(), "temporarily_unavailable");
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        // The IdP is back: keys again.
        mock.fail.store(false, Ordering::SeqCst);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 3700)
            .await
            .unwrap();
        assert_eq!(cache.status("i1").unwrap().last_error, None);
    }

    #[tokio::test]
    async fn no_keys_and_failing_idp_is_unavailable() {
        let mock = Mock::new(JwkSet::default());
        mock.fail.store(true, Ordering::SeqCst);
        let cache = cache(&mock);
        let err = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KeyError::Unavailable(m) if m.contains("HTTP 500")),
            "{err}"
        );
        // An empty JWKS is a failure too, and never replaces good keys.
        mock.fail.store(false, Ordering::SeqCst);
        let err = cache.refresh(&idp(), T0 + 1).await.unwrap_err();
        assert!(err.to_string().contains("no usable signing key"), "{err}");
    }

    #[tokio::test]
    async fn weak_encryption_symmetric_and_unknown_keys_are_dropped() {
        let rsa1024 = json!({"kty": "RSA", "kid": "weak", "n": b64([0xC5u8; 128]), "e": "AQAB"});
        let keys = vec![
            rsa(0).jwk("good", json!({"use": "sig", "alg": "RS256"})),
            rsa1024,
            rsa(1).jwk("enc", json!({"use": "enc"})),
            json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")}),
            json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64([1u8; 66]), "y": b64([1u8; 66])}),
            json!({"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": b64([1u8; 32]), "y": b64([1u8; 32])}),
            json!({"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": b64([1u8; 32]), "y": b64([2u8; 32])}),
            json!({"kty": "PQC", "kid": "future"}),
            rsa(1).jwk("ops", json!({"key_ops": ["encrypt"]})),
            ed25519().jwk("ed", json!({})),
        ];
        let cache = KeyCache::new(Mock::new(JwkSet::default()), CachePolicy::default());
        let iss = issuer("s1", "https://k8s.example", KeySource::Static(set(keys)));
        cache
            .key(&iss, Some("good"), Algorithm::RS256, T0)
            .await
            .unwrap();
        let st = cache.status("s1").unwrap();
        assert_eq!(st.kids, vec!["good".to_owned(), "ed".to_owned()]);
        assert_eq!(st.dropped, 8);
        for kid in ["weak", "enc", "hmac", "p521", "offcurve"] {
            let err = cache
                .key(&iss, Some(kid), Algorithm::RS256, T0)
                .await
                .unwrap_err();
            assert!(matches!(err, KeyError::UnknownKid { .. }), "{kid}: {err}");
        }
    }

    #[tokio::test]
    async fn static_source_never_fetches() {
        let mock = Mock::new(JwkSet::default());
        let cache = cache(&mock);
        let iss = issuer(
            "s1",
            "https://k8s.example",
            KeySource::Static(set(vec![ec256().jwk("k", json!({}))])),
        );
        cache
            .key(&iss, Some("k"), Algorithm::ES256, T0)
            .await
            .unwrap();
        cache
            .key(&iss, Some("k"), Algorithm::ES256, T0 + 10 * 365 * 86400)
            .await
            .unwrap();
        cache
            .key(&iss, Some("other"), Algorithm::ES256, T0)
            .await
            .unwrap_err();
        let st = cache.refresh(&iss, T0).await.unwrap();
        assert_eq!(
            (st.source, st.kids, st.expires_at),
            ("static", vec!["k".to_owned()], None)
        );
        assert_eq!(mock.calls(), 0);
        assert_eq!(cache.fetch_count("s1"), 0);
    }

    #[tokio::test]
    async fn alg_must_fit_the_key() {
        let keys = vec![
            ec256().jwk("ec", json!({})),
            rsa(0).jwk("rs512", json!({"alg": "RS512"})),
            ed25519().jwk("ed", json!({})),
        ];
        let cache = KeyCache::new(Mock::new(JwkSet::default()), CachePolicy::default());
        let iss = issuer("s1", "https://k8s.example", KeySource::Static(set(keys)));
        for (kid, alg) in [
            ("ec", Algorithm::RS256),
            ("ec", Algorithm::ES384),
            ("rs512", Algorithm::RS256),
            ("ed", Algorithm::ES256),
        ] {
            let err = cache.key(&iss, Some(kid), alg, T0).await.unwrap_err();
            assert!(
                matches!(err, KeyError::AlgMismatch(_)),
                "{kid} {alg:?}: {err}"
            );
        }
        assert!(
            cache
                .key(&iss, Some("rs512"), Algorithm::RS512, T0)
                .await
                .is_ok()
        );
        // Without kid: the single key that fits, or refuse when several do.
        assert_eq!(
            cache
                .key(&iss, None, Algorithm::EdDSA, T0)
                .await
                .unwrap()
                .kid
                .as_deref(),
            Some("ed")
        );
        let two = issuer(
            "s2",
            "https://k.example",
            KeySource::Static(set(vec![
                rsa(0).jwk("a", json!({})),
                rsa(1).jwk("b", json!({})),
            ])),
        );
        let err = cache
            .key(&two, None, Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::AmbiguousKey(_)), "{err}");
    }

    #[tokio::test]
    async fn forget_and_source_change_start_over() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        cache.forget("i1");
        assert!(cache.status("i1").is_none());
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1)
            .await
            .unwrap();
        let moved = issuer(
            "i1",
            "https://idp.example",
            KeySource::JwksUri("https://idp.example/keys".into()),
        );
        cache
            .key(&moved, Some("a"), Algorithm::RS256, T0 + 2)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 3);
        assert_eq!(cache.status("i1").unwrap().source, "jwks_uri");
    }
}
