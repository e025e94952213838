//! DESIGN §2 ("Authorization rules") as a table over principal kind × project
//! visibility × same/other team × explicit project membership × action, run
//! against the pure `fedgate::authz::decide`.
//!
//! Every expected verdict below is a literal written by hand from the design
//! text, row by row. Nothing here recomputes a rule: a test that mirrors the
//! rule it checks cannot fail when the rule is wrong. When a row disagrees with
//! the code, read DESIGN §2 before touching the row.
//!
//! The cast (org "acme", teams "vision", "nlp" and "audio"):
//! - `OrgSa`: service account "org-bot", org-scoped, default team "vision";
//! - `TeamSa`: service account "ci-bot", team-scoped to "vision", built-in;
//! - `ExtSa`: the same account record with `SaAuth::External` (a federation
//!   binding); DESIGN: "Team-scoped (built-in or external)" — same rows;
//! - `TeamMember`: user "alice", member of "vision";
//! - `TeamAdmin`: user "bob", admin of "vision";
//! - `OrgAdmin`: user "carol", org admin, member of no team;
//! - `OrgMember`: user "dave", org member, member of "audio" only;
//! - `Anonymous`: no credential (`None`).
//!
//! `Home` is a project of "vision" (the parent / default / member team of the
//! principals that have one); `Other` is a project of "nlp", another team of
//! the same org. For `OrgAdmin` and `OrgMember` neither team is theirs.
//! Every project is called "eval", so the paths are "vision/eval" and
//! "nlp/eval"; every project also has an unrelated explicit admin ("u-erin"),
//! which must grant nobody else anything.

use fedgate::authz::{Action, Decision, ProjectMember, ProjectView, Target, Verdict, decide};
use fedgate::model::{
    OrgRole, Principal, PrincipalKind, Role, SaAuth, SaScope, Scopes, TeamMembership, TeamRef,
    Visibility,
};

use Kind::*;
use Membership::*;
use Visibility::{Open, Public, Restricted, Team};
use Where::*;

// ---------------------------------------------------------------------------
// The cast
// ---------------------------------------------------------------------------

const ORG_ID: &str = "org-acme";
const ORG_NAME: &str = "acme";
const OTHER_ORG_ID: &str = "org-globex";
const OTHER_ORG_NAME: &str = "globex";
const PROJECT: &str = "eval";
const NEW_PROJECT: &str = "fresh";

/// Who asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    OrgSa,
    TeamSa,
    ExtSa,
    TeamMember,
    TeamAdmin,
    OrgAdmin,
    OrgMember,
    Anonymous,
}

const KINDS: [Kind; 8] = [
    OrgSa, TeamSa, ExtSa, TeamMember, TeamAdmin, OrgAdmin, OrgMember, Anonymous,
];
const VISIBILITIES: [Visibility; 4] = [Team, Restricted, Open, Public];

/// Which team owns the project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    /// "vision": the principal's parent / default / member team.
    Home,
    /// "nlp": another team of the same org.
    Other,
}

/// The principal's explicit membership of the project.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Membership {
    NoMember,
    Member,
    /// Role `admin`. Only users can be granted it; service accounts are given
    /// it here anyway to check that it still yields no admin.
    MemberAdmin,
}

const MEMBERSHIPS: [Membership; 3] = [NoMember, Member, MemberAdmin];

/// The table's three action columns, in order.
const ACTIONS: [Action; 3] = [Action::Read, Action::Write, Action::Admin];

const A: Verdict = Verdict::Allow;
const F: Verdict = Verdict::Forbidden;
const N: Verdict = Verdict::NotFound;
const U: Verdict = Verdict::Unauthenticated;

const READ_ONLY: Scopes = Scopes {
    read: true,
    write: false,
};

fn team_ref(id: &str, name: &str) -> TeamRef {
    TeamRef {
        id: id.into(),
        name: name.into(),
    }
}

fn vision() -> TeamRef {
    team_ref("team-vision", "vision")
}

fn nlp() -> TeamRef {
    team_ref("team-nlp", "nlp")
}

fn audio() -> TeamRef {
    team_ref("team-audio", "audio")
}

fn team_of(at: Where) -> TeamRef {
    match at {
        Home => vision(),
        Other => nlp(),
    }
}

fn service_account(id: &str, name: &str, scope: SaScope, auth: SaAuth) -> Principal {
    Principal {
        id: id.into(),
        name: name.into(),
        org_id: ORG_ID.into(),
        org_name: ORG_NAME.into(),
        kind: PrincipalKind::ServiceAccount { scope, auth },
        scopes: Scopes::FULL,
    }
}

fn user(id: &str, name: &str, role: OrgRole, teams: Vec<(TeamRef, Role)>) -> Principal {
    Principal {
        id: id.into(),
        name: name.into(),
        org_id: ORG_ID.into(),
        org_name: ORG_NAME.into(),
        kind: PrincipalKind::User {
            username: name.into(),
            email: format!("{name}@acme.example"),
            role,
            teams: teams
                .into_iter()
                .map(|(team, role)| TeamMembership { team, role })
                .collect(),
        },
        scopes: Scopes::FULL,
    }
}

