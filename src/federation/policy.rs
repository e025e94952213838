//! Bindings of external service accounts, octo-sts style: the stored
//! [`BindingSpec`] is compiled once when saved ([`compile`], which refuses
//! patterns that would trust a whole shared issuer) and the result is
//! checked on every exchange ([`CompiledBinding::check`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wildmatch::WildMatch;

use super::excerpt;

/// Most claim conditions in one binding: enough for real policies, bounded work per exchange.
pub const MAX_CLAIM_CONDITIONS: usize = 32;
/// Literal characters required before the first wildcard of a subject pattern.
pub const MIN_PATTERN_PREFIX: usize = 3;
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

/// Validates a spec when it is saved, so a bad binding is refused with a
/// reason instead of silently matching nothing (or everything) later.
pub fn compile(
    sa_id: &str,
    issuer_id: &str,
    spec: &BindingSpec,
) -> Result<CompiledBinding, String> {
    if spec.subject.trim().is_empty() {
        return Err("subject must not be empty".into());
    }
    if spec.subject.len() > MAX_VALUE_LEN {
        return Err(format!("subject is longer than {MAX_VALUE_LEN} bytes"));
    }
    let subject_pattern = match spec.subject_pattern.as_deref() {
        None => None,
        Some(p) => {
            check_subject_pattern(p)?;
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

fn check_subject_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() || p.len() > MAX_VALUE_LEN {
        return Err(format!(
            "subject_pattern must be 1 to {MAX_VALUE_LEN} bytes"
        ));
    }
    let prefix = p.find(['*', '?']).map_or(p, |i| &p[..i]);
    if is_glob(p) && prefix.chars().count() < MIN_PATTERN_PREFIX {
        return Err(format!(
            "subject_pattern {:?} is too broad: it needs at least {MIN_PATTERN_PREFIX} literal characters before the \
             first wildcard. A shared issuer such as GitHub Actions signs tokens for every repository in the world, \
             so a pattern like \"*\" would let any of them act as this account; anchor it, e.g. \
             \"repo:my-org/my-repo:*\"",
            excerpt(p, 100)
        ));
    }
    Ok(())
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
        }
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
        };
        refuse(s, "at most 32");
        assert!(compile("sa", "i", &spec("x", Some("rep*"), &[])).is_ok());
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
