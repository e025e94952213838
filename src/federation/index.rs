//! The in-memory trust index the exchange reads on its hot path: trusted
//! issuers by `iss`, and the compiled bindings of external service accounts
//! by issuer and exact subject. It is filled from the store at start and
//! updated in place on each change (here or, through the store's
//! notifications, on another replica), so an exchange does no database read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::federation::IssuerConfig;
use crate::federation::policy::CompiledBinding;

/// An external service account as the exchange needs it.
#[derive(Debug)]
pub struct BoundAccount {
    pub binding: CompiledBinding,
    pub sa_id: String,
    pub name: String,
    pub org_id: String,
    pub org_name: String,
    pub team_name: String,
    pub disabled: bool,
    /// A shadow binding's matches are audited and mint nothing.
    pub shadow: bool,
    pub max_token_lifetime_s: i64,
}

impl BoundAccount {
    /// `sa:<org>/<team>/<name>`, how `audience`/`resource` name an account.
    pub fn target_name(&self) -> String {
        format!("sa:{}/{}/{}", self.org_name, self.team_name, self.name)
    }

    /// Whether a target (`audience`, `resource`, `client_id`) names this
    /// account: by `sa:<org>/<team>/<name>` or by its id.
    pub fn names(&self, target: &str) -> bool {
        target == self.sa_id
            || target
                .strip_prefix("sa:")
                .and_then(|t| t.strip_prefix(self.org_name.as_str()))
                .and_then(|t| t.strip_prefix('/'))
                .and_then(|t| t.strip_prefix(self.team_name.as_str()))
                .and_then(|t| t.strip_prefix('/'))
                == Some(self.name.as_str())
    }
}

#[derive(Default)]
struct Inner {
    issuers: HashMap<String, Arc<IssuerConfig>>,
    by_iss: HashMap<String, Vec<Arc<IssuerConfig>>>,
    accounts: HashMap<String, Arc<BoundAccount>>,
    /// (issuer id, exact subject) → accounts.
    exact: HashMap<(String, String), Vec<Arc<BoundAccount>>>,
    /// issuer id → accounts whose binding has a subject pattern.
    patterned: HashMap<String, Vec<Arc<BoundAccount>>>,
}

/// The index; reads take a short read lock and never await while holding it.
#[derive(Default)]
pub struct FederationIndex {
    inner: RwLock<Inner>,
}

impl FederationIndex {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces everything (start-up, or a full resync).
    pub fn replace(&self, issuers: Vec<IssuerConfig>, accounts: Vec<BoundAccount>) {
        let mut fresh = Inner {
            issuers: HashMap::with_capacity(issuers.len()),
            by_iss: HashMap::with_capacity(issuers.len()),
            accounts: HashMap::with_capacity(accounts.len()),
            exact: HashMap::with_capacity(accounts.len()),
            patterned: HashMap::new(),
        };
        for i in issuers {
            insert_issuer(&mut fresh, Arc::new(i));
        }
        for a in accounts {
            insert_account(&mut fresh, Arc::new(a));
        }
        *self.write() = fresh;
    }

    /// The configs registered for exactly this `iss` (one per org that trusts it).
    pub fn issuers_for(&self, iss: &str) -> Vec<Arc<IssuerConfig>> {
        self.read().by_iss.get(iss).cloned().unwrap_or_default()
    }

    /// A registered `iss` that `iss` nearly equals (see [`super::near_match`]);
    /// only asked on a refusal.
    pub fn near_iss(&self, iss: &str) -> Option<String> {
        let inner = self.read();
        super::near_match(iss, inner.by_iss.keys().map(String::as_str)).map(String::from)
    }

    /// One issuer config by id.
    pub fn issuer(&self, id: &str) -> Option<Arc<IssuerConfig>> {
        self.read().issuers.get(id).cloned()
    }

    /// Adds or replaces an issuer.
    pub fn upsert_issuer(&self, issuer: IssuerConfig) {
        let mut inner = self.write();
        remove_issuer(&mut inner, &issuer.id);
        insert_issuer(&mut inner, Arc::new(issuer));
    }