/// The principal of `kind`, in org "acme", with a full (`read write`) credential.
fn principal(kind: Kind) -> Option<Principal> {
    let team_sa = |auth| {
        service_account(
            "sa-ci-bot",
            "ci-bot",
            SaScope::Team { team: vision() },
            auth,
        )
    };
    Some(match kind {
        OrgSa => service_account(
            "sa-org-bot",
            "org-bot",
            SaScope::Org {
                default_team: vision(),
            },
            SaAuth::Builtin,
        ),
        TeamSa => team_sa(SaAuth::Builtin),
        ExtSa => team_sa(SaAuth::External),
        TeamMember => user(
            "u-alice",
            "alice",
            OrgRole::Member,
            vec![(vision(), Role::Member)],
        ),
        TeamAdmin => user(
            "u-bob",
            "bob",
            OrgRole::Member,
            vec![(vision(), Role::Admin)],
        ),
        OrgAdmin => user("u-carol", "carol", OrgRole::Admin, vec![]),
        OrgMember => user(
            "u-dave",
            "dave",
            OrgRole::Member,
            vec![(audio(), Role::Member)],
        ),
        Anonymous => return None,
    })
}

/// The same principal with a credential down-scoped to `read`.
fn read_only(kind: Kind) -> Option<Principal> {
    principal(kind).map(|p| Principal {
        scopes: READ_ONLY,
        ..p
    })
}

/// The same principal moved to org "globex". Its team references and project
/// memberships still carry acme's ids, so only the org check can stop it.
fn foreign(kind: Kind) -> Option<Principal> {
    principal(kind).map(|p| Principal {
        org_id: OTHER_ORG_ID.into(),
        org_name: OTHER_ORG_NAME.into(),
        ..p
    })
}

/// Project "eval" of acme in the team `at`, with `member_id` holding
/// `membership` (nothing for `NoMember` or an anonymous caller).
fn project(
    at: Where,
    vis: Visibility,
    membership: Membership,
    member_id: Option<&str>,
) -> ProjectView {
    let mut members = vec![ProjectMember {
        principal_id: "u-erin".into(),
        role: Role::Admin,
    }];
    let role = match membership {
        NoMember => None,
        Member => Some(Role::Member),
        MemberAdmin => Some(Role::Admin),
    };
    if let (Some(id), Some(role)) = (member_id, role) {
        members.push(ProjectMember {
            principal_id: id.into(),
            role,
        });
    }
    ProjectView {
        id: format!("proj-{}-{PROJECT}", team_of(at).name),
        org_id: ORG_ID.into(),
        team: team_of(at),
        name: PROJECT.into(),
        visibility: vis,
        members,
    }
}

// ---------------------------------------------------------------------------
// The table (DESIGN §2), one row per principal kind × visibility × team ×
// explicit membership, one column per action: [read, write, admin].
// A = Allow, F = Forbidden (403), U = Unauthenticated (401).
// ---------------------------------------------------------------------------

