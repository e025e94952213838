//! The trust file: an organization's issuers and federated service accounts
//! as TOML that can be reviewed in a pull request. Parsing is strict: an
//! unknown key, a wrong type or a bad value is an error that names the
//! file, line and column (spans from the `toml` crate).
//!
//! ```toml
//! org = "default"                      # optional: refuse to apply to another org
//!
//! [[issuer]]
//! url = "https://token.actions.githubusercontent.com"
//! audiences = ["default"]              # optional, default: the org's name
//!
//! [[service_account]]
//! name = "gh-train"
//! team = "vision"                      # created by apply when missing
//! issuer = "https://token.actions.githubusercontent.com"
//! subject = "repo:acme/vision-train:ref:refs/heads/main"
//! claims = { repository_id = "703518824" }
//! # subject_pattern = "repo:acme/*"
//! # allow_broad_subject_pattern = true  # a pattern wider than one owner (org admins only)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::admin_cli::error::CliError;
use crate::federation::DEFAULT_ALGS;

/// The bounds the server enforces, checked here too so an error can name
/// the line (the server stays the authority).
pub const MAX_TOKEN_AGE_RANGE: (i64, i64) = (60, 7 * 24 * 3600);
/// Clock leeway bounds, in seconds.
pub const LEEWAY_RANGE: (i64, i64) = (0, 300);
/// Bounds of an account's minted-token lifetime, in seconds.
pub const LIFETIME_RANGE: (i64, i64) = (60, 12 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Option<Spanned<i64>>,
    org: Option<Spanned<String>>,
    #[serde(default)]
    issuer: Vec<RawIssuer>,
    #[serde(default)]
    service_account: Vec<RawSa>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    url: Spanned<String>,
    jwks_uri: Option<Spanned<String>>,
    jwks: Option<Spanned<toml::Value>>,
    audiences: Option<Spanned<Vec<Spanned<String>>>>,
    allowed_algs: Option<Spanned<Vec<Spanned<String>>>>,
    max_token_age_s: Option<Spanned<i64>>,
    leeway_s: Option<Spanned<i64>>,
    single_use_jti: Option<bool>,
    users: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSa {
    name: Spanned<String>,
    team: Spanned<String>,
    issuer: Spanned<String>,
    subject: Spanned<String>,
    subject_pattern: Option<Spanned<String>>,
    allow_broad_subject_pattern: Option<Spanned<bool>>,
    claims: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    max_token_lifetime_s: Option<Spanned<i64>>,
    disabled: Option<bool>,
    mode: Option<Spanned<String>>,
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySourceDecl {
    /// OIDC discovery at `<url>/.well-known/openid-configuration`.
    Discovery,
    /// An explicit JWKS URL.
    JwksUri(String),
    /// A static JWK Set (issuers fedgate cannot reach).
    Static(Value),
}

/// A trusted issuer as declared. `None` means the server's default.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuerDecl {
    pub url: String,
    pub line: usize,
    pub key_source: KeySourceDecl,
    pub audiences: Option<Vec<String>>,
    pub allowed_algs: Option<Vec<String>>,
    pub max_token_age_s: Option<i64>,
    pub leeway_s: Option<i64>,
    pub single_use_jti: bool,
    pub users: bool,
}

/// A federated (external, team-scoped) service account as declared.
#[derive(Clone, Debug, PartialEq)]
pub struct SaDecl {
    pub name: String,
    pub line: usize,
    pub team: String,
    /// The issuer's URL (declared in the same file).
    pub issuer: String,
    pub subject: String,
    pub subject_pattern: Option<String>,
    /// A `subject_pattern` wider than one owner, on purpose (org admins only).
    pub allow_broad_subject_pattern: bool,
    pub claims: BTreeMap<String, String>,
    pub max_token_lifetime_s: Option<i64>,
    pub disabled: bool,
    /// `shadow` or `enforce`; `None` is enforce.
    pub mode: Option<String>,
}

/// A whole, valid trust file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrustFile {
    pub org: Option<String>,
    pub issuers: Vec<IssuerDecl>,
    pub accounts: Vec<SaDecl>,
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = match before.iter().rposition(|b| *b == b'\n') {
        Some(nl) => offset - nl,
        None => offset + 1,
    };
    (line, col)
}

