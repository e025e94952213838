//! The token exchange (DESIGN §3): RFC 7523 jwt-bearer and RFC 8693
//! token-exchange grants. This module only orchestrates: `federation::validate`
//! checks the JWT, `federation::jwks` supplies the key, the in-memory index
//! supplies issuers and bindings, `tokens` mints. The admin "explain" dry run
//! runs the very same pipeline with a recording trace and mints nothing.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};
use tracing::instrument;

use crate::audit::AuditEvent;
use crate::federation::index::BoundAccount;
use crate::federation::tenant;
use crate::federation::validate::{self, Trace, VerifiedClaims};
use crate::federation::{IssuerConfig, excerpt};
use crate::model::{Principal, Scopes, truncate};
use crate::secrets::{new_id, sha256_hex};
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::UserRow;
use crate::tokens::{AccessClaims, Actor};

/// RFC 7523 §2.1: what the W&B SDK sends.
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// RFC 8693 §2.1.
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type identifiers.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 6749 §4.4 with RFC 7523 §2.2 client authentication: what MSAL and
/// azure-identity send for a federated credential.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
/// RFC 7523 §2.2 `client_assertion_type`.
pub const CLIENT_ASSERTION_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An RFC 6749 §5.2 error: a code and a description that names the failed
/// check (never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
    fn request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    fn grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    fn unavailable(d: impl Into<String>) -> Self {
        Self::new("temporarily_unavailable", d)
    }
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(_) => {
                OAuthError::unavailable("a dependency of fedgate is unavailable; retry shortly")
            }
            ServiceError::Internal(m) => {
                tracing::error!(error = %m, "exchange failed");
                OAuthError::new("server_error", "internal error")
            }
            other => OAuthError::grant(other.to_string()),
        }
    }
}

/// A token request, parsed from the form.
#[derive(Clone, Debug, Default)]
pub struct ExchangeRequest {
    pub grant_type: String,
    /// The presented JWT (`assertion` or `subject_token`).
    pub token: String,
    pub scope: Option<String>,
    /// `audience` or `resource`: `sa:<org>/<team>/<name>`.
    pub target: Option<String>,
}

impl ExchangeRequest {
    /// Reads the token request's parameters (the form parser has already
    /// refused repeated names, RFC 6749 §3.2, and bounded their number).
    pub fn from_form(form: &crate::form::Form) -> Result<ExchangeRequest, OAuthError> {
        let get = |name: &str| form.get(name);
        let grant_type =
            get("grant_type").ok_or_else(|| OAuthError::request("missing grant_type"))?;
        let token = match grant_type {
            GRANT_JWT_BEARER => get("assertion")
                .ok_or_else(|| OAuthError::request("missing assertion (RFC 7523 §2.1)"))?,
            GRANT_TOKEN_EXCHANGE => {
                let token = get("subject_token")
                    .ok_or_else(|| OAuthError::request("missing subject_token (RFC 8693 §2.1)"))?;
                match get("subject_token_type") {
                    Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN) => {}
                    Some(other) => {
                        return Err(OAuthError::request(format!(
                            "subject_token_type {:?} is not supported: use {TOKEN_TYPE_JWT} or {TOKEN_TYPE_ID_TOKEN}",
                            truncate(other, 80)
                        )));
                    }
                    None => {
                        return Err(OAuthError::request(
                            "missing subject_token_type (RFC 8693 §2.1)",
                        ));
                    }
                }
                match get("requested_token_type") {
                    None | Some(TOKEN_TYPE_ACCESS_TOKEN) => {}
                    Some(other) => {
                        return Err(OAuthError::request(format!(
                            "requested_token_type {:?} is not supported: only {TOKEN_TYPE_ACCESS_TOKEN}",
                            truncate(other, 80)
                        )));
                    }
                }
                if get("actor_token").is_some() {
                    return Err(OAuthError::request(
                        "actor_token is not supported (delegation)",
                    ));
                }
                token
            }
            GRANT_CLIENT_CREDENTIALS => client_assertion(&get)?,
            other => {
                return Err(OAuthError::new(
                    "unsupported_grant_type",
                    format!(
                        "grant_type {:?} is not supported: use {GRANT_JWT_BEARER}, {GRANT_TOKEN_EXCHANGE} or {GRANT_CLIENT_CREDENTIALS} (with a client assertion)",
                        truncate(other, 80)
                    ),
                ));
            }
        };
        let target = match (get("audience"), get("resource")) {
            (Some(a), Some(r)) if a != r => {
                return Err(OAuthError::new(
                    "invalid_target",
                    "audience and resource name different targets",
                ));
            }
            (a, r) => a.or(r).map(String::from),
        };
        let target = if grant_type == GRANT_CLIENT_CREDENTIALS {
            client_target(get("client_id"), target)?
        } else {
            target
        };
        if let Some(t) = target.as_deref().filter(|t| !is_account_name(t)) {
            return Err(OAuthError::new(
                "invalid_target",
                format!(
                    "audience {:?} does not name a service account: use sa:<org>/<team>/<name> (e.g. sa:default/vision/gh-train) or the account's id (sa_…)",
                    truncate(t, 100)
                ),
            ));
        }
        Ok(ExchangeRequest {
            grant_type: grant_type.to_string(),
            token: token.trim().to_string(),
            scope: get("scope").map(String::from),
            target,
        })
    }
}

