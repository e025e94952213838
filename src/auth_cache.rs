//! The caches of the authentication path that `App` holds: API keys by the
//! hash of their secret, principals by id. They sit below the services
//! (which fill and invalidate them) and know nothing of the store.
//!
//! A lookup that started before a revocation must never write the old state
//! back: every invalidation bumps a generation first, and a loaded value is
//! cached only if no invalidation happened since its lookup began (checked
//! again after the insert, so an invalidation racing with the insert removes
//! what it wrote). Proof: the store write precedes the invalidation, so a
//! load that read the old row began before the bump; either its final check
//! sees the bump, or its insert precedes the bump's `invalidate`, which
//! removes it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moka::sync::Cache;

use crate::authz::ProjectView;
use crate::model::Principal;
use crate::store::{ApiKeyRow, TeamRow};

/// A principal as loaded from the store, with what revocation needs.
#[derive(Clone, Debug)]
pub struct PrincipalEntry {
    pub principal: Principal,
    pub disabled: bool,
    /// Credentials issued before this instant (ms) are refused.
    pub revoked_before: i64,
    pub max_token_lifetime_s: i64,
}

/// One cache plus the generation that guards its inserts.
struct Guarded<V> {
    cache: Cache<String, V>,
    generation: AtomicU64,
}

impl<V: Clone + Send + Sync + 'static> Guarded<V> {
    fn new(ttl_s: u64) -> Self {
        Guarded {
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(ttl_s))
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value, or the loader's, cached only if nothing was
    /// invalidated while it ran. `Ok((value, hit))`; `Ok(None)` when the
    /// loader found nothing (never cached).
    async fn get_or_load<E, Fut>(&self, key: &str, load: Fut) -> Result<Option<(V, bool)>, E>
    where
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(v) = self.cache.get(key) {
            return Ok(Some((v, true)));
        }
        let started = self.generation.load(Ordering::SeqCst);
        let Some(v) = load.await? else {
            return Ok(None);
        };
        if self.generation.load(Ordering::SeqCst) == started {
            self.cache.insert(key.to_string(), v.clone());
            if self.generation.load(Ordering::SeqCst) != started {
                // An invalidation ran between the check and the insert.
                self.cache.invalidate(key);
            }
        }
        Ok(Some((v, false)))
    }

    fn invalidate(&self, key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key);
    }

    fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }
}

/// The in-memory caches of the authentication path (300 s, 100k entries each).
pub struct AuthCache {
    keys: Guarded<Arc<ApiKeyRow>>,
    principals: Guarded<Arc<PrincipalEntry>>,
    touched: Cache<String, ()>,
    /// Hashes of well-formed API keys the store does not have, so a flood
    /// of one unknown key is refused without a store read per request. A
    /// key is stored when it is created, with a secret nobody could have
    /// presented before, so no new key is ever among them; they are
    /// forgotten with the known keys anyway.
    unknown_keys: Cache<String, ()>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            keys: Guarded::new(300),
            principals: Guarded::new(300),
            touched: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            unknown_keys: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }
}

impl AuthCache {
    /// An API key row by the SHA-256 of its secret, loading it on a miss.
    /// Returns the row and whether it came from the cache.
    pub async fn api_key<E, Fut>(
        &self,
        hash: &str,
        load: Fut,
    ) -> Result<Option<(Arc<ApiKeyRow>, bool)>, E>
    where
        Fut: Future<Output = Result<Option<ApiKeyRow>, E>>,
    {
        self.keys
            .get_or_load(hash, async { Ok(load.await?.map(Arc::new)) })
            .await
    }

    /// True when the store was found not to have the key of this hash.
    pub fn is_unknown_key(&self, hash: &str) -> bool {
        self.unknown_keys.contains_key(hash)
    }

    /// Remembers that the store has no key of this hash.
    pub fn unknown_key(&self, hash: &str) {
        self.unknown_keys.insert(hash.to_string(), ());
    }

