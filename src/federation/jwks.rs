//! The verification keys of each trusted issuer: where they come from
//! ([`KeyFetcher`], with [`HttpFetcher`] for OIDC Discovery and JWKS URLs),
//! which JWKs are kept ([`VerifyingKey::from_jwk`]) and for how long
//! ([`KeyCache`]: TTL from `Cache-Control`, single-flight refresh on an
//! unknown `kid`, last good keys served while the IdP is down).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    RSA_PSS_2048_8192_SHA256, RSA_PSS_2048_8192_SHA384, RSA_PSS_2048_8192_SHA512, RsaParameters,
    RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::{Deserialize, Serialize};

use super::{IssuerConfig, KeySource, excerpt};

/// Smallest RSA modulus accepted: RFC 7518 §3.3 requires 2048 bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted: what aws-lc-rs verifies, and a bound on CPU per verification.
pub const MAX_RSA_BITS: usize = 8192;

/// Curves accepted for ECDSA (RFC 7518 §3.4 ties ES256 to P-256 and ES384 to P-384).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcCurve {
    /// NIST P-256, for ES256.
    P256,
    /// NIST P-384, for ES384.
    P384,
}

/// What kind of public key a JWK is: the key, not the token header, decides
/// which algorithms it verifies (RFC 8725 §2.1, §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFamily {
    /// RS256/384/512 and PS256/384/512.
    Rsa,
    /// ES256 or ES384, by curve.
    Ec(EcCurve),
    /// EdDSA (RFC 8037).
    Ed25519,
}

impl KeyFamily {
    /// Whether a signature made with `alg` may be checked with a key of this family.
    pub fn accepts(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (
                KeyFamily::Rsa,
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (KeyFamily::Ec(EcCurve::P256), ES256)
                | (KeyFamily::Ec(EcCurve::P384), ES384)
                | (KeyFamily::Ed25519, EdDSA)
        )
    }

    /// Short name for error messages and the admin status.
    pub fn name(self) -> &'static str {
        match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ec(EcCurve::P256) => "EC P-256",
            KeyFamily::Ec(EcCurve::P384) => "EC P-384",
            KeyFamily::Ed25519 => "Ed25519",
        }
    }
}

/// One usable public key of an issuer, parsed once when the JWKS is loaded.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    /// The JWK's `kid`: how a token names its key (RFC 7515 §4.1.4).
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the token must then use exactly it.
    pub alg: Option<Algorithm>,
    /// Decides which header `alg` values this key may verify.
    pub family: KeyFamily,
    /// The parsed public key handed to jsonwebtoken's verifier.
    pub key: DecodingKey,
    /// The same key parsed once by aws-lc-rs for the algorithm it is most
    /// likely to verify (its JWK `alg`, else RS256 / ES256 / ES384 / EdDSA by
    /// type): a token of that algorithm skips jsonwebtoken's per-call key
    /// construction (for RSA, the bignums and Montgomery set-up).
    pub parsed: Option<(Algorithm, ParsedPublicKey)>,
}

fn rsa_params(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

impl VerifyingKey {
    /// Keeps a JWK only if it is an asymmetric signature key we can verify
    /// with: `use` absent or `sig` (RFC 7517 §4.2), `key_ops` (if any)
    /// allowing `verify`, no `kty: oct` (RFC 8725 §3.1: a public JWKS must
    /// never yield an HMAC secret), RSA of 2048–8192 bits, EC on P-256/P-384
    /// with a point on the curve, Ed25519. The error says why it was dropped.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        match &jwk.common.public_key_use {
            None | Some(PublicKeyUse::Signature) => {}
            Some(PublicKeyUse::Encryption) => return Err("use is \"enc\", not \"sig\"".into()),
            Some(PublicKeyUse::Other(u)) => {
                return Err(format!("use is {:?}, not \"sig\"", excerpt(u, 32)));
            }
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
        {
            return Err("key_ops does not include \"verify\"".into());
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(ka) => match Algorithm::try_from(ka) {
                Ok(a) if a.family() != AlgorithmFamily::Hmac => Some(a),
                _ => return Err(format!("alg {ka} is not an asymmetric signature algorithm")),
            },
        };
        let (family, key, parsed) = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => {
                let n = b64(&p.n, "n")?;
                let e = b64(&p.e, "e")?;
                let (n, e) = (strip_zeros(&n), strip_zeros(&e));
                let bits = bit_len(n);
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "RSA key of {bits} bits is under the {MIN_RSA_BITS}-bit minimum (RFC 7518 §3.3)"
                    ));
                }
                if bits > MAX_RSA_BITS || e.is_empty() || e.len() > 8 {
                    return Err(format!(
                        "RSA key of {bits} bits or its exponent is out of range"
                    ));
                }
                let fast = alg.unwrap_or(Algorithm::RS256);
                let parsed = rsa_params(fast).and_then(|params| {
                    RsaPublicKeyComponents { n, e }
                        .to_parsed_public_key(params)
                        .ok()
                        .map(|k| (fast, k))
                });
                (
                    KeyFamily::Rsa,
                    DecodingKey::from_rsa_raw_components(n, e),
                    parsed,
                )
            }
            AlgorithmParameters::EllipticCurve(p) => {
                let (curve, len, verifier, fast) = match p.curve {
                    EllipticCurve::P256 => (
                        EcCurve::P256,
                        32,
                        &ECDSA_P256_SHA256_FIXED,
                        Algorithm::ES256,
                    ),
                    EllipticCurve::P384 => (
                        EcCurve::P384,
                        48,
                        &ECDSA_P384_SHA384_FIXED,
                        Algorithm::ES384,
                    ),
                    ref other => return Err(format!("EC curve {other:?} is not supported")),
                };
                let (x, y) = (b64(&p.x, "x")?, b64(&p.y, "y")?);
                if x.len() != len || y.len() != len {
                    return Err("EC coordinates have the wrong length for the curve".into());
                }
                // SEC1 uncompressed point, what jsonwebtoken's EC verifier expects.
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let parsed = ParsedPublicKey::new(verifier, &point)
                    .map_err(|_| "EC point is not on the curve".to_owned())?;
                (
                    KeyFamily::Ec(curve),
                    DecodingKey::from_ec_der(&point),
                    Some((fast, parsed)),
                )
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                if p.curve != EllipticCurve::Ed25519 {
                    return Err(format!("OKP curve {:?} is not supported", p.curve));
                }
                let x = b64(&p.x, "x")?;
                let parsed = ParsedPublicKey::new(&ED25519, &x)
                    .map_err(|_| "Ed25519 public key is malformed".to_owned())?;
                (
                    KeyFamily::Ed25519,
                    DecodingKey::from_ed_der(&x),
                    Some((Algorithm::EdDSA, parsed)),
                )
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(
                    "symmetric (kty \"oct\") keys are never trusted (RFC 8725 §3.1)".into(),
                );
            }
            AlgorithmParameters::Other(o) => {
                let kty = o.fields.get("kty").and_then(|v| v.as_str()).unwrap_or("?");
                return Err(format!("unsupported kty {:?} or curve", excerpt(kty, 16)));
            }
            _ => return Err("unsupported key type".into()),
        };
        if let Some(a) = alg
            && !family.accepts(a)
        {
            return Err(format!(
                "JWK alg {a:?} does not fit a {} key",
                family.name()
            ));
        }
        Ok(VerifyingKey {
            kid: jwk.common.key_id.clone(),
            alg,
            family,
            key,
            parsed,
        })
    }
}

