//! Where fedgate stands against the floor of its cryptography (issue 6).
//!
//! Each bench sits beside the bare cryptography it contains, measured in the
//! same process: RS256 validation of a GitHub-shaped token with a warm key
//! cache beside a bare `jsonwebtoken` RS256 verify of the same token; minting
//! beside a bare aws-lc-rs ES256 signature of the same bytes; `authz::decide`;
//! the whole `POST /oidc/token` handler in-process (`router` + `oneshot`,
//! static-JWKS issuer, no network) beside "RS256 verify + ES256 sign"; and
//! `GET /api/v1/viewer` with an exchanged access token beside the same
//! request with an API key. After criterion, `--bench` runs print a table
//! of ratios measured interleaved (A, B, A, B…) so shared cores skew both
//! sides alike, and the exchange's process CPU (every thread, the SQLite
//! writer too) per call beside the floor's.
//!
//! `cargo bench --bench exchange` (a few minutes on 2 cores);
//! `cargo test --benches` runs every bench once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use fedgate::authz::{self, Action, ProjectView, Target};
use fedgate::federation::validate::{self, Trace};
use fedgate::model::{Principal, PrincipalKind, SaAuth, SaScope, Scopes, TeamRef, Visibility};
use fedgate::state::AppState;
use fedgate::tokens::AccessClaims;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// The allocator the binary uses (src/main.rs), so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Distinct accounts and tokens the exchange bench rotates through.
const POOL: usize = 16;