type Row = (Kind, Visibility, Where, Membership, [Verdict; 3]);

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // Org-scoped service account: read/write every project of every team of
    // its org except `restricted` ones, which need an explicit membership.
    // "No service account has `admin` on anything" — not even with an
    // explicit `admin` membership. Home and Other answer alike.
    // (kind, visibility, team, explicit membership, [read, write, admin])
    (OrgSa,      Team,       Home,  NoMember,    [A, A, F]),
    (OrgSa,      Team,       Home,  Member,      [A, A, F]),
    (OrgSa,      Team,       Home,  MemberAdmin, [A, A, F]),
    (OrgSa,      Restricted, Home,  NoMember,    [F, F, F]),
    (OrgSa,      Restricted, Home,  Member,      [A, A, F]),
    (OrgSa,      Restricted, Home,  MemberAdmin, [A, A, F]),
    (OrgSa,      Open,       Home,  NoMember,    [A, A, F]),
    (OrgSa,      Open,       Home,  Member,      [A, A, F]),
    (OrgSa,      Open,       Home,  MemberAdmin, [A, A, F]),
    (OrgSa,      Public,     Home,  NoMember,    [A, A, F]),
    (OrgSa,      Public,     Home,  Member,      [A, A, F]),
    (OrgSa,      Public,     Home,  MemberAdmin, [A, A, F]),
    (OrgSa,      Team,       Other, NoMember,    [A, A, F]),
    (OrgSa,      Team,       Other, Member,      [A, A, F]),
    (OrgSa,      Team,       Other, MemberAdmin, [A, A, F]),
    (OrgSa,      Restricted, Other, NoMember,    [F, F, F]),
    (OrgSa,      Restricted, Other, Member,      [A, A, F]),
    (OrgSa,      Restricted, Other, MemberAdmin, [A, A, F]),
    (OrgSa,      Open,       Other, NoMember,    [A, A, F]),
    (OrgSa,      Open,       Other, Member,      [A, A, F]),
    (OrgSa,      Open,       Other, MemberAdmin, [A, A, F]),
    (OrgSa,      Public,     Other, NoMember,    [A, A, F]),
    (OrgSa,      Public,     Other, Member,      [A, A, F]),
    (OrgSa,      Public,     Other, MemberAdmin, [A, A, F]),

    // Team-scoped service account, built-in. Parent team: like the org-scoped
    // account. Another team of the org: "may log runs to (and read) `open`
    // projects, may read `public` projects, may do nothing with `team` or
    // `restricted` projects" — an explicit membership does not change that.
    // Never admin.
    (TeamSa,     Team,       Home,  NoMember,    [A, A, F]),
    (TeamSa,     Team,       Home,  Member,      [A, A, F]),
    (TeamSa,     Team,       Home,  MemberAdmin, [A, A, F]),
    (TeamSa,     Restricted, Home,  NoMember,    [F, F, F]),
    (TeamSa,     Restricted, Home,  Member,      [A, A, F]),
    (TeamSa,     Restricted, Home,  MemberAdmin, [A, A, F]),
    (TeamSa,     Open,       Home,  NoMember,    [A, A, F]),
    (TeamSa,     Open,       Home,  Member,      [A, A, F]),
    (TeamSa,     Open,       Home,  MemberAdmin, [A, A, F]),
    (TeamSa,     Public,     Home,  NoMember,    [A, A, F]),
    (TeamSa,     Public,     Home,  Member,      [A, A, F]),
    (TeamSa,     Public,     Home,  MemberAdmin, [A, A, F]),
    (TeamSa,     Team,       Other, NoMember,    [F, F, F]),
    (TeamSa,     Team,       Other, Member,      [F, F, F]),
    (TeamSa,     Team,       Other, MemberAdmin, [F, F, F]),
    (TeamSa,     Restricted, Other, NoMember,    [F, F, F]),
    (TeamSa,     Restricted, Other, Member,      [F, F, F]),
    (TeamSa,     Restricted, Other, MemberAdmin, [F, F, F]),
    (TeamSa,     Open,       Other, NoMember,    [A, A, F]),
    (TeamSa,     Open,       Other, Member,      [A, A, F]),
    (TeamSa,     Open,       Other, MemberAdmin, [A, A, F]),
    (TeamSa,     Public,     Other, NoMember,    [A, F, F]),
    (TeamSa,     Public,     Other, Member,      [A, F, F]),
    (TeamSa,     Public,     Other, MemberAdmin, [A, F, F]),

    // Team-scoped service account, external (federation binding): exactly the
    // built-in account's rows.
    (ExtSa,      Team,       Home,  NoMember,    [A, A, F]),
    (ExtSa,      Team,       Home,  Member,      [A, A, F]),
    (ExtSa,      Team,       Home,  MemberAdmin, [A, A, F]),
    (ExtSa,      Restricted, Home,  NoMember,    [F, F, F]),
    (ExtSa,      Restricted, Home,  Member,      [A, A, F]),
    (ExtSa,      Restricted, Home,  MemberAdmin, [A, A, F]),
    (ExtSa,      Open,       Home,  NoMember,    [A, A, F]),
    (ExtSa,      Open,       Home,  Member,      [A, A, F]),
    (ExtSa,      Open,       Home,  MemberAdmin, [A, A, F]),
    (ExtSa,      Public,     Home,  NoMember,    [A, A, F]),
    (ExtSa,      Public,     Home,  Member,      [A, A, F]),
    (ExtSa,      Public,     Home,  MemberAdmin, [A, A, F]),
    (ExtSa,      Team,       Other, NoMember,    [F, F, F]),
    (ExtSa,      Team,       Other, Member,      [F, F, F]),
    (ExtSa,      Team,       Other, MemberAdmin, [F, F, F]),
    (ExtSa,      Restricted, Other, NoMember,    [F, F, F]),
    (ExtSa,      Restricted, Other, Member,      [F, F, F]),
    (ExtSa,      Restricted, Other, MemberAdmin, [F, F, F]),
    (ExtSa,      Open,       Other, NoMember,    [A, A, F]),
    (ExtSa,      Open,       Other, Member,      [A, A, F]),
    (ExtSa,      Open,       Other, MemberAdmin, [A, A, F]),
    (ExtSa,      Public,     Other, NoMember,    [A, F, F]),
    (ExtSa,      Public,     Other, Member,      [A, F, F]),
    (ExtSa,      Public,     Other, MemberAdmin, [A, F, F]),

    // User, member (not admin) of "vision". Own team: read/write the
    // non-restricted projects, no admin. Restricted: "only explicit project
    // members; project admins manage them". Another team: only what any org
    // member gets (`open` read+write, `public` read). Anywhere, an explicit
    // membership grants read/write whatever the visibility, and an explicit
    // project admin may administer the project.
    (TeamMember, Team,       Home,  NoMember,    [A, A, F]),
    (TeamMember, Team,       Home,  Member,      [A, A, F]),
    (TeamMember, Team,       Home,  MemberAdmin, [A, A, A]),
    (TeamMember, Restricted, Home,  NoMember,    [F, F, F]),
    (TeamMember, Restricted, Home,  Member,      [A, A, F]),
    (TeamMember, Restricted, Home,  MemberAdmin, [A, A, A]),
    (TeamMember, Open,       Home,  NoMember,    [A, A, F]),
    (TeamMember, Open,       Home,  Member,      [A, A, F]),
    (TeamMember, Open,       Home,  MemberAdmin, [A, A, A]),
    (TeamMember, Public,     Home,  NoMember,    [A, A, F]),
    (TeamMember, Public,     Home,  Member,      [A, A, F]),
    (TeamMember, Public,     Home,  MemberAdmin, [A, A, A]),
    (TeamMember, Team,       Other, NoMember,    [F, F, F]),
    (TeamMember, Team,       Other, Member,      [A, A, F]),
    (TeamMember, Team,       Other, MemberAdmin, [A, A, A]),
    (TeamMember, Restricted, Other, NoMember,    [F, F, F]),
    (TeamMember, Restricted, Other, Member,      [A, A, F]),
    (TeamMember, Restricted, Other, MemberAdmin, [A, A, A]),
    (TeamMember, Open,       Other, NoMember,    [A, A, F]),
    (TeamMember, Open,       Other, Member,      [A, A, F]),
    (TeamMember, Open,       Other, MemberAdmin, [A, A, A]),
    (TeamMember, Public,     Other, NoMember,    [A, F, F]),
    (TeamMember, Public,     Other, Member,      [A, A, F]),
    (TeamMember, Public,     Other, MemberAdmin, [A, A, A]),

    // User, admin of "vision": like a team member, plus admin on the team's
    // non-restricted projects. Being team admin does not open a restricted
    // project of the team: only its explicit members read/write it and only
    // its project admins (or an org admin) administer it.
    (TeamAdmin,  Team,       Home,  NoMember,    [A, A, A]),
    (TeamAdmin,  Team,       Home,  Member,      [A, A, A]),
    (TeamAdmin,  Team,       Home,  MemberAdmin, [A, A, A]),
    (TeamAdmin,  Restricted, Home,  NoMember,    [F, F, F]),
    (TeamAdmin,  Restricted, Home,  Member,      [A, A, F]),
    (TeamAdmin,  Restricted, Home,  MemberAdmin, [A, A, A]),
    (TeamAdmin,  Open,       Home,  NoMember,    [A, A, A]),
    (TeamAdmin,  Open,       Home,  Member,      [A, A, A]),
    (TeamAdmin,  Open,       Home,  MemberAdmin, [A, A, A]),
    (TeamAdmin,  Public,     Home,  NoMember,    [A, A, A]),
    (TeamAdmin,  Public,     Home,  Member,      [A, A, A]),
    (TeamAdmin,  Public,     Home,  MemberAdmin, [A, A, A]),
    (TeamAdmin,  Team,       Other, NoMember,    [F, F, F]),
    (TeamAdmin,  Team,       Other, Member,      [A, A, F]),
    (TeamAdmin,  Team,       Other, MemberAdmin, [A, A, A]),
    (TeamAdmin,  Restricted, Other, NoMember,    [F, F, F]),
    (TeamAdmin,  Restricted, Other, Member,      [A, A, F]),
    (TeamAdmin,  Restricted, Other, MemberAdmin, [A, A, A]),
    (TeamAdmin,  Open,       Other, NoMember,    [A, A, F]),
    (TeamAdmin,  Open,       Other, Member,      [A, A, F]),
    (TeamAdmin,  Open,       Other, MemberAdmin, [A, A, A]),
    (TeamAdmin,  Public,     Other, NoMember,    [A, F, F]),
    (TeamAdmin,  Public,     Other, Member,      [A, A, F]),
    (TeamAdmin,  Public,     Other, MemberAdmin, [A, A, A]),

    // Org admin, member of no team: "everything a team admin can do, in every
    // team of the org, and may manage restricted projects' membership".
    // Reading of that sentence (the implementation's): an org admin may
    // *administer* a restricted project (manage its membership) without being
    // a member, but *reading or writing* a restricted project still takes an
    // explicit membership, as for everyone — hence [F, F, A] below.
    (OrgAdmin,   Team,       Home,  NoMember,    [A, A, A]),
    (OrgAdmin,   Team,       Home,  Member,      [A, A, A]),
    (OrgAdmin,   Team,       Home,  MemberAdmin, [A, A, A]),
    (OrgAdmin,   Restricted, Home,  NoMember,    [F, F, A]),
    (OrgAdmin,   Restricted, Home,  Member,      [A, A, A]),
    (OrgAdmin,   Restricted, Home,  MemberAdmin, [A, A, A]),
    (OrgAdmin,   Open,       Home,  NoMember,    [A, A, A]),
    (OrgAdmin,   Open,       Home,  Member,      [A, A, A]),
    (OrgAdmin,   Open,       Home,  MemberAdmin, [A, A, A]),
    (OrgAdmin,   Public,     Home,  NoMember,    [A, A, A]),
    (OrgAdmin,   Public,     Home,  Member,      [A, A, A]),
    (OrgAdmin,   Public,     Home,  MemberAdmin, [A, A, A]),
    (OrgAdmin,   Team,       Other, NoMember,    [A, A, A]),
    (OrgAdmin,   Team,       Other, Member,      [A, A, A]),
    (OrgAdmin,   Team,       Other, MemberAdmin, [A, A, A]),
    (OrgAdmin,   Restricted, Other, NoMember,    [F, F, A]),
    (OrgAdmin,   Restricted, Other, Member,      [A, A, A]),
    (OrgAdmin,   Restricted, Other, MemberAdmin, [A, A, A]),
    (OrgAdmin,   Open,       Other, NoMember,    [A, A, A]),
    (OrgAdmin,   Open,       Other, Member,      [A, A, A]),
    (OrgAdmin,   Open,       Other, MemberAdmin, [A, A, A]),
    (OrgAdmin,   Public,     Other, NoMember,    [A, A, A]),
    (OrgAdmin,   Public,     Other, Member,      [A, A, A]),
    (OrgAdmin,   Public,     Other, MemberAdmin, [A, A, A]),

    // Org member in neither team ("audio" only): "any member of the org:
    // `open` projects read+write; `public` projects read", plus what an
    // explicit project membership grants. Home and Other answer alike.
    (OrgMember,  Team,       Home,  NoMember,    [F, F, F]),
    (OrgMember,  Team,       Home,  Member,      [A, A, F]),
    (OrgMember,  Team,       Home,  MemberAdmin, [A, A, A]),
    (OrgMember,  Restricted, Home,  NoMember,    [F, F, F]),
    (OrgMember,  Restricted, Home,  Member,      [A, A, F]),
    (OrgMember,  Restricted, Home,  MemberAdmin, [A, A, A]),
    (OrgMember,  Open,       Home,  NoMember,    [A, A, F]),
    (OrgMember,  Open,       Home,  Member,      [A, A, F]),
    (OrgMember,  Open,       Home,  MemberAdmin, [A, A, A]),
    (OrgMember,  Public,     Home,  NoMember,    [A, F, F]),
    (OrgMember,  Public,     Home,  Member,      [A, A, F]),
    (OrgMember,  Public,     Home,  MemberAdmin, [A, A, A]),
    (OrgMember,  Team,       Other, NoMember,    [F, F, F]),
    (OrgMember,  Team,       Other, Member,      [A, A, F]),
    (OrgMember,  Team,       Other, MemberAdmin, [A, A, A]),
    (OrgMember,  Restricted, Other, NoMember,    [F, F, F]),
    (OrgMember,  Restricted, Other, Member,      [A, A, F]),
    (OrgMember,  Restricted, Other, MemberAdmin, [A, A, A]),
    (OrgMember,  Open,       Other, NoMember,    [A, A, F]),
    (OrgMember,  Open,       Other, Member,      [A, A, F]),
    (OrgMember,  Open,       Other, MemberAdmin, [A, A, A]),
    (OrgMember,  Public,     Other, NoMember,    [A, F, F]),
    (OrgMember,  Public,     Other, Member,      [A, A, F]),
    (OrgMember,  Public,     Other, MemberAdmin, [A, A, A]),

    // No credential: "`public` projects read; everything else 401". An
    // anonymous caller has no id, so it cannot hold an explicit membership:
    // only the `NoMember` column exists for it.
    (Anonymous,  Team,       Home,  NoMember,    [U, U, U]),
    (Anonymous,  Restricted, Home,  NoMember,    [U, U, U]),
    (Anonymous,  Open,       Home,  NoMember,    [U, U, U]),
    (Anonymous,  Public,     Home,  NoMember,    [A, U, U]),
    (Anonymous,  Team,       Other, NoMember,    [U, U, U]),
    (Anonymous,  Restricted, Other, NoMember,    [U, U, U]),
    (Anonymous,  Open,       Other, NoMember,    [U, U, U]),
    (Anonymous,  Public,     Other, NoMember,    [A, U, U]),
];

