//! Administration: organizations, users, teams, service accounts, API keys,
//! the audit log. Every change is audited; every denial too.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::instrument;

use crate::audit::AuditEvent;
use crate::authz::{AdminTarget, Decision, decide_admin};
use crate::clock::rfc3339;
use crate::model::{OrgRole, Principal, Role, SaScope, TeamRef, check_email, check_name};
use crate::secrets::{Secret, key_prefix, new_api_key, new_id, sha256_hex};
use crate::service::{
    MAX_PAGE_SIZE, Page, RequestCtx, ServiceError, ServiceResult, conflict, next_after,
};
use crate::state::{App, Change};
use crate::store::{
    ApiKeyRow, AuditFilter, AuditRow, OrgRow, SaListRow, SaRow, StoreTx, TeamRow, UserRow,
};

/// Default and ceiling for a service account's minted-token lifetime.
pub const DEFAULT_SA_MAX_LIFETIME_S: i64 = 3600;
const MAX_SA_MAX_LIFETIME_S: i64 = 12 * 3600;

// ---------------------------------------------------------------- helpers

impl App {
    /// Queues an audit event stamped now.
    pub async fn audit_event(&self, e: AuditEvent) {
        self.audit.record(e, self.clock.now_ms()).await;
    }

    /// Turns a decision into `Ok` or an audited error.
    pub async fn enforce(
        &self,
        ctx: &RequestCtx,
        p: &Principal,
        action: &str,
        target: &str,
        d: Decision,
    ) -> ServiceResult<()> {
        if d.allowed() {
            return Ok(());
        }
        self.audit_event(AuditEvent {
            org_id: p.org_id.clone(),
            actor: actor(p),
            action: action.to_string(),
            target: target.to_string(),
            outcome: "denied".into(),
            reason: d.reason.clone(),
            request_id: ctx.request_id.clone(),
            details: json!({ "rule": d.rule }).to_string(),
        })
        .await;
        Err(ServiceError::from_decision(d))
    }

    /// Stores a successful admin change's audit event in the change's own
    /// transaction `tx`: committed together, so no acknowledged change is
    /// missing from the audit log, even after a crash. Every admin change
    /// goes through this (exchanges and denials are queued instead).
    pub async fn audit_change_in(
        &self,
        tx: &mut dyn StoreTx,
        ctx: &RequestCtx,
        p: &Principal,
        action: &str,
        target: &str,
        mut details: serde_json::Value,
    ) -> ServiceResult<()> {
        if let (Some(ip), Some(obj)) = (ctx.client_addr, details.as_object_mut()) {
            obj.insert("client".into(), json!(ip.to_string()));
        }
        let row = AuditEvent {
            org_id: p.org_id.clone(),
            actor: actor(p),
            action: action.to_string(),
            target: target.to_string(),
            outcome: "success".into(),
            reason: String::new(),
            request_id: ctx.request_id.clone(),
            details: details.to_string(),
        }
        .stamp(self.clock.now_ms());
        tx.insert_audit(std::slice::from_ref(&row)).await?;
        Ok(())
    }

    /// The org named `org`, if `p` is one of its admins (404 for another
    /// org's, an audited 403 otherwise).
    pub async fn require_org_admin(
        &self,
        ctx: &RequestCtx,
        p: &Principal,
        org: &str,
        action: &str,
    ) -> ServiceResult<OrgRow> {
        let org = self.org_of(p, org).await?;
        let d = decide_admin(
            p,
            AdminTarget::Org {
                org_id: &org.id,
                org_name: &org.name,
            },
        );
        self.enforce(ctx, p, action, &format!("org:{}", org.name), d)
            .await?;
        Ok(org)
    }

    /// The team named `team`, if `p` administers it (team or org admin).
    pub async fn require_team_admin(
        &self,
        ctx: &RequestCtx,
        p: &Principal,
        team: &str,
        action: &str,
    ) -> ServiceResult<TeamRow> {
        let team = self.team_of(p, team).await?;
        let tref = team_ref(&team);
        let d = decide_admin(
            p,
            AdminTarget::Team {
                org_id: &team.org_id,
                team: &tref,
            },
        );
        self.enforce(ctx, p, action, &format!("team:{}", team.name), d)
            .await?;
        Ok(team)
    }

