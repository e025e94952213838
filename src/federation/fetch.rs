//! Getting an issuer's JWKS over HTTP: OIDC Discovery or an explicit
//! `jwks_uri`, https only, bounded in size and time, redirects only to the
//! same host, public addresses only unless allowed (`netguard`), with errors
//! that never quote a response body ([`HttpFetcher`]); behind the
//! [`KeyFetcher`] trait so the cache can be tested with a fake.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::Deserialize;

use super::netguard::{AddressPolicy, GuardedResolver, Lookup, find_refused, system_lookup};
use super::{IssuerConfig, KeySource, excerpt};

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
    #[error("request to {url} refused: {reason}")]
    PrivateAddress { url: String, reason: String },
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
    /// Non-public addresses that may be fetched from (`--allow-private-issuers`;
    /// `--allow-insecure-issuers` adds loopback).
    pub addresses: AddressPolicy,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_insecure_loopback: false,
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            max_redirects: 3,
            addresses: AddressPolicy::default(),
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

/// What was wrong with a JSON body, without quoting it: serde's own text
/// can carry values of the response (`invalid type: string "…"`), and an
/// admin-facing error must not become a way to read an internal page.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "invalid JSON",
        Category::Eof => "the JSON ends early",
        Category::Io => "unreadable",
        Category::Data => {
            let text = e.to_string();
            if let Some(rest) = text.strip_prefix("missing field `")
                && let Some((field, _)) = rest.split_once('`')
            {
                return format!(
                    "missing field {field:?} (line {}, column {})",
                    e.line(),
                    e.column()
                );
            }
            "a member has the wrong type"
        }
    };
    format!("{what} at line {}, column {}", e.line(), e.column())
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
    /// Builds the client once: timeouts, redirect rule, address rule and
    /// TLS are fixed here. No proxy: a proxy would resolve and connect on
    /// its own, out of reach of the address rule.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        Self::with_lookup(policy, system_lookup())
    }

    /// [`HttpFetcher::new`] with another way to look names up (tests script
    /// DNS answers with it); the address rule applies to its answers.
    pub fn with_lookup(policy: FetchPolicy, lookup: Lookup) -> Result<Self, FetchError> {
        let (allow, max) = (policy.allow_insecure_loopback, policy.max_redirects);
        let addresses = Arc::new(policy.addresses.clone());
        let guard = Arc::clone(&addresses);
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
            if let Some(host) = attempt.url().host()
                && let Err(refused) = guard.check_host(&host)
            {
                return attempt.error(refused);
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
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: addresses,
                lookup,
            }))
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
        if let Some(host) = parsed.host()
            && let Err(refused) = self.policy.addresses.check_host(&host)
        {
            return Err(FetchError::PrivateAddress {
                url: url.to_owned(),
                reason: refused.to_string(),
            });
        }
        let max = self.policy.max_bytes;
        let to_err = |e: reqwest::Error| {
            let url = url.to_owned();
            if let Some(refused) = find_refused(&e) {
                FetchError::PrivateAddress {
                    url,
                    reason: refused.to_string(),
                }
            } else if e.is_timeout() {
                FetchError::Timeout(self.policy.timeout)
            } else if e.is_redirect() {
                FetchError::Redirect {
                    url,
                    reason: error_chain(&e),
                }
            } else {
                FetchError::Transport {
                    url,
                    reason: error_chain(&e),
                }
            }
        };
        let mut resp = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(to_err)?;
        // The body of a refusal is never read: it may be an internal page.
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
            let reason = json_error(&e);
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
            // Quoted only when it is a URL: what an admin needs to spot a
            // trailing-slash or scheme mismatch, and never arbitrary text of
            // the response.
            let document = match url::Url::parse(&doc.issuer) {
                Ok(u) if matches!(u.scheme(), "https" | "http") => excerpt(&doc.issuer, 200),
                _ => "(a value that is not an http(s) URL)".to_owned(),
            };
            return Err(FetchError::IssuerMismatch {
                url,
                configured: issuer.to_owned(),
                document,
            });
        }
        Ok(doc.jwks_uri)
    }

    async fn jwks(&self, url: &str) -> Result<Fetched, FetchError> {
        let (body, max_age) = self.get(url).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| FetchError::NotJson {
                url: url.to_owned(),
                reason: json_error(&e),
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::federation::jwks::{CachePolicy, KeyCache};
    use crate::federation::keys::test_keys::rsa;
    use crate::federation::netguard::loopback_nets;
    use crate::federation::test_issuer as issuer;

    const T0: i64 = 1_800_000_000;

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
            addresses: AddressPolicy::new(loopback_nets()),
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
            addresses: AddressPolicy::new(loopback_nets()),
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

    /// SSRF: loopback, metadata and names resolving to loopback are refused
    /// by default even when http:// to loopback is allowed, before any
    /// connection (the server below is never reached).
    #[tokio::test]
    async fn non_public_addresses_are_refused_unless_allowed() {
        let app = Router::new().route("/jwks", get(|| async { jwks_body() }));
        let base = serve(app).await;
        let port = base.rsplit(':').next().unwrap().to_owned();
        let no_private = HttpFetcher::new(FetchPolicy {
            allow_insecure_loopback: true,
            ..FetchPolicy::default()
        })
        .unwrap();
        for (url, want) in [
            (format!("{base}/jwks"), "127.0.0.1, a loopback address"),
            (
                format!("http://localhost:{port}/jwks"),
                "localhost resolves to",
            ),
            (
                "https://169.254.169.254/latest/meta-data/".to_owned(),
                "cloud metadata",
            ),
            ("https://10.1.2.3/jwks".to_owned(), "a private address"),
            ("https://[::ffff:7f00:1]/jwks".to_owned(), "loopback"),
            ("https://[fe80::1]/jwks".to_owned(), "link-local"),
        ] {
            let err = no_private
                .fetch(&issuer("h", &base, KeySource::JwksUri(url.clone())))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, FetchError::PrivateAddress { reason, .. } if reason.contains(want)),
                "{url}: {err}"
            );
            assert!(err.to_string().contains("--allow-private-issuers"), "{err}");
        }
        // Allowed explicitly: the same URL works.
        let allowed = HttpFetcher::new(FetchPolicy {
            allow_insecure_loopback: true,
            addresses: AddressPolicy::new(
                super::super::netguard::parse_cidrs("127.0.0.1/32").unwrap(),
            ),
            ..FetchPolicy::default()
        })
        .unwrap();
        let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}/jwks")));
        assert!(allowed.fetch(&iss).await.is_ok());
        // A discovery document on an allowed host cannot point the JWKS
        // fetch at a refused address either.
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|headers: axum::http::HeaderMap| async move {
                let host = headers[header::HOST].to_str().unwrap().to_owned();
                json!({"issuer": format!("http://{host}"),
                       "jwks_uri": "https://169.254.169.254/latest/meta-data/"})
                .to_string()
            }),
        );
        let base = serve(app).await;
        let err = allowed
            .fetch(&issuer("h", &base, KeySource::Discovery))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, FetchError::PrivateAddress { reason, .. } if reason.contains("cloud metadata")),
            "{err}"
        );
    }

    /// Errors shown to admins never quote what an internal server answered.
    #[tokio::test]
    async fn errors_never_quote_a_response_body() {
        const SECRET: &str = "SECRET-INTERNAL-7f3a";
        let app = Router::new()
            .route(
                "/500",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, SECRET).into_response() }),
            )
            .route("/text", get(|| async { format!("{SECRET} <html>") }))
            .route(
                "/num",
                get(|| async { format!("{{\"keys\": [], \"x\": {SECRET}}}") }),
            )
            .route(
                "/issuer-text/.well-known/openid-configuration",
                get(|| async { json!({"issuer": SECRET, "jwks_uri": "x"}).to_string() }),
            )
            .route(
                "/issuer-type/.well-known/openid-configuration",
                get(|| async { json!({"issuer": [SECRET], "jwks_uri": SECRET}).to_string() }),
            )
            .route(
                "/jwks-type/.well-known/openid-configuration",
                get(|| async { json!({"issuer": 5, "jwks_uri": {"a": SECRET}}).to_string() }),
            );
        let base = serve(app).await;
        let f = loopback_fetcher(Duration::from_secs(5));
        let mut seen = Vec::new();
        for path in ["/500", "/text", "/num"] {
            let iss = issuer("h", &base, KeySource::JwksUri(format!("{base}{path}")));
            seen.push(f.fetch(&iss).await.unwrap_err().to_string());
        }
        for path in ["/issuer-text", "/issuer-type", "/jwks-type"] {
            let iss = issuer("h", &format!("{base}{path}"), KeySource::Discovery);
            seen.push(f.fetch(&iss).await.unwrap_err().to_string());
        }
        for text in &seen {
            assert!(!text.contains(SECRET), "{text}");
        }
        assert!(seen[0].contains("HTTP 500"), "{}", seen[0]);
        assert!(seen[1].contains("invalid JSON at line 1"), "{}", seen[1]);
        assert!(seen[3].contains("not an http(s) URL"), "{}", seen[3]);
        assert!(seen[4].contains("wrong type"), "{}", seen[4]);
    }

    /// No DNS rebinding: a name whose answer holds a refused address and an
    /// allowed one connects only to the allowed one (a server on the refused
    /// address serves other keys, and they never arrive), and a name that
    /// resolves only to refused addresses is refused. The check and the
    /// connection use one and the same answer.
    #[tokio::test]
    async fn the_connection_goes_to_the_checked_address() {
        // The same port on two loopback addresses (all of 127/8 is loopback).
        let mut pair = None;
        for _ in 0..20 {
            let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = good.local_addr().unwrap().port();
            if let Ok(evil) = tokio::net::TcpListener::bind(("127.0.0.2", port)).await {
                pair = Some((good, evil, port));
                break;
            }
        }
        let (good, evil, port) = pair.expect("a port free on 127.0.0.1 and 127.0.0.2");
        let serve_keys = |l: tokio::net::TcpListener, kid: &'static str| {
            let app =
                Router::new().route(
                    "/jwks",
                    get(move || async move {
                        json!({"keys": [rsa(0).jwk(kid, json!({}))]}).to_string()
                    }),
                );
            tokio::spawn(async move { axum::serve(l, app).await });
        };
        serve_keys(good, "good");
        serve_keys(evil, "evil");
        // A scripted DNS answer (a rebinding server could give any).
        let fetcher = |answer: Vec<std::net::SocketAddr>| {
            let lookup: Lookup = Arc::new(move |_host: String| {
                let answer = answer.clone();
                Box::pin(async move { Ok(answer) })
            });
            HttpFetcher::with_lookup(
                FetchPolicy {
                    allow_insecure_loopback: true,
                    addresses: AddressPolicy::new(
                        super::super::netguard::parse_cidrs("127.0.0.1/32").unwrap(),
                    ),
                    ..FetchPolicy::default()
                },
                lookup,
            )
            .unwrap()
        };
        let url = format!("http://localhost:{port}/jwks");
        let iss = issuer("h", "http://localhost", KeySource::JwksUri(url.clone()));
        let mixed = fetcher(vec![
            std::net::SocketAddr::from(([127, 0, 0, 2], 0)),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ]);
        for _ in 0..3 {
            let got = mixed.fetch(&iss).await.unwrap();
            assert_eq!(got.jwks.keys[0].common.key_id.as_deref(), Some("good"));
        }
        let only_refused = fetcher(vec![std::net::SocketAddr::from(([127, 0, 0, 2], 0))]);
        let err = only_refused.fetch(&iss).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::PrivateAddress { reason, .. } if reason.contains("localhost resolves to 127.0.0.2")),
            "{err}"
        );
    }
}
