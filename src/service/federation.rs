//! Trusted issuers and federation bindings as admins manage them, and the
//! loading of the in-memory [`FederationIndex`](crate::federation::index)
//! from the store.

use std::collections::HashMap;

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::instrument;

use crate::clock::rfc3339;
use crate::federation::fetch::check_url;
use crate::federation::index::BoundAccount;
use crate::federation::jwks::KeyStatus;
use crate::federation::keys::VerifyingKey;
use crate::federation::policy::{Author, BindingSpec, CompiledBinding, compile};
use crate::federation::tenant;
use crate::federation::{
    DEFAULT_ALGS, DEFAULT_LEEWAY_S, DEFAULT_MAX_TOKEN_AGE_S, IssuerConfig, KeySource, MAX_LEEWAY_S,
};
use crate::model::{Principal, truncate};
use crate::secrets::new_id;
use crate::service::admin::NewTeamSa;
use crate::service::{Page, RequestCtx, ServiceError, ServiceResult};
use crate::state::{App, Change};
use crate::store::{BindingRow, IssuerRow, OrgRow, SaRow};

const MAX_TOKEN_AGE_CEILING_S: i64 = 7 * 24 * 3600;
/// A binding that mints.
pub const MODE_ENFORCE: &str = "enforce";
/// A binding whose matches are only audited (`token.exchange.shadow`).
pub const MODE_SHADOW: &str = "shadow";

/// Checks a binding mode (`enforce` when absent).
pub fn check_mode(mode: Option<&str>) -> ServiceResult<String> {
    match mode.unwrap_or(MODE_ENFORCE) {
        m @ (MODE_ENFORCE | MODE_SHADOW) => Ok(m.to_string()),
        other => Err(ServiceError::BadRequest(format!(
            "mode must be \"enforce\" or \"shadow\", got {:?}",
            truncate(other, 32)
        ))),
    }
}

fn alg_name(a: Algorithm) -> String {
    format!("{a:?}")
}

fn parse_alg(s: &str) -> Option<Algorithm> {
    DEFAULT_ALGS.iter().copied().find(|a| alg_name(*a) == s)
}