/// The JWT of an RFC 7523 §2.2 client authentication. Only the JWT bearer
/// assertion type is accepted; `client_secret` is refused rather than
/// ignored, so nobody believes a secret was checked. Whatever else a client
/// library adds (MSAL: `client_info`, `claims`; telemetry headers) does not
/// change what is validated.
fn client_assertion<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<&'a str, OAuthError> {
    if get("client_secret").is_some() {
        return Err(OAuthError::request(
            "client_secret is not accepted: authenticate with client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer and client_assertion=<the workload's JWT> (RFC 7523 §2.2)",
        ));
    }
    match get("client_assertion_type") {
        Some(CLIENT_ASSERTION_JWT_BEARER) => {}
        Some(other) => {
            return Err(OAuthError::request(format!(
                "client_assertion_type {:?} is not supported: use {CLIENT_ASSERTION_JWT_BEARER}",
                truncate(other, 80)
            )));
        }
        None => {
            return Err(OAuthError::request(
                "missing client_assertion_type (RFC 7523 §2.2): the client_credentials grant needs a client assertion",
            ));
        }
    }
    get("client_assertion")
        .ok_or_else(|| OAuthError::request("missing client_assertion (RFC 7523 §2.2)"))
}

/// RFC 7523 §2.2: `client_id` names the account the assertion is for, as
/// `audience` does for the other grants (`sa:<org>/<team>/<name>` or the
/// account's id). Naming two different accounts is refused.
/// Whether `target` has the form of an account: `sa:<org>/<team>/<name>`
/// or an account id (`sa_…`).
pub fn is_account_name(target: &str) -> bool {
    if let Some(path) = target.strip_prefix("sa:") {
        let parts: Vec<&str> = path.split('/').collect();
        return parts.len() == 3 && parts.iter().all(|p| !p.is_empty());
    }
    target.len() > 3 && target.starts_with("sa_") && !target.contains(['/', ':', ' '])
}

fn client_target(
    client_id: Option<&str>,
    audience: Option<String>,
) -> Result<Option<String>, OAuthError> {
    match (client_id.map(str::trim).filter(|c| !c.is_empty()), audience) {
        (Some(c), Some(a)) if c != a => Err(OAuthError::new(
            "invalid_target",
            "client_id and audience/resource name different service accounts",
        )),
        (Some(c), _) => Ok(Some(c.to_string())),
        (None, a) => Ok(a),
    }
}

/// The `scope` of a client-credentials request. Azure clients ask for
/// `<resource>/.default` ("everything this client was granted"); for
/// fedgate's own URL that is the account's full scope. Anything else must
/// be a subset of `read write`, as for the other grants.
fn client_scope(scope: Option<&str>, issuer: &str) -> Result<Option<String>, OAuthError> {
    let Some(scope) = scope else {
        return Ok(None);
    };
    let mut rest = Vec::new();
    let mut default = false;
    for s in scope.split_whitespace() {
        match s.strip_suffix("/.default") {
            Some(resource) if resource.trim_end_matches('/') == issuer => default = true,
            Some(resource) => {
                return Err(OAuthError::new(
                    "invalid_scope",
                    format!(
                        "scope {:?} names resource {:?}, not this fedgate ({issuer}): ask for \"{issuer}/.default\" or \"read write\"",
                        truncate(s, 120),
                        truncate(resource, 100)
                    ),
                ));
            }
            None => rest.push(s),
        }
    }
    Ok(Some(if default {
        "read write".to_string()
    } else {
        rest.join(" ")
    }))
}

/// RFC 7523 §3.2: a client assertion that is not valid (malformed, failing
/// a check, or bound to no account `client_id` names) is a failed client
/// authentication, `invalid_client`; the description is the one a
/// jwt-bearer assertion would get. Outages stay what they are.
fn client_auth_error(e: OAuthError) -> OAuthError {
    match e.code {
        "temporarily_unavailable" | "server_error" | "slow_down" => e,
        _ => OAuthError {
            code: "invalid_client",
            description: e.description,
        },
    }
}