    /// Removes an issuer.
    pub fn remove_issuer(&self, id: &str) {
        remove_issuer(&mut self.write(), id);
    }

    /// Adds or replaces an account's binding.
    pub fn upsert_account(&self, account: BoundAccount) {
        let mut inner = self.write();
        remove_account(&mut inner, &account.sa_id);
        insert_account(&mut inner, Arc::new(account));
    }

    /// Removes an account.
    pub fn remove_account(&self, sa_id: &str) {
        remove_account(&mut self.write(), sa_id);
    }

    /// Accounts whose binding could match `sub` under `issuer_id`: the exact
    /// subject's, then every patterned one (the caller checks each fully).
    pub fn candidates(&self, issuer_id: &str, sub: &str) -> Vec<Arc<BoundAccount>> {
        let inner = self.read();
        let mut out: Vec<Arc<BoundAccount>> = inner
            .exact
            .get(&(issuer_id.to_string(), sub.to_string()))
            .cloned()
            .unwrap_or_default();
        if let Some(p) = inner.patterned.get(issuer_id) {
            for a in p {
                if !out.iter().any(|o| o.sa_id == a.sa_id) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// Every account bound to an issuer (for explain: why none matched).
    pub fn accounts_of_issuer(&self, issuer_id: &str) -> Vec<Arc<BoundAccount>> {
        let inner = self.read();
        let mut v: Vec<_> = inner
            .accounts
            .values()
            .filter(|a| a.binding.issuer_id == issuer_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One bound account by id (a target named by id rather than by name).
    pub fn account(&self, sa_id: &str) -> Option<Arc<BoundAccount>> {
        self.read().accounts.get(sa_id).cloned()
    }

    /// Whether any registered issuer accepts `aud` (a new organization's
    /// name must not be one: it would become reserved to that organization).
    pub fn audience_in_use(&self, aud: &str) -> bool {
        self.read()
            .issuers
            .values()
            .any(|i| i.audiences.iter().any(|a| a == aud))
    }

    /// Counts, for metrics and readiness.
    pub fn sizes(&self) -> (usize, usize) {
        let inner = self.read();
        (inner.issuers.len(), inner.accounts.len())
    }
}

fn insert_issuer(inner: &mut Inner, i: Arc<IssuerConfig>) {
    inner
        .by_iss
        .entry(i.issuer.clone())
        .or_default()
        .push(i.clone());
    inner.issuers.insert(i.id.clone(), i);
}

fn remove_issuer(inner: &mut Inner, id: &str) {
    if let Some(old) = inner.issuers.remove(id)
        && let Some(v) = inner.by_iss.get_mut(&old.issuer)
    {
        v.retain(|i| i.id != id);
        if v.is_empty() {
            inner.by_iss.remove(&old.issuer);
        }
    }
}

fn insert_account(inner: &mut Inner, a: Arc<BoundAccount>) {
    let issuer = a.binding.issuer_id.clone();
    inner
        .exact
        .entry((issuer.clone(), a.binding.subject().to_string()))
        .or_default()
        .push(a.clone());
    if !a.binding.is_exact() {
        inner.patterned.entry(issuer).or_default().push(a.clone());
    }
    inner.accounts.insert(a.sa_id.clone(), a);
}

fn remove_account(inner: &mut Inner, sa_id: &str) {
    let Some(old) = inner.accounts.remove(sa_id) else {
        return;
    };
    let key = (
        old.binding.issuer_id.clone(),
        old.binding.subject().to_string(),
    );
    if let Some(v) = inner.exact.get_mut(&key) {
        v.retain(|a| a.sa_id != sa_id);
        if v.is_empty() {
            inner.exact.remove(&key);
        }
    }
    if let Some(v) = inner.patterned.get_mut(&old.binding.issuer_id) {
        v.retain(|a| a.sa_id != sa_id);
    }
}
