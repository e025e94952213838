//! The org dashboard's Users tab: the org's people and their roles; org
//! admins add people.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{Layout, Outcome, error_page, render_status};
use crate::model::OrgRole;
use crate::service::admin::{self, NewUser};
use crate::service::{Page, ServiceError, ServiceResult};
use crate::state::{App, AppState};

/// A person as a row shows them.
pub struct UserView {
    pub username: String,
    pub email: String,
    pub role: String,
    pub enabled: bool,
    /// Whether Disable/Enable is offered (not on oneself).
    pub can_toggle: bool,
}

#[derive(askama::Template)]
#[template(path = "org_users.html")]
pub struct UsersPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub can_admin: bool,
    pub users: Vec<UserView>,
    pub denied: Option<String>,
}

async fn render(app: &App, c: &Console, org: &str, outcome: Outcome) -> Response {
    let result: ServiceResult<UsersPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let (users, denied) = match crate::service::users::list_users(
            app,
            &c.ctx,
            &c.principal,
            org,
            &Page::default(),
        )
        .await
        {
            Ok(page) => (
                page.users
                    .into_iter()
                    .map(|u| UserView {
                        can_toggle: u.username != c.principal.name,
                        enabled: !u.disabled,
                        username: u.username,
                        email: u.email,
                        role: u.role,
                    })
                    .collect(),
                None,
            ),
            Err(e @ ServiceError::Forbidden { .. }) => (Vec::new(), Some(super::denial(&e))),
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
        })
    }
    .await;
    match result {
        Ok(p) => render_status(outcome.status.unwrap_or(axum::http::StatusCode::OK), &p),
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /org/<org>/users`.
pub async fn page(State(app): State<AppState>, c: Console, Path(org): Path<String>) -> Response {
    render(&app, &c, &org, Outcome::default()).await
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
    render(&app, &c, &org, outcome).await
}

/// `POST /org/<org>/users/<username>/<disable|enable>`: disabling a person
/// refuses every credential of theirs and ends their console sessions at once.
pub async fn toggle(
    State(app): State<AppState>,
    c: Console,
    Path((org, username, action)): Path<(String, String, String)>,
) -> Response {
    let outcome = match action.as_str() {
        "disable" | "enable" => match crate::service::users::set_user_disabled(
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
        other => Outcome::failed(&ServiceError::NotFound(format!(
            "no action {:?} on users",
            crate::model::truncate(other, 32)
        ))),
    };
    render(&app, &c, &org, outcome).await
}