/// Compiles a stored issuer row into the config the exchange uses.
pub fn issuer_config(row: &IssuerRow, org_name: &str) -> Result<IssuerConfig, String> {
    let key_source = match (&row.jwks_uri, &row.static_jwks) {
        (_, Some(jwks)) => {
            KeySource::Static(serde_json::from_str(jwks).map_err(|e| format!("static JWKS: {e}"))?)
        }
        (Some(uri), None) => KeySource::JwksUri(uri.clone()),
        (None, None) => KeySource::Discovery,
    };
    let audiences: Vec<String> =
        serde_json::from_str(&row.audiences).map_err(|e| format!("audiences: {e}"))?;
    let algs: Vec<String> =
        serde_json::from_str(&row.allowed_algs).map_err(|e| format!("allowed_algs: {e}"))?;
    let allowed_algs = algs
        .iter()
        .map(|a| parse_alg(a).ok_or_else(|| format!("unknown algorithm {a}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(IssuerConfig {
        id: row.id.clone(),
        org_id: row.org_id.clone(),
        org_name: org_name.to_string(),
        issuer: row.issuer.clone(),
        key_source,
        audiences,
        allowed_algs,
        max_token_age_s: row.max_token_age_s,
        leeway_s: row.leeway_s,
        single_use_jti: row.single_use_jti,
        users: row.users,
        created_at: row.created_at,
    })
}

/// Compiles a stored external account into the index's form.
pub fn bound_account(
    sa: &SaRow,
    binding: &BindingRow,
    org_name: &str,
    team_name: &str,
) -> Result<BoundAccount, String> {
    Ok(BoundAccount {
        binding: stored_binding(&sa.id, &binding.issuer_id, &binding.spec)?,
        sa_id: sa.id.clone(),
        name: sa.name.clone(),
        org_id: sa.org_id.clone(),
        org_name: org_name.to_string(),
        team_name: team_name.to_string(),
        disabled: sa.disabled,
        shadow: binding.mode == MODE_SHADOW,
        max_token_lifetime_s: sa.max_token_lifetime_s,
    })
}

/// A stored binding (JSON), compiled and checked again as when it was saved.
fn stored_binding(sa_id: &str, issuer_id: &str, spec: &str) -> Result<CompiledBinding, String> {
    let spec: BindingSpec = serde_json::from_str(spec).map_err(|e| format!("binding spec: {e}"))?;
    compile(sa_id, issuer_id, &spec, Author::Stored)
}

/// Fills the index from the store (start-up, resync).
pub async fn load_index(app: &App) -> ServiceResult<()> {
    let (issuers, accounts) = read_index(&app.store).await?;
    app.index.replace(issuers, accounts);
    Ok(())
}

/// Reads and compiles every issuer and external account. The accounts come
/// joined with their bindings in one query, the few orgs, teams and issuers
/// beside it (on another pooled connection); at start-up with 10,000
/// accounts the accounts' rows are most of the start-up's work
/// (docs/performance.md).
pub async fn read_index(
    store: &crate::store::DynStore,
) -> ServiceResult<(Vec<IssuerConfig>, Vec<BoundAccount>)> {
    let ((orgs, teams, issuer_rows), rows) = tokio::try_join!(
        async {
            Ok::<_, crate::store::StoreError>((
                store.all_orgs().await?,
                store.all_teams().await?,
                store.all_issuers().await?,
            ))
        },
        store.index_accounts()
    )?;
    tracing::debug!("start-up: index rows read");
    let orgs: HashMap<String, String> = orgs.into_iter().map(|o| (o.id, o.name)).collect();
    let teams: HashMap<String, String> = teams.into_iter().map(|t| (t.id, t.name)).collect();
    let mut issuers = Vec::with_capacity(issuer_rows.len());
    for row in issuer_rows {
        let org = orgs
            .get(&row.org_id)
            .map(String::as_str)
            .unwrap_or_default();
        match issuer_config(&row, org) {
            Ok(c) => issuers.push(c),
            Err(e) => {
                tracing::error!(issuer_id = %row.id, error = %e, "stored issuer does not compile; skipped")
            }
        }
    }
    let mut accounts = Vec::with_capacity(rows.len());
    for row in rows {
        match stored_binding(&row.sa_id, &row.issuer_id, &row.spec) {
            Ok(binding) => accounts.push(BoundAccount {
                binding,
                org_name: orgs.get(&row.org_id).cloned().unwrap_or_default(),
                team_name: teams.get(&row.team_id).cloned().unwrap_or_default(),
                sa_id: row.sa_id,
                name: row.name,
                org_id: row.org_id,
                disabled: row.disabled,
                shadow: row.mode == MODE_SHADOW,
                max_token_lifetime_s: row.max_token_lifetime_s,
            }),
            Err(e) => {
                tracing::error!(sa_id = %row.sa_id, error = %e, "stored binding does not compile; skipped")
            }
        }
    }
    Ok((issuers, accounts))
}

/// Re-reads one issuer into the index, or drops it and its cached keys when
/// it was deleted. (A changed issuer URL or key source starts a fresh key
/// cache entry by itself.)
pub async fn reload_issuer(app: &App, id: &str) -> ServiceResult<()> {
    match app.store.issuer_by_id(id).await? {
        Some(row) => {
            let org = app
                .store
                .org_by_id(&row.org_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            let cfg = issuer_config(&row, &org).map_err(ServiceError::Internal)?;
            app.index.upsert_issuer(cfg);
        }
        None => {
            app.index.remove_issuer(id);
            app.keys.forget(id);
        }
    }
    Ok(())
}

/// Re-reads one external account into the index (or drops it).
pub async fn reload_account(app: &App, sa_id: &str) -> ServiceResult<()> {
    let sa = app.store.service_account_by_id(sa_id).await?;
    let binding = app.store.binding_of(sa_id).await?;
    match (sa, binding) {
        (Some(sa), Some(b)) => {
            let org = app
                .store
                .org_by_id(&sa.org_id)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            let team = app
                .store
                .team_by_id(&sa.team_id)
                .await?
                .map(|t| t.name)
                .unwrap_or_default();
            let acct = bound_account(&sa, &b, &org, &team).map_err(ServiceError::Internal)?;
            app.index.upsert_account(acct);
        }
        _ => app.index.remove_account(sa_id),
    }
    Ok(())
}

/// Finds the org's trusted issuer named by id or exact issuer URL.
pub async fn issuer_of_org(app: &App, org: &OrgRow, key: &str) -> ServiceResult<IssuerRow> {
    let mut issuers = app.store.issuers_of_org(&org.id).await?;
    if let Some(found) = issuers.iter().position(|i| i.id == key || i.issuer == key) {
        return Ok(issuers.swap_remove(found));
    }
    let near = crate::federation::near_match(key, issuers.iter().map(|i| i.issuer.as_str()))
        .map(|n| {
            format!(
                "; a registered issuer nearly matches: {n:?} (issuers must match exactly, including any trailing slash): use that, or"
            )
        })
        .unwrap_or_else(|| ":".into());
    Err(ServiceError::BadRequest(format!(
        "issuer {:?} is not a trusted issuer of organization \"{}\"{near} register it first (POST /api/v1/orgs/{}/issuers)",
        truncate(key, 200),
        org.name,
        org.name
    )))
}

/// Validates and compiles the binding of a new external account (octo-sts
/// style: checked once, when saved, never parsed on an exchange).
pub async fn binding_for(
    app: &App,
    p: &Principal,
    org: &OrgRow,
    sa_id: &str,
    req: &NewTeamSa,
) -> ServiceResult<BindingRow> {
    let Some(issuer) = req.issuer.as_deref() else {
        return Err(ServiceError::BadRequest(
            "an external service account needs \"issuer\": the id or URL of a trusted issuer of the organization".into(),
        ));
    };
    let issuer = issuer_of_org(app, org, issuer).await?;
    let Some(subject) = req.subject.clone() else {
        return Err(ServiceError::BadRequest(
            "an external service account needs \"subject\": the exact `sub` of the workload's token".into(),
        ));
    };
    let spec = BindingSpec {
        subject,
        subject_pattern: req.subject_pattern.clone(),
        claims: req.claims.clone().unwrap_or_default(),
        allow_broad_subject_pattern: req.allow_broad_subject_pattern.unwrap_or(false),
    };
    let mode = check_mode(req.mode.as_deref())?;
    binding_row(sa_id, &issuer, &spec, mode, author_of(p))
}

/// Who saves a binding: a broad subject pattern is an org admin's decision.
pub fn author_of(p: &Principal) -> Author {
    if p.is_org_admin() {
        Author::OrgAdmin
    } else {
        Author::TeamAdmin
    }
}

/// Compiles a binding (refusing what `compile` refuses) into its stored row.
/// Shared by creation and PATCH, so an edit is held to the same rules.
pub fn binding_row(
    sa_id: &str,
    issuer: &IssuerRow,
    spec: &BindingSpec,
    mode: String,
    author: Author,
) -> ServiceResult<BindingRow> {
    compile(sa_id, &issuer.id, spec, author)
        .map_err(|e| ServiceError::BadRequest(format!("binding refused: {e}")))?;
    let spec = serde_json::to_string(spec).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(BindingRow {
        sa_id: sa_id.to_string(),
        issuer_id: issuer.id.clone(),
        spec,
        mode,
    })
}

// ---------------------------------------------------------------- issuer admin

/// `POST /api/v1/orgs/{org}/issuers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewIssuer {
    pub issuer: String,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub audiences: Option<Vec<String>>,
    pub allowed_algs: Option<Vec<String>>,
    pub max_token_age_s: Option<i64>,
    pub leeway_s: Option<i64>,
    pub single_use_jti: Option<bool>,
    pub users: Option<bool>,
}

/// An issuer as the admin API shows it, with its key-cache state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuerOut {
    pub id: String,
    pub issuer: String,
    pub key_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The static JWK Set (public keys) when the key source is static, so
    /// `fedgate export` can write it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    pub audiences: Vec<String>,
    pub allowed_algs: Vec<String>,
    pub max_token_age_s: i64,
    pub leeway_s: i64,
    pub single_use_jti: bool,
    pub users: bool,
    pub created_at: String,
    pub keys: Option<KeyStatusOut>,
}