/// Checks a parsed file; errors carry their span.
struct Checker<'a> {
    name: &'a str,
    text: &'a str,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn at(&mut self, span: Range<usize>, message: impl AsRef<str>) {
        self.errors
            .push(located(self.name, self.text, span, message.as_ref()));
    }
    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

/// `file:line:col: message`, then the line itself.
fn located(name: &str, text: &str, span: Range<usize>, message: &str) -> String {
    let (line, col) = line_col(text, span.start);
    let src = text.lines().nth(line - 1).unwrap_or_default();
    let src: String = crate::model::truncate(src, 160)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{name}:{line}:{col}: {message}\n{line:>5} | {src}")
}

fn alg_names() -> Vec<String> {
    DEFAULT_ALGS.iter().map(|a| format!("{a:?}")).collect()
}

/// An http(s) URL without query or fragment, as an issuer or JWKS URL must be.
fn check_url(v: &str) -> Result<(), String> {
    match url::Url::parse(v) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => {
            if u.query().is_some() || u.fragment().is_some() {
                Err("must not have a query or fragment (OIDC Discovery §4.1)".into())
            } else {
                Ok(())
            }
        }
        Ok(_) => Err("must be an https:// URL".into()),
        Err(e) => Err(format!("is not a URL: {e}")),
    }
}

fn in_range(c: &mut Checker<'_>, what: &str, v: &Option<Spanned<i64>>, (lo, hi): (i64, i64)) {
    if let Some(v) = v
        && !(lo..=hi).contains(v.get_ref())
    {
        c.at(
            v.span(),
            format!("{what} must be between {lo} and {hi}, got {}", v.get_ref()),
        );
    }
}

