//! The plan: what must be created, changed and deleted so that the
//! organization's issuers and federated accounts are what the trust file
//! declares. Pure: today's state in, a plan out; nothing is called.
//!
//! A key the file leaves out means the server's default (audiences: the
//! organization's name; every asymmetric algorithm; the default ages and
//! lifetime; enabled; enforce), so a removed line is a change back to it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::admin_cli::trust::file::{IssuerDecl, KeySourceDecl, SaDecl, TrustFile};
use crate::federation::{DEFAULT_ALGS, DEFAULT_LEEWAY_S, DEFAULT_MAX_TOKEN_AGE_S};
use crate::service::admin::DEFAULT_SA_MAX_LIFETIME_S;

/// A trusted issuer as the API shows it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct IssuerState {
    pub id: String,
    #[serde(rename = "issuer")]
    pub url: String,
    pub key_source: String,
    pub jwks_uri: Option<String>,
    /// The static JWK Set, when the key source is static.
    pub jwks: Option<Value>,
    pub audiences: Vec<String>,
    pub allowed_algs: Vec<String>,
    pub max_token_age_s: i64,
    pub leeway_s: i64,
    pub single_use_jti: bool,
    pub users: bool,
}

/// A binding as the API shows it: flat (`{issuer_id, issuer, subject, …,
/// mode}`), or with its conditions under `spec` as older servers answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "RawBinding")]
pub struct BindingState {
    pub issuer_id: String,
    pub subject: String,
    pub subject_pattern: Option<String>,
    pub allow_broad_subject_pattern: bool,
    pub claims: BTreeMap<String, String>,
    pub mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct SpecFields {
    subject: String,
    subject_pattern: Option<String>,
    allow_broad_subject_pattern: bool,
    claims: BTreeMap<String, Value>,
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBinding {
    issuer_id: String,
    spec: Option<SpecFields>,
    #[serde(flatten)]
    flat: SpecFields,
}

impl From<RawBinding> for BindingState {
    fn from(r: RawBinding) -> Self {
        let mode = r.flat.mode.clone();
        let s = r.spec.unwrap_or(r.flat);
        BindingState {
            issuer_id: r.issuer_id,
            subject: s.subject,
            subject_pattern: s.subject_pattern,
            allow_broad_subject_pattern: s.allow_broad_subject_pattern,
            // Conditions are text; a number or boolean stands for its text.
            claims: s
                .claims
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => (k, s),
                    other => (k, other.to_string()),
                })
                .collect(),
            mode: s.mode.or(mode),
        }
    }
}

/// A service account as the API shows it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SaState {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub team: Option<String>,
    pub default_team: Option<String>,
    pub auth: String,
    pub disabled: bool,
    pub max_token_lifetime_s: i64,
    pub binding: Option<BindingState>,
    pub mode: Option<String>,
}

impl SaState {
    /// The binding's mode: `enforce` unless the server says otherwise.
    pub fn mode(&self) -> String {
        self.binding
            .as_ref()
            .and_then(|b| b.mode.clone())
            .or_else(|| self.mode.clone())
            .unwrap_or_else(|| "enforce".into())
    }

    fn team_name(&self) -> String {
        self.team
            .clone()
            .or_else(|| self.default_team.clone())
            .unwrap_or_default()
    }

    /// Whether this is a federated account the trust file can manage.
    pub fn is_federated(&self) -> bool {
        self.auth == "external" && self.scope == "team"
    }
}

/// Today's state of one organization.
#[derive(Clone, Debug, Default)]
pub struct Current {
    pub org: String,
    pub teams: BTreeSet<String>,
    pub issuers: Vec<IssuerState>,
    pub accounts: Vec<SaState>,
}

impl Current {
    /// The URL of the issuer with this id.
    pub fn issuer_url(&self, id: &str) -> Option<&str> {
        self.issuers
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.url.as_str())
    }
}

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// What a change is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Team,
    Issuer,
    ServiceAccount,
}

impl Kind {
    /// How people read it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Team => "team",
            Kind::Issuer => "issuer",
            Kind::ServiceAccount => "service account",
        }
    }
}

/// One setting before and after (`null` when absent).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub from: Value,
    pub to: Value,
}

