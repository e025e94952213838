//! Handlers for the lifecycle after creation: service accounts, users,
//! teams, projects and issuers read, changed and deleted (issue 12), and
//! people disabled (issue 10). Translation only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Body, MaybeAuth, P, Q};
use crate::service::{Page, RequestCtx, accounts, projects, teams, users};
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/api/v1/service-accounts/{id}",
    tag = "admin",
    summary = "One service account, never secrets (admins of its scope)",
    params(("id" = String, Path, description = "service account id")),
    responses((status = 200, description = "success", body = crate::service::admin::SaOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(accounts::get_sa(&app, &ctx, &a.principal, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/service-accounts/{id}",
    tag = "admin",
    summary = "Change a service account: name, description, lifetime, an org account's default team, an external account's binding and mode (admins of its scope); applies to the next exchange on every replica",
    params(("id" = String, Path, description = "service account id")),
    request_body = crate::service::accounts::SaUpdate,
    responses((status = 200, description = "success", body = crate::service::admin::SaOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn update_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
    Body(req): Body<accounts::SaUpdate>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        accounts::update_sa(&app, &ctx, &a.principal, &id, req).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/service-accounts/{id}",
    tag = "admin",
    summary = "Delete a service account: every key and token refused at once; its runs and audit history stay (admins of its scope)",
    params(("id" = String, Path, description = "service account id")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    accounts::delete_sa(&app, &ctx, &a.principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/users",
    tag = "admin",
    summary = "The org's users by username, a page at a time (org admins)",
    params(("org" = String, Path, description = "organization name"), Page),
    responses((status = 200, description = "success", body = crate::service::users::UserPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_users(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Q(page): Q<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        users::list_users(&app, &ctx, &a.principal, &org, &page).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{username}",
    tag = "admin",
    summary = "A user with their teams (that user, org admins)",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "success", body = crate::service::users::UserDetail), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        users::get_user(&app, &ctx, &a.principal, &username).await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{username}",
    tag = "admin",
    summary = "Change a user's email or org role (org admins; the last enabled admin stays one)",
    params(("username" = String, Path, description = "username")),
    request_body = crate::service::users::UserUpdate,
    responses((status = 200, description = "success", body = crate::service::admin::UserOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn update_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
    Body(req): Body<users::UserUpdate>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        users::update_user(&app, &ctx, &a.principal, &username, req).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{username}",
    tag = "admin",
    summary = "Delete a user: memberships gone, every credential refused at once; runs keep their name (org admins)",
    params(("username" = String, Path, description = "username")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    users::delete_user(&app, &ctx, &a.principal, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/disable",
    tag = "admin",
    summary = "Disable a person: every credential issued before now (keys, exchanged tokens, sessions) refused at once, and after a re-enable (org admins)",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "success", body = crate::service::admin::UserOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn disable_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        users::set_user_disabled(&app, &ctx, &a.principal, &username, true).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/enable",
    tag = "admin",
    summary = "Enable a person again; credentials issued before the disable stay refused (org admins)",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "success", body = crate::service::admin::UserOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn enable_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        users::set_user_disabled(&app, &ctx, &a.principal, &username, false).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}",
    tag = "admin",
    summary = "One team (any member of the org)",
    params(("team" = String, Path, description = "team name")),
    responses((status = 200, description = "success", body = crate::service::admin::TeamOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_team(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(team): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(teams::get_team(&app, &a.principal, &team).await?))
}

/// `?delete_contents=true`: delete the team's projects and accounts with it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteTeam {
    /// Delete the projects (with their runs) and team-scoped service accounts too.
    #[serde(default)]
    pub delete_contents: bool,
}

#[utoipa::path(
    delete,
    path = "/api/v1/teams/{team}",
    tag = "admin",
    summary = "Delete a team; refused with what still lives in it unless delete_contents=true (org admins)",
    params(("team" = String, Path, description = "team name"), DeleteTeam),
    responses((status = 200, description = "what was deleted with it", body = crate::service::teams::TeamContentsOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "not empty: the message lists what lives in it", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_team(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
    Q(q): Q<DeleteTeam>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        teams::delete_team(&app, &ctx, &a.principal, &team, q.delete_contents).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/teams/{team}/members/{username}",
    tag = "admin",
    summary = "Remove a team member (team admins, org admins)",
    params(("team" = String, Path, description = "team name"), ("username" = String, Path, description = "username")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn remove_team_member(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((team, username)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    teams::remove_team_member(&app, &ctx, &a.principal, &team, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}/projects",
    tag = "platform",
    summary = "A team's projects the caller may read, by name, a page at a time",
    params(("team" = String, Path, description = "team name"), Page),
    responses((status = 200, description = "success", body = crate::service::projects::ProjectPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_projects(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(team): P<String>,
    Q(page): Q<Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        projects::list_projects(&app, &a.principal, &team, &page).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{entity}/{project}",
    tag = "platform",
    summary = "Delete a project with its runs and members (project admins)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_project(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((entity, project)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    projects::delete_project(&app, &ctx, &a.principal, &entity, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/projects/{entity}/{project}/members",
    tag = "platform",
    summary = "A project's explicit members by id, with their names, a page at a time; one query per page (whoever may read the project)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name"), Page),
    responses((status = 200, description = "success", body = crate::service::projects::ProjectMemberPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_project_members(
    State(app): State<AppState>,
    ctx: RequestCtx,
    MaybeAuth(a): MaybeAuth,
    P((entity, project)): P<(String, String)>,
    Q(page): Q<Page>,
) -> ApiResult<impl IntoResponse> {
    let p = a.as_ref().map(|a| &a.principal);
    Ok(Json(
        projects::list_project_members_page(&app, &ctx, p, &entity, &project, &page).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/projects/{entity}/{project}/members/{member}",
    tag = "platform",
    summary = "Remove an explicit project member: its id, a username or a service account's name (project admins)",
    params(("entity" = String, Path, description = "team name"), ("project" = String, Path, description = "project name"), ("member" = String, Path, description = "member id, username or service account name")),
    responses((status = 200, description = "the project after", body = crate::service::projects::ProjectOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "ambiguous name", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn remove_project_member(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((entity, project, member)): P<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        projects::remove_project_member(&app, &ctx, &a.principal, &entity, &project, &member)
            .await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/issuers/{id}",
    tag = "federation",
    summary = "One trusted issuer with its key-cache state (org admins)",
    params(("org" = String, Path, description = "organization name"), ("id" = String, Path, description = "issuer id")),
    responses((status = 200, description = "success", body = crate::service::federation::IssuerOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((org, id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::federation::get_issuer(&app, &ctx, &a.principal, &org, &id).await?,
    ))
}