/// Parses and checks trust-file text; `name` is how errors name the file.
/// Every problem is reported at once, each with its line.
pub fn parse(name: &str, text: &str) -> Result<TrustFile, CliError> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        CliError::TrustFile(located(name, text, span, e.message().trim()))
    })?;
    let mut c = Checker {
        name,
        text,
        errors: Vec::new(),
    };
    if let Some(v) = &raw.version
        && *v.get_ref() != 1
    {
        c.at(v.span(), format!("version must be 1, got {}", v.get_ref()));
    }
    let org = raw.org.as_ref().map(|o| {
        if let Err(e) = crate::model::check_name("organization", o.get_ref()) {
            c.at(o.span(), e);
        }
        o.get_ref().clone()
    });
    let algs = alg_names();
    let mut issuers = Vec::new();
    let mut issuer_lines: HashMap<String, usize> = HashMap::new();
    for i in raw.issuer {
        let url = i.url.get_ref().clone();
        if let Err(e) = check_url(&url) {
            c.at(i.url.span(), format!("issuer url {e}"));
        }
        if let Some(first) = issuer_lines.get(&url) {
            c.at(
                i.url.span(),
                format!("issuer {url:?} is declared twice (first at line {first})"),
            );
        }
        issuer_lines.insert(url.clone(), c.line(&i.url.span()));
        let key_source = match (&i.jwks_uri, &i.jwks) {
            (Some(u), Some(_)) => {
                c.at(u.span(), "give either jwks_uri or jwks, not both");
                KeySourceDecl::Discovery
            }
            (Some(u), None) => {
                if let Err(e) = check_url(u.get_ref()) {
                    c.at(u.span(), format!("jwks_uri {e}"));
                }
                KeySourceDecl::JwksUri(u.get_ref().clone())
            }
            (None, Some(j)) => match static_jwks(j.get_ref()) {
                Ok(v) => KeySourceDecl::Static(v),
                Err(e) => {
                    c.at(j.span(), e);
                    KeySourceDecl::Discovery
                }
            },
            (None, None) => KeySourceDecl::Discovery,
        };
        let audiences = i.audiences.map(|list| {
            if list.get_ref().is_empty() {
                c.at(
                    list.span(),
                    "audiences must not be empty (leave the key out for the default: the organization's name)",
                );
            }
            list.into_inner()
                .into_iter()
                .map(|a| {
                    if a.get_ref().is_empty() || a.get_ref().len() > 512 {
                        c.at(a.span(), "an audience must be 1-512 characters");
                    }
                    a.into_inner()
                })
                .collect()
        });
        let allowed_algs = i.allowed_algs.map(|list| {
            if list.get_ref().is_empty() {
                c.at(
                    list.span(),
                    "allowed_algs must not be empty (leave the key out for every asymmetric algorithm)",
                );
            }
            list.into_inner()
                .into_iter()
                .map(|a| {
                    if !algs.contains(a.get_ref()) {
                        c.at(
                            a.span(),
                            format!(
                                "algorithm {:?} is not allowed: use one of {} (asymmetric only, RFC 8725 §3.1)",
                                a.get_ref(),
                                algs.join(", ")
                            ),
                        );
                    }
                    a.into_inner()
                })
                .collect()
        });
        in_range(
            &mut c,
            "max_token_age_s",
            &i.max_token_age_s,
            MAX_TOKEN_AGE_RANGE,
        );
        in_range(&mut c, "leeway_s", &i.leeway_s, LEEWAY_RANGE);
        issuers.push(IssuerDecl {
            line: c.line(&i.url.span()),
            url,
            key_source,
            audiences,
            allowed_algs,
            max_token_age_s: i.max_token_age_s.map(Spanned::into_inner),
            leeway_s: i.leeway_s.map(Spanned::into_inner),
            single_use_jti: i.single_use_jti.unwrap_or(false),
            users: i.users.unwrap_or(false),
        });
    }
    let mut accounts = Vec::new();
    let mut sa_lines: HashMap<String, usize> = HashMap::new();
    for a in raw.service_account {
        let name = a.name.get_ref().clone();
        if let Err(e) = crate::model::check_name("service account", &name) {
            c.at(a.name.span(), e);
        }
        if let Some(first) = sa_lines.get(&name) {
            c.at(
                a.name.span(),
                format!("service account {name:?} is declared twice (first at line {first})"),
            );
        }
        sa_lines.insert(name.clone(), c.line(&a.name.span()));
        if let Err(e) = crate::model::check_name("team", a.team.get_ref()) {
            c.at(a.team.span(), e);
        }
        if !issuer_lines.contains_key(a.issuer.get_ref()) {
            c.at(
                a.issuer.span(),
                format!(
                    "issuer {:?} is not declared in this file: add an [[issuer]] with this url",
                    a.issuer.get_ref()
                ),
            );
        }
        if a.subject.get_ref().is_empty() {
            c.at(
                a.subject.span(),
                "subject must be the exact `sub` of the workload's token",
            );
        }
        if let Some(p) = &a.subject_pattern
            && p.get_ref().is_empty()
        {
            c.at(
                p.span(),
                "subject_pattern must not be empty (leave the key out)",
            );
        }
        if let Some(b) = &a.allow_broad_subject_pattern
            && *b.get_ref()
            && a.subject_pattern.is_none()
        {
            c.at(
                b.span(),
                "allow_broad_subject_pattern = true needs a subject_pattern (it allows that pattern to be wider than one owner)",
            );
        }
        let claims = a
            .claims
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                if k.get_ref().is_empty() {
                    c.at(k.span(), "a claim name must not be empty");
                }
                // As the API: a number or boolean stands for its text
                // (`repository_id = 703518824` is "703518824").
                let text = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        c.at(
                            v.span(),
                            format!(
                                "claim condition {:?} must be a string (exact, or a glob with * and ?), a whole number or a boolean",
                                k.get_ref()
                            ),
                        );
                        String::new()
                    }
                };
                (k.into_inner(), text)
            })
            .collect();
        in_range(
            &mut c,
            "max_token_lifetime_s",
            &a.max_token_lifetime_s,
            LIFETIME_RANGE,
        );
        if let Some(m) = &a.mode
            && !matches!(m.get_ref().as_str(), "shadow" | "enforce")
        {
            c.at(
                m.span(),
                format!(
                    "mode must be \"shadow\" or \"enforce\", got {:?}",
                    m.get_ref()
                ),
            );
        }
        accounts.push(SaDecl {
            line: c.line(&a.name.span()),
            name,
            team: a.team.into_inner(),
            issuer: a.issuer.into_inner(),
            subject: a.subject.into_inner(),
            subject_pattern: a.subject_pattern.map(Spanned::into_inner),
            allow_broad_subject_pattern: a
                .allow_broad_subject_pattern
                .is_some_and(|b| b.into_inner()),
            claims,
            max_token_lifetime_s: a.max_token_lifetime_s.map(Spanned::into_inner),
            disabled: a.disabled.unwrap_or(false),
            mode: a.mode.map(Spanned::into_inner),
        });
    }
    if !c.errors.is_empty() {
        return Err(CliError::TrustFile(c.errors.join("\n")));
    }
    Ok(TrustFile {
        org,
        issuers,
        accounts,
    })
}