    /// A principal by id, loading it on a miss. Returns the entry and
    /// whether it came from the cache.
    pub async fn principal<E, Fut>(
        &self,
        id: &str,
        load: Fut,
    ) -> Result<Option<(Arc<PrincipalEntry>, bool)>, E>
    where
        Fut: Future<Output = Result<Option<PrincipalEntry>, E>>,
    {
        self.principals
            .get_or_load(id, async { Ok(load.await?.map(Arc::new)) })
            .await
    }

    /// True the first time a key is used in a minute (to record `last_used_at`
    /// at most once a minute).
    pub fn first_use_this_minute(&self, key_id: &str) -> bool {
        if self.touched.get(key_id).is_some() {
            return false;
        }
        self.touched.insert(key_id.to_string(), ());
        true
    }

    /// Forgets a user's or service account's cached state.
    pub fn invalidate_principal(&self, id: &str) {
        self.principals.invalidate(id);
    }
    /// Forgets every cached key (after a revocation).
    pub fn invalidate_keys(&self) {
        self.keys.invalidate_all();
        self.unknown_keys.invalidate_all();
    }
    /// Forgets everything (after a change whose reach is wide, e.g. a team change).
    pub fn invalidate_all(&self) {
        self.keys.invalidate_all();
        self.unknown_keys.invalidate_all();
        self.principals.invalidate_all();
    }
}

/// The projects that writes (runs, trace calls) go to, with their team and
/// explicit members, by team name and project name: a run then reads
/// nothing from the store before its insert. Only projects that exist are
/// cached. Every change applied to this replica (`App::apply`, which the
/// change feed drives on the others) forgets them all, and a project's
/// visibility, members or deletion and a team's deletion publish one
/// (`Change::Projects`); the TTL bounds what a lost notification could
/// leave behind. A lookup that raced with an invalidation is not cached
/// (the generation check of [`AuthCache`]).
pub struct WriteTargets {
    cache: Cache<String, Arc<(TeamRow, ProjectView)>>,
    generation: AtomicU64,
}

impl Default for WriteTargets {
    fn default() -> Self {
        WriteTargets {
            cache: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            generation: AtomicU64::new(0),
        }
    }
}

impl WriteTargets {
    fn key(team: &str, project: &str) -> String {
        let mut k = String::with_capacity(team.len() + project.len() + 1);
        k.push_str(team);
        k.push('\n');
        k.push_str(project);
        k
    }

    /// The cached target, if any.
    pub fn get(&self, team: &str, project: &str) -> Option<Arc<(TeamRow, ProjectView)>> {
        self.cache.get(&Self::key(team, project))
    }

    /// Call before the store reads whose result may be [`WriteTargets::insert`]ed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches what was read after `generation()` returned `started`,
    /// unless something was invalidated since.
    pub fn insert(&self, started: u64, team: &TeamRow, project: &ProjectView) {
        if self.generation.load(Ordering::SeqCst) != started {
            return;
        }
        let key = Self::key(&team.name, &project.name);
        self.cache
            .insert(key.clone(), Arc::new((team.clone(), project.clone())));
        if self.generation.load(Ordering::SeqCst) != started {
            self.cache.invalidate(&key);
        }
    }

    /// Forgets every target.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::model::{PrincipalKind, SaAuth, SaScope, Scopes, TeamRef};
    use std::convert::Infallible;
    use tokio::sync::oneshot;

    fn entry(disabled: bool) -> PrincipalEntry {
        PrincipalEntry {
            principal: Principal {
                id: "sa_1".into(),
                name: "bot".into(),
                org_id: "org_1".into(),
                org_name: "acme".into(),
                kind: PrincipalKind::ServiceAccount {
                    scope: SaScope::Team {
                        team: TeamRef {
                            id: "team_1".into(),
                            name: "vision".into(),
                        },
                    },
                    auth: SaAuth::Builtin,
                },
                scopes: Scopes::FULL,
            },
            disabled,
            revoked_before: 0,
            max_token_lifetime_s: 3600,
        }
    }

