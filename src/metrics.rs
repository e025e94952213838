//! Prometheus metrics (`GET /metrics`): every metric name, label and helper
//! in one place, so an operator can read this file to know what is exported.
//!
//! The recorder is process-wide and installed once ([`install`]); many apps
//! built in one process (the integration tests) share it. The hot path uses
//! handles registered once with `&'static str` labels, so counting an
//! exchange or a cache lookup is an atomic add with no allocation.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `fedgate_exchanges_total` | counter | `outcome` (`success`/`denied`/`error`), `error` (RFC 6749 code or `none`) |
//! | `fedgate_exchange_duration_seconds` | histogram | `outcome` |
//! | `fedgate_http_request_duration_seconds` | histogram | `route` (matched path), `method`, `status` (`2xx`…) |
//! | `fedgate_exchange_unverified_refusals_total` | counter | `check` (the failed check: `format`, `iss`, `tenant`, `key`, `signature`, …) |
//! | `fedgate_jwks_fetches_total` | counter | `issuer_id` (a registered issuer's id, never its URL; at most 1,000 ids, then `_other`), `result` (`ok`/`error`/`timeout`) |
//! | `fedgate_cache_lookups_total` | counter | `cache` (`jwks_keys`/`verified_tokens`/`api_keys`/`principals`), `result` (`hit`/`miss`) |
//! | `fedgate_audit_queue_depth` | gauge | — (set when scraped) |
//! | `fedgate_trusted_issuers`, `fedgate_external_accounts` | gauge | — (set when scraped) |

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Token exchanges by outcome and RFC 6749 error code.
pub const EXCHANGES: &str = "fedgate_exchanges_total";
/// Time spent in `POST /oidc/token`, form parsing to response.
pub const EXCHANGE_SECONDS: &str = "fedgate_exchange_duration_seconds";
/// Time spent per HTTP request, by matched route.
pub const HTTP_SECONDS: &str = "fedgate_http_request_duration_seconds";
/// Exchanges refused before the token's signature verified (not audited:
/// nothing in such a token is known to come from an issuer), by check.
pub const UNVERIFIED_REFUSALS: &str = "fedgate_exchange_unverified_refusals_total";
/// JWKS (and discovery) fetches by issuer id and result.
pub const JWKS_FETCHES: &str = "fedgate_jwks_fetches_total";
/// Hits and misses of the in-memory caches of the hot paths.
pub const CACHE_LOOKUPS: &str = "fedgate_cache_lookups_total";
/// Audit events queued and not yet stored.
pub const AUDIT_QUEUE_DEPTH: &str = "fedgate_audit_queue_depth";
/// Trusted issuers in the in-memory federation index.
pub const TRUSTED_ISSUERS: &str = "fedgate_trusted_issuers";
/// External service accounts in the in-memory federation index.
pub const EXTERNAL_ACCOUNTS: &str = "fedgate_external_accounts";

/// Bucket upper bounds (seconds) for every `*_seconds` histogram: from
/// 50 µs (an exchange is ~50 µs of cryptography) to 10 s (a JWKS fetch timeout).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets between scrapes,
/// so an unscraped process does not accumulate raw samples.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on first call and returns its handle;
/// later calls return the same handle. If another recorder was installed
/// first (an embedding program's), ours still renders but records nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no metrics upkeep thread; histograms fold at scrape time only");
        }
        handle
    })
}

/// The in-memory caches whose hits and misses are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// An issuer's verification keys (`federation::jwks::KeyCache`).
    JwksKeys = 0,
    /// fedgate access tokens already verified (`tokens::Signer`).
    VerifiedTokens = 1,
    /// API keys by hash (`service::auth`).
    ApiKeys = 2,
    /// Principals by id (`service::auth`).
    Principals = 3,
}

impl Cache {
    const ALL: [Cache; 4] = [
        Cache::JwksKeys,
        Cache::VerifiedTokens,
        Cache::ApiKeys,
        Cache::Principals,
    ];
    fn label(self) -> &'static str {
        match self {
            Cache::JwksKeys => "jwks_keys",
            Cache::VerifiedTokens => "verified_tokens",
            Cache::ApiKeys => "api_keys",
            Cache::Principals => "principals",
        }
    }
}

/// Handles of the hot path, registered once after the recorder is installed.
struct Hot {
    exchange_ok: Counter,
    exchange_ok_seconds: Histogram,
    /// `[cache][0 = hit, 1 = miss]`.
    cache: [[Counter; 2]; 4],
}

fn hot() -> &'static Hot {
    static HOT: OnceLock<Hot> = OnceLock::new();
    HOT.get_or_init(|| {
        install();
        let pair = |c: Cache| {
            [
                metrics::counter!(CACHE_LOOKUPS, "cache" => c.label(), "result" => "hit"),
                metrics::counter!(CACHE_LOOKUPS, "cache" => c.label(), "result" => "miss"),
            ]
        };
        Hot {
            exchange_ok: metrics::counter!(EXCHANGES, "outcome" => "success", "error" => "none"),
            exchange_ok_seconds: metrics::histogram!(EXCHANGE_SECONDS, "outcome" => "success"),
            cache: Cache::ALL.map(pair),
        }
    })
}

/// Counts a cache lookup.
pub fn cache_lookup(cache: Cache, hit: bool) {
    hot().cache[cache as usize][usize::from(!hit)].increment(1);
}

