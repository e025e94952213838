//! `fedgate export`: today's issuers and federated accounts as a trust file
//! that `plan` finds nothing to change in. Keys equal to the server's
//! default are left out, as a person would write the file.

use std::fmt::Write as _;

use serde_json::Value;

use crate::admin_cli::trust::diff::Current;
use crate::federation::{DEFAULT_ALGS, DEFAULT_LEEWAY_S, DEFAULT_MAX_TOKEN_AGE_S};
use crate::service::admin::DEFAULT_SA_MAX_LIFETIME_S;

/// A TOML string literal (quoted and escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be, quoted otherwise (`"kubernetes.io.namespace"`).
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| q(s)).collect();
    format!("[{}]", items.join(", "))
}

fn same_set(a: &[String], b: &[String]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// Renders the state as a trust file; `generated` goes in the header comment.
pub fn render(cur: &Current, generated: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Trust of organization {} (fedgate export, {generated}).",
        q(&cur.org)
    );
    let _ = writeln!(
        out,
        "# Review a change with `fedgate plan -f FILE`; apply it with `fedgate apply -f FILE`."
    );
    let _ = writeln!(out, "org = {}", q(&cur.org));
    let default_algs: Vec<String> = DEFAULT_ALGS.iter().map(|a| format!("{a:?}")).collect();
    let mut issuers = cur.issuers.clone();
    issuers.sort_by(|a, b| a.url.cmp(&b.url));
    for i in &issuers {
        let _ = writeln!(out, "\n[[issuer]]");
        let _ = writeln!(out, "url = {}", q(&i.url));
        match i.key_source.as_str() {
            "jwks_uri" => {
                if let Some(u) = &i.jwks_uri {
                    let _ = writeln!(out, "jwks_uri = {}", q(u));
                }
            }
            "static" => match &i.jwks {
                Some(j) => {
                    let _ = writeln!(out, "jwks = {}", q(&j.to_string()));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "# static JWKS: this server does not show it; add jwks = '<JWK Set JSON>'"
                    );
                }
            },
            _ => {}
        }
        if !same_set(&i.audiences, std::slice::from_ref(&cur.org)) {
            let _ = writeln!(out, "audiences = {}", list(&i.audiences));
        }
        if !same_set(&i.allowed_algs, &default_algs) {
            let _ = writeln!(out, "allowed_algs = {}", list(&i.allowed_algs));
        }
        if i.max_token_age_s != DEFAULT_MAX_TOKEN_AGE_S {
            let _ = writeln!(out, "max_token_age_s = {}", i.max_token_age_s);
        }
        if i.leeway_s != DEFAULT_LEEWAY_S {
            let _ = writeln!(out, "leeway_s = {}", i.leeway_s);
        }
        if i.single_use_jti {
            let _ = writeln!(out, "single_use_jti = true");
        }
        if i.users {
            let _ = writeln!(out, "users = true");
        }
    }
    let mut accounts: Vec<_> = cur.accounts.iter().filter(|a| a.is_federated()).collect();
    accounts.sort_by(|a, b| (&a.team, &a.name).cmp(&(&b.team, &b.name)));
    for a in accounts {
        let b = a.binding.clone().unwrap_or_default();
        let _ = writeln!(out, "\n[[service_account]]");
        let _ = writeln!(out, "name = {}", q(&a.name));
        let _ = writeln!(out, "team = {}", q(a.team.as_deref().unwrap_or_default()));
        let issuer = cur.issuer_url(&b.issuer_id).unwrap_or(&b.issuer_id);
        let _ = writeln!(out, "issuer = {}", q(issuer));
        let _ = writeln!(out, "subject = {}", q(&b.subject));
        if let Some(p) = &b.subject_pattern {
            let _ = writeln!(out, "subject_pattern = {}", q(p));
        }
        if b.allow_broad_subject_pattern {
            let _ = writeln!(out, "allow_broad_subject_pattern = true");
        }
        if !b.claims.is_empty() {
            let items: Vec<String> = b
                .claims
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), q(v)))
                .collect();
            let _ = writeln!(out, "claims = {{ {} }}", items.join(", "));
        }
        if a.max_token_lifetime_s != DEFAULT_SA_MAX_LIFETIME_S {
            let _ = writeln!(out, "max_token_lifetime_s = {}", a.max_token_lifetime_s);
        }
        if a.disabled {
            let _ = writeln!(out, "disabled = true");
        }
        if a.mode() != "enforce" {
            let _ = writeln!(out, "mode = {}", q(&a.mode()));
        }
    }
    out
}