// `create_project`: a write to project "fresh" that does not exist yet, in
// "vision" (Home) or "nlp" (Other). The new project would have visibility
// `team`, so a team-scoped account may create only in its parent team and a
// user only in a team they belong to — or anywhere as org admin.
#[rustfmt::skip]
const CREATE: &[(Kind, Where, Verdict)] = &[
    (OrgSa,      Home,  A),
    (OrgSa,      Other, A),
    (TeamSa,     Home,  A),
    (TeamSa,     Other, F),
    (ExtSa,      Home,  A),
    (ExtSa,      Other, F),
    (TeamMember, Home,  A),
    (TeamMember, Other, F),
    (TeamAdmin,  Home,  A),
    (TeamAdmin,  Other, F),
    (OrgAdmin,   Home,  A),
    (OrgAdmin,   Other, A),
    (OrgMember,  Home,  F),
    (OrgMember,  Other, F),
    (Anonymous,  Home,  U),
    (Anonymous,  Other, U),
];

// ---------------------------------------------------------------------------
// Cells and the loop that reports every mismatch at once
// ---------------------------------------------------------------------------

/// What a cell's request is aimed at.
enum On {
    Project(ProjectView),
    /// Project "fresh", not created yet, in this team of acme.
    New(TeamRef),
}

/// One call of `decide` and the verdict DESIGN §2 expects from it.
struct Cell {
    label: String,
    principal: Option<Principal>,
    action: Action,
    on: On,
    expect: Verdict,
}