/// The success answer (RFC 6749 §5.1, RFC 8693 §2.2.1).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

/// Who the exchanged token becomes.
#[derive(Debug)]
pub enum Subject {
    Account(Arc<BoundAccount>),
    /// A person trusted through an issuer with `users: true`.
    User(UserRow),
}

/// A token that passed every check, and who it becomes.
#[derive(Debug)]
pub struct Evaluated {
    pub issuer: Arc<IssuerConfig>,
    pub claims: VerifiedClaims,
    pub subject: Subject,
}

/// One bound account and whether the token matched it (for explain).
#[derive(Debug, Serialize)]
pub struct CandidateOut {
    pub account: String,
    pub disabled: bool,
    /// `enforce` or `shadow`.
    pub mode: &'static str,
    pub matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<String>,
}

/// What a failed evaluation knows: the error, the failed check, the issuer
/// if one was found, and what the token said once its signature verified.
pub struct Failure {
    pub error: OAuthError,
    /// Name of the failed check (`format`, `iss`, `key`, `signature`, `exp`,
    /// `aud`, `jti`, `binding`, …): a bounded set, fit for a metrics label.
    pub check: &'static str,
    pub issuer: Option<Arc<IssuerConfig>>,
    /// Set only after the signature verified with a key of `issuer`: before
    /// that, nothing in the token is known to come from the issuer, so the
    /// refusal must not reach that organization's audit log.
    pub verified: Option<Said>,
}

/// What a token whose signature verified says about itself (for the audit
/// event of its refusal: issue 14 wants `iss`, `sub`, `aud`, `kid`).
#[derive(Clone, Debug, Serialize)]
pub struct Said {
    pub iss: String,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    pub kid: Option<String>,
}

impl Said {
    /// A refusal of this verified token by `cfg`'s organization.
    fn refuse(&self, error: OAuthError, check: &'static str, cfg: &Arc<IssuerConfig>) -> Failure {
        Failure {
            error,
            check,
            issuer: Some(cfg.clone()),
            verified: Some(self.clone()),
        }
    }
}

/// A refusal before the signature verified.
fn fail(error: OAuthError, check: &'static str, issuer: Option<&Arc<IssuerConfig>>) -> Failure {
    Failure {
        error,
        check,
        issuer: issuer.cloned(),
        verified: None,
    }
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![excerpt(s, 200)],
        Some(Value::Array(a)) => a
            .iter()
            .take(10)
            .map(|v| match v {
                Value::String(s) => excerpt(s, 200),
                other => excerpt(&other.to_string(), 200),
            })
            .collect(),
        Some(other) => vec![excerpt(&other.to_string(), 200)],
        None => Vec::new(),
    }
}

/// Options that make the dry run differ from the exchange.
pub struct EvalOptions<'a> {
    /// Only this organization's issuers (explain).
    pub org_id: Option<&'a str>,
    /// Record the single-use `jti` (the exchange) or only report it (explain).
    pub consume_jti: bool,
    pub candidates: Option<&'a mut Vec<CandidateOut>>,
    /// Receives the enabled shadow bindings the token matched: they mint
    /// nothing, and the exchange audits each as `token.exchange.shadow`.
    pub shadow: Option<&'a mut Vec<Arc<BoundAccount>>>,
}