fn b64(s: &str, field: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| format!("JWK member {field:?} is not base64url"))
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[start..]
}

fn bit_len(b: &[u8]) -> usize {
    match b.first() {
        None => 0,
        Some(&first) => (b.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Why no key could be given for a token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The JWKS (even after a refresh) has no key for this `kid`/`alg`.
    #[error("no key of the issuer matches {} and alg {alg:?}", kid_text(.kid))]
    UnknownKid { kid: Option<String>, alg: Algorithm },
    /// No `kid`, and several keys could verify `alg`: refusing beats guessing.
    #[error("the token has no kid and several keys of the issuer fit alg {0:?}")]
    AmbiguousKey(Algorithm),
    /// The key named by `kid` cannot verify the header's `alg` (RFC 8725 §3.1).
    #[error("{0}")]
    AlgMismatch(String),
    /// No fetch succeeded and no usable cached keys: HTTP 503 `temporarily_unavailable`.
    #[error("the issuer's signing keys are unavailable: {0}")]
    Unavailable(String),
}

fn kid_text(kid: &Option<String>) -> String {
    match kid {
        Some(k) => format!("kid {:?}", excerpt(k, 64)),
        None => "a token without kid".to_owned(),
    }
}

impl KeyError {
    /// RFC 6749 §5.2 code for the token endpoint (503 for `temporarily_unavailable`).
    pub fn error_code(&self) -> &'static str {
        match self {
            KeyError::Unavailable(_) => "temporarily_unavailable",
            _ => "invalid_grant",
        }
    }
}

/// The usable keys of one fetch, and how many JWKs were refused.
#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Arc<VerifyingKey>>,
    dropped: usize,
}

impl KeySet {
    fn build(jwks: &JwkSet, unparsed: usize, issuer_id: &str) -> KeySet {
        let mut set = KeySet {
            keys: Vec::new(),
            dropped: unparsed,
        };
        for jwk in &jwks.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(k) => set.keys.push(Arc::new(k)),
                Err(reason) => {
                    set.dropped += 1;
                    tracing::debug!(issuer_id, kid = ?jwk.common.key_id, %reason, "JWK dropped");
                }
            }
        }
        set
    }

    /// `Ok(None)` when nothing matches (a refresh may help).
    fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Option<Arc<VerifyingKey>>, KeyError> {
        let fits = |k: &VerifyingKey| k.family.accepts(alg) && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => {
                let mut named = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid))
                    .peekable();
                let Some(first) = named.peek().map(|k| Arc::clone(k)) else {
                    return Ok(None);
                };
                if let Some(k) = named.find(|k| fits(k)) {
                    return Ok(Some(Arc::clone(k)));
                }
                let own = first
                    .alg
                    .map(|a| format!(" with alg {a:?}"))
                    .unwrap_or_default();
                Err(KeyError::AlgMismatch(format!(
                    "key {:?} is a {} key{own}; it cannot verify alg {alg:?} (RFC 8725 §3.1)",
                    excerpt(kid, 64),
                    first.family.name()
                )))
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| fits(k));
                match (fitting.next(), fitting.next()) {
                    (None, _) => Ok(None),
                    (Some(k), None) => Ok(Some(Arc::clone(k))),
                    (Some(_), Some(_)) => Err(KeyError::AmbiguousKey(alg)),
                }
            }
        }
    }
}

/// What a [`KeyFetcher`] got: the JWKS, how many entries could not even be
/// parsed as JWKs, and the response's `Cache-Control: max-age`.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    /// The JWKs that parsed; [`VerifyingKey::from_jwk`] filters them next.
    pub jwks: JwkSet,
    /// Entries of `keys` that were not even JWKs (counted as dropped).
    pub unparsed: usize,
    /// From `Cache-Control`, clamped by the cache's TTL bounds.
    pub max_age: Option<Duration>,
}

/// Why a JWKS could not be fetched; the text is shown to org admins (issuer status).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "{url} is not https (plain http is allowed only for loopback hosts with --allow-insecure-issuers)"
    )]
    Insecure { url: String },
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    #[error("redirect from {url} refused: {reason}")]
    Redirect { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the response of {url} is larger than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the response of {url} is not JSON: {reason}")]
    NotJson { url: String, reason: String },
    #[error("the discovery document at {url} is invalid: {reason}")]
    BadDiscovery { url: String, reason: String },
    #[error("the response of {url} is not a JWKS: no \"keys\" array (RFC 7517 §5)")]
    NoKeys { url: String },
    #[error(
        "the discovery document at {url} says issuer {document:?} but the configured issuer is {configured:?}; \
         they must be equal exactly (OIDC Discovery §4.3: check the trailing slash and the scheme)"
    )]
    IssuerMismatch {
        url: String,
        configured: String,
        document: String,
    },
    #[error("a static JWKS is never fetched")]
    StaticSource,
}

/// Where keys come from, behind a trait so tests and the cache can use a fake (STYLE habit 2).
#[async_trait]
pub trait KeyFetcher: Send + Sync {
    /// Fetches the current JWKS of `issuer` (never called for `KeySource::Static`).
    async fn fetch(&self, issuer: &IssuerConfig) -> Result<Fetched, FetchError>;
}

/// Bounds on every request to an IdP (DESIGN §3: https only, bounded size and time, no cross-host redirect).
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// http:// to 127.0.0.0/8, ::1 or `localhost` only: development and tests.
    pub allow_insecure_loopback: bool,
    /// Whole fetch (discovery + JWKS, redirects included).
    pub timeout: Duration,
    /// Largest body read, checked while streaming, not only from Content-Length.
    pub max_bytes: usize,
    /// Same-host redirects followed at most.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_insecure_loopback: false,
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            max_redirects: 3,
        }
    }
}

/// The real fetcher: OIDC Discovery (§4) or a JWKS URL over reqwest/rustls.
#[derive(Clone, Debug)]
pub struct HttpFetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

