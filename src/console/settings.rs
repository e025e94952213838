//! The org dashboard's Settings tab: Authentication (Set up JWT issuer, the
//! trusted issuers with their keys, last fetch, last error, Refresh keys,
//! Edit and Delete after a confirmation page; single sign-on) and Explain
//! (the explain API's dry run of an exchange).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::session::Console;
use super::{
    ConfirmForm, ConfirmPage, Layout, ListQuery, Outcome, Pager, error_page, not_confirmed,
    render_status,
};
use crate::service::admin;
use crate::service::federation::{self, IssuerUpdate, NewIssuer};
use crate::service::sso::{self, SsoSettings};
use crate::service::{ServiceError, ServiceResult};
use crate::state::{App, AppState};

/// An issuer as a row shows it.
pub struct IssuerView {
    pub id: String,
    pub issuer: String,
    pub source: String,
    pub audiences: String,
    pub kids: String,
    pub last_fetch: String,
    pub last_error: String,
}

/// What the Set up JWT issuer form holds (kept after a refusal).
#[derive(Debug, Default, Deserialize)]
pub struct IssuerForm {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: String,
    #[serde(default)]
    pub jwks: String,
}

/// The explain answer in rows.
pub struct ExplainView {
    pub ok: bool,
    pub summary: String,
    pub matched: Option<String>,
    pub checks: Vec<(String, bool, String)>,
}

#[derive(askama::Template)]
#[template(path = "org_settings.html")]
pub struct SettingsPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub denied: Option<String>,
    pub issuers: Vec<IssuerView>,
    pub pager: Pager,
    pub issuer_form: IssuerForm,
    pub issuer_form_open: bool,
    pub sso_status: String,
    pub redirect_uri: String,
    pub sso_issuer: String,
    pub sso_client_id: String,
    pub sso_create_users: bool,
    /// SSO is set up and the rules let this person turn it off.
    pub can_turn_off_sso: bool,
    pub explain_token: String,
    pub explain_audience: String,
    pub explain: Option<ExplainView>,
}

/// What a form on this tab leaves for the next render.
#[derive(Default)]
struct Extra {
    issuer_form: Option<IssuerForm>,
    explain: Option<(String, String, ExplainView)>,
    /// Which page of the issuer list (`GET ?after=&limit=`; the first after a form).
    list: ListQuery,
}

