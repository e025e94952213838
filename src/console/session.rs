//! Console sessions: server-side rows (SQLite or PostgreSQL, so every replica
//! sees the same session), an HttpOnly SameSite=Lax cookie holding a random
//! secret (`Secure` when the public URL is https), an idle and an absolute
//! expiry. Every request re-checks the person through the same
//! `service::auth` path the API uses, so disabling them, moving their
//! revocation watermark or revoking the API key they signed in with ends the
//! session at once. Cookies are set here and nowhere else.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use crate::audit::AuditEvent;
use crate::model::Principal;
use crate::secrets::{random_base62, sha256_hex};
use crate::service::auth::{check_live, principal_entry};
use crate::service::{RequestCtx, ServiceError};
use crate::state::{App, AppState};
use crate::store::SessionRow;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fedgate_session";
/// The pre-sign-in form token (login CSRF), scoped to `/login`.
pub const LOGIN_COOKIE: &str = "fedgate_login";
/// The `state` of an SSO sign-in in flight, scoped to `/sso`.
pub const SSO_COOKIE: &str = "fedgate_sso";
/// A session unused this long ends.
pub const IDLE_MS: i64 = 60 * 60 * 1000;
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// `last_seen_at` is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// A signed-in person on a console page.
#[derive(Clone, Debug)]
pub struct Console {
    pub principal: Principal,
    /// SHA-256 of the cookie's secret.
    pub session: String,
    /// Form token for requests without Origin / Sec-Fetch-Site.
    pub csrf: String,
    pub ctx: RequestCtx,
}

/// Why there is no signed-in person.
pub enum NoSession {
    /// No cookie, or one the store does not know.
    SignedOut,
    /// The session existed and just ended (the reason is shown on the sign-in page).
    Ended(&'static str),
    /// The store is down.
    Failed(ServiceError),
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value with the console's attributes.
pub fn set_cookie(app: &App, name: &str, value: &str, path: &str, max_age_s: i64) -> HeaderValue {
    let secure = if app.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds a `Set-Cookie` to a response.
pub fn with_cookie(mut resp: Response, cookie: HeaderValue) -> Response {
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

/// Looks up and re-checks the session of a request.
pub async fn load(app: &App, ctx: &RequestCtx, headers: &HeaderMap) -> Result<Console, NoSession> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Err(NoSession::SignedOut);
    };
    let hash = sha256_hex(secret.as_bytes());
    let row = match app.store.session_by_hash(&hash).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(NoSession::SignedOut),
        Err(e) => return Err(NoSession::Failed(e.into())),
    };
    let now = app.clock.now_ms();
    let end = |reason: &'static str| {
        let hash = hash.clone();
        async move {
            if let Err(e) = app.store.delete_session(&hash).await {
                tracing::warn!(error = %e, "could not delete an ended console session");
            }
            NoSession::Ended(reason)
        }
    };
    if now - row.last_seen_at > IDLE_MS || now - row.created_at > ABSOLUTE_MS {
        return Err(end("expired").await);
    }
    let entry = match principal_entry(app, &row.user_id).await {
        Ok(e) => e,
        Err(ServiceError::Unauthenticated(_)) => return Err(end("ended").await),
        Err(e) => return Err(NoSession::Failed(e)),
    };
    match check_live(app, ctx, &entry, row.created_at, "console session").await {
        Ok(()) => {}
        Err(ServiceError::Unauthenticated(_)) => return Err(end("ended").await),
        Err(e) => return Err(NoSession::Failed(e)),
    }
    if let Some(key_id) = &row.key_id {
        let live = match app.store.api_keys_of(&row.user_id).await {
            Ok(keys) => keys
                .iter()
                .any(|k| &k.id == key_id && k.revoked_at.is_none()),
            Err(e) => return Err(NoSession::Failed(e.into())),
        };
        if !live {
            return Err(end("key_revoked").await);
        }
    }
    if now - row.last_seen_at > TOUCH_EVERY_MS
        && let Err(e) = app.store.touch_session(&hash, now).await
    {
        tracing::debug!(error = %e, "could not record console session use");
    }
    Ok(Console {
        principal: entry.principal.clone(),
        session: hash,
        csrf: row.csrf,
        ctx: ctx.clone(),
    })
}

