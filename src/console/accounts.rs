//! The Service Accounts tabs: the org dashboard's (`/org/<org>`, org-scoped
//! accounts, org admins) and a team's (`/<team>/service-accounts`, team-scoped
//! accounts, built-in or Federated Identity), a page at a time. Rows offer
//! what the API offers: Disable/Enable, Create API key, Revoke, Edit (a
//! Federated Identity account's binding: Edit binding) and Delete (after a
//! confirmation page). A new key is shown once, in the read-only "New API
//! key" field beside "Copy API key".

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{
    ConfirmForm, ConfirmPage, Layout, ListQuery, Outcome, Pager, error_page, not_confirmed,
    render_status,
};
use crate::service::accounts::{self as lifecycle, SaUpdate};
use crate::service::admin::{self, KeyInfo, NewOrgSa, NewTeamSa, SaOut};
use crate::service::{ServiceError, ServiceResult};
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

pub(super) fn key_view(k: KeyInfo) -> KeyView {
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
    can_admin: bool,
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
        can_admin,
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
    pub pager: Pager,
}

async fn org_render(
    app: &App,
    c: &Console,
    org: &str,
    outcome: Outcome,
    new_key: Option<(String, String)>,
    form_name: String,
    q: &ListQuery,
) -> Response {
    let result: ServiceResult<OrgPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let teams = admin::list_teams(app, &c.principal, org)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let page = q.page()?;
        let (accounts, denied, pager) =
            match admin::list_org_sas(app, &c.ctx, &c.principal, org, &page).await {
                Ok(list) => {
                    let mut rows = Vec::new();
                    for sa in list.service_accounts {
                        rows.push(sa_view(app, c, sa, &new_key, can_admin).await?);
                    }
                    let pager = q.pager(&format!("/org/{org}"), list.next_after.as_deref());
                    (rows, None, pager)
                }
                Err(e @ ServiceError::Forbidden { .. }) => {
                    (Vec::new(), Some(super::denial(&e)), Pager::default())
                }
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
            pager,
        })
    }
    .await;
    outcome.respond(c, result)
}

/// `GET /org/<org>?after=&limit=`: the dashboard's Service Accounts tab.
pub async fn org_page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    org_render(&app, &c, &org, Outcome::default(), None, String::new(), &q).await
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
            let q = ListQuery::default();
            org_render(
                &app,
                &c,
                &org,
                Outcome::done(notice),
                key,
                String::new(),
                &q,
            )
            .await
        }
        Err(e) => {
            let q = ListQuery::default();
            org_render(&app, &c, &org, Outcome::failed(&e), None, f.name, &q).await
        }
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
    let q = ListQuery::default();
    org_render(&app, &c, &org, outcome, key, String::new(), &q).await
}

/// `POST /org/<org>/service-accounts/<id>/keys/<key>/revoke`.
pub async fn org_revoke(
    State(app): State<AppState>,
    c: Console,
    Path((org, id, key)): Path<(String, String, String)>,
) -> Response {
    let outcome = revoke(&app, &c, &id, &key).await;
    let q = ListQuery::default();
    org_render(&app, &c, &org, outcome, None, String::new(), &q).await
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
    pub pager: Pager,
}

async fn team_render(
    app: &App,
    c: &Console,
    team: &str,
    outcome: Outcome,
    new_key: Option<(String, String)>,
    form_name: String,
    q: &ListQuery,
) -> Response {
    let result: ServiceResult<TeamPage> = async {
        let can_admin = admin::may_admin_team(app, &c.principal, team).await?;
        let page = q.page()?;
        let (accounts, denied, pager) =
            match admin::list_team_sas(app, &c.ctx, &c.principal, team, &page).await {
                Ok(list) => {
                    let mut rows = Vec::new();
                    for sa in list.service_accounts {
                        rows.push(sa_view(app, c, sa, &new_key, can_admin).await?);
                    }
                    let pager = q.pager(
                        &format!("/{team}/service-accounts"),
                        list.next_after.as_deref(),
                    );
                    (rows, None, pager)
                }
                Err(e @ ServiceError::Forbidden { .. }) => {
                    (Vec::new(), Some(super::denial(&e)), Pager::default())
                }
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
            pager,
        })
    }
    .await;
    outcome.respond(c, result)
}

