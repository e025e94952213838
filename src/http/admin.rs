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

pub async fn list_user_keys(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(username): P<String>,
) -> ApiResult<impl IntoResponse> {
    let keys = admin::list_user_keys(&app, &ctx, &a.principal, &username).await?;
    Ok(Json(json!({ "api_keys": keys })))
}

pub async fn revoke_user_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((username, key_id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    admin::revoke_user_key(&app, &ctx, &a.principal, &username, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

pub async fn list_teams(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(org): P<String>,
) -> ApiResult<impl IntoResponse> {
    let teams = admin::list_teams(&app, &a.principal, &org).await?;
    Ok(Json(json!({ "teams": teams })))
}

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

pub async fn list_team_members(
    State(app): State<AppState>,
    Auth(a): Auth,
    P(team): P<String>,
) -> ApiResult<impl IntoResponse> {
    let members = admin::list_team_members(&app, &a.principal, &team).await?;
    Ok(Json(json!({ "members": members })))
}

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

pub async fn list_org_sas(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
) -> ApiResult<impl IntoResponse> {
    let sas = admin::list_org_sas(&app, &ctx, &a.principal, &org).await?;
    Ok(Json(json!({ "service_accounts": sas })))
}

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

pub async fn list_team_sas(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(team): P<String>,
) -> ApiResult<impl IntoResponse> {
    let sas = admin::list_team_sas(&app, &ctx, &a.principal, &team).await?;
    Ok(Json(json!({ "service_accounts": sas })))
}

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

pub async fn list_sa_keys(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(id): P<String>,
) -> ApiResult<impl IntoResponse> {
    let keys = admin::list_sa_keys(&app, &ctx, &a.principal, &id).await?;
    Ok(Json(json!({ "api_keys": keys })))
}

pub async fn revoke_sa_key(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((id, key_id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    admin::revoke_sa_key(&app, &ctx, &a.principal, &id, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
}

pub async fn audit(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Q(q): Q<AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let events = admin::list_audit(&app, &ctx, &a.principal, &org, q.after, q.limit).await?;
    Ok(Json(json!({ "events": events })))
}

pub async fn create_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
    Body(req): Body<crate::service::federation::NewIssuer>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(crate::service::federation::create_issuer(&app, &ctx, &a.principal, &org, req).await?),
    ))
}

pub async fn list_issuers(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P(org): P<String>,
) -> ApiResult<impl IntoResponse> {
    let issuers = crate::service::federation::list_issuers(&app, &ctx, &a.principal, &org).await?;
    Ok(Json(json!({ "issuers": issuers })))
}

pub async fn delete_issuer(
    State(app): State<AppState>,
    ctx: RequestCtx,
    Auth(a): Auth,
    P((org, id)): P<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    crate::service::federation::delete_issuer(&app, &ctx, &a.principal, &org, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    token: String,
    audience: Option<String>,
}

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
