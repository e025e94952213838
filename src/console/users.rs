//! The org dashboard's Users tab: the org's people and their roles, a page
//! at a time; org admins add people, change their email or role, mint and
//! revoke their API keys (a new one shown once), disable, enable and delete
//! them (after a confirmation page).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{
    ConfirmForm, ConfirmPage, Layout, ListQuery, Outcome, Pager, error_page, not_confirmed,
    render_status,
};
use crate::model::OrgRole;
use crate::service::admin::{self, NewUser};
use crate::service::users::{self as people, UserUpdate};
use crate::service::{ServiceError, ServiceResult};
use crate::state::{App, AppState};

/// A person as a row shows them.
pub struct UserView {
    pub username: String,
    pub email: String,
    pub role: String,
    pub enabled: bool,
    /// Whether Disable/Enable and Delete are offered (not on oneself).
    pub can_toggle: bool,
    /// Their API keys (org admins see them), never the secrets.
    pub keys: Vec<super::accounts::KeyView>,
    /// Just created: shown once.
    pub new_key: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "org_users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub can_admin: bool,
    pub users: Vec<UserView>,
    pub denied: Option<String>,
    pub pager: Pager,
}

async fn render(app: &App, c: &Console, org: &str, outcome: Outcome, q: &ListQuery) -> Response {
    render_with_key(app, c, org, outcome, q, None).await
}

/// The Users tab; `new_key` is (username, key) of a key just minted.
async fn render_with_key(
    app: &App,
    c: &Console,
    org: &str,
    outcome: Outcome,
    q: &ListQuery,
    new_key: Option<(String, String)>,
) -> Response {
    let result: ServiceResult<UsersPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let page = q.page()?;
        let (users, denied, pager) =
            match people::list_users(app, &c.ctx, &c.principal, org, &page).await {
                Ok(page) => {
                    let mut rows = Vec::new();
                    for u in page.users {
                        let keys = admin::list_user_keys(app, &c.ctx, &c.principal, &u.username)
                            .await?
                            .into_iter()
                            .map(super::accounts::key_view)
                            .collect();
                        rows.push(UserView {
                            can_toggle: u.username != c.principal.name,
                            enabled: !u.disabled,
                            keys,
                            new_key: new_key
                                .as_ref()
                                .filter(|(name, _)| *name == u.username)
                                .map(|(_, k)| k.clone()),
                            username: u.username,
                            email: u.email,
                            role: u.role,
                        });
                    }
                    (
                        rows,
                        None,
                        q.pager(&format!("/org/{org}/users"), page.next_after.as_deref()),
                    )
                }
                Err(e @ ServiceError::Forbidden { .. }) => {
                    (Vec::new(), Some(super::denial(&e)), Pager::default())
                }
                Err(e) => return Err(e),
            };
        let mut layout = c.layout(format!("{org} · Users"));
        outcome.apply(&mut layout);
        Ok(UsersPage {
            layout,
            tab: "users",
            can_admin,
            users,
            denied,
            pager,
        })
    }
    .await;
    outcome.respond(c, result)
}

/// `GET /org/<org>/users?after=&limit=`.
pub async fn page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    render(&app, &c, &org, Outcome::default(), &q).await
}

#[derive(Debug, Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// `POST /org/<org>/users`.
pub async fn create(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<NewUserForm>,
) -> Response {
    let outcome = match OrgRole::parse(&f.role) {
        None => Outcome::failed(&ServiceError::BadRequest(
            "role must be admin or member".into(),
        )),
        Some(role) => {
            let req = NewUser {
                username: f.username.trim().to_string(),
                email: f.email.trim().to_string(),
                role,
            };
            match admin::create_user(&app, &c.ctx, &c.principal, &org, req).await {
                Ok(u) => Outcome::done(format!("Created user {}.", u.username)),
                Err(e) => Outcome::failed(&e),
            }
        }
    };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}

/// `POST /org/<org>/users/<username>/<disable|enable|keys>`: disabling a
/// person refuses every credential of theirs and ends their console sessions
/// at once; `keys` mints an API key for them, shown once.
pub async fn toggle(
    State(app): State<AppState>,
    c: Console,
    Path((org, username, action)): Path<(String, String, String)>,
) -> Response {
    let outcome = match action.as_str() {
        "disable" | "enable" => match people::set_user_disabled(
            &app,
            &c.ctx,
            &c.principal,
            &username,
            action == "disable",
        )
        .await
        {
            Ok(u) if u.disabled => {
                if let Ok(row) = app.store.user_by_username(&u.username).await
                    && let Some(row) = row
                    && let Err(e) = app.store.delete_sessions_of_user(&row.id).await
                {
                    tracing::warn!(error = %e, "could not delete a disabled person's sessions");
                }
                Outcome::done(format!("Disabled {}; their sessions ended.", u.username))
            }
            Ok(u) => Outcome::done(format!("Enabled {}.", u.username)),
            Err(e) => Outcome::failed(&e),
        },
        "keys" => {
            return match admin::create_user_key(&app, &c.ctx, &c.principal, &username).await {
                Ok(k) => {
                    let notice = format!(
                        "Created an API key for {username}. Copy it now: it is shown only once."
                    );
                    let q = ListQuery::default();
                    let key = Some((username.clone(), k.api_key));
                    render_with_key(&app, &c, &org, Outcome::done(notice), &q, key).await
                }
                Err(e) => render(&app, &c, &org, Outcome::failed(&e), &ListQuery::default()).await,
            };
        }
        other => Outcome::failed(&ServiceError::NotFound(format!(
            "no action {:?} on users",
            crate::model::truncate(other, 32)
        ))),
    };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}

