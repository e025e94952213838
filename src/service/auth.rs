//! From a credential to a [`Principal`]: API keys here, fedgate's own access
//! tokens through `crate::tokens`. Both end in the same `Principal` value.
//!
//! Hot-path reads are cached in memory (keys by hash, principals by id;
//! `crate::auth_cache`) and invalidated on every change that could matter
//! (see `crate::change::Change`), so a revocation is honoured at once.
//! `crate::tokens` only verifies signatures: joining a verified token with
//! its principal's liveness happens here, as for API keys.

use std::sync::Arc;

pub use crate::auth_cache::{AuthCache, PrincipalEntry};
use crate::metrics;
use crate::model::{
    OrgRole, Principal, PrincipalKind, Role, SaAuth, SaScope, Scopes, TeamMembership, TeamRef,
};
use crate::secrets::{API_KEY_PREFIX, Secret, sha256_hex};
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::DynStore;

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
    if app.auth.is_unknown_key(&hash) {
        return Err(ServiceError::Unauthenticated("invalid API key".into()));
    }
    let Some((row, hit)) = app
        .auth
        .api_key(&hash, app.store.api_key_by_hash(&hash))
        .await?
    else {
        app.auth.unknown_key(&hash);
        return Err(ServiceError::Unauthenticated("invalid API key".into()));
    };
    metrics::cache_lookup(metrics::Cache::ApiKeys, hit);
    let entry = principal_entry(app, &row.owner_id).await?;
    if row.revoked_at.is_some() {
        let reason = format!("API key {}… has been revoked", row.prefix);
        return Err(refuse(app, ctx, &entry, reason).await);
    }
    check_live(app, ctx, &entry, row.created_at, "API key").await?;
    if app.auth.first_use_this_minute(&row.id) {
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

/// The principal `id` if a credential of it issued at `issued_at_ms` is still
/// good: it exists, is not disabled, and the credential is not older than its
/// revocation watermark. For any credential kind beyond API keys and access
/// tokens (e.g. a console session, with its sign-in time), so every kind ends
/// at the same check.
pub async fn principal_live(
    app: &App,
    ctx: &RequestCtx,
    id: &str,
    issued_at_ms: i64,
    what: &str,
) -> ServiceResult<Arc<PrincipalEntry>> {
    let entry = principal_entry(app, id).await?;
    check_live(app, ctx, &entry, issued_at_ms, what).await?;
    Ok(entry)
}

/// The cached principal for a user or service account id.
pub async fn principal_entry(app: &App, id: &str) -> ServiceResult<Arc<PrincipalEntry>> {
    let (entry, hit) = app
        .auth
        .principal(id, load_principal(&app.store, id))
        .await?
        .ok_or_else(|| {
            ServiceError::Unauthenticated("the credential's owner no longer exists".into())
        })?;
    metrics::cache_lookup(metrics::Cache::Principals, hit);
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
            disabled: u.disabled,
            revoked_before: u.revoked_before,
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
        Credential::AccessToken(token) => authenticate_token(app, ctx, token, now).await,
    };
    if let Err(ServiceError::Unauthenticated(reason)) = &result {
        // Per request at debug only: a flood of bad credentials must not
        // cost a formatted info line each. Refusals of a known owner's
        // credential are already in that organization's audit log; the
        // rest are counted by the HTTP metrics (401s per route) and
        // summarized here at info, rate-limited like unverified exchanges.
        tracing::debug!(request_id = %ctx.request_id, reason = ?reason, "credential refused");
        if let Some(suppressed) = REFUSED_LOG.allow(app.clock.now_s()) {
            tracing::info!(
                request_id = %ctx.request_id,
                // Debug form: attacker-chosen text cannot forge log lines.
                reason = ?reason,
                suppressed,
                "credential refused"
            );
        }
    }
    result
}

/// Refused credentials are logged at info at most this often (per second,
/// for the whole process), with the count of those left out since.
static REFUSED_LOG: crate::ratelimit::LogThrottle = crate::ratelimit::LogThrottle::new(5);

/// Checks a fedgate access token and returns its principal, through the same
/// revocation checks as an API key.
pub async fn authenticate_token(
    app: &App,
    ctx: &RequestCtx,
    token: &Secret,
    now_ms: i64,
) -> ServiceResult<Authenticated> {
    let claims = app
        .signer
        .verify(&app.store, token.expose(), now_ms.div_euclid(1000))
        .await
        .map_err(ServiceError::Unauthenticated)?;
    let entry = principal_entry(app, &claims.sub).await?;
    if entry.principal.org_name != claims.org {
        return Err(ServiceError::Unauthenticated("invalid access token".into()));
    }
    check_live(
        app,
        ctx,
        &entry,
        if claims.iat_ms > 0 {
            claims.iat_ms
        } else {
            claims.iat * 1000
        },
        "access token",
    )
    .await?;
    let scopes = crate::model::Scopes::parse(&claims.scope)
        .ok_or_else(|| ServiceError::Unauthenticated("access token has an unknown scope".into()))?;
    let mut principal = entry.principal.clone();
    principal.scopes = scopes;
    Ok(Authenticated {
        principal,
        via: Via::AccessToken { claims },
    })
}