impl Cell {
    fn on_project(
        label: &str,
        principal: Option<Principal>,
        (vis, at, membership): (Visibility, Where, Membership),
        action: Action,
        expect: Verdict,
    ) -> Cell {
        let member_id = principal.as_ref().map(|p| p.id.clone());
        Cell {
            label: format!(
                "{label} | {vis} | {at:?} | {membership:?} | {}",
                action.as_str()
            ),
            on: On::Project(project(at, vis, membership, member_id.as_deref())),
            principal,
            action,
            expect,
        }
    }

    fn create(label: &str, principal: Option<Principal>, at: Where, expect: Verdict) -> Cell {
        Cell {
            label: format!("{label} | new project | {at:?} | create_project"),
            principal,
            action: Action::CreateProject,
            on: On::New(team_of(at)),
            expect,
        }
    }

    fn decide(&self) -> Decision {
        let target = match &self.on {
            On::Project(p) => Target::Project(p),
            On::New(team) => Target::NewProject {
                org_id: ORG_ID,
                team,
                name: NEW_PROJECT,
            },
        };
        decide(self.principal.as_ref(), self.action, target)
    }

    /// The `team/project` path the request is about.
    fn path(&self) -> String {
        match &self.on {
            On::Project(p) => format!("{}/{}", p.team.name, p.name),
            On::New(team) => format!("{}/{NEW_PROJECT}", team.name),
        }
    }
}

