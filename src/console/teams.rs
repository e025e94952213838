//! The org dashboard's Teams tab: the org's teams, and New team for org admins.

use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{Layout, Outcome, error_page, render_status};
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
}

async fn render(app: &App, c: &Console, org: &str, outcome: Outcome) -> Response {
    let result: ServiceResult<TeamsPage> = async {
        let can_admin = admin::may_admin_org(app, &c.principal, org).await?;
        let teams = admin::list_teams(app, &c.principal, org)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let mut layout = c.layout(format!("{org} · Teams"));
        outcome.apply(&mut layout);
        Ok(TeamsPage {
            layout,
            tab: "teams",
            can_admin,
            teams,
        })
    }
    .await;
    match result {
        Ok(p) => render_status(outcome.status.unwrap_or(axum::http::StatusCode::OK), &p),
        Err(e) => error_page(Some(c), e),
    }
}

/// `GET /org/<org>/teams`.
pub async fn page(State(app): State<AppState>, c: Console, Path(org): Path<String>) -> Response {
    render(&app, &c, &org, Outcome::default()).await
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
    render(&app, &c, &org, outcome).await
}