fn token_auds(claims: &serde_json::Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// Every check of DESIGN §3, in order, then the binding.
pub async fn evaluate(
    app: &App,
    token: &str,
    target: Option<&str>,
    now: i64,
    trace: &mut Trace,
    mut opts: EvalOptions<'_>,
) -> Result<Evaluated, Failure> {
    let u = validate::peek_traced(token, trace).map_err(|e| {
        fail(
            OAuthError::new(e.error_code(), e.to_string()),
            e.check_name(),
            None,
        )
    })?;
    // Only registered issuers are ever contacted: an unknown `iss` stops here,
    // before any network I/O.
    let mut configs = app.index.issuers_for(&u.iss);
    if let Some(org) = opts.org_id {
        configs.retain(|c| c.org_id == org);
    }
    // A target is `sa:<org>/<team>/<name>` or an account id (a client_id).
    let target_org = target.and_then(|t| match t.strip_prefix("sa:") {
        Some(path) => path.split('/').next().map(String::from),
        None => app.index.account(t).map(|a| a.org_name.clone()),
    });
    if let Some(org) = &target_org {
        configs.retain(|c| &c.org_name == org);
    }
    if configs.is_empty() {
        // Whether an unknown `iss` is registered is already visible from
        // this very error, so naming a near miss reveals nothing more.
        let near = app
            .index
            .near_iss(&u.iss)
            .filter(|n| {
                opts.org_id.is_none_or(|org| {
                    app.index.issuers_for(n).iter().any(|c| c.org_id == org)
                })
            })
            .map(|n| {
                format!(
                    "; a registered issuer nearly matches: {:?} (issuers must match exactly, including any trailing slash)",
                    truncate(&n, 200)
                )
            })
            .unwrap_or_default();
        let e = OAuthError::grant(format!(
            "issuer {:?} is not a trusted issuer{}{near}",
            truncate(&u.iss, 200),
            if opts.org_id.is_some() {
                " of this organization"
            } else {
                ""
            }
        ));
        trace.push_fail("iss", &e.description);
        return Err(fail(e, "iss", None));
    }
    // Several orgs may trust the same issuer (GitHub's, say): the token's own
    // audience picks the org (`federation::tenant`); its signature is still
    // checked below.
    let auds = token_auds(&u.claims);
    let configs = match tenant::pick(configs, &auds, &app.config.public_url) {
        Ok(c) => c,
        Err(e) => {
            let code = match e {
                tenant::PickError::SeveralReserved(_) => "invalid_target",
                tenant::PickError::NoneAccepts(_) => "invalid_grant",
            };
            let e = OAuthError::new(code, e.to_string());
            trace.push_fail("aud", &e.description);
            return Err(fail(e, "tenant", None));
        }
    };
    let mut first_error: Option<Failure> = None;
    let mut verified = None;
    for cfg in &configs {
        let key = match app.keys.key(cfg, u.kid.as_deref(), u.alg, now).await {
            Ok(k) => k,
            Err(e) => {
                trace.push_fail("key", &e);
                first_error.get_or_insert(fail(
                    OAuthError::new(e.error_code(), e.to_string()),
                    "key",
                    Some(cfg),
                ));
                continue;
            }
        };
        trace.push_ok(
            "key",
            format_args!(
                "key {:?} of issuer {} ({})",
                key.kid.as_deref().unwrap_or("-"),
                cfg.id,
                cfg.org_name
            ),
        );
        match validate::verify(&u, token, cfg, &key, now, trace) {
            Ok(c) => {
                verified = Some((cfg.clone(), c));
                break;
            }
            Err(e) => {
                let error = OAuthError::new(e.error_code(), e.to_string());
                let f = if e.after_signature() {
                    Said {
                        iss: u.iss.clone(),
                        sub: u
                            .claims
                            .get("sub")
                            .and_then(Value::as_str)
                            .map(|s| excerpt(s, 200)),
                        aud: string_list(u.claims.get("aud")),
                        kid: u.kid.clone(),
                    }
                    .refuse(error, e.check_name(), cfg)
                } else {
                    fail(error, e.check_name(), Some(cfg))
                };
                first_error.get_or_insert(f);
            }
        }
    }
    let Some((cfg, claims)) = verified else {
        return Err(first_error.unwrap_or_else(|| {
            fail(
                OAuthError::grant("no issuer configuration accepted the token"),
                "iss",
                None,
            )
        }));
    };
    let sub = claims.sub.clone();
    let said = Said {
        iss: claims.iss.clone(),
        sub: Some(excerpt(&sub, 200)),
        aud: claims
            .aud
            .iter()
            .take(10)
            .map(|a| excerpt(a, 200))
            .collect(),
        kid: u.kid.clone(),
    };
    if cfg.single_use_jti {
        let Some(jti) = claims.jti.as_deref() else {
            let e = OAuthError::grant("this issuer requires a \"jti\" claim (single-use tokens)");
            trace.push_fail("jti", &e.description);
            return Err(said.refuse(e, "jti", &cfg));
        };
        if opts.consume_jti {
            // Keyed by the `iss` URL, not this registration: the token is
            // single-use wherever its issuer is trusted, and stays so if the
            // issuer is deleted and registered again.
            let horizon = crate::federation::jti_horizon(claims.exp);
            match app.store.use_jti(&cfg.issuer, jti, horizon, now).await {
                Ok(true) => trace.push_ok("jti", "first use"),
                Ok(false) => {
                    let e = OAuthError::grant(
                        "this token was already exchanged: its \"jti\" is single-use",
                    );
                    trace.push_fail("jti", &e.description);
                    return Err(said.refuse(e, "jti", &cfg));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot record jti");
                    return Err(said.refuse(
                        OAuthError::unavailable("cannot record the token's jti; retry shortly"),
                        "jti",
                        &cfg,
                    ));
                }
            }
        } else {
            trace.push_ok("jti", "single-use; recorded at exchange, not by explain");
        }
    }
    // The binding: issuer + subject (+ claim conditions) must match exactly one enabled account.
    let candidates = app.index.candidates(&cfg.id, &sub);
    let mut matched: Vec<Arc<BoundAccount>> = Vec::new();
    let mut claim_mismatch: Option<String> = None;
    for a in &candidates {
        match a.binding.check(&sub, &claims.claims) {
            Ok(()) => matched.push(a.clone()),
            Err(m) if m.condition != "sub" => {
                claim_mismatch.get_or_insert(m.condition.clone());
            }
            Err(_) => {}
        }
    }
    if let Some(out) = opts.candidates.as_deref_mut() {
        for a in app.index.accounts_of_issuer(&cfg.id).into_iter().take(50) {
            let r = a.binding.check(&sub, &claims.claims);
            out.push(CandidateOut {
                account: a.target_name(),
                disabled: a.disabled,
                mode: if a.shadow { "shadow" } else { "enforce" },
                matched: r.is_ok(),
                mismatch: r.err().map(|m| m.to_string()),
            });
        }
    }
    // Shadow bindings are reported, never chosen: the exchange goes on as
    // if they did not exist.
    let (shadow, matched): (Vec<_>, Vec<_>) = matched.into_iter().partition(|a| a.shadow);
    let shadow: Vec<Arc<BoundAccount>> = shadow.into_iter().filter(|a| !a.disabled).collect();
    for a in &shadow {
        trace.push_ok(
            "shadow",
            format_args!(
                "matches {} in shadow mode: audited, nothing minted for it",
                a.target_name()
            ),
        );
    }
    let shadow_target = target.is_some_and(|t| shadow.iter().any(|a| a.names(t)));
    if let Some(out) = opts.shadow.as_deref_mut() {
        out.extend(shadow);
    }
    let enabled: Vec<&Arc<BoundAccount>> = matched.iter().filter(|a| !a.disabled).collect();
    let chosen = match target {
        Some(t) if shadow_target => {
            let e = OAuthError::grant(format!(
                "service account {:?} is bound in shadow mode: its matches are audited and nothing is minted until its binding's mode is \"enforce\"",
                truncate(t, 200)
            ));
            trace.push_fail("binding", &e.description);
            return Err(said.refuse(e, "binding", &cfg));
        }
        Some(t) => match enabled.iter().find(|a| a.names(t)) {
            Some(a) => Some((*a).clone()),
            None if matched.iter().any(|a| a.names(t)) => {
                let e = OAuthError::grant(format!(
                    "service account {:?} is disabled",
                    truncate(t, 200)
                ));
                trace.push_fail("binding", &e.description);
                return Err(said.refuse(e, "binding", &cfg));
            }
            None => {
                let e = OAuthError::new(
                    "invalid_target",
                    format!(
                        "{:?} does not name a service account this token is bound to",
                        truncate(t, 200)
                    ),
                );
                trace.push_fail("binding", &e.description);
                return Err(said.refuse(e, "binding", &cfg));
            }
        },
        None => match enabled.len() {
            1 => Some(enabled[0].clone()),
            0 => None,
            n => {
                let names: Vec<String> = enabled.iter().map(|a| a.target_name()).collect();
                let e = OAuthError::new(
                    "invalid_target",
                    format!(
                        "the token matches {n} service accounts ({}); name one with audience=sa:<org>/<team>/<name>",
                        names.join(", ")
                    ),
                );
                trace.push_fail("binding", &e.description);
                return Err(said.refuse(e, "binding", &cfg));
            }
        },
    };
    if let Some(account) = chosen {
        trace.push_ok("binding", format_args!("matches {}", account.target_name()));
        return Ok(Evaluated {
            issuer: cfg,
            claims,
            subject: Subject::Account(account),
        });
    }
    if let Some(disabled) = matched.first() {
        let e = OAuthError::grant(format!(
            "service account {:?} bound to this token is disabled",
            disabled.target_name()
        ));
        trace.push_fail("binding", &e.description);
        return Err(said.refuse(e, "binding", &cfg));
    }
    if cfg.users && target.is_none() {
        match app.store.user_by_email(&sub.to_ascii_lowercase()).await {
            Ok(Some(user)) if user.org_id == cfg.org_id && user.disabled => {
                let e = OAuthError::grant(format!(
                    "user {:?} is disabled: every credential of this person is refused",
                    user.username
                ));
                trace.push_fail("binding", &e.description);
                return Err(said.refuse(e, "binding", &cfg));
            }
            Ok(Some(user)) if user.org_id == cfg.org_id => {
                trace.push_ok(
                    "binding",
                    format_args!(
                        "subject is user {:?} (issuer trusted for people)",
                        user.username
                    ),
                );
                return Ok(Evaluated {
                    issuer: cfg,
                    claims,
                    subject: Subject::User(user),
                });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "user lookup failed");
                return Err(said.refuse(
                    OAuthError::unavailable("cannot look up the user; retry shortly"),
                    "binding",
                    &cfg,
                ));
            }
        }
    }
    let e = OAuthError::grant(match claim_mismatch {
        Some(claim) => format!(
            "no service account of this issuer is bound to subject {:?} with these claims (the condition on {claim:?} does not hold)",
            truncate(&sub, 200)
        ),
        None => format!(
            "no service account of this issuer is bound to subject {:?}",
            truncate(&sub, 200)
        ),
    });
    trace.push_fail("binding", &e.description);
    Err(said.refuse(e, "binding", &cfg))
}