/// Key-cache state with readable times.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyStatusOut {
    pub kids: Vec<String>,
    pub keys: usize,
    pub dropped: usize,
    pub last_fetch: Option<String>,
    pub expires_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<KeyStatus> for KeyStatusOut {
    fn from(s: KeyStatus) -> Self {
        KeyStatusOut {
            kids: s.kids,
            keys: s.keys,
            dropped: s.dropped,
            last_fetch: s.last_fetch.map(|t| rfc3339(t * 1000)),
            expires_at: s.expires_at.map(|t| rfc3339(t * 1000)),
            last_error: s.last_error,
        }
    }
}

/// After a stored issuer changed in `tx`: the change is audited in the same
/// transaction and committed, then every replica reloads it (create, update
/// and delete alike).
async fn issuer_changed(
    app: &App,
    mut tx: Box<dyn crate::store::StoreTx>,
    ctx: &RequestCtx,
    p: &Principal,
    action: &str,
    row: &IssuerRow,
) -> ServiceResult<()> {
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        action,
        &format!("issuer:{}", row.issuer),
        json!({"id": row.id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Issuer(row.id.clone())).await;
    Ok(())
}

fn issuer_out(app: &App, cfg: &IssuerConfig, created_at: i64) -> IssuerOut {
    let (key_source, jwks_uri, jwks) = match &cfg.key_source {
        KeySource::Discovery => ("discovery", None, None),
        KeySource::JwksUri(u) => ("jwks_uri", Some(u.clone()), None),
        KeySource::Static(set) => ("static", None, serde_json::to_value(set).ok()),
    };
    IssuerOut {
        id: cfg.id.clone(),
        issuer: cfg.issuer.clone(),
        key_source,
        jwks_uri,
        jwks,
        audiences: cfg.audiences.clone(),
        allowed_algs: cfg.allowed_algs.iter().map(|a| alg_name(*a)).collect(),
        max_token_age_s: cfg.max_token_age_s,
        leeway_s: cfg.leeway_s,
        single_use_jti: cfg.single_use_jti,
        users: cfg.users,
        created_at: rfc3339(created_at),
        keys: app.keys.status(&cfg.id).map(KeyStatusOut::from),
    }
}

/// Validates an issuer URL: absolute, https (or loopback http when allowed),
/// no query or fragment (OIDC Discovery §4.1 appends a path to it).
fn check_issuer_url(app: &App, issuer: &str) -> ServiceResult<()> {
    let url = check_url(issuer, app.config.allow_insecure_issuers)
        .map_err(|e| ServiceError::BadRequest(format!("issuer: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ServiceError::BadRequest(
            "issuer must not have a query or fragment (OIDC Discovery §4.1)".into(),
        ));
    }
    Ok(())
}

/// Validates an issuer's settings into a row: URL rules, one key source,
/// audiences (another organization's name is reserved for it, and no two
/// organizations may accept the same audience from the same issuer),
/// asymmetric algorithms only, bounded ages. Shared by create and update.
async fn issuer_row(
    app: &App,
    org: &OrgRow,
    req: &NewIssuer,
    id: String,
    created_at: i64,
) -> ServiceResult<IssuerRow> {
    if req.issuer.is_empty() || req.issuer.len() > 2048 {
        return Err(ServiceError::BadRequest(
            "issuer must be 1-2048 characters".into(),
        ));
    }
    check_issuer_url(app, &req.issuer)?;
    let static_jwks = match (&req.jwks_uri, &req.jwks) {
        (Some(_), Some(_)) => {
            return Err(ServiceError::BadRequest(
                "give either jwks_uri or jwks (a static key set), not both".into(),
            ));
        }
        (Some(uri), None) => {
            check_url(uri, app.config.allow_insecure_issuers)
                .map_err(|e| ServiceError::BadRequest(format!("jwks_uri: {e}")))?;
            None
        }
        (None, Some(jwks)) => {
            let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| {
                ServiceError::BadRequest(format!("jwks is not a JWK Set (RFC 7517 §5): {e}"))
            })?;
            let usable = set
                .keys
                .iter()
                .filter(|k| VerifyingKey::from_jwk(k).is_ok())
                .count();
            if usable == 0 {
                return Err(ServiceError::BadRequest(
                    "jwks has no usable signature key (keys must be RSA ≥ 2048 bits, EC P-256/P-384 or Ed25519, with use \"sig\" or no use)".into(),
                ));
            }
            Some(jwks.to_string())
        }
        (None, None) => None,
    };
    let audiences = req
        .audiences
        .clone()
        .unwrap_or_else(|| vec![org.name.clone()]);
    if audiences.is_empty() || audiences.iter().any(|a| a.is_empty() || a.len() > 512) {
        return Err(ServiceError::BadRequest(
            "audiences must be a non-empty list of non-empty strings (default: the organization's name)".into(),
        ));
    }
    // An audience is how a token picks its tenant: another organization's
    // name is reserved for it, and no two organizations may accept the same
    // audience from the same issuer (else one could bind the other's
    // workloads and capture their exchanges).
    for aud in &audiences {
        let owner = tenant::reserved_owner(aud, &app.config.public_url);
        if owner != org.name
            && let Some(other) = app.store.org_by_name(owner).await?
            && other.id != org.id
        {
            return Err(ServiceError::BadRequest(format!(
                "audience {:?} is reserved for another organization (its name, or {}/org/<name>): tokens naming it pick that organization; use your organization's name {:?} or an audience of your own",
                truncate(aud, 64),
                app.config.public_url,
                org.name
            )));
        }
    }
    if app.index.issuers_for(&req.issuer).iter().any(|other| {
        other.org_id != org.id && other.audiences.iter().any(|a| audiences.contains(a))
    }) {
        return Err(ServiceError::Conflict(
            "another organization already accepts tokens of this issuer with one of these audiences; choose an audience of your own (the default is your organization's name)".into(),
        ));
    }
    let allowed_algs = match &req.allowed_algs {
        None => DEFAULT_ALGS.iter().map(|a| alg_name(*a)).collect(),
        Some(list) if list.is_empty() => {
            return Err(ServiceError::BadRequest(
                "allowed_algs must not be empty".into(),
            ));
        }
        Some(list) => {
            for a in list {
                if parse_alg(a).is_none() {
                    return Err(ServiceError::BadRequest(format!(
                        "algorithm {:?} is not allowed: use asymmetric algorithms only (RS256/384/512, PS256/384/512, ES256/384, EdDSA; RFC 8725 §3.1)",
                        truncate(a, 16)
                    )));
                }
            }
            list.clone()
        }
    };
    let max_token_age_s = req.max_token_age_s.unwrap_or(DEFAULT_MAX_TOKEN_AGE_S);
    if !(60..=MAX_TOKEN_AGE_CEILING_S).contains(&max_token_age_s) {
        return Err(ServiceError::BadRequest(format!(
            "max_token_age_s must be between 60 and {MAX_TOKEN_AGE_CEILING_S}"
        )));
    }
    let leeway_s = req.leeway_s.unwrap_or(DEFAULT_LEEWAY_S);
    if !(0..=MAX_LEEWAY_S).contains(&leeway_s) {
        return Err(ServiceError::BadRequest(format!(
            "leeway_s must be between 0 and {MAX_LEEWAY_S}"
        )));
    }
    Ok(IssuerRow {
        id,
        org_id: org.id.clone(),
        issuer: req.issuer.clone(),
        jwks_uri: req.jwks_uri.clone(),
        static_jwks,
        audiences: json!(audiences).to_string(),
        allowed_algs: json!(allowed_algs).to_string(),
        max_token_age_s,
        leeway_s,
        single_use_jti: req.single_use_jti.unwrap_or(false),
        users: req.users.unwrap_or(false),
        created_at,
    })
}