    /// The interleaving of issue 10: a lookup reads the live account, a
    /// disable lands (store write + invalidation) while the lookup is
    /// suspended, then the lookup finishes. The old state must not be cached.
    #[tokio::test]
    async fn a_lookup_that_began_before_a_disable_never_caches_the_old_state() {
        let cache = Arc::new(AuthCache::default());
        let (read_done_tx, read_done_rx) = oneshot::channel::<()>();
        let (resume_tx, resume_rx) = oneshot::channel::<()>();
        let c = cache.clone();
        let lookup = tokio::spawn(async move {
            c.principal("sa_1", async move {
                // The store read happens here: the account is still enabled.
                let stale = entry(false);
                let _ = read_done_tx.send(());
                let _ = resume_rx.await;
                Ok::<_, Infallible>(Some(stale))
            })
            .await
        });
        read_done_rx.await.unwrap();
        // The disable: the store now says disabled; the replica invalidates.
        cache.invalidate_principal("sa_1");
        resume_tx.send(()).unwrap();
        let (returned, hit) = lookup.await.unwrap().unwrap().unwrap();
        assert!(
            !hit && !returned.disabled,
            "the racing lookup answers what it read"
        );
        // The next lookup must go to the store and see the disable.
        let (next, hit) = cache
            .principal("sa_1", async { Ok::<_, Infallible>(Some(entry(true))) })
            .await
            .unwrap()
            .unwrap();
        assert!(!hit, "the stale entry was not cached");
        assert!(next.disabled);
        // And that fresh value is cached.
        let (again, hit) = cache
            .principal("sa_1", async { Ok::<_, Infallible>(Some(entry(false))) })
            .await
            .unwrap()
            .unwrap();
        assert!(hit && again.disabled);
    }

    /// Same for API keys: a revocation (which forgets every cached key)
    /// during a key lookup keeps the unrevoked row out of the cache.
    #[tokio::test]
    async fn a_key_lookup_that_began_before_a_revocation_never_caches_the_old_row() {
        let row = |revoked_at: Option<i64>| ApiKeyRow {
            id: "key_1".into(),
            owner_id: "sa_1".into(),
            owner_kind: "service_account".into(),
            prefix: "fgk_abc".into(),
            secret_hash: "h".into(),
            created_at: 0,
            last_used_at: None,
            revoked_at,
        };
        let cache = Arc::new(AuthCache::default());
        let (read_done_tx, read_done_rx) = oneshot::channel::<()>();
        let (resume_tx, resume_rx) = oneshot::channel::<()>();
        let c = cache.clone();
        let stale = row(None);
        let lookup = tokio::spawn(async move {
            c.api_key("h", async move {
                let _ = read_done_tx.send(());
                let _ = resume_rx.await;
                Ok::<_, Infallible>(Some(stale))
            })
            .await
        });
        read_done_rx.await.unwrap();
        cache.invalidate_keys();
        resume_tx.send(()).unwrap();
        lookup.await.unwrap().unwrap().unwrap();
        let (next, hit) = cache
            .api_key("h", async { Ok::<_, Infallible>(Some(row(Some(5)))) })
            .await
            .unwrap()
            .unwrap();
        assert!(!hit);
        assert_eq!(next.revoked_at, Some(5));
    }

    #[tokio::test]
    async fn lookups_without_a_race_are_cached_and_misses_are_not() {
        let cache = AuthCache::default();
        let none = cache
            .principal("u_x", async { Ok::<_, Infallible>(None) })
            .await
            .unwrap();
        assert!(none.is_none());
        cache
            .principal("sa_1", async { Ok::<_, Infallible>(Some(entry(false))) })
            .await
            .unwrap();
        let (_, hit) = cache
            .principal("sa_1", async { Ok::<_, Infallible>(Some(entry(true))) })
            .await
            .unwrap()
            .unwrap();
        assert!(hit);
    }
}