/// The JSON form of `export --json`: the same content, as data.
pub fn to_json(cur: &Current) -> Value {
    let issuers: Vec<Value> = cur
        .issuers
        .iter()
        .map(|i| {
            serde_json::json!({
                "url": i.url, "id": i.id, "key_source": i.key_source, "jwks_uri": i.jwks_uri,
                "audiences": i.audiences, "allowed_algs": i.allowed_algs,
                "max_token_age_s": i.max_token_age_s, "leeway_s": i.leeway_s,
                "single_use_jti": i.single_use_jti, "users": i.users,
            })
        })
        .collect();
    let accounts: Vec<Value> = cur
        .accounts
        .iter()
        .filter(|a| a.is_federated())
        .map(|a| {
            let b = a.binding.clone().unwrap_or_default();
            serde_json::json!({
                "name": a.name, "id": a.id, "team": a.team,
                "issuer": cur.issuer_url(&b.issuer_id).unwrap_or(&b.issuer_id),
                "subject": b.subject, "subject_pattern": b.subject_pattern,
                "allow_broad_subject_pattern": b.allow_broad_subject_pattern,
                "claims": b.claims, "max_token_lifetime_s": a.max_token_lifetime_s,
                "disabled": a.disabled, "mode": a.mode(),
            })
        })
        .collect();
    serde_json::json!({"org": cur.org, "issuers": issuers, "service_accounts": accounts})
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::admin_cli::trust::diff::{BindingState, IssuerState, SaState, plan};
    use crate::admin_cli::trust::file::parse;

    #[test]
    fn an_export_plans_to_nothing() {
        let cur = Current {
            org: "default".into(),
            teams: BTreeSet::from(["vision".into()]),
            issuers: vec![IssuerState {
                id: "iss_1".into(),
                url: "https://k8s.example.com/\"odd\"".into(),
                key_source: "jwks_uri".into(),
                jwks_uri: Some("https://k8s.example.com/openid/v1/jwks".into()),
                audiences: vec!["default".into(), "sts".into()],
                allowed_algs: vec!["RS256".into()],
                max_token_age_s: 600,
                leeway_s: DEFAULT_LEEWAY_S,
                single_use_jti: true,
                ..IssuerState::default()
            }],
            accounts: vec![SaState {
                id: "sa_1".into(),
                name: "k8s-train".into(),
                scope: "team".into(),
                team: Some("vision".into()),
                auth: "external".into(),
                disabled: true,
                max_token_lifetime_s: 900,
                binding: Some(BindingState {
                    issuer_id: "iss_1".into(),
                    subject: "system:serviceaccount:ml:trainer".into(),
                    subject_pattern: Some("system:serviceaccount:*".into()),
                    allow_broad_subject_pattern: true,
                    claims: BTreeMap::from([("kubernetes.io.namespace".into(), "ml".into())]),
                    mode: Some("shadow".into()),
                }),
                ..SaState::default()
            }],
        };
        let text = render(&cur, "now");
        assert!(
            text.contains("claims = { \"kubernetes.io.namespace\" = \"ml\" }"),
            "{text}"
        );
        assert!(
            text.contains("allow_broad_subject_pattern = true"),
            "{text}"
        );
        assert_eq!(
            to_json(&cur)["service_accounts"][0]["allow_broad_subject_pattern"],
            true
        );
        let file = parse("export.toml", &text).unwrap();
        assert!(file.accounts[0].allow_broad_subject_pattern);
        let p = plan(&file, &cur, true);
        assert!(p.changes.is_empty() && p.errors.is_empty(), "{p:?}\n{text}");
    }
}
