//! The authorization rules of DESIGN §2, as one pure function.
//!
//! `decide` is the only place that says yes or no to a project operation and
//! `decide_admin` the only place for administration. Both are pure: they take
//! everything they need as arguments, so the table tests in this file and the
//! HTTP scenarios in `tests/` exercise the very same code. A principal from an
//! API key and one from an exchanged token are the same [`Principal`] value.

use serde::Serialize;

use crate::model::{Principal, PrincipalKind, Role, SaScope, TeamRef, Visibility};

/// What a request wants to do with a project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// View a project and its runs.
    Read,
    /// Log runs.
    Write,
    /// A write to a project that does not exist yet creates it (visibility `team`).
    CreateProject,
    /// Change visibility, manage project members.
    Admin,
}

impl Action {
    /// The verb used in reasons.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write to",
            Action::CreateProject => "create a project in",
            Action::Admin => "administer",
        }
    }
    /// The name used in JSON and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::CreateProject => "create_project",
            Action::Admin => "admin",
        }
    }
}

/// An explicit project membership (a user or a service account).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProjectMember {
    pub principal_id: String,
    pub role: Role,
}

/// Everything the rules need to know about an existing project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectView {
    pub id: String,
    pub org_id: String,
    pub team: TeamRef,
    pub name: String,
    pub visibility: Visibility,
    pub members: Vec<ProjectMember>,
}

impl ProjectView {
    fn member_role(&self, principal_id: &str) -> Option<Role> {
        self.members
            .iter()
            .find(|m| m.principal_id == principal_id)
            .map(|m| m.role)
    }
    fn path(&self) -> String {
        format!("{}/{}", self.team.name, self.name)
    }
}

/// What a project operation is aimed at.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    Project(&'a ProjectView),
    /// A project that does not exist yet, in `team` of `org_id`.
    NewProject {
        org_id: &'a str,
        team: &'a TeamRef,
        name: &'a str,
    },
}

/// How a decision ends, and so which HTTP status a denial maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allow,
    /// 403: the caller is known, the rule says no.
    Forbidden,
    /// 404: the target belongs to another organization; nothing leaks.
    NotFound,
    /// 401: a credential is needed.
    Unauthenticated,
}

/// The answer: allowed or not, which rule decided, and a reason a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// A stable name for the rule that decided (e.g. `sa.other_team.visibility`).
    pub rule: &'static str,
    pub reason: String,
}