/// The API calls that carry out a change.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    CreateTeam,
    CreateIssuer {
        body: Value,
    },
    UpdateIssuer {
        id: String,
        body: Value,
    },
    DeleteIssuer {
        id: String,
    },
    /// Create, then disable when the file says so.
    CreateSa {
        team: String,
        body: Value,
        disabled: bool,
    },
    /// PATCH the binding/lifetime when `body` is set; disable/enable when `disabled` is.
    UpdateSa {
        id: String,
        body: Option<Value>,
        disabled: Option<bool>,
    },
    DeleteSa {
        id: String,
    },
}

/// One change of the plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The line of the trust file that declares it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub fields: Vec<FieldChange>,
    #[serde(skip)]
    pub op: Op,
}

/// Something the server has and the file does not declare, left alone
/// (without `--prune`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kept {
    pub kind: Kind,
    pub name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// The whole plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    pub org: String,
    pub changes: Vec<Change>,
    pub kept: Vec<Kept>,
    /// Declarations that cannot be applied to today's state; apply refuses
    /// the whole plan while there is one.
    pub errors: Vec<String>,
}

impl Plan {
    /// How many changes of each action.
    pub fn count(&self, a: Action) -> usize {
        self.changes.iter().filter(|c| c.action == a).count()
    }
}

