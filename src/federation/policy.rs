//! Bindings of external service accounts, octo-sts style: the stored
//! [`BindingSpec`] is compiled once when saved ([`compile`], which refuses
//! patterns that would reach beyond one owner of a shared issuer) and the result is
//! checked on every exchange ([`CompiledBinding::check`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wildmatch::WildMatch;

use super::excerpt;

/// Most claim conditions in one binding: enough for real policies, bounded work per exchange.
pub const MAX_CLAIM_CONDITIONS: usize = 32;
/// Subject shapes whose leading segments name a kind of subject, not an
/// owner: after them comes the owner segment, which a pattern must write
/// whole, with the delimiter that ends it.
pub const SUBJECT_SHAPES: &[(&str, char, &str)] = &[
    // GitHub Actions: repo:OWNER/REPO:…
    ("repo:", '/', "repo:acme/*"),
    // GitHub Actions with a customized `sub` template (include_claim_keys).
    ("repository:", '/', "repository:acme/*"),
    ("repository_owner:", ':', "repository_owner:acme:*"),
    (
        "repository_owner_id:",
        ':',
        "repository_owner_id:84215903:*",
    ),
    ("repository_id:", ':', "repository_id:703518824:*"),
    // GitLab CI: project_path:GROUP/PROJECT:…
    ("project_path:", '/', "project_path:acme/*"),
    // Kubernetes: system:serviceaccount:NAMESPACE:NAME
    ("system:serviceaccount:", ':', "system:serviceaccount:ci:*"),
    // Buildkite, Terraform Cloud: organization:ORG:…
    ("organization:", ':', "organization:acme:*"),
    // CircleCI: org/ORG_ID/project/…
    ("org/", '/', "org/5e4b…/*"),
];
/// Segment delimiters of subjects of any other shape.
const DELIMITERS: &[char] = &[':', '/'];
/// Claims checked by `validate` for every token; conditions on them would only mislead.
pub const RESERVED_CLAIMS: &[&str] = &["iss", "exp", "iat", "nbf", "aud"];
const MAX_NAME_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 1024;

/// The binding as the admin wrote it and the store keeps it (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// Exact `sub`, always required (it names the account in audit logs).
    pub subject: String,
    /// Optional glob on `sub` (`*` any run, `?` one character, whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_pattern: Option<String>,
    /// Claim (top-level name or dotted path) → exact value or glob.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// An org admin's explicit, audited opt-in to a `subject_pattern` wider
    /// than one owner (see [`check_subject_pattern`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_broad_subject_pattern: bool,
}

/// Who is saving a binding: the opt-in to a broad pattern is an org
/// admin's alone. `Stored` re-compiles what was saved (and checked) before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    OrgAdmin,
    TeamAdmin,
    Stored,
}

/// Reads claim conditions (`{"name": value}`) whose values may be JSON
/// strings, numbers or booleans. A number or boolean is kept as its JSON
/// text (`703518824` → `"703518824"`), and [`CompiledBinding::check`]
/// compares a token's number or boolean by that same text, so the condition
/// holds whether the IdP sends the claim as a number or as a string.
pub fn scalar_claims<'de, D>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(raw) = Option::<BTreeMap<String, Value>>::deserialize(d)? else {
        return Ok(None);
    };
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        let text = match v {
            Value::String(s) => s,
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            other => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::Object(_) => "an object",
                    _ => "null",
                };
                return Err(serde::de::Error::custom(format!(
                    "claims: the condition on {:?} is {kind}; a condition is a string (exact or glob), a number or a boolean",
                    excerpt(&name, 64)
                )));
            }
        };
        out.insert(name, text);
    }
    Ok(Some(out))
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(String),
    Glob(String, WildMatch),
}

