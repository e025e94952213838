//! The sign-in page: "Sign in with SSO" (see [`super::sso`]) and "Sign in"
//! with an API key, for the bootstrap admin and orgs without SSO; and Sign out.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::session::{self, Console, LOGIN_COOKIE};
use super::{Layout, render_status};
use crate::model::PrincipalKind;
use crate::secrets::{Secret, random_base62};
use crate::service::auth::{Credential, Via, authenticate};
use crate::service::{RequestCtx, ServiceError};
use crate::state::{App, AppState};

#[derive(askama::Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub csrf: String,
    pub org: String,
    pub next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    m: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    org: String,
}

/// Why the person is on the sign-in page, in words.
fn message(code: &str) -> Option<&'static str> {
    match code {
        "signed_out" => Some("You signed out."),
        "expired" => Some("Your session expired; sign in again."),
        "ended" => {
            Some("Your session ended: your account was disabled or its credentials were revoked.")
        }
        "key_revoked" => Some("Your session ended: the API key you signed in with was revoked."),
        _ => None,
    }
}

/// Renders the sign-in page with a fresh pre-sign-in form token; `next` (a
/// path on this site) rides along in the forms.
pub fn login_page(
    app: &App,
    status: StatusCode,
    org: &str,
    error: Option<String>,
    notice: Option<String>,
    next: &str,
) -> Response {
    let token = random_base62(32);
    let page = LoginPage {
        layout: Layout {
            title: "Sign in".into(),
            error,
            notice,
            ..Layout::default()
        },
        csrf: token.clone(),
        org: org.to_string(),
        next: if session::safe_next(next) {
            next.to_string()
        } else {
            String::new()
        },
    };
    let mut resp = render_status(status, &page);
    resp.headers_mut().insert(
        "content-security-policy",
        axum::http::HeaderValue::from_static(super::CSP_SIGN_IN),
    );
    session::with_cookie(
        resp,
        session::set_cookie(app, LOGIN_COOKIE, &token, "/login", 3600),
    )
}

/// `GET /login`.
pub async fn page(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let notice = message(&q.m).map(String::from);
    login_page(&app, StatusCode::OK, &q.org, None, notice, &q.next)
}

#[derive(Debug, Deserialize)]
pub struct ApiKeyForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    next: String,
}

/// Signs in: sets the session cookie and goes to `next` (a path on this
/// site) or the person's org dashboard.
pub fn signed_in(cookie: axum::http::HeaderValue, next: &str, org: &str) -> Response {
    let to = if session::safe_next(next) && !next.is_empty() {
        next.to_string()
    } else {
        format!("/org/{org}")
    };
    session::with_cookie(Redirect::to(&to).into_response(), cookie)
}

/// `POST /login`: an API key of a user (not a service account).
pub async fn with_api_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    axum::Form(form): axum::Form<ApiKeyForm>,
) -> Response {
    let refuse =
        |status: StatusCode, e: String| login_page(&app, status, "", Some(e), None, &form.next);
    let key = form.api_key.trim();
    if key.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Enter an API key.".into());
    }
    let cred = Credential::ApiKey(Secret::new(key.to_string()));
    let a = match authenticate(&app, &ctx, &cred).await {
        Ok(a) => a,
        Err(e @ ServiceError::Unauthenticated(_)) => {
            return refuse(StatusCode::UNAUTHORIZED, super::denial(&e));
        }
        Err(e) => return super::error_page(None, e),
    };
    if !matches!(a.principal.kind, PrincipalKind::User { .. }) {
        return refuse(
            StatusCode::FORBIDDEN,
            format!(
                "Denied (console.people_only): {} cannot sign in to the console; sign in with a person's API key",
                a.principal.describe()
            ),
        );
    }
    let key_id = match a.via {
        Via::ApiKey { key_id } => Some(key_id),
        Via::AccessToken { .. } => None,
    };
    match session::start(&app, &ctx, &a.principal, key_id, "api_key").await {
        Ok(cookie) => signed_in(cookie, &form.next, &a.principal.org_name),
        Err(e) => super::error_page(None, e),
    }
}

/// `POST /logout`.
pub async fn sign_out(State(app): State<AppState>, c: Result<Console, Response>) -> Response {
    match c {
        Ok(c) => {
            let cookie = session::end(&app, &c).await;
            session::with_cookie(Redirect::to("/login?m=signed_out").into_response(), cookie)
        }
        Err(_) => Redirect::to("/login").into_response(),
    }
}