fn default_algs() -> Vec<String> {
    DEFAULT_ALGS.iter().map(|a| format!("{a:?}")).collect()
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The `kid`s of a JWK Set, sorted.
fn kids(jwks: &Value) -> Vec<String> {
    let mut k: Vec<String> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|k| {
            k.get("kid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        })
        .collect();
    k.sort();
    k
}

fn field(fields: &mut Vec<FieldChange>, name: &str, from: Value, to: Value) {
    if from != to {
        fields.push(FieldChange {
            field: name.into(),
            from,
            to,
        });
    }
}

/// What the file wants of an issuer, with defaults filled in, as an API body.
fn issuer_body(d: &IssuerDecl, org: &str) -> serde_json::Map<String, Value> {
    let mut b = serde_json::Map::new();
    b.insert("issuer".into(), json!(d.url));
    match &d.key_source {
        KeySourceDecl::Discovery => {}
        KeySourceDecl::JwksUri(u) => {
            b.insert("jwks_uri".into(), json!(u));
        }
        KeySourceDecl::Static(j) => {
            b.insert("jwks".into(), j.clone());
        }
    }
    b.insert(
        "audiences".into(),
        json!(d.audiences.clone().unwrap_or_else(|| vec![org.to_string()])),
    );
    b.insert(
        "allowed_algs".into(),
        json!(d.allowed_algs.clone().unwrap_or_else(default_algs)),
    );
    b.insert(
        "max_token_age_s".into(),
        json!(d.max_token_age_s.unwrap_or(DEFAULT_MAX_TOKEN_AGE_S)),
    );
    b.insert(
        "leeway_s".into(),
        json!(d.leeway_s.unwrap_or(DEFAULT_LEEWAY_S)),
    );
    b.insert("single_use_jti".into(), json!(d.single_use_jti));
    b.insert("users".into(), json!(d.users));
    b
}

fn diff_issuer(
    d: &IssuerDecl,
    cur: &IssuerState,
    org: &str,
    errors: &mut Vec<String>,
) -> Option<Change> {
    let want = issuer_body(d, org);
    let mut fields = Vec::new();
    let mut body = serde_json::Map::new();
    // Key source.
    match (&d.key_source, cur.key_source.as_str()) {
        (KeySourceDecl::Discovery, "discovery") => {}
        (KeySourceDecl::Discovery, other) => errors.push(format!(
            "issuer {} (line {}): its keys come from {other} today; the API cannot switch an issuer back to discovery: delete and re-add it by hand, or declare its {}",
            d.url,
            d.line,
            if other == "static" { "jwks" } else { "jwks_uri" }
        )),
        (KeySourceDecl::JwksUri(u), _) => {
            if cur.key_source != "jwks_uri" || cur.jwks_uri.as_deref() != Some(u) {
                field(
                    &mut fields,
                    "jwks_uri",
                    json!(cur.jwks_uri),
                    json!(u),
                );
                body.insert("jwks_uri".into(), json!(u));
            }
        }
        (KeySourceDecl::Static(j), _) => {
            let same = cur.key_source == "static"
                && cur.jwks.as_ref().is_some_and(|c| kids(c) == kids(j));
            if !same {
                field(
                    &mut fields,
                    "jwks (kids)",
                    cur.jwks.as_ref().map(|c| json!(kids(c))).unwrap_or(Value::Null),
                    json!(kids(j)),
                );
                body.insert("jwks".into(), j.clone());
            }
        }
    }
    let set_fields: [(&str, Value, Value); 2] = [
        (
            "audiences",
            json!(sorted(&cur.audiences)),
            json!(sorted(
                &serde_json::from_value::<Vec<String>>(want["audiences"].clone())
                    .unwrap_or_default()
            )),
        ),
        (
            "allowed_algs",
            json!(sorted(&cur.allowed_algs)),
            json!(sorted(
                &serde_json::from_value::<Vec<String>>(want["allowed_algs"].clone())
                    .unwrap_or_default()
            )),
        ),
    ];
    for (name, from, to) in set_fields {
        if from != to {
            field(&mut fields, name, from, to);
            body.insert(name.into(), want[name].clone());
        }
    }
    let scalars: [(&str, Value); 4] = [
        ("max_token_age_s", json!(cur.max_token_age_s)),
        ("leeway_s", json!(cur.leeway_s)),
        ("single_use_jti", json!(cur.single_use_jti)),
        ("users", json!(cur.users)),
    ];
    for (name, from) in scalars {
        if from != want[name] {
            field(&mut fields, name, from, want[name].clone());
            body.insert(name.into(), want[name].clone());
        }
    }
    if fields.is_empty() {
        return None;
    }
    Some(Change {
        action: Action::Update,
        kind: Kind::Issuer,
        name: d.url.clone(),
        id: Some(cur.id.clone()),
        team: None,
        line: Some(d.line),
        fields,
        op: Op::UpdateIssuer {
            id: cur.id.clone(),
            body: Value::Object(body),
        },
    })
}

fn sa_fields(d: &SaDecl) -> [(&'static str, Value); 7] {
    [
        ("issuer", json!(d.issuer)),
        ("subject", json!(d.subject)),
        ("subject_pattern", json!(d.subject_pattern)),
        (
            "allow_broad_subject_pattern",
            json!(d.allow_broad_subject_pattern),
        ),
        ("claims", json!(d.claims)),
        (
            "max_token_lifetime_s",
            json!(d.max_token_lifetime_s.unwrap_or(DEFAULT_SA_MAX_LIFETIME_S)),
        ),
        (
            "mode",
            json!(d.mode.clone().unwrap_or_else(|| "enforce".into())),
        ),
    ]
}

fn diff_sa(d: &SaDecl, cur: &SaState, current: &Current) -> Option<Change> {
    let b = cur.binding.clone().unwrap_or_default();
    let have: HashMap<&str, Value> = HashMap::from([
        (
            "issuer",
            json!(current.issuer_url(&b.issuer_id).unwrap_or(&b.issuer_id)),
        ),
        ("subject", json!(b.subject)),
        ("subject_pattern", json!(b.subject_pattern)),
        (
            "allow_broad_subject_pattern",
            json!(b.allow_broad_subject_pattern),
        ),
        ("claims", json!(b.claims)),
        ("max_token_lifetime_s", json!(cur.max_token_lifetime_s)),
        ("mode", json!(cur.mode())),
    ]);
    let mut fields = Vec::new();
    let mut body = serde_json::Map::new();
    for (name, want) in sa_fields(d) {
        let from = have.get(name).cloned().unwrap_or(Value::Null);
        if name == "claims" {
            // One line per claim condition: easier to review.
            let from_m: BTreeMap<String, String> =
                serde_json::from_value(from.clone()).unwrap_or_default();
            let keys: BTreeSet<&String> = from_m.keys().chain(d.claims.keys()).collect();
            let before = fields.len();
            for k in keys {
                field(
                    &mut fields,
                    &format!("claims.{k}"),
                    json!(from_m.get(k)),
                    json!(d.claims.get(k)),
                );
            }
            if fields.len() > before {
                body.insert(name.into(), want);
            }
        } else if from != want {
            field(&mut fields, name, from, want.clone());
            body.insert(name.into(), want);
        }
    }
    let disabled = (cur.disabled != d.disabled).then_some(d.disabled);
    if let Some(to) = disabled {
        field(&mut fields, "disabled", json!(cur.disabled), json!(to));
    }
    if fields.is_empty() {
        return None;
    }
    Some(Change {
        action: Action::Update,
        kind: Kind::ServiceAccount,
        name: d.name.clone(),
        id: Some(cur.id.clone()),
        team: Some(d.team.clone()),
        line: Some(d.line),
        fields,
        op: Op::UpdateSa {
            id: cur.id.clone(),
            body: (!body.is_empty()).then_some(Value::Object(body)),
            disabled,
        },
    })
}

/// Compares the file with today's state. `prune` turns "kept" leftovers
/// into deletions.
pub fn plan(file: &TrustFile, current: &Current, prune: bool) -> Plan {
    let org = current.org.clone();
    let mut errors = Vec::new();
    if let Some(want) = &file.org
        && *want != org
    {
        errors.push(format!(
            "the trust file is for organization \"{want}\" but the credential acts on \"{org}\": use that organization's admin key, or --org {want}"
        ));
        return Plan {
            org,
            errors,
            ..Plan::default()
        };
    }
    let mut teams = Vec::new();
    let mut issuers_new = Vec::new();
    let mut issuers_changed = Vec::new();
    let mut sas_new = Vec::new();
    let mut sas_changed = Vec::new();
    let mut deletions = Vec::new();
    let mut kept = Vec::new();

    let mut new_teams = BTreeSet::new();
    for a in &file.accounts {
        if !current.teams.contains(&a.team) {
            new_teams.insert(a.team.clone());
        }
    }
    for t in new_teams {
        teams.push(Change {
            action: Action::Create,
            kind: Kind::Team,
            name: t.clone(),
            id: None,
            team: None,
            line: file.accounts.iter().find(|a| a.team == t).map(|a| a.line),
            fields: Vec::new(),
            op: Op::CreateTeam,
        });
    }

    for d in &file.issuers {
        match current.issuers.iter().find(|i| i.url == d.url) {
            Some(cur) => {
                if let Some(c) = diff_issuer(d, cur, &org, &mut errors) {
                    issuers_changed.push(c);
                }
            }
            None => {
                let body = issuer_body(d, &org);
                let fields = body
                    .iter()
                    .filter(|(k, _)| k.as_str() != "issuer")
                    .map(|(k, v)| FieldChange {
                        field: if k == "jwks" {
                            "jwks (kids)".into()
                        } else {
                            k.clone()
                        },
                        from: Value::Null,
                        to: if k == "jwks" {
                            json!(kids(v))
                        } else {
                            v.clone()
                        },
                    })
                    .collect();
                issuers_new.push(Change {
                    action: Action::Create,
                    kind: Kind::Issuer,
                    name: d.url.clone(),
                    id: None,
                    team: None,
                    line: Some(d.line),
                    fields,
                    op: Op::CreateIssuer {
                        body: Value::Object(body),
                    },
                });
            }
        }
    }

    for d in &file.accounts {
        match current.accounts.iter().find(|a| a.name == d.name) {
            Some(cur) if !cur.is_federated() => errors.push(format!(
                "service account {} (line {}): a {} {} account of that name already exists; federated accounts need a name of their own",
                d.name,
                d.line,
                if cur.scope == "org" { "org-scoped" } else { "team-scoped" },
                if cur.auth == "builtin" { "built-in" } else { "external" },
            )),
            Some(cur) if cur.team_name() != d.team => errors.push(format!(
                "service account {} (line {}): it belongs to team \"{}\" and the file says \"{}\"; an account cannot move between teams: delete it first (fedgate sa delete {}) or give it another name",
                d.name,
                d.line,
                cur.team_name(),
                d.team,
                d.name
            )),
            Some(cur) => {
                if let Some(c) = diff_sa(d, cur, current) {
                    sas_changed.push(c);
                }
            }
            None => {
                let mut body = serde_json::Map::new();
                body.insert("name".into(), json!(d.name));
                body.insert("auth".into(), json!("external"));
                let mut fields = Vec::new();
                for (name, want) in sa_fields(d) {
                    let explicit = match name {
                        "subject_pattern" => d.subject_pattern.is_some(),
                        // Only an org admin may send it: left out unless true.
                        "allow_broad_subject_pattern" => d.allow_broad_subject_pattern,
                        "claims" => !d.claims.is_empty(),
                        "max_token_lifetime_s" => d.max_token_lifetime_s.is_some(),
                        // Sent only when asked for: servers without shadow
                        // bindings still accept every other file.
                        "mode" => d.mode.is_some(),
                        _ => true,
                    };
                    if explicit {
                        body.insert(name.into(), want.clone());
                    }
                    let shown = match name {
                        "allow_broad_subject_pattern" => d.allow_broad_subject_pattern,
                        _ => !want.is_null(),
                    };
                    if shown {
                        fields.push(FieldChange {
                            field: name.into(),
                            from: Value::Null,
                            to: want,
                        });
                    }
                }
                if d.disabled {
                    fields.push(FieldChange {
                        field: "disabled".into(),
                        from: Value::Null,
                        to: json!(true),
                    });
                }
                sas_new.push(Change {
                    action: Action::Create,
                    kind: Kind::ServiceAccount,
                    name: d.name.clone(),
                    id: None,
                    team: Some(d.team.clone()),
                    line: Some(d.line),
                    fields,
                    op: Op::CreateSa {
                        team: d.team.clone(),
                        body: Value::Object(body),
                        disabled: d.disabled,
                    },
                });
            }
        }
    }

    let declared_sas: BTreeSet<&str> = file.accounts.iter().map(|a| a.name.as_str()).collect();
    for a in current.accounts.iter().filter(|a| a.is_federated()) {
        if declared_sas.contains(a.name.as_str()) {
            continue;
        }
        if prune {
            deletions.push(Change {
                action: Action::Delete,
                kind: Kind::ServiceAccount,
                name: a.name.clone(),
                id: Some(a.id.clone()),
                team: Some(a.team_name()),
                line: None,
                fields: Vec::new(),
                op: Op::DeleteSa { id: a.id.clone() },
            });
        } else {
            kept.push(Kept {
                kind: Kind::ServiceAccount,
                name: a.name.clone(),
                id: a.id.clone(),
                team: Some(a.team_name()),
            });
        }
    }
    let declared_issuers: BTreeSet<&str> = file.issuers.iter().map(|i| i.url.as_str()).collect();
    for i in &current.issuers {
        if declared_issuers.contains(i.url.as_str()) {
            continue;
        }
        if prune {
            deletions.push(Change {
                action: Action::Delete,
                kind: Kind::Issuer,
                name: i.url.clone(),
                id: Some(i.id.clone()),
                team: None,
                line: None,
                fields: Vec::new(),
                op: Op::DeleteIssuer { id: i.id.clone() },
            });
        } else {
            kept.push(Kept {
                kind: Kind::Issuer,
                name: i.url.clone(),
                id: i.id.clone(),
                team: None,
            });
        }
    }

    // The order apply runs them in: what others depend on first; accounts
    // are deleted before the issuers they were bound to.
    let mut changes = teams;
    changes.extend(issuers_new);
    changes.extend(issuers_changed);
    changes.extend(sas_new);
    changes.extend(sas_changed);
    changes.extend(deletions);
    Plan {
        org,
        changes,
        kept,
        errors,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::admin_cli::trust::file::parse;

    const GH: &str = "https://token.actions.githubusercontent.com";

    fn file(extra: &str) -> TrustFile {
        parse(
            "t.toml",
            &format!(
                r#"
[[issuer]]
url = "{GH}"

[[service_account]]
name = "gh-train"
team = "vision"
issuer = "{GH}"
subject = "repo:acme/x:ref:refs/heads/main"
claims = {{ repository_id = "1" }}
{extra}
"#
            ),
        )
        .unwrap()
    }

    fn issuer_state(id: &str, url: &str) -> IssuerState {
        IssuerState {
            id: id.into(),
            url: url.into(),
            key_source: "discovery".into(),
            audiences: vec!["default".into()],
            allowed_algs: default_algs(),
            max_token_age_s: DEFAULT_MAX_TOKEN_AGE_S,
            leeway_s: DEFAULT_LEEWAY_S,
            ..IssuerState::default()
        }
    }

    fn sa_state(name: &str, team: &str, subject: &str) -> SaState {
        SaState {
            id: format!("sa_{name}"),
            name: name.into(),
            scope: "team".into(),
            team: Some(team.into()),
            auth: "external".into(),
            max_token_lifetime_s: DEFAULT_SA_MAX_LIFETIME_S,
            binding: Some(BindingState {
                issuer_id: "iss_1".into(),
                subject: subject.into(),
                claims: BTreeMap::from([("repository_id".into(), "1".into())]),
                ..BindingState::default()
            }),
            ..SaState::default()
        }
    }

    fn converged() -> Current {
        Current {
            org: "default".into(),
            teams: BTreeSet::from(["vision".into()]),
            issuers: vec![issuer_state("iss_1", GH)],
            accounts: vec![sa_state(
                "gh-train",
                "vision",
                "repo:acme/x:ref:refs/heads/main",
            )],
        }
    }

    #[test]
    fn bindings_are_read_flat_or_nested() {
        let flat: SaState = serde_json::from_value(json!({"name": "a", "binding": {
            "issuer_id": "iss_1", "issuer": "https://x", "subject": "s",
            "claims": {"repository_id": "1", "n": 7}, "mode": "shadow"}}))
        .unwrap();
        let nested: SaState = serde_json::from_value(json!({"name": "a", "binding": {
            "issuer_id": "iss_1", "spec": {"subject": "s", "claims": {"repository_id": "1", "n": "7"}},
            "mode": "shadow"}}))
        .unwrap();
        for sa in [flat, nested] {
            let b = sa.binding.clone().unwrap();
            assert_eq!((b.issuer_id.as_str(), b.subject.as_str()), ("iss_1", "s"));
            assert_eq!(b.claims["n"], "7");
            assert_eq!(sa.mode(), "shadow");
        }
    }

    #[test]
    fn an_empty_org_gets_everything_created_in_dependency_order() {
        let cur = Current {
            org: "default".into(),
            ..Current::default()
        };
        let p = plan(&file(""), &cur, false);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let order: Vec<(Action, Kind)> = p.changes.iter().map(|c| (c.action, c.kind)).collect();
        assert_eq!(
            order,
            vec![
                (Action::Create, Kind::Team),
                (Action::Create, Kind::Issuer),
                (Action::Create, Kind::ServiceAccount)
            ]
        );
        let Op::CreateSa { body, .. } = &p.changes[2].op else {
            panic!()
        };
        assert_eq!(body["issuer"], GH);
        assert_eq!(body["claims"]["repository_id"], "1");
        assert!(body.get("mode").is_none(), "{body}");
    }

    #[test]
    fn a_converged_org_has_no_changes() {
        let p = plan(&file(""), &converged(), false);
        assert_eq!(
            p,
            Plan {
                org: "default".into(),
                ..Plan::default()
            }
        );
    }

    #[test]
    fn changed_settings_are_listed_field_by_field() {
        let f = file("subject_pattern = \"repo:acme/*\"\nmode = \"shadow\"\ndisabled = true");
        let mut cur = converged();
        cur.accounts[0]
            .binding
            .as_mut()
            .unwrap()
            .claims
            .insert("ref".into(), "main".into());
        let p = plan(&f, &cur, false);
        assert_eq!(p.changes.len(), 1);
        let c = &p.changes[0];
        let names: Vec<&str> = c.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            names,
            vec!["subject_pattern", "claims.ref", "mode", "disabled"]
        );
        let Op::UpdateSa { body, disabled, .. } = &c.op else {
            panic!()
        };
        assert_eq!(*disabled, Some(true));
        let body = body.as_ref().unwrap();
        assert_eq!(body["claims"], json!({"repository_id": "1"}));
        assert_eq!(body["mode"], "shadow");
        assert!(body.get("subject").is_none());
    }

    #[test]
    fn a_broad_pattern_opt_in_is_planned_sent_and_read_back() {
        let f = file("subject_pattern = \"repo:*\"\nallow_broad_subject_pattern = true");
        // Created: shown and sent.
        let cur = Current {
            org: "default".into(),
            teams: BTreeSet::from(["vision".into()]),
            issuers: vec![issuer_state("iss_1", GH)],
            ..Current::default()
        };
        let p = plan(&f, &cur, false);
        let Op::CreateSa { body, .. } = &p.changes[0].op else {
            panic!("{p:?}")
        };
        assert_eq!(body["allow_broad_subject_pattern"], true);
        assert!(
            p.changes[0]
                .fields
                .iter()
                .any(|c| c.field == "allow_broad_subject_pattern" && c.to == json!(true))
        );
        // Without it, a new account's body leaves it out (and the plan does not show it).
        let p = plan(&file(""), &cur, false);
        let Op::CreateSa { body, .. } = &p.changes[0].op else {
            panic!("{p:?}")
        };
        assert!(body.get("allow_broad_subject_pattern").is_none(), "{body}");
        assert!(
            !p.changes[0]
                .fields
                .iter()
                .any(|c| c.field == "allow_broad_subject_pattern")
        );
        // Changed: one field, sent in the PATCH.
        let mut cur = converged();
        cur.accounts[0].binding.as_mut().unwrap().subject_pattern = Some("repo:*".into());
        let p = plan(&f, &cur, false);
        let names: Vec<&str> = p.changes[0]
            .fields
            .iter()
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(names, ["allow_broad_subject_pattern"]);
        let Op::UpdateSa { body, .. } = &p.changes[0].op else {
            panic!()
        };
        assert_eq!(body.as_ref().unwrap()["allow_broad_subject_pattern"], true);
        // Read back from the API (flat binding): converged.
        let sa: SaState = serde_json::from_value(json!({"id": "sa_gh-train", "name": "gh-train",
            "scope": "team", "team": "vision", "auth": "external",
            "max_token_lifetime_s": DEFAULT_SA_MAX_LIFETIME_S, "binding": {
            "issuer_id": "iss_1", "issuer": GH, "subject": "repo:acme/x:ref:refs/heads/main",
            "subject_pattern": "repo:*", "allow_broad_subject_pattern": true,
            "claims": {"repository_id": "1"}, "mode": "enforce"}}))
        .unwrap();
        cur.accounts[0] = sa;
        assert!(plan(&f, &cur, false).changes.is_empty());
    }

    #[test]
    fn left_out_keys_mean_the_default() {
        let mut cur = converged();
        cur.issuers[0].audiences = vec!["default".into(), "extra".into()];
        cur.issuers[0].leeway_s = 5;
        let p = plan(&file(""), &cur, false);
        let Op::UpdateIssuer { body, .. } = &p.changes[0].op else {
            panic!()
        };
        assert_eq!(
            body,
            &json!({"audiences": ["default"], "leeway_s": DEFAULT_LEEWAY_S})
        );
    }

    #[test]
    fn leftovers_are_kept_unless_pruned() {
        let mut cur = converged();
        cur.accounts.push(sa_state("old", "nlp", "x"));
        cur.accounts.push(SaState {
            name: "trainer".into(),
            auth: "builtin".into(),
            scope: "team".into(),
            ..SaState::default()
        });
        cur.issuers
            .push(issuer_state("iss_2", "https://old.example.com"));
        let p = plan(&file(""), &cur, false);
        assert!(p.changes.is_empty());
        assert_eq!(
            p.kept.len(),
            2,
            "built-in accounts are never the file's: {:?}",
            p.kept
        );
        let p = plan(&file(""), &cur, true);
        let del: Vec<(Kind, &str)> = p
            .changes
            .iter()
            .map(|c| (c.kind, c.name.as_str()))
            .collect();
        assert_eq!(
            del,
            vec![
                (Kind::ServiceAccount, "old"),
                (Kind::Issuer, "https://old.example.com")
            ]
        );
    }

    #[test]
    fn what_cannot_be_applied_is_an_error() {
        let mut cur = converged();
        cur.accounts[0].team = Some("nlp".into());
        let p = plan(&file(""), &cur, false);
        assert!(
            p.errors[0].contains("cannot move between teams"),
            "{:?}",
            p.errors
        );
        let mut cur = converged();
        cur.accounts[0].auth = "builtin".into();
        let p = plan(&file(""), &cur, false);
        assert!(p.errors[0].contains("built-in"), "{:?}", p.errors);
        let mut f = file("");
        f.org = Some("acme".into());
        let p = plan(&f, &converged(), false);
        assert!(p.errors[0].contains("\"acme\""), "{:?}", p.errors);
        assert!(p.changes.is_empty());
    }
}
