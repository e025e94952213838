//! Which organization a token is for when several trust its issuer
//! (GitHub's, say). The token's own `aud` decides, by a rule that no other
//! organization's registration can turn against a tenant:
//!
//! 1. An audience **reserved** to an organization (its name, or the URL
//!    `<public-url>/org/<name>`) that this organization accepts picks it.
//!    Nobody else may register such an audience, so nobody else can claim it.
//! 2. Otherwise the organizations whose accepted audiences meet the token's
//!    `aud`; registration refuses two organizations accepting the same
//!    audience of one issuer, and if different shared audiences of one token
//!    still meet several organizations, the one that registered the issuer
//!    first keeps it: a later registration never takes an exchange over.
//! 3. A token that names two organizations by their reserved audiences is
//!    refused: it says itself that it is for both.

use std::sync::Arc;

use super::{IssuerConfig, excerpt};

/// The audiences reserved to an organization: its name, and its URL form
/// `<public-url>/org/<name>` (the org's page in the console).
pub fn reserved_audiences(org_name: &str, public_url: &str) -> [String; 2] {
    [
        org_name.to_owned(),
        format!("{}/org/{org_name}", public_url.trim_end_matches('/')),
    ]
}

/// The organization name an audience would be reserved to: the name in
/// `<public-url>/org/<name>` (a trailing slash tolerated), else the
/// audience itself. Whether such an organization exists is the caller's
/// question.
pub fn reserved_owner<'a>(aud: &'a str, public_url: &str) -> &'a str {
    let prefix = format!("{}/org/", public_url.trim_end_matches('/'));
    match aud.strip_prefix(prefix.as_str()) {
        Some(rest) => {
            let name = rest.strip_suffix('/').unwrap_or(rest);
            if name.is_empty() || name.contains('/') {
                aud
            } else {
                name
            }
        }
        None => aud,
    }
}

/// Why no single organization could be picked. The texts go to anonymous
/// callers: they name only what the token itself says.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PickError {
    /// The token's `aud` names several organizations by reserved audiences.
    #[error(
        "the token's aud names several organizations that trust this issuer ({0}); an identity token must be meant for one organization"
    )]
    SeveralReserved(String),
    /// No organization trusting the issuer accepts any of the token's audiences.
    #[error(
        "the token's aud {0} is not accepted by any organization that trusts this issuer; ask for a token whose audience is your organization's name"
    )]
    NoneAccepts(String),
}