/// Refuses anything but https, except http to a loopback host when allowed;
/// URLs with credentials are refused too (they would end up in logs).
pub fn check_url(url: &str, allow_insecure_loopback: bool) -> Result<url::Url, FetchError> {
    let bad = |reason: &str| FetchError::BadUrl {
        url: excerpt(url, 200),
        reason: reason.into(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad("credentials in the URL are not allowed"));
    }
    let loopback = match parsed.host() {
        None => return Err(bad("no host")),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
    };
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_insecure_loopback && loopback => Ok(parsed),
        _ => Err(FetchError::Insecure {
            url: excerpt(url, 200),
        }),
    }
}

/// `max-age` of the `Cache-Control` values (RFC 9111 §5.2.2.1); `no-cache`
/// and `no-store` count as 0 (the cache then applies its minimum TTL).
pub fn parse_max_age<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Duration> {
    let mut best: Option<u64> = None;
    for value in values {
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let secs = match name.trim().to_ascii_lowercase().as_str() {
                "no-cache" | "no-store" => Some(0),
                "max-age" => arg.trim().trim_matches('"').parse::<u64>().ok(),
                _ => None,
            };
            if let Some(s) = secs {
                best = Some(best.map_or(s, |b| b.min(s)));
            }
        }
    }
    best.map(Duration::from_secs)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

impl HttpFetcher {
    /// Builds the client once: timeouts, redirect rule and TLS are fixed here.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let (allow, max) = (policy.allow_insecure_loopback, policy.max_redirects);
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let first_host = attempt
                .previous()
                .first()
                .and_then(|u| u.host_str())
                .map(str::to_owned);
            if attempt.previous().len() > max {
                let msg = format!("more than {max} redirects");
                return attempt.error(msg);
            }
            if attempt.url().host_str().map(str::to_owned) != first_host {
                let msg = format!(
                    "redirect to another host ({}) refused",
                    attempt.url().host_str().unwrap_or("?")
                );
                return attempt.error(msg);
            }
            match check_url(attempt.url().as_str(), allow) {
                Ok(_) => attempt.follow(),
                Err(e) => {
                    let msg = e.to_string();
                    attempt.error(msg)
                }
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("fedgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport {
                url: String::new(),
                reason: error_chain(&e),
            })?;
        Ok(HttpFetcher { client, policy })
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
        let parsed = check_url(url, self.policy.allow_insecure_loopback)?;
        let max = self.policy.max_bytes;
        let to_err = |e: reqwest::Error| {
            let (url, reason) = (url.to_owned(), error_chain(&e));
            if e.is_timeout() {
                FetchError::Timeout(self.policy.timeout)
            } else if e.is_redirect() {
                FetchError::Redirect { url, reason }
            } else {
                FetchError::Transport { url, reason }
            }
        };
        let mut resp = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(to_err)?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: resp.status().as_u16(),
            });
        }
        let too_large = || FetchError::TooLarge {
            url: url.to_owned(),
            max,
        };
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let max_age = parse_max_age(
            resp.headers()
                .get_all(reqwest::header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        );
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(to_err)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
            let reason = e.to_string();
            if e.is_syntax() || e.is_eof() {
                FetchError::NotJson {
                    url: url.clone(),
                    reason,
                }
            } else {
                FetchError::BadDiscovery {
                    url: url.clone(),
                    reason,
                }
            }
        })?;
        if doc.issuer != issuer {
            return Err(FetchError::IssuerMismatch {
                url,
                configured: issuer.to_owned(),
                document: excerpt(&doc.issuer, 200),
            });
        }
        Ok(doc.jwks_uri)
    }

    async fn jwks(&self, url: &str) -> Result<Fetched, FetchError> {
        let (body, max_age) = self.get(url).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::NotJson {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let Some(serde_json::Value::Array(raw)) = value.get("keys") else {
            return Err(FetchError::NoKeys {
                url: url.to_owned(),
            });
        };
        let mut fetched = Fetched {
            max_age,
            ..Fetched::default()
        };
        for key in raw {
            match serde_json::from_value::<Jwk>(key.clone()) {
                Ok(jwk) => fetched.jwks.keys.push(jwk),
                Err(_) => fetched.unparsed += 1,
            }
        }
        Ok(fetched)
    }
}

#[async_trait]
impl KeyFetcher for HttpFetcher {
    async fn fetch(&self, issuer: &IssuerConfig) -> Result<Fetched, FetchError> {
        let work = async {
            let url = match &issuer.key_source {
                KeySource::Static(_) => return Err(FetchError::StaticSource),
                KeySource::JwksUri(u) => u.clone(),
                KeySource::Discovery => self.discover(&issuer.issuer).await?,
            };
            self.jwks(&url).await
        };
        tokio::time::timeout(self.policy.timeout, work)
            .await
            .map_err(|_| FetchError::Timeout(self.policy.timeout))?
    }
}

/// How long keys are trusted and how often an IdP may be asked again.
#[derive(Clone, Debug)]
pub struct CachePolicy {
    /// Floor for `Cache-Control: max-age` (an IdP saying 0 must not make us fetch per request).
    pub min_ttl: Duration,
    /// Ceiling for `max-age`, so rotated-out keys do not live for weeks.
    pub max_ttl: Duration,
    /// TTL when the IdP sends no `max-age`.
    pub default_ttl: Duration,
    /// At most one automatic fetch per issuer in this window (unknown kid, retry after failure).
    pub refresh_cooldown: Duration,
    /// How long after their fetch the last good keys keep serving while the IdP fails.
    pub max_stale: Duration,
    /// Upper bound on one fetch, whatever the fetcher does.
    pub fetch_timeout: Duration,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(15 * 60),
            refresh_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// What the admin API shows for an issuer's keys (never the keys themselves).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyStatus {
    /// `discovery`, `jwks_uri` or `static`.
    pub source: &'static str,
    /// `kid`s of the usable keys, so an admin can compare with a token's header.
    pub kids: Vec<String>,
    /// Usable keys, with or without a `kid`.
    pub keys: usize,
    /// Unix time of the last successful fetch (`None` for a static JWKS).
    pub last_fetch: Option<i64>,
    /// Why the last attempt failed, if it did; cleared by a success.
    pub last_error: Option<String>,
    /// Unix time after which the next request refetches (`None` for static).
    pub expires_at: Option<i64>,
    /// JWKs refused (wrong `use`, weak RSA, symmetric, unknown type, unparsable).
    pub dropped: usize,
}

#[derive(Clone, Debug, Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    fetched_at: Option<i64>,
    expires_at: Option<i64>,
    last_error: Option<String>,
    last_attempt: Option<i64>,
    /// Bumped when an attempt completes: waiters for the flight lock see it moved and reuse the result.
    generation: u64,
}