impl Decision {
    fn allow(rule: &'static str, reason: String) -> Self {
        Decision {
            verdict: Verdict::Allow,
            rule,
            reason,
        }
    }
    fn deny(rule: &'static str, reason: String) -> Self {
        Decision {
            verdict: Verdict::Forbidden,
            rule,
            reason,
        }
    }
    fn not_found(what: &str) -> Self {
        Decision {
            verdict: Verdict::NotFound,
            rule: "tenant.isolation",
            reason: format!("{what} not found"),
        }
    }
    /// True when the request may proceed.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// Decides a project operation. `None` is a request without a credential.
pub fn decide(principal: Option<&Principal>, action: Action, target: Target<'_>) -> Decision {
    let (org_id, team, path) = match target {
        Target::Project(p) => (p.org_id.as_str(), &p.team, p.path()),
        Target::NewProject { org_id, team, name } => {
            (org_id, team, format!("{}/{}", team.name, name))
        }
    };
    let Some(p) = principal else {
        return anonymous(action, target, &path);
    };
    if p.org_id != org_id {
        return Decision::not_found(&format!("project \"{path}\""));
    }
    if let Some(d) = scope_check(p, action, &path) {
        return d;
    }
    match &p.kind {
        PrincipalKind::ServiceAccount { scope, .. } => {
            service_account(p, scope, action, target, team, &path)
        }
        PrincipalKind::User { .. } => user(p, action, target, team, &path),
    }
}

fn anonymous(action: Action, target: Target<'_>, path: &str) -> Decision {
    match (action, target) {
        (Action::Read, Target::Project(proj)) if proj.visibility == Visibility::Public => {
            Decision::allow(
                "anonymous.public_read",
                format!("project \"{path}\" is public"),
            )
        }
        _ => Decision {
            verdict: Verdict::Unauthenticated,
            rule: "anonymous",
            reason: format!(
                "a credential is required to {} \"{path}\": send an API key or access token",
                action.verb()
            ),
        },
    }
}

/// Token down-scoping (RFC 8693 `scope`): applies before any other rule.
fn scope_check(p: &Principal, action: Action, path: &str) -> Option<Decision> {
    let (needed, have) = match action {
        Action::Read => ("read", p.scopes.read),
        Action::Write | Action::CreateProject | Action::Admin => ("write", p.scopes.write),
    };
    (!have).then(|| {
        Decision::deny(
            "credential.scope",
            format!(
                "{} cannot {} \"{path}\": this credential's scope is \"{}\" and lacks \"{needed}\"",
                p.describe(),
                action.verb(),
                p.scopes.to_scope_string()
            ),
        )
    })
}

fn service_account(
    p: &Principal,
    scope: &SaScope,
    action: Action,
    target: Target<'_>,
    team: &TeamRef,
    path: &str,
) -> Decision {
    let who = p.describe();
    if action == Action::Admin {
        return Decision::deny(
            "sa.no_admin",
            format!("{who} cannot administer \"{path}\": no service account has admin on anything"),
        );
    }
    let in_home = match scope {
        SaScope::Org { .. } => true,
        SaScope::Team { team: parent } => parent.id == team.id,
    };
    let proj = match target {
        Target::NewProject { .. } => {
            return if in_home {
                Decision::allow(
                    "sa.create_project",
                    format!("{who} may create projects in \"{}\"", team.name),
                )
            } else {
                Decision::deny(
                    "sa.other_team.create_project",
                    format!(
                        "{who} cannot create project \"{path}\": \"{}\" is not its parent team (new projects have visibility \"team\")",
                        team.name
                    ),
                )
            };
        }
        Target::Project(proj) => proj,
    };
    let home_desc = match scope {
        SaScope::Org { .. } => format!("every team of org \"{}\"", p.org_name),
        SaScope::Team { .. } => "its parent team".to_string(),
    };
    if in_home {
        if proj.visibility != Visibility::Restricted {
            return Decision::allow(
                "sa.home.non_restricted",
                format!(
                    "{who} may {} \"{path}\": {home_desc} is in reach and the project is not restricted",
                    action.verb()
                ),
            );
        }
        return if proj.member_role(&p.id).is_some() {
            Decision::allow(
                "sa.restricted.member",
                format!("{who} is an explicit member of restricted project \"{path}\""),
            )
        } else {
            Decision::deny(
                "sa.restricted.not_member",
                format!(
                    "{who} cannot {} \"{path}\": the project is restricted and the account is not an explicit member; an admin of the project can add it",
                    action.verb()
                ),
            )
        };
    }
    // A team-scoped account in another team of its org.
    let parent = &scope.home_team().name;
    match (proj.visibility, action) {
        (Visibility::Open, Action::Read | Action::Write) => Decision::allow(
            "sa.other_team.open",
            format!("project \"{path}\" is open to every member of the org"),
        ),
        (Visibility::Public, Action::Read) => Decision::allow(
            "sa.other_team.public_read",
            format!("project \"{path}\" is public"),
        ),
        (Visibility::Public, _) => Decision::deny(
            "sa.other_team.visibility",
            format!(
                "{who} cannot {} \"{path}\": project visibility is \"public\" (read-only outside its team) and \"{}\" is not its parent team \"{parent}\"",
                action.verb(),
                team.name
            ),
        ),
        (vis, _) => Decision::deny(
            "sa.other_team.visibility",
            format!(
                "{who} cannot {} \"{path}\": project visibility is \"{vis}\" and \"{}\" is not its parent team",
                action.verb(),
                team.name
            ),
        ),
    }
}

fn user(p: &Principal, action: Action, target: Target<'_>, team: &TeamRef, path: &str) -> Decision {
    let who = p.describe();
    let team_role = p.team_role(&team.id);
    let org_admin = p.is_org_admin();
    let proj = match target {
        Target::NewProject { .. } => {
            return if team_role.is_some() || org_admin {
                Decision::allow(
                    "user.create_project",
                    format!("{who} may create projects in team \"{}\"", team.name),
                )
            } else {
                Decision::deny(
                    "user.create_project.not_member",
                    format!(
                        "{who} cannot create project \"{path}\": not a member of team \"{}\"; a team admin can add them",
                        team.name
                    ),
                )
            };
        }
        Target::Project(proj) => proj,
    };
    let member_role = proj.member_role(&p.id);
    if action == Action::Admin {
        let allowed = match proj.visibility {
            Visibility::Restricted => org_admin || member_role == Some(Role::Admin),
            _ => org_admin || team_role == Some(Role::Admin) || member_role == Some(Role::Admin),
        };
        return if allowed {
            Decision::allow("user.admin", format!("{who} may administer \"{path}\""))
        } else if proj.visibility == Visibility::Restricted {
            Decision::deny(
                "user.admin.restricted",
                format!(
                    "{who} cannot administer restricted project \"{path}\": only its project admins and org admins can"
                ),
            )
        } else {
            Decision::deny(
                "user.admin.not_admin",
                format!(
                    "{who} cannot administer \"{path}\": it takes an admin of team \"{}\", a project admin or an org admin",
                    team.name
                ),
            )
        };
    }
    if member_role.is_some() {
        return Decision::allow(
            "user.project_member",
            format!("{who} is an explicit member of \"{path}\""),
        );
    }
    match proj.visibility {
        Visibility::Restricted => Decision::deny(
            "user.restricted.not_member",
            format!(
                "{who} cannot {} \"{path}\": the project is restricted to its explicit members; a project admin can add them",
                action.verb()
            ),
        ),
        _ if team_role.is_some() || org_admin => Decision::allow(
            "user.team_member",
            format!(
                "{who} may {} \"{path}\" as a member of team \"{}\"",
                action.verb(),
                team.name
            ),
        ),
        Visibility::Open => Decision::allow(
            "user.org.open",
            format!("project \"{path}\" is open to every member of the org"),
        ),
        Visibility::Public if action == Action::Read => Decision::allow(
            "user.org.public_read",
            format!("project \"{path}\" is public"),
        ),
        vis => Decision::deny(
            "user.not_team_member",
            format!(
                "{who} cannot {} \"{path}\": project visibility is \"{vis}\" and they are not a member of team \"{}\"",
                action.verb(),
                team.name
            ),
        ),
    }
}

/// What an administrative operation is aimed at (DESIGN §2 "Who may administer").
#[derive(Clone, Copy, Debug)]
pub enum AdminTarget<'a> {
    /// Users, teams, trusted issuers, org-scoped accounts, the audit log.
    Org { org_id: &'a str, org_name: &'a str },
    /// Team members and team-scoped service accounts.
    Team { org_id: &'a str, team: &'a TeamRef },
    /// A service account's keys, disable/enable: the admins of its scope.
    ServiceAccount {
        org_id: &'a str,
        name: &'a str,
        scope: &'a SaScope,
    },
}

