//! The platform's domain values (DESIGN §1), shared by the store, the
//! authorization rules and the HTTP layer. No I/O here.

use serde::{Deserialize, Serialize};

/// A user's role in its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrgRole {
    Admin,
    Member,
}

/// A role in a team or an explicit project membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

/// Who can see a project (W&B's four visibilities).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    Team,
    Restricted,
    Open,
    Public,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The name used in the store and in JSON.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            /// Parses the stored or JSON name.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(OrgRole { Admin => "admin", Member => "member" });
text_enum!(Role { Admin => "admin", Member => "member" });
text_enum!(Visibility { Team => "team", Restricted => "restricted", Open => "open", Public => "public" });
text_enum!(SaAuth { Builtin => "builtin", External => "external" });

/// How a service account authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SaAuth {
    /// API keys minted by fedgate.
    Builtin,
    /// A federation binding: a JWT from a trusted issuer is exchanged.
    External,
}

/// A team as principals and targets refer to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamRef {
    pub id: String,
    pub name: String,
}

/// Where a service account may act (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaScope {
    /// Every team of the org; writes go to `default_team` without an entity.
    Org { default_team: TeamRef },
    /// Its parent team, plus `open`/`public` projects of other teams.
    Team { team: TeamRef },
}

impl SaScope {
    /// `"org"` or `"team"`.
    pub fn kind(&self) -> &'static str {
        match self {
            SaScope::Org { .. } => "org",
            SaScope::Team { .. } => "team",
        }
    }
    /// The team a write goes to when no entity is named.
    pub fn home_team(&self) -> &TeamRef {
        match self {
            SaScope::Org { default_team } => default_team,
            SaScope::Team { team } => team,
        }
    }
}

/// A user's membership of a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamMembership {
    pub team: TeamRef,
    pub role: Role,
}

/// What a principal is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    User {
        username: String,
        email: String,
        role: OrgRole,
        /// Teams in the order the user joined them; the first is the default entity.
        teams: Vec<TeamMembership>,
    },
    ServiceAccount {
        scope: SaScope,
        auth: SaAuth,
    },
}

/// The operations a credential may be down-scoped to (RFC 8693 `scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
}

impl Scopes {
    /// What an API key carries.
    pub const FULL: Scopes = Scopes {
        read: true,
        write: true,
    };

    /// Parses a space-separated scope string; `None` for an unknown word.
    pub fn parse(s: &str) -> Option<Scopes> {
        let mut out = Scopes {
            read: false,
            write: false,
        };
        for word in s.split(' ').filter(|w| !w.is_empty()) {
            match word {
                "read" => out.read = true,
                "write" => out.write = true,
                _ => return None,
            }
        }
        Some(out)
    }

    /// The space-separated form, as in a token's `scope` claim.
    pub fn to_scope_string(self) -> String {
        match (self.read, self.write) {
            (true, true) => "read write".into(),
            (true, false) => "read".into(),
            (false, true) => "write".into(),
            (false, false) => String::new(),
        }
    }
}

/// The authenticated caller. A principal built from an API key and one built
/// from a minted access token are the same value: nothing downstream can tell
/// them apart (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    /// Username, or the service account's name.
    pub name: String,
    pub org_id: String,
    pub org_name: String,
    pub kind: PrincipalKind,
    pub scopes: Scopes,
}

