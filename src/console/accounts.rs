//! The Service Accounts tabs: the org dashboard's (`/org/<org>`, org-scoped
//! accounts, org admins) and a team's (`/<team>/service-accounts`, team-scoped
//! accounts, built-in or Federated Identity). Rows offer what the API offers:
//! Disable/Enable, Create API key, Revoke. A new key is shown once, in the
//! read-only "New API key" field beside "Copy API key".

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{Layout, Outcome, error_page, render_status};
use crate::service::admin::{self, KeyInfo, NewOrgSa, NewTeamSa, SaOut};
use crate::service::{Page, ServiceError, ServiceResult};
use crate::state::{App, AppState};

/// A key as a row shows it.
pub struct KeyView {
    pub id: String,
    pub prefix: String,
    pub status: String,
    pub revoked: bool,
}

/// A service account as a row shows it.
pub struct SaView {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub auth: String,
    pub binding: Option<String>,
    pub enabled: bool,
    pub builtin: bool,
    pub keys: Vec<KeyView>,
    /// Just created: shown once.
    pub new_key: Option<String>,
    pub can_admin: bool,
}

fn key_view(k: KeyInfo) -> KeyView {
    let status = match (&k.revoked_at, &k.last_used_at) {
        (Some(at), _) => format!("revoked {at}"),
        (None, Some(used)) => format!("active, created {}, last used {used}", k.created_at),
        (None, None) => format!("active, created {}, never used", k.created_at),
    };
    KeyView {
        id: k.id,
        prefix: k.prefix,
        status,
        revoked: k.revoked_at.is_some(),
    }
}

async fn sa_view(
    app: &App,
    c: &Console,
    sa: SaOut,
    new_key: &Option<(String, String)>,
) -> ServiceResult<SaView> {
    let builtin = sa.auth == "builtin";
    let keys = if builtin {
        admin::list_sa_keys(app, &c.ctx, &c.principal, &sa.id)
            .await?
            .into_iter()
            .map(key_view)
            .collect()
    } else {
        Vec::new()
    };
    let scope = match (&sa.default_team, &sa.team) {
        (Some(t), _) => format!("org-scoped, default team {t}"),
        (None, Some(t)) => format!("team {t}"),
        _ => sa.scope.clone(),
    };
    let binding = sa.binding.as_ref().map(|b| {
        let mut text = format!("{} · subject {}", b.issuer, b.subject);
        if let Some(p) = &b.subject_pattern {
            text.push_str(&format!(" · pattern {p}"));
        }
        for (k, v) in &b.claims {
            text.push_str(&format!(" · {k}={v}"));
        }
        if b.mode != "enforce" {
            text.push_str(&format!(" · mode {}", b.mode));
        }
        text
    });
    Ok(SaView {
        new_key: new_key
            .as_ref()
            .filter(|(id, _)| *id == sa.id)
            .map(|(_, k)| k.clone()),
        id: sa.id,
        name: sa.name,
        scope,
        auth: if builtin {
            "API key (Built-in)".into()
        } else {
            "Federated Identity".into()
        },
        binding,
        enabled: !sa.disabled,
        builtin,
        keys,
        can_admin: true,
    })
}

// ---------------------------------------------------------------- org tab

#[derive(askama::Template)]
#[template(path = "org_service_accounts.html")]
pub struct OrgPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub can_admin: bool,
    pub open_form: bool,
    pub form_name: String,
    pub teams: Vec<String>,
    pub accounts: Vec<SaView>,
    pub denied: Option<String>,
    pub base: String,
}