/// Registers a trusted issuer (org admins). The issuer is linted before it is
/// saved: its keys must be fetchable and usable now, so a trailing-slash
/// mismatch or an empty key set is a clear 400, not a silent trap.
#[instrument(skip_all, fields(org = %org))]
pub async fn create_issuer(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    req: NewIssuer,
) -> ServiceResult<IssuerOut> {
    let org = app.require_org_admin(ctx, p, org, "issuer.create").await?;
    // A duplicate is answered before anything is fetched, with the id of the
    // registration that exists and the request that changes it.
    if let Some(existing) = app
        .store
        .issuers_of_org(&org.id)
        .await?
        .into_iter()
        .find(|i| i.issuer == req.issuer)
    {
        let update = format!("PATCH /api/v1/orgs/{}/issuers/{}", org.name, existing.id);
        return Err(ServiceError::Exists {
            message: format!(
                "issuer {:?} is already trusted by this organization as {}; change its settings with {update}",
                truncate(&req.issuer, 200),
                existing.id
            ),
            existing_id: existing.id,
            update,
        });
    }
    let row = issuer_row(app, &org, &req, new_id("iss"), app.clock.now_ms()).await?;
    let cfg = issuer_config(&row, &org.name).map_err(ServiceError::Internal)?;
    // Lint: fetch the keys now (discovery, issuer equality, size and time bounds).
    if let Err(e) = app.keys.probe(&cfg, app.clock.now_s()).await {
        app.keys.forget(&cfg.id);
        return Err(ServiceError::BadRequest(format!(
            "issuer {:?} refused: its signing keys cannot be used: {e}",
            truncate(&req.issuer, 200)
        )));
    }
    let mut tx = app.store.begin().await?;
    tx.insert_issuer(&row)
        .await
        .map_err(ServiceError::from)
        .map_err(crate::service::conflict(format!(
            "issuer {:?} in this organization",
            truncate(&req.issuer, 200)
        )))?;
    issuer_changed(app, tx, ctx, p, "issuer.create", &row).await?;
    Ok(issuer_out(app, &cfg, row.created_at))
}

