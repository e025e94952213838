//! The org dashboard's Audit tab: the org's events, filtered by actor, action
//! and outcome, a page at a time (org admins).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::session::Console;
use super::{Layout, error_page, render};
use crate::service::ServiceError;
use crate::service::admin::{self, AuditOut};
use crate::state::AppState;
use crate::store::AuditFilter;

/// Events per page.
const PAGE: i64 = 50;

#[derive(askama::Template)]
#[template(path = "org_audit.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub tab: &'static str,
    pub denied: Option<String>,
    pub events: Vec<AuditOut>,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub outcomes: Vec<&'static str>,
    pub after: i64,
    pub next: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    after: i64,
}

/// `GET /org/<org>/audit?actor=&action=&outcome=&after=`.
pub async fn page(
    State(app): State<AppState>,
    c: Console,
    Path(org): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = AuditFilter {
        actor: q.actor.trim().to_string(),
        action: q.action.trim().to_string(),
        outcome: q.outcome.trim().to_string(),
    };
    let after = q.after.max(0);
    let (events, denied) = match admin::list_audit_filtered(
        &app,
        &c.ctx,
        &c.principal,
        &org,
        &filter,
        Some(after),
        Some(PAGE),
    )
    .await
    {
        Ok(events) => (events, None),
        Err(e @ ServiceError::Forbidden { .. }) => (Vec::new(), Some(super::denial(&e))),
        Err(e) => return error_page(Some(&c), e),
    };
    let next = if events.len() as i64 == PAGE {
        events.last().map(|e| e.seq)
    } else {
        None
    };
    render(&AuditPage {
        layout: c.layout(format!("{org} · Audit")),
        tab: "audit",
        denied,
        events,
        actor: filter.actor,
        action: filter.action,
        outcome: filter.outcome,
        outcomes: vec![
            "",
            "success",
            "denied",
            "unauthenticated",
            "bad_request",
            "not_found",
            "conflict",
            "error",
        ],
        after,
        next,
    })
}