/// The audit details of a successful exchange: what the minted token is
/// and which presented token (by hash) it was minted for.
#[derive(Serialize)]
struct ExchangedDetails<'a> {
    grant_type: &'a str,
    issuer: &'a str,
    subject: &'a str,
    account_id: &'a str,
    token_sha256: &'a str,
    minted_jti: &'a str,
    scope: &'a str,
    expires_in: i64,
    /// The client's address (see `crate::proxy`), when it came over the network.
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<std::net::IpAddr>,
}

/// The audit details of a refused exchange whose signature verified: what
/// the token said and which check refused it (issue 14: enough to debug
/// from the audit log alone).
#[derive(Serialize)]
struct DeniedDetails<'a> {
    error: &'a str,
    check: &'a str,
    grant_type: &'a str,
    token_sha256: &'a str,
    iss: &'a str,
    sub: Option<&'a str>,
    aud: &'a [String],
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<std::net::IpAddr>,
}

/// Refusals before the signature verified are logged at most this often
/// (per second, for the whole process): enough for an operator to see them,
/// too few for a flood of forged tokens to drown the log.
static UNVERIFIED_LOG: crate::ratelimit::LogThrottle = crate::ratelimit::LogThrottle::new(5);

/// Records a refused exchange. Only a token whose signature verified with
/// a key of the issuer's organization reaches that organization's audit
/// log: anything earlier is attacker-chosen text, so it is counted in
/// metrics and logged by the server (rate-limited, at info) instead.
async fn refused(app: &App, ctx: &RequestCtx, grant_type: &str, token_hash: &str, f: &Failure) {
    let (Some(issuer), Some(said)) = (&f.issuer, &f.verified) else {
        crate::metrics::unverified_refusal(f.check);
        if let Some(suppressed) = UNVERIFIED_LOG.allow(app.clock.now_s()) {
            tracing::info!(
                request_id = %ctx.request_id,
                check = f.check,
                error = f.error.code,
                // Debug form: attacker-chosen text cannot forge log lines.
                reason = ?f.error.description,
                issuer_id = f.issuer.as_ref().map(|i| i.id.as_str()).unwrap_or("-"),
                suppressed,
                "token exchange refused before signature verification"
            );
        }
        return;
    };
    let sub = said.sub.as_deref();
    app.audit_event(AuditEvent {
        org_id: issuer.org_id.clone(),
        actor: match sub {
            Some(s) => format!("external:{}#{s}", issuer.issuer),
            None => format!("external:{}", issuer.issuer),
        },
        action: "token.exchange".into(),
        target: String::new(),
        outcome: "denied".into(),
        reason: f.error.description.clone(),
        request_id: ctx.request_id.clone(),
        details: details(&DeniedDetails {
            error: f.error.code,
            check: f.check,
            grant_type,
            token_sha256: token_hash,
            iss: &said.iss,
            sub,
            aud: &said.aud,
            kid: said.kid.as_deref(),
            client: ctx.client_addr,
        }),
    })
    .await;
}

