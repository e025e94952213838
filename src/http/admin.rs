//! Handlers for administration: users, teams, service accounts, keys, audit.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use crate::http::error::ApiResult;
use crate::http::extract::{Auth, Body, P, Q};
use crate::service::RequestCtx;
use crate::service::admin::{self, NewMember, NewOrgSa, NewTeam, NewTeamSa, NewUser};
use crate::state::AppState;

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/users",
    tag = "admin",
    summary = "Create a user (org admins)",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::service::admin::NewUser,
    responses((status = 201, description = "success", body = crate::service::admin::UserOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_user(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<NewUser>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_user(&app, &ctx, &a.principal, &org, req).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/api-keys",
    tag = "admin",
    summary = "Create an API key for a user (that user, org admins); shown once",
    params(("username" = String, Path, description = "username")),
    responses((status = 201, description = "success", body = crate::service::admin::NewKeyOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_user_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_user_key(&app, &ctx, &a.principal, &username).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{username}/api-keys",
    tag = "admin",
    summary = "A user's API keys, never the secrets",
    params(("username" = String, Path, description = "username")),
    responses((status = 200, description = "success", body = serde_json::Value), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_user_keys(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    let keys = admin::list_user_keys(&app, &ctx, &a.principal, &username).await?;
    Ok(Json(json!({ "api_keys": keys })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{username}/api-keys/{key_id}",
    tag = "admin",
    summary = "Revoke a user's API key, effective at once",
    params(("username" = String, Path, description = "username"), ("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn revoke_user_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((username, key_id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    admin::revoke_user_key(&app, &ctx, &a.principal, &username, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/teams",
    tag = "admin",
    summary = "Create a team (org admins)",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::service::admin::NewTeam,
    responses((status = 201, description = "success", body = crate::service::admin::TeamOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_team(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<NewTeam>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_team(&app, &ctx, &a.principal, &org, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/teams",
    tag = "admin",
    summary = "The org's teams by name, a page at a time; one query per page (any member of the org)",
    params(("org" = String, Path, description = "organization name"), crate::service::Page),
    responses((status = 200, description = "success", body = crate::service::admin::TeamPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_teams(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(org): P<String>,
    Q(page): Q<crate::service::Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::list_teams_page(&app, &a.principal, &org, &page).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/teams/{team}/members",
    tag = "admin",
    summary = "Add a team member or change their role (team admins, org admins)",
    params(("team" = String, Path, description = "team name")),
    request_body = crate::service::admin::NewMember,
    responses((status = 201, description = "success", body = crate::service::admin::MemberOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn add_team_member(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
    Body(req): Body<NewMember>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::add_team_member(&app, &ctx, &a.principal, &team, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}/members",
    tag = "admin",
    summary = "A team's members by username, a page at a time; one query per page (any member of the org)",
    params(("team" = String, Path, description = "team name"), crate::service::Page),
    responses((status = 200, description = "success", body = crate::service::admin::MemberPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_team_members(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(team): P<String>,
    Q(page): Q<crate::service::Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::list_team_members_page(&app, &a.principal, &team, &page).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/service-accounts",
    tag = "admin",
    summary = "Create an org-scoped built-in service account (org admins); the API key is shown once",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::service::admin::NewOrgSa,
    responses((status = 201, description = "success", body = crate::service::admin::SaOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_org_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<NewOrgSa>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_org_sa(&app, &ctx, &a.principal, &org, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/service-accounts",
    tag = "admin",
    summary = "The org's service accounts by name, a page at a time, never secrets; one query per page (org admins)",
    params(("org" = String, Path, description = "organization name"), crate::service::Page),
    responses((status = 200, description = "success", body = crate::service::admin::SaPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_org_sas(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Q(page): Q<crate::service::Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::list_org_sas(&app, &ctx, &a.principal, &org, &page).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/teams/{team}/service-accounts",
    tag = "admin",
    summary = "Create a team-scoped service account, built-in or external (team admins, org admins)",
    params(("team" = String, Path, description = "team name")),
    request_body = crate::service::admin::NewTeamSa,
    responses((status = 201, description = "success", body = crate::service::admin::SaOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_team_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
    Body(req): Body<NewTeamSa>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_team_sa(&app, &ctx, &a.principal, &team, req).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/teams/{team}/service-accounts",
    tag = "admin",
    summary = "A team's team-scoped service accounts by name, a page at a time; one query per page (team admins, org admins)",
    params(("team" = String, Path, description = "team name"), crate::service::Page),
    responses((status = 200, description = "success", body = crate::service::admin::SaPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_team_sas(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
    Q(page): Q<crate::service::Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::list_team_sas(&app, &ctx, &a.principal, &team, &page).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/service-accounts/{id}/api-keys",
    tag = "admin",
    summary = "Create another API key for a built-in account (rotation); shown once",
    params(("id" = String, Path, description = "id")),
    responses((status = 201, description = "success", body = crate::service::admin::NewKeyOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_sa_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(admin::create_sa_key(&app, &ctx, &a.principal, &id).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/service-accounts/{id}/api-keys",
    tag = "admin",
    summary = "A service account's API keys, never the secrets",
    params(("id" = String, Path, description = "id")),
    responses((status = 200, description = "success", body = serde_json::Value), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_sa_keys(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    let keys = admin::list_sa_keys(&app, &ctx, &a.principal, &id).await?;
    Ok(Json(json!({ "api_keys": keys })))
}

#[utoipa::path(
    delete,
    path = "/api/v1/service-accounts/{id}/api-keys/{key_id}",
    tag = "admin",
    summary = "Revoke a service account's API key, effective at once",
    params(("id" = String, Path, description = "id"), ("key_id" = String, Path, description = "API key id")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn revoke_sa_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((id, key_id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    admin::revoke_sa_key(&app, &ctx, &a.principal, &id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/service-accounts/{id}/disable",
    tag = "admin",
    summary = "Disable a service account: its keys and tokens are refused at once",
    params(("id" = String, Path, description = "id")),
    responses((status = 200, description = "success", body = crate::service::admin::SaOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn disable_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::set_sa_disabled(&app, &ctx, &a.principal, &id, true).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/service-accounts/{id}/enable",
    tag = "admin",
    summary = "Enable a service account (credentials issued before the disable stay dead)",
    params(("id" = String, Path, description = "id")),
    responses((status = 200, description = "success", body = crate::service::admin::SaOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn enable_sa(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        admin::set_sa_disabled(&app, &ctx, &a.principal, &id, false).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/audit",
    tag = "admin",
    summary = "The org's audit events after `after` (a seq), oldest first (org admins)",
    params(("org" = String, Path, description = "organization name"), ("after" = Option<i64>, Query, description = "audit seq to start after"), ("limit" = Option<i64>, Query, description = "page size, 1-1000 (default 100)"), ("actor" = Option<String>, Query, description = "only this actor, e.g. user:alice"), ("action" = Option<String>, Query, description = "only this action, e.g. service_account.create"), ("outcome" = Option<String>, Query, description = "only this outcome: success, denied, …")),
    responses((status = 200, description = "success", body = serde_json::Value), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn audit(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Q(q): Q<AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let filter = crate::store::AuditFilter {
        actor: q.actor.unwrap_or_default(),
        action: q.action.unwrap_or_default(),
        outcome: q.outcome.unwrap_or_default(),
    };
    let events =
        admin::list_audit_filtered(&app, &ctx, &a.principal, &org, &filter, q.after, q.limit)
            .await?;
    Ok(Json(json!({ "events": events })))
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/issuers",
    tag = "federation",
    summary = "Register a trusted issuer; its keys are fetched and checked before it is saved (org admins)",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::service::federation::NewIssuer,
    responses((status = 201, description = "success", body = crate::service::federation::IssuerOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already registered: the error carries existing_id and update (the PATCH that changes it)", body = serde_json::Value)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn create_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<crate::service::federation::NewIssuer>,
) -> ApiResult<axum::response::Response> {
    match crate::service::federation::create_issuer(&app, &ctx, &a.principal, &org, req).await {
        Ok(out) => Ok((StatusCode::CREATED, Json(out)).into_response()),
        // A duplicate names the registration that exists and how to change it.
        Err(crate::service::ServiceError::Exists {
            message,
            existing_id,
            update,
        }) => Ok((
            StatusCode::CONFLICT,
            Json(json!({"error": {
                "code": "conflict",
                "message": message,
                "existing_id": existing_id,
                "update": update,
            }})),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/issuers",
    tag = "federation",
    summary = "The org's trusted issuers by URL with their key-cache state, a page at a time; one query per page (org admins)",
    params(("org" = String, Path, description = "organization name"), crate::service::Page),
    responses((status = 200, description = "success", body = crate::service::federation::IssuerPage), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn list_issuers(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Q(page): Q<crate::service::Page>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::federation::list_issuers_page(&app, &ctx, &a.principal, &org, &page)
            .await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org}/issuers/{id}",
    tag = "federation",
    summary = "Change a trusted issuer's settings (e.g. rotate a static JWKS); checked and linted like registration (org admins)",
    params(("org" = String, Path, description = "organization name"), ("id" = String, Path, description = "id")),
    request_body = crate::service::federation::IssuerUpdate,
    responses((status = 200, description = "success", body = crate::service::federation::IssuerOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn update_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((org, id)): P<(String, String)>,
    Body(req): Body<crate::service::federation::IssuerUpdate>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::federation::update_issuer(&app, &ctx, &a.principal, &org, &id, req).await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/issuers/{id}",
    tag = "federation",
    summary = "Delete a trusted issuer no account is bound to (org admins)",
    params(("org" = String, Path, description = "organization name"), ("id" = String, Path, description = "id")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody), (status = 409, description = "already exists / in use", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((org, id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    crate::service::federation::delete_issuer(&app, &ctx, &a.principal, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/issuers/{id}/refresh",
    tag = "federation",
    summary = "Fetch an issuer's keys now and show the key-cache state (org admins)",
    params(("org" = String, Path, description = "organization name"), ("id" = String, Path, description = "id")),
    responses((status = 200, description = "success", body = serde_json::Value), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn refresh_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((org, id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::federation::refresh_issuer(&app, &ctx, &a.principal, &org, &id).await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The workload JWT to evaluate.
    token: String,
    /// `sa:<org>/<team>/<name>`, as in the exchange.
    audience: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org}/federation/explain",
    tag = "federation",
    summary = "Dry run of an exchange: every check and its outcome; mints nothing (org admins)",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::http::admin::ExplainRequest,
    responses((status = 200, description = "success", body = serde_json::Value), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn explain(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<ExplainRequest>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::exchange::explain(
            &app,
            &ctx,
            &a.principal,
            &org,
            &req.token,
            req.audience.as_deref(),
        )
        .await?,
    ))
}

#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org}/sso",
    tag = "admin",
    summary = "Set the org's OpenID Connect provider for console sign-in (org admins); the redirect URI is <public-url>/sso/callback",
    params(("org" = String, Path, description = "organization name")),
    request_body = crate::service::sso::SsoSettings,
    responses((status = 200, description = "success", body = crate::service::sso::SsoOut), (status = 400, description = "bad input (the message says what)", body = crate::http::openapi::ErrorBody), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found (or another organization's)", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn put_sso(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<crate::service::sso::SsoSettings>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(
        crate::service::sso::put_settings(&app, &ctx, &a.principal, &org, req).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org}/sso",
    tag = "admin",
    summary = "The org's SSO settings, never the client secret (org admins)",
    params(("org" = String, Path, description = "organization name")),
    responses((status = 200, description = "success", body = crate::service::sso::SsoOut), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found, or SSO not set up", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn get_sso(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
) -> ApiResult<impl IntoResponse> {
    match crate::service::sso::get_settings(&app, &ctx, &a.principal, &org).await? {
        Some(out) => Ok(Json(out)),
        None => Err(crate::http::error::ApiError::not_found(format!(
            "single sign-on is not set up for organization \"{}\"",
            crate::model::truncate(&org, 64)
        ))),
    }
}

#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org}/sso",
    tag = "admin",
    summary = "Turn SSO off for the org (org admins)",
    params(("org" = String, Path, description = "organization name")),
    responses((status = 204, description = "done"), (status = 401, description = "no or bad credential", body = crate::http::openapi::ErrorBody), (status = 403, description = "denied (the reason and the rule)", body = crate::http::openapi::ErrorBody), (status = 404, description = "not found, or SSO not set up", body = crate::http::openapi::ErrorBody)),
    security(("bearer" = []), ("basic" = []))
)]
pub async fn delete_sso(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
) -> ApiResult<impl IntoResponse> {
    crate::service::sso::delete_settings(&app, &ctx, &a.principal, &org).await?;
    Ok(StatusCode::NO_CONTENT)
}
