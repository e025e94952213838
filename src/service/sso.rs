//! Single sign-on for the console: an org's OpenID Connect provider, the
//! authorization code flow with PKCE, `state` and `nonce` (the `openidconnect`
//! crate over fedgate's own reqwest client), and matching the person by
//! verified email to a user of that org.
//!
//! The org's settings are managed by its admins (`PUT /api/v1/orgs/{org}/sso`
//! and the console's Settings tab); nobody is created at sign-in unless the
//! org turned `create_users` on.

use std::sync::Arc;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::clock::rfc3339;
use crate::federation::fetch::check_url;
use crate::federation::netguard::{AddressPolicy, GuardedResolver, system_lookup};
use crate::model::{check_name, truncate};
use crate::secrets::{new_id, random_base62, sha256_hex};
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::{OrgRow, SsoConfigRow, SsoLoginRow, UserRow};

/// How long a sign-in may take between the redirect and the callback.
pub const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;
/// Largest answer accepted from a provider.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// `PUT /api/v1/orgs/{org}/sso`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoSettings {
    /// The provider's issuer URL, exactly as its discovery document says it.
    pub issuer: String,
    pub client_id: String,
    /// Required the first time; left out, the stored secret is kept.
    pub client_secret: Option<String>,
    /// Create a member user at first sign-in when no user has the email (default false).
    #[serde(default)]
    pub create_users: bool,
}

/// An org's SSO settings as shown to its admins (never the secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SsoOut {
    pub org: String,
    pub issuer: String,
    pub client_id: String,
    pub create_users: bool,
    /// Register this at the provider.
    pub redirect_uri: String,
    pub updated_at: String,
}

/// `<public-url>/sso/callback`.
pub fn redirect_uri(app: &App) -> String {
    format!(
        "{}/sso/callback",
        app.config.public_url.trim_end_matches('/')
    )
}

fn out(app: &App, org: &OrgRow, c: &SsoConfigRow) -> SsoOut {
    SsoOut {
        org: org.name.clone(),
        issuer: c.issuer.clone(),
        client_id: c.client_id.clone(),
        create_users: c.create_users,
        redirect_uri: redirect_uri(app),
        updated_at: rfc3339(c.updated_at),
    }
}

/// Saves the org's SSO settings after checking the provider's discovery
/// document answers for that exact issuer (org admins).
pub async fn put_settings(
    app: &App,
    ctx: &RequestCtx,
    p: &crate::model::Principal,
    org: &str,
    req: SsoSettings,
) -> ServiceResult<SsoOut> {
    let org = app.require_org_admin(ctx, p, org, "sso.update").await?;
    let issuer = req.issuer.trim().to_string();
    let client_id = req.client_id.trim().to_string();
    if client_id.is_empty() || client_id.len() > 256 {
        return Err(ServiceError::BadRequest(
            "client_id must be 1-256 characters: the client id the provider gave fedgate".into(),
        ));
    }
    let existing = app.store.sso_config_of_org(&org.id).await?;
    let client_secret = match (req.client_secret, &existing) {
        (Some(s), _) if !s.trim().is_empty() => s.trim().to_string(),
        (_, Some(c)) => c.client_secret.clone(),
        _ => {
            return Err(ServiceError::BadRequest(
                "client_secret is required: the secret the provider gave fedgate's client".into(),
            ));
        }
    };
    if client_secret.len() > 1024 {
        return Err(ServiceError::BadRequest(
            "client_secret is longer than 1024 characters".into(),
        ));
    }
    discover(app, &issuer).await.map_err(|e| {
        ServiceError::BadRequest(format!(
            "the provider at {:?} cannot be used for sign-in: {e}",
            truncate(&issuer, 200)
        ))
    })?;
    let row = SsoConfigRow {
        org_id: org.id.clone(),
        issuer,
        client_id,
        client_secret,
        create_users: req.create_users,
        updated_at: app.clock.now_ms(),
    };
    let mut tx = app.store.begin().await?;
    tx.put_sso_config(&row).await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "sso.update",
        &format!("org:{}", org.name),
        json!({"issuer": row.issuer, "client_id": row.client_id, "create_users": row.create_users}),
    )
    .await?;
    tx.commit().await?;
    Ok(out(app, &org, &row))
}

/// The org's SSO settings, if any (org admins).
pub async fn get_settings(
    app: &App,
    ctx: &RequestCtx,
    p: &crate::model::Principal,
    org: &str,
) -> ServiceResult<Option<SsoOut>> {
    let org = app.require_org_admin(ctx, p, org, "sso.read").await?;
    Ok(app
        .store
        .sso_config_of_org(&org.id)
        .await?
        .map(|c| out(app, &org, &c)))
}

