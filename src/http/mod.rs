//! HTTP: only translation. Extract, call a service, map its errors.

pub mod admin;
pub mod api;
pub mod error;
pub mod extract;
pub mod graphql;
pub mod lifecycle;
pub mod openapi;
pub mod ops;
pub mod serve;
pub mod token;
pub mod traces;
pub mod wellknown;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::http::extract::{ClientAddr, RequestId};
use crate::state::AppState;

/// Largest request body accepted anywhere (the token endpoint's form included).
pub const MAX_BODY_BYTES: usize = 128 * 1024;

/// The whole HTTP surface; the binary and the tests use this one factory.
/// Every route is registered with `routes!` next to its OpenAPI annotation,
/// so `/openapi.json` describes exactly what is served.
pub fn router(state: AppState) -> Router {
    let (router, doc) = documented_routes().split_for_parts();
    let doc = Arc::new(doc);
    router
        .merge(crate::console::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(doc))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The OpenAPI document alone (for tools and tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(token::token))
        .routes(routes!(token::introspect))
        .routes(routes!(wellknown::openid_configuration))
        .routes(routes!(wellknown::jwks))
        .routes(routes!(graphql::graphql))
        .routes(routes!(api::viewer))
        .routes(routes!(api::authz_check))
        .routes(routes!(api::create_run))
        .routes(routes!(
            api::get_project,
            api::patch_project,
            lifecycle::delete_project
        ))
        .routes(routes!(api::list_runs))
        .routes(routes!(traces::create_trace))
        .routes(routes!(traces::list_traces))
        .routes(routes!(
            api::add_project_member,
            lifecycle::list_project_members
        ))
        .routes(routes!(api::create_project, lifecycle::list_projects))
        .routes(routes!(lifecycle::remove_project_member))
        .routes(routes!(admin::create_user, lifecycle::list_users))
        .routes(routes!(
            lifecycle::get_user,
            lifecycle::update_user,
            lifecycle::delete_user
        ))
        .routes(routes!(lifecycle::disable_user))
        .routes(routes!(lifecycle::enable_user))
        .routes(routes!(admin::create_user_key, admin::list_user_keys))
        .routes(routes!(admin::revoke_user_key))
        .routes(routes!(admin::create_team, admin::list_teams))
        .routes(routes!(admin::add_team_member, admin::list_team_members))
        .routes(routes!(lifecycle::get_team, lifecycle::delete_team))
        .routes(routes!(lifecycle::remove_team_member))
        .routes(routes!(admin::create_org_sa, admin::list_org_sas))
        .routes(routes!(admin::create_team_sa, admin::list_team_sas))
        .routes(routes!(admin::create_sa_key, admin::list_sa_keys))
        .routes(routes!(admin::revoke_sa_key))
        .routes(routes!(
            lifecycle::get_sa,
            lifecycle::update_sa,
            lifecycle::delete_sa
        ))
        .routes(routes!(admin::disable_sa))
        .routes(routes!(admin::enable_sa))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::create_issuer, admin::list_issuers))
        .routes(routes!(
            admin::delete_issuer,
            admin::update_issuer,
            lifecycle::get_issuer
        ))
        .routes(routes!(admin::refresh_issuer))
        .routes(routes!(admin::explain))
        .routes(routes!(admin::put_sso, admin::get_sso, admin::delete_sso))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    summary = "This OpenAPI 3 document",
    responses((status = 200, description = "success", body = serde_json::Value)),
    security(())
)]
async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(doc.as_ref()).into_response()
}

/// `/metrics` alone, for `--metrics-listen`: an address operators can keep
/// off the public network.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `GET /metrics`: Prometheus text format; the gauges are read now. With
/// `--metrics-listen` it is served only there, and 404 here.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text format)",
    responses((status = 200, description = "success", body = String, content_type = "text/plain")),
    security(())
)]
async fn metrics(State(app): State<AppState>) -> Response {
    if app.config.metrics_listen.is_some() {
        return ApiError::not_found("metrics are served on the separate --metrics-listen address")
            .into_response();
    }
    render_metrics(State(app)).await
}

async fn render_metrics(State(app): State<AppState>) -> Response {
    let (trusted_issuers, external_accounts) = app.index.sizes();
    let body = crate::metrics::render(crate::metrics::Snapshot {
        audit_queue_depth: app.audit.depth(),
        trusted_issuers,
        external_accounts,
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Around every request, in one layer (each `from_fn` layer costs a boxed
/// future and a clone of the inner service per request):
/// - fedgate's own id for it, sent back in `X-Request-Id` and recorded in
///   the audit log; the caller's `X-Request-Id` (if sane) is recorded beside
///   it as `client_request_id`, never instead of it (a caller must not choose
///   the id an operator finds its events by);
/// - latency by matched route (a template, never the raw path, so the label
///   set stays bounded);
/// - the client's address: the peer, or behind `--trusted-proxies` the
///   rightmost untrusted `X-Forwarded-For` hop (`crate::proxy`).
/// - the request timeout (`--request-timeout`): body upload and handler
///   together; past it the handler's future is dropped and the caller gets
///   503 `request_timeout` with `Retry-After`.
async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = std::time::Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let client = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map(String::from)
        .unwrap_or_default();
    let id = crate::secrets::new_id("req");
    let header = HeaderValue::from_str(&id);
    req.extensions_mut().insert(RequestId(id.clone()));
    if let Some(peer) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
    {
        let client = app.config.trusted_proxies.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    let ids = crate::audit::RequestIds { own: id, client };
    let limit = std::time::Duration::from_secs(app.config.request_timeout_s);
    let run = crate::audit::REQUEST_IDS.scope(ids, next.run(req));
    let mut resp = match tokio::time::timeout(limit, run).await {
        Ok(resp) => resp,
        Err(_) => timed_out(limit),
    };
    if let Ok(v) = header {
        resp.headers_mut().insert("x-request-id", v);
    }
    crate::metrics::http_request(
        route.as_ref().map(MatchedPath::as_str),
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed(),
    );
    resp
}

fn timed_out(limit: std::time::Duration) -> Response {
    tracing::warn!(limit_s = limit.as_secs(), "request timed out");
    // A 503 carries `Retry-After: 1` (ApiError's answer).
    ApiError {
        status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
        code: "request_timeout",
        message: format!(
            "the request took longer than {} s (--request-timeout); retry",
            limit.as_secs()
        ),
        rule: None,
    }
    .into_response()
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
