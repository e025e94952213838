//! `POST /oidc/token` (RFC 6749 §5, RFC 7523, RFC 8693) and
//! `POST /oauth/introspect` (RFC 7662).

use axum::Json;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::form::Form;
use crate::http::extract::Auth;
use crate::service::RequestCtx;
use crate::service::exchange::{self, ExchangeRequest, OAuthError};
use crate::state::AppState;

/// RFC 6749 §5.1/§5.2: tokens and errors are never cached.
fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match self.code {
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "slow_down" => StatusCode::TOO_MANY_REQUESTS,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut resp = no_store(
            (
                status,
                Json(json!({"error": self.code, "error_description": self.description})),
            )
                .into_response(),
        );
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// Reads an `application/x-www-form-urlencoded` body as a [`Form`].
async fn form_pairs(req: Request, state: &AppState) -> Result<Form, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OAuthError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded (RFC 6749 §4.1.3)",
        ));
    }
    let bytes = axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::new("invalid_request", "the request body is too large")
            } else {
                OAuthError::new("invalid_request", "the request body could not be read")
            }
        })?;
    crate::form::parse_form(&bytes).map_err(|e| OAuthError::new("invalid_request", e))
}

#[utoipa::path(
    post,
    path = "/oidc/token",
    tag = "federation",
    summary = "Exchange a workload's JWT for an access token (RFC 7523 jwt-bearer, RFC 8693 token-exchange, client_credentials with an RFC 7523 client assertion)",
    request_body(content = crate::http::openapi::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the access token (Cache-Control: no-store)", body = crate::service::exchange::TokenResponse),
        (status = 400, description = "RFC 6749 §5.2 error naming the failed check", body = crate::http::openapi::OAuthErrorBody),
        (status = 429, description = "rate-limited (Retry-After)", body = crate::http::openapi::OAuthErrorBody),
        (status = 503, description = "the issuer's keys cannot be had (Retry-After)", body = crate::http::openapi::OAuthErrorBody),
    ),
    security(())
)]
pub async fn token(State(app): State<AppState>, ctx: RequestCtx, req: Request) -> Response {
    let start = std::time::Instant::now();
    let result = token_result(&app, &ctx, req).await;
    // Every answer of this endpoint is counted here, by outcome and code
    // (`fedgate_exchanges_total`, `fedgate_exchange_duration_seconds`).
    crate::metrics::exchange_done(
        result.as_ref().err().map(TokenRefusal::code),
        start.elapsed(),
    );
    match result {
        Ok(t) => no_store((StatusCode::OK, Json(t)).into_response()),
        Err(TokenRefusal::Rate(e, wait)) => {
            let mut resp = e.into_response();
            let secs = wait.as_secs().max(1).to_string();
            if let Ok(v) = HeaderValue::from_str(&secs) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(TokenRefusal::Refused(e)) => e.into_response(),
    }
}

/// Why a token request got no token.
enum TokenRefusal {
    /// Rate-limited: retry after this long.
    Rate(OAuthError, std::time::Duration),
    Refused(OAuthError),
}

impl TokenRefusal {
    fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Rate(e, _) | TokenRefusal::Refused(e) => e.code,
        }
    }
}

impl From<OAuthError> for TokenRefusal {
    fn from(e: OAuthError) -> Self {
        TokenRefusal::Refused(e)
    }
}

async fn token_result(
    app: &AppState,
    ctx: &RequestCtx,
    req: Request,
) -> Result<exchange::TokenResponse, TokenRefusal> {
    // In-process callers (benches, `oneshot`) have no peer address: not
    // limited. Behind `--trusted-proxies`, each client has its own bucket.
    if let Some(Err(wait)) = ctx.client_addr.map(|ip| app.limiter.check(ip)) {
        let e = OAuthError::new(
            "slow_down",
            "too many token requests from this address; retry after the Retry-After delay",
        );
        return Err(TokenRefusal::Rate(e, wait));
    }
    let pairs = form_pairs(req, app).await?;
    let request = ExchangeRequest::from_form(&pairs)?;
    Ok(exchange::exchange(app, ctx, request).await?)
}

/// RFC 7662: any valid credential of the same org may ask; an unknown,
/// expired, revoked or other-org token is simply `{"active": false}`.
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    tag = "federation",
    summary = "RFC 7662 token introspection (any valid credential of the same org)",
    request_body(content = crate::http::openapi::IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "{active, …} or {active: false}", body = serde_json::Value),
        (status = 400, description = "malformed request", body = crate::http::openapi::OAuthErrorBody),
        (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody),
    ),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn introspect(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(caller): Auth,
    req: Request,
) -> Response {
    let pairs = match form_pairs(req, &app).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(token) = pairs.get("token") else {
        return OAuthError::new("invalid_request", "missing token (RFC 7662 §2.1)").into_response();
    };
    let out = exchange::introspect(&app, &ctx, &caller.principal, token).await;
    no_store(Json(out).into_response())
}