/// Counts an exchange and its latency. `error` is the RFC 6749 §5.2 code of
/// a refusal; `server_error` and `temporarily_unavailable` count as `error`
/// (fedgate's side), every other code as `denied` (the client's).
pub fn exchange_done(error: Option<&'static str>, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    match error {
        None => {
            let h = hot();
            h.exchange_ok.increment(1);
            h.exchange_ok_seconds.record(secs);
        }
        Some(code) => {
            install();
            let outcome = match code {
                "server_error" | "temporarily_unavailable" => "error",
                _ => "denied",
            };
            metrics::counter!(EXCHANGES, "outcome" => outcome, "error" => code).increment(1);
            metrics::histogram!(EXCHANGE_SECONDS, "outcome" => outcome).record(secs);
        }
    }
}

/// Counts an exchange refused before its signature verified.
pub fn unverified_refusal(check: &'static str) {
    install();
    metrics::counter!(UNVERIFIED_REFUSALS, "check" => check).increment(1);
}

/// Most distinct issuer ids that get series of their own; fetches of any
/// further issuer count under `_other`, so the label set stays bounded
/// however many issuers come and go in one process's life.
pub const MAX_ISSUER_LABELS: usize = 1000;

fn issuer_label(issuer_id: &str) -> String {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if seen.contains(issuer_id) {
        return issuer_id.to_owned();
    }
    if seen.len() >= MAX_ISSUER_LABELS {
        return "_other".to_owned();
    }
    seen.insert(issuer_id.to_owned());
    issuer_id.to_owned()
}

/// Counts a JWKS fetch attempt (discovery included) of a registered issuer,
/// by its id: an issuer URL never becomes a label (it is an org admin's
/// input, and unbounded), and the lint fetch of a registration that may
/// still fail is not counted at all (see `KeyCache::probe`).
pub fn jwks_fetch(issuer_id: &str, result: &'static str) {
    install();
    metrics::counter!(JWKS_FETCHES, "issuer_id" => issuer_label(issuer_id), "result" => result)
        .increment(1);
}

/// Histograms by matched route, then by (method, status class): found
/// without allocating once a route has been seen. Routes are the router's
/// templates (a bounded set), never raw paths.
type RouteHistograms = HashMap<String, HashMap<(&'static str, &'static str), Histogram>>;

fn routes() -> &'static RwLock<RouteHistograms> {
    static ROUTES: OnceLock<RwLock<RouteHistograms>> = OnceLock::new();
    ROUTES.get_or_init(|| RwLock::new(HashMap::new()))
}

fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Records one HTTP request's latency. `route` is the matched route
/// template (`None` for a path no route matched).
pub fn http_request(route: Option<&str>, method: &str, status: u16, elapsed: Duration) {
    let route = route.unwrap_or("unmatched");
    let key = (method_label(method), status_label(status));
    let secs = elapsed.as_secs_f64();
    {
        let map = routes().read().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = map.get(route).and_then(|m| m.get(&key)) {
            h.record(secs);
            return;
        }
    }
    install();
    let h = metrics::histogram!(HTTP_SECONDS, "route" => route.to_owned(), "method" => key.0, "status" => key.1);
    h.record(secs);
    routes()
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(route.to_owned())
        .or_default()
        .insert(key, h);
}

/// Figures read at scrape time rather than counted as they change.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub audit_queue_depth: i64,
    pub trusted_issuers: usize,
    pub external_accounts: usize,
}

/// The Prometheus text exposition of everything recorded, with `snapshot`'s gauges.
pub fn render(snapshot: Snapshot) -> String {
    let handle = install();
    metrics::gauge!(AUDIT_QUEUE_DEPTH).set(snapshot.audit_queue_depth as f64);
    metrics::gauge!(TRUSTED_ISSUERS).set(snapshot.trusted_issuers as f64);
    metrics::gauge!(EXTERNAL_ACCOUNTS).set(snapshot.external_accounts as f64);
    handle.render()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_series_render() {
        let a = install() as *const PrometheusHandle;
        let b = install() as *const PrometheusHandle;
        assert_eq!(a, b);
        cache_lookup(Cache::ApiKeys, true);
        cache_lookup(Cache::ApiKeys, false);
        exchange_done(None, Duration::from_micros(60));
        exchange_done(Some("invalid_grant"), Duration::from_micros(30));
        http_request(Some("/oidc/token"), "POST", 200, Duration::from_micros(70));
        http_request(Some("/oidc/token"), "POST", 200, Duration::from_micros(70));
        http_request(None, "BREW", 404, Duration::from_micros(5));
        jwks_fetch("iss_test", "ok");
        unverified_refusal("signature");
        let text = render(Snapshot {
            audit_queue_depth: 3,
            trusted_issuers: 1,
            external_accounts: 2,
        });
        for needle in [
            "fedgate_cache_lookups_total{cache=\"api_keys\",result=\"hit\"}",
            "fedgate_cache_lookups_total{cache=\"api_keys\",result=\"miss\"}",
            "fedgate_exchanges_total{outcome=\"success\",error=\"none\"}",
            "fedgate_exchanges_total{outcome=\"denied\",error=\"invalid_grant\"}",
            "fedgate_exchange_duration_seconds_bucket{outcome=\"success\",le=\"0.0001\"}",
            "fedgate_http_request_duration_seconds_count{route=\"/oidc/token\",method=\"POST\",status=\"2xx\"}",
            "route=\"unmatched\",method=\"other\",status=\"4xx\"",
            "fedgate_jwks_fetches_total{issuer_id=\"iss_test\",result=\"ok\"}",
            "fedgate_exchange_unverified_refusals_total{check=\"signature\"}",
            "fedgate_audit_queue_depth 3",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