#[derive(Debug)]
struct Entry {
    issuer: String,
    source: KeySource,
    state: RwLock<State>,
    flight: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Entry {
    fn new(issuer: &IssuerConfig, now: i64) -> Entry {
        let mut state = State::default();
        if let KeySource::Static(jwks) = &issuer.key_source {
            let set = KeySet::build(jwks, 0, &issuer.id);
            if set.keys.is_empty() {
                state.last_error = Some(format!(
                    "the static JWKS has no usable signing key ({} dropped)",
                    set.dropped
                ));
            }
            state.keys = Some(Arc::new(set));
            state.fetched_at = Some(now);
            state.expires_at = Some(i64::MAX);
        }
        Entry {
            issuer: issuer.issuer.clone(),
            source: issuer.key_source.clone(),
            state: RwLock::new(state),
            flight: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        }
    }

    fn matches(&self, issuer: &IssuerConfig) -> bool {
        self.issuer == issuer.issuer && self.source == issuer.key_source
    }

    fn status(&self) -> KeyStatus {
        let st = read(&self.state);
        let is_static = matches!(self.source, KeySource::Static(_));
        let keys = st.keys.as_deref();
        KeyStatus {
            source: match self.source {
                KeySource::Discovery => "discovery",
                KeySource::JwksUri(_) => "jwks_uri",
                KeySource::Static(_) => "static",
            },
            kids: keys
                .map(|s| s.keys.iter().filter_map(|k| k.kid.clone()).collect())
                .unwrap_or_default(),
            keys: keys.map_or(0, |s| s.keys.len()),
            last_fetch: if is_static { None } else { st.fetched_at },
            last_error: st.last_error.clone(),
            expires_at: if is_static { None } else { st.expires_at },
            dropped: keys.map_or(0, |s| s.dropped),
        }
    }
}

/// Keys per issuer id. The read path clones an `Arc` under a short std lock
/// and never holds a lock across `.await`; fetches are single flight per
/// issuer (a `tokio::sync::Mutex` plus a generation counter), at most one
/// automatic fetch per `refresh_cooldown`, and the last good keys serve
/// until `max_stale` when the IdP fails (DESIGN §3, STYLE habit 5).
pub struct KeyCache {
    fetcher: Arc<dyn KeyFetcher>,
    policy: CachePolicy,
    entries: RwLock<HashMap<String, Arc<Entry>>>,
}

impl KeyCache {
    /// A cache in front of `fetcher` (an [`HttpFetcher`] in production).
    pub fn new(fetcher: Arc<dyn KeyFetcher>, policy: CachePolicy) -> Self {
        KeyCache {
            fetcher,
            policy,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The key that must verify a token of `issuer` with header `kid`/`alg`.
    /// A fresh cached key costs no I/O; an unknown `kid` or expired set
    /// costs at most one fetch shared by all concurrent callers.
    pub async fn key(
        &self,
        issuer: &IssuerConfig,
        kid: Option<&str>,
        alg: Algorithm,
        now: i64,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let entry = self.entry(issuer, now);
        let (keys, expires_at, seen) = {
            let st = read(&entry.state);
            (st.keys.clone(), st.expires_at, st.generation)
        };
        if let Some(set) = &keys
            && expires_at.is_some_and(|e| now < e)
            && let Some(k) = set.select(kid, alg)?
        {
            crate::metrics::cache_lookup(crate::metrics::Cache::JwksKeys, true);
            return Ok(k);
        }
        crate::metrics::cache_lookup(crate::metrics::Cache::JwksKeys, false);
        self.auto_refresh(&entry, issuer, now, seen).await;
        let (keys, fetched_at, expires_at, last_error) = {
            let st = read(&entry.state);
            (
                st.keys.clone(),
                st.fetched_at,
                st.expires_at,
                st.last_error.clone(),
            )
        };
        let last_error = last_error.unwrap_or_else(|| "no keys fetched yet".to_owned());
        let Some(set) = keys else {
            return Err(KeyError::Unavailable(last_error));
        };
        let fresh = expires_at.is_some_and(|e| now < e);
        let age = now.saturating_sub(fetched_at.unwrap_or(i64::MIN));
        if !fresh && age > secs(self.policy.max_stale) {
            return Err(KeyError::Unavailable(format!(
                "{last_error}; the last good keys are {age} s old, over the {} s limit",
                secs(self.policy.max_stale)
            )));
        }
        set.select(kid, alg)?.ok_or_else(|| KeyError::UnknownKid {
            kid: kid.map(str::to_owned),
            alg,
        })
    }

    /// Fetches now, ignoring TTL and cooldown (admin "refresh", lint on save).
    /// Unlike [`KeyCache::key`], a failure is returned even if old keys remain cached.
    pub async fn refresh(&self, issuer: &IssuerConfig, now: i64) -> Result<KeyStatus, KeyError> {
        if let KeySource::Static(_) = issuer.key_source {
            self.forget(&issuer.id);
            let entry = self.entry(issuer, now);
            let status = entry.status();
            return match &status.last_error {
                Some(e) if status.keys == 0 => Err(KeyError::Unavailable(e.clone())),
                _ => Ok(status),
            };
        }
        let entry = self.entry(issuer, now);
        let _flight = entry.flight.lock().await;
        self.fetch_into(&entry, issuer, now)
            .await
            .map_err(KeyError::Unavailable)?;
        Ok(entry.status())
    }

    /// Key status of an issuer, if it was ever used or refreshed.
    pub fn status(&self, issuer_id: &str) -> Option<KeyStatus> {
        let entry = read(&self.entries).get(issuer_id).cloned()?;
        Some(entry.status())
    }

    /// Drops an issuer's keys (issuer deleted or its key source changed).
    pub fn forget(&self, issuer_id: &str) {
        write(&self.entries).remove(issuer_id);
    }

    /// Fetch attempts for an issuer since it entered the cache (tests, metrics).
    pub fn fetch_count(&self, issuer_id: &str) -> u64 {
        read(&self.entries)
            .get(issuer_id)
            .map_or(0, |e| e.fetches.load(Ordering::Relaxed))
    }

    /// The issuer's entry; a changed `iss` or key source starts a new one.
    fn entry(&self, issuer: &IssuerConfig, now: i64) -> Arc<Entry> {
        if let Some(e) = read(&self.entries).get(&issuer.id)
            && e.matches(issuer)
        {
            return Arc::clone(e);
        }
        let mut map = write(&self.entries);
        if let Some(e) = map.get(&issuer.id)
            && e.matches(issuer)
        {
            return Arc::clone(e);
        }
        let e = Arc::new(Entry::new(issuer, now));
        map.insert(issuer.id.clone(), Arc::clone(&e));
        e
    }

    /// Single flight: callers that saw generation `seen` queue on the flight
    /// lock; the first fetches, the others find the generation moved and
    /// reuse its result. The cooldown also spaces retries against a failing IdP.
    async fn auto_refresh(&self, entry: &Entry, issuer: &IssuerConfig, now: i64, seen: u64) {
        if matches!(entry.source, KeySource::Static(_)) {
            return;
        }
        let _flight = entry.flight.lock().await;
        {
            let st = read(&entry.state);
            if st.generation != seen {
                return;
            }
            if st
                .last_attempt
                .is_some_and(|t| now.saturating_sub(t) < secs(self.policy.refresh_cooldown))
            {
                return;
            }
        }
        // The outcome is recorded in the entry; `key` reads it from there.
        let _ = self.fetch_into(entry, issuer, now).await;
    }

    /// One fetch; the caller holds the flight lock.
    async fn fetch_into(
        &self,
        entry: &Entry,
        issuer: &IssuerConfig,
        now: i64,
    ) -> Result<(), String> {
        entry.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched =
            tokio::time::timeout(self.policy.fetch_timeout, self.fetcher.fetch(issuer)).await;
        let timed_out = fetched.is_err();
        let outcome = match fetched {
            Err(_) => Err(format!(
                "fetch took longer than {:?}",
                self.policy.fetch_timeout
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(f)) => {
                let set = KeySet::build(&f.jwks, f.unparsed, &issuer.id);
                if set.keys.is_empty() {
                    Err(format!(
                        "the JWKS has no usable signing key ({} dropped)",
                        set.dropped
                    ))
                } else {
                    let ttl = f.max_age.map_or(self.policy.default_ttl, |d| {
                        d.clamp(self.policy.min_ttl, self.policy.max_ttl)
                    });
                    Ok((set, secs(ttl)))
                }
            }
        };
        crate::metrics::jwks_fetch(
            &issuer.issuer,
            match &outcome {
                Ok(_) => "ok",
                Err(_) if timed_out => "timeout",
                Err(_) => "error",
            },
        );
        let mut st = write(&entry.state);
        st.generation += 1;
        st.last_attempt = Some(now);
        match outcome {
            Ok((set, ttl)) => {
                tracing::info!(issuer_id = %issuer.id, keys = set.keys.len(), dropped = set.dropped, ttl, "issuer keys fetched");
                st.keys = Some(Arc::new(set));
                st.fetched_at = Some(now);
                st.expires_at = Some(now.saturating_add(ttl));
                st.last_error = None;
                Ok(())
            }
            Err(msg) => {
                tracing::warn!(issuer_id = %issuer.id, error = %msg, "issuer keys fetch failed");
                st.last_error = Some(msg.clone());
                Err(msg)
            }
        }
    }
}

/// Real keys for tests (generated with aws-lc-rs) and a compact JWS signer,
/// shared with the tests of `validate`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{self as sig, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::VerifyingKey;

    /// A private key of each family used in tests.
    pub(crate) enum TestKey {
        Rsa(&'static sig::RsaKeyPair),
        Ec256(&'static sig::EcdsaKeyPair),
        Ed(&'static sig::Ed25519KeyPair),
    }

    /// base64url without padding.
    pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    static RSA: [OnceLock<sig::RsaKeyPair>; 2] = [OnceLock::new(), OnceLock::new()];
    static EC: OnceLock<sig::EcdsaKeyPair> = OnceLock::new();
    static ED: OnceLock<sig::Ed25519KeyPair> = OnceLock::new();

    /// RSA-2048 key number `i` (0 or 1), generated once per test binary.
    pub(crate) fn rsa(i: usize) -> TestKey {
        TestKey::Rsa(RSA[i].get_or_init(|| sig::RsaKeyPair::generate(KeySize::Rsa2048).unwrap()))
    }

    /// A P-256 key.
    pub(crate) fn ec256() -> TestKey {
        TestKey::Ec256(EC.get_or_init(|| {
            sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap()
        }))
    }

    /// An Ed25519 key.
    pub(crate) fn ed25519() -> TestKey {
        TestKey::Ed(ED.get_or_init(|| sig::Ed25519KeyPair::generate().unwrap()))
    }

    impl TestKey {
        /// The public JWK, with `kid` and extra members (e.g. `use`, `alg`).
        pub(crate) fn jwk(&self, kid: &str, extra: Value) -> Value {
            let mut jwk = match self {
                TestKey::Rsa(k) => {
                    let p = k.public_key();
                    json!({"kty": "RSA", "n": b64(p.modulus().big_endian_without_leading_zero()),
                           "e": b64(p.exponent().big_endian_without_leading_zero())})
                }
                TestKey::Ec256(k) => {
                    let p = k.public_key().as_ref();
                    json!({"kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
                }
                TestKey::Ed(k) => {
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
                }
            };
            jwk["kid"] = json!(kid);
            if let Value::Object(extra) = extra {
                for (k, v) in extra {
                    jwk[k] = v;
                }
            }
            jwk
        }

        /// The public key as the cache would hold it.
        pub(crate) fn verifying(&self, kid: &str) -> VerifyingKey {
            VerifyingKey::from_jwk(&serde_json::from_value(self.jwk(kid, json!({}))).unwrap())
                .unwrap()
        }

        /// Signs `signing_input` with `alg` (RS*/PS* for RSA).
        pub(crate) fn sign(&self, alg: &str, signing_input: &[u8]) -> Vec<u8> {
            let rng = SystemRandom::new();
            match self {
                TestKey::Rsa(k) => {
                    let pad: &'static dyn sig::RsaEncoding = match alg {
                        "RS256" => &sig::RSA_PKCS1_SHA256,
                        "RS384" => &sig::RSA_PKCS1_SHA384,
                        "RS512" => &sig::RSA_PKCS1_SHA512,
                        "PS256" => &sig::RSA_PSS_SHA256,
                        other => panic!("no RSA padding for {other}"),
                    };
                    let mut out = vec![0; k.public_modulus_len()];
                    k.sign(pad, &rng, signing_input, &mut out).unwrap();
                    out
                }
                TestKey::Ec256(k) => k.sign(&rng, signing_input).unwrap().as_ref().to_vec(),
                TestKey::Ed(k) => k.sign(signing_input).as_ref().to_vec(),
            }
        }

        /// A compact JWS of raw header and payload JSON text (so tests can
        /// write duplicates and odd values).
        pub(crate) fn token_raw(&self, alg: &str, header: &str, payload: &str) -> String {
            let input = format!("{}.{}", b64(header), b64(payload));
            let sig = self.sign(alg, input.as_bytes());
            format!("{input}.{}", b64(sig))
        }

        /// A compact JWS with header `{"alg", "kid", "typ": "JWT"}` and `claims`.
        pub(crate) fn token(&self, alg: &str, kid: &str, claims: &Value) -> String {
            let header = json!({"alg": alg, "kid": kid, "typ": "JWT"}).to_string();
            self.token_raw(alg, &header, &claims.to_string())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use serde_json::{Value, json};

    use super::test_keys::{b64, ec256, ed25519, rsa};
    use super::*;
    use crate::federation::{DEFAULT_ALGS, DEFAULT_LEEWAY_S, DEFAULT_MAX_TOKEN_AGE_S};

    fn issuer(id: &str, url: &str, source: KeySource) -> IssuerConfig {
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
        }
    }

    fn set(keys: Vec<Value>) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    /// Counts calls, can fail, can sleep.
    struct Mock {
        calls: AtomicU64,
        jwks: Mutex<JwkSet>,
        fail: AtomicBool,
        delay: Duration,
        max_age: Option<Duration>,
    }

    impl Mock {
        fn new(jwks: JwkSet) -> Arc<Mock> {
            Arc::new(Mock {
                calls: AtomicU64::new(0),
                jwks: Mutex::new(jwks),
                fail: AtomicBool::new(false),
                delay: Duration::ZERO,
                max_age: None,
            })
        }
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl KeyFetcher for Mock {
        async fn fetch(&self, _issuer: &IssuerConfig) -> Result<Fetched, FetchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err(FetchError::Status {
                    url: "https://idp.example/jwks".into(),
                    status: 500,
                });
            }
            let jwks = self.jwks.lock().unwrap().clone();
            Ok(Fetched {
                jwks,
                unparsed: 0,
                max_age: self.max_age,
            })
        }
    }

    const T0: i64 = 1_800_000_000;

    fn cache(mock: &Arc<Mock>) -> KeyCache {
        KeyCache::new(
            Arc::clone(mock) as Arc<dyn KeyFetcher>,
            CachePolicy::default(),
        )
    }

    fn idp() -> IssuerConfig {
        issuer("i1", "https://idp.example", KeySource::Discovery)
    }

    #[tokio::test]
    async fn fresh_hit_does_not_fetch() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        let k = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        assert_eq!(k.kid.as_deref(), Some("a"));
        assert_eq!(k.family, KeyFamily::Rsa);
        for dt in [1, 100, 899] {
            cache
                .key(&idp(), Some("a"), Algorithm::PS256, T0 + dt)
                .await
                .unwrap();
        }
        assert_eq!(mock.calls(), 1);
        assert_eq!(cache.fetch_count("i1"), 1);
        // Default TTL (15 min) elapsed: one refetch.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 900)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
        let st = cache.status("i1").unwrap();
        assert_eq!(
            (st.kids, st.last_fetch, st.expires_at),
            (vec!["a".to_owned()], Some(T0 + 900), Some(T0 + 1800))
        );
    }

    #[tokio::test]
    async fn max_age_is_clamped_to_min_ttl() {
        let mut mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        Arc::get_mut(&mut mock).unwrap().max_age = Some(Duration::from_secs(5));
        let cache = cache(&mock);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 59)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 1);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 60)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn unknown_kid_storm_is_one_fetch() {
        let mut mock = Mock::new(set(vec![rsa(0).jwk("old", json!({}))]));
        Arc::get_mut(&mut mock).unwrap().delay = Duration::from_millis(100);
        let cache = Arc::new(cache(&mock));
        let iss = Arc::new(idp());
        cache
            .key(&iss, Some("old"), Algorithm::RS256, T0)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 1);
        // The IdP rotated: every request now carries kid "new".
        *mock.jwks.lock().unwrap() = set(vec![
            rsa(0).jwk("old", json!({})),
            ec256().jwk("new", json!({})),
        ]);
        let now = T0 + 31;
        let tasks: Vec<_> = (0..500)
            .map(|_| {
                let (cache, iss) = (Arc::clone(&cache), Arc::clone(&iss));
                tokio::spawn(
                    async move { cache.key(&iss, Some("new"), Algorithm::ES256, now).await },
                )
            })
            .collect();
        for t in tasks {
            assert_eq!(
                t.await.unwrap().unwrap().family,
                KeyFamily::Ec(EcCurve::P256)
            );
        }
        assert_eq!(mock.calls(), 2);
    }

    #[tokio::test]
    async fn cooldown_limits_unknown_kid_refreshes() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        let err = cache
            .key(&idp(), Some("x"), Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::UnknownKid { .. }), "{err}");
        assert_eq!(mock.calls(), 1, "the first fetch already answered for x");
        let err = cache
            .key(&idp(), Some("y"), Algorithm::RS256, T0 + 29)
            .await
            .unwrap_err();
        assert_eq!(err.error_code(), "invalid_grant");
        assert_eq!(mock.calls(), 1, "within the cooldown");
        cache
            .key(&idp(), Some("z"), Algorithm::RS256, T0 + 30)
            .await
            .unwrap_err();
        assert_eq!(mock.calls(), 2, "cooldown over");
    }

