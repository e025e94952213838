//! `POST /oidc/token` (RFC 6749 §5, RFC 7523, RFC 8693) and
//! `POST /oauth/introspect` (RFC 7662).

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

/// Reads an `application/x-www-form-urlencoded` body as ordered pairs.
async fn form_pairs(req: Request, state: &AppState) -> Result<Vec<(String, String)>, OAuthError> {
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
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).map_err(|_| {
        OAuthError::new(
            "invalid_request",
            "the body is not valid form encoding (or not UTF-8)",
        )
    })
}

pub async fn token(State(app): State<AppState>, ctx: RequestCtx, req: Request) -> Response {
    let pairs = match form_pairs(req, &app).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let result = match ExchangeRequest::from_form(&pairs) {
        Ok(r) => exchange::exchange(&app, &ctx, r).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(t) => no_store((StatusCode::OK, Json(t)).into_response()),
        Err(e) => e.into_response(),
    }
}

/// RFC 7662: any valid credential of the same org may ask; an unknown,
/// expired, revoked or other-org token is simply `{"active": false}`.
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
    let Some((_, token)) = pairs.iter().find(|(k, _)| k == "token") else {
        return OAuthError::new("invalid_request", "missing token (RFC 7662 §2.1)").into_response();
    };
    let out = exchange::introspect(&app, &ctx, &caller.principal, token).await;
    no_store(Json(out).into_response())
}