/// Serialized straight from borrowed fields: one string per exchange, no
/// `Value` tree built and dropped on the hot path.
fn details(d: &impl Serialize) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

/// The audit details of a shadow match.
#[derive(Serialize)]
struct ShadowDetails<'a> {
    grant_type: &'a str,
    issuer: &'a str,
    subject: &'a str,
    account_id: &'a str,
    account: &'a str,
    token_sha256: &'a str,
    /// What the real exchange did: `success` (for another account) or `denied`.
    exchange_outcome: &'a str,
}

/// Records `token.exchange.shadow` for each shadow binding the token matched:
/// the account it would have become, and what the exchange really did.
async fn audit_shadow(
    app: &App,
    ctx: &RequestCtx,
    req: &ExchangeRequest,
    token_hash: &str,
    shadow: &[Arc<BoundAccount>],
    result: &Result<Evaluated, Failure>,
) {
    let (iss, sub, outcome) = match result {
        Ok(ev) => (ev.issuer.issuer.as_str(), ev.claims.sub.as_str(), "success"),
        Err(f) => (
            f.issuer.as_ref().map(|i| i.issuer.as_str()).unwrap_or(""),
            f.verified
                .as_ref()
                .and_then(|v| v.sub.as_deref())
                .unwrap_or(""),
            "denied",
        ),
    };
    for a in shadow {
        let account = a.target_name();
        app.audit_event(AuditEvent {
            org_id: a.org_id.clone(),
            actor: format!("external:{iss}#{}", truncate(sub, 200)),
            action: "token.exchange.shadow".into(),
            target: format!("service_account:{}", a.name),
            outcome: "shadow".into(),
            reason: format!("the token matches {account}, whose binding is in shadow mode: nothing was minted for it"),
            request_id: ctx.request_id.clone(),
            details: details(&ShadowDetails {
                grant_type: &req.grant_type,
                issuer: iss,
                subject: sub,
                account_id: &a.sa_id,
                account: &account,
                token_sha256: token_hash,
                exchange_outcome: outcome,
            }),
        })
        .await;
    }
}