async fn render(app: &App, c: &Console, org: &str, outcome: Outcome, extra: Extra) -> Response {
    let result: ServiceResult<(axum::http::StatusCode, SettingsPage)> = async {
        let mut layout = c.layout(format!("{org} · Settings"));
        outcome.apply(&mut layout);
        let status = outcome.status.unwrap_or(axum::http::StatusCode::OK);
        let q = &extra.list;
        let page = q.page()?;
        let (issuers, pager) =
            match federation::list_issuers_page(app, &c.ctx, &c.principal, org, &page).await {
                Ok(list) => {
                    let pager =
                        q.pager(&format!("/org/{org}/settings"), list.next_after.as_deref());
                    (list.issuers, pager)
                }
                Err(e @ ServiceError::Forbidden { .. }) => {
                    return Ok((
                        status,
                        SettingsPage {
                            layout,
                            tab: "settings",
                            denied: Some(super::denial(&e)),
                            issuers: Vec::new(),
                            pager: Pager::default(),
                            issuer_form: IssuerForm::default(),
                            issuer_form_open: false,
                            sso_status: String::new(),
                            redirect_uri: String::new(),
                            sso_issuer: String::new(),
                            sso_client_id: String::new(),
                            sso_create_users: false,
                            can_turn_off_sso: false,
                            explain_token: String::new(),
                            explain_audience: String::new(),
                            explain: None,
                        },
                    ));
                }
                Err(e) => return Err(e),
            };
        let issuers = issuers
            .into_iter()
            .map(|i| {
                let keys = i.keys.as_ref();
                IssuerView {
                    id: i.id.clone(),
                    source: format!("keys: {}", i.key_source),
                    audiences: i.audiences.join(", "),
                    kids: keys
                        .map(|k| k.kids.join(", "))
                        .filter(|k| !k.is_empty())
                        .unwrap_or_else(|| "none yet".into()),
                    last_fetch: keys
                        .and_then(|k| k.last_fetch.clone())
                        .unwrap_or_else(|| "never".into()),
                    last_error: keys.and_then(|k| k.last_error.clone()).unwrap_or_default(),
                    issuer: i.issuer,
                }
            })
            .collect();
        let sso = sso::get_settings(app, &c.ctx, &c.principal, org).await?;
        let can_turn_off_sso =
            sso.is_some() && admin::may_admin_org(app, &c.principal, org).await?;
        let (explain_token, explain_audience, explain) = match extra.explain {
            Some((t, a, x)) => (t, a, Some(x)),
            None => (String::new(), String::new(), None),
        };
        Ok((
            status,
            SettingsPage {
                layout,
                tab: "settings",
                denied: None,
                issuers,
                pager,
                issuer_form_open: extra.issuer_form.is_some(),
                issuer_form: extra.issuer_form.unwrap_or_default(),
                sso_status: match &sso {
                    Some(s) => format!("Single sign-on is on, last changed {}.", s.updated_at),
                    None => "Single sign-on is not configured.".into(),
                },
                redirect_uri: sso::redirect_uri(app),
                sso_issuer: sso.as_ref().map(|s| s.issuer.clone()).unwrap_or_default(),
                sso_client_id: sso
                    .as_ref()
                    .map(|s| s.client_id.clone())
                    .unwrap_or_default(),
                sso_create_users: sso.as_ref().is_some_and(|s| s.create_users),
                can_turn_off_sso,
                explain_token,
                explain_audience,
                explain,
            },
        ))
    }
    .await;
    match result {
        Ok((status, p)) => render_status(status, &p),
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /org/<org>/settings?after=&limit=` (the page of the issuer list).
pub async fn page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(list): Query<ListQuery>,
) -> Response {
    let extra = Extra {
        list,
        ..Extra::default()
    };
    render(&app, &c, &org, Outcome::default(), extra).await
}

/// `POST /org/<org>/settings/issuers`: Set up JWT issuer → Create.
pub async fn create_issuer(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<IssuerForm>,
) -> Response {
    let audiences: Vec<String> = f
        .audiences
        .split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    let jwks = if f.jwks.trim().is_empty() {
        Ok(None)
    } else {
        serde_json::from_str::<Value>(f.jwks.trim())
            .map(Some)
            .map_err(|e| {
                ServiceError::BadRequest(format!("the static JWKS is not valid JSON: {e}"))
            })
    };
    let result = match jwks {
        Ok(jwks) => {
            let req = NewIssuer {
                issuer: f.issuer.trim().to_string(),
                jwks_uri: None,
                jwks,
                audiences: if audiences.is_empty() {
                    None
                } else {
                    Some(audiences)
                },
                allowed_algs: None,
                max_token_age_s: None,
                leeway_s: None,
                single_use_jti: None,
                users: None,
            };
            federation::create_issuer(&app, &c.ctx, &c.principal, &org, req).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(i) => {
            let outcome = Outcome::done(format!("Trusted issuer {} set up.", i.issuer));
            render(&app, &c, &org, outcome, Extra::default()).await
        }
        Err(e) => {
            let extra = Extra {
                issuer_form: Some(f),
                ..Extra::default()
            };
            render(&app, &c, &org, Outcome::failed(&e), extra).await
        }
    }
}

/// `POST /org/<org>/settings/issuers/<id>/refresh`.
pub async fn issuer_action(
    State(app): State<AppState>,
    c: Console,
    Path((org, id, action)): Path<(String, String, String)>,
) -> Response {
    let outcome = match action.as_str() {
        "refresh" => {
            match federation::refresh_issuer(&app, &c.ctx, &c.principal, &org, &id).await {
                Ok(v) => match v["refresh_error"].as_str() {
                    Some(err) => Outcome {
                        error: Some(format!("Could not fetch the keys: {err}")),
                        ..Outcome::default()
                    },
                    None => Outcome::done("Fetched the issuer's keys."),
                },
                Err(e) => Outcome::failed(&e),
            }
        }
        other => Outcome::failed(&ServiceError::NotFound(format!(
            "no action {:?} on issuers",
            crate::model::truncate(other, 32)
        ))),
    };
    render(&app, &c, &org, outcome, Extra::default()).await
}

async fn delete_issuer_confirm(
    app: &App,
    c: &Console,
    org: &str,
    id: &str,
    error: Option<String>,
) -> Response {
    let issuer = match federation::get_issuer(app, &c.ctx, &c.principal, org, id).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(c), e),
    };
    ConfirmPage {
        layout: c.layout(format!("Delete trusted issuer {}", issuer.issuer)),
        heading: format!("Delete trusted issuer {}", issuer.issuer),
        consequences: vec![
            "Its tokens are no longer exchanged by this organization.".into(),
            "An issuer that Federated Identity accounts are still bound to is kept: delete those accounts, or bind them to another issuer, first.".into(),
        ],
        action: format!("/org/{org}/settings/issuers/{}/delete", issuer.id),
        back: format!("/org/{org}/settings"),
        name: issuer.issuer,
        option: None,
        button: "Delete",
    }
    .show(error)
}

/// `GET /org/<org>/settings/issuers/<id>/delete`: the confirmation page.
pub async fn delete_issuer_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    delete_issuer_confirm(&app, &c, &org, &id, None).await
}

/// `POST /org/<org>/settings/issuers/<id>/delete`: the same as
/// `DELETE /api/v1/orgs/{org}/issuers/{id}`, once the issuer URL is typed.
pub async fn delete_issuer(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    let issuer = match federation::get_issuer(&app, &c.ctx, &c.principal, &org, &id).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(&c), e),
    };
    if !f.confirms(&issuer.issuer) {
        let error = not_confirmed(&issuer.issuer);
        return delete_issuer_confirm(&app, &c, &org, &id, Some(error)).await;
    }
    let outcome = match federation::delete_issuer(&app, &c.ctx, &c.principal, &org, &id).await {
        Ok(()) => Outcome::done(format!("Deleted the trusted issuer {}.", issuer.issuer)),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, Extra::default()).await
}

/// What the issuer's Edit form holds.
#[derive(Debug, Default, Deserialize)]
pub struct IssuerEditForm {
    #[serde(default)]
    pub audiences: String,
    #[serde(default)]
    pub jwks: String,
    #[serde(default)]
    pub max_token_age_s: String,
    #[serde(default)]
    pub leeway_s: String,
    #[serde(default)]
    pub single_use_jti: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "issuer_edit.html")]
pub struct IssuerEditPage {
    pub layout: Layout,
    pub issuer: String,
    pub key_source: String,
    pub action: String,
    pub back: String,
    pub form: IssuerEditForm,
    pub error: Option<String>,
}

fn audiences_of(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

fn seconds(label: &str, text: &str) -> ServiceResult<i64> {
    text.trim().parse::<i64>().map_err(|_| {
        ServiceError::BadRequest(format!(
            "{label} must be a whole number of seconds, got {:?}",
            crate::model::truncate(text.trim(), 20)
        ))
    })
}

impl IssuerEditForm {
    fn update(&self) -> ServiceResult<IssuerUpdate> {
        let jwks = match self.jwks.trim() {
            "" => None,
            text => Some(serde_json::from_str::<Value>(text).map_err(|e| {
                ServiceError::BadRequest(format!("the static JWKS is not valid JSON: {e}"))
            })?),
        };
        Ok(IssuerUpdate {
            jwks_uri: None,
            jwks,
            audiences: Some(audiences_of(&self.audiences)),
            allowed_algs: None,
            max_token_age_s: Some(seconds("Max token age", &self.max_token_age_s)?),
            leeway_s: Some(seconds("Leeway", &self.leeway_s)?),
            single_use_jti: Some(self.single_use_jti.is_some()),
            users: None,
        })
    }
}

async fn issuer_edit_render(
    app: &App,
    c: &Console,
    org: &str,
    id: &str,
    form: Option<IssuerEditForm>,
    error: Option<&ServiceError>,
) -> Response {
    let issuer = match federation::get_issuer(app, &c.ctx, &c.principal, org, id).await {
        Ok(i) => i,
        Err(e) => return error_page(Some(c), e),
    };
    let mut layout = c.layout(format!("Edit trusted issuer {}", issuer.issuer));
    layout.error = None;
    let form = form.unwrap_or_else(|| IssuerEditForm {
        audiences: issuer.audiences.join(" "),
        jwks: issuer
            .jwks
            .as_ref()
            .and_then(|j| serde_json::to_string_pretty(j).ok())
            .unwrap_or_default(),
        max_token_age_s: issuer.max_token_age_s.to_string(),
        leeway_s: issuer.leeway_s.to_string(),
        single_use_jti: issuer.single_use_jti.then(|| "true".into()),
    });
    let page = IssuerEditPage {
        layout,
        key_source: issuer.key_source.to_string(),
        action: format!("/org/{org}/settings/issuers/{}/edit", issuer.id),
        back: format!("/org/{org}/settings"),
        form,
        error: error.map(super::denial),
        issuer: issuer.issuer,
    };
    let status = error.map_or(axum::http::StatusCode::OK, super::status_of);
    render_status(status, &page)
}

/// `GET /org/<org>/settings/issuers/<id>/edit`.
pub async fn edit_issuer_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
) -> Response {
    issuer_edit_render(&app, &c, &org, &id, None, None).await
}

/// `POST /org/<org>/settings/issuers/<id>/edit`: the same change as
/// `PATCH /api/v1/orgs/{org}/issuers/{id}`, with the same key lint.
pub async fn edit_issuer(
    State(app): State<AppState>,
    c: Console,
    Path((org, id)): Path<(String, String)>,
    axum::Form(f): axum::Form<IssuerEditForm>,
) -> Response {
    let result = match f.update() {
        Ok(upd) => federation::update_issuer(&app, &c.ctx, &c.principal, &org, &id, upd).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(i) => {
            let outcome = Outcome::done(format!("Saved trusted issuer {}.", i.issuer));
            render(&app, &c, &org, outcome, Extra::default()).await
        }
        Err(e) => issuer_edit_render(&app, &c, &org, &id, Some(f), Some(&e)).await,
    }
}

#[derive(Debug, Deserialize)]
pub struct SsoForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    create_users: Option<String>,
}

/// `POST /org/<org>/settings/sso`: the same settings as `PUT /api/v1/orgs/{org}/sso`.
pub async fn save_sso(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<SsoForm>,
) -> Response {
    let req = SsoSettings {
        issuer: f.issuer,
        client_id: f.client_id,
        client_secret: Some(f.client_secret).filter(|s| !s.trim().is_empty()),
        create_users: f.create_users.is_some(),
    };
    let outcome = match sso::put_settings(&app, &c.ctx, &c.principal, &org, req).await {
        Ok(s) => Outcome::done(format!("Single sign-on now uses {}.", s.issuer)),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, Extra::default()).await
}

async fn turn_off_sso_confirm(
    app: &App,
    c: &Console,
    org: &str,
    error: Option<String>,
) -> Response {
    let settings = match sso::get_settings(app, &c.ctx, &c.principal, org).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return error_page(
                Some(c),
                ServiceError::NotFound(format!(
                    "single sign-on is not set up for organization \"{}\"",
                    crate::model::truncate(org, 64)
                )),
            );
        }
        Err(e) => return error_page(Some(c), e),
    };
    ConfirmPage {
        layout: c.layout(format!("Turn off single sign-on for {}", settings.org)),
        heading: format!("Turn off single sign-on for {}", settings.org),
        consequences: vec![
            format!(
                "Sign in with SSO for {} stops at once: nobody is sent to {} any more, and sign-ins already under way there are refused when they come back.",
                settings.org, settings.issuer
            ),
            "Sessions already open stay open until they end (Sign out, an hour unused, or 12 hours after sign-in); disable a person to end theirs at once.".into(),
            "The stored client secret is deleted: to turn single sign-on on again, save the provider's settings with the secret.".into(),
            "People can still sign in with an API key.".into(),
        ],
        action: format!("/org/{}/settings/sso/turn-off", settings.org),
        back: format!("/org/{}/settings", settings.org),
        name: settings.org,
        option: None,
        button: "Turn off SSO",
    }
    .show(error)
}

/// `GET /org/<org>/settings/sso/turn-off`: the confirmation page.
pub async fn turn_off_sso_page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
) -> Response {
    turn_off_sso_confirm(&app, &c, &org, None).await
}

/// `POST /org/<org>/settings/sso/turn-off`: the same as
/// `DELETE /api/v1/orgs/{org}/sso` (audited `sso.delete` in its
/// transaction), once the organization's name is typed.
pub async fn turn_off_sso(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    if !f.confirms(&org) {
        let error = format!("Single sign-on stays on: type {org} exactly to confirm.");
        return turn_off_sso_confirm(&app, &c, &org, Some(error)).await;
    }
    let outcome = match sso::delete_settings(&app, &c.ctx, &c.principal, &org).await {
        Ok(()) => Outcome::done(format!(
            "Turned off single sign-on for {org}: Sign in with SSO no longer sends anyone to the provider."
        )),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, Extra::default()).await
}

#[derive(Debug, Deserialize)]
pub struct ExplainForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    audience: String,
}

fn explain_view(v: &Value) -> ExplainView {
    let ok = v["outcome"] == "would_succeed";
    let summary = match v["error"].as_object() {
        Some(e) => format!(
            "{}: {}",
            e.get("error").and_then(Value::as_str).unwrap_or_default(),
            e.get("error_description")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    let matched = v["matched"].as_object().map(|m| {
        format!(
            "{} {}",
            m.get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace('_', " "),
            m.get("name").and_then(Value::as_str).unwrap_or_default()
        )
    });
    let checks = v["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["ok"].as_bool().unwrap_or(false),
                        c["detail"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ExplainView {
        ok,
        summary,
        matched,
        checks,
    }
}

/// `POST /org/<org>/settings/explain`.
pub async fn explain(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<ExplainForm>,
) -> Response {
    let audience = Some(f.audience.trim()).filter(|a| !a.is_empty());
    match crate::service::exchange::explain(&app, &c.ctx, &c.principal, &org, &f.token, audience)
        .await
    {
        Ok(v) => {
            let extra = Extra {
                explain: Some((f.token.clone(), f.audience.clone(), explain_view(&v))),
                ..Extra::default()
            };
            render(&app, &c, &org, Outcome::default(), extra).await
        }
        Err(e) => render(&app, &c, &org, Outcome::failed(&e), Extra::default()).await,
    }
}