/// `POST /org/<org>/users/<username>/keys/<key>/revoke`: the key stops
/// working at once, and so does a console session signed in with it.
pub async fn revoke_key(
    State(app): State<AppState>,
    c: Console,
    Path((org, username, key)): Path<(String, String, String)>,
) -> Response {
    let outcome = match admin::revoke_user_key(&app, &c.ctx, &c.principal, &username, &key).await {
        Ok(()) => Outcome::done(format!(
            "Revoked the API key of {username}; it stops working at once."
        )),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}

// ---------------------------------------------------------------- edit, delete

/// The Edit form of a person: email and org role.
#[derive(Debug, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub role: String,
}

#[derive(askama::Template)]
#[template(path = "user_edit.html")]
pub struct EditPage {
    pub layout: Layout,
    pub username: String,
    pub action: String,
    pub back: String,
    pub form: UserForm,
    pub roles: Vec<&'static str>,
    pub error: Option<String>,
}

async fn edit_render(
    app: &App,
    c: &Console,
    org: &str,
    username: &str,
    form: Option<UserForm>,
    error: Option<&ServiceError>,
) -> Response {
    let result: ServiceResult<EditPage> = async {
        app.org_of(&c.principal, org).await?;
        // Reading another person is the org admins' (the service's rule);
        // saving is too.
        let user = people::get_user(app, &c.ctx, &c.principal, username).await?;
        let mut layout = c.layout(format!("Edit {}", user.user.username));
        layout.error = None;
        Ok(EditPage {
            layout,
            action: format!("/org/{org}/users/{}/edit", user.user.username),
            back: format!("/org/{org}/users"),
            form: form.unwrap_or(UserForm {
                email: user.user.email,
                role: user.user.role,
            }),
            roles: vec!["member", "admin"],
            error: error.map(super::denial),
            username: user.user.username,
        })
    }
    .await;
    match result {
        Ok(p) => {
            let status = error.map_or(axum::http::StatusCode::OK, super::status_of);
            render_status(status, &p)
        }
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /org/<org>/users/<username>/edit`.
pub async fn edit_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, username)): Path<(String, String)>,
) -> Response {
    edit_render(&app, &c, &org, &username, None, None).await
}

/// `POST /org/<org>/users/<username>/edit`: the same change as `PATCH /api/v1/users/{username}`.
pub async fn edit(
    State(app): State<AppState>,
    c: Console,
    Path((org, username)): Path<(String, String)>,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    if let Err(e) = app.org_of(&c.principal, &org).await {
        return error_page(Some(&c), e);
    }
    let result = match OrgRole::parse(&f.role) {
        None => Err(ServiceError::BadRequest(
            "role must be admin or member".into(),
        )),
        Some(role) => {
            let upd = UserUpdate {
                email: Some(f.email.trim().to_string()),
                role: Some(role),
            };
            people::update_user(&app, &c.ctx, &c.principal, &username, upd).await
        }
    };
    match result {
        Ok(u) => {
            let notice = format!("Saved {}: {}, {}.", u.username, u.email, u.role);
            render(&app, &c, &org, Outcome::done(notice), &ListQuery::default()).await
        }
        Err(e) => edit_render(&app, &c, &org, &username, Some(f), Some(&e)).await,
    }
}

async fn delete_confirm(
    app: &App,
    c: &Console,
    org: &str,
    username: &str,
    error: Option<String>,
) -> Response {
    let user = match app.org_of(&c.principal, org).await {
        Ok(_) => people::get_user(app, &c.ctx, &c.principal, username).await,
        Err(e) => Err(e),
    };
    let user = match user {
        Ok(u) => u.user,
        Err(e) => return error_page(Some(c), e),
    };
    ConfirmPage {
        layout: c.layout(format!("Delete user {}", user.username)),
        heading: format!("Delete user {}", user.username),
        consequences: vec![
            "Their team and project memberships go, their API keys are revoked, and every credential and console session of theirs is refused at once.".into(),
            "The runs they logged keep their name; the username and email can be used again.".into(),
        ],
        action: format!("/org/{org}/users/{}/delete", user.username),
        back: format!("/org/{org}/users"),
        name: user.username,
        option: None,
        button: "Delete",
    }
    .show(error)
}

/// `GET /org/<org>/users/<username>/delete`: the confirmation page.
pub async fn delete_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, username)): Path<(String, String)>,
) -> Response {
    delete_confirm(&app, &c, &org, &username, None).await
}

/// `POST /org/<org>/users/<username>/delete`: deletes once the username is typed.
pub async fn delete(
    State(app): State<AppState>,
    c: Console,
    Path((org, username)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    if let Err(e) = app.org_of(&c.principal, &org).await {
        return error_page(Some(&c), e);
    }
    if !f.confirms(&username) {
        return delete_confirm(&app, &c, &org, &username, Some(not_confirmed(&username))).await;
    }
    let outcome = match people::delete_user(&app, &c.ctx, &c.principal, &username).await {
        Ok(()) => Outcome::done(format!(
            "Deleted user {username}: their credentials and sessions are refused from now on."
        )),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}
