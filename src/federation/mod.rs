//! Identity federation without HTTP or database code: each trusted issuer's
//! keys (parsed by [`keys`], fetched by [`fetch`], cached by [`jwks`]), the
//! RFC 8725 checks on a presented JWT
//! ([`validate`]) and the compiled bindings of external service accounts
//! ([`policy`]). The exchange service in `crate::service::exchange` only
//! orchestrates these pieces.

pub mod fetch;
pub mod index;
pub mod jwks;
pub mod keys;
pub mod netguard;
pub mod policy;
pub mod tenant;
pub mod validate;

use jsonwebtoken::Algorithm;

/// Where an issuer's verification keys come from.
#[derive(Clone, Debug, PartialEq)]
pub enum KeySource {
    /// `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    /// An explicit JWKS URL (no discovery).
    JwksUri(String),
    /// A JWKS pasted by the admin, for private issuers (Kubernetes clusters,
    /// air-gapped IdPs). Never fetched.
    Static(jsonwebtoken::jwk::JwkSet),
}

/// A trusted issuer as the exchange needs it: compiled once from the stored
/// row, kept in memory, never re-parsed on the hot path.
#[derive(Clone, Debug)]
pub struct IssuerConfig {
    pub id: String,
    pub org_id: String,
    pub org_name: String,
    /// The exact `iss` value accepted.
    pub issuer: String,
    pub key_source: KeySource,
    /// `aud` must contain one of these (default: the org's name, as W&B does).
    pub audiences: Vec<String>,
    /// Asymmetric algorithms only (RS*, PS*, ES*, EdDSA).
    pub allowed_algs: Vec<Algorithm>,
    /// Upper bound for `exp - iat`.
    pub max_token_age_s: i64,
    /// Clock leeway for `exp`, `nbf`, `iat`.
    pub leeway_s: i64,
    /// Refuse a second exchange of the same `jti`.
    pub single_use_jti: bool,
    /// Trusted for people too: `sub` = the email of a user of the org.
    pub users: bool,
    /// When the org registered it (ms): the earlier registration keeps a
    /// token that several organizations accept through shared audiences
    /// (see [`tenant::pick`]).
    pub created_at: i64,
}

/// Default accepted algorithms: every asymmetric algorithm jsonwebtoken verifies.
pub const DEFAULT_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Default for `max_token_age_s`: GitHub Actions tokens live 5–10 minutes,
/// Kubernetes projected tokens default to one hour; 24 h covers the long ones
/// while refusing "forever" tokens.
pub const DEFAULT_MAX_TOKEN_AGE_S: i64 = 24 * 3600;
/// Default clock leeway (DESIGN §3).
pub const DEFAULT_LEEWAY_S: i64 = 60;
/// Largest clock leeway an issuer may be given.
pub const MAX_LEEWAY_S: i64 = 300;

/// Until when a single-use `jti` must be remembered: the last second at
/// which any registration of its issuer could still accept the token.
/// `exp` plus the largest leeway an issuer may have, not the issuer's
/// current one: an admin may raise the leeway after the record was written,
/// and the record must outlive every acceptance window (issue 10: a record
/// kept until `exp` let the token be exchanged again inside the leeway).
pub fn jti_horizon(exp: i64) -> i64 {
    exp.saturating_add(MAX_LEEWAY_S)
}

/// At most `max` characters of `s`, with `…` when cut: claim values and
/// header fields quoted in error descriptions and traces stay short, so an
/// `error_description` never carries a whole attacker-chosen value.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// The registered issuer that `wanted` nearly equals (same URL but for
/// trailing slashes, letter case or surrounding spaces), for messages: an
/// issuer must match exactly (RFC 8414 §3.3), and this near miss is the
/// usual reason a correct-looking one does not.
pub fn near_match<'a>(
    wanted: &str,
    registered: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let w = norm(wanted);
    registered
        .into_iter()
        .find(|r| *r != wanted && norm(r) == w)
}

/// An issuer of org `acme` for unit tests.
#[cfg(test)]
pub(crate) fn test_issuer(id: &str, url: &str, source: KeySource) -> IssuerConfig {
    IssuerConfig {
        id: id.into(),
        org_id: "org1".into(),
        org_name: "acme".into(),
        issuer: url.into(),
        key_source: source,
        audiences: vec!["acme".into()],
        allowed_algs: DEFAULT_ALGS.to_vec(),
        max_token_age_s: DEFAULT_MAX_TOKEN_AGE_S,
        leeway_s: DEFAULT_LEEWAY_S,
        single_use_jti: false,
        users: false,
        created_at: 0,
    }
}

#[cfg(test)]
mod near_match_tests {
    use super::near_match;

    #[test]
    fn trailing_slashes_and_case_are_near_misses() {
        let reg = [
            "https://token.actions.githubusercontent.com",
            "https://gitlab.com",
        ];
        assert_eq!(
            near_match("https://token.actions.githubusercontent.com/", reg),
            Some(reg[0])
        );
        assert_eq!(near_match("https://GitLab.com", reg), Some(reg[1]));
        assert_eq!(
            near_match("https://gitlab.com", reg),
            None,
            "exact is no near miss"
        );
        assert_eq!(near_match("https://gitlab.example.com", reg), None);
    }
}