/// `GET /<team>/service-accounts?after=&limit=`.
pub async fn team_page(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    team_render(&app, &c, &team, Outcome::default(), None, String::new(), &q).await
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
            let q = ListQuery::default();
            team_render(
                &app,
                &c,
                &team,
                Outcome::done(notice),
                key,
                String::new(),
                &q,
            )
            .await
        }
        Err(e) => {
            let q = ListQuery::default();
            team_render(&app, &c, &team, Outcome::failed(&e), None, f.name, &q).await
        }
    }
}

/// `POST /<team>/service-accounts/<id>/<disable|enable|keys>`.
pub async fn team_action(
    State(app): State<AppState>,
    c: Console,
    Path((team, id, action)): Path<(String, String, String)>,
) -> Response {
    let (outcome, key) = row_action(&app, &c, &id, &action).await;
    let q = ListQuery::default();
    team_render(&app, &c, &team, outcome, key, String::new(), &q).await
}

/// `POST /<team>/service-accounts/<id>/keys/<key>/revoke`.
pub async fn team_revoke(
    State(app): State<AppState>,
    c: Console,
    Path((team, id, key)): Path<(String, String, String)>,
) -> Response {
    let outcome = revoke(&app, &c, &id, &key).await;
    let q = ListQuery::default();
    team_render(&app, &c, &team, outcome, None, String::new(), &q).await
}

// ---------------------------------------------------------------- edit, delete

/// Which Service Accounts tab a row action came from (and returns to).
enum Tab {
    Org(String),
    Team(String),
}

impl Tab {
    /// The row actions' prefix: `/org/<org>` or `/<team>`.
    fn base(&self) -> String {
        match self {
            Tab::Org(org) => format!("/org/{org}"),
            Tab::Team(team) => format!("/{team}"),
        }
    }
    /// The list the row is on.
    fn list(&self) -> String {
        match self {
            Tab::Org(org) => format!("/org/{org}"),
            Tab::Team(team) => format!("/{team}/service-accounts"),
        }
    }
    /// 404 for another org's dashboard or an unknown team, as the list pages.
    async fn check(&self, app: &App, c: &Console) -> ServiceResult<()> {
        match self {
            Tab::Org(org) => app.org_of(&c.principal, org).await.map(|_| ()),
            Tab::Team(team) => app.team_of(&c.principal, team).await.map(|_| ()),
        }
    }
    async fn render(&self, app: &App, c: &Console, outcome: Outcome) -> Response {
        let q = ListQuery::default();
        match self {
            Tab::Org(org) => org_render(app, c, org, outcome, None, String::new(), &q).await,
            Tab::Team(team) => team_render(app, c, team, outcome, None, String::new(), &q).await,
        }
    }
}

/// What the Edit form holds: the account's current settings when opened,
/// what was typed after a refusal.
#[derive(Debug, Default, Deserialize)]
pub struct EditForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub max_token_lifetime_s: String,
    #[serde(default)]
    pub default_team: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub subject_pattern: String,
    #[serde(default)]
    pub claims: String,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub allow_broad: Option<String>,
}

