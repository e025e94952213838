//! The platform objects: projects, their members and visibility, runs, and
//! the caller's own view of itself. Every decision comes from `authz::decide`.

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::instrument;

use crate::authz::{Action, Decision, ProjectMember, ProjectView, Target, decide};
use crate::clock::rfc3339;
use crate::model::{
    Principal, PrincipalKind, Role, SaScope, TeamRef, Visibility, check_name, truncate,
};
use crate::secrets::new_id;
use crate::service::{Page, RequestCtx, ServiceError, ServiceResult};
use crate::state::App;
use crate::store::{ProjectMemberRow, ProjectRow, RunRow, StoreError, StoreTx, TeamRow};

const MAX_CONFIG_BYTES: usize = 64 * 1024;

fn team_ref(t: &TeamRow) -> TeamRef {
    TeamRef {
        id: t.id.clone(),
        name: t.name.clone(),
    }
}

/// The team an entity names, as the caller may see it: another org's team is
/// "not found", exactly like a missing one.
async fn entity(app: &App, p: Option<&Principal>, name: &str) -> ServiceResult<TeamRow> {
    let t = app.store.team_by_name(name).await?;
    match (t, p) {
        (Some(t), Some(p)) if t.org_id == p.org_id => Ok(t),
        (Some(t), None) => Ok(t),
        _ => Err(ServiceError::NotFound(format!(
            "entity \"{}\" not found",
            truncate(name, 64)
        ))),
    }
}

async fn view(app: &App, team: &TeamRow, project: ProjectRow) -> ServiceResult<ProjectView> {
    let members = app
        .store
        .project_members(&project.id)
        .await?
        .into_iter()
        .map(|m| ProjectMember {
            principal_id: m.principal_id,
            role: Role::parse(&m.role).unwrap_or(Role::Member),
        })
        .collect();
    Ok(ProjectView {
        id: project.id,
        org_id: team.org_id.clone(),
        team: team_ref(team),
        name: project.name,
        visibility: Visibility::parse(&project.visibility).unwrap_or(Visibility::Restricted),
        members,
    })
}

async fn find_project(app: &App, team: &TeamRow, name: &str) -> ServiceResult<Option<ProjectView>> {
    match app.store.project_by_name(&team.id, name).await? {
        Some(row) => Ok(Some(view(app, team, row).await?)),
        None => Ok(None),
    }
}