impl Principal {
    /// `"user"` or `"service_account"`.
    pub fn kind_str(&self) -> &'static str {
        match self.kind {
            PrincipalKind::User { .. } => "user",
            PrincipalKind::ServiceAccount { .. } => "service_account",
        }
    }

    /// The team writes go to when no entity is named, if any.
    pub fn default_team(&self) -> Option<&TeamRef> {
        match &self.kind {
            PrincipalKind::User { teams, .. } => teams.first().map(|m| &m.team),
            PrincipalKind::ServiceAccount { scope, .. } => Some(scope.home_team()),
        }
    }

    /// The user's role in `team_id`, if a member.
    pub fn team_role(&self, team_id: &str) -> Option<Role> {
        match &self.kind {
            PrincipalKind::User { teams, .. } => {
                teams.iter().find(|m| m.team.id == team_id).map(|m| m.role)
            }
            PrincipalKind::ServiceAccount { .. } => None,
        }
    }

    /// True for a user whose org role is admin.
    pub fn is_org_admin(&self) -> bool {
        matches!(
            self.kind,
            PrincipalKind::User {
                role: OrgRole::Admin,
                ..
            }
        )
    }

    /// How denials name this principal: `user "alice"` or
    /// `service account "ci-bot" (team-scoped to "vision")`.
    pub fn describe(&self) -> String {
        match &self.kind {
            PrincipalKind::User { .. } => format!("user \"{}\"", self.name),
            PrincipalKind::ServiceAccount {
                scope: SaScope::Team { team },
                ..
            } => format!(
                "service account \"{}\" (team-scoped to \"{}\")",
                self.name, team.name
            ),
            PrincipalKind::ServiceAccount {
                scope: SaScope::Org { .. },
                ..
            } => format!(
                "service account \"{}\" (org-scoped to \"{}\")",
                self.name, self.org_name
            ),
        }
    }
}

/// Checks a name used in paths (team, project, user, service account):
/// 1–64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {:?} is invalid: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            truncate(name, 80)
        ))
    }
}

/// First path segments fedgate serves itself (API, console, operations). A
/// team is reachable at `/<team>` in the console, so a team may not take one
/// of these names (compared without case).
pub const RESERVED_TEAM_NAMES: &[&str] = &[
    "api",
    "oidc",
    "oauth",
    "oauth2",
    "sso",
    "org",
    "orgs",
    "static",
    "assets",
    "login",
    "logout",
    "signin",
    "signout",
    "healthz",
    "readyz",
    "metrics",
    "graphql",
    "openapi.json",
    "favicon.ico",
    "robots.txt",
    "console",
    "admin",
    "settings",
    "service-accounts",
];

/// Refuses a team name that would shadow a path of the API or the console.
pub fn check_team_name(name: &str) -> Result<(), String> {
    check_name("team", name)?;
    if RESERVED_TEAM_NAMES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "team name {name:?} is reserved: the console and the API use /{name}; choose another name"
        ));
    }
    Ok(())
}

/// Checks an email address loosely: one `@`, something on each side, no spaces.
pub fn check_email(email: &str) -> Result<(), String> {
    let mut parts = email.split('@');
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && b.contains('.'));
    if ok {
        Ok(())
    } else {
        Err(format!("email {:?} is invalid", truncate(email, 80)))
    }
}

/// Shortens user input before it is echoed in an error.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("team", "vision").is_ok());
        assert!(check_name("team", "a.b_c-1").is_ok());
        assert!(check_name("team", "").is_err());
        assert!(check_name("team", "-x").is_err());
        assert!(check_name("team", "a/b").is_err());
        assert!(check_name("team", &"x".repeat(65)).is_err());
    }

    #[test]
    fn reserved_team_names() {
        assert!(check_team_name("vision").is_ok());
        for name in [
            "org",
            "API",
            "sso",
            "login",
            "healthz",
            "graphql",
            "openapi.json",
        ] {
            assert!(check_team_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(Scopes::parse("read write"), Some(Scopes::FULL));
        assert_eq!(Scopes::parse("write  read"), Some(Scopes::FULL));
        assert_eq!(Scopes::parse("read").map(|s| s.write), Some(false));
        assert_eq!(Scopes::parse("admin"), None);
    }

    #[test]
    fn emails() {
        assert!(check_email("a@b.io").is_ok());
        assert!(check_email("a@b").is_err());
        assert!(check_email("a b@c.io").is_err());
        assert!(check_email("a@b@c.io").is_err());
    }
}