    #[tokio::test]
    async fn idp_failure_serves_last_good_keys_until_max_stale() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let policy = CachePolicy {
            max_stale: Duration::from_secs(3600),
            ..CachePolicy::default()
        };
        let cache = KeyCache::new(Arc::clone(&mock) as Arc<dyn KeyFetcher>, policy);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        mock.fail.store(true, Ordering::SeqCst);
        // Expired (TTL 900 s), the refetch fails, the old key still serves.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1000)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
        let st = cache.status("i1").unwrap();
        assert!(
            st.last_error.as_deref().unwrap().contains("HTTP 500"),
            "{st:?}"
        );
        assert_eq!(st.last_fetch, Some(T0));
        // Within the cooldown no new attempt is made.
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1010)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
        // The forced refresh reports the failure although keys remain.
        let err = cache.refresh(&idp(), T0 + 1020).await.unwrap_err();
        assert!(matches!(err, KeyError::Unavailable(_)));
        // Past max_stale: unavailable (503).
        let err = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 3601)
            .await
            .unwrap_err();
        assert_eq!(err.error_code(), "temporarily_unavailable");
        assert!(err.to_string().contains("HTTP 500"), "{err}");
        // The IdP is back: keys again.
        mock.fail.store(false, Ordering::SeqCst);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 3700)
            .await
            .unwrap();
        assert_eq!(cache.status("i1").unwrap().last_error, None);
    }

    #[tokio::test]
    async fn no_keys_and_failing_idp_is_unavailable() {
        let mock = Mock::new(JwkSet::default());
        mock.fail.store(true, Ordering::SeqCst);
        let cache = cache(&mock);
        let err = cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, KeyError::Unavailable(m) if m.contains("HTTP 500")),
            "{err}"
        );
        // An empty JWKS is a failure too, and never replaces good keys.
        mock.fail.store(false, Ordering::SeqCst);
        let err = cache.refresh(&idp(), T0 + 1).await.unwrap_err();
        assert!(err.to_string().contains("no usable signing key"), "{err}");
    }

    #[tokio::test]
    async fn weak_encryption_symmetric_and_unknown_keys_are_dropped() {
        let rsa1024 = json!({"kty": "RSA", "kid": "weak", "n": b64([0xC5u8; 128]), "e": "AQAB"});
        let keys = vec![
            rsa(0).jwk("good", json!({"use": "sig", "alg": "RS256"})),
            rsa1024,
            rsa(1).jwk("enc", json!({"use": "enc"})),
            json!({"kty": "oct", "kid": "hmac", "k": b64(b"secret")}),
            json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": b64([1u8; 66]), "y": b64([1u8; 66])}),
            json!({"kty": "EC", "kid": "k1", "crv": "secp256k1", "x": b64([1u8; 32]), "y": b64([1u8; 32])}),
            json!({"kty": "EC", "kid": "offcurve", "crv": "P-256", "x": b64([1u8; 32]), "y": b64([2u8; 32])}),
            json!({"kty": "PQC", "kid": "future"}),
            rsa(1).jwk("ops", json!({"key_ops": ["encrypt"]})),
            ed25519().jwk("ed", json!({})),
        ];
        let cache = KeyCache::new(Mock::new(JwkSet::default()), CachePolicy::default());
        let iss = issuer("s1", "https://k8s.example", KeySource::Static(set(keys)));
        cache
            .key(&iss, Some("good"), Algorithm::RS256, T0)
            .await
            .unwrap();
        let st = cache.status("s1").unwrap();
        assert_eq!(st.kids, vec!["good".to_owned(), "ed".to_owned()]);
        assert_eq!(st.dropped, 8);
        for kid in ["weak", "enc", "hmac", "p521", "offcurve"] {
            let err = cache
                .key(&iss, Some(kid), Algorithm::RS256, T0)
                .await
                .unwrap_err();
            assert!(matches!(err, KeyError::UnknownKid { .. }), "{kid}: {err}");
        }
    }

    #[test]
    fn drop_reasons_are_explained() {
        let weak: Jwk =
            serde_json::from_value(json!({"kty": "RSA", "n": b64([0xC5u8; 128]), "e": "AQAB"}))
                .unwrap();
        assert!(
            VerifyingKey::from_jwk(&weak)
                .unwrap_err()
                .contains("1024 bits")
        );
        let enc: Jwk = serde_json::from_value(rsa(0).jwk("e", json!({"use": "enc"}))).unwrap();
        assert!(VerifyingKey::from_jwk(&enc).unwrap_err().contains("enc"));
        let mixed: Jwk = serde_json::from_value(ec256().jwk("m", json!({"alg": "RS256"}))).unwrap();
        assert!(
            VerifyingKey::from_jwk(&mixed)
                .unwrap_err()
                .contains("does not fit")
        );
    }

    #[test]
    fn p384_keys_verify_es384_only() {
        use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
        let k = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        let p = k.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-384", "x": b64(&p[1..49]), "y": b64(&p[49..97])});
        let vk = VerifyingKey::from_jwk(&serde_json::from_value(jwk).unwrap()).unwrap();
        assert_eq!(vk.family, KeyFamily::Ec(EcCurve::P384));
        assert!(vk.family.accepts(Algorithm::ES384) && !vk.family.accepts(Algorithm::ES256));
        let sig = k
            .sign(&aws_lc_rs::rand::SystemRandom::new(), b"msg")
            .unwrap();
        let sig = b64(sig.as_ref());
        assert!(jsonwebtoken::crypto::verify(&sig, b"msg", &vk.key, Algorithm::ES384).unwrap());
    }

    #[tokio::test]
    async fn static_source_never_fetches() {
        let mock = Mock::new(JwkSet::default());
        let cache = cache(&mock);
        let iss = issuer(
            "s1",
            "https://k8s.example",
            KeySource::Static(set(vec![ec256().jwk("k", json!({}))])),
        );
        cache
            .key(&iss, Some("k"), Algorithm::ES256, T0)
            .await
            .unwrap();
        cache
            .key(&iss, Some("k"), Algorithm::ES256, T0 + 10 * 365 * 86400)
            .await
            .unwrap();
        cache
            .key(&iss, Some("other"), Algorithm::ES256, T0)
            .await
            .unwrap_err();
        let st = cache.refresh(&iss, T0).await.unwrap();
        assert_eq!(
            (st.source, st.kids, st.expires_at),
            ("static", vec!["k".to_owned()], None)
        );
        assert_eq!(mock.calls(), 0);
        assert_eq!(cache.fetch_count("s1"), 0);
    }

    #[tokio::test]
    async fn alg_must_fit_the_key() {
        let keys = vec![
            ec256().jwk("ec", json!({})),
            rsa(0).jwk("rs512", json!({"alg": "RS512"})),
            ed25519().jwk("ed", json!({})),
        ];
        let cache = KeyCache::new(Mock::new(JwkSet::default()), CachePolicy::default());
        let iss = issuer("s1", "https://k8s.example", KeySource::Static(set(keys)));
        for (kid, alg) in [
            ("ec", Algorithm::RS256),
            ("ec", Algorithm::ES384),
            ("rs512", Algorithm::RS256),
            ("ed", Algorithm::ES256),
        ] {
            let err = cache.key(&iss, Some(kid), alg, T0).await.unwrap_err();
            assert!(
                matches!(err, KeyError::AlgMismatch(_)),
                "{kid} {alg:?}: {err}"
            );
        }
        assert!(
            cache
                .key(&iss, Some("rs512"), Algorithm::RS512, T0)
                .await
                .is_ok()
        );
        // Without kid: the single key that fits, or refuse when several do.
        assert_eq!(
            cache
                .key(&iss, None, Algorithm::EdDSA, T0)
                .await
                .unwrap()
                .kid
                .as_deref(),
            Some("ed")
        );
        let two = issuer(
            "s2",
            "https://k.example",
            KeySource::Static(set(vec![
                rsa(0).jwk("a", json!({})),
                rsa(1).jwk("b", json!({})),
            ])),
        );
        let err = cache
            .key(&two, None, Algorithm::RS256, T0)
            .await
            .unwrap_err();
        assert!(matches!(err, KeyError::AmbiguousKey(_)), "{err}");
    }

    #[tokio::test]
    async fn forget_and_source_change_start_over() {
        let mock = Mock::new(set(vec![rsa(0).jwk("a", json!({}))]));
        let cache = cache(&mock);
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0)
            .await
            .unwrap();
        cache.forget("i1");
        assert!(cache.status("i1").is_none());
        cache
            .key(&idp(), Some("a"), Algorithm::RS256, T0 + 1)
            .await
            .unwrap();
        let moved = issuer(
            "i1",
            "https://idp.example",
            KeySource::JwksUri("https://idp.example/keys".into()),
        );
        cache
            .key(&moved, Some("a"), Algorithm::RS256, T0 + 2)
            .await
            .unwrap();
        assert_eq!(mock.calls(), 3);
        assert_eq!(cache.status("i1").unwrap().source, "jwks_uri");
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            parse_max_age(["public, max-age=300, must-revalidate"]),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_max_age(["Max-Age=\"60\""]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_max_age(["max-age=300", "no-cache"]),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_max_age(["private", "s-maxage=10"]), None);
        assert_eq!(parse_max_age(["max-age=-1"]), None);
    }

    // ---- HttpFetcher against a real server on 127.0.0.1:0 ----

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, header};
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::get;

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn loopback_fetcher(timeout: Duration) -> HttpFetcher {
        HttpFetcher::new(FetchPolicy {
            allow_insecure_loopback: true,
            timeout,
            ..FetchPolicy::default()
        })
        .unwrap()
    }

    fn jwks_body() -> String {
        json!({"keys": [rsa(0).jwk("a", json!({})), {"kty": "RSA", "kid": 5}]}).to_string()
    }

    #[tokio::test]
    async fn discovery_then_jwks_with_max_age() {
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(|headers: axum::http::HeaderMap| async move {
                    let host = headers[header::HOST].to_str().unwrap().to_owned();
                    json!({"issuer": format!("http://{host}"), "jwks_uri": format!("http://{host}/jwks")}).to_string()
                }),
            )
            .route("/jwks", get(|| async { ([(header::CACHE_CONTROL, "public, max-age=300")], jwks_body()) }));
        let base = serve(app).await;
        let f = loopback_fetcher(Duration::from_secs(5));
        let got = f
            .fetch(&issuer("h", &base, KeySource::Discovery))
            .await
            .unwrap();
        assert_eq!(got.jwks.keys.len(), 1);
        assert_eq!(got.unparsed, 1);
        assert_eq!(got.max_age, Some(Duration::from_secs(300)));
        // Through the cache with the real fetcher.
        let cache = KeyCache::new(Arc::new(f), CachePolicy::default());
        let st = cache
            .refresh(&issuer("h", &base, KeySource::Discovery), T0)
            .await
            .unwrap();
        assert_eq!(
            (st.kids, st.dropped, st.expires_at),
            (vec!["a".to_owned()], 1, Some(T0 + 300))
        );
    }

    #[tokio::test]
    async fn discovery_issuer_must_match_exactly() {
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|headers: axum::http::HeaderMap| async move {
                let host = headers[header::HOST].to_str().unwrap().to_owned();
                json!({"issuer": format!("http://{host}/"), "jwks_uri": format!("http://{host}/jwks")}).to_string()
            }),
        );
        let base = serve(app).await;
        let err = loopback_fetcher(Duration::from_secs(5))
            .fetch(&issuer("h", &base, KeySource::Discovery))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FetchError::IssuerMismatch { .. }), "{text}");
        assert!(
            text.contains(&format!("{base:?}")) && text.contains(&format!("\"{base}/\"")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let big = "x".repeat(300 * 1024);
        let app = Router::new()
            .route("/big", get(move || async move { big }))
            .route(
                "/chunked",
                get(|| async {
                    let chunks =
                        (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 4096])));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            );
        let base = serve(app).await;
        let f = HttpFetcher::new(FetchPolicy {
            allow_insecure_loopback: true,
            max_bytes: 64 * 1024,
            ..FetchPolicy::default()
        })
        .unwrap();
        for path in ["/big", "/chunked"] {
            let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}{path}")));
            let err = f.fetch(&iss).await.unwrap_err();
            assert!(
                matches!(err, FetchError::TooLarge { max: 65536, .. }),
                "{path}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                jwks_body()
            }),
        );
        let base = serve(app).await;
        let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}/slow")));
        let started = std::time::Instant::now();
        let err = loopback_fetcher(Duration::from_millis(300))
            .fetch(&iss)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn redirects_stay_on_the_same_host() {
        let app = Router::new()
            .route("/jwks", get(|| async { jwks_body() }))
            .route("/moved", get(|| async { Redirect::temporary("/jwks") }))
            .route(
                "/away",
                get(|headers: axum::http::HeaderMap| async move {
                    let host = headers[header::HOST]
                        .to_str()
                        .unwrap()
                        .replace("127.0.0.1", "localhost");
                    Redirect::temporary(&format!("http://{host}/jwks"))
                }),
            )
            .route("/loop", get(|| async { Redirect::temporary("/loop") }));
        let base = serve(app).await;
        let f = loopback_fetcher(Duration::from_secs(5));
        let ok = f
            .fetch(&issuer(
                "h",
                &base,
                KeySource::JwksUri(format!("{base}/moved")),
            ))
            .await
            .unwrap();
        assert_eq!(ok.jwks.keys.len(), 1);
        let err = f
            .fetch(&issuer(
                "h",
                &base,
                KeySource::JwksUri(format!("{base}/away")),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::Redirect { reason, .. } if reason.contains("another host (localhost)")),
            "{err}"
        );
        let err = f
            .fetch(&issuer(
                "h",
                &base,
                KeySource::JwksUri(format!("{base}/loop")),
            ))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("more than 3 redirects"), "{err}");
    }

    #[tokio::test]
    async fn http_needs_loopback_and_explicit_permission() {
        let app = Router::new()
            .route("/jwks", get(|| async { jwks_body() }))
            .route(
                "/nokeys",
                get(|| async { json!({"issuer": "x"}).to_string() }),
            )
            .route("/html", get(|| async { "<html>" }))
            .route(
                "/500",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response() }),
            );
        let base = serve(app).await;
        let strict = HttpFetcher::new(FetchPolicy::default()).unwrap();
        let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}/jwks")));
        let err = strict.fetch(&iss).await.unwrap_err();
        assert!(matches!(err, FetchError::Insecure { .. }), "{err}");
        assert!(err.to_string().contains("not https"));
        let lax = loopback_fetcher(Duration::from_secs(5));
        assert!(lax.fetch(&iss).await.is_ok());
        let remote = issuer(
            "h",
            "http://idp.example",
            KeySource::JwksUri("http://idp.example/jwks".into()),
        );
        assert!(matches!(
            lax.fetch(&remote).await.unwrap_err(),
            FetchError::Insecure { .. }
        ));
        for (path, want) in [
            ("/nokeys", "no \"keys\""),
            ("/html", "not JSON"),
            ("/500", "HTTP 500"),
        ] {
            let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}{path}")));
            let err = lax.fetch(&iss).await.unwrap_err().to_string();
            assert!(err.contains(want), "{path}: {err}");
        }
        assert!(matches!(
            check_url("https://u:p@idp.example/", false),
            Err(FetchError::BadUrl { .. })
        ));
        assert!(check_url("http://[::1]:8080/jwks", true).is_ok());
    }
}
