//! A team's page, `/<team>`: its Settings tab (members, Add team member and
//! Remove; projects with their visibility, Delete after a confirmation page,
//! and for restricted ones Add member and Remove). Its Service Accounts tab
//! is in [`super::accounts`].

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{
    ConfirmForm, ConfirmPage, Layout, Outcome, PageParams, Pager, error_page, not_confirmed,
};
use crate::model::{Role, Visibility};
use crate::service::admin::{self, NewMember};
use crate::service::projects::{self, NewProject, NewProjectMember, VisibilityChange};
use crate::service::{ServiceError, ServiceResult};
use crate::state::{App, AppState};

#[derive(askama::Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub team: String,
    pub can_admin: bool,
    pub members: Vec<(String, String)>,
    pub pager: Pager,
    pub projects: Vec<ProjectBox>,
    pub visibilities: Vec<&'static str>,
}

/// A project on the team page, with one page of its explicit members.
pub struct ProjectBox {
    pub name: String,
    pub visibility: Visibility,
    pub can_admin: bool,
    /// (name, kind in words, role).
    pub members: Vec<(String, &'static str, String)>,
    pub pager: Pager,
}

/// Where a project's member list reads its `after` and `limit` on the team
/// page: `project.<name>.after` and `project.<name>.limit`. Keys are compared
/// whole, so no project's key is the team member list's (`after`, `limit`)
/// or another project's.
fn project_prefix(project: &str) -> String {
    format!("project.{project}.")
}

async fn render(
    app: &App,
    c: &Console,
    team: &str,
    outcome: Outcome,
    params: &PageParams,
) -> Response {
    let result: ServiceResult<TeamPage> = async {
        let can_admin = admin::may_admin_team(app, &c.principal, team).await?;
        let q = params.list("");
        let list = admin::list_team_members_page(app, &c.principal, team, &q.page()?).await?;
        let pager = q.pager(&format!("/{team}"), list.next_after.as_deref());
        let members = list
            .members
            .into_iter()
            .map(|m| (m.username, m.role))
            .collect();
        let mut projects = Vec::new();
        for p in projects::list_project_listings(app, &c.principal, team).await? {
            let q = params.list(&project_prefix(&p.name));
            let page = match projects::list_project_members_page(
                app,
                &c.ctx,
                Some(&c.principal),
                team,
                &p.name,
                &q.page()?,
            )
            .await
            {
                Ok(page) => page,
                // Deleted since it was listed: not on the page any more.
                Err(ServiceError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let mut pager = q.pager(&format!("/{team}"), page.next_after.as_deref());
            pager.label = Some(format!("Pages of the members of {}", p.name));
            projects.push(ProjectBox {
                members: page
                    .members
                    .into_iter()
                    .map(|m| {
                        let kind = if m.kind == "service_account" {
                            "service account"
                        } else {
                            "person"
                        };
                        (m.name, kind, m.role)
                    })
                    .collect(),
                pager,
                name: p.name,
                visibility: p.visibility,
                can_admin: p.can_admin,
            });
        }
        let mut layout = c.layout(format!("{team} · Settings"));
        outcome.apply(&mut layout);
        Ok(TeamPage {
            layout,
            tab: "settings",
            team: team.to_string(),
            can_admin,
            members,
            pager,
            projects,
            visibilities: vec!["team", "restricted", "open", "public"],
        })
    }
    .await;
    outcome.respond(c, result)
}

/// `GET /<team>?after=&limit=` (the page of the team's member list), and
/// `project.<name>.after=` / `project.<name>.limit=` for each project's.
pub async fn page(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    render(&app, &c, &team, Outcome::default(), &PageParams::new(q)).await
}

fn role(s: &str) -> Result<Role, ServiceError> {
    Role::parse(s).ok_or_else(|| ServiceError::BadRequest("role must be admin or member".into()))
}

fn visibility(s: &str) -> Result<Visibility, ServiceError> {
    Visibility::parse(s).ok_or_else(|| {
        ServiceError::BadRequest("visibility must be team, restricted, open or public".into())
    })
}

#[derive(Debug, Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
}

/// `POST /<team>/members`.
pub async fn add_member(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
    axum::Form(f): axum::Form<MemberForm>,
) -> Response {
    let result = match role(&f.role) {
        Ok(role) => {
            let req = NewMember {
                username: f.username.trim().to_string(),
                role,
            };
            admin::add_team_member(&app, &c.ctx, &c.principal, &team, req)
                .await
                .map(|m| format!("{} is now {} of team {}.", m.username, m.role, m.team))
        }
        Err(e) => Err(e),
    };
    let outcome = result.map_or_else(|e| Outcome::failed(&e), Outcome::done);
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

#[derive(Debug, Deserialize)]
pub struct ProjectForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    visibility: String,
}

/// `POST /<team>/projects`.
pub async fn create_project(
    State(app): State<AppState>,
    c: Console,
    Path(team): Path<String>,
    axum::Form(f): axum::Form<ProjectForm>,
) -> Response {
    let result = match visibility(&f.visibility) {
        Ok(visibility) => {
            let req = NewProject {
                name: f.name.trim().to_string(),
                visibility,
            };
            projects::create_project(&app, &c.ctx, &c.principal, &team, req)
                .await
                .map(|p| format!("Created project {}.", p.name))
        }
        Err(e) => Err(e),
    };
    let outcome = result.map_or_else(|e| Outcome::failed(&e), Outcome::done);
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

#[derive(Debug, Deserialize)]
pub struct VisibilityForm {
    #[serde(default)]
    visibility: String,
}

/// `POST /<team>/projects/<project>/visibility`.
pub async fn set_visibility(
    State(app): State<AppState>,
    c: Console,
    Path((team, project)): Path<(String, String)>,
    axum::Form(f): axum::Form<VisibilityForm>,
) -> Response {
    let result = match visibility(&f.visibility) {
        Ok(visibility) => projects::set_visibility(
            &app,
            &c.ctx,
            &c.principal,
            &team,
            &project,
            VisibilityChange { visibility },
        )
        .await
        .map(|p| format!("Project {} is now {}.", p.name, p.visibility.as_str())),
        Err(e) => Err(e),
    };
    let outcome = result.map_or_else(|e| Outcome::failed(&e), Outcome::done);
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

#[derive(Debug, Deserialize)]
pub struct ProjectMemberForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
}

/// `POST /<team>/projects/<project>/members`: Add member (a person or a service account).
pub async fn add_project_member(
    State(app): State<AppState>,
    c: Console,
    Path((team, project)): Path<(String, String)>,
    axum::Form(f): axum::Form<ProjectMemberForm>,
) -> Response {
    let name = f.name.trim().to_string();
    let result = match role(&f.role) {
        Ok(role) => {
            let req = if f.kind == "service_account" {
                NewProjectMember {
                    username: None,
                    service_account: Some(name.clone()),
                    role,
                }
            } else {
                NewProjectMember {
                    username: Some(name.clone()),
                    service_account: None,
                    role,
                }
            };
            projects::add_project_member(&app, &c.ctx, &c.principal, &team, &project, req)
                .await
                .map(|p| format!("Added {name} to project {}.", p.name))
        }
        Err(e) => Err(e),
    };
    let outcome = result.map_or_else(|e| Outcome::failed(&e), Outcome::done);
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

/// `POST /<team>/members/<username>/remove`: the same as `DELETE /api/v1/teams/{team}/members/{username}`.
pub async fn remove_member(
    State(app): State<AppState>,
    c: Console,
    Path((team, username)): Path<(String, String)>,
) -> Response {
    let outcome = match crate::service::teams::remove_team_member(
        &app,
        &c.ctx,
        &c.principal,
        &team,
        &username,
    )
    .await
    {
        Ok(()) => Outcome::done(format!("Removed {username} from team {team}.")),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

/// `POST /<team>/projects/<project>/members/<member>/remove`.
pub async fn remove_project_member(
    State(app): State<AppState>,
    c: Console,
    Path((team, project, member)): Path<(String, String, String)>,
) -> Response {
    let outcome =
        match projects::remove_project_member(&app, &c.ctx, &c.principal, &team, &project, &member)
            .await
        {
            Ok(p) => Outcome::done(format!("Removed {member} from project {}.", p.name)),
            Err(e) => Outcome::failed(&e),
        };
    render(&app, &c, &team, outcome, &PageParams::default()).await
}

async fn delete_project_confirm(
    app: &App,
    c: &Console,
    team: &str,
    project: &str,
    error: Option<String>,
) -> Response {
    let name = match projects::get_project(app, &c.ctx, Some(&c.principal), team, project).await {
        Ok(p) => p.name,
        Err(e) => return error_page(Some(c), e),
    };
    ConfirmPage {
        layout: c.layout(format!("Delete project {team}/{name}")),
        heading: format!("Delete project {team}/{name}"),
        consequences: vec![
            "Its runs and its members go with it.".into(),
            "Only the project's admins (and the team's and org's) may delete it.".into(),
        ],
        action: format!("/{team}/projects/{name}/delete"),
        back: format!("/{team}"),
        name,
        option: None,
        button: "Delete",
    }
    .show(error)
}

/// `GET /<team>/projects/<project>/delete`: the confirmation page.
pub async fn delete_project_page(
    State(app): State<AppState>,
    c: Console,
    Path((team, project)): Path<(String, String)>,
) -> Response {
    delete_project_confirm(&app, &c, &team, &project, None).await
}

/// `POST /<team>/projects/<project>/delete`: the same as
/// `DELETE /api/v1/projects/{entity}/{project}`, once the name is typed.
pub async fn delete_project(
    State(app): State<AppState>,
    c: Console,
    Path((team, project)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    if !f.confirms(&project) {
        return delete_project_confirm(&app, &c, &team, &project, Some(not_confirmed(&project)))
            .await;
    }
    let outcome = match projects::delete_project(&app, &c.ctx, &c.principal, &team, &project).await
    {
        Ok(()) => Outcome::done(format!("Deleted project {team}/{project} with its runs.")),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &team, outcome, &PageParams::default()).await
}