/// Audits and returns a denial for a caller that may be anonymous.
async fn enforce(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    action: Action,
    target: &str,
    d: Decision,
) -> ServiceResult<()> {
    match p {
        Some(p) => app.enforce(ctx, p, action.as_str(), target, d).await,
        None if d.allowed() => Ok(()),
        None => Err(ServiceError::from_decision(d)),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectOut {
    pub id: String,
    pub entity: String,
    pub name: String,
    pub visibility: Visibility,
    pub members: Vec<ProjectMember>,
}

impl From<ProjectView> for ProjectOut {
    fn from(v: ProjectView) -> Self {
        ProjectOut {
            id: v.id,
            entity: v.team.name,
            name: v.name,
            visibility: v.visibility,
            members: v.members,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub name: String,
    #[serde(default = "team_visibility")]
    pub visibility: Visibility,
}

fn team_visibility() -> Visibility {
    Visibility::Team
}

/// Creates a project in a team (its members, org admins, service accounts in reach).
#[instrument(skip_all, fields(team = %team))]
pub async fn create_project(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    team: &str,
    req: NewProject,
) -> ServiceResult<ProjectOut> {
    let team = entity(app, Some(p), team).await?;
    let tref = team_ref(&team);
    check_name("project", &req.name).map_err(ServiceError::BadRequest)?;
    let target = format!("{}/{}", team.name, req.name);
    let d = decide(
        Some(p),
        Action::CreateProject,
        Target::NewProject {
            org_id: &team.org_id,
            team: &tref,
            name: &req.name,
        },
    );
    app.enforce(ctx, p, "create_project", &target, d).await?;
    if req.visibility != Visibility::Team && matches!(p.kind, PrincipalKind::ServiceAccount { .. })
    {
        return Err(ServiceError::Forbidden {
            rule: "sa.no_admin",
            reason: format!(
                "{} can only create projects with visibility \"team\": choosing another visibility takes project admin, which no service account has",
                p.describe()
            ),
        });
    }
    let mut tx = app.store.begin().await?;
    let row = insert_project(app, &mut *tx, &team, &req.name, req.visibility).await?;
    let row =
        row.ok_or_else(|| ServiceError::Conflict(format!("project \"{target}\" already exists")))?;
    if matches!(p.kind, PrincipalKind::User { .. }) {
        // The creator administers what they create, so a restricted project
        // does not lock its own creator out.
        tx.upsert_project_member(&ProjectMemberRow {
            project_id: row.id.clone(),
            principal_id: p.id.clone(),
            principal_kind: "user".into(),
            role: "admin".into(),
            created_at: app.clock.now_ms(),
        })
        .await?;
    }
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "project.create",
        &target,
        json!({"visibility": req.visibility}),
    )
    .await?;
    tx.commit().await?;
    let v = view(app, &team, row).await?;
    Ok(v.into())
}

/// Inserts a project; `None` when it already exists.
async fn insert_project(
    app: &App,
    tx: &mut dyn StoreTx,
    team: &TeamRow,
    name: &str,
    visibility: Visibility,
) -> ServiceResult<Option<ProjectRow>> {
    let row = ProjectRow {
        id: new_id("proj"),
        team_id: team.id.clone(),
        name: name.to_string(),
        visibility: visibility.as_str().into(),
        created_at: app.clock.now_ms(),
    };
    match tx.insert_project(&row).await {
        Ok(()) => Ok(Some(row)),
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A project, if the caller may read it (anonymous callers: public projects).
pub async fn get_project(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    entity_name: &str,
    project: &str,
) -> ServiceResult<ProjectOut> {
    let (v, _) = readable_project(app, ctx, p, entity_name, project).await?;
    Ok(v.into())
}

/// A project and its team, if the caller may read it (`authz::decide`).
pub(crate) async fn readable_project(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    entity_name: &str,
    project: &str,
) -> ServiceResult<(ProjectView, TeamRow)> {
    let Some(p) = p else {
        return anonymous_project(app, entity_name, project).await;
    };
    let team = entity(app, Some(p), entity_name).await?;
    let target = format!("{}/{}", team.name, truncate(project, 64));
    let Some(v) = find_project(app, &team, project).await? else {
        return Err(ServiceError::NotFound(format!(
            "project \"{target}\" not found"
        )));
    };
    let p = Some(p);
    let d = decide(p, Action::Read, Target::Project(&v));
    enforce(app, ctx, p, Action::Read, &target, d).await?;
    Ok((v, team))
}

/// What an anonymous caller may read: a public project. Everything else
/// (an unknown entity, an unknown project, a project that is not public)
/// gets the very same 401, so an anonymous caller cannot tell which
/// projects exist.
async fn anonymous_project(
    app: &App,
    entity_name: &str,
    project: &str,
) -> ServiceResult<(ProjectView, TeamRow)> {
    // Visibility is read from the row before anything else is loaded, so
    // a project that exists costs the same queries as one that does not.
    if let Some(team) = app.store.team_by_name(entity_name).await?
        && let Some(row) = app.store.project_by_name(&team.id, project).await?
        && row.visibility == Visibility::Public.as_str()
    {
        let v = view(app, &team, row).await?;
        if decide(None, Action::Read, Target::Project(&v)).allowed() {
            return Ok((v, team));
        }
    }
    Err(ServiceError::Unauthenticated(format!(
        "a credential is required to read \"{}/{}\" unless it is a public project: send an API key or access token",
        truncate(entity_name, 64),
        truncate(project, 64)
    )))
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PrincipalRef {
    pub kind: String,
    pub id: String,
    pub name: String,
    /// True when the user or service account has been deleted since.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunOut {
    pub id: String,
    pub entity: String,
    pub project: String,
    pub name: String,
    pub config: serde_json::Value,
    pub created_by: PrincipalRef,
    pub attributed_to: PrincipalRef,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
}

/// The runs of a project the caller may read, oldest first.
pub async fn list_runs(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    entity_name: &str,
    project: &str,
) -> ServiceResult<Vec<RunOut>> {
    let (v, team) = readable_project(app, ctx, p, entity_name, project).await?;
    let rows = app.store.runs_of_project(&v.id, 1000).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let r = row.run;
        let created_by = named_ref(
            &r.created_by,
            &r.created_by_kind,
            row.created_by_name,
            row.created_by_deleted_name,
        );
        let attributed_to = match &r.attributed_user_id {
            Some(uid) => named_ref(
                uid,
                "user",
                row.attributed_name,
                row.attributed_deleted_name,
            ),
            None => created_by.clone(),
        };
        out.push(RunOut {
            id: r.id,
            entity: team.name.clone(),
            project: v.name.clone(),
            name: r.name,
            config: serde_json::from_str(&r.config).unwrap_or_default(),
            created_by,
            attributed_to,
            created_at: rfc3339(r.created_at),
            attribution: None,
        });
    }
    Ok(out)
}

/// A principal's reference from names read with its run: the live name, else
/// the name it had when deleted.
fn named_ref(id: &str, kind: &str, live: Option<String>, gone: Option<String>) -> PrincipalRef {
    let (name, deleted) = match live {
        Some(n) => (n, false),
        None => (gone.unwrap_or_default(), true),
    };
    PrincipalRef {
        kind: kind.to_string(),
        id: id.to_string(),
        name,
        deleted,
    }
}

pub(crate) async fn principal_ref(app: &App, id: &str, kind: &str) -> ServiceResult<PrincipalRef> {
    let name = if kind == "user" {
        app.store.user_by_id(id).await?.map(|u| u.username)
    } else {
        app.store.service_account_by_id(id).await?.map(|s| s.name)
    };
    // A deleted principal's runs keep its name.
    let (name, deleted) = match name {
        Some(n) => (n, false),
        None => (
            app.store
                .deleted_principal(id)
                .await?
                .map(|d| d.name)
                .unwrap_or_default(),
            true,
        ),
    };
    Ok(PrincipalRef {
        kind: kind.to_string(),
        id: id.to_string(),
        name,
        deleted,
    })
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeTo {
    pub username: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    pub entity: Option<String>,
    pub project: String,
    pub name: Option<String>,
    pub config: Option<serde_json::Value>,
    pub attribute_to: Option<AttributeTo>,
}

/// Whether a requested attribution was applied, and why not.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attribution {
    pub requested: bool,
    pub applied: bool,
    pub reason: String,
}

/// Logs a run (DESIGN §2): the entity defaults to the principal's default
/// team, a missing project is created on first write, and a requested
/// attribution applies only where the rules allow; otherwise the run is still
/// logged and attributed to the caller.
#[instrument(skip_all)]
pub async fn create_run(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    req: NewRun,
) -> ServiceResult<RunOut> {
    let name = req.name.clone().unwrap_or_else(|| new_id("run"));
    if name.is_empty() || name.len() > 128 {
        return Err(ServiceError::BadRequest(
            "run name must be 1-128 characters".into(),
        ));
    }
    let config = req.config.clone().unwrap_or_else(|| json!({}));
    if !config.is_object() {
        return Err(ServiceError::BadRequest(
            "config must be a JSON object".into(),
        ));
    }
    let config_text = config.to_string();
    if config_text.len() > MAX_CONFIG_BYTES {
        return Err(ServiceError::BadRequest(format!(
            "config is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    // The body is checked first: a project is created on first write only
    // for a run that will be stored.
    let (team, project) = write_target(app, ctx, p, req.entity.as_deref(), &req.project).await?;
    let (attributed_user, attribution) =
        attribute(app, p, &project, req.attribute_to.as_ref(), "run").await?;
    let row = RunRow {
        seq: 0,
        id: new_id("run"),
        project_id: project.id.clone(),
        created_by: p.id.clone(),
        created_by_kind: p.kind_str().into(),
        attributed_user_id: attributed_user.as_ref().map(|u| u.0.clone()),
        name: name.clone(),
        config: config_text,
        created_at: app.clock.now_ms(),
    };
    let (id, created_at) = (row.id.clone(), row.created_at);
    app.writes.insert(crate::writes::Row::Run(row)).await?;
    let (created_by, attributed_to) = authorship(p, attributed_user);
    Ok(RunOut {
        id,
        entity: team.name,
        project: project.name,
        name,
        config,
        created_by,
        attributed_to,
        created_at: rfc3339(created_at),
        attribution: Some(attribution),
    })
}

/// The project a write goes to (DESIGN §2), decided by `authz::decide`: no
/// entity means the principal's default team, and a project that does not
/// exist yet is created (visibility `team`) when `create_project` is
/// allowed. Runs and traces both go through here, so they cannot follow
/// different rules.
pub(crate) async fn write_target(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: Option<&str>,
    project: &str,
) -> ServiceResult<(TeamRow, ProjectView)> {
    let team_name = match entity_name {
        Some(e) => e,
        None => {
            let Some(t) = p.default_team() else {
                return Err(ServiceError::BadRequest(format!(
                    "no entity given and {} has no default entity: set \"entity\" (WANDB_ENTITY) to a team",
                    p.describe()
                )));
            };
            t.name.as_str()
        }
    };
    // The usual case, a write to a project that exists: decided on the
    // cached project (`App::targets`), with no store read.
    if let Some(hit) = app.targets.get(team_name, project) {
        let (team, v) = &*hit;
        if team.org_id == p.org_id {
            let d = decide(Some(p), Action::Write, Target::Project(v));
            if !d.allowed() {
                let target = format!("{}/{}", team.name, project);
                app.enforce(ctx, p, "write", &target, d).await?;
            }
            return Ok((team.clone(), v.clone()));
        }
    }
    let generation = app.targets.generation();
    let team = entity(app, Some(p), team_name).await?;
    check_name("project", project).map_err(ServiceError::BadRequest)?;
    let tref = team_ref(&team);
    let target = format!("{}/{}", team.name, project);
    let target_view = match find_project(app, &team, project).await? {
        Some(v) => {
            app.targets.insert(generation, &team, &v);
            let d = decide(Some(p), Action::Write, Target::Project(&v));
            app.enforce(ctx, p, "write", &target, d).await?;
            v
        }
        None => {
            let d = decide(
                Some(p),
                Action::CreateProject,
                Target::NewProject {
                    org_id: &team.org_id,
                    team: &tref,
                    name: project,
                },
            );
            app.enforce(ctx, p, "create_project", &target, d).await?;
            let mut tx = app.store.begin().await?;
            match insert_project(app, &mut *tx, &team, project, Visibility::Team).await? {
                Some(row) => {
                    app.audit_change_in(
                        &mut *tx,
                        ctx,
                        p,
                        "project.create",
                        &target,
                        json!({"visibility": "team", "on_first_write": true}),
                    )
                    .await?;
                    tx.commit().await?;
                    view(app, &team, row).await?
                }
                // Created by a concurrent writer: decide again on what exists.
                None => {
                    let v = find_project(app, &team, project)
                        .await?
                        .ok_or_else(|| ServiceError::Internal("project vanished".into()))?;
                    let d = decide(Some(p), Action::Write, Target::Project(&v));
                    app.enforce(ctx, p, "write", &target, d).await?;
                    v
                }
            }
        }
    };
    Ok((team, target_view))
}

/// `created_by` and `attributed_to` of a new run or trace.
pub(crate) fn authorship(
    p: &Principal,
    attributed_user: Option<(String, String)>,
) -> (PrincipalRef, PrincipalRef) {
    let created_by = PrincipalRef {
        kind: p.kind_str().into(),
        id: p.id.clone(),
        name: p.name.clone(),
        deleted: false,
    };
    let attributed_to = match attributed_user {
        Some((id, name)) => PrincipalRef {
            kind: "user".into(),
            id,
            name,
            deleted: false,
        },
        None => created_by.clone(),
    };
    (created_by, attributed_to)
}

/// Applies `attribute_to` (WANDB_USERNAME / WANDB_USER_EMAIL) when the rules allow.
/// `what` is the object written ("run", "trace"), for the reason.
pub(crate) async fn attribute(
    app: &App,
    p: &Principal,
    project: &ProjectView,
    req: Option<&AttributeTo>,
    what: &str,
) -> ServiceResult<(Option<(String, String)>, Attribution)> {
    let Some(req) = req else {
        return Ok((
            None,
            Attribution {
                requested: false,
                applied: false,
                reason: format!(
                    "no attribution requested; the {what} is attributed to {}",
                    p.describe()
                ),
            },
        ));
    };
    let not_applied = |reason: String| {
        Ok((
            None,
            Attribution {
                requested: true,
                applied: false,
                reason: format!("{reason}; the {what} is attributed to {}", p.describe()),
            },
        ))
    };
    let scope = match &p.kind {
        PrincipalKind::ServiceAccount { scope, .. } => scope,
        PrincipalKind::User { .. } => {
            return not_applied("attribution applies only to service accounts".into());
        }
    };
    let (user, asked) = match (&req.username, &req.email) {
        (Some(u), None) => (
            app.store.user_by_username(u).await?,
            format!("user \"{}\"", truncate(u, 64)),
        ),
        (None, Some(e)) => (
            app.store.user_by_email(&e.to_ascii_lowercase()).await?,
            format!("user with email \"{}\"", truncate(e, 64)),
        ),
        _ => {
            return Err(ServiceError::BadRequest(
                "attribute_to takes exactly one of \"username\" or \"email\"".into(),
            ));
        }
    };
    let Some(user) = user.filter(|u| u.org_id == p.org_id) else {
        return not_applied(format!(
            "{asked} is not a user of organization \"{}\"",
            p.org_name
        ));
    };
    let team = match scope {
        SaScope::Team { team } => team,
        SaScope::Org { .. } => &project.team,
    };
    let member = app
        .store
        .memberships_of_user(&user.id)
        .await?
        .iter()
        .any(|m| m.team_id == team.id);
    if !member {
        let whose = match scope {
            SaScope::Team { .. } => "the service account's parent team",
            SaScope::Org { .. } => "the team that owns the project",
        };
        return not_applied(format!(
            "user \"{}\" is not a member of team \"{}\" ({whose})",
            user.username, team.name
        ));
    }
    Ok((
        Some((user.id.clone(), user.username.clone())),
        Attribution {
            requested: true,
            applied: true,
            reason: format!(
                "user \"{}\" is a member of team \"{}\"",
                user.username, team.name
            ),
        },
    ))
}

/// A project as the console lists it, and whether the caller may administer
/// it (the same `decide` the API applies). Its members are paged apart
/// ([`list_project_members_page`]).
#[derive(Debug, Serialize)]
pub struct ProjectListing {
    pub name: String,
    pub visibility: Visibility,
    pub can_admin: bool,
}

/// The team's projects the caller may read, by name, for the console.
pub async fn list_project_listings(
    app: &App,
    p: &Principal,
    team_name: &str,
) -> ServiceResult<Vec<ProjectListing>> {
    let team = entity(app, Some(p), team_name).await?;
    let mut out = Vec::new();
    for row in app.store.projects_of_team(&team.id).await? {
        let v = view(app, &team, row).await?;
        if !decide(Some(p), Action::Read, Target::Project(&v)).allowed() {
            continue;
        }
        let can_admin = decide(Some(p), Action::Admin, Target::Project(&v)).allowed();
        out.push(ProjectListing {
            name: v.name,
            visibility: v.visibility,
            can_admin,
        });
    }
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VisibilityChange {
    pub visibility: Visibility,
}

/// Changes a project's visibility (project admins, team admins, org admins).
pub async fn set_visibility(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: &str,
    project: &str,
    req: VisibilityChange,
) -> ServiceResult<ProjectOut> {
    let (mut v, team) = admin_project(app, ctx, p, entity_name, project).await?;
    let mut tx = app.store.begin().await?;
    tx.set_project_visibility(&v.id, req.visibility.as_str())
        .await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "project.visibility",
        &format!("{}/{}", team.name, v.name),
        json!({"from": v.visibility, "to": req.visibility}),
    )
    .await?;
    tx.commit().await?;
    app.changed(crate::state::Change::Projects).await;
    v.visibility = req.visibility;
    Ok(v.into())
}

async fn admin_project(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: &str,
    project: &str,
) -> ServiceResult<(ProjectView, TeamRow)> {
    let team = entity(app, Some(p), entity_name).await?;
    let target = format!("{}/{}", team.name, truncate(project, 64));
    let v = find_project(app, &team, project)
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("project \"{target}\" not found")))?;
    let d = decide(Some(p), Action::Admin, Target::Project(&v));
    app.enforce(ctx, p, "admin", &target, d).await?;
    Ok((v, team))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProjectMember {
    pub username: Option<String>,
    pub service_account: Option<String>,
    #[serde(default = "member_role")]
    pub role: Role,
}

fn member_role() -> Role {
    Role::Member
}

/// Grants an explicit membership (project admins, org admins).
pub async fn add_project_member(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: &str,
    project: &str,
    req: NewProjectMember,
) -> ServiceResult<ProjectOut> {
    let (v, team) = admin_project(app, ctx, p, entity_name, project).await?;
    let (principal_id, kind, who) = match (&req.username, &req.service_account) {
        (Some(u), None) => match app.store.user_by_username(u).await? {
            Some(user) if user.org_id == p.org_id => {
                (user.id, "user", format!("user \"{}\"", user.username))
            }
            _ => {
                return Err(ServiceError::BadRequest(format!(
                    "user \"{}\" does not exist in this organization",
                    truncate(u, 64)
                )));
            }
        },
        (None, Some(name)) => {
            // The name, or the id that creating the account returned.
            let by_id = || async {
                match app.store.service_account_by_id(name).await {
                    Ok(Some(sa)) if sa.org_id == p.org_id => Ok(Some(sa)),
                    Ok(_) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            let sa = match app.store.service_account_by_name(&p.org_id, name).await? {
                Some(sa) => sa,
                None => match by_id().await? {
                    Some(sa) => sa,
                    None => {
                        return Err(ServiceError::BadRequest(format!(
                            "service account \"{}\" does not exist in this organization (give its name or its id)",
                            truncate(name, 64)
                        )));
                    }
                },
            };
            if req.role == Role::Admin {
                return Err(ServiceError::BadRequest(format!(
                    "service account \"{}\" cannot be a project admin: no service account has admin on anything",
                    sa.name
                )));
            }
            if sa.scope == "team" && sa.team_id != team.id {
                return Err(ServiceError::BadRequest(format!(
                    "service account \"{}\" is team-scoped to another team: in team \"{}\" it can only use open and public projects, so a membership would grant nothing",
                    sa.name, team.name
                )));
            }
            (
                sa.id,
                "service_account",
                format!("service account \"{}\"", sa.name),
            )
        }
        _ => {
            return Err(ServiceError::BadRequest(
                "give exactly one of \"username\" or \"service_account\"".into(),
            ));
        }
    };
    let mut tx = app.store.begin().await?;
    tx.upsert_project_member(&ProjectMemberRow {
        project_id: v.id.clone(),
        principal_id,
        principal_kind: kind.into(),
        role: req.role.as_str().into(),
        created_at: app.clock.now_ms(),
    })
    .await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "project.member.add",
        &format!("{}/{}", team.name, v.name),
        json!({"member": who, "role": req.role}),
    )
    .await?;
    tx.commit().await?;
    app.changed(crate::state::Change::Projects).await;
    let v = find_project(app, &team, &v.name)
        .await?
        .ok_or_else(|| ServiceError::Internal("project vanished".into()))?;
    Ok(v.into())
}

/// One page of a team's projects the caller may read, and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectPage {
    pub projects: Vec<ProjectOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Lists a team's projects by name, those the caller may read (`decide`
/// with `read`, as opening each would): two queries per page, whatever its size.
pub async fn list_projects(
    app: &App,
    p: &Principal,
    entity_name: &str,
    page: &Page,
) -> ServiceResult<ProjectPage> {
    let team = entity(app, Some(p), entity_name).await?;
    let limit = page.limit()?;
    let (rows, members) = app
        .store
        .projects_page(&team.id, page.after(), limit)
        .await?;
    let next_after = crate::service::next_after(&rows, limit, |r| &r.name);
    let mut by_project: std::collections::HashMap<String, Vec<ProjectMember>> =
        std::collections::HashMap::new();
    for m in members {
        by_project
            .entry(m.project_id)
            .or_default()
            .push(ProjectMember {
                principal_id: m.principal_id,
                role: Role::parse(&m.role).unwrap_or(Role::Member),
            });
    }
    let projects = rows
        .into_iter()
        .map(|row| ProjectView {
            members: by_project.remove(&row.id).unwrap_or_default(),
            id: row.id,
            org_id: team.org_id.clone(),
            team: team_ref(&team),
            name: row.name,
            visibility: Visibility::parse(&row.visibility).unwrap_or(Visibility::Restricted),
        })
        .filter(|v| decide(Some(p), Action::Read, Target::Project(v)).allowed())
        .map(ProjectOut::from)
        .collect();
    Ok(ProjectPage {
        projects,
        next_after,
    })
}

/// An explicit project member as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectMemberOut {
    /// The id to remove it by (`DELETE …/members/{member}`).
    pub principal_id: String,
    /// `user` or `service_account`.
    pub kind: String,
    /// The username or service account name.
    pub name: String,
    pub role: String,
}

/// One page of a project's explicit members and where the next begins.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProjectMemberPage {
    pub members: Vec<ProjectMemberOut>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next_after: Option<String>,
}

/// Lists a project's explicit members by id, with their names, a page at a
/// time (whoever may read the project): one query per page.
pub async fn list_project_members_page(
    app: &App,
    ctx: &RequestCtx,
    p: Option<&Principal>,
    entity_name: &str,
    project: &str,
    page: &Page,
) -> ServiceResult<ProjectMemberPage> {
    let (v, _team) = readable_project(app, ctx, p, entity_name, project).await?;
    let limit = page.limit()?;
    let rows = app
        .store
        .project_members_page(&v.id, page.after(), limit)
        .await?;
    let next_after = crate::service::next_after(&rows, limit, |r| &r.member.principal_id);
    Ok(ProjectMemberPage {
        members: rows
            .into_iter()
            .map(|r| ProjectMemberOut {
                principal_id: r.member.principal_id,
                kind: r.member.principal_kind,
                name: r.name,
                role: r.member.role,
            })
            .collect(),
        next_after,
    })
}

/// Removes an explicit project member (project admins, team admins, org
/// admins). `member` is the member's id as listed, a username, or a service
/// account's name.
pub async fn remove_project_member(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: &str,
    project: &str,
    member: &str,
) -> ServiceResult<ProjectOut> {
    let (v, team) = admin_project(app, ctx, p, entity_name, project).await?;
    let mut ids = vec![member.to_string()];
    if let Some(u) = app.store.user_by_username(member).await?
        && u.org_id == p.org_id
    {
        ids.push(u.id);
    }
    if let Some(sa) = app.store.service_account_by_name(&p.org_id, member).await? {
        ids.push(sa.id);
    }
    let found: Vec<&ProjectMember> = v
        .members
        .iter()
        .filter(|m| ids.contains(&m.principal_id))
        .collect();
    let principal_id = match found.as_slice() {
        [one] => one.principal_id.clone(),
        [] => {
            return Err(ServiceError::NotFound(format!(
                "\"{}\" is not an explicit member of project \"{}/{}\"",
                truncate(member, 64),
                team.name,
                v.name
            )));
        }
        _ => {
            return Err(ServiceError::Conflict(format!(
                "\"{}\" names both a user and a service account that are members: give the member's id instead",
                truncate(member, 64)
            )));
        }
    };
    let mut tx = app.store.begin().await?;
    tx.remove_project_member(&v.id, &principal_id).await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "project.member.remove",
        &format!("{}/{}", team.name, v.name),
        json!({"member": member, "principal_id": principal_id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(crate::state::Change::Projects).await;
    let v = find_project(app, &team, &v.name)
        .await?
        .ok_or_else(|| ServiceError::Internal("project vanished".into()))?;
    Ok(v.into())
}

/// Deletes a project with its runs and members (project admins, team
/// admins, org admins).
pub async fn delete_project(
    app: &App,
    ctx: &RequestCtx,
    p: &Principal,
    entity_name: &str,
    project: &str,
) -> ServiceResult<()> {
    let (v, team) = admin_project(app, ctx, p, entity_name, project).await?;
    let mut tx = app.store.begin().await?;
    tx.delete_project(&v.id).await?;
    app.audit_change_in(
        &mut *tx,
        ctx,
        p,
        "project.delete",
        &format!("{}/{}", team.name, v.name),
        json!({"id": v.id}),
    )
    .await?;
    tx.commit().await?;
    app.changed(crate::state::Change::Projects).await;
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub action: Action,
    pub entity: String,
    pub project: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckOut {
    pub allowed: bool,
    pub rule: &'static str,
    pub reason: String,
}

/// The decision for the caller's own credential (for resource servers).
/// A write to a missing project is answered as the `create_project` it would be.
pub async fn check(app: &App, p: &Principal, req: CheckRequest) -> ServiceResult<CheckOut> {
    let team = match app.store.team_by_name(&req.entity).await? {
        Some(t) if t.org_id == p.org_id => t,
        _ => {
            return Ok(CheckOut {
                allowed: false,
                rule: "tenant.isolation",
                reason: format!("entity \"{}\" not found", truncate(&req.entity, 64)),
            });
        }
    };
    let tref = team_ref(&team);
    let d = match find_project(app, &team, &req.project).await? {
        Some(v) => decide(Some(p), req.action, Target::Project(&v)),
        None if matches!(req.action, Action::Write | Action::CreateProject) => decide(
            Some(p),
            Action::CreateProject,
            Target::NewProject {
                org_id: &team.org_id,
                team: &tref,
                name: &req.project,
            },
        ),
        None => Decision {
            verdict: crate::authz::Verdict::NotFound,
            rule: "project.missing",
            reason: format!(
                "project \"{}/{}\" not found",
                team.name,
                truncate(&req.project, 64)
            ),
        },
    };
    Ok(CheckOut {
        allowed: d.allowed(),
        rule: d.rule,
        reason: d.reason,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ViewerOut {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    pub org: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_scope: Option<&'static str>,
    pub default_entity: Option<String>,
    pub teams: Vec<String>,
    pub scope: String,
}

/// Who the caller is, as the platform sees it.
pub fn viewer(p: &Principal) -> ViewerOut {
    let (email, org_role, sa_scope, teams) = match &p.kind {
        PrincipalKind::User {
            email, role, teams, ..
        } => (
            Some(email.clone()),
            Some(role.as_str().to_string()),
            None,
            teams.iter().map(|m| m.team.name.clone()).collect(),
        ),
        PrincipalKind::ServiceAccount { scope, .. } => (
            None,
            None,
            Some(scope.kind()),
            vec![scope.home_team().name.clone()],
        ),
    };
    ViewerOut {
        id: p.id.clone(),
        kind: p.kind_str(),
        name: p.name.clone(),
        org: p.org_name.clone(),
        email,
        org_role,
        service_account_scope: sa_scope,
        default_entity: p.default_team().map(|t| t.name.clone()),
        teams,
        scope: p.scopes.to_scope_string(),
    }
}
