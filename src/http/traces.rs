//! Handlers for LLM traces: `POST /api/v1/traces` and
//! `GET /api/v1/projects/{entity}/{project}/traces`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use crate::http::api::attribution_headers;
use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Body, MaybeAuth, P, Q};
use crate::service::RequestCtx;
use crate::service::traces::{self, NewTrace, TraceQuery};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/traces",
    tag = "platform",
    summary = "Log one call of an LLM trace (the rules, default entity and attribution of runs)",
    request_body = crate::service::traces::NewTrace,
    responses((status = 201, description = "success", body = crate::service::traces::TraceOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_trace(
    State(app): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Auth(a): Auth,
    Body(mut req): Body<NewTrace>,
) -> ApiResult<impl IntoResponse> {
    if req.attribute_to.is_none() {
        req.attribute_to = attribution_headers(&headers);
    }
    let out = traces::create_trace(&app, &ctx, &a.principal, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{entity}/{project}/traces",
    tag = "platform",
    summary = "The calls of a project's traces (or of one trace), a page at a time, oldest first",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name"), TraceQuery),
    responses((status = 200, description = "success", body = crate::service::traces::TracePage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_traces(
    State(app): State<AppState>,
    ctx: RequestCtx,
    MaybeAuth(a): MaybeAuth,
    P((entity, project)): P<(String, String)>,
    Q(q): Q<TraceQuery>,
) -> ApiResult<impl IntoResponse> {
    let p = a.as_ref().map(|a| &a.principal);
    let page = traces::list_traces(&app, &ctx, p, &entity, &project, q).await?;
    Ok(Json(page))
}