/// `PATCH /api/v1/orgs/{org}/issuers/{id}`: every setting but the issuer URL
/// (which bound accounts refer to). Giving `jwks` or `jwks_uri` switches the
/// key source; otherwise it is kept. A static JWKS is rotated this way.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerUpdate {
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub audiences: Option<Vec<String>>,
    pub allowed_algs: Option<Vec<String>>,
    pub max_token_age_s: Option<i64>,
    pub leeway_s: Option<i64>,
    pub single_use_jti: Option<bool>,
    pub users: Option<bool>,
}

/// Changes an issuer's settings (org admins), with the same checks and key
/// lint as registration; effective at once on every replica.
#[instrument(skip_all, fields(org = %org))]
pub async fn update_issuer(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    id: &str,
    upd: IssuerUpdate,
) -> ServiceResult<IssuerOut> {
    let org = app.require_org_admin(ctx, p, org, "issuer.update").await?;
    let old = org_issuer(app, &org, id).await?;
    let parse_json = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    let parse_list = |text: &str| serde_json::from_str::<Vec<String>>(text).ok();
    let (jwks_uri, jwks) = match (upd.jwks_uri, upd.jwks) {
        (None, None) => (
            old.jwks_uri.clone(),
            old.static_jwks.as_deref().and_then(parse_json),
        ),
        (uri, jwks) => (uri, jwks),
    };
    let merged = NewIssuer {
        issuer: old.issuer.clone(),
        jwks_uri,
        jwks,
        audiences: upd.audiences.or_else(|| parse_list(&old.audiences)),
        allowed_algs: upd.allowed_algs.or_else(|| parse_list(&old.allowed_algs)),
        max_token_age_s: upd.max_token_age_s.or(Some(old.max_token_age_s)),
        leeway_s: upd.leeway_s.or(Some(old.leeway_s)),
        single_use_jti: upd.single_use_jti.or(Some(old.single_use_jti)),
        users: upd.users.or(Some(old.users)),
    };
    let row = issuer_row(app, &org, &merged, old.id.clone(), old.created_at).await?;
    let cfg = issuer_config(&row, &org.name).map_err(ServiceError::Internal)?;
    if let Err(e) = app.keys.refresh(&cfg, app.clock.now_s()).await {
        return Err(ServiceError::BadRequest(format!(
            "update refused: the issuer's signing keys cannot be used with these settings: {e}"
        )));
    }
    let mut tx = app.store.begin().await?;
    tx.update_issuer(&row).await?;
    issuer_changed(app, tx, ctx, p, "issuer.update", &row).await?;
    Ok(issuer_out(app, &cfg, row.created_at))
}