impl Matcher {
    fn new(value: &str) -> Matcher {
        if is_glob(value) {
            Matcher::Glob(value.to_owned(), WildMatch::new(value))
        } else {
            Matcher::Exact(value.to_owned())
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Exact(v) => v == s,
            Matcher::Glob(_, g) => g.matches(s),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Exact(v) => write!(f, "{:?}", excerpt(v, 100)),
            Matcher::Glob(v, _) => write!(f, "pattern {:?}", excerpt(v, 100)),
        }
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// A binding ready to check tokens: globs compiled, limits enforced.
#[derive(Clone, Debug)]
pub struct CompiledBinding {
    /// The external service account this binding authenticates.
    pub sa_id: String,
    /// The trusted issuer whose tokens it accepts.
    pub issuer_id: String,
    subject: String,
    subject_pattern: Option<Matcher>,
    conditions: Vec<(String, Matcher)>,
}

/// Why a binding does not match a token, for the explain endpoint and the
/// `invalid_grant` description: the condition, what was expected and the
/// value found (truncated; `None` when the claim is absent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// `sub` or the claim name as written in the binding.
    pub condition: String,
    /// The exact value or pattern required.
    pub expected: String,
    /// What the token had, quoted and truncated; `None` if absent.
    pub found: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.found {
            Some(v) => write!(
                f,
                "claim {:?} is {v}, expected {}",
                self.condition, self.expected
            ),
            None => write!(
                f,
                "claim {:?} is missing, expected {}",
                self.condition, self.expected
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

/// Validates a spec when it is saved (and again when it is loaded), so a
/// bad binding is refused with a reason instead of silently matching
/// nothing (or everything) later. Every path that saves a binding goes
/// through here with its [`Author`].
pub fn compile(
    sa_id: &str,
    issuer_id: &str,
    spec: &BindingSpec,
    author: Author,
) -> Result<CompiledBinding, String> {
    if spec.allow_broad_subject_pattern && author == Author::TeamAdmin {
        return Err(
            "allow_broad_subject_pattern is an org admin's decision: a team admin cannot trust subjects beyond one owner"
                .into(),
        );
    }
    if spec.subject.trim().is_empty() {
        return Err("subject must not be empty".into());
    }
    if spec.subject.len() > MAX_VALUE_LEN {
        return Err(format!("subject is longer than {MAX_VALUE_LEN} bytes"));
    }
    let subject_pattern = match spec.subject_pattern.as_deref() {
        None => None,
        Some(p) => {
            check_subject_pattern(p, spec.allow_broad_subject_pattern)?;
            Some(Matcher::new(p))
        }
    };
    if spec.claims.len() > MAX_CLAIM_CONDITIONS {
        return Err(format!(
            "at most {MAX_CLAIM_CONDITIONS} claim conditions are allowed, got {}",
            spec.claims.len()
        ));
    }
    let mut conditions = Vec::with_capacity(spec.claims.len());
    for (name, value) in &spec.claims {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.split('.').any(str::is_empty) {
            return Err(format!(
                "claim name {:?} is empty or malformed",
                excerpt(name, 64)
            ));
        }
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(format!(
                "a condition on {name:?} is not allowed: iss, exp, iat, nbf and aud are checked for every token by the issuer settings"
            ));
        }
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err(format!(
                "the value for claim {:?} must be 1 to {MAX_VALUE_LEN} bytes",
                excerpt(name, 64)
            ));
        }
        conditions.push((name.clone(), Matcher::new(value)));
    }
    Ok(CompiledBinding {
        sa_id: sa_id.to_owned(),
        issuer_id: issuer_id.to_owned(),
        subject: spec.subject.clone(),
        subject_pattern,
        conditions,
    })
}

/// A subject pattern may not reach beyond one owner: its literal prefix
/// (up to the first `*` or `?`) must contain a whole owner segment and the
/// delimiter that ends it. A shared issuer such as GitHub Actions signs
/// tokens for every repository in the world: `repo:*` would trust all of
/// them and `repo:acme*` also `repo:acme-evil/…`. For the shapes in
/// [`SUBJECT_SHAPES`] the owner comes after the kind (`repo:acme/*`,
/// `project_path:acme/*`, `system:serviceaccount:ci:*`); any other subject
/// needs its first segment whole (`tenant-7:*`, not `tenant*`). Wider
/// patterns only with `allow_broad_subject_pattern` (org admins, audited).
pub fn check_subject_pattern(p: &str, allow_broad: bool) -> Result<(), String> {
    if p.is_empty() || p.len() > MAX_VALUE_LEN {
        return Err(format!(
            "subject_pattern must be 1 to {MAX_VALUE_LEN} bytes"
        ));
    }
    let Some(first_wildcard) = p.find(['*', '?']) else {
        return Ok(());
    };
    if allow_broad {
        return Ok(());
    }
    let prefix = &p[..first_wildcard];
    let refuse = |example: &str, why: &str| {
        Err(format!(
            "subject_pattern {:?} is too broad: {why}. A shared issuer such as GitHub Actions signs tokens for \
             every repository in the world, so the literal text before the first wildcard must name one owner \
             whole, with its delimiter (e.g. {example:?}); an org admin may opt in to a wider pattern with \
             \"allow_broad_subject_pattern\": true",
            excerpt(p, 100)
        ))
    };
    if prefix.is_empty() {
        return refuse("repo:acme/*", "it starts with a wildcard");
    }
    for (kind, delimiter, example) in SUBJECT_SHAPES {
        if let Some(rest) = prefix.strip_prefix(kind) {
            return match rest.find(*delimiter) {
                Some(i) if i > 0 => Ok(()),
                _ => refuse(
                    example,
                    &format!("after {kind:?} the owner and its {delimiter:?} must be written out"),
                ),
            };
        }
        if kind.starts_with(prefix) {
            return refuse(example, &format!("it stops inside {kind:?}"));
        }
    }
    match prefix.find(DELIMITERS) {
        Some(i) if i > 0 => Ok(()),
        _ => refuse(
            "tenant-7:*",
            "its first segment and the ':' or '/' that ends it must be written out",
        ),
    }
}

impl CompiledBinding {
    /// Whether a verified token belongs to this account: `sub` equals
    /// `subject` or matches `subject_pattern`, and every claim condition holds.
    pub fn check(&self, sub: &str, claims: &Map<String, Value>) -> Result<(), Mismatch> {
        let sub_ok = sub == self.subject
            || self
                .subject_pattern
                .as_ref()
                .is_some_and(|m| m.matches(sub));
        if !sub_ok {
            let expected = match &self.subject_pattern {
                Some(m) => format!("{:?} or {m}", excerpt(&self.subject, 100)),
                None => format!("{:?}", excerpt(&self.subject, 100)),
            };
            return Err(Mismatch {
                condition: "sub".into(),
                expected,
                found: Some(quote(sub)),
            });
        }
        for (name, matcher) in &self.conditions {
            let mismatch = |found: Option<String>| Mismatch {
                condition: name.clone(),
                expected: matcher.to_string(),
                found,
            };
            match lookup(claims, name) {
                None => return Err(mismatch(None)),
                Some(Value::String(s)) if matcher.matches(s) => {}
                Some(v @ (Value::Number(_) | Value::Bool(_)))
                    if matcher.matches(&v.to_string()) => {}
                Some(Value::String(s)) => return Err(mismatch(Some(quote(s)))),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                    return Err(mismatch(Some(v.to_string())));
                }
                Some(Value::Array(_)) => return Err(mismatch(Some("an array".into()))),
                Some(Value::Object(_)) => return Err(mismatch(Some("an object".into()))),
                Some(Value::Null) => return Err(mismatch(Some("null".into()))),
            }
        }
        Ok(())
    }

    /// True when the binding names one exact subject (no pattern): such a
    /// binding wins over patterns when the caller has to choose.
    pub fn is_exact(&self) -> bool {
        self.subject_pattern.is_none()
    }

    /// The exact subject (the index key for exact lookups).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

fn quote(s: &str) -> String {
    format!("{:?}", excerpt(s, 100))
}

/// A claim by exact top-level name, else by dotted path through nested
/// objects, longest key first: `kubernetes.io.namespace` finds
/// `{"kubernetes.io": {"namespace": …}}`.
fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    for (i, _) in path.rmatch_indices('.') {
        if let Some(Value::Object(inner)) = obj.get(&path[..i])
            && let Some(v) = lookup(inner, &path[i + 1..])
        {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(subject: &str, pattern: Option<&str>, claims: &[(&str, &str)]) -> BindingSpec {
        BindingSpec {
            subject: subject.into(),
            subject_pattern: pattern.map(str::to_owned),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            allow_broad_subject_pattern: false,
        }
    }

    fn compile(sa: &str, iss: &str, spec: &BindingSpec) -> Result<CompiledBinding, String> {
        super::compile(sa, iss, spec, Author::OrgAdmin)
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn github() -> Map<String, Value> {
        obj(json!({
            "sub": "repo:acme/app:environment:prod", "repository": "acme/app", "repository_id": "74",
            "repository_owner_id": 1234, "ref": "refs/heads/main", "environment": "prod",
            "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main",
            "runner_environment": "github-hosted", "head_ref": "", "private": true
        }))
    }

    #[test]
    fn github_actions_binding() {
        let b = compile(
            "sa1",
            "gh",
            &spec(
                "repo:acme/app:environment:prod",
                None,
                &[
                    ("repository_id", "74"),
                    ("ref", "refs/heads/main"),
                    ("environment", "prod"),
                    (
                        "job_workflow_ref",
                        "acme/app/.github/workflows/*.yml@refs/heads/main",
                    ),
                    ("repository_owner_id", "1234"),
                    ("private", "true"),
                ],
            ),
        )
        .unwrap();
        assert!(b.is_exact());
        b.check("repo:acme/app:environment:prod", &github())
            .unwrap();
        let mut c = github();
        c.insert("ref".into(), json!("refs/heads/dev"));
        let m = b.check("repo:acme/app:environment:prod", &c).unwrap_err();
        assert_eq!(
            m,
            Mismatch {
                condition: "ref".into(),
                expected: "\"refs/heads/main\"".into(),
                found: Some("\"refs/heads/dev\"".into())
            }
        );
        assert_eq!(
            m.to_string(),
            "claim \"ref\" is \"refs/heads/dev\", expected \"refs/heads/main\""
        );
        let mut c = github();
        c.insert(
            "job_workflow_ref".into(),
            json!("evil/app/.github/workflows/x.yml@refs/heads/main"),
        );
        assert_eq!(
            b.check("repo:acme/app:environment:prod", &c)
                .unwrap_err()
                .condition,
            "job_workflow_ref"
        );
        let mut c = github();
        c.remove("environment");
        assert_eq!(
            b.check("repo:acme/app:environment:prod", &c)
                .unwrap_err()
                .found,
            None
        );
        let err = b
            .check("repo:acme/other:environment:prod", &github())
            .unwrap_err();
        assert_eq!(err.condition, "sub");
        assert_eq!(
            b.check("repo:acme/app:environment:prod", &obj(json!({})))
                .unwrap_err()
                .condition,
            "environment"
        );
    }

    #[test]
    fn subject_glob_versus_exact() {
        let b = compile(
            "sa1",
            "gh",
            &spec(
                "repo:acme/app:ref:refs/heads/main",
                Some("repo:acme/app:*"),
                &[],
            ),
        )
        .unwrap();
        assert!(!b.is_exact());
        let none = Map::new();
        for ok in [
            "repo:acme/app:ref:refs/heads/main",
            "repo:acme/app:environment:prod",
            "repo:acme/app:pull_request",
        ] {
            b.check(ok, &none).unwrap();
        }
        for bad in [
            "repo:acme/app2:ref:refs/heads/main",
            "repo:acme/ap",
            "xrepo:acme/app:x",
        ] {
            let m = b.check(bad, &none).unwrap_err();
            assert!(m.expected.contains("pattern \"repo:acme/app:*\""), "{m}");
        }
        let q = compile("sa1", "gh", &spec("x", Some("repo:acme/app-?:*"), &[])).unwrap();
        q.check("repo:acme/app-1:ref:x", &none).unwrap();
        q.check("repo:acme/app-12:ref:x", &none).unwrap_err();
        // Without wildcards the subject is literal.
        let lit = compile("sa1", "gh", &spec("repo:a/b:*", None, &[])).unwrap();
        lit.check("repo:a/b:*", &none).unwrap();
        lit.check("repo:a/b:ref", &none).unwrap_err();
    }

    #[test]
    fn gitlab_binding() {
        let b = compile(
            "sa2",
            "gl",
            &spec(
                "project_path:acme/ml:ref_type:branch:ref:main",
                None,
                &[
                    ("project_path", "acme/ml"),
                    ("ref_type", "branch"),
                    ("ref", "release-*"),
                ],
            ),
        )
        .unwrap();
        let claims = obj(
            json!({"project_path": "acme/ml", "ref_type": "branch", "ref": "release-1.2", "namespace_id": "9"}),
        );
        b.check("project_path:acme/ml:ref_type:branch:ref:main", &claims)
            .unwrap();
        let tag = obj(json!({"project_path": "acme/ml", "ref_type": "tag", "ref": "release-1.2"}));
        assert_eq!(
            b.check("project_path:acme/ml:ref_type:branch:ref:main", &tag)
                .unwrap_err()
                .condition,
            "ref_type"
        );
    }

    #[test]
    fn kubernetes_nested_claims() {
        let b = compile(
            "sa3",
            "k8s",
            &spec(
                "system:serviceaccount:ml:trainer",
                None,
                &[
                    ("kubernetes.io.namespace", "ml"),
                    ("kubernetes.io.serviceaccount.name", "trainer"),
                ],
            ),
        )
        .unwrap();
        let claims = obj(json!({
            "sub": "system:serviceaccount:ml:trainer",
            "kubernetes.io": {"namespace": "ml", "serviceaccount": {"name": "trainer", "uid": "u-1"},
                              "pod": {"name": "p", "uid": "u-2"}}
        }));
        b.check("system:serviceaccount:ml:trainer", &claims)
            .unwrap();
        let other = obj(
            json!({"kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "trainer"}}}),
        );
        let m = b
            .check("system:serviceaccount:ml:trainer", &other)
            .unwrap_err();
        assert_eq!(
            (m.condition.as_str(), m.found.as_deref()),
            ("kubernetes.io.namespace", Some("\"default\""))
        );
        // An exact top-level key wins over the path; arrays and objects never match.
        let flat = obj(
            json!({"kubernetes.io.namespace": "ml", "kubernetes.io": {"namespace": "x", "serviceaccount": {"name": "trainer"}}}),
        );
        b.check("system:serviceaccount:ml:trainer", &flat).unwrap();
        let arr = obj(
            json!({"kubernetes.io": {"namespace": ["ml"], "serviceaccount": {"name": "trainer"}}}),
        );
        assert_eq!(
            b.check("system:serviceaccount:ml:trainer", &arr)
                .unwrap_err()
                .found
                .as_deref(),
            Some("an array")
        );
        let o = compile("s", "k", &spec("x", None, &[("kubernetes.io", "*")])).unwrap();
        assert_eq!(
            o.check("x", &claims).unwrap_err().found.as_deref(),
            Some("an object")
        );
    }

    #[test]
    fn bad_specs_are_refused() {
        let refuse = |s: BindingSpec, want: &str| {
            let e = compile("sa", "i", &s).unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        refuse(spec("", None, &[]), "subject must not be empty");
        refuse(spec("x", Some("*"), &[]), "too broad");
        refuse(spec("x", Some("**?"), &[]), "too broad");
        refuse(spec("x", Some("re*"), &[]), "GitHub Actions");
        refuse(spec("x", Some("r?po:acme/*"), &[]), "too broad");
        refuse(spec("x", Some("rep*"), &[]), "too broad");
        refuse(spec("x", Some(""), &[]), "subject_pattern");
        refuse(spec("x", None, &[("", "v")]), "malformed");
        refuse(spec("x", None, &[("a..b", "v")]), "malformed");
        refuse(spec("x", None, &[("ref", "")]), "1 to");
        for reserved in RESERVED_CLAIMS {
            refuse(spec("x", None, &[(reserved, "v")]), "not allowed");
        }
        let many: Vec<(String, String)> =
            (0..33).map(|i| (format!("c{i}"), "v".to_owned())).collect();
        let s = BindingSpec {
            subject: "x".into(),
            subject_pattern: None,
            claims: many.into_iter().collect(),
            allow_broad_subject_pattern: false,
        };
        refuse(s, "at most 32");
    }

    /// Issue 10: `repo:*` let any repository in the world act as the account.
    #[test]
    fn patterns_stop_at_an_owner_boundary() {
        for p in [
            "repo:*",
            "repo:ac*",
            "repo:acme*",
            "repo:acme?*",
            "repo:/*",
            "repo:?cme/*",
            "repo*",
            "rep?:acme/*",
            "project_path:*",
            "project_path:acme*",
            "project_path?acme/*",
            "system:serviceaccount:*",
            "system:serviceaccount:ci*",
            "system:*",
            "system:service*",
            "tenant*",
            "repository_owner_id:*",
            "repository_owner:acme*",
            "repository:acme*",
            "organization:*",
            "org/*",
            ":*",
            "/*",
            "*:x",
        ] {
            let e = compile("sa", "i", &spec("x", Some(p), &[])).unwrap_err();
            assert!(
                e.contains("too broad") && e.contains("allow_broad_subject_pattern"),
                "{p}: {e}"
            );
        }
        for p in [
            "repo:acme/*",
            "repo:acme/app:*",
            "repo:acme/ap?:ref:*",
            "project_path:acme/*",
            "project_path:acme/sub/*",
            "system:serviceaccount:ci:*",
            "system:serviceaccount:ci:trainer-?",
            "tenant-7:*",
            "org/acme/*",
            "repository_owner_id:84215903:*",
            "repository:acme/*",
            "organization:acme:pipeline:*",
            "exact-subject",
        ] {
            compile("sa", "i", &spec("x", Some(p), &[])).unwrap();
        }
        // What the accepted ones cannot reach.
        let none = Map::new();
        let b = compile("sa", "i", &spec("x", Some("repo:acme/*"), &[])).unwrap();
        b.check("repo:acme/app:ref:refs/heads/main", &none).unwrap();
        b.check("repo:acme-evil/app:ref:refs/heads/main", &none)
            .unwrap_err();
        let k = compile(
            "sa",
            "i",
            &spec("x", Some("system:serviceaccount:ci:*"), &[]),
        )
        .unwrap();
        k.check("system:serviceaccount:cix:bot", &none).unwrap_err();
    }

    #[test]
    fn broad_patterns_are_an_org_admins_opt_in() {
        let mut broad = spec("x", Some("repo:*"), &[]);
        broad.allow_broad_subject_pattern = true;
        let b = super::compile("sa", "i", &broad, Author::OrgAdmin).unwrap();
        b.check("repo:anyone/anything:ref:x", &Map::new()).unwrap();
        // Loading what an org admin saved keeps working.
        super::compile("sa", "i", &broad, Author::Stored).unwrap();
        let e = super::compile("sa", "i", &broad, Author::TeamAdmin).unwrap_err();
        assert!(e.contains("org admin's decision"), "{e}");
        // Even a narrow pattern with the flag is an org admin's.
        let mut narrow = spec("x", Some("repo:acme/*"), &[]);
        narrow.allow_broad_subject_pattern = true;
        super::compile("sa", "i", &narrow, Author::TeamAdmin).unwrap_err();
        // Without the flag nobody saves or loads a broad pattern.
        for author in [Author::OrgAdmin, Author::TeamAdmin, Author::Stored] {
            super::compile("sa", "i", &spec("x", Some("repo:*"), &[]), author).unwrap_err();
        }
        // The flag round-trips and is absent when false.
        let json = serde_json::to_string(&broad).unwrap();
        assert!(
            json.contains("\"allow_broad_subject_pattern\":true"),
            "{json}"
        );
        assert!(
            !serde_json::to_string(&narrow_off())
                .unwrap()
                .contains("allow_broad")
        );
    }

    fn narrow_off() -> BindingSpec {
        spec("x", Some("repo:acme/*"), &[])
    }

    #[test]
    fn spec_json_round_trip() {
        let s: BindingSpec =
            serde_json::from_str(r#"{"subject":"repo:a/b:ref:refs/heads/main"}"#).unwrap();
        assert_eq!(s, spec("repo:a/b:ref:refs/heads/main", None, &[]));
        let full = spec("s", Some("repo:a/*"), &[("ref", "refs/heads/*")]);
        let back: BindingSpec =
            serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
        assert_eq!(back, full);
    }
}

/// Generated inputs (issue 10): any pattern compiles or is refused with a
/// reason, never a panic; an accepted narrow pattern always names one
/// owner whole (checked here by an independent reading of the rule).
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod generated {
    use proptest::prelude::*;
    use serde_json::Map;

    use super::*;

    fn pattern() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            prop::collection::vec(
                prop_oneof![
                    Just("repo:"),
                    Just("project_path:"),
                    Just("system:"),
                    Just("serviceaccount:"),
                    Just("acme"),
                    Just("/"),
                    Just(":"),
                    Just("*"),
                    Just("?"),
                    Just("-"),
                    Just("é"),
                ],
                0..12
            )
            .prop_map(|parts| parts.concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn any_pattern_compiles_or_is_refused(p in pattern(), sub in any::<String>()) {
            let spec = BindingSpec {
                subject: "s".into(),
                subject_pattern: Some(p.clone()),
                claims: BTreeMap::new(),
                allow_broad_subject_pattern: false,
            };
            match compile("sa", "iss", &spec, Author::TeamAdmin) {
                Ok(b) => {
                    let _ = b.check(&sub, &Map::new());
                    if let Some(i) = p.find(['*', '?']) {
                        let prefix = &p[..i];
                        let owner = SUBJECT_SHAPES
                            .iter()
                            .find_map(|(kind, d, _)| prefix.strip_prefix(kind).map(|r| (r, *d)));
                        let whole = match owner {
                            Some((rest, d)) => rest.find(d).is_some_and(|j| j > 0),
                            None => prefix.find([':', '/']).is_some_and(|j| j > 0)
                                && !SUBJECT_SHAPES.iter().any(|(k, _, _)| k.starts_with(prefix)),
                        };
                        prop_assert!(whole, "accepted {:?}", p);
                    }
                }
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }
    }
}