impl EditForm {
    fn of(sa: &SaOut) -> EditForm {
        let b = sa.binding.as_ref();
        EditForm {
            name: sa.name.clone(),
            description: sa.description.clone(),
            max_token_lifetime_s: sa.max_token_lifetime_s.to_string(),
            default_team: sa.default_team.clone().unwrap_or_default(),
            issuer: b.map(|b| b.issuer.clone()).unwrap_or_default(),
            subject: b.map(|b| b.subject.clone()).unwrap_or_default(),
            subject_pattern: b
                .and_then(|b| b.subject_pattern.clone())
                .unwrap_or_default(),
            claims: b
                .map(|b| {
                    b.claims
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            mode: b.map(|b| b.mode.clone()).unwrap_or_default(),
            allow_broad: b
                .filter(|b| b.allow_broad_subject_pattern)
                .map(|_| "true".into()),
        }
    }

    /// The PATCH this form is, for an account of this kind: every field is
    /// sent and the service changes (and audits) what differs.
    fn update(&self, sa: &SaOut) -> ServiceResult<SaUpdate> {
        let lifetime = self.max_token_lifetime_s.trim();
        let lifetime = lifetime.parse::<i64>().map_err(|_| {
            ServiceError::BadRequest(format!(
                "Max token lifetime must be a whole number of seconds, got {:?}",
                crate::model::truncate(lifetime, 20)
            ))
        })?;
        let external = sa.auth == "external";
        let claims = if external {
            Some(parse_claims(&self.claims)?.unwrap_or_default())
        } else {
            None
        };
        Ok(SaUpdate {
            name: Some(self.name.trim().to_string()),
            description: Some(self.description.trim().to_string()),
            default_team: Some(self.default_team.clone()).filter(|_| sa.scope == "org"),
            max_token_lifetime_s: Some(lifetime),
            issuer: non_empty(&self.issuer).filter(|_| external),
            subject: Some(self.subject.trim().to_string()).filter(|_| external),
            subject_pattern: external.then(|| non_empty(&self.subject_pattern)),
            allow_broad_subject_pattern: external.then_some(self.allow_broad.is_some()),
            claims,
            mode: non_empty(&self.mode).filter(|_| external),
        })
    }
}

#[derive(askama::Template)]
#[template(path = "sa_edit.html")]
pub struct EditPage {
    pub layout: Layout,
    /// The account's name before this edit.
    pub sa_name: String,
    pub action: String,
    pub back: String,
    pub external: bool,
    pub org_scoped: bool,
    pub teams: Vec<String>,
    pub issuers: Vec<String>,
    pub modes: Vec<&'static str>,
    pub form: EditForm,
    /// The service's refusal, shown in the form.
    pub error: Option<String>,
}

/// The Edit page of account `id`: its settings (and binding) in a form, or
/// the service's refusal (members and other teams' admins get the denial).
async fn edit_render(
    app: &App,
    c: &Console,
    tab: &Tab,
    id: &str,
    form: Option<EditForm>,
    error: Option<&ServiceError>,
) -> Response {
    let result: ServiceResult<EditPage> = async {
        tab.check(app, c).await?;
        let sa = lifecycle::get_sa(app, &c.ctx, &c.principal, id).await?;
        let external = sa.auth == "external";
        let org_scoped = sa.scope == "org";
        let teams = if org_scoped {
            admin::list_teams(app, &c.principal, &c.principal.org_name)
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect()
        } else {
            Vec::new()
        };
        let issuers = match (&sa.team, external) {
            (Some(team), true) => {
                crate::service::federation::issuer_choices(app, &c.ctx, &c.principal, team).await?
            }
            _ => Vec::new(),
        };
        let heading = if external {
            format!("Edit binding of {}", sa.name)
        } else {
            format!("Edit {}", sa.name)
        };
        let mut layout = c.layout(heading);
        layout.error = None;
        Ok(EditPage {
            layout,
            action: format!("{}/service-accounts/{}/edit", tab.base(), sa.id),
            back: tab.list(),
            external,
            org_scoped,
            teams,
            issuers,
            modes: vec!["enforce", "shadow"],
            form: form.unwrap_or_else(|| EditForm::of(&sa)),
            error: error.map(super::denial),
            sa_name: sa.name,
        })
    }
    .await;
    match result {
        Ok(p) => {
            let status = error.map_or(axum::http::StatusCode::OK, super::status_of);
            render_status(status, &p)
        }
        Err(e) => error_page(Some(c), e),
    }
}

async fn edit_save(app: &App, c: &Console, tab: Tab, id: &str, f: EditForm) -> Response {
    if let Err(e) = tab.check(app, c).await {
        return error_page(Some(c), e);
    }
    let result = match lifecycle::get_sa(app, &c.ctx, &c.principal, id).await {
        Ok(sa) => match f.update(&sa) {
            Ok(upd) => lifecycle::update_sa(app, &c.ctx, &c.principal, id, upd).await,
            Err(e) => Err(e),
        },
        Err(e) => return error_page(Some(c), e),
    };
    match result {
        Ok(sa) => {
            let notice = if sa.auth == "external" {
                format!(
                    "Saved service account {}: the next exchange at /oidc/token follows the new binding.",
                    sa.name
                )
            } else {
                format!("Saved service account {}.", sa.name)
            };
            tab.render(app, c, Outcome::done(notice)).await
        }
        Err(e) => edit_render(app, c, &tab, id, Some(f), Some(&e)).await,
    }
}

/// `GET /org/<org>/service-accounts/<id>/edit`.
pub async fn org_edit_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    edit_render(&app, &c, &Tab::Org(org), &id, None, None).await
}

/// `POST /org/<org>/service-accounts/<id>/edit`: the same change as `PATCH /api/v1/service-accounts/{id}`.
pub async fn org_edit(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<EditForm>,
) -> Response {
    edit_save(&app, &c, Tab::Org(org), &id, f).await
}

/// `GET /<team>/service-accounts/<id>/edit`.
pub async fn team_edit_page(
    State(app): State<AppState>,
    c: Console,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    edit_render(&app, &c, &Tab::Team(team), &id, None, None).await
}

/// `POST /<team>/service-accounts/<id>/edit`.
pub async fn team_edit(
    State(app): State<AppState>,
    c: Console,
    Path((team, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<EditForm>,
) -> Response {
    edit_save(&app, &c, Tab::Team(team), &id, f).await
}

/// The confirmation page of deleting account `id` (after the service let
/// this person read it as an admin of its scope).
async fn delete_confirm(
    app: &App,
    c: &Console,
    tab: &Tab,
    id: &str,
    error: Option<String>,
) -> Response {
    if let Err(e) = tab.check(app, c).await {
        return error_page(Some(c), e);
    }
    let sa = match lifecycle::get_sa(app, &c.ctx, &c.principal, id).await {
        Ok(sa) => sa,
        Err(e) => return error_page(Some(c), e),
    };
    let mut consequences = Vec::new();
    if sa.auth == "external" {
        consequences.push(
            "Workloads can no longer exchange their identity tokens for it; tokens already exchanged are refused at once."
                .to_string(),
        );
    } else {
        consequences.push(
            "Every API key of it is revoked, and every token it holds is refused at once."
                .to_string(),
        );
    }
    consequences.push(
        "The runs it logged and its audit history stay; its name can be used again.".to_string(),
    );
    ConfirmPage {
        layout: c.layout(format!("Delete service account {}", sa.name)),
        heading: format!("Delete service account {}", sa.name),
        consequences,
        action: format!("{}/service-accounts/{}/delete", tab.base(), sa.id),
        name: sa.name,
        back: tab.list(),
        option: None,
        button: "Delete",
    }
    .show(error)
}

async fn delete_confirmed(app: &App, c: &Console, tab: Tab, id: &str, f: ConfirmForm) -> Response {
    if let Err(e) = tab.check(app, c).await {
        return error_page(Some(c), e);
    }
    let sa = match lifecycle::get_sa(app, &c.ctx, &c.principal, id).await {
        Ok(sa) => sa,
        Err(e) => return error_page(Some(c), e),
    };
    if !f.confirms(&sa.name) {
        return delete_confirm(app, c, &tab, id, Some(not_confirmed(&sa.name))).await;
    }
    let outcome = match lifecycle::delete_sa(app, &c.ctx, &c.principal, id).await {
        Ok(()) => Outcome::done(format!(
            "Deleted service account {}: its keys and tokens are refused from now on.",
            sa.name
        )),
        Err(e) => Outcome::failed(&e),
    };
    tab.render(app, c, outcome).await
}

/// `GET /org/<org>/service-accounts/<id>/delete`: the confirmation page.
pub async fn org_delete_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    delete_confirm(&app, &c, &Tab::Org(org), &id, None).await
}

/// `POST /org/<org>/service-accounts/<id>/delete`: deletes once the name is typed.
pub async fn org_delete(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    delete_confirmed(&app, &c, Tab::Org(org), &id, f).await
}

/// `GET /<team>/service-accounts/<id>/delete`.
pub async fn team_delete_page(
    State(app): State<AppState>,
    c: Console,
    Path((team, id)): Path<(String, String)>,
) -> Response {
    delete_confirm(&app, &c, &Tab::Team(team), &id, None).await
}

/// `POST /<team>/service-accounts/<id>/delete`.
pub async fn team_delete(
    State(app): State<AppState>,
    c: Console,
    Path((team, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    delete_confirmed(&app, &c, Tab::Team(team), &id, f).await
}