/// Turns SSO off for the org (org admins); existing sessions are kept.
pub async fn delete_settings(
    app: &App,
    ctx: &RequestCtx,
    p: &crate::model::Principal,
    org: &str,
) -> ServiceResult<()> {
    let org = app.require_org_admin(ctx, p, org, "sso.delete").await?;
    let mut tx = app.store.begin().await?;
    if !tx.delete_sso_config(&org.id).await? {
        return Err(ServiceError::NotFound(format!(
            "single sign-on is not set up for organization \"{}\"",
            org.name
        )));
    }
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "sso.delete",
        &format!("org:{}", org.name),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------- the flow

/// Starts a sign-in: returns the provider's authorization URL and the `state`
/// (which the console also keeps in a cookie, so the callback is bound to
/// this browser).
pub async fn begin(app: &App, org_name: &str) -> ServiceResult<(String, String)> {
    let org_name = org_name.trim();
    let not_set_up = || {
        ServiceError::BadRequest(format!(
            "single sign-on is not set up for organization \"{}\"; sign in with an API key or ask an org admin",
            truncate(org_name, 64)
        ))
    };
    let org = app
        .store
        .org_by_name(org_name)
        .await?
        .ok_or_else(not_set_up)?;
    let cfg = app
        .store
        .sso_config_of_org(&org.id)
        .await?
        .ok_or_else(not_set_up)?;
    let client = client(app, &cfg).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let now = app.clock.now_ms();
    app.store
        .insert_sso_login(&SsoLoginRow {
            state_hash: sha256_hex(state.secret().as_bytes()),
            org_id: org.id,
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            created_at: now,
        })
        .await?;
    Ok((url.to_string(), state.secret().clone()))
}

/// Finishes a sign-in: the `state` must be one this replica set started and
/// not yet used, the code is exchanged with the PKCE verifier, the ID token
/// verified (signature from the provider's JWKS, issuer, audience, expiry,
/// nonce), and its verified email names a user of the org.
pub async fn finish(
    app: &App,
    ctx: &RequestCtx,
    state: &str,
    code: &str,
) -> ServiceResult<UserRow> {
    let expired = || {
        ServiceError::Unauthenticated(
            "this sign-in expired or was already used; start again from the sign-in page".into(),
        )
    };
    let login = app
        .store
        .take_sso_login(&sha256_hex(state.as_bytes()))
        .await?
        .ok_or_else(expired)?;
    if app.clock.now_ms() - login.created_at > LOGIN_TTL_MS {
        return Err(expired());
    }
    let org = app
        .store
        .org_by_id(&login.org_id)
        .await?
        .ok_or_else(expired)?;
    let cfg = app.store.sso_config_of_org(&org.id).await?.ok_or_else(|| {
        ServiceError::Unauthenticated(format!(
            "single sign-on was turned off for organization \"{}\"",
            org.name
        ))
    })?;
    let refused = |reason: String| async {
        app.audit_event(AuditEvent {
            org_id: org.id.clone(),
            actor: "anonymous".into(),
            action: "console.sign_in".into(),
            target: format!("org:{}", org.name),
            outcome: "unauthenticated".into(),
            reason: reason.clone(),
            request_id: ctx.request_id.clone(),
            details: json!({"via": "sso"}).to_string(),
        })
        .await;
        ServiceError::Unauthenticated(reason)
    };
    let client = client(app, &cfg).await?;
    let http = Adapter::new(app)?;
    let request = match client.exchange_code(AuthorizationCode::new(code.to_string())) {
        Ok(r) => r,
        Err(e) => return Err(refused(format!("the provider has no token endpoint: {e}")).await),
    };
    let tokens = match request
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier))
        .request_async(&http)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            return Err(refused(format!(
                "the provider refused the sign-in code: {}",
                error_text(&e)
            ))
            .await);
        }
    };
    let Some(id_token) = tokens.id_token() else {
        return Err(refused("the provider sent no ID token".into()).await);
    };
    let verifier = client.id_token_verifier().set_allowed_algs(vec![
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha384,
        CoreJwsSigningAlgorithm::RsaSsaPssSha512,
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::EcdsaP384Sha384,
        CoreJwsSigningAlgorithm::EdDsa,
    ]);
    let claims = match id_token.claims(&verifier, &Nonce::new(login.nonce)) {
        Ok(c) => c,
        Err(e) => {
            return Err(refused(format!("the ID token was refused: {}", error_text(&e))).await);
        }
    };
    let Some(email) = claims.email().map(|e| e.as_str().to_ascii_lowercase()) else {
        return Err(refused(
            "the ID token has no email: allow the \"email\" scope for fedgate's client".into(),
        )
        .await);
    };
    if claims.email_verified() != Some(true) {
        return Err(refused(format!(
            "the provider does not say {email:?} is verified (email_verified), so it cannot name a user"
        ))
        .await);
    }
    match app.store.user_by_email(&email).await? {
        Some(u) if u.org_id == org.id => Ok(u),
        Some(_) | None if !cfg.create_users => Err(refused(format!(
            "no user of organization \"{}\" has the email {email:?}; ask an org admin to add you",
            org.name
        ))
        .await),
        Some(_) => Err(refused(format!(
            "the email {email:?} belongs to a user of another organization"
        ))
        .await),
        None => create_user(app, ctx, &org, &email).await,
    }
}