/// `POST /oidc/token`. The span is at debug level: at the default `info`
/// it costs nothing on the hot path.
#[instrument(level = "debug", skip_all, fields(grant = %req.grant_type))]
pub async fn exchange(
    app: &App,
    ctx: &RequestCtx,
    req: ExchangeRequest,
) -> Result<TokenResponse, OAuthError> {
    let now_ms = app.clock.now_ms();
    let now = now_ms.div_euclid(1000);
    let token_hash = sha256_hex(req.token.as_bytes());
    let client_auth = req.grant_type == GRANT_CLIENT_CREDENTIALS;
    let scope = if client_auth {
        client_scope(req.scope.as_deref(), app.signer.issuer())?
    } else {
        req.scope.clone()
    };
    let scopes = match scope.as_deref() {
        None => Scopes::FULL,
        Some(s) => Scopes::parse(s).ok_or_else(|| {
            let hint = if s.contains(',') {
                "; scopes are space-separated (RFC 6749 §3.3), e.g. \"read write\""
            } else {
                ""
            };
            OAuthError::new(
                "invalid_scope",
                format!(
                    "scope {:?} is not a subset of \"read write\"{hint}",
                    truncate(s, 80)
                ),
            )
        })?,
    };
    if !scopes.read && !scopes.write {
        return Err(OAuthError::new(
            "invalid_scope",
            "scope is empty: ask for \"read\", \"write\" or both",
        ));
    }
    let mut trace = Trace::disabled();
    let mut shadow = Vec::new();
    let opts = EvalOptions {
        org_id: None,
        consume_jti: true,
        candidates: None,
        shadow: Some(&mut shadow),
    };
    let result = evaluate(
        app,
        &req.token,
        req.target.as_deref(),
        now,
        &mut trace,
        opts,
    )
    .await;
    if !shadow.is_empty() {
        audit_shadow(app, ctx, &req, &token_hash, &shadow, &result).await;
    }
    let ev = match result {
        Ok(ev) => ev,
        Err(mut f) => {
            if client_auth {
                f.error = client_auth_error(f.error);
            }
            refused(app, ctx, &req.grant_type, &token_hash, &f).await;
            return Err(f.error);
        }
    };
    let (sub, name, kind, org_name, lifetime) = match &ev.subject {
        Subject::Account(a) => (
            a.sa_id.clone(),
            a.name.clone(),
            "service_account",
            a.org_name.clone(),
            app.config.token_ttl_s.min(a.max_token_lifetime_s),
        ),
        Subject::User(u) => (
            u.id.clone(),
            u.username.clone(),
            "user",
            ev.issuer.org_name.clone(),
            app.config.token_ttl_s,
        ),
    };
    let claims = AccessClaims {
        iss: app.signer.issuer().to_string(),
        sub: sub.clone(),
        aud: app.signer.issuer().to_string(),
        exp: now + lifetime,
        iat: now,
        iat_ms: now_ms,
        jti: new_id("at"),
        client_id: sub.clone(),
        org: org_name,
        scope: scopes.to_scope_string(),
        act: Some(Actor {
            iss: ev.claims.iss.clone(),
            sub: ev.claims.sub.clone(),
        }),
    };
    let access_token = app
        .signer
        .mint(&claims)
        .map_err(|e| OAuthError::from(ServiceError::Internal(e.to_string())))?;
    app.audit_event(AuditEvent {
        org_id: ev.issuer.org_id.clone(),
        actor: format!(
            "external:{}#{}",
            ev.issuer.issuer,
            truncate(&ev.claims.sub, 200)
        ),
        action: "token.exchange".into(),
        target: format!("{kind}:{name}"),
        outcome: "success".into(),
        reason: String::new(),
        request_id: ctx.request_id.clone(),
        details: details(&ExchangedDetails {
            grant_type: &req.grant_type,
            issuer: &ev.issuer.issuer,
            subject: &ev.claims.sub,
            account_id: &sub,
            token_sha256: &token_hash,
            minted_jti: &claims.jti,
            scope: &claims.scope,
            expires_in: lifetime,
            client: ctx.client_addr,
        }),
    })
    .await;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: claims.scope,
        issued_token_type: (req.grant_type == GRANT_TOKEN_EXCHANGE)
            .then_some(TOKEN_TYPE_ACCESS_TOKEN),
    })
}