async fn org_render(
    app: &App,
    c: &Console,
    org: &str,
    outcome: Outcome,
    new_key: Option<(String, String)>,
    form_name: String,
) -> Response {
    let result: ServiceResult<OrgPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let teams = admin::list_teams(app, &c.principal, org)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let (accounts, denied) =
            match admin::list_org_sas(app, &c.ctx, &c.principal, org, &Page::default()).await {
                Ok(list) => {
                    let mut rows = Vec::new();
                    for sa in list.service_accounts {
                        rows.push(sa_view(app, c, sa, &new_key).await?);
                    }
                    (rows, None)
                }
                Err(e @ ServiceError::Forbidden { .. }) => (Vec::new(), Some(super::denial(&e))),
                Err(e) => return Err(e),
            };
        let mut layout = c.layout(format!("{org} · Service Accounts"));
        outcome.apply(&mut layout);
        Ok(OrgPage {
            layout,
            tab: "sa",
            can_admin,
            open_form: outcome.error.is_some() && !form_name.is_empty(),
            form_name,
            teams,
            accounts,
            denied,
            base: format!("/org/{org}"),
        })
    }
    .await;
    match result {
        Ok(p) => render_status(outcome.status.unwrap_or(axum::http::StatusCode::OK), &p),
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /org/<org>`: the dashboard's Service Accounts tab.
pub async fn org_page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
) -> Response {
    org_render(&app, &c, &org, Outcome::default(), None, String::new()).await
}

#[derive(Debug, Deserialize)]
pub struct NewOrgForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    default_team: String,
}

/// `POST /org/<org>/service-accounts`: New service account → Name → Default team → Create.
pub async fn org_create(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<NewOrgForm>,
) -> Response {
    let req = NewOrgSa {
        name: f.name.trim().to_string(),
        default_team: Some(f.default_team.clone()).filter(|t| !t.is_empty()),
        max_token_lifetime_s: None,
        description: None,
    };
    match admin::create_org_sa(&app, &c.ctx, &c.principal, &org, req).await {
        Ok(sa) => {
            let key = sa.api_key.clone().map(|k| (sa.id.clone(), k));
            let notice = format!(
                "Created service account {}. Copy its API key now: it is shown only once.",
                sa.name
            );
            org_render(&app, &c, &org, Outcome::done(notice), key, String::new()).await
        }
        Err(e) => org_render(&app, &c, &org, Outcome::failed(&e), None, f.name).await,
    }
}

/// Runs a row action; returns the outcome and a key to show once.
async fn row_action(
    app: &App,
    c: &Console,
    id: &str,
    action: &str,
) -> (Outcome, Option<(String, String)>) {
    let result = match action {
        "disable" | "enable" => {
            admin::set_sa_disabled(app, &c.ctx, &c.principal, id, action == "disable")
                .await
                .map(|sa| {
                    let word = if sa.disabled { "Disabled" } else { "Enabled" };
                    (format!("{word} service account {}.", sa.name), None)
                })
        }
        "keys" => admin::create_sa_key(app, &c.ctx, &c.principal, id)
            .await
            .map(|k| {
                (
                    "Created an API key. Copy it now: it is shown only once.".to_string(),
                    Some((id.to_string(), k.api_key)),
                )
            }),
        _ => Err(ServiceError::NotFound(format!(
            "no action {:?} on service accounts",
            crate::model::truncate(action, 32)
        ))),
    };
    match result {
        Ok((notice, key)) => (Outcome::done(notice), key),
        Err(e) => (Outcome::failed(&e), None),
    }
}

async fn revoke(app: &App, c: &Console, id: &str, key: &str) -> Outcome {
    match admin::revoke_sa_key(app, &c.ctx, &c.principal, id, key).await {
        Ok(()) => Outcome::done("Revoked the API key; it stops working at once."),
        Err(e) => Outcome::failed(&e),
    }
}

/// `POST /org/<org>/service-accounts/<id>/<disable|enable|keys>`.
pub async fn org_action(
    State(app): State<AppState>,
    c: Console,
    Path((org, id, action)): Path<(String, String, String)>,
) -> Response {
    let (outcome, key) = row_action(&app, &c, &id, &action).await;
    org_render(&app, &c, &org, outcome, key, String::new()).await
}

/// `POST /org/<org>/service-accounts/<id>/keys/<key>/revoke`.
pub async fn org_revoke(
    State(app): State<AppState>,
    c: Console,
    Path((org, id, key)): Path<(String, String, String)>,
) -> Response {
    let outcome = revoke(&app, &c, &id, &key).await;
    org_render(&app, &c, &org, outcome, None, String::new()).await
}

// ---------------------------------------------------------------- team tab

#[derive(askama::Template)]
#[template(path = "team_service_accounts.html")]
pub struct TeamPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub team: String,
    pub can_admin: bool,
    pub open_form: bool,
    pub form_name: String,
    pub issuers: Vec<String>,
    pub accounts: Vec<SaView>,
    pub denied: Option<String>,
    pub base: String,
}

async fn team_render(
    app: &App,
    c: &Console,
    team: &str,
    outcome: Outcome,
    new_key: Option<(String, String)>,
    form_name: String,
) -> Response {
    let result: ServiceResult<TeamPage> = async {
        let can_admin = admin::may_admin_team(app, &c.principal, team).await?;
        let (accounts, denied) =
            match admin::list_team_sas(app, &c.ctx, &c.principal, team, &Page::default()).await {
                Ok(list) => {
                    let mut rows = Vec::new();
                    for sa in list.service_accounts {
                        rows.push(sa_view(app, c, sa, &new_key).await?);
                    }
                    (rows, None)
                }
                Err(e @ ServiceError::Forbidden { .. }) => (Vec::new(), Some(super::denial(&e))),
                Err(e) => return Err(e),
            };
        let issuers = if can_admin {
            crate::service::federation::issuer_choices(app, &c.ctx, &c.principal, team).await?
        } else {
            Vec::new()
        };
        let mut layout = c.layout(format!("{team} · Service Accounts"));
        outcome.apply(&mut layout);
        Ok(TeamPage {
            layout,
            tab: "sa",
            team: team.to_string(),
            can_admin,
            open_form: outcome.error.is_some() && !form_name.is_empty(),
            form_name,
            issuers,
            accounts,
            denied,
            base: format!("/{team}"),
        })
    }
    .await;
    match result {
        Ok(p) => render_status(outcome.status.unwrap_or(axum::http::StatusCode::OK), &p),
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /<team>/service-accounts`.
pub async fn team_page(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
) -> Response {
    team_render(&app, &c, &team, Outcome::default(), None, String::new()).await
}

#[derive(Debug, Deserialize)]
pub struct NewTeamForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    subject_pattern: String,
    #[serde(default)]
    claims: String,
}