    /// The org named `name`, if the principal belongs to it; 404 otherwise.
    pub async fn org_of(&self, p: &Principal, name: &str) -> ServiceResult<OrgRow> {
        match self.store.org_by_name(name).await? {
            Some(org) if org.id == p.org_id => Ok(org),
            _ => Err(ServiceError::NotFound(format!(
                "organization \"{}\" not found",
                crate::model::truncate(name, 64)
            ))),
        }
    }

    /// The team named `name` in the principal's org; 404 otherwise.
    pub async fn team_of(&self, p: &Principal, name: &str) -> ServiceResult<TeamRow> {
        match self.store.team_by_name(name).await? {
            Some(t) if t.org_id == p.org_id => Ok(t),
            _ => Err(ServiceError::NotFound(format!(
                "team \"{}\" not found",
                crate::model::truncate(name, 64)
            ))),
        }
    }
}

/// How the audit log names an actor: `user:alice` or `service_account:ci-bot`.
pub fn actor(p: &Principal) -> String {
    format!("{}:{}", p.kind_str(), p.name)
}

pub(crate) fn team_ref(t: &TeamRow) -> TeamRef {
    TeamRef {
        id: t.id.clone(),
        name: t.name.clone(),
    }
}

// ---------------------------------------------------------------- users

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    #[serde(default = "member")]
    pub role: OrgRole,
}

