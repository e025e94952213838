//! From a credential to a [`Principal`]: API keys here, fedgate's own access
//! tokens through `crate::tokens`. Both end in the same `Principal` value.
//!
//! Hot-path reads are cached in memory (keys by hash, principals by id) and
//! invalidated on every change that could matter (see `crate::state::Change`),
//! so a revocation is honoured at once.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::metrics;
use crate::model::{
    OrgRole, Principal, PrincipalKind, Role, SaAuth, SaScope, Scopes, TeamMembership, TeamRef,
};
use crate::secrets::{API_KEY_PREFIX, Secret, sha256_hex};
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::{ApiKeyRow, DynStore};

/// A credential as presented, before it is checked.
#[derive(Clone, Debug)]
pub enum Credential {
    /// `fgk_…`
    ApiKey(Secret),
    /// A fedgate access token (a JWT).
    AccessToken(Secret),
}

impl Credential {
    /// Sorts a presented secret into its kind; garbage is refused later with 401.
    pub fn parse(s: &str) -> Credential {
        let s = s.trim();
        if s.starts_with(API_KEY_PREFIX) || !s.starts_with("ey") {
            Credential::ApiKey(Secret::new(s.to_string()))
        } else {
            Credential::AccessToken(Secret::new(s.to_string()))
        }
    }
}

/// How the principal was authenticated; for the audit log and `/viewer`, never for decisions.
#[derive(Clone, Debug)]
pub enum Via {
    ApiKey {
        key_id: String,
    },
    /// The verified claims of the token (shared with the verified-token cache).
    AccessToken {
        claims: std::sync::Arc<crate::tokens::AccessClaims>,
    },
}

/// A checked credential.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub principal: Principal,
    pub via: Via,
}

/// A principal as loaded from the store, with what revocation needs.
#[derive(Clone, Debug)]
pub struct PrincipalEntry {
    pub principal: Principal,
    pub disabled: bool,
    /// Credentials issued before this instant (ms) are refused.
    pub revoked_before: i64,
    pub max_token_lifetime_s: i64,
}

/// The in-memory caches of the authentication path.
pub struct AuthCache {
    keys: Cache<String, Arc<ApiKeyRow>>,
    principals: Cache<String, Arc<PrincipalEntry>>,
    touched: Cache<String, ()>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            keys: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            principals: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            touched: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }
}

impl AuthCache {
    /// Forgets a user's or service account's cached state.
    pub fn invalidate_principal(&self, id: &str) {
        self.principals.invalidate(id);
    }
    /// Forgets every cached key (after a revocation).
    pub fn invalidate_keys(&self) {
        self.keys.invalidate_all();
    }
    /// Forgets everything (after a change whose reach is wide, e.g. a team change).
    pub fn invalidate_all(&self) {
        self.keys.invalidate_all();
        self.principals.invalidate_all();
    }
}

/// Checks an API key and returns its principal with full scope.
pub async fn authenticate_api_key(
    app: &App,
    ctx: &RequestCtx,
    key: &Secret,
    now_ms: i64,
) -> ServiceResult<Authenticated> {
    // The shape and checksum are checked offline first: a mistyped, forged
    // or random string never reaches the caches or the store.
    crate::apikey::classify(key.expose())
        .map_err(|e| ServiceError::Unauthenticated(e.to_string()))?;
    let hash = sha256_hex(key.expose().as_bytes());
    let row = match app.auth.keys.get(&hash) {
        Some(row) => {
            metrics::cache_lookup(metrics::Cache::ApiKeys, true);
            row
        }
        None => {
            metrics::cache_lookup(metrics::Cache::ApiKeys, false);
            let row = app
                .store
                .api_key_by_hash(&hash)
                .await?
                .ok_or_else(|| ServiceError::Unauthenticated("invalid API key".into()))?;
            let row = Arc::new(row);
            app.auth.keys.insert(hash, row.clone());
            row
        }
    };
    let entry = principal_entry(app, &row.owner_id).await?;
    if row.revoked_at.is_some() {
        let reason = format!("API key {}… has been revoked", row.prefix);
        return Err(refuse(app, ctx, &entry, reason).await);
    }
    check_live(app, ctx, &entry, row.created_at, "API key").await?;
    if app.auth.touched.get(&row.id).is_none() {
        app.auth.touched.insert(row.id.clone(), ());
        let store = app.store.clone();
        let id = row.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_api_key(&id, now_ms).await {
                tracing::debug!(error = %e, "could not record API key use");
            }
        });
    }
    Ok(Authenticated {
        principal: entry.principal.clone(),
        via: Via::ApiKey {
            key_id: row.id.clone(),
        },
    })
}

