//! Teams after their creation: read, remove a member, delete (issue 12).

use serde::Serialize;
use serde_json::json;
use tracing::instrument;

use crate::model::{Principal, truncate};
use crate::service::admin::TeamOut;
use crate::service::{RequestCtx, ServiceError, ServiceResult};
use crate::state::{App, Change};

/// One team of the caller's org (any member of the org).
pub async fn get_team(app: &App, p: &Principal, team: &str) -> ServiceResult<TeamOut> {
    let team = app.team_of(p, team).await?;
    Ok(TeamOut {
        id: team.id,
        name: team.name,
        org: p.org_name.clone(),
    })
}

/// Removes a member from a team (team admins, org admins); their access
/// through it ends at once on every replica.
#[instrument(skip_all, fields(team = %team))]
pub async fn remove_team_member(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    username: &str,
) -> ServiceResult<()> {
    let team = app
        .require_team_admin(ctx, p, team, "team.member.remove")
        .await?;
    let user = match app.store.user_by_username(username).await? {
        Some(u) if u.org_id == team.org_id => u,
        _ => {
            return Err(ServiceError::NotFound(format!(
                "user \"{}\" not found",
                truncate(username, 64)
            )));
        }
    };
    let mut tx = app.store.begin().await?;
    if !tx.remove_team_member(&team.id, &user.id).await? {
        return Err(ServiceError::NotFound(format!(
            "user \"{}\" is not a member of team \"{}\"",
            user.username, team.name
        )));
    }
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "team.member.remove",
        &format!("team:{}", team.name),
        json!({"username": user.username}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Principal(user.id.clone())).await;
    Ok(())
}

/// What still lives in a team, named in the refusal of its deletion.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamContentsOut {
    pub projects: Vec<String>,
    pub service_accounts: Vec<String>,
    pub org_service_accounts_defaulting_here: Vec<String>,
}

/// Deletes a team (org admins, as creation). Refused with the list of what
/// still lives in it (projects, team-scoped service accounts) unless
/// `delete_contents` is set; then those go with it: projects with their runs,
/// accounts with every credential. Org-scoped accounts whose default team it
/// is always refuse it: they belong to the org, so they are moved (PATCH
/// their `default_team`), never deleted by a team's deletion.
#[instrument(skip_all, fields(team = %team))]
pub async fn delete_team(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    delete_contents: bool,
) -> ServiceResult<TeamContentsOut> {
    let team = app.team_of(p, team).await?;
    app.require_org_admin(ctx, p, &p.org_name, "team.delete")
        .await?;
    let contents = app.store.team_contents(&team.id).await?;
    if !contents.org_accounts_defaulting.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "team \"{}\" is the default team of org-scoped service accounts ({}); give them another default team first (PATCH /api/v1/service-accounts/{{id}} {{\"default_team\": …}})",
            team.name,
            contents.org_accounts_defaulting.join(", ")
        )));
    }
    let empty = contents.projects.is_empty() && contents.team_accounts.is_empty();
    if !delete_contents && !empty {
        return Err(ServiceError::Conflict(format!(
            "team \"{}\" still has projects [{}] and service accounts [{}]; delete them first, or delete the team with everything in it (DELETE /api/v1/teams/{}?delete_contents=true)",
            team.name,
            contents.projects.join(", "),
            contents.team_accounts.join(", "),
            team.name
        )));
    }
    let members = app.store.members_of_team(&team.id).await?;
    let accounts = app.store.service_accounts_of_team(&team.id).await?;
    let out = TeamContentsOut {
        projects: contents.projects,
        service_accounts: contents.team_accounts,
        org_service_accounts_defaulting_here: Vec::new(),
    };
    let mut tx = app.store.begin().await?;
    tx.delete_team(&team.id, app.clock.now_ms())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => ServiceError::Conflict(format!(
                "team \"{}\" changed while it was being deleted; try again",
                team.name
            )),
            other => other.into(),
        })?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "team.delete",
        &format!("team:{}", team.name),
        json!({"id": team.id, "deleted": out, "members": members.len()}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Projects).await;
    for m in &members {
        app.changed(Change::Principal(m.user_id.clone())).await;
    }
    for sa in &accounts {
        if sa.auth == "external" {
            app.changed(Change::ExternalAccount(sa.id.clone())).await;
        } else {
            app.changed(Change::Principal(sa.id.clone())).await;
        }
    }
    if !accounts.is_empty() {
        app.changed(Change::ApiKeys).await;
    }
    Ok(out)
}