/// A static JWKS written as a JSON string or a TOML table, as JSON.
fn static_jwks(v: &toml::Value) -> Result<Value, String> {
    let json = match v {
        toml::Value::String(s) => {
            serde_json::from_str::<Value>(s).map_err(|e| format!("jwks is not JSON: {e}"))?
        }
        toml::Value::Table(_) => {
            serde_json::to_value(v).map_err(|e| format!("jwks cannot be read: {e}"))?
        }
        _ => return Err("jwks must be a JWK Set: a JSON string or a table with \"keys\"".into()),
    };
    match json.get("keys") {
        Some(Value::Array(keys)) if !keys.is_empty() => Ok(json),
        _ => Err("jwks must be a JWK Set with a non-empty \"keys\" list (RFC 7517 §5)".into()),
    }
}

/// Reads and parses a trust file (at most 1 MiB).
pub fn load(path: &str) -> Result<TrustFile, CliError> {
    let text = crate::admin_cli::read_input(path, "trust file", 1024 * 1024)?;
    let name = if path == "-" { "<stdin>" } else { path };
    parse(name, &text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
org = "default"

[[issuer]]
url = "https://token.actions.githubusercontent.com"

[[issuer]]
url = "https://gitlab.example.com"
audiences = ["default", "ci"]
allowed_algs = ["RS256"]
max_token_age_s = 3600
leeway_s = 30
single_use_jti = true

[[service_account]]
name = "gh-train"
team = "vision"
issuer = "https://token.actions.githubusercontent.com"
subject = "repo:acme/vision-train:ref:refs/heads/main"
claims = { repository_id = "703518824", "job_workflow_ref" = "acme/*" }
max_token_lifetime_s = 900
mode = "shadow"
"#;

    fn err(text: &str) -> String {
        match parse("trust.toml", text) {
            Err(CliError::TrustFile(m)) => m,
            other => panic!("expected a trust-file error, got {other:?}"),
        }
    }

    #[test]
    fn a_good_file_parses_with_lines() {
        let f = parse("trust.toml", GOOD).unwrap();
        assert_eq!(f.org.as_deref(), Some("default"));
        assert_eq!(f.issuers.len(), 2);
        assert_eq!(f.issuers[0].line, 5);
        assert_eq!(f.issuers[0].key_source, KeySourceDecl::Discovery);
        assert_eq!(f.issuers[1].allowed_algs, Some(vec!["RS256".to_string()]));
        assert!(f.issuers[1].single_use_jti);
        let sa = &f.accounts[0];
        assert_eq!(sa.line, 16);
        assert_eq!(sa.claims["repository_id"], "703518824");
        assert_eq!(sa.claims["job_workflow_ref"], "acme/*");
        assert_eq!(sa.mode.as_deref(), Some("shadow"));
        assert_eq!(sa.max_token_lifetime_s, Some(900));
    }

    #[test]
    fn unknown_keys_name_the_line() {
        let text = GOOD.replace("subject = \"repo", "subjekt = \"repo");
        let m = err(&text);
        assert!(m.starts_with("trust.toml:"), "{m}");
        assert!(m.contains("subjekt"), "{m}");
        let text = GOOD.replace("leeway_s = 30", "leeway_s = 30\nlee_way = 3");
        let m = err(&text);
        assert!(m.starts_with("trust.toml:13:"), "{m}");
        assert!(m.contains("lee_way"), "{m}");
        let m = err("[[issuers]]\nurl = \"https://x\"\n");
        assert!(m.starts_with("trust.toml:1:"), "{m}");
    }

    #[test]
    fn wrong_types_name_the_line() {
        let m = err(&GOOD.replace("\"703518824\"", "[703518824]"));
        assert!(
            m.starts_with("trust.toml:20:") && m.contains("repository_id"),
            "{m}"
        );
        let f = parse("t", &GOOD.replace("\"703518824\"", "703518824")).unwrap();
        assert_eq!(f.accounts[0].claims["repository_id"], "703518824");
        let m = err(&GOOD.replace("leeway_s = 30", "leeway_s = \"30\""));
        assert!(m.starts_with("trust.toml:12:"), "{m}");
    }

    #[test]
    fn bad_values_are_all_reported_with_their_lines() {
        let text = GOOD
            .replace(
                "allowed_algs = [\"RS256\"]",
                "allowed_algs = [\"RS256\", \"HS256\"]",
            )
            .replace("leeway_s = 30", "leeway_s = 3000")
            .replace("mode = \"shadow\"", "mode = \"audit\"")
            .replace("name = \"gh-train\"", "name = \"gh train\"");
        let m = err(&text);
        assert!(m.contains("trust.toml:10:") && m.contains("HS256"), "{m}");
        assert!(
            m.contains("trust.toml:12:") && m.contains("leeway_s"),
            "{m}"
        );
        assert!(m.contains("trust.toml:22:") && m.contains("mode"), "{m}");
        assert!(
            m.contains("trust.toml:16:") && m.contains("gh train"),
            "{m}"
        );
        assert!(m.contains("   16 | name = \"gh train\""), "{m}");
    }

    #[test]
    fn references_and_duplicates_are_checked() {
        let text = GOOD.replace(
            "issuer = \"https://token.actions.githubusercontent.com\"",
            "issuer = \"https://token.actions.githubusercontent.com/\"",
        );
        let m = err(&text);
        assert!(
            m.contains("trust.toml:18:") && m.contains("not declared"),
            "{m}"
        );
        let text = format!("{GOOD}\n[[issuer]]\nurl = \"https://gitlab.example.com\"\n");
        let m = err(&text);
        assert!(m.contains("declared twice (first at line 8)"), "{m}");
        let m = err("[[issuer]]\nurl = \"ftp://x\"\n");
        assert!(m.contains("trust.toml:2:") && m.contains("https"), "{m}");
        let m = err("[[issuer]]\nurl = \"https://x\"\njwks = \"{}\"\n");
        assert!(m.contains("trust.toml:3:") && m.contains("keys"), "{m}");
    }

    #[test]
    fn a_broad_pattern_opt_in_is_read_and_checked() {
        let f = parse("t", GOOD).unwrap();
        assert!(!f.accounts[0].allow_broad_subject_pattern, "default: off");
        let text = GOOD.replace(
            "mode = \"shadow\"",
            "subject_pattern = \"repo:*\"\nallow_broad_subject_pattern = true",
        );
        let f = parse("t", &text).unwrap();
        assert!(f.accounts[0].allow_broad_subject_pattern);
        assert_eq!(f.accounts[0].subject_pattern.as_deref(), Some("repo:*"));
        // Without a pattern it allows nothing: an error on its line.
        let m = err(&GOOD.replace("mode = \"shadow\"", "allow_broad_subject_pattern = true"));
        assert!(
            m.starts_with("trust.toml:22:") && m.contains("needs a subject_pattern"),
            "{m}"
        );
        let m = err(&GOOD.replace("mode = \"shadow\"", "allow_broad_subject_pattern = \"yes\""));
        assert!(m.starts_with("trust.toml:22:"), "{m}");
        let m = err(&GOOD.replace("mode = \"shadow\"", "allow_broad_subject_patern = true"));
        assert!(
            m.starts_with("trust.toml:22:") && m.contains("allow_broad_subject_patern"),
            "{m}"
        );
    }

    #[test]
    fn a_static_jwks_may_be_json_or_a_table() {
        let f = parse(
            "t",
            "[[issuer]]\nurl = \"https://x\"\njwks = '{\"keys\": [{\"kty\": \"OKP\"}]}'\n",
        )
        .unwrap();
        assert!(
            matches!(&f.issuers[0].key_source, KeySourceDecl::Static(v) if v["keys"][0]["kty"] == "OKP")
        );
        let f = parse(
            "t",
            "[[issuer]]\nurl = \"https://x\"\n[issuer.jwks]\nkeys = [{kty = \"OKP\"}]\n",
        )
        .unwrap();
        assert!(
            matches!(&f.issuers[0].key_source, KeySourceDecl::Static(v) if v["keys"][0]["kty"] == "OKP")
        );
    }
}
