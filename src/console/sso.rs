//! "Sign in with SSO": the person names their organization and is sent to the
//! org's OpenID Connect provider; the callback at `/sso/callback` finishes the
//! sign-in. The protocol (PKCE, `state`, `nonce`, ID token checks) is
//! `crate::service::sso`; this module only moves it over HTTP. The `state` also
//! travels in a SameSite=Lax cookie scoped to `/sso`, so a callback is only
//! accepted in the browser that started it.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::login::{login_page, signed_in};
use super::session::{self, SSO_COOKIE};
use crate::service::auth::load_principal;
use crate::service::{RequestCtx, ServiceError};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SsoForm {
    #[serde(default)]
    org: String,
    #[serde(default)]
    next: String,
}

/// Where to go after the callback, kept beside the `state` cookie.
const NEXT_COOKIE: &str = "fedgate_sso_next";

/// `POST /login/sso`.
pub async fn start(State(app): State<AppState>, axum::Form(form): axum::Form<SsoForm>) -> Response {
    let org = form.org.trim();
    if org.is_empty() {
        return login_page(
            &app,
            StatusCode::BAD_REQUEST,
            "",
            Some("Enter your organization's name.".into()),
            None,
            &form.next,
        );
    }
    match crate::service::sso::begin(&app, org).await {
        Ok((url, state)) => {
            let ttl = crate::service::sso::LOGIN_TTL_MS / 1000;
            let next = if session::safe_next(&form.next) {
                url::form_urlencoded::byte_serialize(form.next.as_bytes()).collect::<String>()
            } else {
                String::new()
            };
            let resp = session::with_cookie(
                Redirect::to(&url).into_response(),
                session::set_cookie(&app, SSO_COOKIE, &state, "/sso", ttl),
            );
            session::with_cookie(
                resp,
                session::set_cookie(&app, NEXT_COOKIE, &next, "/sso", ttl),
            )
        }
        Err(e) => login_page(
            &app,
            super::status_of(&e),
            org,
            Some(super::denial(&e)),
            None,
            &form.next,
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /sso/callback`.
pub async fn callback(
    State(app): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let clear = session::set_cookie(&app, SSO_COOKIE, "", "/sso", 0);
    let fail = |status: StatusCode, text: String| {
        session::with_cookie(
            login_page(&app, status, "", Some(text), None, ""),
            clear.clone(),
        )
    };
    if let Some(err) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return fail(
            StatusCode::UNAUTHORIZED,
            format!(
                "Your identity provider refused the sign-in: {} {}",
                crate::model::truncate(&err, 100),
                crate::model::truncate(&detail, 300)
            ),
        );
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The identity provider's answer has no code or state; start again.".into(),
        );
    };
    if session::cookie(&headers, SSO_COOKIE) != Some(state.as_str()) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "This sign-in was not started in this browser (state mismatch); start again.".into(),
        );
    }
    let user = match crate::service::sso::finish(&app, &ctx, &state, &code).await {
        Ok(u) => u,
        Err(e) => return fail(super::status_of(&e), super::denial(&e)),
    };
    let entry = match load_principal(&app.store, &user.id).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return fail(
                StatusCode::UNAUTHORIZED,
                "Your user no longer exists.".into(),
            );
        }
        Err(e) => return super::error_page(None, e),
    };
    if let Err(e) =
        crate::service::auth::check_live(&app, &ctx, &entry, app.clock.now_ms(), "sign-in").await
    {
        return fail(StatusCode::UNAUTHORIZED, super::denial(&e));
    }
    match session::start(&app, &ctx, &entry.principal, None, "sso").await {
        Ok(cookie) => {
            let next = session::cookie(&headers, NEXT_COOKIE)
                .and_then(|v| {
                    url::form_urlencoded::parse(format!("n={v}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            let resp = signed_in(cookie, &next, &entry.principal.org_name);
            let resp = session::with_cookie(resp, clear);
            session::with_cookie(resp, session::set_cookie(&app, NEXT_COOKIE, "", "/sso", 0))
        }
        Err(e @ ServiceError::Unavailable(_)) | Err(e @ ServiceError::Internal(_)) => {
            super::error_page(None, e)
        }
        Err(e) => fail(super::status_of(&e), super::denial(&e)),
    }
}