struct Fixture {
    rt: tokio::runtime::Runtime,
    state: AppState,
    router: Router,
    /// IdP tokens, one per account.
    tokens: Vec<String>,
    /// Pre-encoded form bodies for `POST /oidc/token`.
    forms: Vec<axum::body::Bytes>,
    rsa_public: DecodingKey,
    /// The same RSA key pre-parsed by aws-lc-rs (what fedgate's key cache holds).
    rsa_parsed: ParsedPublicKey,
    es256: EcdsaKeyPair,
    /// An exchanged access token and a built-in account's API key (same team).
    access_token: String,
    api_key: String,
    /// Credentials refused on `/api/v1/*`, by kind.
    refused: Vec<(&'static str, String)>,
    /// `POST /oidc/token` bodies refused, by kind.
    refused_forms: Vec<(&'static str, axum::body::Bytes)>,
    next: AtomicUsize,
    _dir: tempfile::TempDir,
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    let req = if body.is_null() {
        req.body(Body::empty()).unwrap()
    } else {
        req.header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn form(token: &str) -> axum::body::Bytes {
    serde_urlencoded::to_string([
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", token),
    ])
    .unwrap()
    .into()
}

fn token_request(body: &axum::body::Bytes) -> Request<Body> {
    Request::post("/oidc/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.clone()))
        .unwrap()
}

/// A run as the SDK logs one (default entity, a small config).
fn run_request(credential: &str) -> Request<Body> {
    Request::post("/api/v1/runs")
        .header(header::AUTHORIZATION, format!("Bearer {credential}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"project":"bench","config":{"lr":0.001,"epochs":10,"model":"resnet50"}}"#,
        ))
        .unwrap()
}

/// `token` with its payload replaced by `claims` (the signature kept).
fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts = token.split('.');
    let (h, _, sig) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// `token` with its header replaced by `header` (the signature kept).
fn with_header(token: &str, header: &Value) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// `token` with one character of its signature changed.
fn bad_signature(token: &str) -> String {
    let mut t = token.as_bytes().to_vec();
    let i = t.len() - 20;
    t[i] = if t[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(t).unwrap()
}

fn viewer_request(credential: &str) -> Request<Body> {
    Request::get("/api/v1/viewer")
        .header(header::AUTHORIZATION, format!("Bearer {credential}"))
        .body(Body::empty())
        .unwrap()
}

impl Fixture {
    fn new() -> Fixture {
        // One worker runs the background tasks (the audit writer), as in the
        // server; the bench thread drives each request with `block_on`.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = fedgate::config::ServeArgs {
            database_url: Some(format!(
                "sqlite://{}",
                dir.path().join("bench.db").display()
            )),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let built = rt.block_on(fedgate::build(config)).unwrap();
        let admin = built.bootstrapped.as_ref().unwrap().api_key.clone();
        let state = built.state.clone();
        // Dropping `built` detaches the audit writer task; it runs on in `rt`.
        drop(built);
        let router = fedgate::router(state.clone());
        let minter = support::Minter::new();
        let now = support::now();
        let (tokens, access_token, api_key) = rt.block_on(async {
            let a = Some(admin.as_str());
            let (s, b) = call(&router, "POST", "/api/v1/orgs/default/teams", a, json!({"name": "vision"})).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let (s, b) = call(
                &router,
                "POST",
                "/api/v1/orgs/default/issuers",
                a,
                json!({"issuer": support::ISSUER, "jwks": support::jwks(), "audiences": [support::AUDIENCE]}),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let issuer_id = b["id"].as_str().unwrap().to_string();
            let mut tokens = Vec::new();
            for i in 0..POOL {
                let (s, b) = call(
                    &router,
                    "POST",
                    "/api/v1/teams/vision/service-accounts",
                    a,
                    json!({"name": format!("ci-{i}"), "auth": "external", "issuer": issuer_id, "subject": support::subject(i)}),
                )
                .await;
                assert_eq!(s, StatusCode::CREATED, "{b}");
                tokens.push(minter.mint(&support::subject(i), now, 3600));
            }
            let (s, b) = call(
                &router,
                "POST",
                "/api/v1/teams/vision/service-accounts",
                a,
                json!({"name": "builtin-bot", "auth": "builtin"}),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let api_key = b["api_key"].as_str().unwrap().to_string();
            let resp = router.clone().oneshot(token_request(&form(&tokens[0]))).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            (tokens, v["access_token"].as_str().unwrap().to_string(), api_key)
        });
        let forms = tokens.iter().map(|t| form(t)).collect();
        // Refused credentials: fedgate's own token expired (signed by its
        // key), tampered (payload changed, a future `exp`), signed by a key
        // it does not know, malformed; an API key with a good checksum that
        // does not exist, and one with a bad checksum.
        let mut claims: Value = {
            let p = access_token.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
        };
        claims["iat"] = json!(now - 7200);
        claims["exp"] = json!(now - 3600);
        let expired = state
            .signer
            .mint(&serde_json::from_value(claims.clone()).unwrap())
            .unwrap();
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 3600);
        claims["scope"] = json!("read write admin");
        let tampered = with_payload(&access_token, &claims);
        let unknown_kid = with_header(
            &access_token,
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": "no-such-key"}),
        );
        let unknown_key = fedgate::apikey::generate().expose().to_string();
        let mut bad_checksum = unknown_key.clone();
        let last = bad_checksum.pop().unwrap();
        bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
        let refused = vec![
            ("access_token_expired", expired),
            ("access_token_tampered_future_exp", tampered),
            ("access_token_unknown_kid", unknown_kid),
            (
                "access_token_malformed",
                "eyJhbGciOiJFUzI1NiJ9.e30.c2ln".to_string(),
            ),
            ("api_key_unknown", unknown_key),
            ("api_key_bad_checksum", bad_checksum),
        ];
        let refused_forms = vec![
            (
                "unknown_issuer",
                form(&minter.mint_for(
                    "https://idp.unknown.example",
                    &support::subject(0),
                    now,
                    3600,
                )),
            ),
            (
                "unknown_kid",
                form(&with_header(
                    &tokens[1],
                    &json!({"alg": "RS256", "typ": "JWT", "kid": "rsa-unknown"}),
                )),
            ),
            ("bad_signature", form(&bad_signature(&tokens[2]))),
        ];
        let es256 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Fixture {
            rt,
            state,
            router,
            tokens,
            forms,
            rsa_public: DecodingKey::from_rsa_pem(support::PUBLIC_PEM.as_bytes()).unwrap(),
            rsa_parsed: {
                let jwk = &support::jwks()["keys"][0];
                let b = |f: &str| URL_SAFE_NO_PAD.decode(jwk[f].as_str().unwrap()).unwrap();
                RsaPublicKeyComponents {
                    n: b("n"),
                    e: b("e"),
                }
                .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                .unwrap()
            },
            es256,
            access_token,
            api_key,
            refused,
            refused_forms,
            next: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    fn next(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % POOL
    }

    /// Bare `jsonwebtoken` RS256 verification of an IdP token.
    fn rs256_verify_bare(&self, token: &str) {
        let (message, sig) = token.rsplit_once('.').unwrap();
        let ok = jsonwebtoken::crypto::verify(
            sig,
            message.as_bytes(),
            &self.rsa_public,
            Algorithm::RS256,
        )
        .unwrap();
        assert!(ok);
    }

    /// Bare aws-lc-rs RS256 verification with a pre-parsed key.
    fn rs256_verify_preparsed(&self, token: &str) {
        let (message, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        self.rsa_parsed
            .verify_sig(message.as_bytes(), &sig)
            .unwrap();
    }

    /// Bare aws-lc-rs ES256 signature of `message`, base64url as a JWS carries it.
    fn es256_sign_bare(&self, message: &[u8]) -> String {
        let sig = self.es256.sign(&SystemRandom::new(), message).unwrap();
        URL_SAFE_NO_PAD.encode(sig.as_ref())
    }

    /// fedgate's validation with a warm key cache: peek, issuer lookup,
    /// key from the cache, every RFC 8725 check and the signature.
    fn validate(&self, token: &str) {
        let now = support::now();
        let mut trace = Trace::disabled();
        let u = validate::peek(token).unwrap();
        let cfg = self.state.index.issuers_for(&u.iss).pop().unwrap();
        let key =
            futures::executor::block_on(self.state.keys.key(&cfg, u.kid.as_deref(), u.alg, now))
                .unwrap();
        black_box(validate::verify(&u, token, &cfg, &key, now, &mut trace).unwrap());
    }

    /// Claims like the exchange mints (through serde, so fields added to
    /// `AccessClaims` with a default do not break the bench).
    fn access_claims(&self) -> AccessClaims {
        let now = support::now();
        serde_json::from_value(json!({
            "iss": self.state.signer.issuer(),
            "sub": "sa_0123456789abcdefghij",
            "aud": self.state.signer.issuer(),
            "exp": now + 3600,
            "iat": now,
            "jti": fedgate::secrets::new_id("at"),
            "client_id": "sa_0123456789abcdefghij",
            "org": "default",
            "scope": "read write",
            "act": {"iss": support::ISSUER, "sub": support::subject(0)},
        }))
        .unwrap()
    }

    fn exchange(&self) {
        let i = self.next();
        let resp = self
            .rt
            .block_on(self.router.clone().oneshot(token_request(&self.forms[i])))
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        black_box(resp);
    }

    /// Waits until every queued audit event is stored.
    fn flush_audit(&self) {
        self.rt.block_on(self.state.audit.flush());
    }

    fn floor(&self, token: &str, minted_input: &[u8]) {
        self.rs256_verify_bare(token);
        black_box(self.es256_sign_bare(minted_input));
    }

    /// `GET /api/v1/viewer` with a credential that must be refused.
    fn viewer_refused(&self, credential: &str) {
        let resp = self
            .rt
            .block_on(self.router.clone().oneshot(viewer_request(credential)))
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        black_box(resp);
    }

    /// `POST /oidc/token` that must be refused.
    fn exchange_refused(&self, body: &axum::body::Bytes) {
        let resp = self
            .rt
            .block_on(self.router.clone().oneshot(token_request(body)))
            .unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
        black_box(resp);
    }

    /// `POST /api/v1/runs`, one at a time.
    fn run(&self, credential: &str) {
        let resp = self
            .rt
            .block_on(self.router.clone().oneshot(run_request(credential)))
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        black_box(resp);
    }

    /// Process CPU µs per `POST /api/v1/runs` with `clients` concurrent
    /// callers (as `wrk -c16` sends them), `n` runs each.
    fn runs_concurrent_cpu(&self, credential: &str, clients: usize, n: usize) -> f64 {
        let c0 = process_cpu_s();
        self.rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..clients {
                let router = self.router.clone();
                let credential = credential.to_string();
                set.spawn(async move {
                    for _ in 0..n {
                        let resp = router
                            .clone()
                            .oneshot(run_request(&credential))
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), StatusCode::CREATED);
                    }
                });
            }
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
        (process_cpu_s() - c0) * 1e6 / (clients * n) as f64
    }

    fn viewer(&self, credential: &str) {
        let resp = self
            .rt
            .block_on(self.router.clone().oneshot(viewer_request(credential)))
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        black_box(resp);
    }
}

fn team_sa() -> Principal {
    Principal {
        id: "sa_bench".into(),
        name: "ci-bot".into(),
        org_id: "org_1".into(),
        org_name: "default".into(),
        kind: PrincipalKind::ServiceAccount {
            scope: SaScope::Team {
                team: TeamRef {
                    id: "team_vision".into(),
                    name: "vision".into(),
                },
            },
            auth: SaAuth::External,
        },
        scopes: Scopes::FULL,
    }
}

fn project(team: &str, visibility: Visibility) -> ProjectView {
    ProjectView {
        id: "proj_1".into(),
        org_id: "org_1".into(),
        team: TeamRef {
            id: format!("team_{team}"),
            name: team.into(),
        },
        name: "eval".into(),
        visibility,
        members: Vec::new(),
    }
}

fn benches(c: &mut Criterion, fx: &Fixture) {
    let token = fx.tokens[0].clone();
    let claims = fx.access_claims();
    let minted = fx.state.signer.mint(&claims).unwrap();
    let minted_input = minted.rsplit_once('.').unwrap().0.as_bytes().to_vec();

    let mut g = c.benchmark_group("validate");
    g.bench_function("rs256_verify_bare", |b| {
        b.iter(|| fx.rs256_verify_bare(black_box(&token)))
    });
    g.bench_function("rs256_verify_preparsed_aws_lc_rs", |b| {
        b.iter(|| fx.rs256_verify_preparsed(black_box(&token)))
    });
    g.bench_function("fedgate_peek_parse_only", |b| {
        b.iter(|| validate::peek(black_box(&token)).unwrap())
    });
    g.bench_function("fedgate_validate_warm_cache", |b| {
        b.iter(|| fx.validate(black_box(&token)))
    });
    g.finish();

    let mut g = c.benchmark_group("mint");
    g.bench_function("es256_sign_bare", |b| {
        b.iter(|| fx.es256_sign_bare(black_box(&minted_input)))
    });
    g.bench_function("fedgate_mint", |b| {
        b.iter(|| fx.state.signer.mint(black_box(&claims)).unwrap())
    });
    g.finish();

    let sa = team_sa();
    let own = project("vision", Visibility::Team);
    let other = project("nlp", Visibility::Team);
    let mut g = c.benchmark_group("authz");
    g.bench_function("decide_allow_own_team", |b| {
        b.iter(|| authz::decide(Some(black_box(&sa)), Action::Write, Target::Project(&own)))
    });
    g.bench_function("decide_deny_other_team", |b| {
        b.iter(|| authz::decide(Some(black_box(&sa)), Action::Write, Target::Project(&other)))
    });
    g.finish();

    let mut g = c.benchmark_group("exchange");
    g.bench_function("floor_rs256_verify_plus_es256_sign", |b| {
        b.iter(|| fx.floor(&token, &minted_input))
    });
    g.bench_function("fedgate_exchange_in_process", |b| b.iter(|| fx.exchange()));
    g.finish();

    let mut g = c.benchmark_group("refused_exchange");
    g.bench_function("accepted_exchange", |b| b.iter(|| fx.exchange()));
    for (name, body) in &fx.refused_forms {
        g.bench_function(*name, |b| b.iter(|| fx.exchange_refused(body)));
    }
    g.finish();

    let mut g = c.benchmark_group("refused_credential");
    g.bench_function("accepted_viewer_access_token", |b| {
        b.iter(|| fx.viewer(&fx.access_token))
    });
    for (name, credential) in &fx.refused {
        g.bench_function(*name, |b| b.iter(|| fx.viewer_refused(credential)));
    }
    g.finish();

    let mut g = c.benchmark_group("runs");
    g.bench_function("create_run_api_key", |b| b.iter(|| fx.run(&fx.api_key)));
    g.bench_function("create_run_access_token", |b| {
        b.iter(|| fx.run(&fx.access_token))
    });
    g.finish();

    let mut g = c.benchmark_group("authenticated_request");
    g.bench_function("viewer_api_key", |b| b.iter(|| fx.viewer(&fx.api_key)));
    g.bench_function("viewer_access_token", |b| {
        b.iter(|| fx.viewer(&fx.access_token))
    });
    g.finish();
}

/// Median µs per call of `a` and of `b`, measured in alternating batches.
fn paired(rounds: usize, batch: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..batch {
            a();
        }
        ta.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
        let t = Instant::now();
        for _ in 0..batch {
            b();
        }
        tb.push(t.elapsed().as_secs_f64() * 1e6 / batch as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb))
}

/// This process's CPU seconds (utime + stime of every thread, /proc/self/stat).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

/// CPU µs per call of `op` over ~2 s, `settle` (e.g. flushing queued
/// work) included in the measurement.
fn cpu_per_op(mut op: impl FnMut(), settle: impl FnOnce()) -> f64 {
    let (c0, t0) = (process_cpu_s(), Instant::now());
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        for _ in 0..50 {
            op();
        }
        n += 50;
    }
    settle();
    (process_cpu_s() - c0) * 1e6 / n as f64
}

fn summary(fx: &Fixture) {
    let token = fx.tokens[0].clone();
    let claims = fx.access_claims();
    let minted = fx.state.signer.mint(&claims).unwrap();
    let minted_input = minted.rsplit_once('.').unwrap().0.as_bytes().to_vec();
    let rows = [
        (
            "validate (warm key cache) / bare RS256 verify",
            paired(
                31,
                100,
                || fx.validate(&token),
                || fx.rs256_verify_bare(&token),
            ),
        ),
        (
            "mint / bare ES256 sign",
            paired(
                31,
                100,
                || drop(fx.state.signer.mint(&claims)),
                || drop(fx.es256_sign_bare(&minted_input)),
            ),
        ),
        (
            "exchange in-process / RS256 verify + ES256 sign (wall)",
            paired(
                31,
                100,
                || fx.exchange(),
                || fx.floor(&token, &minted_input),
            ),
        ),
        (
            "exchange in-process / same floor (process CPU)",
            (
                cpu_per_op(|| fx.exchange(), || fx.flush_audit()),
                cpu_per_op(|| fx.floor(&token, &minted_input), || {}),
            ),
        ),
        (
            "viewer with access token / with API key",
            paired(
                31,
                200,
                || fx.viewer(&fx.access_token),
                || fx.viewer(&fx.api_key),
            ),
        ),
    ];
    let mut rows = rows.to_vec();
    for (name, body) in &fx.refused_forms {
        rows.push((
            &*Box::leak(format!("refused exchange ({name}) / accepted exchange").into_boxed_str()),
            paired(31, 50, || fx.exchange_refused(body), || fx.exchange()),
        ));
    }
    for (name, credential) in &fx.refused {
        rows.push((
            &*Box::leak(format!("viewer refused ({name}) / accepted token").into_boxed_str()),
            paired(
                31,
                200,
                || fx.viewer_refused(credential),
                || fx.viewer(&fx.access_token),
            ),
        ));
    }
    rows.push((
        "run, one at a time / viewer (process CPU)",
        (
            cpu_per_op(|| fx.run(&fx.api_key), || {}),
            cpu_per_op(|| fx.viewer(&fx.api_key), || {}),
        ),
    ));
    rows.push((
        "run, 16 concurrent / one at a time (process CPU)",
        (
            fx.runs_concurrent_cpu(&fx.api_key, 16, 250),
            cpu_per_op(|| fx.run(&fx.api_key), || {}),
        ),
    ));
    eprintln!();
    eprintln!(
        "ratios measured in this run: wall rows are medians of 31 alternating batches; \
         process CPU rows count every thread (the SQLite writer too) over 2 s each"
    );
    eprintln!(
        "{:<62} {:>10} {:>10} {:>7}",
        "", "fedgate µs", "floor µs", "ratio"
    );
    for (name, (a, b)) in rows {
        eprintln!("{name:<62} {a:>10.1} {b:>10.1} {:>7.2}", a / b);
    }
    eprintln!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |s| s.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
}

fn main() {
    let fx = Fixture::new();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    benches(&mut c, &fx);
    c.final_summary();
    // `cargo test` runs this binary without `--bench`: each bench once, no
    // table; nor with `--profile-time` (profiling one bench).
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        summary(&fx);
    }
}