/// The table and the create rows, full credentials, org "acme".
fn table_cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for &(kind, vis, at, membership, expect) in TABLE {
        for (action, expect) in ACTIONS.into_iter().zip(expect) {
            let label = format!("{kind:?}");
            cells.push(Cell::on_project(
                &label,
                principal(kind),
                (vis, at, membership),
                action,
                expect,
            ));
        }
    }
    for &(kind, at, expect) in CREATE {
        cells.push(Cell::create(
            &format!("{kind:?}"),
            principal(kind),
            at,
            expect,
        ));
    }
    cells
}

/// Every cell with the principal moved to another org: "Principals of another
/// org get 404, so nothing leaks across tenants" — whatever the visibility,
/// team, membership or action, and even for `public` reads.
fn other_org_cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for kind in KINDS.into_iter().filter(|&k| k != Anonymous) {
        let label = format!("{kind:?} of org globex");
        for vis in VISIBILITIES {
            for at in [Home, Other] {
                for membership in MEMBERSHIPS {
                    for action in ACTIONS {
                        cells.push(Cell::on_project(
                            &label,
                            foreign(kind),
                            (vis, at, membership),
                            action,
                            N,
                        ));
                    }
                }
            }
        }
        for at in [Home, Other] {
            cells.push(Cell::create(&label, foreign(kind), at, N));
        }
    }
    cells
}

/// Every table row again with a credential down-scoped to `read` (token
/// exchange `scope=read`): reads answer as in the table; writes, project
/// creation and administration are all refused (403), since the credential
/// carries no `write`. (DESIGN names only read and write as scopes; refusing
/// `admin` to a read-only credential is this test's reading.)
fn read_only_cells() -> Vec<Cell> {
    let mut cells = Vec::new();
    for &(kind, vis, at, membership, [read, _, _]) in TABLE {
        if kind == Anonymous {
            continue;
        }
        let label = format!("{kind:?} scope=read");
        for (action, expect) in ACTIONS.into_iter().zip([read, F, F]) {
            cells.push(Cell::on_project(
                &label,
                read_only(kind),
                (vis, at, membership),
                action,
                expect,
            ));
        }
    }
    for kind in KINDS.into_iter().filter(|&k| k != Anonymous) {
        for at in [Home, Other] {
            cells.push(Cell::create(
                &format!("{kind:?} scope=read"),
                read_only(kind),
                at,
                F,
            ));
        }
    }
    cells
}