/// `claim=value` lines → claim conditions.
fn parse_claims(text: &str) -> Result<Option<BTreeMap<String, String>>, ServiceError> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((k, v)) = line.split_once('=') else {
            return Err(ServiceError::BadRequest(format!(
                "claim condition {:?} is not claim=value",
                crate::model::truncate(line, 80)
            )));
        };
        out.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

fn non_empty(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST /<team>/service-accounts`: New service account → Name →
/// Authentication method → (Issuer, Subject, claim conditions) → Create.
pub async fn team_create(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
    axum::Form(f): axum::Form<NewTeamForm>,
) -> Response {
    let external = f.auth == "external";
    let req = parse_claims(&f.claims).map(|claims| NewTeamSa {
        name: f.name.trim().to_string(),
        auth: if external { "external" } else { "builtin" }.into(),
        issuer: non_empty(&f.issuer).filter(|_| external),
        subject: non_empty(&f.subject).filter(|_| external),
        subject_pattern: non_empty(&f.subject_pattern).filter(|_| external),
        allow_broad_subject_pattern: None,
        description: None,
        mode: None,
        claims: claims.filter(|_| external),
        max_token_lifetime_s: None,
    });
    let result = match req {
        Ok(req) => admin::create_team_sa(&app, &c.ctx, &c.principal, &team, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(sa) => {
            let notice = if sa.api_key.is_some() {
                format!(
                    "Created service account {}. Copy its API key now: it is shown only once.",
                    sa.name
                )
            } else {
                format!(
                    "Created service account {}: workloads exchange their identity token at /oidc/token.",
                    sa.name
                )
            };
            let key = sa.api_key.clone().map(|k| (sa.id.clone(), k));
            team_render(&app, &c, &team, Outcome::done(notice), key, String::new()).await
        }
        Err(e) => team_render(&app, &c, &team, Outcome::failed(&e), None, f.name).await,
    }
}

/// `POST /<team>/service-accounts/<id>/<disable|enable|keys>`.
pub async fn team_action(
    State(app): State<AppState>,
    c: Console,
    Path((team, id, action)): Path<(String, String, String)>,
) -> Response {
    let (outcome, key) = row_action(&app, &c, &id, &action).await;
    team_render(&app, &c, &team, outcome, key, String::new()).await
}

/// `POST /<team>/service-accounts/<id>/keys/<key>/revoke`.
pub async fn team_revoke(
    State(app): State<AppState>,
    c: Console,
    Path((team, id, key)): Path<(String, String, String)>,
) -> Response {
    let outcome = revoke(&app, &c, &id, &key).await;
    team_render(&app, &c, &team, outcome, None, String::new()).await
}