/// Where a signed-out person is sent: the sign-in page, then back here.
pub fn to_login(path_and_query: &str, reason: Option<&str>) -> Response {
    let mut url = String::from("/login");
    let mut sep = '?';
    if let Some(r) = reason {
        url.push_str(&format!("?m={r}"));
        sep = '&';
    }
    if safe_next(path_and_query) && path_and_query != "/" {
        url.push(sep);
        url.push_str("next=");
        url.push_str(
            &url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>(),
        );
    }
    Redirect::to(&url).into_response()
}

/// A `next` that stays on this site: a path, not `//host` or a URL.
pub fn safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let ctx = RequestCtx::from_request_parts(parts, app)
            .await
            .unwrap_or_default();
        // Only a page (GET) is worth coming back to after signing in.
        let here = match parts.method {
            axum::http::Method::GET => parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/"),
            _ => "/",
        };
        match load(app, &ctx, &parts.headers).await {
            Ok(c) => Ok(c),
            Err(NoSession::SignedOut) => Err(to_login(here, None)),
            Err(NoSession::Ended(reason)) => Err(with_cookie(
                to_login(here, Some(reason)),
                set_cookie(app, SESSION_COOKIE, "", "/", 0),
            )),
            Err(NoSession::Failed(e)) => Err(super::error_page(None, e)),
        }
    }
}

/// Creates a session for `principal` (a user) and returns the cookie to set.
pub async fn start(
    app: &App,
    ctx: &RequestCtx,
    principal: &Principal,
    key_id: Option<String>,
    via: &str,
) -> Result<HeaderValue, ServiceError> {
    let now = app.clock.now_ms();
    // Housekeeping: sign-ins are rare, so stale rows are swept here.
    if let Err(e) = app
        .store
        .delete_stale_sessions(now - IDLE_MS, now - ABSOLUTE_MS)
        .await
    {
        tracing::debug!(error = %e, "could not sweep stale console sessions");
    }
    let secret = random_base62(43);
    app.store
        .insert_session(&SessionRow {
            id_hash: sha256_hex(secret.as_bytes()),
            user_id: principal.id.clone(),
            key_id,
            csrf: random_base62(32),
            created_at: now,
            last_seen_at: now,
        })
        .await?;
    app.audit_event(AuditEvent {
        org_id: principal.org_id.clone(),
        actor: crate::service::admin::actor(principal),
        action: "console.sign_in".into(),
        target: format!("org:{}", principal.org_name),
        outcome: "success".into(),
        reason: String::new(),
        request_id: ctx.request_id.clone(),
        details: json!({"via": via}).to_string(),
    })
    .await;
    Ok(set_cookie(
        app,
        SESSION_COOKIE,
        &secret,
        "/",
        ABSOLUTE_MS / 1000,
    ))
}

/// Ends the session of a request (Sign out) and returns the cookie that clears it.
pub async fn end(app: &App, c: &Console) -> HeaderValue {
    if let Err(e) = app.store.delete_session(&c.session).await {
        tracing::warn!(error = %e, "could not delete a console session at sign-out");
    }
    app.audit_event(AuditEvent {
        org_id: c.principal.org_id.clone(),
        actor: crate::service::admin::actor(&c.principal),
        action: "console.sign_out".into(),
        target: format!("org:{}", c.principal.org_name),
        outcome: "success".into(),
        reason: String::new(),
        request_id: c.ctx.request_id.clone(),
        details: "{}".into(),
    })
    .await;
    set_cookie(app, SESSION_COOKIE, "", "/", 0)
}