/// `POST /api/v1/orgs/{org}/federation/explain`: the exchange as a dry run,
/// every check with its outcome, for the org's admins.
pub async fn explain(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    token: &str,
    target: Option<&str>,
) -> ServiceResult<Value> {
    let org = app
        .require_org_admin(ctx, p, org, "federation.explain")
        .await?;
    let mut trace = Trace::new();
    let mut candidates = Vec::new();
    let mut shadow = Vec::new();
    let opts = EvalOptions {
        org_id: Some(&org.id),
        consume_jti: false,
        candidates: Some(&mut candidates),
        shadow: Some(&mut shadow),
    };
    let result = evaluate(
        app,
        token.trim(),
        target,
        app.clock.now_s(),
        &mut trace,
        opts,
    )
    .await;
    let (outcome, issuer, matched, error) = match &result {
        Ok(ev) => (
            "would_succeed",
            Some(ev.issuer.id.clone()),
            Some(match &ev.subject {
                Subject::Account(a) => {
                    json!({"kind": "service_account", "id": a.sa_id, "name": a.target_name()})
                }
                Subject::User(u) => json!({"kind": "user", "id": u.id, "name": u.username}),
            }),
            None,
        ),
        Err(f) => (
            "would_fail",
            f.issuer.as_ref().map(|i| i.id.clone()),
            None,
            Some(json!({"error": f.error.code, "error_description": f.error.description})),
        ),
    };
    Ok(json!({
        "outcome": outcome,
        "issuer_id": issuer,
        "checks": trace,
        "candidates": candidates,
        "matched": matched,
        "shadow_matches": shadow
            .iter()
            .map(|a| json!({"kind": "service_account", "id": a.sa_id, "name": a.target_name(), "mode": "shadow"}))
            .collect::<Vec<_>>(),
        "error": error,
    }))
}

/// Checks the caller's credential and answers RFC 7662 for `token`.
pub async fn introspect(app: &App, ctx: &RequestCtx, caller: &Principal, token: &str) -> Value {
    let cred = crate::service::auth::Credential::parse(token);
    let Ok(a) = crate::service::auth::authenticate(app, ctx, &cred).await else {
        return json!({"active": false});
    };
    if a.principal.org_id != caller.org_id {
        return json!({"active": false});
    }
    let p = &a.principal;
    let mut out = json!({
        "active": true,
        "sub": p.id,
        "username": p.name,
        "org": p.org_name,
        "scope": p.scopes.to_scope_string(),
        "principal_kind": p.kind_str(),
    });
    match &a.via {
        crate::service::auth::Via::AccessToken { claims: c } => {
            out["iss"] = json!(c.iss);
            out["aud"] = json!(c.aud);
            out["iat"] = json!(c.iat);
            out["client_id"] = json!(c.client_id);
            if let Some(act) = &c.act {
                out["act"] = json!(act);
            }
            out["jti"] = json!(c.jti);
            out["exp"] = json!(c.exp);
            out["token_type"] = json!("Bearer");
        }
        crate::service::auth::Via::ApiKey { key_id } => {
            out["token_type"] = json!("api_key");
            out["key_id"] = json!(key_id);
        }
    }
    out
}