/// The configs of the one organization the token is for (see the module
/// documentation), from the configs registered for its `iss`.
pub fn pick(
    configs: Vec<Arc<IssuerConfig>>,
    auds: &[&str],
    public_url: &str,
) -> Result<Vec<Arc<IssuerConfig>>, PickError> {
    let one_org = |v: &[Arc<IssuerConfig>]| v.iter().all(|c| c.org_id == v[0].org_id);
    if configs.is_empty() || one_org(&configs) {
        return Ok(configs);
    }
    let accepts = |c: &IssuerConfig, aud: &str| c.audiences.iter().any(|a| a == aud);
    let reserved: Vec<Arc<IssuerConfig>> = configs
        .iter()
        .filter(|c| {
            let own = reserved_audiences(&c.org_name, public_url);
            auds.iter()
                .any(|aud| own.iter().any(|o| o == aud) && accepts(c, aud))
        })
        .cloned()
        .collect();
    if !reserved.is_empty() {
        if one_org(&reserved) {
            return Ok(reserved);
        }
        let mut names: Vec<&str> = reserved.iter().map(|c| c.org_name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        return Err(PickError::SeveralReserved(names.join(", ")));
    }
    let mut accepting: Vec<Arc<IssuerConfig>> = configs
        .iter()
        .filter(|c| auds.iter().any(|aud| accepts(c, aud)))
        .cloned()
        .collect();
    if accepting.is_empty() {
        return Err(PickError::NoneAccepts(excerpt(&format!("{auds:?}"), 120)));
    }
    accepting.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let first = accepting[0].org_id.clone();
    accepting.retain(|c| c.org_id == first);
    Ok(accepting)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::federation::{KeySource, test_issuer};

    const URL: &str = "https://fedgate.example";
    const K8S: &str = "https://kubernetes.default.svc";

    fn cfg(org: &str, auds: &[&str], created_at: i64) -> Arc<IssuerConfig> {
        let mut c = test_issuer(
            &format!("iss_{org}"),
            "https://k8s.example",
            KeySource::Discovery,
        );
        c.org_id = format!("org_{org}");
        c.org_name = org.into();
        c.audiences = auds.iter().map(|a| a.to_string()).collect();
        c.created_at = created_at;
        Arc::new(c)
    }

    fn org_of(r: Result<Vec<Arc<IssuerConfig>>, PickError>) -> String {
        let v = r.unwrap();
        assert!(!v.is_empty());
        v[0].org_name.clone()
    }

    #[test]
    fn reserved_forms() {
        assert_eq!(
            reserved_audiences("acme", "https://fedgate.example/"),
            [
                "acme".to_owned(),
                "https://fedgate.example/org/acme".to_owned()
            ]
        );
        assert_eq!(
            reserved_owner("https://fedgate.example/org/acme", URL),
            "acme"
        );
        assert_eq!(
            reserved_owner("https://fedgate.example/org/acme/", URL),
            "acme"
        );
        assert_eq!(reserved_owner("acme", URL), "acme");
        assert_eq!(
            reserved_owner("https://fedgate.example/org/a/b", URL),
            "https://fedgate.example/org/a/b"
        );
        assert_eq!(reserved_owner(K8S, URL), K8S);
    }

    /// The finding: B registering a second audience of A's tokens
    /// neither breaks nor captures A's exchange, whatever the order.
    #[test]
    fn a_reserved_audience_beats_a_shared_one() {
        let a = cfg("acme", &["acme"], 1);
        let b = cfg("beta", &[K8S], 2);
        let auds = ["acme", K8S];
        assert_eq!(org_of(pick(vec![a.clone(), b.clone()], &auds, URL)), "acme");
        assert_eq!(org_of(pick(vec![b.clone(), a.clone()], &auds, URL)), "acme");
        // B registered first: A's reserved audience still wins.
        let early_b = cfg("beta", &[K8S], 0);
        assert_eq!(org_of(pick(vec![early_b, a.clone()], &auds, URL)), "acme");
        // B's own tokens (only the shared audience) stay B's.
        assert_eq!(
            org_of(pick(vec![a.clone(), b.clone()], &[K8S], URL)),
            "beta"
        );
        // The URL form works like the name.
        let a_url = cfg("acme", &["https://fedgate.example/org/acme"], 1);
        let auds = ["https://fedgate.example/org/acme", K8S];
        assert_eq!(org_of(pick(vec![b, a_url], &auds, URL)), "acme");
    }

    #[test]
    fn shared_audiences_keep_the_first_registration() {
        // A accepts only a shared audience; B later accepts another one
        // that A's tokens also carry: A keeps its exchange.
        let a = cfg("acme", &[K8S], 1);
        let b = cfg("beta", &["vault"], 2);
        assert_eq!(
            org_of(pick(vec![b.clone(), a.clone()], &[K8S, "vault"], URL)),
            "acme"
        );
        assert_eq!(org_of(pick(vec![b, a], &["vault"], URL)), "beta");
    }

    #[test]
    fn reserved_name_not_accepted_does_not_pick() {
        // B trusts the issuer with another audience; A's tokens saying
        // "beta" (which A accepts as a plain string) stay A's.
        let a = cfg("acme", &["beta"], 1);
        let b = cfg("beta", &["x"], 2);
        assert_eq!(org_of(pick(vec![b, a], &["beta"], URL)), "acme");
    }

    #[test]
    fn two_tenants_named_or_none_accepting_is_refused() {
        let a = cfg("acme", &["acme"], 1);
        let b = cfg("beta", &["beta"], 2);
        let err = pick(vec![a.clone(), b.clone()], &["acme", "beta"], URL).unwrap_err();
        assert_eq!(err, PickError::SeveralReserved("acme, beta".into()));
        let err = pick(vec![a.clone(), b], &["other"], URL).unwrap_err();
        assert!(matches!(err, PickError::NoneAccepts(_)), "{err}");
        assert!(!err.to_string().contains("acme"), "{err}");
        // One organization: its own checks decide, even on a wrong aud.
        assert_eq!(org_of(pick(vec![a], &["other"], URL)), "acme");
    }
}
