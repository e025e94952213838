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

pub async fn viewer(Auth(a): Auth) -> impl IntoResponse {
    let mut v = json!(projects::viewer(&a.principal));
    v["credential"] = json!(match a.via {
        crate::service::auth::Via::ApiKey { .. } => "api_key",
        crate::service::auth::Via::AccessToken { .. } => "access_token",
    });
    Json(v)
}

pub async fn authz_check(
    State(app): State<AppState>,
    Auth(a): Auth,
    Body(req): Body<CheckRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(projects::check(&app, &a.principal, req).await?))
}

/// `X-WANDB-USERNAME` / `X-WANDB-USER-EMAIL`, what the W&B SDK sends for
/// WANDB_USERNAME / WANDB_USER_EMAIL; the body's `attribute_to` wins.
fn attribution_headers(headers: &HeaderMap) -> Option<AttributeTo> {
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