fn member() -> OrgRole {
    OrgRole::Member
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserOut {
    pub id: String,
    pub username: String,
    pub email: String,
    pub role: String,
    /// A disabled person's every credential is refused.
    pub disabled: bool,
    pub created_at: String,
}

impl From<UserRow> for UserOut {
    fn from(u: UserRow) -> Self {
        UserOut {
            id: u.id,
            username: u.username,
            email: u.email,
            role: u.role,
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

/// Creates a user in `org` (org admins).
#[instrument(skip_all, fields(org = %org))]
pub async fn create_user(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    req: NewUser,
) -> ServiceResult<UserOut> {
    let org = app.require_org_admin(ctx, p, org, "user.create").await?;
    check_name("user", &req.username).map_err(ServiceError::BadRequest)?;
    check_email(&req.email).map_err(ServiceError::BadRequest)?;
    let row = UserRow {
        id: new_id("u"),
        org_id: org.id.clone(),
        username: req.username.clone(),
        email: req.email.to_ascii_lowercase(),
        role: req.role.as_str().into(),
        created_at: app.clock.now_ms(),
        disabled: false,
        revoked_before: 0,
    };
    let mut tx = app.store.begin().await?;
    tx.insert_user(&row)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!(
            "a user named \"{}\" or with that email",
            req.username
        )))?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "user.create",
        &format!("user:{}", row.username),
        json!({"role": row.role}),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKeyOut {
    pub id: String,
    /// Shown once; fedgate keeps only its SHA-256.
    pub api_key: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<ApiKeyRow> for KeyInfo {
    fn from(k: ApiKeyRow) -> Self {
        KeyInfo {
            id: k.id,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}

/// Creates and stores (in `tx`) a key for `owner_id`; returns the secret, once.
pub(crate) async fn mint_key(
    app: &App,
    tx: &mut dyn StoreTx,
    owner_id: &str,
    owner_kind: &str,
) -> ServiceResult<(String, Secret)> {
    let secret = new_api_key();
    let row = ApiKeyRow {
        id: new_id("key"),
        owner_id: owner_id.to_string(),
        owner_kind: owner_kind.to_string(),
        prefix: key_prefix(secret.expose()),
        secret_hash: sha256_hex(secret.expose().as_bytes()),
        created_at: app.clock.now_ms(),
        last_used_at: None,
        revoked_at: None,
    };
    tx.insert_api_key(&row).await?;
    Ok((row.id, secret))
}

/// Whether `p` may manage the keys of user `u`: the user itself or an org admin.
async fn user_key_target(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
) -> ServiceResult<UserRow> {
    let user = match app.store.user_by_username(username).await? {
        Some(u) if u.org_id == p.org_id => u,
        _ => {
            return Err(ServiceError::NotFound(format!(
                "user \"{}\" not found",
                crate::model::truncate(username, 64)
            )));
        }
    };
    if user.id != p.id {
        app.require_org_admin(ctx, p, &p.org_name, "api_key.manage")
            .await?;
    } else if !p.scopes.write {
        return Err(ServiceError::Forbidden {
            rule: "credential.scope",
            reason: "this credential is read-only and cannot manage API keys".into(),
        });
    }
    Ok(user)
}

/// Creates an API key for a user (that user, or an org admin).
#[instrument(skip_all)]
pub async fn create_user_key(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
) -> ServiceResult<NewKeyOut> {
    let user = user_key_target(app, ctx, p, username).await?;
    let mut tx = app.store.begin().await?;
    let (id, secret) = mint_key(app, &mut *tx, &user.id, "user").await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "api_key.create",
        &format!("user:{}", user.username),
        json!({"key_id": id}),
    )
    .await?;
    tx.commit().await?;
    Ok(NewKeyOut {
        id,
        api_key: secret.expose().to_string(),
    })
}

/// Lists a user's keys, never the secrets.
pub async fn list_user_keys(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
) -> ServiceResult<Vec<KeyInfo>> {
    let user = user_key_target(app, ctx, p, username).await?;
    Ok(app
        .store
        .api_keys_of(&user.id)
        .await?
        .into_iter()
        .map(KeyInfo::from)
        .collect())
}

/// Revokes one of a user's keys, effective at once.
pub async fn revoke_user_key(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
    key_id: &str,
) -> ServiceResult<()> {
    let user = user_key_target(app, ctx, p, username).await?;
    revoke_key(
        app,
        ctx,
        p,
        &user.id,
        &format!("user:{}", user.username),
        key_id,
    )
    .await
}

async fn revoke_key(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    owner_id: &str,
    target: &str,
    key_id: &str,
) -> ServiceResult<()> {
    let mut tx = app.store.begin().await?;
    if !tx
        .revoke_api_key(owner_id, key_id, app.clock.now_ms())
        .await?
    {
        return Err(ServiceError::NotFound(format!(
            "no live API key \"{}\" for {target}",
            crate::model::truncate(key_id, 64)
        )));
    }
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "api_key.revoke",
        target,
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::ApiKeys).await;
    Ok(())
}

/// Whether the rules let `p` administer the org named `org` (no audit: the
/// console asks this to decide which forms to show; the service functions
/// still decide each request).
pub async fn may_admin_org(app: &App, p: &Principal, org: &str) -> ServiceResult<bool> {
    let org = app.org_of(p, org).await?;
    Ok(decide_admin(
        p,
        AdminTarget::Org {
            org_id: &org.id,
            org_name: &org.name,
        },
    )
    .allowed())
}

/// Whether the rules let `p` administer the team named `team` (no audit).
pub async fn may_admin_team(app: &App, p: &Principal, team: &str) -> ServiceResult<bool> {
    let team = app.team_of(p, team).await?;
    let tref = team_ref(&team);
    Ok(decide_admin(
        p,
        AdminTarget::Team {
            org_id: &team.org_id,
            team: &tref,
        },
    )
    .allowed())
}

// ---------------------------------------------------------------- teams

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamOut {
    pub id: String,
    pub name: String,
    pub org: String,
}

/// Creates a team (org admins). Team names are unique in the instance: they are the entity in paths.
#[instrument(skip_all, fields(org = %org))]
pub async fn create_team(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    req: NewTeam,
) -> ServiceResult<TeamOut> {
    let org = app.require_org_admin(ctx, p, org, "team.create").await?;
    crate::model::check_team_name(&req.name).map_err(ServiceError::BadRequest)?;
    let row = TeamRow {
        id: new_id("team"),
        org_id: org.id.clone(),
        name: req.name.clone(),
        created_at: app.clock.now_ms(),
    };
    let mut tx = app.store.begin().await?;
    tx.insert_team(&row)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!("a team named \"{}\"", req.name)))?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "team.create",
        &format!("team:{}", row.name),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(TeamOut {
        id: row.id,
        name: row.name,
        org: org.name,
    })
}

/// One page of teams and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamPage {
    pub teams: Vec<TeamOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Lists the org's teams by name, a page at a time (any member of the org):
/// one query per page.
pub async fn list_teams_page(
    app: &App,
    p: &Principal,
    org: &str,
    page: &Page,
) -> ServiceResult<TeamPage> {
    let org = app.org_of(p, org).await?;
    let limit = page.limit()?;
    let rows = app.store.teams_page(&org.id, page.after(), limit).await?;
    let next_after = next_after(&rows, limit, |t| &t.name);
    Ok(TeamPage {
        teams: rows
            .into_iter()
            .map(|t| TeamOut {
                id: t.id,
                name: t.name,
                org: org.name.clone(),
            })
            .collect(),
        next_after,
    })
}

/// Every team of the org, following the pages of [`list_teams_page`].
pub async fn list_teams(app: &App, p: &Principal, org: &str) -> ServiceResult<Vec<TeamOut>> {
    let mut out = Vec::new();
    let mut page = Page {
        limit: Some(MAX_PAGE_SIZE),
        after: None,
    };
    loop {
        let got = list_teams_page(app, p, org, &page).await?;
        out.extend(got.teams);
        match got.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub username: String,
    #[serde(default = "member_role")]
    pub role: Role,
}

fn member_role() -> Role {
    Role::Member
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberOut {
    pub team: String,
    pub username: String,
    pub role: String,
}

/// Adds a user to a team or changes their role (team admins, org admins).
#[instrument(skip_all, fields(team = %team))]
pub async fn add_team_member(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    req: NewMember,
) -> ServiceResult<MemberOut> {
    let team = app
        .require_team_admin(ctx, p, team, "team.member.add")
        .await?;
    let user = match app.store.user_by_username(&req.username).await? {
        Some(u) if u.org_id == team.org_id => u,
        _ => {
            return Err(ServiceError::BadRequest(format!(
                "user \"{}\" does not exist in this organization",
                crate::model::truncate(&req.username, 64)
            )));
        }
    };
    let mut tx = app.store.begin().await?;
    tx.upsert_team_member(&team.id, &user.id, req.role.as_str(), app.clock.now_ms())
        .await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "team.member.add",
        &format!("team:{}", team.name),
        json!({"username": user.username, "role": req.role.as_str()}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Principal(user.id.clone())).await;
    Ok(MemberOut {
        team: team.name,
        username: user.username,
        role: req.role.as_str().into(),
    })
}

/// One page of a team's members and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MemberPage {
    pub members: Vec<MemberOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Lists a team's members by username, a page at a time (any member of the
/// org): one query per page.
pub async fn list_team_members_page(
    app: &App,
    p: &Principal,
    team: &str,
    page: &Page,
) -> ServiceResult<MemberPage> {
    let team = app.team_of(p, team).await?;
    let limit = page.limit()?;
    let rows = app
        .store
        .team_members_page(&team.id, page.after(), limit)
        .await?;
    let next_after = next_after(&rows, limit, |m| &m.username);
    Ok(MemberPage {
        members: rows
            .into_iter()
            .map(|m| MemberOut {
                team: m.team_name,
                username: m.username,
                role: m.role,
            })
            .collect(),
        next_after,
    })
}

/// Every member of a team, following the pages of [`list_team_members_page`].
pub async fn list_team_members(
    app: &App,
    p: &Principal,
    team: &str,
) -> ServiceResult<Vec<MemberOut>> {
    let mut out = Vec::new();
    let mut page = Page {
        limit: Some(MAX_PAGE_SIZE),
        after: None,
    };
    loop {
        let got = list_team_members_page(app, p, team, &page).await?;
        out.extend(got.members);
        match got.next_after {
            Some(after) => page.after = Some(after),
            None => return Ok(out),
        }
    }
}

// ---------------------------------------------------------------- service accounts

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrgSa {
    pub name: String,
    pub default_team: Option<String>,
    pub max_token_lifetime_s: Option<i64>,
    /// Free text shown to admins (≤ 512 characters).
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTeamSa {
    pub name: String,
    #[serde(default = "builtin")]
    pub auth: String,
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub subject_pattern: Option<String>,
    /// Org admins only: accept a `subject_pattern` wider than one owner
    /// (audited with the pattern).
    pub allow_broad_subject_pattern: Option<bool>,
    /// Values: strings (exact or glob), numbers or booleans.
    #[serde(default, deserialize_with = "crate::federation::policy::scalar_claims")]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<std::collections::BTreeMap<String, String>>,
    pub max_token_lifetime_s: Option<i64>,
    /// Free text shown to admins (≤ 512 characters).
    pub description: Option<String>,
    /// `enforce` (default) or `shadow`: a shadow binding's matches are
    /// audited (`token.exchange.shadow`) and mint nothing.
    pub mode: Option<String>,
}

fn builtin() -> String {
    "builtin".into()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SaOut {
    pub id: String,
    pub name: String,
    pub org: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    pub auth: String,
    pub disabled: bool,
    pub max_token_lifetime_s: i64,
    pub description: String,
    pub created_at: String,
    /// External accounts only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<BindingOut>,
    /// Only in the creation answer of a built-in account: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// An external account's binding as admins see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BindingOut {
    pub issuer_id: String,
    /// The issuer's URL (`iss`).
    pub issuer: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_pattern: Option<String>,
    pub claims: std::collections::BTreeMap<String, String>,
    /// Set (only) when an org admin opted the pattern out of the owner
    /// boundary; shown so a reviewer sees the wide trust.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_broad_subject_pattern: bool,
    /// `enforce` or `shadow`.
    pub mode: String,
}

/// The binding's answer form; the issuer URL comes from the in-memory index.
pub fn binding_out(app: &App, issuer_id: &str, spec: &str, mode: &str) -> BindingOut {
    let spec: crate::federation::policy::BindingSpec =
        serde_json::from_str(spec).unwrap_or_default();
    BindingOut {
        issuer_id: issuer_id.to_string(),
        issuer: app
            .index
            .issuer(issuer_id)
            .map(|i| i.issuer.clone())
            .unwrap_or_default(),
        subject: spec.subject,
        subject_pattern: spec.subject_pattern,
        claims: spec.claims,
        allow_broad_subject_pattern: spec.allow_broad_subject_pattern,
        mode: mode.to_string(),
    }
}

/// Checks a description: at most 512 characters, no control characters.
pub(crate) fn check_description(d: Option<String>) -> ServiceResult<String> {
    let d = d.unwrap_or_default();
    if d.chars().count() > 512 || d.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(
            "description must be at most 512 characters, without control characters".into(),
        ));
    }
    Ok(d)
}

pub(crate) fn check_lifetime(v: Option<i64>) -> ServiceResult<i64> {
    let v = v.unwrap_or(DEFAULT_SA_MAX_LIFETIME_S);
    if (60..=MAX_SA_MAX_LIFETIME_S).contains(&v) {
        Ok(v)
    } else {
        Err(ServiceError::BadRequest(format!(
            "max_token_lifetime_s must be between 60 and {MAX_SA_MAX_LIFETIME_S}, got {v}"
        )))
    }
}

/// Builds the answer for a stored account.
pub async fn sa_out(
    app: &App,
    sa: &SaRow,
    org_name: &str,
    api_key: Option<String>,
) -> ServiceResult<SaOut> {
    let team = app
        .store
        .team_by_id(&sa.team_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default();
    let binding = if sa.auth == "external" {
        app.store
            .binding_of(&sa.id)
            .await?
            .map(|b| binding_out(app, &b.issuer_id, &b.spec, &b.mode))
    } else {
        None
    };
    Ok(sa_out_with(sa, org_name, team, binding, api_key))
}

/// The answer for an account whose team name and binding are known.
pub fn sa_out_with(
    sa: &SaRow,
    org_name: &str,
    team: String,
    binding: Option<BindingOut>,
    api_key: Option<String>,
) -> SaOut {
    let org_scoped = sa.scope == "org";
    SaOut {
        id: sa.id.clone(),
        name: sa.name.clone(),
        org: org_name.to_string(),
        scope: sa.scope.clone(),
        default_team: org_scoped.then(|| team.clone()),
        team: (!org_scoped).then_some(team),
        auth: sa.auth.clone(),
        disabled: sa.disabled,
        max_token_lifetime_s: sa.max_token_lifetime_s,
        description: sa.description.clone(),
        created_at: rfc3339(sa.created_at),
        binding,
        api_key,
    }
}

/// Creates an org-scoped built-in account (org admins); it needs a default team.
#[instrument(skip_all, fields(org = %org))]
pub async fn create_org_sa(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    req: NewOrgSa,
) -> ServiceResult<SaOut> {
    let org = app
        .require_org_admin(ctx, p, org, "service_account.create")
        .await?;
    check_name("service account", &req.name).map_err(ServiceError::BadRequest)?;
    let Some(default_team) = req.default_team.as_deref() else {
        return Err(ServiceError::BadRequest(
            "an org-scoped service account needs a default team: set \"default_team\" to a team of the organization (its runs go there when no entity is given)".into(),
        ));
    };
    let team = match app.store.team_by_name(default_team).await? {
        Some(t) if t.org_id == org.id => t,
        _ => {
            return Err(ServiceError::BadRequest(format!(
                "default_team \"{}\" is not a team of organization \"{}\"",
                crate::model::truncate(default_team, 64),
                org.name
            )));
        }
    };
    let lifetime = check_lifetime(req.max_token_lifetime_s)?;
    let description = check_description(req.description)?;
    let row = SaRow {
        id: new_id("sa"),
        org_id: org.id.clone(),
        name: req.name.clone(),
        scope: "org".into(),
        team_id: team.id.clone(),
        auth: "builtin".into(),
        disabled: false,
        revoked_before: 0,
        max_token_lifetime_s: lifetime,
        created_at: app.clock.now_ms(),
        description,
    };
    let mut tx = app.store.begin().await?;
    tx.insert_service_account(&row, None)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!(
            "a service account named \"{}\"",
            req.name
        )))?;
    let (key_id, secret) = mint_key(app, &mut *tx, &row.id, "service_account").await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "service_account.create",
        &format!("service_account:{}", row.name),
        json!({"scope": "org", "default_team": team.name, "auth": "builtin", "key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    sa_out(app, &row, &org.name, Some(secret.expose().to_string())).await
}

/// Creates a team-scoped account, built-in or external (team admins, org admins).
#[instrument(skip_all, fields(team = %team))]
pub async fn create_team_sa(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    req: NewTeamSa,
) -> ServiceResult<SaOut> {
    let team = app
        .require_team_admin(ctx, p, team, "service_account.create")
        .await?;
    check_name("service account", &req.name).map_err(ServiceError::BadRequest)?;
    let lifetime = check_lifetime(req.max_token_lifetime_s)?;
    let description = check_description(req.description.clone())?;
    let org = app
        .store
        .org_by_id(&team.org_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("team without org".into()))?;
    let id = new_id("sa");
    let binding = match req.auth.as_str() {
        "builtin" => {
            if req.issuer.is_some()
                || req.subject.is_some()
                || req.subject_pattern.is_some()
                || req.allow_broad_subject_pattern.is_some()
                || req.claims.is_some()
                || req.mode.is_some()
            {
                return Err(ServiceError::BadRequest(
                    "issuer, subject, subject_pattern, claims and mode are for auth \"external\"; a built-in account uses API keys".into(),
                ));
            }
            None
        }
        "external" => Some(crate::service::federation::binding_for(app, p, &org, &id, &req).await?),
        other => {
            return Err(ServiceError::BadRequest(format!(
                "auth must be \"builtin\" or \"external\", got {:?}",
                crate::model::truncate(other, 32)
            )));
        }
    };
    let row = SaRow {
        id,
        org_id: org.id.clone(),
        name: req.name.clone(),
        scope: "team".into(),
        team_id: team.id.clone(),
        auth: req.auth.clone(),
        disabled: false,
        revoked_before: 0,
        max_token_lifetime_s: lifetime,
        created_at: app.clock.now_ms(),
        description,
    };
    let mut tx = app.store.begin().await?;
    tx.insert_service_account(&row, binding.as_ref())
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!(
            "a service account named \"{}\"",
            req.name
        )))?;
    let api_key = if binding.is_none() {
        let (key_id, secret) = mint_key(app, &mut *tx, &row.id, "service_account").await?;
        tracing::debug!(%key_id, "created first key");
        Some(secret.expose().to_string())
    } else {
        None
    };
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "service_account.create",
        &format!("service_account:{}", row.name),
        json!({
            "scope": "team",
            "team": team.name,
            "auth": row.auth,
            "subject_pattern": req.subject_pattern,
            "allow_broad_subject_pattern": req.allow_broad_subject_pattern.unwrap_or(false),
        }),
    )
    .await?;
    tx.commit().await?;
    if binding.is_some() {
        app.changed(Change::ExternalAccount(row.id.clone())).await;
    }
    sa_out(app, &row, &org.name, api_key).await
}

/// One page of accounts and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SaPage {
    pub service_accounts: Vec<SaOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Builds a page from rows read in one query (no lookup per row).
fn sa_page(app: &App, org_name: &str, rows: Vec<SaListRow>, limit: i64) -> SaPage {
    let next_after = next_after(&rows, limit, |r| &r.sa.name);
    let service_accounts = rows
        .into_iter()
        .map(|r| {
            let binding = match (&r.binding_issuer_id, &r.binding_spec) {
                (Some(i), Some(spec)) => Some(binding_out(
                    app,
                    i,
                    spec,
                    r.binding_mode.as_deref().unwrap_or("enforce"),
                )),
                _ => None,
            };
            sa_out_with(&r.sa, org_name, r.team_name, binding, None)
        })
        .collect();
    SaPage {
        service_accounts,
        next_after,
    }
}

/// Lists the org's accounts by name, a page at a time (org admins).
pub async fn list_org_sas(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    page: &Page,
) -> ServiceResult<SaPage> {
    let org = app
        .require_org_admin(ctx, p, org, "service_account.list")
        .await?;
    let limit = page.limit()?;
    let rows = app
        .store
        .service_accounts_page(&org.id, None, page.after(), limit)
        .await?;
    Ok(sa_page(app, &org.name, rows, limit))
}

/// Lists a team's team-scoped accounts by name, a page at a time (team admins, org admins).
pub async fn list_team_sas(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    page: &Page,
) -> ServiceResult<SaPage> {
    let team = app
        .require_team_admin(ctx, p, team, "service_account.list")
        .await?;
    let limit = page.limit()?;
    let rows = app
        .store
        .service_accounts_page(&team.org_id, Some(&team.id), page.after(), limit)
        .await?;
    Ok(sa_page(app, &p.org_name, rows, limit))
}

/// Loads an account of the principal's org and checks `p` administers its scope.
pub(crate) async fn sa_admin_target(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
    action: &str,
) -> ServiceResult<SaRow> {
    let sa = match app.store.service_account_by_id(id).await? {
        Some(sa) if sa.org_id == p.org_id => sa,
        _ => {
            return Err(ServiceError::NotFound(format!(
                "service account \"{}\" not found",
                crate::model::truncate(id, 64)
            )));
        }
    };
    let team = app
        .store
        .team_by_id(&sa.team_id)
        .await?
        .ok_or_else(|| ServiceError::Internal("service account without team".into()))?;
    let scope = if sa.scope == "org" {
        SaScope::Org {
            default_team: team_ref(&team),
        }
    } else {
        SaScope::Team {
            team: team_ref(&team),
        }
    };
    let d = decide_admin(
        p,
        AdminTarget::ServiceAccount {
            org_id: &sa.org_id,
            name: &sa.name,
            scope: &scope,
        },
    );
    app.enforce(ctx, p, action, &format!("service_account:{}", sa.name), d)
        .await?;
    Ok(sa)
}

/// Creates another API key for a built-in account (rotation).
pub async fn create_sa_key(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
) -> ServiceResult<NewKeyOut> {
    let sa = sa_admin_target(app, ctx, p, id, "api_key.create").await?;
    if sa.auth != "builtin" {
        return Err(ServiceError::BadRequest(format!(
            "service account \"{}\" is external: it authenticates by token exchange and never has API keys",
            sa.name
        )));
    }
    let mut tx = app.store.begin().await?;
    let (key_id, secret) = mint_key(app, &mut *tx, &sa.id, "service_account").await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "api_key.create",
        &format!("service_account:{}", sa.name),
        json!({"key_id": key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(NewKeyOut {
        id: key_id,
        api_key: secret.expose().to_string(),
    })
}

/// Lists an account's keys, never the secrets.
pub async fn list_sa_keys(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
) -> ServiceResult<Vec<KeyInfo>> {
    let sa = sa_admin_target(app, ctx, p, id, "api_key.list").await?;
    Ok(app
        .store
        .api_keys_of(&sa.id)
        .await?
        .into_iter()
        .map(KeyInfo::from)
        .collect())
}

/// Revokes one key of an account, effective at once on every replica.
pub async fn revoke_sa_key(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
    key_id: &str,
) -> ServiceResult<()> {
    let sa = sa_admin_target(app, ctx, p, id, "api_key.revoke").await?;
    revoke_key(
        app,
        ctx,
        p,
        &sa.id,
        &format!("service_account:{}", sa.name),
        key_id,
    )
    .await
}

/// Disables or enables an account. Disabling also moves its revocation
/// watermark, so keys and tokens issued before it stay dead after a re-enable.
pub async fn set_sa_disabled(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    id: &str,
    disabled: bool,
) -> ServiceResult<SaOut> {
    let action = if disabled {
        "service_account.disable"
    } else {
        "service_account.enable"
    };
    let sa = sa_admin_target(app, ctx, p, id, action).await?;
    let mut tx = app.store.begin().await?;
    tx.set_service_account_disabled(&sa.id, disabled, app.clock.now_ms())
        .await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        action,
        &format!("service_account:{}", sa.name),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    if sa.auth == "external" {
        app.changed(Change::ExternalAccount(sa.id.clone())).await;
    } else {
        app.changed(Change::Principal(sa.id.clone())).await;
    }
    let sa = app
        .store
        .service_account_by_id(&sa.id)
        .await?
        .ok_or_else(|| ServiceError::NotFound("service account not found".into()))?;
    sa_out(app, &sa, &p.org_name, None).await
}

// ---------------------------------------------------------------- audit

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditOut {
    pub seq: i64,
    pub id: String,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub reason: String,
    /// fedgate's own id of the request.
    pub request_id: String,
    /// The caller's `X-Request-Id`, if it sent one (empty otherwise).
    pub client_request_id: String,
    pub details: serde_json::Value,
}

impl From<AuditRow> for AuditOut {
    fn from(r: AuditRow) -> Self {
        let e = r.event;
        AuditOut {
            seq: r.seq,
            id: e.id,
            time: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            reason: e.reason,
            request_id: e.request_id,
            client_request_id: e.client_request_id,
            details: serde_json::from_str(&e.details).unwrap_or_default(),
        }
    }
}

/// The org's audit events after `after` (a `seq`), oldest first (org admins).
pub async fn list_audit(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    after: Option<i64>,
    limit: Option<i64>,
) -> ServiceResult<Vec<AuditOut>> {
    list_audit_filtered(app, ctx, p, org, &AuditFilter::default(), after, limit).await
}

/// Like [`list_audit`], keeping the events whose actor, action and outcome
/// match the filter's non-empty fields.
pub async fn list_audit_filtered(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    filter: &AuditFilter,
    after: Option<i64>,
    limit: Option<i64>,
) -> ServiceResult<Vec<AuditOut>> {
    let org = app.require_org_admin(ctx, p, org, "audit.read").await?;
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ServiceError::BadRequest(format!(
            "limit must be between 1 and 1000, got {limit}"
        )));
    }
    // Events this replica queued are written before they are read back.
    app.audit.flush().await;
    Ok(app
        .store
        .audit_of_org_filtered(&org.id, after.unwrap_or(0), limit, filter)
        .await?
        .into_iter()
        .map(AuditOut::from)
        .collect())
}

// ---------------------------------------------------------------- bootstrap

/// What `fedgate bootstrap` prints.
#[derive(Debug, Serialize)]
pub struct Bootstrapped {
    pub org: String,
    pub username: String,
    pub api_key: String,
}

/// Creates an organization with its first admin and that admin's key.
pub async fn bootstrap(
    app: &App,
    org: &str,
    username: &str,
    email: &str,
) -> ServiceResult<Bootstrapped> {
    check_name("organization", org).map_err(ServiceError::BadRequest)?;
    check_name("user", username).map_err(ServiceError::BadRequest)?;
    check_email(email).map_err(ServiceError::BadRequest)?;
    // An organization's name (and its URL form) picks it as a token
    // audience; one another organization already accepts stays theirs.
    for aud in crate::federation::tenant::reserved_audiences(org, &app.config.public_url) {
        if app.index.audience_in_use(&aud) {
            return Err(ServiceError::Conflict(format!(
                "organization name \"{org}\" is already an audience another organization's trusted issuer accepts ({aud:?}); an organization's name is reserved to it as an audience, so choose another name"
            )));
        }
    }
    let now = app.clock.now_ms();
    let org_row = OrgRow {
        id: new_id("org"),
        name: org.to_string(),
        created_at: now,
    };
    // One transaction: an org is never left without its admin, its key or
    // the audit event.
    let mut tx = app.store.begin().await?;
    tx.insert_org(&org_row)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!("organization \"{org}\"")))?;
    let user = UserRow {
        id: new_id("u"),
        org_id: org_row.id.clone(),
        username: username.to_string(),
        email: email.to_ascii_lowercase(),
        role: "admin".into(),
        created_at: now,
        disabled: false,
        revoked_before: 0,
    };
    tx.insert_user(&user)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!("user \"{username}\" or email {email:?}")))?;
    let (key_id, secret) = mint_key(app, &mut *tx, &user.id, "user").await?;
    let event = AuditEvent {
        org_id: org_row.id.clone(),
        actor: "system:bootstrap".into(),
        action: "org.bootstrap".into(),
        target: format!("org:{org}"),
        outcome: "success".into(),
        reason: String::new(),
        request_id: String::new(),
        details: json!({"admin": username, "key_id": key_id}).to_string(),
    }
    .stamp(now);
    tx.insert_audit(std::slice::from_ref(&event)).await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        org: org.to_string(),
        username: username.to_string(),
        api_key: secret.expose().to_string(),
    })
}
