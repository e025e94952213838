//! The org dashboard's Teams tab: the org's teams; org admins create them
//! (New team) and delete them (after a confirmation page that can take the
//! team's projects and accounts with it).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{
    ConfirmForm, ConfirmPage, Layout, ListQuery, Outcome, Pager, error_page, not_confirmed,
};
use crate::service::ServiceResult;
use crate::service::admin::{self, NewTeam};
use crate::state::{App, AppState};

#[derive(askama::Template)]
#[template(path = "org_teams.html")]
pub struct TeamsPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub can_admin: bool,
    pub teams: Vec<String>,
    pub pager: Pager,
}

async fn render(app: &App, c: &Console, org: &str, outcome: Outcome, q: &ListQuery) -> Response {
    let result: ServiceResult<TeamsPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let list = admin::list_teams_page(app, &c.principal, org, &q.page()?).await?;
        let pager = q.pager(&format!("/org/{org}/teams"), list.next_after.as_deref());
        let teams = list.teams.into_iter().map(|t| t.name).collect();
        let mut layout = c.layout(format!("{org} · Teams"));
        outcome.apply(&mut layout);
        Ok(TeamsPage {
            layout,
            tab: "teams",
            can_admin,
            teams,
            pager,
        })
    }
    .await;
    outcome.respond(c, result)
}

/// `GET /org/<org>/teams?after=&limit=`.
pub async fn page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    render(&app, &c, &org, Outcome::default(), &q).await
}

#[derive(Debug, Deserialize)]
pub struct NewTeamForm {
    #[serde(default)]
    name: String,
}

/// `POST /org/<org>/teams`.
pub async fn create(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    axum::Form(f): axum::Form<NewTeamForm>,
) -> Response {
    let req = NewTeam {
        name: f.name.trim().to_string(),
    };
    let outcome = match admin::create_team(&app, &c.ctx, &c.principal, &org, req).await {
        Ok(t) => Outcome::done(format!("Created team {}.", t.name)),
        Err(e) => Outcome::failed(&e),
    };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}

async fn delete_confirm(
    app: &App,
    c: &Console,
    org: &str,
    team: &str,
    error: Option<String>,
) -> Response {
    let team = match app.org_of(&c.principal, org).await {
        Ok(_) => crate::service::teams::get_team(app, &c.principal, team).await,
        Err(e) => Err(e),
    };
    let team = match team {
        Ok(t) => t.name,
        Err(e) => return error_page(Some(c), e),
    };
    ConfirmPage {
        layout: c.layout(format!("Delete team {team}")),
        heading: format!("Delete team {team}"),
        consequences: vec![
            "Its members lose what they could do through it, at once.".into(),
            "A team that still has projects or service accounts is kept unless you also tick the box below: then its projects (with their runs) and its team service accounts (with every credential) go with it.".into(),
            "Org-scoped service accounts whose default team it is must be given another one first.".into(),
        ],
        action: format!("/org/{org}/teams/{team}/delete"),
        back: format!("/org/{org}/teams"),
        name: team,
        option: Some("Also delete its projects and team service accounts".into()),
        button: "Delete",
    }
    .show(error)
}

/// `GET /org/<org>/teams/<team>/delete`: the confirmation page.
pub async fn delete_page(
    State(app): State<AppState>,
    c: Console,
    Path((org, team)): Path<(String, String)>,
) -> Response {
    delete_confirm(&app, &c, &org, &team, None).await
}

/// `POST /org/<org>/teams/<team>/delete`: the same as `DELETE /api/v1/teams/{team}`
/// (`?delete_contents=true` when the box is ticked), once the name is typed.
pub async fn delete(
    State(app): State<AppState>,
    c: Console,
    Path((org, team)): Path<(String, String)>,
    axum::Form(f): axum::Form<ConfirmForm>,
) -> Response {
    if let Err(e) = app.org_of(&c.principal, &org).await {
        return error_page(Some(&c), e);
    }
    if !f.confirms(&team) {
        return delete_confirm(&app, &c, &org, &team, Some(not_confirmed(&team))).await;
    }
    let with_contents = f.option.is_some();
    let outcome =
        match crate::service::teams::delete_team(&app, &c.ctx, &c.principal, &team, with_contents)
            .await
        {
            Ok(gone) => {
                let mut notice = format!("Deleted team {team}.");
                if !gone.projects.is_empty() {
                    notice.push_str(&format!(
                        " Projects deleted with it: {}.",
                        gone.projects.join(", ")
                    ));
                }
                if !gone.service_accounts.is_empty() {
                    notice.push_str(&format!(
                        " Service accounts deleted with it: {}.",
                        gone.service_accounts.join(", ")
                    ));
                }
                Outcome::done(notice)
            }
            Err(e) => Outcome::failed(&e),
        };
    render(&app, &c, &org, outcome, &ListQuery::default()).await
}