/// Creates a member user for a first SSO sign-in (orgs with `create_users`).
async fn create_user(
    app: &App,
    ctx: &RequestCtx,
    org: &OrgRow,
    email: &str,
) -> ServiceResult<UserRow> {
    let local: String = email
        .split('@')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = local.trim_start_matches(['.', '_', '-']);
    let mut username = truncate(if base.is_empty() { "user" } else { base }, 48).to_string();
    if app.store.user_by_username(&username).await?.is_some() {
        username = format!("{username}-{}", random_base62(6).to_ascii_lowercase());
    }
    check_name("user", &username).map_err(ServiceError::BadRequest)?;
    let row = UserRow {
        id: new_id("u"),
        org_id: org.id.clone(),
        username: username.clone(),
        email: email.to_string(),
        role: "member".into(),
        created_at: app.clock.now_ms(),
        disabled: false,
        revoked_before: 0,
    };
    app.store.insert_user(&row).await?;
    app.audit_event(AuditEvent {
        org_id: org.id.clone(),
        actor: "system:sso".into(),
        action: "user.create".into(),
        target: format!("user:{username}"),
        outcome: "success".into(),
        reason: String::new(),
        request_id: ctx.request_id.clone(),
        details: json!({"role": "member", "via": "sso"}).to_string(),
    })
    .await;
    Ok(row)
}

// ---------------------------------------------------------------- the provider

type Client = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

async fn discover(app: &App, issuer: &str) -> Result<CoreProviderMetadata, String> {
    check_url(issuer, app.config.allow_insecure_issuers).map_err(|e| e.to_string())?;
    let issuer_url = IssuerUrl::new(issuer.to_string()).map_err(|e| e.to_string())?;
    let http = Adapter::new(app).map_err(|e| e.to_string())?;
    CoreProviderMetadata::discover_async(issuer_url, &http)
        .await
        .map_err(|e| error_text(&e))
}

async fn client(app: &App, cfg: &SsoConfigRow) -> ServiceResult<Client> {
    let metadata = discover(app, &cfg.issuer)
        .await
        .map_err(|e| ServiceError::Unavailable(format!("the organization's SSO provider: {e}")))?;
    let redirect = RedirectUrl::new(redirect_uri(app))
        .map_err(|e| ServiceError::Internal(format!("redirect URI: {e}")))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(cfg.client_id.clone()),
        Some(ClientSecret::new(cfg.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

/// An error and its causes on one line.
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    truncate(&text, 500).to_string()
}

/// Why a request to the provider failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderError(String);

/// The adapter `openidconnect` calls for every request: fedgate's reqwest
/// client, https only (http to loopback when insecure issuers are allowed),
/// no redirects, bounded size and time.
struct Adapter {
    http: reqwest::Client,
    allow_insecure_loopback: bool,
    addresses: Arc<AddressPolicy>,
}

impl Adapter {
    /// The same address rule as issuer key fetches (`--allow-private-issuers`,
    /// loopback with `--allow-insecure-issuers`): an org admin chooses the
    /// provider's URL, so it must not reach internal addresses. Sign-ins are
    /// rare, so the client is built per sign-in step.
    fn new(app: &App) -> ServiceResult<Adapter> {
        let addresses = Arc::new(AddressPolicy::new(app.config.allow_private_issuers.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::clone(&addresses),
                lookup: system_lookup(),
            }))
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("fedgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ServiceError::Internal(format!("HTTP client: {e}")))?;
        Ok(Adapter {
            http,
            allow_insecure_loopback: app.config.allow_insecure_issuers,
            addresses,
        })
    }

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, ProviderError> {
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string();
        let parsed = check_url(&url, self.allow_insecure_loopback)
            .map_err(|e| ProviderError(e.to_string()))?;
        if let Some(host) = parsed.host() {
            self.addresses
                .check_host(&host)
                .map_err(|e| ProviderError(e.to_string()))?;
        }
        let mut resp = self
            .http
            .request(parts.method, &url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| ProviderError(error_text(&e)))?;
        let mut builder = http::Response::builder().status(resp.status());
        for (name, value) in resp.headers() {
            builder = builder.header(name, value);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ProviderError(error_text(&e)))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(ProviderError(format!(
                    "{url} answered more than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        builder
            .body(bytes)
            .map_err(|e| ProviderError(e.to_string()))
    }
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Adapter {
    type Error = ProviderError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, ProviderError>> + Send + 'c>,
    >;
    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
