//! People after their creation: list, read, change, disable, delete
//! (issues 10 and 12). Disabling a person works like disabling a service
//! account: it moves a revocation watermark, so every credential issued
//! before it (API keys, exchanged federated tokens, console sessions) is
//! refused at once on every replica, and stays refused after a re-enable.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::instrument;

use crate::model::{OrgRole, Principal, check_email, truncate};
use crate::service::admin::UserOut;
use crate::service::{Page, RequestCtx, ServiceError, ServiceResult, conflict};
use crate::state::{App, Change};
use crate::store::UserRow;

/// One page of an org's users and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserPage {
    pub users: Vec<UserOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// A user with their teams.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserOut,
    pub teams: Vec<UserTeam>,
}

/// One team of a user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserTeam {
    pub team: String,
    pub role: String,
}

/// `PATCH /api/v1/users/{username}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub email: Option<String>,
    /// Org role; org admins only, and never the last enabled admin's.
    pub role: Option<OrgRole>,
}

/// Lists the org's users by username, a page at a time (org admins).
pub async fn list_users(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    org: &str,
    page: &Page,
) -> ServiceResult<UserPage> {
    let org = app.require_org_admin(ctx, p, org, "user.list").await?;
    let limit = page.limit()?;
    let rows = app.store.users_of_org(&org.id, page.after(), limit).await?;
    let next_after = crate::service::next_after(&rows, limit, |u| &u.username);
    Ok(UserPage {
        users: rows.into_iter().map(UserOut::from).collect(),
        next_after,
    })
}

/// A user of the caller's org; 404 for anyone else's (and for a missing one).
async fn org_user(app: &App, p: &Principal, username: &str) -> ServiceResult<UserRow> {
    match app.store.user_by_username(username).await? {
        Some(u) if u.org_id == p.org_id => Ok(u),
        _ => Err(ServiceError::NotFound(format!(
            "user \"{}\" not found",
            truncate(username, 64)
        ))),
    }
}

/// The user `username` if `p` may administer them: org admins, for `action`.
async fn admin_user(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
    action: &str,
) -> ServiceResult<UserRow> {
    let user = org_user(app, p, username).await?;
    app.require_org_admin(ctx, p, &p.org_name, action).await?;
    Ok(user)
}

/// Refuses a change that would leave the org without an enabled admin.
async fn keep_an_admin(app: &App, user: &UserRow, what: &str) -> ServiceResult<()> {
    if user.role == "admin"
        && !user.disabled
        && app.store.count_enabled_admins(&user.org_id).await? <= 1
    {
        return Err(ServiceError::Conflict(format!(
            "cannot {what} \"{}\": it is the organization's last enabled admin; make another user an admin first",
            user.username
        )));
    }
    Ok(())
}

/// One user with their teams (that user, or an org admin).
pub async fn get_user(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
) -> ServiceResult<UserDetail> {
    let user = org_user(app, p, username).await?;
    if user.id != p.id {
        app.require_org_admin(ctx, p, &p.org_name, "user.read")
            .await?;
    }
    let teams = app
        .store
        .memberships_of_user(&user.id)
        .await?
        .into_iter()
        .map(|m| UserTeam {
            team: m.team_name,
            role: m.role,
        })
        .collect();
    Ok(UserDetail {
        user: user.into(),
        teams,
    })
}

/// Changes a user's email or org role (org admins).
#[instrument(skip_all, fields(username = %username))]
pub async fn update_user(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
    upd: UserUpdate,
) -> ServiceResult<UserOut> {
    let user = admin_user(app, ctx, p, username, "user.update").await?;
    let email = match &upd.email {
        Some(e) => {
            check_email(e).map_err(ServiceError::BadRequest)?;
            e.to_ascii_lowercase()
        }
        None => user.email.clone(),
    };
    let role = upd
        .role
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| user.role.clone());
    if role != "admin" {
        keep_an_admin(app, &user, "demote").await?;
    }
    let mut tx = app.store.begin().await?;
    tx.update_user(&user.id, &email, &role)
        .await
        .map_err(ServiceError::from)
        .map_err(conflict(format!("a user with email {email:?}")))?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "user.update",
        &format!("user:{}", user.username),
        json!({"email": {"from": user.email, "to": email}, "role": {"from": user.role, "to": role}}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Principal(user.id.clone())).await;
    let user = org_user(app, p, &user.username).await?;
    Ok(user.into())
}

/// Disables or enables a person (org admins). Disabling moves the
/// revocation watermark: keys, exchanged tokens and sessions issued before
/// it stay refused after a re-enable (mint a new key, exchange again).
#[instrument(skip_all, fields(username = %username))]
pub async fn set_user_disabled(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
    disabled: bool,
) -> ServiceResult<UserOut> {
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let user = admin_user(app, ctx, p, username, action).await?;
    if disabled {
        keep_an_admin(app, &user, "disable").await?;
    }
    let mut tx = app.store.begin().await?;
    tx.set_user_disabled(&user.id, disabled, app.clock.now_ms())
        .await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        action,
        &format!("user:{}", user.username),
        json!({"id": user.id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Principal(user.id.clone())).await;
    let user = org_user(app, p, &user.username).await?;
    Ok(user.into())
}

/// Deletes a person (org admins): memberships gone, keys revoked, every
/// credential refused at once; the runs they logged or were attributed
/// keep their name. Their username and email can be used again.
#[instrument(skip_all, fields(username = %username))]
pub async fn delete_user(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    username: &str,
) -> ServiceResult<()> {
    let user = admin_user(app, ctx, p, username, "user.delete").await?;
    keep_an_admin(app, &user, "delete").await?;
    let mut tx = app.store.begin().await?;
    tx.delete_user(&user, app.clock.now_ms()).await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "user.delete",
        &format!("user:{}", user.username),
        json!({"id": user.id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(Change::Principal(user.id.clone())).await;
    app.changed(Change::ApiKeys).await;
    Ok(())
}