/// Refuses a disabled account or a credential older than its revocation
/// watermark. Refusals are audited in the owner's organization.
pub async fn check_live(
    app: &App,
    ctx: &RequestCtx,
    entry: &PrincipalEntry,
    issued_at_ms: i64,
    what: &str,
) -> ServiceResult<()> {
    let who = entry.principal.describe();
    if entry.disabled {
        return Err(refuse(app, ctx, entry, format!("{who} is disabled")).await);
    }
    if issued_at_ms < entry.revoked_before {
        let reason = format!(
            "this {what} was issued before the credentials of {who} were revoked; use a new one"
        );
        return Err(refuse(app, ctx, entry, reason).await);
    }
    Ok(())
}

/// Records a refused credential of a known owner and returns the 401.
async fn refuse(
    app: &App,
    ctx: &RequestCtx,
    entry: &PrincipalEntry,
    reason: String,
) -> ServiceError {
    app.audit_event(crate::audit::AuditEvent {
        org_id: entry.principal.org_id.clone(),
        actor: crate::service::admin::actor(&entry.principal),
        action: "authenticate".into(),
        target: String::new(),
        outcome: "unauthenticated".into(),
        reason: reason.clone(),
        request_id: ctx.request_id.clone(),
        details: "{}".into(),
    })
    .await;
    ServiceError::Unauthenticated(reason)
}

/// The cached principal for a user or service account id.
pub async fn principal_entry(app: &App, id: &str) -> ServiceResult<Arc<PrincipalEntry>> {
    if let Some(e) = app.auth.principals.get(id) {
        metrics::cache_lookup(metrics::Cache::Principals, true);
        return Ok(e);
    }
    metrics::cache_lookup(metrics::Cache::Principals, false);
    let entry = Arc::new(load_principal(&app.store, id).await?.ok_or_else(|| {
        ServiceError::Unauthenticated("the credential's owner no longer exists".into())
    })?);
    app.auth.principals.insert(id.to_string(), entry.clone());
    Ok(entry)
}

/// Builds a principal from the store (uncached).
pub async fn load_principal(
    store: &DynStore,
    id: &str,
) -> Result<Option<PrincipalEntry>, ServiceError> {
    if let Some(u) = store.user_by_id(id).await? {
        let org = store
            .org_by_id(&u.org_id)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("user {id} has no org")))?;
        let teams = store
            .memberships_of_user(id)
            .await?
            .into_iter()
            .map(|m| TeamMembership {
                team: TeamRef {
                    id: m.team_id,
                    name: m.team_name,
                },
                role: Role::parse(&m.role).unwrap_or(Role::Member),
            })
            .collect();
        return Ok(Some(PrincipalEntry {
            principal: Principal {
                id: u.id,
                name: u.username.clone(),
                org_id: org.id,
                org_name: org.name,
                kind: PrincipalKind::User {
                    username: u.username,
                    email: u.email,
                    role: OrgRole::parse(&u.role).unwrap_or(OrgRole::Member),
                    teams,
                },
                scopes: Scopes::FULL,
            },
            disabled: false,
            revoked_before: 0,
            max_token_lifetime_s: i64::MAX,
        }));
    }
    let Some(sa) = store.service_account_by_id(id).await? else {
        return Ok(None);
    };
    let org = store
        .org_by_id(&sa.org_id)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("service account {id} has no org")))?;
    let team = store
        .team_by_id(&sa.team_id)
        .await?
        .ok_or_else(|| ServiceError::Internal(format!("service account {id} has no team")))?;
    let team = TeamRef {
        id: team.id,
        name: team.name,
    };
    let scope = if sa.scope == "org" {
        SaScope::Org { default_team: team }
    } else {
        SaScope::Team { team }
    };
    Ok(Some(PrincipalEntry {
        principal: Principal {
            id: sa.id,
            name: sa.name,
            org_id: org.id,
            org_name: org.name,
            kind: PrincipalKind::ServiceAccount {
                scope,
                auth: SaAuth::parse(&sa.auth).unwrap_or(SaAuth::Builtin),
            },
            scopes: Scopes::FULL,
        },
        disabled: sa.disabled,
        revoked_before: sa.revoked_before,
        max_token_lifetime_s: sa.max_token_lifetime_s,
    }))
}

/// Checks any credential; refusals of a known owner's credential are audited
/// in that owner's organization.
pub async fn authenticate(
    app: &App,
    ctx: &RequestCtx,
    cred: &Credential,
) -> ServiceResult<Authenticated> {
    let now = app.clock.now_ms();
    let result = match cred {
        Credential::ApiKey(key) => authenticate_api_key(app, ctx, key, now).await,
        Credential::AccessToken(token) => {
            crate::tokens::authenticate_token(app, ctx, token, now).await
        }
    };
    if let Err(ServiceError::Unauthenticated(reason)) = &result {
        tracing::info!(request_id = %ctx.request_id, %reason, "credential refused");
    }
    result
}