/// One page of issuers and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuerPage {
    pub issuers: Vec<IssuerOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Lists the org's issuers by URL with their key-cache state, a page at a
/// time (org admins): one query per page (the key-cache state is in memory).
pub async fn list_issuers_page(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    page: &Page,
) -> ServiceResult<IssuerPage> {
    let org = app.require_org_admin(ctx, p, org, "issuer.list").await?;
    let limit = page.limit()?;
    let rows = app.store.issuers_page(&org.id, page.after(), limit).await?;
    let next_after = crate::service::next_after(&rows, limit, |i| &i.issuer);
    let mut issuers = Vec::with_capacity(rows.len());
    for row in rows {
        let cfg = issuer_config(&row, &org.name).map_err(ServiceError::Internal)?;
        issuers.push(issuer_out(app, &cfg, row.created_at));
    }
    Ok(IssuerPage {
        issuers,
        next_after,
    })
}

/// Every issuer of the org, following the pages of [`list_issuers_page`].
pub async fn list_issuers(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
) -> ServiceResult<Vec<IssuerOut>> {
    let mut out = Vec::new();
    let mut page = Page {
        limit: Some(crate::service::MAX_PAGE_SIZE),
        after: None,
    };
    loop {
        let got = list_issuers_page(app, ctx, p, org, &page).await?;
        out.extend(got.issuers);
        match got.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

/// One of the org's issuers by id, with its key-cache state (org admins).
pub async fn get_issuer(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    id: &str,
) -> ServiceResult<IssuerOut> {
    let org = app.require_org_admin(ctx, p, org, "issuer.read").await?;
    let row = org_issuer(app, &org, id).await?;
    let cfg = issuer_config(&row, &org.name).map_err(ServiceError::Internal)?;
    Ok(issuer_out(app, &cfg, row.created_at))
}

pub(crate) async fn org_issuer(app: &App, org: &OrgRow, id: &str) -> ServiceResult<IssuerRow> {
    match app.store.issuer_by_id(id).await? {
        Some(row) if row.org_id == org.id => Ok(row),
        _ => Err(ServiceError::NotFound(format!(
            "issuer \"{}\" not found",
            truncate(id, 64)
        ))),
    }
}

/// Deletes an issuer no account is bound to (org admins).
pub async fn delete_issuer(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    id: &str,
) -> ServiceResult<()> {
    let org = app.require_org_admin(ctx, p, org, "issuer.delete").await?;
    let row = org_issuer(app, &org, id).await?;
    let mut tx = app.store.begin().await?;
    match tx.delete_issuer(&row.id).await {
        Ok(_) => {}
        Err(crate::store::StoreError::Conflict) => {
            return Err(ServiceError::Conflict(format!(
                "issuer {:?} is still bound to external service accounts: delete or disable them first",
                row.issuer
            )));
        }
        Err(e) => return Err(e.into()),
    }
    issuer_changed(app, tx, ctx, p, "issuer.delete", &row).await?;
    Ok(())
}

/// Forces a key fetch for an issuer and returns its state (org admins).
pub async fn refresh_issuer(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    id: &str,
) -> ServiceResult<serde_json::Value> {
    let org = app.require_org_admin(ctx, p, org, "issuer.refresh").await?;
    let row = org_issuer(app, &org, id).await?;
    let cfg = issuer_config(&row, &org.name).map_err(ServiceError::Internal)?;
    let result = app.keys.refresh(&cfg, app.clock.now_s()).await;
    // Nothing in the store changes, but the event is stored the same way
    // as a change's: durable before the answer.
    let mut tx = app.store.begin().await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "issuer.refresh",
        &format!("issuer:{}", row.issuer),
        json!({"ok": result.is_ok()}),
    )
    .await?;
    tx.commit().await?;
    let mut out = json!(issuer_out(app, &cfg, row.created_at));
    if let Err(e) = result {
        out["refresh_error"] = json!(e.to_string());
    }
    Ok(out)
}

/// The org's trusted issuer URLs, for a team admin choosing one for a
/// Federated Identity account of `team` (team admins, org admins).
pub async fn issuer_choices(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
) -> ServiceResult<Vec<String>> {
    let team = app
        .require_team_admin(ctx, p, team, "issuer.choose")
        .await?;
    let mut out: Vec<String> = app
        .store
        .issuers_of_org(&team.org_id)
        .await?
        .into_iter()
        .map(|i| i.issuer)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}