/// Decides an administrative operation.
pub fn decide_admin(principal: &Principal, target: AdminTarget<'_>) -> Decision {
    let org_id = match target {
        AdminTarget::Org { org_id, .. }
        | AdminTarget::Team { org_id, .. }
        | AdminTarget::ServiceAccount { org_id, .. } => org_id,
    };
    let what = match target {
        AdminTarget::Org { org_name, .. } => format!("organization \"{org_name}\""),
        AdminTarget::Team { team, .. } => format!("team \"{}\"", team.name),
        AdminTarget::ServiceAccount { name, .. } => format!("service account \"{name}\""),
    };
    if principal.org_id != org_id {
        return Decision::not_found(&what);
    }
    let who = principal.describe();
    if matches!(principal.kind, PrincipalKind::ServiceAccount { .. }) {
        return Decision::deny(
            "admin.service_account",
            format!("{who} cannot administer {what}: service accounts have no admin rights"),
        );
    }
    if !principal.scopes.write {
        return Decision::deny(
            "credential.scope",
            format!("{who} cannot administer {what}: this credential is read-only"),
        );
    }
    if principal.is_org_admin() {
        return Decision::allow(
            "admin.org_admin",
            format!("{who} is an admin of the organization"),
        );
    }
    let team = match target {
        AdminTarget::Org { .. } => None,
        AdminTarget::Team { team, .. } => Some(team),
        AdminTarget::ServiceAccount { scope, .. } => match scope {
            SaScope::Team { team } => Some(team),
            SaScope::Org { .. } => None,
        },
    };
    match team {
        Some(team) if principal.team_role(&team.id) == Some(Role::Admin) => Decision::allow(
            "admin.team_admin",
            format!("{who} is an admin of team \"{}\"", team.name),
        ),
        Some(team) => Decision::deny(
            "admin.not_team_admin",
            format!(
                "{who} cannot administer {what}: it takes an admin of team \"{}\" or an org admin",
                team.name
            ),
        ),
        None => Decision::deny(
            "admin.not_org_admin",
            format!("{who} cannot administer {what}: it takes an org admin"),
        ),
    }
}