/// Runs every cell and fails once, listing every cell whose verdict differs.
fn check(what: &str, cells: &[Cell]) {
    let failures: Vec<String> = cells
        .iter()
        .filter_map(|cell| {
            let d = cell.decide();
            (d.verdict != cell.expect).then(|| {
                format!(
                    "  {}: expected {:?}, got {:?} (rule {}: {})",
                    cell.label, cell.expect, d.verdict, d.rule, d.reason
                )
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {} cells disagree with DESIGN §2:\n{}",
        failures.len(),
        cells.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn table_covers_every_cell_exactly_once() {
    let mut missing = Vec::new();
    for kind in KINDS {
        let memberships: &[Membership] = if kind == Anonymous {
            &[NoMember]
        } else {
            &MEMBERSHIPS
        };
        for vis in VISIBILITIES {
            for at in [Home, Other] {
                for &membership in memberships {
                    let n = TABLE
                        .iter()
                        .filter(|r| (r.0, r.1, r.2, r.3) == (kind, vis, at, membership))
                        .count();
                    if n != 1 {
                        missing.push(format!(
                            "  {kind:?} | {vis} | {at:?} | {membership:?}: {n} rows"
                        ));
                    }
                }
            }
        }
        for at in [Home, Other] {
            let n = CREATE.iter().filter(|r| (r.0, r.1) == (kind, at)).count();
            if n != 1 {
                missing.push(format!("  {kind:?} | create_project | {at:?}: {n} rows"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the table must have exactly one row per cell:\n{}",
        missing.join("\n")
    );
    assert_eq!(TABLE.len(), 7 * 4 * 2 * 3 + 4 * 2);
}

#[test]
fn decide_matches_design_table() {
    check("full credentials", &table_cells());
}

#[test]
fn principals_of_another_org_get_not_found_everywhere() {
    check("another org", &other_org_cells());
}

#[test]
fn read_only_credential_cannot_write() {
    check("scope=read", &read_only_cells());
}

/// "Denials carry a reason a person can act on": every refusal names its rule
/// and the `team/project` path; a 403 also names the principal. (A 404 must
/// not say more than "not found" and a 401 has no principal to name.)
#[test]
fn every_denial_names_rule_principal_and_project() {
    let mut failures = Vec::new();
    let cells: Vec<Cell> = [table_cells(), other_org_cells(), read_only_cells()]
        .into_iter()
        .flatten()
        .collect();
    for cell in &cells {
        let d = cell.decide();
        if d.rule.is_empty() {
            failures.push(format!(
                "  {}: empty rule ({:?}: {})",
                cell.label, d.verdict, d.reason
            ));
        }
        if d.verdict == Verdict::Allow {
            continue;
        }
        let path = cell.path();
        let mut missing = Vec::new();
        if d.reason.trim().is_empty() {
            missing.push("a reason".to_string());
        }
        if !d.reason.contains(&path) {
            missing.push(format!("the path {path:?}"));
        }
        if let (Verdict::Forbidden, Some(p)) = (d.verdict, &cell.principal)
            && !d.reason.contains(&format!("\"{}\"", p.name))
        {
            missing.push(format!("the principal {:?}", p.name));
        }
        if !missing.is_empty() {
            failures.push(format!(
                "  {}: {:?} (rule {}) lacks {}: {:?}",
                cell.label,
                d.verdict,
                d.rule,
                missing.join(" and "),
                d.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cells deny without naming what DESIGN §2 asks for:\n{}",
        failures.len(),
        cells.len(),
        failures.join("\n")
    );
}

/// A principal from an external binding's exchanged token and one from a
/// built-in account's API key are the same value but for `auth`; nothing in
/// the decision may differ — verdict, rule or reason — in any cell, with full,
/// read-only or foreign credentials.
#[test]
fn external_team_account_decides_exactly_like_builtin() {
    type Make = fn(Kind) -> Option<Principal>;
    let variants: [(&str, Make); 3] = [
        ("full", principal),
        ("scope=read", read_only),
        ("org globex", foreign),
    ];
    let mut compared = 0;
    let mut failures = Vec::new();
    for (variant, make) in variants {
        let (builtin, external) = (make(TeamSa), make(ExtSa));
        assert_ne!(builtin, external, "the two accounts must differ (in auth)");
        let mut pairs = Vec::new();
        for vis in VISIBILITIES {
            for at in [Home, Other] {
                for membership in MEMBERSHIPS {
                    for action in ACTIONS {
                        let cell = |p: &Option<Principal>| {
                            Cell::on_project(variant, p.clone(), (vis, at, membership), action, A)
                        };
                        pairs.push((cell(&builtin), cell(&external)));
                    }
                }
            }
        }
        for at in [Home, Other] {
            pairs.push((
                Cell::create(variant, builtin.clone(), at, A),
                Cell::create(variant, external.clone(), at, A),
            ));
        }
        for (b, e) in &pairs {
            compared += 1;
            let (db, de) = (b.decide(), e.decide());
            if db != de {
                failures.push(format!(
                    "  {}:\n    builtin  {db:?}\n    external {de:?}",
                    b.label
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} cells differ between built-in and external:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// DESIGN §2's own example of a denial, word for word.
#[test]
fn design_example_denial() {
    let ci_bot = principal(TeamSa);
    let eval = project(Other, Team, NoMember, None);
    let d = decide(ci_bot.as_ref(), Action::Write, Target::Project(&eval));
    assert_eq!(d.verdict, Verdict::Forbidden, "{d:?}");
    let example = r#"service account "ci-bot" (team-scoped to "vision") cannot write to "nlp/eval": project visibility is "team" and "nlp" is not its parent team"#;
    assert!(
        d.reason.contains(example),
        "reason {:?} should read {example:?}",
        d.reason
    );
}

// ---------------------------------------------------------------------------
// `decide_admin` (DESIGN §2 "Who may administer"): every admin action ×
// every principal kind, verdicts and rules written by hand.
// ---------------------------------------------------------------------------

use fedgate::authz::{AdminTarget, decide_admin};

/// What an admin action is aimed at: the table's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AdminCol {
    /// The org itself: users, teams, issuers, org-scoped accounts, audit.
    Org,
    /// Team "vision" (the home team of the cast).
    TeamHome,
    /// Team "nlp".
    TeamOther,
    /// A team-scoped account of "vision": its keys, disable/enable.
    SaHome,
    /// A team-scoped account of "nlp".
    SaOther,
    /// An org-scoped account (default team "vision").
    SaOrg,
}

/// Every administrative action fedgate has, with the column it decides on
/// (the `action` names of `require_org_admin` / `require_team_admin` /
/// the service-account checks in `service::admin` and `service::federation`).
const ADMIN_ACTIONS: &[(&str, AdminCol)] = &[
    ("user.create", AdminCol::Org),
    ("api_key.manage (another user's keys)", AdminCol::Org),
    ("team.create", AdminCol::Org),
    ("service_account.create (org-scoped)", AdminCol::Org),
    ("service_account.list (org)", AdminCol::Org),
    ("issuer.create", AdminCol::Org),
    ("issuer.list", AdminCol::Org),
    ("issuer.update", AdminCol::Org),
    ("issuer.delete", AdminCol::Org),
    ("issuer.refresh", AdminCol::Org),
    ("audit.read", AdminCol::Org),
    ("federation.explain", AdminCol::Org),
    ("team.member.add", AdminCol::TeamHome),
    ("team.member.add (another team)", AdminCol::TeamOther),
    ("service_account.create (team-scoped)", AdminCol::TeamHome),
    ("service_account.create (another team)", AdminCol::TeamOther),
    ("service_account.list (team)", AdminCol::TeamHome),
    ("api_key.create", AdminCol::SaHome),
    ("api_key.list", AdminCol::SaHome),
    ("api_key.revoke", AdminCol::SaHome),
    ("service_account.disable", AdminCol::SaHome),
    ("service_account.enable", AdminCol::SaHome),
    ("api_key.create (another team's account)", AdminCol::SaOther),
    (
        "service_account.disable (another team's account)",
        AdminCol::SaOther,
    ),
    ("api_key.create (org-scoped account)", AdminCol::SaOrg),
    ("api_key.revoke (org-scoped account)", AdminCol::SaOrg),
    (
        "service_account.disable (org-scoped account)",
        AdminCol::SaOrg,
    ),
];

/// One row per principal kind: (verdict, rule) for the columns
/// [Org, TeamHome, TeamOther, SaHome, SaOther, SaOrg].
type AdminRow = (Kind, [(Verdict, &'static str); 6]);

const SA_NO: (Verdict, &str) = (F, "admin.service_account");
const NOT_ORG: (Verdict, &str) = (F, "admin.not_org_admin");
const NOT_TEAM: (Verdict, &str) = (F, "admin.not_team_admin");
const ORG_OK: (Verdict, &str) = (A, "admin.org_admin");
const TEAM_OK: (Verdict, &str) = (A, "admin.team_admin");

#[rustfmt::skip]
const ADMIN_TABLE: &[AdminRow] = &[
    //            Org      TeamHome  TeamOther SaHome    SaOther   SaOrg
    (OrgSa,      [SA_NO,   SA_NO,    SA_NO,    SA_NO,    SA_NO,    SA_NO]),
    (TeamSa,     [SA_NO,   SA_NO,    SA_NO,    SA_NO,    SA_NO,    SA_NO]),
    (ExtSa,      [SA_NO,   SA_NO,    SA_NO,    SA_NO,    SA_NO,    SA_NO]),
    (TeamMember, [NOT_ORG, NOT_TEAM, NOT_TEAM, NOT_TEAM, NOT_TEAM, NOT_ORG]),
    (TeamAdmin,  [NOT_ORG, TEAM_OK,  NOT_TEAM, TEAM_OK,  NOT_TEAM, NOT_ORG]),
    (OrgAdmin,   [ORG_OK,  ORG_OK,   ORG_OK,   ORG_OK,   ORG_OK,   ORG_OK]),
    (OrgMember,  [NOT_ORG, NOT_TEAM, NOT_TEAM, NOT_TEAM, NOT_TEAM, NOT_ORG]),
];

fn admin_decide(p: &Principal, col: AdminCol) -> Decision {
    let (v, n) = (vision(), nlp());
    let home = SaScope::Team { team: vision() };
    let other = SaScope::Team { team: nlp() };
    let org = SaScope::Org {
        default_team: vision(),
    };
    let target = match col {
        AdminCol::Org => AdminTarget::Org {
            org_id: ORG_ID,
            org_name: ORG_NAME,
        },
        AdminCol::TeamHome => AdminTarget::Team {
            org_id: ORG_ID,
            team: &v,
        },
        AdminCol::TeamOther => AdminTarget::Team {
            org_id: ORG_ID,
            team: &n,
        },
        AdminCol::SaHome => AdminTarget::ServiceAccount {
            org_id: ORG_ID,
            name: "vision-bot",
            scope: &home,
        },
        AdminCol::SaOther => AdminTarget::ServiceAccount {
            org_id: ORG_ID,
            name: "nlp-bot",
            scope: &other,
        },
        AdminCol::SaOrg => AdminTarget::ServiceAccount {
            org_id: ORG_ID,
            name: "org-bot",
            scope: &org,
        },
    };
    decide_admin(p, target)
}

const ADMIN_COLS: [AdminCol; 6] = [
    AdminCol::Org,
    AdminCol::TeamHome,
    AdminCol::TeamOther,
    AdminCol::SaHome,
    AdminCol::SaOther,
    AdminCol::SaOrg,
];

#[test]
fn decide_admin_matches_the_hand_written_table() {
    let kinds: Vec<Kind> = ADMIN_TABLE.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        KINDS
            .iter()
            .copied()
            .filter(|k| *k != Anonymous)
            .collect::<Vec<_>>(),
        "one row per principal kind (an anonymous caller never reaches decide_admin)"
    );
    let mut wrong = Vec::new();
    for (kind, row) in ADMIN_TABLE {
        let p = principal(*kind).unwrap();
        for (action, col) in ADMIN_ACTIONS {
            let i = ADMIN_COLS.iter().position(|c| c == col).unwrap();
            let (want, rule) = row[i];
            let d = admin_decide(&p, *col);
            if (d.verdict, d.rule) != (want, rule) {
                wrong.push(format!(
                    "{kind:?} {action}: got {:?} {} ({}), want {want:?} {rule}",
                    d.verdict, d.rule, d.reason
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn decide_admin_read_only_and_foreign_principals() {
    for kind in KINDS.iter().copied().filter(|k| *k != Anonymous) {
        let is_sa = matches!(kind, OrgSa | TeamSa | ExtSa);
        for col in ADMIN_COLS {
            // A read-only credential administers nothing; a service account
            // is refused for what it is first.
            let d = admin_decide(&read_only(kind).unwrap(), col);
            let want = if is_sa {
                SA_NO
            } else {
                (F, "credential.scope")
            };
            assert_eq!((d.verdict, d.rule), want, "read-only {kind:?} {col:?}");
            // Another org's principal learns nothing: not found.
            let d = admin_decide(&foreign(kind).unwrap(), col);
            assert_eq!(
                (d.verdict, d.rule),
                (N, "tenant.isolation"),
                "foreign {kind:?} {col:?}"
            );
        }
    }
    // The reasons name who and what.
    let d = admin_decide(&principal(TeamAdmin).unwrap(), AdminCol::SaOrg);
    assert_eq!(
        d.reason,
        "user \"bob\" cannot administer service account \"org-bot\": it takes an org admin"
    );
    let d = admin_decide(&principal(TeamMember).unwrap(), AdminCol::TeamHome);
    assert_eq!(
        d.reason,
        "user \"alice\" cannot administer team \"vision\": it takes an admin of team \"vision\" or an org admin"
    );
}
