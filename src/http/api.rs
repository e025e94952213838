//! Handlers for the platform API: viewer, authz check, projects, runs.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Body, MaybeAuth, P};
use crate::service::RequestCtx;
use crate::service::projects::{
    self, AttributeTo, CheckRequest, NewProject, NewProjectMember, NewRun, VisibilityChange,
};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/v1/viewer",
    tag = "platform",
    summary = "The caller: principal kind, name, org, default entity, teams, scope",
    responses((status = 200, description = "success", body = serde_json::Value), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn viewer(Auth(a): Auth) -> impl IntoResponse {
    let mut v = json!(projects::viewer(&a.principal));
    v["credential"] = json!(match a.via {
        crate::service::auth::Via::ApiKey { .. } => "api_key",
        crate::service::auth::Via::AccessToken { .. } => "access_token",
    });
    Json(v)
}

#[utoipa::path(
    post,
    path = "/api/v1/authz/check",
    tag = "platform",
    summary = "The authorization decision for the caller's own credential",
    request_body = crate::service::projects::CheckRequest,
    responses((status = 200, description = "success", body = crate::service::projects::CheckOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn authz_check(
    State(app): State<AppState>,
    Auth(a): Auth,
    Body(req): Body<CheckRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(projects::check(&app, &a.principal, req).await?))
}

/// `X-WANDB-USERNAME` / `X-WANDB-USER-EMAIL`, what the W&B SDK sends for
/// WANDB_USERNAME / WANDB_USER_EMAIL; the body's `attribute_to` wins.
pub(crate) fn attribution_headers(headers: &HeaderMap) -> Option<AttributeTo> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    match (get("x-wandb-username"), get("x-wandb-user-email")) {
        (Some(u), _) => Some(AttributeTo {
            username: Some(u),
            email: None,
        }),
        (None, Some(e)) => Some(AttributeTo {
            username: None,
            email: Some(e),
        }),
        (None, None) => None,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/runs",
    tag = "platform",
    summary = "Log a run (no entity: the default entity; a missing project is created)",
    request_body = crate::service::projects::NewRun,
    responses((status = 201, description = "success", body = crate::service::projects::RunOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_run(
    State(app): State<AppState>,
    ctx: RequestCtx,
    headers: HeaderMap,
    Auth(a): Auth,
    Body(mut req): Body<NewRun>,
) -> ApiResult<impl IntoResponse> {
    if req.attribute_to.is_none() {
        req.attribute_to = attribution_headers(&headers);
    }
    let run = projects::create_run(&app, &ctx, &a.principal, req).await?;
    Ok((StatusCode::CREATED, Json(run)))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{entity}/{project}",
    tag = "platform",
    summary = "A project (anonymous callers: public projects only)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name")),
    responses((status = 200, description = "success", body = crate::service::projects::ProjectOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_project(
    State(app): State<AppState>,
    ctx: RequestCtx,
    MaybeAuth(a): MaybeAuth,
    P((entity, project)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let p = a.as_ref().map(|a| &a.principal);
    Ok(Json(
        projects::get_project(&app, &ctx, p, &entity, &project).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{entity}/{project}/runs",
    tag = "platform",
    summary = "The runs of a project, oldest first",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name")),
    responses((status = 200, description = "success", body = serde_json::Value), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_runs(
    State(app): State<AppState>,
    ctx: RequestCtx,
    MaybeAuth(a): MaybeAuth,
    P((entity, project)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let p = a.as_ref().map(|a| &a.principal);
    let runs = projects::list_runs(&app, &ctx, p, &entity, &project).await?;
    Ok(Json(json!({ "runs": runs })))
}

#[utoipa::path(
    post,
    path = "/api/v1/teams/{team}/projects",
    tag = "platform",
    summary = "Create a project in a team",
    params(("team" = String, Path, description = "team name")),
    request_body = crate::service::projects::NewProject,
    responses((status = 201, description = "success", body = crate::service::projects::ProjectOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_project(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
    Body(req): Body<NewProject>,
) -> ApiResult<impl IntoResponse> {
    let out = projects::create_project(&app, &ctx, &a.principal, &team, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/projects/{entity}/{project}",
    tag = "platform",
    summary = "Change a project's visibility (project admins)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name")),
    request_body = crate::service::projects::VisibilityChange,
    responses((status = 200, description = "success", body = crate::service::projects::ProjectOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn patch_project(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((entity, project)): P<(String, String)>,
    Body(req): Body<VisibilityChange>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        projects::set_visibility(&app, &ctx, &a.principal, &entity, &project, req).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/projects/{entity}/{project}/members",
    tag = "platform",
    summary = "Grant an explicit project membership (project admins)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name")),
    request_body = crate::service::projects::NewProjectMember,
    responses((status = 201, description = "success", body = crate::service::projects::ProjectOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn add_project_member(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((entity, project)): P<(String, String)>,
    Body(req): Body<NewProjectMember>,
) -> ApiResult<impl IntoResponse> {
    let out =
        projects::add_project_member(&app, &ctx, &a.principal, &entity, &project, req).await?;
    Ok((StatusCode::CREATED, Json(out)))
}

use axum::extract::State;
