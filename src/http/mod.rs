//! HTTP: only translation. Extract, call a service, map its errors.

pub mod admin;
pub mod api;
pub mod error;
pub mod extract;
pub mod ops;
pub mod token;
pub mod wellknown;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

use crate::http::error::ApiError;
use crate::http::extract::RequestId;
use crate::state::AppState;

/// Largest request body accepted anywhere (the token endpoint's form included).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// The whole HTTP surface; the binary and the tests use this one factory.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/viewer", get(api::viewer))
        .route("/authz/check", post(api::authz_check))
        .route("/runs", post(api::create_run))
        .route(
            "/projects/{entity}/{project}",
            get(api::get_project).patch(api::patch_project),
        )
        .route("/projects/{entity}/{project}/runs", get(api::list_runs))
        .route(
            "/projects/{entity}/{project}/members",
            post(api::add_project_member),
        )
        .route("/orgs/{org}/users", post(admin::create_user))
        .route(
            "/users/{username}/api-keys",
            post(admin::create_user_key).get(admin::list_user_keys),
        )
        .route(
            "/users/{username}/api-keys/{key_id}",
            delete(admin::revoke_user_key),
        )
        .route(
            "/orgs/{org}/teams",
            post(admin::create_team).get(admin::list_teams),
        )
        .route(
            "/teams/{team}/members",
            post(admin::add_team_member).get(admin::list_team_members),
        )
        .route("/teams/{team}/projects", post(api::create_project))
        .route(
            "/orgs/{org}/service-accounts",
            post(admin::create_org_sa).get(admin::list_org_sas),
        )
        .route(
            "/teams/{team}/service-accounts",
            post(admin::create_team_sa).get(admin::list_team_sas),
        )
        .route(
            "/service-accounts/{id}/api-keys",
            post(admin::create_sa_key).get(admin::list_sa_keys),
        )
        .route(
            "/service-accounts/{id}/api-keys/{key_id}",
            delete(admin::revoke_sa_key),
        )
        .route("/service-accounts/{id}/disable", post(admin::disable_sa))
        .route("/service-accounts/{id}/enable", post(admin::enable_sa))
        .route("/orgs/{org}/audit", get(admin::audit))
        .route(
            "/orgs/{org}/issuers",
            post(admin::create_issuer).get(admin::list_issuers),
        )
        .route("/orgs/{org}/issuers/{id}", delete(admin::delete_issuer))
        .route(
            "/orgs/{org}/issuers/{id}/refresh",
            post(admin::refresh_issuer),
        )
        .route("/orgs/{org}/federation/explain", post(admin::explain));
    Router::new()
        .nest("/api/v1", api)
        .route("/oidc/token", post(token::token))
        .route("/oauth/introspect", post(token::introspect))
        .route(
            "/.well-known/openid-configuration",
            get(wellknown::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(wellknown::jwks))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: axum::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "method not allowed on this endpoint".into(),
        rule: None,
    }
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        code: "internal",
        message: "internal error".into(),
        rule: None,
    }
    .into_response()
}

/// Gives each request an id (the caller's `X-Request-Id` if sane), echoed back
/// and recorded in the audit log.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(String::from)
        .unwrap_or_else(|| crate::secrets::new_id("req"));
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
